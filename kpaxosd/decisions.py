"""Where the daemon's learner's decisions go: one publisher, any number of subscribers.

The learner's endpoint hands over, once per flush, the learner's decisions of that
flush in delivery order (:data:`~kpaxosd.paxos.effects.Decision`: Deliver and
Trimmed). Every consumer — the counters behind the metrics, the device log, the client
device's proposals, the kclient — subscribes with one method and gets the same batch,
so the daemon wires them up without knowing what each does with a decision.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from devices.valuelog import ValueLog
from kpaxosd.paxos.effects import Decision, Deliver, Trimmed
from wire.device import position_of

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
                first = position_of(decision.iid, 0)
                if decision.places is None:
                    positions.extend(range(first, first + len(decision.values)))
                else:
                    positions.extend(first + place for place in decision.places)
                values.extend(decision.values)
                continue
            self._append(positions, values)
            positions, values = [], []
            self._lost(decision)
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
