"""``kpaxos-bench``: decided values per second, latency, CPU and memory of a cluster.

Starts a cluster on loopback (``single``: every role in one daemon; ``processes``: three
acceptor processes, a proposer and a learner, as the original deployed them), drives it
for ``--duration`` seconds — with the kpaxos-client engine, or through the client device
(``--writers``: N blocking writers; ``--pipelined``: one program keeping -o values in
flight) — and reports. In the same run it measures the machine's raw loopback rate of
64-byte datagrams between two plain Python sockets (``udp_floor_dgrams_per_s``) and the
p50 round trip of one such datagram between two Python processes (``udp_rtt_floor_us``,
with ``p50_over_rtt_floor``), so numbers from noisy machines compare as ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import multiprocessing
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kpaxosd.arguments import (
    OneLineParser,
    non_negative_int,
    non_negative_seconds,
    positive_int,
    positive_seconds,
    value_size,
)
from wire.original import CLIENT_VALUE_HEADER_SIZE

BIN = Path(sys.executable).parent
TOTAL = re.compile(
    r"^total: (\d+) values in ([\d.]+) s, (\d+) resent; (\d+) value/sec, [\d.]+ Mbps, "
    r"latency min (\d+) us max (\d+) us avg (\d+) us p50 (\d+) us p99 (\d+) us$",
    re.MULTILINE,
)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _receive_count(port: int, seconds: float, result: multiprocessing.Queue[int]) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", port))
    sock.settimeout(10)  # the sender may take long to start (a VM under emulation)
    count = 0
    try:
        sock.recv(64)  # the first datagram starts the clock
    except TimeoutError:
        result.put(0)
        return
    deadline = time.monotonic() + seconds
    sock.setblocking(False)
    while time.monotonic() < deadline:
        try:
            while True:
                sock.recv(64)
                count += 1
        except BlockingIOError:
            pass
    result.put(int(count / seconds))


def _send_blast(port: int, seconds: float) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    payload = b"x" * 64
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for _ in range(256):
            sock.sendto(payload, ("127.0.0.1", port))


def udp_floor(seconds: float = 1.0) -> int:
    """Datagrams of 64 bytes per second between two plain Python sockets on loopback."""
    port = _free_port(socket.SOCK_DGRAM)
    context = multiprocessing.get_context("spawn")
    result: multiprocessing.Queue[int] = context.Queue()
    receiver = context.Process(target=_receive_count, args=(port, seconds, result))
    receiver.start()
    time.sleep(0.3)
    sender = context.Process(target=_send_blast, args=(port, seconds + 0.7))
    sender.start()
    rate = result.get(timeout=seconds + 10)
    sender.join()
    receiver.join()
    return rate


def _echo(port: int, ready: multiprocessing.Queue[int]) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    sock.settimeout(10)
    ready.put(port)
    try:
        while (data := sock.recvfrom(64))[0] != b"stop":
            sock.sendto(*data)
    except TimeoutError:
        pass


def udp_rtt_floor(round_trips: int = 2000) -> float:
    """The p50 round trip, in microseconds, of a 64-byte datagram between two plain
    Python processes on loopback: the least a request and its answer can take here."""
    port = _free_port(socket.SOCK_DGRAM)
    context = multiprocessing.get_context("spawn")
    ready: multiprocessing.Queue[int] = context.Queue()
    echo = context.Process(target=_echo, args=(port, ready))
    echo.start()
    ready.get(timeout=30)
    payload = b"x" * 64
    times = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        for n in range(round_trips + round_trips // 10):
            started = time.perf_counter()
            sock.sendto(payload, ("127.0.0.1", port))
            sock.recv(64)
            if n >= round_trips // 10:  # the first tenth warms up
                times.append(time.perf_counter() - started)
        sock.sendto(b"stop", ("127.0.0.1", port))
    echo.join(10)
    times.sort()
    return times[len(times) // 2] * 1e6


def cpu_seconds(pid: int) -> float:
    """The CPU (user + system) process ``pid`` has used, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def _peak_rss_mb(pid: int, field: str = "VmHWM:") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return 0.0


