"""The fast codecs are made from the construct declarations, and agree with them."""

from __future__ import annotations

import dataclasses

import pytest
from construct import (
    Array,
    Bytes,
    Construct,
    GreedyBytes,
    Int16ul,
    Int32sn,
    Int32ub,
    Padding,
    Prefixed,
    Struct,
    this,
)

from devices import fuse_abi
from wire import auth, batch, envelope, original, storage
from wire.datagram import _FIELDS, _HEADS, BODIES, MAX_VALUE_SIZE
from wire.layout import fast_struct, field_names
from wire.messages import MESSAGE_TYPES, MessageType

# Each layout's struct format as the C code (or our own wire) lays it out.
EXPECTED_FORMATS = [
    (original.CLIENT_VALUE_HEADER, "=l4xqqQ"),
    (original.CLIENT_VALUE, "=l4xqqQ"),
    (original.CLIENT_VALUE_IDENTITY, "=l4xqq"),
    (original.RECORD_HEADER, "=l"),
    (original.ID_RANGE, "=ll"),
    (envelope.ENVELOPE, ">4sQQ"),
    (batch.BATCH, ">4sL"),
    (batch.ITEM, ">L"),
    (auth.TRAILER, ">Q16s"),
    (storage.INSTANCE_RECORD, ">LL"),
    (fuse_abi.fuse_in_header, "=LLQQLLLH2x"),
    (fuse_abi.fuse_out_header, "=LlQ"),
    (fuse_abi.fuse_write_in, "=QQLLQL4x"),
]


@pytest.mark.parametrize(("declaration", "expected"), EXPECTED_FORMATS)
def test_the_format_of_each_layout(declaration: Construct, expected: str) -> None:
    assert fast_struct(declaration).format == expected


FIXED_SIZE = [
    original.CLIENT_VALUE_HEADER,
    original.ID_RANGE,
    envelope.ENVELOPE_HEADER,
    auth.TRAILER,
    fuse_abi.fuse_in_header,
    fuse_abi.fuse_out_header,
    fuse_abi.fuse_read_in,
    fuse_abi.fuse_write_in,
    fuse_abi.fuse_write_out,
    fuse_abi.fuse_interrupt_in,
]


@pytest.mark.parametrize("declaration", FIXED_SIZE)
def test_a_fixed_layout_packs_as_construct_builds(declaration: Construct) -> None:
    codec = fast_struct(declaration)
    assert codec.size == declaration.sizeof()
    # Distinct bytes everywhere, so that a field out of place shows.
    pattern = bytes(range(1, codec.size + 1))
    if declaration is envelope.ENVELOPE_HEADER:
        pattern = envelope.MAGIC + pattern[4:]
    parsed = declaration.parse(pattern)
    values = tuple(parsed[name] for name in field_names(declaration))
    built = declaration.build(parsed)  # the padding zeroed
    assert codec.pack(*values) == built
    assert codec.unpack(built) == values


def test_a_length_prefix_ends_the_fixed_part_with_its_word() -> None:
    declaration = Struct("a" / Int32ub, "data" / Prefixed(Int32ub, GreedyBytes), "b" / Int32ub)
    assert fast_struct(declaration).format == ">LL"


def test_an_array_ends_the_fixed_part() -> None:
    declaration = Struct("n" / Int32ub, "items" / Array(this.n, Int32ub))
    assert fast_struct(declaration).format == ">L"


def test_unsigned_reads_a_signed_field_as_its_bits() -> None:
    codec = fast_struct(original.CLIENT_VALUE_HEADER, unsigned=("client_id",))
    assert codec.format == "=L4xqqQ"
    head = original.CLIENT_VALUE_HEAD.pack(-1, 0, 0, 0)
    assert codec.unpack(head)[0] == 0xFFFFFFFF


def test_a_field_of_variable_size_has_no_fast_codec() -> None:
    with pytest.raises(TypeError, match="'data'"):
        fast_struct(Struct("n" / Int32ub, "data" / Bytes(this.n), "after" / Int32ub))


def test_mixed_byte_orders_have_no_fast_codec() -> None:
    with pytest.raises(TypeError, match="byte orders"):
        fast_struct(Struct("a" / Int32ub, "b" / Int16ul))


def test_explicit_padding_is_kept() -> None:
    assert fast_struct(Struct("a" / Int32sn, Padding(4))).format == "=l4x"


@pytest.mark.parametrize("kind", list(MessageType))
def test_message_fields_are_the_wire_fields(kind: MessageType) -> None:
    # wire.messages names the fields the datagram declarations lay out, in order.
    cls = next(c for c, t in MESSAGE_TYPES.items() if t is kind)
    assert tuple(f.name for f in dataclasses.fields(cls)) == _FIELDS[kind]
    assert _FIELDS[kind] == field_names(BODIES[kind.name])


def test_the_largest_value_fills_a_datagram_behind_six_words() -> None:
    assert _HEADS[MessageType.ACCEPTED].size == 6 * 4
    assert MAX_VALUE_SIZE == 65507 - 6 * 4
