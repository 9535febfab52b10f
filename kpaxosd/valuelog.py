"""The learner's delivered values, in order, shared by every device reader.

Positions count delivered values from 0 (an iid may one day carry several values,
so positions are not iids). Readers keep their own position; the log keeps values
from ``first_index`` on and wakes whoever waits when more arrive or it closes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import trio


@dataclass(frozen=True, slots=True)
class DeliveredValue:
    iid: int
    value: bytes


class LogClosed(Exception):
    """The log will grow no more: the daemon is stopping."""


class ReaderTooFarBehind(Exception):
    """A reader asked for a position the log no longer retains."""

    def __init__(self, index: int, first_index: int) -> None:
        super().__init__(
            f"position {index} was trimmed; the oldest retained position is {first_index}"
        )
        self.index = index
        self.first_index = first_index


Listener = Callable[[], None]


class ValueLog:
    def __init__(self) -> None:
        self._values: deque[DeliveredValue] = deque()
        self._first_index = 0
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
        return self._first_index + len(self._values)

    @property
    def closed(self) -> bool:
        return self._closed

    def append(self, iid: int, value: bytes) -> None:
        self.extend([DeliveredValue(iid, value)])

    def extend(self, values: list[DeliveredValue]) -> None:
        """Append several values and wake waiters once."""
        if self._closed:
            raise LogClosed("the value log is closed")
        if not values:
            return
        self._values.extend(values)
        self._notify()

    def get(self, index: int) -> DeliveredValue:
        """The value at ``index``.

        Raises:
            ReaderTooFarBehind: ``index`` is older than what is retained.
            IndexError: nothing has been delivered at ``index`` yet.
        """
        if index < self._first_index:
            raise ReaderTooFarBehind(index, self._first_index)
        offset = index - self._first_index
        if offset >= len(self._values):
            raise IndexError(index)
        return self._values[offset]

    def trim_before(self, index: int) -> None:
        """Forget every value below position ``index``."""
        index = min(index, self.next_index)
        while self._first_index < index:
            self._values.popleft()
            self._first_index += 1

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

    def _notify(self) -> None:
        grown, self._grown = self._grown, trio.Event()
        grown.set()
        for listener in list(self._listeners):
            listener()
