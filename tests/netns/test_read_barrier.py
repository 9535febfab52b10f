"""A read barrier across namespace hosts, under loss: read-your-writes, 1,000 of 1,000.

Two learner hosts, each a daemon with its own devices, on a cluster of three
acceptor hosts and a proposer host; the switch drops a fifth of all datagrams. Sixteen
writers at once, each a round at a time: ``echo`` a value into one learner host's
client device (a real shell; the receipt says where it was decided), then a read
barrier and a read through the *other* host's learner device, which must hold the
value at that position. The learner there is often behind when the write returns
(its copies of the acceptances were dropped): the rounds where it was are counted,
so the test shows the barrier waited, not that the learner happened to be ahead.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from clients.log import LogReader
from tests.integration.harness import Cluster
from tests.netns.network import PREFIX, network
from tests.netns.scenario import NetnsDaemon, detach_stale_mounts
from wire.device import StartAt

pytestmark = pytest.mark.root

ROLES = ("a0", "a1", "a2", "p0", "l0", "l1")
DROP_PERCENT = 20
WRITERS = 16
ROUNDS = 1000
#: Writes the value, then prints its receipt (the position it was decided at).
WRITE = 'exec 3<>"$1" && echo "$2" >&3 && read -r position <&3 && echo "$position"'


def test_a_write_acknowledged_on_one_host_is_read_on_another_after_a_barrier(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    if os.geteuid() != 0:
        pytest.fail("network namespaces need root: run the tests as root")
    detach_stale_mounts()
    with network(ROLES) as net:
        running = Cluster(tmp_path)
        try:
            config = tmp_path / "paxos.conf"
            config.write_text("\n".join([
                *(f"acceptor {i} {net[f'a{i}'].address} 8800" for i in range(3)),
                f"proposer 0 {net['p0'].address} 5550",
                "learner-catch-up yes", "proposer-timeout 0.2", ""]))
            net.drop_randomly(DROP_PERCENT)

            def start(role: str, *args: str) -> NetnsDaemon:
                daemon = NetnsDaemon(net[role], ["-c", str(config), *args], tmp_path, role)
                running.daemons.append(daemon)
                return daemon

            for aid in range(3):
                start(f"a{aid}", "--acceptor", str(aid))
            start("p0", "--proposer", "0")
            links = []
            for role in ("l0", "l1"):
                _, link_dir, device_args = running.devices(f"{PREFIX}{os.getpid()}-{role}")
                start(role, "--learner", "--learner-address", f"{net[role].address}:4000",
                      "--device-backend", "fuse", "--client-timeout", "300", *device_args)
                links.append(link_dir)
            for daemon in running.daemons:
                daemon.wait_ready(60)
            report = _rounds(links)
            counters = net.counters()
            for daemon in running.daemons:
                assert "Traceback" not in daemon.log, f"{daemon.name}:\n{daemon.log[-3000:]}"
        finally:
            running.close()
    assert 0.15 < counters.dropped / counters.seen < 0.25, counters
    with capsys.disabled():
        print(f"\n[netns barrier] {report}; switch dropped {counters.dropped} of "
              f"{counters.seen} datagrams")


def _rounds(links: list[Path]) -> str:
    """WRITERS threads of ROUNDS / WRITERS rounds each; what they found, in words."""
    failures: list[str] = []
    behind = [0] * WRITERS
    started = time.monotonic()

    def writer(index: int) -> None:
        client = links[index % 2] / "kpaxos-client"
        with LogReader.open(str(links[1 - index % 2] / "kpaxos-learner"),
                            start=StartAt.NOW) as log:
            for round_ in range(ROUNDS // WRITERS):
                value = f"w{index}-r{round_}"
                done = subprocess.run(["sh", "-c", WRITE, "sh", str(client), value],
                                      capture_output=True, text=True, timeout=300, check=False)
                if done.returncode != 0:
                    failures.append(f"{value}: the write failed: {done.stderr.strip()}")
                    return
                position = int(done.stdout)
                if log.bounds()[1] <= position:
                    behind[index] += 1  # the other host has not delivered it yet
                seen = {entry.position: entry.value for entry in log.until_now()}
                if seen.get(position) != f"{value}\n".encode():
                    failures.append(f"{value}, decided at {position}, was not read after "
                                    f"the barrier (read {len(seen)} values, "
                                    f"{seen.get(position)!r} there)")
                    return

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures[:5]
    # Without this the test would not show the barrier waited for anything.
    assert sum(behind) > 0, "the other learner was never behind: the barrier waited for nothing"
    return (f"{ROUNDS} of {ROUNDS} rounds read their write on the other host in "
            f"{time.monotonic() - started:.0f} s; the other learner was behind when the "
            f"write returned in {sum(behind)} of them")
