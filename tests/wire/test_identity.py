from __future__ import annotations

import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wire import (
    IdentifiedValue,
    identify_untrusted,
    is_original_origin,
    origin_untrusted,
    original_origin,
    wrap,
)
from wire.envelope import MAGIC as ENVELOPE_MAGIC
from wire.envelope import parse_with_construct as parse_envelope
from wire.identity import origins_untrusted
from wire.original import (
    OriginalClientValue,
    pack_client_value,
    parse_client_value_with_construct,
)

int32 = st.integers(-(2**31), 2**31 - 1)
int64 = st.integers(-(2**63), 2**63 - 1)
usec = st.integers(0, 999_999)


def test_an_envelope_is_its_client_and_seq_and_is_stripped() -> None:
    value = wrap(7, 3, b"hello")
    assert identify_untrusted(value) == IdentifiedValue((7, 3), b"hello")
    assert origin_untrusted(value) == (7, 3)
    assert not is_original_origin((7, 3))


def test_an_original_value_is_its_client_and_timestamp_and_stays_whole() -> None:
    value = pack_client_value(OriginalClientValue(5, 1_500_000_000, 123_456, b"abc"))
    origin = (-6, 1_500_000_000_123_456)
    assert identify_untrusted(value) == IdentifiedValue(origin, value)
    assert original_origin(5, 1_500_000_000, 123_456) == origin
    assert is_original_origin(origin)
    # A negative int32 client id maps through its u32 bit pattern.
    assert original_origin(-1, 0, 0) == (-1 - 0xFFFFFFFF, 0)


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"hello\n",
        b"\x89KPV" + b"\x00" * 15,  # an envelope's magic, too short
        # size field 4, but 3 bytes follow the header
        pack_client_value(OriginalClientValue(5, 1, 2, b"abcd"))[:-1],
        # tv_usec of a million: not a timeval; (1, 1_000_000) would be (2, 0)
        pack_client_value(OriginalClientValue(5, 1, 1_000_000, b"x")),
        pack_client_value(OriginalClientValue(5, 1, -1, b"x")),
    ],
)
def test_anything_else_has_no_identity(value: bytes) -> None:
    assert identify_untrusted(value) == IdentifiedValue(None, value)
    assert origin_untrusted(value) is None


def test_an_invalid_timeval_has_no_origin() -> None:
    with pytest.raises(ValueError):
        original_origin(5, 1, 1_000_000)


@given(int32, int64, usec, int32, int64, usec)
def test_original_origins_are_one_to_one(
    c1: int, s1: int, u1: int, c2: int, s2: int, u2: int
) -> None:
    same_header = (c1, s1, u1) == (c2, s2, u2)
    assert (original_origin(c1, s1, u1) == original_origin(c2, s2, u2)) == same_header


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), int32, int64, usec)
def test_envelopes_and_originals_never_share_an_origin(
    client_id: int, seq: int, original_id: int, tv_sec: int, tv_usec: int
) -> None:
    envelope = origin_untrusted(wrap(client_id, seq, b""))
    original = original_origin(original_id, tv_sec, tv_usec)
    assert envelope is not None and envelope[0] >= 0 > original[0]


@given(st.binary(max_size=80))
def test_agrees_with_the_construct_declarations(value: bytes) -> None:
    identified = identify_untrusted(value)
    envelope = parse_envelope(value)
    original = parse_client_value_with_construct(value)
    if envelope is not None:
        expected = IdentifiedValue((envelope.client_id, envelope.seq), envelope.payload)
    elif original is not None and 0 <= original.tv_usec < 1_000_000:
        origin = original_origin(original.client_id, original.tv_sec, original.tv_usec)
        expected = IdentifiedValue(origin, value)
    else:
        expected = IdentifiedValue(None, value)
    assert identified == expected


@given(int32, int64, usec, st.binary(max_size=40))
def test_a_resent_original_value_has_the_same_origin(
    client_id: int, tv_sec: int, tv_usec: int, payload: bytes
) -> None:
    value = pack_client_value(OriginalClientValue(client_id, tv_sec, tv_usec, payload))
    assert origin_untrusted(value) == origin_untrusted(bytes(value))
    assert origin_untrusted(value) == original_origin(client_id, tv_sec, tv_usec)


# Values that are nearly client values: headers with a magic, sizes around the header's.
_near_values = st.one_of(
    st.binary(max_size=80),
    st.builds(lambda tail: ENVELOPE_MAGIC + tail, st.binary(max_size=60)),
    st.builds(
        lambda client_id, tv_sec, tv_usec, payload: pack_client_value(
            OriginalClientValue(client_id, tv_sec, tv_usec, payload)),
        st.one_of(int32, st.just(int.from_bytes(ENVELOPE_MAGIC, sys.byteorder, signed=True))),
        int64,
        st.one_of(usec, int64),
        st.binary(max_size=40),
    ),
)


@given(st.lists(_near_values, max_size=8))
def test_origins_of_many_values_are_each_ones_origin(values: list[bytes]) -> None:
    origins = [origin_untrusted(value) for value in values]
    all_original = all(o is not None and is_original_origin(o) for o in origins)
    assert origins_untrusted(values) == (origins, all_original)
