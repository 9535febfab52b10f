"""What the two device files mean, whichever door serves them.

``learner`` (``/dev/kpaxos-learner``): every open is its own reader with its own cursor,
starting at the oldest value the log retains. A read returns the decided values' bytes
in order, as many whole or partial values as fit (the rest of a value comes next). With
nothing to read it blocks (the request is answered later), or fails with EAGAIN under
O_NONBLOCK; once the log is closed and the reader has everything it reads EOF. A reader
whose cursor the log has trimmed away gets EPIPE once and then continues from the
oldest retained value — what ``/dev/kmsg`` does for a reader overtaken by its ring, so
a loss is never silent. A reader that reaches a gap in the log (instances the acceptors
trimmed before this learner learned them) gets EPIPE there, once, the same way. poll
reports POLLIN when a read would not block (data, EOF or that error) and POLLOUT always.

Record mode, the original user-space learner's protocol (``wire.original``), in the
three forms of the 2017 programs, told apart by the first write: 8 bytes are a native
``size_t`` value size V (8ae324a, 175aafb); 9 or 10 bytes starting with ``'0'`` are
3891411's command, ``'0'`` and V, with a 10th byte ``'1'`` when the program trims.
From then on every read returns exactly one record of 4 + V bytes — an int32 iid,
then the value zero-padded or cut to V — starting at the next value decided after
that write, as the original device did. A record's iid is the value's number in this
learner's log (1 for the first value it delivered since the daemon started), so
every record has its own, consecutive, whatever the batching. A 3891411 reader's
later writes are commands too: ``'1'`` and a record iid trims the acceptors up to the
instance of that value (with the trim flag; without it, as the original, they are
taken and ignored), and another ``'0'`` is ignored. A read buffer smaller than a
record gets EINVAL (never a partial record). Every other write to the learner is
EINVAL, logged once per open file with the bytes received.

Positions (``wire.device``): restricted ioctls let a reader start elsewhere (START: at
or after a position, after one, at the oldest value, at the next value from now; a
position older than the oldest retained is ERANGE), learn what is retained (BOUNDS),
read frames (FRAMED: each value with its position and length, empty ones too, only
whole frames; a buffer too small for the next frame is EINVAL), wait for a read
barrier (BARRIER: answered once every value decided before it began is in the log,
with the end position; ENOTCONN without a quorum) and ask whether the learner hears
from a quorum (QUORUM; poll adds POLLPRI while the last answer no longer holds).
Other ioctls are ENOTTY.

``client`` (``/dev/kpaxos-client``): each write is one proposal of exactly the bytes
written, answered with their count once decided, or with the proposal's errno
(EMSGSIZE, ETIMEDOUT, EIO) — except that a write of whole 4096-byte blocks not ending
in a newline is continued by the next write on the same open file, or ended by its
close, because that is how stdio (``echo``, ``printf``) writes one long value: such a
write is answered at once, and the write (or, through FUSE, the close) that ends the
value answers for all of it. An interrupted write answers EINTR at once and withdraws
our interest, but the value may still be decided.

With O_NONBLOCK a write is answered as soon as its value is queued (EMSGSIZE at once
for one too large), or EAGAIN while the node has no room for another value in flight;
poll reports POLLOUT when there is room again. Its outcome comes in the receipts.

A read returns write receipts: one line per value written on this open file, in the
order written — the position it was decided at, in decimal, or for a non-blocking
write that failed its negative errno (``-110`` for ETIMEDOUT) — and none for a
blocking write that failed (its writer was told). A blocking read takes one line at
most and waits while a value written is undecided; a non-blocking one takes every whole
line that fits, or EAGAIN. A read with no receipt due is EOF. A file opened write-only
keeps no receipts; one that leaves more than MAX_UNREAD_RECEIPTS unread loses the
oldest, and its next read fails with EPIPE once. A shell's ``>`` (O_TRUNC) is fine;
poll reports POLLIN with a receipt to read (or at EOF), and tells a waiting poller.

FRAMED (``wire.device``) on a client file: from then on every write is whole frames,
each a value to propose with its own receipt, many in one write(2) (at most
LARGEST_WHOLE_WRITE bytes: the kernel cuts longer ones); a write is answered once all
its values are queued (EAGAIN without room under O_NONBLOCK, else once there is room),
and every outcome, failure too, comes in the receipts. A frame cut short or empty is
EINVAL, one too large EMSGSIZE; either way nothing of that write is proposed.

Nothing here knows the kernel ABI: handles answer through :class:`devices.engine.Request`.
"""

