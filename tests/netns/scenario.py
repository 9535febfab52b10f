"""A cluster of real daemons on namespace hosts, under faults, losing and restarting nodes.

Six hosts on one switch (:mod:`tests.netns.network`): acceptors ``a0``-``a2`` (durable,
``--storage``), proposer ``p0`` and learners ``l0`` and ``l1``, each learner serving its
devices on FUSE. Half the values are proposed through each learner's client device by
many threads at once, while a ``cat`` of each learner device collects what is decided.
At about a third of the values acceptor 1 is killed with SIGKILL and restarted on its
storage; at about two thirds the proposer is, and restarts knowing nothing. In the end
every value must have been delivered exactly once by each learner, in one order.

:func:`run_scenario` takes the faults as a function of the network, so the same
scenario runs with nftables' random drop on the development kernel
(tests/netns/test_real_faults.py) and with netem's delay, duplication and reordering
where the kernel has it (:func:`netem_scenario`, for the VM).
"""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.harness import KPAXOSD, Cluster, Kpaxosd, detach_mount, mounted
from tests.netns.network import PREFIX, Counters, Host, Network, network, stale_prefix_pid

ROLES = ("a0", "a1", "a2", "p0", "l0", "l1")
ACCEPTOR_PORT, PROPOSER_PORT, LEARNER_PORT = 8800, 5550, 4000
WRITER = Path(__file__).with_name("writer.py")
#: Pause between a SIGKILL and the restart.
DOWN_FOR = 1.5
#: Protocol options of the cluster (paxos.conf lines).
OPTIONS = ("learner-catch-up yes", "proposer-timeout 0.2")
#: Learner l0 trims the acceptors every this many instances (the original's cantrim,
#: one learner per cluster). Besides being how a cluster runs, it bounds what the
#: restarted proposer, which remembers nothing, runs again: the instances above the
#: acceptors' trim point, instead of every instance from the first.
TRIM = 1000
#: Writers per learner, each with one value in flight: the proposer runs phase 2
#: for up to 128 instances at once (preexec_window), and under loss most of a value's
#: time goes to waiting for retries, not to work.
THREADS = 128
#: Every daemon serves its metrics here, in its own namespace: what a failed run
#: reports about where each daemon stood.
METRICS_PORT = 9464


