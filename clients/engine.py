"""The original benchmarking client as a sans-IO engine: values, resends, statistics.

The engine keeps ``outstanding`` values in flight. Slot ``k`` proposes as client id
``base_id + k`` (as the original's ``nclients`` did), each value an original
``struct client_value`` whose timestamp is the send time. A value is recognised when
it comes back decided by its (client_id, timestamp); the slot then proposes its next
value. A value not seen within ``resend_after`` seconds is sent again, identical, so
that the daemon can tell it is the same value.

Time comes in as ``now`` (wall-clock seconds, because the timestamp inside a value is
a ``struct timeval`` as the original wrote it).
"""

from __future__ import annotations

import math
import random
import struct
from collections import Counter
from dataclasses import dataclass, field

from wire.original import CLIENT_VALUE_HEADER_SIZE, OriginalClientValue

_ALPHANUM = b"0123456789abcdefghijklmnopqrstuvwxyz"
#: Payloads are cut from a pool of random characters this long (plus the value size):
#: drawing every byte anew cost more than everything else the client does per value.
_POOL_BITS = 16
PAYLOAD_POOL = 1 << _POOL_BITS
# The header of struct client_value (wire.original), packed per value.
_HEADER = struct.Struct("=i4xqqQ")
assert _HEADER.size == CLIENT_VALUE_HEADER_SIZE


@dataclass
class _Slot:
    client_id: int
    stamp: tuple[int, int] = (0, 0)
    value: bytes = b""
    sent_at: float = 0.0
    first_sent_at: float = 0.0


#: Latencies are counted in buckets of 1/256 of their size or less (the top 8 bits of
#: the latency in 1/256 us): percentiles are exact to within 0.4%, and memory stays
#: bounded however long the run.
_SCALE = 256
_MANTISSA_BITS = 8


def _bucket(us: float) -> int:
    n = int(us * _SCALE)
    if n < 1 << _MANTISSA_BITS:
        return n
    shift = n.bit_length() - _MANTISSA_BITS
    return (shift << _MANTISSA_BITS) | (n >> shift)


def _bucket_middle(bucket: int) -> float:
    shift, top = bucket >> _MANTISSA_BITS, bucket & ((1 << _MANTISSA_BITS) - 1)
    if shift == 0:
        return (top + 0.5) / _SCALE
    return ((top << shift) + (1 << shift) / 2) / _SCALE