from __future__ import annotations

import enum
import errno
import logging
import os
import select
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable
from functools import partial
from itertools import accumulate, islice
from typing import NoReturn

import trio

from devices.engine import (
    ANY_POLL_EVENT,
    LARGEST_WHOLE_WRITE,
    FileServices,
    Request,
    RequestError,
)
from devices.ports import Barriers, Outcome, Proposal, ProposalError, Proposals
from devices.valuelog import ReaderTooFarBehind, ValueLog
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
    WRITE_FRAME_HEAD,
    StartAt,
    iid_of,
)
from wire.original import (
    RECORD_HEADER_SIZE,
    SizeWrite,
    TrimWrite,
    pack_record,
    parse_device_write_untrusted,
)

logger = logging.getLogger("kpaxos.devices")

_READABLE = select.POLLIN | select.POLLRDNORM
_WRITABLE = select.POLLOUT | select.POLLWRNORM


#: Values fetched from the log at a time by a stream-mode read.
_TAKE_CHUNK = 1024

#: The largest value size a record-mode reader may ask for: a record must reach the
#: reader in one READ, and the kernel cuts reads like writes.
MAX_RECORD_VALUE_SIZE = LARGEST_WHOLE_WRITE - RECORD_HEADER_SIZE


class ReadMode(enum.Enum):
    """How a learner handle reads, and whether a write may still change that."""

    #: Nothing written yet: reads stream, and a first write of 8 bytes picks RECORD.
    FRESH = enum.auto()
    #: Decided values' bytes, concatenated, for good (a first write was refused).
    STREAM = enum.auto()
    #: One record of 4 + value size bytes per read (the original learner's protocol).
    RECORD = enum.auto()
    #: Whole frames: each value's position and length, then the value (wire.device).
    FRAMED = enum.auto()


def record_iid(index: int) -> int:
    """The iid of the record of the value at log ``index``: every record its own,
    consecutive whatever the batching (the value's number in the log, from 1), an
    int32 that wraps past 2**31 as the original's C cast did."""
    return (index + 1 + 2**31) % 2**32 - 2**31


