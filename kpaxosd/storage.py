"""Durable state in LMDB: the acceptor's, as libpaxos3 keeps it, and the learner's log.

The endpoint hands over every Persist effect of one batch of received datagrams in
one call: they are written in one transaction, synced to disk, before any message
of that batch leaves (group commit). A restarted acceptor loads its records back.

The learner's log (:class:`LearnerStore`) keeps the values the learner delivered,
by position, with the origin each carried, its gaps, and the instance it delivers
next: committed before readers see them, and bounded as the device log is.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import lmdb

from kpaxosd.paxos.effects import Persist
from wire.device import iid_of
from wire.identity import Origin
from wire.storage import (
    KEPT_FROM_KEY,
    KEPT_FROM_RECORD,
    LOG_GAP,
    MEMORY_KEY,
    MEMORY_RECORD,
    NEXT_KEY,
    NEXT_RECORD,
    TRIM_KEY,
    TRIM_RECORD,
    iid_of_key,
    instance_key,
    log_key,
    pack_instance,
    pack_log_value,
    position_of_key,
    unpack_instance,
    unpack_log_value,
)

log = logging.getLogger("kpaxos.storage")

#: LMDB reserves this much address space; the file grows only as records need.
DEFAULT_MAP_SIZE = 4 << 30


class StorageError(Exception):
    """The acceptor's store cannot be opened or written; the message says why."""


class AcceptorStore:
    def __init__(self, path: str | Path, *, map_size: int = DEFAULT_MAP_SIZE) -> None:
        self.path = Path(path)
        self._map_size = map_size
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot open the acceptor store at {self.path}: {exc}") from None
        self._env, self._records = self._open(create=True)
        # A failed commit may leave LMDB's environment unusable (MDB_PANIC after a
        # failed meta-page write): it is opened afresh before its next use.
        self._broken = False

    def _open(self, *, create: bool) -> tuple[lmdb.Environment, lmdb._Database]:
        try:
            env = lmdb.open(
                str(self.path), map_size=self._map_size, subdir=True, sync=True,
                metasync=True, max_dbs=1, create=create,
            )
            return env, env.open_db(b"instances")
        except (OSError, lmdb.Error) as exc:
            raise StorageError(f"cannot open the acceptor store at {self.path}: {exc}") from None

    def _usable(self) -> None:
        if self._broken:
            self._env.close()
            # Never created afresh: an empty store in place of a vanished one would
            # make the acceptor forget every promise it made.
            self._env, self._records = self._open(create=False)
            self._broken = False

    def load(self) -> tuple[list[Persist], int]:
        """Every record kept, in iid order, and the trim point.

        Raises:
            StorageError: the store cannot be read.
        """
        try:
            self._usable()
            with self._env.begin() as txn:
                raw_trim = txn.get(TRIM_KEY)
                trim_iid = TRIM_RECORD.parse(raw_trim).trim_iid if raw_trim else 0
                records = []
                for key, data in txn.cursor(db=self._records):
                    promised, accepted, value = unpack_instance(data)
                    records.append(Persist(iid_of_key(key), promised, accepted, value))
        except (OSError, lmdb.Error) as exc:
            self._broken = True
            raise StorageError(f"reading the acceptor store at {self.path} failed: {exc}") from None
        return records, trim_iid

    def commit(self, persists: Iterable[Persist], trim_iid: int | None = None) -> None:
        """Write ``persists`` (and forget up to ``trim_iid``) durably, in one transaction.

        Raises:
            StorageError: the write failed (disk full, map full): the acceptor must
                not answer what it could not make durable.
        """
        try:
            self._usable()
            with self._env.begin(write=True) as txn:
                for record in persists:
                    txn.put(
                        instance_key(record.iid),
                        pack_instance(record.promised_ballot, record.accepted_ballot,
                                      record.value),
                        db=self._records,
                    )
                if trim_iid is not None:
                    self._trim(txn, trim_iid)
        except (OSError, lmdb.Error) as exc:
            self._broken = True
            raise StorageError(f"writing the acceptor store at {self.path} failed: {exc}") from None

    def durable(self, iids: Iterable[int], trim_up_to: int | None = None,
                ) -> tuple[list[Persist], int]:
        """What the store holds of ``iids`` and the trim point, after a failed commit.

        With ``trim_up_to`` (a trim point that failed to persist), also every record
        between the stored trim point and it: the acceptor forgot them in memory.

        Raises:
            StorageError: the store cannot even be read.
        """
        try:
            self._usable()
            with self._env.begin() as txn:
                raw_trim = txn.get(TRIM_KEY)
                trim_iid = TRIM_RECORD.parse(raw_trim).trim_iid if raw_trim else 0
                found: dict[int, Persist] = {}
                for iid in iids:
                    data = txn.get(instance_key(iid), db=self._records)
                    if data is not None:
                        found[iid] = Persist(iid, *unpack_instance(data))
                if trim_up_to is not None and trim_up_to > trim_iid:
                    cursor = txn.cursor(db=self._records)
                    if cursor.set_range(instance_key(trim_iid + 1)):
                        for key, data in cursor:
                            iid = iid_of_key(key)
                            if iid > trim_up_to:
                                break
                            found[iid] = Persist(iid, *unpack_instance(data))
        except (OSError, lmdb.Error) as exc:
            self._broken = True
            raise StorageError(f"reading the acceptor store at {self.path} failed: {exc}") from None
        return sorted(found.values(), key=lambda record: record.iid), trim_iid

    def _trim(self, txn: lmdb.Transaction, trim_iid: int) -> None:
        txn.put(TRIM_KEY, TRIM_RECORD.build({"trim_iid": trim_iid}))
        cursor = txn.cursor(db=self._records)
        if not cursor.first():
            return
        while cursor.key() and iid_of_key(bytes(cursor.key())) <= trim_iid:
            if not cursor.delete():
                break

    def close(self) -> None:
        self._env.close()


