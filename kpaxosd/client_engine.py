"""The original benchmarking client as a sans-IO engine: values, resends, statistics.

The engine keeps ``outstanding`` values in flight. Slot ``k`` proposes as client id
``base_id + k`` (as the original's ``nclients`` did), each value an original
``struct client_value`` whose timestamp is the send time. A value is recognised when
it comes back decided by its (client_id, timestamp) (from a stream: by those header
bytes as they are, the padding between them included, which ours leave zero); the
slot then proposes its next value. A value not seen within ``resend_after`` seconds
is sent again, identical, so that the daemon can tell it is the same value.

Time comes in as ``now`` (wall-clock seconds, because the timestamp inside a value is
a ``struct timeval`` as the original wrote it).
"""

from __future__ import annotations

import itertools
import math
import operator
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from wire.original import (
    CLIENT_VALUE_HEAD,
    CLIENT_VALUE_IDENTITY_SIZE,
    OriginalClientValue,
    pack_client_value_identity,
)

_ALPHANUM = b"0123456789abcdefghijklmnopqrstuvwxyz"
#: Payloads are cut from a pool of random characters this long (plus the value size):
#: drawing every byte anew cost more than everything else the client does per value.
_POOL_BITS = 16
PAYLOAD_POOL = 1 << _POOL_BITS
# Where the timestamp lies in the header: client_id and padding before, size after.
_STAMP_START, _STAMP_END = 8, CLIENT_VALUE_IDENTITY_SIZE
#: Payloads taken in turn (at most this many, in at most this many bytes).
_TAILS = 1024
_TAILS_BYTES = 4 << 20


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

    def add_repeated(self, us: float, count: int) -> None:
        """:meth:`add` ``count`` times."""
        self.count += count
        self.total += us * count
        if us < self.low:
            self.low = us
        if us > self.high:
            self.high = us
        self.buckets[_bucket(us)] += count

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


#: What the engine keeps of a value in flight: its slot, when it was first sent, and
#: the value (to send again as it was).
_InFlight = tuple[int, float, bytes]
_SLOT = operator.itemgetter(0)
_FIRST_SENT_AT = operator.itemgetter(1)


