"""Helpers for the device tests: a fake node, the served devices, waiting for subprocesses.

The test's own trio thread must never touch a file it serves itself (nobody would be
left to answer the kernel): devices are used through subprocesses only.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import trio

from devices import Backend, DeviceInfo, EngineStatistics, serve_devices
from devices.mounts import MNT_DETACH, mounts_at, umount2
from devices.ports import Outcome, ProposalError, ValueTooLarge
from devices.valuelog import ValueLog
from wire.device import position_of

#: Set to 1 only inside the test VM (tests/vm), whose kernel has CUSE: there the
#: ``cuse`` cases run and nothing else; everywhere else they are deselected.
IN_VM_ENV = "KPAXOS_IN_VM"
IN_VM = os.environ.get(IN_VM_ENV) == "1"

#: For "should happen": generous, so a slow machine does not fail the test. The VM
#: emulates its processor: starting Python there has taken 8 s on a busy host.
SHOULD = 60.0 if IN_VM else 10.0
#: For "must still be blocked": how long a process is watched before we look.
STILL_BLOCKED = 0.3
#: The marker of the cases that need CUSE.
CUSE_MARKER = "cuse"

_names = itertools.count(1)


def fresh_name_prefix() -> str:
    """A device name prefix no other test (nor the real devices) uses: a folder of /dev."""
    return f"kpaxos-test-{os.getpid()}-{next(_names)}/"


class FakeProposals:
    """Decides a value by appending it to the log, optionally held at a gate.

    ``gate`` holds every value; :meth:`hold` holds one value only; ``room`` False makes
    the node report no room (what a full sequence window does).
    """

    max_value_size = 100

    def __init__(self, log: ValueLog) -> None:
        self.log = log
        self.gate: trio.Event | None = None
        self.fail_with: ProposalError | None = None
        self.proposed: list[bytes] = []
        self.room = True
        self.flushes = 0
        self._room_callbacks: list[Callable[[], None]] = []
        self._proposed_changed = trio.Event()
        self._held: dict[bytes, trio.Event] = {}
        self._iid = 0

    def hold(self, value: bytes) -> trio.Event:
        """Hold ``value`` undecided until the returned event is set."""
        return self._held.setdefault(value, trio.Event())

    @property
    def has_room(self) -> bool:
        return self.room

    def set_room(self, room: bool) -> None:
        self.room = room
        if room:
            callbacks, self._room_callbacks = self._room_callbacks, []
            for callback in callbacks:
                callback()

    def when_room(self, callback: Callable[[], None]) -> None:
        if self.room:
            callback()
        else:
            self._room_callbacks.append(callback)

    def flush(self) -> None:
        self.flushes += 1

    def submit(self, value: bytes, done: Callable[[Outcome], None], *,
               flush: bool = True, hold: float = 0.0) -> _FakeProposal:
        self.proposed.append(value)
        self._proposed_changed.set()
        self._proposed_changed = trio.Event()
        if len(value) > self.max_value_size:
            raise ValueTooLarge(f"{len(value)} bytes")
        proposal = _FakeProposal()
        if self.gate is None and value not in self._held:
            self._decided(value, done)  # in the order submitted, as a proposer would
        else:
            trio.lowlevel.spawn_system_task(self._decide, value, done, proposal.scope)
        return proposal

    async def _decide(self, value: bytes, done: Callable[[Outcome], None],
                      scope: trio.CancelScope) -> None:
        with scope:
            if self.gate is not None:
                await self.gate.wait()
            if value in self._held:
                await self._held[value].wait()
            self._decided(value, done)

    def _decided(self, value: bytes, done: Callable[[Outcome], None]) -> None:
        if self.fail_with is not None:
            done(self.fail_with)
            return
        self._iid += 1
        self.log.append(self._iid, value)
        done(position_of(self._iid, 0))

    async def wait_proposed(self, count: int) -> None:
        while len(self.proposed) < count:
            await self._proposed_changed.wait()


class _FakeProposal:
    def __init__(self) -> None:
        self.scope = trio.CancelScope()

    def withdraw(self) -> None:
        self.scope.cancel()


@dataclass
class Served:
    log: ValueLog
    proposals: FakeProposals
    info: DeviceInfo
    mount_dir: Path
    link_dir: Path
    nursery: trio.Nursery
    scope: trio.CancelScope  #: cancel to stop serving (the daemon's shutdown)
    stopped: trio.Event  #: set once serving has ended and everything is removed
    processes: list[trio.Process] = field(default_factory=list)

    @property
    def door(self) -> str:
        return self.info.door

    @property
    def learner(self) -> str:
        return self.info.learner

    @property
    def client(self) -> str:
        return self.info.client

    @property
    def compat(self) -> str:
        assert self.info.compat_learner is not None
        return self.info.compat_learner

    def device_paths(self) -> list[str]:
        """What users open: the CUSE nodes, or the FUSE door's links."""
        return [self.learner, self.client, self.compat]

    async def stop(self) -> None:
        self.scope.cancel()
        with trio.fail_after(SHOULD):
            await self.stopped.wait()

    def stats(self) -> EngineStatistics:
        return self.info.statistics()

    async def start(self, command: Sequence[str], **options: object) -> trio.Process:
        """A subprocess with stdout (and stderr) piped, killed at teardown."""
        options.setdefault("stdout", subprocess.PIPE)
        options.setdefault("stderr", subprocess.PIPE)
        options.setdefault("stdin", subprocess.DEVNULL)
        process: trio.Process = await self.nursery.start(
            partial(trio.run_process, list(command), check=False, **options))
        self.processes.append(process)
        return process

    async def wait_stats(self, condition: Callable[[EngineStatistics], bool]) -> None:
        await wait_until(lambda: condition(self.stats()))


