"""The kernel's end of a FUSE or CUSE connection, for driving an engine without a kernel.

A SOCK_SEQPACKET socket pair keeps message boundaries like ``/dev/fuse`` and
``/dev/cuse`` do, so every byte of the protocol can be checked without mounting or
registering anything.
"""

from __future__ import annotations

import os
import select
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

from devices import fuse_abi as abi
from devices.engine import Door, Engine

#: The FUSE door's node ids of the two files.
# The FUSE door's nodes: the root (1) holds FOLDER, which holds the two files.
FOLDER, LEARNER, CLIENT = 2, 3, 4


@dataclass
class Reply:
    error: int
    unique: int
    body: bytes


class FakeKernel:
    """The kernel's end of the connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._unique = 0

    def send(self, opcode: int, body: bytes = b"", *, nodeid: int = 0,
             unique: int | None = None, length: int | None = None) -> int:
        if unique is None:
            self._unique += 2
            unique = self._unique
        total = abi.IN_HEADER.size + len(body)
        header = abi.IN_HEADER.pack(total if length is None else length, opcode, unique,
                                    nodeid, 0, 0, 1234, 0)
        self.sock.send(header + body)
        return unique

    async def receive(self) -> Reply:
        with trio.fail_after(5):
            await trio.lowlevel.wait_readable(self.sock)
        data = self.sock.recv(1 << 20)
        length, error, unique = abi.OUT_HEADER.unpack_from(data)
        assert length == len(data)
        return Reply(error, unique, data[abi.OUT_HEADER.size:])

    async def call(self, opcode: int, body: bytes = b"", *, nodeid: int = 0) -> Reply:
        unique = self.send(opcode, body, nodeid=nodeid)
        reply = await self.receive()
        assert reply.unique == unique
        return reply

    def nothing_to_receive(self) -> bool:
        return not select.select([self.sock], [], [], 0)[0]

    # -- requests ---------------------------------------------------------------------

    async def init(self, minor: int = 45, *, short: bool = False) -> Reply:
        body = abi.fuse_init_in_compat.build(
            {"major": 7, "minor": minor, "max_readahead": 65536, "flags": 0xFFFFFFFF})
        if not short:
            body += struct.pack("=I44x", 0)
        return await self.call(abi.Opcode.INIT, body)

    async def open(self, nodeid: int, flags: int = os.O_RDONLY) -> int:
        reply = await self.call(abi.Opcode.OPEN, abi.fuse_open_in.build(
            {"flags": flags, "open_flags": 0}), nodeid=nodeid)
        assert reply.error == 0
        out = abi.fuse_open_out.parse(reply.body)
        assert out.open_flags & abi.FOPEN_DIRECT_IO and out.open_flags & abi.FOPEN_NONSEEKABLE
        return int(out.fh)

    def read(self, fh: int, size: int, flags: int = 0) -> int:
        return self.send(abi.Opcode.READ, abi.READ_IN.pack(fh, 0, size, 0, 0, flags),
                         nodeid=LEARNER)

    def write(self, fh: int, data: bytes) -> int:
        return self.send(abi.Opcode.WRITE, abi.WRITE_IN.pack(fh, 0, len(data), 0, 0, 0) + data,
                         nodeid=CLIENT)

    def ioctl(self, fh: int, cmd: int, data: bytes = b"", *, out_size: int = 0,
              flags: int = 0, nodeid: int = CLIENT) -> int:
        """A FUSE_IOCTL carrying ``data`` (``in_size`` is its length)."""
        return self.send(abi.Opcode.IOCTL, abi.fuse_ioctl_in.build(
            {"fh": fh, "flags": flags, "cmd": cmd, "arg": 0x7FFF0000, "in_size": len(data),
             "out_size": out_size}) + data, nodeid=nodeid)


@asynccontextmanager
async def connected_engine(door: Door) -> AsyncIterator[tuple[FakeKernel, Engine,
                                                              trio.CancelScope]]:
    """An engine serving ``door`` to a fake kernel that has had INIT answered; the
    scope cancels the engine's run (it is cancelled on the way out too)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with ours, theirs:
        ours.setblocking(False)
        theirs.setblocking(False)
        engine = Engine(ours.fileno(), door)
        async with trio.open_nursery() as nursery:
            scope = trio.CancelScope()

            async def run() -> None:
                with scope:
                    await engine.run()

            nursery.start_soon(run)
            kernel = FakeKernel(theirs)
            assert (await kernel.init()).error == 0
            try:
                yield kernel, engine, scope
            finally:
                scope.cancel()
