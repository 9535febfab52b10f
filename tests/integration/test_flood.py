"""A running daemon flooded with hostile datagrams keeps deciding, and keeps its memory.

Without a key a cluster trusts well-formed datagrams, as the original did: a stranger's
PREPARE with the highest ballot can block an instance, a stranger's TRIM can make the
acceptors forget. So the flood that must lose nothing is (a) malformed datagrams against
an open cluster and (b) anything at all against an authenticated one; (c) checks that
well-formed junk against an open cluster neither crashes the daemon nor grows its memory.
"""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import read_vectors
from tests.integration.harness import (
    cluster,
    free_tcp_port,
    loopback_config,
    read_lines,
    role_addresses,
    scrape,
)
from wire import WireError, decode_untrusted

FLOOD = 50_000
VALUES = 200

WRITER = """
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
for i in range(int(sys.argv[2])):
    os.write(fd, b"flooded-%d\\n" % i)
"""


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def hostile(rng: random.Random, vectors: list[bytes]) -> bytes:
    kind = rng.randrange(3)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 80))
    data = bytearray(rng.choice(vectors))
    for _ in range(rng.randrange(1, 4)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    if kind == 2:
        del data[rng.randrange(len(data)):]
    return bytes(data)


def flood(
    tmp_path: Path, datagrams: Iterator[bytes], *extra: str
) -> tuple[list[bytes], int, dict[str, float]]:
    """Propose VALUES values while FLOOD datagrams hit every role; returns the lines a
    reader saw, how much the daemon's resident memory grew (KiB) and its metrics."""
    port = free_tcp_port()
    config = loopback_config(tmp_path / "paxos.conf")
    targets = list(role_addresses(config).values())
    with cluster(tmp_path) as running:
        _, link_dir, device_args = running.devices("node")
        node = running.start("node", "-c", str(config), "--verbosity", "info",
                             "--metrics", f"127.0.0.1:{port}", *extra, *device_args)
        cat = running.spawn(["cat", str(link_dir / "kpaxos-learner")], stdout=subprocess.PIPE)
        before = rss_kib(node.proc.pid)
        writer = running.spawn([sys.executable, "-c", WRITER,
                                str(link_dir / "kpaxos-client"), str(VALUES)])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for i, datagram in enumerate(datagrams):
                sock.sendto(datagram, targets[i % len(targets)])
                if i % 1000 == 999:
                    time.sleep(0.002)  # a breath, so most of the flood is read, not lost
        assert writer.wait(300) == 0
        lines = read_lines(cat.stdout, VALUES, timeout=60)
        grown = rss_kib(node.proc.pid) - before
        assert node.proc.poll() is None
        samples = scrape(port)
    return lines, grown, samples


def dropped(samples: dict[str, float], reason: str) -> float:
    return sum(value for name, value in samples.items()
               if name.startswith("kpaxos_datagrams_dropped_total") and f'"{reason}"' in name)


def malformed(rng: random.Random, vectors: list[bytes]) -> Iterator[bytes]:
    sent = 0
    while sent < FLOOD:
        data = hostile(rng, vectors)
        try:
            decode_untrusted(data)
        except WireError:
            sent += 1
            yield data


def mutated(rng: random.Random, vectors: list[bytes]) -> Iterator[bytes]:
    for _ in range(FLOOD):
        yield hostile(rng, vectors)


EXPECTED = sorted(b"flooded-%d" % i for i in range(VALUES))
#: Junk must not pile up: the allocator gets some slack, the flood's size does not fit.
MAX_GROWTH_KIB = 64 * 1024


def test_malformed_datagrams_lose_no_value(tmp_path: Path) -> None:
    rng, vectors = random.Random(2026), list(read_vectors("kernel_paxos_wire.txt").values())
    lines, grown, samples = flood(tmp_path, malformed(rng, vectors))
    assert sorted(lines) == EXPECTED
    assert grown < MAX_GROWTH_KIB
    # The flood did arrive (the kernel may drop some when the daemon falls behind).
    assert dropped(samples, "malformed") > FLOOD * 0.1


def test_an_authenticated_cluster_loses_no_value_to_any_flood(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_bytes(b"flood-test-key-0123456789abcdef")
    key_file.chmod(0o600)
    rng, vectors = random.Random(2027), list(read_vectors("kernel_paxos_wire.txt").values())
    lines, grown, samples = flood(tmp_path, mutated(rng, vectors), "--auth-key-file",
                                  str(key_file))
    assert sorted(lines) == EXPECTED
    assert grown < MAX_GROWTH_KIB
    assert dropped(samples, "unauthenticated") > FLOOD * 0.1


def test_well_formed_junk_neither_crashes_nor_bloats_an_open_cluster(tmp_path: Path) -> None:
    rng, vectors = random.Random(2028), list(read_vectors("kernel_paxos_wire.txt").values())
    config = loopback_config(tmp_path / "paxos.conf")
    targets = list(role_addresses(config).values())
    with cluster(tmp_path) as running:
        node = running.start("node", "-c", str(config), "--no-devices", "--verbosity", "info")
        before = rss_kib(node.proc.pid)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for i, datagram in enumerate(mutated(rng, vectors)):
                sock.sendto(datagram, targets[i % len(targets)])
        time.sleep(1)
        assert node.proc.poll() is None, node.log
        assert rss_kib(node.proc.pid) - before < MAX_GROWTH_KIB
        assert "Traceback" not in node.log
