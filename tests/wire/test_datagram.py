from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import read_vectors
from wire import (
    MAX_DATAGRAM_SIZE,
    MAX_VALUE_SIZE,
    Accept,
    Accepted,
    AcceptorOk,
    AcceptorState,
    ClientValue,
    LearnerDel,
    LearnerHi,
    Message,
    Preempted,
    Prepare,
    Promise,
    Repeat,
    Trim,
    WireError,
    decode_untrusted,
    encode,
)
from wire.datagram import build_with_construct, parse_with_construct
from wire.messages import FIRST_EXTENSION, MESSAGE_TYPES

# What each golden vector's name spells.
EXPECTED: dict[str, Message] = {
    "prepare_iid1_ballot11": Prepare(1, 11),
    "prepare_iid16909060_ballot4294967294": Prepare(16909060, 4294967294),
    "promise_aid2_iid7_ballot22_vballot11_hello": Promise(2, 7, 22, 11, b"hello"),
    "promise_aid0_iid3_ballot12_vballot0_empty": Promise(0, 3, 12, 0, b""),
    "accept_iid9_ballot13_bin0001ff80": Accept(9, 13, b"\x00\x01\x02\xff\x80"),
    "accepted_aid1_iid9_ballot13_vballot13_hello": Accepted(1, 9, 13, 13, b"hello"),
    "preempted_aid2_iid4_ballot31": Preempted(2, 4, 31),
    "repeat_from100_to200": Repeat(100, 200),
    "trim_iid100000": Trim(100000),
    "acceptor_state_aid1_trim5000": AcceptorState(1, 5000),
    "client_value_hello": ClientValue(b"hello"),
    "learner_hi": LearnerHi(),
    "learner_del": LearnerDel(),
    "acceptor_ok": AcceptorOk(),
}

VECTORS = read_vectors("kernel_paxos_wire.txt")


def test_every_vector_is_covered() -> None:
    assert set(VECTORS) == set(EXPECTED)
    # kpaxos's extensions (type 100 and up) have no vector of the original's; they
    # are checked in test_extensions.py.
    originals = {c for c, t in MESSAGE_TYPES.items() if t < FIRST_EXTENSION}
    assert {type(m) for m in EXPECTED.values()} == originals


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_encode_reproduces_golden_bytes(name: str) -> None:
    assert encode(EXPECTED[name]) == VECTORS[name]
    assert build_with_construct(EXPECTED[name]) == VECTORS[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_decode_gives_named_fields(name: str) -> None:
    assert decode_untrusted(VECTORS[name]) == EXPECTED[name]
    assert parse_with_construct(VECTORS[name]) == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_truncation_is_refused(name: str) -> None:
    data = VECTORS[name]
    for cut in range(len(data)):
        with pytest.raises(WireError):
            decode_untrusted(data[:cut])
        with pytest.raises(WireError):
            parse_with_construct(data[:cut])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_trailing_bytes_are_refused(name: str) -> None:
    with pytest.raises(WireError, match=r"trailing|length"):
        decode_untrusted(VECTORS[name] + b"\x00")
    with pytest.raises(WireError):
        parse_with_construct(VECTORS[name] + b"\x00")


@pytest.mark.parametrize("length", [6, 0x7FFFFFFF, 0xFFFFFFFF])
def test_length_running_past_the_end_is_refused(length: int) -> None:
    data = struct.pack(">IIII", 3, 1, 9, 13) + struct.pack(">II", 13, length) + b"hello"
    with pytest.raises(WireError, match="length"):
        decode_untrusted(data)
    with pytest.raises(WireError):
        parse_with_construct(data)


@pytest.mark.parametrize("type_word", [12, 255, 0x80000000, 0xFFFFFFFF])
def test_unknown_type_is_refused(type_word: int) -> None:
    data = struct.pack(">III", type_word, 1, 2)
    with pytest.raises(WireError, match="unknown"):
        decode_untrusted(data)
    with pytest.raises(WireError):
        parse_with_construct(data)


def test_fields_that_do_not_fit_a_word_are_refused() -> None:
    with pytest.raises(WireError):
        encode(Prepare(1, 1 << 32))
    with pytest.raises(WireError):
        encode(Prepare(-1, 1))


def test_the_largest_value_fits_one_datagram() -> None:
    data = encode(Accepted(1, 2, 3, 3, b"x" * MAX_VALUE_SIZE))
    assert len(data) == MAX_DATAGRAM_SIZE
    assert decode_untrusted(data).value == b"x" * MAX_VALUE_SIZE  # type: ignore[union-attr]
    with pytest.raises(WireError, match="exceeds"):
        encode(Accepted(1, 2, 3, 3, b"x" * (MAX_VALUE_SIZE + 1)))


u32 = st.integers(0, 0xFFFFFFFF)
values = st.binary(max_size=300)
messages = st.one_of(
    st.builds(Prepare, u32, u32),
    st.builds(Promise, u32, u32, u32, u32, values),
    st.builds(Accept, u32, u32, values),
    st.builds(Accepted, u32, u32, u32, u32, values),
    st.builds(Preempted, u32, u32, u32),
    st.builds(Repeat, u32, u32),
    st.builds(Trim, u32),
    st.builds(AcceptorState, u32, u32),
    st.builds(ClientValue, values),
    st.just(LearnerHi()),
    st.just(LearnerDel()),
    st.just(AcceptorOk()),
)


@given(messages)
def test_round_trip_and_agreement_with_construct(msg: Message) -> None:
    data = encode(msg)
    assert data == build_with_construct(msg)
    assert decode_untrusted(data) == msg
    assert parse_with_construct(data) == msg


def _decode_both(data: bytes) -> None:
    """Both decoders refuse or accept ``data`` alike, and refuse only with WireError."""
    try:
        fast: Message | None = decode_untrusted(data)
    except WireError:
        fast = None
    try:
        reference: Message | None = parse_with_construct(data)
    except WireError:
        reference = None
    assert fast == reference
    if fast is not None:
        assert encode(fast) == data


@settings(max_examples=500)
@given(st.binary(max_size=64))
def test_random_bytes_raise_only_wire_error(data: bytes) -> None:
    _decode_both(data)


@settings(max_examples=1000)
@given(
    st.sampled_from(sorted(VECTORS)),
    st.lists(st.tuples(st.integers(0, 40), st.integers(0, 255)), max_size=4),
    st.integers(-8, 8),
)
def test_mutated_vectors_raise_only_wire_error(
    name: str, flips: list[tuple[int, int]], resize: int
) -> None:
    data = bytearray(VECTORS[name])
    for position, byte in flips:
        if position < len(data):
            data[position] = byte
    if resize < 0:
        del data[len(data) + resize :]
    else:
        data.extend(b"\xff" * resize)
    _decode_both(bytes(data))
