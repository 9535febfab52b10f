"""Counting acceptances: a majority of acceptors that accepted the same ballot decides."""

from __future__ import annotations

from kpaxosd.paxos.options import HELD_RECORD_COST


class Votes:
    """The latest acceptance reported by each acceptor for one instance.

    Only an acceptor's highest-ballot acceptance is kept, so the memory per instance is
    bounded by the number of acceptors whatever a peer sends. An older acceptance that
    is forgotten this way may cost a decision now, never safety: whatever was chosen at
    a lower ballot is also what a higher ballot carries.
    """

    __slots__ = ("_by_aid", "held_bytes")

    def __init__(self) -> None:
        self._by_aid: dict[int, tuple[int, bytes]] = {}
        #: What the votes held take, as the learner's byte bound counts it: each
        #: value's bytes plus HELD_RECORD_COST. Kept as votes come, not summed on
        #: demand: the learner reads it for every ACCEPTED.
        self.held_bytes = 0

    def add(self, aid: int, ballot: int, value: bytes, quorum: int) -> bytes | None:
        """Record that acceptor ``aid`` accepted ``value`` at ``ballot``.

        Returns:
            The chosen value when this vote completes a quorum that agrees on both
            ballot and value, else None.
        """
        known = self._by_aid.get(aid)
        if known is not None and known[0] >= ballot:
            # A repeat, or an acceptance the acceptor has since superseded. Two values
            # under one ballot would be a broken peer: the first one stands.
            return None
        vote = (ballot, value)
        self._by_aid[aid] = vote
        if known is None:
            self.held_bytes += len(value) + HELD_RECORD_COST
        else:
            self.held_bytes += len(value) - len(known[1])
        count = sum(1 for other in self._by_aid.values() if other == vote)
        return value if count >= quorum else None

    def __len__(self) -> int:
        """How many acceptors' votes are held."""
        return len(self._by_aid)

    def highest_ballot(self) -> int:
        """The highest ballot any acceptor reported accepting (0: none)."""
        return max((ballot for ballot, _ in self._by_aid.values()), default=0)
