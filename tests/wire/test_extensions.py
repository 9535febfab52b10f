"""kpaxos's own datagrams (type words from 100): known bytes, both decoders, refusals.

The original has no vectors for these; the table below is written from the layout
(u32 big-endian words, like every Kernel_Paxos datagram) and checked against the
construct declaration as well as the fast path.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wire import (
    BarrierAnswer,
    LearnerBarrier,
    LearnerFetch,
    LearnerHistory,
    LearnerStuck,
    Message,
    MessageType,
    ProposerHi,
    WireError,
    decode_untrusted,
    encode,
)
from wire.datagram import build_with_construct, parse_with_construct
from wire.messages import FIRST_EXTENSION, MESSAGE_TYPES

KNOWN: list[tuple[Message, str]] = [
    (ProposerHi(2, 77), "00000064" "00000002" "0000004d"),
    (ProposerHi(0, 1), "00000064" "00000000" "00000001"),
    (ProposerHi(9, 0xFFFFFFFF), "00000064" "00000009" "ffffffff"),
    (LearnerStuck(6), "00000065" "00000006"),
    (LearnerStuck(0x01020304), "00000065" "01020304"),
    (LearnerFetch(0xA1B2C3D4, 7, 1, 0, 0x00070002),
     "00000066" "a1b2c3d4" "00000007" "00000001" "00000000" "00070002"),
    (LearnerHistory(5, 0, 3, 9, 2, 0, 0, b"ab"),
     "00000067" "00000005" "00000000" "00000003" "00000009" "00000002" "00000000" "00000000"
     "00000002" "6162"),
    (LearnerHistory(5, 2, 0, 0, 0, 1, 2, b""),
     "00000067" "00000005" "00000002" "00000000" "00000000" "00000000" "00000001" "00000002"
     "00000000"),
    (LearnerBarrier(0xDEADBEEF), "00000068" "deadbeef"),
    (BarrierAnswer(2, 0xDEADBEEF, 4097), "00000069" "00000002" "deadbeef" "00001001"),
]


def test_extensions_are_numbered_from_100() -> None:
    extensions = {t for t in MESSAGE_TYPES.values() if t >= FIRST_EXTENSION}
    assert extensions == {MessageType.PROPOSER_HI, MessageType.LEARNER_STUCK,
                          MessageType.LEARNER_FETCH, MessageType.LEARNER_HISTORY,
                          MessageType.LEARNER_BARRIER, MessageType.BARRIER_ANSWER}
    assert max(t for t in MessageType if t < FIRST_EXTENSION) == MessageType.ACCEPTOR_OK


@pytest.mark.parametrize(("msg", "hexbytes"), KNOWN)
def test_known_bytes(msg: Message, hexbytes: str) -> None:
    data = bytes.fromhex(hexbytes)
    assert encode(msg) == data
    assert build_with_construct(msg) == data
    assert decode_untrusted(data) == msg
    assert parse_with_construct(data) == msg


@pytest.mark.parametrize(("msg", "hexbytes"), KNOWN)
def test_truncated_and_trailing_bytes_are_refused(msg: Message, hexbytes: str) -> None:
    data = bytes.fromhex(hexbytes)
    for bad in [data[:cut] for cut in range(len(data))] + [data + b"\x00"]:
        with pytest.raises(WireError):
            decode_untrusted(bad)
        with pytest.raises(WireError):
            parse_with_construct(bad)


@pytest.mark.parametrize("type_word", [12, 99, 106])
def test_the_gap_around_the_extensions_stays_unknown(type_word: int) -> None:
    data = struct.pack(">III", type_word, 1, 2)
    with pytest.raises(WireError, match="unknown"):
        decode_untrusted(data)
    with pytest.raises(WireError):
        parse_with_construct(data)


u32 = st.integers(0, 0xFFFFFFFF)


@given(st.one_of(st.builds(ProposerHi, u32, u32), st.builds(LearnerStuck, u32),
                 st.builds(LearnerFetch, u32, u32, u32, u32, u32),
                 st.builds(LearnerHistory, u32, u32, u32, u32, u32, u32, u32,
                           st.binary(max_size=64)),
                 st.builds(LearnerBarrier, u32), st.builds(BarrierAnswer, u32, u32, u32)))
def test_round_trip(msg: Message) -> None:
    data = encode(msg)
    assert data == build_with_construct(msg)
    assert decode_untrusted(data) == parse_with_construct(data) == msg
