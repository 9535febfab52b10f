"""Run many simulator seeds.

    python -m tests.sim.run --seeds 1000 --start 0 [--profile mixed] [-v]
    python -m tests.sim.run --soak [--seeds 100000] [--jobs 2]

Prints each failure with the command that replays it, and a summary. ``--soak``
runs every profile (seed ``s`` gets ``SOAK_MIX[s % len(SOAK_MIX)]``) on all cores,
reporting progress as it goes, then 200,000 instances through a trimming cluster
(tests/paxos/load.py; ``--load 0`` skips it); ``--jobs`` spreads any run over
processes.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

from tests.sim.simulator import PROFILES, Scenario, simulate

#: The soak's profile of each seed, round robin: mostly the quick broad sweep, some
#: of every other.
SOAK_MIX = (
    ("mixed",) * 8
    + ("long", "duel", "harsh", "harsh", "bigwin")
    + ("leader",) * 3
    + ("steady", "stranger")
)
#: Seeds per task handed to a worker process.
CHUNK = 50


@dataclass(frozen=True)
class Outcome:
    seed: int
    profile: str
    failures: list[str]
    replay: str
    datagrams: int
    summary: str

    @property
    def ok(self) -> bool:
        return not self.failures


def _run(job: tuple[int, str]) -> Outcome:
    seed, profile = job
    result = simulate(seed, profile)
    summary = (
        f"{result.datagrams} datagrams, {result.deliveries} deliveries, "
        f"{result.preemptions} preemptions, ended t={result.end_time:.2f}, "
        f"{sum(result.forged.values())} forged, {sum(result.refused.values())} refused: "
        f"{Scenario.from_seed(seed, profile)}"
    )
    return Outcome(seed, profile, result.failures, result.replay_command(), result.datagrams,
                   summary)


def _run_chunk(jobs: list[tuple[int, str]]) -> list[Outcome]:
    return [_run(job) for job in jobs]


def _chunks(jobs: list[tuple[int, str]]) -> Iterator[list[tuple[int, str]]]:
    for index in range(0, len(jobs), CHUNK):
        yield jobs[index : index + CHUNK]


# Mostly the argument parser's declarations, one statement per flag.
def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915
    parser = argparse.ArgumentParser(
        prog="python -m tests.sim.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seeds", type=int, help="how many seeds (default 300; soak 100000)")
    parser.add_argument("--start", type=int, default=0, help="first seed (default 0)")
    parser.add_argument(
        "--profile", choices=PROFILES, default="mixed", help="scenario family (default mixed)"
    )
    parser.add_argument(
        "--soak", action="store_true", help="every profile, all cores, progress reports"
    )
    parser.add_argument(
        "--jobs", type=int, help="worker processes (default: 1; with --soak, every core)"
    )
    parser.add_argument(
        "--load", type=int, default=200_000,
        help="with --soak: instances through the trimming cluster afterwards (default 200000)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="describe every run")
    args = parser.parse_args(argv)

    count = args.seeds if args.seeds is not None else (100_000 if args.soak else 300)
    seeds = range(args.start, args.start + count)
    if args.soak:
        jobs = [(seed, SOAK_MIX[seed % len(SOAK_MIX)]) for seed in seeds]
        processes = args.jobs or os.cpu_count() or 1
    else:
        jobs = [(seed, args.profile) for seed in seeds]
        processes = args.jobs or 1

    failed = 0
    done = 0
    datagrams = 0
    began = time.perf_counter()
    last_report = began
    pool = multiprocessing.Pool(processes) if processes > 1 else None
    try:
        batches = (
            pool.imap_unordered(_run_chunk, _chunks(jobs))
            if pool is not None
            else map(_run_chunk, _chunks(jobs))
        )
        for batch in batches:
            for outcome in batch:
                done += 1
                datagrams += outcome.datagrams
                if args.verbose:
                    status = "ok" if outcome.ok else "FAIL"
                    print(f"seed {outcome.seed} ({outcome.profile}): {status}, {outcome.summary}")
                if not outcome.ok:
                    failed += 1
                    print(f"seed {outcome.seed} ({outcome.profile}) FAILED:")
                    for failure in outcome.failures:
                        print("   ", failure)
                    print(f"    replay: {outcome.replay}", flush=True)
            now = time.perf_counter()
            if args.soak and now - last_report >= 30:
                last_report = now
                print(
                    f"... {done}/{count} seeds, {failed} failed, {now - began:.0f} s, "
                    f"{done / (now - began):.1f} seeds/s",
                    flush=True,
                )
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    elapsed = time.perf_counter() - began
    where = f" on {processes} processes" if processes > 1 else ""
    print(
        f"{count - failed}/{count} seeds passed in {elapsed:.1f} s{where} "
        f"({count / elapsed:.1f} seeds/s, {datagrams / elapsed:.0f} datagrams/s)",
        flush=True,
    )
    if args.soak and args.load > 0:
        from tests.paxos import load

        try:
            load.main([str(args.load)])
        except AssertionError as exc:
            print(f"trimming load FAILED: {exc!r}")
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
