"""Who leads among several proposers: the lowest-numbered one still heard from.

libpaxos lets every proposer propose; under contention they preempt each other in
a loop (each PREPARE outbids the other's, an ACCEPT at the lower ballot is refused,
and round again). kpaxos keeps one leader at a time:

- every proposer sends PROPOSER_HI (a kpaxos extension, :mod:`wire.messages`) to
  the other proposers every ``heartbeat_interval``;
- each proposer takes for leader the lowest id it heard from within
  ``leader_timeout``, itself included. Everyone hears everyone in a healthy
  cluster, so all agree without a vote;
- at start every peer counts as just heard: a new proposer follows the lowest id
  rather than contend with it while it waits for its first PROPOSER_HI.

The leader prepares and proposes; a follower forwards each client value to its
leader, whose id is lower than its own, so a value travels down the ids and never
in a loop. When the leader falls silent the next-lowest takes over after
``leader_timeout``; when a lower one comes back, the current leader hands its
values to it and follows. Two proposers may both lead for a moment (a heartbeat
lost, a restart): that costs a few preemptions, never safety, which rests on the
ballots as before.

This module keeps the view only; :mod:`kpaxosd.paxos.proposer` acts on it.
"""

from __future__ import annotations

import enum

from kpaxosd.paxos.cluster import Address, Cluster
from kpaxosd.paxos.options import PaxosOptions


class Role(enum.Enum):
    """What a proposer does with the client values it receives."""

    #: Prepares instances and proposes values.
    LEADING = "leading"
    #: Forwards values to the leader; prepares nothing.
    FOLLOWING = "following"


class LeaderView:
    """This proposer's view of who is alive among the proposers of the cluster."""

    __slots__ = ("_heard", "_heartbeat_due", "_interval", "_peers", "_timeout", "pid")

    def __init__(self, pid: int, cluster: Cluster, options: PaxosOptions, now: float) -> None:
        self.pid = pid
        enabled = options.stable_leader
        #: The other proposers and their addresses (none: always leading).
        self._peers: dict[int, Address] = (
            {q: a for q, a in cluster.proposers.items() if q != pid} if enabled else {}
        )
        self._timeout = options.leader_timeout
        self._interval = options.heartbeat_interval
        self._heard: dict[int, float] = dict.fromkeys(self._peers, now)
        # The first PROPOSER_HI goes out at once: peers learn of a restart now.
        self._heartbeat_due: float | None = now if self._peers else None

    @property
    def peers(self) -> dict[int, Address]:
        return self._peers

    def leader(self, now: float) -> int:
        """The lowest id heard from within leader_timeout, or this proposer's."""
        alive = (q for q, at in self._heard.items() if q < self.pid and now < at + self._timeout)
        return min(alive, default=self.pid)

    def role(self, now: float) -> Role:
        return Role.LEADING if self.leader(now) == self.pid else Role.FOLLOWING

    def heard(self, pid: int, now: float) -> None:
        """``pid`` said it is alive; the caller checked it is a peer."""
        self._heard[pid] = max(self._heard[pid], now)

    def heartbeat_due(self, now: float) -> bool:
        """Whether to send PROPOSER_HI now; if so, the next one is scheduled."""
        due = self._heartbeat_due
        if due is None or due > now:
            return False
        self._heartbeat_due = now + self._interval
        return True

    def next_deadline(self, now: float) -> float | None:
        """The next heartbeat, or the moment the current leader times out if sooner."""
        deadlines = [] if self._heartbeat_due is None else [self._heartbeat_due]
        leader = self.leader(now)
        if leader != self.pid:
            deadlines.append(self._heard[leader] + self._timeout)
        return min(deadlines, default=None)
