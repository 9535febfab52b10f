"""Fuzz targets: hostile datagrams, seeded from the golden vectors, at the decoder and at
every role. Bounded by hypothesis' example counts, so the suite stays quick; raise them
with --hypothesis-profile=fuzz (see conftest) for a longer hunt."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from kpaxosd.paxos import Cluster, Node, Send
from tests.conftest import read_vectors
from wire import WireError, decode_untrusted, encode

VECTORS = read_vectors("kernel_paxos_wire.txt")
CLUSTER = Cluster(
    acceptors={0: ("127.0.0.3", 3003), 1: ("127.0.0.3", 4003), 2: ("127.0.0.3", 5003)},
    proposers={0: ("127.0.0.2", 3002)},
)
PEERS = [*CLUSTER.acceptors.values(), *CLUSTER.proposers.values(), ("127.0.0.9", 9999)]

mutation = st.tuples(
    st.sampled_from(sorted(VECTORS)),
    st.lists(st.tuples(st.integers(0, 48), st.integers(0, 255)), max_size=6),
    st.integers(-12, 12),
)


def mutate(name: str, flips: list[tuple[int, int]], resize: int) -> bytes:
    data = bytearray(VECTORS[name])
    for position, byte in flips:
        if position < len(data):
            data[position] = byte
    if resize < 0:
        del data[max(0, len(data) + resize):]
    else:
        data.extend(random.Random(resize).randbytes(resize))
    return bytes(data)


def make_nodes() -> list[Node]:
    rng = random.Random(7)
    return [
        Node(("127.0.0.3", 3003), CLUSTER, acceptor_id=0, rng=rng, now=0.0),
        Node(("127.0.0.2", 3002), CLUSTER, proposer_id=0, rng=rng, now=0.0),
        Node(("127.0.0.1", 40000), CLUSTER, learner=True, rng=rng, now=0.0),
    ]


@given(st.lists(st.tuples(mutation, st.sampled_from(PEERS), st.floats(0, 0.5)), max_size=60))
def test_every_role_survives_mutated_datagrams(
    steps: list[tuple[tuple[str, list[tuple[int, int]], int], tuple[str, int], float]],
) -> None:
    nodes = make_nodes()
    now = 0.0
    for (name, flips, resize), src, elapsed in steps:
        now += elapsed
        try:
            msg = decode_untrusted(mutate(name, flips, resize))
        except WireError:
            continue  # the one error the decoder may raise; the endpoint counts and drops
        for node in nodes:
            node.receive(msg, src, now)
            node.handle_timer(now)
            for effect in node.pop_effects():
                if isinstance(effect, Send):
                    encode(effect.msg)  # whatever a role sends must be sendable
    for node in nodes:
        stats = node.statistics().proposer
        assert stats is None or stats.open_instances <= 128 + 1
        assert stats is None or stats.queued_values <= len(steps)
