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


#: The highest ballot any proposer of ours ever uses: its first round is below
#: FIRST_ROUND_SPREAD, and it climbs one round above whatever preempted it, so it
#: would take some 16 million preemptions of one instance to get further. Acceptors
#: take no ballot above it and proposers believe no preemption above it, so one forged
#: or buggy message cannot put a promise out of every proposer's reach (the top of the
#: u32 word), and a store holding such a promise is repaired on restore.
MAX_REACHABLE_BALLOT = ballot_of(2 * FIRST_ROUND_SPREAD, MAX_PROPOSERS - 1)
