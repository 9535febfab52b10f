"""A long run through a trimming cluster, watching what every role holds.

Three acceptors, a proposer and a learner that trims every ``trim_every`` delivered
instances, in lockstep on a perfect network (no sockets, no simulated delays).
Values go in batches of ``batch``; every ``sample_every`` instances the instances
held by the acceptors and the learner, and the proposer's memories, are sampled.
The suite runs 200,000 instances (tests/paxos/test_trim.py), as does the soak
(``python -m tests.sim.run --soak``, or ``python -m tests.paxos.load 200000``).
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass

from kpaxosd.paxos import Cluster, Deliver, Node, PaxosOptions
from tests.paxos.lockstep import Lockstep, acceptor_stats, learner_stats
from wire import wrap

ACCEPTORS = {0: ("10.0.0.1", 3003), 1: ("10.0.0.2", 3003), 2: ("10.0.0.3", 3003)}
PROPOSER = ("10.0.0.9", 3002)
LEARNER = ("10.0.0.8", 4000)


@dataclass(frozen=True)
class Sample:
    delivered: int
    acceptor_instances: int
    learner_instances: int
    trim_iid: int
    proposer_decided_memory: int


@dataclass(frozen=True)
class LoadResult:
    samples: list[Sample]
    delivered: int
    seconds: float

    def bound(self, trim_every: int, window: int) -> int:
        """What no role may hold more of: the acceptors keep the last trim_every
        instances, up to trim_every more until the next TRIM, and the window's
        instances prepared ahead."""
        return 2 * trim_every + 2 * window


def run_trimmed_load(
    instances: int,
    *,
    trim_every: int = 1000,
    window: int = 128,
    batch: int = 100,
    sample_every: int = 10_000,
) -> LoadResult:
    cluster = Cluster(ACCEPTORS, {0: PROPOSER})
    # One value per instance: the load is counted in instances.
    options = PaxosOptions(preexec_window=window, proposer_first_round=1,
                           max_values_per_instance=1)
    nodes = [
        Node(address, cluster, acceptor_id=aid, options=options, rng=random.Random(aid), now=0.0)
        for aid, address in ACCEPTORS.items()
    ]
    proposer = Node(PROPOSER, cluster, proposer_id=0, options=options, rng=random.Random(9),
                    now=0.0)
    learner = Node(
        LEARNER,
        cluster,
        learner=True,
        options=PaxosOptions(trim_every=trim_every),
        rng=random.Random(8),
        now=0.0,
    )
    net = Lockstep([*nodes, proposer, learner])
    net.settle()
    samples: list[Sample] = []
    delivered = 0
    expected_iid = 1
    began = time.perf_counter()
    seq = 0
    while seq < instances:
        for _ in range(min(batch, instances - seq)):
            seq += 1
            proposer.submit(wrap(1, seq, b"v"), net.now)
        net.settle()
        for effect in net.delivered[LEARNER]:
            assert isinstance(effect, Deliver) and effect.iid == expected_iid, effect
            expected_iid += 1
        delivered += len(net.delivered[LEARNER])
        net.delivered[LEARNER].clear()
        net.persisted.clear()
        if seq % sample_every == 0 or seq == instances:
            stats = [acceptor_stats(node) for node in nodes]
            assert proposer.proposer is not None
            samples.append(
                Sample(
                    delivered=delivered,
                    acceptor_instances=max(s.instances for s in stats),
                    learner_instances=learner_stats(learner).instances,
                    trim_iid=min(s.trim_iid for s in stats),
                    proposer_decided_memory=len(proposer.proposer._decided),
                )
            )
    return LoadResult(samples, delivered, time.perf_counter() - began)


def check(result: LoadResult, instances: int, trim_every: int = 1000, window: int = 128) -> None:
    """Everything delivered, and nothing held beyond the bound at any sample."""
    assert result.delivered == instances
    bound = result.bound(trim_every, window)
    for sample in result.samples:
        assert sample.acceptor_instances <= bound, sample
        assert sample.learner_instances <= bound, sample
        assert sample.trim_iid >= sample.delivered - 2 * trim_every, sample


def main(argv: list[str]) -> int:
    instances = int(argv[0]) if argv else 200_000
    result = run_trimmed_load(instances)
    check(result, instances)
    worst = max(s.acceptor_instances for s in result.samples)
    print(
        f"{result.delivered} instances through a trimming cluster in {result.seconds:.1f} s; "
        f"acceptors held at most {worst} (bound {result.bound(1000, 128)}), "
        f"{len(result.samples)} samples"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
