"""The proposer, driven directly with explicit ``now``; effects asserted exactly."""

from __future__ import annotations

import random

import pytest

from kpaxosd.paxos.cluster import Cluster
from kpaxosd.paxos.effects import Outbox, Send
from kpaxosd.paxos.options import PaxosOptions
from kpaxosd.paxos.proposer import REFILL_PARTS, REOPEN_MAX, TRANSITIONS, Phase, Proposer
from kpaxosd.paxos.values import NOOP
from wire import (
    MAX_VALUE_SIZE,
    Accept,
    Accepted,
    AcceptorState,
    LearnerStuck,
    Message,
    Preempted,
    Prepare,
    Promise,
    wrap,
)
from wire.batch import MAGIC, batch_size, pack_batch
from wire.original import OriginalClientValue, pack_client_value

ACCEPTORS = {0: ("10.0.0.1", 3003), 1: ("10.0.0.2", 3003), 2: ("10.0.0.3", 3003)}
CLUSTER = Cluster(ACCEPTORS, {0: ("10.0.0.9", 3002)})
X, Y, Z = wrap(1, 1, b"x"), wrap(1, 2, b"y"), wrap(2, 1, b"z")


def make(window: int = 1, **options: object) -> tuple[Proposer, Outbox]:
    opts = PaxosOptions(preexec_window=window, proposer_first_round=1, **options)  # type: ignore[arg-type]
    out = Outbox()
    return Proposer(0, CLUSTER, opts, random.Random(0), out, now=0.0), out


def to_all(msg: Message) -> list[Send]:
    return [Send(address, msg) for address in ACCEPTORS.values()]


def promise(
    p: Proposer, iid: int, ballot: int, *votes: tuple[int, bytes], now: float = 0.0
) -> None:
    """Promises from acceptors 0, 1, ... carrying ``votes`` (value_ballot, value)."""
    for aid, (value_ballot, value) in enumerate(votes):
        p.on_promise(Promise(aid, iid, ballot, value_ballot, value), now)


def accepted(
    p: Proposer, iid: int, ballot: int, value: bytes, aids: tuple[int, ...] = (0, 1)
) -> None:
    for aid in aids:
        p.on_accepted(Accepted(aid, iid, ballot, ballot, value), 0.0)


NONE = (0, b"")


def test_the_window_is_prepared_at_start() -> None:
    p, out = make(window=2)
    assert out.drain() == to_all(Prepare(1, 10)) + to_all(Prepare(2, 10))
    assert p.first_ballot == 10
    assert p.next_deadline() == 1.0


def test_first_round_is_random_by_default() -> None:
    out = Outbox()
    p = Proposer(3, CLUSTER, PaxosOptions(), random.Random(5), out, now=0.0)
    assert p.first_ballot % 10 == 3
    assert p.first_ballot == random.Random(5).randrange(1, 1 << 24) * 10 + 3


def test_a_quorum_of_promises_makes_the_instance_ready_for_a_value() -> None:
    p, out = make()
    out.drain()
    promise(p, 1, 10, NONE)
    assert p.phase(1) is Phase.PREPARING
    promise(p, 1, 10, NONE, NONE)  # acceptor 0 again: counted once
    assert p.phase(1) is Phase.READY
    assert out.drain() == []
    assert p.next_deadline() is None  # a ready instance waits for a value, not a clock
    p.submit(X, 0.5)
    assert out.drain() == to_all(Accept(1, 10, X))
    assert p.phase(1) is Phase.ACCEPTING
    assert p.next_deadline() == 1.5


def test_values_queue_until_an_instance_is_ready_in_fifo_order() -> None:
    p, out = make(window=2, max_values_per_instance=1)
    out.drain()
    p.submit(X, 0.0)
    p.submit(Y, 0.0)
    assert p.queued == 2
    promise(p, 2, 10, NONE, NONE)
    promise(p, 1, 10, NONE, NONE)
    assert out.drain() == to_all(Accept(2, 10, X)) + to_all(Accept(1, 10, Y))


def test_a_quorum_of_acceptances_closes_and_slides_the_window() -> None:
    p, out = make()
    promise(p, 1, 10, NONE, NONE)
    p.submit(X, 0.0)
    out.drain()
    accepted(p, 1, 10, X, aids=(2,))
    assert p.phase(1) is Phase.ACCEPTING
    accepted(p, 1, 10, X, aids=(0,))
    assert p.phase(1) is None
    assert out.drain() == to_all(Prepare(2, 10))
    assert p.open_instances == 1