class ClientEngine:
    """Every value in flight is kept under its identity
    (:data:`wire.original.CLIENT_VALUE_IDENTITY_SIZE` header bytes), so that
    recognising a decided value is one dict lookup. Per value the work is done by C
    loops (map, zip, Counter) over the values of a read: the client does it for every
    value it sees."""

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
        self._base_id = base_id
        pool = bytes(rng.choices(_ALPHANUM, k=PAYLOAD_POOL + value_size))
        size_word = CLIENT_VALUE_HEAD.pack(0, 0, 0, value_size)[_STAMP_END:]
        # What follows a value's identity: its size word and a payload cut from the
        # pool at a random place, taken in turn (a draw per value cost more than the
        # rest of building it).
        tails = max(1, min(_TAILS, _TAILS_BYTES // (value_size + 8)))
        self._next_tails = itertools.cycle([
            size_word + pool[start : start + value_size]
            for start in (rng.getrandbits(_POOL_BITS) for _ in range(tails))
        ])
        # Slot k's client id and the padding after it: the start of its values.
        self._prefixes = [CLIENT_VALUE_HEAD.pack(base_id + k, 0, 0, 0)[:_STAMP_START]
                          for k in range(outstanding)]
        self._in_flight: dict[bytes, _InFlight] = {}
        # When values in flight that were resent were last sent (they may have been
        # decided since: forgotten at the next resend).
        self._resent_at: dict[bytes, float] = {}
        # The latest timestamp of any value (microseconds): the next ones are later,
        # so that a slot's stamps never repeat.
        self._latest = 0
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
        return range(self._base_id, self._base_id + len(self._prefixes))

    def start(self, now: float) -> list[bytes]:
        """The first value of every slot."""
        return self._next_values(range(len(self._prefixes)), now)

    def delivered(self, value: OriginalClientValue, now: float) -> bytes | None:
        """A decided value came back; returns the slot's next value when it was ours."""
        return self.delivered_header(
            value.client_id, value.tv_sec, value.tv_usec, len(value.payload), now
        )

    def delivered_header(
        self, client_id: int, tv_sec: int, tv_usec: int, size: int, now: float
    ) -> bytes | None:
        """:meth:`delivered`, from the fields of the value's header alone."""
        entry = self._in_flight.pop(pack_client_value_identity(client_id, tv_sec, tv_usec),
                                    None)
        if entry is None:
            return None  # someone else's, or an old duplicate
        slot, first_sent_at, _ = entry
        interval = self.interval
        interval.delivered += 1
        interval.delivered_bytes += size
        interval.latencies.add(max(0.0, (now - first_sent_at) * 1e6))
        return self._next_values((slot,), now, (entry,))[0]

    def delivered_identities(
        self, identities: Sequence[bytes], sizes: Sequence[int], now: float
    ) -> list[bytes]:
        """:meth:`delivered_header` for the values of one read of a stream (their
        identities and sizes as :func:`wire.original.split_client_values_untrusted`
        gives them), in order: the next values of the slots whose values these were.

        Recognised by their identity bytes as they were sent (the padding included).
        """
        pop = self._in_flight.pop
        value_size = self.value_size
        entries: list[_InFlight]
        if sizes.count(value_size) == len(sizes):
            entries = list(filter(None, map(pop, identities, itertools.repeat(None))))
            delivered_bytes = len(entries) * value_size
        else:
            entries = []
            delivered_bytes = 0
            for identity, size in zip(identities, sizes, strict=True):
                entry = pop(identity, None)
                if entry is not None:
                    entries.append(entry)
                    delivered_bytes += size
        interval = self.interval
        interval.delivered += len(entries)
        interval.delivered_bytes += delivered_bytes
        # The values of one read were mostly sent together: one latency per send time.
        add = interval.latencies.add_repeated
        sent = list(map(_FIRST_SENT_AT, entries))
        distinct = set(sent)
        counted: Iterable[tuple[float, int]]
        if len(distinct) > 8:  # counting each by list.count would cost n * distinct
            counted = Counter(sent).items()
        else:
            counted = ((first_sent_at, sent.count(first_sent_at)) for first_sent_at in distinct)
        for first_sent_at, count in counted:
            add(max(0.0, (now - first_sent_at) * 1e6), count)
        return self._next_values(list(map(_SLOT, entries)), now, entries)

    def due_resends(self, now: float) -> list[bytes]:
        """Values not seen decided within ``resend_after``, to send again as they were."""
        in_flight, resent_at = self._in_flight, self._resent_at
        for identity in [identity for identity in resent_at if identity not in in_flight]:
            del resent_at[identity]
        due = []
        for identity, (_, first_sent_at, value) in in_flight.items():
            if now - resent_at.get(identity, first_sent_at) >= self.resend_after:
                resent_at[identity] = now
                due.append(value)
        self.interval.resent += len(due)
        return due

    def next_resend_at(self) -> float:
        resent_at = self._resent_at
        return min(
            (resent_at.get(identity, first_sent_at)
             for identity, (_, first_sent_at, _) in self._in_flight.items()),
            default=math.inf,
        ) + self.resend_after

    def take_interval(self) -> Interval:
        interval, self.interval = self.interval, Interval()
        self._taken.merge(interval)
        return interval

    def _next_values(
        self, slots: Sequence[int], now: float, previous: Sequence[_InFlight] = ()
    ) -> list[bytes]:
        """The next value of each of ``slots`` (whose values in flight were
        ``previous``, if any), stamped ``now`` (and sent now)."""
        micros = int(now * 1e6)
        prefixes = self._prefixes
        if micros > self._latest:
            self._latest = micros
            stamp = _stamp(micros)
            identities = list(map(operator.add, map(prefixes.__getitem__, slots),
                                  itertools.repeat(stamp)))
        else:
            # The clock has not moved past every stamp (values a microsecond apart, or
            # the clock set back): each slot's stamp comes after its previous one, so
            # that a slot's stamps never repeat.
            before = [entry[2] for entry in previous] or [b""] * len(slots)
            identities = [prefixes[slot] + self._stamp_after(value, micros)
                          for slot, value in zip(slots, before, strict=True)]
        values = list(map(operator.add, identities, self._next_tails))
        self._in_flight.update(
            zip(identities, zip(slots, itertools.repeat(now), values), strict=True)
        )
        return values

    def _stamp_after(self, previous: bytes, micros: int) -> bytes:
        if previous:
            _, tv_sec, tv_usec, _ = CLIENT_VALUE_HEAD.unpack_from(previous)
            micros = max(micros, tv_sec * 1_000_000 + tv_usec + 1)
        else:
            micros = max(micros, 1)
        self._latest = max(self._latest, micros)
        return _stamp(micros)


def _stamp(micros: int) -> bytes:
    """The timestamp bytes of a value's header, ``micros`` as a struct timeval."""
    return CLIENT_VALUE_HEAD.pack(0, *divmod(micros, 1_000_000), 0)[_STAMP_START:_STAMP_END]
