"""Device writers through real CUSE character devices, in the VM.

    python -m tests.vm.bench [--writers 1,64] [--rounds 3] [--duration 20]

The development kernel has no CUSE, so ``kpaxos-bench --writers N`` there goes through
the FUSE door. This boots the test VM once (tests/vm/guest.py: Debian's kernel, which
has CUSE, under software emulation), runs ``kpaxos-bench --device-backend cuse
--writers N`` for each N of ``--writers`` in turn, ``--rounds`` times alternating, and
prints each run's JSON line and, per round, each rate against the first N's. Under
emulation absolute rates mean little; the ratio is the measurement. Run it as root
after ``./run.sh test`` has set the machine up.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path

from tests.vm.guest import REPO, bytecode_env, compile_daemon
from tests.vm.runner import run_in_vm

#: Booting, starting Python and each bench run's own set-up, beyond the measuring.
SLACK_PER_RUN = 120
BOOT_SLACK = 10 * 60


def guest_script(results: Path, pycache: Path, writers: list[int], rounds: int,
                 duration: float) -> str:
    env = bytecode_env(pycache)
    runs = "\n".join(
        f"{sys.executable} -m clients.bench --device-backend cuse --writers {n} "
        f"--duration {duration:g} --json > /tmp/bench.out 2>&1; "
        f"tail -n 1 /tmp/bench.out >> {results}/bench.jsonl; "
        f"echo \"round {r} writers {n}: exit $?\""
        for r in range(rounds) for n in writers)
    return f"""\
set -u
cd {REPO}
export PYTHONPYCACHEPREFIX={env["PYTHONPYCACHEPREFIX"]} TMPDIR=/tmp
unset PYTHONDONTWRITEBYTECODE
{runs}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.vm.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writers", default="1,64",
                        help="writer counts, comma-separated (default: 1,64)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default: 3)")
    parser.add_argument("--duration", type=float, default=20.0,
                        help="seconds of writing per run (default: 20)")
    args = parser.parse_args(argv)
    writers = [int(n) for n in args.writers.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="kpaxos-vm-bench-"))
    results, pycache = workdir / "results", workdir / "pycache"
    results.mkdir()
    compile_daemon(pycache)
    script = results / "guest.sh"
    script.write_text(guest_script(results, pycache, writers, args.rounds, args.duration))
    runs = args.rounds * len(writers)
    run = run_in_vm(f"sh {script}", results,
                    timeout=BOOT_SLACK + runs * (args.duration + SLACK_PER_RUN))
    lines = (results / "bench.jsonl").read_text().splitlines() if (
        results / "bench.jsonl").exists() else []
    measured = []
    for line in lines:
        print(line)
        with contextlib.suppress(ValueError):  # a run that printed no result
            measured.append(json.loads(line))
    if len(measured) != runs:
        print(f"{len(measured)} of {runs} runs reported; the VM said:\n{run.output[-4000:]}",
              file=sys.stderr)
        return 1
    for r in range(args.rounds):
        one_round = measured[r * len(writers):(r + 1) * len(writers)]
        base = one_round[0]["values_per_s"] or 1
        print(f"round {r}: " + ", ".join(
            f"{m['writers']} writers {m['values_per_s']}/s ({m['values_per_s'] / base:.1f}x)"
            for m in one_round))
    return 0


if __name__ == "__main__":
    sys.exit(main())
