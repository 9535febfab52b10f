"""The history transfer between learners (kpaxosd.paxos.peers), one piece at a time."""

from __future__ import annotations

import random
from bisect import bisect_right

from kpaxosd.paxos.effects import Outbox, Send
from kpaxosd.paxos.peers import (
    ENTRIES,
    FETCH_TRIES,
    MAX_MEMORY_BYTES,
    MEMORY,
    PIECE_BYTES,
    REFUSED,
    Adopt,
    Done,
    Failed,
    HistoryFetch,
    HistoryServer,
    Values,
    cut_piece,
)
from wire.device import position_of
from wire.history import Entry
from wire.messages import LearnerFetch, LearnerHistory

ASKER, PEER, OTHER = ("10.0.0.1", 1), ("10.0.0.2", 2), ("10.0.0.3", 3)


class History:
    """A list of delivered values whole from ``start``."""

    def __init__(self, entries: list[Entry], start: int = 1) -> None:
        self.entries, self.start = entries, start

    def complete_from(self) -> int:
        return self.start

    def entries_after(self, position: int, end_iid: int, max_bytes: int) -> list[Entry] | None:
        if position < position_of(self.start, 0) - 1:
            return None
        at = bisect_right([e[0] for e in self.entries], position)
        return cut_piece(self.entries[at:], end_iid, max_bytes)


def values(first: int, end: int, per_instance: int, size: int) -> list[Entry]:
    return [(position_of(iid, place), b"%d.%d:" % (iid, place) + bytes(size), (7, iid * 10 + place))
            for iid in range(first, end) for place in range(per_instance)]


def sent(out: Outbox) -> list[Send]:
    return [e for e in out.drain() if isinstance(e, Send)]


def run_transfer(server: HistoryServer, next_iid: int, memory: bytes, fetch: HistoryFetch,
                 asker_out: Outbox, peer_out: Outbox) -> list[object]:
    """Carry every ask to the server and every answer back until the fetch is over."""
    outcomes: list[object] = []
    for _ in range(10_000):
        for ask in sent(asker_out):
            assert isinstance(ask.msg, LearnerFetch)
            server.on_fetch(ask.msg, ASKER, next_iid, lambda: memory)
        answers = sent(peer_out)
        if not answers:
            return outcomes
        for answer in answers:
            assert isinstance(answer.msg, LearnerHistory)
            outcome = fetch.on_history(answer.msg, PEER, 0.0)
            if outcome is not None:
                outcomes.append(outcome)
            if isinstance(outcome, Done | Failed):
                return outcomes
    raise AssertionError("the transfer never ended")


def test_a_memory_and_values_larger_than_a_piece_come_whole_and_in_order() -> None:
    history = values(1, 40, per_instance=3, size=900)  # ~110 KiB: several pieces
    memory = bytes(range(256)) * 300  # 76,800 bytes: three pieces
    peer_out, asker_out = Outbox(), Outbox()
    server = HistoryServer(History(history), peer_out)
    fetch = HistoryFetch([PEER], 5, random.Random(1), asker_out, 0.1, 0.0)
    outcomes = run_transfer(server, 40, memory, fetch, asker_out, peer_out)
    assert outcomes[0] == Adopt(PEER, 5, 40, memory)
    got = [entry for o in outcomes if isinstance(o, Values) for entry in o.entries]
    assert got == [e for e in history if e[0] >= position_of(5, 0)]
    assert outcomes[-1] == Done(40)
    pieces = [o for o in outcomes if isinstance(o, Values)]
    assert len(pieces) > 2
    for piece in pieces[:-1]:  # whole instances only, each piece about PIECE_BYTES
        assert piece.entries[-1][0] % (1 << 16) == 2
        assert piece.whole_below == (piece.entries[-1][0] >> 16) + 1
        assert sum(len(v) for _, v, _ in piece.entries) <= PIECE_BYTES


