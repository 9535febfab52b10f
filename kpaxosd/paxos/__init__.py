"""The Paxos protocol as sans-IO state machines: messages and time in, effects out.

Nothing here reads a clock, touches a socket or draws global randomness; the trio
daemon and the deterministic simulator drive the same :class:`Node`.
"""

from kpaxosd.paxos.ballots import MAX_PROPOSERS
from kpaxosd.paxos.cluster import Address, Cluster
from kpaxosd.paxos.effects import (
    Adopted,
    BarrierReached,
    Deliver,
    Effect,
    Persist,
    PersistTrim,
    QuorumReach,
    Send,
    Trimmed,
)
from kpaxosd.paxos.leader import Role
from kpaxosd.paxos.node import Node, RoleNotHosted
from kpaxosd.paxos.options import PaxosOptions
from kpaxosd.paxos.stats import NodeStatistics

__all__ = [
    "MAX_PROPOSERS",
    "Address",
    "Adopted",
    "BarrierReached",
    "Cluster",
    "Deliver",
    "Effect",
    "Node",
    "NodeStatistics",
    "PaxosOptions",
    "Persist",
    "PersistTrim",
    "QuorumReach",
    "Role",
    "RoleNotHosted",
    "Send",
    "Trimmed",
]
