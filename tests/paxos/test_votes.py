from __future__ import annotations

from kpaxosd.paxos.votes import Votes


def test_quorum_needs_same_ballot_and_value() -> None:
    v = Votes()
    assert v.add(0, 10, b"x", 2) is None
    assert v.add(1, 10, b"y", 2) is None
    assert v.add(2, 10, b"x", 2) == b"x"


def test_only_the_latest_acceptance_of_each_acceptor_counts() -> None:
    v = Votes()
    v.add(0, 20, b"x", 2)
    assert v.add(0, 10, b"x", 2) is None  # older than what acceptor 0 reported
    assert v.add(0, 20, b"x", 2) is None  # a repeat is not a second vote
    assert v.add(1, 10, b"x", 2) is None
    assert v.add(2, 20, b"x", 2) == b"x"
    assert v.highest_ballot() == 20
