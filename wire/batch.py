"""The batch envelope: several client values decided in one Paxos instance.

Under load a proposer packs the client values waiting for an instance into one
ACCEPT value::

    magic "\\x89KPB" | u32 count | count x (u32 length | length bytes)

Every integer is big-endian, as in the Paxos datagrams. Learners that find a
well-formed batch in a decided value deliver each item as a value of its own, in
order, all under the instance's iid; every item is a client value exactly as it was
proposed (a kpaxos envelope, an original ``struct client_value``, raw bytes).

A value that is not a well-formed batch (no magic, a count of 0, lengths that do not
add up) is a plain value and is delivered whole. So that a plain value which merely
*looks* like a batch is not split, a proposer sends every value that starts with the
magic inside a batch, even alone (:func:`must_travel_in_batch`): learners unpack
exactly one level.

construct (``BATCH``) is the specification; :func:`pack_batch` and
:func:`unpack_batch_untrusted` are the fast path (their codecs made from it by
:func:`wire.layout.fast_struct`), and tests prove they agree.
"""

from __future__ import annotations

from collections.abc import Sequence

from construct import (
    Array,
    Bytes,
    Const,
    ConstructError,
    GreedyBytes,
    Int32ub,
    Prefixed,
    Rebuild,
    Struct,
    Terminated,
    len_,
    this,
)

from wire.layout import fast_struct

MAGIC = b"\x89KPB"

#: One item: its length word, then its bytes.
ITEM = Prefixed(Int32ub, GreedyBytes)
BATCH = Struct(
    "magic" / Const(MAGIC, Bytes(4)),
    "count" / Rebuild(Int32ub, len_(this.items)),
    "items" / Array(this.count, ITEM),
    Terminated,
)

_HEAD = fast_struct(BATCH)  # magic, count
_LENGTH = fast_struct(ITEM)
#: Bytes a batch adds once (magic and count) ...
BATCH_OVERHEAD = _HEAD.size
#: ... and per item (its length word).
ITEM_OVERHEAD = _LENGTH.size


def batch_size(sizes: Sequence[int]) -> int:
    """The bytes of a batch of values of these sizes."""
    return BATCH_OVERHEAD + ITEM_OVERHEAD * len(sizes) + sum(sizes)


def must_travel_in_batch(value: bytes) -> bool:
    """Whether ``value`` would be taken for a batch if proposed on its own."""
    return value[:4] == MAGIC


def pack_batch(values: Sequence[bytes]) -> bytes:
    """One value carrying ``values`` (at least one), in order.

    Raises:
        ValueError: no values, or more values or bytes than a u32 counts.
    """
    if not values:
        raise ValueError("a batch carries at least one value")
    if len(set(map(len, values))) == 1:
        # All of one size (a client's values usually are): every length word is the
        # same, so one join puts them between the values.
        word = _LENGTH.pack(len(values[0]))
        return _HEAD.pack(MAGIC, len(values)) + word + word.join(values)
    pack = _LENGTH.pack
    parts: list[bytes] = [_HEAD.pack(MAGIC, len(values))]
    for value in values:
        parts.append(pack(len(value)))
        parts.append(value)
    return b"".join(parts)


def unpack_batch_untrusted(value: bytes) -> list[bytes] | None:
    """The values in a decided batch, in order; None when ``value`` is not a batch."""
    size = len(value)
    if size < BATCH_OVERHEAD or value[:4] != MAGIC:
        return None
    _, count = _HEAD.unpack_from(value)
    # Every item needs its length word: a count the bytes cannot hold is no batch
    # (and is refused before building a list of that size).
    if count == 0 or count > (size - BATCH_OVERHEAD) // ITEM_OVERHEAD:
        return None
    (first,) = _LENGTH.unpack_from(value, BATCH_OVERHEAD)
    stride = ITEM_OVERHEAD + first
    if count * stride == size - BATCH_OVERHEAD:
        # Maybe items all of one size (a client's values usually are): then every
        # length word, a stride apart, is the first one's, a byte at a time.
        word = value[BATCH_OVERHEAD:BATCH_OVERHEAD + ITEM_OVERHEAD]
        if all(value[BATCH_OVERHEAD + k::stride] == word[k:k + 1] * count
               for k in range(ITEM_OVERHEAD)):
            begin = BATCH_OVERHEAD + ITEM_OVERHEAD
            starts = range(begin, begin + count * stride, stride)
            return [value[start:start + first] for start in starts]
    unpack = _LENGTH.unpack_from
    items: list[bytes] = []
    offset = BATCH_OVERHEAD
    for _ in range(count):
        if offset + ITEM_OVERHEAD > size:
            return None
        (length,) = unpack(value, offset)
        offset += ITEM_OVERHEAD
        end = offset + length
        if end > size:
            return None
        items.append(value[offset:end])
        offset = end
    if offset != size:
        return None
    return items


def parse_with_construct(value: bytes) -> list[bytes] | None:
    """The reference decoding of :func:`unpack_batch_untrusted` (slow; for tests)."""
    try:
        items = list(BATCH.parse(value)["items"])
    except ConstructError:
        return None
    return items or None


def build_with_construct(values: Sequence[bytes]) -> bytes:
    """The reference encoding of :func:`pack_batch` (slow; for tests)."""
    return bytes(BATCH.build({"magic": MAGIC, "items": list(values)}))
