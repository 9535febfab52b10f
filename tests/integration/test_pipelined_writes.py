"""Pipelined writes to the client device: many values in flight through one open file,
their outcomes in the receipts, on real daemons."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.integration.harness import Cluster, Kpaxosd, cluster, loopback_config, wait_until

BIN = Path(sys.executable).parent


def decided_log(running: Cluster, daemon: Kpaxosd, learner: Path, values: int,
                ) -> list[tuple[int, bytes]]:
    """(position, value) of every value ``daemon``'s learner retains, once it has at
    least ``values`` of them (each a line: the values written here end in a newline)."""
    out = running.workdir / f"{daemon.name}.cat"
    with open(out, "wb") as sink:
        reader = running.spawn([BIN / "kpaxos-cat", "--positions", "--device", learner],
                               stdout=sink)
    wait_until(lambda: out.read_bytes().count(b"\n") >= values, 120, "the values decided")
    assert daemon.stop() == 0  # every reader gets the rest, then EOF
    assert reader.wait(60) == 0
    decided = []
    for line in out.read_bytes().splitlines():
        position, value = line.split(b"\t", 1)
        decided.append((int(position), value))
    return decided


@pytest.mark.parametrize("per_write", [1, 50])
def test_each_value_in_flight_gets_its_receipt_and_is_decided_once_across_a_dead_proposer(
    tmp_path: Path, per_write: int,
) -> None:
    count = 3000
    config = loopback_config(tmp_path / "paxos.conf")
    with cluster(tmp_path) as running:
        running.start_acceptors_and_proposer(config)
        _, link_dir, device_args = running.devices("learner")
        learner = running.start("learner", "-c", str(config), "--learner", *device_args)
        record = tmp_path / "receipts"
        writer = running.spawn(
            [sys.executable, "-m", "clients.device_pipeline", link_dir / "kpaxos-client",
             "--window", "300", "--per-write", str(per_write), "--count", str(count),
             "--record", record],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_until(lambda: record.exists() and record.stat().st_size > 0, 60,
                   "the first receipts")
        # kill -9 of the proposer with values in flight: they are resent to the one
        # started in its place, and decided once.
        proposer = next(d for d in running.daemons if d.name == "proposer")
        proposer.proc.kill()
        proposer.proc.wait()
        time.sleep(1.5)
        # Values were still in flight, waiting for a proposer.
        assert record.read_bytes().count(b"\n") < count
        running.start("proposer-again", "-c", str(config), "--proposer", "0")
        out, err = writer.communicate(timeout=180)
        assert writer.returncode == 0, err
        result = json.loads(out.splitlines()[-1])
        assert (result["values"], result["failed"]) == (count, 0)
        receipts = {}
        for line in record.read_bytes().splitlines():
            position, value = line.split(b"\t", 1)
            receipts[value] = int(position)
        assert len(receipts) == count
        decided = decided_log(running, learner, link_dir / "kpaxos-learner", count)
    assert sorted(value for _, value in decided) == sorted(receipts)  # each once
    assert {value: position for position, value in decided} == receipts


PIPELINED_FAILURES = """
    import os, select, sys
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_NONBLOCK)
    for value in (b"one", b"two", b"three"):
        assert os.write(fd, value) == len(value)  # queued: answered at once
    print("queued", flush=True)
    got = b""
    while got.count(b"\\n") < 3:
        select.select([fd], [], [], 60)
        got += os.read(fd, 100)
    print(got.decode().split(), flush=True)
"""


def test_timeouts_reach_the_receipts_of_pipelined_writes(tmp_path: Path) -> None:
    config = loopback_config(tmp_path / "paxos.conf")  # nobody serves its roles
    with cluster(tmp_path) as running:
        _, link_dir, device_args = running.devices("learner")
        running.start("learner", "-c", str(config), "--learner", "--client-timeout", "1",
                      *device_args)
        writer = running.spawn(
            [sys.executable, "-c", textwrap.dedent(PIPELINED_FAILURES),
             link_dir / "kpaxos-client"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    assert out.decode().splitlines() == ["queued", str([f"-{errno.ETIMEDOUT}"] * 3)]


def test_a_stopping_daemon_reports_eio_in_the_receipts_of_pipelined_writes(
    tmp_path: Path,
) -> None:
    config = loopback_config(tmp_path / "paxos.conf")  # nobody serves its roles
    with cluster(tmp_path) as running:
        _, link_dir, device_args = running.devices("learner")
        learner = running.start("learner", "-c", str(config), "--learner", *device_args)
        writer = running.spawn(
            [sys.executable, "-c", textwrap.dedent(PIPELINED_FAILURES),
             link_dir / "kpaxos-client"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert writer.stdout is not None
        assert writer.stdout.readline() == b"queued\n"
        assert learner.stop() == 0
        out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    assert out.decode().splitlines() == [str([f"-{errno.EIO}"] * 3)]
