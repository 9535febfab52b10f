"""Who may say what: a message speaking for a node is taken only from that node's address."""

from __future__ import annotations

import random

import pytest

from kpaxosd.paxos.ballots import MAX_PROPOSERS, MAX_U32, ballot_above, ballot_ceiling, ballot_of
from kpaxosd.paxos.cluster import Cluster
from kpaxosd.paxos.effects import Deliver, Send
from kpaxosd.paxos.node import REFUSED_SOURCES_KEPT, Node
from kpaxosd.paxos.senders import Refusal, Senders
from tests.paxos.lockstep import acceptor_stats
from wire import (
    Accept,
    Accepted,
    AcceptorOk,
    AcceptorState,
    ClientValue,
    LearnerHi,
    Message,
    Preempted,
    Prepare,
    Promise,
    ProposerHi,
    Repeat,
    Trim,
)

ACCEPTORS = {0: ("10.0.0.1", 3003), 1: ("10.0.0.2", 3003), 2: ("10.0.0.3", 3003)}
PROPOSERS = {0: ("10.0.0.1", 3002), 3: ("10.0.0.4", 3002)}
CLUSTER = Cluster(ACCEPTORS, PROPOSERS)
STRANGER = ("10.0.0.66", 3003)


@pytest.mark.parametrize(("msg", "rightful", "refusal"), [
    (Promise(1, 5, 10, 0, b""), ACCEPTORS[1], Refusal.NOT_THE_ACCEPTOR),
    (Accepted(2, 5, 10, 10, b"v"), ACCEPTORS[2], Refusal.NOT_THE_ACCEPTOR),
    (Preempted(0, 5, MAX_U32), ACCEPTORS[0], Refusal.NOT_THE_ACCEPTOR),
    (AcceptorState(1, MAX_U32), ACCEPTORS[1], Refusal.NOT_THE_ACCEPTOR),
    (AcceptorOk(), ACCEPTORS[2], Refusal.NOT_THE_ACCEPTOR),
    (Prepare(5, 13), PROPOSERS[3], Refusal.NOT_THE_PROPOSER),  # ballot 13: proposer 3
    (Accept(5, 20, b"v"), PROPOSERS[0], Refusal.NOT_THE_PROPOSER),
    (ProposerHi(3, 40), PROPOSERS[3], Refusal.NOT_THE_PROPOSER),
])
def test_a_message_is_taken_only_from_the_address_of_whom_it_speaks_for(
    msg: Message, rightful: tuple[str, int], refusal: Refusal,
) -> None:
    senders = Senders(CLUSTER)
    assert senders.refusal(msg, rightful) is None
    assert senders.refusal(msg, STRANGER) is refusal
    # Another node of the configuration may not speak for it either.
    others = [a for a in [*ACCEPTORS.values(), *PROPOSERS.values()] if a != rightful]
    if not isinstance(msg, AcceptorOk):  # any acceptor may say ACCEPTOR_OK for itself
        assert all(senders.refusal(msg, other) is refusal for other in others)


def test_an_unconfigured_id_is_refused_from_anywhere() -> None:
    senders = Senders(CLUSTER)
    assert senders.refusal(Accepted(7, 5, 10, 10, b"v"), ACCEPTORS[0]) is Refusal.NOT_THE_ACCEPTOR
    assert senders.refusal(Prepare(5, 11), ACCEPTORS[0]) is Refusal.NOT_THE_PROPOSER


@pytest.mark.parametrize("msg", [ClientValue(b"v"), LearnerHi(), Repeat(1, 5)])
def test_client_values_and_learner_requests_stay_open(msg: Message) -> None:
    assert Senders(CLUSTER, lambda src: False).refusal(msg, STRANGER) is None


def test_trim_is_taken_only_from_a_registered_learner() -> None:
    learners = {("10.0.0.7", 4000)}
    senders = Senders(CLUSTER, learners.__contains__)
    assert senders.refusal(Trim(5), ("10.0.0.7", 4000)) is None
    assert senders.refusal(Trim(5), STRANGER) is Refusal.NOT_A_LEARNER


def acceptor_node() -> Node:
    return Node(ACCEPTORS[0], CLUSTER, acceptor_id=0, rng=random.Random(0), now=0.0)


