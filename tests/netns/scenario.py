"""A cluster of real daemons on namespace hosts, under faults, losing and restarting nodes.

Seven hosts on one switch (:mod:`tests.netns.network`): acceptors ``a0``-``a2``
(durable, ``--storage``), proposer ``p0`` and learners ``l0``-``l2``, listed in
paxos.conf, each with a durable log (``--storage``) and serving its devices on FUSE.
Half the values are proposed through the client devices of l0 and of l1 by many
threads at once, each write recorded with its receipt, while a ``kpaxos-cat
--positions`` of each learner device records what is decided, where
(:mod:`tests.netns.recording`). l0 runs from the start and trims the acceptors; once
they forgot the first instances, l2 starts and must take that history from a peer
learner. At about a third of the values acceptor 1 is killed with SIGKILL and
restarted on its storage; at half learner l1 is, and restarts on its log, its
reader resuming after the last position it recorded; at about two thirds the
proposer is, and restarts knowing nothing. In the end the three learners' records
must be the same (position, value) sequence, every value in it once and every
acknowledged write in it, and the history of writes and reads must pass the
linearizability checker of tests/history.

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

from tests.history.checker import assert_linearizable
from tests.history.model import History, Write
from tests.integration.harness import KPAXOSD, Cluster, Kpaxosd, detach_mount, mounted
from tests.netns.network import PREFIX, Counters, Host, Network, network, stale_prefix_pid
from tests.netns.recording import BarrierReader, Entry, LearnerReader, Recording, WriterRecord

ACCEPTORS = ("a0", "a1", "a2")
LEARNERS = ("l0", "l1", "l2")
ROLES = (*ACCEPTORS, "p0", *LEARNERS)
ACCEPTOR_PORT, PROPOSER_PORT, LEARNER_PORT = 8800, 5550, 4000
WRITER = Path(__file__).with_name("writer.py")
#: Pause between a SIGKILL and the restart.
DOWN_FOR = 1.5
#: Protocol options of the cluster (paxos.conf lines).
OPTIONS = ("learner-catch-up yes", "proposer-timeout 0.2")
#: Learner l0 trims the acceptors every this many instances (the original's cantrim,
#: one learner per cluster). Besides being how a cluster runs, it bounds what the
#: restarted proposer, which remembers nothing, runs again: the instances above the
#: acceptors' trim point, instead of every instance from the first. Small, because
#: the proposer packs some twenty values into an instance (10,000 values take about
#: 500 instances, more in the VM): a quorum of acceptors must have trimmed the first
#: instances before half of the values, a TRIM lost on the way being sent again only
#: this many instances later, for the late learner l2 to need them from a peer
#: learner. The restarted l1 may fall behind what they keep (30 to 60 instances) while
#: it is down, and then takes that part from a peer too.
TRIM = 30
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

    def metrics(self) -> str:
        """The daemon's metrics page; raises SubprocessError or OSError if it has none."""
        fetch = (f"import urllib.request; print(urllib.request.urlopen("
                 f"'http://127.0.0.1:{METRICS_PORT}/metrics', timeout=5).read().decode())")
        return subprocess.run(self.host.argv(sys.executable, "-c", fetch), timeout=20,
                              capture_output=True, text=True, check=True).stdout

    def sample(self, name: str) -> float | None:
        """The highest value of metric ``name`` over its labels (the daemon's endpoints),
        None if the daemon shows none."""
        try:
            text = self.metrics()
        except (subprocess.SubprocessError, OSError):
            return None
        samples = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith((f"{name} ", f"{name}{{"))]
        return max(samples, default=None)

    def state(self) -> str:
        """The daemon's kpaxos metrics, for a failure's message ("" once it is gone)."""
        if self.proc.poll() is not None:
            return ""
        try:
            text = self.metrics()
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
    seconds: float = 0.0  #: from the first write to the last value delivered by all
    counters: Counters | None = None
    events: list[str] = field(default_factory=list)  #: kills, restarts, the late start
    history: History | None = None

    def __str__(self) -> str:
        counters = self.counters
        dropped = (f", switch dropped {counters.dropped} of {counters.seen} UDP datagrams "
                   f"({100 * counters.dropped / max(counters.seen, 1):.1f} %; "
                   f"{counters.fragments} fragments)") if counters else ""
        pace = self.values / max(self.seconds, 0.001)
        return (f"{self.values} values written in {self.seconds:.1f} s ({pace:.0f} a second)"
                f"{dropped}; {'; '.join(self.events)}"
                f"{'; history: ' + summary(self.history) if self.history else ''}")


