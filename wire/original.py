"""Byte layouts of the original user-space programs (native byte order, LP64).

From tests/vectors/chardev_records.txt, produced by compiling the original
structs with gcc:

- ``struct client_value``: what the original client proposes; a header of 32 bytes
  (int32 client_id, 4 bytes padding, struct timeval, uint64 size) then the payload.
- the learner device's record protocol: the reader first writes the value size V as
  a native ``size_t`` (8 bytes); each read then returns ``int32 iid`` and V bytes.
  The programs of 3891411 (2017-09-18) write commands instead
  (tests/vectors/kernel_paxos_2017_programs.txt): an ASCII command byte and a native
  ``size_t``, ``'0'`` and the value size (and ``'1'`` after it when they trim), then
  ``'1'`` and the instance to trim up to, each time they trim.

Everything here is native byte order, as the original programs wrote it.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from construct import (
    Bytes,
    ConstructError,
    GreedyBytes,
    Int32sn,
    Int64sn,
    Int64un,
    Padding,
    Struct,
)

from wire.layout import fast_struct

#: The bytes of a client value's header that tell it from any other: client_id (and
#: the padding after it) and the timestamp.
CLIENT_VALUE_IDENTITY = Struct(
    "client_id" / Int32sn,
    Padding(4),
    "tv_sec" / Int64sn,
    "tv_usec" / Int64sn,
)
_SIZE = "size" / Int64un
#: ``struct client_value``'s 32-byte header: the identity, then the payload's size.
CLIENT_VALUE_HEADER = Struct(*CLIENT_VALUE_IDENTITY.subcons, _SIZE)
#: ``struct client_value`` with its payload.
CLIENT_VALUE = Struct(*CLIENT_VALUE_HEADER.subcons, "payload" / GreedyBytes)

#: The first write on a record-mode learner handle: the value size, a native size_t.
VALUE_SIZE_WRITE = Int64un
VALUE_SIZE_WRITE_SIZE = VALUE_SIZE_WRITE.sizeof()

#: A command of the 2017-09-18 programs to the learner device: ``'0'`` (VALUE) and the
#: value size, once, followed by a ``'1'`` when the program trims; ``'1'`` (TRIM) and
#: the iid of the record to trim up to, each time it trims.
DEVICE_COMMAND = Struct("command" / Bytes(1), "argument" / Int64un)
COMMAND_VALUE_SIZE = b"0"
COMMAND_TRIM = b"1"
#: The byte after a VALUE command that says the program trims.
TRIMS_FLAG = b"1"

#: A record read from a record-mode learner handle: ``int32 iid`` then the value,
#: padded with zeros or cut to the agreed size (the value is added by the caller).
RECORD_HEADER = Struct("iid" / Int32sn)

#: What a client of the original user-space learner sends first over TCP: the
#: half-open range of client ids whose values it wants.
ID_RANGE = Struct("first" / Int32sn, "end" / Int32sn)
#: The 2017-09-18 TCP greeting: a client's id, which the learner answers with
#: :data:`GREETING_ACK` (the 2017-09-10 programs greet nothing).
ID_GREETING = Struct("client_id" / Int32sn)
GREETING_ACK = b"k"

# The fast paths' codecs, made from the declarations above. Everything is "=":
# native byte order with standard sizes and no implicit padding (the padding after
# client_id is explicit), as gcc laid the structs out on LP64.
#: CLIENT_VALUE_HEADER: (client_id, tv_sec, tv_usec, size).
CLIENT_VALUE_HEAD = fast_struct(CLIENT_VALUE_HEADER)
CLIENT_VALUE_HEADER_SIZE = CLIENT_VALUE_HEAD.size
_CLIENT_VALUE_IDENTITY = fast_struct(CLIENT_VALUE_IDENTITY)
CLIENT_VALUE_IDENTITY_SIZE = _CLIENT_VALUE_IDENTITY.size
_RECORD_HEAD = fast_struct(RECORD_HEADER)
RECORD_HEADER_SIZE = _RECORD_HEAD.size
#: ID_RANGE: (first, end).
ID_RANGE_CODEC = fast_struct(ID_RANGE)
#: ID_GREETING: (client_id,).
ID_GREETING_CODEC = fast_struct(ID_GREETING)
_DEVICE_COMMAND = fast_struct(DEVICE_COMMAND)
_RAW_SIZE = fast_struct(Struct("value_size" / VALUE_SIZE_WRITE))


@dataclass(frozen=True, slots=True)
class SizeWrite:
    """A reader's record value size: ``flagged`` for the 2017-09-18 command (with
    ``trims`` its trim flag), else the raw size_t of 2017-09-07 and 2017-09-10."""

    value_size: int
    flagged: bool = False
    trims: bool = False


@dataclass(frozen=True, slots=True)
class TrimWrite:
    """A 2017-09-18 program read the record of ``iid`` and trims up to it."""

    iid: int


def pack_size_command(value_size: int, *, trims: bool) -> bytes:
    """The 2017-09-18 first write: ``'0'``, the value size, and ``'1'`` if trimming."""
    return _DEVICE_COMMAND.pack(COMMAND_VALUE_SIZE, value_size) + (TRIMS_FLAG if trims else b"")


def pack_trim_command(iid: int) -> bytes:
    """The 2017-09-18 trim write: ``'1'`` and the iid of the record to trim up to."""
    return _DEVICE_COMMAND.pack(COMMAND_TRIM, iid)


def parse_device_write_untrusted(data: bytes) -> SizeWrite | TrimWrite | None:
    """What a 2017 program's write to the learner device says, told apart by its
    length and command byte; None for anything else."""
    if len(data) == _RAW_SIZE.size:
        return SizeWrite(_RAW_SIZE.unpack(data)[0])
    if len(data) not in (_DEVICE_COMMAND.size, _DEVICE_COMMAND.size + 1):
        return None
    command, argument = _DEVICE_COMMAND.unpack_from(data)
    flag = data[_DEVICE_COMMAND.size:]
    if command == COMMAND_VALUE_SIZE:
        # The original read a 10th byte even after a 9-byte write: no flag, no trims.
        return SizeWrite(argument, flagged=True, trims=flag == TRIMS_FLAG)
    if command == COMMAND_TRIM and not flag:
        return TrimWrite(argument)
    return None


@dataclass(frozen=True, slots=True)
class OriginalClientValue:
    client_id: int
    tv_sec: int
    tv_usec: int
    payload: bytes


def pack_client_value(value: OriginalClientValue) -> bytes:
    return (
        CLIENT_VALUE_HEAD.pack(value.client_id, value.tv_sec, value.tv_usec, len(value.payload))
        + value.payload
    )


def unpack_client_value_untrusted(data: bytes) -> OriginalClientValue | None:
    """The ``struct client_value`` in ``data``, or None when it is not one.

    A value is taken for one only when its ``size`` field counts exactly the bytes
    after the header: that is what the original client always sent.
    """
    if len(data) < CLIENT_VALUE_HEADER_SIZE:
        return None
    client_id, tv_sec, tv_usec, size = CLIENT_VALUE_HEAD.unpack_from(data)
    if size != len(data) - CLIENT_VALUE_HEADER_SIZE:
        return None
    return OriginalClientValue(client_id, tv_sec, tv_usec, bytes(data[CLIENT_VALUE_HEADER_SIZE:]))


def pack_client_value_identity(client_id: int, tv_sec: int, tv_usec: int) -> bytes:
    """The first :data:`CLIENT_VALUE_IDENTITY_SIZE` bytes of the header of such a value
    (padding zero, as every value kpaxos-client sends has it)."""
    return _CLIENT_VALUE_IDENTITY.pack(client_id, tv_sec, tv_usec)


@functools.lru_cache(maxsize=8)
def _values_of_size(size: int) -> struct.Struct:
    # The identity (as bytes) and size of a value of ``size`` payload bytes, skipping
    # the payload.
    return fast_struct(Struct("identity" / Bytes(CLIENT_VALUE_IDENTITY_SIZE), _SIZE,
                              Padding(size)))


def split_client_values_untrusted(
    data: bytes | bytearray | memoryview, max_size: int
) -> tuple[Sequence[bytes], Sequence[int], int]:
    """The original client values at the start of ``data``, back to back.

    A stream of decided client values (the learner device in stream mode) carries
    them without separators: each header says how many payload bytes follow.

    Returns:
        The identity (the header's first :data:`CLIENT_VALUE_IDENTITY_SIZE` bytes as
        they are: client_id, padding, timestamp) and the size of every whole value, in
        order, and the number of bytes they take (a value cut short at the end is
        left for later).

    Raises:
        ValueError: a header announces more than ``max_size`` payload bytes: what
            follows is not a stream of such values.
    """
    # A stream usually holds values of one size, the largest: one C loop takes them
    # all, and one count proves that each header said so (else the walk below
    # starts over, header by header).
    stride = CLIENT_VALUE_HEADER_SIZE + max_size
    whole = len(data) - len(data) % stride
    if whole:
        identities: tuple[bytes, ...]
        sizes: tuple[int, ...]
        identities, sizes = zip(*_values_of_size(max_size).iter_unpack(data[:whole]),
                                strict=True)
        if sizes.count(max_size) == len(sizes):
            if len(data) - whole < CLIENT_VALUE_HEADER_SIZE:
                return identities, sizes, whole
            return _walk(data, max_size, whole, list(identities), list(sizes))
    return _walk(data, max_size, 0, [], [])


def _walk(
    data: bytes | bytearray | memoryview,
    max_size: int,
    offset: int,
    identities: list[bytes],
    sizes: list[int],
) -> tuple[list[bytes], list[int], int]:
    """:func:`split_client_values_untrusted` from ``offset`` on, header by header,
    after the values already found there."""
    unpack = _values_of_size(0).unpack_from
    end = len(data)
    while offset + CLIENT_VALUE_HEADER_SIZE <= end:
        identity, size = unpack(data, offset)
        if size > max_size:
            raise ValueError(f"a client value header at byte {offset} announces {size} bytes")
        following = offset + CLIENT_VALUE_HEADER_SIZE + size
        if following > end:
            break
        identities.append(identity)
        sizes.append(size)
        offset = following
    return identities, sizes, offset


def parse_client_value_with_construct(data: bytes) -> OriginalClientValue | None:
    """The reference decoding of :func:`unpack_client_value_untrusted` (for tests)."""
    try:
        parsed = CLIENT_VALUE.parse(data)
    except ConstructError:
        return None
    if parsed.size != len(parsed.payload):
        return None
    return OriginalClientValue(parsed.client_id, parsed.tv_sec, parsed.tv_usec, parsed.payload)


def pack_record(iid: int, value: bytes, value_size: int) -> bytes:
    """One record of the original learner device: ``4 + value_size`` bytes."""
    body = value[:value_size]
    return _RECORD_HEAD.pack(iid) + body + bytes(value_size - len(body))


def unpack_record(data: bytes) -> tuple[int, bytes]:
    """``(iid, value bytes)`` of a record (the value still padded)."""
    (iid,) = _RECORD_HEAD.unpack_from(data)
    return iid, bytes(data[RECORD_HEADER_SIZE:])
