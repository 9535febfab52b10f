"""A node's counters, as one frozen snapshot (trio's ``statistics()`` idiom)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

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
