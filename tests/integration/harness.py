"""Real kpaxosd processes for tests: start, wait until ready, stop, and always clean up."""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

KPAXOSD = str(Path(sys.executable).with_name("kpaxosd"))
MNT_DETACH = 2


def free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def mounted(path: Path) -> bool:
    target = str(path)
    with open("/proc/mounts") as mounts:
        return any(line.split()[1] == target for line in mounts)


def detach_mount(path: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.umount2(str(path).encode(), MNT_DETACH)


def wait_until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


class Kpaxosd:
    """One kpaxosd process, its log in ``log_path``."""

    def __init__(self, args: Sequence[str], workdir: Path, name: str) -> None:
        self.name = name
        self.log_path = workdir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [KPAXOSD, "--verbosity", "debug", *args],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30) -> Kpaxosd:
        deadline = time.monotonic() + timeout
        while "kpaxosd ready" not in self.log:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.log}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} not ready after {timeout} s:\n{self.log}")
            time.sleep(0.02)
        return self

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 15) -> int:
        """Signal the daemon and wait for it to exit; returns its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} did not exit on {signum}:\n{self.log}") from None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


class Cluster:
    """Every process a test started, ended and cleaned up by :meth:`close`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.daemons: list[Kpaxosd] = []
        self.processes: list[subprocess.Popen[bytes]] = []
        self.mounts: list[Path] = []

    def start(self, name: str, *args: str, ready: bool = True) -> Kpaxosd:
        daemon = Kpaxosd(args, self.workdir, name)
        self.daemons.append(daemon)
        return daemon.wait_ready() if ready else daemon

    def start_acceptors_and_proposer(self, config: Path) -> None:
        """acceptor0..2 and proposer 0 of ``config`` (a loopback_config), a process each."""
        for aid in range(3):
            self.start(f"acceptor{aid}", "-c", str(config), "--acceptor", str(aid))
        self.start("proposer", "-c", str(config), "--proposer", "0")

    def devices(self, name: str) -> tuple[Path, Path, list[str]]:
        """Mount dir, link dir and the kpaxosd options placing both under the workdir."""
        mount_dir = self.workdir / f"{name}-mnt"
        link_dir = self.workdir / f"{name}-dev"
        link_dir.mkdir(exist_ok=True)
        self.mounts.append(mount_dir)
        return mount_dir, link_dir, ["--mount-dir", str(mount_dir), "--link-dir", str(link_dir)]

    def spawn(self, argv: Sequence[str | Path], **kwargs: object) -> subprocess.Popen[bytes]:
        proc: subprocess.Popen[bytes] = subprocess.Popen(argv, **kwargs)  # type: ignore[call-overload]
        self.processes.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.kill()
        for daemon in self.daemons:
            daemon.close()
        for proc in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        for mount_dir in self.mounts:
            if mounted(mount_dir):
                detach_mount(mount_dir)


@contextlib.contextmanager
def cluster(workdir: Path) -> Iterator[Cluster]:
    running = Cluster(workdir)
    try:
        yield running
    finally:
        running.close()


def loopback_config(path: Path, acceptors: int = 3, host: str = "127.0.0.1", *,
                    catch_up: bool = False) -> Path:
    """A paxos.conf with ``acceptors`` acceptors and one proposer on free ports (and
    ``learner-catch-up yes`` with ``catch_up``)."""
    lines = [f"acceptor {i} {host} {free_udp_port(host)}" for i in range(acceptors)]
    lines.append(f"proposer 0 {host} {free_udp_port(host)}")
    if catch_up:
        lines.append("learner-catch-up yes")
    path.write_text("\n".join(lines) + "\n")
    return path


def role_addresses(config: Path) -> dict[tuple[str, int], tuple[str, int]]:
    """``(role, id) -> (host, port)`` of every role line of a paxos.conf."""
    addresses = {}
    for words in (line.split("#")[0].split() for line in config.read_text().splitlines()):
        if len(words) == 4 and words[0] in ("acceptor", "proposer", "replica"):
            addresses[(words[0], int(words[1]))] = (words[2], int(words[3]))
    return addresses


def echo(word: str, client: Path, timeout: float = 30) -> None:
    """``echo word > client`` in a real shell, which must succeed within ``timeout``."""
    done = subprocess.run(["sh", "-c", f'echo {word} > "{client}"'], capture_output=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr


def read_lines(stream: object, count: int, timeout: float) -> list[bytes]:
    """``count`` lines from a pipe, failing (not hanging) after ``timeout``."""
    buffer = _read_while(stream, lambda buffer: buffer.count(b"\n") < count, timeout)
    got = buffer.count(b"\n")
    if got < count:
        raise AssertionError(f"got {got} of {count} lines in {timeout} s: {buffer[-300:]!r}")
    return buffer.split(b"\n")[:count]


def read_until(stream: object, needle: bytes, timeout: float) -> bytes:
    """Bytes from a pipe up to and including ``needle``, failing after ``timeout``."""
    buffer = _read_while(stream, lambda buffer: needle not in buffer, timeout)
    if needle not in buffer:
        raise AssertionError(f"no {needle!r} in {timeout} s: {buffer[-300:]!r}")
    return buffer[: buffer.index(needle) + len(needle)]


def _read_while(stream: object, wanting: Callable[[bytes], bool], timeout: float) -> bytes:
    import selectors

    fd = stream.fileno()  # type: ignore[attr-defined]
    os.set_blocking(fd, False)
    buffer = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while wanting(buffer):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if selector.select(remaining):
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                buffer += chunk
    return buffer


def free_tcp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        assert answer.status == 200
        text = answer.read().decode()
    samples = {}
    for line in text.splitlines():
        match = re.match(r"^([a-z_]+(?:\{[^}]*\})?) (\S+)$", line)
        if match:
            samples[match.group(1)] = float(match.group(2))
    return samples
