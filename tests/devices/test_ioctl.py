"""Restricted ioctls: FUSE_IOCTL through the engine, against the fake kernel and through
a real FUSE mount, where ``fcntl.ioctl`` in a subprocess reaches a handle's ``ioctl``.

The test device reverses what it is given; the real learner and client handles know no
ioctl yet and answer ENOTTY.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing

import wire.ioctl as ioctl_numbers
from devices import DeviceInfo
from devices import fuse_abi as abi
from devices.engine import Engine, FileServices, Request, RequestError
from devices.fuse_door import FuseFilesystem, serve_fuse
from devices.semantics import ClientDevice, LearnerDevice
from devices.valuelog import ValueLog
from tests.devices.fake_kernel import CLIENT, LEARNER, FakeKernel, Reply, connected_engine
from tests.devices.helpers import (
    SHOULD,
    FakeProposals,
    Served,
    force_unmount,
    python,
    run,
    wait_until,
)

#: _IOWR: the 8 bytes given come back reversed; the result is their count.
REVERSE = ioctl_numbers.iowr("k", 1, 8)
#: _IO: the answer waits until the test gives it (or an interrupt comes).
WAIT = ioctl_numbers.io("k", 2)
#: _IOR of 4 bytes whose handle answers 5: a bug the engine must not pass on.
TOO_LONG = ioctl_numbers.ior("k", 3, 4)
#: A command the test device does not know.
UNKNOWN = ioctl_numbers.iowr("k", 9, 8)


class ReversingHandle:
    """A test-only file: ioctls only; every other operation is refused."""

    def __init__(self) -> None:
        self.waiting: list[Request] = []

    def read(self, request: Request, size: int, nonblocking: bool) -> None:
        raise RequestError(errno.EINVAL)

    def write(self, request: Request, data: bytes, nonblocking: bool) -> None:
        raise RequestError(errno.EINVAL)

    def poll(self, kh: int | None, events: int = 0) -> int:
        return 0

    def flush(self, request: Request) -> None:
        request.reply()

    def ioctl(self, request: Request, cmd: int, data: bytes, out_size: int) -> None:
        if cmd == REVERSE:
            request.reply_ioctl(len(data), data[::-1][:out_size])
        elif cmd == WAIT:
            self.waiting.append(request)
        elif cmd == TOO_LONG:
            request.reply_ioctl(0, bytes(out_size + 1))
        else:
            raise RequestError(errno.ENOTTY)

    def release(self) -> None:
        self.waiting.clear()


class ReversingDevice:
    def __init__(self) -> None:
        self.handles: list[ReversingHandle] = []

    def open(self, flags: int, services: FileServices) -> ReversingHandle:
        self.handles.append(ReversingHandle())
        return self.handles[-1]


# -- against the fake kernel -------------------------------------------------------------


@dataclass
class Setup:
    kernel: FakeKernel
    engine: Engine
    device: ReversingDevice


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    """The FUSE door with the reversing device as its client file."""
    device = ReversingDevice()
    async with connected_engine(FuseFilesystem(LearnerDevice(ValueLog()), device)) as (
            kernel, engine, _):
        yield Setup(kernel, engine, device)


def ioctl_reply(result: int, out: bytes = b"") -> bytes:
    return bytes(abi.fuse_ioctl_out.build(
        {"result": result, "flags": 0, "in_iovs": 0, "out_iovs": 0})) + out


async def test_an_ioctl_reaches_its_handle_and_is_answered_out_and_data(setup: Setup) -> None:
    k = setup.kernel
    fh = await k.open(CLIENT, os.O_RDWR)
    unique = k.ioctl(fh, REVERSE, b"abcdefgh", out_size=8)
    assert (await k.receive()) == Reply(0, unique, ioctl_reply(8, b"hgfedcba"))
    # fewer bytes than out_size are fine: the kernel copies back what came
    unique = k.ioctl(fh, REVERSE, b"abc", out_size=8)
    assert (await k.receive()) == Reply(0, unique, ioctl_reply(3, b"cba"))


async def test_an_unknown_ioctl_gets_enotty(setup: Setup) -> None:
    k = setup.kernel
    fh = await k.open(CLIENT, os.O_RDWR)
    unique = k.ioctl(fh, UNKNOWN, bytes(8), out_size=8)
    assert (await k.receive()) == Reply(-errno.ENOTTY, unique, b"")


async def test_a_reply_longer_than_out_size_is_never_sent(setup: Setup) -> None:
    k = setup.kernel
    fh = await k.open(CLIENT, os.O_RDWR)
    unique = k.ioctl(fh, TOO_LONG, out_size=4)
    assert (await k.receive()) == Reply(-errno.EIO, unique, b"")
    # and the engine goes on
    unique = k.ioctl(fh, REVERSE, b"xy", out_size=8)
    assert (await k.receive()) == Reply(0, unique, ioctl_reply(2, b"yx"))


async def test_a_pending_ioctl_is_answered_later_or_interrupted(setup: Setup) -> None:
    k = setup.kernel
    fh = await k.open(CLIENT, os.O_RDWR)
    first = k.ioctl(fh, WAIT)
    await trio.testing.wait_all_tasks_blocked()
    assert k.nothing_to_receive()
    assert setup.engine.statistics().pending == 1
    k.send(abi.Opcode.INTERRUPT, abi.INTERRUPT_IN.pack(first), unique=first | 1)
    assert (await k.receive()) == Reply(-errno.EINTR, first, b"")
    handle = setup.device.handles[-1]
    handle.waiting[0].reply_ioctl(0)  # too late: ignored
    second = k.ioctl(fh, WAIT)
    await trio.testing.wait_all_tasks_blocked()
    handle.waiting[1].reply_ioctl(7)
    assert (await k.receive()) == Reply(0, second, ioctl_reply(7))
    assert setup.engine.statistics().pending == 0


async def test_malformed_ioctls_get_einval_and_the_engine_goes_on(setup: Setup) -> None:
    k = setup.kernel
    fh = await k.open(CLIENT, os.O_RDWR)
    assert (await k.call(abi.Opcode.IOCTL, b"\1\2\3", nodeid=CLIENT)).error == -errno.EINVAL
    # in_size says 8 bytes follow; 3 do
    body = abi.fuse_ioctl_in.build({"fh": fh, "flags": 0, "cmd": REVERSE, "arg": 0,
                                    "in_size": 8, "out_size": 8}) + b"abc"
    assert (await k.call(abi.Opcode.IOCTL, body, nodeid=CLIENT)).error == -errno.EINVAL
    assert setup.engine.statistics().bad_requests == 2
    unique = k.ioctl(fh, REVERSE, b"ok", out_size=8)
    assert (await k.receive()) == Reply(0, unique, ioctl_reply(2, b"ko"))


async def test_an_ioctl_on_an_unknown_handle_gets_ebadf_like_a_read(setup: Setup) -> None:
    k = setup.kernel
    unique = k.ioctl(77, REVERSE, b"abcdefgh", out_size=8)
    ioctl = await k.receive()
    unique_read = k.read(77, 10)
    read = await k.receive()
    assert ioctl == Reply(-errno.EBADF, unique, b"")
    assert read == Reply(-errno.EBADF, unique_read, b"")


@pytest.mark.parametrize("flags", [
    abi.FUSE_IOCTL_UNRESTRICTED,
    abi.FUSE_IOCTL_DIR,
    abi.FUSE_IOCTL_COMPAT | abi.FUSE_IOCTL_32BIT,
    abi.FUSE_IOCTL_COMPAT | abi.FUSE_IOCTL_COMPAT_X32,
    1 << 20,
])
async def test_ioctls_the_engine_cannot_serve_get_enotty(setup: Setup, flags: int) -> None:
    k = setup.kernel
    fh = await k.open(CLIENT, os.O_RDWR)
    unique = k.ioctl(fh, REVERSE, b"abcdefgh", out_size=8, flags=flags)
    assert (await k.receive()) == Reply(-errno.ENOTTY, unique, b"")
    assert setup.device.handles[-1].waiting == []


async def test_the_real_handles_answer_enotty() -> None:
    log = ValueLog()
    door = FuseFilesystem(LearnerDevice(log), ClientDevice(FakeProposals(log)))
    async with connected_engine(door) as (k, _, _):
        for nodeid in (LEARNER, CLIENT):
            fh = await k.open(nodeid, os.O_RDWR)
            unique = k.ioctl(fh, REVERSE, b"abcdefgh", out_size=8, nodeid=nodeid)
            assert (await k.receive()) == Reply(-errno.ENOTTY, unique, b"")


# -- through a real mount ----------------------------------------------------------------

#: Run in a subprocess: fcntl.ioctl on the file, printing what came back or the errno.
IOCTL_SCRIPT = """
    import errno, fcntl, os, sys
    fd = os.open(sys.argv[1], os.O_RDWR)
    for cmd in map(int, sys.argv[2:]):
        buffer = bytearray(b"abcdefgh")
        try:
            result = fcntl.ioctl(fd, cmd, buffer, True)
        except OSError as exc:
            print(errno.errorcode[exc.errno])
        else:
            print(result, bytes(buffer))
