"""Who may say what: a message is taken only from an address that may send it.

Without a key the wire proves nothing about who sent a datagram but its source
address. The configuration says which address each acceptor and proposer has, so a
message that speaks for one — an acceptor's PROMISE, ACCEPTED, PREEMPTED,
ACCEPTOR_STATE, ACCEPTOR_OK or BARRIER_ANSWER; a proposer's PREPARE or ACCEPT (its
ballot names the proposer) or PROPOSER_HI — is taken only from that address. A stranger who cannot
spoof source addresses can then neither vote nor promise in anyone's name, nor push a
ballot out of reach.

Learners. Where the configuration lists learners (``learner`` lines), only they and
the replicas (which host a learner on their address) may speak as learners: register
(LEARNER_HI, LEARNER_DEL), ask for history (REPEAT), report a stuck instance
(LEARNER_STUCK), make acceptors forget (TRIM), ask for a read barrier's answer
(LEARNER_BARRIER), and ask one another for history and give it (LEARNER_FETCH,
LEARNER_HISTORY; refused from anyone where none are listed).
A stranger then gets nothing out of an acceptor, neither the values nor a flood of
answers sent at someone else. Where
it lists none, as the original's files, anyone may register, and a TRIM or a
LEARNER_BARRIER is taken only from an address registered as a learner with the
acceptor (LEARNER_HI, which a learner repeats every hello_keepalive): an answer then
goes only where a learner asked to be sent acceptances anyway. CLIENT_VALUE stays
open to anyone, as in the original.

The checks are a table by message type, like the node's routes: this runs for every
message.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

from kpaxosd.paxos.ballots import MAX_PROPOSERS
from kpaxosd.paxos.cluster import Address, Cluster
from wire.messages import (
    Accept,
    Accepted,
    AcceptorOk,
    AcceptorState,
    BarrierAnswer,
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


class Refusal(enum.Enum):
    """Why a message was not taken from its source (a label of the metrics)."""

    #: An acceptor's message not from the configured address of the acceptor it names.
    NOT_THE_ACCEPTOR = "not_the_acceptor"
    #: A proposer's message not from the configured address of the proposer its
    #: ballot (or id) names.
    NOT_THE_PROPOSER = "not_the_proposer"
    #: A TRIM or LEARNER_BARRIER from an address that has not registered as a
    #: learner (LEARNER_HI), where the configuration lists no learners.
    NOT_A_LEARNER = "not_a_learner"
    #: A learner's message (LEARNER_HI, LEARNER_DEL, REPEAT, LEARNER_STUCK, TRIM,
    #: LEARNER_FETCH, LEARNER_HISTORY, LEARNER_BARRIER) from an address that is no learner of the
    #: configuration, which lists some.
    NOT_A_LISTED_LEARNER = "not_a_listed_learner"
    #: LEARNER_FETCH or LEARNER_HISTORY where the configuration lists no learners:
    #: only listed learners are one another's peers.
    NO_LEARNERS_LISTED = "no_learners_listed"


Check = Callable[[Any, Address], bool]


class Senders:
    """The sender checks of one configuration.

    Args:
        cluster: the configuration.
        is_learner: whether an address registered as a learner (the acceptor's
            table); without it (no acceptor hosted) TRIM goes unchecked here where
            the configuration lists no learners.
    """

    def __init__(self, cluster: Cluster,
                 is_learner: Callable[[Address], bool] | None = None) -> None:
        acceptors, proposers = cluster.acceptors, cluster.proposers

        def from_its_acceptor(msg: Promise | Accepted | Preempted | AcceptorState,
                              src: Address) -> bool:
            return acceptors.get(msg.aid) == src

        def from_an_acceptor(msg: AcceptorOk, src: Address) -> bool:
            return cluster.acceptor_at(src) is not None

        def from_its_proposer(msg: Prepare | Accept, src: Address) -> bool:
            return proposers.get(msg.ballot % MAX_PROPOSERS) == src

        def from_that_proposer(msg: ProposerHi, src: Address) -> bool:
            return proposers.get(msg.pid) == src

        acceptor_check: tuple[Check, Refusal] = (from_its_acceptor, Refusal.NOT_THE_ACCEPTOR)
        self._checks: dict[type[Message], tuple[Check, Refusal]] = {
            Promise: acceptor_check,
            Accepted: acceptor_check,
            Preempted: acceptor_check,
            AcceptorState: acceptor_check,
            BarrierAnswer: acceptor_check,
            AcceptorOk: (from_an_acceptor, Refusal.NOT_THE_ACCEPTOR),
            Prepare: (from_its_proposer, Refusal.NOT_THE_PROPOSER),
            Accept: (from_its_proposer, Refusal.NOT_THE_PROPOSER),
            ProposerHi: (from_that_proposer, Refusal.NOT_THE_PROPOSER),
        }
        if cluster.learners:
            listed: tuple[Check, Refusal] = (
                lambda msg, src: cluster.lists_learner_at(src), Refusal.NOT_A_LISTED_LEARNER)
            for kind in (LearnerHi, LearnerDel, Repeat, LearnerStuck, Trim, LearnerFetch,
                         LearnerHistory, LearnerBarrier):
                self._checks[kind] = listed
        else:
            # Only listed learners fetch history from one another: without a list
            # nobody legitimately asks, and an answer is a thousand times the ask.
            nobody: tuple[Check, Refusal] = (lambda msg, src: False,
                                             Refusal.NO_LEARNERS_LISTED)
            self._checks[LearnerFetch] = self._checks[LearnerHistory] = nobody
            if is_learner is not None:
                registered: tuple[Check, Refusal] = (lambda msg, src: is_learner(src),
                                                     Refusal.NOT_A_LEARNER)
                self._checks[Trim] = self._checks[LearnerBarrier] = registered

    def refusal(self, msg: Message, src: Address) -> Refusal | None:
        """Why ``msg`` may not come from ``src``; None when it may."""
        entry = self._checks.get(type(msg))
        if entry is None:
            return None
        check, refusal = entry
        return None if check(msg, src) else refusal
