"""The proposer: phase 1 ahead of time for a window of instances, client values into
phase 2, retries and preemptions (libpaxos proposer.c).

Beyond libpaxos:

- Exactly once. A client value whose origin (:mod:`wire.identity`) is queued, in
  flight, or among the last ``proposer_decided_memory`` decided values is dropped:
  the client resent it because it had not seen it yet, not to have it twice.
- Holes. A prepared instance below one known decided is a hole: learners wait for
  it. With no client value queued it is filled with the no-op (the empty value,
  decided like any other and delivered by nobody). libpaxos left the hole to the
  next client value, which in kpaxos may never come: resends of a decided value
  are dropped.
- A stable leader among several proposers (:mod:`kpaxosd.paxos.leader`): followers
  forward client values to it and prepare nothing.
- Re-opening. A learner that cannot learn an instance (LEARNER_STUCK) has the
  leader run Paxos for it again (:meth:`on_learner_stuck`).
- Batching. A CLIENT_VALUE carrying a batch envelope (:mod:`wire.batch`) is taken
  apart into its client values, each queued and deduplicated by its own origin. The
  client values queued when an instance is given a value go into it together, up to
  ``max_values_per_instance`` and ``batch_fill_bytes``, in one batch envelope; a single
  value goes alone, in its original format. Between :meth:`hold` and :meth:`release`
  (the wrapper's drain of a socket) values only queue, so that everything one drain
  brought is packed together rather than one instance per datagram.
"""

from __future__ import annotations

import enum
import heapq
import math
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

from kpaxosd.paxos.ballots import (
    BASE_BALLOT_CEILING,
    FIRST_ROUND_SPREAD,
    MAX_U32,
    ballot_above,
    ballot_of,
)
from kpaxosd.paxos.cluster import Address, Cluster
from kpaxosd.paxos.dedupe import RecentOrigins
from kpaxosd.paxos.effects import Outbox
from kpaxosd.paxos.leader import LeaderView, Role
from kpaxosd.paxos.options import PaxosOptions
from kpaxosd.paxos.stats import ProposerStatistics
from kpaxosd.paxos.values import NOOP
from kpaxosd.paxos.votes import Votes
from wire.batch import (
    BATCH_OVERHEAD,
    ITEM_OVERHEAD,
    must_travel_in_batch,
    pack_batch,
    unpack_batch_untrusted,
)
from wire.batch import MAGIC as BATCH_MAGIC
from wire.datagram import MAX_VALUE_SIZE
from wire.identity import Origin, origins_untrusted
from wire.messages import (
    Accept,
    Accepted,
    AcceptorState,
    ClientValue,
    LearnerStuck,
    Message,
    Preempted,
    Prepare,
    Promise,
    ProposerHi,
)

if TYPE_CHECKING:
    import random

#: A queued client value and its origin (None: a value without identity).
_Queued = tuple[bytes, Origin | None]

#: The window is refilled in this many parts: phase 1 for a sixteenth of it at once
#: (8 of libpaxos's 128), not for one instance whenever one closes. The acceptors
#: then read the PREPAREs, and the proposer their PROMISEs, in one wake-up each
#: rather than one per value: with one value in flight those were half of every
#: process's wake-ups. Larger parts delay the value in flight behind the burst.
REFILL_PARTS = 16
#: Instances open at once because a learner reported them stuck (beyond the window):
#: LEARNER_STUCK comes from anyone, and must not open instances without end.
REOPEN_MAX = 8


class Phase(enum.Enum):
    """Where one open instance of this proposer stands."""

    #: PREPARE sent at our ballot; collecting promises.
    PREPARING = "preparing"
    #: A quorum promised and nothing obliges a value: waiting for a client value.
    READY = "ready"
    #: ACCEPT sent; collecting acceptances.
    ACCEPTING = "accepting"
    #: Preempted: waiting a random while before preparing a higher ballot.
    BACKOFF = "backoff"


