"""Propose values through a client device from many threads at once, recording each write.

    python writer.py CLIENT_DEVICE FIRST COUNT THREADS RECORD REOPEN_SECONDS

writes the values ``value-FIRST`` .. ``value-(FIRST+COUNT-1)`` (each with a newline),
one blocking ``write`` per value: it returns once the value is decided. Thread ``t``
owns its own descriptor, opened for reading too, and writes values ``FIRST+t``,
``FIRST+t+THREADS``, ... After each write that returns, it reads the write's receipt
from the same descriptor: the position the value was decided at (docs/devices.md,
"Reads are write receipts").

Every write is recorded in RECORD as it happens, two lines of tab-separated fields on
the clock every process of the test shares (``time.time()``)::

    started  VALUE  START
    ended    VALUE  END  POSITION          (or: failed VALUE END ERRNO_NAME)

where a write that succeeded without a receipt is ``failed`` too, with
``receipt-ERRNO_NAME`` (the read failed) or ``no-receipt`` (it read end-of-file).

so that a write that never returned (the writer was killed) still has its start. The
record is read back by :mod:`tests.netns.recording`.

A failed write is not retried (the daemon would take a retry for a new value, which
could then be decided twice): it is recorded and the thread goes on with its next
value. Its descriptor may be dead (the learner behind the device was killed), so the
thread opens the device again, for up to REOPEN_SECONDS, while the learner restarts.
The exit status is 1 if a thread could not open the device within that time (its
remaining values are not written), 0 otherwise: failed writes are the record's to
judge, not the exit status's.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import threading
import time

#: How long a thread waits between attempts to open a device that is not served.
REOPEN_PAUSE = 0.1
#: Room for one receipt line: a position in decimal and a newline.
RECEIPT_SIZE = 64


def value(index: int) -> bytes:
    return b"value-%05d\n" % index


class Record:
    """The record file, written a whole line at a time by any thread."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._lock = threading.Lock()

    def line(self, *fields: str) -> None:
        data = ("\t".join(fields) + "\n").encode()
        with self._lock:
            os.write(self._fd, data)

    def close(self) -> None:
        os.close(self._fd)


def error_name(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, f"errno-{exc.errno}")


def open_device(device: str, patience: float) -> int:
    """The device opened for writing and reading, trying again while it is not served."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return os.open(device, os.O_RDWR)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(REOPEN_PAUSE)


def write_one(fd: int, index: int, record: Record) -> bool:
    """Write value ``index`` and read its receipt; whether the descriptor still works."""
    name = value(index).decode().rstrip("\n")
    record.line("started", name, repr(time.time()))
    try:
        written = os.write(fd, value(index))
        if written != len(value(index)):
            raise OSError(errno.EIO, f"short write of {written} bytes")
    except OSError as exc:
        record.line("failed", name, repr(time.time()), error_name(exc))
        return False
    end = time.time()
    try:
        receipt = os.read(fd, RECEIPT_SIZE)
    except OSError as exc:
        # Decided, but where is unknown: the history takes it as not acknowledged.
        record.line("failed", name, repr(end), f"receipt-{error_name(exc)}")
        return False
    if not receipt.strip():
        record.line("failed", name, repr(end), "no-receipt")
        return True
    record.line("ended", name, repr(end), receipt.decode().strip())
    return True


def close_device(fd: int) -> None:
    """Close a descriptor of the device, which may be dead: close(2) then fails
    (ENOTCONN), having released it all the same."""
    with contextlib.suppress(OSError):
        os.close(fd)


def main() -> int:
    device, record_path = sys.argv[1], sys.argv[5]
    first, count, threads = map(int, sys.argv[2:5])
    patience = float(sys.argv[6])
    record = Record(record_path)
    unopened: list[str] = []
    lock = threading.Lock()

    def write_share(t: int) -> None:
        share = iter(range(first + t, first + count, threads))
        fd = -1
        try:
            for index in share:
                if fd < 0:
                    fd = open_device(device, patience)
                if not write_one(fd, index, record):
                    close_device(fd)
                    fd = -1
        except OSError as exc:
            with lock:
                unopened.append(f"thread {t}: cannot open {device}: {exc}")
        finally:
            if fd >= 0:
                close_device(fd)

    workers = [threading.Thread(target=write_share, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    record.close()
    for failure in unopened:
        print(f"writer: {failure}", file=sys.stderr)
    return 1 if unopened else 0


if __name__ == "__main__":
    sys.exit(main())
