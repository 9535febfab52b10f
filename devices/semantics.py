"""What the two device files mean, whichever door serves them.

``learner`` (``/dev/kpaxos-learner``): every open is its own reader with its own cursor,
starting at the oldest value the log retains. A read returns the decided values' bytes
in order, as many whole or partial values as fit (the rest of a value comes next). With
nothing to read it blocks (the request is answered later), or fails with EAGAIN under
O_NONBLOCK; once the log is closed and the reader has everything it reads EOF. A reader
whose cursor the log has trimmed away gets EPIPE once and then continues from the
oldest retained value — what ``/dev/kmsg`` does for a reader overtaken by its ring, so
a loss is never silent. poll reports POLLIN when a read would not block (data, EOF or
that error) and POLLOUT always. Writes are refused with EINVAL until record mode (a
later issue) gives them a meaning: see :meth:`LearnerHandle.write`.

``client`` (``/dev/kpaxos-client``): each write is one proposal of exactly the bytes
written, answered with their count once decided, or with the proposal's errno
(EMSGSIZE, ETIMEDOUT, EIO). An interrupted write answers EINTR at once and withdraws
our interest, but the value may still be decided. Reads fail with EINVAL: there is
nothing to read. A shell's ``>`` (O_TRUNC) is fine; poll reports POLLOUT.

Nothing here knows the kernel ABI: handles answer through :class:`devices.engine.Request`.
"""

from __future__ import annotations

import enum
import errno
import logging
import select
from collections import deque

import trio

from devices.engine import FileServices, Request, RequestError
from kpaxosd.interface import ProposalError, Proposals, ReaderTooFarBehind, ValueLog

logger = logging.getLogger("kpaxos.devices")

_READABLE = select.POLLIN | select.POLLRDNORM
_WRITABLE = select.POLLOUT | select.POLLWRNORM


class ReadMode(enum.Enum):
    #: Decided values' bytes, concatenated (the default).
    STREAM = enum.auto()
    # RECORD (a later issue): chosen by a first write of exactly 8 bytes.


class LearnerDevice:
    """The learner file: readers of ``log``."""

    def __init__(self, log: ValueLog) -> None:
        self._log = log
        self._handles: set[LearnerHandle] = set()
        self._handles_changed = trio.Event()

    def open(self, flags: int, services: FileServices) -> LearnerHandle:
        handle = LearnerHandle(self, self._log, services)
        self._handles.add(handle)
        return handle

    @property
    def open_readers(self) -> int:
        return len(self._handles)

    async def wait_readers_done(self) -> None:
        """Return once no reader can still drain: the log is open (nothing will end
        their stream) or every reader has closed its handle."""
        while self._log.closed and self._handles:
            await self._handles_changed.wait()

    def _closed(self, handle: LearnerHandle) -> None:
        self._handles.discard(handle)
        changed, self._handles_changed = self._handles_changed, trio.Event()
        changed.set()


