from __future__ import annotations

from kpaxosd.paxos.dedupe import OriginFilter, RecentOrigins


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
    assert len(f._clients[1].recent) <= 3 * 4  # bounded


def test_least_recently_seen_client_is_forgotten() -> None:
    f = OriginFilter(max_clients=2, window=4)
    f.first_time(1, 1)
    f.first_time(2, 1)
    f.first_time(1, 2)  # client 1 is now the most recent
    f.first_time(3, 1)  # client 2 goes
    assert not f.first_time(1, 1)
    assert f.first_time(2, 1)  # forgotten: delivered again


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
