"""Serving the devices in-process, on a temporary mount and link directory."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest
import trio

from devices import serve_devices
from kpaxosd.interface import ValueLog
from tests.devices.helpers import FakeProposals, Served, force_unmount, kill_all


@pytest.fixture
def device_dirs(tmp_path: Path) -> tuple[Path, Path]:
    """A mount directory and a link directory for one test (never /run or /dev)."""
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        pytest.fail("serving the devices needs root and /dev/fuse: run the tests as root")
    return tmp_path / "mnt", tmp_path / "links"


@pytest.fixture
async def served(device_dirs: tuple[Path, Path]) -> AsyncIterator[Served]:
    mount_dir, link_dir = device_dirs
    log = ValueLog()
    proposals = FakeProposals(log)
    try:
        async with trio.open_nursery() as nursery:
            info = await nursery.start(partial(
                serve_devices, log, proposals, mount_dir=str(mount_dir),
                link_dir=str(link_dir)))
            async with trio.open_nursery() as processes_nursery:
                served = Served(log, proposals, info, mount_dir, link_dir, processes_nursery)
                try:
                    yield served
                finally:
                    kill_all(served.processes)
            nursery.cancel_scope.cancel()
    finally:
        force_unmount(mount_dir)