def test_an_acceptor_promises_nothing_to_a_strangers_top_ballot() -> None:
    node = acceptor_node()
    node.receive(Prepare(1, MAX_U32 - MAX_U32 % 10), STRANGER, 0.0)  # proposer 0's top
    assert node.pop_effects() == []
    assert node.statistics().refused == {"not_the_proposer": 1}
    # The rightful proposer is still promised an ordinary ballot.
    node.receive(Prepare(1, 10), PROPOSERS[0], 0.0)
    assert any(getattr(e, "msg", None) == Promise(0, 1, 10, 0, b"") for e in node.pop_effects())


def test_an_acceptor_trims_only_for_a_learner_that_said_hello() -> None:
    node = acceptor_node()
    node.receive(Accept(1, 10, b"v"), PROPOSERS[0], 0.0)
    node.receive(Trim(1), STRANGER, 0.0)
    assert acceptor_stats(node).trim_iid == 0
    node.receive(LearnerHi(), STRANGER, 0.0)
    node.receive(Trim(1), STRANGER, 0.0)
    assert acceptor_stats(node).trim_iid == 1


def test_a_learner_delivers_no_strangers_quorum() -> None:
    learner = Node(("10.0.0.8", 4000), CLUSTER, learner=True, rng=random.Random(0), now=0.0)
    learner.pop_effects()
    for aid in ACCEPTORS:
        learner.receive(Accepted(aid, 1, 10, 10, b"forged"), STRANGER, 0.0)
    learner.receive(AcceptorState(0, MAX_U32), STRANGER, 0.0)
    assert not [e for e in learner.pop_effects() if isinstance(e, Deliver)]
    assert learner.statistics().refused == {"not_the_acceptor": 4}
    for aid, address in ACCEPTORS.items():
        learner.receive(Accepted(aid, 1, 10, 10, b"real"), address, 0.0)
    delivered = [e for e in learner.pop_effects() if isinstance(e, Deliver)]
    assert [d.values for d in delivered] == [[b"real"]]


def test_the_sources_refused_are_kept_for_the_log_and_bounded() -> None:
    node = acceptor_node()
    for port in range(REFUSED_SOURCES_KEPT + 10):
        node.receive(Prepare(1, 10), ("10.0.0.66", 1000 + port), 0.0)
    refused = node.pop_refused_sources()
    assert len(refused) == REFUSED_SOURCES_KEPT
    assert set(refused.values()) == {(Refusal.NOT_THE_PROPOSER, Prepare)}
    assert node.pop_refused_sources() == {}
    assert node.statistics().refused == {"not_the_proposer": REFUSED_SOURCES_KEPT + 10}


# -- nothing absurd from inside either ---------------------------------------------------


def test_a_configured_proposers_top_ballot_is_refused_and_an_outbiddable_one_taken() -> None:
    node = acceptor_node()
    top = ballot_of(MAX_U32 // MAX_PROPOSERS - 1, 0)
    node.receive(Prepare(1, top), PROPOSERS[0], 0.0)
    assert node.pop_effects() == []
    # The highest ballot taken leaves every proposer a ballot above it.
    ceiling = ballot_ceiling(0)
    assert ceiling < top
    highest = ceiling - ceiling % MAX_PROPOSERS  # proposer 0's highest below the ceiling
    node.receive(Prepare(1, highest), PROPOSERS[0], 0.0)
    assert [e.msg for e in node.pop_effects() if isinstance(e, Send)] == [
        Promise(0, 1, highest, 0, b"")]
    assert all(ballot_above(pid, highest) is not None for pid in PROPOSERS)
    # The ceiling rises with what was promised, one step at a time.
    assert ballot_ceiling(highest) > ceiling


def test_an_honest_proposer_preempted_near_the_ceiling_is_taken() -> None:
    node = acceptor_node()
    highest = ballot_ceiling(0) - ballot_ceiling(0) % MAX_PROPOSERS
    node.receive(Prepare(1, highest), PROPOSERS[0], 0.0)
    outbid = ballot_above(3, highest)
    assert outbid is not None
    node.receive(Prepare(1, outbid), PROPOSERS[3], 0.0)
    assert Promise(0, 1, outbid, 0, b"") in [
        e.msg for e in node.pop_effects() if isinstance(e, Send)]
