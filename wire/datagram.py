"""The Kernel_Paxos UDP datagram, declared once.

Every integer is an unsigned 32-bit big-endian word; a value is a length word then
that many bytes. The original C unpacker trusted the length word and copied past the
end of the datagram; here a datagram whose lengths do not add up exactly is refused.

construct is the specification (``DATAGRAM``) and the cold path. ``decode_untrusted``
uses precompiled ``struct.Struct`` objects for speed; a test proves both agree on the
golden vectors and on random messages.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from construct import (
    ConstructError,
    Enum,
    Error,
    GreedyBytes,
    Int32ub,
    Pass,
    Prefixed,
    Struct,
    Switch,
    Terminated,
    this,
)

from wire.layout import fast_struct, field_names
from wire.messages import (
    FIRST_EXTENSION,
    MESSAGE_TYPES,
    Message,
    MessageType,
)

#: The largest UDP payload over IPv4.
MAX_DATAGRAM_SIZE = 65507


class WireError(ValueError):
    """A datagram that is not a well-formed Kernel_Paxos message."""


Value = Prefixed(Int32ub, GreedyBytes)

BODIES = {
    "PREPARE": Struct("iid" / Int32ub, "ballot" / Int32ub),
    "PROMISE": Struct(
        "aid" / Int32ub,
        "iid" / Int32ub,
        "ballot" / Int32ub,
        "value_ballot" / Int32ub,
        "value" / Value,
    ),
    "ACCEPT": Struct("iid" / Int32ub, "ballot" / Int32ub, "value" / Value),
    "ACCEPTED": Struct(
        "aid" / Int32ub,
        "iid" / Int32ub,
        "ballot" / Int32ub,
        "value_ballot" / Int32ub,
        "value" / Value,
    ),
    "PREEMPTED": Struct("aid" / Int32ub, "iid" / Int32ub, "ballot" / Int32ub),
    "REPEAT": Struct("from_iid" / Int32ub, "to_iid" / Int32ub),
    "TRIM": Struct("iid" / Int32ub),
    "ACCEPTOR_STATE": Struct("aid" / Int32ub, "trim_iid" / Int32ub),
    "CLIENT_VALUE": Struct("value" / Value),
    "LEARNER_HI": Pass,
    "LEARNER_DEL": Pass,
    "ACCEPTOR_OK": Pass,
    # kpaxos extension (type 100 and up: never sent by the original)
    "PROPOSER_HI": Struct("pid" / Int32ub, "decided_below" / Int32ub),
    "LEARNER_STUCK": Struct("iid" / Int32ub),
    "LEARNER_FETCH": Struct(
        "session" / Int32ub,
        "from_iid" / Int32ub,
        "part" / Int32ub,
        "cursor_high" / Int32ub,
        "cursor_low" / Int32ub,
    ),
    "LEARNER_HISTORY": Struct(
        "session" / Int32ub,
        "part" / Int32ub,
        "first_iid" / Int32ub,
        "end_iid" / Int32ub,
        "total" / Int32ub,
        "cursor_high" / Int32ub,
        "cursor_low" / Int32ub,
        "value" / Value,
    ),
    "LEARNER_BARRIER": Struct("session" / Int32ub),
    "BARRIER_ANSWER": Struct("aid" / Int32ub, "session" / Int32ub, "accepted_iid" / Int32ub),
}

TYPE = "type" / Enum(Int32ub, MessageType)

#: The whole datagram: a type word, the body it selects, and nothing after it.
DATAGRAM = Struct(
    TYPE,
    "body" / Switch(this.type, BODIES, default=Error),
    Terminated,
)

# Fields of each message in wire order; the dataclasses of wire.messages name them
# the same (a test holds the two together).
_FIELDS: dict[MessageType, tuple[str, ...]] = {
    kind: field_names(BODIES[kind.name]) for kind in MessageType
}

_CLASSES: dict[MessageType, type[Message]] = {t: c for c, t in MESSAGE_TYPES.items()}


def parse_with_construct(data: bytes) -> Message:
    """Decode with the construct declaration (the reference; slow)."""
    try:
        parsed = DATAGRAM.parse(data)
    except ConstructError as exc:
        raise WireError(f"malformed datagram: {exc}") from None
    kind = MessageType[str(parsed.type)]
    body = parsed.body or {}
    return _CLASSES[kind](**{name: body[name] for name in _FIELDS[kind]})


def build_with_construct(msg: Message) -> bytes:
    """Encode with the construct declaration (the reference; slow)."""
    kind = MESSAGE_TYPES[type(msg)]
    body = {name: getattr(msg, name) for name in _FIELDS[kind]}
    try:
        return bytes(DATAGRAM.build({"type": kind.name, "body": body or None}))
    except ConstructError as exc:
        raise WireError(f"cannot encode {msg!r}: {exc}") from None


# The hot path: per message type the struct.Struct of its fixed part, type word
# included (a value contributes its length word), made from DATAGRAM's declarations.
_TYPE_WORD = fast_struct(TYPE)
_HEADS: dict[MessageType, struct.Struct] = {
    kind: fast_struct(Struct(TYPE, *(BODIES[kind.name].subcons if _FIELDS[kind] else ())))
    for kind in MessageType
}
_U32_MAX = 0xFFFFFFFF

#: The largest value a datagram carries: behind the longest header of a message with
#: a proposed value (PROMISE's and ACCEPTED's, 6 words). LEARNER_HISTORY's pieces of
#: history are no proposed values: their sender sizes them to fit.
MAX_VALUE_SIZE = MAX_DATAGRAM_SIZE - max(
    _HEADS[kind].size for kind, names in _FIELDS.items()
    if "value" in names and kind < FIRST_EXTENSION
)


def encode(msg: Message) -> bytes:
    """The datagram bytes of ``msg``.

    Raises:
        WireError: a field does not fit its u32 word, or the datagram exceeds
            :data:`MAX_DATAGRAM_SIZE`.
    """
    kind = MESSAGE_TYPES[type(msg)]
    names = _FIELDS[kind]
    ints = [kind.value]
    value: bytes | None = None
    for name in names:
        field = getattr(msg, name)
        if name == "value":
            value = field
            ints.append(len(field))
        else:
            ints.append(field)
    for number in ints:
        if not 0 <= number <= _U32_MAX:
            raise WireError(f"cannot encode {type(msg).__name__}: {number} is not a u32")
    head = _HEADS[kind].pack(*ints)
    data = head if value is None else head + bytes(value)
    if len(data) > MAX_DATAGRAM_SIZE:
        raise WireError(f"{type(msg).__name__} of {len(data)} bytes exceeds one datagram")
    return data


# Per type word: (type, fixed words after the type word, their Struct, has a value,
# class), so that decoding looks one thing up rather than walking the field names.
_Decoding = tuple[MessageType, int, struct.Struct | None, bool, Callable[..., Message]]
_DECODING: dict[int, _Decoding] = {
    kind.value: (
        kind,
        len(names),
        fast_struct(BODIES[kind.name]) if names else None,  # after the type word
        bool(names) and names[-1] == "value",
        _CLASSES[kind],
    )
    for kind, names in _FIELDS.items()
}


def decode_untrusted(data: bytes) -> Message:
    """The message in a datagram from the network.

    Raises:
        WireError: and nothing else, for any malformed input.
    """
    size = len(data)
    if size < 4:
        raise WireError(f"datagram of {size} bytes has no type word")
    (type_word,) = _TYPE_WORD.unpack_from(data)
    try:
        kind, count, words, has_value, cls = _DECODING[type_word]
    except KeyError:
        raise WireError(f"unknown message type {type_word}") from None
    fixed_end = 4 + 4 * count  # a value contributes its length word
    if size < fixed_end:
        raise WireError(f"{kind.name} truncated: {size} bytes, need at least {fixed_end}")
    if words is None:
        if size != fixed_end:
            raise WireError(f"{kind.name} has {size - fixed_end} trailing bytes")
        return cls()
    ints = words.unpack_from(data, 4)
    if has_value:
        length = ints[-1]
        if size != fixed_end + length:
            raise WireError(
                f"{kind.name} value length {length} does not match the "
                f"{size - fixed_end} bytes after the header"
            )
        return cls(*ints[:-1], bytes(data[fixed_end:]))
    if size != fixed_end:
        raise WireError(f"{kind.name} has {size - fixed_end} trailing bytes")
    return cls(*ints)
