"""Read barriers and who is there, through real daemons and their FUSE devices.

Two learners, each its own daemon with its own devices, on one cluster of separate
acceptor and proposer processes: a write acknowledged through one learner's client
device is read through the other's learner device after a barrier (the Python
module, ``kpaxos-cat --until-now``). With two acceptors killed, writes and barriers
fail with ENOTCONN within the quorum timeout, not the client timeout, the learner
device reports POLLPRI, and all comes back when the acceptors do.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clients.log import LogReader, NoQuorum
from tests.integration.harness import Cluster, cluster, echo, loopback_config
from wire.device import StartAt

pytestmark = pytest.mark.root

KPAXOS_CAT = [sys.executable, "-m", "clients.cat"]


def learners(running: Cluster, config: Path, *extra: str) -> tuple[Path, Path]:
    """Two learner daemons with devices; their link dirs."""
    links = []
    for name in ("here", "there"):
        _, link_dir, device_args = running.devices(name)
        running.start(name, "-c", str(config), "--learner", "--device-backend", "fuse",
                      *device_args, *extra)
        links.append(link_dir)
    return links[0], links[1]


def test_a_write_acknowledged_here_is_read_there_after_a_barrier(tmp_path: Path) -> None:
    config = loopback_config(tmp_path / "paxos.conf", catch_up=True)
    with cluster(tmp_path) as running:
        running.start_acceptors_and_proposer(config)
        here, there = learners(running, config)
        with (LogReader.open(str(there / "kpaxos-learner"), start=StartAt.NOW) as log,
              open(here / "kpaxos-client", "r+b", buffering=0) as client):
            for round_ in range(300):
                value = b"round-%d\n" % round_
                assert client.write(value) == len(value)
                receipt = int(client.readline())
                seen = {entry.position: entry.value for entry in log.until_now()}
                # The same value at the same position: the write's receipt.
                assert seen.get(receipt) == value, (round_, receipt, seen)
        # The shell's way: kpaxos-cat --until-now exits 0 after the newest value.
        echo("last", here / "kpaxos-client")
        done = subprocess.run([*KPAXOS_CAT, "--device", str(there / "kpaxos-learner"),
                               "--until-now"], capture_output=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[:2] == [b"round-0", b"round-1"]
        assert lines[-1] == b"last" and len(lines) == 301
        done = subprocess.run([*KPAXOS_CAT, "--device", str(there / "kpaxos-learner"),
                               "--until-now", "--from-now", "--positions"],
                              capture_output=True, timeout=60, check=False)
        assert (done.returncode, done.stdout) == (0, b"")


def test_without_a_quorum_writes_and_barriers_fail_fast_and_poll_says_so(
    tmp_path: Path,
) -> None:
    config = loopback_config(tmp_path / "paxos.conf", catch_up=True)
    storage = tmp_path / "storage"
    with cluster(tmp_path) as running:
        acceptors = [running.start(f"acceptor{aid}", "-c", str(config), "--acceptor",
                                   str(aid), "--storage", str(storage)) for aid in range(3)]
        running.start("proposer", "-c", str(config), "--proposer", "0")
        # The client timeout is a minute: a fast failure is the quorum timeout's.
        here, _ = learners(running, config, "--quorum-timeout", "1",
                           "--client-timeout", "60")
        echo("before", here / "kpaxos-client")
        learner = LogReader.open(str(here / "kpaxos-learner"))
        assert learner.quorum_reachable()
        poller = select.poll()
        poller.register(learner.fileno(), select.POLLPRI)
        assert poller.poll(0) == []
        for acceptor in acceptors[1:]:
            acceptor.proc.send_signal(signal.SIGKILL)
            acceptor.proc.wait(10)
        started = time.monotonic()
        # POLLPRI once the learner knows: it waited for POLLPRI alone, with data to read.
        assert poller.poll(20_000) == [(learner.fileno(), select.POLLPRI)]
        noticed = time.monotonic() - started
        assert not learner.quorum_reachable()
        assert poller.poll(0) == []  # told: no POLLPRI until it changes again
        fd = os.open(here / "kpaxos-client", os.O_WRONLY)
        try:
            started = time.monotonic()
            with pytest.raises(OSError) as refused:
                os.write(fd, b"while nobody answers\n")
            assert refused.value.errno == errno.ENOTCONN
            assert time.monotonic() - started < 30
        finally:
            os.close(fd)
        with pytest.raises(NoQuorum):
            learner.barrier()
        done = subprocess.run([*KPAXOS_CAT, "--device", str(here / "kpaxos-learner"),
                               "--until-now"], capture_output=True, timeout=60, check=False)
        assert done.returncode == 1 and b"no quorum" in done.stderr, done.stderr
        log = running.daemons[-2].log
        assert "hears from no quorum of acceptors" in log and "Traceback" not in log
        # Back: the acceptors restart on their storage.
        for aid in (1, 2):
            running.start(f"acceptor{aid}-again", "-c", str(config), "--acceptor", str(aid),
                          "--storage", str(storage))
        assert poller.poll(20_000) == [(learner.fileno(), select.POLLPRI)]
        assert learner.quorum_reachable()
        echo("after", here / "kpaxos-client")
        assert [entry.value for entry in learner.until_now()] == [b"before\n", b"after\n"]
        learner.close()
        print(f"\n[quorum] the learner said no quorum {noticed:.1f} s after the kills "
              f"(--quorum-timeout 1)")
