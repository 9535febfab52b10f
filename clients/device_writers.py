"""N writers of the client device, as applications propose: kpaxos-bench --writers.

    python -m clients.device_writers DEVICE WRITERS VALUE_SIZE SECONDS

Each writer is a thread with its own open file, writing values of VALUE_SIZE bytes
(a newline last) in a loop with blocking writes, each returning once its value is
decided. After SECONDS every writer finishes its write in flight; then one JSON line
says how many values were decided and each write's latency percentiles. A write that
fails is counted (``failed``), not retried.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Sequence


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def write_for(device: str, writer: int, value_size: int, until: float,
              latencies: list[float], failures: list[int]) -> None:
    fd = os.open(device, os.O_WRONLY | os.O_CLOEXEC)
    try:
        n = 0
        while time.monotonic() < until:
            n += 1
            value = f"w{writer}-{n}-".encode().ljust(value_size - 1, b"x")[: value_size - 1]
            started = time.perf_counter()
            try:
                os.write(fd, value + b"\n")
            except OSError:
                failures.append(1)
                continue
            latencies.append(time.perf_counter() - started)
    finally:
        os.close(fd)


def run(device: str, writers: int, value_size: int, seconds: float) -> dict[str, object]:
    latencies: list[list[float]] = [[] for _ in range(writers)]
    failures: list[int] = []
    started = time.monotonic()
    until = started + seconds
    threads = [threading.Thread(target=write_for,
                                args=(device, w, value_size, until, latencies[w], failures))
               for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    ordered = sorted(latency for each in latencies for latency in each)
    return {
        "writers": writers,
        "values": len(ordered),
        "failed": len(failures),
        "seconds": round(elapsed, 3),
        "p50_us": round(percentile(ordered, 0.50) * 1e6),
        "p99_us": round(percentile(ordered, 0.99) * 1e6),
        "avg_us": round(sum(ordered) / len(ordered) * 1e6) if ordered else 0,
    }


def main(argv: Sequence[str] | None = None) -> int:
    device, writers, value_size, seconds = (argv if argv is not None else sys.argv[1:])
    print(json.dumps(run(device, int(writers), int(value_size), float(seconds))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
