"""The CUSE door against a fake kernel, and the choice of door: no CUSE needed.

What a real kernel does with these answers is checked in the VM (the ``cuse`` cases of
``test_device_behaviour.py``).
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wire.ioctl as ioctl_numbers
from devices import DeviceError, choose_backend, serve_devices
from devices import fuse_abi as abi
from devices.cuse_door import CuseDoor, check_device_name
from devices.engine import DEFAULT_MAX_WRITE, Engine
from devices.semantics import ClientDevice, LearnerDevice
from devices.valuelog import ValueLog
from tests.devices.fake_kernel import FakeKernel, Reply
from tests.devices.helpers import FakeProposals


def cuse_init_body(major: int = 7, minor: int = 37) -> bytes:
    return bytes(abi.cuse_init_in.build({"major": major, "minor": minor, "flags": 0}))


@dataclass
class Setup:
    kernel: FakeKernel
    engine: Engine
    log: ValueLog
    proposals: FakeProposals


async def start(name: str, device: str = "learner") -> AsyncIterator[Setup]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setblocking(False)
    theirs.setblocking(False)
    log = ValueLog()
    proposals = FakeProposals(log)
    served = LearnerDevice(log) if device == "learner" else ClientDevice(proposals)
    engine = Engine(ours.fileno(), CuseDoor(name, served))
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(engine.run)
            yield Setup(FakeKernel(theirs), engine, log, proposals)
            nursery.cancel_scope.cancel()
    finally:
        ours.close()
        theirs.close()


@pytest.fixture
async def learner() -> AsyncIterator[Setup]:
    async for setup in start("kpaxos-learner"):
        yield setup


async def test_cuse_init_is_answered_with_the_device_name(learner: Setup) -> None:
    reply = await learner.kernel.call(abi.Opcode.CUSE_INIT, cuse_init_body(minor=37))
    assert reply.error == 0
    size = abi.cuse_init_out.sizeof()
    out = abi.cuse_init_out.parse(reply.body[:size])
    assert (out.major, out.minor) == (7, 37)
    assert (out.max_read, out.max_write) == (DEFAULT_MAX_WRITE, DEFAULT_MAX_WRITE)
    assert (out.dev_major, out.dev_minor, out.flags) == (0, 0, 0)
    assert not out.flags & abi.CUSE_UNRESTRICTED_IOCTL  # the kernel decodes every ioctl
    assert reply.body[size:] == b"DEVNAME=kpaxos-learner\0"
    assert learner.engine.ready.is_set() and learner.engine.minor == 37


async def test_a_folder_in_the_name_goes_to_the_kernel_as_it_is() -> None:
    async for setup in start("test-/chardevice/klearner0"):
        reply = await setup.kernel.call(abi.Opcode.CUSE_INIT, cuse_init_body())
        info = reply.body[abi.cuse_init_out.sizeof():]
        assert info == b"DEVNAME=test-/chardevice/klearner0\0"


@pytest.mark.parametrize(("major", "minor"), [(6, 40), (8, 0), (7, 8)])
async def test_cuse_init_refuses_protocols_we_cannot_speak(learner: Setup, major: int,
                                                           minor: int) -> None:
    reply = await learner.kernel.call(abi.Opcode.CUSE_INIT, cuse_init_body(major, minor))
    assert reply == Reply(-errno.EPROTO, reply.unique, b"")
    assert not learner.engine.ready.is_set()


async def test_the_shared_operations_work_through_the_cuse_door(learner: Setup) -> None:
    k = learner.kernel
    assert (await k.call(abi.Opcode.CUSE_INIT, cuse_init_body())).error == 0
    fh = await k.open(0)  # CUSE sends node id 0
    unique = k.read(fh, 100)
    learner.log.append(1, b"decided")
    assert await k.receive() == Reply(0, unique, b"decided")
    nonblocking = k.read(fh, 100, os.O_NONBLOCK)
    assert await k.receive() == Reply(-errno.EAGAIN, nonblocking, b"")
    waiting = k.read(fh, 100)
    k.send(abi.Opcode.INTERRUPT, abi.INTERRUPT_IN.pack(waiting), unique=waiting | 1)
    assert await k.receive() == Reply(-errno.EINTR, waiting, b"")
    ioctl = k.ioctl(fh, ioctl_numbers.iowr("k", 1, 8), bytes(8), out_size=8, nodeid=0)
    assert await k.receive() == Reply(-errno.ENOTTY, ioctl, b"")


async def test_every_other_opcode_gets_enosys(learner: Setup) -> None:
    k = learner.kernel
    for opcode in (abi.Opcode.INIT, abi.Opcode.LOOKUP, abi.Opcode.GETATTR, abi.Opcode.BMAP,
                   abi.Opcode.READDIR, 999):
        assert (await k.call(opcode, bytes(64))).error == -errno.ENOSYS
    assert learner.engine.statistics().unsupported == 6


async def test_an_unparsable_cuse_init_gets_einval_and_the_engine_goes_on(learner: Setup) -> None:
    k = learner.kernel
    assert (await k.call(abi.Opcode.CUSE_INIT, b"\1\2")).error == -errno.EINVAL
    assert (await k.call(abi.Opcode.CUSE_INIT, cuse_init_body())).error == 0


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(opcode=st.sampled_from([int(op) for op in abi.Opcode] + [0, 9999]),
       body=st.binary(max_size=80))
def test_random_requests_never_crash_the_cuse_door(opcode: int, body: bytes) -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with ours, theirs:
        theirs.setblocking(False)

        async def main() -> None:
            log = ValueLog()
            engine = Engine(ours.fileno(), CuseDoor("kpaxos-learner", LearnerDevice(log)))
            header = abi.IN_HEADER.pack(abi.IN_HEADER.size + len(body), opcode, 8, 0, 0, 0,
                                        1, 0)
            engine.feed(memoryview(header + body))
            engine._end_batch()  # as the read loop does
            engine._shut_down()

        trio.run(main)
        while True:
            try:
                data = theirs.recv(1 << 20)
            except BlockingIOError:
                break
            length, error, unique = abi.OUT_HEADER.unpack_from(data)
            assert (length, unique) == (len(data), 8)
            assert error <= 0


@pytest.mark.parametrize("name", ["kpaxos-learner", "chardevice/klearner0", "t-1/x.y_z"])
def test_good_device_names(name: str) -> None:
    assert check_device_name(name) == name


@pytest.mark.parametrize("name", ["", "/abs", "a//b", "a/../b", "trailing/", "a=b", "nul\0",
                                  "new\nline", "x" * 201])
def test_bad_device_names(name: str) -> None:
    with pytest.raises(DeviceError, match="cannot be a device name"):
        check_device_name(name)


async def test_a_bad_prefix_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    log = ValueLog()
    with pytest.raises(DeviceError, match="cannot be a device name"):
        await serve_devices(log, FakeProposals(log), backend="fuse", name_prefix="../",
                            mount_dir=str(tmp_path / "mnt"), link_dir=str(tmp_path))
    assert not (tmp_path / "mnt").exists()


# -- choosing the door -------------------------------------------------------------------


async def test_auto_falls_back_to_fuse_and_says_why(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "kpaxos.devices")
    missing = str(tmp_path / "cuse")
    chosen = await choose_backend("auto", cuse_device=missing, modprobe=("false",))
    assert chosen == "fuse"
    assert f"FUSE, because CUSE is not available ({missing}: No such file or directory; " \
           f"false failed: exit status 1)" in caplog.text


async def test_auto_takes_cuse_when_its_device_opens(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "kpaxos.devices")
    stand_in = tmp_path / "cuse"
    stand_in.touch()  # modprobe is only tried when the device is missing
    assert await choose_backend("auto", cuse_device=str(stand_in),
                                modprobe=("/nonexistent/modprobe",)) == "cuse"
    assert f"CUSE, because {stand_in} opened" in caplog.text


async def test_cuse_asked_for_but_missing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DeviceError, match=r"CUSE was asked for, but .*cuse: No such file.*"
                                          r"/nonexistent/modprobe cuse: No such file"):
        await choose_backend("cuse", cuse_device=str(tmp_path / "cuse"),
                             modprobe=("/nonexistent/modprobe", "cuse"))


async def test_fuse_asked_for_tries_nothing(tmp_path: Path) -> None:
    assert await choose_backend("fuse", cuse_device="/nonexistent",
                                modprobe=("/nonexistent/modprobe",)) == "fuse"
