"""The learner, driven directly with explicit ``now``; effects asserted exactly."""

from __future__ import annotations

from kpaxosd.paxos.ballots import MAX_U32
from kpaxosd.paxos.cluster import Cluster
from kpaxosd.paxos.effects import Deliver, Outbox, Send, Trimmed
from kpaxosd.paxos.learner import (
    CATCH_UP_PROBES,
    REPAIR_TRANSITIONS,
    STUCK_ROUNDS,
    TRIM_PATIENCE,
    Learner,
    Registration,
    Repair,
)
from kpaxosd.paxos.options import HELD_RECORD_COST, PaxosOptions
from kpaxosd.paxos.values import NOOP
from wire import (
    Accepted,
    AcceptorState,
    LearnerDel,
    LearnerHi,
    LearnerStuck,
    Message,
    Repeat,
    Trim,
    wrap,
)
from wire.batch import MAGIC, pack_batch
from wire.original import OriginalClientValue, pack_client_value

ACCEPTORS = {0: ("10.0.0.1", 3003), 1: ("10.0.0.2", 3003), 2: ("10.0.0.3", 3003)}
CLUSTER = Cluster(ACCEPTORS, {0: ("10.0.0.9", 3002)})


def make(catch_up: bool = False, **options: object) -> tuple[Learner, Outbox]:
    out = Outbox()
    opts = PaxosOptions(learner_catch_up=catch_up, **options)  # type: ignore[arg-type]
    return Learner(CLUSTER, opts, out, now=0.0), out


def to_all(msg: Message) -> list[Send]:
    return [Send(address, msg) for address in ACCEPTORS.values()]


def vote(
    learner: Learner,
    iid: int,
    value: bytes,
    aids: tuple[int, ...] = (0, 1),
    ballot: int = 10,
    now: float = 0.0,
) -> None:
    for aid in aids:
        learner.on_accepted(Accepted(aid, iid, ballot, ballot, value), now)


def delivered(out: Outbox) -> list[Deliver]:
    return [e for e in out.drain() if isinstance(e, Deliver)]


def test_start_registers_and_asks_for_history() -> None:
    _, out = make(catch_up=True)
    assert out.drain() == to_all(LearnerHi()) + to_all(Repeat(1, 1000))
    _, out = make(catch_up=False)
    assert out.drain() == to_all(LearnerHi())


def test_a_majority_at_one_ballot_decides() -> None:
    learner, out = make(catch_up=True)
    out.drain()
    learner.on_accepted(Accepted(0, 1, 10, 10, b"v"), 0.0)
    learner.on_accepted(Accepted(1, 1, 20, 20, b"v"), 0.0)  # same value, other ballot
    learner.on_accepted(Accepted(1, 1, 20, 20, b"v"), 0.0)  # a duplicate
    assert delivered(out) == []
    learner.on_accepted(Accepted(2, 1, 20, 20, b"v"), 0.0)
    assert delivered(out) == [Deliver(1, [b"v"], [None])]
    assert learner.next_iid == 2


def test_value_ballot_is_what_counts() -> None:
    # REPEAT answers from a libpaxos acceptor carry its promise in the ballot field.
    learner, out = make(catch_up=True)
    learner.on_accepted(Accepted(0, 1, 30, 10, b"v"), 0.0)
    learner.on_accepted(Accepted(1, 1, 40, 10, b"v"), 0.0)
    assert delivered(out) == [Deliver(1, [b"v"], [None])]


def test_one_ballot_two_values_decides_nothing() -> None:
    learner, out = make(catch_up=True)
    learner.on_accepted(Accepted(0, 1, 10, 10, b"v"), 0.0)
    learner.on_accepted(Accepted(1, 1, 10, 10, b"w"), 0.0)
    assert delivered(out) == []


