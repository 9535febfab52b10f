"""Snapshots of a running daemon's state, for whoever reports on it (metrics).

A reader gets copies taken at one moment, the way trio's objects answer
``statistics()``, and never the daemon's live objects: it cannot change them, and
needs to know nothing of how the daemon is wired.
"""

from __future__ import annotations

from dataclasses import dataclass

from kpaxosd.paxos.stats import NodeStatistics


@dataclass
class DecidedCounters:
    """What the daemon's learner delivered (kept live by the daemon; copied out)."""

    instances: int = 0
    values: int = 0
    bytes: int = 0
    last_iid: int = 0
    #: Instances the acceptors trimmed before the learner learned them (Trimmed).
    lost_instances: int = 0


@dataclass(frozen=True, slots=True)
class EndpointStatistics:
    """One endpoint (a socket and the roles behind it)."""

    name: str
    #: The roles its node hosts, of "proposer", "learner" and "acceptor".
    roles: frozenset[str]
    node: NodeStatistics
    sent_by_type: dict[str, int]
    datagrams_in: int
    datagrams_out: int
    malformed: int
    unauthenticated: int
    send_failures: int
    #: None when the endpoint has no acceptor store.
    store_failures: int | None
    #: Whether the last commit of its store failed (False without a store).
    store_failing: bool


@dataclass(frozen=True, slots=True)
class DaemonStatistics:
    decided: DecidedCounters
    endpoints: tuple[EndpointStatistics, ...]
    #: Per open reader of the learner device: delivered values it has not read.
    reader_lags: tuple[int, ...]


__all__ = ["DaemonStatistics", "DecidedCounters", "EndpointStatistics"]
