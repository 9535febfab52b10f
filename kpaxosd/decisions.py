"""Where the daemon's learner's decisions go: one publisher, any number of subscribers.

The learner's endpoint hands over, once per flush, the learner's decisions of that
flush in delivery order (:data:`~kpaxosd.paxos.effects.Decision`: Deliver and
Trimmed). Every consumer — the counters behind the metrics, the device log, the client
device's proposals, the kclient — subscribes with one method and gets the same batch,
so the daemon wires them up without knowing what each does with a decision.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from devices.valuelog import ValueLog
from kpaxosd.paxos.effects import Adopted, Decision, Deliver, Trimmed
from kpaxosd.paxos.peers import cut_piece
from kpaxosd.storage import (
    LearnerMemory,
    LearnerStore,
    LogEntry,
    LoggedGap,
    LoggedValue,
    StorageError,
)
from wire.device import iid_of, position_of
from wire.identity import Origin

log = logging.getLogger("kpaxos")


class DecisionSubscriber(Protocol):
    def on_decisions(self, decisions: Sequence[Decision]) -> None:
        """``decisions``: one flush's, in delivery order; never empty."""


class Decisions:
    """The subscribers of one learner's decisions, called in the order they subscribed."""

    def __init__(self) -> None:
        self._subscribers: list[DecisionSubscriber] = []

    def subscribe(self, subscriber: DecisionSubscriber) -> None:
        self._subscribers.append(subscriber)

    def subscribe_before(self, later: DecisionSubscriber, subscriber: DecisionSubscriber,
                         ) -> None:
        """Subscribe ``subscriber`` to be called just before ``later``."""
        self._subscribers.insert(self._subscribers.index(later), subscriber)

    def publish(self, decisions: Sequence[Decision]) -> None:
        for subscriber in self._subscribers:
            subscriber.on_decisions(decisions)


class DeviceLogFeed:
    """Appends the decided values to the device log, bounded by what it may retain.

    A Trimmed becomes a gap in the log where it happened: readers of the learner device
    get an error there (EPIPE) rather than a silent jump.
    """

    def __init__(self, values: ValueLog, *, retain: int, retain_bytes: int) -> None:
        self._values = values
        self._retain = retain
        self._retain_bytes = retain_bytes

    def on_decisions(self, decisions: Sequence[Decision]) -> None:
        positions: list[int] = []
        values: list[bytes] = []
        for decision in decisions:
            if isinstance(decision, Deliver):
                positions.extend(decision.positions())
                values.extend(decision.values)
                continue
            if isinstance(decision, Adopted):
                # The values it announces come as Deliver.
                log.info("the acceptors trimmed instances this learner lacks: it takes "
                         "instances %d to %d from the peer learner at %s:%d, and goes on "
                         "with that learner's exactly-once memory (the same values at the "
                         "same positions)", decision.first_iid, decision.next_iid - 1,
                         *decision.peer)
                continue
            self._append(positions, values)
            positions, values = [], []
            self._lost(decision)
        self._append(positions, values)

    def restore(self, entries: Sequence[LogEntry]) -> None:
        """Put back what the learner's durable log held, before any decision."""
        positions: list[int] = []
        values: list[bytes] = []
        for entry in entries:
            if isinstance(entry, LoggedValue):
                positions.append(entry.position)
                values.append(entry.value)
                continue
            self._append(positions, values)
            positions, values = [], []
            self._values.add_gap(entry.first_iid, entry.next_iid)
        self._append(positions, values)

    def _append(self, positions: list[int], values: list[bytes]) -> None:
        self._values.extend_raw(positions, values)
        self._forget_beyond_retain()

    def _forget_beyond_retain(self) -> None:
        log_ = self._values
        if log_.next_index - log_.first_index > self._retain:
            log_.trim_before(log_.next_index - self._retain)
        if log_.retained_bytes > self._retain_bytes:
            log_.trim_before(log_.index_for_bytes(self._retain_bytes))

    def _lost(self, trimmed: Trimmed) -> None:
        log.error(
            "instances %d to %d are lost to this learner: the acceptors trimmed them "
            "before it learned them (TRIM from a learner further ahead); readers of the "
            "learner device get EPIPE there; delivery goes on at instance %d",
            trimmed.first_iid, trimmed.next_iid - 1, trimmed.next_iid,
        )
        self._values.add_gap(trimmed.first_iid, trimmed.next_iid)
        self._forget_beyond_retain()


