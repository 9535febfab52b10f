"""Snapshots of a running daemon's state, for whoever reports on it (metrics).

A reader gets copies taken at one moment, the way trio's objects answer
``statistics()``, and never the daemon's live objects: it cannot change them, and
needs to know nothing of how the daemon is wired.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from kpaxosd.paxos.effects import Decision, Deliver, Trimmed
from kpaxosd.paxos.stats import NodeStatistics

log = logging.getLogger("kpaxos")


@dataclass
class DecidedCounters:
    """What the daemon's learner delivered (kept live by the daemon; copied out)."""

    instances: int = 0
    values: int = 0
    bytes: int = 0
    last_iid: int = 0
    #: Instances the acceptors trimmed before the learner learned them (Trimmed).
    lost_instances: int = 0

    def on_decisions(self, decisions: Sequence[Decision]) -> None:
        """Count them (the daemon subscribes these counters to its learner)."""
        debug = log.isEnabledFor(logging.DEBUG)
        for decision in decisions:
            if isinstance(decision, Trimmed):
                self.lost_instances += decision.next_iid - decision.first_iid
                continue
            if not isinstance(decision, Deliver):
                continue  # Adopted: the values it announces come as Deliver
            iid, delivered = decision.iid, decision.values
            size = sum(map(len, delivered))
            if debug:
                log.debug("instance %d decided %d values, %d bytes", iid, len(delivered), size)
            if iid != self.last_iid:
                self.instances += 1
                self.last_iid = iid
            self.values += len(delivered)
            self.bytes += size


@dataclass
class EndpointCounters:
    """What an endpoint counts (kept live by the endpoint; copied out)."""

    datagrams_in: int = 0
    datagrams_out: int = 0
    malformed: int = 0
    unauthenticated: int = 0
    send_failures: int = 0
    #: Commits of the acceptor's store that failed (disk full, I/O error).
    store_failures: int = 0
    #: Messages handed over in process (:class:`LocalBus`), not counted as datagrams.
    local_in: int = 0
    local_out: int = 0


@dataclass(frozen=True, slots=True)
class EndpointStatistics:
    """One endpoint (a socket and the roles behind it)."""

    name: str
    #: The roles its node hosts, of "proposer", "learner" and "acceptor".
    roles: frozenset[str]
    node: NodeStatistics
    sent_by_type: dict[str, int]
    #: A copy of the endpoint's counters.
    counters: EndpointCounters
    #: Whether it has an acceptor store.
    durable: bool
    #: Whether the last commit of its store failed (False without a store).
    store_failing: bool


@dataclass(frozen=True, slots=True)
class DaemonStatistics:
    decided: DecidedCounters
    endpoints: tuple[EndpointStatistics, ...]
    #: Per open reader of the learner device: delivered values it has not read.
    reader_lags: tuple[int, ...]


__all__ = ["DaemonStatistics", "DecidedCounters", "EndpointCounters", "EndpointStatistics"]
