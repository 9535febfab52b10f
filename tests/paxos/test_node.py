"""The node: routing to the roles it hosts, the effect queue, timers, and hostile input."""

from __future__ import annotations

import random
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kpaxosd.paxos import (
    Address,
    Cluster,
    Deliver,
    Node,
    PaxosOptions,
    Persist,
    PersistTrim,
    RoleNotHosted,
    Send,
)
from kpaxosd.paxos.proposer import REOPEN_MAX
from tests.paxos.lockstep import acceptor_stats, learner_stats, proposer_stats
from wire import (
    Accept,
    Accepted,
    AcceptorOk,
    AcceptorState,
    ClientValue,
    LearnerDel,
    LearnerHi,
    LearnerStuck,
    Message,
    MessageType,
    Preempted,
    Prepare,
    Promise,
    ProposerHi,
    Repeat,
    Trim,
    encode,
    wrap,
)

ACCEPTORS = {0: ("10.0.0.1", 3003), 1: ("10.0.0.2", 3003), 2: ("10.0.0.3", 3003)}
PROPOSER = ("10.0.0.9", 3002)
CLUSTER = Cluster(ACCEPTORS, {0: ACCEPTORS[0], 1: PROPOSER})
OPTIONS = PaxosOptions(preexec_window=2, proposer_first_round=1)
OTHER = ("10.0.0.50", 9999)


def replica(**kwargs: object) -> Node:
    """Acceptor 0, proposer 0 and a learner on acceptor 0's address."""
    return Node(
        ACCEPTORS[0],
        CLUSTER,
        acceptor_id=0,
        proposer_id=0,
        learner=True,
        options=kwargs.pop("options", OPTIONS),  # type: ignore[arg-type]
        rng=random.Random(0),
        now=0.0,
    )


def test_a_replica_starts_its_proposer_and_learner() -> None:
    node = replica()
    sends = node.pop_effects()
    assert [s.msg for s in sends if isinstance(s, Send) and s.dest == ACCEPTORS[2]] == [
        Prepare(1, 10),
        Prepare(2, 10),
        LearnerHi(),
        Repeat(1, 1000),
    ]
    assert node.pop_effects() == []
    assert node.next_deadline() == 0.1  # the catch-up REPEAT's


def test_persist_comes_before_the_send_it_guards() -> None:
    node = replica()
    node.pop_effects()
    node.receive(Prepare(5, 21), PROPOSER, 0.0)
    assert node.pop_effects() == [
        Persist(5, 21, 0, b""),
        Send(PROPOSER, Promise(0, 5, 21, 0, b"")),
    ]


@pytest.mark.parametrize(
    ("msg", "role"),
    [
        (Prepare(9, 99), "acceptor"),
        (Accept(9, 99, b"v"), "acceptor"),
        (Repeat(1, 2), "acceptor"),
        (Trim(1), "acceptor"),
        (LearnerHi(), "acceptor"),
        (LearnerDel(), "acceptor"),
        (Promise(1, 1, 10, 0, b""), "proposer"),
        (Preempted(1, 1, 99), "proposer"),
        (ClientValue(b"v"), "proposer"),
        (LearnerStuck(1), "proposer"),
        (AcceptorOk(), "learner"),
    ],
)
def test_messages_for_roles_not_hosted_are_dropped(msg: Message, role: str) -> None:
    def make(acceptor: bool, proposer: bool, learner: bool) -> Node:
        return Node(
            ACCEPTORS[1],
            CLUSTER,
            acceptor_id=1 if acceptor else None,
            proposer_id=1 if proposer else None,
            learner=learner,
            options=OPTIONS,
            rng=random.Random(0),
            now=0.0,
        )

    hosted = make(role == "acceptor", role == "proposer", role == "learner")
    missing = make(role != "acceptor", role != "proposer", role != "learner")
    for node in (hosted, missing):
        node.pop_effects()
        node.receive(msg, ACCEPTORS[1], 0.0)
    assert hosted.statistics().dropped == 0
    assert missing.statistics().dropped == 1
    assert sum(missing.statistics().received.values()) == 1