def test_a_wide_window_is_refilled_in_parts() -> None:
    # Phase 1 in bursts: the acceptors read a burst of PREPAREs in one wake-up.
    window = 2 * REFILL_PARTS  # refilled two instances at a time
    p, out = make(window=window, max_values_per_instance=1)
    out.drain()
    for iid in (1, 2):
        promise(p, iid, 10, NONE, NONE)
    p.submit(X, 0.0)
    p.submit(Y, 0.0)
    out.drain()
    accepted(p, 1, 10, X)
    assert out.drain() == []  # one instance closed: not yet
    accepted(p, 2, 10, Y)
    assert out.drain() == (
        to_all(Prepare(window + 1, 10)) + to_all(Prepare(window + 2, 10))
    )
    assert p.open_instances == window


def test_promised_value_with_the_highest_ballot_is_adopted() -> None:
    p, out = make()
    out.drain()
    p.submit(X, 0.0)
    promise(p, 1, 10, (7, Y), (9, Z))
    # Z (value ballot 9) must be proposed; our X waits for the next instance.
    assert out.drain() == to_all(Accept(1, 10, Z))
    assert p.queued == 1
    accepted(p, 1, 10, Z)
    promise(p, 2, 10, NONE, NONE)
    assert out.drain() == to_all(Prepare(2, 10)) + to_all(Accept(2, 10, X))


def test_a_client_value_displaced_by_adoption_goes_back_to_the_front() -> None:
    p, out = make(max_values_per_instance=1)
    promise(p, 1, 10, NONE, NONE)
    p.submit(X, 0.0)
    p.submit(Y, 0.0)  # queued behind X
    out.drain()
    p.on_preempted(Preempted(2, 1, 21), 0.1)
    assert p.phase(1) is Phase.BACKOFF
    due = p.next_deadline()
    assert due is not None and 0.1 <= due <= 0.1 + 0.01
    p.handle_timer(due)
    assert out.drain() == to_all(Prepare(1, 30))
    # Another proposer's value got accepted at 21 somewhere: it must win instance 1.
    promise(p, 1, 30, NONE, (21, Z), now=due)
    assert out.drain() == to_all(Accept(1, 30, Z))
    accepted(p, 1, 30, Z)
    promise(p, 2, 10, NONE, NONE)
    # X comes before Y: it went back to the front of the queue.
    assert out.drain() == to_all(Prepare(2, 10)) + to_all(Accept(2, 10, X))
    assert p.queued == 1


def test_our_own_earlier_value_stays_ours_after_a_retry() -> None:
    p, out = make()
    promise(p, 1, 10, NONE, NONE)
    p.submit(X, 0.0)
    out.drain()
    p.handle_timer(1.0)  # no quorum of ACCEPTED in time
    assert out.drain() == to_all(Prepare(1, 20))
    assert p.retries == 1
    promise(p, 1, 20, (10, X), NONE, now=1.0)
    assert out.drain() == to_all(Accept(1, 20, X))
    accepted(p, 1, 20, X)
    assert p.queued == 0  # decided: not queued again


def test_a_retry_goes_above_every_ballot_seen() -> None:
    p, out = make()
    out.drain()
    p.on_preempted(Preempted(0, 1, 4_321), 0.0)
    assert p.preemptions == 1
    due = p.next_deadline()
    assert due is not None
    p.handle_timer(due)
    assert out.drain() == to_all(Prepare(1, 4_330))


def test_preempted_while_preparing_at_our_own_ballot() -> None:
    p, out = make()
    out.drain()
    p.on_promise(Promise(0, 1, 10, 0, b""), 0.0)
    # Acceptor 0 promised us: its PREEMPTED(10) answers a duplicated PREPARE.
    p.on_preempted(Preempted(0, 1, 10), 0.0)
    assert p.phase(1) is Phase.PREPARING
    # Acceptor 1 promised ballot 10 before, to someone else (our previous life).
    p.on_preempted(Preempted(1, 1, 10), 0.0)
    assert p.phase(1) is Phase.BACKOFF


