from __future__ import annotations

from kpaxosd.paxos.dedupe import OriginFilter


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
