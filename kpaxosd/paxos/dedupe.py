"""Deciding and delivering a resent client value once: memories of origins.

A client that has not seen its value decided within a second sends it again, so one
value may reach a proposer twice and be decided in two instances. The origin of a
value (:mod:`wire.identity`) tells the copies apart from new values. Two memories
use it, both bounded and both pure functions of what they were shown, so a replay
gives the same answers:

- :class:`RecentOrigins`, at the proposer: the origins of the last N/2 to N decided
  values.
- :class:`OriginFilter`, at the learner: which origins were delivered. Every learner
  fed the same decided sequence delivers the same values, and one that goes on from
  a snapshot of another's memory delivers what that one does.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections import OrderedDict, deque
from typing import Any

from construct import ConstructError, Container

from wire.exactly_once import EXACTLY_ONCE_MEMORY, pack_numbers, unpack_numbers
from wire.identity import Origin, is_original_origin


class RecentOrigins:
    """At most ``capacity`` origins: at least the last ``capacity // 2`` added.

    Two generations of sets: adding and looking up cost a set operation or two, which
    matters because a proposer does both for every client value. When the newer
    generation is full (half the capacity) the older one is forgotten whole.
    """

    __slots__ = ("_generation", "_newer", "_older")

    def __init__(self, capacity: int) -> None:
        self._generation = max(1, capacity // 2)
        self._newer: set[Origin] = set()
        self._older: set[Origin] = set()

    def add(self, origin: Origin) -> None:
        newer = self._newer
        if len(newer) >= self._generation:
            self._older = newer
            newer = self._newer = set()
        newer.add(origin)

    def add_all(self, origins: list[Origin]) -> None:
        """:meth:`add` each of ``origins``, in order (a set operation per generation)."""
        start, generation = 0, self._generation
        while start < len(origins):
            room = generation - len(self._newer)
            if room <= 0:
                self._older, self._newer = self._newer, set()
                room = generation
            self._newer.update(origins[start : start + room])
            start += room

    def generations(self) -> tuple[set[Origin], set[Origin]]:
        """The two sets behind ``in``, for a caller that looks up many origins in a
        row and adds none meanwhile."""
        return self._newer, self._older

    def __contains__(self, origin: Origin) -> bool:
        return origin in self._newer or origin in self._older

    def __len__(self) -> int:
        return len(self._newer | self._older)


class _ClientSeqs:
    """An envelope client: numbers its values upwards."""

    __slots__ = ("highest", "recent")

    def __init__(self, seq: int) -> None:
        self.highest = seq
        self.recent = {seq}


#: The range of a raw timestamp in a ring (array "q").
_RING_MIN, _RING_MAX = -(2**63), 2**63 - 1


class _ClientStamps:
    """An original client: its values' timestamps, exactly, the last ``window`` of them.

    A client's clock runs forward, so they mostly come increasing. While they do,
    ``ring`` holds them as raw 64-bit integers, a circular buffer: the oldest at
    ``at`` once it is full, the newest, ``last``, just before. A timestamp above
    ``last`` is new; one at or below it is looked up by bisection. Neither a set nor
    an int object per timestamp: a set of the last 1000 timestamps of each of 1000
    clients is a million entries visited at random, and freeing each timestamp's
    int as it leaves the window is one more cache miss for every value.

    A timestamp out of order (or beyond 64 bits) turns the window into ``order``, a
    deque in arrival order, and ``seen``, their set (``ring`` is None), until the
    timestamps increase throughout again (``run``: how many of the last increase).
    """

    __slots__ = ("at", "last", "order", "ring", "run", "seen")

    def __init__(self) -> None:
        self.ring: array[int] | None = array("q")
        self.at = 0
        self.last = _RING_MIN - 1
        self.order: deque[int] = deque()
        self.seen: set[int] = set()
        self.run = 0

    def in_ring(self, ring: array[int], stamp: int) -> bool:
        """Whether ``stamp`` is in ``ring``: two increasing runs, from ``at`` to the
        end and from the start to ``at``."""
        at = self.at
        for low, high in ((at, len(ring)), (0, at)):
            found = bisect_left(ring, stamp, low, high)
            if found < high and ring[found] == stamp:
                return True
        return False


_Client = _ClientSeqs | _ClientStamps


def _client_from(entry: Container[Any], numbers: list[int], window: int) -> _Client:
    """One client of a parsed snapshot.

    Raises:
        ValueError: it holds more than its window allows, or stamps out of order in
            a ring, or an envelope client below 0 (it could never answer as the
            memory it claims to be).
    """
    if entry.kind == "seqs":
        if entry.client_id < 0 or len(numbers) > 2 * window or max(numbers, default=0) > entry.mark:
            raise ValueError(f"client {entry.client_id}: not an envelope client's memory")
        seqs = _ClientSeqs(entry.mark)
        seqs.recent = set(numbers)
        return seqs
    stamps = _ClientStamps()
    if entry.client_id >= 0 or len(numbers) > window:
        raise ValueError(f"client {entry.client_id}: not an original client's memory")
    if entry.kind == "ring":
        if (not all(_RING_MIN <= n <= _RING_MAX for n in numbers) or entry.at > len(numbers)
                or entry.at >= window):
            raise ValueError(f"client {entry.client_id}: not a ring of stamps")
        stamps.ring = array("q", numbers)
        stamps.at, stamps.last = entry.at, entry.mark
    else:
        stamps.ring = None
        stamps.order = deque(numbers)
        stamps.seen = set(numbers)
        stamps.run = entry.mark
        if len(stamps.seen) != len(numbers):
            raise ValueError(f"client {entry.client_id}: a stamp twice")
    return stamps


class OriginFilter:
    """Remembers which origins were delivered, within bounded memory.

    Envelopes (kpaxos clients, a fresh random client id per life, seq counting from
    1): per client, the highest seq seen and the seqs seen within ``window`` below
    it; a seq older than that counts as seen (a resend of something that old has
    long been decided).

    Original values (client id and timestamp): per client, exactly the last
    ``window`` timestamps seen. Nothing counts as seen by age, because a timestamp
    is a clock reading: two programs sharing a client id, or a clock stepped back,
    give older timestamps to new values, and dropping those would lose them. At
    worst a resend older than the window is delivered twice, as the original did.

    At most ``max_clients`` clients are remembered; the one delivered least recently
    is forgotten first. A copy passed over changes nothing, not even that order: the
    memory is a pure function of the origins delivered, in order, so that
    :meth:`snapshot` at one instance and the origins delivered after it give the
    memory back exactly (:mod:`wire.exactly_once`). It holds at most
    ``max_clients * 2 * window`` origins.
    """

    __slots__ = ("_clients", "_max_clients", "_window")

    def __init__(self, max_clients: int, window: int) -> None:
        if max_clients < 1 or window < 1:
            raise ValueError(f"an OriginFilter of {max_clients} clients, {window} origins each")
        self._clients: OrderedDict[int, _Client] = OrderedDict()
        self._max_clients = max_clients
        self._window = window

    def first_time(self, client_id: int, seq: int) -> bool:
        """Record the origin (client_id, seq); True when it was not seen before."""
        client = self._clients.get(client_id)
        if client is None:
            if not is_original_origin((client_id, seq)):
                self._remember(client_id, _ClientSeqs(seq))
                return True
            client = self._remember(client_id, _ClientStamps())
        first = (self._first_stamp(client, seq) if isinstance(client, _ClientStamps)
                 else self._first_seq(client, seq))
        if first:
            self._clients.move_to_end(client_id)
        return first

    def first_times(self, origins: list[Origin | None]) -> list[bool]:
        """:meth:`first_time` of each origin in turn; a value without one (None) is
        always new. A learner asks this for every client value of a decided batch:
        the common case (an original client seen before) is inlined."""
        answers: list[bool] = []
        append = answers.append
        clients, window = self._clients, self._window
        get, to_end, ring_max = clients.get, clients.move_to_end, _RING_MAX
        for origin in origins:
            if origin is None:
                append(True)
                continue
            client_id, seq = origin
            client = get(client_id)
            if type(client) is not _ClientStamps:
                append(self.first_time(client_id, seq))
                continue
            ring = client.ring
            if ring is not None and client.last < seq <= ring_max:
                # The common case of _first_stamp: a clock that runs forward.
                client.last = seq
                at = client.at
                if at < len(ring):
                    ring[at] = seq
                else:
                    ring.append(seq)
                client.at = at + 1 if at + 1 < window else 0
                to_end(client_id)
                append(True)
            elif self._first_stamp(client, seq):
                to_end(client_id)
                append(True)
            else:
                append(False)
        return answers

    def snapshot(self) -> bytes:
        """The memory as :data:`wire.exactly_once.EXACTLY_ONCE_MEMORY` bytes."""
        clients = []
        for client_id, client in self._clients.items():
            if isinstance(client, _ClientSeqs):
                kind, mark, at, numbers = "seqs", client.highest, 0, sorted(client.recent)
            elif client.ring is not None:
                kind, mark, at, numbers = "ring", client.last, client.at, client.ring.tolist()
            else:
                kind, mark, at, numbers = "order", client.run, 0, list(client.order)
            clients.append({"kind": kind, "client_id": client_id, "mark": mark, "at": at,
                            "numbers": pack_numbers(numbers)})
        built: bytes = EXACTLY_ONCE_MEMORY.build({"window": self._window, "clients": clients})
        return built

    @classmethod
    def from_snapshot(cls, data: bytes, max_clients: int, window: int) -> OriginFilter:
        """The memory :meth:`snapshot` gave ``data`` for, to go on with.

        Raises:
            ValueError: ``data`` is not such a snapshot, or one of another window,
                or of more than ``max_clients`` clients (a memory of other bounds
                would answer differently from here on).
        """
        try:
            parsed = EXACTLY_ONCE_MEMORY.parse(data)
        except ConstructError as exc:
            raise ValueError(f"not an exactly-once memory: {exc}") from None
        if parsed.window != window or len(parsed.clients) > max_clients:
            raise ValueError(
                f"an exactly-once memory of {len(parsed.clients)} clients, {parsed.window} "
                f"origins each, where {max_clients} and {window} are in force")
        memory = cls(max_clients, window)
        for entry in parsed.clients:
            numbers = unpack_numbers(entry.numbers.width, entry.numbers.data)
            memory._clients[entry.client_id] = _client_from(entry, numbers, window)
        return memory

    def _remember(self, client_id: int, client: _Client) -> _Client:
        self._clients[client_id] = client
        if len(self._clients) > self._max_clients:
            self._clients.popitem(last=False)
        return client

    def _first_stamp(self, client: _ClientStamps, stamp: int) -> bool:
        window, ring = self._window, client.ring
        if ring is not None:
            if client.last < stamp <= _RING_MAX:
                client.last = stamp
                at = client.at
                if at < len(ring):
                    ring[at] = stamp
                else:
                    ring.append(stamp)
                client.at = at + 1 if at + 1 < window else 0
                return True
            if stamp <= client.last and client.in_ring(ring, stamp):
                return False
            # Out of order: a deque and a set until the timestamps increase again.
            at = client.at
            client.order = deque(ring[at:] + ring[:at])
            client.seen = set(client.order)
            client.ring = None
            client.run = 0
        order, seen = client.order, client.seen
        if stamp in seen:
            return False
        seen.add(stamp)
        client.run = client.run + 1 if order and stamp > order[-1] else 1
        order.append(stamp)
        if len(order) > window:
            seen.discard(order.popleft())
        if client.run >= len(order):
            self._back_to_ring(client)
        return True

    def _back_to_ring(self, client: _ClientStamps) -> None:
        """``client.order`` increases throughout: back to a ring, if every timestamp
        fits 64 bits."""
        try:
            ring = array("q", client.order)
        except OverflowError:
            client.run = 0  # try again once as many more have come in order
            return
        client.ring, client.last = ring, ring[-1]
        client.at = len(ring) if len(ring) < self._window else 0
        client.order, client.seen = deque(), set()

    def _first_seq(self, seqs: _ClientSeqs, seq: int) -> bool:
        if seq > seqs.highest:
            seqs.highest = seq
            seqs.recent.add(seq)
            if len(seqs.recent) > 2 * self._window:
                # Pruning in batches keeps the cost per value constant.
                floor = seq - self._window
                seqs.recent = {s for s in seqs.recent if s > floor}
            return True
        if seq <= seqs.highest - self._window or seq in seqs.recent:
            return False
        seqs.recent.add(seq)
        return True