def test_preemption_backoff_doubles_up_to_the_timeout() -> None:
    p, out = make(preempt_backoff=0.1, proposer_timeout=0.5)
    rng = random.Random(0)  # the same draws as the proposer's
    now = 0.0
    for n in range(6):
        p.on_preempted(Preempted(0, 1, 1000 * (n + 1)), now)
        window = min(0.1 * 2**n, 0.5)
        assert p.next_deadline() == now + rng.uniform(0.0, window)
        now = p.next_deadline()  # type: ignore[assignment]
        p.handle_timer(now)
        assert out.drain()[-1] == Send(ACCEPTORS[2], Prepare(1, 1000 * (n + 1) + 10))
    assert p.preemptions == 6
    assert p.retries == 0  # preemptions are not timeouts


def test_ready_and_stale_messages_are_ignored() -> None:
    p, out = make()
    promise(p, 1, 10, NONE, NONE)
    out.drain()
    p.on_promise(Promise(2, 1, 10, 5, Y), 0.0)  # too late to matter
    p.on_promise(Promise(0, 9, 10, 0, b""), 0.0)  # unknown instance
    p.on_preempted(Preempted(1, 1, 99), 0.0)  # a READY instance keeps its quorum
    p.on_accepted(Accepted(0, 9, 10, 10, X), 0.0)
    assert out.drain() == []
    assert p.phase(1) is Phase.READY
    assert p.dropped == 0


@pytest.mark.parametrize(
    "msg",
    [
        Promise(7, 1, 10, 0, b""),
        Preempted(7, 1, 99),
        Accepted(7, 1, 10, 10, X),
        Accepted(0, 1, 10, 0, X),
    ],
)
def test_messages_from_unknown_acceptors_are_dropped(msg: Promise | Preempted | Accepted) -> None:
    p, out = make()
    out.drain()
    if isinstance(msg, Promise):
        p.on_promise(msg, 0.0)
    elif isinstance(msg, Preempted):
        p.on_preempted(msg, 0.0)
    else:
        p.on_accepted(msg, 0.0)
    assert (out.drain(), p.dropped, p.phase(1)) == ([], 1, Phase.PREPARING)


def test_a_quorum_below_our_accept_does_not_close() -> None:
    # Acceptors 0 and 1 decided Z at 10 long ago; we sent ACCEPT(Z) at 20 since. If
    # we let go now, acceptor 0 may hold (20, Z) and 1 (10, Z): no quorum of latest
    # acceptances agrees, and a learner catching up could never decide.
    p, out = make()
    p.on_preempted(Preempted(0, 1, 10), 0.0)
    p.handle_timer(1.0)
    promise(p, 1, 20, (10, Z), NONE, now=1.0)
    out.drain()
    accepted(p, 1, 10, Z, aids=(1, 2))
    assert p.phase(1) is Phase.ACCEPTING
    accepted(p, 1, 20, Z, aids=(0, 1))
    assert p.phase(1) is None


def test_a_ready_instance_decided_elsewhere_closes_or_finishes() -> None:
    p, out = make(window=2)
    promise(p, 1, 10, NONE, NONE)
    promise(p, 2, 10, NONE, NONE)
    out.drain()
    accepted(p, 1, 31, Y)  # another proposer decided instance 1
    assert p.phase(1) is None
    # Instance 2: decided at 31 but acceptor 2 holds a later ballot: finish it.
    p.on_accepted(Accepted(2, 2, 41, 41, Z), 0.0)
    accepted(p, 2, 31, Z)
    assert p.phase(2) is Phase.ACCEPTING
    assert out.drain() == to_all(Prepare(3, 10)) + to_all(Accept(2, 10, Z))


def test_resent_client_values_are_coalesced() -> None:
    p, _ = make(max_values_per_instance=1)
    p.submit(X, 0.0)
    p.submit(X, 0.1)  # the client resent it
    p.submit(b"raw", 0.2)
    p.submit(b"raw", 0.3)  # raw values are distinct proposals
    assert (p.queued, p.coalesced) == (3, 1)
    promise(p, 1, 10, NONE, NONE)
    accepted(p, 1, 10, X)
    p.submit(X, 1.0)  # decided here: a resend after that is dropped
    assert (p.queued, p.already_decided) == (2, 1)


def test_oversized_values_and_queue_overflow_are_dropped() -> None:
    p, _ = make(max_queued_values=2)
    p.submit(bytes(MAX_VALUE_SIZE + 1), 0.0)
    p.submit(b"a", 0.0)
    p.submit(b"b", 0.0)
    p.submit(b"c", 0.0)
    assert (p.queued, p.dropped) == (2, 2)


