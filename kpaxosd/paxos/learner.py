"""The learner: counts acceptances, delivers decided values in instance order.

It registers with every acceptor (LEARNER_HI until ACCEPTOR_OK, then as a keepalive),
decides an instance when a majority accepted the same ballot and value, delivers in
iid order, and asks for what it missed with REPEAT when a hole stays open.

Trimming. Acceptors forget instances up to their trim point (TRIM) and report it
(ACCEPTOR_STATE, in answer to a REPEAT or a keepalive's probe below it). A learner
that still needs such an instance may never get it. It says so with a
:class:`Trimmed` effect and goes on after the trim point:

- at once when a quorum of acceptors report a trim point at or beyond its next
  instance (then the others are fewer than a quorum: no majority can answer any more);
- otherwise when one acceptor reported it and TRIM_PATIENCE rounds of REPEAT to all
  acceptors brought nothing (those that did not trim could not decide it either);
  then only for the hole it waits on, never past the highest instance it knows was
  accepted: one acceptor's word, a liar's perhaps, cannot empty the log ahead.

Values it holds decided inside a trimmed range are delivered, not given up.

Before giving history up, a learner whose node was given its delivered history asks
the listed peer learners for it (:mod:`kpaxosd.paxos.peers`): the values they
delivered there, and their exactly-once memory to go on with, so that it delivers
what they deliver. Only what no peer gives is given up.

A learner with ``trim_every`` sends that TRIM itself, bounded by instances and by
bytes (``trim_bytes``; see PaxosOptions and _trim_acceptors).

Stuck instances. The acceptors may all answer and still be unable to decide an
instance for a learner: a quorum accepted it, then one acceptor of that quorum was
lost for good (or a proposer retrying it higher was cut short), and the latest
acceptances left disagree on the ballot. Only running Paxos for it again helps.
After STUCK_ROUNDS fruitless REPEAT rounds the learner sends LEARNER_STUCK (a
kpaxos extension) to every proposer; the leading one runs the instance again.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING

from kpaxosd.paxos.ballots import MAX_U32
from kpaxosd.paxos.barrier import BarrierRounds
from kpaxosd.paxos.cluster import Address, Cluster
from kpaxosd.paxos.dedupe import OriginFilter
from kpaxosd.paxos.effects import Adopted, BarrierReached, Deliver, Outbox, Trimmed
from kpaxosd.paxos.options import HELD_RECORD_COST, PaxosOptions
from kpaxosd.paxos.peers import (
    Adopt,
    DeliveredHistory,
    Done,
    Failed,
    HistoryFetch,
    HistoryServer,
    Outcome,
    Phase,
    Values,
)
from kpaxosd.paxos.reach import Reach
from kpaxosd.paxos.stats import LearnerStatistics
from kpaxosd.paxos.values import NOOP
from kpaxosd.paxos.votes import Votes
from wire.batch import unpack_batch_untrusted
from wire.device import iid_of, position_of
from wire.identity import Origin, origins_untrusted, payload_of
from wire.messages import (
    Accepted,
    AcceptorState,
    BarrierAnswer,
    LearnerDel,
    LearnerFetch,
    LearnerHi,
    LearnerHistory,
    LearnerStuck,
    Repeat,
    Trim,
)

if TYPE_CHECKING:
    import random

#: Catch-up REPEATs that bring nothing before the learner stops asking for history.
CATCH_UP_PROBES = 3
#: Separate runs of missing instances asked for in one round of REPEATs.
MAX_REPEAT_RUNS = 16
#: While REPEATs bring nothing, their interval doubles up to this many times the
#: repeat_interval: a hole nobody can fill (its acceptors trimmed it, say) must not
#: cost a full answer every tenth of a second forever.
MAX_REPEAT_BACKOFF = 32
#: REPEAT rounds without progress, after an acceptor said it trimmed the instance
#: this learner needs, before the learner gives that history up.
TRIM_PATIENCE = 3
#: REPEAT rounds without progress, with the instance waited for known to exist (an
#: acceptor reported it, or a later one), before the learner reports it as stuck
#: (LEARNER_STUCK), and again each round.
STUCK_ROUNDS = 3
# A probing learner stops probing no later than it reports a hole stuck (the rounds
# that count towards STUCK_ROUNDS count towards CATCH_UP_PROBES too): PROBING is never
# STUCK as well, so one state says what the learner is doing.
assert CATCH_UP_PROBES <= STUCK_ROUNDS

#: Told of every decided value, in iid order, delivered or not (a replica's proposer
#: remembers the origins).
DecidedHook = Callable[[int, bytes], None]


class Registration(enum.Enum):
    """Where this learner stands with one acceptor."""

    #: No ACCEPTOR_OK yet: LEARNER_HI every hello_interval.
    UNANSWERED = "unanswered"
    #: Answered: LEARNER_HI every hello_keepalive (a restarted acceptor forgot us).
    REGISTERED = "registered"


class Repair(enum.Enum):
    """What the learner does about its next instance: the REPEAT rounds."""

    #: Nothing waited for: no REPEAT timer. Delivery is in order with the acceptors,
    #: or has not started (no catch-up, nothing heard of yet).
    IDLE = "idle"
    #: Catching up from instance 1: asking for history beyond anything heard of, a
    #: round each repeat_interval, until CATCH_UP_PROBES rounds bring nothing. Holes
    #: are repaired meanwhile as in REPAIRING.
    PROBING = "probing"
    #: The next instance is known to exist (an acceptor accepted it, or a later one)
    #: and not delivered: REPEAT for what is missing when a round brings nothing, the
    #: interval doubling up to MAX_REPEAT_BACKOFF. An acceptor's trim point at or
    #: beyond it is believed after TRIM_PATIENCE such rounds.
    REPAIRING = "repairing"
    #: STUCK_ROUNDS rounds brought nothing (and no acceptor trimmed the instance):
    #: LEARNER_STUCK to every proposer, with the REPEAT, each fruitless round.
    STUCK = "stuck"


#: Every move of the repair state, made once per REPEAT round but for IDLE ->
#: REPAIRING. Giving up trimmed history moves nothing by itself: the next round sees
#: the progress.
REPAIR_TRANSITIONS: dict[Repair, frozenset[Repair]] = {
    # an acceptance for the next instance or a later one
    Repair.IDLE: frozenset({Repair.REPAIRING}),
    # a round brought something or not; the probes ran out, with a hole left (in the
    # round that reports it, when its rounds ran out too) or nothing left to wait for
    Repair.PROBING: frozenset({Repair.PROBING, Repair.REPAIRING, Repair.STUCK, Repair.IDLE}),
    # still missing; STUCK_ROUNDS fruitless rounds; delivered up to what is known
    Repair.REPAIRING: frozenset({Repair.REPAIRING, Repair.STUCK, Repair.IDLE}),
    # still stuck; progress (or an acceptor trimmed it); delivered up to what is known
    Repair.STUCK: frozenset({Repair.STUCK, Repair.REPAIRING, Repair.IDLE}),
}


class _Round(enum.Enum):
    """What one REPEAT round found of the next instance."""

    #: Delivered since the round was armed, or given up as trimmed.
    PROGRESS = "progress"
    #: Nothing came.
    FRUITLESS = "fruitless"
    #: Nothing came, and the instance was reported stuck (LEARNER_STUCK).
    REPORTED_STUCK = "reported stuck"


class Learner:
    # One statement per part of the state: splitting it up would only hide some.
    def __init__(  # noqa: PLR0915
        self,
        cluster: Cluster,
        options: PaxosOptions,
        outbox: Outbox,
        now: float,
        on_decided: DecidedHook | None = None,
        *,
        history: DeliveredHistory | None = None,
        address: Address | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._cluster = cluster
        self._on_decided = on_decided
        self._options = options
        self._out = outbox
        self._quorum = cluster.quorum
        # Without catch-up, delivery starts at the first instance heard of.
        self._next: int | None = 1 if options.learner_catch_up else None
        self._pending: dict[int, Votes] = {}
        self._decided: dict[int, bytes] = {}
        # What _pending and _decided take, as learner_max_held_bytes counts it.
        self._held_bytes = 0
        # While shedding (from over the bound until under half of it), instances from
        # this one on that the learner does not hold are refused: it let go of them,
        # or of nearer ones, to make room. None: not shedding.
        self._refuse_from: int | None = None
        self._highest = 0
        self._origins = OriginFilter(options.dedupe_clients, options.dedupe_window)
        self._hello: dict[int, tuple[Registration, float]] = {}
        # Hole repair: the state, a timer (armed in every state but IDLE), the next
        # iid when it was armed, the end of the last REPEAT range, and whether the
        # last round asked.
        self._repair = Repair.PROBING if options.learner_catch_up else Repair.IDLE
        self._repeat_due: float | None = None
        self._repeat_backoff = 1
        self._repeat_mark = 0
        self._repeat_to = 0
        self._catching_up = False
        # Rounds that brought nothing while PROBING.
        self._probe_misses = 0
        # The trim point each acceptor reported, and the REPEAT rounds that brought
        # nothing since one of them covered our next instance.
        self._trims: dict[int, int] = {}
        self._trim_stalls = 0
        # REPEAT rounds in a row that brought nothing.
        self._fruitless_rounds = 0
        # The last TRIM this learner sent (trim_every), resent with the keepalives.
        self._trim_sent = 0
        # The byte rule (trim_bytes): the last instance delivered when the bytes
        # delivered since the mark before reached trim_bytes, the bytes delivered
        # since, and the mark before it (where the byte rule trims to).
        self._byte_mark = 0
        self._bytes_since_mark = 0
        self._byte_point = 0
        self.deliveries = 0
        self.duplicates = 0
        self.noops = 0
        #: Instances given up because the acceptors trimmed them (see Trimmed).
        self.trimmed = 0
        self.repeats_sent = 0
        #: LEARNER_STUCK rounds sent.
        self.stuck_reports = 0
        self.dropped = 0
        #: Votes and decisions let go of, or refused, to stay within
        #: learner_max_held_bytes (the acceptors still hold them; REPEAT brings back
        #: what delivery needs).
        self.shed = 0
        # Peer learners (kpaxosd.paxos.peers): serving our history (with a history
        # to serve), fetching theirs (with a generator for the sessions): the listed
        # learners but us.
        self._server = (None if history is None else
                        HistoryServer(history, outbox, options.history_piece_bytes))
        self._rng = rng
        # Read barriers (kpaxosd.paxos.barrier; they draw sessions) and who is there.
        self._barriers = (None if rng is None else BarrierRounds(
            cluster.acceptors, self._quorum, outbox, rng, options.repeat_interval))
        self._reach = Reach(cluster.acceptors, self._quorum, options.quorum_timeout or 0.0,
                            outbox, now)
        self._peers = [a for _, a in sorted(cluster.learners.items()) if a != address]
        self._fetch: HistoryFetch | None = None
        # The trim point that made us fetch (given up if the peers cannot help), the
        # next instance a fetch failed for (not tried again there), and the last
        # instance a fetched value was delivered in.
        self._fetch_trim = 0
        self._fetch_failed_at: int | None = None
        # Whether our exactly-once memory is that of a learner that delivered
        # everything from instance 1 (or what a whole peer gave): only then is our
        # history worth serving, for an asker takes our memory for its own.
        self._whole = options.learner_catch_up
        self._fetched_iid = 0
        #: Transfers of history taken from peers, and values delivered from them.
        self.fetches = 0
        self.fetched = 0
        for aid, acceptor in cluster.acceptors.items():
            self._out.send(acceptor, LearnerHi())
            self._hello[aid] = (Registration.UNANSWERED, now + options.hello_interval)
        if self._repair is Repair.PROBING:
            self._send_repeat()
            self._arm_repeat(now)

    def restore(self, next_iid: int, origins: list[Origin | None], now: float,
                memory: bytes | None = None, *, whole: bool = True) -> None:
        """Go on from ``next_iid``, as a learner that delivered up to just before it:
        its exactly-once memory was ``memory`` (:meth:`exactly_once_memory`; None: an
        empty one), then it delivered ``origins`` (its durable log's since, in
        order). Before any input.

        What a restarted learner with a durable log does: the same sequence follows as
        if it had never stopped (its exactly-once memory is a pure function of the
        origins delivered). It asks the acceptors for what follows at once.

        ``whole``: the log it goes on from never lacked history (see
        :meth:`on_learner_fetch`).

        Raises:
            ValueError: ``memory`` is not one this learner can go on from (its bytes,
                or the bounds it was made with); nothing changed.
        """
        if memory is not None:
            self._origins = OriginFilter.from_snapshot(
                memory, self._options.dedupe_clients, self._options.dedupe_window)
        self._origins.first_times(origins)
        self._whole = whole
        self._next = next_iid
        self._repair = Repair.PROBING
        self._send_repeat()
        self._arm_repeat(now)

    def exactly_once_memory(self) -> bytes:
        """What this learner remembers of the origins it delivered, up to just before
        :attr:`next_iid`, as :meth:`restore` takes it back."""
        return self._origins.snapshot()

    @property
    def next_iid(self) -> int | None:
        """The next instance to deliver (None: waiting for a first one, no catch-up)."""
        return self._next

    @property
    def instances(self) -> int:
        """Instances held: votes being counted and decisions waiting for a hole."""
        return len(self._pending) + len(self._decided)

    @property
    def held_bytes(self) -> int:
        """What the held votes and decisions take, as learner_max_held_bytes counts."""
        return self._held_bytes

    @property
    def repair(self) -> Repair:
        """What the learner does about its next instance (see Repair)."""
        return self._repair

    def statistics(self) -> LearnerStatistics:
        return LearnerStatistics(
            deliveries=self.deliveries,
            duplicates=self.duplicates,
            repeats_sent=self.repeats_sent,
            next_iid=self.next_iid,
            trimmed=self.trimmed,
            instances=self.instances,
            stuck_reports=self.stuck_reports,
            shed=self.shed,
            held_bytes=self.held_bytes,
            dropped=self.dropped,
            fetches=self.fetches,
            fetched=self.fetched,
        )

    def registration(self, aid: int) -> Registration:
        return self._hello[aid][0]

    # -- handlers

    def on_accepted(self, msg: Accepted, now: float) -> None:
        if msg.aid not in self._cluster.acceptors or msg.value_ballot == 0 or msg.iid == 0:
            self.dropped += 1
            return
        if self._next is None:
            self._next = msg.iid
        self._reach.heard(msg.aid, now)
        if msg.iid < self._next or msg.iid in self._decided:
            return
        self._highest = max(self._highest, msg.iid)
        if msg.iid - self._next > self._options.learner_max_ahead:
            # Too far ahead to keep; a REPEAT brings it back once we get there.
            self.dropped += 1
        else:
            self._count_vote(msg)
        if self._repair is Repair.IDLE and self._stalled():
            self._move(Repair.REPAIRING)
            self._arm_repeat(now)

    def _count_vote(self, msg: Accepted) -> None:
        """Add one acceptor's vote, within learner_max_held_bytes."""
        iid = msg.iid
        votes = self._pending.get(iid)
        if votes is None:
            if self._refuse_from is not None and self._refuses(iid):
                self.shed += 1
                return
            votes = self._pending[iid] = Votes()
            self._held_bytes += HELD_RECORD_COST
        held = self._held_bytes - votes.held_bytes
        chosen = votes.add(msg.aid, msg.value_ballot, msg.value, self._quorum)
        if chosen is None:
            held += votes.held_bytes
        else:
            del self._pending[iid]
            self._decided[iid] = chosen
            held += len(chosen)
        self._held_bytes = held
        if chosen is not None:
            self._deliver_in_order()
        if self._held_bytes > self._options.learner_max_held_bytes:
            self._shed_farthest(self._options.learner_max_held_bytes * 3 // 4)
        elif self._refuse_from is not None:
            self._refuses(0)

    def _refuses(self, iid: int) -> bool:
        """While shedding, whether a vote for ``iid``, an instance not held, is
        refused; ends the shedding under half the bound."""
        if self._held_bytes < self._options.learner_max_held_bytes // 2:
            self._refuse_from = None
            return False
        refuse_from = self._refuse_from
        return refuse_from is not None and iid >= refuse_from and iid != self._next

    def _shed_farthest(self, target: int) -> None:
        """Let go of the farthest instances held until at most ``target`` bytes are.

        Safe whatever they hold: an acceptor that voted keeps its vote, and a decided
        value let go of is asked for again (REPEAT) once delivery reaches it, as any
        hole. The next instance stays: it must remain decidable. This sorts what is
        held, O(n log n), but once it ran, it runs again only after a quarter of the
        bound more came in (or for the votes of the next instance alone, when the
        bound is that small).
        """
        pending, decided = self._pending, self._decided
        assert self._next is not None
        # Refused from the nearest instance let go of; with nothing to let go of (the
        # next instance alone is over), from the one after the next.
        self._refuse_from = self._next + 1
        farthest_first = sorted(pending.keys() | decided.keys(), reverse=True)
        for iid in farthest_first:
            if self._held_bytes <= target or iid == self._next:
                break
            votes = pending.pop(iid, None)
            if votes is not None:
                self._held_bytes -= votes.held_bytes + HELD_RECORD_COST
                self.shed += len(votes)
            else:
                self._held_bytes -= len(decided.pop(iid)) + HELD_RECORD_COST
                self.shed += 1
            self._refuse_from = iid

    def on_acceptor_ok(self, src: Address, now: float) -> None:
        aid = self._cluster.acceptor_at(src)
        if aid is None:
            self.dropped += 1
            return
        self._reach.heard(aid, now)
        if self._hello[aid][0] is Registration.UNANSWERED:
            self._hello[aid] = (Registration.REGISTERED, now + self._options.hello_keepalive)

    def on_acceptor_state(self, msg: AcceptorState, now: float) -> None:
        """An acceptor's trim point: it forgot every instance up to there."""
        if msg.aid not in self._cluster.acceptors:
            self.dropped += 1
            return
        self._reach.heard(msg.aid, now)
        if msg.trim_iid <= self._trims.get(msg.aid, 0):
            return
        self._trims[msg.aid] = msg.trim_iid
        # The trim point that leaves fewer than a quorum of acceptors holding an
        # instance: the (n - quorum + 1)-th highest reported; and never fewer than a
        # quorum of reports (with an even n the first is one less), so that a point
        # believed at once is one that a quorum of acceptors says it trimmed.
        acceptors = len(self._cluster.acceptors)
        enough = max(acceptors - self._quorum + 1, self._quorum)
        reported = sorted(self._trims.values(), reverse=True)
        if len(reported) >= enough:
            self._lose_history(reported[enough - 1], now)

    def handle_timer(self, now: float) -> None:
        for aid, (state, due) in self._hello.items():
            if due > now:
                continue
            address = self._cluster.acceptors[aid]
            self._out.send(address, LearnerHi())
            if self._trim_sent:
                # A lost TRIM would otherwise wait for the next trim_every deliveries,
                # which an idle cluster never makes.
                self._out.send(address, Trim(self._trim_sent))
            if state is Registration.REGISTERED:
                period = self._options.hello_keepalive
                self._probe_tail(address)
            else:
                period = self._options.hello_interval
            self._hello[aid] = (state, now + period)
        if self._repeat_due is not None and self._repeat_due <= now:
            self._on_repeat_timer(now)
        if self._fetch is not None and self._fetch.due <= now:
            self._take(self._fetch.on_timer(now))
        self._reach.handle_timer(now)
        if self._barriers is not None:
            self._barriers.handle_timer(now)

    def next_deadline(self) -> float | None:
        due = min(due for _, due in self._hello.values())
        if self._repeat_due is not None:
            due = min(due, self._repeat_due)
        if self._fetch is not None:
            due = min(due, self._fetch.due)
        due = min(due, self._reach.next_deadline())
        if self._barriers is not None and (barrier_due := self._barriers.next_deadline()):
            due = min(due, barrier_due)
        return due

    # -- read barriers and who is there (kpaxosd.paxos.barrier, kpaxosd.paxos.reach)

    @property
    def reachable(self) -> bool:
        """Whether a quorum of acceptors was heard from lately (always, with no
        quorum_timeout)."""
        return self._reach.reachable

    @property
    def barriers_waiting(self) -> bool:
        return self._barriers is not None and self._barriers.waiting

    def begin_barrier(self, token: int, now: float) -> None:
        """Start read barrier ``token``; a BarrierReached follows the decisions it
        waits for (see :meth:`release_barriers`).

        Raises:
            RuntimeError: this learner was made without a random generator.
        """
        if self._barriers is None:
            raise RuntimeError("a learner without a random generator takes no barriers")
        self._barriers.begin(token, now)

    def forget_barrier(self, token: int) -> None:
        """Barrier ``token`` is waited for no more (BarrierRounds.forget)."""
        if self._barriers is not None:
            self._barriers.forget(token)

    def on_barrier_answer(self, msg: BarrierAnswer, now: float) -> None:
        if msg.aid not in self._cluster.acceptors:
            self.dropped += 1
            return
        self._reach.heard(msg.aid, now)
        if self._barriers is None:
            return
        target = self._barriers.on_answer(msg, now)
        if target is not None and self._next is not None and target > self._highest:
            # Accepted by someone, so it exists: repair fills what we lack up to it.
            self._highest = target
            if self._repair is Repair.IDLE and self._stalled():
                self._move(Repair.REPAIRING)
                self._arm_repeat(now)

    def release_barriers(self) -> None:
        """Say which barriers the deliveries so far reached (the node calls this
        after every input while :attr:`barriers_waiting`)."""
        if self._barriers is not None:
            for token in self._barriers.reached(self._next):
                self._out.add(BarrierReached(token))

    def stop(self) -> None:
        for address in self._cluster.acceptors.values():
            self._out.send(address, LearnerDel())

    # -- delivery

    def _deliver_in_order(self) -> None:
        assert self._next is not None
        fetch = self._fetch
        if fetch is not None and fetch.phase is Phase.ENTRIES:
            return  # the peer's history comes first
        while (value := self._decided.pop(self._next, None)) is not None:
            iid = self._next
            self._next = iid + 1
            cost = len(value) + HELD_RECORD_COST
            self._held_bytes -= cost
            self._bytes_since_mark += cost
            if self._bytes_since_mark >= self._options.trim_bytes:
                self._byte_point, self._byte_mark = self._byte_mark, iid
                self._bytes_since_mark = 0
            self._deliver(iid, value)
        if fetch is not None and self._next != fetch.from_iid:
            self._fetch = None  # the acceptors had it after all: no peer needed
        self._trim_acceptors()

    def _deliver(self, iid: int, value: bytes) -> None:
        if self._on_decided is not None:
            self._on_decided(iid, value)
        if value == NOOP:
            self.noops += 1
            return
        # A batch: each client value in it is a value of its own, in order. This runs
        # for every client value under load: a pass per step, each bound locally.
        items = unpack_batch_untrusted(value)
        if items is None:
            items = [value]
        origins, all_original = origins_untrusted(items)
        firsts = self._origins.first_times(origins)
        places: list[int] | None = None
        if all_original and all(firsts):
            # Only original values, all new (the common case): each delivered whole.
            values, kept = items, origins
        else:
            values, kept, places = self._admitted(items, origins, firsts)
        if values:
            self.deliveries += len(values)
            self._out.add(Deliver(iid, values, kept, places))

    def _admitted(
        self, items: list[bytes], origins: list[Origin | None], firsts: list[bool]
    ) -> tuple[list[bytes], list[Origin | None], list[int] | None]:
        """What readers get of the new ones of ``items``, their origins, and their
        places among the items (None: the first ones, without a hole)."""
        values: list[bytes] = []
        kept: list[Origin | None] = []
        places: list[int] = []
        for place, (item, origin, first) in enumerate(zip(items, origins, firsts, strict=True)):
            if not first:
                self.duplicates += 1
            elif origin is None:
                if item:  # an empty item is no value (a no-op)
                    values.append(item)
                    kept.append(None)
                    places.append(place)
            else:
                values.append(payload_of(item, origin))
                kept.append(origin)
                places.append(place)
        # Places run up from 0 unless something before the last was passed over.
        return values, kept, None if not places or places[-1] == len(places) - 1 else places

    def _give_up_through(self, trim_iid: int) -> bool:
        """Skip what we lack up to ``trim_iid`` (Trimmed), delivering what we hold.

        Decided instances in the range are delivered, not dropped: the trim point
        says the acceptors forgot them, not that they were not decided. Whether
        anything was given up.
        """
        if self._next is None or trim_iid < self._next:
            return False
        held = sorted(i for i in self._decided if self._next < i <= trim_iid)
        ends = [*(i - 1 for i in held), trim_iid]
        for end in ends:
            self._deliver_in_order()
            if self._next > end:
                continue
            first = self._next
            self._next = end + 1
            self.trimmed += self._next - first
            self._whole = False
            for iid in [i for i in self._pending if i <= end]:
                self._held_bytes -= self._pending.pop(iid).held_bytes + HELD_RECORD_COST
            self._out.add(Trimmed(first, self._next))
        self._trim_stalls = 0
        self._fruitless_rounds = 0
        self._repeat_backoff = 1
        self._deliver_in_order()
        return True

    # -- history from peer learners (kpaxosd.paxos.peers)

    def on_learner_fetch(self, msg: LearnerFetch, src: Address) -> None:
        if self._server is None:
            self.dropped += 1
            return
        # Mid-transfer our memory is not that of our next instance, and one that
        # lacks history would make the asker deliver what the others passed over:
        # nothing to give then.
        settled = self._fetch is None or self._fetch.phase is Phase.MEMORY
        self._server.on_fetch(msg, src, self._next if settled and self._whole else None,
                              self._origins.snapshot)

    def on_learner_history(self, msg: LearnerHistory, src: Address, now: float) -> None:
        if self._fetch is None:
            self.dropped += 1
            return
        self._take(self._fetch.on_history(msg, src, now))

    def _lose_history(self, trim_iid: int, now: float) -> bool:
        """The acceptors trimmed what we need up to ``trim_iid``: fetch it from a peer,
        or give it up (:meth:`_give_up_through`) where none can help."""
        if self._fetch is not None:
            return False
        if (self._peers and self._server is not None and self._rng is not None
                and self._next is not None
                and self._fetch_failed_at != self._next and trim_iid >= self._next):
            self._fetch_trim = trim_iid
            self._fetch = HistoryFetch(self._peers, self._next, self._rng, self._out,
                                       self._options.repeat_interval, now)
            return False
        return self._give_up_through(trim_iid)

    def _take(self, outcome: Outcome | None) -> None:
        """Carry out what a transfer brought."""
        if outcome is None:
            return
        assert self._next is not None
        if isinstance(outcome, Adopt):
            self._adopt(outcome)
        elif isinstance(outcome, Values):
            self._deliver_fetched(outcome)
        elif isinstance(outcome, Done):
            self._fetch = None
            lost_from = max(self._next, self._fetched_iid + 1)
            if outcome.lost_from is not None and lost_from < outcome.end_iid:
                self.trimmed += outcome.end_iid - lost_from
                self._out.add(Trimmed(lost_from, outcome.end_iid))
            self._go_on_at(outcome.end_iid)
        elif isinstance(outcome, Failed):
            self._fetch = None
            self._fetch_failed_at = self._next
            self._give_up_through(self._fetch_trim)

    def _adopt(self, adopt: Adopt) -> None:
        """The peer's memory came whole: what we lack before its history is lost."""
        assert self._next is not None
        try:
            memory = OriginFilter.from_snapshot(
                adopt.memory, self._options.dedupe_clients, self._options.dedupe_window)
        except ValueError:
            self._take(Failed())  # a peer of other bounds: its memory answers otherwise
            return
        self.fetches += 1
        self._out.add(Adopted(adopt.first_iid, adopt.end_iid, adopt.memory, adopt.peer))
        self._whole = True
        if adopt.first_iid > self._next:
            self.trimmed += adopt.first_iid - self._next
            self._out.add(Trimmed(self._next, adopt.first_iid))
        self._origins = memory
        self._next = adopt.first_iid
        self._fetched_iid = adopt.first_iid - 1
        self._forget_held_below(adopt.end_iid)

    def _deliver_fetched(self, values: Values) -> None:
        """Deliver the peer's values as it did, at its positions."""
        assert self._next is not None
        run: list[tuple[int, bytes, Origin | None]] = []
        for entry in values.entries:
            if run and iid_of(entry[0]) != iid_of(run[0][0]):
                self._deliver_run(run)
                run = []
            run.append(entry)
        if run:
            self._deliver_run(run)
        self._next = max(self._next, values.whole_below)

    def _deliver_run(self, run: list[tuple[int, bytes, Origin | None]]) -> None:
        iid = iid_of(run[0][0])
        first = position_of(iid, 0)
        places = [position - first for position, _, _ in run]
        self._fetched_iid = iid
        self.deliveries += len(run)
        self.fetched += len(run)
        self._out.add(Deliver(iid, [value for _, value, _ in run],
                              [origin for _, _, origin in run],
                              None if places == list(range(len(places))) else places))

    def _go_on_at(self, next_iid: int) -> None:
        """The peer's history is over: on with the acceptors from ``next_iid``."""
        self._next = next_iid
        self._forget_held_below(next_iid)
        self._trim_stalls = 0
        self._fruitless_rounds = 0
        self._repeat_backoff = 1
        self._deliver_in_order()

    def _forget_held_below(self, iid: int) -> None:
        for held in [i for i in self._pending if i < iid]:
            self._held_bytes -= self._pending.pop(held).held_bytes + HELD_RECORD_COST
        for held in [i for i in self._decided if i < iid]:
            self._held_bytes -= len(self._decided.pop(held)) + HELD_RECORD_COST

    def _believed_alone(self) -> int:
        """How far one acceptor's trim point is believed after TRIM_PATIENCE rounds.

        Not as far as it says: a single acceptor may lie (or be a stranger's forgery
        that slipped through). Only the run of instances we hold nothing of from our
        next one on, and none beyond the highest instance some acceptor showed us it
        accepted: a lie then costs at most the hole that nobody could fill anyway,
        never the values still to come.
        """
        assert self._next is not None
        bound = min(max(self._trims.values(), default=0), self._highest)
        held = [i for i in (*self._decided, *self._pending) if self._next < i <= bound]
        return min(held, default=bound + 1) - 1

    def _trim_acceptors(self) -> None:
        """trim_every: let the acceptors forget what we delivered, but the last
        trim_every instances, or the last trim_bytes of them if that is less.

        The count rule trims to trim_every below the next instance once that is
        trim_every beyond the last TRIM; the byte rule to the byte mark before the
        last (see _deliver_in_order), each time a mark is made. The TRIM goes to the
        higher of the two points, so the acceptors keep the shorter tail: at most
        2 * trim_every instances and at most 2 * trim_bytes bytes (and one instance)
        of what this learner delivered.
        """
        every = self._options.trim_every
        if every is None or self._next is None:
            return
        point = self._trim_sent
        by_count = self._next - 1 - every
        if by_count - self._trim_sent >= every:
            point = by_count
        self._send_trim(max(point, self._byte_point))

    def trim_acceptors_to(self, iid: int) -> None:
        """Let the acceptors forget every instance up to ``iid``, as a reader asks (a
        2017-09-18 program's trim write); never one this learner has not delivered,
        nor below a TRIM it sent. Resent with the keepalives, as trim_every's."""
        if self._next is None:
            return
        self._send_trim(min(iid, self._next - 1))

    def _send_trim(self, point: int) -> None:
        """TRIM to ``point`` to every acceptor, if beyond the last one sent."""
        if point > self._trim_sent:
            self._trim_sent = point
            for address in self._cluster.acceptors.values():
                self._out.send(address, Trim(point))

    # -- hole repair

    def _stalled(self) -> bool:
        """Whether the next instance is waited for while it or later ones are known
        (or while history may still be out there)."""
        return self._next is not None and (
            self._repair is Repair.PROBING or self._highest >= self._next
        )

    def _move(self, repair: Repair) -> None:
        assert repair in REPAIR_TRANSITIONS[self._repair], f"{self._repair} -> {repair}"
        self._repair = repair

    def _arm_repeat(self, now: float) -> None:
        assert self._next is not None
        self._repeat_due = now + self._options.repeat_interval * self._repeat_backoff
        self._repeat_mark = self._next

    def _on_repeat_timer(self, now: float) -> None:
        self._repeat_due = None
        # Armed only while stalled, which takes a next instance.
        assert self._next is not None
        found = self._take_round(now)
        self._move(self._state_after(found))
        self._ask_again(found)
        if self._repair is not Repair.IDLE:
            self._arm_repeat(now)

    def _take_round(self, now: float) -> _Round:
        """Count the round just over: its progress, trim patience, a stuck report."""
        assert self._next is not None
        if self._next != self._repeat_mark:
            self._repeat_backoff = 1
            self._trim_stalls = 0
            self._fruitless_rounds = 0
            return _Round.PROGRESS
        # Counted only while our instance is known to exist: a later one is known
        # (ours is a hole), or an acceptor reported accepting ours, which may be the
        # last one before the cluster fell idle (a quorum accepted it, then lost a
        # member for good: no later instance will ever show up). An idle cluster is
        # not stuck. One still in flight is reported harmlessly: the leader leaves an
        # open instance alone.
        known = self._highest >= self._next
        self._fruitless_rounds = self._fruitless_rounds + 1 if known else 0
        trimmed = max(self._trims.values(), default=0)
        if trimmed >= self._next:
            self._trim_stalls += 1
            if self._trim_stalls >= TRIM_PATIENCE and self._lose_history(
                self._believed_alone(), now
            ):
                return _Round.PROGRESS
            return _Round.FRUITLESS
        if self._fruitless_rounds >= STUCK_ROUNDS:
            # Asking the acceptors again will not fill this hole.
            self._report_stuck(self._next)
            return _Round.REPORTED_STUCK
        return _Round.FRUITLESS

    def _report_stuck(self, iid: int) -> None:
        self.stuck_reports += 1
        for address in self._cluster.proposers.values():
            self._out.send(address, LearnerStuck(iid))

    def _state_after(self, found: _Round) -> Repair:
        """The repair state a round that ``found`` this leads to."""
        assert self._next is not None
        if self._repair is Repair.PROBING and self._still_probing(found):
            return Repair.PROBING
        if self._highest < self._next:
            return Repair.IDLE
        return Repair.STUCK if found is _Round.REPORTED_STUCK else Repair.REPAIRING

    def _still_probing(self, found: _Round) -> bool:
        """Count a PROBING round: whether the probes have not run out."""
        self._probe_misses = 0 if found is _Round.PROGRESS else self._probe_misses + 1
        return self._probe_misses < CATCH_UP_PROBES

    def _ask_again(self, found: _Round) -> None:
        """REPEAT when a full interval passed without progress, or, while catching
        up, as soon as the range asked last time is used up."""
        assert self._next is not None
        progressed = found is _Round.PROGRESS
        if self._repair is not Repair.IDLE and (
            not progressed or (self._catching_up and self._next > self._repeat_to)
        ):
            self._send_repeat()
            if not progressed:
                self._repeat_backoff = min(2 * self._repeat_backoff, MAX_REPEAT_BACKOFF)
        else:
            self._catching_up = False

    def _probe_tail(self, address: Address) -> None:
        """Ask one acceptor for what follows our last delivery, with each keepalive.

        Values decided while no acceptor knew of us (they restarted, we restarted)
        are pushed to nobody; on a cluster that then falls idle nothing would reveal
        them. This finds them within hello_keepalive, for one REPEAT per acceptor.
        """
        if self._next is not None and not self._stalled() and self._next <= MAX_U32:
            high = min(self._next + self._options.repeat_max - 1, MAX_U32)
            self._out.send(address, Repeat(self._next, high))

    def _send_repeat(self) -> None:
        assert self._next is not None
        low = self._next
        high = low + self._options.repeat_max - 1
        if self._repair is not Repair.PROBING:
            high = min(high, self._highest)
        high = min(high, MAX_U32)
        if low > high:
            return
        # Only what is missing: instances decided beyond the hole are not asked again.
        runs: list[Repeat] = []
        start: int | None = None
        for iid in range(low, high + 1):
            if iid in self._decided:
                if start is not None:
                    runs.append(Repeat(start, iid - 1))
                    start = None
            elif start is None:
                start = iid
        if start is not None:
            runs.append(Repeat(start, high))
        for address in self._cluster.acceptors.values():
            for repeat in runs[:MAX_REPEAT_RUNS]:
                self._out.send(address, repeat)
        self._repeat_to = high
        self._catching_up = True
        self.repeats_sent += 1
