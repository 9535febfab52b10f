"""The proposer's memory of decided origins, added one by one or many at once."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from kpaxosd.paxos.dedupe import RecentOrigins


@given(
    st.lists(st.tuples(st.integers(0, 5), st.integers(0, 30)), max_size=80),
    st.lists(st.integers(1, 9), min_size=1),
    st.integers(1, 12),
)
def test_adding_origins_together_remembers_what_adding_them_one_by_one_does(
    origins: list[tuple[int, int]], chunks: list[int], capacity: int
) -> None:
    one_by_one, together = RecentOrigins(capacity), RecentOrigins(capacity)
    for origin in origins:
        one_by_one.add(origin)
    start = 0
    for size in itertools.cycle(chunks):
        if start >= len(origins):
            break
        together.add_all(origins[start : start + size])
        start += size
    assert together.generations() == one_by_one.generations()
