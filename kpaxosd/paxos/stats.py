"""A node's counters, as frozen snapshots (trio's ``statistics()`` idiom): each role's
own, and the node's composing them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from wire.messages import MessageType


@dataclass(frozen=True, slots=True)
class ProposerStatistics:
    #: Instances retried after proposer_timeout.
    retries: int
    #: Instances where the proposer was preempted by a higher ballot.
    preemptions: int
    #: Client values waiting at the proposer.
    queued_values: int
    #: Instances the proposer has open.
    open_instances: int
    #: Client values merged with a copy queued or in flight ...
    coalesced: int
    #: ... or dropped because it saw them decided recently (exactly once).
    already_decided: int
    #: Client values sent on to the leader.
    forwarded: int
    #: Holes filled with the no-op.
    noops_proposed: int
    #: Instances run again for a learner that could not learn them.
    reopened: int
    #: The proposer this one takes for the leader (its own id when leading).
    leader: int
    #: Every instance below this one the proposer knows decided.
    decided_below: int
    #: Messages ignored as junk.
    dropped: int


@dataclass(frozen=True, slots=True)
class LearnerStatistics:
    #: Values delivered.
    deliveries: int
    #: Decided values not delivered because their origin already was.
    duplicates: int
    #: REPEAT rounds sent.
    repeats_sent: int
    #: The next instance to deliver (None: waiting for a first one, no catch-up).
    next_iid: int | None
    #: Instances given up because the acceptors trimmed them (Trimmed).
    trimmed: int
    #: Instances held: votes being counted, decisions waiting for a hole.
    instances: int
    #: LEARNER_STUCK rounds sent.
    stuck_reports: int
    #: Votes and decisions let go of or refused to stay within learner_max_held_bytes.
    shed: int
    #: What the votes and decisions take, as learner_max_held_bytes counts.
    held_bytes: int
    #: Messages ignored as junk.
    dropped: int
    #: Trimmed history taken from peer learners: transfers, and values delivered
    #: from them (kpaxosd.paxos.peers).
    fetches: int = 0
    fetched: int = 0


@dataclass(frozen=True, slots=True)
class AcceptorStatistics:
    #: Instances held (all above the trim point).
    instances: int
    #: The trim point.
    trim_iid: int
    #: PREPAREs and ACCEPTs refused: acceptor_max_held_bytes reached.
    refused_full: int
    #: What the records take, as acceptor_max_held_bytes counts.
    held_bytes: int
    #: Messages ignored as junk.
    dropped: int


@dataclass(frozen=True, slots=True)
class NodeStatistics:
    #: Messages handed to ``receive``, by type.
    received: Mapping[MessageType, int]
    #: Messages ignored as junk, by the node and its roles: for a role not hosted,
    #: from an unknown acceptor, for an absurd instance or ballot, client values over
    #: the queue limit.
    dropped: int
    #: Each hosted role's own; None for a role not hosted.
    proposer: ProposerStatistics | None = None
    learner: LearnerStatistics | None = None
    acceptor: AcceptorStatistics | None = None
    #: Messages not taken from their source, by reason (:class:`~kpaxosd.paxos.
    #: senders.Refusal`'s value): someone speaking for a node it is not.
    refused: Mapping[str, int] = field(default_factory=dict)
