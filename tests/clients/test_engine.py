"""The benchmarking client's engine: values, their recognition, and the statistics."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from kpaxosd.client_engine import ClientEngine, Latencies
from wire.original import (
    CLIENT_VALUE_IDENTITY_SIZE,
    pack_client_value_identity,
    unpack_client_value_untrusted,
)


def _exact_percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@given(st.lists(st.floats(1.0, 1e7), min_size=1, max_size=200), st.sampled_from([50, 90, 99]))
def test_latency_percentiles_are_within_0_4_percent(values: list[float], pct: int) -> None:
    latencies = Latencies()
    for value in values:
        latencies.add(value)
    assert latencies.count == len(values)
    assert latencies.low == min(values) and latencies.high == max(values)
    exact = _exact_percentile(values, pct)
    assert abs(latencies.percentile(pct) - exact) <= 0.004 * exact


def test_latency_memory_does_not_grow_with_the_count() -> None:
    latencies = Latencies()
    for i in range(100_000):
        latencies.add(100 + i % 50)
    assert len(latencies.buckets) <= 128  # 100..149 us, 1/256 of 128 us apart


def test_values_come_back_recognised_by_their_header_and_the_slot_moves_on() -> None:
    engine = ClientEngine(base_id=10, outstanding=2, value_size=64, rng=random.Random(1))
    first = engine.start(1000.0)
    assert len(first) == 2
    values = [unpack_client_value_untrusted(v) for v in first]
    assert all(v is not None and len(v.payload) == 64 for v in values)
    assert values[0] is not None and values[1] is not None
    assert {values[0].client_id, values[1].client_id} == {10, 11}
    assert values[0].payload != values[1].payload  # cut from the pool at random places
    v = values[0]
    following = engine.delivered_header(v.client_id, v.tv_sec, v.tv_usec, 64, 1000.001)
    assert following is not None
    nxt = unpack_client_value_untrusted(following)
    assert nxt is not None and nxt.client_id == v.client_id
    assert (nxt.tv_sec, nxt.tv_usec) > (v.tv_sec, v.tv_usec)
    # The same value again (a duplicate), or someone else's: not ours.
    assert engine.delivered_header(v.client_id, v.tv_sec, v.tv_usec, 64, 1000.002) is None
    assert engine.delivered_header(99, v.tv_sec, v.tv_usec, 64, 1000.002) is None
    assert engine.total.delivered == 1
    assert 999 <= engine.total.latencies.percentile(50) <= 1001


def test_the_total_counts_every_interval() -> None:
    engine = ClientEngine(base_id=0, outstanding=1, value_size=8, rng=random.Random(2))
    now = 10.0
    (value,) = engine.start(now)
    for _ in range(5):
        v = unpack_client_value_untrusted(value)
        assert v is not None
        now += 0.001
        following = engine.delivered_header(v.client_id, v.tv_sec, v.tv_usec, 8, now)
        assert following is not None
        value = following
        if engine.interval.delivered == 2:
            assert engine.take_interval().delivered == 2
    total = engine.total
    assert total.delivered == 5
    assert total.latencies.count == 5
    assert 990 <= total.latencies.percentile(99) <= 1010


def _identity(value: bytes) -> bytes:
    return value[:CLIENT_VALUE_IDENTITY_SIZE]


def test_a_read_moves_on_as_the_headers_one_by_one_do() -> None:
    one, many = (ClientEngine(base_id=10, outstanding=3, value_size=8, rng=random.Random(4))
                 for _ in range(2))
    started = one.start(5.0)
    assert many.start(5.0) == started
    headers = []
    for value in started:
        v = unpack_client_value_untrusted(value)
        assert v is not None
        headers.append((v.client_id, v.tv_sec, v.tv_usec, 8))
    headers.insert(1, headers[0])  # a duplicate
    headers.append((99, 1, 2, 8))  # someone else's
    expected = [
        value for value in (one.delivered_header(*h, 5.000002) for h in headers)
        if value is not None
    ]
    identities = [pack_client_value_identity(*h[:3]) for h in headers]
    assert many.delivered_identities(identities, [8] * len(headers), 5.000002) == expected
    assert len(expected) == 3
    assert (many.total.delivered, many.total.delivered_bytes) == (3, 24)
    assert many.total.latencies.percentile(50) == one.total.latencies.percentile(50)


def test_values_of_other_sizes_count_their_own() -> None:
    engine = ClientEngine(base_id=0, outstanding=2, value_size=8, rng=random.Random(5))
    first, second = engine.start(1.0)
    # A header claiming another size, with the identity of one of ours (as the old
    # engine, which matched client id and timestamp, counted it).
    following = engine.delivered_identities(
        [_identity(first), b"x" * CLIENT_VALUE_IDENTITY_SIZE, _identity(second)],
        [3, 8, 8], 1.5)
    assert len(following) == 2
    assert (engine.total.delivered, engine.total.delivered_bytes) == (2, 11)


def test_recognised_once_though_decided_twice_in_one_read() -> None:
    engine = ClientEngine(base_id=0, outstanding=2, value_size=8, rng=random.Random(6))
    first, _ = engine.start(1.0)
    following = engine.delivered_identities([_identity(first)] * 3, [8] * 3, 1.5)
    assert len(following) == 1
    assert engine.delivered_identities([_identity(first)], [8], 1.6) == []
    assert engine.total.delivered == 1


def test_a_slots_stamps_never_repeat_though_the_clock_stands_still_or_goes_back() -> None:
    engine = ClientEngine(base_id=0, outstanding=1, value_size=8, rng=random.Random(7))
    (value,) = engine.start(100.0)
    seen = set()
    for now in (100.0, 100.0, 99.0, 100.0000001):
        v = unpack_client_value_untrusted(value)
        assert v is not None
        seen.add((v.tv_sec, v.tv_usec))
        (value,) = engine.delivered_identities([_identity(value)], [8], now)
    assert len(seen) == 4
    assert engine.total.delivered == 4


def test_values_not_seen_are_resent_as_they_were_and_timed_from_the_first_send() -> None:
    engine = ClientEngine(base_id=0, outstanding=2, value_size=8, rng=random.Random(8),
                          resend_after=1.0)
    first, second = engine.start(10.0)
    assert engine.next_resend_at() == 11.0
    (third,) = engine.delivered_identities([_identity(second)], [8], 10.5)
    assert engine.due_resends(10.9) == []
    assert engine.due_resends(11.0) == [first]
    assert engine.next_resend_at() == 11.5  # the third, sent at 10.5
    assert engine.due_resends(11.6) == [third]
    assert engine.next_resend_at() == 12.0  # the first, resent at 11.0
    assert engine.interval.resent == 2
    engine.take_interval()
    engine.delivered_identities([_identity(first)], [8], 12.0)
    assert engine.interval.latencies.low == 2_000_000  # since the first send, at 10.0
    assert engine.due_resends(12.0) == []  # the first is decided; the third was resent
    assert engine.due_resends(12.6) == [third]


def test_repeated_latencies_count_as_added_one_by_one() -> None:
    one, many = Latencies(), Latencies()
    for us, count in ((5.0, 3), (1e6, 1), (250.5, 7)):
        for _ in range(count):
            one.add(us)
        many.add_repeated(us, count)
    assert (one.count, one.total, one.low, one.high) == (
        many.count, many.total, many.low, many.high)
    assert one.buckets == many.buckets


def test_a_read_of_values_sent_at_many_times_counts_each_latency() -> None:
    one, many = (ClientEngine(base_id=10, outstanding=40, value_size=8, rng=random.Random(5))
                 for _ in range(2))
    started = one.start(1.0)
    assert many.start(1.0) == started
    # The slots' second values go out two by two, at twenty times ...
    following = []
    for k in range(20):
        identities = [value[:CLIENT_VALUE_IDENTITY_SIZE] for value in started[2 * k : 2 * k + 2]]
        a = one.delivered_identities(identities, [8, 8], 2.0 + k / 100)
        assert many.delivered_identities(identities, [8, 8], 2.0 + k / 100) == a
        following.extend(a)
    # ... and all forty come back in one read.
    identities = [value[:CLIENT_VALUE_IDENTITY_SIZE] for value in following]
    for identity in identities:
        one.delivered_identities([identity], [8], 3.0)
    many.delivered_identities(identities, [8] * 40, 3.0)
    assert one.total.latencies.buckets == many.total.latencies.buckets
    assert many.total.latencies.count == 80