def _disk_usage_mb(root: Path) -> dict[str, float]:
    """What each directory under ``root`` takes on disk, in MB, as ``du`` counts it
    (allocated blocks: an LMDB file's unused map is not counted)."""
    usage = {}
    for directory in sorted(p for p in root.iterdir() if p.is_dir()):
        blocks = 0
        for path in directory.rglob("*"):
            with contextlib.suppress(OSError):
                blocks += path.lstat().st_blocks
        usage[directory.name] = round(blocks * 512 / 1e6, 1)
    return usage


def _rss_by_process(
    names: list[str], procs: list[subprocess.Popen[bytes]], field: str
) -> dict[str, float]:
    """Each process's RSS (``VmRSS:``) or peak RSS so far (``VmHWM:``), in MB."""
    result = {}
    for name, proc in zip(names, procs, strict=True):
        with contextlib.suppress(OSError):
            result[name] = round(_peak_rss_mb(proc.pid, field), 1)
    return result


class _CountingReader:
    """A program whose standard output is counted and thrown away."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self.count = 0
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        stdout = self.proc.stdout
        assert isinstance(stdout, io.BufferedReader)  # PIPE, buffered: read1 exists
        while chunk := stdout.read1(1 << 20):
            self.count += len(chunk)

    def stop(self) -> int:
        """Stop the program; the bytes it wrote."""
        self.proc.terminate()
        self.proc.wait(15)
        self._thread.join(15)
        return self.count


@dataclass
class Cluster:
    workdir: Path
    processes: list[subprocess.Popen[bytes]]
    learner_device: Path | None
    config: Path
    names: list[str] = field(default_factory=list)

    def stop(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.processes:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen([str(BIN / "kpaxosd"), "--verbosity", "info", *args],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _wait_ready(proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while "kpaxosd ready" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"kpaxos-bench: a daemon did not start:\n{log.read_text()}")
        time.sleep(0.02)


def start_cluster(topology: str, devices: bool, workdir: Path, extra: list[str],
                  storage: Path | None = None, backend: str = "fuse") -> Cluster:
    config = workdir / "paxos.conf"
    lines = [f"acceptor {i} 127.0.0.1 {_free_port(socket.SOCK_DGRAM)}" for i in range(3)]
    lines.append(f"proposer 0 127.0.0.1 {_free_port(socket.SOCK_DGRAM)}")
    config.write_text("\n".join(lines) + "\nverbosity error\n")
    link_dir = workdir / "dev"
    link_dir.mkdir()
    if backend == "cuse":
        # Real character devices, in a folder of /dev of this run's own.
        prefix = f"kpaxos-bench-{os.getpid()}/"
        device_args = ["--device-backend", "cuse", "--device-name-prefix", prefix]
        link_dir = Path("/dev") / prefix
    else:
        device_args = ["--device-backend", "fuse", "--mount-dir", str(workdir / "mnt"),
                       "--link-dir", str(link_dir)]
    if not devices:
        device_args = ["--no-devices"]
    base = ["-c", str(config), *extra]
    durable = ["--storage", str(storage)] if storage is not None else []
    if topology == "single":
        plans = [("node", [*base, *durable, *device_args])]
    else:
        plans = [(f"acceptor{i}", [*base, *durable, "--acceptor", str(i)]) for i in range(3)]
        plans.append(("proposer", [*base, "--proposer", "0"]))
        if devices:
            plans.append(("learner", [*base, "--learner", *device_args]))
    processes = []
    try:
        for name, plan in plans:
            log = workdir / f"{name}.log"
            proc = _start(plan, log)
            processes.append(proc)
            _wait_ready(proc, log)
    except BaseException:
        Cluster(workdir, processes, None, config).stop()
        raise
    return Cluster(workdir, processes, link_dir / "kpaxos-learner" if devices else None, config,
                   [name for name, _ in plans])


def _start_driver(options: argparse.Namespace, cluster: Cluster, workdir: Path,
                  ) -> subprocess.Popen[bytes]:
    """The load: kpaxos-client on the learner device, the device writers, or the kclient
    role (a client and its own learner inside a daemon)."""
    common = ["-o", str(options.outstanding), "-v", str(options.value_size),
              "-b", str(options.values_per_datagram)]
    if options.writers:
        # Applications' way: N writers of the client device, blocking writes.
        assert cluster.learner_device is not None
        driver = subprocess.Popen(
            [sys.executable, "-m", "clients.device_writers",
             str(cluster.learner_device.with_name("kpaxos-client")), str(options.writers),
             str(options.value_size), str(options.duration)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
    elif options.pipelined:
        # One program, one open file, -o values in flight (O_NONBLOCK writes).
        assert cluster.learner_device is not None
        driver = subprocess.Popen(
            [sys.executable, "-m", "clients.device_pipeline",
             str(cluster.learner_device.with_name("kpaxos-client")),
             "--window", str(options.outstanding), "--per-write", str(options.per_write),
             "--value-size", str(options.value_size), "--duration", str(options.duration)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
    elif cluster.learner_device is not None:
        how = "-d" if options.record_mode else "--stream"
        driver = subprocess.Popen(
            [str(BIN / "kpaxos-client"), "--config", str(cluster.config), how,
             "--learner-device", str(cluster.learner_device), *common,
             "--duration", str(options.duration)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
    else:  # the kclient role: a client and its own learner inside a daemon
        driver_log = workdir / "client.log"
        with open(driver_log, "wb") as log:
            driver = subprocess.Popen(
                [str(BIN / "kpaxosd"), "-c", str(cluster.config), "--client",
                 "--no-devices", "--verbosity", "info",
                 "--outstanding", str(options.outstanding),
                 "--value-size", str(options.value_size)],
                stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
            )
        # Its SIGINT handler, which prints the totals, is there once it is ready.
        try:
            _wait_ready(driver, driver_log)
        except SystemExit:
            driver.kill()
            driver.wait()
            raise
    return driver


# One measurement from start to report, read top to bottom: splitting it would scatter
# the order the numbers are taken in.
def run_bench(options: argparse.Namespace) -> dict[str, object]:
    floor = udp_floor()
    rtt_floor = udp_rtt_floor()
    workdir = Path(tempfile.mkdtemp(prefix="kpaxos-bench-"))
    storage = workdir / "storage" if options.storage else None
    cluster = start_cluster(options.topology, not options.no_device, workdir,
                            ["--retain", str(options.retain), *options.kpaxosd_option],
                            storage, options.device_backend)
    try:
        driver = _start_driver(options, cluster, workdir)
        cat: _CountingReader | None = None
        if options.cat_reader and cluster.learner_device is not None:
            cat = _CountingReader(["cat", str(cluster.learner_device)])
        watched = [*cluster.processes, driver]
        cpu_before = sum(cpu_seconds(proc.pid) for proc in watched)
        if cluster.learner_device is None:
            time.sleep(options.duration)
            driver.send_signal(signal.SIGINT)
        cpu_after = 0.0
        started = time.monotonic()
        deadline = started + options.duration + 60
        names = [*cluster.names, "client"]
        timeline: list[dict[str, object]] = []
        next_sample = started + options.rss_every if options.rss_every else math.inf
        def sample() -> dict[str, object]:
            return {"at_s": round(time.monotonic() - started),
                    "peak_rss_mb": _rss_by_process(names, watched, "VmHWM:"),
                    "rss_mb": _rss_by_process(names, watched, "VmRSS:"),
                    **({"storage_mb": _disk_usage_mb(storage)} if storage is not None else {})}

        while driver.poll() is None and time.monotonic() < deadline:
            cpu_after = sum(cpu_seconds(proc.pid) for proc in watched)
            rss = max(_peak_rss_mb(proc.pid) for proc in watched)
            if time.monotonic() >= next_sample:
                timeline.append(sample())
                next_sample += options.rss_every
            time.sleep(0.2)
        if options.rss_every:
            # The cluster as the load left it (the driver is done, the daemons run on):
            # the last minute's sample would otherwise fall after the driver's end.
            timeline.append(sample())
        output, _ = driver.communicate(timeout=30)
        cat_bytes = cat.stop() if cat is not None else None
        if cpu_after == 0.0:
            cpu_after = sum(cpu_seconds(proc.pid) for proc in cluster.processes)
            rss = max(_peak_rss_mb(proc.pid) for proc in cluster.processes)
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    text = output.decode(errors="replace")
    if options.writers or options.pipelined:
        result = _device_driver_result(options, text, cpu_after - cpu_before, rss, floor)
        return _with_rtt_floor(result, rtt_floor)
    total = TOTAL.search(text)
    if total is None:
        raise SystemExit(f"kpaxos-bench: the driver printed no totals:\n{text}")
    delivered, seconds = int(total.group(1)), float(total.group(2))
    return _with_rtt_floor({
        "topology": options.topology,
        "outstanding": options.outstanding,
        "value_size": options.value_size,
        "values_per_datagram": options.values_per_datagram,
        "device": not options.no_device,
        "read_mode": None if options.no_device else
        ("record" if options.record_mode else "stream"),
        "duration_s": seconds,
        "values": delivered,
        "values_per_s": round(delivered / seconds, 1) if seconds else 0.0,
        "resent": int(total.group(3)),
        "p50_us": int(total.group(8)),
        "p99_us": int(total.group(9)),
        "avg_us": int(total.group(7)),
        "cpu_us_per_value": round((cpu_after - cpu_before) * 1e6 / delivered, 1)
        if delivered else None,
        "max_rss_mb": round(rss, 1),
        "udp_floor_dgrams_per_s": floor,
        **({"rss_timeline": timeline} if options.rss_every else {}),
        # What `cat` of the learner device read, against the bytes of the values the
        # client saw decided (a cat that keeps up reads at least as much).
        **({"cat_reader_bytes": cat_bytes,
            "decided_value_bytes": delivered * (CLIENT_VALUE_HEADER_SIZE + options.value_size)}
           if cat_bytes is not None else {}),
    }, rtt_floor)


def _with_rtt_floor(result: dict[str, object], rtt_floor: float) -> dict[str, object]:
    """``result`` with the round-trip floor and its p50 in those floors."""
    p50 = result["p50_us"]
    assert isinstance(p50, int)
    return {**result, "udp_rtt_floor_us": round(rtt_floor, 1),
            "p50_over_rtt_floor": round(p50 / rtt_floor, 2) if rtt_floor else None}


def _device_driver_result(options: argparse.Namespace, text: str, cpu: float, rss: float,
                          floor: int) -> dict[str, object]:
    """What --writers or --pipelined measured, in the fields of the other modes (plus
    ``writers``, or ``pipelined`` and ``per_write``)."""
    try:
        measured = json.loads(text.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise SystemExit(f"kpaxos-bench: the device driver printed no result:\n{text}"
                         ) from None
    values, seconds = int(measured["values"]), float(measured["seconds"])
    load: dict[str, object] = (
        {"writers": options.writers, "outstanding": options.writers} if options.writers
        else {"pipelined": True, "outstanding": options.outstanding,
              "per_write": options.per_write})
    return {
        "topology": options.topology,
        **load,
        "value_size": options.value_size,
        "values_per_datagram": options.values_per_datagram,
        "device": True,
        "read_mode": None,
        "duration_s": seconds,
        "values": values,
        "failed": int(measured["failed"]),
        "values_per_s": round(values / seconds, 1) if seconds else 0.0,
        "p50_us": int(measured["p50_us"]),
        "p99_us": int(measured["p99_us"]),
        "avg_us": int(measured["avg_us"]),
        "cpu_us_per_value": round(cpu * 1e6 / values, 1) if values else None,
        "max_rss_mb": round(rss, 1),
        "udp_floor_dgrams_per_s": floor,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="kpaxos-bench", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topology", choices=["single", "processes"], default="single",
                        help="single: all roles in one daemon; processes: 3 acceptor "
                             "processes + proposer + learner (default: single)")
    parser.add_argument("-o", "--outstanding", type=positive_int, default=1, metavar="N",
                        help="values the client keeps in flight (default: 1)")
    parser.add_argument("-v", "--value-size", type=value_size, default=64, metavar="BYTES",
                        help="payload bytes of each value (default: 64)")
    parser.add_argument("-b", "--values-per-datagram", type=non_negative_int, default=0,
                        metavar="N",
                        help="the client sends up to N values per CLIENT_VALUE datagram, as a "
                             "batch; 1: one value per datagram, as the original client; 0: "
                             "the values ready at once, as many as fit one unfragmented "
                             "datagram, as a TCP client's writes share segments (default: 0)")
    parser.add_argument("--duration", type=positive_seconds, default=10.0, metavar="SECONDS",
                        help="how long to drive the cluster (default: 10)")
    parser.add_argument("--writers", type=positive_int, default=0, metavar="N",
                        help="propose through the client device instead, as applications "
                             "do: N writer threads, each with its own open file, writing "
                             "-v-byte values with blocking writes (each returns once "
                             "decided); -o and -b do not apply")
    parser.add_argument("--pipelined", action="store_true",
                        help="propose through the client device from one program with one "
                             "open file, keeping -o values in flight: O_NONBLOCK writes, "
                             "receipts read as they come")
    parser.add_argument("--per-write", type=positive_int, default=1, metavar="K",
                        help="with --pipelined: values per write, above 1 as framed writes "
                             "(default: 1, one value per write)")
    parser.add_argument("--device-backend", choices=["fuse", "cuse"], default="fuse",
                        help="how the cluster serves its devices: fuse (any kernel) or "
                             "cuse (real character devices; the kernel needs CUSE) "
                             "(default: fuse)")
    parser.add_argument("--no-device", action="store_true",
                        help="learn decisions inside a daemon (the kclient role) instead of "
                             "reading the learner device")
    parser.add_argument("--record-mode", action="store_true",
                        help="the client reads the learner device in record mode, one value "
                             "per read, as the original did (default: stream mode)")
    parser.add_argument("--retain", type=positive_int, default=100_000, metavar="N",
                        help="values the learner keeps for readers (default: 100000)")
    parser.add_argument("--kpaxosd-option", action="append", default=[], metavar="ARG",
                        help="pass ARG to every daemon of the cluster (repeatable), e.g. "
                             "--kpaxosd-option=--no-local-delivery")
    parser.add_argument("--rss-every", type=non_negative_seconds, default=0.0,
                        metavar="SECONDS",
                        help="record every process's peak RSS this often (JSON: "
                             "rss_timeline; default: only the overall maximum)")
    parser.add_argument("--storage", action="store_true",
                        help="the acceptors keep their state durably (kpaxosd --storage, "
                             "in the bench's temporary directory); with --rss-every, each "
                             "store's size on disk goes in rss_timeline too (storage_mb)")
    parser.add_argument("--cat-reader", action="store_true",
                        help="also run `cat` on the learner device and report what it read "
                             "(cat_reader_bytes) beside the bytes decided")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object on the last line")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    options = parser.parse_args(argv)
    if (options.writers or options.pipelined) and (options.no_device or options.record_mode):
        parser.error("--writers and --pipelined write to the client device: not with "
                     "--no-device or --record-mode")
    if options.writers and options.pipelined:
        parser.error("--writers or --pipelined, not both")
    if options.per_write > 1 and not options.pipelined:
        parser.error("--per-write goes with --pipelined")
    if os.geteuid() != 0 and not options.no_device:
        print("kpaxos-bench: reading the learner device needs root (or use --no-device)",
              file=sys.stderr)
        return 2
    result = run_bench(options)
    load = (f"{result['writers']} device writers" if options.writers
            else f"pipelined, {result['outstanding']} outstanding, "
                 f"{result['per_write']} per write" if options.pipelined
            else f"{result['outstanding']} outstanding")
    print(f"{result['topology']}, {load}, "
          f"{result['value_size']}-byte values, "
          f"{'device' if result['device'] else 'in-daemon learner'}: "
          f"{result['values_per_s']} values/s, p50 {result['p50_us']} us, "
          f"p99 {result['p99_us']} us, {result['cpu_us_per_value']} us CPU per value, "
          f"max RSS {result['max_rss_mb']} MB; UDP floor "
          f"{result['udp_floor_dgrams_per_s']} datagrams/s, round trip "
          f"{result['udp_rtt_floor_us']} us (p50 = {result['p50_over_rtt_floor']} of them)")
    if options.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
