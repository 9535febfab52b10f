"""Correct histories, made up: a log decided in time order, read whole by three readers.

Clients write one after another, each write decided somewhere between its start and
its end, so the receipts respect real time. Some writes fail (decided or not), some
never return (the client is killed and writes no more). Reader "a" reads the whole
log in one Read, "b" opens late, "c" reads part of it and resumes from an earlier
position; each takes barriers. Every history holds at least one failed write that
was decided and one that was not, which the mutations need.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tests.history.model import Barrier, History, Position, Read, Write

ERRORS = ("ETIMEDOUT", "EIO")


@dataclass(frozen=True)
class _Attempt:
    write: Write
    decided: float | None  # when it was decided, None when it never was


def correct_history(rng: random.Random, writes: int = 60, clients: int = 4) -> History:
    """A linearizable history of ``writes`` writes by ``clients`` clients (at least 12)."""
    attempts = _attempts(rng, writes, clients)
    decided = sorted((a for a in attempts if a.decided is not None),
                     key=lambda a: a.decided or 0.0)
    positions = _positions(rng, len(decided))
    log = [(p, a.write.value) for p, a in zip(positions, decided, strict=True)]
    times = [a.decided or 0.0 for a in decided]
    at = {a.write.value: p for p, a in zip(positions, decided, strict=True)}
    receipts = tuple(_with_receipt(a.write, at) for a in attempts)
    last = max(times[-1], max(w.end or 0.0 for w in receipts)) + 0.01
    reads = _reads(rng, log, times, last)
    barriers = tuple(_barrier(rng, reader, host, log, times, reads)
                     for reader, host in (("a", "h1"), ("b", "h2"), ("c", "h3"))
                     for _ in range(3))
    return History(receipts, reads, barriers)


def _attempts(rng: random.Random, count: int, clients: int) -> list[_Attempt]:
    # Two writes forced to fail, one decided and one not, so that every history holds both.
    forced = dict(zip(rng.sample(range(1, count), 2), ("failed-decided", "failed-lost"),
                      strict=True))
    clocks = [rng.uniform(0, 0.01) for _ in range(clients)]
    alive = set(range(clients))
    attempts = []
    for i in range(count):
        client = rng.choice(sorted(alive))
        start = clocks[client] + rng.uniform(0, 0.005)
        end = start + rng.uniform(0.001, 0.05)
        decided = rng.uniform(start, end)
        value = f"c{client}-w{i}".encode()
        outcome = forced.get(i) or rng.choices(
            ["ok", "failed-decided", "failed-lost", "killed"], [85, 6, 6, 3])[0]
        if outcome == "killed" and len(alive) > 1 and i not in forced:
            alive.discard(client)
            kept = decided if rng.random() < 0.5 else None
            attempts.append(_Attempt(Write(f"c{client}", value, start, None, None, None), kept))
            continue
        # The last client alive is not killed: its write succeeds instead.
        error = None if outcome in ("ok", "killed") else rng.choice(ERRORS)
        kept = None if outcome == "failed-lost" else decided
        attempts.append(_Attempt(Write(f"c{client}", value, start, end, None, error), kept))
        clocks[client] = end
    return attempts


def _positions(rng: random.Random, count: int) -> list[Position]:
    """Increasing, not contiguous: instances skipped, places within one left out."""
    instance, place, positions = 1, 0, []
    for _ in range(count):
        positions.append(instance << 16 | place)
        if place >= 6 or rng.random() < 0.3:
            instance, place = instance + rng.randint(1, 3), 0
        else:
            place += rng.randint(1, 2)
    return positions


def _with_receipt(w: Write, at: dict[bytes, Position]) -> Write:
    if w.end is None or w.error is not None:
        return w
    return Write(w.client, w.value, w.start, w.end, at[w.value], None)


def _reads(rng: random.Random, log: list[tuple[Position, bytes]], times: list[float],
           last: float) -> tuple[Read, ...]:
    n = len(log)
    late = rng.randint(1, n // 2)
    pause = rng.randint(n // 3, n - 2)
    resume = rng.randint(pause // 2, pause + 1)
    paused = times[pause] + 0.001
    return (
        Read("a", "h1", tuple(log), 0.0, last),
        Read("b", "h2", tuple(log[late:]), times[late - 1], last),
        Read("c", "h3", tuple(log[: pause + 1]), 0.0, paused),
        Read("c", "h3", tuple(log[resume:]), paused + 0.001, last),
    )


def _barrier(rng: random.Random, reader: str, host: str, log: list[tuple[Position, bytes]],
             times: list[float], reads: tuple[Read, ...]) -> Barrier:
    opened = min(r.start for r in reads if r.reader == reader)
    start = rng.uniform(max(opened, times[len(times) // 4]), times[-1])
    end = start + rng.uniform(0, 0.01)
    # Everything decided before start, and maybe a little after.
    cut = rng.uniform(start, end)
    upto = max((p for (p, _), t in zip(log, times, strict=True) if t <= cut), default=0)
    return Barrier(reader, host, start, end, upto)
