"""What the scenario's clients saw, recorded as they ran, turned into a checked history.

Writers (tests/netns/writer.py) record each write's start, end and receipt. Each
learner's reader is ``kpaxos-cat --positions`` run by :class:`LearnerReader`, one
run after another: a run ends when its learner dies, and the next resumes with
``--after`` the last position the record holds, so together the runs are the learner's
log as its device showed it. Every time is ``time.time()``, the clock that every
process of the test shares (all namespaces have the one real-time clock).

:func:`history` makes a :class:`tests.history.model.History` of it all: a Write per
write, a Read per reader run, and for each :class:`BarrierReader` (a thread that asks
a learner for a read barrier again and again, each time reading what the barrier
covers) a Barrier and a Read per round.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from clients.log import LogError, LogReader
from tests.history.model import Barrier, History, Position, Read, Write
from tests.integration.harness import Cluster
from wire.device import StartAt

KPAXOS_CAT = str(Path(sys.executable).with_name("kpaxos-cat"))

Entry = tuple[Position, bytes]


def lines_in(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def entries_in(path: Path) -> list[Entry]:
    """The ``POSITION<tab>VALUE`` lines of a reader run's output, whole lines only.

    Each value is a line of its own (the writers end every value with its newline),
    given without that newline.
    """
    try:
        lines = path.read_bytes().split(b"\n")[:-1]
    except FileNotFoundError:
        return []
    entries = []
    for line in lines:
        position, _, value = line.partition(b"\t")
        entries.append((int(position), value))
    return entries


@dataclass
class ReaderRun:
    """One ``kpaxos-cat`` of a learner device: its output, and when it ran."""

    output: Path
    errors: Path
    start: float
    process: subprocess.Popen[bytes]
    end: float | None = None  #: when it was seen to have exited

    def ended(self) -> bool:
        if self.end is None and self.process.poll() is not None:
            self.end = time.time()
        return self.end is not None


class LearnerReader:
    """The reader of one learner's device: runs of ``kpaxos-cat --positions``."""

    def __init__(self, running: Cluster, role: str, device: Path, workdir: Path) -> None:
        self.role = role
        self.device = device
        self.runs: list[ReaderRun] = []
        self._running = running
        self._workdir = workdir

    def start(self, after: Position | None = None) -> None:
        """A new run: from the oldest value retained, or just after ``after``."""
        number = len(self.runs) + 1
        output = self._workdir / f"reads-{self.role}-{number}.out"
        errors = self._workdir / f"reads-{self.role}-{number}.err"
        where = [] if after is None else ["--after", str(after)]
        start = time.time()
        with open(output, "wb") as out, open(errors, "wb") as err:
            process = self._running.spawn(
                [KPAXOS_CAT, "--device", str(self.device), "--positions", *where],
                stdout=out, stderr=err)
        self.runs.append(ReaderRun(output, errors, start, process))

    def wait_until_ended(self, timeout: float) -> ReaderRun:
        """The current run, once it exited (its learner died under it)."""
        run = self.runs[-1]
        deadline = time.monotonic() + timeout
        while not run.ended():
            if time.monotonic() > deadline:
                raise AssertionError(f"the reader of {self.role} did not stop in {timeout} s "
                                     f"after its learner died")
            time.sleep(0.05)
        return run

    def resume(self) -> None:
        """Start the next run just after the last position the record holds."""
        entries = self.entries()
        self.start(after=entries[-1][0] if entries else None)

    def entries(self) -> list[Entry]:
        """The whole record: every run's entries, one after another."""
        return [entry for run in self.runs for entry in entries_in(run.output)]

    def count(self) -> int:
        """How many entries the record holds (cheaper than :meth:`entries`)."""
        return sum(lines_in(run.output) for run in self.runs)

    def reads(self) -> list[Read]:
        """A Read per run; a run still going ends now, after what it wrote so far."""
        reads = []
        for run in self.runs:
            entries = tuple(entries_in(run.output))
            end = run.end if run.ended() else time.time()
            assert end is not None
            reads.append(Read(self.role, self.role, entries, run.start, end))
        return reads


class BarrierReader:
    """Rounds of a read barrier and a read up to it, on one learner's device, in a
    thread: each round a Barrier (its ``upto`` the position before the barrier's end)
    and a Read of what came since the last round, from the next value decided after
    the thread started. A round that reads nothing leaves its Barrier only."""

    def __init__(self, role: str, device: Path, pause: float = 0.2) -> None:
        self.name = f"barrier-{role}"
        self.role = role
        self.barriers: list[Barrier] = []
        self.reads: list[Read] = []
        #: Why the rounds stopped before they were asked to (None: they did not).
        self.error: str | None = None
        self._device = device
        self._pause = pause
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._rounds, name=self.name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop after the round going on (at once if the thread never started)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        assert not self._thread.is_alive(), f"{self.name}: a barrier did not return"

    def _rounds(self) -> None:
        try:
            with LogReader.open(str(self._device), start=StartAt.NOW) as log:
                while not self._stop.is_set():
                    start = time.time()
                    end = log.barrier()
                    reached = time.time()
                    entries: list[Entry] = []
                    while batch := log.read_before(end):
                        entries += [(e.position, e.value.removesuffix(b"\n")) for e in batch]
                    self.barriers.append(Barrier(self.name, self.role, start, reached,
                                                 end - 1))
                    if entries:
                        self.reads.append(Read(self.name, self.role, tuple(entries), start,
                                               time.time()))
                    self._stop.wait(self._pause)
        except LogError as exc:
            self.error = str(exc)


@dataclass(frozen=True)
class WriterRecord:
    """The record file of one writer process and the name its writes go by."""

    client: str
    path: Path


def writes_in(record: WriterRecord) -> list[Write]:
    """The Writes of one writer's record (see tests/netns/writer.py for its lines)."""
    started: dict[bytes, float] = {}
    outcomes: dict[bytes, tuple[float, Position | None, str | None]] = {}
    for line in record.path.read_text().splitlines():
        kind, name, at, *rest = line.split("\t")
        value = name.encode()
        if kind == "started":
            started[value] = float(at)
        elif kind == "ended":
            outcomes[value] = (float(at), int(rest[0]), None)
        elif kind == "failed":
            outcomes[value] = (float(at), None, rest[0])
        else:
            raise AssertionError(f"{record.path.name}: a line of no known kind: {line!r}")
    writes = []
    for value, start in started.items():
        end, position, error = outcomes.get(value, (None, None, None))
        writes.append(Write(record.client, value, start, end, position, error))
    return writes


@dataclass
class Recording:
    """Everything the clients of one scenario recorded."""

    writers: list[WriterRecord] = field(default_factory=list)
    readers: list[LearnerReader] = field(default_factory=list)
    barrier_readers: list[BarrierReader] = field(default_factory=list)

    def writes(self) -> list[Write]:
        return [w for record in self.writers for w in writes_in(record)]

    def history(self) -> History:
        reads = [read for reader in self.readers for read in reader.reads()]
        barriers: list[Barrier] = []
        for rounds in self.barrier_readers:
            reads += rounds.reads
            barriers += rounds.barriers
        return History(tuple(self.writes()), tuple(reads), tuple(barriers))
