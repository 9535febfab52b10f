"""The ``cuse`` cases of the device suite, run inside a VM whose kernel has CUSE.

The development machines' kernel has no CUSE, so on the host those cases are
deselected (tests/devices/conftest.py) and this test runs them in a VM instead: it
lists them on the host, boots Debian's kernel with virtme-ng, runs pytest there with
``KPAXOS_IN_VM=1`` (which selects exactly them), and fails unless every one of them
passed there. A VM that does not boot, a pytest that does not start, a case missing
from the results: all failures, with the VM's output in the message.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import VECTORS
from tests.devices.helpers import IN_VM_ENV
from tests.vm.runner import run_in_vm

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]
SUITE = "tests/devices"


def cuse_cases() -> list[str]:
    """The node ids pytest selects in the VM, collected here on the host."""
    env = dict(os.environ, **{IN_VM_ENV: "1"})
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         SUITE], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    cases = [line for line in result.stdout.splitlines() if "::" in line]
    assert result.returncode == 0 and cases, f"cannot list the cuse cases:\n{result.stdout}"
    return cases


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


def guest_script(results: Path) -> str:
    """The shell script the guest runs: pytest on the cuse cases, results to ``results``."""
    return f"""\
set -u
cd {REPO}
echo "guest kernel: $(uname -r)"
export {IN_VM_ENV}=1 PYTHONDONTWRITEBYTECODE=1 TMPDIR=/tmp
export KPAXOS_VECTORS={VECTORS}
# The shared root is read-only: pytest's cache and temporary files go to the guest's /tmp.
{sys.executable} -m pytest -p no:cacheprovider --basetemp=/tmp/kpaxos-pytest -v -rA \\
    --junitxml={results}/junit.xml {SUITE} > {results}/pytest.log 2>&1
echo $? > {results}/exit-status
echo "pytest exit status: $(cat {results}/exit-status)"
"""


def test_the_cuse_cases_pass_in_a_vm_with_cuse(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    expected = cuse_cases()
    results = tmp_path / "results"
    results.mkdir()
    script = results / "guest.sh"
    script.write_text(guest_script(results))
    run = run_in_vm(f"sh {script}", results)

    log = results / "pytest.log"
    report = (f"vng exit status {run.returncode} after {run.seconds:.0f} s\n"
              f"--- VM output ---\n{run.output[-6000:]}\n"
              f"--- pytest in the VM ---\n"
              f"{log.read_text(errors='replace')[-12000:] if log.exists() else '(none)'}")
    assert run.returncode is not None, f"the VM did not finish in time\n{report}"
    status = results / "exit-status"
    assert status.exists(), f"pytest did not run in the VM\n{report}"
    assert status.read_text().strip() == "0", f"pytest failed in the VM\n{report}"
    outcomes = junit_outcomes(results / "junit.xml")
    missing = [case for case in expected if case not in outcomes]
    assert not missing, f"cuse cases that did not run in the VM: {missing}\n{report}"
    not_passed = {case: outcomes[case] for case in expected if outcomes[case] != "passed"}
    assert not not_passed, f"cuse cases that did not pass in the VM: {not_passed}\n{report}"
    extra = sorted(set(outcomes) - set(expected))
    assert not extra, f"the VM ran cases that are not cuse cases: {extra}\n{report}"
    with capsys.disabled():
        print(f"\n[vm] {len(expected)} cuse cases passed in the VM; "
              f"boot and run took {run.seconds:.0f} s")
