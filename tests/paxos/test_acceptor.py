"""The acceptor, driven message by message; every effect is asserted exactly."""

from __future__ import annotations

import pytest

from kpaxosd.paxos.acceptor import Acceptor, Record
from kpaxosd.paxos.cluster import Cluster
from kpaxosd.paxos.effects import Outbox, Persist, PersistTrim, Send
from kpaxosd.paxos.options import PaxosOptions
from wire import (
    Accept,
    Accepted,
    AcceptorOk,
    AcceptorState,
    Preempted,
    Prepare,
    Promise,
    Repeat,
    Trim,
)

ACCEPTORS = {0: ("10.0.0.1", 3003), 1: ("10.0.0.2", 3003), 2: ("10.0.0.3", 3003)}
PROPOSER = ("10.0.0.9", 3002)
LEARNER = ("10.0.0.8", 4000)
LEARNER2 = ("10.0.0.7", 4000)
CLUSTER = Cluster(ACCEPTORS, {0: PROPOSER})


def make(**options: int) -> tuple[Acceptor, Outbox]:
    out = Outbox()
    return Acceptor(0, CLUSTER, PaxosOptions(**options), out), out  # type: ignore[arg-type]


def test_first_prepare_is_persisted_then_promised() -> None:
    acc, out = make()
    acc.on_prepare(Prepare(1, 10), PROPOSER)
    assert out.drain() == [
        Persist(1, 10, 0, b""),
        Send(PROPOSER, Promise(0, 1, 10, 0, b"")),
    ]


def test_prepare_must_be_strictly_higher() -> None:
    # An equal ballot was promised before, perhaps to a previous life of the proposer.
    acc, out = make()
    acc.on_prepare(Prepare(1, 20), PROPOSER)
    out.drain()
    acc.on_prepare(Prepare(1, 20), PROPOSER)
    acc.on_prepare(Prepare(1, 11), PROPOSER)
    assert out.drain() == [
        Send(PROPOSER, Preempted(0, 1, 20)),
        Send(PROPOSER, Preempted(0, 1, 20)),
    ]


def test_accept_records_and_answers_proposer_and_learners() -> None:
    acc, out = make()
    acc.on_learner_hi(LEARNER)
    acc.on_prepare(Prepare(1, 10), PROPOSER)
    out.drain()
    acc.on_accept(Accept(1, 10, b"v"), PROPOSER)
    accepted = Accepted(0, 1, 10, 10, b"v")
    # Learners first: they deliver; the proposer only closes the instance.
    assert out.drain() == [
        Persist(1, 10, 10, b"v"),
        Send(LEARNER, accepted),
        Send(PROPOSER, accepted),
    ]
    assert acc.record(1) == Record(10, 10, b"v")


def test_accept_without_prepare_and_at_a_higher_ballot_is_fine() -> None:
    acc, out = make()
    acc.on_prepare(Prepare(1, 10), PROPOSER)
    acc.on_accept(Accept(1, 21, b"v"), PROPOSER)
    acc.on_accept(Accept(2, 10, b"w"), PROPOSER)
    effects = out.drain()
    assert effects[2:] == [
        Persist(1, 21, 21, b"v"),
        Send(PROPOSER, Accepted(0, 1, 21, 21, b"v")),
        Persist(2, 10, 10, b"w"),
        Send(PROPOSER, Accepted(0, 2, 10, 10, b"w")),
    ]


def test_accept_below_the_promise_is_preempted() -> None:
    acc, out = make()
    acc.on_prepare(Prepare(1, 21), PROPOSER)
    out.drain()
    acc.on_accept(Accept(1, 10, b"v"), PROPOSER)
    assert out.drain() == [Send(PROPOSER, Preempted(0, 1, 21))]
    assert acc.record(1) == Record(21, 0, b"")


