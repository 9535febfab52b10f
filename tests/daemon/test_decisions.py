"""One publisher for the learner's decisions, and what its subscribers make of them."""

from __future__ import annotations

from collections.abc import Sequence

from devices.valuelog import ValueLog
from kpaxosd.decisions import Decisions, DeviceLogFeed
from kpaxosd.paxos.effects import Decision, Deliver, Trimmed
from kpaxosd.statistics import DecidedCounters


class Recorder:
    def __init__(self, name: str, seen: list[tuple[str, list[Decision]]]) -> None:
        self.name, self.seen = name, seen

    def on_decisions(self, decisions: Sequence[Decision]) -> None:
        self.seen.append((self.name, list(decisions)))


def test_every_subscriber_sees_each_batch_in_the_order_they_subscribed() -> None:
    seen: list[tuple[str, list[Decision]]] = []
    decisions = Decisions()
    for name in ("first", "second"):
        decisions.subscribe(Recorder(name, seen))
    batch: list[Decision] = [Deliver(1, [b"a"], [None]), Trimmed(2, 4)]
    decisions.publish(batch)
    decisions.publish(batch[:1])
    assert seen == [("first", batch), ("second", batch), ("first", batch[:1]),
                    ("second", batch[:1])]


def test_the_counters_count_instances_values_bytes_and_losses() -> None:
    counters = DecidedCounters()
    counters.on_decisions([Deliver(1, [b"ab", b"c"], [None, None]), Trimmed(2, 5)])
    counters.on_decisions([Deliver(5, [b"d"], [None]), Deliver(5, [b"e"], [None])])
    assert counters == DecidedCounters(instances=2, values=4, bytes=5, last_iid=5,
                                       lost_instances=3)


def test_the_device_log_keeps_at_most_retain_bytes() -> None:
    values = ValueLog()
    feed = DeviceLogFeed(values, retain=100, retain_bytes=5)
    for iid in range(1, 5):  # one flush each: the log trims whole flushes
        feed.on_decisions([Deliver(iid, [b"xx"], [None])])
    assert (values.first_index, values.next_index) == (2, 4)
    assert values.retained_bytes == 4
