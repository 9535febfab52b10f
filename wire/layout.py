"""The fast codec of a layout, derived from its construct declaration.

construct is the specification of every byte layout here, and the cold path; parsing
every datagram with it would be far too slow. The hot paths use ``struct.Struct``
objects, and those are made from the declarations by :func:`fast_struct`, never
written a second time by hand: one layout, one declaration.
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Iterator

from construct import (
    Adapter,
    Array,
    Bytes,
    Const,
    Construct,
    FormatField,
    GreedyBytes,
    Padded,
    Pass,
    Prefixed,
    Rebuild,
    Renamed,
    Struct,
    Terminated,
)


def _fields(declaration: Construct) -> Iterator[tuple[str | None, Construct]]:
    """``(name, construct)`` of each field of ``declaration`` in order, unwrapped."""
    subcons = declaration.subcons if isinstance(declaration, Struct) else [declaration]
    for subcon in subcons:
        name = None
        while isinstance(subcon, Renamed):
            name = name or subcon.name
            subcon = subcon.subcon
        yield name, subcon


def _format(name: str | None, field: Construct, unsigned: Collection[str]) -> tuple[str, str]:
    """``(byte order, struct format)`` of a fixed-size field (byte order "" if none)."""
    if isinstance(field, Adapter | Rebuild | Const):  # an Enum, a count, a magic
        return _format(name, field.subcon, unsigned)
    if isinstance(field, FormatField):
        order, code = field.fmtstr[0], field.fmtstr[1:]
        if name in unsigned:
            code = code.upper()
        return order, code
    if isinstance(field, Bytes) and isinstance(field.length, int):
        return "", f"{field.length}s"
    if isinstance(field, Padded) and field.subcon is Pass and isinstance(field.length, int):
        return "", f"{field.length}x"
    raise TypeError(f"field {name!r} ({field!r}) has no fixed-size struct format")


def fast_struct(declaration: Construct, *, unsigned: Collection[str] = ()) -> struct.Struct:
    """The ``struct.Struct`` of the fixed-size fields at the start of ``declaration``.

    A length-prefixed field (``Prefixed``) contributes its length word and ends the
    fixed part; an ``Array``, ``GreedyBytes`` or ``Terminated`` ends it.
    The names in ``unsigned`` are signed integers read as unsigned ones of the same
    size (a fast path that wants the bits, not the sign).

    Raises:
        TypeError: a field before the end of the fixed part has no struct format, or
            the integers do not share one byte order.
    """
    orders: set[str] = set()
    codes: list[str] = []
    for name, field in _fields(declaration):
        if isinstance(field, Prefixed):
            order, code = _format(name, field.lengthfield, unsigned)
            orders.add(order)
            codes.append(code)
            break
        if isinstance(field, Array) or field is GreedyBytes or field is Terminated:
            break
        order, code = _format(name, field, unsigned)
        if order:
            orders.add(order)
        codes.append(code)
    if len(orders) > 1:
        raise TypeError(f"{declaration!r} mixes byte orders {sorted(orders)}")
    return struct.Struct((orders.pop() if orders else "=") + "".join(codes))


def field_names(declaration: Construct) -> tuple[str, ...]:
    """The names of the named fields of ``declaration``, in order (``Pass``: none)."""
    if declaration is Pass:
        return ()
    return tuple(name for name, _ in _fields(declaration) if name is not None)


__all__ = ["fast_struct", "field_names"]