def test_a_peer_that_is_not_ahead_refuses_and_the_next_is_asked() -> None:
    out = Outbox()
    fetch = HistoryFetch([PEER, OTHER], 9, random.Random(2), out, 0.1, 0.0)
    (ask,) = sent(out)
    assert ask.dest == PEER and isinstance(ask.msg, LearnerFetch) and ask.msg.part == MEMORY
    peer_out = Outbox()
    HistoryServer(History([]), peer_out).on_fetch(ask.msg, ASKER, 9, lambda: b"m")
    (refusal,) = sent(peer_out)
    assert isinstance(refusal.msg, LearnerHistory) and refusal.msg.part == REFUSED
    assert fetch.on_history(refusal.msg, PEER, 0.0) is None
    (again,) = sent(out)
    assert again.dest == OTHER
    assert isinstance(again.msg, LearnerFetch) and again.msg.session != ask.msg.session
    for _ in range(FETCH_TRIES - 1):
        assert fetch.on_timer(1.0) is None
        assert [s.dest for s in sent(out)] == [OTHER]
    assert fetch.on_timer(2.0) == Failed()


def test_answers_of_another_session_or_source_are_ignored() -> None:
    out = Outbox()
    fetch = HistoryFetch([PEER], 3, random.Random(3), out, 0.1, 0.0)
    (ask,) = sent(out)
    assert isinstance(ask.msg, LearnerFetch)
    forged = LearnerHistory(ask.msg.session ^ 1, MEMORY, 3, 9, 1, 0, 0, b"x")
    assert fetch.on_history(forged, PEER, 0.0) is None
    real = LearnerHistory(ask.msg.session, MEMORY, 3, 9, 1, 0, 0, b"x")
    assert fetch.on_history(real, OTHER, 0.0) is None
    assert fetch.on_history(LearnerHistory(ask.msg.session, REFUSED, 0, 0, 0, 0, 0, b""),
                            OTHER, 0.0) is None  # a stranger cannot make it give up
    adopt = fetch.on_history(real, PEER, 0.0)
    assert adopt == Adopt(PEER, 3, 9, b"x")


def test_a_memory_too_large_to_be_one_is_refused() -> None:
    out = Outbox()
    fetch = HistoryFetch([PEER], 3, random.Random(6), out, 0.1, 0.0)
    (ask,) = sent(out)
    assert isinstance(ask.msg, LearnerFetch)
    huge = LearnerHistory(ask.msg.session, MEMORY, 3, 9, MAX_MEMORY_BYTES + 1, 0, 0, b"x")
    assert fetch.on_history(huge, PEER, 0.0) == Failed()  # the only peer: give up


def test_a_peer_that_let_go_of_the_rest_ends_the_transfer_with_a_loss() -> None:
    out, peer_out = Outbox(), Outbox()
    history = History(values(1, 30, per_instance=1, size=8))
    server = HistoryServer(history, peer_out)
    fetch = HistoryFetch([PEER], 1, random.Random(4), out, 0.1, 0.0)
    (ask,) = sent(out)
    assert isinstance(ask.msg, LearnerFetch)
    server.on_fetch(ask.msg, ASKER, 30, lambda: b"mem")
    (answer,) = sent(peer_out)
    assert isinstance(answer.msg, LearnerHistory)
    assert isinstance(fetch.on_history(answer.msg, PEER, 0.0), Adopt)
    (ask,) = sent(out)
    assert isinstance(ask.msg, LearnerFetch) and ask.msg.part == ENTRIES
    history.start = 20  # retention moved on before the values were asked for
    server.on_fetch(ask.msg, ASKER, 30, lambda: b"mem")
    (answer,) = sent(peer_out)
    assert isinstance(answer.msg, LearnerHistory)
    assert fetch.on_history(answer.msg, PEER, 0.0) == Done(30, lost_from=1)


