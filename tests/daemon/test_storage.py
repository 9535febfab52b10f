from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.valuelog import ValueLog
from kpaxosd.decisions import Decisions, DeviceLogFeed, DurableLogFeed
from kpaxosd.paxos.dedupe import OriginFilter
from kpaxosd.paxos.effects import Adopted, Deliver, Persist
from kpaxosd.storage import (
    AcceptorStore,
    LearnerLog,
    LearnerMemory,
    LearnerStore,
    LoggedGap,
    LoggedValue,
    StorageError,
)
from wire.device import position_of
from wire.storage import (
    INSTANCE_RECORD,
    LOG_VALUE,
    WIDE_ORIGIN,
    instance_key,
    pack_instance,
    pack_log_value,
    unpack_log_value,
)


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


# -- the learner's log


def test_the_learner_log_keeps_values_gaps_and_the_next_instance(tmp_path: Path) -> None:
    store = LearnerStore(tmp_path / "learner")
    assert store.load() == LearnerLog([], 0)
    first = [LoggedValue(position_of(1, 0), b"a", (7, 1)), LoggedValue(position_of(1, 1), b"b",
                                                                       None)]
    store.commit(first, 2, 0)
    store.commit([LoggedGap(position_of(2, 0), 2, 5), LoggedValue(position_of(5, 0), b"e",
                                                                  (-3, 10**15))], 6, 0)
    store.close()
    store = LearnerStore(tmp_path / "learner")
    logged = store.load()
    assert logged == LearnerLog([*first, LoggedGap(position_of(2, 0), 2, 5),
                                 LoggedValue(position_of(5, 0), b"e", (-3, 10**15))], 6)
    # What the device log let go of goes from the disk too.
    store.commit([], 6, position_of(5, 0))
    assert store.load() == LearnerLog([LoggedValue(position_of(5, 0), b"e", (-3, 10**15))], 6)
    store.close()


def test_the_learner_log_layout_is_the_declared_one() -> None:
    assert LOG_VALUE.build({"has_origin": 1, "client_id": 7, "seq": 2, "value": b"v"}) \
        == pack_log_value((7, 2), b"v")
    assert unpack_log_value(pack_log_value(None, b"w")) == (None, b"w")
    wide = WIDE_ORIGIN.build({"client_id": 2**64 - 1, "seq": 3})
    assert LOG_VALUE.build({"has_origin": 2, "client_id": 0, "seq": 0, "value": wide + b"v"}) \
        == pack_log_value((2**64 - 1, 3), b"v")


@given(st.tuples(st.integers(-(2**127), 2**127 - 1), st.integers(-(2**127), 2**127 - 1))
       | st.none(), st.binary(max_size=40))
def test_every_origin_a_value_can_have_is_logged(origin: tuple[int, int] | None,
                                                  value: bytes) -> None:
    """An envelope's client id and seq are u64s, an original timestamp may pass 2**63
    microseconds: a learner with --storage keeps them all (they once crashed it)."""
    assert unpack_log_value(pack_log_value(origin, value)) == (origin, value)


def test_a_logged_value_that_is_not_one_is_refused() -> None:
    for broken in (b"", b"\x01" + bytes(10), b"\x03" + bytes(16), b"\x02" + bytes(16) + b"x"):
        with pytest.raises(ValueError):
            unpack_log_value(broken)


def test_a_full_learner_log_fails_its_commit_and_the_next_takes_the_values_along(
    tmp_path: Path,
) -> None:
    store = LearnerStore(tmp_path / "learner", map_size=64 << 10)
    values = ValueLog()
    feed = DurableLogFeed(store, values, lambda: 3, lambda: b"memory", 0)
    feed.on_decisions([Deliver(1, [bytes(200_000)], [None])])  # over the map: fails
    assert store.load() == LearnerLog([], 0)
    feed.on_decisions([Deliver(2, [b"small"], [(9, 1)])])  # still over: fails again
    assert store.load() == LearnerLog([], 0)
    big = LearnerStore(tmp_path / "bigger")
    feed = DurableLogFeed(big, values, lambda: 3, lambda: b"memory", 0)
    feed.on_decisions([Deliver(1, [b"one"], [None]), Deliver(2, [b"two", b"three"],
                                                                [(9, 1), (9, 3)], [0, 2])])
    assert big.load() == LearnerLog([LoggedValue(position_of(1, 0), b"one", None),
                                     LoggedValue(position_of(2, 0), b"two", (9, 1)),
                                     LoggedValue(position_of(2, 2), b"three", (9, 3))], 3,
                                    kept_from=1)
    store.close()
    big.close()