def summary(history: History) -> str:
    acknowledged = sum(w.acknowledged for w in history.writes)
    unreturned = sum(w.end is None for w in history.writes)
    failed = len(history.writes) - acknowledged - unreturned
    readers = sorted({r.reader for r in history.reads})
    runs = ", ".join(f"{reader} {sum(r.reader == reader for r in history.reads)}"
                     for reader in readers)
    barriers = ", ".join(f"{host} {sum(b.host == host for b in history.barriers)}"
                         for host in sorted({b.host for b in history.barriers}))
    return (f"{len(history.writes)} writes ({acknowledged} acknowledged with a receipt, "
            f"{failed} failed, {unreturned} never returned), "
            f"{sum(len(r.entries) for r in history.reads)} entries read in reader runs of "
            f"{runs}; read barriers, each then read up to, on {barriers or 'no learner'}")


def value(index: int) -> bytes:
    return b"value-%05d" % index  # tests/netns/writer.py writes the same, with a newline


def wait_for(condition: Callable[[], bool], deadline: float, what: str,
             watch: Callable[[], None] = lambda: None, pause: float = 0.1) -> None:
    """Poll ``condition`` until ``deadline`` (monotonic), calling ``watch`` to fail early."""
    while not condition():
        watch()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(pause)


def check_records(records: dict[str, list[Entry]], values: int,
                  acknowledged: set[bytes], *, complete: bool) -> None:
    """Each learner delivered proposed values once each, all at the same positions.

    ``complete``: every acknowledged value must be there and the records must be the
    same; otherwise what was delivered so far is checked (the shorter records
    prefixes of the longest).
    """
    proposed = set(map(value, range(values)))
    for role, record in records.items():
        counts = collections.Counter(v for _, v in record)
        twice = sorted(v for v, n in counts.items() if n > 1)
        foreign = sorted(counts.keys() - proposed)
        missing = sorted(acknowledged - counts.keys()) if complete else []
        assert not (twice or missing or foreign), (
            f"{role}: {len(record)} values delivered, {len(twice)} of them more than "
            f"once {twice[:5]}, {len(missing)} acknowledged ones missing {missing[:5]}, "
            f"{len(foreign)} never proposed {foreign[:5]}")
    longest = max(records.values(), key=len)
    for role, record in records.items():
        if record != longest[: len(record)]:
            at = next(i for i, (a, b) in enumerate(zip(record, longest, strict=False)) if a != b)
            raise AssertionError(
                f"{role} differs from the longest record at entry {at}: {record[at]!r} "
                f"where another has {longest[at]!r} (first entries: "
                + ", ".join(f"{r} {rec[0][0] if rec else None}" for r, rec in records.items())
                + ")")
        if complete:
            assert len(record) == len(longest), (
                f"{role} delivered {len(record)} values, another {len(longest)}")


def detach_stale_mounts() -> None:
    """Detach the device mounts of crashed runs (their dirs are named ``kpx-PID-...``)."""
    with open("/proc/mounts") as mounts:
        targets = [Path(line.split()[1]) for line in mounts if " fuse" in line]
    for target in targets:
        if target.name.startswith(PREFIX) and stale_prefix_pid(target.name) is not None:
            detach_mount(target)


