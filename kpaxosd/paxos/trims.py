"""What the acceptors report they forgot (ACCEPTOR_STATE), and what to believe of it.

An acceptor's trim point says it dropped every instance up to there. One acceptor's
word is not enough to give an instance up: a lying peer, or one trimmed too far, would
make a learner skip values a quorum still holds, or a proposer leave instances
undecided. A point that a quorum of acceptors reports is another matter: the others
are fewer than a quorum, so no majority can answer for an instance below it, and an
instance that was decided there was decided long ago (a learner trims only what it
delivered). Both the learner and the proposer believe only that.
"""

from __future__ import annotations


class TrimReports:
    """The highest trim point each acceptor reported.

    Args:
        quorum: how many acceptors must report a point before it is believed.
    """

    def __init__(self, quorum: int) -> None:
        self._quorum = quorum
        self._points: dict[int, int] = {}

    def report(self, aid: int, trim_iid: int) -> bool:
        """Note that acceptor ``aid`` forgot everything up to ``trim_iid``; whether
        that is news (a higher point than it reported before)."""
        if trim_iid <= self._points.get(aid, 0):
            return False
        self._points[aid] = trim_iid
        return True

    def agreed(self) -> int:
        """The highest point that a quorum of acceptors reports being at or beyond
        (0: none yet)."""
        if len(self._points) < self._quorum:
            return 0
        return sorted(self._points.values(), reverse=True)[self._quorum - 1]