def test_junk_acceptances_are_dropped() -> None:
    learner, out = make(catch_up=True)
    learner.on_accepted(Accepted(7, 1, 10, 10, b"v"), 0.0)  # unknown acceptor
    learner.on_accepted(Accepted(0, 1, 10, 0, b"v"), 0.0)  # no value ballot
    learner.on_accepted(Accepted(0, 0, 10, 10, b"v"), 0.0)  # there is no instance 0
    learner.on_accepted(Accepted(0, 200_000, 10, 10, b"v"), 0.0)  # too far ahead
    learner.on_acceptor_state(AcceptorState(9, 0), 0.0)
    assert learner.dropped == 5
    vote(learner, 1, b"v", aids=(1,))
    assert delivered(out) == []


def test_delivery_waits_for_the_hole_and_keeps_order() -> None:
    learner, out = make(catch_up=True)
    vote(learner, 2, b"b")
    vote(learner, 3, b"c")
    assert delivered(out) == []
    vote(learner, 1, b"a")
    assert delivered(out) == [
        Deliver(1, [b"a"], [None]),
        Deliver(2, [b"b"], [None]),
        Deliver(3, [b"c"], [None]),
    ]
    vote(learner, 2, b"b", aids=(2,))  # late news of a delivered instance
    assert delivered(out) == []


def test_without_catch_up_delivery_starts_at_the_first_instance_heard_of() -> None:
    learner, out = make(catch_up=False)
    assert learner.next_iid is None
    vote(learner, 7, b"g")
    vote(learner, 6, b"f")  # before the start: never delivered
    vote(learner, 8, b"h")
    assert delivered(out) == [Deliver(7, [b"g"], [None]), Deliver(8, [b"h"], [None])]


def test_a_hole_gets_a_repeat_of_what_is_missing_after_the_interval() -> None:
    learner, out = make(hello_interval=9.0)
    vote(learner, 5, b"e", now=0.5)  # delivery starts at 5
    learner.handle_timer(0.6)
    assert learner.next_deadline() == 9.0  # nothing missing: no repeat timer
    vote(learner, 7, b"g", now=1.0)
    vote(learner, 9, b"i", aids=(0,), now=1.0)
    out.drain()
    assert learner.next_deadline() == 1.1
    learner.handle_timer(1.1)
    # 6 and 8..9 are missing; 7 is decided and not asked again.
    assert out.drain() == [
        Send(ACCEPTORS[0], Repeat(6, 6)),
        Send(ACCEPTORS[0], Repeat(8, 9)),
        Send(ACCEPTORS[1], Repeat(6, 6)),
        Send(ACCEPTORS[1], Repeat(8, 9)),
        Send(ACCEPTORS[2], Repeat(6, 6)),
        Send(ACCEPTORS[2], Repeat(8, 9)),
    ]
    # Nothing came of it: the next try waits twice as long.
    assert learner.next_deadline() == 1.1 + 0.2
    vote(learner, 6, b"f", now=1.2)
    assert [d.iid for d in delivered(out)] == [6, 7]
    learner.handle_timer(1.3)  # progress was made: no repeat this time
    assert out.drain() == []
    assert learner.next_deadline() == 1.3 + 0.1


def test_no_repeat_while_instances_keep_being_decided() -> None:
    learner, out = make()
    vote(learner, 1, b"a", aids=(0,), now=0.0)  # in flight
    out.drain()
    vote(learner, 1, b"a", aids=(1,), now=0.05)
    vote(learner, 2, b"b", aids=(0,), now=0.05)
    learner.handle_timer(0.1)
    assert out.drain() == [Deliver(1, [b"a"], [None])]


