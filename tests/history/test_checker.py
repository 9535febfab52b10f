"""The linearizability checker passes correct histories and catches each kind of defect.

Issue #18 part 4: the checker must be shown to catch a broken history. The histories
are made up (tests.history.simulated); each defect is one mutation of a correct one
(tests.history.mutations), and the checker must name it by its kind.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.history.checker import KINDS, Violation, assert_linearizable, check
from tests.history.model import Barrier, History, Read, Write
from tests.history.mutations import MUTATIONS
from tests.history.simulated import correct_history


def kinds(violations: list[Violation]) -> set[str]:
    return {v.kind for v in violations}


def test_a_correct_history_passes() -> None:
    history = correct_history(random.Random(18), writes=200)
    assert check(history) == []
    assert_linearizable(history)


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_each_defect_is_caught(name: str) -> None:
    mutate, kind = MUTATIONS[name]
    broken = mutate(correct_history(random.Random(18), writes=200), random.Random(4))
    found = check(broken)
    assert kind in kinds(found), found
    assert kinds(found) <= KINDS


def test_the_report_lists_the_first_violations() -> None:
    mutate, _ = MUTATIONS["real-time order"]
    broken = mutate(correct_history(random.Random(1), writes=100), random.Random(1))
    with pytest.raises(AssertionError, match=r"not linearizable.*\n  real-time-order: "):
        assert_linearizable(broken)


def test_a_large_history_checks() -> None:
    """Twenty thousand writes and four Reads: dicts and sorts, no search."""
    assert check(correct_history(random.Random(2), writes=20_000, clients=8)) == []


W = 1 << 16


def test_positions_need_not_be_contiguous_but_must_agree() -> None:
    writes = (Write("x", b"1", 0, 1, W, None), Write("y", b"2", 2, 3, 5 * W | 2, None))
    log = ((W, b"1"), (5 * W | 2, b"2"))
    fine = History(writes, (Read("r", "h", log, 0, 4), Read("s", "h", log[1:], 2, 4)))
    assert check(fine) == []
    resumed_differently = Read("r", "h", ((5 * W | 2, b"1"),), 3, 4)
    broken = History(writes, (*fine.reads, resumed_differently))
    assert {"divergent", "duplicate", "wrong-position"} <= kinds(check(broken))


def test_a_resume_repeats_what_the_reader_saw() -> None:
    writes = tuple(Write("x", v, 0, 1, None, "EIO") for v in (b"1", b"2", b"3"))
    log = ((W, b"1"), (W | 1, b"2"), (2 * W, b"3"))
    first = Read("r", "h", log[:2], 0, 2)
    assert check(History(writes, (first, Read("r", "h", log[1:], 2, 3)))) == []
    skipping = Read("r", "h", log[:1] + log[2:], 2, 3)
    assert kinds(check(History(writes, (first, skipping)))) == {"divergent"}


def test_a_late_reader_owes_nothing_before_its_first_position() -> None:
    writes = (Write("x", b"1", 0, 1, W, None), Write("x", b"2", 2, 3, 2 * W, None))
    late = Read("r", "h", ((2 * W, b"2"),), 4, 5)
    barrier = Barrier("r", "h", 3.5, 4, 2 * W)
    assert check(History(writes, (late,), (barrier,))) == []
    short = Barrier("r", "h", 3.5, 4, W)
    assert kinds(check(History(writes, (late,), (short,)))) == {"stale-barrier"}


def test_a_failed_write_may_be_in_the_log_once_but_not_twice() -> None:
    writes = (Write("x", b"1", 0, 1, None, "ETIMEDOUT"), Write("y", b"2", 0, None, None, None))
    once = History(writes, (Read("r", "h", ((W, b"1"),), 0, 2),))
    assert check(once) == []
    twice = History(writes, (Read("r", "h", ((W, b"1"), (2 * W, b"1")), 0, 2),))
    assert kinds(check(twice)) == {"duplicate"}


def test_a_malformed_history_is_reported() -> None:
    writes = (Write("x", b"1", 0, 1, W, None), Write("y", b"1", 0, 1, None, "EIO"),
              Write("z", b"3", 2, None, 2 * W, None))
    history = History(writes, (), (Barrier("nobody", "h", 1, 0.5, W),))
    details = [v.detail for v in check(history) if v.kind == "malformed"]
    assert len(details) == 4, details


def test_a_read_cannot_hold_a_write_started_after_it_ended() -> None:
    writes = (Write("x", b"1", 5, 6, W, None),)
    assert kinds(check(History(writes, (Read("r", "h", ((W, b"1"),), 0, 1),)))) == {
        "real-time-order"
    }


@given(seed=st.integers(0, 2**32), size=st.integers(12, 80))
def test_random_correct_histories_pass(seed: int, size: int) -> None:
    assert check(correct_history(random.Random(seed), writes=size)) == []


@given(
    seed=st.integers(0, 2**32), size=st.integers(12, 80), name=st.sampled_from(sorted(MUTATIONS))
)
def test_a_random_single_defect_fails(seed: int, size: int, name: str) -> None:
    mutate, kind = MUTATIONS[name]
    rng = random.Random(seed)
    broken = mutate(correct_history(rng, writes=size), rng)
    assert kind in kinds(check(broken))