class LearnerHandle:
    """One open of the learner file: a cursor into the log and the reads waiting on it."""

    def __init__(self, device: LearnerDevice, log: ValueLog, services: FileServices) -> None:
        self._device = device
        self._log = log
        self._services = services
        self._mode = ReadMode.STREAM
        self._index = log.first_index  # the next value to read from
        self._offset = 0  # bytes of that value already read
        self._waiting: deque[tuple[Request, int]] = deque()
        self._poll_kh: int | None = None
        self._unsubscribe = log.subscribe(self._log_changed)

    # -- the engine's side --------------------------------------------------------------

    def read(self, request: Request, size: int, nonblocking: bool) -> None:
        if size == 0:
            request.reply(b"")
            return
        self._drop_answered()
        if not self._waiting and self._try_answer(request, size):
            return
        if nonblocking:
            raise RequestError(errno.EAGAIN)
        self._waiting.append((request, size))

    def write(self, request: Request, data: bytes, nonblocking: bool) -> None:
        # Record mode will start here: a first write of exactly 8 bytes (the original
        # learner's size_t value size) switches self._mode to RECORD.
        raise RequestError(errno.EINVAL, "the learner device takes no writes")

    def poll(self, kh: int | None) -> int:
        revents = _WRITABLE
        if self._readable():
            revents |= _READABLE
            if self._index < self._log.first_index:
                revents |= select.POLLERR
        elif kh is not None:
            self._poll_kh = kh
        return revents

    def release(self) -> None:
        self._unsubscribe()
        self._poll_kh = None
        for request, _ in self._waiting:
            request.fail(errno.EBADF)
        self._waiting.clear()
        self._device._closed(self)

    # -- the log's side -----------------------------------------------------------------

    def _log_changed(self) -> None:
        # A ValueLog listener: runs inside log.append/close, so it must never raise.
        try:
            self._drop_answered()
            while self._waiting:
                request, size = self._waiting[0]
                if not self._try_answer(request, size):
                    break
                self._waiting.popleft()
            if self._poll_kh is not None and self._readable():
                kh, self._poll_kh = self._poll_kh, None
                self._services.notify_poll(kh)
        except Exception:
            logger.exception("learner reader failed to follow the log")

    # -- the cursor ---------------------------------------------------------------------

    def _readable(self) -> bool:
        """Would a read be answered now (data, EOF, or the trimmed-away error)?"""
        self._skip_empty()
        return self._index < self._log.next_index or self._log.closed

    def _skip_empty(self) -> None:
        log = self._log
        while self._offset == 0 and log.first_index <= self._index < log.next_index:
            if log.get(self._index).value:
                return
            self._index += 1

    def _try_answer(self, request: Request, size: int) -> bool:
        """Answer ``request`` if there is anything to say; False if it must wait."""
        try:
            data = self._take(size)
        except ReaderTooFarBehind as exc:
            logger.warning("a learner reader lost values: %s", exc)
            self._index, self._offset = exc.first_index, 0
            request.fail(errno.EPIPE)
            return True
        if data or self._log.closed:
            request.reply(data)  # b"" after close: EOF
            return True
        return False

    def _take(self, size: int) -> bytes:
        """Up to ``size`` bytes from the cursor on, advancing it.

        Raises:
            ReaderTooFarBehind: the cursor was trimmed away (and nothing was taken).
        """
        log = self._log
        pieces: list[bytes | memoryview] = []
        room = size
        while room > 0 and self._index < log.next_index:
            value = log.get(self._index).value  # only the first get can be too far behind
            end = self._offset + room
            if self._offset == 0 and end >= len(value):
                pieces.append(value)
            else:
                pieces.append(memoryview(value)[self._offset:end])
            taken = min(len(value) - self._offset, room)
            room -= taken
            if self._offset + taken == len(value):
                self._index, self._offset = self._index + 1, 0
            else:
                self._offset += taken
        return b"".join(pieces)

    def _drop_answered(self) -> None:
        # Interrupted reads were answered by the engine; forget them.
        if any(request.answered for request, _ in self._waiting):
            self._waiting = deque(item for item in self._waiting if not item[0].answered)


class ClientDevice:
    """The client file: every write is a proposal."""

    def __init__(self, proposals: Proposals) -> None:
        self._proposals = proposals

    def open(self, flags: int, services: FileServices) -> ClientHandle:
        return ClientHandle(self._proposals, services)


class ClientHandle:
    def __init__(self, proposals: Proposals, services: FileServices) -> None:
        self._proposals = proposals
        self._services = services

    def read(self, request: Request, size: int, nonblocking: bool) -> None:
        raise RequestError(errno.EINVAL, "the client device cannot be read")

    def write(self, request: Request, data: bytes, nonblocking: bool) -> None:
        if not data:
            request.reply_written(0)
            return
        self._services.start_soon(self._propose, request, data)

    def poll(self, kh: int | None) -> int:
        return _WRITABLE

    def release(self) -> None:
        pass

    async def _propose(self, request: Request, data: bytes) -> None:
        with trio.CancelScope() as scope:
            request.on_interrupt = scope.cancel
            try:
                iid = await self._proposals.propose(data)
            except ProposalError as exc:
                logger.debug("proposal of %d bytes failed: %r", len(data), exc)
                request.fail(exc.errno)
                return
            except Exception:
                logger.exception("proposal of %d bytes failed", len(data))
                request.fail(errno.EIO)
                return
            logger.debug("proposal of %d bytes decided in instance %d", len(data), iid)
            request.reply_written(len(data))
        # Cancelled: by an interrupt (already answered EINTR) or because the engine
        # stops (it answers every pending request with EIO).


__all__ = ["ClientDevice", "ClientHandle", "LearnerDevice", "LearnerHandle", "ReadMode"]
