"""One UDP endpoint driving one sans-IO :class:`~kpaxosd.paxos.node.Node`.

The loop is the one of STYLE.md: wait until the socket is readable or the core's
deadline passes, drain every pending datagram with non-blocking reads (one scheduler
round trip per batch, not per datagram), let the core handle its timers, then carry
out what it asked for in order.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import trio

from kpaxosd.auth import Authenticator, AuthError
from kpaxosd.paxos.cluster import Address
from kpaxosd.paxos.effects import Deliver, Persist, Send
from kpaxosd.paxos.node import Node
from kpaxosd.storage import AcceptorStore
from wire import MESSAGE_TYPES, WireError, decode_untrusted, encode

log = logging.getLogger("kpaxos.udp")

#: Datagrams handled before the core's output is flushed and other tasks get a turn.
DRAIN_LIMIT = 4096
SOCKET_BUFFER_BYTES = 4 * 1024 * 1024


@dataclass
class EndpointCounters:
    datagrams_in: int = 0
    datagrams_out: int = 0
    malformed: int = 0
    unauthenticated: int = 0
    send_failures: int = 0


def open_udp_socket(address: Address) -> socket.socket:
    """A non-blocking UDP socket bound to ``address``.

    Raises:
        OSError: the address cannot be bound (in use, not local).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            with contextlib.suppress(OSError):  # a smaller buffer still works
                sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


class UdpEndpoint:
    """Runs ``node`` on ``sock``; delivered values go to ``on_deliver``."""

    def __init__(
        self,
        node: Node,
        sock: socket.socket,
        *,
        on_deliver: Callable[[Deliver], None] | None = None,
        store: AcceptorStore | None = None,
        auth: Authenticator | None = None,
        name: str = "endpoint",
    ) -> None:
        self.node = node
        self.sock = sock
        self.name = name
        self.store = store
        self.auth = auth
        #: Messages sent, by type name (for metrics).
        self.sent_by_type: collections.Counter[str] = collections.Counter()
        self.counters = EndpointCounters()
        self._on_deliver = on_deliver

    @property
    def address(self) -> Address:
        host, port = self.sock.getsockname()
        return (host, port)

    def send_datagram(self, data: bytes, dest: Address) -> None:
        """Send raw bytes from this endpoint's socket; loss is UDP's, never an error."""
        if self.auth is not None:
            data = self.auth.seal(data, time.time())
        try:
            self.sock.sendto(data, dest)
            self.counters.datagrams_out += 1
        except OSError as exc:
            # A full buffer or an unreachable peer: the protocol's retries cover it.
            self.counters.send_failures += 1
            log.debug("%s: sending to %s:%d failed: %s", self.name, dest[0], dest[1], exc)

    def flush(self) -> None:
        """Carry out what the core asked for, in its order.

        Every Persist of the batch is made durable in one transaction before any
        message of the batch leaves: persisting first keeps each Persist ahead of
        the Send it guards, and one sync for the whole batch is the group commit.
        """
        effects = self.node.pop_effects()
        if self.store is not None:
            persists = [effect for effect in effects if isinstance(effect, Persist)]
            if persists:
                self.store.commit(persists)
        for effect in effects:
            if isinstance(effect, Send):
                self.send_datagram(encode(effect.msg), effect.dest)
                self.sent_by_type[MESSAGE_TYPES[type(effect.msg)].name] += 1
            elif isinstance(effect, Deliver) and self._on_deliver is not None:
                self._on_deliver(effect)

    def _drain(self, now: float) -> None:
        node, sock, counters, auth = self.node, self.sock, self.counters, self.auth
        wall_clock = time.time() if auth is not None else 0.0
        for _ in range(DRAIN_LIMIT):
            try:
                data, src = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # e.g. ECONNREFUSED reported from an earlier send: nothing to read.
                log.debug("%s: receive error %s", self.name, exc)
                continue
            counters.datagrams_in += 1
            if auth is not None:
                try:
                    data = auth.open_untrusted(data, wall_clock)
                except AuthError as exc:
                    counters.unauthenticated += 1
                    log.debug("%s: dropped a datagram from %s:%d: %s", self.name, *src,
                              exc.reason)
                    continue
            try:
                msg = decode_untrusted(data)
            except WireError as exc:
                counters.malformed += 1
                log.debug("%s: dropped a datagram from %s:%d: %s", self.name, *src, exc)
                continue
            node.receive(msg, (src[0], src[1]), now)

    async def run(self) -> None:
        """Serve until cancelled."""
        node = self.node
        self.flush()
        while True:
            deadline = node.next_deadline()
            with trio.move_on_at(math.inf if deadline is None else deadline):
                await trio.lowlevel.wait_readable(self.sock)
            now = trio.current_time()
            self._drain(now)
            deadline = node.next_deadline()
            if deadline is not None and deadline <= now:
                node.handle_timer(now)
            self.flush()
