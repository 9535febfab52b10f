from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from devices.ports import NodeStopping, ProposalTimeout, ValueTooLarge
from kpaxosd.paxos.cluster import Address
from kpaxosd.proposals import ClientProposals
from wire import (
    ClientEnvelope,
    ClientValue,
    Message,
    decode_untrusted,
    encode,
    unwrap_untrusted,
    wrap,
)

PROPOSER = ("127.0.0.2", 3002)


class Batches(list[list[tuple[int, int]]]):
    """The origins of each batch the proposals sent together (send_many), in order."""

    def __init__(self, sent: Sent) -> None:
        super().__init__()
        self._sent = sent

    def send_many(self, messages: list[tuple[Message, Address]]) -> None:
        self.append([])
        for msg, dest in messages:
            assert dest == PROPOSER
            self._sent(msg, dest)
            self[-1].append(self._sent.origins()[-1])


@asynccontextmanager
async def running(proposals: ClientProposals) -> AsyncIterator[None]:
    """The proposals' service task runs inside (and is cancelled on the way out)."""
    async with trio.open_nursery() as service:
        service.start_soon(proposals.run)
        await trio.testing.wait_all_tasks_blocked()  # as in a daemon: it waits for work
        try:
            yield
        finally:
            service.cancel_scope.cancel()


class Sent:
    def __init__(self) -> None:
        self.datagrams: list[tuple[bytes, Address]] = []

    def __call__(self, msg: Message, dest: Address) -> None:
        # What the socket would carry: the message must encode.
        self.datagrams.append((encode(msg), dest))

    def origins(self) -> list[tuple[int, int]]:
        found = []
        for data, dest in self.datagrams:
            assert dest == PROPOSER
            msg = decode_untrusted(data)
            assert isinstance(msg, ClientValue)
            envelope = unwrap_untrusted(msg.value)
            assert envelope is not None
            found.append((envelope.client_id, envelope.seq))
        return found