class Latencies:
    """Latencies in microseconds: count, sum, min and max exactly, percentiles
    from buckets (within 0.4%), in memory that does not grow with the count."""

    __slots__ = ("buckets", "count", "high", "low", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.low = math.inf
        self.high = 0.0
        self.buckets: Counter[int] = Counter()

    def add(self, us: float) -> None:
        self.count += 1
        self.total += us
        if us < self.low:
            self.low = us
        if us > self.high:
            self.high = us
        self.buckets[_bucket(us)] += 1

    def merge(self, other: Latencies) -> None:
        """Count ``other``'s latencies too."""
        self.count += other.count
        self.total += other.total
        self.low = min(self.low, other.low)
        self.high = max(self.high, other.high)
        self.buckets.update(other.buckets)

    def percentile(self, pct: float) -> float:
        """Nearest-rank percentile (the middle of its bucket, kept within min..max)."""
        if not self.count:
            return 0.0
        rank = max(1, min(self.count, round(pct / 100 * self.count + 0.5)))
        seen = 0
        for bucket in sorted(self.buckets):
            seen += self.buckets[bucket]
            if seen >= rank:
                return min(max(_bucket_middle(bucket), self.low), self.high)
        return self.high


@dataclass
class Interval:
    """What was delivered in one reporting interval (or in the whole run)."""

    delivered: int = 0
    delivered_bytes: int = 0
    resent: int = 0
    latencies: Latencies = field(default_factory=Latencies)

    def merge(self, other: Interval) -> None:
        self.delivered += other.delivered
        self.delivered_bytes += other.delivered_bytes
        self.resent += other.resent
        self.latencies.merge(other.latencies)

    def line(self, seconds: float) -> str:
        """The original's per-second line, plus p50 and p99."""
        rate = self.delivered / seconds if seconds > 0 else 0.0
        mbps = self.delivered_bytes * 8 / (1024 * 1024) / seconds if seconds > 0 else 0.0
        lat = self.latencies
        if lat.count:
            low, high, avg = lat.low, lat.high, lat.total / lat.count
            p50, p99 = lat.percentile(50), lat.percentile(99)
        else:
            low = high = avg = p50 = p99 = 0.0
        return (
            f"{rate:.0f} value/sec, {mbps:.2f} Mbps, latency min {low:.0f} us "
            f"max {high:.0f} us avg {avg:.0f} us p50 {p50:.0f} us p99 {p99:.0f} us"
        )


def total_line(total: Interval, seconds: float) -> str:
    """The closing line of a run (kpaxos-client and the kclient role print the same)."""
    return (f"total: {total.delivered} values in {seconds:.1f} s, {total.resent} resent; "
            f"{total.line(seconds)}")


class ClientEngine:
    def __init__(
        self,
        *,
        base_id: int,
        outstanding: int,
        value_size: int,
        rng: random.Random,
        resend_after: float = 1.0,
    ) -> None:
        if outstanding < 1:
            raise ValueError("outstanding must be at least 1")
        if base_id < 0 or base_id + outstanding > 2**31:
            raise ValueError("client ids must fit an int32")
        self.value_size = value_size
        self.resend_after = resend_after
        self._rng = rng
        self._pool = bytes(rng.choices(_ALPHANUM, k=PAYLOAD_POOL + value_size))
        self._slots = {base_id + k: _Slot(base_id + k) for k in range(outstanding)}
        self.interval = Interval()
        # Every interval taken so far (the current one is added by ``total``).
        self._taken = Interval()

    @property
    def total(self) -> Interval:
        """What was delivered since the start."""
        total = Interval()
        total.merge(self._taken)
        total.merge(self.interval)
        return total

    @property
    def client_ids(self) -> range:
        first = min(self._slots)
        return range(first, first + len(self._slots))

    def start(self, now: float) -> list[bytes]:
        """The first value of every slot."""
        return [self._next_value(slot, now) for slot in self._slots.values()]

    def delivered(self, value: OriginalClientValue, now: float) -> bytes | None:
        """A decided value came back; returns the slot's next value when it was ours."""
        return self.delivered_header(
            value.client_id, value.tv_sec, value.tv_usec, len(value.payload), now
        )

    def delivered_header(
        self, client_id: int, tv_sec: int, tv_usec: int, size: int, now: float
    ) -> bytes | None:
        """:meth:`delivered`, from the fields of the value's header alone."""
        slot = self._slots.get(client_id)
        if slot is None or (tv_sec, tv_usec) != slot.stamp:
            return None  # someone else's, or an old duplicate
        interval = self.interval
        interval.delivered += 1
        interval.delivered_bytes += size
        interval.latencies.add(max(0.0, (now - slot.first_sent_at) * 1e6))
        return self._next_value(slot, now)

    def delivered_headers(
        self, headers: list[tuple[int, int, int, int]], now: float
    ) -> list[bytes]:
        """:meth:`delivered_header` for each of ``headers`` (one read of a stream), in
        order: the next values of the slots whose values these were.

        The same steps, inlined: the client does this for every value it sees.
        """
        slots, interval = self._slots, self.interval
        add_latency = interval.latencies.add
        pool, value_size, draw = self._pool, self.value_size, self._rng.getrandbits
        pack = _HEADER.pack
        micros = int(now * 1e6)
        following: list[bytes] = []
        delivered = delivered_bytes = 0
        for client_id, tv_sec, tv_usec, size in headers:
            slot = slots.get(client_id)
            if slot is None or (tv_sec, tv_usec) != slot.stamp:
                continue  # someone else's, or an old duplicate
            delivered += 1
            delivered_bytes += size
            add_latency(max(0.0, (now - slot.first_sent_at) * 1e6))
            # _next_value:
            stamp = max(micros, tv_sec * 1_000_000 + tv_usec + 1)
            next_sec, next_usec = slot.stamp = divmod(stamp, 1_000_000)
            start = draw(_POOL_BITS)
            slot.value = value = (
                pack(client_id, next_sec, next_usec, value_size)
                + pool[start : start + value_size]
            )
            slot.sent_at = slot.first_sent_at = now
            following.append(value)
        interval.delivered += delivered
        interval.delivered_bytes += delivered_bytes
        return following

    def due_resends(self, now: float) -> list[bytes]:
        """Values not seen decided within ``resend_after``, to send again as they were."""
        due = []
        for slot in self._slots.values():
            if now - slot.sent_at >= self.resend_after:
                slot.sent_at = now
                self.interval.resent += 1
                due.append(slot.value)
        return due

    def next_resend_at(self) -> float:
        return min(slot.sent_at for slot in self._slots.values()) + self.resend_after

    def take_interval(self) -> Interval:
        interval, self.interval = self.interval, Interval()
        self._taken.merge(interval)
        return interval

    def _next_value(self, slot: _Slot, now: float) -> bytes:
        micros = int(now * 1e6)
        previous = slot.stamp[0] * 1_000_000 + slot.stamp[1]
        micros = max(micros, previous + 1)  # a slot's stamps must never repeat
        tv_sec, tv_usec = slot.stamp = divmod(micros, 1_000_000)
        start = self._rng.getrandbits(_POOL_BITS)
        payload = self._pool[start : start + self.value_size]
        slot.value = _HEADER.pack(slot.client_id, tv_sec, tv_usec, self.value_size) + payload
        slot.sent_at = slot.first_sent_at = now
        return slot.value
