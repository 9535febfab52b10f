"""What makes two proposed values the same value: the identity of a client value.

A client that does not see its value decided within a second sends it again,
byte for byte. Proposers and learners recognise the copy by the value's *origin*,
a pair of integers read from the value's own bytes:

- a kpaxos envelope (:mod:`wire.envelope`) is ``(client_id, seq)``. Its client id
  is a u64, so the first element is >= 0;
- an original ``struct client_value`` (:mod:`wire.original`) is
  ``(-1 - (client_id & 0xFFFFFFFF), tv_sec * 1_000_000 + tv_usec)``: the first
  element is below 0, so no original value shares an origin with an envelope. It
  counts as one only when its size field counts exactly the bytes after the
  32-byte header (what the original client always sent) and ``0 <= tv_usec <
  1_000_000`` (a real ``struct timeval``; with it the pair is one-to-one with
  ``(client_id, tv_sec, tv_usec)``, so two different timestamps never merge);
- any other value has no origin: every copy of it is a proposal of its own.

An envelope is recognised first: a value that happens to read as both is an
envelope. Only the envelope is stripped for readers; an original value is
delivered whole, as the original learner delivered it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass

from wire.envelope import ENVELOPE_HEAD, ENVELOPE_OVERHEAD
from wire.envelope import MAGIC as ENVELOPE_MAGIC
from wire.layout import fast_struct
from wire.original import CLIENT_VALUE_HEADER, CLIENT_VALUE_HEADER_SIZE

#: Who proposed a value and which of its values it is; see the module docstring.
Origin = tuple[int, int]

_USEC_PER_SEC = 1_000_000
_U32_MASK = 0xFFFFFFFF
# A struct client_value's header read without building its object (a learner reads
# the identity of every value it delivers, a proposer of every value it queues), its
# client id unsigned: that is ``client_id & 0xFFFFFFFF``, what an origin keeps.
_ORIGINAL_HEAD = fast_struct(CLIENT_VALUE_HEADER, unsigned=("client_id",))
# The envelope magic read as that field: a value of at least a header's size is an
# envelope when the two match (the only field the two headers overlap in).
_ENVELOPE_MAGIC_ID = int.from_bytes(ENVELOPE_MAGIC, sys.byteorder)


def _original(client_id_u32: int, tv_sec: int, tv_usec: int) -> Origin:
    # The one place the origin of an original value is reckoned (module docstring).
    return (-1 - client_id_u32, tv_sec * _USEC_PER_SEC + tv_usec)


@dataclass(frozen=True, slots=True)
class IdentifiedValue:
    """A decided value as a learner hands it on."""

    #: None: a value without identity (never merged with another).
    origin: Origin | None
    #: What readers get: an envelope's payload, any other value whole.
    payload: bytes


def original_origin(client_id: int, tv_sec: int, tv_usec: int) -> Origin:
    """The origin of an original ``struct client_value`` with these header fields.

    Raises:
        ValueError: ``tv_usec`` is not in ``0..999_999`` (such a value has no origin).
    """
    if not 0 <= tv_usec < _USEC_PER_SEC:
        raise ValueError(f"tv_usec {tv_usec} is not a microsecond count")
    return _original(client_id & _U32_MASK, tv_sec, tv_usec)


def is_original_origin(origin: Origin) -> bool:
    """Whether ``origin`` names an original ``struct client_value`` (not an envelope)."""
    return origin[0] < 0


def origin_untrusted(value: bytes) -> Origin | None:
    """The origin of a proposed or decided value, None when it has none."""
    size = len(value)
    if size >= ENVELOPE_OVERHEAD and value[:4] == ENVELOPE_MAGIC:
        _, client_id, seq = ENVELOPE_HEAD.unpack_from(value)
        return (client_id, seq)
    if size >= CLIENT_VALUE_HEADER_SIZE:
        client_id, tv_sec, tv_usec, length = _ORIGINAL_HEAD.unpack_from(value)
        if length == size - CLIENT_VALUE_HEADER_SIZE and 0 <= tv_usec < _USEC_PER_SEC:
            return _original(client_id, tv_sec, tv_usec)
    return None


def origins_untrusted(values: Iterable[bytes]) -> tuple[list[Origin | None], bool]:
    """:func:`origin_untrusted` of each of ``values``, in order, in one pass, and
    whether every one is an original value (delivered whole, with an origin).

    A learner reads the origin of every client value of every decided batch. Most
    are original values: their header is read first, and an envelope is told by
    its magic in the header's first four bytes (the only field it overlaps).
    """
    origins: list[Origin | None] = []
    append = origins.append
    all_original = True
    original_head, envelope_magic_id = _ORIGINAL_HEAD.unpack_from, _ENVELOPE_MAGIC_ID
    header_size, usec_per_sec, original = CLIENT_VALUE_HEADER_SIZE, _USEC_PER_SEC, _original
    for value in values:
        size = len(value)
        if size >= header_size:
            client_id, tv_sec, tv_usec, length = original_head(value)
            if client_id == envelope_magic_id:
                pass
            elif length == size - header_size and 0 <= tv_usec < usec_per_sec:
                append(original(client_id, tv_sec, tv_usec))
                continue
            else:
                append(None)
                all_original = False
                continue
        append(origin_untrusted(value))
        all_original = False
    return origins, all_original


def payload_of(value: bytes, origin: Origin | None) -> bytes:
    """What a reader of decided values gets of ``value``, whose origin is ``origin``
    (:func:`origin_untrusted`): an envelope's payload, any other value whole."""
    if origin is not None and origin[0] >= 0:
        return value[ENVELOPE_OVERHEAD:]
    return value


def identify_untrusted(value: bytes) -> IdentifiedValue:
    """The origin of ``value`` and what a reader of decided values gets of it."""
    origin = origin_untrusted(value)
    return IdentifiedValue(origin, bytes(payload_of(value, origin)))
