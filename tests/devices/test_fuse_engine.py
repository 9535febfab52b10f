"""The engine and the FUSE door's file system against a fake kernel: a SOCK_SEQPACKET
socket pair keeps message boundaries like ``/dev/fuse`` does, so every byte of the
protocol can be checked without mounting anything."""

from __future__ import annotations

import errno
import os
import select
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices import fuse_abi as abi
from devices.engine import DEFAULT_MAX_WRITE, Engine
from devices.fuse_door import FuseFilesystem
from devices.semantics import ClientDevice, LearnerDevice
from devices.valuelog import ValueLog
from tests.devices.fake_kernel import (
    CLIENT,
    FOLDER,
    LEARNER,
    FakeKernel,
    Reply,
    connected_engine,
)
from tests.devices.helpers import FakeProposals


@dataclass
class Setup:
    kernel: FakeKernel
    engine: Engine
    log: ValueLog
    proposals: FakeProposals
    scope: trio.CancelScope


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    log = ValueLog()
    proposals = FakeProposals(log)
    door = FuseFilesystem(LearnerDevice(log), ClientDevice(proposals), mode=0o660)
    async with connected_engine(door) as (kernel, engine, scope):
        yield Setup(kernel, engine, log, proposals, scope)


# -- INIT --------------------------------------------------------------------------------


async def test_init_negotiates_our_minor_and_max_write(setup: Setup) -> None:
    assert setup.engine.ready.is_set()
    assert setup.engine.minor == abi.KERNEL_MINOR_VERSION


@pytest.mark.parametrize(("kernel_minor", "short"), [(45, False), (31, True), (12, True)])
async def test_init_answers_old_and_new_kernels(kernel_minor: int, short: bool) -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with ours, theirs:
        ours.setblocking(False)
        log = ValueLog()
        engine = Engine(ours.fileno(), FuseFilesystem(LearnerDevice(log),
                                                      ClientDevice(FakeProposals(log))))
        kernel = FakeKernel(theirs)
        kernel.send(abi.Opcode.INIT, abi.fuse_init_in_compat.build(
            {"major": 7, "minor": kernel_minor, "max_readahead": 4096, "flags": 0})
            + (b"" if short else bytes(48)))
        assert engine.feed(memoryview(_pop(ours)))
        reply = await kernel.receive()
        assert reply.error == 0
        expected_size = 24 if kernel_minor < 23 else abi.fuse_init_out.sizeof()
        assert len(reply.body) == expected_size
        out = abi.fuse_init_out.parse(reply.body.ljust(abi.fuse_init_out.sizeof(), b"\0"))
        assert (out.major, out.minor) == (7, min(kernel_minor, abi.KERNEL_MINOR_VERSION))
        assert out.max_write == DEFAULT_MAX_WRITE
        assert out.max_readahead == 4096


def _pop(sock: socket.socket) -> bytes:
    return sock.recv(1 << 20)


@pytest.mark.parametrize(("major", "minor"), [(6, 40), (8, 0), (7, 8)])
async def test_init_refuses_protocols_we_cannot_speak(major: int, minor: int) -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with ours, theirs:
        log = ValueLog()
        engine = Engine(ours.fileno(), FuseFilesystem(LearnerDevice(log),
                                                      ClientDevice(FakeProposals(log))))
        kernel = FakeKernel(theirs)
        kernel.send(abi.Opcode.INIT, abi.fuse_init_in_compat.build(
            {"major": major, "minor": minor, "max_readahead": 0, "flags": 0}))
        engine.feed(memoryview(_pop(ours)))
        assert (await kernel.receive()).error == -errno.EPROTO
        assert not engine.ready.is_set()


# -- robustness --------------------------------------------------------------------------


async def test_unknown_and_unsupported_opcodes_get_enosys(setup: Setup) -> None:
    for opcode in (abi.Opcode.GETXATTR, abi.Opcode.MKNOD, abi.Opcode.BMAP, 999, 52):
        assert (await setup.kernel.call(opcode, b"\0" * 16, nodeid=1)).error == -errno.ENOSYS
    assert setup.engine.statistics().unsupported == 5


