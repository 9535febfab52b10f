"""Read barriers and who is there: the rounds, the acceptors' answers, the learner's wait."""

from __future__ import annotations

import dataclasses
import random

import pytest

from kpaxosd.paxos import (
    Address,
    BarrierReached,
    Cluster,
    Deliver,
    Node,
    PaxosOptions,
    QuorumReach,
    Send,
)
from kpaxosd.paxos.barrier import BarrierRounds
from kpaxosd.paxos.effects import Outbox
from kpaxosd.paxos.reach import ASKS_PER_TIMEOUT
from tests.paxos.lockstep import Lockstep
from wire import (
    Accept,
    Accepted,
    BarrierAnswer,
    ClientValue,
    LearnerBarrier,
    LearnerHi,
    Message,
    Prepare,
    Trim,
)

ACCEPTORS = {0: ("10.0.0.1", 3003), 1: ("10.0.0.2", 3003), 2: ("10.0.0.3", 3003)}
PROPOSER = ("10.0.0.9", 3002)
NEAR, FAR = ("10.0.0.20", 4000), ("10.0.0.21", 4000)
CLUSTER = Cluster(ACCEPTORS, {0: PROPOSER})
OPTIONS = PaxosOptions(preexec_window=4, proposer_first_round=1)
CLIENT = ("10.0.0.99", 5000)


def asks(out: Outbox) -> list[tuple[Address, Message]]:
    return [(e.dest, e.msg) for e in out.drain() if isinstance(e, Send)]


def rounds() -> tuple[BarrierRounds, Outbox]:
    out = Outbox()
    return BarrierRounds(ACCEPTORS, 2, out, random.Random(1), 0.1), out


def test_a_round_asks_every_acceptor_and_a_quorum_of_answers_names_the_highest() -> None:
    barriers, out = rounds()
    barriers.begin(7, 0.0)
    sent = asks(out)
    assert sorted(dest for dest, _ in sent) == sorted(ACCEPTORS.values())
    session = {msg.session for _, msg in sent if isinstance(msg, LearnerBarrier)}.pop()
    assert barriers.on_answer(BarrierAnswer(0, session, 40), 0.01) is None
    # One acceptor twice is still one answer.
    assert barriers.on_answer(BarrierAnswer(0, session, 45), 0.01) is None
    assert barriers.on_answer(BarrierAnswer(2, session, 31), 0.02) == 45
    assert barriers.reached(45) == []  # instance 45 not delivered yet
    assert barriers.reached(46) == [7]
    assert not barriers.waiting


def test_a_barrier_begun_while_a_round_is_out_waits_for_the_next_round() -> None:
    # An answer to an ask sent before the barrier began may tell of a time before it.
    barriers, out = rounds()
    barriers.begin(1, 0.0)
    first = asks(out)[0][1]
    assert isinstance(first, LearnerBarrier)
    barriers.begin(2, 0.005)
    assert asks(out) == []
    for aid in (0, 1):
        barriers.on_answer(BarrierAnswer(aid, first.session, 10), 0.01)
    second = asks(out)
    assert len(second) == 3
    session = second[0][1]
    assert isinstance(session, LearnerBarrier) and session.session != first.session
    assert barriers.reached(100) == [1]
    # Late copies of the first round's answers count for nothing in the second.
    for aid in (0, 1, 2):
        assert barriers.on_answer(BarrierAnswer(aid, first.session, 10), 0.02) is None
    assert barriers.reached(100) == []
    for aid in (1, 2):
        barriers.on_answer(BarrierAnswer(aid, session.session, 12), 0.03)
    assert barriers.reached(100) == [2]


def test_unanswered_asks_go_again_to_the_silent_acceptors_only() -> None:
    barriers, out = rounds()
    barriers.begin(1, 0.0)
    session = asks(out)[0][1]
    assert isinstance(session, LearnerBarrier)
    barriers.on_answer(BarrierAnswer(1, session.session, 3), 0.01)
    # A stranger's id is no answer.
    barriers.on_answer(BarrierAnswer(9, session.session, 3), 0.01)
    barriers.handle_timer(0.05)
    assert asks(out) == []
    assert barriers.next_deadline() == pytest.approx(0.1)
    barriers.handle_timer(0.1)
    assert sorted(dest for dest, _ in asks(out)) == [ACCEPTORS[0], ACCEPTORS[2]]


def cluster(**options: object) -> tuple[Lockstep, Node, Node]:
    opts = dataclasses.replace(OPTIONS, **options)  # type: ignore[arg-type]
    nodes = [Node(address, CLUSTER, acceptor_id=aid, options=opts, rng=random.Random(aid),
                  now=0.0) for aid, address in ACCEPTORS.items()]
    proposer = Node(PROPOSER, CLUSTER, proposer_id=0, options=opts, rng=random.Random(9),
                    now=0.0)
    near = Node(NEAR, CLUSTER, learner=True, options=opts, rng=random.Random(10), now=0.0)
    far = Node(FAR, CLUSTER, learner=True, options=opts, rng=random.Random(11), now=0.0)
    net = Lockstep([*nodes, proposer, near, far])
    net.advance(1.0)
    return net, near, far


def test_a_barrier_waits_for_what_a_quorum_accepted_though_its_learner_heard_nothing() -> None:
    net, _, far = cluster()
    # The far learner hears no acceptance pushed to it: only what it asks for.
    net.drop = lambda src, dest, msg: dest == FAR and isinstance(msg, Accepted)
    for value in (b"one", b"two", b"three"):
        net.send(CLIENT, PROPOSER, ClientValue(value))
    net.settle()
    assert [v for d in net.delivered[NEAR] if isinstance(d, Deliver) for v in d.values] == [
        b"one", b"two", b"three"]
    assert far.learner is not None and far.learner.next_iid == 1
    net.drop = None
    far.barrier(5, net.now)
    # Answered at once; what it waits for then comes by hole repair.
    net.settle()
    assert net.signals[FAR] == []
    net.advance(net.now + 1.0)
    assert net.signals[FAR] == [BarrierReached(5)]
    assert [v for d in net.delivered[FAR] if isinstance(d, Deliver) for v in d.values] == [
        b"one", b"two", b"three"]


