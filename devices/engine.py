"""One engine for the FUSE kernel protocol, shared by the CUSE and FUSE front doors.

The kernel hands requests out through a file descriptor (``/dev/cuse`` or
``/dev/fuse``): a ``fuse_in_header`` and a body per read. Every reply is one write of a
``fuse_out_header`` and a body, matched by ``unique``. The engine owns that descriptor's
loop and the operations both doors share — OPEN, READ, WRITE, RELEASE, FLUSH, FSYNC,
POLL, IOCTL, INTERRUPT, DESTROY — and hands every other opcode to its :class:`Door`.

A request the engine cannot answer at once (a read with nothing to read, a write whose
proposal is under way) simply stays pending: whoever holds its :class:`Request` answers
it later, and FUSE_INTERRUPT answers it with EINTR at once. That is what lets a signal
end a reader blocked on the device; the kernel waits for our answer even through
SIGKILL. When the engine stops, every request still pending is answered with EIO.

Replies are plain synchronous writes, so device code answers from wherever it learns
the answer (a ValueLog listener, a proposal's callback) without awaiting.
"""

from __future__ import annotations

import enum
import errno
import logging
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import trio

from devices.fuse_abi import (
    FOPEN_DIRECT_IO,
    FOPEN_NONSEEKABLE,
    FOPEN_PARALLEL_DIRECT_WRITES,
    FOPEN_STREAM,
    FUSE_BUFFER_HEADER_SIZE,
    FUSE_IOCTL_32BIT,
    FUSE_IOCTL_COMPAT,
    FUSE_IOCTL_COMPAT_X32,
    FUSE_IOCTL_DIR,
    FUSE_IOCTL_UNRESTRICTED,
    FUSE_MIN_READ_BUFFER,
    FUSE_POLL_SCHEDULE_NOTIFY,
    IN_HEADER,
    INTERRUPT_IN,
    KERNEL_MINOR_VERSION,
    KERNEL_VERSION,
    MIN_KERNEL_MINOR_VERSION,
    NO_REPLY_OPCODES,
    OUT_HEADER,
    READ_IN,
    WRITE_IN,
    WRITE_OUT,
    BadRequest,
    NotifyCode,
    Opcode,
    fuse_flush_in,
    fuse_ioctl_in,
    fuse_ioctl_out,
    fuse_open_in,
    fuse_open_out,
    fuse_poll_in,
    fuse_poll_out,
    fuse_release_in,
    parse_untrusted,
)

logger = logging.getLogger("kpaxos.devices")

#: The largest READ or WRITE the kernel sends us: 32 pages, the kernel's default
#: ``max_pages``, so nothing else needs negotiating.
DEFAULT_MAX_WRITE = 128 * 1024
#: The longest write() that always reaches us as one WRITE: the kernel cuts a direct
#: write into pieces of at most ``max_pages`` pages of the caller's buffer, and an
#: unaligned buffer spends one page on its ends. Values must not be longer, so that a
#: write cut in pieces fails (EMSGSIZE) on its first piece instead of proposing half.
LARGEST_WHOLE_WRITE = DEFAULT_MAX_WRITE - 4096
#: Open flags for every device file: no page cache, no seeking, no file position, and
#: writes in parallel. Each write to the client device waits for its value's decision:
#: without the last flag a FUSE mount runs one write of a file at a time (the inode
#: lock), and every writer waits for the decisions of those before it. The kernel
#: takes that lock all the same for a write ending past the file's size: the FUSE
#: door's client file says it is ``max_write`` bytes long. CUSE takes no lock.
DEVICE_OPEN_FLAGS = (FOPEN_DIRECT_IO | FOPEN_NONSEEKABLE | FOPEN_STREAM
                     | FOPEN_PARALLEL_DIRECT_WRITES)
#: Requests handled per wake-up before yielding to the rest of the daemon.
_BATCH = 256
#: Is this process 32-bit? A handle decodes an ioctl's argument as laid out in its own
#: ABI, so it serves callers of the same word size only (see Engine._ioctl).
_DAEMON_IS_32BIT = struct.calcsize("P") == 4
#: What a poller waits for when it does not say (Handle.poll): anything.
ANY_POLL_EVENT = 0xFFFF
#: The fuse_ioctl_in.flags the engine knows the meaning of; any other is refused.
_KNOWN_IOCTL_FLAGS = (FUSE_IOCTL_COMPAT | FUSE_IOCTL_UNRESTRICTED | FUSE_IOCTL_32BIT
                      | FUSE_IOCTL_DIR | FUSE_IOCTL_COMPAT_X32)