class LearnerDevice:
    """The learner file: readers of ``log``, and their barriers (None: no BARRIER nor
    QUORUM, ENOTTY)."""

    def __init__(self, log: ValueLog, barriers: Barriers | None = None,
                 trim_acceptors: Callable[[int], None] | None = None) -> None:
        self._log = log
        self.barriers = barriers
        #: Lets the acceptors forget up to an instance (a 2017-09-18 reader's trims).
        self.trim_acceptors = trim_acceptors
        if barriers is not None:
            barriers.when_reach_changes(self._reach_changed)
        self._handles: set[LearnerHandle] = set()
        self._handles_changed = trio.Event()
        #: Bytes given to readers so far: a shutdown waits while this grows.
        self.bytes_read = 0

    def open(self, flags: int, services: FileServices) -> LearnerHandle:
        handle = LearnerHandle(self, self._log, services)
        self._handles.add(handle)
        return handle

    @property
    def open_readers(self) -> int:
        return len(self._handles)

    def reader_lags(self) -> list[int]:
        """How many delivered values each open reader has not read yet."""
        next_index = self._log.next_index
        return [next_index - handle.index for handle in self._handles]

    async def wait_readers_done(self) -> None:
        """Return once no reader can still drain: the log is open (nothing will end
        their stream) or every reader has closed its handle."""
        while self._log.closed and self._handles:
            await self._handles_changed.wait()

    @property
    def reachable(self) -> bool:
        return self.barriers is None or self.barriers.reachable

    def _reach_changed(self, reachable: bool) -> None:
        for handle in list(self._handles):
            handle.reach_changed()

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
        self._mode = ReadMode.FRESH
        self._value_size = 0  # V, in RECORD mode
        # RECORD mode from a 2017-09-18 command (its later writes are commands), and
        # whether its trim writes trim.
        self._commands = False
        self._trims = False
        self._said_refused = False
        self._said_trims = False
        self._index = log.first_index  # the next value to read from
        self._offset = 0  # bytes of that value already read
        # START at a position not delivered yet: values below it are passed over.
        self._floor: int | None = None
        self._waiting: deque[tuple[Request, int]] = deque()
        self._poll_kh: int | None = None
        # What this file was last told of the quorum (QUORUM), or saw at open.
        self._reach_told = device.reachable
        self._unsubscribe = log.subscribe(self._log_changed)

    # -- the engine's side --------------------------------------------------------------

    @property
    def mode(self) -> ReadMode:
        return self._mode

    @property
    def index(self) -> int:
        """The log index this reader reads next (ValueLog counts in indices)."""
        return self._index

    def read(self, request: Request, size: int, nonblocking: bool) -> None:
        if self._mode is ReadMode.RECORD and size < RECORD_HEADER_SIZE + self._value_size:
            raise RequestError(errno.EINVAL, "the read buffer cannot hold a whole record")
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
        # The first write may set a record value size (in any of the 2017 forms);
        # after any other first write the handle streams for good. Later writes
        # mean something only to a 2017-09-18 reader, whose writes are commands.
        fresh = self._mode is ReadMode.FRESH
        if fresh:
            self._mode = ReadMode.STREAM
        command = parse_device_write_untrusted(data)
        if not fresh and self._commands and command is not None:
            self._later_command(command)
            request.reply_written(len(data))
            return
        if not fresh or not isinstance(command, SizeWrite):
            self._refuse_write(data, "the learner device takes a first write of the record "
                                     "value size (8 bytes, or a 9- or 10-byte command '0'), "
                                     "and from a reader that wrote the command, commands")
        value_size = command.value_size
        if value_size > MAX_RECORD_VALUE_SIZE:
            self._refuse_write(data, f"record value size {value_size} is larger than "
                                     f"{MAX_RECORD_VALUE_SIZE}")
        self._mode, self._value_size = ReadMode.RECORD, value_size
        self._commands, self._trims = command.flagged, command.trims
        # The original delivered only what was decided after this write.
        self._index, self._offset = self._log.next_index, 0
        request.reply_written(len(data))
        # Reads already waiting (from another thread) now wait for records; those too
        # small for one never will get one.
        for waiting, size in self._waiting:
            if size < RECORD_HEADER_SIZE + value_size:
                waiting.fail(errno.EINVAL)
        self._drop_answered()

    def _later_command(self, command: SizeWrite | TrimWrite) -> None:
        """A 2017-09-18 reader's command after its first: the original ignored a
        second value size, and trims without the trim flag."""
        if not isinstance(command, TrimWrite) or not self._trims or command.iid < 1:
            return
        trim = self._device.trim_acceptors
        log = self._log
        index = command.iid - 1  # record_iid, back (a trim point past 2**31 is not one)
        if trim is None or index >= log.next_index:
            return  # no learner to trim through, or a record not delivered yet
        # Its instance was delivered whole (a gap's too: passed); one let go of lies
        # before the oldest held.
        iid = (iid_of(log.position_at(index)) if index >= log.first_index
               else iid_of(log.oldest_position) - 1)
        if iid < 1:
            return
        if not self._said_trims:
            self._said_trims = True
            logger.info("a reader of the learner device in the 2017-09-18 protocol trims "
                        "the acceptors (its first trim: up to instance %d)", iid)
        trim(iid)

    def _refuse_write(self, data: bytes, why: str) -> NoReturn:
        """EINVAL, said in the log the first time on this file with what came."""
        if not self._said_refused:
            self._said_refused = True
            shown = data[:32].hex() + ("..." if len(data) > 32 else "")
            logger.warning("learner device: refused a write of %d bytes (%s): %s; further "
                           "refusals on this open file are not logged", len(data), shown, why)
        raise RequestError(errno.EINVAL, why)

    def ioctl(self, request: Request, cmd: int, data: bytes, out_size: int) -> None:
        if cmd == IOCTL_START:
            self._start(data)
            request.reply_ioctl(0)
            self._log_changed()  # reads already waiting now wait for the new start
        elif cmd == IOCTL_BOUNDS:
            log = self._log
            request.reply_ioctl(0, BOUNDS_ARG.pack(log.oldest_position, log.end_position))
        elif cmd == IOCTL_FRAMED:
            if self._mode is ReadMode.RECORD or self._offset:
                raise RequestError(errno.EINVAL, "only a reader at a value's start, not in "
                                                 "record mode, can read frames")
            self._mode = ReadMode.FRAMED
            request.reply_ioctl(0)
        elif cmd == IOCTL_BARRIER and self._device.barriers is not None:
            self._barrier(request, self._device.barriers)
        elif cmd == IOCTL_QUORUM and self._device.barriers is not None:
            self._reach_told = reachable = self._device.reachable
            request.reply_ioctl(0, QUORUM_ARG.pack(int(reachable)))
        else:
            raise RequestError(errno.ENOTTY)

    def _barrier(self, request: Request, barriers: Barriers) -> None:
        def over(outcome: Outcome) -> None:
            if isinstance(outcome, ProposalError):
                request.fail(outcome.errno)
            else:
                request.reply_ioctl(0, BARRIER_ARG.pack(outcome))

        try:
            pending = barriers.barrier(over)
        except ProposalError as exc:
            raise RequestError(exc.errno, str(exc)) from None
        request.on_interrupt = pending.withdraw

    def reach_changed(self) -> None:
        """The learner's reach changed: a poller waiting for POLLPRI is told."""
        self._notify_poll()

    def _notify_poll(self) -> None:
        if self._poll_kh is not None:
            kh, self._poll_kh = self._poll_kh, None
            self._services.notify_poll(kh)

    def _start(self, data: bytes) -> None:
        if len(data) != START_ARG.size:
            raise RequestError(errno.EINVAL, "START takes a struct kpaxos_start")
        position, number, reserved = START_ARG.unpack(data)
        try:
            how = StartAt(number)
        except ValueError:
            raise RequestError(errno.EINVAL, f"no such START: {number}") from None
        if reserved:
            raise RequestError(errno.EINVAL, "START's reserved word must be 0")
        if self._mode is ReadMode.RECORD:
            raise RequestError(errno.EINVAL, "a record-mode reader reads from its size write on")
        log = self._log
        self._offset, self._floor = 0, None
        if how == StartAt.OLDEST:
            self._index = log.first_index
            return
        if how == StartAt.NOW:
            self._index = log.next_index
            return
        if how == StartAt.AFTER:
            position += 1
        try:
            self._index = log.index_of(position)
        except ReaderTooFarBehind:
            raise RequestError(errno.ERANGE, f"position {position} is older than the "
                                             f"oldest retained, {log.oldest_position}") from None
        if self._index == log.next_index:
            self._floor = position

    def poll(self, kh: int | None, events: int = ANY_POLL_EVENT) -> int:
        revents = _WRITABLE
        if self._readable():
            revents |= _READABLE
            if self._index < self._log.first_index or self._log.is_gap(self._index):
                revents |= select.POLLERR
        if self._reach_told != self._device.reachable:
            revents |= select.POLLPRI
        if kh is not None and not revents & events & ~_WRITABLE:
            # Even with data to read: a poller that asked for POLLPRI alone waits.
            # (POLLOUT is always there: a poller that asked for it does not wait.)
            self._poll_kh = kh
        return revents

    def flush(self, request: Request) -> None:
        request.reply()

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
                self._notify_poll()
        except Exception:
            logger.exception("learner reader failed to follow the log")

    # -- the cursor ---------------------------------------------------------------------

    def _readable(self) -> bool:
        """Would a read be answered now (data, EOF, or the trimmed-away error)?"""
        self._skip_empty()
        return self._index < self._log.next_index or self._log.closed

    def _skip_empty(self) -> None:
        log = self._log
        if self._floor is not None and log.first_index <= self._index < log.next_index:
            # Values decided after a START at a position to come may lie below it.
            floor = max(self._floor, log.oldest_position)
            self._index = max(self._index, log.index_of(floor))
            if self._index < log.next_index:
                self._floor = None
        # An empty value adds no bytes to a stream; a record or a frame still counts.
        if self._mode is ReadMode.RECORD or self._mode is ReadMode.FRAMED:
            return
        while self._offset == 0 and log.first_index <= self._index < log.next_index:
            if log.is_gap(self._index) or log.value_at(self._index):
                return
            self._index += 1

    def _try_answer(self, request: Request, size: int) -> bool:
        """Answer ``request`` if there is anything to say; False if it must wait."""
        try:
            self._skip_empty()
            if self._mode is ReadMode.RECORD:
                data = self._take_record()
            elif self._mode is ReadMode.FRAMED:
                data = self._take_frames(size)
            else:
                data = self._take(size)
        except ReaderTooFarBehind as exc:
            logger.warning("a learner reader lost values: %s", exc)
            self._index, self._offset, self._floor = exc.first_index, 0, None
            request.fail(errno.EPIPE)
            return True
        except RequestError as exc:
            request.fail(exc.errno)
            return True
        if data or self._log.closed:
            request.reply(data)  # b"" after close: EOF
            self._device.bytes_read += len(data)
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
        index, offset = self._index, self._offset
        while room > 0 and index < log.next_index:
            if room < size and log.is_gap(index):
                break  # what came before the gap now, its error on the next read
            # Values come a slice at a time; only the first slice can be too far behind.
            chunk = log.values_from(index, _TAKE_CHUNK)
            rest: Iterable[bytes] = chunk
            if offset == 0:
                # The whole values that fit, found without a turn per value: under
                # load a read takes hundreds of values, all of them whole.
                ends = list(accumulate(map(len, chunk)))
                whole = bisect_right(ends, room)
                if whole:
                    pieces.extend(chunk[:whole])
                    room -= ends[whole - 1]
                    index += whole
                    rest = islice(chunk, whole, None)
            for value in rest:
                if room == 0:
                    break
                length = len(value)
                if offset == 0 and length <= room:
                    pieces.append(value)
                    room -= length
                    index += 1
                    if room == 0:
                        break
                    continue
                taken = min(length - offset, room)
                pieces.append(memoryview(value)[offset : offset + taken])
                room -= taken
                if offset + taken == length:
                    index, offset = index + 1, 0
                else:
                    offset += taken
                if room == 0:
                    break
        self._index, self._offset = index, offset
        return b"".join(pieces)

    def _take_frames(self, size: int) -> bytes:
        """Whole frames from the cursor on, as many as fit in ``size`` bytes.

        Raises:
            ReaderTooFarBehind: the cursor was trimmed away or is at a gap.
            RequestError: EINVAL, the next frame does not fit in ``size``.
        """
        log = self._log
        pieces: list[bytes] = []
        room, index = size, self._index
        while index < log.next_index:
            if pieces and log.is_gap(index):
                break  # the frames before the gap now, its error on the next read
            for value in log.values_from(index, _TAKE_CHUNK):
                need = FRAME_HEAD.size + len(value)
                if need > room:
                    if not pieces:
                        raise RequestError(errno.EINVAL, "the read buffer cannot hold "
                                                         "the next frame")
                    self._index = index
                    return b"".join(pieces)
                pieces.append(FRAME_HEAD.pack(log.position_at(index), len(value)))
                pieces.append(value)
                room -= need
                index += 1
        self._index = index
        return b"".join(pieces)

    def _take_record(self) -> bytes:
        """The record of the value at the cursor (b"" if none yet), advancing it.

        Raises:
            ReaderTooFarBehind: the cursor was trimmed away.
        """
        if self._index >= self._log.next_index:
            return b""
        delivered = self._log.get(self._index)
        self._index += 1
        return pack_record(record_iid(self._index - 1), delivered.value, self._value_size)

    def _drop_answered(self) -> None:
        # Interrupted reads were answered by the engine; forget them.
        if any(request.answered for request, _ in self._waiting):
            self._waiting = deque(item for item in self._waiting if not item[0].answered)


