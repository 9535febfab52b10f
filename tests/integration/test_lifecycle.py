"""How a real kpaxosd ends and starts again: stop signals, crashes, readers at shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.harness import (
    KPAXOSD,
    Cluster,
    cluster,
    echo,
    mounted,
    read_lines,
    wait_until,
)

pytestmark = pytest.mark.root

#: The FUSE door: the mount a crash leaves behind is what these tests are about.
FUSE = ("--device-backend", "fuse")


def links(link_dir: Path) -> tuple[Path, Path]:
    return link_dir / "kpaxos-learner", link_dir / "kpaxos-client"


def assert_a_write_is_read(running: Cluster, link_dir: Path, word: str) -> None:
    learner, client = links(link_dir)
    cat = running.spawn(["cat", str(learner)], stdout=subprocess.PIPE)
    echo(word, client)
    assert word.encode() in read_lines(cat.stdout, 1, timeout=30)
    cat.kill()


def test_a_daemon_killed_by_sigkill_starts_again_on_the_same_paths(tmp_path: Path) -> None:
    with cluster(tmp_path) as running:
        mount_dir, link_dir, device_args = running.devices("node")
        first = running.start("first", *FUSE, *device_args)
        learner, client = links(link_dir)
        reader = running.spawn(["cat", str(learner)], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL)
        echo("before", client)
        assert read_lines(reader.stdout, 1, timeout=30) == [b"before"]
        # A writer with the client device open, writing while the daemon dies.
        # The loop ends only when a write fails, and a while loop's own status is its body's.
        writer = running.spawn(["sh", "-c",
                                f"while echo tick; do sleep 0.05; done > {client}; exit 3"],
                               stderr=subprocess.DEVNULL)
        time.sleep(0.3)

        first.proc.kill()
        first.proc.wait(10)
        # The dead connection ends both; the mount stays, its root's attributes cached.
        assert reader.wait(10) != 0 and writer.wait(10) != 0
        assert mounted(mount_dir) and os.stat(mount_dir)

        second = running.start("second", *FUSE, *device_args)
        assert "detaching the stale mount" in second.log
        assert_a_write_is_read(running, link_dir, "after")
        assert second.stop(signal.SIGTERM) == 0
        assert not mounted(mount_dir)
        assert not learner.is_symlink() and not client.is_symlink()


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGUSR1], ids=lambda s: s.name)
def test_sighup_and_sigusr1_stop_the_daemon_cleanly(tmp_path: Path, signum: int) -> None:
    with cluster(tmp_path) as running:
        mount_dir, link_dir, device_args = running.devices("node")
        daemon = running.start("kpaxosd", *FUSE, *device_args)
        learner, client = links(link_dir)
        reader = running.spawn(["cat", str(learner)], stdout=subprocess.PIPE)
        echo("hello", client)
        assert read_lines(reader.stdout, 1, timeout=30) == [b"hello"]

        assert daemon.stop(signum) == 0
        assert reader.wait(10) == 0  # end-of-file, not an error
        assert f"stopping on {signal.Signals(signum).name}" in daemon.log
        assert not mounted(mount_dir)
        assert not learner.is_symlink() and not client.is_symlink()


def test_help_names_the_stop_signals() -> None:
    done = subprocess.run([KPAXOSD, "--help"], capture_output=True, timeout=30, text=True)
    assert done.returncode == 0
    assert "SIGINT, SIGTERM, SIGHUP and SIGUSR1 each stop the daemon cleanly" in done.stdout


@pytest.mark.parametrize("burst", [
    [signal.SIGTERM] * 3,
    [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1],
], ids=["three-SIGTERMs", "every-stop-signal"])
def test_a_burst_of_stop_signals_still_exits_with_status_0(
        tmp_path: Path, burst: list[signal.Signals]) -> None:
    with cluster(tmp_path) as running:
        mount_dir, _, device_args = running.devices("node")
        daemon = running.start("kpaxosd", *FUSE, *device_args)
        for signum in burst:
            os.kill(daemon.proc.pid, signum)
            # A signal sent while the same one is still pending merges with it: a
            # moment apart, each is a delivery of its own.
            time.sleep(0.005)
        assert daemon.stop() == 0, daemon.log
        assert not mounted(mount_dir)


SLOW_READER = """
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
with open(sys.argv[2], "wb", buffering=0) as out:
    try:
        while chunk := os.read(fd, 16):
            out.write(chunk)
            time.sleep(0.01)
    except OSError as exc:
        print(f"read failed: {exc}", file=sys.stderr)
        sys.exit(1)
"""


def test_a_reader_far_behind_at_shutdown_reads_every_value_then_eof(tmp_path: Path) -> None:
    values = [f"value-{i:04d}" for i in range(400)]
    expected = "".join(f"{value}\n" for value in values).encode()
    received = tmp_path / "received"
    with cluster(tmp_path) as running:
        mount_dir, link_dir, device_args = running.devices("node")
        daemon = running.start("kpaxosd", *FUSE, *device_args)
        learner, client = links(link_dir)
        reader = running.spawn([sys.executable, "-c", SLOW_READER, str(learner), str(received)],
                               stderr=subprocess.PIPE)
        wait_until(received.exists, 10, "the reader to open the learner device")
        words = " ".join(values)
        writer = running.spawn(["sh", "-c", f"for v in {words}; do echo $v; done > {client}"])
        assert writer.wait(60) == 0
        # Some 1,600 bytes a second: the reader is still well behind the log (the
        # daemon used to give it half a second, then fail its reads with ENOTCONN).
        assert len(received.read_bytes()) < len(expected) - 1000

        assert daemon.stop(signal.SIGTERM) == 0
        assert reader.wait(30) == 0, reader.stderr.read()  # type: ignore[union-attr]
        assert received.read_bytes() == expected
        assert not mounted(mount_dir)
