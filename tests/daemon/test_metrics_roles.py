"""Which endpoints report which role metrics: the collector reads each role's
statistics, and a node without the role reports the first metrics as 0 and leaves the
others out."""

from __future__ import annotations

import random

from kpaxosd.metrics import DaemonCollector
from kpaxosd.paxos import Cluster, Node
from kpaxosd.statistics import (
    DaemonStatistics,
    DecidedCounters,
    EndpointCounters,
    EndpointStatistics,
)

ACCEPTORS = {0: ("10.0.0.1", 3003), 1: ("10.0.0.2", 3003), 2: ("10.0.0.3", 3003)}
CLUSTER = Cluster(ACCEPTORS, {0: ("10.0.0.9", 3002)})


def endpoint(name: str, node: Node) -> EndpointStatistics:
    hosted = {"proposer": node.proposer, "learner": node.learner, "acceptor": node.acceptor}
    return EndpointStatistics(
        name=name,
        roles=frozenset(role for role, part in hosted.items() if part is not None),
        node=node.statistics(),
        sent_by_type={},
        counters=EndpointCounters(),
        durable=False,
        store_failing=False,
    )


def samples(*endpoints: EndpointStatistics) -> dict[tuple[str, str | None], float]:
    snapshot = DaemonStatistics(DecidedCounters(), endpoints, ())
    return {
        (metric.name, sample.labels.get("role")): sample.value
        for metric in DaemonCollector(lambda: snapshot).collect()
        for sample in metric.samples
    }


def test_role_metrics_come_from_the_roles_hosted() -> None:
    rng = random.Random(1)
    acceptor = Node(ACCEPTORS[0], CLUSTER, acceptor_id=0, rng=rng, now=0.0)
    proposer = Node(CLUSTER.proposers[0], CLUSTER, proposer_id=0, rng=rng, now=0.0)
    found = samples(endpoint("acceptor", acceptor), endpoint("proposer", proposer))
    # Reported by every endpoint, 0 without the role.
    assert found[("kpaxos_proposer_preemptions", "acceptor")] == 0
    assert found[("kpaxos_duplicates_suppressed", "proposer")] == 0
    assert found[("kpaxos_proposer_queued_values", "acceptor")] == 0
    # Reported only where the role is hosted.
    assert found[("kpaxos_proposer_leader", "proposer")] == 0
    assert ("kpaxos_proposer_leader", "acceptor") not in found
    assert found[("kpaxos_acceptor_trim_iid", "acceptor")] == 0
    assert ("kpaxos_acceptor_trim_iid", "proposer") not in found
    assert not any(name == "kpaxos_learner_next_iid" for name, _ in found)