async def test_a_value_is_sent_wrapped_and_returns_its_iid_when_decided(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sent = Sent()
    proposals = ClientProposals(sent, PROPOSER, client_id=7)
    result: list[int] = []

    async def propose() -> None:
        result.append(await proposals.propose(b"hello"))

    async with running(proposals), trio.open_nursery() as nursery:
        nursery.start_soon(propose)
        await trio.testing.wait_all_tasks_blocked()
        assert sent.origins() == [(7, 1)]
        msg = decode_untrusted(sent.datagrams[0][0])
        assert isinstance(msg, ClientValue)
        assert unwrap_untrusted(msg.value) == ClientEnvelope(7, 1, b"hello")
        proposals.decided(42, (7, 1))
    assert result == [42]
    assert proposals.outstanding == 0


async def test_an_undecided_value_is_resent_every_second_until_the_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sent = Sent()
    proposals = ClientProposals(sent, PROPOSER, client_id=7, timeout=3.5, resend_interval=1.0)
    start = trio.current_time()
    async with running(proposals):
        with pytest.raises(ProposalTimeout):
            await proposals.propose(b"lost")
    assert trio.current_time() - start == pytest.approx(3.5)
    assert sent.origins() == [(7, 1)] * 4
    assert proposals.outstanding == 0


async def test_other_origins_do_not_wake_a_writer(autojump_clock: trio.testing.MockClock) -> None:
    sent = Sent()
    proposals = ClientProposals(sent, PROPOSER, client_id=7, timeout=0)
    result: list[int] = []

    async def propose() -> None:
        result.append(await proposals.propose(b"mine"))

    async with running(proposals), trio.open_nursery() as nursery:
        nursery.start_soon(propose)
        await trio.testing.wait_all_tasks_blocked()
        proposals.decided(1, None)
        proposals.decided(2, (8, 1))
        proposals.decided(3, (7, 2))
        await trio.sleep(100)
        assert result == []
        proposals.decided(4, (7, 1))
    assert result == [4]


async def test_stop_fails_pending_and_later_proposals() -> None:
    proposals = ClientProposals(Sent(), PROPOSER, client_id=7)
    failures: list[Exception] = []

    async def propose() -> None:
        try:
            await proposals.propose(b"pending")
        except NodeStopping as exc:
            failures.append(exc)

    async with running(proposals), trio.open_nursery() as nursery:
        nursery.start_soon(propose)
        await trio.testing.wait_all_tasks_blocked()
        proposals.stop()
    assert len(failures) == 1
    with pytest.raises(NodeStopping):
        await proposals.propose(b"later")


async def test_a_value_too_large_for_a_datagram_is_refused() -> None:
    proposals = ClientProposals(Sent(), PROPOSER, client_id=7)
    with pytest.raises(ValueTooLarge):
        await proposals.propose(b"x" * (proposals.max_value_size + 1))


async def test_a_value_waits_while_the_one_a_window_before_it_is_undecided(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Learners take a seq a whole window below the highest they delivered for a resend
    # (OriginFilter): sending it then would lose it. So the fourth value of a window of
    # three waits, unsent, until the first is decided.
    sent = Sent()
    proposals = ClientProposals(sent, PROPOSER, client_id=7, timeout=0, seq_window=3)
    done: list[int] = []

    async def propose(value: bytes) -> None:
        done.append(await proposals.propose(value))

    async with running(proposals), trio.open_nursery() as nursery:
        for value in (b"one", b"two", b"three", b"four"):
            nursery.start_soon(propose, value)
            await trio.testing.wait_all_tasks_blocked()
        assert set(sent.origins()) == {(7, 1), (7, 2), (7, 3)}
        proposals.decided(10, (7, 2))  # not the oldest: still no room
        await trio.testing.wait_all_tasks_blocked()
        assert (7, 4) not in sent.origins()
        proposals.decided(11, (7, 1))
        await trio.testing.wait_all_tasks_blocked()
        assert sent.origins()[-1] == (7, 4)
        proposals.decided(12, (7, 3))
        proposals.decided(13, (7, 4))
    assert sorted(done) == [10, 11, 12, 13]


async def test_a_value_waiting_for_room_times_out_or_stops(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sent = Sent()
    proposals = ClientProposals(sent, PROPOSER, client_id=7, timeout=5, seq_window=1)
    outcomes: list[type[Exception]] = []

    async def propose(value: bytes) -> None:
        try:
            await proposals.propose(value)
        except (ProposalTimeout, NodeStopping) as exc:
            outcomes.append(type(exc))

    async with running(proposals), trio.open_nursery() as nursery:
        nursery.start_soon(propose, b"first")
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(propose, b"second")  # no room while "first" waits
        await trio.sleep(1)
        nursery.start_soon(propose, b"third")
        await trio.sleep(4.5)
        # "first" and "second" timed out at 5 s; "third" got room and was sent.
        assert outcomes == [ProposalTimeout, ProposalTimeout]
        assert sent.origins()[-1] == (7, 2)
        proposals.stop()
    assert outcomes == [ProposalTimeout, ProposalTimeout, NodeStopping]


async def test_the_first_sends_of_one_tick_go_out_together(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Writers' tasks started together: their values reach the proposer in one batch,
    # which it can pack into one instance, instead of a whole round each.
    sent = Sent()
    batches = Batches(sent)
    proposals = ClientProposals(sent, PROPOSER, client_id=7, timeout=2.5,
                                resend_interval=1.0, send_many=batches.send_many)
    async with running(proposals), trio.open_nursery() as nursery:
        for value in (b"a", b"b", b"c"):
            nursery.start_soon(proposals.propose, value)
        await trio.testing.wait_all_tasks_blocked()
        assert batches == [[(7, 1), (7, 2), (7, 3)]]
        proposals.decided(1, (7, 1))
        proposals.decided(2, (7, 2))
        proposals.decided(3, (7, 3))
    # Resends leave through the batch sender too; these go alone: nothing else is due.
    async with running(proposals):
        with pytest.raises(ProposalTimeout):
            await proposals.propose(b"lost")
    assert batches[1:] == [[(7, 4)]] * 3
    assert sent.origins()[3:] == [(7, 4)] * 3


async def test_values_submitted_for_a_later_flush_leave_when_flushed_and_are_resent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The device submits every write of a batch of requests with flush=False and
    # flushes at its end: one send for all, and the service task still resends them.
    sent = Sent()
    batches = Batches(sent)
    proposals = ClientProposals(sent, PROPOSER, client_id=7, timeout=0,
                                resend_interval=1.0, send_many=batches.send_many)
    outcomes: list[object] = []
    async with running(proposals):
        proposals.submit(b"x", outcomes.append)  # the service task's timers run
        await trio.testing.wait_all_tasks_blocked()
        assert batches == [[(7, 1)]]
        await trio.sleep(0.5)
        for value in (b"a", b"b"):
            proposals.submit(value, outcomes.append, flush=False)
        await trio.testing.wait_all_tasks_blocked()
        assert batches == [[(7, 1)]]  # not woken: its timers already cover them
        proposals.flush()
        assert batches[1:] == [[(7, 2), (7, 3)]]
        await trio.sleep(0.5)
        await trio.testing.wait_all_tasks_blocked()
        assert batches[2:] == [[(7, 1)]]
        await trio.sleep(0.5)
        await trio.testing.wait_all_tasks_blocked()
        assert batches[3:] == [[(7, 2), (7, 3)]]
        for position, seq in ((5, 3), (4, 2), (3, 1)):
            proposals.decided(position, (7, seq))
        assert outcomes == [5, 4, 3]
        await trio.sleep(5)
        assert len(batches) == 4  # nothing is resent once decided


async def test_values_sent_together_travel_in_batch_envelopes_of_the_room_given(
    autojump_clock: trio.testing.MockClock,
) -> None:
    from wire.batch import BATCH_OVERHEAD, ITEM_OVERHEAD, unpack_batch_untrusted

    sent = Sent()
    # Room for two 10-byte values in their envelopes, not three.
    room = BATCH_OVERHEAD + 2 * (ITEM_OVERHEAD + len(wrap(7, 1, b"0123456789")))
    proposals = ClientProposals(sent, PROPOSER, client_id=7, timeout=0, batch_room=room)
    async with running(proposals):
        for n in range(3):
            proposals.submit(b"%010d" % n, lambda outcome: None, flush=False)
        proposals.flush()
    contents = []
    for data, _ in sent.datagrams:
        msg = decode_untrusted(data)
        assert isinstance(msg, ClientValue)
        items = unpack_batch_untrusted(msg.value)
        contents.append([unwrap_untrusted(item) for item in items] if items is not None
                        else unwrap_untrusted(msg.value))
    assert contents == [
        [ClientEnvelope(7, 1, b"0000000000"), ClientEnvelope(7, 2, b"0000000001")],
        ClientEnvelope(7, 3, b"0000000002")]