@pytest.mark.parametrize("msg", [Accepted(1, 1, 10, 10, b"v"), AcceptorState(1, 0)])
def test_what_learners_and_proposers_hear_is_dropped_by_an_acceptor(msg: Message) -> None:
    node = Node(ACCEPTORS[1], CLUSTER, acceptor_id=1, rng=random.Random(0), now=0.0)
    node.receive(msg, ACCEPTORS[2], 0.0)
    assert (node.pop_effects(), node.statistics().dropped) == ([], 1)


def test_accepted_reaches_both_learner_and_proposer() -> None:
    node = replica()
    node.receive(Promise(0, 1, 10, 0, b""), ACCEPTORS[0], 0.0)
    node.receive(Promise(1, 1, 10, 0, b""), ACCEPTORS[1], 0.0)
    node.submit(b"v", 0.0)
    node.pop_effects()
    node.receive(Accepted(0, 1, 10, 10, b"v"), ACCEPTORS[0], 0.1)
    node.receive(Accepted(1, 1, 10, 10, b"v"), ACCEPTORS[1], 0.1)
    effects = node.pop_effects()
    assert Deliver(1, [b"v"], [None]) in effects
    assert Send(ACCEPTORS[1], Prepare(3, 10)) in effects  # the proposer's window slid
    learned, proposed = learner_stats(node), proposer_stats(node)
    assert (learned.deliveries, learned.next_iid, proposed.open_instances) == (1, 2, 2)
    assert node.statistics().received[MessageType.ACCEPTED] == 2


def test_submit_needs_a_proposer() -> None:
    node = Node(OTHER, CLUSTER, learner=True, rng=random.Random(0), now=0.0)
    with pytest.raises(RoleNotHosted):
        node.submit(b"v", 0.0)
    with pytest.raises(RoleNotHosted):
        node.restore_acceptor([])


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError):
        Node(OTHER, CLUSTER, proposer_id=10, rng=random.Random(0), now=0.0)
    with pytest.raises(ValueError):
        Node(OTHER, CLUSTER, acceptor_id=3, rng=random.Random(0), now=0.0)
    with pytest.raises(ValueError):
        PaxosOptions(preexec_window=0)
    with pytest.raises(ValueError):
        Cluster({})


def test_stop_says_goodbye_and_then_ignores_everything() -> None:
    node = replica()
    node.pop_effects()
    node.stop(5.0)
    assert node.pop_effects() == [Send(a, LearnerDel()) for a in ACCEPTORS.values()]
    node.receive(Prepare(1, 99), PROPOSER, 5.0)
    node.handle_timer(10.0)
    assert node.pop_effects() == []
    assert node.next_deadline() is None
    assert node.statistics().dropped == 1


def test_a_cluster_decides_over_a_perfect_network() -> None:
    """Three acceptors, a proposer and a learner, each its own node, in lockstep."""
    # The only proposer of this cluster (with proposer 0 configured and never
    # started, proposer 1 would follow it until leader_timeout).
    cluster = Cluster(ACCEPTORS, {1: PROPOSER})
    nodes: dict[Address, Node] = {
        a: Node(a, cluster, acceptor_id=i, rng=random.Random(i), now=0.0)
        for i, a in ACCEPTORS.items()
    }
    nodes[PROPOSER] = Node(
        PROPOSER, cluster, proposer_id=1, options=OPTIONS, rng=random.Random(9), now=0.0
    )
    nodes[OTHER] = Node(
        OTHER, cluster, learner=True, options=OPTIONS, rng=random.Random(9), now=0.0
    )
    delivered: list[Deliver] = []
    queue: deque[tuple[Address, Address, Message]] = deque()

    def drain(address: Address) -> None:
        for effect in nodes[address].pop_effects():
            if isinstance(effect, Send):
                encode(effect.msg)
                queue.append((address, effect.dest, effect.msg))
            elif isinstance(effect, Deliver):
                delivered.append(effect)

    def settle() -> None:
        for address in nodes:
            drain(address)
        while queue:
            src, dest, msg = queue.popleft()
            nodes[dest].receive(msg, src, 0.0)
            drain(dest)

    settle()
    for seq in range(5):
        nodes[PROPOSER].receive(ClientValue(wrap(7, seq, b"v%d" % seq)), OTHER, 0.0)
    nodes[PROPOSER].receive(ClientValue(wrap(7, 2, b"v2")), OTHER, 0.0)  # a resend
    settle()
    # The values queued while the window was busy share an instance (a batch).
    pairs = [pair for d in delivered for pair in zip(d.values, d.origins, strict=True)]
    assert pairs == [(b"v%d" % i, (7, i)) for i in range(5)]
    iids = [d.iid for d in delivered]
    assert iids == sorted(iids) and iids[0] == 1