def test_the_barrier_comes_after_the_deliveries_it_waited_for() -> None:
    net, _, _ = cluster()
    net.send(CLIENT, PROPOSER, ClientValue(b"v"))
    net.settle()
    learner = Node(("10.0.0.22", 4000), CLUSTER, learner=True, options=OPTIONS,
                   rng=random.Random(3), now=net.now)
    learner.pop_effects()
    learner.barrier(1, net.now)
    effects = learner.pop_effects()
    session = next(e.msg.session for e in effects
                   if isinstance(e, Send) and isinstance(e.msg, LearnerBarrier))
    for aid, address in ACCEPTORS.items():
        learner.receive(BarrierAnswer(aid, session, 1), address, net.now)
    assert not [e for e in learner.pop_effects() if isinstance(e, BarrierReached)]
    learner.receive(Accepted(0, 1, 11, 11, b"v"), ACCEPTORS[0], net.now)
    learner.receive(Accepted(1, 1, 11, 11, b"v"), ACCEPTORS[1], net.now)
    kinds = [type(e) for e in learner.pop_effects() if not isinstance(e, Send)]
    assert kinds == [Deliver, BarrierReached]


def test_an_acceptor_answers_with_the_highest_instance_it_accepted_or_trimmed() -> None:
    acceptor = Node(ACCEPTORS[0], CLUSTER, acceptor_id=0, options=OPTIONS,
                    rng=random.Random(0), now=0.0)
    acceptor.receive(LearnerHi(), NEAR, 0.0)
    acceptor.pop_effects()

    def answer() -> Message:
        acceptor.pop_effects()
        acceptor.receive(LearnerBarrier(77), NEAR, 0.0)
        sent = [e.msg for e in acceptor.pop_effects() if isinstance(e, Send)]
        assert len(sent) == 1
        return sent[0]

    assert answer() == BarrierAnswer(0, 77, 0)
    acceptor.receive(Prepare(9, 10), PROPOSER, 0.0)  # a promise is no acceptance
    assert answer() == BarrierAnswer(0, 77, 0)
    acceptor.receive(Accept(9, 10, b"x"), PROPOSER, 0.0)
    assert answer() == BarrierAnswer(0, 77, 9)
    acceptor.receive(Trim(20), NEAR, 0.0)
    assert answer() == BarrierAnswer(0, 77, 20)


def test_an_open_cluster_answers_registered_learners_only() -> None:
    # Where no learners are listed, anyone may register; an answer goes only to one
    # that did (a spoofed source gets no datagrams sent at it).
    acceptor = Node(ACCEPTORS[0], CLUSTER, acceptor_id=0, options=OPTIONS,
                    rng=random.Random(0), now=0.0)
    acceptor.receive(LearnerBarrier(1), FAR, 0.0)
    assert [e for e in acceptor.pop_effects() if isinstance(e, Send)] == []
    assert acceptor.statistics().refused == {"not_a_learner": 1}


def test_a_learner_that_hears_no_quorum_says_so_and_again_when_it_does() -> None:
    net, _, _ = cluster(quorum_timeout=2.0)
    assert net.signals[NEAR] == []
    # Acceptors 1 and 2 go silent: one acceptor is no quorum.
    net.drop = lambda src, dest, msg: src in (ACCEPTORS[1], ACCEPTORS[2])
    start = net.now
    asked: list[float] = []
    original = net.nodes[ACCEPTORS[1]].receive

    def count_asks(msg: Message, src: Address, now: float) -> None:
        if src == NEAR and isinstance(msg, LearnerHi):
            asked.append(now)
        original(msg, src, now)

    net.nodes[ACCEPTORS[1]].receive = count_asks  # type: ignore[method-assign]
    net.advance(start + 1.9)
    assert net.signals[NEAR] == []
    net.advance(start + 2.3)
    assert net.signals[NEAR] == [QuorumReach(False, 1)]
    # Asked about eight times a timeout while silent.
    assert ASKS_PER_TIMEOUT - 1 <= len([t for t in asked if t <= start + 2.0]) <= ASKS_PER_TIMEOUT
    net.drop = None
    net.advance(net.now + 0.3)
    assert net.signals[NEAR] == [QuorumReach(False, 1), QuorumReach(True, 2)]


def test_a_barrier_nobody_waits_for_is_dropped_wherever_it_stands() -> None:
    # Withdrawn or timed out: kept, it would pile up while the learner lags.
    barriers, out = rounds()
    barriers.begin(1, 0.0)
    first = asks(out)[0][1]
    assert isinstance(first, LearnerBarrier)
    barriers.begin(2, 0.01)  # waits for the next round
    barriers.forget(2)
    barriers.forget(1)  # in the round out
    for aid in (0, 1):
        barriers.on_answer(BarrierAnswer(aid, first.session, 5), 0.02)
    assert asks(out) == []  # no next round: nobody waits
    assert not barriers.waiting
    barriers.begin(3, 0.03)
    third = asks(out)[0][1]
    assert isinstance(third, LearnerBarrier)
    for aid in (0, 1):
        barriers.on_answer(BarrierAnswer(aid, third.session, 50), 0.04)
    barriers.forget(3)  # answered, its instance not delivered yet
    assert barriers.reached(100) == [] and not barriers.waiting