def test_acceptor_trim_point_moves_the_proposer_past_it() -> None:
    p, out = make(window=2)
    promise(p, 1, 10, NONE, NONE)
    p.submit(X, 0.0)
    out.drain()
    p.on_acceptor_state(AcceptorState(1, 5), 0.0)
    # Instances 1 and 2 are long decided; X goes round again in instances 6 and 7.
    assert out.drain() == to_all(Prepare(6, 10)) + to_all(Prepare(7, 10))
    assert p.queued == 1
    p.on_acceptor_state(AcceptorState(1, 3), 0.0)  # old news
    p.on_acceptor_state(AcceptorState(1, 0xFFFFFFFF), 0.0)  # absurd
    assert out.drain() == []
    assert p.dropped == 1


def test_transition_table_is_closed() -> None:
    assert set(TRANSITIONS) == set(Phase)
    for targets in TRANSITIONS.values():
        assert targets <= set(Phase)


def test_an_original_value_is_identified_by_client_and_timestamp() -> None:
    p, out = make()
    out.drain()
    original = pack_client_value(OriginalClientValue(3, 1_500_000_000, 7, b"abc"))
    p.submit(original, 0.0)
    p.submit(original, 0.5)
    assert (p.queued, p.coalesced) == (1, 1)
    promise(p, 1, 10, NONE, NONE)
    accepted(p, 1, 10, original)
    p.submit(original, 1.0)
    assert (p.queued, p.already_decided) == (0, 1)


def test_the_empty_value_is_not_a_proposal() -> None:
    p, _ = make()
    p.submit(b"", 0.0)
    assert (p.queued, p.dropped) == (0, 1)


def test_a_value_decided_elsewhere_while_queued_is_not_proposed() -> None:
    p, out = make(window=2)
    p.submit(Y, 0.0)
    # Another proposer got Y decided in instance 1 (our promise brought it back).
    promise(p, 1, 10, (7, Y), NONE)
    accepted(p, 1, 10, Y)
    out.drain()
    promise(p, 2, 10, NONE, NONE)
    # Instance 2 waits for a value; Y, still queued, is not one any more.
    assert out.drain() == []
    assert (p.queued, p.already_decided, p.phase(2)) == (0, 1, Phase.READY)


def test_a_hole_below_a_decided_instance_is_filled_with_the_noop() -> None:
    p, out = make(window=2)
    promise(p, 2, 10, NONE, NONE)
    p.submit(X, 0.0)
    accepted(p, 2, 10, X)
    out.drain()
    # Instance 1 comes ready after 2 was decided: learners wait for it.
    promise(p, 1, 10, NONE, NONE)
    assert out.drain() == to_all(Accept(1, 10, NOOP))
    assert p.noops == 1
    accepted(p, 1, 10, NOOP)
    assert p.queued == 0  # the no-op goes back to no queue


def test_a_queued_value_fills_a_hole_before_the_noop() -> None:
    p, out = make(window=2)
    promise(p, 2, 10, NONE, NONE)
    p.submit(X, 0.0)
    accepted(p, 2, 10, X)
    p.submit(Y, 0.0)
    out.drain()
    promise(p, 1, 10, NONE, NONE)
    assert out.drain() == to_all(Accept(1, 10, Y))
    assert p.noops == 0


def test_what_a_local_learner_saw_decided_is_not_proposed_again() -> None:
    p, _ = make()
    p.learned(5, Z)
    p.learned(6, b"raw")
    p.submit(Z, 0.0)
    assert (p.queued, p.already_decided) == (0, 1)


def test_the_decided_memory_is_bounded() -> None:
    p, _ = make(proposer_decided_memory=4)
    for seq in range(1, 6):
        p.learned(seq, wrap(9, seq, b""))
    p.submit(wrap(9, 1, b""), 0.0)  # forgotten: proposed again
    p.submit(wrap(9, 4, b""), 0.0)  # the last two are remembered
    p.submit(wrap(9, 5, b""), 0.0)
    assert (p.queued, p.already_decided) == (1, 2)


# -- a learner that cannot learn an instance


def test_the_leader_runs_a_stuck_instance_again() -> None:
    p, out = make(window=1)
    promise(p, 1, 10, NONE, NONE)
    p.submit(X, 0.0)
    accepted(p, 1, 10, X)
    out.drain()
    p.on_learner_stuck(LearnerStuck(1), 1.0)
    # One round above the first ballot, which the acceptors promised already.
    assert out.drain() == to_all(Prepare(1, 20))
    assert p.reopened == 1
    promise(p, 1, 20, (10, X), NONE, now=1.0)
    assert out.drain() == to_all(Accept(1, 20, X))
    accepted(p, 1, 20, X)
    assert p.phase(1) is None