def config_for(net: Network, path: Path) -> Path:
    lines = [f"acceptor {i} {net[role].address} {ACCEPTOR_PORT}"
             for i, role in enumerate(ACCEPTORS)]
    lines.append(f"proposer 0 {net['p0'].address} {PROPOSER_PORT}")
    # Listed, so that a learner lacking what the acceptors trimmed takes it from a peer.
    lines += [f"learner {i} {net[role].address} {LEARNER_PORT}"
              for i, role in enumerate(LEARNERS)]
    path.write_text("\n".join([*lines, *OPTIONS]) + "\n")
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
        workdir: where logs, configuration, storage, devices and the records go.
        faults: what to do to the network before the daemons start.
        values: how many values to propose, half through each of l0 and l1.
        threads: concurrent writers per learner.
        time_limit: seconds from the first write for every write to return.
        judge_pace_after: seconds after which, if the pace so far cannot decide every
            value within ``time_limit``, the run stops with :class:`TooSlow` (what was
            delivered up to then checked first), instead of running into the limit.
        ready_timeout: seconds a daemon may take to start (in a VM under software
            emulation, importing kpaxosd alone has taken more than 30 s).

    Raises:
        TooSlow: see ``judge_pace_after``.
        AssertionError: a failed write through a learner that was not killed, a daemon
            that died, a value delivered twice or missing, records that differ, a late
            learner that did not get the trimmed history, a history the checker finds
            not linearizable, a time limit.

    Everything it made (namespaces, rules, daemons, readers, writers, mounts) is gone
    when it returns or raises.
    """
    detach_stale_mounts()
    report = Report(values)
    recording = Recording()
    with network(ROLES) as net, contextlib.ExitStack() as stack:
        running = Cluster(workdir)
        stack.callback(running.close)
        config = str(config_for(net, workdir / "paxos.conf"))
        storage = str(workdir / "storage")
        tag = f"{PREFIX}{os.getpid()}"
        device_args = {role: running.devices(f"{tag}-{role}") for role in LEARNERS}
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

        def learner(role: str, name: str, wait: bool = True) -> NetnsDaemon:
            # Each learner keeps its log durably (DIR/learner), in a folder of its own.
            return start(role, name, "--learner", str(LEARNERS.index(role)),
                         "--storage", str(workdir / f"storage-{role}"),
                         "--device-backend", "fuse", *device_args[role][2],
                         "--client-timeout", str(int(time_limit) + 60),
                         *(["--trim", str(TRIM)] if role == "l0" else []), wait=wait)

        # All six start at once; then each must say it is ready. l2 starts late.
        acceptors = {aid: acceptor(aid, f"acceptor{aid}", wait=False) for aid in range(3)}
        proposer = start("p0", "proposer", "--proposer", "0", wait=False)
        learners = {role: learner(role, f"learner-{role}", wait=False) for role in ("l0", "l1")}
        for daemon in running.daemons:
            daemon.wait_ready(ready_timeout)
        readers = {role: LearnerReader(running, role, device_args[role][1] / "kpaxos-learner",
                                       workdir) for role in LEARNERS}
        recording.readers.extend(readers.values())
        for role in ("l0", "l1"):
            readers[role].start()
        # Read barriers on the learners that are never killed, each followed by a read
        # up to it: read-your-writes, for the checker.
        barrier_readers = {role: BarrierReader(role, device_args[role][1] / "kpaxos-learner")
                           for role in ("l0", "l2")}
        recording.barrier_readers.extend(barrier_readers.values())
        for rounds in barrier_readers.values():
            stack.callback(rounds.stop, 60)
        barrier_readers["l0"].start()

        started = time.monotonic()
        deadline = started + time_limit
        half = values // 2
        writers = []
        for i, role in enumerate(("l0", "l1")):
            first, count = i * half, (half if i == 0 else values - half)
            record = WriterRecord(f"through-{role}", workdir / f"writes-{role}.tsv")
            recording.writers.append(record)
            with open(workdir / f"writer-{role}.err", "wb") as err:
                writers.append(running.spawn(
                    [sys.executable, str(WRITER), str(device_args[role][1] / "kpaxos-client"),
                     str(first), str(count), str(threads), str(record.path),
                     str(ready_timeout + 30)],
                    stdout=subprocess.DEVNULL, stderr=err))
        pace_judged = False

        def decided() -> int:
            return readers["l0"].count()

        def elapsed() -> str:
            return f"{time.monotonic() - started:.1f} s"

        def watch() -> None:
            nonlocal pace_judged
            check_nothing_lost(running.daemons, net)
            for role, writer in zip(("l0", "l1"), writers, strict=True):
                if writer.poll() not in (None, 0):
                    errors = (workdir / f"writer-{role}.err").read_text()
                    raise AssertionError(f"the writer through {role} failed:\n{errors[-3000:]}")
            seconds = time.monotonic() - started
            if not pace_judged and seconds > judge_pace_after:
                pace_judged = True
                needed = seconds * values / max(decided(), 1)
                if needed > time_limit:
                    check_records({role: r.entries() for role, r in readers.items()}, values,
                                  set(), complete=False)
                    so_far = decided()
                    raise TooSlow(
                        f"{so_far} values decided in {seconds:.0f} s ({so_far / seconds:.1f}"
                        f" a second): {values} would take about {needed:.0f} s, over the "
                        f"limit of {time_limit:.0f} s "
                        f"({'; '.join(report.events) or 'no kill yet'})")

        def kill(daemon: NetnsDaemon, at: int) -> None:
            wait_for(lambda: decided() >= at, deadline,
                     f"{at} values decided before killing {daemon.name}", watch)
            seen = decided()
            assert seen < values, f"every value was decided before {daemon.name}'s kill"
            daemon.proc.send_signal(signal.SIGKILL)
            daemon.proc.wait(10)
            report.events.append(f"{daemon.name} killed at {seen} values decided ({elapsed()})")

        # Restarts are not waited for: in the VM a daemon takes up to a minute to
        # start, and the values meant for after the proposer's kill would be decided
        # before it, while the new acceptor got ready.
        kill(acceptors[1], values // 3)
        time.sleep(DOWN_FOR)
        acceptors[1] = acceptor(1, "acceptor1-again", wait=False)
        restarted = [acceptors[1]]

        trim_points: list[float | None] = []

        def trimmed() -> bool:
            trim_points[:] = [daemon.sample("kpaxos_acceptor_trim_iid")
                              for daemon in acceptors.values()]
            # A TRIM lost on the way waits for the next one, TRIM instances later; two
            # acceptors are a quorum, and the third alone cannot decide an instance.
            return sum(point is not None and point > 0 for point in trim_points) >= 2

        def before_l1_is_killed() -> None:
            watch()
            assert decided() < values // 2, (
                f"{decided()} values decided and the acceptors have not trimmed yet (trim "
                f"points {trim_points}): learner-l2 would start after l1's kill")

        # l2 starts once a quorum of acceptors forgot the first instances: it can get
        # them only from a peer learner.
        wait_for(trimmed, deadline, "the acceptors to trim", before_l1_is_killed, pause=0.5)
        report.events.append(f"acceptors trimmed up to {trim_points}, learner-l2 started at "
                             f"{decided()} values decided ({elapsed()})")
        learners["l2"] = learner("l2", "learner-l2")
        readers["l2"].start()
        barrier_readers["l2"].start()

        kill(learners["l1"], values // 2)
        readers["l1"].wait_until_ended(30)
        time.sleep(DOWN_FOR)
        restarted.append(learner("l1", "learner-l1-again", wait=False))
        kill(proposer, 2 * values // 3)
        time.sleep(DOWN_FOR)
        proposer = start("p0", "proposer-again", "--proposer", "0", wait=False)
        restarted.append(proposer)
        for daemon in restarted:
            daemon.wait_ready(ready_timeout)
        # The restarted learner serves its durable log: its reader goes on after the
        # last position it recorded.
        readers["l1"].resume()
        # Batches fit a 1500-byte MTU: a fragmented datagram is lost when any fragment is.
        assert "batches of at most 1448 bytes" in proposer.log, proposer.log
        assert "instances restored" in restarted[0].log, restarted[0].log
        assert " (0 instances restored" not in restarted[0].log, restarted[0].log

        def settled() -> bool:
            records = [reader.entries() for reader in readers.values()]
            have = [{v for _, v in record} for record in records]
            return (len({len(record) for record in records}) == 1
                    and all(acknowledged <= values_read for values_read in have))

        try:
            wait_for(lambda: all(w.poll() is not None for w in writers), deadline,
                     "the writers to finish", watch)
            watch()
            acknowledged = {w.value for w in recording.writes() if w.acknowledged}
            wait_for(settled, time.monotonic() + 60,
                     "every learner to deliver every acknowledged value", pause=0.5)
        except AssertionError as exc:
            delivered = ", ".join(f"{role} {r.count()}" for role, r in readers.items())
            states = "\n".join(f"{d.name}: {d.state()}" for d in running.daemons
                               if isinstance(d, NetnsDaemon))
            raise AssertionError(f"{exc}\ndelivered: {delivered}\n{states}") from None
        report.seconds = time.monotonic() - started
        for rounds in barrier_readers.values():
            rounds.stop(60)
            assert rounds.error is None, f"{rounds.name} stopped: {rounds.error}"
            # A few on a slow VM (l2 starts late, and its first barrier waits for the
            # history it takes from a peer); dozens here.
            assert rounds.barriers and rounds.reads, (
                f"{rounds.name}: {len(rounds.barriers)} barriers, {len(rounds.reads)} reads")
        time.sleep(2)  # a value delivered twice would show up now
        report.counters = net.counters()

        killed = ("acceptor1", "proposer", "learner-l1")
        for daemon in running.daemons:
            if daemon.name not in killed:
                assert daemon.proc.poll() is None, f"{daemon.name} died:\n{daemon.log[-3000:]}"
            assert "Traceback" not in daemon.log, f"{daemon.name}:\n{daemon.log[-3000:]}"
        late = learners["l2"]
        assert "lost to this learner" not in late.log, late.log[-3000:]
        assert "from the peer learner at" in late.log, (
            f"learner-l2 did not take the trimmed history from a peer:\n{late.log[-3000:]}")
        again = restarted[1]
        assert " values restored (positions " in again.log, (
            f"{again.name} did not resume on its durable log:\n{again.log[-3000:]}")
        report.events += [f"{daemon.name} {taken}" for daemon in (late, again)
                          for taken in taken_from_peers(daemon.log)]
        check_readers(readers)
        writes = recording.writes()
        check_failed_writes(writes, report)
        check_records({role: r.entries() for role, r in readers.items()}, values,
                      {w.value for w in writes if w.acknowledged}, complete=True)
        report.history = recording.history()
        assert_linearizable(report.history)
        for mount_dir in running.mounts:
            assert mounted(mount_dir), f"{mount_dir} is not mounted"
    return report


def check_nothing_lost(daemons: list[Kpaxosd], net: Network) -> None:
    """No learner gave instances up: each of them is held by l0, which retains every
    value, so a learner lacking what the acceptors trimmed must get it from a peer."""
    for daemon in daemons:
        if not isinstance(daemon, NetnsDaemon) or not daemon.name.startswith("learner"):
            continue
        log = daemon.log
        if "lost to this learner" not in log:
            continue
        lines = [line for line in log.splitlines()
                 if "lost to this learner" in line or "peer learner" in line]
        peers = [f"{d.name}: {exchanges(d)}" for d in daemons
                 if isinstance(d, NetnsDaemon) and d.name.startswith("learner")]
        raise AssertionError(
            f"{daemon.name} gave up instances that its peer learners hold, instead of "
            f"taking them from one:\n" + "\n".join(lines[:5])
            + "\npeer exchanges so far:\n" + "\n".join(peers)
            + f"\nthe switch so far: {net.counters()}")


def exchanges(daemon: NetnsDaemon) -> str:
    """The LEARNER_FETCH and LEARNER_HISTORY a daemon's metrics count, for a report."""
    if daemon.proc.poll() is not None:
        return "(not running)"
    try:
        text = daemon.metrics()
    except (subprocess.SubprocessError, OSError) as exc:
        return f"(no metrics: {exc})"
    return " ".join(line.replace("kpaxos_messages_", "") for line in text.splitlines()
                    if "LEARNER_FETCH" in line or "LEARNER_HISTORY" in line
                    or line.startswith("kpaxos_learner_peer")) or "none"