async def test_bodies_that_do_not_parse_get_einval(setup: Setup) -> None:
    k = setup.kernel
    for opcode in (abi.Opcode.OPEN, abi.Opcode.READ, abi.Opcode.WRITE, abi.Opcode.POLL,
                   abi.Opcode.SETATTR, abi.Opcode.RELEASE, abi.Opcode.READDIR):
        assert (await k.call(opcode, b"\1\2\3", nodeid=LEARNER)).error == -errno.EINVAL
    assert (await k.call(abi.Opcode.LOOKUP, b"no-terminator", nodeid=1)).error == -errno.EINVAL
    # a WRITE whose size field disagrees with the data it carries
    unique = k.send(abi.Opcode.WRITE, abi.WRITE_IN.pack(1, 0, 100, 0, 0, 0) + b"short")
    assert (await k.receive()) == Reply(-errno.EINVAL, unique, b"")
    # a header whose length is not what was read
    unique = k.send(abi.Opcode.GETATTR, b"\0" * 16, nodeid=1, length=500)
    assert (await k.receive()) == Reply(-errno.EIO, unique, b"")
    assert setup.engine.statistics().bad_requests == 10
    # and the engine goes on
    assert (await k.call(abi.Opcode.GETATTR, b"\0" * 16, nodeid=1)).error == 0


async def test_a_runt_request_is_dropped(setup: Setup) -> None:
    setup.kernel.sock.send(b"\0" * 10)
    assert (await setup.kernel.call(abi.Opcode.GETATTR, b"\0" * 16, nodeid=1)).error == 0
    assert setup.engine.statistics().bad_requests == 1


async def test_requests_for_unknown_handles_get_ebadf(setup: Setup) -> None:
    unique = setup.kernel.read(77, 10)
    assert (await setup.kernel.receive()) == Reply(-errno.EBADF, unique, b"")


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(opcode=st.sampled_from([int(op) for op in abi.Opcode] + [0, 52, 9999]),
       nodeid=st.integers(0, 5), body=st.binary(max_size=120))
def test_random_requests_never_crash_the_engine(opcode: int, nodeid: int, body: bytes) -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with ours, theirs:
        ours.setblocking(False)
        theirs.setblocking(False)

        async def main() -> None:
            log = ValueLog()
            engine = Engine(ours.fileno(), FuseFilesystem(LearnerDevice(log),
                                                          ClientDevice(FakeProposals(log))))
            header = abi.IN_HEADER.pack(abi.IN_HEADER.size + len(body), opcode, 8,
                                        nodeid, 0, 0, 1, 0)
            engine.feed(memoryview(header + body))
            engine._end_batch()  # as the read loop does
            engine._shut_down()
            assert engine.statistics().pending == 0

        trio.run(main)
        # every reply that went out is well-formed and names the request
        while True:
            try:
                data = theirs.recv(1 << 20)
            except BlockingIOError:
                break
            length, error, unique = abi.OUT_HEADER.unpack_from(data)
            assert length == len(data)
            assert unique == 8
            assert error <= 0


# -- file operations ---------------------------------------------------------------------


async def test_reads_wait_and_interrupts_answer_eintr(setup: Setup) -> None:
    k = setup.kernel
    fh = await k.open(LEARNER)
    first = k.read(fh, 100)
    await trio.testing.wait_all_tasks_blocked()
    assert k.nothing_to_receive()
    assert setup.engine.statistics().pending == 1
    k.send(abi.Opcode.INTERRUPT, abi.INTERRUPT_IN.pack(first), unique=first | 1)
    assert (await k.receive()) == Reply(-errno.EINTR, first, b"")
    # an interrupt for a request already answered is ignored
    k.send(abi.Opcode.INTERRUPT, abi.INTERRUPT_IN.pack(first), unique=first | 1)
    second = k.read(fh, 100)
    setup.log.append(1, b"value")
    assert (await k.receive()) == Reply(0, second, b"value")
    assert setup.engine.statistics().interrupts == 1


