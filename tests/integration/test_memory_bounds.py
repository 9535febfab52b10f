"""A running daemon fed forged votes and ACCEPTs with big values keeps its memory.

A stranger's ACCEPT or ACCEPTED is refused (tests/integration/test_strangers.py), but
a node of the configuration can still send them: here the test's sockets are
proposer 1 and acceptor 2 of the configuration, which the daemon does not host.
Before the byte bounds, 3,000 of them with 60 KB values, each for an instance of its
own, grew the daemon by some 170 MB (the acceptors kept every record, the learner
every vote); now the acceptors refuse new instances at acceptor_max_held_bytes and
the learner lets go of votes beyond learner_max_held_bytes, and a value written
afterwards is still decided (by acceptors 0 and 1) and read.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from pathlib import Path

from tests.integration.harness import (
    cluster,
    free_tcp_port,
    free_udp_port,
    read_lines,
    role_addresses,
    scrape,
)
from tests.integration.test_flood import rss_kib
from wire import Accept, Accepted, encode

FORGED = 3000
VALUE_SIZE = 60_000
LEARNER_BOUND = 4 * 1024 * 1024
ACCEPTOR_BOUND = 8 * 1024 * 1024
#: Two acceptors and a learner at their bounds take 20 MiB; the rest is the
#: allocator's slack. Unbounded, the forged values alone take over 170 MiB.
MAX_GROWTH_KIB = 64 * 1024


#: Proposer 1's ballot in round 7: the forging proposer's.
FORGED_BALLOT = 71


def forged(count: int) -> list[tuple[int, bytes]]:
    """(target, datagram): ACCEPTs from proposer 1 to acceptors 0 and 1 (targets 0-1),
    each for an instance of its own, and ACCEPTEDs from acceptor 2 to the learner
    (target 2)."""
    datagrams = []
    for i in range(count):
        value = i.to_bytes(4, "big") * (VALUE_SIZE // 4)
        if i % 2:
            datagrams.append((i % 4 // 2, encode(Accept(1000 + i, FORGED_BALLOT, value))))
        else:
            datagrams.append(
                (2, encode(Accepted(2, 100_000 + i, FORGED_BALLOT, FORGED_BALLOT, value))))
    return datagrams


def forging_config(path: Path, proposer: tuple[str, int], acceptor: tuple[str, int]) -> Path:
    lines = [f"acceptor {i} 127.0.0.1 {free_udp_port()}" for i in range(2)]
    lines.append(f"acceptor 2 {acceptor[0]} {acceptor[1]}")
    lines.append(f"proposer 0 127.0.0.1 {free_udp_port()}")
    lines.append(f"proposer 1 {proposer[0]} {proposer[1]}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_forged_big_values_do_not_grow_memory_and_values_still_decide(tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        as_proposer, as_acceptor = (
            stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            for _ in range(2))
        for sock in (as_proposer, as_acceptor):
            sock.bind(("127.0.0.1", 0))
        config = forging_config(tmp_path / "paxos.conf", as_proposer.getsockname(),
                                as_acceptor.getsockname())
        run_forging(tmp_path, config, as_proposer, as_acceptor)


def run_forging(tmp_path: Path, config: Path, as_proposer: socket.socket,
                as_acceptor: socket.socket) -> None:
    acceptors = [address for (role, aid), address in sorted(role_addresses(config).items())
                 if role == "acceptor" and aid < 2]
    learner = ("127.0.0.1", free_udp_port())
    metrics = free_tcp_port()
    datagrams = forged(FORGED)
    with cluster(tmp_path) as running:
        _, link_dir, device_args = running.devices("node")
        node = running.start(
            "node", "-c", str(config), "--acceptor", "0", "--acceptor", "1", "--proposer", "0",
            "--learner", "--verbosity", "info", "--metrics", f"127.0.0.1:{metrics}",
            "--learner-address", f"{learner[0]}:{learner[1]}",
            "--learner-max-held-bytes", str(LEARNER_BOUND),
            "--acceptor-max-held-bytes", str(ACCEPTOR_BOUND), *device_args)
        client = link_dir / "kpaxos-client"
        cat = running.spawn(["cat", str(link_dir / "kpaxos-learner")], stdout=subprocess.PIPE)
        subprocess.run(["bash", "-c", f"echo before > {client}"], check=True, timeout=60)
        assert read_lines(cat.stdout, 1, timeout=30) == [b"before"]
        before = rss_kib(node.proc.pid)

        targets = [*acceptors, learner]
        for i, (target, datagram) in enumerate(datagrams):
            (as_acceptor if target == 2 else as_proposer).sendto(datagram, targets[target])
            if i % 20 == 19:
                time.sleep(0.005)  # paced, so that the daemon reads most of them
        time.sleep(1)
        grown = rss_kib(node.proc.pid) - before
        samples = scrape(metrics)

        subprocess.run(["bash", "-c", f"echo after > {client}"], check=True, timeout=60)
        assert read_lines(cat.stdout, 1, timeout=30) == [b"after"]
        assert node.proc.poll() is None

    if os.environ.get("KPAXOS_REPORT"):
        print(f"\nRSS grew by {grown} KiB after {FORGED} forged datagrams")
    assert grown < MAX_GROWTH_KIB
    refused = sum(value for name, value in samples.items()
                  if name.startswith("kpaxos_acceptor_refused_full_total"))
    held = [value for name, value in samples.items()
            if name.startswith("kpaxos_acceptor_held_bytes")]
    assert refused > 0
    assert len(held) == 2 and max(held) <= ACCEPTOR_BOUND
    assert samples['kpaxos_learner_shed_votes_total{role="learner"}'] > 0
    assert samples['kpaxos_learner_held_bytes{role="learner"}'] <= LEARNER_BOUND
    assert "at its bound" in node.log
    assert "Traceback" not in node.log
