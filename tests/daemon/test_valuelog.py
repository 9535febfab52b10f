from __future__ import annotations

import pytest
import trio
import trio.testing

from devices.valuelog import DeliveredValue, LogClosed, ReaderTooFarBehind, ValueLog
from wire.device import position_of


def test_indices_count_delivered_values_and_positions_name_instance_and_place() -> None:
    log = ValueLog()
    log.append(1, b"a")
    log.extend([DeliveredValue(position_of(2, 0), b"b"), DeliveredValue(position_of(2, 3), b"c")])
    assert (log.first_index, log.next_index) == (0, 3)
    assert [log.get(i) for i in range(3)] == [
        DeliveredValue(1 << 16, b"a"),
        DeliveredValue(2 << 16, b"b"),
        DeliveredValue(2 << 16 | 3, b"c"),
    ]
    assert [log.get(i).iid for i in range(3)] == [1, 2, 2]
    assert (log.oldest_position, log.end_position) == (1 << 16, (2 << 16 | 3) + 1)
    with pytest.raises(IndexError):
        log.get(3)


def test_a_position_finds_its_value_the_next_one_or_the_gap_that_covers_it() -> None:
    log = ValueLog()
    assert (log.oldest_position, log.end_position, log.index_of(12345)) == (0, 0, 0)
    log.append(1, b"a")
    log.append(2, b"b", place=1)
    log.add_gap(3, 7)  # instances 3 to 6 lost here
    log.append(7, b"g")
    assert log.end_position == position_of(7, 1)
    assert log.index_of(position_of(1, 0)) == 0
    assert log.index_of(position_of(1, 1)) == 1  # no value there: the next one
    assert log.index_of(position_of(2, 1)) == 1
    assert log.index_of(position_of(3, 0)) == 2
    assert log.index_of(position_of(5, 9)) == 2  # inside the gap: the gap, not a skip
    assert log.index_of(position_of(7, 0)) == 3
    assert log.index_of(position_of(9, 0)) == 4  # yet to come
    log.trim_before(1)
    assert log.oldest_position == position_of(2, 1)
    with pytest.raises(ReaderTooFarBehind) as caught:
        log.index_of(position_of(1, 0))
    assert caught.value.oldest_position == position_of(2, 1)
    assert str(position_of(2, 1)) in str(caught.value)
    log.trim_before(4)
    assert log.oldest_position == log.end_position == position_of(7, 1)
    with pytest.raises(ReaderTooFarBehind):
        log.index_of(position_of(7, 0))
    assert log.index_of(position_of(7, 1)) == 4


def test_a_trimmed_position_is_an_error_not_a_skip() -> None:
    log = ValueLog()
    for iid in range(1, 6):
        log.append(iid, b"v")
    log.trim_before(3)
    assert (log.first_index, log.next_index) == (3, 5)
    with pytest.raises(ReaderTooFarBehind) as caught:
        log.get(2)
    assert caught.value.first_index == 3
    log.trim_before(99)
    assert (log.first_index, log.next_index) == (5, 5)


def test_listeners_hear_growth_and_close() -> None:
    log = ValueLog()
    heard: list[int] = []
    unsubscribe = log.subscribe(lambda: heard.append(log.next_index))
    log.append(1, b"a")
    log.extend([])
    log.close()
    unsubscribe()
    assert heard == [1, 1]
    with pytest.raises(LogClosed):
        log.append(2, b"b")


async def test_waiters_wake_on_growth_and_on_close() -> None:
    log = ValueLog()
    woke: list[str] = []

    async def wait(index: int) -> None:
        try:
            await log.wait_for(index)
            woke.append(f"{index} delivered")
        except LogClosed:
            woke.append(f"{index} closed")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait, 0)
        nursery.start_soon(wait, 1)
        await trio.testing.wait_all_tasks_blocked()
        log.append(1, b"a")
        await trio.testing.wait_all_tasks_blocked()
        assert woke == ["0 delivered"]
        log.close()
    assert woke == ["0 delivered", "1 closed"]
    await log.wait_for(0)  # what was delivered stays readable after close


