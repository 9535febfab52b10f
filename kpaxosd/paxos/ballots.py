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


#: Rounds above FIRST_ROUND_SPREAD that every acceptor takes from the start. An
#: honest proposer climbs one round above the ballot that preempted it, so it takes
#: some 16 million preemptions of one instance to come near.
MAX_ROUND_STEP = FIRST_ROUND_SPREAD
#: The ceiling opens up with the wall clock from here (2026-01-01T00:00:00Z) ...
CEILING_EPOCH = 1_767_225_600.0
#: ... by one round every this many seconds: some 25 years until the top of the u32.
SECONDS_PER_ROUND = 2.0


def ballot_ceiling(wall: float) -> int:
    """The highest ballot taken at wall-clock time ``wall`` (seconds since 1970).

    Bounded by time, not by what was promised: a ceiling that rose with each
    promise would let a peer walk it to the top of the u32 word in a few dozen
    PREPAREs, where nobody can outbid it any more. Against the clock, the highest
    promise anyone can obtain is the ceiling of the moment, and every proposer can
    go above it once the ceiling opened one more round, SECONDS_PER_ROUND later. The
    clocks of the cluster need to agree only roughly (a skew of S seconds delays an
    outbid by S / SECONDS_PER_ROUND rounds' worth); ballots matter only for
    liveness here, never for safety.
    """
    opened = int(max(0.0, wall - CEILING_EPOCH) / SECONDS_PER_ROUND)
    rounds = FIRST_ROUND_SPREAD + MAX_ROUND_STEP + opened
    return min(ballot_of(rounds, MAX_PROPOSERS - 1), MAX_U32)


#: The ceiling at CEILING_EPOCH, the lowest there is: the sans-IO roles start with it
#: until told the time (Node.set_wall_clock).
BASE_BALLOT_CEILING = ballot_ceiling(CEILING_EPOCH)
