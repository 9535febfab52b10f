"""Exactly once, end to end over nodes: a client that missed its value's delivery
resends it, and the cluster decides it once and delivers it once.

The rule (wire.identity, kpaxosd.paxos.dedupe): a value is identified by its origin;
the proposer drops a client value whose origin is queued, in flight, or among the
last proposer_decided_memory decided; learners deliver an origin once.
"""

from __future__ import annotations

import random

import pytest

from kpaxosd.paxos import Cluster, Deliver, Node, PaxosOptions
from tests.paxos.lockstep import Lockstep, learner_stats, proposer_stats
from wire import Accepted, ClientValue, Message, identify_untrusted, wrap
from wire.original import OriginalClientValue, pack_client_value

ACCEPTORS = {0: ("10.0.0.1", 3003), 1: ("10.0.0.2", 3003), 2: ("10.0.0.3", 3003)}
PROPOSER = ("10.0.0.9", 3002)
LEARNER = ("10.0.0.8", 4000)
CLIENT = ("10.0.0.100", 5000)
CLUSTER = Cluster(ACCEPTORS, {0: PROPOSER})
OPTIONS = PaxosOptions(preexec_window=4, proposer_first_round=1)

ENVELOPE = wrap(7, 1, b"hello")
ORIGINAL = pack_client_value(OriginalClientValue(42, 1_500_000_000, 250_000, b"hello"))


def cluster() -> Lockstep:
    nodes = [
        Node(address, CLUSTER, acceptor_id=aid, options=OPTIONS, rng=random.Random(aid), now=0.0)
        for aid, address in ACCEPTORS.items()
    ]
    nodes.append(
        Node(PROPOSER, CLUSTER, proposer_id=0, options=OPTIONS, rng=random.Random(9), now=0.0)
    )
    nodes.append(Node(LEARNER, CLUSTER, learner=True, options=OPTIONS, rng=random.Random(8),
                      now=0.0))
    net = Lockstep(nodes)
    net.settle()
    return net


def instances_holding(net: Lockstep, value: bytes) -> set[int]:
    """The iids in which any acceptor accepted ``value``."""
    iids = set()
    for address in ACCEPTORS.values():
        acceptor = net.nodes[address].acceptor
        assert acceptor is not None
        iids |= {iid for iid in range(1, 20) if (r := acceptor.record(iid)) and r.value == value}
    return iids


@pytest.mark.parametrize("value", [ENVELOPE, ORIGINAL], ids=["envelope", "original"])
def test_a_resend_after_a_lost_delivery_is_decided_once(value: bytes) -> None:
    net = cluster()
    identified = identify_untrusted(value)
    assert identified.origin is not None

    # The first decision never reaches the learner: the client, watching it, does
    # not see its value within a second.
    def lost_delivery(src: object, dest: object, msg: Message) -> bool:
        return dest == LEARNER and isinstance(msg, Accepted)

    net.drop = lost_delivery
    net.send(CLIENT, PROPOSER, ClientValue(value))
    net.settle()
    assert instances_holding(net, value) == {1}
    assert net.delivered[LEARNER] == []
    net.drop = None

    # So it sends the value again, identical, one second later.
    net.advance(1.0)
    net.send(CLIENT, PROPOSER, ClientValue(value))
    net.settle()
    stats = proposer_stats(net.nodes[PROPOSER])
    assert (stats.already_decided, stats.open_instances) == (1, 4)

    # The learner finds instance 1 with its keepalive's probe; nothing else is decided.
    net.advance(6.0)
    assert instances_holding(net, value) == {1}
    assert net.delivered[LEARNER] == [Deliver(1, [identified.payload], [identified.origin])]
    assert learner_stats(net.nodes[LEARNER]).duplicates == 0


@pytest.mark.parametrize("value", [ENVELOPE, ORIGINAL], ids=["envelope", "original"])
def test_a_resend_while_in_flight_is_merged(value: bytes) -> None:
    net = cluster()
    net.drop = lambda src, dest, msg: isinstance(msg, Accepted)  # no decision yet
    net.send(CLIENT, PROPOSER, ClientValue(value))
    net.send(CLIENT, PROPOSER, ClientValue(value))
    net.settle()
    net.drop = None
    assert proposer_stats(net.nodes[PROPOSER]).coalesced == 1
    net.advance(3.0)  # the proposer retries its instance and closes it
    assert instances_holding(net, value) == {1}
    assert net.delivered_iids(LEARNER) == [1]


def test_a_restarted_proposer_deciding_again_is_delivered_once() -> None:
    """The proposer's memory dies with it; the learners' does not."""
    net = cluster()
    net.send(CLIENT, PROPOSER, ClientValue(ORIGINAL))
    net.settle()
    restarted = Node(
        PROPOSER,
        CLUSTER,
        proposer_id=0,
        options=PaxosOptions(preexec_window=4, proposer_first_round=5),
        rng=random.Random(10),
        now=1.0,
    )
    net.nodes[PROPOSER] = restarted
    net.now = 1.0
    # The resend is there before the new life's promises: it takes instance 2
    # while instance 1 is found to hold the same value.
    net.send(CLIENT, PROPOSER, ClientValue(ORIGINAL))
    net.settle()
    assert instances_holding(net, ORIGINAL) == {1, 2}
    assert net.delivered_iids(LEARNER) == [1]
    assert learner_stats(net.nodes[LEARNER]).duplicates == 1
