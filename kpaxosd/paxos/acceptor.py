"""The acceptor: promises, acceptances, and the memory of both (libpaxos acceptor.c)."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from kpaxosd.paxos.ballots import BASE_BALLOT_CEILING
from kpaxosd.paxos.cluster import Address, Cluster
from kpaxosd.paxos.effects import Outbox, Persist, PersistTrim
from kpaxosd.paxos.options import HELD_RECORD_COST, PaxosOptions
from kpaxosd.paxos.stats import AcceptorStatistics
from wire.datagram import MAX_VALUE_SIZE
from wire.messages import (
    Accept,
    Accepted,
    AcceptorOk,
    AcceptorState,
    BarrierAnswer,
    LearnerBarrier,
    Preempted,
    Prepare,
    Promise,
    Repeat,
    Trim,
)


class Record(NamedTuple):
    """What an acceptor knows of one instance; accepted_ballot 0: nothing accepted."""

    promised: int
    accepted_ballot: int
    value: bytes


@dataclass
class Restored:
    """What :meth:`Acceptor.restore` found wrong in a store, for the log."""

    #: Instances whose forged promise was lowered to what they accepted.
    lowered: list[int] = field(default_factory=list)
    #: The highest of those promises.
    highest_lowered: int = 0
    #: Instances holding a value accepted at a forged ballot (left as they are).
    accepted_absurd: list[int] = field(default_factory=list)


class Acceptor:
    """One acceptor. Every handler answers with effects on the shared outbox.

    A PREPARE is promised only for a ballot *above* the promised one (libpaxos allows
    equal). A proposer restarts without memory; should its new life use a ballot its
    old life used, "equal is fine" would promise it again and two values could be
    accepted under one ballot. Strictly above, every acceptor promises a ballot once,
    so two lives can share a quorum only through a promise still in flight to the
    old life (which the random first round of PaxosOptions makes improbable). An
    ACCEPT needs only ballot >= promised: the proposer holding the promise sends it.
    """

    def __init__(self, aid: int, cluster: Cluster, options: PaxosOptions, outbox: Outbox) -> None:
        if aid not in cluster.acceptors:
            raise ValueError(f"acceptor {aid} is not in the cluster")
        self.aid = aid
        self._options = options
        self._out = outbox
        self._records: dict[int, Record] = {}
        # The iids of _records, sorted, so REPEAT and TRIM visit only what is held.
        self._held: list[int] = []
        self._trim_iid = 0
        self._highest_accepted = 0
        # The highest ballot this acceptor takes now (ballots.ballot_ceiling).
        self._ballot_ceiling = BASE_BALLOT_CEILING
        # What _records take, as acceptor_max_held_bytes counts it, and how far
        # beyond it the records held may grow (see _room_for).
        self._held_bytes = 0
        self._headroom = max(
            options.acceptor_max_held_bytes // 8, options.preexec_window * MAX_VALUE_SIZE
        )
        # Insertion-ordered: the longest silent learner is the first to go when full.
        self._learners: dict[Address, None] = {}
        self.dropped = 0
        #: PREPAREs and ACCEPTs refused because they would add a record to an acceptor
        #: at acceptor_max_held_bytes.
        self.refused_full = 0

    @property
    def trim_iid(self) -> int:
        return self._trim_iid

    @property
    def instances(self) -> int:
        """How many instances this acceptor holds (all above its trim point)."""
        return len(self._records)

    @property
    def held_bytes(self) -> int:
        """What the records held take, as acceptor_max_held_bytes counts it."""
        return self._held_bytes

    def statistics(self) -> AcceptorStatistics:
        return AcceptorStatistics(
            instances=self.instances,
            trim_iid=self.trim_iid,
            refused_full=self.refused_full,
            held_bytes=self.held_bytes,
            dropped=self.dropped,
        )

    def set_ballot_ceiling(self, ceiling: int) -> None:
        """The highest ballot taken from now on (ballots.ballot_ceiling of the time)."""
        self._ballot_ceiling = ceiling

    def restore(self, records: Iterable[Persist], trim_iid: int = 0) -> Restored:
        """Load what the wrapper persisted, before any input (a restarted acceptor).

        A promise above the ballot ceiling of the time was never taken by this
        version: it was forged (taken by a kpaxos that did not check senders or bound
        ballots) and would wedge its instance for good. It goes back down to what the
        record accepted. That is safe while the configured proposers are honest: only
        the proposer a ballot names may send ACCEPT with it, and an honest one never
        goes above the ceiling, so no acceptance under it can follow. (A clock set
        back by years would make this version's own promises look forged.) A value
        accepted at such a ballot stays as it is.
        """
        self._trim_iid = max(self._trim_iid, trim_iid)
        restored = Restored()
        for r in records:
            if r.iid <= self._trim_iid:
                continue
            promised = r.promised_ballot
            if promised > self._ballot_ceiling:
                if r.accepted_ballot > self._ballot_ceiling:
                    restored.accepted_absurd.append(r.iid)
                elif promised > r.accepted_ballot:
                    restored.lowered.append(r.iid)
                    restored.highest_lowered = max(restored.highest_lowered, promised)
                    promised = r.accepted_ballot
                    if promised == 0:
                        continue  # a promise only: nothing is left of the record
            self._put(r.iid, Record(promised, r.accepted_ballot, r.value))
        return restored

    def revert(self, forget: Iterable[int], durable: Iterable[Persist], trim_iid: int) -> None:
        """Go back to what the store holds after the wrapper failed to persist a batch.

        The handlers change memory as they queue a Persist; when the store cannot
        commit them, memory is ahead of the disk, and an answer from it (a REPEAT, a
        PROMISE carrying an acceptance) would tell what a restart forgets. The
        wrapper reads back what the store holds and hands it here.

        Args:
            forget: the iids of the Persists that failed; memory drops them.
            durable: the store's records of those iids, and of every iid between
                ``trim_iid`` and a trim point that failed to persist.
            trim_iid: the store's trim point.
        """
        held = self._held
        for iid in forget:
            if (record := self._records.pop(iid, None)) is not None:
                del held[bisect_left(held, iid)]
                self._held_bytes -= len(record.value) + HELD_RECORD_COST
        self._trim_iid = trim_iid
        for r in durable:
            if r.iid > trim_iid:
                self._put(r.iid, Record(r.promised_ballot, r.accepted_ballot, r.value))

    def held(self) -> list[int]:
        """The iids this acceptor holds a record of, in order."""
        return list(self._held)

    def record(self, iid: int) -> Record | None:
        return self._records.get(iid)

    # -- handlers

    def on_prepare(self, msg: Prepare, src: Address) -> None:
        if not self._in_range(msg.iid, msg.ballot, src):
            return
        current = self._records.get(msg.iid)
        if current is None and not self._room_for(None, b""):
            return
        promised = current.promised if current else 0
        if msg.ballot <= promised:
            self._out.send(src, Preempted(self.aid, msg.iid, promised))
            return
        if current is None:
            updated = Record(msg.ballot, 0, b"")
        else:
            updated = current._replace(promised=msg.ballot)
        self._store(msg.iid, updated)
        self._out.send(
            src, Promise(self.aid, msg.iid, msg.ballot, updated.accepted_ballot, updated.value)
        )

    def on_accept(self, msg: Accept, src: Address) -> None:
        if not self._in_range(msg.iid, msg.ballot, src):
            return
        current = self._records.get(msg.iid)
        promised = current.promised if current else 0
        if msg.ballot < promised:
            self._out.send(src, Preempted(self.aid, msg.iid, promised))
            return
        if not self._room_for(current, msg.value):
            return
        updated = Record(msg.ballot, msg.ballot, msg.value)
        if updated != current:
            self._store(msg.iid, updated)
        accepted = Accepted(self.aid, msg.iid, msg.ballot, msg.ballot, msg.value)
        # Learners first: they deliver, the proposer only closes the instance. On a
        # busy host the proposer woken by its copy can take the CPU before the
        # learners' copies leave.
        for learner in self._learners:
            if learner != src:
                self._out.send(learner, accepted)
        self._out.send(src, accepted)

    def on_repeat(self, msg: Repeat, src: Address) -> None:
        if 0 < self._trim_iid >= msg.from_iid:
            # Tell the asker what it will never get from us.
            self._out.send(src, AcceptorState(self.aid, self._trim_iid))
        low = max(msg.from_iid, self._trim_iid + 1)
        held = self._held
        index = bisect_left(held, low)
        # Both bounds hold whatever the range asked: a REPEAT(0, 2**32 - 1) costs at
        # most repeat_reply_max answers, and never a walk over empty iids.
        budget = self._options.repeat_reply_max
        visits = 2 * budget
        while index < len(held) and budget > 0 and visits > 0:
            iid = held[index]
            if iid > msg.to_iid:
                break
            record = self._records[iid]
            if record.accepted_ballot:
                ballot = record.accepted_ballot
                # ballot is the accepted one, not the promise: a learner that counts
                # the first field (libpaxos's does) must see equal fields only for
                # equal acceptances.
                self._out.send(src, Accepted(self.aid, iid, ballot, ballot, record.value))
                budget -= 1
            visits -= 1
            index += 1

    def on_trim(self, msg: Trim, src: Address) -> None:
        if msg.iid <= self._trim_iid:
            return
        if msg.iid > self._horizon():
            self.dropped += 1
            return
        # The trim point is made durable with the records it drops: an acceptor that
        # came back from a crash without those records and without the trim point
        # would promise and accept there afresh, as if it had never accepted.
        self._out.add(PersistTrim(msg.iid))
        self._trim_iid = msg.iid
        cut = bisect_right(self._held, msg.iid)
        for iid in self._held[:cut]:
            self._held_bytes -= len(self._records.pop(iid).value) + HELD_RECORD_COST
        del self._held[:cut]

    def on_learner_hi(self, src: Address) -> None:
        self._learners.pop(src, None)
        self._learners[src] = None
        if len(self._learners) > self._options.max_learners:
            del self._learners[next(iter(self._learners))]
        self._out.send(src, AcceptorOk())

    def on_learner_barrier(self, msg: LearnerBarrier, src: Address) -> None:
        """The highest instance accepted here: any value decided before the asker
        began its barrier was accepted at or below it by an acceptor of every quorum
        (kpaxosd.paxos.barrier). An instance trimmed was accepted (or decided)."""
        accepted = max(self._highest_accepted, self._trim_iid)
        self._out.send(src, BarrierAnswer(self.aid, msg.session, accepted))

    def on_learner_del(self, src: Address) -> None:
        self._learners.pop(src, None)

    def knows_learner(self, address: Address) -> bool:
        """Whether ``address`` registered as a learner (LEARNER_HI) and is still held."""
        return address in self._learners

    def learners(self) -> list[Address]:
        return list(self._learners)

    # -- internals

    def _horizon(self) -> int:
        return max(self._highest_accepted, self._trim_iid) + self._options.acceptor_max_ahead

    def _in_range(self, iid: int, ballot: int, src: Address) -> bool:
        """Whether a PREPARE/ACCEPT may touch state; counts and answers the others."""
        if iid <= self._trim_iid:
            # Forgotten on purpose; the trim point lets a proposer move past it.
            self._out.send(src, AcceptorState(self.aid, self._trim_iid))
            return False
        if ballot == 0 or ballot > self._ballot_ceiling or iid > self._horizon():
            # Ballot 0 means "no value" in a PROMISE; no proposer uses it.
            self.dropped += 1
            return False
        return True

    def _room_for(self, current: Record | None, value: bytes) -> bool:
        """Whether ``value`` may be held for an instance now held as ``current``
        within acceptor_max_held_bytes; a refusal is counted.

        A new record must fit under the bound. An instance already held may grow
        beyond it by up to ``self._headroom``: the values of the instances a
        proposer prepared ahead (preexec_window) before the acceptor filled up
        still go in, so that they can be decided, delivered, and then trimmed to
        make room (without it a full acceptor would hold only promises, and nothing
        could ever be trimmed). Yet records taken in small, then grown to 64 KB
        each by higher ballots, cannot take more than that. Nothing given is ever
        forgotten to make room; only TRIM frees it. A refusal is silence: the
        proposer retries as after a loss, and once a TRIM made room, the retry
        goes through.
        """
        bound = self._options.acceptor_max_held_bytes
        if current is None:
            if self._held_bytes + len(value) + HELD_RECORD_COST <= bound:
                return True
        else:
            growth = len(value) - len(current.value)
            if growth <= 0 or self._held_bytes + growth <= bound + self._headroom:
                return True
        self.refused_full += 1
        return False

    def _store(self, iid: int, record: Record) -> None:
        self._out.add(Persist(iid, record.promised, record.accepted_ballot, record.value))
        self._put(iid, record)

    def _put(self, iid: int, record: Record) -> None:
        known = self._records.get(iid)
        if known is None:
            held = self._held
            if not held or iid > held[-1]:
                held.append(iid)
            else:
                held.insert(bisect_left(held, iid), iid)
            self._held_bytes += len(record.value) + HELD_RECORD_COST
        else:
            self._held_bytes += len(record.value) - len(known.value)
        self._records[iid] = record
        if record.accepted_ballot:
            self._highest_accepted = max(self._highest_accepted, iid)