#: The largest ioctl(2) result: fuse_ioctl_out.result is an int32.
_LARGEST_IOCTL_RESULT = (1 << 31) - 1


class RequestError(Exception):
    """Raise from a request handler to answer the request with ``-errno``."""

    def __init__(self, err: int, message: str = "") -> None:
        super().__init__(message or os.strerror(err))
        self.errno = err


class _RequestState(enum.Enum):
    PENDING = enum.auto()
    ANSWERED = enum.auto()
    NO_REPLY = enum.auto()


class Request:
    """One request from the kernel, answered exactly once (later ones are ignored).

    Attributes:
        on_interrupt: called after FUSE_INTERRUPT answered this request with EINTR,
            for whoever works on it to stop (a write withdraws its proposal); let go
            of once the request is answered.
    """

    __slots__ = ("_engine", "_ioctl_out_size", "_state", "gid", "nodeid", "on_interrupt",
                 "opcode", "pid", "uid", "unique")

    def __init__(self, engine: Engine, unique: int, opcode: int, nodeid: int, uid: int,
                 gid: int, pid: int) -> None:
        self._engine = engine
        self._state = _RequestState.PENDING
        self.unique = unique
        self.opcode = opcode
        self.nodeid = nodeid
        self.uid = uid
        self.gid = gid
        self.pid = pid
        self.on_interrupt: Callable[[], None] | None = None
        #: An IOCTL's out_size (set by the engine): the most its reply may carry.
        self._ioctl_out_size: int | None = None

    @property
    def answered(self) -> bool:
        return self._state is not _RequestState.PENDING

    def reply(self, body: bytes = b"") -> None:
        """Answer with success and ``body`` (a READ's data, an operation's ``*_out``)."""
        self._engine._answer(self, 0, body)

    def reply_written(self, count: int) -> None:
        """Answer a WRITE: ``count`` bytes were taken."""
        self._engine._answer(self, 0, WRITE_OUT.pack(count))

    def reply_ioctl(self, result: int, out: bytes = b"") -> None:
        """Answer an IOCTL: ioctl(2) returns ``result`` (0 or more, at most 2**31 - 1)
        and ``out`` is copied to the caller's argument (at most the ``out_size`` bytes
        the handle was given; fewer leave the rest of the caller's buffer as it was).

        A reply that breaks these rules is a bug: it is logged and the ioctl fails with
        EIO instead, as the kernel would fail it for more than ``out_size`` bytes.
        """
        self._engine._answer_ioctl(self, result, out)

    def fail(self, err: int) -> None:
        """Answer with the error ``err`` (a positive errno)."""
        self._engine._answer(self, -err, b"")

    def __repr__(self) -> str:
        return f"<Request {self.unique} {_opname(self.opcode)} {self._state.name}>"


