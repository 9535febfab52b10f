"""A stable leader among several proposers: the view, the proposer's two roles, and
three replicas in lockstep losing their leader."""

from __future__ import annotations

import random

from kpaxosd.paxos import Cluster, Deliver, Node, PaxosOptions, Role
from kpaxosd.paxos.effects import Outbox, Send
from kpaxosd.paxos.leader import LeaderView
from kpaxosd.paxos.proposer import Phase, Proposer
from tests.paxos.lockstep import Lockstep, learner_stats, proposer_stats
from wire import Accepted, ClientValue, Message, Prepare, Promise, ProposerHi, wrap

ACCEPTORS = {0: ("10.0.0.1", 3003), 1: ("10.0.0.2", 3003), 2: ("10.0.0.3", 3003)}
PROPOSERS = {0: ("10.0.1.1", 3002), 1: ("10.0.1.2", 3002), 2: ("10.0.1.3", 3002)}
CLUSTER = Cluster(ACCEPTORS, PROPOSERS)
OPTIONS = PaxosOptions(preexec_window=2, proposer_first_round=1)
X, Y = wrap(1, 1, b"x"), wrap(1, 2, b"y")


def make(pid: int, **options: object) -> tuple[Proposer, Outbox]:
    out = Outbox()
    opts = PaxosOptions(preexec_window=2, proposer_first_round=1, **options)  # type: ignore[arg-type]
    return Proposer(pid, CLUSTER, opts, random.Random(0), out, now=0.0), out


def to_acceptors(msg: Message) -> list[Send]:
    return [Send(address, msg) for address in ACCEPTORS.values()]


def to_peers(pid: int, msg: Message) -> list[Send]:
    return [Send(address, msg) for q, address in PROPOSERS.items() if q != pid]


def hi(pid: int, decided_below: int = 1) -> ProposerHi:
    return ProposerHi(pid, decided_below)


# -- the view


def test_the_lowest_id_heard_from_leads() -> None:
    view = LeaderView(2, CLUSTER, OPTIONS, now=0.0)
    assert (view.leader(0.0), view.role(0.0)) == (0, Role.FOLLOWING)  # all heard at start
    assert view.next_deadline(0.0) == 0.0  # the first heartbeat goes at once
    assert view.heartbeat_due(0.0)
    assert not view.heartbeat_due(0.1)
    assert view.next_deadline(0.1) == 0.2
    view.heard(1, 0.9)
    assert view.leader(0.99) == 0
    assert view.leader(1.0) == 1  # 0 silent for leader_timeout
    assert view.next_deadline(1.0) == 0.2  # the heartbeat is due first
    assert view.leader(1.9) == 2
    view.heard(0, 2.0)
    assert view.leader(2.0) == 0


def test_without_peers_or_with_the_stable_leader_off_a_proposer_always_leads() -> None:
    alone = LeaderView(0, Cluster(ACCEPTORS, {0: PROPOSERS[0]}), OPTIONS, now=0.0)
    off = LeaderView(2, CLUSTER, PaxosOptions(stable_leader=False), now=0.0)
    for view in (alone, off):
        assert (view.role(0.0), view.next_deadline(0.0), view.heartbeat_due(9.0)) == (
            Role.LEADING,
            None,
            False,
        )


# -- a proposer that follows


def test_a_follower_says_hello_and_prepares_nothing() -> None:
    p, out = make(1)
    assert out.drain() == to_peers(1, hi(1))
    assert (p.role, p.leader, p.open_instances) == (Role.FOLLOWING, 0, 0)
    assert p.next_deadline() == 0.2
    p.handle_timer(0.2)
    assert out.drain() == to_peers(1, hi(1))


def test_a_follower_forwards_client_values_to_the_leader() -> None:
    p, out = make(2)
    out.drain()
    p.submit(X, 0.1)
    p.submit(X, 0.2)  # a resend: the leader merges it
    assert out.drain() == [Send(PROPOSERS[0], ClientValue(X))] * 2
    assert (p.forwarded, p.queued) == (2, 0)
    p.on_proposer_hi(hi(0), PROPOSERS[0], 0.5)
    p.submit(Y, 1.4)  # 0 heard at 0.5; 1 at 0.0, silent since
    assert out.drain() == [Send(PROPOSERS[0], ClientValue(Y))]
    p.submit(Y, 1.6)  # 0 silent too now: 2 leads, and proposes Y itself
    assert out.drain() == to_acceptors(Prepare(1, 12)) + to_acceptors(Prepare(2, 12))
    assert (p.role, p.leader, p.queued) == (Role.LEADING, 2, 1)


def test_a_follower_takes_over_when_the_leader_falls_silent() -> None:
    p, out = make(1)
    out.drain()
    p.on_proposer_hi(hi(0, decided_below=7), PROPOSERS[0], 0.3)
    assert p.decided_below == 7  # the leader's progress: nothing to prepare below
    assert p.next_deadline() == 0.2  # heartbeat
    p.handle_timer(0.2)
    out.drain()
    assert p.next_deadline() == 0.4
    p.handle_timer(0.4)
    p.handle_timer(0.6)
    p.handle_timer(0.8)
    p.handle_timer(1.0)
    out.drain()
    assert p.next_deadline() == 1.2  # the heartbeat, then the leader's silence at 1.3
    p.handle_timer(1.2)
    out.drain()
    assert p.next_deadline() == 1.3
    p.handle_timer(1.3)
    assert out.drain() == to_acceptors(Prepare(7, 11)) + to_acceptors(Prepare(8, 11))
    assert (p.role, p.leader) == (Role.LEADING, 1)