#: Every move an open instance makes. Closing (the instance is decided and forgotten)
#: can happen in any phase.
TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    # quorum without/with a value to propose; preempted; timed out
    Phase.PREPARING: frozenset({Phase.READY, Phase.ACCEPTING, Phase.BACKOFF, Phase.PREPARING}),
    # a client value arrived. A preemption noticed here would be a stale answer to
    # our PREPARE: the quorum we hold stands, and an ACCEPT will find out.
    Phase.READY: frozenset({Phase.ACCEPTING}),
    # timed out; preempted
    Phase.ACCEPTING: frozenset({Phase.PREPARING, Phase.BACKOFF}),
    Phase.BACKOFF: frozenset({Phase.PREPARING}),
}


class _Instance:
    __slots__ = (
        "accept_ballot",
        "ballot",
        "client_items",
        "client_value",
        "highest_seen",
        "iid",
        "phase",
        "preemptions",
        "promises",
        "timer",
        "value",
        "votes",
    )

    def __init__(self, iid: int, ballot: int) -> None:
        self.iid = iid
        self.ballot = ballot
        self.phase = Phase.PREPARING
        # aid -> (value_ballot, value) of its promise for our current ballot
        self.promises: dict[int, tuple[int, bytes]] = {}
        self.votes = Votes()
        # The value of our ACCEPT at the current ballot (ACCEPTING only).
        self.value: bytes | None = None
        # The value this instance proposes for clients (one client value, or a batch
        # of them) and the client values in it; they survive retries and go back to
        # the queue if the instance decides something else.
        self.client_value: bytes | None = None
        self.client_items: list[_Queued] = []
        # The highest ballot any acceptor reported for this iid: retries go above it.
        self.highest_seen = 0
        # The highest ballot we sent an ACCEPT with (0: none yet).
        self.accept_ballot = 0
        self.preemptions = 0
        # Identifies the live timer entry; 0: none.
        self.timer = 0