def test_repeated_accept_is_answered_again_without_persisting() -> None:
    acc, out = make()
    acc.on_accept(Accept(1, 10, b"v"), PROPOSER)
    out.drain()
    acc.on_accept(Accept(1, 10, b"v"), PROPOSER)
    assert out.drain() == [Send(PROPOSER, Accepted(0, 1, 10, 10, b"v"))]


def test_promise_carries_the_accepted_value() -> None:
    acc, out = make()
    acc.on_accept(Accept(1, 10, b"v"), PROPOSER)
    out.drain()
    acc.on_prepare(Prepare(1, 21), PROPOSER)
    assert out.drain() == [
        Persist(1, 21, 10, b"v"),
        Send(PROPOSER, Promise(0, 1, 21, 10, b"v")),
    ]


def test_a_learner_that_proposes_hears_once() -> None:
    # A replica: proposer and learner share one address; one ACCEPTED serves both.
    acc, out = make()
    acc.on_learner_hi(PROPOSER)
    acc.on_learner_hi(LEARNER)
    out.drain()
    acc.on_accept(Accept(1, 10, b"v"), PROPOSER)
    sends = [e for e in out.drain() if isinstance(e, Send)]
    assert [s.dest for s in sends] == [LEARNER, PROPOSER]


def test_learner_registration() -> None:
    acc, out = make(max_learners=2)
    acc.on_learner_hi(LEARNER)
    assert out.drain() == [Send(LEARNER, AcceptorOk())]
    acc.on_learner_hi(LEARNER2)
    acc.on_learner_hi(LEARNER)  # a keepalive: LEARNER is now the most recent
    acc.on_learner_hi(PROPOSER)  # over the limit: the longest silent one goes
    assert acc.learners() == [LEARNER, PROPOSER]
    acc.on_learner_del(LEARNER)
    assert acc.learners() == [PROPOSER]
    out.drain()
    acc.on_accept(Accept(1, 10, b"v"), ("10.0.0.5", 1))
    assert [e.dest for e in out.drain() if isinstance(e, Send)] == [PROPOSER, ("10.0.0.5", 1)]


def test_repeat_answers_what_is_held_with_the_accepted_ballot() -> None:
    acc, out = make()
    acc.on_accept(Accept(2, 10, b"b"), PROPOSER)
    acc.on_accept(Accept(5, 10, b"e"), PROPOSER)
    acc.on_prepare(Prepare(5, 31), PROPOSER)  # promised above what it accepted
    acc.on_prepare(Prepare(6, 10), PROPOSER)  # promised only: nothing to repeat
    acc.on_accept(Accept(9, 10, b"i"), PROPOSER)
    out.drain()
    acc.on_repeat(Repeat(1, 6), LEARNER)
    assert out.drain() == [
        Send(LEARNER, Accepted(0, 2, 10, 10, b"b")),
        # The ballot field is the accepted ballot, not the later promise.
        Send(LEARNER, Accepted(0, 5, 10, 10, b"e")),
    ]
    acc.on_repeat(Repeat(7, 3), LEARNER)
    assert out.drain() == []


def test_repeat_is_capped_and_cheap_for_any_range() -> None:
    acc, out = make(repeat_reply_max=3)
    for iid in range(1, 11):
        acc.on_accept(Accept(iid, 10, b"x"), PROPOSER)
    out.drain()
    acc.on_repeat(Repeat(0, 0xFFFFFFFF), LEARNER)
    assert [e.msg.iid for e in out.drain() if isinstance(e, Send)] == [1, 2, 3]  # type: ignore[union-attr]
    acc.on_repeat(Repeat(9, 0xFFFFFFFF), LEARNER)
    assert [e.msg.iid for e in out.drain() if isinstance(e, Send)] == [9, 10]  # type: ignore[union-attr]