def test_a_stuck_instance_with_nothing_accepted_gets_the_noop() -> None:
    p, out = make(window=1)
    p.on_acceptor_state(AcceptorState(0, 4), 0.0)  # 1..4 are long decided
    out.drain()
    p.on_learner_stuck(LearnerStuck(3), 1.0)
    promise(p, 3, 20, NONE, NONE, now=1.0)
    assert out.drain() == to_all(Prepare(3, 20)) + to_all(Accept(3, 20, NOOP))


@pytest.mark.parametrize("iid", [0, 2, 3])
def test_stuck_reports_that_need_no_rerun_are_ignored(iid: int) -> None:
    p, out = make(window=1)
    promise(p, 1, 10, NONE, NONE)
    p.submit(X, 0.0)
    accepted(p, 1, 10, X)  # 1 closed; 2 open; 3 not opened yet; 0 is no instance
    out.drain()
    p.on_learner_stuck(LearnerStuck(iid), 1.0)
    assert (out.drain(), p.reopened) == ([], 0)


def test_stuck_reports_are_limited() -> None:
    p, out = make(window=1)
    p.on_acceptor_state(AcceptorState(0, 100), 0.0)
    out.drain()
    p.on_learner_stuck(LearnerStuck(5), 1.0)
    p.on_learner_stuck(LearnerStuck(5), 1.5)  # open already
    for iid in range(10, 30):
        p.on_learner_stuck(LearnerStuck(iid), 1.5)
    assert p.reopened == REOPEN_MAX
    assert p.open_instances == 1 + REOPEN_MAX
    promise(p, 5, 20, NONE, NONE, now=1.5)
    accepted(p, 5, 20, NOOP)
    p.on_learner_stuck(LearnerStuck(5), 1.9)  # once per proposer_timeout
    assert p.reopened == REOPEN_MAX
    p.on_learner_stuck(LearnerStuck(5), 2.5)
    assert p.reopened == REOPEN_MAX + 1


# -- batching

def test_values_queued_together_share_one_instance_in_a_batch() -> None:
    p, out = make()
    out.drain()
    p.submit(X, 0.0)
    p.submit(Y, 0.0)
    promise(p, 1, 10, NONE, NONE)
    assert out.drain() == to_all(Accept(1, 10, pack_batch([X, Y])))
    accepted(p, 1, 10, pack_batch([X, Y]))
    # Both are decided: resends of either are not proposed again.
    p.submit(pack_batch([Y, X]), 1.0)
    assert (p.queued, p.already_decided) == (0, 2)


def test_a_client_batch_is_taken_apart_and_each_value_deduplicated() -> None:
    p, out = make()
    out.drain()
    p.submit(X, 0.0)
    p.submit(pack_batch([X, Y, X, b"", Z]), 0.0)  # X queued already, and twice here
    assert (p.queued, p.coalesced, p.dropped) == (3, 2, 1)
    promise(p, 1, 10, NONE, NONE)
    assert out.drain() == to_all(Accept(1, 10, pack_batch([X, Y, Z])))


def test_a_single_value_goes_alone_in_its_own_format() -> None:
    p, out = make(window=2)
    promise(p, 1, 10, NONE, NONE)
    out.drain()
    p.submit(pack_batch([X]), 0.0)
    assert out.drain() == to_all(Accept(1, 10, X))
    # A value that would be taken for a batch travels in one, even alone.
    looks_like_a_batch = MAGIC + b"\x00\x00\x00\x01\x00\x00\x00\x01z"
    promise(p, 2, 10, NONE, NONE)
    p.submit(pack_batch([looks_like_a_batch]), 0.0)
    assert out.drain() == to_all(Accept(2, 10, pack_batch([looks_like_a_batch])))


def test_an_instance_takes_at_most_the_configured_values_and_bytes() -> None:
    values = [wrap(3, seq, bytes(100)) for seq in range(1, 6)]
    p, out = make(window=3, max_values_per_instance=2)
    out.drain()
    p.submit(pack_batch(values), 0.0)
    for iid in (1, 2, 3):
        promise(p, iid, 10, NONE, NONE)
    assert out.drain() == (
        to_all(Accept(1, 10, pack_batch(values[:2])))
        + to_all(Accept(2, 10, pack_batch(values[2:4])))
        + to_all(Accept(3, 10, values[4]))
    )
    room = batch_size([len(values[0])] * 3)
    p, out = make(window=1, max_batch_bytes=room - 1)
    out.drain()
    p.submit(pack_batch(values), 0.0)
    promise(p, 1, 10, NONE, NONE)
    assert out.drain() == to_all(Accept(1, 10, pack_batch(values[:2])))
    assert p.queued == 3