# -- hostile peers: any message sequence, from anywhere, must not raise

u32 = st.one_of(st.integers(0, 40), st.integers(0, 2**32 - 1))
values = st.binary(max_size=12) | st.builds(
    wrap, st.integers(0, 3), st.integers(0, 5), st.binary(max_size=4)
)
messages = st.one_of(
    st.builds(Prepare, u32, u32),
    st.builds(Promise, u32, u32, u32, u32, values),
    st.builds(Accept, u32, u32, values),
    st.builds(Accepted, u32, u32, u32, u32, values),
    st.builds(Preempted, u32, u32, u32),
    st.builds(Repeat, u32, u32),
    st.builds(Trim, u32),
    st.builds(AcceptorState, u32, u32),
    st.builds(ClientValue, values),
    st.builds(ProposerHi, st.integers(0, 3), u32),
    st.builds(LearnerStuck, u32),
    st.just(LearnerHi()),
    st.just(LearnerDel()),
    st.just(AcceptorOk()),
)
sources = st.sampled_from([*ACCEPTORS.values(), PROPOSER, OTHER])
steps = st.lists(
    st.one_of(st.tuples(messages, sources), st.floats(0.0, 3.0, allow_nan=False)),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(steps)
def test_hostile_input_never_raises(script: list[tuple[Message, Address] | float]) -> None:
    options = PaxosOptions(preexec_window=3, repeat_reply_max=5, max_learners=2, repeat_max=50)
    node = Node(
        ACCEPTORS[0],
        CLUSTER,
        acceptor_id=0,
        proposer_id=0,
        learner=True,
        options=options,
        rng=random.Random(0),
        now=0.0,
    )
    now = 0.0
    for step in script:
        if isinstance(step, float):
            now += step
            deadline = node.next_deadline()
            if deadline is not None and deadline <= now:
                node.handle_timer(now)
                after = node.next_deadline()
                assert after is None or after > now
        else:
            node.receive(step[0], step[1], now)
        for effect in node.pop_effects():
            if isinstance(effect, Send):
                encode(effect.msg)  # everything sent fits the wire
    assert node.acceptor is not None and len(node.acceptor.learners()) <= 2
    assert node.proposer is not None and node.proposer.open_instances <= 3 + REOPEN_MAX


def test_a_replica_routes_the_extensions_to_its_proposer_and_counts_everything() -> None:
    node = replica()  # proposer 0 of proposers {0, 1}: the leader
    node.receive(LearnerHi(), OTHER, 0.5)  # a learner, which may trim
    node.pop_effects()
    node.receive(ProposerHi(1, 40), PROPOSER, 0.5)  # proposer 1 is alive, at 40
    node.receive(Trim(0), OTHER, 0.5)  # nothing to trim
    stats = node.statistics()
    assert stats.received[MessageType.PROPOSER_HI] == 1
    accepting = acceptor_stats(node)
    assert (proposer_stats(node).leader, stats.dropped) == (0, 0)
    assert (accepting.trim_iid, accepting.instances) == (0, 0)
    assert node.proposer is not None and node.proposer.decided_below == 1
    node.receive(Prepare(3, 11), PROPOSER, 0.5)  # ballot 11: proposer 1's
    node.receive(Trim(3), OTHER, 0.6)
    assert node.pop_effects() == [
        Persist(3, 11, 0, b""),
        Send(PROPOSER, Promise(0, 3, 11, 0, b"")),
        PersistTrim(3),
    ]
    accepting = acceptor_stats(node)
    assert (accepting.trim_iid, accepting.instances) == (3, 0)
