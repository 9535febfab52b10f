"""One UDP endpoint hosting any subset of the roles (a replica hosts all three)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from kpaxosd.paxos.acceptor import Acceptor, Restored
from kpaxosd.paxos.ballots import MAX_PROPOSERS, ballot_ceiling
from kpaxosd.paxos.cluster import Address, Cluster
from kpaxosd.paxos.effects import Effect, Outbox, Persist
from kpaxosd.paxos.learner import Learner
from kpaxosd.paxos.options import PaxosOptions
from kpaxosd.paxos.peers import DeliveredHistory
from kpaxosd.paxos.proposer import Proposer
from kpaxosd.paxos.senders import Refusal, Senders
from kpaxosd.paxos.stats import NodeStatistics
from wire.identity import Origin
from wire.messages import (
    MESSAGE_TYPES,
    Accept,
    Accepted,
    AcceptorOk,
    AcceptorState,
    BarrierAnswer,
    ClientValue,
    LearnerBarrier,
    LearnerDel,
    LearnerFetch,
    LearnerHi,
    LearnerHistory,
    LearnerStuck,
    Message,
    Preempted,
    Prepare,
    Promise,
    ProposerHi,
    Repeat,
    Trim,
)

if TYPE_CHECKING:
    import random

DEFAULT_OPTIONS = PaxosOptions()
#: Refused sources a node remembers between two pop_refused_sources() calls.
REFUSED_SOURCES_KEPT = 64


class RoleNotHosted(RuntimeError):
    """A local call for a role this node does not host (a bug in the caller)."""


class Node:
    """The sans-IO face of one endpoint: messages and time in, effects out.

    The wrapper hands every decoded datagram to :meth:`receive` with its source, calls
    :meth:`handle_timer` at :meth:`next_deadline`, and after each call carries out
    :meth:`pop_effects` in order: Persist and PersistTrim before the Send they guard,
    Send from this endpoint's socket, Deliver and Trimmed to whoever reads decided
    values.

    Args:
        endpoint: the address this node's datagrams come from.
        cluster: the configuration.
        acceptor_id: host this acceptor.
        proposer_id: host this proposer (ballots derive from the id).
        learner: host a learner.
        options: protocol tunables.
        rng: the only source of randomness (backoff after preemption, sessions of
            history transfers and read barriers).
        now: the caller's clock; the roles start (and send) at construction.
        history: what the learner delivered, as the wrapper keeps it: with it the
            learner serves its history to the listed peer learners and fetches
            theirs past the acceptors' trim point (:mod:`kpaxosd.paxos.peers`).

    Raises:
        ValueError: an acceptor id not in the cluster, a proposer id out of range.
    """

    def __init__(
        self,
        endpoint: Address,
        cluster: Cluster,
        *,
        acceptor_id: int | None = None,
        proposer_id: int | None = None,
        learner: bool = False,
        options: PaxosOptions = DEFAULT_OPTIONS,
        rng: random.Random,
        now: float,
        history: DeliveredHistory | None = None,
    ) -> None:
        if proposer_id is not None and not 0 <= proposer_id < MAX_PROPOSERS:
            raise ValueError(f"proposer id {proposer_id} is not in 0..{MAX_PROPOSERS - 1}")
        self.endpoint = endpoint
        self.cluster = cluster
        self._out = Outbox()
        self._stopped = False
        self._received: Counter[type[Message]] = Counter()
        self._dropped = 0
        self._refused: Counter[Refusal] = Counter()
        # Sources refused since the wrapper last asked (to say so in its log).
        self._refused_sources: dict[Address, tuple[Refusal, type[Message]]] = {}
        self.acceptor = (
            None if acceptor_id is None else Acceptor(acceptor_id, cluster, options, self._out)
        )
        self.proposer = (
            None
            if proposer_id is None
            else Proposer(proposer_id, cluster, options, rng, self._out, now)
        )
        # A replica's proposer remembers what its learner saw decided: a resend of a
        # value decided while another proposer led is not proposed again here.
        self.learner = (
            Learner(
                cluster,
                options,
                self._out,
                now,
                on_decided=None if self.proposer is None else self.proposer.learned,
                history=history,
                address=endpoint,
                rng=rng,
            )
            if learner
            else None
        )
        self._handlers = self._route()
        acceptor = self.acceptor
        self._senders = Senders(cluster, acceptor.knows_learner if acceptor else None)

    def set_wall_clock(self, wall: float) -> None:
        """The wall-clock time (seconds since 1970), which opens the ballot ceiling
        (ballots.ballot_ceiling). Told before input, and before restore_acceptor; a
        node never told keeps the lowest ceiling."""
        ceiling = ballot_ceiling(wall)
        if self.acceptor is not None:
            self.acceptor.set_ballot_ceiling(ceiling)
        if self.proposer is not None:
            self.proposer.set_ballot_ceiling(ceiling)

    def restore_acceptor(self, records: Iterable[Persist], trim_iid: int = 0) -> Restored:
        """Give a restarted acceptor what was persisted, before any input; what was
        wrong in it is returned (:meth:`Acceptor.restore`).

        Raises:
            RoleNotHosted: the node hosts no acceptor.
        """
        if self.acceptor is None:
            raise RoleNotHosted("this node hosts no acceptor")
        return self.acceptor.restore(records, trim_iid)

    def restore_learner(self, next_iid: int, origins: list[Origin | None], now: float,
                        memory: bytes | None = None, *, whole: bool = True) -> None:
        """Give a restarted learner its durable log's next instance and origins (and
        the exactly-once memory they follow), before any input (:meth:`Learner.restore`).

        Raises:
            RoleNotHosted: the node hosts no learner.
            ValueError: ``memory`` is not a memory this learner can go on from.
        """
        if self.learner is None:
            raise RoleNotHosted("this node hosts no learner")
        self.learner.restore(next_iid, origins, now, memory, whole=whole)

    def revert_acceptor(self, forget: Iterable[int], durable: Iterable[Persist],
                        trim_iid: int) -> None:
        """Put the acceptor back to what its store holds, after a commit failed.

        The wrapper calls this when it could not persist a batch's Persist and
        PersistTrim effects, with what the store does hold (see
        :meth:`Acceptor.revert`), and sends none of that batch's messages: nothing
        leaves that the store does not hold, and nothing is answered later from a
        memory ahead of the disk.

        Raises:
            RoleNotHosted: the node hosts no acceptor.
        """
        if self.acceptor is None:
            raise RoleNotHosted("this node hosts no acceptor")
        self.acceptor.revert(forget, durable, trim_iid)

    def receive(self, msg: Message, src: Address, now: float) -> None:
        """Handle one message from ``src``. Never raises on what a peer sent."""
        self._received[type(msg)] += 1
        handler = self._handlers.get(type(msg))
        if handler is None or self._stopped:
            self._dropped += 1
            return
        refusal = self._senders.refusal(msg, src)
        if refusal is not None:
            self._refuse(msg, src, refusal)
            return
        handler(msg, src, now)
        learner = self.learner
        if learner is not None and learner.barriers_waiting:
            learner.release_barriers()

    def _refuse(self, msg: Message, src: Address, refusal: Refusal) -> None:
        self._refused[refusal] += 1
        sources = self._refused_sources
        # Bounded: a flood from many addresses is counted, not remembered. The first
        # refusal of a source is the one its warning names (later ones are alike).
        if src not in sources and len(sources) < REFUSED_SOURCES_KEPT:
            sources[src] = (refusal, type(msg))

    def pop_refused_sources(self) -> dict[Address, tuple[Refusal, type[Message]]]:
        """The sources refused since the last call (at most REFUSED_SOURCES_KEPT), with
        the reason and the type of the first message refused from each."""
        sources, self._refused_sources = self._refused_sources, {}
        return sources

    def receive_many(self, messages: Iterable[tuple[Message, Address]], now: float) -> None:
        """Handle messages that arrived together (one drain of a socket), in order.

        The client values among them are packed into instances together, not one
        instance each as they come (see the proposer's batching).
        """
        proposer, receive = self.proposer, self.receive
        if proposer is not None:
            proposer.hold()
        try:
            for msg, src in messages:
                receive(msg, src, now)
        finally:
            if proposer is not None:
                proposer.release(now)

    def handle_timer(self, now: float) -> None:
        if self._stopped:
            return
        if self.proposer is not None:
            self.proposer.handle_timer(now)
        if self.learner is not None:
            self.learner.handle_timer(now)
            if self.learner.barriers_waiting:
                self.learner.release_barriers()

    def trim_acceptors(self, iid: int) -> None:
        """Have the learner let the acceptors forget up to ``iid``
        (:meth:`Learner.trim_acceptors_to`).

        Raises:
            RoleNotHosted: the node hosts no learner.
        """
        if self.learner is None:
            raise RoleNotHosted("this node hosts no learner")
        if not self._stopped:
            self.learner.trim_acceptors_to(iid)

    def barrier(self, token: int, now: float) -> None:
        """Start read barrier ``token`` (:mod:`kpaxosd.paxos.barrier`): a
        BarrierReached effect says when the learner delivered every value decided
        before now, as a quorum of acceptors confirms.

        Raises:
            RoleNotHosted: the node hosts no learner.
        """
        if self.learner is None:
            raise RoleNotHosted("this node hosts no learner")
        if not self._stopped:
            self.learner.begin_barrier(token, now)

    def forget_barrier(self, token: int) -> None:
        """Nobody waits for read barrier ``token`` any more: no BarrierReached for it."""
        if self.learner is not None:
            self.learner.forget_barrier(token)

    def submit(self, value: bytes, now: float) -> None:
        """Propose ``value`` through the local proposer, like a CLIENT_VALUE arriving.

        Raises:
            RoleNotHosted: the node hosts no proposer.
        """
        if self.proposer is None:
            raise RoleNotHosted("this node hosts no proposer")
        if not self._stopped:
            self.proposer.submit(value, now)

    def stop(self, now: float) -> None:
        """Say goodbye (LEARNER_DEL to every acceptor) and ignore all further input."""
        if not self._stopped and self.learner is not None:
            self.learner.stop()
        self._stopped = True

    def pop_effects(self) -> list[Effect]:
        """Everything to do since the last call, in order."""
        return self._out.drain()

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` wants to be called, on the caller's clock."""
        if self._stopped:
            return None
        deadlines = [
            d
            for d in (
                self.proposer.next_deadline() if self.proposer else None,
                self.learner.next_deadline() if self.learner else None,
            )
            if d is not None
        ]
        return min(deadlines, default=None)

    def statistics(self) -> NodeStatistics:
        proposer = self.proposer.statistics() if self.proposer else None
        learner = self.learner.statistics() if self.learner else None
        acceptor = self.acceptor.statistics() if self.acceptor else None
        roles_dropped = sum(r.dropped for r in (proposer, learner, acceptor) if r)
        return NodeStatistics(
            received={MESSAGE_TYPES[t]: n for t, n in self._received.items()},
            dropped=self._dropped + roles_dropped,
            proposer=proposer,
            learner=learner,
            acceptor=acceptor,
            refused={refusal.value: n for refusal, n in self._refused.items()},
        )

    def _route(self) -> dict[type[Message], Callable[[Any, Address, float], None]]:
        """Each message type's handler among the roles hosted here (a table, not a
        chain of type tests: this runs for every datagram)."""
        acceptor, proposer, learner = self.acceptor, self.proposer, self.learner
        routes: dict[type[Message], Callable[[Any, Address, float], None]] = {}
        if acceptor:
            routes[Prepare] = lambda msg, src, now: acceptor.on_prepare(msg, src)
            routes[Accept] = lambda msg, src, now: acceptor.on_accept(msg, src)
            routes[Repeat] = lambda msg, src, now: acceptor.on_repeat(msg, src)
            routes[Trim] = lambda msg, src, now: acceptor.on_trim(msg, src)
            routes[LearnerHi] = lambda msg, src, now: acceptor.on_learner_hi(src)
            routes[LearnerDel] = lambda msg, src, now: acceptor.on_learner_del(src)
            routes[LearnerBarrier] = lambda msg, src, now: acceptor.on_learner_barrier(msg, src)
        if proposer:
            routes[Promise] = lambda msg, src, now: proposer.on_promise(msg, now)
            routes[Preempted] = lambda msg, src, now: proposer.on_preempted(msg, now)
            routes[ClientValue] = lambda msg, src, now: proposer.submit(msg.value, now)
            routes[ProposerHi] = proposer.on_proposer_hi
            routes[LearnerStuck] = lambda msg, src, now: proposer.on_learner_stuck(msg, now)
        if learner:
            routes[AcceptorOk] = lambda msg, src, now: learner.on_acceptor_ok(src, now)
            routes[LearnerFetch] = lambda msg, src, now: learner.on_learner_fetch(msg, src)
            routes[LearnerHistory] = learner.on_learner_history
            routes[BarrierAnswer] = lambda msg, src, now: learner.on_barrier_answer(msg, now)
        if learner and proposer:
            # The proposer learns here that its instance closed; in a replica the
            # acceptors send one copy to the shared address, for both.
            def accepted(msg: Accepted, src: Address, now: float) -> None:
                learner.on_accepted(msg, now)
                proposer.on_accepted(msg, now)

            def acceptor_state(msg: AcceptorState, src: Address, now: float) -> None:
                learner.on_acceptor_state(msg, now)
                proposer.on_acceptor_state(msg, now)

            routes[Accepted] = accepted
            routes[AcceptorState] = acceptor_state
        elif learner:
            routes[Accepted] = lambda msg, src, now: learner.on_accepted(msg, now)
            routes[AcceptorState] = lambda msg, src, now: learner.on_acceptor_state(msg, now)
        elif proposer:
            routes[Accepted] = lambda msg, src, now: proposer.on_accepted(msg, now)
            routes[AcceptorState] = lambda msg, src, now: proposer.on_acceptor_state(msg, now)
        return routes
