"""How a durable acceptor, and a durable learner, lay out their records on disk (LMDB).

Keys are big-endian so that LMDB's byte order is iid order, which lets a trim
delete a prefix with one cursor walk.
"""

from __future__ import annotations

from construct import BytesInteger, GreedyBytes, Int8ub, Int32ub, Int64sb, Int64ub, Struct

from wire.layout import fast_struct

#: The key of instance ``iid``'s record.
INSTANCE_KEY = Struct("iid" / Int32ub)
#: An acceptor's record of one instance: what it promised and what it accepted.
INSTANCE_RECORD = Struct(
    "promised_ballot" / Int32ub,
    "accepted_ballot" / Int32ub,
    "value" / GreedyBytes,
)
#: The value under :data:`TRIM_KEY`: every instance up to it was forgotten.
TRIM_RECORD = Struct("trim_iid" / Int32ub)
TRIM_KEY = b"trim"

_KEY = fast_struct(INSTANCE_KEY)
_RECORD_HEAD = fast_struct(INSTANCE_RECORD)  # the two ballots


def instance_key(iid: int) -> bytes:
    return _KEY.pack(iid)


def iid_of_key(key: bytes) -> int:
    (iid,) = _KEY.unpack(key)
    return int(iid)


def pack_instance(promised_ballot: int, accepted_ballot: int, value: bytes) -> bytes:
    return _RECORD_HEAD.pack(promised_ballot, accepted_ballot) + value


def unpack_instance(data: bytes) -> tuple[int, int, bytes]:
    promised, accepted = _RECORD_HEAD.unpack_from(data)
    return promised, accepted, bytes(data[_RECORD_HEAD.size :])


# -- the durable learner log (kpaxosd.storage.LearnerStore)

#: The key of a delivered value, or of a gap, in the learner's log: its position.
LOG_KEY = Struct("position" / Int64ub)
#: A delivered value, with the origin its exactly-once memory was shown. has_origin:
#: 0 none; 1 the origin is client_id and seq; 2 an origin beyond 64 signed bits (an
#: envelope's u64 fields, a timestamp past 2**63 microseconds): client_id and seq are
#: 0 and :data:`WIDE_ORIGIN` opens the value.
LOG_VALUE = Struct(
    "has_origin" / Int8ub,
    "client_id" / Int64sb,
    "seq" / Int64sb,
    "value" / GreedyBytes,
)
WIDE_ORIGIN = Struct(
    "client_id" / BytesInteger(16, signed=True),
    "seq" / BytesInteger(16, signed=True),
)
#: A gap (instances trimmed before the learner learned them), at its position.
LOG_GAP = Struct("first_iid" / Int32ub, "next_iid" / Int32ub)
#: The value under :data:`NEXT_KEY`: the instance the learner delivers next.
NEXT_RECORD = Struct("next_iid" / Int32ub)
NEXT_KEY = b"next"
#: The value under :data:`MEMORY_KEY`: the learner's exactly-once memory
#: (:data:`wire.exactly_once.EXACTLY_ONCE_MEMORY`) as it was just before it delivered
#: ``next_iid``; the log keeps every value from that instance on.
MEMORY_RECORD = Struct("next_iid" / Int32ub, "memory" / GreedyBytes)
MEMORY_KEY = b"memory"
#: The value under :data:`KEPT_FROM_KEY`: the log holds every value the learner
#: delivered from this instance on (gaps aside); a log from before it was kept has
#: no such key.
KEPT_FROM_RECORD = Struct("iid" / Int32ub)
KEPT_FROM_KEY = b"kept-from"

_LOG_KEY = fast_struct(LOG_KEY)
_LOG_VALUE_HEAD = fast_struct(LOG_VALUE)
_WIDE_ORIGIN_SIZE = WIDE_ORIGIN.sizeof()
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


def log_key(position: int) -> bytes:
    return _LOG_KEY.pack(position)


def position_of_key(key: bytes) -> int:
    (position,) = _LOG_KEY.unpack(key)
    return int(position)


def pack_log_value(origin: tuple[int, int] | None, value: bytes) -> bytes:
    if origin is None:
        return _LOG_VALUE_HEAD.pack(0, 0, 0) + value
    client_id, seq = origin
    if _I64_MIN <= client_id <= _I64_MAX and _I64_MIN <= seq <= _I64_MAX:
        return _LOG_VALUE_HEAD.pack(1, client_id, seq) + value
    wide: bytes = WIDE_ORIGIN.build({"client_id": client_id, "seq": seq})
    return _LOG_VALUE_HEAD.pack(2, 0, 0) + wide + value


def unpack_log_value(data: bytes) -> tuple[tuple[int, int] | None, bytes]:
    """Raises:
        ValueError: not a record :func:`pack_log_value` makes."""
    if len(data) < _LOG_VALUE_HEAD.size:
        raise ValueError(f"a logged value of {len(data)} bytes")
    has_origin, client_id, seq = _LOG_VALUE_HEAD.unpack_from(data)
    value = bytes(data[_LOG_VALUE_HEAD.size :])
    if has_origin == 0:
        return None, value
    if has_origin == 1:
        return (client_id, seq), value
    if has_origin == 2 and len(value) >= _WIDE_ORIGIN_SIZE:
        wide = WIDE_ORIGIN.parse(value[:_WIDE_ORIGIN_SIZE])
        return (wide.client_id, wide.seq), value[_WIDE_ORIGIN_SIZE:]
    raise ValueError(f"a logged value whose origin flag is {has_origin}")