def taken_from_peers(log: str) -> list[str]:
    """What a learner's log says it took from a peer learner ("instances A to B")."""
    marker = "it takes instances "
    return [f"took instances {line.split(marker, 1)[1].split(' from the peer')[0]} from a peer"
            for line in log.splitlines() if marker in line]


def check_readers(readers: dict[str, LearnerReader]) -> None:
    """Each reader ran once, but l1's, which its learner's kill ended once; none lost
    values (``kpaxos-cat`` says so on stderr)."""
    for role, reader in readers.items():
        assert len(reader.runs) == (2 if role == "l1" else 1), (role, reader.runs)
        for run in reader.runs:
            errors = run.errors.read_text()
            ended_by_the_kill = role == "l1" and run is reader.runs[0]
            if ended_by_the_kill:
                assert run.process.returncode == 1, (role, run.process.returncode, errors)
            else:
                assert run.process.poll() is None, (role, run.process.returncode, errors)
                assert errors == "", f"the reader of {role}: {errors}"


def check_failed_writes(writes: list[Write], report: Report) -> None:
    """Writes fail only through l1, when it was killed under them; none is left open."""
    failed = [w for w in writes if not w.acknowledged]
    elsewhere = [w for w in failed if w.client != "through-l1"]
    assert not elsewhere, f"writes failed through a learner never killed: {elsewhere[:5]}"
    assert all(w.end is not None for w in failed), [w for w in failed if w.end is None][:5]
    errors = collections.Counter(w.error for w in failed)
    report.events.append(f"{len(failed)} writes through l1 failed ({dict(errors)})")


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
            for pattern in ("*.log", "*.out", "*.err", "*.tsv", "paxos.conf"):
                for path in args.workdir.glob(pattern):
                    shutil.copy(path, args.results / path.name)


if __name__ == "__main__":
    sys.exit(main())
