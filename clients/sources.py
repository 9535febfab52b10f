"""Where the original programs read decided values from: the learner device in record
mode, or a kpaxos-learner over TCP, both yielding raw records (``int32 iid`` + V
bytes); or the learner device in stream mode, yielding the headers of the original
client values it carries."""

from __future__ import annotations

import errno
import os
from collections.abc import AsyncIterator, Callable, Iterator, Sequence

import trio

from wire.original import (
    GREETING_ACK,
    ID_GREETING_CODEC,
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


#: How long a learner may take to answer a client's greeting.
GREETING_TIMEOUT = 5.0


async def open_learner(host: str, port: int, ids: range, protocol: str,
                       ) -> list[trio.SocketStream]:
    """Connect to a learner of ``protocol`` (clients.options.PROTOCOLS) for the values
    of client ``ids``, greeted as it wants: one connection (2018, 2017-09-10), or one
    per id, each acknowledged (2017-09-18: a connection gets one id's records).

    Raises:
        SourceError: no learner answers there, or not as the protocol says.
    """
    if protocol == "2018":
        return [await connect_learner(host, port, ids)]
    if protocol == "2017-09-10":
        return [await _connect(host, port)]
    streams = []
    for client_id in ids:
        stream = await _connect(host, port)
        streams.append(stream)
        await stream.send_all(ID_GREETING_CODEC.pack(client_id))
        answer = b""
        with trio.move_on_after(GREETING_TIMEOUT):
            answer = await stream.receive_some(1)
        if answer != GREETING_ACK:
            raise SourceError(f"the learner at {host}:{port} answered {answer.hex() or 'EOF'} "
                              f"to our id, not 'k': does it speak the {protocol} protocol?")
    return streams


async def follow_learner(streams: list[trio.SocketStream], record_size: int,
                         on_record: Callable[[bytes], None]) -> None:
    """Hand every record the learner sends on ``streams`` to ``on_record``.

    Records are cut at their fixed size, whatever the TCP reads bring: a 2017 learner
    may send several in one segment (the 2017 clients looked at the first only).

    Raises:
        SourceError: a connection broke or closed.
    """
    async def follow(stream: trio.SocketStream) -> None:
        async for record in tcp_records(stream, record_size):
            on_record(record)

    async with trio.open_nursery() as nursery:
        for stream in streams:
            nursery.start_soon(follow, stream)


async def _connect(host: str, port: int) -> trio.SocketStream:
    try:
        return await trio.open_tcp_stream(host, port)
    except OSError as exc:
        raise SourceError(f"cannot connect to the learner at {host}:{port}: {exc}") from None


async def connect_learner(host: str, port: int, ids: range) -> trio.SocketStream:
    """Connect to a kpaxos-learner and ask for the values of client ``ids``.

    Raises:
        SourceError: no learner answers there.
    """
    stream = await _connect(host, port)
    greeting = ID_RANGE.pack(ids.start, ids.stop)
    await stream.send_all(greeting)
    echoed = b""
    with trio.move_on_after(GREETING_TIMEOUT):
        while len(echoed) < len(greeting):
            chunk = await stream.receive_some(len(greeting) - len(echoed))
            if not chunk:
                raise SourceError(f"the learner at {host}:{port} closed without answering")
            echoed += chunk
    if echoed != greeting:
        answer = f"answered {echoed.hex()}" if echoed else "did not answer"
        raise SourceError(
            f"the learner at {host}:{port} {answer} within {GREETING_TIMEOUT:g} s, not our "
            f"ids (the 2018 greeting): a 2017 learner speaks --protocol 2017-09-10 or "
            f"2017-09-18")
    return stream