async def test_nonblocking_reads_get_eagain(setup: Setup) -> None:
    fh = await setup.kernel.open(LEARNER, os.O_RDONLY | os.O_NONBLOCK)
    unique = setup.kernel.read(fh, 10, os.O_NONBLOCK)
    assert (await setup.kernel.receive()) == Reply(-errno.EAGAIN, unique, b"")


async def test_poll_notifies_the_kernels_handle(setup: Setup) -> None:
    k = setup.kernel
    fh = await k.open(LEARNER)
    kh = 0xABCDEF
    body = abi.fuse_poll_in.build({"fh": fh, "kh": kh, "flags": abi.FUSE_POLL_SCHEDULE_NOTIFY,
                                   "events": select.POLLIN})
    reply = await k.call(abi.Opcode.POLL, body, nodeid=LEARNER)
    assert abi.fuse_poll_out.parse(reply.body).revents == select.POLLOUT | select.POLLWRNORM
    setup.log.append(1, b"x")
    notification = await k.receive()
    assert (notification.unique, notification.error) == (0, abi.NotifyCode.POLL)
    assert abi.fuse_notify_poll_wakeup_out.parse(notification.body).kh == kh
    reply = await k.call(abi.Opcode.POLL, body, nodeid=LEARNER)
    assert abi.fuse_poll_out.parse(reply.body).revents & select.POLLIN
    setup.log.append(2, b"y")  # nobody asked to be told again
    await trio.testing.wait_all_tasks_blocked()
    assert k.nothing_to_receive()


async def test_writes_are_answered_once_decided(setup: Setup) -> None:
    k = setup.kernel
    fh = await k.open(CLIENT, os.O_WRONLY)
    setup.proposals.gate = trio.Event()
    unique = k.write(fh, b"value")
    await setup.proposals.wait_proposed(1)
    assert k.nothing_to_receive()
    setup.proposals.gate.set()
    reply = await k.receive()
    assert (reply.unique, reply.error) == (unique, 0)
    assert abi.fuse_write_out.parse(reply.body).size == 5


async def test_stopping_answers_every_pending_request_with_eio(setup: Setup) -> None:
    k = setup.kernel
    reader = await k.open(LEARNER)
    writer = await k.open(CLIENT, os.O_WRONLY)
    setup.proposals.gate = trio.Event()
    pending = {k.read(reader, 10), k.write(writer, b"v")}
    await setup.proposals.wait_proposed(1)
    setup.scope.cancel()
    replies = [await k.receive(), await k.receive()]
    assert {r.unique for r in replies} == pending
    assert {r.error for r in replies} == {-errno.EIO}
    await setup.engine.finished.wait()
    setup.log.append(1, b"after")  # released handles no longer follow the log
    assert k.nothing_to_receive()


async def test_destroy_is_answered_and_ends_the_engine(setup: Setup) -> None:
    reply = await setup.kernel.call(abi.Opcode.DESTROY)
    assert reply.error == 0
    with trio.fail_after(5):
        await setup.engine.finished.wait()


async def test_release_forgets_the_handle(setup: Setup) -> None:
    k = setup.kernel
    fh = await k.open(LEARNER)
    body = abi.fuse_release_in.build({"fh": fh, "flags": 0, "release_flags": 0, "lock_owner": 0})
    assert (await k.call(abi.Opcode.RELEASE, body, nodeid=LEARNER)).error == 0
    assert setup.engine.statistics().open_handles == 0
    flush = abi.fuse_flush_in.build({"fh": fh, "lock_owner": 0})
    assert (await k.call(abi.Opcode.FLUSH, flush, nodeid=LEARNER)).error == 0


# -- the FUSE door's directory -----------------------------------------------------------


