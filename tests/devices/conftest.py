"""Serving the devices in-process through either door, and which door runs where.

The behaviour suite is parametrized over the two doors by the ``door`` fixture. The
``cuse`` cases need a kernel with CUSE: they run inside the test VM
(``tests/vm/test_cuse_in_vm.py`` boots it, runs them there and fails unless every one of
them passed), and are deselected everywhere else — never skipped.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.devices.helpers import CUSE_MARKER, IN_VM, Served, serving


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Outside the VM the cuse cases are the VM test's business; inside it, only they run.
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        wanted = (item.get_closest_marker(CUSE_MARKER) is not None) == IN_VM
        (keep if wanted else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(params=["fuse", pytest.param("cuse", marks=pytest.mark.cuse)])
def door(request: pytest.FixtureRequest) -> str:
    """The front door the devices are served through."""
    door: str = request.param
    if os.geteuid() != 0:
        pytest.fail("serving the devices needs root: run the tests as root")
    if door == "fuse" and not os.path.exists("/dev/fuse"):
        pytest.fail("the FUSE door needs /dev/fuse (modprobe fuse)")
    return door


@pytest.fixture
def device_dirs(tmp_path: Path) -> tuple[Path, Path]:
    """A mount directory and a link directory for one test (never /run or /dev)."""
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        pytest.fail("serving the devices needs root and /dev/fuse: run the tests as root")
    return tmp_path / "mnt", tmp_path / "links"


@pytest.fixture
async def served(door: str, tmp_path: Path) -> AsyncIterator[Served]:
    async with serving(door, tmp_path) as served:
        yield served
