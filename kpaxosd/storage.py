"""Durable acceptor state in LMDB, as libpaxos3 keeps it.

The endpoint hands over every Persist effect of one batch of received datagrams in
one call: they are written in one transaction, synced to disk, before any message
of that batch leaves (group commit). A restarted acceptor loads its records back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import lmdb

from kpaxosd.paxos.effects import Persist
from wire.storage import (
    TRIM_KEY,
    TRIM_RECORD,
    iid_of_key,
    instance_key,
    pack_instance,
    unpack_instance,
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
