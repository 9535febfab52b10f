"""Where the original programs read decided values from: the learner device in record
mode, or a kpaxos-learner over TCP. Both yield raw records (``int32 iid`` + V bytes)."""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import AsyncIterator

import trio

from wire.original import RECORD_HEADER_SIZE, VALUE_SIZE_WRITE

#: Records read before other tasks get a turn.
DRAIN_LIMIT = 256

#: The TCP greeting of a client: the half-open range of client ids it wants, native.
ID_RANGE = struct.Struct("=ii")


class SourceError(Exception):
    """The source of decided values failed or ended; the message is for the user."""


def open_record_device(path: str, value_size: int) -> int:
    """Open the learner device at ``path`` and switch the handle to record mode.

    Raises:
        SourceError: the device cannot be opened or refuses record mode.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise SourceError(f"cannot open {path}: {exc.strerror}") from None
    try:
        os.write(fd, VALUE_SIZE_WRITE.build(value_size))
    except OSError as exc:
        os.close(fd)
        raise SourceError(f"{path} refused record mode: {exc.strerror}") from None
    return fd


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