def test_batches_fill_to_the_fill_size_and_a_bigger_value_still_goes_alone() -> None:
    values = [wrap(3, seq, bytes(100)) for seq in range(1, 4)]
    big = wrap(3, 4, bytes(500))
    room = batch_size([len(values[0])] * 2)
    p, out = make(window=3, batch_fill_bytes=room)
    out.drain()
    p.submit(pack_batch([*values, big]), 0.0)
    for iid in (1, 2, 3):
        promise(p, iid, 10, NONE, NONE)
    assert out.drain() == (
        to_all(Accept(1, 10, pack_batch(values[:2])))
        + to_all(Accept(2, 10, values[2]))
        + to_all(Accept(3, 10, big))
    )


def test_a_batch_displaced_by_adoption_goes_back_to_the_front_in_order() -> None:
    p, out = make(window=2)
    out.drain()
    p.submit(X, 0.0)
    p.submit(Y, 0.0)
    promise(p, 1, 10, NONE, (5, Z))  # obliged to Z: X and Y wait
    promise(p, 2, 10, NONE, NONE)
    assert out.drain() == to_all(Accept(1, 10, Z)) + to_all(Accept(2, 10, pack_batch([X, Y])))
    p.on_preempted(Preempted(0, 2, 21), 0.0)
    p.handle_timer(p.next_deadline() or 0.0)
    out.drain()
    promise(p, 2, 30, NONE, (21, b"other"))
    assert out.drain() == to_all(Accept(2, 30, b"other"))
    accepted(p, 2, 30, b"other")
    assert p.queued == 2  # X and Y, to be proposed again together


def test_between_hold_and_release_values_only_queue() -> None:
    p, out = make(window=2)
    promise(p, 1, 10, NONE, NONE)
    promise(p, 2, 10, NONE, NONE)
    out.drain()
    p.hold()
    p.submit(X, 0.0)
    p.submit(Y, 0.0)
    assert out.drain() == [] and p.queued == 2
    p.release(0.0)
    assert out.drain() == to_all(Accept(1, 10, pack_batch([X, Y])))
    p.submit(Z, 0.0)  # not held: at once, alone
    assert out.drain() == to_all(Accept(2, 10, Z))


def test_batching_off_proposes_one_value_per_instance() -> None:
    p, out = make(window=2, max_values_per_instance=1)
    out.drain()
    p.submit(pack_batch([X, Y]), 0.0)  # a client's batch still comes apart
    promise(p, 1, 10, NONE, NONE)
    promise(p, 2, 10, NONE, NONE)
    assert out.drain() == to_all(Accept(1, 10, X)) + to_all(Accept(2, 10, Y))


def test_with_max_accepting_instances_accepting_values_wait_and_go_together() -> None:
    p, out = make(window=4, max_accepting=2)
    out.drain()
    for iid in range(1, 5):
        promise(p, iid, 10, NONE, NONE)
    values = [wrap(1, seq, b"v%d" % seq) for seq in range(1, 6)]
    for value in values:
        p.submit(value, 0.0)
    # Two instances take one value each; the other three wait for one to close.
    assert out.drain() == to_all(Accept(1, 10, values[0])) + to_all(Accept(2, 10, values[1]))
    assert p.queued == 3
    accepted(p, 1, 10, values[0])
    batch = pack_batch(values[2:])
    assert out.drain() == to_all(Prepare(5, 10)) + to_all(Accept(3, 10, batch))
    assert p.queued == 0


def test_a_retried_instance_leaves_room_for_the_waiting_values() -> None:
    p, out = make(window=3, max_accepting=1)
    out.drain()
    for iid in range(1, 4):
        promise(p, iid, 10, NONE, NONE)
    p.submit(X, 0.0)
    p.submit(Y, 0.0)
    assert out.drain() == to_all(Accept(1, 10, X))
    p.handle_timer(1.0)  # instance 1 timed out: prepared again, accepting no more
    sent = out.drain()
    assert to_all(Accept(2, 10, Y)) == [
        s for s in sent if isinstance(s, Send) and isinstance(s.msg, Accept)]