class FileServices(Protocol):
    """What the engine offers the file handles it opens."""

    def notify_poll(self, kh: int) -> None:
        """Tell the kernel that the poll handle ``kh`` may be ready now."""
        ...

    def at_batch_end(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the requests read together with this one are handled
        (once, however often it is asked for meanwhile)."""
        ...


class FileHandle(Protocol):
    """One open of a device file: what READ, WRITE, POLL and RELEASE reach."""

    def read(self, request: Request, size: int, nonblocking: bool) -> None:
        """Answer with up to ``size`` bytes now, or keep ``request`` and answer later."""
        ...

    def write(self, request: Request, data: bytes, nonblocking: bool) -> None:
        """Answer with ``request.reply_written(n)`` now or later, or raise RequestError."""
        ...

    def poll(self, kh: int | None, events: int = ANY_POLL_EVENT) -> int:
        """The ready ``POLL*`` events now; with ``kh``, notify it when that changes
        (needed only while none of ``events``, the ones the caller waits for, is)."""
        ...

    def flush(self, request: Request) -> None:
        """A descriptor of this open is closed (FUSE only: CUSE sends no FLUSH).

        Answer with ``request.reply()`` now or later; an error is what close(2) returns.
        """
        ...

    def ioctl(self, request: Request, cmd: int, data: bytes, out_size: int) -> None:
        """A restricted ioctl(2) ``cmd``: the kernel copied ``data`` from the caller's
        argument (``_IOC_SIZE(cmd)`` bytes if ``cmd`` has ``_IOC_WRITE``, else none)
        and copies back up to ``out_size`` bytes (``_IOC_SIZE(cmd)`` if it has
        ``_IOC_READ``, else 0).

        Answer with ``request.reply_ioctl(result, out)`` now or later, or
        ``request.fail(errno)``, or raise RequestError: ENOTTY for a ``cmd`` the file
        does not know, as ioctl(2) says.
        """
        ...

    def release(self) -> None:
        """The last descriptor of this open is closed (or the engine stopped)."""
        ...


class Device(Protocol):
    """A device file: every OPEN makes a new handle."""

    def open(self, flags: int, services: FileServices) -> FileHandle:
        """Open with the ``O_*`` ``flags`` of open(2).

        Raises:
            RequestError: the open is refused.
        """
        ...


class Door(Protocol):
    """What a front door adds to the engine.

    The CUSE door answers CUSE_INIT (``cuse_init_out`` and the device name) and
    returns its only device from :meth:`device_for`; the FUSE door answers FUSE_INIT
    and the operations of its one-directory file system.
    """

    def device_for(self, nodeid: int) -> Device | None:
        """The device that an OPEN of ``nodeid`` opens (None: refuse with EISDIR)."""
        ...

    def handle(self, engine: Engine, request: Request, body: memoryview) -> bool:
        """Answer an opcode the engine does not serve itself.

        Return False for an opcode the door does not know (the engine answers ENOSYS).
        Handlers may raise :class:`RequestError` or ``BadRequest``. Requests in
        ``NO_REPLY_OPCODES`` (FORGET, BATCH_FORGET) must not be answered.
        """
        ...


@dataclass(frozen=True, slots=True)
class EngineStatistics:
    requests: int
    pending: int
    open_handles: int
    interrupts: int
    polls_scheduled: int
    poll_notifications: int
    bad_requests: int
    unsupported: int


def negotiate_minor(major: int, minor: int) -> int:
    """The protocol minor to speak with a kernel that offers ``major.minor``.

    Raises:
        RequestError: EPROTO for a kernel we cannot talk to.
    """
    if major != KERNEL_VERSION or minor < MIN_KERNEL_MINOR_VERSION:
        raise RequestError(errno.EPROTO, f"unsupported FUSE protocol {major}.{minor}")
    return min(minor, KERNEL_MINOR_VERSION)


class Engine:
    """Serves one FUSE/CUSE connection over the non-blocking descriptor ``fd``.

    The engine does not own ``fd``: whoever opened it closes it after :meth:`run`.
    """

    def __init__(self, fd: int, door: Door, *, max_write: int = DEFAULT_MAX_WRITE) -> None:
        self._fd = fd
        self._door = door
        self.max_write = max_write
        self._buffer = bytearray(max(max_write + FUSE_BUFFER_HEADER_SIZE, FUSE_MIN_READ_BUFFER))
        self._pending: dict[int, Request] = {}
        self._handles: dict[int, FileHandle] = {}
        self._next_fh = 1
        # Called once the requests read in one wake-up are handled (at_batch_end).
        self._batch_end: list[Callable[[], None]] = []
        self._closed = False
        #: Set once the door has answered INIT; ``minor`` is then the protocol spoken.
        self.ready = trio.Event()
        self.minor: int | None = None
        #: Set when :meth:`run` has returned (and every pending request was answered).
        self.finished = trio.Event()
        self._requests = 0
        self._interrupts = 0
        self._polls_scheduled = 0
        self._poll_notifications = 0
        self._bad_requests = 0
        self._unsupported = 0
        self._handlers: dict[int, Callable[[Request, memoryview], bool | None]] = {
            Opcode.OPEN: self._open,
            Opcode.READ: self._read,
            Opcode.WRITE: self._write,
            Opcode.RELEASE: self._release,
            Opcode.FLUSH: self._flush,
            Opcode.FSYNC: self._nothing,
            Opcode.POLL: self._poll,
            Opcode.IOCTL: self._ioctl,
            Opcode.INTERRUPT: self._interrupt,
            Opcode.DESTROY: self._destroy,
        }

    # -- the loop ---------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until the kernel ends the connection, DESTROY, or cancellation.

        On the way out every pending request is answered with EIO and every open
        handle released; nothing is written to the descriptor afterwards.
        """
        try:
            await self._serve()
        finally:
            self._shut_down()

    async def _serve(self) -> None:
        fd, buffer = self._fd, self._buffer
        view = memoryview(buffer)
        while True:
            await trio.lowlevel.wait_readable(fd)
            try:
                if not self._read_batch(fd, buffer, view):
                    return
            finally:
                self._end_batch()

    def _read_batch(self, fd: int, buffer: bytearray, view: memoryview) -> bool:
        """Handle the requests there are, up to _BATCH; False once it is time to stop."""
        for _ in range(_BATCH):
            try:
                size = os.readv(fd, [buffer])
            except BlockingIOError:
                return True
            except OSError as exc:
                if exc.errno == errno.ENOENT:  # an interrupted request vanished
                    continue
                if exc.errno == errno.ENODEV:  # unmounted or aborted
                    logger.info("the kernel ended the FUSE connection")
                    return False
                raise
            if size == 0 or not self.feed(view[:size]):
                return False
        return True

    def feed(self, data: memoryview) -> bool:
        """Handle one request as read from the descriptor; False once it is time to stop.

        Never raises: a request that does not parse is answered with EINVAL (EIO when
        its header is damaged), an unknown opcode with ENOSYS, a bug with EIO.
        """
        self._requests += 1
        if len(data) < IN_HEADER.size:
            self._bad_requests += 1
            logger.warning("dropped a request of %d bytes: shorter than its header", len(data))
            return True
        length, opcode, unique, nodeid, uid, gid, pid, extlen = IN_HEADER.unpack_from(data)
        request = Request(self, unique, opcode, nodeid, uid, gid, pid)
        if opcode in NO_REPLY_OPCODES:
            request._state = _RequestState.NO_REPLY
        else:
            self._pending[unique] = request
        if length != len(data) or extlen * 8 > length - IN_HEADER.size:
            self._bad_requests += 1
            logger.warning("request %d (%s): length %d does not match the %d bytes read",
                           unique, _opname(opcode), length, len(data))
            request.fail(errno.EIO)
            return True
        body = data[IN_HEADER.size:length - extlen * 8]  # extensions trail the body
        try:
            handler = self._handlers.get(opcode)
            if handler is not None:
                if handler(request, body) is False:
                    return False
            elif not self._door.handle(self, request, body):
                self._unsupported += 1
                logger.debug("request %d: opcode %s is not supported", unique, _opname(opcode))
                request.fail(errno.ENOSYS)
        except RequestError as exc:
            request.fail(exc.errno)
        except BadRequest as exc:
            self._bad_requests += 1
            logger.warning("request %d (%s) does not parse: %s", unique, _opname(opcode), exc)
            request.fail(errno.EINVAL)
        except Exception:
            logger.exception("request %d (%s) failed", unique, _opname(opcode))
            request.fail(errno.EIO)
        return True

    def _shut_down(self) -> None:
        for request in list(self._pending.values()):
            request.fail(errno.EIO)
        handles, self._handles = list(self._handles.values()), {}
        for handle in handles:
            try:
                handle.release()
            except Exception:
                logger.exception("releasing %r failed", handle)
        self._closed = True
        self.finished.set()

    # -- output -----------------------------------------------------------------------

    def _answer(self, request: Request, error: int, body: bytes) -> None:
        if request._state is not _RequestState.PENDING:
            return
        request._state = _RequestState.ANSWERED
        request.on_interrupt = None  # it may hold what holds this request: no cycle
        self._pending.pop(request.unique, None)
        # Header and body in one writev: one message, without copying the body (a
        # learner read's can be 128 KiB) behind the header first.
        self._send(OUT_HEADER.pack(OUT_HEADER.size + len(body), error, request.unique), body)

    def _answer_ioctl(self, request: Request, result: int, out: bytes) -> None:
        if request.answered:
            return
        limit = request._ioctl_out_size
        if limit is None or len(out) > limit or not 0 <= result <= _LARGEST_IOCTL_RESULT:
            # Never send more than out_size: the kernel would fail the caller's ioctl
            # with EIO (fs/fuse/ioctl.c, fuse_do_ioctl), and a negative result would be
            # taken for an errno. The caller gets the EIO, and the bug a log line.
            logger.error("request %d (%s): ioctl reply of result %d and %d bytes, "
                         "%s bytes allowed", request.unique, _opname(request.opcode),
                         result, len(out), limit)
            request.fail(errno.EIO)
            return
        # A restricted ioctl's reply is fuse_ioctl_out, then the data for the caller;
        # flags and the iovec counts are for unrestricted ioctls only (FUSE_IOCTL_RETRY).
        self._answer(request, 0, fuse_ioctl_out.build(
            {"result": result, "flags": 0, "in_iovs": 0, "out_iovs": 0}) + out)

    def notify_poll(self, kh: int) -> None:
        """FUSE_NOTIFY_POLL for the kernel's poll handle ``kh``."""
        self._poll_notifications += 1
        self._send(OUT_HEADER.pack(OUT_HEADER.size + 8, NotifyCode.POLL, 0)
                   + INTERRUPT_IN.pack(kh))

    def _send(self, message: bytes, body: bytes = b"") -> None:
        """Write ``message`` and ``body`` after it, as one message."""
        # Called from ValueLog listeners and tasks: must never raise.
        if self._closed:
            return
        try:
            if body:
                os.writev(self._fd, (message, body))
            else:
                os.write(self._fd, message)
        except OSError as exc:
            # ENOENT: the kernel no longer waits for that request (its caller is gone);
            # ENODEV: the connection is gone. Both are normal around signals and exit.
            level = logging.DEBUG if exc.errno in (errno.ENOENT, errno.ENODEV) else logging.ERROR
            logger.log(level, "reply not delivered: %s", exc)

    # -- services for handles ---------------------------------------------------------

    def at_batch_end(self, callback: Callable[[], None]) -> None:
        if callback not in self._batch_end:
            self._batch_end.append(callback)

    def _end_batch(self) -> None:
        callbacks, self._batch_end = self._batch_end, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                logger.exception("a callback at the end of a batch of requests failed")

    def initialized(self, minor: int) -> None:
        """Called by the door once it has answered INIT."""
        self.minor = minor
        self.ready.set()

    def statistics(self) -> EngineStatistics:
        return EngineStatistics(
            requests=self._requests,
            pending=len(self._pending),
            open_handles=len(self._handles),
            interrupts=self._interrupts,
            polls_scheduled=self._polls_scheduled,
            poll_notifications=self._poll_notifications,
            bad_requests=self._bad_requests,
            unsupported=self._unsupported,
        )

    # -- the shared file operations ---------------------------------------------------

    def _handle(self, fh: int) -> FileHandle:
        try:
            return self._handles[fh]
        except KeyError:
            raise RequestError(errno.EBADF) from None

    def _open(self, request: Request, body: memoryview) -> None:
        arg = parse_untrusted(fuse_open_in, body)
        device = self._door.device_for(request.nodeid)
        if device is None:
            raise RequestError(errno.EISDIR)
        handle = device.open(arg.flags, self)
        fh, self._next_fh = self._next_fh, self._next_fh + 1
        self._handles[fh] = handle
        request.reply(fuse_open_out.build({"fh": fh, "open_flags": DEVICE_OPEN_FLAGS}))

    def _read(self, request: Request, body: memoryview) -> None:
        if len(body) < READ_IN.size:
            raise BadRequest(f"READ body of {len(body)} bytes")
        fh, _offset, size, _read_flags, _owner, flags = READ_IN.unpack_from(body)
        self._handle(fh).read(request, size, bool(flags & os.O_NONBLOCK))

    def _write(self, request: Request, body: memoryview) -> None:
        if len(body) < WRITE_IN.size:
            raise BadRequest(f"WRITE body of {len(body)} bytes")
        fh, _offset, size, _write_flags, _owner, flags = WRITE_IN.unpack_from(body)
        if len(body) - WRITE_IN.size != size:
            raise BadRequest(f"WRITE of {size} bytes carries {len(body) - WRITE_IN.size}")
        data = bytes(body[WRITE_IN.size:])
        self._handle(fh).write(request, data, bool(flags & os.O_NONBLOCK))

    def _release(self, request: Request, body: memoryview) -> None:
        arg = parse_untrusted(fuse_release_in, body)
        handle = self._handles.pop(arg.fh, None)
        if handle is not None:
            handle.release()
        request.reply()

    def _flush(self, request: Request, body: memoryview) -> None:
        arg = parse_untrusted(fuse_flush_in, body)
        handle = self._handles.get(arg.fh)
        if handle is None:  # released already: nothing of it left to flush
            request.reply()
        else:
            handle.flush(request)

    def _nothing(self, request: Request, body: memoryview) -> None:
        request.reply()

    def _poll(self, request: Request, body: memoryview) -> None:
        arg = parse_untrusted(fuse_poll_in, body)
        schedule = bool(arg.flags & FUSE_POLL_SCHEDULE_NOTIFY)
        if schedule:
            self._polls_scheduled += 1
        revents = self._handle(arg.fh).poll(arg.kh if schedule else None, arg.events)
        request.reply(fuse_poll_out.build({"revents": revents}))

    def _ioctl(self, request: Request, body: memoryview) -> None:
        arg = parse_untrusted(fuse_ioctl_in, body)
        data = body[fuse_ioctl_in.sizeof():]
        if len(data) != arg.in_size:
            raise BadRequest(f"IOCTL of {arg.in_size} bytes carries {len(data)}")
        # Refused with ENOTTY, ioctl(2)'s "this file does not take that request" (and
        # what the kernel answers for a driver without compat_ioctl, and makes of our
        # ENOSYS): EINVAL would tell the caller its argument was wrong. Checked before
        # the fh, which for FUSE_IOCTL_DIR is a directory's, not one of our handles.
        if arg.flags & (FUSE_IOCTL_UNRESTRICTED | FUSE_IOCTL_DIR | ~_KNOWN_IOCTL_FLAGS):
            # Unrestricted: the kernel sends them only to a CUSE server that asked
            # (CUSE_UNRESTRICTED_IOCTL, which the CUSE door never sets); it decodes no
            # argument then, and answering would take the FUSE_IOCTL_RETRY dance.
            # Directories have no ioctls; and a flag we do not know may change what
            # the request means.
            raise RequestError(errno.ENOTTY, f"ioctl flags {arg.flags:#x} not served")
        if (bool(arg.flags & FUSE_IOCTL_32BIT) != _DAEMON_IS_32BIT
                or arg.flags & FUSE_IOCTL_COMPAT_X32):
            # A caller of another word size may lay the same argument out otherwise (a
            # u64 is 4-aligned on i386, a long is 4 bytes): the handles read their own.
            raise RequestError(errno.ENOTTY, "ioctl from a caller of another ABI")
        handle = self._handle(arg.fh)
        request._ioctl_out_size = arg.out_size
        handle.ioctl(request, arg.cmd, bytes(data), arg.out_size)

    def _interrupt(self, request: Request, body: memoryview) -> None:
        # No reply to the INTERRUPT itself. The kernel sends it only for a request we
        # have already read; if that one is no longer pending we have answered it.
        if len(body) < INTERRUPT_IN.size:
            raise BadRequest(f"INTERRUPT body of {len(body)} bytes")
        (unique,) = INTERRUPT_IN.unpack_from(body)
        target = self._pending.get(unique)
        if target is None:
            return
        self._interrupts += 1
        withdraw = target.on_interrupt  # answering the request lets go of it
        target.fail(errno.EINTR)
        if withdraw is not None:
            withdraw()

    def _destroy(self, request: Request, body: memoryview) -> bool:
        request.reply()
        return False


def _opname(opcode: int) -> str:
    try:
        return Opcode(opcode).name
    except ValueError:
        return str(opcode)
