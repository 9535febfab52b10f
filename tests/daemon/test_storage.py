from __future__ import annotations

from pathlib import Path

import pytest

from kpaxosd.paxos.effects import Persist
from kpaxosd.storage import AcceptorStore, StorageError
from wire.storage import INSTANCE_RECORD, instance_key, pack_instance


def test_records_survive_reopening(tmp_path: Path) -> None:
    store = AcceptorStore(tmp_path / "acceptor-0")
    store.commit([Persist(2, 21, 0, b""), Persist(1, 11, 11, b"one")])
    store.commit([Persist(2, 31, 31, b"two")])
    store.close()

    reopened = AcceptorStore(tmp_path / "acceptor-0")
    assert reopened.load() == ([Persist(1, 11, 11, b"one"), Persist(2, 31, 31, b"two")], 0)
    reopened.close()


def test_trim_forgets_a_prefix_and_remembers_the_point(tmp_path: Path) -> None:
    store = AcceptorStore(tmp_path / "a")
    store.commit([Persist(iid, 11, 11, b"v%d" % iid) for iid in range(1, 300)])
    store.commit([Persist(300, 11, 11, b"last")], trim_iid=256)
    records, trim_iid = store.load()
    assert trim_iid == 256
    assert [r.iid for r in records] == list(range(257, 301))
    store.close()


def test_the_record_layout_is_the_declared_one() -> None:
    data = pack_instance(7, 5, b"xyz")
    assert INSTANCE_RECORD.parse(data) == {"promised_ballot": 7, "accepted_ballot": 5,
                                           "value": b"xyz"}
    # Big-endian keys make LMDB's byte order the iid order.
    assert instance_key(255) < instance_key(256) < instance_key(65536)


def test_durable_reads_back_what_a_failed_commit_touched(tmp_path: Path) -> None:
    store = AcceptorStore(tmp_path / "a")
    store.commit([Persist(iid, 11, 11, b"v%d" % iid) for iid in range(1, 6)], trim_iid=1)
    # iid 9 was never stored; a trim to 4 failed, so 2 to 4 come back too.
    records, trim_iid = store.durable([5, 9], trim_up_to=4)
    assert trim_iid == 1
    assert [r.iid for r in records] == [2, 3, 4, 5]
    assert records[-1] == Persist(5, 11, 11, b"v5")
    assert store.durable([9]) == ([], 1)
    store.close()


def test_a_commit_to_a_full_store_fails_and_the_store_goes_on(tmp_path: Path) -> None:
    # A map of 64 KiB fills after a few records: lmdb's MapFullError, as a full disk.
    store = AcceptorStore(tmp_path / "a", map_size=64 << 10)
    store.commit([Persist(1, 11, 11, b"first")])
    with pytest.raises(StorageError, match="failed"):
        store.commit([Persist(iid, 11, 11, bytes(4096)) for iid in range(2, 40)])
    assert store.durable([1, 2]) == ([Persist(1, 11, 11, b"first")], 0)
    store.commit([Persist(2, 11, 11, b"second")])  # a commit that fits succeeds again
    assert store.load() == ([Persist(1, 11, 11, b"first"), Persist(2, 11, 11, b"second")], 0)
    store.close()