def test_the_learner_log_keeps_a_memory_and_every_value_from_it_on(tmp_path: Path) -> None:
    """Whenever the device log lets go of the instance of the memory kept, a new one
    is written: the store's memory, then the origins of the values it keeps from
    that instance on, give back the memory of the learner that delivered them all."""
    store = LearnerStore(tmp_path / "learner")
    values = ValueLog()
    live = OriginFilter(max_clients=8, window=16)
    next_iid = 1
    decisions = Decisions()
    device = DeviceLogFeed(values, retain=5, retain_bytes=1 << 20)
    decisions.subscribe(device)
    decisions.subscribe_before(device, DurableLogFeed(store, values, lambda: next_iid,
                                                      live.snapshot, 0))
    memories = set()
    for iid in range(1, 60):
        # An original client a value an instance, an envelope client now and then.
        origins: list[tuple[int, int] | None] = [(-4, 1000 + iid)]
        if iid % 3 == 0:
            origins.append((5, iid))
        live.first_times(origins)
        next_iid = iid + 1
        decisions.publish([Deliver(iid, [b"v%d" % iid] * len(origins), origins)])
        logged = store.load()
        if logged.memory is None:  # none needed while the log holds all from the first
            assert iid == 1
            continue
        memories.add(logged.memory.next_iid)
        since = position_of(logged.memory.next_iid, 0)
        kept = [e for e in logged.entries if isinstance(e, LoggedValue)]
        assert kept[0].position <= since
        restored = OriginFilter.from_snapshot(logged.memory.memory, 8, 16)
        restored.first_times([e.origin for e in kept if e.position >= since])
        assert restored.snapshot() == live.snapshot()
        # Never more than twice what the device log retains, and the device log's.
        assert len(kept) <= 2 * 5 + 2
        assert values.oldest_position >= kept[0].position
    assert len(memories) > 5  # written again and again, not every time
    store.close()


def test_a_peers_memory_is_kept_once_delivery_reaches_its_instance(tmp_path: Path) -> None:
    """After Adopted (history taken from a peer learner) the store keeps the peer's
    memory, not the learner's own, and only once the learner delivered up to the
    peer's instance: a restart before that goes on from the memory kept before."""
    store = LearnerStore(tmp_path / "learner")
    values = ValueLog()
    next_iid = 2
    feed = DurableLogFeed(store, values, lambda: next_iid, lambda: b"own", 0)
    feed.on_decisions([Deliver(1, [b"one"], [(3, 1)])])
    values.extend_raw([position_of(1, 0)], [b"one"])
    feed.on_decisions([Deliver(1, [b"again"], [(3, 2)], [1])])  # the memory is due
    before = store.load().memory
    assert before is not None and before.memory == b"own"
    next_iid = 4  # a piece of the peer's history, up to instance 9
    feed.on_decisions([Adopted(2, 9, b"peer", ("10.0.0.2", 3004)),
                       Deliver(2, [b"two"], [None]), Deliver(3, [b"three"], [None])])
    assert store.load().memory == before
    next_iid = 9
    feed.on_decisions([Deliver(8, [b"eight"], [None])])
    assert store.load().memory == LearnerMemory(9, b"peer")
    next_iid = 10
    feed.on_decisions([Deliver(9, [b"nine"], [(3, 3)])])
    assert store.load().memory == LearnerMemory(9, b"peer")  # not the own one again
    store.close()


def test_the_learner_log_says_from_which_instance_it_holds_every_value(tmp_path: Path) -> None:
    values = ValueLog()
    store = LearnerStore(tmp_path / "learner")
    feed = DurableLogFeed(store, values, lambda: 3, lambda: b"m", 0)
    # Instance 1 was a no-op: the first value is at instance 2, and nothing is missing.
    values.append(2, b"x")
    feed.on_decisions([Deliver(2, [b"x"], [None])])
    assert store.load().whole_from() == 1
    values.append(3, b"y")
    values.trim_before(1)
    feed.on_decisions([Deliver(3, [b"y"], [None])])
    assert store.load().whole_from() == 4
    store.close()
    # A store from before this was kept: its oldest entry is all it can go by.
    assert LearnerLog([LoggedValue(position_of(1, 0), b"a", None)], 2).whole_from() == 1
    assert LearnerLog([LoggedValue(position_of(5, 2), b"a", None)], 6).whole_from() == 6
