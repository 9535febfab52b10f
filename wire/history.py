"""The values of a piece of history one learner gives another (LEARNER_HISTORY part 1).

Entries in position order, each its position and the record a learner store keeps
of a delivered value (:data:`wire.storage.LOG_VALUE`: the origin, then the value),
length-prefixed. What a learner catching up delivers is what the peer delivered, at
the same positions, origins included where the peer knows them.
"""

from __future__ import annotations

from collections.abc import Iterable

from construct import GreedyBytes, GreedyRange, Int32ub, Int64ub, Prefixed, Struct

from wire.identity import Origin
from wire.layout import fast_struct
from wire.storage import pack_log_value, unpack_log_value

#: One delivered value in a piece of history.
HISTORY_ENTRY = Struct(
    "position" / Int64ub,
    "record" / Prefixed(Int32ub, GreedyBytes),
)
#: A piece of history: entries up to the end of the datagram.
HISTORY_ENTRIES = GreedyRange(HISTORY_ENTRY)

_HEAD = fast_struct(HISTORY_ENTRY)  # position and the record's length word
#: What an entry adds to its record.
ENTRY_OVERHEAD = _HEAD.size

Entry = tuple[int, bytes, Origin | None]


def entry_size(value: bytes, origin: Origin | None) -> int:
    """The bytes :func:`pack_entries` takes for one entry."""
    return ENTRY_OVERHEAD + len(pack_log_value(origin, value))


def pack_entries(entries: Iterable[Entry]) -> bytes:
    """The bytes of ``(position, value, origin)`` entries."""
    parts = []
    for position, value, origin in entries:
        record = pack_log_value(origin, value)
        parts.append(_HEAD.pack(position, len(record)))
        parts.append(record)
    return b"".join(parts)


def unpack_entries_untrusted(data: bytes) -> list[Entry]:
    """The entries in a piece of history from the network.

    Raises:
        ValueError: and nothing else, for bytes that are not entries.
    """
    entries: list[Entry] = []
    at, size = 0, len(data)
    while at < size:
        if size - at < ENTRY_OVERHEAD:
            raise ValueError(f"{size - at} bytes left where an entry starts")
        position, length = _HEAD.unpack_from(data, at)
        at += ENTRY_OVERHEAD
        if length > size - at:
            raise ValueError(f"an entry of {length} bytes where {size - at} are left")
        origin, value = unpack_log_value(data[at : at + length])
        entries.append((position, value, origin))
        at += length
    return entries
