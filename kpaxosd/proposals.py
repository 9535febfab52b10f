"""Proposals from the client device: each value travels to a proposer as CLIENT_VALUE.

Like the original client, a value not seen decided within ``resend_interval`` is sent
again. Each value is wrapped in an envelope naming this node and a sequence number,
so the node recognises its own decision and learners deliver a resent value once.

Learners tell a resend from a new value only within ``seq_window`` sequence numbers
below the highest they delivered from this node (:class:`~kpaxosd.paxos.dedupe.
OriginFilter`); anything older counts as delivered. So no value may still be waiting
for its decision when the one ``seq_window`` numbers after it is sent: a write waits
for room rather than risk its value being taken for a resend and never delivered.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import trio

from devices.ports import NodeStopping, ProposalTimeout, ValueTooLarge
from kpaxosd.paxos.cluster import Address
from kpaxosd.paxos.effects import Decision, Deliver
from kpaxosd.paxos.options import PaxosOptions
from wire import ENVELOPE_OVERHEAD, MAX_VALUE_SIZE, ClientValue, Message, wrap

log = logging.getLogger("kpaxos.client")

Origin = tuple[int, int]


class _Waiter:
    __slots__ = ("decided", "position")

    def __init__(self) -> None:
        self.decided = trio.Event()
        self.position: int | None = None


class ClientProposals:
    """The :class:`devices.ports.Proposals` of a node hosting a learner."""

    def __init__(
        self,
        send: Callable[[Message, Address], None],
        proposer: Address,
        client_id: int,
        *,
        timeout: float = 30.0,
        resend_interval: float = 1.0,
        overhead: int = 0,
        observe_latency: Callable[[float], None] | None = None,
        seq_window: int = PaxosOptions().dedupe_window,
        send_many: Callable[[list[tuple[Message, Address]]], None] | None = None,
    ) -> None:
        self._send = send
        self._send_many = send_many
        # First sends of this scheduler tick, gone out together (see _send_first).
        self._first_sends: list[tuple[Message, Address]] = []
        self._proposer = proposer
        self._client_id = client_id
        self._timeout = timeout
        self._resend_interval = resend_interval
        # Bytes the transport adds to every datagram (the authentication trailer).
        self._overhead = overhead
        self._observe_latency = observe_latency
        self._next_seq = 1
        # In sequence order (numbers only grow): the first is the oldest undecided.
        self._waiting: dict[Origin, _Waiter] = {}
        self._seq_window = seq_window
        # Set (and replaced) whenever the oldest undecided value is done.
        self._room = trio.Event()
        self._stopping = False

    @property
    def max_value_size(self) -> int:
        return MAX_VALUE_SIZE - ENVELOPE_OVERHEAD - self._overhead

    @property
    def outstanding(self) -> int:
        return len(self._waiting)

    async def propose(self, value: bytes) -> int:
        if len(value) > self.max_value_size:
            raise ValueTooLarge(
                f"a value of {len(value)} bytes exceeds the limit of {self.max_value_size}"
            )
        if self._stopping:
            raise NodeStopping("the node is stopping")
        started = trio.current_time()
        deadline = started + self._timeout if self._timeout > 0 else math.inf
        with trio.move_on_at(deadline):
            await self._wait_for_room()
        if self._stopping:
            raise NodeStopping("the node is stopping")
        if trio.current_time() >= deadline:
            raise ProposalTimeout(
                f"not sent within {self._timeout:g} s: the value {self._seq_window} before "
                f"it is still undecided"
            )
        origin = (self._client_id, self._next_seq)
        self._next_seq += 1
        message = ClientValue(wrap(*origin, value))
        waiter = _Waiter()
        self._waiting[origin] = waiter
        try:
            with trio.move_on_at(deadline):
                await self._send_first(message)
                while True:
                    with trio.move_on_after(self._resend_interval):
                        await waiter.decided.wait()
                    if waiter.decided.is_set():
                        break
                    log.debug("value %s not decided yet, sending it again", origin)
                    self._send(message, self._proposer)
        finally:
            self._done(origin)
        if waiter.position is None:
            if self._stopping:
                raise NodeStopping("the node stopped before the value was decided")
            raise ProposalTimeout(f"no decision within {self._timeout:g} s")
        if self._observe_latency is not None:
            self._observe_latency(trio.current_time() - started)
        return waiter.position

    async def _send_first(self, message: Message) -> None:
        """Send a value for the first time, with every other first send of this tick.

        The writers of the client device propose from tasks that all run in the same
        scheduler tick; sent one at a time, each would run a whole round of the
        protocol in this process before the next (the LocalBus delivers at once), and
        the proposer would never see two values together to pack into one instance.
        So the first of a tick waits one checkpoint for the others, then sends them all.
        """
        send_many = self._send_many
        if send_many is None:
            self._send(message, self._proposer)
            return
        queued = self._first_sends
        queued.append((message, self._proposer))
        if len(queued) > 1:
            return  # the first of this tick sends it
        try:
            await trio.lowlevel.checkpoint()
        finally:
            self._first_sends = []
            send_many(queued)

    async def _wait_for_room(self) -> None:
        """Until the oldest undecided value is less than seq_window numbers back."""
        while not self._stopping and self._waiting:
            oldest = next(iter(self._waiting))[1]
            if self._next_seq - oldest < self._seq_window:
                return
            await self._room.wait()

    def _done(self, origin: Origin) -> None:
        oldest = next(iter(self._waiting)) == origin
        del self._waiting[origin]
        if oldest:
            self._room.set()
            self._room = trio.Event()

    def on_decisions(self, decisions: Sequence[Decision]) -> None:
        """Wake the writers whose values the learner delivered."""
        # Only the client device's own proposals wait for their origins.
        if not self._waiting:
            return
        for decision in decisions:
            if isinstance(decision, Deliver):
                for position, origin in zip(decision.positions(), decision.origins,
                                            strict=True):
                    self.decided(position, origin)

    def decided(self, position: int, origin: Origin | None) -> None:
        """The learner delivered ``origin`` at ``position``."""
        if origin is None:
            return
        waiter = self._waiting.get(origin)
        if waiter is not None and waiter.position is None:
            waiter.position = position
            waiter.decided.set()

    def stop(self) -> None:
        """Fail every pending and future proposal with NodeStopping."""
        self._stopping = True
        for waiter in self._waiting.values():
            waiter.decided.set()
        self._room.set()