"""


async def ioctls(path: str, *commands: int) -> list[str]:
    """The lines IOCTL_SCRIPT prints for ``commands`` on ``path``."""
    result = await run([*python(IOCTL_SCRIPT), path, *map(str, commands)])
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode().splitlines()


@asynccontextmanager
async def serving_reverser(mount_dir: Path, link_dir: Path) -> AsyncIterator[DeviceInfo]:
    """A FUSE mount whose client file is the reversing device (``info.client``)."""
    try:
        async with trio.open_nursery() as nursery:
            info = await nursery.start(partial(
                serve_fuse, LearnerDevice(ValueLog()), ReversingDevice(),
                mount_dir=str(mount_dir), link_dir=str(link_dir), device_mode=0o666))
            yield info
            nursery.cancel_scope.cancel()
    finally:
        force_unmount(mount_dir)


@pytest.mark.root
async def test_fcntl_ioctl_through_a_fuse_mount_gets_the_handles_answer(
        device_dirs: tuple[Path, Path]) -> None:
    async with serving_reverser(*device_dirs) as info:
        assert await ioctls(info.client, REVERSE, UNKNOWN) == ["8 b'hgfedcba'", "ENOTTY"]


@pytest.mark.root
async def test_a_signal_ends_an_ioctl_left_pending(device_dirs: tuple[Path, Path]) -> None:
    # The handler raises, so that the ioctl's return shows whether or not Python
    # would retry it after EINTR.
    script = f"""
        import fcntl, os, signal, sys
        class Signalled(Exception):
            pass
        def signalled(signum, frame):
            raise Signalled
        signal.signal(signal.SIGUSR1, signalled)
        fd = os.open(sys.argv[1], os.O_RDWR)
        try:
            fcntl.ioctl(fd, {WAIT})
        except Signalled:
            print("interrupted")
    """
    async with serving_reverser(*device_dirs) as info:
        with trio.fail_after(SHOULD):
            async with trio.open_nursery() as nursery:
                process = await nursery.start(partial(
                    trio.run_process, [*python(script), info.client], check=False,
                    capture_stdout=True, stdin=subprocess.DEVNULL))
                await wait_until(lambda: info.statistics().pending == 1)
                process.send_signal(signal.SIGUSR1)
        assert process.returncode == 0
        assert info.statistics().interrupts == 1


@pytest.mark.root
async def test_the_learner_and_client_files_answer_enotty(served: Served) -> None:
    for path in (served.learner, served.client):
        assert await ioctls(path, REVERSE) == ["ENOTTY"]
