"""One program keeping many values in flight through one open file of the client device.

    python -m clients.device_pipeline DEVICE [--window N] [--per-write K]
                                      [--value-size B] (--duration S | --count N)
                                      [--record FILE]

The file is opened O_RDWR | O_NONBLOCK: each write returns once its value is queued
(EAGAIN while the node has no room), and the receipts, read as they come, say where
each value was decided (or, a negative errno, why not), in the order written. At most
``--window`` values are in flight. With ``--per-write`` K above 1 the file is put in
FRAMED mode and each write carries up to K values as frames (``wire.device``). At
the end one JSON line says how many values were decided, how many failed, and the
latency percentiles from write to receipt;
``--record`` also writes each receipt and its value, a tab between, one per line.
This is what ``kpaxos-bench --pipelined`` runs.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import json
import os
import select
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from typing import BinaryIO

from clients.device_writers import percentile
from wire.device import IOCTL_FRAMED, WRITE_FRAME_HEAD

#: Receipts read at a time: a non-blocking read takes every whole line that fits.
READ_SIZE = 1 << 16


class PipelineError(Exception):
    """The device did something a pipelined writer cannot go on from."""


def values(value_size: int, count: int | None, until: float | None) -> Iterator[bytes]:
    """Distinct values of ``value_size`` bytes, a newline last, until either limit."""
    n = 0
    while (count is None or n < count) and (until is None or time.monotonic() < until):
        n += 1
        yield f"p{n}-".encode().ljust(value_size - 1, b"x")[: value_size - 1] + b"\n"


def run(device: str, window: int, source: Iterator[bytes],
        record: BinaryIO | None = None, per_write: int = 1) -> dict[str, object]:
    fd = os.open(device, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if per_write > 1:
            fcntl.ioctl(fd, IOCTL_FRAMED)
        pipeline = _Pipeline(fd, window, per_write, source, record)
        started = time.monotonic()
        pipeline.drive()
        return pipeline.result(time.monotonic() - started)
    finally:
        os.close(fd)


class _Pipeline:
    def __init__(self, fd: int, window: int, per_write: int, source: Iterator[bytes],
                 record: BinaryIO | None) -> None:
        self._fd = fd
        self._window = window
        self._per_write = per_write
        self._source = source
        self._record = record
        self._poller = select.poll()
        self._in_flight: deque[tuple[float, bytes]] = deque()
        self._latencies: list[float] = []
        self._failed = 0
        self._partial = b""  # a receipt line read in part
        self._next: bytes | None = next(source, None)

    def drive(self) -> None:
        while self._next is not None or self._in_flight:
            sent = self._send()
            if not self._receive() and not sent:
                want = select.POLLIN
                if self._next is not None and len(self._in_flight) < self._window:
                    want |= select.POLLOUT
                self._poller.register(self._fd, want)
                self._poller.poll(1000)

    def _send(self) -> bool:
        """Write while the window and the node have room; whether anything went."""
        sent_any = False
        in_flight, window = self._in_flight, self._window
        while self._next is not None and len(in_flight) < window:
            batch = [self._next]
            if self._per_write == 1:
                data = self._next
            else:
                room = min(self._per_write, window - len(in_flight))
                while len(batch) < room and (more := next(self._source, None)) is not None:
                    batch.append(more)
                data = b"".join(WRITE_FRAME_HEAD.pack(len(v)) + v for v in batch)
            try:
                os.write(self._fd, data)
            except BlockingIOError:
                if len(batch) > 1:
                    self._source = _again(batch[1:], self._source)
                return sent_any
            sent = time.perf_counter()
            in_flight.extend((sent, value) for value in batch)
            self._next = next(self._source, None)
            sent_any = True
        return sent_any

    def _receive(self) -> bool:
        """Read the receipts there are; whether there were any."""
        try:
            data = os.read(self._fd, READ_SIZE)
        except BlockingIOError:
            return False
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise PipelineError("receipts were lost: read them sooner") from None
            raise
        if not data:
            if self._in_flight:
                raise PipelineError(f"EOF with {len(self._in_flight)} receipts due")
            return False
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        now = time.perf_counter()
        for line in lines:
            sent, value = self._in_flight.popleft()
            if int(line) < 0:
                self._failed += 1
            else:
                self._latencies.append(now - sent)
            if self._record is not None:
                self._record.write(line + b"\t" + value)
        return True

    def result(self, elapsed: float) -> dict[str, object]:
        ordered = sorted(self._latencies)
        return {
            "window": self._window,
            "per_write": self._per_write,
            "values": len(ordered),
            "failed": self._failed,
            "seconds": round(elapsed, 3),
            "p50_us": round(percentile(ordered, 0.50) * 1e6),
            "p99_us": round(percentile(ordered, 0.99) * 1e6),
            "avg_us": round(sum(ordered) / len(ordered) * 1e6) if ordered else 0,
        }


def _again(taken: list[bytes], source: Iterator[bytes]) -> Iterator[bytes]:
    """``source`` with the values taken from it for a write that did not happen."""
    yield from taken
    yield from source


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clients.device_pipeline",
        description="Keep many values in flight through one open file of the client "
                    "device (O_NONBLOCK writes, receipts read as they come).")
    parser.add_argument("device", help="the client device, e.g. /dev/kpaxos-client")
    parser.add_argument("--window", type=int, default=1000,
                        help="values in flight at most (default: %(default)s)")
    parser.add_argument("--per-write", type=int, default=1, metavar="K",
                        help="values per write: above 1, framed writes (default: 1, "
                             "one value per write)")
    parser.add_argument("--value-size", type=int, default=64,
                        help="bytes per value, the newline included (default: %(default)s)")
    limit = parser.add_mutually_exclusive_group(required=True)
    limit.add_argument("--duration", type=float, help="seconds of writing")
    limit.add_argument("--count", type=int, help="values to write")
    parser.add_argument("--record", help="write each receipt and its value to this file")
    args = parser.parse_args(argv)
    if args.window < 1 or args.per_write < 1 or args.value_size < 2:
        parser.error("--window and --per-write must be at least 1, --value-size at least 2")
    until = time.monotonic() + args.duration if args.duration is not None else None
    source = values(args.value_size, args.count, until)
    try:
        if args.record:
            with open(args.record, "wb", buffering=0) as record:  # as they come
                result = run(args.device, args.window, source, record, args.per_write)
        else:
            result = run(args.device, args.window, source, per_write=args.per_write)
    except (OSError, PipelineError) as exc:
        print(f"device_pipeline: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
