"""Where the original programs read decided values from: the learner device in record
mode, or a kpaxos-learner over TCP, both yielding raw records (``int32 iid`` + V
bytes); or the learner device in stream mode, yielding the headers of the original
client values it carries."""

from __future__ import annotations

import errno
import os
from collections.abc import AsyncIterator, Iterator, Sequence

import trio

from wire.original import (
    ID_RANGE_CODEC,
    RECORD_HEADER_SIZE,
    VALUE_SIZE_WRITE,
    pack_size_command,
    pack_trim_command,
    split_client_values_untrusted,
)

#: Records read before other tasks get a turn.
DRAIN_LIMIT = 256

#: Bytes asked for by one read in stream mode: the largest READ the kernel sends the
#: device in one request (a larger read would become several requests, and the
#: second would wait for more values even with this one's bytes in hand).
STREAM_READ_SIZE = 128 * 1024

#: The TCP greeting of a client: the half-open range of client ids it wants
#: (wire.original.ID_RANGE).
ID_RANGE = ID_RANGE_CODEC


class SourceError(Exception):
    """The source of decided values failed or ended; the message is for the user."""


def open_record_device(path: str, value_size: int, *, trims: bool = False) -> int:
    """Open the learner device at ``path`` and switch the handle to record mode (with
    ``trims``, in the 2017-09-18 form whose trim writes trim the acceptors: see
    :func:`trim_through`).

    Raises:
        SourceError: the device cannot be opened or refuses record mode.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise SourceError(f"cannot open {path}: {exc.strerror}") from None
    try:
        os.write(fd, pack_size_command(value_size, trims=True) if trims
                 else VALUE_SIZE_WRITE.build(value_size))
    except OSError as exc:
        os.close(fd)
        raise SourceError(f"{path} refused record mode: {exc.strerror}") from None
    return fd


def trim_through(fd: int, record_iid: int) -> None:
    """Have the daemon's learner let the acceptors forget every instance up to the one
    of the record ``record_iid`` (a handle opened with ``trims``).

    Raises:
        SourceError: the device refused.
    """
    try:
        os.write(fd, pack_trim_command(record_iid))
    except OSError as exc:
        raise SourceError(f"the learner device refused a trim: {exc.strerror}") from None


async def device_records(fd: int, value_size: int) -> AsyncIterator[bytes]:
    """Records from a record-mode learner handle, one per read, until EOF."""
    size = RECORD_HEADER_SIZE + value_size
    while True:
        await trio.lowlevel.wait_readable(fd)
        # A bounded drain: with values arriving as fast as they are read, an unbounded
        # one would never give the other tasks (statistics, resends) a turn.
        for _ in range(DRAIN_LIMIT):
            try:
                record = os.read(fd, size)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise SourceError(f"reading the learner device failed: {exc.strerror}") from None
            if not record:
                raise SourceError("the learner device ended (the daemon stopped)")
            yield record


def open_stream_device(path: str) -> int:
    """Open the learner device at ``path`` for blocking reads in stream mode.

    Raises:
        SourceError: the device cannot be opened.
    """
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise SourceError(f"cannot open {path}: {exc.strerror}") from None


def stream_client_values(
    fd: int, value_size: int
) -> Iterator[tuple[Sequence[bytes], Sequence[int]]]:
    """The identities and sizes (:func:`split_client_values_untrusted`) of the
    original client values read from a stream-mode learner handle (opened blocking),
    per read, until EOF. Blocking: for a thread of its own.

    Stream mode concatenates the decided values; a stream of ``struct client_value``
    delimits itself (each header counts its payload). Every value decided on the
    cluster must be one, of at most ``value_size`` payload bytes.

    Raises:
        SourceError: the device failed or ended, or the stream holds something else.
    """
    pending = b""
    # Every read is a request the daemon answers. A blocking read is answered as soon
    # as values are decided: one request per batch of values, where waiting for
    # readiness first costs a poll, its notification and then the read. Reads go
    # into one buffer: no fresh pages for the kernel to fault in.
    buffer = bytearray(STREAM_READ_SIZE)
    view = memoryview(buffer)
    while True:
        try:
            size = os.readv(fd, [buffer])
        except OSError as exc:
            if exc.errno == errno.EINTR:
                continue
            raise SourceError(f"reading the learner device failed: {exc.strerror}") from None
        if not size:
            raise SourceError("the learner device ended (the daemon stopped)")
        data = pending + view[:size] if pending else view[:size]
        try:
            identities, sizes, used = split_client_values_untrusted(data, value_size)
        except ValueError as exc:
            raise SourceError(
                f"the learner device carries a value that is not a client value of "
                f"{value_size} bytes ({exc}); read it in record mode"
            ) from None
        pending = bytes(data[used:])
        if identities:
            yield identities, sizes


async def tcp_records(
    stream: trio.SocketStream, value_size: int
) -> AsyncIterator[bytes]:
    """Records forwarded by a kpaxos-learner, after its greeting was acknowledged."""
    size = RECORD_HEADER_SIZE + value_size
    buffer = bytearray()
    while True:
        try:
            chunk = await stream.receive_some(65536)
        except trio.BrokenResourceError as exc:
            raise SourceError(f"the learner connection broke: {exc}") from None
        if not chunk:
            raise SourceError("the learner closed the connection")
        buffer += chunk
        whole = len(buffer) - len(buffer) % size
        for start in range(0, whole, size):
            yield bytes(buffer[start : start + size])
        del buffer[:whole]


async def connect_learner(host: str, port: int, ids: range) -> trio.SocketStream:
    """Connect to a kpaxos-learner and ask for the values of client ``ids``.

    Raises:
        SourceError: no learner answers there.
    """
    try:
        stream = await trio.open_tcp_stream(host, port)
    except OSError as exc:
        raise SourceError(f"cannot connect to the learner at {host}:{port}: {exc}") from None
    greeting = ID_RANGE.pack(ids.start, ids.stop)
    await stream.send_all(greeting)
    echoed = b""
    while len(echoed) < len(greeting):
        chunk = await stream.receive_some(len(greeting) - len(echoed))
        if not chunk:
            raise SourceError(f"the learner at {host}:{port} closed without answering")
        echoed += chunk
    if echoed != greeting:
        raise SourceError(f"the learner at {host}:{port} answered {echoed.hex()}, not our ids")
    return stream
