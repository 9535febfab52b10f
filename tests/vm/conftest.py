"""One boot of the test VM for the whole session (see tests/vm/guest.py)."""

from __future__ import annotations

import pytest

from tests.vm.guest import GuestRun, run_guest


@pytest.fixture(scope="session")
def guest(tmp_path_factory: pytest.TempPathFactory) -> GuestRun:
    """The VM's run of everything tests/vm checks; booted by the first test that asks."""
    return run_guest(tmp_path_factory.mktemp("vm"))
