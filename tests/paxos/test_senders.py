"""Who may say what: a message speaking for a node is taken only from that node's address."""

from __future__ import annotations

import random

import pytest

from kpaxosd.paxos.ballots import (
    BASE_BALLOT_CEILING,
    CEILING_EPOCH,
    MAX_PROPOSERS,
    MAX_ROUND_STEP,
    MAX_U32,
    SECONDS_PER_ROUND,
    ballot_above,
    ballot_ceiling,
    ballot_of,
)
from kpaxosd.paxos.cluster import Cluster
from kpaxosd.paxos.effects import Deliver, Persist, Send
from kpaxosd.paxos.node import REFUSED_SOURCES_KEPT, Node
from kpaxosd.paxos.senders import Refusal, Senders
from tests.paxos.lockstep import acceptor_stats
from wire import (
    Accept,
    Accepted,
    AcceptorOk,
    AcceptorState,
    ClientValue,
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


LISTED_LEARNER = ("10.0.0.7", 4000)
REPLICA = ("10.0.0.9", 3003)
WITH_LEARNERS = Cluster({**ACCEPTORS, 3: REPLICA}, {**PROPOSERS, 3: REPLICA},
                        learners={0: LISTED_LEARNER})


@pytest.mark.parametrize("msg", [LearnerHi(), LearnerDel(), Repeat(1, 5), LearnerStuck(4),
                                 Trim(5), LearnerFetch(1, 1, 0, 0, 0),
                                 LearnerHistory(1, 0, 1, 2, 0, 0, 0, b"")])
def test_where_learners_are_listed_only_they_and_replicas_act_as_learners(
    msg: Message,
) -> None:
    senders = Senders(WITH_LEARNERS, lambda src: True)
    assert senders.refusal(msg, LISTED_LEARNER) is None
    assert senders.refusal(msg, REPLICA) is None  # a replica hosts a learner there
    # Registering is not enough, nor being another node of the configuration.
    for other in (STRANGER, ACCEPTORS[0], PROPOSERS[3]):
        assert senders.refusal(msg, other) is Refusal.NOT_A_LISTED_LEARNER


def test_a_stranger_gets_nothing_from_an_acceptor_of_a_cluster_listing_learners() -> None:
    node = Node(ACCEPTORS[0], WITH_LEARNERS, acceptor_id=0, rng=random.Random(0), now=0.0)
    node.receive(Accept(1, 10, b"v"), PROPOSERS[0], 0.0)
    node.pop_effects()
    node.receive(LearnerHi(), STRANGER, 0.0)
    node.receive(Repeat(1, MAX_U32), STRANGER, 0.0)
    node.receive(Accept(2, 10, b"w"), PROPOSERS[0], 0.0)  # no copy goes to the stranger
    node.receive(Trim(1), STRANGER, 0.0)
    sent_to = {e.dest for e in node.pop_effects() if isinstance(e, Send)}
    assert sent_to == {PROPOSERS[0]}
    assert acceptor_stats(node).trim_iid == 0
    assert node.statistics().refused == {"not_a_listed_learner": 3}
    node.receive(LearnerHi(), LISTED_LEARNER, 0.0)
    node.receive(Trim(1), LISTED_LEARNER, 0.0)
    assert acceptor_stats(node).trim_iid == 1


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


def test_no_number_of_prepares_walks_the_ceiling_up_only_the_clock_opens_it() -> None:
    node = acceptor_node()
    top = ballot_of(MAX_U32 // MAX_PROPOSERS - 1, 0)
    node.receive(Prepare(1, top), PROPOSERS[0], 0.0)
    node.receive(Prepare(1, BASE_BALLOT_CEILING + MAX_PROPOSERS), PROPOSERS[0], 0.0)
    assert node.pop_effects() == []
    # The highest ballot taken now ...
    highest = BASE_BALLOT_CEILING - BASE_BALLOT_CEILING % MAX_PROPOSERS  # proposer 0's
    node.receive(Prepare(1, highest), PROPOSERS[0], 0.0)
    assert [e.msg for e in node.pop_effects() if isinstance(e, Send)] == [
        Promise(0, 1, highest, 0, b"")]
    # ... moves the ceiling nowhere: a walk of PREPAREs to the top gets no further.
    for step in range(1, 30):
        node.receive(Prepare(1, highest + step * MAX_ROUND_STEP * MAX_PROPOSERS),
                     PROPOSERS[0], 0.0)
    assert node.pop_effects() == []
    # Proposer 3, shut out, can go above once the clock opened one more round.
    outbid = ballot_above(3, highest)
    assert outbid is not None and outbid > BASE_BALLOT_CEILING
    later = CEILING_EPOCH + SECONDS_PER_ROUND
    assert ballot_ceiling(later) >= outbid
    node.set_wall_clock(later)
    node.receive(Prepare(1, outbid), PROPOSERS[3], 0.0)
    assert [e.msg for e in node.pop_effects() if isinstance(e, Send)] == [
        Promise(0, 1, outbid, 0, b"")]


def test_a_proposer_waits_for_the_ceiling_to_outbid_a_promise_at_it() -> None:
    alone = Cluster(ACCEPTORS, {3: PROPOSERS[3]})  # the leader from the start
    node = Node(PROPOSERS[3], alone, proposer_id=3, rng=random.Random(0), now=0.0)
    node.pop_effects()
    node.submit(b"v", 0.0)
    node.pop_effects()
    at_ceiling = BASE_BALLOT_CEILING - BASE_BALLOT_CEILING % MAX_PROPOSERS  # proposer 0's
    for aid, address in ACCEPTORS.items():
        node.receive(Preempted(aid, 1, at_ceiling), address, 0.1)

    def prepares() -> list[Prepare]:
        return [e.msg for e in node.pop_effects()
                if isinstance(e, Send) and isinstance(e.msg, Prepare)]

    # Not above the ceiling, which the acceptors would refuse in silence ...
    now = 0.1
    for _ in range(5):
        now += 10.0
        node.handle_timer(now)
        assert all(p.ballot <= BASE_BALLOT_CEILING for p in prepares())
    # ... but as soon as it opened.
    node.set_wall_clock(CEILING_EPOCH + SECONDS_PER_ROUND)
    node.handle_timer(now + 10.0)
    assert {p.ballot for p in prepares() if p.iid == 1} == {ballot_above(3, at_ceiling)}


def test_a_proposer_believes_no_preemption_beyond_every_reachable_ballot() -> None:
    proposer = Node(PROPOSERS[0], CLUSTER, proposer_id=0, rng=random.Random(0), now=0.0)
    proposer.pop_effects()
    proposer.submit(b"v", 0.0)
    proposer.pop_effects()
    assert proposer.proposer is not None
    for aid, address in ACCEPTORS.items():
        proposer.receive(Preempted(aid, 1, MAX_U32), address, 0.1)
    stats = proposer.statistics().proposer
    assert stats is not None and stats.preemptions == 0


def record(iid: int, promised: int, accepted: int = 0, value: bytes = b"") -> Persist:
    return Persist(iid, promised, accepted, value)


def test_a_restored_forged_promise_is_lowered_to_what_was_accepted() -> None:
    node = acceptor_node()
    restored = node.restore_acceptor([
        record(1, MAX_U32),                      # a forged promise only: gone
        record(2, MAX_U32, 30, b"kept"),         # lowered to its acceptance
        record(3, MAX_U32, MAX_U32, b"forged"),  # accepted at a forged ballot: kept
        record(4, 40, 30, b"honest"),            # untouched
    ])
    assert (restored.lowered, restored.highest_lowered, restored.accepted_absurd) == (
        [1, 2], MAX_U32, [3])
    acceptor = node.acceptor
    assert acceptor is not None
    assert acceptor.record(1) is None
    assert acceptor.record(2) == (30, 30, b"kept")
    assert acceptor.record(3) == (MAX_U32, MAX_U32, b"forged")
    assert acceptor.record(4) == (40, 30, b"honest")
    # Instance 1 and 2 can be prepared again by an honest proposer.
    node.receive(Prepare(2, 50), PROPOSERS[0], 0.0)
    assert Promise(0, 2, 50, 30, b"kept") in [
        e.msg for e in node.pop_effects() if isinstance(e, Send)]


def test_a_refused_source_is_named_by_its_first_refusal() -> None:
    node = acceptor_node()
    node.receive(Prepare(1, 13), STRANGER, 0.0)
    node.receive(Trim(1), STRANGER, 0.0)
    assert node.pop_refused_sources() == {STRANGER: (Refusal.NOT_THE_PROPOSER, Prepare)}


@pytest.mark.parametrize("msg", [LearnerFetch(1, 1, 0, 0, 0),
                                 LearnerHistory(1, 0, 1, 2, 0, 0, 0, b"")])
def test_where_no_learners_are_listed_nobody_fetches_history(msg: Message) -> None:
    """Peers are the listed learners: without a list nobody legitimately asks, and
    an answer would be a thousand times a forged ask."""
    senders = Senders(CLUSTER, lambda src: True)
    for source in (STRANGER, ACCEPTORS[0], PROPOSERS[3]):
        assert senders.refusal(msg, source) is Refusal.NO_LEARNERS_LISTED
