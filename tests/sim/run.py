"""Run many simulator seeds: ``python -m tests.sim.run --seeds 1000 --start 0``.

Prints each failure with the command that replays it, and a summary.
"""

from __future__ import annotations

import argparse
import sys
import time

from tests.sim.simulator import PROFILES, Scenario, simulate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sim.run", description=__doc__)
    parser.add_argument("--seeds", type=int, default=300, help="how many seeds (default 300)")
    parser.add_argument("--start", type=int, default=0, help="first seed (default 0)")
    parser.add_argument(
        "--profile", choices=PROFILES, default="mixed", help="scenario family (default mixed)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="describe every run")
    args = parser.parse_args(argv)

    failed = 0
    datagrams = 0
    began = time.perf_counter()
    for seed in range(args.start, args.start + args.seeds):
        result = simulate(seed, args.profile)
        datagrams += result.datagrams
        if args.verbose:
            status = "ok" if result.ok else "FAIL"
            print(
                f"seed {seed}: {status}, {result.datagrams} datagrams, "
                f"{result.deliveries} deliveries, ended t={result.end_time:.2f} "
                f"{Scenario.from_seed(seed, args.profile)}"
            )
        if not result.ok:
            failed += 1
            print(f"seed {seed} FAILED:")
            for failure in result.failures:
                print("   ", failure)
            print(f"    replay: {result.replay_command()}")
    elapsed = time.perf_counter() - began
    print(
        f"{args.seeds - failed}/{args.seeds} seeds passed in {elapsed:.1f} s "
        f"({args.seeds / elapsed:.1f} seeds/s, {datagrams / elapsed:.0f} datagrams/s)"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
