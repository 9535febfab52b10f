"""The real-faults scenario alone in the VM, with any number of values.

    python -m tests.vm.soak [--values 10000] [--time-limit 5400] [--workdir DIR]

The suite's VM run (tests/vm) runs the scenario of tests/netns with the host's 10,000
values after the cuse cases, under netem's delay, duplication and reordering and the
switch's 20 % drop, while an acceptor and then the proposer are killed with SIGKILL and
restarted. This runs only the scenario, with more values or again and again, as a
slow command of its own like the simulator's soak. Run it as root after
``./run.sh test`` has set the machine up. It prints the scenario's report and exits 0
when every value was decided exactly once, in one order, by both learners.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests.vm.guest import run_guest

#: The run's limit beyond the scenario's own: booting, starting Python, copying back.
VM_SLACK = 15 * 60


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.vm.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--values", type=int, default=10_000,
                        help="values to propose, half through each learner (default 10000)")
    parser.add_argument("--time-limit", type=float, default=5400,
                        help="seconds from the first write until every write must have "
                             "returned (default 5400)")
    parser.add_argument("--workdir", type=Path,
                        help="where results go (default: a new directory under /tmp); "
                             "the daemons' logs and streams end in WORKDIR/results/netem")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kpaxos-vm-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"vm soak: {args.values} values, results in {workdir / 'results'}", flush=True)
    guest = run_guest(workdir, cuse=False, values=args.values, time_limit=args.time_limit,
                      vm_timeout=args.time_limit + VM_SLACK)
    log = guest.results / "netem.log"
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    verdict = [line for line in lines if line.startswith("netns scenario ")]
    if guest.status("netem-exit-status") == "0" and verdict:
        print(f"vm soak: {verdict[-1]} (VM run {guest.run.seconds:.0f} s)", flush=True)
        return 0
    print(f"vm soak: FAILED\n{guest.report('netem.log')}", flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
