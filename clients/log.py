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

A read barrier makes a read linearizable: after a write acknowledged anywhere in the
cluster, :meth:`LogReader.until_now` gives every value up to the newest decided before
it was called (a quorum of acceptors confirms what that is), then stops::

    with LogReader.open(after=saved_position) as log:
        for entry in log.until_now():
            apply(entry.value)
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType

from wire.device import (
    BARRIER_ARG,
    BOUNDS_ARG,
    FRAME_HEAD,
    IOCTL_BARRIER,
    IOCTL_BOUNDS,
    IOCTL_FRAMED,
    IOCTL_QUORUM,
    IOCTL_START,
    QUORUM_ARG,
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


class NoQuorum(LogError):
    """The learner hears from no quorum of acceptors: nothing can be confirmed now."""


class LogReader:
    """A reader of the learner device in framed mode (see :mod:`wire.device`)."""

    def __init__(self, fd: int, path: str) -> None:
        self._fd = fd
        self._path = path
        self._last: int | None = None
        # Read past a barrier's end (read_before): what read() gives first.
        self._held: list[Entry] = []

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

    def barrier(self) -> int:
        """A read barrier: wait until every value decided in the cluster before now
        is in this learner's log (a quorum of acceptors confirms what that is), and
        return the position after the newest value in the log then.

        Raises:
            NoQuorum: the learner hears from no quorum of acceptors (ENOTCONN).
            LogError: the barrier failed (ETIMEDOUT after the daemon's client
                timeout, EIO when it stops), or the device knows no barriers.
        """
        try:
            (end,) = BARRIER_ARG.unpack(self._ioctl(IOCTL_BARRIER, bytes(BARRIER_ARG.size)))
        except OSError as exc:
            if exc.errno == errno.ENOTCONN:
                raise NoQuorum(f"{self._path}: the learner hears from no quorum of "
                               f"acceptors, so nothing can be confirmed now") from None
            if exc.errno == errno.ENOTTY:
                raise LogError(f"{self._path} knows no read barriers: is it a kpaxos "
                               f"learner device, of this version?") from None
            raise LogError(f"the read barrier on {self._path} failed: {exc.strerror}") from None
        return int(end)

    def quorum_reachable(self) -> bool:
        """Whether the learner hears from a quorum of acceptors now; poll(2) reports
        POLLPRI on this file once that is no longer the answer given."""
        (reachable,) = QUORUM_ARG.unpack(self._ioctl(IOCTL_QUORUM, bytes(QUORUM_ARG.size)))
        return bool(reachable)

    def read_before(self, end: int) -> list[Entry]:
        """The values in the log now before position ``end``, from the cursor: [] once
        this reader read them all. After :meth:`barrier`, with its ``end``, this
        never waits for a decision (what follows ``end`` waits for :meth:`read`).

        Raises:
            ValuesLost: values were lost here (the next read goes on after them).
            LogError: the device failed.
        """
        if self._held:
            entries = self._held
        else:
            flags = fcntl.fcntl(self._fd, fcntl.F_GETFL)
            fcntl.fcntl(self._fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
            try:
                entries = self._read_frames()
            except BlockingIOError:
                return []
            finally:
                fcntl.fcntl(self._fd, fcntl.F_SETFL, flags)
        before = [entry for entry in entries if entry.position < end]
        self._held = entries[len(before):]
        return before

    def until_now(self) -> Iterator[Entry]:
        """Every value from the cursor up to a read barrier (:meth:`barrier`), then
        stop (ValuesLost may interrupt: iterate :meth:`read_before` to go on)."""
        end = self.barrier()
        while entries := self.read_before(end):
            yield from entries

    def read(self) -> list[Entry]:
        """The values decided next, at least one; [] once the daemon stopped.

        Raises:
            ValuesLost: values were lost here (the next read goes on after them).
            LogError: the device failed.
        """
        if self._held:
            entries, self._held = self._held, []
            return entries
        return self._read_frames()

    def _read_frames(self) -> list[Entry]:
        try:
            data = os.read(self._fd, READ_SIZE)
        except BlockingIOError:
            raise
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
