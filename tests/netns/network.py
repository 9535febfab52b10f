"""Hosts made of network namespaces on a private switch, and faults on its wires.

Every host is a namespace with one interface, ``eth0``, whose veth peer is a port of a
bridge inside one more namespace, the switch. Addresses are private (``10.213.0.0/24``)
and nothing is attached to the machine's own interfaces: there is no default route, no
NAT, no way out. Faults live on the switch: an nftables table of the bridge family
counts every UDP datagram it forwards and drops a random share of them, so one rule
covers every pair of hosts and its counters say what really happened.

Every namespace is named ``kpx-PID-N-ROLE``, PID being the process that built it: a
namespace whose process is gone is left over from a crashed run, and
:func:`remove_stale` removes it (after killing whatever still runs inside). Device
mount directories follow the same rule (:func:`stale_prefix_pid`).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

PREFIX = "kpx-"
NETNS_DIR = Path("/run/netns")
SUBNET = "10.213.0"
#: The nftables table on the switch that holds the faults and their counters.
TABLE = "kpx_faults"

_serial = itertools.count(1)
_NAME = re.compile(rf"^{re.escape(PREFIX)}(\d+)-")


def run(*argv: str, input: str | None = None, timeout: float = 30) -> str:
    """Run a command, returning its output; fail with its output when it fails."""
    done = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout,
                          check=False)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({done.returncode}):\n"
                             f"{done.stdout}{done.stderr}")
    return done.stdout


def in_netns(netns: str, *argv: str) -> list[str]:
    """``argv`` run in the network namespace ``netns`` and nothing else.

    ``nsenter --net`` enters the network namespace only, so a FUSE mount made by a
    daemon started this way is visible to the test (``ip netns exec`` would also give
    it a mount namespace of its own). nsenter execs the command: the process id is the
    command's, and a signal to it reaches the command itself.
    """
    return ["nsenter", f"--net={NETNS_DIR / netns}", *argv]


@dataclass(frozen=True)
class Host:
    role: str  #: what the test calls it: a0, p0, l1, ...
    netns: str  #: its namespace
    address: str  #: its only address, on eth0

    def argv(self, *argv: str) -> list[str]:
        return in_netns(self.netns, *argv)


@dataclass(frozen=True)
class Counters:
    seen: int  #: UDP datagrams the switch was asked to forward (a fragment is one)
    dropped: int  #: of those, the ones the fault rule dropped
    fragments: int = 0  #: of those, the pieces of fragmented datagrams


class Network:
    """A switch namespace and one namespace per host; :meth:`remove` undoes it all."""

    def __init__(self, roles: Sequence[str]) -> None:
        tag = f"{PREFIX}{os.getpid()}-{next(_serial)}"
        self.switch = f"{tag}-sw"
        self.hosts = {
            role: Host(role, f"{tag}-{role}", f"{SUBNET}.{i}")
            for i, role in enumerate(roles, start=1)
        }
        self._made: list[str] = []

    def __getitem__(self, role: str) -> Host:
        return self.hosts[role]

    def build(self) -> None:
        self._add_netns(self.switch)
        run("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", self.switch, "link", "set", "br0", "up")
        for host in self.hosts.values():
            self._add_netns(host.netns)
            port = f"v-{host.role}"
            run("ip", "-n", self.switch, "link", "add", port, "type", "veth",
                "peer", "name", "eth0", "netns", host.netns)
            run("ip", "-n", self.switch, "link", "set", port, "master", "br0", "up")
            run("ip", "-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
            run("ip", "-n", host.netns, "link", "set", "lo", "up")
            run("ip", "-n", host.netns, "link", "set", "eth0", "up")
        # The switch counts every datagram it forwards, faults or not.
        self.nft(f"""
            table bridge {TABLE} {{
                counter seen {{}}
                counter dropped {{}}
                counter fragments {{}}
                chain forward {{
                    type filter hook forward priority 0; policy accept;
                    meta l4proto udp counter name seen
                    meta l4proto udp ip frag-off & 0x3fff != 0 counter name fragments
                }}
            }}
        """)

    def drop_randomly(self, percent: int) -> None:
        """Drop ``percent`` % of the UDP datagrams between any two hosts, at random."""
        self.nft(f"add rule bridge {TABLE} forward meta l4proto udp "
                 f"numgen random mod 100 < {percent} counter name dropped drop")

    def netem(self, spec: str) -> None:
        """Put ``tc qdisc ... netem SPEC`` on every host's eth0 (kernels with sch_netem).

        For example ``"delay 5ms 2ms duplicate 1% reorder 1%"``. The development
        kernel has no netem: this is for the VM, whose Debian kernel has it as a module.
        """
        subprocess.run(["modprobe", "-q", "sch_netem"], check=False, timeout=30)
        for host in self.hosts.values():
            run(*host.argv("tc", "qdisc", "add", "dev", "eth0", "root", "netem", *spec.split()))

    def nft(self, script: str) -> None:
        run(*in_netns(self.switch, "nft", "-f", "-"), input=script)

    def counters(self) -> Counters:
        listing = json.loads(run(*in_netns(self.switch, "nft", "-j", "list", "counters",
                                           "table", "bridge", TABLE)))
        packets = {
            item["counter"]["name"]: int(item["counter"]["packets"])
            for item in listing["nftables"]
            if "counter" in item
        }
        return Counters(seen=packets["seen"], dropped=packets["dropped"],
                        fragments=packets["fragments"])

    def remove(self) -> None:
        """Remove the rules and every namespace, ending whatever still runs in them."""
        if self.switch in self._made:
            with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
                run(*in_netns(self.switch, "nft", "delete", "table", "bridge", TABLE))
        for netns in reversed(self._made):
            remove_netns(netns)
        self._made.clear()

    def _add_netns(self, netns: str) -> None:
        run("ip", "netns", "add", netns)
        self._made.append(netns)


def remove_netns(netns: str) -> None:
    """Kill every process in ``netns`` (ours: only our tests use the prefix), delete it."""
    if not netns.startswith(PREFIX):
        raise ValueError(f"not a test namespace: {netns}")
    with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
        for pid in run("ip", "netns", "pids", netns).split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
    with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
        run("ip", "netns", "delete", netns)


def stale_prefix_pid(name: str) -> int | None:
    """The pid in a ``kpx-PID-...`` name when that process is gone, else None."""
    match = _NAME.match(name)
    if match is None:
        return None
    pid = int(match.group(1))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return pid
    except PermissionError:
        return None
    return None


def prefixed_namespaces() -> list[str]:
    """Every namespace carrying the test prefix."""
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(PREFIX))


def remove_stale() -> list[str]:
    """Remove the namespaces left over by crashed runs; returns their names."""
    stale = [name for name in prefixed_namespaces() if stale_prefix_pid(name) is not None]
    for netns in stale:
        remove_netns(netns)
    return stale


@contextlib.contextmanager
def network(roles: Sequence[str]) -> Iterator[Network]:
    """A built :class:`Network`, removed whatever happens."""
    remove_stale()
    net = Network(roles)
    try:
        net.build()
        yield net
    finally:
        net.remove()
