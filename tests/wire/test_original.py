from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import read_vectors
from wire.original import (
    CLIENT_VALUE,
    CLIENT_VALUE_HEADER_SIZE,
    CLIENT_VALUE_IDENTITY_SIZE,
    RECORD_HEADER,
    VALUE_SIZE_WRITE,
    OriginalClientValue,
    pack_client_value,
    pack_client_value_identity,
    pack_record,
    parse_client_value_with_construct,
    split_client_values_untrusted,
    unpack_client_value_untrusted,
    unpack_record,
)

VECTORS = read_vectors("chardev_records.txt")
RECORD = VECTORS["record_iid7_client0x11223344_t1500000000.123456_size8_abcdefg0"]
VALUE = OriginalClientValue(0x11223344, 1500000000, 123456, b"abcdefg\x00")


def test_the_size_write_is_a_native_size_t() -> None:
    assert VALUE_SIZE_WRITE.build(40) == VECTORS["config_write_value_size_40"]
    assert VALUE_SIZE_WRITE.parse(VECTORS["config_write_value_size_40"]) == 40


def test_the_golden_record_is_iid_then_the_client_value() -> None:
    assert pack_record(7, pack_client_value(VALUE), 40) == RECORD
    assert unpack_record(RECORD) == (7, pack_client_value(VALUE))
    assert RECORD_HEADER.parse(RECORD[:4]).iid == 7
    parsed = CLIENT_VALUE.parse(RECORD[4:])
    assert (parsed.client_id, parsed.tv_sec, parsed.tv_usec, parsed.size) == (
        0x11223344, 1500000000, 123456, 8,
    )
    assert unpack_client_value_untrusted(RECORD[4:]) == VALUE


def test_records_pad_or_cut_to_the_agreed_size() -> None:
    assert pack_record(1, b"abc", 5) == b"\x01\x00\x00\x00abc\x00\x00"
    assert pack_record(1, b"abcdef", 2) == b"\x01\x00\x00\x00ab"


@given(st.integers(-(2**31), 2**31 - 1), st.integers(0, 2**40), st.integers(0, 999_999),
       st.binary(max_size=64))
def test_client_values_agree_with_construct(
    client_id: int, tv_sec: int, tv_usec: int, payload: bytes
) -> None:
    value = OriginalClientValue(client_id, tv_sec, tv_usec, payload)
    data = pack_client_value(value)
    assert CLIENT_VALUE.build(
        {"client_id": client_id, "tv_sec": tv_sec, "tv_usec": tv_usec, "size": len(payload),
         "payload": payload}
    ) == data
    assert unpack_client_value_untrusted(data) == value


@given(st.binary(max_size=80))
def test_anything_else_is_not_a_client_value(data: bytes) -> None:
    assert unpack_client_value_untrusted(data) == parse_client_value_with_construct(data)


_VALUES = st.builds(
    OriginalClientValue,
    st.integers(-(2**31), 2**31 - 1),
    st.integers(0, 2**40),
    st.integers(0, 999_999),
    st.binary(max_size=40),
)


def _identity(value: OriginalClientValue) -> bytes:
    return pack_client_value(value)[:CLIENT_VALUE_IDENTITY_SIZE]


def _with_construct(stream: bytes, max_size: int) -> tuple[list[bytes], list[int], int]:
    """The reference split: construct parses each value, header by header."""
    identities, sizes, used = [], [], 0
    while used + CLIENT_VALUE_HEADER_SIZE <= len(stream):
        size = CLIENT_VALUE.parse(stream[used : used + CLIENT_VALUE_HEADER_SIZE]).size
        if size > max_size:
            raise ValueError(size)
        end = used + CLIENT_VALUE_HEADER_SIZE + size
        if end > len(stream):
            break
        identities.append(stream[used : used + CLIENT_VALUE_IDENTITY_SIZE])
        sizes.append(size)
        used = end
    return identities, sizes, used


def test_the_identity_is_the_header_without_its_size() -> None:
    assert pack_client_value_identity(VALUE.client_id, VALUE.tv_sec, VALUE.tv_usec) == (
        _identity(VALUE)
    )
    assert CLIENT_VALUE.parse(_identity(VALUE) + bytes(8)).tv_usec == VALUE.tv_usec


@given(st.lists(_VALUES, max_size=8), st.data())
def test_a_stream_of_client_values_splits_into_them(
    values: list[OriginalClientValue], data: st.DataObject
) -> None:
    stream = b"".join(pack_client_value(v) for v in values)
    identities, sizes, used = split_client_values_untrusted(stream, 40)
    assert used == len(stream)
    assert list(identities) == [_identity(v) for v in values]
    assert list(sizes) == [len(v.payload) for v in values]
    # Cut anywhere: the whole values before the cut, and the offset of the cut one.
    cut = data.draw(st.integers(0, len(stream)))
    identities, sizes, used = split_client_values_untrusted(memoryview(stream)[:cut], 40)
    ends = [0]
    for v in values:
        ends.append(ends[-1] + 32 + len(v.payload))
    whole = max(i for i, end in enumerate(ends) if end <= cut)
    assert used == ends[whole]
    assert len(identities) == len(sizes) == whole


# Mostly values of the largest size (the split's fast path), some shorter ones (which
# throw it off its stride), cut anywhere.
_MOSTLY_LARGEST = st.builds(
    OriginalClientValue,
    st.integers(-(2**31), 2**31 - 1),
    st.integers(0, 2**40),
    st.integers(0, 999_999),
    st.one_of(st.binary(min_size=24, max_size=24), st.binary(max_size=24)),
)


@given(st.lists(_MOSTLY_LARGEST, max_size=30), st.data())
def test_the_split_agrees_with_construct(
    values: list[OriginalClientValue], data: st.DataObject
) -> None:
    stream = b"".join(pack_client_value(v) for v in values)
    stream = stream[: data.draw(st.integers(0, len(stream)))]
    identities, sizes, used = split_client_values_untrusted(stream, 24)
    assert (list(identities), list(sizes), used) == _with_construct(stream, 24)


@given(st.lists(_VALUES, min_size=1, max_size=8), st.binary(min_size=32, max_size=80))
def test_what_follows_values_of_the_largest_size_is_checked_too(
    values: list[OriginalClientValue], junk: bytes
) -> None:
    largest = [OriginalClientValue(v.client_id, v.tv_sec, v.tv_usec, bytes(40)) for v in values]
    stream = b"".join(pack_client_value(v) for v in largest) + junk
    try:
        expected = _with_construct(stream, 40)
    except ValueError:
        with pytest.raises(ValueError):
            split_client_values_untrusted(stream, 40)
    else:
        identities, sizes, used = split_client_values_untrusted(stream, 40)
        assert (list(identities), list(sizes), used) == expected


def test_a_stream_holding_something_else_is_refused() -> None:
    stream = pack_client_value(VALUE) + b"hello, a value that is not a client value"
    with pytest.raises(ValueError):
        split_client_values_untrusted(stream, 64)
