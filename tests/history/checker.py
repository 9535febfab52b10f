"""Linearizability of the replicated log as seen through the devices.

The receipts say where each acknowledged write was decided, so this checks a history
rather than searching for an order: dicts keyed by position and by value, one pass or
a sort each, which keeps a history of tens of thousands of writes to about a second.

What is checked (each a Violation kind):

* malformed: the history breaks the recorder's promises (two writes share a value, an
  acknowledged write without an end or with an error, an end before a start, a barrier
  by a reader whose Reads delivered nothing).
* reordered: positions do not strictly increase along one Read.
* divergent: two Reads (of one reader or two) hold different values at one position,
  or a Read skipped a position that another Read saw inside the first one's range.
* duplicate: one value at two positions, in one reader or across readers.
* unwritten-value: a value read that no Write wrote.
* wrong-position: an acknowledged value read somewhere other than at its receipt, or
  two writes acknowledged at one position.
* lost-write: an acknowledged write missing from a Read whose range holds its receipt.
* real-time-order: a write acknowledged before another started has the later position,
  or a value was read by a Read that ended before its write started.
* stale-barrier: a write acknowledged before a barrier started lies beyond its ``upto``,
  or the reader's Reads stop short of an acknowledged write at or below ``upto`` (from
  the reader's first position on: a reader that opened late was never offered earlier
  ones; one inside a Read's range is a lost write instead).

An acknowledged write beyond every Read's range and every barrier is not checked: the
recorder has to read up to the end of the log for it to be.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from tests.history.model import Barrier, History, Position, Read, Write

KINDS = frozenset(
    {
        "malformed",
        "reordered",
        "divergent",
        "duplicate",
        "unwritten-value",
        "wrong-position",
        "lost-write",
        "real-time-order",
        "stale-barrier",
    }
)
REPORTED = 20


@dataclass(frozen=True)
class Violation:
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


@dataclass(frozen=True)
class _Run:
    """A Read with its entries as a dict and the range it vouches for."""

    read: Read
    values: dict[Position, bytes]
    low: Position
    high: Position

    def __str__(self) -> str:
        r = self.read
        return f"{r.reader}@{r.host} read [{_pos(self.low)}..{_pos(self.high)}]"


def check(history: History) -> list[Violation]:
    """Every violation found in ``history``; empty when it is linearizable."""
    found: list[Violation] = []
    writes = _writes_by_value(history.writes, found)
    acked = _acknowledged(writes.values(), found)
    runs = [_run(read) for read in history.reads if read.entries]
    where = _positions_of_values(runs)
    found += _malformed_times(history)
    found += _reordered(history.reads)
    found += _divergent(runs)
    found += _skipped(runs, acked)
    found += _duplicates(where)
    found += _unwritten(where, writes)
    found += _read_before_written(runs, writes)
    found += _receipts(runs, acked, where)
    found += _real_time(acked.values())
    found += _barriers(history.barriers, runs, acked)
    return list(dict.fromkeys(found))


def assert_linearizable(history: History) -> None:
    """Raise AssertionError listing the first violations when ``history`` has any."""
    found = check(history)
    if not found:
        return
    lines = [f"history is not linearizable: {len(found)} violation(s)"]
    lines += [f"  {violation}" for violation in found[:REPORTED]]
    if len(found) > REPORTED:
        lines.append(f"  ... and {len(found) - REPORTED} more")
    raise AssertionError("\n".join(lines))


def _pos(position: Position) -> str:
    """A position as instance.place, the way kpaxos builds it."""
    return f"{position >> 16}.{position & 0xFFFF}"


def _show(value: bytes) -> str:
    return repr(value) if len(value) <= 24 else repr(value[:24]) + "..."


def _t(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.6f}"


def _write(w: Write) -> str:
    return f"write {_show(w.value)} by {w.client}"


def _at(w: Write) -> Position:
    """The receipt of an acknowledged write (_acknowledged keeps only those)."""
    assert w.position is not None
    return w.position


def _ended(w: Write) -> float:
    assert w.end is not None
    return w.end


def _run(read: Read) -> _Run:
    positions = [position for position, _ in read.entries]
    return _Run(read, dict(read.entries), min(positions), max(positions))


def _writes_by_value(writes: Iterable[Write], found: list[Violation]) -> dict[bytes, Write]:
    by_value: dict[bytes, Write] = {}
    for w in writes:
        if w.value in by_value:
            other = by_value[w.value]
            found.append(Violation("malformed", f"{_write(w)} shares its value with a write"
                                   f" by {other.client}"))
        by_value.setdefault(w.value, w)
    return by_value


def _acknowledged(writes: Iterable[Write], found: list[Violation]) -> dict[Position, Write]:
    """Receipt position -> acknowledged write."""
    acked: dict[Position, Write] = {}
    for w in writes:
        if w.position is None:
            continue
        if w.end is None or w.error is not None:
            found.append(Violation("malformed", f"{_write(w)} has a receipt without an end"
                                   f" or with an error (end {_t(w.end)}, error {w.error})"))
            continue
        if w.position in acked:
            found.append(Violation("wrong-position", f"{_write(w)} and"
                                   f" {_write(acked[w.position])} are both acknowledged"
                                   f" at {_pos(w.position)}"))
            continue
        acked[w.position] = w
    return acked


def _malformed_times(history: History) -> list[Violation]:
    found = []
    spans: list[tuple[str, float, float | None]] = [
        (_write(w), w.start, w.end) for w in history.writes
    ]
    spans += [(f"read by {r.reader}", r.start, r.end) for r in history.reads]
    spans += [(f"barrier by {b.reader}", b.start, b.end) for b in history.barriers]
    for what, start, end in spans:
        if end is not None and end < start:
            found.append(Violation("malformed", f"{what} ends at {_t(end)} before its start"
                                   f" {_t(start)}"))
    return found


def _reordered(reads: Iterable[Read]) -> list[Violation]:
    found = []
    for read in reads:
        pairs = zip(read.entries, read.entries[1:], strict=False)
        for i, ((before, _), (after, value)) in enumerate(pairs, 1):
            if after <= before:
                found.append(Violation("reordered", f"{read.reader}@{read.host} got"
                                       f" {_show(value)} at {_pos(after)} after"
                                       f" {_pos(before)} (entry {i})"))
                break
    return found


def _positions_of_values(runs: Iterable[_Run]) -> dict[bytes, dict[Position, set[str]]]:
    """Value -> position -> readers that saw it there."""
    where: dict[bytes, dict[Position, set[str]]] = defaultdict(lambda: defaultdict(set))
    for run in runs:
        for position, value in run.values.items():
            where[value][position].add(run.read.reader)
    return where


def _divergent(runs: Iterable[_Run]) -> list[Violation]:
    seen: dict[Position, dict[bytes, set[str]]] = defaultdict(lambda: defaultdict(set))
    for run in runs:
        for position, value in run.values.items():
            seen[position][value].add(run.read.reader)
    found = []
    for position, values in seen.items():
        if len(values) > 1:
            saw = "; ".join(f"{_show(v)} by {', '.join(sorted(r))}" for v, r in values.items())
            found.append(Violation("divergent", f"position {_pos(position)} holds {saw}"))
    return found


def _skipped(runs: list[_Run], acked: dict[Position, Write]) -> list[Violation]:
    """Positions some Read saw that another Read's range holds but that Read lacks.

    A skipped receipt is left to _receipts, which names it a lost write.
    """
    seen: dict[Position, str] = {}
    for run in runs:
        for position in run.values:
            seen.setdefault(position, run.read.reader)
    positions = sorted(seen)
    found = []
    for run in runs:
        inside = positions[bisect_left(positions, run.low) : bisect_right(positions, run.high)]
        for position in inside:
            if position not in run.values and position not in acked:
                found.append(Violation("divergent", f"{run} skipped {_pos(position)},"
                                       f" which {seen[position]} saw"))
    return found


def _duplicates(where: dict[bytes, dict[Position, set[str]]]) -> list[Violation]:
    found = []
    for value, positions in where.items():
        if len(positions) > 1:
            at = "; ".join(f"{_pos(p)} by {', '.join(sorted(r))}"
                           for p, r in sorted(positions.items()))
            found.append(Violation("duplicate", f"{_show(value)} is at {at}"))
    return found


def _unwritten(where: dict[bytes, dict[Position, set[str]]],
               writes: dict[bytes, Write]) -> list[Violation]:
    found = []
    for value, positions in where.items():
        if value not in writes:
            at = ", ".join(_pos(p) for p in sorted(positions))
            found.append(Violation("unwritten-value", f"{_show(value)} read at {at} was"
                                   " never written"))
    return found


def _read_before_written(runs: Iterable[_Run], writes: dict[bytes, Write]) -> list[Violation]:
    found = []
    for run in runs:
        for position, value in run.values.items():
            w = writes.get(value)
            if w is not None and run.read.end < w.start:
                found.append(Violation("real-time-order", f"{run} ended at {_t(run.read.end)}"
                                       f" with {_show(value)} at {_pos(position)}, before"
                                       f" {_write(w)} started at {_t(w.start)}"))
    return found


def _receipts(runs: list[_Run], acked: dict[Position, Write],
              where: dict[bytes, dict[Position, set[str]]]) -> list[Violation]:
    """Each acknowledged write is read at its receipt and nowhere else."""
    receipts = sorted(acked)
    missing: dict[Position, list[_Run]] = defaultdict(list)
    for run in runs:
        for r in receipts[bisect_left(receipts, run.low) : bisect_right(receipts, run.high)]:
            if run.values.get(r) != acked[r].value:
                missing[r].append(run)
    found = []
    for receipt, w in acked.items():
        elsewhere = sorted(p for p in where.get(w.value, ()) if p != receipt)
        if elsewhere:
            at = ", ".join(_pos(p) for p in elsewhere)
            found.append(Violation("wrong-position", f"{_write(w)} acknowledged at"
                                   f" {_pos(receipt)} was read at {at}"))
        elif receipt in missing:
            lacking = "; ".join(str(run) for run in missing[receipt])
            found.append(Violation("lost-write", f"{_write(w)} acknowledged at"
                                   f" {_pos(receipt)} is missing from {lacking}"))
    return found


def _real_time(acked: Iterable[Write]) -> list[Violation]:
    """A write acknowledged before another started is decided before it.

    One sweep: the writes in start order against the highest receipt among those that
    ended before each start; violations grouped under that highest write.
    """
    by_start = sorted(acked, key=lambda w: w.start)
    by_end = sorted(by_start, key=_ended)
    overtaken: dict[Write, list[Write]] = defaultdict(list)
    highest: Write | None = None
    ended = 0
    for b in by_start:
        while ended < len(by_end) and _ended(by_end[ended]) < b.start:
            a = by_end[ended]
            if highest is None or _at(a) > _at(highest):
                highest = a
            ended += 1
        if highest is not None and highest is not b and _at(highest) >= _at(b):
            overtaken[highest].append(b)
    found = []
    for a, later in overtaken.items():
        b = later[0]
        found.append(Violation("real-time-order", f"{_write(a)} at {_pos(_at(a))}"
                               f" ended at {_t(a.end)}, yet {len(later)} write(s) started after"
                               f" it got lower positions, first {_write(b)} at"
                               f" {_pos(_at(b))} started at {_t(b.start)}"))
    return found


def _barriers(barriers: Iterable[Barrier], runs: list[_Run],
              acked: dict[Position, Write]) -> list[Violation]:
    by_end = sorted(acked.values(), key=_ended)
    ends = [_ended(w) for w in by_end]
    # highest[i]: the highest receipt among by_end[: i + 1].
    highest: list[Write] = []
    for w in by_end:
        best = w if not highest or _at(w) > _at(highest[-1]) else highest[-1]
        highest.append(best)
    lacking = _lacking_per_reader(runs, acked)
    found = []
    for b in barriers:
        what = f"barrier by {b.reader}@{b.host} [{_t(b.start)}..{_t(b.end)}] up to {_pos(b.upto)}"
        before = bisect_left(ends, b.start)
        if before and _at(highest[before - 1]) > b.upto:
            w = highest[before - 1]
            found.append(Violation("stale-barrier", f"{what} misses {_write(w)} at"
                                   f" {_pos(_at(w))}, acknowledged at {_t(w.end)}"))
        if b.reader not in lacking:
            found.append(Violation("malformed", f"{what} by a reader whose Reads delivered"
                                   " nothing (the recorder promises one after it)"))
            continue
        missed = lacking[b.reader][: bisect_right(lacking[b.reader], b.upto)]
        if missed:
            w = acked[missed[0]]
            found.append(Violation("stale-barrier", f"{what}: the reader's Reads stop short of"
                                   f" {len(missed)} acknowledged write(s) at or below it,"
                                   f" first {_write(w)} at {_pos(missed[0])}"))
    return found


def _lacking_per_reader(runs: Iterable[_Run],
                        acked: dict[Position, Write]) -> dict[str, list[Position]]:
    """Reader -> sorted receipts from its first position on that its Reads stop short of.

    A receipt inside one of the reader's Reads is left to _receipts (a lost write), so
    that one missing value is not reported again for every barrier after it.
    """
    ranges: dict[str, list[tuple[Position, Position]]] = defaultdict(list)
    for run in runs:
        ranges[run.read.reader].append((run.low, run.high))
    lacking = {}
    for reader, spans in ranges.items():
        lows, highs = _merged(spans)
        lacking[reader] = sorted(p for p in acked if p >= lows[0]
                                 and not _inside(p, lows, highs))
    return lacking


def _merged(spans: list[tuple[Position, Position]]) -> tuple[list[Position], list[Position]]:
    """Overlapping ranges joined: their lows and highs, in order."""
    lows: list[Position] = []
    highs: list[Position] = []
    for low, high in sorted(spans):
        if highs and low <= highs[-1]:
            highs[-1] = max(highs[-1], high)
        else:
            lows.append(low)
            highs.append(high)
    return lows, highs


def _inside(position: Position, lows: list[Position], highs: list[Position]) -> bool:
    i = bisect_right(lows, position) - 1
    return i >= 0 and position <= highs[i]