async def test_lookup_and_getattr(setup: Setup) -> None:
    k = setup.kernel
    reply = await k.call(abi.Opcode.LOOKUP, b"devices\0", nodeid=1)
    entry = abi.fuse_entry_out.parse(reply.body)
    assert entry.nodeid == FOLDER and entry.attr.mode == 0o40755
    reply = await k.call(abi.Opcode.LOOKUP, b"learner\0", nodeid=FOLDER)
    entry = abi.fuse_entry_out.parse(reply.body)
    assert entry.nodeid == LEARNER and entry.attr.mode == 0o100660
    assert (await k.call(abi.Opcode.LOOKUP, b"learner\0", nodeid=1)).error == -errno.ENOENT
    assert (await k.call(abi.Opcode.LOOKUP, b"other\0", nodeid=FOLDER)).error == -errno.ENOENT
    assert (await k.call(abi.Opcode.LOOKUP, b"x\0", nodeid=LEARNER)).error == -errno.ENOTDIR
    reply = await k.call(abi.Opcode.GETATTR, bytes(16), nodeid=1)
    assert abi.fuse_attr_out.parse(reply.body).attr.mode == 0o40755
    assert (await k.call(abi.Opcode.GETATTR, bytes(16), nodeid=9)).error == -errno.ENOENT
    assert (await k.call(abi.Opcode.OPEN, bytes(8), nodeid=1)).error == -errno.EISDIR
    for opcode in (abi.Opcode.FORGET, abi.Opcode.BATCH_FORGET):
        k.send(opcode, bytes(24), nodeid=LEARNER)
    statfs = await k.call(abi.Opcode.STATFS, nodeid=1)
    assert abi.fuse_statfs_out.parse(statfs.body).st.namelen == 255


async def test_setattr_truncates_to_zero_only_and_keeps_mode_and_owner(setup: Setup) -> None:
    k = setup.kernel

    def setattr(valid: int, size: int = 0, mode: int = 0, uid: int = 0) -> bytes:
        return bytes(abi.fuse_setattr_in.build({
            "valid": valid, "fh": 0, "size": size, "lock_owner": 0, "atime": 0, "mtime": 0,
            "ctime": 0, "atimensec": 0, "mtimensec": 0, "ctimensec": 0, "mode": mode,
            "uid": uid, "gid": 0}))

    assert (await k.call(abi.Opcode.SETATTR, setattr(abi.FATTR_SIZE), nodeid=CLIENT)).error == 0
    bad = await k.call(abi.Opcode.SETATTR, setattr(abi.FATTR_SIZE, size=5), nodeid=CLIENT)
    assert bad.error == -errno.EINVAL
    reply = await k.call(abi.Opcode.SETATTR, setattr(abi.FATTR_MODE | abi.FATTR_UID,
                                                     mode=0o100600, uid=7), nodeid=CLIENT)
    attr = abi.fuse_attr_out.parse(reply.body).attr
    assert (attr.mode, attr.uid) == (0o100600, 7)


async def test_readdir_lists_the_files_and_resumes_at_an_offset(setup: Setup) -> None:
    k = setup.kernel

    async def readdir(offset: int, size: int = 4096,
                      nodeid: int = FOLDER) -> list[tuple[bytes, int]]:
        reply = await k.call(abi.Opcode.READDIR, abi.READ_IN.pack(0, offset, size, 0, 0, 0),
                             nodeid=nodeid)
        body, entries = reply.body, []
        while body:
            entry = abi.fuse_dirent.parse(body)
            entries.append((entry.name, entry.off))
            body = body[len(abi.build_dirent(entry.ino, entry.off, entry.type, entry.name)):]
        return entries

    assert (await k.call(abi.Opcode.OPENDIR, bytes(8), nodeid=1)).error == 0
    assert await readdir(0, nodeid=1) == [(b".", 1), (b"..", 2), (b"devices", 3)]
    assert (await k.call(abi.Opcode.OPENDIR, bytes(8), nodeid=FOLDER)).error == 0
    assert await readdir(0) == [(b".", 1), (b"..", 2), (b"learner", 3), (b"client", 4)]
    assert await readdir(2) == [(b"learner", 3), (b"client", 4)]
    assert await readdir(4) == []
    assert await readdir(0, size=64 + 31) == [(b".", 1), (b"..", 2)]  # 32 bytes each
    assert (await k.call(abi.Opcode.OPENDIR, bytes(8), nodeid=LEARNER)).error == -errno.ENOTDIR