class DurableLogFeed:
    """Commits the decided values (and gaps) to the learner's store before readers see
    them: subscribed just before the :class:`DeviceLogFeed`.

    A commit that fails (disk full) is logged, and what it held goes with the next
    one; readers see those values meanwhile, and a restart before a commit succeeds
    learns them again from the acceptors, at the same positions.

    The store keeps the learner's exactly-once memory at one instance and every value
    from there on, so that a restart passes over the same copies (:mod:`wire.
    exactly_once`). A new memory is written once the device log lets go of that
    instance (about once per --retain values): the store then holds what the device
    log holds.
    """

    def __init__(self, store: LearnerStore, values: ValueLog,
                 next_iid: Callable[[], int | None],
                 memory: Callable[[], bytes], memory_iid: int) -> None:
        self._store = store
        self._values = values
        self._next_iid = next_iid
        self._memory = memory
        # The instance of the memory the store keeps (0: none yet).
        self._memory_iid = memory_iid
        self._pending: list[LogEntry] = []
        self._failing = False
        # A peer's memory the learner went on from (Adopted), not yet kept.
        self._adopted: LearnerMemory | None = None

    def on_decisions(self, decisions: Sequence[Decision]) -> None:
        pending = self._pending
        for decision in decisions:
            if isinstance(decision, Deliver):
                pending.extend(map(LoggedValue, decision.positions(), decision.values,
                                   decision.origins))
            elif isinstance(decision, Adopted):
                self._adopted = LearnerMemory(decision.next_iid, decision.memory)
            else:
                pending.append(LoggedGap(position_of(decision.first_iid, 0),
                                         decision.first_iid, decision.next_iid))
        next_iid = self._next_iid()
        if next_iid is None:
            return
        # What the device log let go of (--retain) goes from the disk too; a new
        # memory goes with it when that passes the instance of the one kept.
        forget_below = self._values.oldest_position
        memory = self._memory_to_keep(next_iid, forget_below)
        try:
            self._store.commit(pending, next_iid, forget_below, memory,
                               kept_from=self._values.kept_from())
        except StorageError as exc:
            if not self._failing:
                log.error("%s; readers get the values all the same, and the next commit "
                          "takes them along", exc)
            self._failing = True
            return
        if self._failing:
            log.warning("the learner log at %s takes writes again", self._store.path)
            self._failing = False
        pending.clear()
        if memory is not None:
            self._memory_iid = memory.next_iid
            if memory is self._adopted:
                self._adopted = None

    def _memory_to_keep(self, next_iid: int, forget_below: int) -> LearnerMemory | None:
        """A new memory for the store, if one is due (None: the one kept stays)."""
        if self._adopted is not None:
            # A peer's memory: kept once delivery reaches its instance (until then
            # the learner's own is of no instance it delivered up to).
            return self._adopted if next_iid >= self._adopted.next_iid else None
        if forget_below > position_of(self._memory_iid, 0):
            return LearnerMemory(next_iid, self._memory())
        return None


class DeviceLogHistory:
    """The device log as what the learner serves to peer learners
    (:class:`kpaxosd.paxos.peers.DeliveredHistory`); it keeps no origins."""

    def __init__(self, values: ValueLog) -> None:
        self._values = values

    def complete_from(self) -> int:
        return self._values.whole_from()

    def entries_after(self, position: int, end_iid: int, max_bytes: int,
                      ) -> list[tuple[int, bytes, Origin | None]] | None:
        if iid_of(position + 1) < self._values.whole_from():
            return None  # let go of since the transfer began
        entries = ((at, value, None) for at, value in self._values.retained_after(position))
        return cut_piece(entries, end_iid, max_bytes)
