"""How a durable acceptor lays out its records on disk (LMDB keys and values).

Keys are big-endian so that LMDB's byte order is iid order, which lets a trim
delete a prefix with one cursor walk.
"""

from __future__ import annotations

from construct import GreedyBytes, Int32ub, Struct

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
