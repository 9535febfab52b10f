from __future__ import annotations

from collections import OrderedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kpaxosd.paxos.dedupe import OriginFilter, RecentOrigins, _ClientSeqs
from wire.identity import Origin


def test_first_time_only() -> None:
    f = OriginFilter(max_clients=10, window=4)
    assert f.first_time(1, 5)
    assert not f.first_time(1, 5)
    assert f.first_time(1, 3)  # out of order, within the window
    assert not f.first_time(1, 3)
    assert f.first_time(2, 5)  # another client


def test_seqs_older_than_the_window_count_as_seen() -> None:
    f = OriginFilter(max_clients=10, window=4)
    assert f.first_time(1, 10)
    assert not f.first_time(1, 6)
    assert f.first_time(1, 7)
    for seq in range(11, 100):
        assert f.first_time(1, seq)
    assert not f.first_time(1, 50)
    client = f._clients[1]
    assert isinstance(client, _ClientSeqs)
    assert len(client.recent) <= 3 * 4  # bounded


def test_least_recently_delivered_client_is_forgotten() -> None:
    f = OriginFilter(max_clients=2, window=4)
    f.first_time(1, 1)
    f.first_time(2, 1)
    f.first_time(1, 2)  # client 1 is now the most recent
    f.first_time(3, 1)  # client 2 goes
    assert not f.first_time(1, 1)
    assert f.first_time(2, 1)  # forgotten: delivered again


def test_a_copy_passed_over_does_not_make_its_client_recent() -> None:
    """So the memory depends only on what was delivered: a learner that goes on
    from a snapshot, shown only the origins delivered since, agrees."""
    f = OriginFilter(max_clients=2, window=4)
    f.first_time(1, 1)
    f.first_time(2, 1)
    assert not f.first_time(1, 1)  # a copy: client 1 stays the least recent
    f.first_time(3, 1)  # client 1 goes, client 2 stays
    assert not f.first_time(2, 1)
    assert f.first_time(1, 1)


def test_original_values_are_told_apart_exactly_never_by_age() -> None:
    f = OriginFilter(max_clients=10, window=3)
    client = -43  # an original client's origins have a first element below 0
    assert f.first_time(client, 5_000_000)
    assert not f.first_time(client, 5_000_000)
    # An older timestamp is a new value (another program with this id, a clock
    # stepped back): delivered, where an envelope's old seq would count as seen.
    assert f.first_time(client, 1_000)
    for stamp in (2_000, 3_000, 4_000):
        assert f.first_time(client, stamp)
    # Only the last `window` stamps are remembered.
    assert f.first_time(client, 5_000_000)
    assert not f.first_time(client, 4_000)


def test_envelope_and_original_clients_share_the_client_limit() -> None:
    f = OriginFilter(max_clients=2, window=4)
    f.first_time(1, 1)
    f.first_time(-2, 7)
    f.first_time(3, 1)  # client 1 goes
    assert f.first_time(1, 1)
    assert not f.first_time(3, 1)


def test_recent_origins_keep_at_least_the_last_half_and_at_most_n() -> None:
    recent = RecentOrigins(4)
    recent.add((1, 1))
    recent.add((1, 2))
    recent.add((1, 1))  # seen again: among the most recent again
    recent.add((-5, 9))
    assert ((1, 1) in recent, (-5, 9) in recent) == (True, True)
    recent.add((7, 7))
    recent.add((7, 8))
    # The last two stay; older ones go, and never more than four are held.
    assert ((7, 7) in recent, (7, 8) in recent, (1, 2) in recent) == (True, True, False)
    assert len(recent) <= 4


class _ExactStamps:
    """What OriginFilter promises for original clients, the slow obvious way: per
    client the last ``window`` timestamps recorded, the clients delivered least
    recently go (a copy passed over does not count as a delivery)."""

    def __init__(self, max_clients: int, window: int) -> None:
        self.clients: OrderedDict[int, list[int]] = OrderedDict()
        self.max_clients, self.window = max_clients, window

    def first_time(self, client_id: int, stamp: int) -> bool:
        stamps = self.clients.setdefault(client_id, [])
        if len(self.clients) > self.max_clients:
            self.clients.popitem(last=False)
        if stamp in stamps:
            return False
        self.clients.move_to_end(client_id)
        stamps.append(stamp)
        del stamps[: -self.window]
        return True


# Few clients and timestamps, mostly rising as a clock does, sometimes going back.
_stamp_runs = st.lists(
    st.tuples(
        st.integers(-3, -1), st.sampled_from([0, 1, 1, 2]), st.integers(0, 9), st.booleans()
    ),
    max_size=300,
)


