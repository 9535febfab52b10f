from __future__ import annotations

from pathlib import Path

from kpaxosd.paxos.effects import Persist
from kpaxosd.storage import AcceptorStore
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