#: glibc's stdio writes a long line in pieces: first as many whole buffers as it can
#: (its buffer is the file's st_blksize below BUFSIZ, else BUFSIZ: 4096 on a CUSE node,
#: 8192 through FUSE), then the rest when it flushes. So a write of whole blocks of
#: this size that does not end a line is taken to be continued by the next write.
CONTINUED_BLOCK = 4096


def continues(data: bytes) -> bool:
    """Whether a write of ``data`` is the start of a value the next write continues."""
    return len(data) % CONTINUED_BLOCK == 0 and not data.endswith(b"\n")


#: How long a non-blocking write's value may wait for the next writes' to go with it.
#: A program keeping values in flight one write each sends its next within tens of
#: microseconds; sent alone, each would cost a whole round of Paxos in the daemon.
PIPELINED_HOLD = 0.0005

#: Receipts a reader may leave unread: past this the oldest go, and its next read
#: fails with EPIPE once (as a learner reader overtaken by trimming does).
MAX_UNREAD_RECEIPTS = 1 << 16


class ClientDevice:
    """The client file: every write is a proposal."""

    def __init__(self, proposals: Proposals) -> None:
        self._proposals = proposals

    def open(self, flags: int, services: FileServices) -> ClientHandle:
        # A write-only file can never read its receipts: keep none.
        receipts = flags & os.O_ACCMODE != os.O_WRONLY
        return ClientHandle(self._proposals, services, receipts=receipts)