def test_trim_forgets_and_tells_askers() -> None:
    acc, out = make()
    for iid in (1, 2, 3):
        acc.on_accept(Accept(iid, 10, b"x"), PROPOSER)
    out.drain()
    acc.on_trim(Trim(2), LEARNER)
    assert acc.trim_iid == 2
    assert acc.record(1) is None and acc.record(2) is None
    assert acc.record(3) == Record(10, 10, b"x")
    acc.on_trim(Trim(1), LEARNER)  # going back is ignored
    assert acc.trim_iid == 2
    acc.on_prepare(Prepare(2, 99), PROPOSER)
    acc.on_accept(Accept(1, 99, b"y"), PROPOSER)
    acc.on_repeat(Repeat(1, 5), LEARNER)
    assert out.drain() == [
        PersistTrim(2),  # durable before anyone is told
        Send(PROPOSER, AcceptorState(0, 2)),
        Send(PROPOSER, AcceptorState(0, 2)),
        Send(LEARNER, AcceptorState(0, 2)),
        Send(LEARNER, Accepted(0, 3, 10, 10, b"x")),
    ]
    assert acc.instances == 1


@pytest.mark.parametrize(
    "msg",
    [Prepare(1, 0), Accept(1, 0, b"v"), Prepare(1_000_001, 10), Accept(2_000_000, 10, b"v")],
)
def test_junk_is_dropped_and_counted(msg: Prepare | Accept) -> None:
    acc, out = make()
    if isinstance(msg, Prepare):
        acc.on_prepare(msg, PROPOSER)
    else:
        acc.on_accept(msg, PROPOSER)
    assert out.drain() == []
    assert acc.dropped == 1


def test_trim_too_far_ahead_is_dropped() -> None:
    acc, _ = make()
    acc.on_trim(Trim(0xFFFFFFFF), LEARNER)
    assert (acc.trim_iid, acc.dropped) == (0, 1)


def test_restore_brings_back_persisted_records() -> None:
    acc, out = make()
    acc.restore([Persist(1, 21, 10, b"v"), Persist(2, 10, 0, b""), Persist(3, 10, 10, b"x")], 2)
    assert acc.record(1) is None  # at or below the trim point
    acc.on_prepare(Prepare(3, 21), PROPOSER)
    assert out.drain() == [Persist(3, 21, 10, b"x"), Send(PROPOSER, Promise(0, 3, 21, 10, b"x"))]


def test_an_acceptor_must_be_in_the_cluster() -> None:
    with pytest.raises(ValueError, match="not in the cluster"):
        Acceptor(7, CLUSTER, PaxosOptions(), Outbox())


def test_revert_goes_back_to_what_the_store_holds() -> None:
    acc, out = make()
    acc.on_accept(Accept(1, 10, b"kept"), PROPOSER)
    acc.on_accept(Accept(2, 10, b"kept"), PROPOSER)
    out.drain()  # the store committed these
    acc.on_prepare(Prepare(1, 20), PROPOSER)
    acc.on_accept(Accept(3, 10, b"lost"), PROPOSER)
    acc.on_trim(Trim(2), LEARNER)
    out.drain()  # ... and failed to commit these
    acc.revert([1, 3], [Persist(1, 10, 10, b"kept"), Persist(2, 10, 10, b"kept")], 0)
    assert (acc.trim_iid, acc.held()) == (0, [1, 2])
    assert acc.record(1) == Record(10, 10, b"kept")
    assert acc.record(3) is None
    # Nothing the store lacks is answered afterwards: a REPEAT gets the durable state.
    acc.on_repeat(Repeat(1, 3), LEARNER)
    assert [e.msg for e in out.drain() if isinstance(e, Send)] == [
        Accepted(0, 1, 10, 10, b"kept"), Accepted(0, 2, 10, 10, b"kept"),
    ]
    # and the failed promise can be asked for again: it is not taken as given.
    acc.on_prepare(Prepare(1, 20), PROPOSER)
    assert out.drain() == [Persist(1, 20, 10, b"kept"),
                           Send(PROPOSER, Promise(0, 1, 20, 10, b"kept"))]
