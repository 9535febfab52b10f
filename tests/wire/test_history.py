"""Pieces of history between learners (wire.history): the declared layout, round trips,
refusals."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wire.history import HISTORY_ENTRIES, entry_size, pack_entries, unpack_entries_untrusted
from wire.storage import pack_log_value

_origins = st.none() | st.tuples(st.integers(-(2**127), 2**127 - 1),
                                 st.integers(-(2**127), 2**127 - 1))
_entries = st.lists(st.tuples(st.integers(0, 2**64 - 1), st.binary(max_size=30), _origins),
                    max_size=20)


@given(_entries)
def test_entries_round_trip_as_declared(entries: list[tuple[int, bytes, tuple[int, int] | None]],
                                        ) -> None:
    data = pack_entries(entries)
    assert unpack_entries_untrusted(data) == entries
    assert len(data) == sum(entry_size(v, o) for _, v, o in entries)
    declared = HISTORY_ENTRIES.build([{"position": p, "record": pack_log_value(o, v)}
                                      for p, v, o in entries])
    assert declared == data


def test_pieces_that_are_not_entries_are_refused() -> None:
    good = pack_entries([(65536, b"v", (1, 2)), (65537, b"w", None)])
    for bad in (good[:-1], good[:5], good + b"\x00", bytes(12)):
        with pytest.raises(ValueError):
            unpack_entries_untrusted(bad)


@given(st.binary(max_size=80))
def test_any_bytes_give_entries_or_a_value_error(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        unpack_entries_untrusted(data)