def test_catch_up_continues_while_history_comes() -> None:
    learner, out = make(catch_up=True, repeat_max=2)
    assert out.drain()[-3:] == to_all(Repeat(1, 2))
    vote(learner, 1, b"a", now=0.05)
    vote(learner, 2, b"b", now=0.05)
    out.drain()
    learner.handle_timer(0.1)
    assert out.drain() == to_all(Repeat(3, 4))
    for now in (0.2, 0.4):  # nothing more out there: ask again, backing off ...
        assert learner.next_deadline() == now
        learner.handle_timer(now)
        assert out.drain() == to_all(Repeat(3, 4))
    learner.handle_timer(0.8)  # ... until the third miss ends the catch-up
    assert out.drain() == []
    assert learner.next_deadline() == 1.0  # only the hello timer is left


def test_duplicate_origins_are_delivered_once() -> None:
    learner, out = make(catch_up=True)
    vote(learner, 1, wrap(5, 1, b"x"))
    vote(learner, 2, wrap(5, 1, b"x"))  # the client resent it; decided twice
    vote(learner, 3, wrap(5, 2, b"y"))
    vote(learner, 4, b"raw")
    vote(learner, 5, b"raw")  # raw values carry no origin: always delivered
    assert delivered(out) == [
        Deliver(1, [b"x"], [(5, 1)]),
        Deliver(3, [b"y"], [(5, 2)]),
        Deliver(4, [b"raw"], [None]),
        Deliver(5, [b"raw"], [None]),
    ]
    assert (learner.deliveries, learner.duplicates) == (4, 1)


def test_registration_hello_until_ok_then_keepalive_with_a_tail_probe() -> None:
    learner, out = make(catch_up=False)
    out.drain()
    assert learner.next_deadline() == 1.0
    learner.handle_timer(1.0)
    assert out.drain() == to_all(LearnerHi())
    learner.on_acceptor_ok(ACCEPTORS[1], 1.5)
    learner.on_acceptor_ok(("10.9.9.9", 1), 1.5)  # not an acceptor
    assert learner.dropped == 1
    assert learner.registration(1) is Registration.REGISTERED
    learner.handle_timer(2.0)
    assert out.drain() == [Send(ACCEPTORS[0], LearnerHi()), Send(ACCEPTORS[2], LearnerHi())]
    vote(learner, 4, b"d", now=3.0)  # delivery starts at 4
    out.drain()
    learner.handle_timer(6.5)
    # The keepalive also asks what follows our last delivery, in case the acceptor
    # restarted and nobody told us about instances decided meanwhile.
    assert out.drain() == [
        Send(ACCEPTORS[0], LearnerHi()),
        Send(ACCEPTORS[1], LearnerHi()),
        Send(ACCEPTORS[1], Repeat(5, 1004)),
        Send(ACCEPTORS[2], LearnerHi()),
    ]
    assert learner.registration(1) is Registration.REGISTERED


def test_stop_says_goodbye_to_every_acceptor() -> None:
    learner, out = make()
    out.drain()
    learner.stop()
    assert out.drain() == to_all(LearnerDel())


# -- original values, the no-op, the decided hook


def test_an_original_value_is_delivered_whole_and_once() -> None:
    value = pack_client_value(OriginalClientValue(3, 1_500_000_000, 7, b"abc"))
    origin = (-4, 1_500_000_000_000_007)
    learner, out = make(catch_up=True)
    vote(learner, 1, value)
    vote(learner, 2, value)  # a resend decided again (a restarted proposer, say)
    assert delivered(out) == [Deliver(1, [value], [origin])]
    assert (learner.deliveries, learner.duplicates) == (1, 1)


def test_the_noop_fills_a_hole_and_is_not_delivered() -> None:
    seen: list[tuple[int, bytes]] = []
    out = Outbox()
    learner = Learner(CLUSTER, PaxosOptions(), out, now=0.0,
                      on_decided=lambda iid, value: seen.append((iid, value)))
    vote(learner, 2, b"b")
    vote(learner, 1, NOOP)
    assert delivered(out) == [Deliver(2, [b"b"], [None])]
    assert (learner.noops, learner.deliveries, learner.next_iid) == (1, 1, 3)
    assert seen == [(1, b""), (2, b"b")]  # every decision, in order, delivered or not