def test_a_leader_hands_its_values_to_a_lower_id_that_comes_back() -> None:
    p, out = make(1)
    p.handle_timer(1.0)  # 0 silent: 1 leads
    out.drain()
    p.on_promise(Promise(0, 1, 11, 0, b""), 1.0)
    p.on_promise(Promise(1, 1, 11, 0, b""), 1.0)
    p.submit(X, 1.0)  # in flight in instance 1
    p.submit(Y, 1.0)  # queued
    out.drain()
    p.on_proposer_hi(hi(0), PROPOSERS[0], 1.1)
    assert out.drain() == [Send(PROPOSERS[0], ClientValue(X)), Send(PROPOSERS[0], ClientValue(Y))]
    assert (p.role, p.leader, p.open_instances, p.queued) == (Role.FOLLOWING, 0, 0, 0)
    # Instance 1 was abandoned undecided: whoever leads next prepares it again.
    assert p.decided_below == 1
    p.on_accepted(Accepted(0, 1, 11, 11, X), 1.2)  # late news of it changes nothing
    assert out.drain() == []


def test_the_lowest_id_leads_from_the_start() -> None:
    p, out = make(0)
    assert out.drain() == (
        to_peers(0, hi(0)) + to_acceptors(Prepare(1, 10)) + to_acceptors(Prepare(2, 10))
    )
    assert (p.role, p.phase(1)) == (Role.LEADING, Phase.PREPARING)
    p.on_proposer_hi(hi(1, decided_below=5), PROPOSERS[1], 0.1)
    # Still leading; instances 1 and 2 stay open, the next opened is 5.
    assert (p.role, p.decided_below) == (Role.LEADING, 1)


def test_hellos_from_strangers_are_dropped() -> None:
    p, out = make(1)
    out.drain()
    p.on_proposer_hi(hi(0), ("10.6.6.6", 1), 0.5)  # not proposer 0's address
    p.on_proposer_hi(hi(1), PROPOSERS[1], 0.5)  # ourselves
    p.on_proposer_hi(hi(7), PROPOSERS[0], 0.5)  # no such proposer
    p.on_proposer_hi(hi(0, decided_below=0), PROPOSERS[0], 0.5)  # no instance 0
    assert p.dropped == 4
    p.handle_timer(1.0)
    assert p.role is Role.LEADING  # 0 was never heard after the start


# -- three replicas, in lockstep


def replicas(options: PaxosOptions) -> Lockstep:
    cluster = Cluster(ACCEPTORS, dict(ACCEPTORS))
    return Lockstep(
        Node(
            address,
            cluster,
            acceptor_id=i,
            proposer_id=i,
            learner=True,
            options=options,
            rng=random.Random(i),
            now=0.0,
        )
        for i, address in ACCEPTORS.items()
    )


def propose_everywhere(net: Lockstep, start: int, count: int) -> None:
    """``count`` values, sent round robin to every live replica."""
    live = list(net.nodes.values())
    for n in range(count):
        node = live[n % len(live)]
        net.send(("10.9.9.9", 1), node.endpoint, ClientValue(wrap(9, start + n, b"")))
    net.settle()


def test_replicas_follow_one_leader_and_nobody_is_preempted() -> None:
    net = replicas(PaxosOptions(preexec_window=4))
    propose_everywhere(net, 1, 30)
    net.advance(2.0)
    for node in net.nodes.values():
        proposed = proposer_stats(node)
        assert (proposed.preemptions, proposed.leader) == (0, 0)
        assert learner_stats(node).deliveries == 30
    assert proposer_stats(net.nodes[ACCEPTORS[1]]).forwarded == 10


def test_without_a_stable_leader_replicas_duel() -> None:
    net = replicas(PaxosOptions(preexec_window=4, stable_leader=False))
    propose_everywhere(net, 1, 30)
    net.advance(10.0)
    assert sum(proposer_stats(node).preemptions for node in net.nodes.values()) > 0


def test_when_the_leader_dies_the_next_takes_over() -> None:
    net = replicas(PaxosOptions(preexec_window=4))
    propose_everywhere(net, 1, 6)
    del net.nodes[ACCEPTORS[0]]  # replica 0 is gone for good
    propose_everywhere(net, 7, 6)  # forwarded to the dead leader, lost
    net.advance(1.5)  # replica 1 takes over after leader_timeout
    assert proposer_stats(net.nodes[ACCEPTORS[1]]).leader == 1
    propose_everywhere(net, 7, 6)  # the clients resend
    net.advance(3.0)
    for address in (ACCEPTORS[1], ACCEPTORS[2]):
        origins = [o for d in net.delivered[address] if isinstance(d, Deliver) for o in d.origins]
        assert None not in origins
        assert sorted(o for o in origins if o is not None) == [(9, seq) for seq in range(1, 13)]
        assert proposer_stats(net.nodes[address]).leader == 1
