"""The authentication trailer kpaxos appends to every datagram when a key is set.

    datagram | trailer: u64 sent_ms (big-endian), 16-byte keyed BLAKE2b tag

The trailer is the last :data:`TRAILER_SIZE` bytes; the tag covers everything
before it (the datagram and the timestamp). Without a key the wire format is exactly
the original's: no trailer at all.
"""

from __future__ import annotations

from construct import Bytes, Int64ub, Struct

from wire.layout import fast_struct

TAG_SIZE = 16
#: The timestamp, which the tag covers with the datagram.
STAMP = Struct("sent_ms" / Int64ub)
TRAILER = Struct(*STAMP.subcons, "tag" / Bytes(TAG_SIZE))
TRAILER_SIZE = TRAILER.sizeof()

_STAMP = fast_struct(STAMP)


def pack_stamp(sent_ms: int) -> bytes:
    return _STAMP.pack(sent_ms)


def split_untrusted(data: bytes) -> tuple[bytes, int, bytes, bytes] | None:
    """``(datagram, sent_ms, signed part, tag)``, or None when too short for a trailer."""
    if len(data) < TRAILER_SIZE:
        return None
    signed, tag = data[:-TAG_SIZE], data[-TAG_SIZE:]
    (sent_ms,) = _STAMP.unpack_from(signed, len(signed) - _STAMP.size)
    return bytes(signed[: -_STAMP.size]), sent_ms, bytes(signed), bytes(tag)