# -- trimming


def test_trim_points_of_enough_acceptors_give_the_history_up() -> None:
    learner, out = make(catch_up=True)
    vote(learner, 1, b"a")
    vote(learner, 6, b"f")
    out.drain()
    learner.on_acceptor_state(AcceptorState(0, 5), 0.0)
    # Acceptors 1 and 2 together still make a quorum: wait for them.
    assert out.drain() == []
    learner.on_acceptor_state(AcceptorState(1, 4), 0.0)
    # Only acceptor 2 may still hold 2..4: no quorum can answer for them.
    assert out.drain() == [Trimmed(2, 5)]
    assert (learner.next_iid, learner.trimmed) == (5, 3)
    vote(learner, 5, b"e")
    assert delivered(out) == [Deliver(5, [b"e"], [None]), Deliver(6, [b"f"], [None])]
    learner.on_acceptor_state(AcceptorState(1, 3), 0.0)  # old news
    learner.on_acceptor_state(AcceptorState(2, 6), 0.0)  # nothing left to give up
    assert out.drain() == []


def test_one_acceptors_trim_point_is_believed_after_fruitless_repeats() -> None:
    learner, out = make(catch_up=False, repeat_interval=0.1)
    vote(learner, 3, b"c")  # delivery starts at 3
    vote(learner, 6, b"f", aids=(0,))
    vote(learner, 8, b"h")
    out.drain()
    learner.on_acceptor_state(AcceptorState(2, 5), 0.0)
    assert out.drain() == []
    learner.handle_timer(0.1)  # the round armed before 3 was delivered: progress
    out.drain()
    for _ in range(TRIM_PATIENCE - 1):  # REPEAT rounds that bring nothing
        learner.handle_timer(learner.next_deadline())  # type: ignore[arg-type]
        assert out.drain() == to_all(Repeat(4, 7))
    learner.handle_timer(learner.next_deadline())  # type: ignore[arg-type]
    # Given up through acceptor 2's trim point; 6 and 7 may still come (and were
    # asked for in this round's REPEAT already).
    assert out.drain() == [Trimmed(4, 6)]
    assert (learner.next_iid, learner.trimmed) == (6, 2)


def test_trim_every_keeps_the_last_trim_every_instances() -> None:
    learner, out = make(catch_up=True, trim_every=2)
    out.drain()
    for iid in range(1, 4):
        vote(learner, iid, b"x")
    assert [e for e in out.drain() if isinstance(e, Send)] == []
    vote(learner, 4, b"x")  # delivered 4: the acceptors may forget 1 and 2
    assert out.drain() == [Deliver(4, [b"x"], [None]), *to_all(Trim(2))]
    vote(learner, 5, b"x")
    assert out.drain() == [Deliver(5, [b"x"], [None])]
    vote(learner, 6, b"x")
    assert out.drain() == [Deliver(6, [b"x"], [None]), *to_all(Trim(4))]


def trims(out: Outbox) -> list[int]:
    """The trim points of the TRIMs sent (once per acceptor each)."""
    sent = [e.msg.iid for e in out.drain() if isinstance(e, Send) and isinstance(e.msg, Trim)]
    points = sent[:: len(ACCEPTORS)]
    assert sent == [point for point in points for _ in ACCEPTORS]
    return points


def test_trim_bytes_trims_big_values_long_before_trim_every() -> None:
    # Each instance costs 1000 + HELD_RECORD_COST bytes: a mark every 4 instances.
    budget = 4 * (1000 + HELD_RECORD_COST)
    learner, out = make(catch_up=True, trim_every=100_000, trim_bytes=budget)
    out.drain()
    points = []
    for iid in range(1, 21):
        vote(learner, iid, b"v" * 1000)
        points.extend(trims(out))
    # Marks at 4, 8, 12, 16, 20; each trims to the mark before (the first: nothing).
    assert points == [4, 8, 12, 16]
    # What the acceptors keep after the last TRIM: the last one to two budgets' worth.
    assert 20 - points[-1] == 4


