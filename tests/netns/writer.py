"""Propose values through a client device from many threads at once.

    python writer.py CLIENT_DEVICE FIRST COUNT THREADS

writes the values ``value-FIRST`` .. ``value-(FIRST+COUNT-1)`` (each with a newline),
one blocking ``write`` per value: it returns once the value is decided. Thread ``t``
owns its own descriptor and writes values ``FIRST+t``, ``FIRST+t+THREADS``, ... A
failed write is not retried (the daemon would take a retry for a new value): it is
reported on stderr, and the exit status is 1 if any write failed.
"""

from __future__ import annotations

import errno
import os
import sys
import threading


def value(index: int) -> bytes:
    return b"value-%05d\n" % index


def main() -> int:
    device, first, count, threads = sys.argv[1], *map(int, sys.argv[2:5])
    failures: list[str] = []
    lock = threading.Lock()

    def write_share(t: int) -> None:
        share = range(first + t, first + count, threads)
        try:
            fd = os.open(device, os.O_WRONLY)
        except OSError as exc:
            with lock:
                failures.extend(f"value-{index:05d}: open: {exc}" for index in share)
            return
        try:
            for index in share:
                try:
                    written = os.write(fd, value(index))
                    if written != len(value(index)):
                        raise OSError(errno.EIO, f"short write of {written} bytes")
                except OSError as exc:
                    with lock:
                        failures.append(f"value-{index:05d}: {exc}")
        finally:
            os.close(fd)

    workers = [threading.Thread(target=write_share, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    for failure in failures:
        print(f"writer: failed: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
