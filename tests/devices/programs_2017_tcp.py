"""Stand-ins for the TCP side of the 2017 programs: the client that learns from a
user-space learner over TCP, and that learner (tests/vectors/kernel_paxos_2017_programs.txt).

Each does what its commit's program did on the wire, quirks included: a client reads
up to 8 KiB at a time and looks at the first record of each read only; a 2017-09-18
client greets with its id, takes any read that starts with ``k`` for the
acknowledgement and then submits ``-o`` values; a 175aafb learner sends every record
to every client, a 3891411 learner only to the first connection registered under the
record's client id, after answering each read of a client with ``k``.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import socket
import threading
import time

from tests.devices.programs_2017 import client_value_datagram, open_write, payload
from wire.original import (
    CLIENT_VALUE_HEADER_SIZE,
    GREETING_ACK,
    ID_GREETING_CODEC,
    unpack_client_value_untrusted,
)

READ_BUFFER = 8192


class TcpClient:
    """``client_user -c -s IP PORT`` (175aafb) or ``user_app -c -s IP PORT -o N``
    (3891411): proposes over UDP, learns its values from a learner over TCP."""

    def __init__(self, commit: str, learner: tuple[str, int], proposer: tuple[str, int],
                 *, value_size: int = 16, outstanding: int = 1, seed: int = 0) -> None:
        self.commit = commit
        self.value_size = value_size
        self.outstanding = outstanding
        self._rng = random.Random(seed)
        self.client_id = self._rng.randrange(2**31)
        self._proposer = proposer
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._tcp = socket.create_connection(learner, timeout=60)
        self._tcp.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.own = 0
        self.acks = 0
        self.sent = 0
        if commit == "3891411":
            self._tcp.sendall(self.greeting())

    def greeting(self) -> bytes:
        return ID_GREETING_CODEC.pack(self.client_id)

    def submit(self) -> None:
        now = time.time()
        self._udp.sendto(client_value_datagram(self.client_id, int(now), int(now % 1 * 1e6),
                                               payload(self._rng, self.value_size)),
                         self._proposer)
        self.sent += 1

    def run(self, values: int, timeout: float) -> None:
        """Until ``values`` of its own were seen: 175aafb sends its first value at once,
        3891411 waits for the 'k'; both send a new one after a second without one."""
        if self.commit != "3891411":
            self.submit()
        deadline = time.monotonic() + timeout
        resend_at = time.monotonic() + 1.0
        while self.own < values:
            now = time.monotonic()
            assert now < deadline, (f"{self.commit} client: {self.own} of {values} own "
                                    f"values in {timeout} s ({self.acks} acks)")
            if now >= resend_at:
                self.submit()
                resend_at = now + 1.0
            readable, _, _ = select.select([self._tcp], [], [], 0.1)
            if not readable:
                continue
            chunk = self._tcp.recv(READ_BUFFER)
            assert chunk, "the learner closed the connection"
            if self.commit == "3891411" and chunk[:1] == GREETING_ACK:
                self.acks += 1
                for _ in range(self.outstanding):
                    self.submit()
                continue
            # Only the first record of the read is looked at.
            value = unpack_client_value_untrusted(
                chunk[4 : 4 + CLIENT_VALUE_HEADER_SIZE + self.value_size])
            if value is not None and value.client_id == self.client_id:
                self.own += 1
                self.submit()
                resend_at = time.monotonic() + 1.0

    def close(self) -> None:
        self._tcp.close()
        self._udp.close()


class TcpLearner:
    """``client_user -d N -s IP PORT`` (175aafb) or ``user_app -l T -d N -s IP PORT``
    (3891411), in a thread: reads the device in record mode and forwards records."""

    def __init__(self, commit: str, device: str, *, value_size: int = 16,
                 trim_period: int = 100_000) -> None:
        self.commit = commit
        self.value_size = value_size
        self.trim_period = trim_period
        self.record_size = 4 + CLIENT_VALUE_HEADER_SIZE + value_size
        self._fd = os.open(device, os.O_RDWR | os.O_NONBLOCK)
        os.write(self._fd, open_write(commit, value_size))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = self._listener.getsockname()
        self._clients: dict[socket.socket, int | None] = {}
        self.forwarded = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            conns = {conn.fileno(): conn for conn in self._clients}
            listener = self._listener.fileno()
            readable, _, _ = select.select([listener, self._fd, *conns], [], [], 0.05)
            for source in readable:
                if source == listener:
                    conn, _ = self._listener.accept()
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    self._clients[conn] = None
                elif source == self._fd:
                    self._take_records()
                elif conns[source] in self._clients:  # not dropped in this round
                    self._read_client(conns[source])

    def _read_client(self, conn: socket.socket) -> None:
        data = b""
        with contextlib.suppress(OSError):
            data = conn.recv(READ_BUFFER)
        if not data:
            del self._clients[conn]
            conn.close()
        elif self.commit == "3891411":
            # Its first 4 bytes name the connection; every read draws a 'k'.
            (self._clients[conn],) = ID_GREETING_CODEC.unpack_from(data)
            conn.sendall(GREETING_ACK)

    def _take_records(self) -> None:
        while True:
            try:
                record = os.read(self._fd, READ_BUFFER)
            except BlockingIOError:
                return
            iid = int.from_bytes(record[:4], "little", signed=True)
            forwarded = record[: self.record_size]
            client_id = int.from_bytes(record[4:8], "little", signed=True)
            if self.commit == "3891411":
                targets = [conn for conn, registered in self._clients.items()
                           if registered == client_id][:1]
                if iid % self.trim_period == 0:
                    os.write(self._fd, b"1" + (iid - self.trim_period + 1).to_bytes(8, "little"))
            else:
                targets = list(self._clients)
            for conn in targets:
                try:
                    conn.sendall(forwarded)
                    self.forwarded += 1
                except OSError:  # the original dropped a client on an error
                    del self._clients[conn]
                    conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for conn in self._clients:
            conn.close()
        self._listener.close()
        os.close(self._fd)
