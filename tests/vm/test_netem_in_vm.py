"""Real faults in the VM: the tests/netns scenario under netem and a 20 % drop.

Debian's kernel has sch_netem (the development kernel has not): on every host's link
5 ms +- 2 ms of delay, 1 % of the datagrams duplicated and 1 % reordered, and the
switch drops a fifth of them at random besides, while an acceptor and then the
proposer are killed with SIGKILL and restarted. The guest runs it in the same boot as
the cuse cases (tests/vm/guest.py); a VM that does not boot fails this test.
"""

from __future__ import annotations

import pytest

from tests.vm.guest import NETEM_VALUES, GuestRun

pytestmark = pytest.mark.root

PASSED = "netns scenario passed: "


def test_values_survive_netem_loss_and_kill_9_in_a_vm(guest: GuestRun,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    report = guest.report("netem.log")
    assert guest.run.returncode is not None, f"the VM did not finish in time\n{report}"
    status = guest.status("netem-exit-status")
    assert status is not None, f"the scenario did not run in the VM\n{report}"
    assert status == "0", f"the scenario failed in the VM\n{report}"
    lines = (guest.results / "netem.log").read_text().splitlines()
    passed = [line.removeprefix(PASSED) for line in lines if line.startswith(PASSED)]
    assert passed, f"the scenario did not say it passed\n{report}"
    assert passed[0].startswith(f"{NETEM_VALUES} values written"), report
    assert "switch dropped" in passed[0], report
    with capsys.disabled():
        print(f"\n[vm] netem: {passed[0]}")
