"""The ``cuse`` cases of the device suite, run inside a VM whose kernel has CUSE.

The development machines' kernel has no CUSE, so on the host those cases are
deselected (tests/devices/conftest.py) and this test runs them in a VM instead: it
lists them on the host, boots Debian's kernel with virtme-ng (one boot for every test
of tests/vm: see tests/vm/guest.py), runs pytest there with ``KPAXOS_IN_VM=1`` (which
selects exactly them), and fails unless every one of them passed there. A VM that does
not boot, a pytest that does not start, a case missing from the results: all
failures, with the VM's output in the message.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.vm.guest import GuestRun

pytestmark = pytest.mark.root


def junit_outcomes(path: Path) -> dict[str, str]:
    """``node id -> passed | failed | error | skipped`` from pytest's junit xml."""
    outcomes = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        # junit's classname is the node id's path with dots for slashes and no .py (our
        # device tests are module-level functions, so no class follows).
        classname, name = case.get("classname", ""), case.get("name", "")
        node_id = classname.replace(".", "/") + ".py::" + name
        outcome = "passed"
        for child, word in (("failure", "failed"), ("error", "error"), ("skipped", "skipped")):
            if case.find(child) is not None:
                outcome = word
        outcomes[node_id] = outcome
    return outcomes


def test_the_cuse_cases_pass_in_a_vm_with_cuse(guest: GuestRun,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    expected, run = guest.cuse_cases, guest.run
    report = guest.report("pytest.log")
    assert run.returncode is not None, f"the VM did not finish in time\n{report}"
    status = guest.status("exit-status")
    assert status is not None, f"pytest did not run in the VM\n{report}"
    assert status == "0", f"pytest failed in the VM\n{report}"
    outcomes = junit_outcomes(guest.results / "junit.xml")
    missing = [case for case in expected if case not in outcomes]
    assert not missing, f"cuse cases that did not run in the VM: {missing}\n{report}"
    not_passed = {case: outcomes[case] for case in expected if outcomes[case] != "passed"}
    assert not not_passed, f"cuse cases that did not pass in the VM: {not_passed}\n{report}"
    extra = sorted(set(outcomes) - set(expected))
    assert not extra, f"the VM ran cases that are not cuse cases: {extra}\n{report}"
    with capsys.disabled():
        print(f"\n[vm] {len(expected)} cuse cases passed in the VM; "
              f"boot and the whole guest run took {run.seconds:.0f} s")
