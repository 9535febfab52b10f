"""Proposals from the client device: each value travels to a proposer as CLIENT_VALUE.

Like the original client, a value not seen decided within ``resend_interval`` is sent
again. Each value is wrapped in an envelope naming this node and a sequence number,
so the node recognises its own decision and learners deliver a resent value once.

Learners tell a resend from a new value only within ``seq_window`` sequence numbers
below the highest they delivered from this node (:class:`~kpaxosd.paxos.dedupe.
OriginFilter`); anything older counts as delivered. So no value may still be waiting
for its decision when the one ``seq_window`` numbers after it is sent: a value waits,
queued and unsent, for room rather than risk being taken for a resend and never
delivered.

A value costs no task: :meth:`ClientProposals.submit` queues it and the decision calls
its callback. One service task (:meth:`ClientProposals.run`) sends what was queued,
resends and times out; everything submitted in one scheduler tick leaves together. A
caller that submits many at once and says when it is done (``flush=False``, then
:meth:`ClientProposals.flush`: the device, after each batch of requests) spares the
task's turn. What goes together travels in batch envelopes (``batch_room`` bytes at
most, wire.batch), as kpaxos-client's values do: one message for the proposer to take
apart, not one each. One that can wait a little (``hold``: a device's non-blocking write)
waits up to that long for others to go with it: in one process a round of Paxos
runs to its end before the next request is read, so values sent one at a time each
cost a whole round.
"""

from __future__ import annotations

import enum
import logging
import math
from collections import deque
from collections.abc import Callable, Sequence

import trio

from devices.ports import (
    NodeStopping,
    NoQuorum,
    Outcome,
    ProposalError,
    ProposalTimeout,
    ValueTooLarge,
)
from kpaxosd.paxos.cluster import Address
from kpaxosd.paxos.effects import Decision, Deliver
from kpaxosd.paxos.options import PaxosOptions
from wire import ENVELOPE_OVERHEAD, MAX_VALUE_SIZE, ClientValue, Message, wrap
from wire.batch import BATCH_OVERHEAD, ITEM_OVERHEAD, pack_batch

log = logging.getLogger("kpaxos.client")

Origin = tuple[int, int]


#: Values held (submit's ``hold``) that are sent at once whatever their time.
MAX_HELD = 256


class _State(enum.Enum):
    QUEUED = enum.auto()  # waiting for room, no sequence number yet
    SENT = enum.auto()  # sent, undecided
    OVER = enum.auto()  # decided, failed or withdrawn


class Proposal:
    """One submitted value, until its callback is called or it is withdrawn."""

    __slots__ = ("_owner", "deadline", "done", "origin", "resend_at", "started", "state",
                 "value", "wrapped")

    def __init__(self, owner: ClientProposals, value: bytes, done: Callable[[Outcome], None],
                 started: float, deadline: float) -> None:
        self._owner = owner
        self.value = value
        self.done = done
        self.started = started
        self.deadline = deadline
        self.state = _State.QUEUED
        self.resend_at = math.inf
        self.origin: Origin | None = None
        #: The value in its envelope, as sent (once it has a sequence number).
        self.wrapped = b""

    def withdraw(self) -> None:
        self._owner._withdraw(self)


