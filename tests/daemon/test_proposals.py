from __future__ import annotations

import pytest
import trio
import trio.testing

from kpaxosd.interface import NodeStopping, ProposalTimeout, ValueTooLarge
from kpaxosd.paxos.cluster import Address
from kpaxosd.proposals import ClientProposals
from wire import ClientEnvelope, ClientValue, decode_untrusted, unwrap_untrusted

PROPOSER = ("127.0.0.2", 3002)


class Sent:
    def __init__(self) -> None:
        self.datagrams: list[tuple[bytes, Address]] = []

    def __call__(self, data: bytes, dest: Address) -> None:
        self.datagrams.append((data, dest))

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

    async with trio.open_nursery() as nursery:
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

    async with trio.open_nursery() as nursery:
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

    async with trio.open_nursery() as nursery:
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
