"""Single defects put into a correct history, each with the violation it must raise.

Each mutation takes a history from tests.history.simulated (which guarantees what the
mutations pick from: failed writes decided and not, barriers after acknowledged
writes) and a random source, and returns the broken history.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace

from tests.history.model import History, Position, Read, Write

Mutation = Callable[[History, random.Random], History]


def _logged(h: History) -> dict[bytes, Position]:
    return {value: p for read in h.reads for p, value in read.entries}


def _with_reads(h: History, reads: list[Read]) -> History:
    return replace(h, reads=tuple(reads))


def lose_write(h: History, rng: random.Random) -> History:
    """An acknowledged write missing from the inside of one Read."""
    picks = [(i, j) for i, read in enumerate(h.reads)
             for j in range(1, len(read.entries) - 1)
             if any(w.position == read.entries[j][0] for w in h.writes)]
    i, j = rng.choice(picks)
    reads = list(h.reads)
    reads[i] = replace(reads[i], entries=reads[i].entries[:j] + reads[i].entries[j + 1:])
    return _with_reads(h, reads)


def repeat_in_reader(h: History, rng: random.Random) -> History:
    """One Read delivers an earlier value again, after its last entry."""
    i = rng.randrange(len(h.reads))
    entries = h.reads[i].entries
    again = rng.choice(entries)[1]
    reads = list(h.reads)
    reads[i] = replace(reads[i], entries=(*entries, (entries[-1][0] + 1, again)))
    return _with_reads(h, reads)


def decide_twice(h: History, rng: random.Random) -> History:
    """The log holds a value a second time, and every Read covering that place shows it."""
    log = sorted(_logged(h).items(), key=lambda item: item[1])
    gaps = [k for k in range(len(log) - 1) if log[k + 1][1] - log[k][1] >= 2]
    k = rng.choice(gaps)
    value = rng.choice(log[: k + 1])[0]
    extra = log[k][1] + 1
    reads = [replace(r, entries=tuple(sorted((*r.entries, (extra, value)))))
             if r.entries[0][0] < extra < r.entries[-1][0] else r for r in h.reads]
    return _with_reads(h, reads)


def swap_entries(h: History, rng: random.Random) -> History:
    """Two neighbouring entries of one Read delivered the other way round."""
    i = rng.choice([i for i, r in enumerate(h.reads) if len(r.entries) >= 2])
    entries = list(h.reads[i].entries)
    j = rng.randrange(len(entries) - 1)
    entries[j], entries[j + 1] = entries[j + 1], entries[j]
    reads = list(h.reads)
    reads[i] = replace(reads[i], entries=tuple(entries))
    return _with_reads(h, reads)


def diverge(h: History, rng: random.Random) -> History:
    """One Read holds, at one position, a written value that the log never held."""
    logged = _logged(h)
    never = rng.choice([w.value for w in h.writes if w.value not in logged])
    i = rng.randrange(len(h.reads))
    entries = list(h.reads[i].entries)
    j = rng.randrange(len(entries))
    entries[j] = (entries[j][0], never)
    reads = list(h.reads)
    reads[i] = replace(reads[i], entries=tuple(entries))
    return _with_reads(h, reads)


def _acked_before(h: History, start: float) -> list[Write]:
    return [w for w in h.writes if w.position is not None and w.end is not None
            and w.end < start]


def lower_barrier(h: History, rng: random.Random) -> History:
    """A barrier's upto falls short of a write acknowledged before the barrier started."""
    k = rng.choice([k for k, b in enumerate(h.barriers) if _acked_before(h, b.start)])
    highest = max(w.position or 0 for w in _acked_before(h, h.barriers[k].start))
    barriers = list(h.barriers)
    barriers[k] = replace(barriers[k], upto=highest - 1)
    return replace(h, barriers=tuple(barriers))


def stale_read(h: History, rng: random.Random) -> History:
    """The reader's Reads stop before a write acknowledged before its barrier started."""
    first: dict[str, Position] = {}
    for r in h.reads:
        first[r.reader] = min(first.get(r.reader, r.entries[0][0]), r.entries[0][0])
    picks = [(b.reader, w.position) for b in h.barriers for w in _acked_before(h, b.start)
             if (w.position or 0) > first[b.reader]]
    reader, cut = rng.choice(picks)
    reads = [replace(r, entries=tuple(e for e in r.entries if e[0] < (cut or 0)))
             if r.reader == reader else r for r in h.reads]
    return _with_reads(h, [r for r in reads if r.entries])


def swap_receipts(h: History, rng: random.Random) -> History:
    """Two acknowledged writes, one over before the other began, decided the other way."""
    acked = [w for w in h.writes if w.position is not None]
    pairs = [(a, b) for a in acked for b in acked if (a.end or 0.0) < b.start]
    a, b = rng.choice(pairs)
    writes = [replace(w, position=b.position) if w is a
              else replace(w, position=a.position) if w is b else w for w in h.writes]
    swapped = {a.value: b.value, b.value: a.value}
    reads = [replace(r, entries=tuple((p, swapped.get(v, v)) for p, v in r.entries))
             for r in h.reads]
    return replace(h, writes=tuple(writes), reads=tuple(reads))


def forget_write(h: History, rng: random.Random) -> History:
    """A value in the log that no recorded write wrote (a decided, failed write dropped)."""
    logged = _logged(h)
    dropped = rng.choice([w for w in h.writes if w.position is None and w.value in logged])
    return replace(h, writes=tuple(w for w in h.writes if w is not dropped))


def move_receipt(h: History, rng: random.Random) -> History:
    """An acknowledged write's receipt names a place that another, unacknowledged value holds."""
    logged = _logged(h)
    free = [logged[w.value] for w in h.writes if w.position is None and w.value in logged]
    moved = rng.choice([w for w in h.writes if w.position is not None])
    wrong = rng.choice(free)
    writes = [replace(w, position=wrong) if w is moved else w for w in h.writes]
    return replace(h, writes=tuple(writes))


#: Each mutation with the violation kind it must raise.
MUTATIONS: dict[str, tuple[Mutation, str]] = {
    "lost write": (lose_write, "lost-write"),
    "duplicate in one reader": (repeat_in_reader, "duplicate"),
    "duplicate in the log": (decide_twice, "duplicate"),
    "reordering": (swap_entries, "reordered"),
    "divergent reader": (diverge, "divergent"),
    "barrier short of a write": (lower_barrier, "stale-barrier"),
    "stale read after a barrier": (stale_read, "stale-barrier"),
    "real-time order": (swap_receipts, "real-time-order"),
    "unwritten value": (forget_write, "unwritten-value"),
    "wrong receipt": (move_receipt, "wrong-position"),
}
