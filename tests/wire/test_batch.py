from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wire.batch import (
    BATCH_OVERHEAD,
    ITEM_OVERHEAD,
    MAGIC,
    batch_size,
    build_with_construct,
    must_travel_in_batch,
    pack_batch,
    parse_with_construct,
    unpack_batch_untrusted,
)
from wire.envelope import wrap
from wire.original import OriginalClientValue, pack_client_value

# Two items, "hi" and the empty value, as the declaration lays them out.
GOLDEN = bytes.fromhex("894b5042" "00000002" "00000002" "6869" "00000000")


def test_golden_bytes() -> None:
    assert pack_batch([b"hi", b""]) == GOLDEN
    assert build_with_construct([b"hi", b""]) == GOLDEN
    assert unpack_batch_untrusted(GOLDEN) == [b"hi", b""]
    assert len(GOLDEN) == batch_size([2, 0]) == BATCH_OVERHEAD + 2 * ITEM_OVERHEAD + 2


def test_client_values_stay_intact_inside() -> None:
    envelope = wrap(7, 9, b"payload")
    original = pack_client_value(OriginalClientValue(3, 100, 200, b"x" * 64))
    nested = pack_batch([b"inner"])
    batch = pack_batch([envelope, original, nested, b"raw"])
    # One level only: a batch inside a batch comes out as the bytes it was.
    assert unpack_batch_untrusted(batch) == [envelope, original, nested, b"raw"]


def test_an_empty_batch_cannot_be_built() -> None:
    with pytest.raises(ValueError):
        pack_batch([])


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"hello",
        MAGIC,
        MAGIC + b"\x00\x00\x00\x00",  # a count of 0 is no batch
        MAGIC + b"\x00\x00\x00\x01",  # one item, no length word
        MAGIC + b"\x00\x00\x00\x01\x00\x00\x00\x03ab",  # an item cut short
        MAGIC + b"\x00\x00\x00\x01\x00\x00\x00\x01ab",  # trailing bytes
        MAGIC + b"\xff\xff\xff\xff\x00\x00\x00\x00",  # a count the bytes cannot hold
    ],
)
def test_values_that_are_not_batches(value: bytes) -> None:
    assert unpack_batch_untrusted(value) is None
    assert parse_with_construct(value) is None


def test_values_that_look_like_batches_must_travel_in_one() -> None:
    assert must_travel_in_batch(GOLDEN)
    assert must_travel_in_batch(MAGIC + b"not a batch")
    assert not must_travel_in_batch(b"\x89KPV")
    assert not must_travel_in_batch(b"")


@given(st.lists(st.binary(max_size=50), min_size=1, max_size=20))
def test_round_trip_agrees_with_construct(values: list[bytes]) -> None:
    packed = pack_batch(values)
    assert packed == build_with_construct(values)
    assert len(packed) == batch_size([len(v) for v in values])
    assert unpack_batch_untrusted(packed) == values
    assert parse_with_construct(packed) == values


@given(st.lists(st.binary(max_size=20), min_size=1, max_size=5), st.data())
def test_truncated_and_extended_batches_are_refused(
    values: list[bytes], data: st.DataObject
) -> None:
    packed = pack_batch(values)
    cut = data.draw(st.integers(0, len(packed) - 1))
    assert unpack_batch_untrusted(packed[:cut]) is None
    assert unpack_batch_untrusted(packed + data.draw(st.binary(min_size=1, max_size=8))) is None


@given(st.binary(max_size=60))
def test_random_bytes_agree_with_construct(value: bytes) -> None:
    assert unpack_batch_untrusted(value) == parse_with_construct(value)


@given(st.binary(max_size=60))
def test_random_bytes_after_the_magic_agree_with_construct(tail: bytes) -> None:
    value = MAGIC + tail
    assert unpack_batch_untrusted(value) == parse_with_construct(value)


@given(st.integers(0, 12), st.integers(1, 8), st.data())
def test_items_of_one_size_and_one_length_word_changed_agree_with_construct(
    size: int, count: int, data: st.DataObject
) -> None:
    """Items all of one size are unpacked by a shortcut: any one byte of any length
    word changed must still be read as construct reads it."""
    values = [data.draw(st.binary(min_size=size, max_size=size)) for _ in range(count)]
    packed = bytearray(pack_batch(values))
    assert unpack_batch_untrusted(bytes(packed)) == values
    item = data.draw(st.integers(0, count - 1))
    at = BATCH_OVERHEAD + item * (ITEM_OVERHEAD + size) + data.draw(st.integers(0, 3))
    packed[at] = data.draw(st.integers(0, 255))
    assert unpack_batch_untrusted(bytes(packed)) == parse_with_construct(bytes(packed))


@given(st.integers(1, 40), st.integers(0, 100), st.data())
def test_a_batch_of_values_of_one_size_agrees_with_construct(
    count: int, size: int, data: st.DataObject
) -> None:
    values = [data.draw(st.binary(min_size=size, max_size=size)) for _ in range(count)]
    assert pack_batch(values) == build_with_construct(values)
    assert unpack_batch_untrusted(pack_batch(values)) == values