def test_a_peer_serves_a_bounded_number_of_transfers() -> None:
    peer_out = Outbox()
    server = HistoryServer(History(values(1, 5, 1, 1)), peer_out)
    for session in range(10):
        server.on_fetch(LearnerFetch(session, 1, MEMORY, 0, 0), ASKER, 5, lambda: b"m")
    assert len(server._served) <= 4
    # A forgotten session's next piece is refused, not served from nothing.
    server.on_fetch(LearnerFetch(0, 1, ENTRIES, 0, 65535), ASKER, 5, lambda: b"m")
    assert sent(peer_out)[-1].msg.part == REFUSED  # type: ignore[union-attr]


def test_an_instance_larger_than_a_piece_comes_in_parts_and_is_whole_only_after() -> None:
    history = values(1, 4, per_instance=80, size=1000)  # 80 KB an instance
    peer_out, asker_out = Outbox(), Outbox()
    server = HistoryServer(History(history), peer_out)
    fetch = HistoryFetch([PEER], 1, random.Random(5), asker_out, 0.1, 0.0)
    outcomes = run_transfer(server, 4, b"m", fetch, asker_out, peer_out)
    pieces = [o for o in outcomes if isinstance(o, Values)]
    assert [e for p in pieces for e in p.entries] == history
    for piece in pieces:
        last_iid, place = piece.entries[-1][0] >> 16, piece.entries[-1][0] & 0xFFFF
        assert piece.whole_below == (last_iid + 1 if place == 79 else last_iid)


def test_a_value_too_large_to_travel_with_its_position_is_a_gap_not_a_crash() -> None:
    """A value near the largest a datagram holds cannot go with its position and
    origin: the peer refuses that piece, and the asker ends with a loss there."""
    history = [*values(1, 3, 1, 10), (position_of(3, 0), bytes(65_470), (7, 30))]
    peer_out, asker_out = Outbox(), Outbox()
    server = HistoryServer(History(history), peer_out)
    fetch = HistoryFetch([PEER], 1, random.Random(7), asker_out, 0.1, 0.0)
    outcomes = run_transfer(server, 4, b"m", fetch, asker_out, peer_out)
    for answer in outcomes:
        assert not isinstance(answer, Values) or all(len(v) < 100 for _, v, _ in answer.entries)
    assert outcomes[-1] == Done(4, lost_from=3)


def test_pieces_stay_within_the_size_the_daemon_sets_for_its_path_mtu() -> None:
    # A piece cut into fragments is lost when any one is: the daemon sizes pieces to
    # one unfragmented datagram (PaxosOptions.history_piece_bytes).
    history = values(1, 30, per_instance=4, size=100)
    memory = bytes(3000)
    peer_out, asker_out = Outbox(), Outbox()
    server = HistoryServer(History(history), peer_out, piece_bytes=1400)
    fetch = HistoryFetch([PEER], 1, random.Random(3), asker_out, 0.1, 0.0)
    carried: list[int] = []
    for _ in range(1000):
        for ask in sent(asker_out):
            assert isinstance(ask.msg, LearnerFetch)
            server.on_fetch(ask.msg, ASKER, 30, lambda: memory)
        answers = sent(peer_out)
        if not answers:
            break
        for answer in answers:
            assert isinstance(answer.msg, LearnerHistory)
            carried.append(len(answer.msg.value))
            fetch.on_history(answer.msg, PEER, 0.0)
    assert len(carried) > 10 and max(carried) <= 1400


def test_a_transfer_outlasts_a_run_of_lost_asks() -> None:
    # Under a fifth of the datagrams lost each way a round trip is lost 36 % of the
    # time: a piece asked 4 times in vain ended transfers about once in 60 pieces.
    out = Outbox()
    fetch = HistoryFetch([PEER, OTHER], 9, random.Random(4), out, 0.1, 0.0)
    sent(out)
    for tries in range(1, FETCH_TRIES):
        assert fetch.on_timer(tries * 0.1) is None
        (ask,) = sent(out)
        assert ask.dest == PEER
    assert FETCH_TRIES >= 12
    fetch.on_timer(FETCH_TRIES * 0.1)
    (ask,) = sent(out)
    assert ask.dest == OTHER  # only then the next peer
