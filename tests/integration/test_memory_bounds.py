"""A running daemon fed forged votes and ACCEPTs with big values keeps its memory.

An open cluster cannot tell a forged ACCEPT or ACCEPTED from a real one. Before the
byte bounds, 3,000 of them with 60 KB values, each for an instance of its own, grew
the daemon by some 170 MB (the acceptors kept every record, the learner every vote);
now the acceptors refuse new instances at acceptor_max_held_bytes and the learner
lets go of votes beyond learner_max_held_bytes, and a value written afterwards is
still decided and read.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from tests.integration.harness import (
    cluster,
    free_tcp_port,
    free_udp_port,
    loopback_config,
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
#: Three acceptors and a learner at their bounds take 28 MiB; the rest is the
#: allocator's slack. Unbounded, the forged values alone take over 170 MiB.
MAX_GROWTH_KIB = 64 * 1024


def forged(count: int) -> list[tuple[int, bytes]]:
    """(target, datagram): ACCEPTs to the acceptors (targets 0-2), each for an instance
    of its own, and ACCEPTEDs from every acceptor id to the learner (target 3)."""
    datagrams = []
    for i in range(count):
        value = i.to_bytes(4, "big") * (VALUE_SIZE // 4)
        if i % 2:
            datagrams.append((i % 3, encode(Accept(1000 + i, 77, value))))
        else:
            datagrams.append((3, encode(Accepted(i % 3, 100_000 + i, 77, 77, value))))
    return datagrams


def test_forged_big_values_do_not_grow_memory_and_values_still_decide(tmp_path: Path) -> None:
    config = loopback_config(tmp_path / "paxos.conf")
    acceptors = [address for (role, _), address in sorted(role_addresses(config).items())
                 if role == "acceptor"]
    learner = ("127.0.0.1", free_udp_port())
    metrics = free_tcp_port()
    datagrams = forged(FORGED)
    with cluster(tmp_path) as running:
        _, link_dir, device_args = running.devices("node")
        node = running.start(
            "node", "-c", str(config), "--verbosity", "info", "--metrics", f"127.0.0.1:{metrics}",
            "--learner-address", f"{learner[0]}:{learner[1]}",
            "--learner-max-held-bytes", str(LEARNER_BOUND),
            "--acceptor-max-held-bytes", str(ACCEPTOR_BOUND), *device_args)
        client = link_dir / "kpaxos-client"
        cat = running.spawn(["cat", str(link_dir / "kpaxos-learner")], stdout=subprocess.PIPE)
        subprocess.run(["bash", "-c", f"echo before > {client}"], check=True, timeout=60)
        assert read_lines(cat.stdout, 1, timeout=30) == [b"before"]
        before = rss_kib(node.proc.pid)

        targets = [*acceptors, learner]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for i, (target, datagram) in enumerate(datagrams):
                sock.sendto(datagram, targets[target])
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
    assert len(held) == 3 and max(held) <= ACCEPTOR_BOUND
    assert samples['kpaxos_learner_shed_votes_total{role="learner"}'] > 0
    assert samples['kpaxos_learner_held_bytes{role="learner"}'] <= LEARNER_BOUND
    assert "at its bound" in node.log
    assert "Traceback" not in node.log
