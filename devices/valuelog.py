"""The learner's delivered values, in order, shared by every device reader.

Each value has a **position** (:mod:`wire.device`: its instance and its place in it),
the same at every learner and across restarts, increasing along the log. Inside, the
log and its readers count in **indices**: delivered values from 0 in this process,
which make "the next one" and "how far behind" cheap. Readers keep their own index;
the log keeps values from ``first_index`` on, finds the index of a position by
bisection, and wakes whoever waits when more arrive or it closes.

A gap (:meth:`ValueLog.add_gap`) takes a position of its own: instances the
acceptors trimmed before this learner learned them. Reading at a gap fails the way
reading a position trimmed from the log does (:class:`ValuesLost`, a
:class:`ReaderTooFarBehind`), so a reader is told at the very place values are
missing, and goes on after the gap.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import trio

from wire.device import iid_of, position_of


@dataclass(frozen=True, slots=True)
class DeliveredValue:
    position: int
    value: bytes

    @property
    def iid(self) -> int:
        return iid_of(self.position)


class LogClosed(Exception):
    """The log will grow no more: the daemon is stopping."""


class ReaderTooFarBehind(Exception):
    """A reader asked for a value the log no longer retains (``index``); reading
    goes on at ``first_index``."""

    def __init__(self, index: int, first_index: int, oldest_position: int) -> None:
        super().__init__(
            f"values were let go of before this reader read them; the oldest retained "
            f"position is {oldest_position}"
        )
        self.index = index
        self.first_index = first_index
        self.oldest_position = oldest_position


class ValuesLost(ReaderTooFarBehind):
    """A reader reached a gap: instances ``first_iid`` to ``next_iid - 1`` were never
    delivered here. ``first_index`` is where reading goes on, after the gap."""

    def __init__(self, index: int, first_iid: int, next_iid: int) -> None:
        super().__init__(index, index + 1, position_of(first_iid, 0))
        self.args = (
            f"instances {first_iid} to {next_iid - 1} were trimmed by the acceptors "
            f"before this learner learned them; reading goes on at instance {next_iid}",
        )
        self.first_iid = first_iid
        self.next_iid = next_iid


Listener = Callable[[], None]


class ValueLog:
    """Delivered values from ``first_index`` to ``next_index - 1``, for every reader.

    Values and their positions sit in two lists; trimming only moves ``first_index`` and
    drops the dead front of the lists now and then, so appending, reading at a
    position and trimming cost the same however much is retained.

    Bytes are counted as a running total of every value appended (``appended_bytes``)
    and a prefix of those totals, one per append batch, so :meth:`index_for_bytes`
    finds where to trim for a byte bound by bisection: O(1) per value appended.
    """

    #: The dead front of the lists is dropped once it is this long and at least half.
    COMPACT_AT = 4096

    def __init__(self) -> None:
        self._positions: list[int] = []
        self._values: list[bytes] = []
        # Entries at the front of the lists that were trimmed but not yet dropped.
        self._dead = 0
        self._first_index = 0
        # Byte accounting: after the k-th append batch, _batch_ends[k] is the position
        # after its last value and _batch_bytes[k] the bytes appended so far, both
        # counted from position 0 (entries before _batch_dead are dropped ones).
        self._appended_bytes = 0
        self._batch_ends: list[int] = []
        self._batch_bytes: list[int] = []
        self._batch_dead = 0
        # Gaps by position, and their positions in order (appended, never inserted).
        self._gaps: dict[int, tuple[int, int]] = {}
        self._gap_positions: list[int] = []
        # The position after the newest value (0: nothing delivered yet).
        self._end_position = 0
        # The instance from which the log holds every value delivered, while it has
        # let none go (began_at): not its oldest value's, which a no-op instance
        # before it, or one whose values were all passed over, would move on.
        self._began_at_iid = 1
        self._closed = False
        self._grown = trio.Event()
        self._listeners: list[Listener] = []

    @property
    def first_index(self) -> int:
        """The oldest position still retained."""
        return self._first_index

    @property
    def next_index(self) -> int:
        """The position the next delivered value will take."""
        return self._first_index + len(self._values) - self._dead

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def oldest_position(self) -> int:
        """The position of the oldest value retained (``end_position`` if none is)."""
        if self._first_index == self.next_index:
            return self._end_position
        return self._positions[self._dead]

    @property
    def end_position(self) -> int:
        """The position after the newest value delivered (0 before the first)."""
        return self._end_position

    def append(self, iid: int, value: bytes, place: int = 0) -> None:
        self.extend_raw([position_of(iid, place)], [value])

    def extend(self, values: list[DeliveredValue]) -> None:
        """Append several values and wake waiters once."""
        self.extend_raw([v.position for v in values], [v.value for v in values])

    def extend_raw(self, positions: list[int], values: list[bytes]) -> None:
        """Append ``values[k]`` at ``positions[k]``, in order, and wake waiters once.

        Positions must increase, along the list and past those appended before.
        """
        if self._closed:
            raise LogClosed("the value log is closed")
        if not values:
            return
        self._positions.extend(positions)
        self._end_position = positions[-1] + 1
        self._values.extend(values)
        self._appended_bytes += sum(map(len, values))
        self._batch_ends.append(self.next_index)
        self._batch_bytes.append(self._appended_bytes)
        self._notify()

    def add_gap(self, first_iid: int, next_iid: int) -> None:
        """Instances ``first_iid`` to ``next_iid - 1`` will never be delivered: the
        next position says so to every reader that reaches it."""
        if self._closed:
            raise LogClosed("the value log is closed")
        index = self.next_index
        self._gaps[index] = (first_iid, next_iid)
        self._gap_positions.append(index)
        self._positions.append(position_of(first_iid, 0))
        self._end_position = position_of(next_iid, 0)
        self._values.append(b"")
        self._notify()

    @property
    def retained_bytes(self) -> int:
        """Bytes of the values from ``first_index`` on (whole batches: a batch cut by
        a trim counts whole until it is trimmed past)."""
        return self._appended_bytes - self._bytes_before(self._first_index)

    def index_for_bytes(self, limit: int) -> int:
        """The lowest position from which the values retained take at most ``limit``
        bytes, in whole append batches (at least ``first_index``; the newest batch
        stays even when it alone is larger)."""
        floor = self._appended_bytes - limit
        if floor <= self._bytes_before(self._first_index):
            return self._first_index
        # The first batch whose running total reaches floor: trimming to its end
        # leaves what follows it, which is at most limit bytes.
        # The newest batch is never trimmed: its values were just appended, and a
        # reader keeping up must see them (one batch over limit is kept whole).
        k = min(bisect_left(self._batch_bytes, floor, self._batch_dead), len(self._batch_ends) - 2)
        return max(self._batch_ends[k], self._first_index) if k >= 0 else self._first_index

    def _bytes_before(self, index: int) -> int:
        """Bytes appended before the end of the last batch that ends at or before
        ``index``."""
        k = bisect_right(self._batch_ends, index, self._batch_dead) - 1
        return self._batch_bytes[k] if k >= self._batch_dead else self._dropped_bytes()

    def _dropped_bytes(self) -> int:
        return self._batch_bytes[self._batch_dead - 1] if self._batch_dead else 0

    def is_gap(self, index: int) -> bool:
        """Whether position ``index`` is a gap (reading there raises ValuesLost)."""
        return index in self._gaps

    def get(self, index: int) -> DeliveredValue:
        """The value at ``index``.

        Raises:
            ReaderTooFarBehind: ``index`` is older than what is retained, or is a
                gap (:class:`ValuesLost`).
            IndexError: nothing has been delivered at ``index`` yet.
        """
        slot = self._slot(index)
        return DeliveredValue(self._positions[slot], self._values[slot])

    def position_at(self, index: int) -> int:
        """The position of the value (or gap) at ``index``, retained and delivered."""
        if not self._first_index <= index < self.next_index:
            raise IndexError(index)
        return self._positions[index - self._first_index + self._dead]

    def index_of(self, position: int) -> int:
        """The index to read from to start at ``position``: the first value at or
        after it, or the gap that covers it (so that a loss is never skipped
        silently); ``next_index`` if everything delivered lies before it.

        Raises:
            ReaderTooFarBehind: ``position`` is older than what is retained (and the
                log does not hold everything from instance 1 on).
        """
        oldest = self.oldest_position
        # Before the first instance nothing ever was: only a log that let values go,
        # or that began later, is missing what lies below its oldest position.
        whole = self.kept_from() <= 1
        if position < oldest and not whole:
            raise ReaderTooFarBehind(self._first_index - 1, self._first_index, oldest)
        start = self._dead
        slot = bisect_left(self._positions, position, start)
        index = self._first_index + slot - start
        if index > self._first_index and self.is_gap(index - 1):
            gap_next_iid = self._gaps[index - 1][1]
            if position < position_of(gap_next_iid, 0):
                return index - 1
        return index

    def began_at(self, iid: int) -> None:
        """The log holds every value delivered from instance ``iid`` on, and what was
        delivered before it may be missing (a learner log restored from a store that
        let values go). Before anything is appended; a log never told begins at 1."""
        self._began_at_iid = iid

    def kept_from(self) -> int:
        """The first instance from which every value delivered is retained, gaps
        aside: where the log began (instance 1, unless :meth:`began_at` says later)
        while it has let nothing go, else past the instance the retention may have
        cut into (the oldest one held)."""
        if self._first_index == 0:
            return self._began_at_iid
        return iid_of(self.oldest_position) + 1

    def whole_from(self) -> int:
        """The first instance from which every value delivered is retained: past
        :meth:`kept_from` and the newest gap."""
        start = self.kept_from()
        gaps = self._gap_positions
        if gaps and gaps[-1] >= self._first_index:
            start = max(start, self._gaps[gaps[-1]][1])
        return start

    def retained_after(self, position: int) -> Iterator[tuple[int, bytes]]:
        """``(position, value)`` of every value retained after ``position``, in order,
        up to the first gap."""
        start = self._dead
        slot = bisect_right(self._positions, position, start)
        for at in range(slot, len(self._positions)):
            if self._first_index + at - start in self._gaps:
                return
            yield self._positions[at], self._values[at]

    def value_at(self, index: int) -> bytes:
        """The bytes of the value at ``index`` (raises as :meth:`get` does)."""
        return self._values[self._slot(index)]

    def values_from(self, index: int, count: int) -> list[bytes]:
        """The bytes of up to ``count`` values from ``index`` on (fewer at the end, or
        before a gap).

        Raises:
            ReaderTooFarBehind: ``index`` is older than what is retained, or is a
                gap (:class:`ValuesLost`).
        """
        if index < self._first_index:
            raise ReaderTooFarBehind(index, self._first_index, self.oldest_position)
        gaps = self._gap_positions
        if gaps and gaps[-1] >= index:
            gap = gaps[bisect_left(gaps, index)]
            if gap == index:
                raise ValuesLost(index, *self._gaps[index])
            count = min(count, gap - index)
        slot = index - self._first_index + self._dead
        return self._values[slot : slot + count]

    def trim_before(self, index: int) -> None:
        """Forget every value below position ``index``."""
        index = min(index, self.next_index)
        if index <= self._first_index:
            return
        self._dead += index - self._first_index
        self._first_index = index
        if self._gap_positions and self._gap_positions[0] < index:
            cut = bisect_left(self._gap_positions, index)
            for gap in self._gap_positions[:cut]:
                del self._gaps[gap]
            del self._gap_positions[:cut]
        # Batches wholly below the trim point are no longer needed for bisection.
        self._batch_dead = max(
            self._batch_dead, bisect_right(self._batch_ends, index, self._batch_dead)
        )
        if self._batch_dead >= self.COMPACT_AT and 2 * self._batch_dead >= len(self._batch_ends):
            keep = self._batch_dead - 1  # the last dead one keeps the running total
            del self._batch_ends[:keep]
            del self._batch_bytes[:keep]
            self._batch_dead = 1
        if self._dead >= self.COMPACT_AT and 2 * self._dead >= len(self._values):
            del self._positions[: self._dead]
            del self._values[: self._dead]
            self._dead = 0

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._notify()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener()`` after every growth and on close; returns the unsubscriber."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    async def wait_for(self, index: int) -> None:
        """Return once position ``index`` is delivered.

        Raises:
            LogClosed: the log closed before ``index`` was delivered.
        """
        while index >= self.next_index:
            if self._closed:
                raise LogClosed("the value log is closed")
            await self._grown.wait()

    def _slot(self, index: int) -> int:
        if index < self._first_index:
            raise ReaderTooFarBehind(index, self._first_index, self.oldest_position)
        gap = self._gaps.get(index)
        if gap is not None:
            raise ValuesLost(index, *gap)
        slot = index - self._first_index + self._dead
        if slot >= len(self._values):
            raise IndexError(index)
        return slot

    def _notify(self) -> None:
        grown, self._grown = self._grown, trio.Event()
        grown.set()
        for listener in list(self._listeners):
            listener()
