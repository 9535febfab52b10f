"""A full disk under a running, durable cluster loses nothing that anyone was told.

The acceptors' stores sit on a small tmpfs of their own. Writers propose through the
client device and a `cat` reads the learner device while the disk fills up, stays
full for a while and gets its space back; then the daemon restarts on the same
stores and a new reader replays the log from instance 1 (learner-catch-up).
Every value the first reader saw must be there at the same place, every write that
was acknowledged must be there, and no writer may have been told EIO.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tests.integration.harness import Cluster, cluster, loopback_config, wait_until

WRITER = """
import errno, os, sys, time
device, name, stop = sys.argv[1], sys.argv[2], sys.argv[3]
fd = os.open(device, os.O_WRONLY)
n = 0
while not os.path.exists(stop):
    n += 1
    value = f"{name}-{n}-".encode().ljust(1500, b"x") + b"\\n"
    try:
        os.write(fd, value)
        print("ok", value[:-1].decode(), flush=True)
    except OSError as exc:
        print(errno.errorcode[exc.errno], value[:-1].decode(), flush=True)
        time.sleep(0.1)
"""

WRITERS = 3


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "kpaxos-test", str(path)],
                   check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of ``disk`` (until ENOSPC)."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        chunk = bytes(64 << 10)
        with contextlib.suppress(OSError):
            while True:
                f.write(chunk)
        with contextlib.suppress(OSError):  # the last partial page
            while True:
                f.write(b"x")
    return filler


def start_node(running: Cluster, name: str, config: Path, storage: Path) -> tuple[Path, object]:
    _, link_dir, device_args = running.devices(name)
    node = running.start(name, "-c", str(config), "--storage", str(storage),
                         "--client-timeout", "2", *device_args)
    return link_dir, node


def lines_of(path: Path) -> list[bytes]:
    data = path.read_bytes()
    return data.split(b"\n")[: data.count(b"\n")]


def test_a_full_disk_loses_nothing_decided(tmp_path: Path) -> None:
    config = loopback_config(tmp_path / "paxos.conf", catch_up=True)
    with small_disk(tmp_path / "disk", "8m") as disk, cluster(tmp_path) as running:
        storage = disk / "store"
        link_dir, node = start_node(running, "node", config, storage)
        seen_before = tmp_path / "seen-before"
        with open(seen_before, "wb") as out:
            running.spawn(["cat", str(link_dir / "kpaxos-learner")], stdout=out)
        stop = tmp_path / "stop"
        # Each writer tells its outcomes to a file: some 1,500 bytes a line, they
        # would fill a pipe nobody reads before the end, and block the writer.
        outcomes = [tmp_path / f"w{i}.outcomes" for i in range(WRITERS)]
        writers = []
        for i, told_file in enumerate(outcomes):
            with open(told_file, "wb") as out:
                writers.append(running.spawn(
                    [sys.executable, "-c", WRITER, str(link_dir / "kpaxos-client"),
                     f"w{i}", str(stop)], stdout=out))
        wait_until(lambda: len(lines_of(seen_before)) >= 30, 60, "values before the disk fills")
        filler = fill(disk)
        wait_until(lambda: "votes again once a write succeeds" in node.log, 60,  # type: ignore[attr-defined]
                   "an acceptor that cannot write its store")
        time.sleep(3)  # full for a while: writers time out, proposers retry
        filler.unlink()
        wait_until(lambda: "takes writes again" in node.log, 60,  # type: ignore[attr-defined]
                   "the acceptors writing again")
        decided_again = len(lines_of(seen_before))
        wait_until(lambda: len(lines_of(seen_before)) >= decided_again + 30, 60,
                   "values decided after the space came back")
        stop.touch()
        told: dict[str, list[str]] = {}
        for writer, told_file in zip(writers, outcomes, strict=True):
            writer.wait(timeout=60)
            for line in told_file.read_text().splitlines():
                outcome, value = line.split(" ", 1)
                told.setdefault(outcome, []).append(value)
        assert node.stop() == 0  # type: ignore[attr-defined]
        before = lines_of(seen_before)

        # The same stores, a new daemon, a new reader from instance 1.
        link_dir, node = start_node(running, "node-again", config, storage)
        seen_after = tmp_path / "seen-after"
        acknowledged = {value.encode() for value in told.get("ok", [])}
        with open(seen_after, "wb") as out:
            running.spawn(["cat", str(link_dir / "kpaxos-learner")], stdout=out)

        def everything_back() -> bool:
            after = lines_of(seen_after)
            return len(after) >= len(before) and acknowledged <= set(after)

        wait_until(everything_back, 120, "the log replayed after the restart")
    after = lines_of(seen_after)
    assert after[: len(before)] == before, "a value a reader saw moved or vanished"
    assert acknowledged <= set(after), "an acknowledged write is not in the log"
    assert "EIO" not in told, f"writers told EIO: {told['EIO'][:3]}"
    assert told.get("ETIMEDOUT"), "the disk never stopped a write: the test tested nothing"
    assert len(after) == len(set(after)), "a value was delivered twice"
