"""Ballot numbers: unique per proposer, ordered by round (libpaxos ``proposer_next_ballot``).

A ballot is ``round * MAX_PROPOSERS + proposer_id``. Two proposers never share a
ballot, so one ballot stands for one proposer's one attempt; the round alone orders
attempts. Every ballot must fit the u32 word of the wire.
"""

from __future__ import annotations

#: libpaxos's MAX_N_OF_PROPOSERS: how many proposer ids share the ballot space.
MAX_PROPOSERS = 10
#: The largest number a u32 word of the wire carries (ballots and iids).
MAX_U32 = 0xFFFFFFFF
#: A proposer that draws its first round draws it below this. The rounds above leave
#: room for 400 million retries of one instance.
FIRST_ROUND_SPREAD = 1 << 24


def ballot_of(round_: int, proposer_id: int) -> int:
    """The ballot of ``proposer_id`` in ``round_`` (from 1: ballot 0 means "no value"
    in a PROMISE)."""
    return round_ * MAX_PROPOSERS + proposer_id


def ballot_above(proposer_id: int, ballot: int) -> int | None:
    """The lowest ballot of ``proposer_id`` greater than ``ballot``, or None when that
    would not fit in a u32 (a peer that claims such a ballot cannot be outbid)."""
    candidate = (ballot // MAX_PROPOSERS + 1) * MAX_PROPOSERS + proposer_id
    return candidate if candidate <= MAX_U32 else None


#: How many rounds above the highest it has promised (or FIRST_ROUND_SPREAD) an
#: acceptor takes a ballot. An honest proposer climbs one round above the ballot that
#: preempted it, so it never comes near; one forged or buggy message cannot take a
#: promise out of every proposer's reach (a ballot near the top of the u32 word), and
#: whoever a promise shut out can always go above it (the ceiling rises with it).
MAX_ROUND_STEP = FIRST_ROUND_SPREAD


def ballot_ceiling(highest_promised: int) -> int:
    """The highest ballot an acceptor that promised ``highest_promised`` takes."""
    rounds = max(highest_promised // MAX_PROPOSERS, FIRST_ROUND_SPREAD) + MAX_ROUND_STEP
    return min(ballot_of(rounds, MAX_PROPOSERS - 1), MAX_U32)


#: The highest ballot a proposer of ours reaches: its first round is below
#: FIRST_ROUND_SPREAD, and it would take some 16 million preemptions of one instance
#: to get past this. A promise above it in an acceptor's store was forged (an older
#: kpaxos took it from a stranger), and a preemption above it is not believed.
MAX_REACHABLE_BALLOT = ballot_ceiling(0)
