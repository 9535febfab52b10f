"""Read the decided log from the learner device, from where you choose, with positions.

Every value a learner delivers has a position (:mod:`wire.device`), the same at every
learner of the cluster and across restarts, increasing along the log. A program that
builds its state from the log saves the position of the last value it applied, and
after its own restart (or the daemon's) resumes just after it::

    from clients.log import LogReader

    with LogReader.open(after=saved_position) as log:
        for entry in log:
            apply(entry.value)
            saved_position = entry.position

``LogReader.open`` starts at the oldest value the learner retains (what ``cat`` gets),
or with ``start=StartAt.NOW`` at the next value decided, ``from_position=P`` at the
first value at or after P, ``after=P`` at the first one after P. A position older than
what the learner retains raises :class:`PositionTrimmed`, which names the oldest one
retained: nothing is skipped silently. Reads block until a value is decided; iteration
ends when the daemon stops.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType

from wire.device import (
    BOUNDS_ARG,
    FRAME_HEAD,
    IOCTL_BOUNDS,
    IOCTL_FRAMED,
    IOCTL_START,
    START_ARG,
    StartAt,
)

DEFAULT_DEVICE = "/dev/kpaxos-learner"
#: Bytes asked for by one read: the largest READ the kernel sends the device in one
#: request, which holds a frame of the largest value.
READ_SIZE = 128 * 1024


@dataclass(frozen=True, slots=True)
class Entry:
    """One decided value and its position in the log."""

    position: int
    value: bytes


class LogError(Exception):
    """The learner device failed or refused; the message is for the user."""


class PositionTrimmed(LogError):
    """The position asked for is older than the oldest the learner retains."""

    def __init__(self, position: int, oldest: int) -> None:
        super().__init__(f"position {position} is no longer retained: the oldest retained "
                         f"position is {oldest}")
        self.position = position
        self.oldest = oldest


class ValuesLost(LogError):
    """Values were lost before this reader read them: the learner let them go
    (``--retain``) or the acceptors trimmed them before it learned them. The next
    read goes on after them."""

    def __init__(self, after: int | None) -> None:
        where = "at the start" if after is None else f"after position {after}"
        super().__init__(f"values were lost {where}: the learner let them go before they "
                         f"were read, or never learned them; reading goes on past them")
        self.after = after


class LogReader:
    """A reader of the learner device in framed mode (see :mod:`wire.device`)."""

    def __init__(self, fd: int, path: str) -> None:
        self._fd = fd
        self._path = path
        self._last: int | None = None

    @classmethod
    def open(
        cls,
        path: str = DEFAULT_DEVICE,
        *,
        start: StartAt = StartAt.OLDEST,
        from_position: int | None = None,
        after: int | None = None,
    ) -> LogReader:
        """Open the learner device at ``path`` and start where asked.

        Raises:
            PositionTrimmed: the position is older than the oldest retained.
            LogError: the device cannot be opened or does not know positions.
        """
        if from_position is not None and after is not None:
            raise ValueError("give from_position or after, not both")
        position = 0
        if from_position is not None:
            start, position = StartAt.FROM, from_position
        elif after is not None:
            start, position = StartAt.AFTER, after
        if position < 0:
            raise ValueError(f"a position is not negative: {position}")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise LogError(f"cannot open {path}: {exc.strerror}") from None
        reader = cls(fd, path)
        try:
            reader._ioctl(IOCTL_START, START_ARG.pack(position, start, 0))
            reader._ioctl(IOCTL_FRAMED, None)
        except OSError as exc:
            reader.close()
            if exc.errno == errno.ERANGE:
                raise PositionTrimmed(position, reader_bounds(path)[0]) from None
            if exc.errno == errno.ENOTTY:
                raise LogError(f"{path} does not know positions: is it a kpaxos learner "
                               f"device, of this version?") from None
            raise LogError(f"{path} refused to start there: {exc.strerror}") from None
        except BaseException:
            reader.close()
            raise
        return reader

    def bounds(self) -> tuple[int, int]:
        """The oldest position retained, and the position after the newest value."""
        oldest, end = BOUNDS_ARG.unpack(self._ioctl(IOCTL_BOUNDS, bytes(BOUNDS_ARG.size)))
        return oldest, end

    def read(self) -> list[Entry]:
        """The values decided next, at least one; [] once the daemon stopped.

        Raises:
            ValuesLost: values were lost here (the next read goes on after them).
            LogError: the device failed.
        """
        try:
            data = os.read(self._fd, READ_SIZE)
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise ValuesLost(self._last) from None
            raise LogError(f"reading {self._path} failed: {exc.strerror}") from None
        entries: list[Entry] = []
        at = 0
        while at < len(data):
            position, length = FRAME_HEAD.unpack_from(data, at)
            at += FRAME_HEAD.size
            entries.append(Entry(position, data[at : at + length]))
            at += length
        if entries:
            self._last = entries[-1].position
        return entries

    def __iter__(self) -> Iterator[Entry]:
        """Every value from the start on, until the daemon stops (ValuesLost may
        interrupt: iterate again to go on)."""
        while entries := self.read():
            yield from entries

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> LogReader:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _ioctl(self, command: int, argument: bytes | None) -> bytes:
        if argument is None:
            fcntl.ioctl(self._fd, command)
            return b""
        return bytes(fcntl.ioctl(self._fd, command, argument))


def reader_bounds(path: str = DEFAULT_DEVICE) -> tuple[int, int]:
    """The oldest position the learner at ``path`` retains, and the one after its newest.

    Raises:
        LogError: the device cannot be opened or does not know positions.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise LogError(f"cannot open {path}: {exc.strerror}") from None
    try:
        return LogReader(fd, path).bounds()
    except OSError as exc:
        raise LogError(f"{path} does not say what it retains: {exc.strerror}") from None
    finally:
        os.close(fd)
