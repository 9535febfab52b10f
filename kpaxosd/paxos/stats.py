"""A node's counters, as one frozen snapshot (trio's ``statistics()`` idiom)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from wire.messages import MessageType


@dataclass(frozen=True, slots=True)
class NodeStatistics:
    #: Messages handed to ``receive``, by type.
    received: Mapping[MessageType, int]
    #: Messages ignored as junk: for a role not hosted, from an unknown acceptor, for
    #: an absurd instance or ballot, client values over the queue limit.
    dropped: int
    #: Values delivered by the learner.
    deliveries: int
    #: Decided values not delivered because their origin already was.
    duplicates: int
    #: REPEAT requests the learner sent.
    repeats_sent: int
    #: Instances the proposer retried after proposer_timeout.
    proposer_retries: int
    #: Instances where the proposer was preempted by a higher ballot.
    preemptions: int
    #: Client values waiting at the proposer.
    queued_values: int
    #: Instances the proposer has open.
    open_instances: int
    #: The learner's next instance to deliver.
    next_iid: int | None
    # Added later, with defaults, so that a snapshot built by hand still works.
    #: Client values the proposer merged with a copy queued or in flight ...
    coalesced: int = 0
    #: ... or dropped because it saw them decided recently (exactly once).
    already_decided: int = 0
    #: Client values the proposer sent on to the leader.
    forwarded: int = 0
    #: Holes the proposer filled with the no-op.
    noops_proposed: int = 0
    #: Instances the proposer ran again for a learner that could not learn them.
    reopened: int = 0
    #: The proposer the proposer takes for the leader (its own id when leading).
    leader: int | None = None
    #: Instances the learner gave up because the acceptors trimmed them (Trimmed).
    trimmed: int = 0
    #: Instances the learner holds: votes being counted, decisions waiting for a hole.
    learner_instances: int = 0
    #: Instances the acceptor holds (all above its trim point).
    acceptor_instances: int = 0
    #: The acceptor's trim point.
    trim_iid: int | None = None
    #: Every instance below this one the proposer knows decided.
    decided_below: int | None = None
    #: LEARNER_STUCK rounds the learner sent.
    stuck_reports: int = 0
    #: Votes and decisions the learner let go of or refused to stay within
    #: learner_max_held_bytes.
    learner_shed: int = 0
    #: What the learner's votes and decisions take, as learner_max_held_bytes counts.
    learner_held_bytes: int = 0
    #: PREPAREs and ACCEPTs the acceptor refused: acceptor_max_held_bytes reached.
    acceptor_refused_full: int = 0
    #: What the acceptor's records take, as acceptor_max_held_bytes counts.
    acceptor_held_bytes: int = 0
    #: Messages not taken from their source, by reason (:class:`~kpaxosd.paxos.
    #: senders.Refusal`'s value): a stranger speaking for a node of the configuration.
    refused: Mapping[str, int] = field(default_factory=dict)