class NetnsDaemon(Kpaxosd):
    """A kpaxosd run in a host's network namespace (and in the test's mount namespace)."""

    def __init__(self, host: Host, args: list[str], workdir: Path, name: str) -> None:
        self.name = name
        self.log_path = workdir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in close()
        self.host = host
        self.proc = subprocess.Popen(
            host.argv(KPAXOSD, "--verbosity", "info", "--metrics", f"127.0.0.1:{METRICS_PORT}",
                      *args),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def state(self) -> str:
        """The daemon's kpaxos metrics, for a failure's message ("" once it is gone)."""
        if self.proc.poll() is not None:
            return ""
        fetch = (f"import urllib.request; print(urllib.request.urlopen("
                 f"'http://127.0.0.1:{METRICS_PORT}/metrics', timeout=5).read().decode())")
        try:
            text = subprocess.run(self.host.argv(sys.executable, "-c", fetch), timeout=20,
                                  capture_output=True, text=True, check=True).stdout
        except (subprocess.SubprocessError, OSError) as exc:
            return f"(no metrics: {exc})"
        return " ".join(line for line in text.splitlines()
                        if line.startswith("kpaxos_") and not line.endswith(" 0.0")
                        and not line.startswith("kpaxos_decision_latency"))


class TooSlow(AssertionError):
    """Decisions come too slowly for the values to be decided within the time limit."""


@dataclass
class Report:
    """What a run measured, for the test's assertions and for people."""

    values: int
    seconds: float = 0.0  #: from the first write to the last value delivered by both
    counters: Counters | None = None
    kills: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        counters = self.counters
        dropped = (f", switch dropped {counters.dropped} of {counters.seen} UDP datagrams "
                   f"({100 * counters.dropped / max(counters.seen, 1):.1f} %)") if counters else ""
        pace = self.values / max(self.seconds, 0.001)
        return (f"{self.values} values decided in {self.seconds:.1f} s ({pace:.0f} a second)"
                f"{dropped}; "
                f"{'; '.join(self.kills)}")


def value(index: int) -> bytes:
    return b"value-%05d" % index  # tests/netns/writer.py writes the same, with a newline


def lines_in(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def wait_for(condition: Callable[[], bool], deadline: float, what: str,
             watch: Callable[[], None] = lambda: None) -> None:
    """Poll ``condition`` until ``deadline`` (monotonic), calling ``watch`` to fail early."""
    while not condition():
        watch()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def check_streams(streams: list[Path], values: int, *, complete: bool) -> None:
    """Each learner delivered proposed values once each, both in one order.

    ``complete``: every one of the ``values`` must be there; otherwise what was
    delivered so far is checked (the shorter stream a prefix of the longer).
    """
    proposed = set(map(value, range(values)))
    delivered = [path.read_bytes().split(b"\n")[:-1] for path in streams]
    for path, stream in zip(streams, delivered, strict=True):
        counts = collections.Counter(stream)
        twice = sorted(v for v, n in counts.items() if n > 1)
        foreign = sorted(counts.keys() - proposed)
        missing = sorted(proposed - counts.keys()) if complete else []
        assert not (twice or missing or foreign), (
            f"{path.name}: {len(stream)} values delivered, {len(twice)} of them more than "
            f"once {twice[:5]}, {len(missing)} missing {missing[:5]}, {len(foreign)} never "
            f"proposed {foreign[:5]}")
    shortest = min(map(len, delivered))
    first, second = (stream[:shortest] for stream in delivered)
    assert first == second, "the learners delivered the values in different orders"
    if complete:
        assert len(delivered[0]) == len(delivered[1]) == values


def detach_stale_mounts() -> None:
    """Detach the device mounts of crashed runs (their dirs are named ``kpx-PID-...``)."""
    with open("/proc/mounts") as mounts:
        targets = [Path(line.split()[1]) for line in mounts if " fuse" in line]
    for target in targets:
        if target.name.startswith(PREFIX) and stale_prefix_pid(target.name) is not None:
            detach_mount(target)


def config_for(net: Network, path: Path) -> Path:
    lines = [f"acceptor {i} {net[f'a{i}'].address} {ACCEPTOR_PORT}" for i in range(3)]
    lines += [f"proposer 0 {net['p0'].address} {PROPOSER_PORT}", *OPTIONS]
    path.write_text("\n".join(lines) + "\n")
    return path


# The scenario in the order it runs (namespaces, daemons, faults, writers, checks),
# each step needing the ones before; the checks are its point and stay in view.
def run_scenario(  # noqa: C901, PLR0915
    workdir: Path,
    faults: Callable[[Network], None],
    *,
    values: int = 10_000,
    threads: int = THREADS,
    time_limit: float = 280,
    judge_pace_after: float = 45,
    ready_timeout: float = 60,
) -> Report:
    """Run the whole scenario under ``faults``; raises AssertionError on any departure.

    Args:
        workdir: where logs, configuration, storage, devices and the streams go.
        faults: what to do to the network before the daemons start.
        values: how many values to propose, half through each learner.
        threads: concurrent writers per learner.
        time_limit: seconds from the first write for every write to return.
        judge_pace_after: seconds after which, if the pace so far cannot decide every
            value within ``time_limit``, the run stops with :class:`TooSlow` (what was
            delivered up to then checked first), instead of running into the limit.
        ready_timeout: seconds a daemon may take to start (in a VM under software
            emulation, importing kpaxosd alone has taken more than 30 s).

    Raises:
        TooSlow: see ``judge_pace_after``.
        AssertionError: a failed write, a daemon that died, a value delivered twice or
            missing, two orders, a time limit.

    Everything it made (namespaces, rules, daemons, readers, writers, mounts) is gone
    when it returns or raises.
    """
    detach_stale_mounts()
    report = Report(values)
    with network(ROLES) as net, contextlib.ExitStack() as stack:
        running = Cluster(workdir)
        stack.callback(running.close)
        config = str(config_for(net, workdir / "paxos.conf"))
        storage = str(workdir / "storage")
        faults(net)

        def start(role: str, name: str, *args: str, wait: bool = True) -> NetnsDaemon:
            daemon = NetnsDaemon(net[role], ["-c", config, *args], workdir, name)
            running.daemons.append(daemon)
            if wait:
                daemon.wait_ready(ready_timeout)
            return daemon

        def acceptor(aid: int, name: str, wait: bool = True) -> NetnsDaemon:
            return start(f"a{aid}", name, "--acceptor", str(aid), "--storage", storage,
                         wait=wait)

        # All six start at once; then each must say it is ready.
        acceptors = {aid: acceptor(aid, f"acceptor{aid}", wait=False) for aid in range(3)}
        proposer = start("p0", "proposer", "--proposer", "0", wait=False)
        tag = f"{PREFIX}{os.getpid()}"
        streams, devices = [], []
        for role in ("l0", "l1"):
            _, link_dir, device_args = running.devices(f"{tag}-{role}")
            start(role, f"learner-{role}", "--learner",
                  "--learner-address", f"{net[role].address}:{LEARNER_PORT}",
                  "--device-backend", "fuse", *device_args,
                  "--client-timeout", str(int(time_limit) + 60),
                  *(["--trim", str(TRIM)] if role == "l0" else []), wait=False)
            devices.append(link_dir / "kpaxos-client")
        for daemon in running.daemons:
            daemon.wait_ready(ready_timeout)
        for role, link_dir in zip(("l0", "l1"), (d.parent for d in devices), strict=True):
            stream = workdir / f"{role}.out"
            with open(stream, "wb") as out:
                running.spawn(["cat", str(link_dir / "kpaxos-learner")], stdout=out)
            streams.append(stream)

        started = time.monotonic()
        deadline = started + time_limit
        half = values // 2
        writers = []
        for i, device in enumerate(devices):
            first, count = i * half, (half if i == 0 else values - half)
            with open(workdir / f"writer-l{i}.err", "wb") as err:
                writers.append(running.spawn(
                    [sys.executable, str(WRITER), str(device), str(first), str(count),
                     str(threads)],
                    stdout=subprocess.DEVNULL, stderr=err))
        pace_judged = False

        def watch() -> None:
            nonlocal pace_judged
            for i, writer in enumerate(writers):
                if writer.poll() not in (None, 0):
                    errors = (workdir / f"writer-l{i}.err").read_text()
                    raise AssertionError(f"writes through l{i} failed:\n{errors[-3000:]}")
            elapsed = time.monotonic() - started
            if not pace_judged and elapsed > judge_pace_after:
                pace_judged = True
                decided = lines_in(streams[0])
                needed = elapsed * values / max(decided, 1)
                if needed > time_limit:
                    check_streams(streams, values, complete=False)
                    raise TooSlow(
                        f"{decided} values decided in {elapsed:.0f} s ({decided / elapsed:.1f}"
                        f" a second): {values} would take about {needed:.0f} s, over the "
                        f"limit of {time_limit:.0f} s ({'; '.join(report.kills) or 'no kill yet'})")

        def kill_and_restart(daemon: NetnsDaemon, at: int, restart: Callable[[], NetnsDaemon],
                             ) -> NetnsDaemon:
            wait_for(lambda: lines_in(streams[0]) >= at, deadline,
                     f"{at} values decided before killing {daemon.name}", watch)
            seen = lines_in(streams[0])
            assert seen < values, f"every value was decided before {daemon.name}'s kill"
            daemon.proc.send_signal(signal.SIGKILL)
            daemon.proc.wait(10)
            report.kills.append(f"{daemon.name} killed at {seen} values decided "
                                f"({time.monotonic() - started:.1f} s)")
            time.sleep(DOWN_FOR)
            return restart()

        # Restarts are not waited for: in the VM a daemon takes up to a minute to
        # start, and the values meant for after the proposer's kill would be decided
        # before it, while the new acceptor got ready.
        restarted = kill_and_restart(acceptors[1], values // 3,
                                     lambda: acceptor(1, "acceptor1-again", wait=False))
        proposer = kill_and_restart(
            proposer, 2 * values // 3,
            lambda: start("p0", "proposer-again", "--proposer", "0", wait=False))
        for daemon in (restarted, proposer):
            daemon.wait_ready(ready_timeout)
        # Batches fit a 1500-byte MTU: a fragmented datagram is lost when any fragment is.
        assert "batches of at most 1448 bytes" in proposer.log, proposer.log
        assert "instances restored" in restarted.log, restarted.log
        assert " (0 instances restored" not in restarted.log, restarted.log

        try:
            wait_for(lambda: all(w.poll() is not None for w in writers), deadline,
                     "the writers to finish", watch)
            watch()
            wait_for(lambda: all(lines_in(s) >= values for s in streams),
                     time.monotonic() + 60, f"both learners to deliver {values} values")
        except AssertionError as exc:
            delivered = ", ".join(f"{s.stem} {lines_in(s)}" for s in streams)
            states = "\n".join(f"{d.name}: {d.state()}" for d in running.daemons
                               if isinstance(d, NetnsDaemon))
            raise AssertionError(f"{exc}\ndelivered: {delivered}\n{states}") from None
        report.seconds = time.monotonic() - started
        time.sleep(2)  # a value delivered twice would show up now
        report.counters = net.counters()

        for daemon in running.daemons:
            if daemon.name not in ("acceptor1", "proposer"):
                assert daemon.proc.poll() is None, f"{daemon.name} died:\n{daemon.log[-3000:]}"
            assert "Traceback" not in daemon.log, f"{daemon.name}:\n{daemon.log[-3000:]}"
        check_streams(streams, values, complete=True)
        for mount_dir in running.mounts:
            assert mounted(mount_dir), f"{mount_dir} is not mounted"
    return report


NETEM = "delay 5ms 2ms duplicate 1% reorder 1%"


def netem_scenario(workdir: Path, *, values: int = 10_000, time_limit: float = 280,
                   drop_percent: int = 0) -> Report:
    """The scenario under netem: 5 ms +- 2 ms of delay, 1 % duplication and reordering.

    For a kernel with sch_netem: the VM's (tests/vm), not the development kernel. With
    ``drop_percent`` the switch drops that share at random on top. The report's
    counters show what the switch forwarded and dropped.
    """
    def faults(net: Network) -> None:
        net.netem(NETEM)
        if drop_percent:
            net.drop_randomly(drop_percent)

    report = run_scenario(workdir, faults, values=values, time_limit=time_limit,
                          judge_pace_after=time_limit, ready_timeout=300)
    if drop_percent and report.counters is not None:
        share = 100 * report.counters.dropped / max(report.counters.seen, 1)
        assert drop_percent / 2 < share < drop_percent * 1.5, f"{share:.1f} % dropped: {report}"
    return report


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.netns.scenario netem WORKDIR [--values N] ...`` from the repo root.

    Runs :func:`netem_scenario` (as root, on a kernel with netem), prints the report and
    exits 0, or prints the failure and exits 1. For the VM runner.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.netns.scenario")
    parser.add_argument("faults", choices=["netem"])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--values", type=int, default=10_000)
    parser.add_argument("--time-limit", type=float, default=280)
    parser.add_argument("--drop-percent", type=int, default=0)
    parser.add_argument("--results", type=Path,
                        help="copy the logs and streams here at the end (the workdir must "
                             "be a local file system: LMDB cannot map files on 9p)")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    try:
        report = netem_scenario(args.workdir, values=args.values, time_limit=args.time_limit,
                                drop_percent=args.drop_percent)
    except AssertionError as exc:
        print(f"netns scenario failed: {type(exc).__name__}: {exc}", flush=True)
        return 1
    else:
        print(f"netns scenario passed: {report}", flush=True)
        return 0
    finally:
        if args.results is not None:
            args.results.mkdir(parents=True, exist_ok=True)
            for pattern in ("*.log", "*.out", "*.err", "paxos.conf"):
                for path in args.workdir.glob(pattern):
                    shutil.copy(path, args.results / path.name)


if __name__ == "__main__":
    sys.exit(main())
