"""What the test VM runs, in one boot for every test of tests/vm.

Booting Debian's kernel under software emulation costs the better part of a minute, so
the guest runs everything in one go and each test then judges its own part:

- the ``cuse`` cases of the device suite (tests/vm/test_cuse_in_vm.py);
- the real-faults scenario under netem's delay, duplication and reordering plus the
  nftables random drop (tests/vm/test_netem_in_vm.py), which needs sch_netem: the
  development kernel has none.

Python in the guest is slow to start (tens of seconds to import kpaxosd), mostly for
compiling: the read-only root keeps it from caching bytecode. The host compiles what
the guest imports into a ``PYTHONPYCACHEPREFIX`` tree first, and the guest uses it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.devices.helpers import IN_VM_ENV
from tests.netns.scenario import NETEM
from tests.vm.runner import VM_TIMEOUT, VmRun, run_in_vm

REPO = Path(__file__).resolve().parents[2]
SUITE = "tests/devices"
#: Values of the netem scenario in the VM: the host's 10,000. Under emulation the seven
#: daemons take one to two minutes to start and the run about three more (10,000
#: values decided in 174 s of VM time, the whole VM run 338 s).
NETEM_VALUES = 10_000
#: Share of datagrams the switch drops, on top of netem.
NETEM_DROP_PERCENT = 20
#: How long the scenario may take from the first write: a hang guard only.
NETEM_TIME_LIMIT = 900


def bytecode_env(pycache: Path) -> dict[str, str]:
    """The environment that makes Python read and write bytecode under ``pycache``."""
    env = dict(os.environ, PYTHONPYCACHEPREFIX=str(pycache))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def cuse_cases(pycache: Path) -> list[str]:
    """The node ids pytest selects in the VM, collected here on the host.

    Collecting imports what pytest in the guest will: its bytecode goes to ``pycache``.
    """
    env = dict(bytecode_env(pycache), **{IN_VM_ENV: "1"})
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         SUITE], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    cases = [line for line in result.stdout.splitlines() if "::" in line]
    assert result.returncode == 0 and cases, f"cannot list the cuse cases:\n{result.stdout}"
    return cases


def compile_daemon(pycache: Path) -> None:
    """Put the bytecode of what the daemons and the scenario import under ``pycache``."""
    imports = "import kpaxosd.cli, kpaxosd.daemon, devices, clients, tests.netns.scenario"
    subprocess.run([sys.executable, "-c", imports], cwd=REPO, env=bytecode_env(pycache),
                   check=True, timeout=300)


def guest_script(results: Path, pycache: Path, *, cuse: bool = True,
                 values: int = NETEM_VALUES, time_limit: float = NETEM_TIME_LIMIT) -> str:
    """The shell script the guest runs; every result lands in ``results``.

    ``cuse``: run the cuse cases before the netem scenario (of ``values`` values).
    """
    netem = results / "netem"
    header = f"""\
set -u
cd {REPO}
echo "guest kernel: $(uname -r)"
export PYTHONPYCACHEPREFIX={pycache} TMPDIR=/tmp
unset PYTHONDONTWRITEBYTECODE
"""
    cuse_part = f"""
# The cuse cases of the device suite. The shared root is read-only: pytest's cache and
# temporary files go to the guest's /tmp.
{IN_VM_ENV}=1 {sys.executable} -m pytest -p no:cacheprovider --basetemp=/tmp/kpaxos-pytest \\
    -v -rA --junitxml={results}/junit.xml {SUITE} > {results}/pytest.log 2>&1
echo $? > {results}/exit-status
echo "pytest exit status: $(cat {results}/exit-status)"
"""
    netem_part = f"""
# The real-faults scenario under netem ({NETEM}) and a {NETEM_DROP_PERCENT} % drop.
# Its work directory is the guest's own /tmp: LMDB cannot map files on 9p.
start=$(date +%s)
{sys.executable} -m tests.netns.scenario netem /tmp/kpaxos-netem --values {values} \\
    --drop-percent {NETEM_DROP_PERCENT} --time-limit {time_limit} \\
    --results {netem} > {results}/netem.log 2>&1
echo $? > {results}/netem-exit-status
echo "netem scenario exit status: $(cat {results}/netem-exit-status) after \\
$(( $(date +%s) - start )) s"
"""
    return header + (cuse_part if cuse else "") + netem_part


@dataclass(frozen=True)
class GuestRun:
    run: VmRun
    results: Path
    cuse_cases: list[str]

    def report(self, log: str) -> str:
        """The VM's output and the tail of ``results/log``, for a failure message."""
        path = self.results / log
        text = path.read_text(errors="replace")[-12000:] if path.exists() else "(none)"
        return (f"vng exit status {self.run.returncode} after {self.run.seconds:.0f} s\n"
                f"--- VM output ---\n{self.run.output[-6000:]}\n"
                f"--- {log} in the VM ---\n{text}")

    def status(self, name: str) -> str | None:
        """What the guest wrote in ``results/name`` (an exit status), None if nothing."""
        path = self.results / name
        return path.read_text().strip() if path.exists() else None


def run_guest(workdir: Path, *, cuse: bool = True, values: int = NETEM_VALUES,
              time_limit: float = NETEM_TIME_LIMIT, vm_timeout: float = VM_TIMEOUT,
              ) -> GuestRun:
    """Prepare the bytecode, boot the VM once, run everything; results in workdir.

    ``cuse``, ``values``, ``time_limit``: as :func:`guest_script`; ``vm_timeout``: the
    whole VM run's limit (boot included).
    """
    results, pycache = workdir / "results", workdir / "pycache"
    results.mkdir()
    cases = cuse_cases(pycache) if cuse else []
    compile_daemon(pycache)
    script = results / "guest.sh"
    script.write_text(guest_script(results, pycache, cuse=cuse, values=values,
                                   time_limit=time_limit))
    run = run_in_vm(f"sh {script}", results, timeout=vm_timeout)
    return GuestRun(run, results, cases)