@dataclass(frozen=True, slots=True)
class LoggedValue:
    position: int
    value: bytes
    origin: Origin | None


@dataclass(frozen=True, slots=True)
class LoggedGap:
    position: int
    first_iid: int
    next_iid: int


LogEntry = LoggedValue | LoggedGap


@dataclass(frozen=True, slots=True)
class LearnerMemory:
    """The learner's exactly-once memory just before it delivered ``next_iid``."""

    next_iid: int
    memory: bytes


@dataclass
class LearnerLog:
    """What a learner store holds: its entries in position order, the instance the
    learner delivers next (0: it never delivered anything), and its exactly-once
    memory at an instance whose values the entries hold from there on (None: a
    store from before memories were kept), and the instance from which the
    entries hold every value delivered, gaps aside (None: a store from before that
    was kept)."""

    entries: list[LogEntry] = field(default_factory=list)
    next_iid: int = 0
    memory: LearnerMemory | None = None
    kept_from: int | None = None

    def whole_from(self) -> int:
        """The first instance from which the entries hold every value the learner
        delivered, gaps aside."""
        if self.kept_from is not None:
            return self.kept_from
        # An older store: only its oldest entry can tell (an instance 1 counts as
        # whole; any later one may have been cut into).
        oldest = iid_of(self.entries[0].position) if self.entries else 1
        return 1 if oldest <= 1 else oldest + 1


class LearnerStore:
    """The learner's delivered values (and gaps) by position, in LMDB."""

    def __init__(self, path: str | Path, *, map_size: int = DEFAULT_MAP_SIZE) -> None:
        self.path = Path(path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._env = lmdb.open(str(self.path), map_size=map_size, subdir=True, sync=True,
                                  metasync=True, max_dbs=2)
            self._values = self._env.open_db(b"values")
            self._gaps = self._env.open_db(b"gaps")
        except (OSError, lmdb.Error) as exc:
            raise StorageError(f"cannot open the learner log at {self.path}: {exc}") from None

    def load(self) -> LearnerLog:
        """Every entry kept, in position order, and the next instance.

        Raises:
            StorageError: the store cannot be read.
        """
        try:
            with self._env.begin() as txn:
                raw_next = txn.get(NEXT_KEY)
                found = LearnerLog(next_iid=NEXT_RECORD.parse(raw_next).next_iid
                                   if raw_next else 0)
                raw_kept_from = txn.get(KEPT_FROM_KEY)
                if raw_kept_from is not None:
                    found.kept_from = KEPT_FROM_RECORD.parse(raw_kept_from).iid
                raw_memory = txn.get(MEMORY_KEY)
                if raw_memory is not None:
                    memory = MEMORY_RECORD.parse(raw_memory)
                    found.memory = LearnerMemory(memory.next_iid, bytes(memory.memory))
                entries: list[LogEntry] = []
                for key, data in txn.cursor(db=self._values):
                    origin, value = unpack_log_value(data)
                    entries.append(LoggedValue(position_of_key(key), value, origin))
                for key, data in txn.cursor(db=self._gaps):
                    gap = LOG_GAP.parse(data)
                    entries.append(LoggedGap(position_of_key(key), gap.first_iid,
                                             gap.next_iid))
        except (OSError, lmdb.Error, ValueError) as exc:
            raise StorageError(f"reading the learner log at {self.path} failed: {exc}") from None
        found.entries = sorted(entries, key=lambda entry: entry.position)
        return found

    def commit(self, entries: Iterable[LogEntry], next_iid: int, forget_below: int,
               memory: LearnerMemory | None = None, *, kept_from: int | None = None,
               ) -> None:
        """Write ``entries``, ``next_iid`` and ``memory`` (None: the one kept stays)
        durably, and forget every entry below the position ``forget_below``, in one
        transaction; ``kept_from``: the instance from which the log then holds every
        value delivered, gaps aside (None: as before).

        Raises:
            StorageError: the write failed (disk full, map full).
        """
        try:
            with self._env.begin(write=True) as txn:
                for entry in entries:
                    if isinstance(entry, LoggedValue):
                        txn.put(log_key(entry.position),
                                pack_log_value(entry.origin, entry.value), db=self._values)
                    else:
                        txn.put(log_key(entry.position),
                                LOG_GAP.build({"first_iid": entry.first_iid,
                                               "next_iid": entry.next_iid}), db=self._gaps)
                txn.put(NEXT_KEY, NEXT_RECORD.build({"next_iid": next_iid}))
                if memory is not None:
                    txn.put(MEMORY_KEY, MEMORY_RECORD.build(
                        {"next_iid": memory.next_iid, "memory": memory.memory}))
                for db in (self._values, self._gaps):
                    _delete_below(txn.cursor(db=db), log_key(forget_below))
                if kept_from is not None:
                    txn.put(KEPT_FROM_KEY, KEPT_FROM_RECORD.build({"iid": kept_from}))
        except (OSError, lmdb.Error) as exc:
            raise StorageError(f"writing the learner log at {self.path} failed: {exc}") from None

    def close(self) -> None:
        self._env.close()


def _delete_below(cursor: lmdb.Cursor, key: bytes) -> None:
    if not cursor.first():
        return
    while cursor.key() and bytes(cursor.key()) < key:
        if not cursor.delete():
            break
