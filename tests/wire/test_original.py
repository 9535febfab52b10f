from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import read_vectors
from wire.original import (
    CLIENT_VALUE,
    RECORD_HEADER,
    VALUE_SIZE_WRITE,
    OriginalClientValue,
    pack_client_value,
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


@given(st.lists(_VALUES, max_size=8), st.data())
def test_a_stream_of_client_values_splits_into_them(
    values: list[OriginalClientValue], data: st.DataObject
) -> None:
    stream = b"".join(pack_client_value(v) for v in values)
    headers, used = split_client_values_untrusted(stream, 40)
    assert used == len(stream)
    assert headers == [(v.client_id, v.tv_sec, v.tv_usec, len(v.payload)) for v in values]
    # Cut anywhere: the whole values before the cut, and the offset of the cut one.
    cut = data.draw(st.integers(0, len(stream)))
    headers, used = split_client_values_untrusted(stream[:cut], 40)
    ends = [0]
    for v in values:
        ends.append(ends[-1] + 32 + len(v.payload))
    whole = max(i for i, end in enumerate(ends) if end <= cut)
    assert used == ends[whole]
    assert len(headers) == whole


def test_a_stream_holding_something_else_is_refused() -> None:
    stream = pack_client_value(VALUE) + b"hello, a value that is not a client value"
    with pytest.raises(ValueError):
        split_client_values_untrusted(stream, 64)