@settings(max_examples=300)
@given(
    _stamp_runs,
    st.integers(1, 5),
    st.integers(1, 3),
    # Clocks near 0, or crossing the largest timestamp that 64 bits hold.
    st.sampled_from([0, 2**63 - 8, -(2**63) - 4]),
)
def test_original_clients_keep_exactly_their_last_window_of_stamps(
    steps: list[tuple[int, int, int, bool]], window: int, max_clients: int, start: int
) -> None:
    """One filter asked a value at a time, one a batch at a time (a batch ends where
    a step says so), both as the obvious model answers."""
    single = OriginFilter(max_clients=max_clients, window=window)
    batched = OriginFilter(max_clients=max_clients, window=window)
    exact = _ExactStamps(max_clients, window)
    clocks = {-1: start, -2: start, -3: start}
    batch: list[Origin | None] = []
    expected: list[bool] = []
    for client, forward, back, batch_ends in steps:
        # A clock that mostly runs forward, now and then stepped back.
        clocks[client] += forward
        stamp = clocks[client] - (back if back > 3 else 0)
        answer = exact.first_time(client, stamp)
        assert single.first_time(client, stamp) == answer
        batch.append((client, stamp))
        expected.append(answer)
        if batch_ends:
            assert batched.first_times(batch) == expected
            batch, expected = [], []
    assert batched.first_times(batch) == expected


_origins = st.one_of(
    st.none(),
    st.tuples(st.integers(-3, 3), st.integers(0, 12)),
)


@given(st.lists(st.lists(_origins, max_size=12), max_size=12), st.integers(1, 4))
def test_first_times_is_first_time_of_each(batches: list[list[Origin | None]], window: int) -> None:
    batched = OriginFilter(max_clients=4, window=window)
    single = OriginFilter(max_clients=4, window=window)
    for origins in batches:
        expected = [o is None or single.first_time(*o) for o in origins]
        assert batched.first_times(origins) == expected


def test_a_client_whose_clock_went_back_is_told_apart_exactly_then_fast_again() -> None:
    f = OriginFilter(max_clients=10, window=4)
    for stamp in (10, 20, 30, 40):
        assert f.first_time(-1, stamp)
    assert not f.first_time(-1, 20)  # a resend, found among increasing stamps
    assert f.first_time(-1, 15)  # the clock went back: new
    assert not f.first_time(-1, 15)
    client = f._clients[-1]
    assert client.ring is None  # type: ignore[union-attr]
    for stamp in (50, 60, 70, 80):  # 15 leaves the window: increasing throughout
        assert f.first_time(-1, stamp)
    assert client.ring is not None  # type: ignore[union-attr]
    assert not f.first_time(-1, 60)
    assert f.first_time(-1, 40)  # forgotten: only the last 4 are remembered
    for stamp in (90, 100, 110, 120, 130):
        assert f.first_time(-1, stamp)
    assert f.first_time(-1, 90)  # forgotten again, while the clock ran forward


# Envelope clients 0-2 and original clients -1..-3, seqs and stamps near 0 or past
# what 64 bits hold, copies and clocks going back among them.
_any_origins = st.lists(
    st.one_of(
        st.none(),
        st.tuples(st.integers(0, 2), st.integers(1, 40)),
        st.tuples(st.integers(-3, -1), st.integers(0, 40)),
        st.tuples(st.integers(-3, -1), st.integers(2**63 - 20, 2**63 + 20)),
        st.tuples(st.integers(0, 2), st.integers(2**64 - 20, 2**64 - 1)),
    ),
    max_size=200,
)


@settings(max_examples=300)
@given(_any_origins, st.data(), st.integers(1, 5), st.integers(1, 3))
def test_a_snapshot_goes_on_exactly_as_the_memory_would(
    origins: list[Origin | None], data: st.DataObject, window: int, max_clients: int
) -> None:
    """Cut anywhere: the memory rebuilt from a snapshot at the cut answers what the
    one that ran on answers; and it is the memory of the origins delivered only."""
    cut = data.draw(st.integers(0, len(origins)))
    ran_on = OriginFilter(max_clients, window)
    before = ran_on.first_times(origins[:cut])
    shown_delivered = OriginFilter(max_clients, window)
    shown_delivered.first_times([o for o, first in zip(origins[:cut], before, strict=True)
                                 if first])
    snapshot = ran_on.snapshot()
    assert shown_delivered.snapshot() == snapshot
    resumed = OriginFilter.from_snapshot(snapshot, max_clients, window)
    assert resumed.snapshot() == snapshot
    assert resumed.first_times(origins[cut:]) == ran_on.first_times(origins[cut:])
    assert resumed.snapshot() == ran_on.snapshot()


def test_a_snapshot_of_other_bounds_or_bytes_is_refused() -> None:
    f = OriginFilter(max_clients=3, window=4)
    f.first_times([(1, 1), (2, 5), (-1, 10), (-2, 7), (-2, 3)])
    snapshot = f.snapshot()
    with pytest.raises(ValueError, match=r"window|origins each"):
        OriginFilter.from_snapshot(snapshot, 3, 5)
    with pytest.raises(ValueError, match="clients"):
        OriginFilter.from_snapshot(snapshot, 2, 4)
    for broken in (b"", b"junk", snapshot[:-1], snapshot + b"x"):
        with pytest.raises(ValueError):
            OriginFilter.from_snapshot(broken, 3, 4)
