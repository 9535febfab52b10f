"""Stand-ins for the 2017 user-space programs of Kernel_Paxos, as device clients.

Written from tests/vectors/kernel_paxos_2017_programs.txt, not from the C code: each
writes to the learner device and to the proposer exactly the bytes its commit's
program did (the tests hold the bytes against the golden vectors), and reads records
the way it did — one record per read, judged by the client_id at offset 4, a new
value submitted for each of its own, one value a second when none comes.

- 8ae324a (2017-09-07) and 175aafb (2017-09-10) ``client_user -c -d 0``: the raw
  8-byte value size, then records.
- 3891411 (2017-09-18) ``user_app -c -d 0 -o N``: ``'0'``, the value size and
  ``'1'``; ``-o`` values at once; after the record of an iid that T divides (T is
  100,000 for a device client; a learner's ``-l T``), the trim write ``'1'`` and
  ``iid - T + 1``.
"""

from __future__ import annotations

import errno
import os
import random
import select
import socket
import string
import time
from dataclasses import dataclass, field

from wire import ClientValue, encode
from wire.original import (
    CLIENT_VALUE_HEADER_SIZE,
    OriginalClientValue,
    pack_client_value,
    pack_size_command,
    pack_trim_command,
    unpack_client_value_untrusted,
)

COMMITS = ("8ae324a", "175aafb", "3891411")
#: The alphabet of the payloads: rand() % 36 over 0-9a-z, then a NUL.
ALPHABET = (string.digits + string.ascii_lowercase).encode()
#: What the programs read at once (175aafb and 3891411; 8ae324a read 1000).
READ_BUFFER = 8192
#: A device client's trim period at 3891411 (-l T sets it for a learner).
CLIENT_TRIM_PERIOD = 100_000


def open_write(commit: str, value_size: int) -> bytes:
    """The program's first and only value-size write for payloads of ``value_size``."""
    size = CLIENT_VALUE_HEADER_SIZE + value_size
    if commit == "3891411":
        return pack_size_command(size, trims=True)
    return size.to_bytes(8, "little")


def payload(rng: random.Random, value_size: int) -> bytes:
    """``value_size - 1`` random characters and a NUL, as the programs drew them."""
    return bytes(rng.choice(ALPHABET) for _ in range(value_size - 1)) + b"\0"


def client_value_datagram(client_id: int, tv_sec: int, tv_usec: int, body: bytes) -> bytes:
    """CLIENT_VALUE with the client_value copied raw (little-endian): what every commit
    sent to the proposer."""
    return encode(ClientValue(pack_client_value(OriginalClientValue(client_id, tv_sec, tv_usec,
                                                                    body))))


@dataclass
class DeviceClient:
    """One program: a device client of ``commit`` proposing through ``proposer``."""

    commit: str
    device: str
    proposer: tuple[str, int]
    value_size: int = 16
    outstanding: int = 1
    trim_period: int = CLIENT_TRIM_PERIOD
    seed: int = 0
    #: Its own values seen decided, and every record's iid, in the order read.
    own: int = 0
    iids: list[int] = field(default_factory=list)
    sent: int = 0
    trims: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self.client_id = self._rng.randrange(2**31)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._fd = os.open(self.device, os.O_RDWR | os.O_NONBLOCK)
        written = os.write(self._fd, open_write(self.commit, self.value_size))
        assert written in (8, 10), written

    def submit(self) -> None:
        now = time.time()
        body = payload(self._rng, self.value_size)
        self._sock.sendto(client_value_datagram(self.client_id, int(now),
                                                int(now % 1 * 1e6), body), self.proposer)
        self.sent += 1

    def run(self, values: int, timeout: float) -> None:
        """Until ``values`` of its own were decided: the programs' loop."""
        for _ in range(self.outstanding if self.commit == "3891411" else 1):
            self.submit()
        deadline = time.monotonic() + timeout
        resend_at = time.monotonic() + 1.0
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        while self.own < values:
            now = time.monotonic()
            assert now < deadline, (f"{self.commit}: {self.own} of {values} own values "
                                    f"decided in {timeout} s")
            if now >= resend_at:  # no own delivery for a second: a new value
                self.submit()
                resend_at = now + 1.0
            poller.poll(100)
            try:
                record = os.read(self._fd, READ_BUFFER)
            except OSError as exc:
                if exc.errno == errno.EAGAIN:
                    continue
                raise
            if self._take(record):
                resend_at = time.monotonic() + 1.0

    def _take(self, record: bytes) -> bool:
        """Judge one record as the program did; whether it was its own."""
        assert len(record) == 4 + CLIENT_VALUE_HEADER_SIZE + self.value_size, len(record)
        iid = int.from_bytes(record[:4], "little", signed=True)
        self.iids.append(iid)
        if self.commit == "3891411" and iid % self.trim_period == 0:
            point = iid - self.trim_period + 1
            assert os.write(self._fd, pack_trim_command(point)) == 9
            self.trims.append(point)
        value = unpack_client_value_untrusted(record[4:])
        if value is None or value.client_id != self.client_id:
            return False
        self.own += 1
        self.submit()
        return True

    def close(self) -> None:
        os.close(self._fd)
        self._sock.close()