def test_trim_bytes_and_trim_every_keep_the_shorter_tail() -> None:
    learner, out = make(catch_up=True, trim_every=3, trim_bytes=10**9)
    out.drain()
    points = []
    for iid in range(1, 13):
        vote(learner, iid, b"x")
        points.extend(trims(out))
    assert points == [3, 6, 9]  # the count rule alone, as before


def test_the_acceptors_keep_at_most_two_trim_bytes_of_uneven_values() -> None:
    budget = 50_000
    learner, out = make(catch_up=True, trim_every=100_000, trim_bytes=budget)
    out.drain()
    sizes = [(iid * 7919) % 9000 for iid in range(1, 2001)]
    trimmed_to = 0
    for iid, size in enumerate(sizes, start=1):
        vote(learner, iid, bytes([iid % 251]) * size)
        for point in trims(out):
            assert point > trimmed_to
            trimmed_to = point
        kept = sum(s + HELD_RECORD_COST for s in sizes[trimmed_to:iid])
        largest = max(s + HELD_RECORD_COST for s in sizes[:iid])
        assert kept < 2 * budget + largest
    assert trimmed_to > 0


def test_no_trim_every_means_no_trim_whatever_the_bytes() -> None:
    learner, out = make(catch_up=True, trim_bytes=1)
    out.drain()
    for iid in range(1, 10):
        vote(learner, iid, b"x" * 100)
    assert trims(out) == []


def test_the_last_trim_goes_again_with_each_keepalive() -> None:
    learner, out = make(catch_up=False, trim_every=1)
    for iid in (1, 2):
        vote(learner, iid, b"x")
    out.drain()
    learner.on_acceptor_ok(ACCEPTORS[0], 0.5)
    learner.handle_timer(1.0)  # a hello for acceptors 1 and 2, unanswered so far
    assert out.drain() == [
        Send(ACCEPTORS[1], LearnerHi()),
        Send(ACCEPTORS[1], Trim(1)),
        Send(ACCEPTORS[2], LearnerHi()),
        Send(ACCEPTORS[2], Trim(1)),
    ]


# -- stuck instances


def assert_reported_stuck_after_fruitless_rounds(learner: Learner, out: Outbox, iid: int) -> None:
    """Instance 1 delivered, ``iid`` missing: STUCK_ROUNDS rounds of REPEAT for it bring
    nothing, and the last one also reports it to the proposer (LEARNER_STUCK)."""
    out.drain()
    learner.handle_timer(0.1)  # the round armed before 1 was delivered: progress
    out.drain()
    for _ in range(STUCK_ROUNDS - 1):
        learner.handle_timer(learner.next_deadline())  # type: ignore[arg-type]
        assert out.drain() == to_all(Repeat(iid, iid))
    learner.handle_timer(learner.next_deadline())  # type: ignore[arg-type]
    proposer = CLUSTER.proposers[0]
    assert out.drain() == [Send(proposer, LearnerStuck(iid)), *to_all(Repeat(iid, iid))]


def test_a_hole_no_repeat_fills_is_reported_to_the_proposers() -> None:
    learner, out = make(catch_up=False)
    vote(learner, 1, b"a")
    vote(learner, 2, b"b", aids=(0,))  # acceptances that never make a quorum
    vote(learner, 2, b"b", aids=(1,), ballot=20)
    vote(learner, 3, b"c")
    assert_reported_stuck_after_fruitless_rounds(learner, out, 2)
    assert learner.stuck_reports == 1


def test_a_stuck_last_instance_is_reported_too() -> None:
    # Instance 2 was chosen by acceptors 0 and 1, then acceptor 0 was lost for good:
    # only acceptor 1's acceptance is left, and nothing after 2 is ever proposed.
    learner, out = make(catch_up=False)
    vote(learner, 1, b"a")
    vote(learner, 2, b"b", aids=(1,))
    assert_reported_stuck_after_fruitless_rounds(learner, out, 2)