class _Receipt:
    """The place of one write in its file's receipts: its line, once known (b"" for a
    blocking write that failed: its writer was told, no line is due)."""

    __slots__ = ("line",)

    def __init__(self) -> None:
        self.line: bytes | None = None


class ClientHandle:
    def __init__(self, proposals: Proposals, services: FileServices, *,
                 receipts: bool = True) -> None:
        self._proposals = proposals
        self._services = services
        #: The start of a value written in pieces (see :data:`CONTINUED_BLOCK`).
        self._held = b""
        self._keeps_receipts = receipts
        # Write receipts: one per value written, in the order written, until its line
        # joins the lines readers get (the first maybe partly read); reads waiting.
        self._receipts: deque[_Receipt] = deque()
        self._lines: deque[bytes] = deque()
        self._line_offset = 0
        self._lines_lost = False
        self._reads: deque[tuple[Request, int, bool]] = deque()
        # The kernel's poll handle while a poller waits for a receipt or for room.
        self._poll_kh: int | None = None
        self._room_asked = False
        self._released = False
        # FRAMED: every write is whole frames of values (wire.device.WRITE_FRAME).
        self._framed = False

    def read(self, request: Request, size: int, nonblocking: bool) -> None:
        """Receipts: the position of each value written on this file, in decimal and a
        newline, in the order written; EOF when none is due (nothing to wait for). A
        blocking read takes one line at most, a non-blocking one every whole line that
        fits."""
        self._reads = deque(item for item in self._reads if not item[0].answered)
        if self._reads or not self._answer_read(request, size, nonblocking):
            if nonblocking:
                raise RequestError(errno.EAGAIN)
            self._reads.append((request, size, nonblocking))

    def _answer_read(self, request: Request, size: int, nonblocking: bool) -> bool:
        if self._lines_lost:
            self._lines_lost = False
            request.fail(errno.EPIPE)
            return True
        lines = self._lines
        if lines:
            first = lines[0]
            offset = self._line_offset
            if len(first) - offset > size:  # a line longer than the buffer: in pieces
                self._line_offset += size
                request.reply(first[offset:offset + size])
                return True
            pieces = [first[offset:] if offset else first]
            lines.popleft()
            self._line_offset = 0
            # One line a read, unless non-blocking: a CUSE device "seeks"
            # (noop_llseek), so a shell's read builtin takes a buffer, keeps one line
            # and seeks back for nothing; a pipelined writer reads thousands a second.
            if nonblocking:
                room = size - len(pieces[0])
                while lines and len(lines[0]) <= room:
                    room -= len(lines[0])
                    pieces.append(lines.popleft())
            request.reply(b"".join(pieces))
            return True
        if not self._receipts:
            request.reply(b"")  # nothing written waits for its decision: EOF
            return True
        return False

    def _receipts_changed(self) -> None:
        receipts, lines = self._receipts, self._lines
        while receipts and (line := receipts[0].line) is not None:
            receipts.popleft()
            if line:
                if len(lines) == MAX_UNREAD_RECEIPTS:
                    lines.popleft()
                    self._line_offset = 0
                    self._lines_lost = True
                lines.append(line)
        while self._reads:
            request, size, nonblocking = self._reads[0]
            if not request.answered and not self._answer_read(request, size, nonblocking):
                break
            self._reads.popleft()
        if self._poll_kh is not None and self._readable():
            self._notify_poll()

    def write(self, request: Request, data: bytes, nonblocking: bool) -> None:
        """A proposal: blocking, answered once decided; with O_NONBLOCK, answered once
        queued (EAGAIN while the node has no room), its outcome in the receipts."""
        if not data:
            request.reply_written(0)
            return
        if self._framed:
            self._write_frames(request, self._frames(data), len(data), nonblocking)
            return
        value = self._held + data if self._held else data
        if continues(data) and len(value) < self._proposals.max_value_size:
            # Answered at once: the writer's next write (or its close) ends the value.
            self._held = value
            request.reply_written(len(data))
            return
        if nonblocking and not self._proposals.has_room:
            raise RequestError(errno.EAGAIN)  # nothing taken, what is held stays held
        self._held = b""
        receipt = _Receipt()
        done = (partial(self._queued_over, receipt) if nonblocking
                else partial(self._write_over, request, len(data), receipt))
        if self._keeps_receipts:
            self._receipts.append(receipt)  # due from now: reads wait for it
        try:
            proposal = self._submit(value, done, hold=PIPELINED_HOLD if nonblocking else 0.0)
        except ProposalError as exc:
            receipt.line = b""
            self._receipts_changed()
            raise RequestError(exc.errno, str(exc)) from None
        if nonblocking:
            request.reply_written(len(data))
        else:
            request.on_interrupt = partial(self._interrupted, proposal, receipt)

    def _write_over(self, request: Request, written: int, receipt: _Receipt,
                    outcome: Outcome) -> None:
        if isinstance(outcome, ProposalError):
            logger.debug("proposal of %d bytes failed: %r", written, outcome)
            receipt.line = b""  # the writer is told: no receipt is due
            request.fail(outcome.errno)
        else:
            receipt.line = b"%d\n" % outcome
            request.reply_written(written)
        self._receipts_changed()

    def _queued_over(self, receipt: _Receipt, outcome: Outcome) -> None:
        # Nobody waits in write(2): the receipt says what became of the value, a
        # position or a negative errno.
        if isinstance(outcome, ProposalError):
            logger.debug("queued proposal failed: %r", outcome)
            receipt.line = b"%d\n" % -outcome.errno
        else:
            receipt.line = b"%d\n" % outcome
        self._receipts_changed()

    def _interrupted(self, proposal: Proposal, receipt: _Receipt) -> None:
        # The writer was told EINTR: nobody waits, no receipt is due (the value may
        # still be decided).
        proposal.withdraw()
        receipt.line = b""
        self._receipts_changed()

    def poll(self, kh: int | None, events: int = ANY_POLL_EVENT) -> int:
        revents = 0
        if self._proposals.has_room:
            revents |= _WRITABLE
        elif kh is not None and not self._room_asked:
            self._room_asked = True
            self._proposals.when_room(self._room_again)
        if self._readable():
            revents |= _READABLE
        if kh is not None and revents != _READABLE | _WRITABLE:
            self._poll_kh = kh  # told when either comes
        return revents

    def _readable(self) -> bool:
        # A receipt to read, the error of lost ones, or EOF.
        return bool(self._lines) or self._lines_lost or not self._receipts

    def _room_again(self) -> None:
        self._room_asked = False
        if self._poll_kh is not None:
            self._notify_poll()

    def _notify_poll(self) -> None:
        kh, self._poll_kh = self._poll_kh, None
        if kh is not None and not self._released:
            self._services.notify_poll(kh)

    def flush(self, request: Request) -> None:
        # close(2) of a value whose last write was a whole block: propose it now, and
        # let close return the outcome.
        value, self._held = self._held, b""
        if not value:
            request.reply()
            return
        try:
            proposal = self._submit(value, partial(_flush_over, request))
        except ProposalError as exc:
            raise RequestError(exc.errno, str(exc)) from None
        request.on_interrupt = proposal.withdraw

    def _submit(self, value: bytes, done: Callable[[Outcome], None],
                in_batch: bool = True, hold: float = 0.0) -> Proposal:
        """Propose; inside a batch of requests the values go out together at its end,
        held ones (``hold``) a little later, with the values of the next requests."""
        if hold:
            return self._proposals.submit(value, done, hold=hold)
        if not in_batch:
            return self._proposals.submit(value, done)
        proposal = self._proposals.submit(value, done, flush=False)
        self._services.at_batch_end(self._proposals.flush)
        return proposal

    def _frames(self, data: bytes) -> list[bytes]:
        """The values of a framed write, all checked before any is proposed."""
        values = []
        head, at, end = WRITE_FRAME_HEAD, 0, len(data)
        limit = self._proposals.max_value_size
        while at < end:
            if end - at < head.size:
                raise RequestError(errno.EINVAL, "a frame's length word is cut short")
            (length,) = head.unpack_from(data, at)
            at += head.size
            if length > end - at:
                raise RequestError(errno.EINVAL, f"a frame of {length} bytes is cut short")
            if length == 0:
                raise RequestError(errno.EINVAL, "a frame's value cannot be empty")
            if length > limit:
                raise RequestError(errno.EMSGSIZE, f"a value of {length} bytes exceeds "
                                                   f"the limit of {limit}")
            values.append(data[at:at + length])
            at += length
        return values

    def _write_frames(self, request: Request, values: list[bytes], written: int,
                      nonblocking: bool, in_batch: bool = True) -> None:
        """Queue every value of a framed write, each with its receipt; answered once
        queued. Without room: EAGAIN, or (blocking) answered once there is room."""
        if request.answered:
            return  # interrupted while it waited for room
        if not self._proposals.has_room:
            if nonblocking:
                raise RequestError(errno.EAGAIN)
            self._proposals.when_room(
                partial(self._write_frames_later, request, values, written))
            return
        for value in values:
            receipt = _Receipt()
            if self._keeps_receipts:
                self._receipts.append(receipt)
            try:
                self._submit(value, partial(self._queued_over, receipt), in_batch)
            except ProposalError as exc:  # the node is stopping
                receipt.line = b"%d\n" % -exc.errno
        self._receipts_changed()
        request.reply_written(written)

    def _write_frames_later(self, request: Request, values: list[bytes],
                            written: int) -> None:
        try:
            self._write_frames(request, values, written, False, in_batch=False)
        except RequestError as exc:
            request.fail(exc.errno)

    def ioctl(self, request: Request, cmd: int, data: bytes, out_size: int) -> None:
        if cmd != IOCTL_FRAMED:
            raise RequestError(errno.ENOTTY)
        if self._held:
            raise RequestError(errno.EINVAL, "a value written in part is not ended")
        self._framed = True
        request.reply_ioctl(0)

    def release(self) -> None:
        self._released = True
        self._poll_kh = None
        # CUSE has no FLUSH: a value ended by close is proposed here, where nobody can
        # be told the outcome but the log.
        value, self._held = self._held, b""
        if value:
            try:
                self._proposals.submit(value, partial(_close_over, len(value)))
            except ProposalError as exc:
                logger.warning("a value of %d bytes ended by close was not proposed: %s",
                               len(value), exc)


def _flush_over(request: Request, outcome: Outcome) -> None:
    if isinstance(outcome, ProposalError):
        request.fail(outcome.errno)
    else:
        request.reply()


def _close_over(size: int, outcome: Outcome) -> None:
    if isinstance(outcome, ProposalError):
        logger.warning("a value of %d bytes ended by close was not decided: %s", size,
                       outcome)
    else:
        logger.debug("a value of %d bytes ended by close decided in instance %d", size,
                     iid_of(outcome))


__all__ = ["ClientDevice", "ClientHandle", "LearnerDevice", "LearnerHandle", "ReadMode"]
