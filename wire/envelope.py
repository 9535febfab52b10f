"""The envelope kpaxos puts around a value proposed through its client device.

A value must carry who proposed it so that the proposing node can recognise its own
decision and learners can deliver a resent value once. The original client put that
identity inside its own payload (``struct client_value``); kpaxos's client device
wraps the written bytes instead:

    magic "\\x89KPV" | u64 client_id | u64 seq | payload

Learners strip the envelope before handing values to readers. A value without the
magic is a raw value (from an original client) and is delivered as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from construct import Bytes, Const, ConstructError, GreedyBytes, Int64ub, Struct

from wire.layout import fast_struct

MAGIC = b"\x89KPV"

ENVELOPE_HEADER = Struct(
    "magic" / Const(MAGIC, Bytes(4)),
    "client_id" / Int64ub,
    "seq" / Int64ub,
)
ENVELOPE = Struct(*ENVELOPE_HEADER.subcons, "payload" / GreedyBytes)

#: ENVELOPE_HEADER for the fast paths: (magic, client_id, seq).
ENVELOPE_HEAD = fast_struct(ENVELOPE_HEADER)
ENVELOPE_OVERHEAD = ENVELOPE_HEAD.size


@dataclass(frozen=True, slots=True)
class ClientEnvelope:
    client_id: int
    seq: int
    payload: bytes


def wrap(client_id: int, seq: int, payload: bytes) -> bytes:
    """The value that carries ``payload`` from ``(client_id, seq)``."""
    return ENVELOPE_HEAD.pack(MAGIC, client_id, seq) + payload


def unwrap_untrusted(value: bytes) -> ClientEnvelope | None:
    """The envelope in a decided value, or None for a raw value."""
    if len(value) < ENVELOPE_OVERHEAD or not value.startswith(MAGIC):
        return None
    _, client_id, seq = ENVELOPE_HEAD.unpack_from(value)
    return ClientEnvelope(client_id, seq, bytes(value[ENVELOPE_OVERHEAD:]))


def parse_with_construct(value: bytes) -> ClientEnvelope | None:
    """The reference decoding of :func:`unwrap_untrusted` (slow; for tests)."""
    try:
        parsed = ENVELOPE.parse(value)
    except ConstructError:
        return None
    return ClientEnvelope(parsed.client_id, parsed.seq, parsed.payload)