def test_an_idle_cluster_is_not_a_stuck_learner() -> None:
    learner, out = make(catch_up=True)
    vote(learner, 1, b"a")
    for _ in range(2 * STUCK_ROUNDS):  # catch-up probes that bring nothing
        due = learner.next_deadline()
        assert due is not None
        learner.handle_timer(due)
    assert not any(
        isinstance(e, Send) and isinstance(e.msg, LearnerStuck) for e in out.drain()
    )


def test_a_decided_batch_delivers_each_client_value_in_order() -> None:
    learner, out = make(catch_up=True)
    original = pack_client_value(OriginalClientValue(3, 1_500_000_000, 7, b"abc"))
    batch = pack_batch([wrap(1, 1, b"x"), b"raw", original, b"", wrap(1, 1, b"x")])
    vote(learner, 1, batch)
    # The empty item is a no-op and the second copy of (1, 1) a duplicate.
    assert delivered(out) == [
        Deliver(1, [b"x", b"raw", original], [(1, 1), None, (-4, 1_500_000_000_000_007)]),
    ]
    assert (learner.deliveries, learner.duplicates) == (3, 1)
    # Each client value is deduplicated by its own origin, across instances too.
    vote(learner, 2, pack_batch([wrap(1, 2, b"y"), original]))
    assert delivered(out) == [Deliver(2, [b"y"], [(1, 2)])]


def test_what_merely_looks_like_a_batch_is_delivered_whole() -> None:
    learner, out = make(catch_up=True)
    fake = MAGIC + b"\x00\x00\x00\x05" + b"short"
    vote(learner, 1, fake)
    assert delivered(out) == [Deliver(1, [fake], [None])]


# -- repair states


def test_repair_transition_table_is_closed() -> None:
    assert set(REPAIR_TRANSITIONS) == set(Repair)
    for targets in REPAIR_TRANSITIONS.values():
        assert targets <= set(Repair)


def next_round(learner: Learner) -> Repair:
    """The repair state after the learner's next deadline (type checkers narrow a
    property compared once for good)."""
    deadline = learner.next_deadline()
    assert deadline is not None
    learner.handle_timer(deadline)
    return learner.repair


def test_catch_up_probes_until_the_probes_bring_nothing() -> None:
    assert make(catch_up=False)[0].repair is Repair.IDLE
    learner, _ = make(catch_up=True)
    assert learner.repair is Repair.PROBING
    for _ in range(CATCH_UP_PROBES - 1):
        assert next_round(learner) is Repair.PROBING
    assert next_round(learner) is Repair.IDLE
    # No REPEAT timer left: the next deadline is the first hello's.
    assert learner.next_deadline() == PaxosOptions().hello_interval


def test_a_hole_is_repaired_then_reported_stuck_then_filled() -> None:
    learner, out = make(catch_up=False, hello_interval=60.0)  # every deadline a round's
    vote(learner, 1, b"a")
    vote(learner, 2, b"b", aids=(1,))
    vote(learner, 3, b"c")
    assert learner.repair is Repair.REPAIRING
    assert next_round(learner) is Repair.REPAIRING  # armed before 1 was delivered
    for _ in range(STUCK_ROUNDS - 1):
        assert next_round(learner) is Repair.REPAIRING
    assert next_round(learner) is Repair.STUCK
    assert next_round(learner) is Repair.STUCK
    assert learner.stuck_reports == 2
    out.drain()
    vote(learner, 2, b"b", aids=(0,))  # decided at last
    assert [d.iid for d in delivered(out)] == [2, 3]
    assert next_round(learner) is Repair.IDLE


