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

from dataclasses import dataclass

from wire.envelope import unwrap_untrusted
from wire.original import unpack_client_value_untrusted

#: Who proposed a value and which of its values it is; see the module docstring.
Origin = tuple[int, int]

_USEC_PER_SEC = 1_000_000
_U32_MASK = 0xFFFFFFFF


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
    return (-1 - (client_id & _U32_MASK), tv_sec * _USEC_PER_SEC + tv_usec)


def is_original_origin(origin: Origin) -> bool:
    """Whether ``origin`` names an original ``struct client_value`` (not an envelope)."""
    return origin[0] < 0


def origin_untrusted(value: bytes) -> Origin | None:
    """The origin of a proposed or decided value, None when it has none."""
    return identify_untrusted(value).origin


def identify_untrusted(value: bytes) -> IdentifiedValue:
    """The origin of ``value`` and what a reader of decided values gets of it."""
    envelope = unwrap_untrusted(value)
    if envelope is not None:
        return IdentifiedValue((envelope.client_id, envelope.seq), envelope.payload)
    original = unpack_client_value_untrusted(value)
    if original is not None and 0 <= original.tv_usec < _USEC_PER_SEC:
        origin = original_origin(original.client_id, original.tv_sec, original.tv_usec)
        return IdentifiedValue(origin, bytes(value))
    return IdentifiedValue(None, bytes(value))
