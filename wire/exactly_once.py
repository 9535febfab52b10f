"""A learner's exactly-once memory as bytes: what a learner store keeps beside its log.

A learner that goes on from the middle of the log (restarted on a durable log whose
oldest values were forgotten, or, later, one that fetched history from a peer) must
pass over exactly the copies a learner running from instance 1 passed over. Its
memory of delivered origins (:class:`kpaxosd.paxos.dedupe.OriginFilter`) is a pure
function of the origins delivered, so it is enough to keep that memory as it was
at one instance and the origins delivered from there on.

The clients come least recently delivered first (the order the memory forgets
them in). Each client's numbers — an envelope client's recent seqs, an original
client's timestamps — are one run of fixed-width little-endian signed integers: 8
bytes wide when every one fits, 16 otherwise (a timestamp is a ``struct timeval``
in microseconds and may pass 64 bits), so that the common case is one ``array``
copy, not a construct field per number.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Sequence

from construct import (
    Bytes,
    BytesInteger,
    Const,
    Enum,
    Int8ub,
    Int32ub,
    PrefixedArray,
    Struct,
    Terminated,
    this,
)

#: One client's numbers: ``count`` integers ``width`` bytes wide each.
NUMBERS = Struct(
    "width" / Int8ub,
    "count" / Int32ub,
    "data" / Bytes(this.width * this.count),
)
#: What the memory knows of one client.
CLIENT_MEMORY = Struct(
    # seqs: an envelope client (the highest seq, the recent ones sorted); ring: an
    # original client whose stamps increase (the ring, its write index, the last
    # stamp); order: an original client out of order (stamps in arrival order, how
    # many of the last increase).
    "kind" / Enum(Int8ub, seqs=0, ring=1, order=2),
    "client_id" / BytesInteger(16, signed=True),
    # seqs: the highest seq; ring: the last stamp (below every stamp when the ring
    # is empty); order: the run of increasing stamps at the end.
    "mark" / BytesInteger(16, signed=True),
    # ring: where the next stamp goes (the oldest, once the ring is full).
    "at" / Int32ub,
    "numbers" / NUMBERS,
)
EXACTLY_ONCE_MEMORY = Struct(
    "magic" / Const(b"KXO1"),
    "window" / Int32ub,
    "clients" / PrefixedArray(Int32ub, CLIENT_MEMORY),
    Terminated,
)

_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


def pack_numbers(numbers: Sequence[int]) -> dict[str, object]:
    """The :data:`NUMBERS` fields of ``numbers``, in order."""
    if all(_I64_MIN <= n <= _I64_MAX for n in numbers):
        packed = array("q", numbers)
        if sys.byteorder == "big":
            packed.byteswap()
        return {"width": 8, "count": len(numbers), "data": packed.tobytes()}
    data = b"".join(n.to_bytes(16, "little", signed=True) for n in numbers)
    return {"width": 16, "count": len(numbers), "data": data}


def unpack_numbers(width: int, data: bytes) -> list[int]:
    """The integers of a parsed :data:`NUMBERS`.

    Raises:
        ValueError: a width other than 8 or 16.
    """
    if width == 8:
        numbers = array("q")
        numbers.frombytes(data)
        if sys.byteorder == "big":
            numbers.byteswap()
        return numbers.tolist()
    if width == 16:
        return [int.from_bytes(data[k : k + 16], "little", signed=True)
                for k in range(0, len(data), 16)]
    raise ValueError(f"numbers {width} bytes wide")