def test_trimming_far_keeps_positions_and_values() -> None:
    log = ValueLog()
    log.extend_raw(list(range(1, 10_001)), [str(i).encode() for i in range(10_000)])
    for cut in (10, 3000, 6000, 9990):  # compaction happens on the way
        log.trim_before(cut)
        assert (log.first_index, log.next_index) == (cut, 10_000)
        assert log.get(cut) == DeliveredValue(cut + 1, str(cut).encode())
        assert log.value_at(9999) == b"9999"
        assert log.values_from(cut, 3) == [str(i).encode() for i in range(cut, cut + 3)]
    assert log.values_from(9998, 100) == [b"9998", b"9999"]
    with pytest.raises(ReaderTooFarBehind):
        log.values_from(5, 1)
    log.append(10_001, b"next")
    assert log.get(10_000) == DeliveredValue(position_of(10_001, 0), b"next")


def test_a_byte_bound_trims_whole_batches_oldest_first() -> None:
    log = ValueLog()
    for k in range(10):
        log.extend_raw([k + 1, k + 1], [b"x" * 100, b"y" * 100])  # 200 bytes a batch
    assert (log.retained_bytes, log.index_for_bytes(10_000)) == (2000, 0)
    # 1000 bytes: the last five batches.
    assert log.index_for_bytes(1000) == 10
    # 999 bytes: four batches; a limit below one batch keeps the newest whole.
    assert log.index_for_bytes(999) == 12
    assert log.index_for_bytes(1) == 18
    log.trim_before(log.index_for_bytes(1000))
    assert (log.first_index, log.retained_bytes) == (10, 1000)
    with pytest.raises(ReaderTooFarBehind):
        log.get(9)
    assert log.get(10) == DeliveredValue(6, b"x" * 100)
    # A trim by count inside a batch counts that batch whole until it goes.
    log.trim_before(11)
    assert log.retained_bytes == 1000
    assert log.index_for_bytes(1000) == 11
    log.trim_before(12)
    assert log.retained_bytes == 800


def test_byte_accounting_survives_compaction_and_gaps() -> None:
    log = ValueLog()
    total = 0
    for k in range(3 * ValueLog.COMPACT_AT):
        log.extend_raw([k + 1], [b"v" * (k % 7)])
        total += k % 7
        if k % 100 == 99:
            log.add_gap(10**6 + k, 10**6 + k + 1)
        log.trim_before(log.index_for_bytes(300))
        assert log.retained_bytes <= max(300, k % 7)
    assert log.retained_bytes == sum(
        len(log.value_at(i)) for i in range(log.first_index, log.next_index) if not log.is_gap(i)
    )


def test_a_log_whose_first_instance_delivered_nothing_is_whole_from_instance_1() -> None:
    # Instance 1 decided a no-op (or only copies passed over): the first value is at
    # instance 2, yet nothing is missing below it. A peer serves from instance 1,
    # and a reader may start at position 0.
    log = ValueLog()
    log.append(2, b"first")
    assert log.whole_from() == log.kept_from() == 1
    assert log.index_of(0) == 0
    log.append(3, b"second")
    log.trim_before(1)
    assert log.kept_from() == 4  # instance 3 may have been cut into
    with pytest.raises(ReaderTooFarBehind):
        log.index_of(position_of(2, 0))


def test_a_restored_log_is_whole_from_where_its_store_kept_every_value() -> None:
    log = ValueLog()
    log.began_at(7)
    log.extend_raw([position_of(6, 3), position_of(7, 0)], [b"cut", b"whole"])
    assert log.whole_from() == 7
    with pytest.raises(ReaderTooFarBehind):
        log.index_of(position_of(6, 0))
