"""The byte bounds: forged or stray votes and ACCEPTs cannot grow a node's memory.

learner_max_held_bytes bounds the votes and decisions a learner holds for instances
it has not delivered; acceptor_max_held_bytes the records an acceptor takes. Both
are driven here directly, with big values from valid acceptor ids (what an open
cluster cannot tell from the real thing).
"""

from __future__ import annotations

from kpaxosd.paxos.acceptor import Acceptor, Record
from kpaxosd.paxos.cluster import Cluster
from kpaxosd.paxos.effects import Deliver, Outbox, Persist, Send
from kpaxosd.paxos.learner import Learner
from kpaxosd.paxos.options import HELD_RECORD_COST, PaxosOptions
from wire import MAX_VALUE_SIZE, Accept, Accepted, Prepare, Repeat, Trim

ACCEPTORS = {0: ("10.0.0.1", 3003), 1: ("10.0.0.2", 3003), 2: ("10.0.0.3", 3003)}
PROPOSER = ("10.0.0.9", 3002)
LEARNER = ("10.0.0.8", 4000)
CLUSTER = Cluster(ACCEPTORS, {0: PROPOSER})
#: About what an attacker fills a datagram with.
BIG = 60_000
MIB = 1024 * 1024


def big(tag: int) -> bytes:
    return tag.to_bytes(4, "big") * (BIG // 4)


# -- learner


def make_learner(bound: int) -> tuple[Learner, Outbox]:
    out = Outbox()
    options = PaxosOptions(learner_catch_up=True, learner_max_held_bytes=bound)
    learner = Learner(CLUSTER, options, out, now=0.0)
    out.drain()
    return learner, out


def delivered_iids(out: Outbox) -> list[int]:
    return [e.iid for e in out.drain() if isinstance(e, Deliver)]


def test_forged_votes_stay_within_the_bound_and_the_next_instance_still_decides() -> None:
    learner, out = make_learner(MIB)
    # 3,000 forged votes, one per instance beyond the next, each of a valid acceptor.
    for i in range(3000):
        learner.on_accepted(Accepted(i % 3, 2 + i, 7, 7, big(i)), 0.0)
        assert learner.held_bytes <= MIB
    assert learner.shed > 3000 - MIB // BIG
    assert learner.instances < MIB // BIG
    # The real votes for the next instance are taken, however full, and decide it.
    learner.on_accepted(Accepted(0, 1, 10, 10, big(-1 % 2**31)), 0.0)
    learner.on_accepted(Accepted(1, 1, 10, 10, big(-1 % 2**31)), 0.0)
    assert delivered_iids(out) == [1]
    assert learner.next_iid == 2


def test_the_next_instance_is_never_shed() -> None:
    learner, out = make_learner(BIG)  # room for not even one vote and its cost
    learner.on_accepted(Accepted(0, 1, 10, 10, big(1)), 0.0)
    learner.on_accepted(Accepted(0, 2, 10, 10, big(2)), 0.0)  # refused
    assert learner.instances == 1
    learner.on_accepted(Accepted(1, 1, 10, 10, big(1)), 0.0)
    assert delivered_iids(out) == [1]
    assert learner.held_bytes == 0


def test_shedding_keeps_the_nearest_and_refuses_beyond_them_until_under_half() -> None:
    per_instance = BIG + 2 * HELD_RECORD_COST
    learner, _ = make_learner(10 * per_instance)
    for iid in range(2, 13):  # the eleventh goes over: shed down to 3/4 (7 kept)
        learner.on_accepted(Accepted(0, iid, 10, 10, big(iid)), 0.0)
    assert learner.instances == 7
    assert learner.shed == 4
    learner.on_accepted(Accepted(0, 20, 10, 10, big(20)), 0.0)  # beyond what it kept
    assert (learner.instances, learner.shed) == (7, 5)
    # A vote for one kept (at another ballot: it decides nothing yet).
    learner.on_accepted(Accepted(1, 3, 11, 11, big(3)), 0.0)
    assert learner.shed == 5 and learner.held_bytes > 7 * per_instance
    # Delivery frees room: under half of the bound, new instances come in again.
    for iid in (1, 2, 3, 4, 5):
        learner.on_accepted(Accepted(2, iid, 10, 10, big(iid)), 0.0)
        learner.on_accepted(Accepted(0, iid, 10, 10, big(iid)), 0.0)
    assert learner.next_iid == 6
    assert learner.held_bytes < 5 * per_instance
    learner.on_accepted(Accepted(0, 30, 10, 10, big(30)), 0.0)
    assert learner.instances == 4


def test_decisions_let_go_of_are_asked_for_again() -> None:
    per_instance = BIG + HELD_RECORD_COST
    learner, out = make_learner(4 * per_instance)
    for iid in range(2, 8):  # decided beyond the hole at 1; 6 will not fit in 4
        learner.on_accepted(Accepted(0, iid, 10, 10, big(iid)), 0.0)
        learner.on_accepted(Accepted(1, iid, 10, 10, big(iid)), 0.0)
    assert learner.held_bytes <= 4 * per_instance
    assert learner.shed > 0
    assert learner.instances == 3  # 2, 3, 4
    # The votes for the next instance make room for themselves: 3 and 4 go.
    learner.on_accepted(Accepted(0, 1, 10, 10, big(1)), 0.0)
    learner.on_accepted(Accepted(1, 1, 10, 10, big(1)), 0.0)
    assert delivered_iids(out) == [1, 2]
    # Hole repair: the next tick sees progress, the one after asks for the rest.
    for now in (1.0, 2.0):
        learner.handle_timer(now)
    repeats = {e.msg for e in out.drain() if isinstance(e, Send) and isinstance(e.msg, Repeat)}
    assert {(r.from_iid, r.to_iid >= 7) for r in repeats} == {(3, True)}
    for iid in range(3, 8):
        learner.on_accepted(Accepted(0, iid, 10, 10, big(iid)), 3.0)
        learner.on_accepted(Accepted(2, iid, 10, 10, big(iid)), 3.0)
    assert delivered_iids(out) == [3, 4, 5, 6, 7]
    assert learner.held_bytes == 0


# -- acceptor


def make_acceptor(bound: int, **options: int) -> tuple[Acceptor, Outbox]:
    out = Outbox()
    opts = PaxosOptions(acceptor_max_held_bytes=bound, **options)  # type: ignore[arg-type]
    return Acceptor(0, CLUSTER, opts, out), out


def test_forged_accepts_walking_the_horizon_stay_within_the_bound() -> None:
    acceptor, out = make_acceptor(MIB)
    ahead = PaxosOptions().acceptor_max_ahead
    for i in range(3000):
        # Each at the horizon, as a forger walks it forward.
        held = acceptor.held()
        iid = held[-1] + ahead if held else 1
        acceptor.on_accept(Accept(iid, 7, big(i)), PROPOSER)
        assert acceptor.held_bytes <= MIB
    held = acceptor.held()
    assert len(held) == MIB // (BIG + HELD_RECORD_COST)
    assert acceptor.refused_full == 3000 - len(held)
    out.drain()
    # What it holds it still answers, and a higher ballot still goes in.
    acceptor.on_repeat(Repeat(held[0], held[0]), LEARNER)
    assert out.drain() == [Send(LEARNER, Accepted(0, held[0], 7, 7, big(0)))]
    acceptor.on_accept(Accept(held[0], 9, big(99)), PROPOSER)
    assert acceptor.record(held[0]) == Record(9, 9, big(99))
    # TRIM frees room.
    acceptor.on_trim(Trim(held[1]), LEARNER)
    assert acceptor.held_bytes == (len(held) - 2) * (BIG + HELD_RECORD_COST)
    acceptor.on_accept(Accept(held[-1] + 1, 7, big(5)), PROPOSER)
    assert acceptor.record(held[-1] + 1) == Record(7, 7, big(5))


def test_a_full_acceptor_refuses_new_promises_and_bounds_the_growth_of_what_it_holds() -> (
    None
):
    bound = 64 * HELD_RECORD_COST
    acceptor, out = make_acceptor(bound, preexec_window=1)
    for iid in range(1, 100):
        acceptor.on_prepare(Prepare(iid, 10), PROPOSER)
    assert acceptor.instances == 64
    assert acceptor.refused_full == 35
    out.drain()
    # Values for instances it promised go in, up to a window of values (here one,
    # the largest) over the bound.
    for iid in range(1, 65):
        acceptor.on_accept(Accept(iid, 10, b"v" * 2000), PROPOSER)
        assert acceptor.held_bytes <= bound + MAX_VALUE_SIZE
    assert acceptor.record(1) == Record(10, 10, b"v" * 2000)
    assert acceptor.record(64) == Record(10, 0, b"")
    assert acceptor.refused_full > 35
    # A value that does not grow the record always goes in (a higher ballot).
    acceptor.on_accept(Accept(1, 20, b"w" * 2000), PROPOSER)
    assert acceptor.record(1) == Record(20, 20, b"w" * 2000)


def test_restore_and_revert_count_the_bytes() -> None:
    acceptor, _ = make_acceptor(4 * (BIG + HELD_RECORD_COST))
    acceptor.restore([Persist(iid, 10, 10, big(iid)) for iid in range(1, 6)])
    # Restored beyond the bound (a smaller bound after a restart): all kept, none new.
    assert acceptor.held() == [1, 2, 3, 4, 5]
    assert acceptor.held_bytes == 5 * (BIG + HELD_RECORD_COST)
    acceptor.on_accept(Accept(6, 10, b"x"), PROPOSER)
    assert acceptor.record(6) is None and acceptor.refused_full == 1
    acceptor.revert([4, 5], [], 0)
    assert acceptor.held_bytes == 3 * (BIG + HELD_RECORD_COST)
    acceptor.on_accept(Accept(6, 10, b"x"), PROPOSER)
    assert acceptor.record(6) == Record(10, 10, b"x")
