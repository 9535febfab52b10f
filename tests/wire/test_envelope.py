from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from wire import ENVELOPE_OVERHEAD, ClientEnvelope, unwrap_untrusted, wrap
from wire.envelope import ENVELOPE, parse_with_construct


def test_wrap_layout_matches_the_declaration() -> None:
    value = wrap(0x0102030405060708, 9, b"hi")
    assert value == b"\x89KPV" + bytes.fromhex("0102030405060708") + (9).to_bytes(8, "big") + b"hi"
    assert ENVELOPE.parse(value).payload == b"hi"
    assert len(value) == ENVELOPE_OVERHEAD + 2


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.binary(max_size=100))
def test_round_trip(client_id: int, seq: int, payload: bytes) -> None:
    expected = ClientEnvelope(client_id, seq, payload)
    assert unwrap_untrusted(wrap(client_id, seq, payload)) == expected


@given(st.binary(max_size=40))
def test_raw_values_agree_with_construct(value: bytes) -> None:
    assert unwrap_untrusted(value) == parse_with_construct(value)


def test_raw_values_are_not_envelopes() -> None:
    assert unwrap_untrusted(b"hello\n") is None
    assert unwrap_untrusted(b"\x89KPV" + b"\x00" * 15) is None