class Proposer:
    """One proposer. Input through the ``on_*`` handlers, ``submit`` and ``handle_timer``;
    output as effects on the shared outbox."""

    def __init__(
        self,
        pid: int,
        cluster: Cluster,
        options: PaxosOptions,
        rng: random.Random,
        outbox: Outbox,
        now: float,
    ) -> None:
        self.pid = pid
        self._acceptors = cluster.acceptors
        self._quorum = cluster.quorum
        # The highest ballot acceptors take now; we never prepare above it.
        self._ballot_ceiling = BASE_BALLOT_CEILING
        self._options = options
        self._rng = rng
        self._out = outbox
        self._instances: dict[int, _Instance] = {}
        self._next_iid = 1
        fill = options.batch_fill_bytes
        self._batch_room = min(options.max_batch_bytes, fill or options.max_batch_bytes)
        self._queue: deque[_Queued] = deque()
        # Origins (client_id, seq) of the enveloped values queued or carried by an
        # open instance: a client resends every second until it sees its value, and
        # on a slow cluster every copy would otherwise take an instance of its own.
        self._pending: set[tuple[int, int]] = set()
        # Origins of recently decided values: a resend of one is not proposed again.
        self._decided = RecentOrigins(options.proposer_decided_memory)
        # The pending origins decided through an instance not ours (another
        # proposer's, or a copy of ours): a queued one is dropped when its turn comes.
        # Our own closes cannot make a queued value decided (pending holds each
        # origin once), so taking values from the queue looks only here.
        self._stale: set[tuple[int, int]] = set()
        # A READY instance below this is a hole: an instance above it is decided (or
        # a learner waits for it).
        self._holes_below = 0
        # READY iids, lowest first (lazy: entries of instances that moved on stay
        # until popped or compacted).
        self._ready: list[int] = []
        # Instances in phase 2 with client values or no-ops (at most max_accepting
        # of them were given client values when they started).
        self._accepting: set[int] = set()
        # (due, iid, timer id) with lazy cancellation through _Instance.timer.
        self._timers: list[tuple[float, int, int]] = []
        self._timer_ids = 0
        # hold(): values queue without being assigned until release().
        self._held = False
        self._assign_due = False
        first_round = options.proposer_first_round
        if first_round is None:
            first_round = rng.randrange(1, FIRST_ROUND_SPREAD)
        #: The ballot every instance of this life starts with.
        self.first_ballot = ballot_of(first_round, pid)
        self.retries = 0
        self.preemptions = 0
        self.dropped = 0
        #: Client values merged with a copy queued or in flight ...
        self.coalesced = 0
        #: ... and dropped because they were decided recently.
        self.already_decided = 0
        #: Holes filled with the no-op.
        self.noops = 0
        #: Client values sent on to the leader.
        self.forwarded = 0
        #: Instances run again for a learner that could not learn them.
        self.reopened = 0
        # The open instances opened that way, and when each instance last was.
        self._reopened: set[int] = set()
        self._reopened_at: dict[int, float] = {}
        self._view = LeaderView(pid, cluster, options, now)
        self._leader = self._view.leader(now)
        self._role = Role.LEADING if self._leader == pid else Role.FOLLOWING
        # The leader view's next deadline, recomputed whenever the view changes.
        self._view_deadline: float | None = None
        self._heartbeat(now)
        if self._role is Role.LEADING:
            self._fill_window(now)

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def open_instances(self) -> int:
        return len(self._instances)

    @property
    def role(self) -> Role:
        return self._role

    @property
    def leader(self) -> int:
        """The proposer this one takes for the leader (its own id when leading)."""
        return self._leader

    @property
    def decided_below(self) -> int:
        """Every instance below this one is known decided (closed, or trimmed)."""
        return min(self._instances, default=self._next_iid)

    def statistics(self) -> ProposerStatistics:
        return ProposerStatistics(
            retries=self.retries,
            preemptions=self.preemptions,
            queued_values=self.queued,
            open_instances=self.open_instances,
            coalesced=self.coalesced,
            already_decided=self.already_decided,
            forwarded=self.forwarded,
            noops_proposed=self.noops,
            reopened=self.reopened,
            leader=self.leader,
            decided_below=self.decided_below,
            dropped=self.dropped,
        )

    def phase(self, iid: int) -> Phase | None:
        """The phase of an open instance; None once closed or not yet opened."""
        inst = self._instances.get(iid)
        return inst.phase if inst else None

    # -- input

    def submit(self, value: bytes, now: float) -> None:
        """Queue a client value (a CLIENT_VALUE that arrived, or a local proposal).

        A follower sends it on to the leader instead. The empty value is the no-op,
        not a proposal: it is dropped.
        """
        if not value or len(value) > MAX_VALUE_SIZE:
            self.dropped += 1
            return
        # The role changes only when a peer is heard or the view's deadline passes;
        # checking that, rather than asking the view, spares every client value two
        # walks over the peers.
        due = self._view_deadline
        if due is not None and now >= due:
            self._update_role(now)
        if self._role is Role.FOLLOWING:
            self.forwarded += 1
            self._out.send(self._view.peers[self._leader], ClientValue(value))
            return
        items = unpack_batch_untrusted(value)
        self._enqueue((value,) if items is None else items)
        self._assign(now)

    def hold(self) -> None:
        """Queue client values without giving them to instances until :meth:`release`."""
        self._held = True

    def release(self, now: float) -> None:
        """Give what queued since :meth:`hold` to instances, packed together."""
        self._held = False
        if self._assign_due:
            self._assign_due = False
            self._assign(now)

    def _enqueue(self, values: Sequence[bytes]) -> None:
        # Runs for every client value: the cheap tests first, no helper calls.
        queue, pending, limit = self._queue, self._pending, self._options.max_queued_values
        max_batch = self._options.max_batch_bytes - BATCH_OVERHEAD - ITEM_OVERHEAD
        # Nothing is remembered as decided while this runs.
        newer, older = self._decided.generations()
        origins, _ = origins_untrusted(values)
        for value, origin in zip(values, origins, strict=True):
            if not value or (value[:4] == BATCH_MAGIC and len(value) > max_batch):
                # The no-op is no proposal; a value that must travel in a batch and
                # cannot fit one cannot be proposed.
                self.dropped += 1
                continue
            if origin is not None:
                if origin in pending:
                    self.coalesced += 1
                    continue
                if origin in newer or origin in older:
                    self.already_decided += 1
                    continue
                if len(queue) >= limit:
                    self.dropped += 1
                    continue
                pending.add(origin)
            elif len(queue) >= limit:
                self.dropped += 1
                continue
            queue.append((value, origin))

    def on_learner_stuck(self, msg: LearnerStuck, now: float) -> None:
        """A learner cannot learn ``msg.iid``: the leader runs it again.

        A quorum accepted it once, and then the latest acceptances the acceptors
        hold came to disagree on the ballot (one acceptor of the quorum was lost for
        good, or a proposer retrying it higher was cut short). A new ballot fixes
        that: its promises bring the value back (or show that nothing was chosen,
        and the no-op fills the hole) and its acceptances make a fresh quorum. An
        instance still open, or not prepared yet, is left alone; one instance at
        most once per proposer_timeout, and at most REOPEN_MAX at a time.
        """
        if self._role is not Role.LEADING:
            return
        iid, timeout = msg.iid, self._options.proposer_timeout
        if (
            iid in self._instances
            or not 0 < iid < self._next_iid
            or len(self._reopened) >= REOPEN_MAX
            or now < self._reopened_at.get(iid, -math.inf) + timeout
        ):
            return
        if len(self._reopened_at) >= 4 * REOPEN_MAX:
            recent = self._reopened_at.items()
            self._reopened_at = {i: at for i, at in recent if now < at + timeout}
        self._reopened_at[iid] = now
        self._reopened.add(iid)
        self.reopened += 1
        # The learner knows of instances above, so this one is a hole.
        self._holes_below = max(self._holes_below, iid + 1)
        # One round above where every instance starts: the instance was most likely
        # decided at our first ballot, which the acceptors will not promise again.
        inst = _Instance(iid, ballot_above(self.pid, self.first_ballot) or self.first_ballot)
        self._instances[iid] = inst
        self._set_timer(inst, now + timeout)
        self._to_acceptors(Prepare(iid, inst.ballot))

    def learned(self, iid: int, value: bytes) -> None:
        """A learner on this node saw ``value`` decided in ``iid`` (a replica).

        Its origins join the memory of decided values, so a resend is not proposed
        again, even by a proposer that was following when it was decided. Our own
        instance's value is left to :meth:`_close`, which does the same.
        """
        inst = self._instances.get(iid)
        if inst is None or inst.client_value is None or inst.client_value != value:
            self._remember_decided(value)

    def on_promise(self, msg: Promise, now: float) -> None:
        if msg.aid not in self._acceptors:
            self.dropped += 1
            return
        inst = self._instances.get(msg.iid)
        if (
            inst is None
            or inst.phase is not Phase.PREPARING
            or msg.ballot != inst.ballot
            or msg.aid in inst.promises
        ):
            return  # stale or repeated
        inst.promises[msg.aid] = (msg.value_ballot, msg.value)
        if len(inst.promises) >= self._quorum:
            self._prepared(inst, now)

    def on_preempted(self, msg: Preempted, now: float) -> None:
        # A ballot above the ceiling is a forged promise (an older version's store), or
        # an acceptor whose clock runs ahead: there is nothing to outbid it with yet;
        # the other acceptors may still promise.
        if msg.aid not in self._acceptors or msg.ballot > self._ballot_ceiling:
            self.dropped += 1
            return
        inst = self._instances.get(msg.iid)
        if inst is None:
            return
        inst.highest_seen = max(inst.highest_seen, msg.ballot)
        if inst.phase is Phase.PREPARING:
            # Equal counts too: acceptors promise only strictly higher ballots, so an
            # equal one was promised before (to our previous life). Unless this
            # acceptor did promise us, and this answers a duplicated PREPARE.
            beaten = msg.ballot > inst.ballot or (
                msg.ballot == inst.ballot and msg.aid not in inst.promises
            )
        else:
            beaten = inst.phase is Phase.ACCEPTING and msg.ballot > inst.ballot
        if beaten:
            self.preemptions += 1
            inst.preemptions += 1
            self._move(inst, Phase.BACKOFF)
            inst.value = None
            window = self._options.preempt_backoff * 2 ** min(inst.preemptions - 1, 30)
            delay = self._rng.uniform(0.0, min(window, self._options.proposer_timeout))
            self._set_timer(inst, now + delay)

    def on_accepted(self, msg: Accepted, now: float) -> None:
        if msg.aid not in self._acceptors or msg.value_ballot == 0:
            self.dropped += 1
            return
        inst = self._instances.get(msg.iid)
        if inst is None:
            return
        chosen = inst.votes.add(msg.aid, msg.value_ballot, msg.value, self._quorum)
        if chosen is None:
            return
        if msg.value_ballot >= max(inst.accept_ballot, inst.votes.highest_ballot()):
            self._close(inst, chosen, now)
        elif inst.phase is Phase.READY:
            # Our promises carried no value, so any value is safe at our ballot.
            self._accept(inst, chosen, now)
        # Otherwise a quorum decided the instance below a ballot that some acceptor
        # accepted (our own last ACCEPT, or one we heard of). We do not let go yet:
        # then no quorum of the acceptors' *latest* acceptances agrees on a ballot,
        # and a learner catching up by REPEAT, which sees only those, would wait
        # forever. The retry already scheduled adopts the chosen value and ends with
        # a quorum at our ballot.

    def set_ballot_ceiling(self, ceiling: int) -> None:
        """The highest ballot the acceptors take from now on (ballots.ballot_ceiling)."""
        self._ballot_ceiling = ceiling

    def on_acceptor_state(self, msg: AcceptorState, now: float) -> None:
        """An acceptor's trim point: every instance up to it was decided long ago."""
        if msg.aid not in self._acceptors or msg.trim_iid > (
            self._next_iid + self._options.acceptor_max_ahead
        ):
            self.dropped += 1
            return
        self._skip_decided(msg.trim_iid, now)

    def on_proposer_hi(self, msg: ProposerHi, src: Address, now: float) -> None:
        """A peer is alive (and knows every instance below ``decided_below`` decided)."""
        peers = self._view.peers
        if peers.get(msg.pid) != src or not 1 <= msg.decided_below <= MAX_U32:
            self.dropped += 1  # not a proposer of ours, or a leader election is off
            return
        self._view.heard(msg.pid, now)
        self._update_role(now)
        # What a peer knows decided needs no preparing here: a proposer that takes
        # over, or comes back, starts where the others are, not at instance 1.
        # Instances already open stay open (one may be re-opened on purpose).
        self._next_iid = max(self._next_iid, msg.decided_below)

    def handle_timer(self, now: float) -> None:
        self._heartbeat(now)
        self._update_role(now)
        timers = self._timers
        retried = False
        while timers and timers[0][0] <= now:
            _, iid, timer = heapq.heappop(timers)
            inst = self._instances.get(iid)
            if inst is None or inst.timer != timer:
                continue
            inst.timer = 0
            if inst.phase is not Phase.BACKOFF:
                self.retries += 1
            self._prepare_higher(inst, now)
            retried = True
        if retried:
            self._assign(now)  # an instance accepting no more: room for queued values

    def next_deadline(self) -> float | None:
        """When handle_timer wants to run. ``now`` is not needed: the leader view's
        deadline only moves when a message arrives or a timer runs."""
        timers = self._timers
        due = self._view_deadline
        while timers:
            _, iid, timer = timers[0]
            inst = self._instances.get(iid)
            if inst is not None and inst.timer == timer:
                first = timers[0][0]
                return first if due is None else min(first, due)
            heapq.heappop(timers)
        return due

    # -- leadership

    def _heartbeat(self, now: float) -> None:
        if self._view.heartbeat_due(now):
            hi = ProposerHi(self.pid, min(self.decided_below, MAX_U32))
            for address in self._view.peers.values():
                self._out.send(address, hi)
        self._view_deadline = self._view.next_deadline(now)

    def _update_role(self, now: float) -> None:
        self._leader = self._view.leader(now)
        self._view_deadline = self._view.next_deadline(now)
        role = Role.LEADING if self._leader == self.pid else Role.FOLLOWING
        if role is self._role:
            return
        self._role = role
        if role is Role.LEADING:
            self._fill_window(now)
            self._assign(now)
            return
        # A lower id is back: hand every client value we hold to it, and prepare
        # nothing more. Open instances are abandoned; whoever leads next prepares
        # them again (our decided_below stays at the lowest of them). A value in
        # flight may so be decided twice, and learners deliver it once.
        values = [
            inst.client_value
            for _, inst in sorted(self._instances.items())
            if inst.client_value is not None
        ]
        while (taken := self._take_values()) is not None:
            values.append(taken[0])
        self._next_iid = self.decided_below
        self._instances.clear()
        self._accepting.clear()
        self._reopened.clear()
        self._ready.clear()
        self._timers.clear()
        self._queue.clear()
        self._pending.clear()
        self._stale.clear()
        address = self._view.peers[self._leader]
        for value in values:
            self.forwarded += 1
            self._out.send(address, ClientValue(value))

    # -- phases

    def _skip_decided(self, through: int, now: float) -> None:
        """Every instance up to ``through`` is decided: prepare none of them."""
        if through < self._next_iid and not any(iid <= through for iid in self._instances):
            return
        self._next_iid = max(self._next_iid, through + 1)
        # Highest first: each client value goes back to the front of the queue, so
        # the lowest instance's value ends up first.
        for iid in sorted((i for i in self._instances if i <= through), reverse=True):
            # Whatever was decided there is unknown: a client value goes round again
            # (learners drop it if it was decided twice).
            self._close(self._instances[iid], None, now)
        self._fill_window(now)

    def _fill_window(self, now: float) -> None:
        if self._role is not Role.LEADING:
            return
        window = self._options.preexec_window
        if len(self._instances) > window - max(1, window // REFILL_PARTS):
            return
        while len(self._instances) < window and self._next_iid <= MAX_U32:
            inst = _Instance(self._next_iid, self.first_ballot)
            self._next_iid += 1
            self._instances[inst.iid] = inst
            self._set_timer(inst, now + self._options.proposer_timeout)
            self._to_acceptors(Prepare(inst.iid, inst.ballot))

    def _prepare_higher(self, inst: _Instance, now: float) -> None:
        ballot = ballot_above(self.pid, max(inst.ballot, inst.highest_seen))
        if ballot is None or ballot > self._ballot_ceiling:
            # Someone holds a ballot we cannot outbid before the ceiling opens another
            # round (ballots.ballot_ceiling); wait rather than spin.
            self.dropped += 1
            self._set_timer(inst, now + self._options.proposer_timeout)
            return
        self._move(inst, Phase.PREPARING)
        inst.ballot = ballot
        inst.promises.clear()
        inst.value = None
        self._set_timer(inst, now + self._options.proposer_timeout)
        self._to_acceptors(Prepare(inst.iid, ballot))

    def _prepared(self, inst: _Instance, now: float) -> None:
        """A quorum promised our ballot: propose what the promises oblige, else ours."""
        value_ballot, value = max(inst.promises.values(), key=lambda p: p[0])
        if value_ballot > 0:
            if inst.client_value is not None and inst.client_value != value:
                # Not ours to decide here: back to the front of the line.
                self._requeue(inst)
            self._accept(inst, value, now)
            self._assign(now)
        elif inst.client_value is not None:
            self._accept(inst, inst.client_value, now)
        else:
            self._move(inst, Phase.READY)
            inst.timer = 0  # a prepared instance waits for a value without a deadline
            heapq.heappush(self._ready, inst.iid)
            self._assign(now)

    def _assign(self, now: float) -> None:
        """Give queued client values to READY instances, lowest iid first; fill the
        holes that are left with the no-op."""
        if self._held:
            self._assign_due = True
            return
        queue, ready = self._queue, self._ready
        accepting, limit = self._accepting, self._options.max_accepting
        while ready and (queue or ready[0] < self._holes_below):
            if len(accepting) >= limit and not ready[0] < self._holes_below:
                break  # the values wait to go together, when an instance closes
            inst = self._instances.get(heapq.heappop(ready))
            if inst is None or inst.phase is not Phase.READY:
                continue
            taken = self._take_values()
            if taken is None:
                if not inst.iid < self._holes_below:
                    # Every value queued was decided already; no hole here.
                    heapq.heappush(ready, inst.iid)
                    break
                self.noops += 1
                self._accept(inst, NOOP, now)
            else:
                inst.client_value, inst.client_items = taken
                self._accept(inst, inst.client_value, now)
        if len(self._ready) > 2 * self._options.preexec_window:
            # Instances closed while READY leave entries behind.
            self._ready = [i for i, x in self._instances.items() if x.phase is Phase.READY]
            heapq.heapify(self._ready)

    def _take_values(self) -> tuple[bytes, list[_Queued]] | None:
        """The value for the next instance and the client values in it: the queued
        values not decided meanwhile (through another instance or another proposer),
        as many as one instance takes; None when there are none."""
        queue, stale = self._queue, self._stale
        limit, room = self._options.max_values_per_instance, self._batch_room
        items: list[_Queued] = []
        size = BATCH_OVERHEAD
        while queue and len(items) < limit:
            value, origin = queue[0]
            if stale and origin in stale:
                queue.popleft()
                self.already_decided += 1
                self._pending.discard(origin)
                stale.discard(origin)
                continue
            size += ITEM_OVERHEAD + len(value)
            if items and size > room:
                break
            queue.popleft()
            items.append((value, origin))
        if not items:
            return None
        if len(items) == 1 and not must_travel_in_batch(items[0][0]):
            return items[0][0], items
        return pack_batch([value for value, _ in items]), items

    def _requeue(self, inst: _Instance) -> None:
        """Put the client values of ``inst`` back at the front of the queue, in order."""
        self._queue.extendleft(reversed(inst.client_items))
        inst.client_value = None
        inst.client_items = []

    def _remember_decided(self, value: bytes) -> None:
        """``value`` was decided, not through an instance of ours that proposed it."""
        items = unpack_batch_untrusted(value)
        found, _ = origins_untrusted((value,) if items is None else items)
        origins = [origin for origin in found if origin is not None]
        self._decided.add_all(origins)
        pending = self._pending
        self._stale.update(origin for origin in origins if origin in pending)

    def _accept(self, inst: _Instance, value: bytes, now: float) -> None:
        self._move(inst, Phase.ACCEPTING)
        self._accepting.add(inst.iid)
        inst.value = value
        inst.accept_ballot = inst.ballot
        self._set_timer(inst, now + self._options.proposer_timeout)
        self._to_acceptors(Accept(inst.iid, inst.ballot, value))

    def _close(self, inst: _Instance, decided: bytes | None, now: float) -> None:
        del self._instances[inst.iid]
        self._accepting.discard(inst.iid)
        self._reopened.discard(inst.iid)
        ours = inst.client_value is not None and inst.client_value == decided
        if decided is not None:
            self._holes_below = max(self._holes_below, inst.iid)
            if not ours:
                self._remember_decided(decided)
        if ours:
            origins = [origin for _, origin in inst.client_items if origin is not None]
            self._decided.add_all(origins)
            self._pending.difference_update(origins)
            if self._stale:
                self._stale.difference_update(origins)
        elif inst.client_value is not None:
            self._requeue(inst)
        self._fill_window(now)
        self._assign(now)

    # -- plumbing

    def _move(self, inst: _Instance, phase: Phase) -> None:
        assert phase in TRANSITIONS[inst.phase], f"{inst.phase} -> {phase}"
        if inst.phase is Phase.ACCEPTING:
            self._accepting.discard(inst.iid)
        inst.phase = phase

    def _set_timer(self, inst: _Instance, due: float) -> None:
        self._timer_ids += 1
        inst.timer = self._timer_ids
        heapq.heappush(self._timers, (due, inst.iid, inst.timer))

    def _to_acceptors(self, msg: Message) -> None:
        for address in self._acceptors.values():
            self._out.send(address, msg)