class ClientProposals:
    """The :class:`devices.ports.Proposals` of a node hosting a learner.

    :meth:`run` must be running for anything submitted to be sent.
    """

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
        batch_room: int | None = None,
    ) -> None:
        self._send = send
        self._send_many = send_many
        self._proposer = proposer
        self._client_id = client_id
        self._timeout = timeout
        self._resend_interval = resend_interval
        # Bytes the transport adds to every datagram (the authentication trailer).
        self._overhead = overhead
        self._observe_latency = observe_latency
        self._seq_window = seq_window
        self._next_seq = 1
        # At most the oldest undecided seq: checking room rarely needs the exact one.
        self._oldest_seq_floor = 1
        # Sent and undecided, in sequence order, which is the order submitted.
        self._waiting: dict[Origin, Proposal] = {}
        # Submitted after those, waiting for room.
        self._queued: deque[Proposal] = deque()
        # Sent since the service task last ran (wrapped): they go together, by _flush_at,
        # packed into batch envelopes of at most batch_room bytes (None: one a message).
        self._unsent: list[bytes] = []
        self._batch_room = batch_room
        self._flush_at = math.inf
        # No undecided value is due to be sent again before this.
        self._next_resend = math.inf
        self._room_callbacks: list[Callable[[], None]] = []
        self._wakeup = trio.Event()
        # Until when the service task sleeps (-inf: it is not asleep).
        self._sleeping_until = -math.inf
        self._stopping = False
        # Whether the learner hears from a quorum of acceptors (set_reachable).
        self._reachable = True

    @property
    def max_value_size(self) -> int:
        return MAX_VALUE_SIZE - ENVELOPE_OVERHEAD - self._overhead

    @property
    def outstanding(self) -> int:
        """Values submitted and not over yet (sent or queued)."""
        return len(self._waiting) + len(self._queued)

    @property
    def has_room(self) -> bool:
        # Not reachable: a write fails at once (ENOTCONN), so it may as well come.
        return (self._stopping or not self._reachable
                or (not self._queued and self._room_for_one()))

    def submit(self, value: bytes, done: Callable[[Outcome], None], *,
               flush: bool = True, hold: float = 0.0) -> Proposal:
        if len(value) > self.max_value_size:
            raise ValueTooLarge(
                f"a value of {len(value)} bytes exceeds the limit of {self.max_value_size}"
            )
        if self._stopping:
            raise NodeStopping("the node is stopping")
        if not self._reachable:
            raise NoQuorum("the learner hears from no quorum of acceptors: nothing can be "
                           "decided now")
        now = trio.current_time()
        deadline = now + self._timeout if self._timeout > 0 else math.inf
        proposal = Proposal(self, value, done, now, deadline)
        if self._queued or not self._room_for_one():
            self._queued.append(proposal)
        else:
            self._send_first(proposal, flush, hold)
        return proposal

    def flush(self) -> None:
        """Send what was submitted with ``flush=False``, together."""
        if self._unsent:
            self._flush()

    def when_room(self, callback: Callable[[], None]) -> None:
        if self.has_room:
            callback()
        else:
            self._room_callbacks.append(callback)

    async def propose(self, value: bytes) -> int:
        """:meth:`submit`, awaited: the position, or the outcome's error raised."""
        outcome: list[Outcome] = []
        over = trio.Event()

        def done(result: Outcome) -> None:
            outcome.append(result)
            over.set()

        proposal = self.submit(value, done)
        try:
            await over.wait()
        finally:
            if not outcome:
                proposal.withdraw()
        result = outcome[0]
        if isinstance(result, ProposalError):
            raise result
        return result

    # -- the service task ---------------------------------------------------------------

    async def run(self) -> None:
        """Send what was submitted, resend what is undecided, time out what is late."""
        while True:
            self._wakeup = trio.Event()
            now = trio.current_time()
            self._time_out(now)
            self._resend_due(now)
            if self._unsent and now >= self._flush_at:
                self._flush()
            wake_at = min(self._next_resend, self._flush_at)
            if self._waiting:
                wake_at = min(wake_at, next(iter(self._waiting.values())).deadline)
            elif self._queued:
                wake_at = min(wake_at, self._queued[0].deadline)
            self._sleeping_until = wake_at
            with trio.move_on_at(wake_at):
                await self._wakeup.wait()
            self._sleeping_until = -math.inf

    def _send_first(self, proposal: Proposal, flush: bool = True, hold: float = 0.0) -> None:
        origin = (self._client_id, self._next_seq)
        self._next_seq += 1
        proposal.origin = origin
        proposal.wrapped = wrap(*origin, proposal.value)
        proposal.state = _State.SENT
        self._waiting[origin] = proposal
        now = trio.current_time()
        proposal.resend_at = resend_at = now + self._resend_interval
        if resend_at < self._next_resend:
            self._next_resend = resend_at
        flush_by = now + hold
        if flush_by < self._flush_at:
            self._flush_at = flush_by
        self._unsent.append(proposal.wrapped)
        # The service task sends it (at once, or once held long enough), unless the
        # caller flushes; either way its timers must cover this value.
        due = min(resend_at, proposal.deadline)
        if flush or hold:
            due = min(due, flush_by)
        if due < self._sleeping_until:
            self._wakeup.set()
        if hold and len(self._unsent) >= MAX_HELD:
            self._flush()

    def _flush(self) -> None:
        """Send the values sent since the last time, together.

        The device's writes of one engine batch (and the writers' of one tick) are
        submitted one after the other; sent one at a time, each would run a whole round
        of the protocol in this process before the next (the LocalBus delivers at
        once), and the proposer would never see two values together to pack into one
        instance.
        """
        unsent, self._unsent = self._unsent, []
        self._flush_at = math.inf
        proposer = self._proposer
        if self._batch_room is not None and len(unsent) > 1:
            unsent = _batches(unsent, self._batch_room)
        messages: list[tuple[Message, Address]] = [
            (ClientValue(value), proposer) for value in unsent]
        if self._send_many is not None:
            self._send_many(messages)
        else:
            for message, address in messages:
                self._send(message, address)

    def _resend_due(self, now: float) -> None:
        # A walk over the undecided values, about once per resend interval under load:
        # a decided value is forgotten at once, not kept for a timer to find.
        if now < self._next_resend:
            return
        again = now + self._resend_interval
        next_resend = math.inf
        count = 0
        for proposal in self._waiting.values():
            if proposal.resend_at <= now:
                count += 1
                self._unsent.append(proposal.wrapped)
                proposal.resend_at = again
            next_resend = min(next_resend, proposal.resend_at)
        self._next_resend = next_resend
        if count:
            self._flush_at = min(self._flush_at, now)
            log.debug("%d values not decided yet, sending them again", count)

    def _time_out(self, now: float) -> None:
        waiting = self._waiting
        while waiting:
            proposal = next(iter(waiting.values()))
            if proposal.deadline > now:
                return
            self._over(proposal)
            _tell(proposal, ProposalTimeout(f"no decision within {self._timeout:g} s"))
        queued = self._queued
        while queued and queued[0].deadline <= now:
            proposal = queued.popleft()
            proposal.state = _State.OVER
            _tell(proposal, ProposalTimeout(
                f"not sent within {self._timeout:g} s: the value {self._seq_window} before "
                f"it is still undecided"))
        self._admit()

    # -- room ---------------------------------------------------------------------------

    def _room_for_one(self) -> bool:
        """Is the oldest undecided value less than seq_window numbers back?"""
        if self._next_seq - self._oldest_seq_floor < self._seq_window:
            return True
        if not self._waiting:
            self._oldest_seq_floor = self._next_seq
            return True
        self._oldest_seq_floor = next(iter(self._waiting))[1]
        return self._next_seq - self._oldest_seq_floor < self._seq_window

    def _admit(self) -> None:
        """Send queued values while there is room; tell whoever waits for room."""
        queued = self._queued
        while queued and self._room_for_one():
            self._send_first(queued.popleft())
        if self._room_callbacks and not queued:
            self._call_room_callbacks()

    def _call_room_callbacks(self) -> None:
        callbacks, self._room_callbacks = self._room_callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("a callback waiting for room failed")

    def _over(self, proposal: Proposal) -> None:
        if proposal.state is _State.SENT:
            assert proposal.origin is not None
            del self._waiting[proposal.origin]
        proposal.state = _State.OVER

    def _withdraw(self, proposal: Proposal) -> None:
        if proposal.state is _State.QUEUED:
            self._queued.remove(proposal)
        self._over(proposal)
        self._admit()

    # -- decisions ----------------------------------------------------------------------

    def on_decisions(self, decisions: Sequence[Decision]) -> None:
        """Tell the submitters whose values the learner delivered."""
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
        proposal = self._waiting.pop(origin, None)
        if proposal is None:
            return
        proposal.state = _State.OVER
        if self._observe_latency is not None:
            self._observe_latency(trio.current_time() - proposal.started)
        _tell(proposal, position)
        if self._queued or self._room_callbacks:
            self._admit()

    def set_reachable(self, reachable: bool) -> None:
        """The learner hears from a quorum of acceptors again, or no longer does: then
        every value waiting fails with NoQuorum (one already sent may still be
        decided, as after a timeout), and new ones fail at once until it does."""
        self._reachable = reachable
        if not reachable:
            self._fail_all(NoQuorum("the learner stopped hearing from a quorum of "
                                    "acceptors before the value was decided"))

    def stop(self) -> None:
        """Fail every pending and future proposal with NodeStopping."""
        self._stopping = True
        self._fail_all(NodeStopping("the node stopped before the value was decided"))

    def _fail_all(self, error: ProposalError) -> None:
        over = [*self._waiting.values(), *self._queued]
        self._waiting.clear()
        self._queued.clear()
        for proposal in over:
            proposal.state = _State.OVER
            _tell(proposal, error)
        self._call_room_callbacks()


def _batches(values: list[bytes], room: int) -> list[bytes]:
    """``values`` packed into batch envelopes of at most ``room`` bytes (one that
    does not fit one with another goes alone, as itself)."""
    packed: list[bytes] = []
    chunk: list[bytes] = []
    size = BATCH_OVERHEAD
    for value in values:
        grown = size + ITEM_OVERHEAD + len(value)
        if chunk and grown > room:
            packed.append(pack_batch(chunk) if len(chunk) > 1 else chunk[0])
            chunk, grown = [], BATCH_OVERHEAD + ITEM_OVERHEAD + len(value)
        chunk.append(value)
        size = grown
    if chunk:
        packed.append(pack_batch(chunk) if len(chunk) > 1 else chunk[0])
    return packed


def _tell(proposal: Proposal, outcome: Outcome) -> None:
    # Callbacks run inside decisions and the service task: one failing must not stop
    # the others being told.
    try:
        proposal.done(outcome)
    except Exception:
        log.exception("a proposal's callback failed")