def python(script: str) -> list[str]:
    """The command running ``script`` (dedented) in this Python."""
    return [sys.executable, "-c", textwrap.dedent(script)]


async def run(command: list[str]) -> subprocess.CompletedProcess[bytes]:
    """Run ``command`` to its end (within :data:`SHOULD`), capturing its output."""
    with trio.fail_after(SHOULD):
        return await trio.run_process(command, capture_stdout=True, capture_stderr=True,
                                      check=False, stdin=subprocess.DEVNULL)


#: The doors a test serves through, by the name the ``door`` fixtures give.
DOORS: dict[str, Backend] = {"fuse": "fuse", "cuse": "cuse"}


@asynccontextmanager
async def serving(door: str, tmp_path: Path, **options: Any) -> AsyncIterator[Served]:
    """Serve the devices through ``door`` for one test, with a FakeProposals node.

    FUSE: mounted in ``tmp_path``, links there too. CUSE: under a fresh name prefix.
    The compat learner (``chardevice/klearner0``) is served too. Processes started
    through the result are killed, and any mount is detached, whatever happens.
    """
    mount_dir, link_dir = tmp_path / "mnt", tmp_path / "links"
    log = ValueLog()
    proposals = FakeProposals(log)
    options.setdefault("compat_learner_id", 0)
    if door == "cuse":
        options.setdefault("name_prefix", fresh_name_prefix())
    scope, stopped = trio.CancelScope(), trio.Event()

    async def serve(task_status: trio.TaskStatus[DeviceInfo]) -> None:
        try:
            with scope:
                await serve_devices(log, proposals, backend=DOORS[door],
                                    mount_dir=str(mount_dir),
                                    link_dir=str(link_dir), task_status=task_status,
                                    **options)
        finally:
            stopped.set()

    try:
        async with trio.open_nursery() as nursery:
            info = await nursery.start(serve)
            assert info.door == door
            async with trio.open_nursery() as processes_nursery:
                served = Served(log, proposals, info, mount_dir, link_dir, processes_nursery,
                                scope, stopped)
                try:
                    yield served
                finally:
                    kill_all(served.processes)
            scope.cancel()
    finally:
        force_unmount(mount_dir)


async def wait_until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` until true, for at most :data:`SHOULD` seconds."""
    with trio.fail_after(SHOULD):
        while not condition():
            await trio.sleep(0.01)


async def read_until(stream: trio.abc.ReceiveStream, expected: bytes) -> bytes:
    """Read from ``stream`` until ``expected`` bytes in total have come (or EOF)."""
    data = b""
    with trio.fail_after(SHOULD):
        while len(data) < len(expected):
            chunk = await stream.receive_some()
            if not chunk:
                break
            data += chunk
    return data


async def still_running(process: trio.Process) -> bool:
    """True if ``process`` has not ended after :data:`STILL_BLOCKED` seconds."""
    await trio.sleep(STILL_BLOCKED)
    return process.poll() is None


def is_mounted(path: Path) -> bool:
    return bool(mounts_at(str(path)))


def force_unmount(path: Path) -> None:
    """Last-resort cleanup so a failing test cannot leave a mount behind."""
    for _ in range(len(mounts_at(str(path)))):
        try:
            umount2(str(path), MNT_DETACH)
        except OSError:
            break


def kill_all(processes: list[trio.Process]) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()  # SIGKILL: a reader blocked in the device is interrupted too
