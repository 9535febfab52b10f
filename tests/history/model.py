"""What a recorder saw of the replicated log through the devices: writes, reads, barriers.

A position is kpaxos's log position (instance id << 16 | place): positions increase
along the log but are not contiguous, so a gap between two positions is not a hole.
Times are seconds on one clock shared by every recorded process (the recorder's).
Values are unique per write in a history: the recorder makes them so, and the checker
reports a history where two writes share one as malformed.
"""

from __future__ import annotations

from dataclasses import dataclass

Position = int


@dataclass(frozen=True)
class Write:
    """One write(2) of ``value`` to a device by ``client``.

    ``end`` is None when the write never returned (the writer crashed or was killed);
    ``position`` is the receipt, where the daemon says the value was decided, set only
    when the write succeeded; ``error`` ("ETIMEDOUT", "EIO", ...) when it failed. A
    failed or unreturned write may be in the log or not, at most once; an acknowledged
    one must be there exactly once, at ``position``.
    """

    client: str
    value: bytes
    start: float
    end: float | None
    position: Position | None
    error: str | None

    @property
    def acknowledged(self) -> bool:
        return self.position is not None


@dataclass(frozen=True)
class Read:
    """One run of ``(position, value)`` entries delivered to ``reader``, in delivery order.

    The run starts anywhere (the beginning, or a resume position), so what it vouches
    for is the range from its first entry to its last: every entry decided there. A
    run has no holes of its own, so after an EPIPE (the reader's cursor trimmed away,
    or a gap of lost instances: docs/devices.md) the recorder starts a new Read.
    A reader may have several Reads (resumes); together they are its view.
    """

    reader: str
    host: str
    entries: tuple[tuple[Position, bytes], ...]
    start: float
    end: float


@dataclass(frozen=True)
class Barrier:
    """A read barrier by ``reader``: it returned at ``end`` saying the reader has been
    offered everything decided before ``start``, up to and including ``upto``.

    The recorder promises a Read by that reader, after the barrier, reaching ``upto``.
    """

    reader: str
    host: str
    start: float
    end: float
    upto: Position


@dataclass(frozen=True)
class History:
    writes: tuple[Write, ...]
    reads: tuple[Read, ...]
    barriers: tuple[Barrier, ...] = ()