def test_decided_values_inside_a_trimmed_range_are_delivered_not_given_up() -> None:
    learner, out = make(catch_up=True)
    vote(learner, 1, b"a")
    vote(learner, 3, b"c")  # decided, held behind the hole at 2
    vote(learner, 6, b"f")
    out.drain()
    learner.on_acceptor_state(AcceptorState(0, 5), 0.0)
    learner.on_acceptor_state(AcceptorState(1, 5), 0.0)
    assert [e for e in out.drain() if not isinstance(e, Send)] == [
        Trimmed(2, 3), Deliver(3, [b"c"], [None]), Trimmed(4, 6), Deliver(6, [b"f"], [None])
    ]
    assert (learner.next_iid, learner.trimmed) == (7, 3)


def test_one_acceptors_trim_point_far_ahead_costs_only_the_hole_it_could_not_fill() -> None:
    """An acceptor that lies (or a forgery) says it forgot every instance there is."""
    learner, out = make(catch_up=False, repeat_interval=0.1)
    vote(learner, 3, b"c")  # delivery starts at 3
    vote(learner, 5, b"e")
    vote(learner, 7, b"g")
    out.drain()
    learner.on_acceptor_state(AcceptorState(2, MAX_U32), 0.0)
    assert out.drain() == []
    learner.handle_timer(0.1)  # the round armed before 3 was delivered: progress
    out.drain()
    for _ in range(TRIM_PATIENCE):  # REPEAT rounds that bring nothing
        learner.handle_timer(learner.next_deadline())  # type: ignore[arg-type]
    effects = [e for e in out.drain() if not isinstance(e, Send)]
    # Only 4, the hole: 5 was decided, 6 may still come, and the rest is to come.
    assert effects == [Trimmed(4, 5), Deliver(5, [b"e"], [None])]
    vote(learner, 6, b"f")
    vote(learner, 8, b"h")
    assert delivered(out) == [Deliver(6, [b"f"], [None]), Deliver(7, [b"g"], [None]),
                              Deliver(8, [b"h"], [None])]
    assert (learner.next_iid, learner.trimmed) == (9, 1)


def test_a_restored_learner_goes_on_where_it_stopped_with_its_exactly_once_memory() -> None:
    learner, out = make(catch_up=False)
    out.drain()
    learner.restore(7, [(5, 1), None, (5, 2)], now=0.0)
    assert learner.next_iid == 7
    # It asks for what follows at once (the probe), and delivers from 7 on only.
    assert Send(ACCEPTORS[0], Repeat(7, 7 + PaxosOptions().repeat_max - 1)) in out.drain()
    vote(learner, 6, wrap(5, 3, b"old"))
    vote(learner, 7, wrap(5, 2, b"y"))  # a resend of a value delivered before the restart
    vote(learner, 8, wrap(5, 3, b"z"))
    assert delivered(out) == [Deliver(8, [b"z"], [(5, 3)])]
    assert learner.duplicates == 1


def test_with_four_acceptors_two_trim_points_are_not_a_quorum_to_believe_at_once() -> None:
    acceptors = {aid: (f"10.0.0.{aid + 1}", 3003) for aid in range(4)}
    out = Outbox()
    learner = Learner(Cluster(acceptors, {0: ("10.0.0.9", 3002)}),
                      PaxosOptions(learner_catch_up=True), out, now=0.0)
    learner.on_accepted(Accepted(0, 9, 10, 10, b"later"), 0.0)  # instance 9 exists
    out.drain()
    learner.on_acceptor_state(AcceptorState(0, 5), 0.0)
    learner.on_acceptor_state(AcceptorState(1, 5), 0.0)
    # The two others could not decide 1 to 5 (a quorum is 3), but two may be lying.
    assert [e for e in out.drain() if isinstance(e, Trimmed)] == []
    learner.on_acceptor_state(AcceptorState(2, 5), 0.0)
    assert [e for e in out.drain() if isinstance(e, Trimmed)] == [Trimmed(1, 6)]
