"""Deciding and delivering a resent client value once: memories of origins.

A client that has not seen its value decided within a second sends it again, so one
value may reach a proposer twice and be decided in two instances. The origin of a
value (:mod:`wire.identity`) tells the copies apart from new values. Two memories
use it, both bounded and both pure functions of what they were shown, so a replay
gives the same answers:

- :class:`RecentOrigins`, at the proposer: the origins of the last N/2 to N decided
  values.
- :class:`OriginFilter`, at the learner: which origins were delivered. Every learner
  fed the same decided sequence delivers the same values.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import OrderedDict, deque

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


class _ClientStamps:
    """An original client: its values' timestamps, exactly, the last ``window`` of them.

    ``order`` holds them in the order they came. A client's clock runs forward, so
    they mostly come increasing: while ``order`` increases, a timestamp above its last
    is new and one at or below it is looked up by bisection, with no set at all. A
    set of the last 1000 timestamps of each of 1000 clients is a million entries
    visited at random, a cache miss or more for every value; ``order`` is visited at
    its two ends only. Once a timestamp comes out of order, ``seen`` holds the
    timestamps of ``order`` as a set until ``order`` increases again throughout
    (``run``: how many of its last timestamps increase).
    """

    __slots__ = ("order", "run", "seen")

    def __init__(self) -> None:
        self.order: deque[int] = deque()
        self.seen: set[int] | None = None
        self.run = 0


_Client = _ClientSeqs | _ClientStamps


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

    At most ``max_clients`` clients are remembered; the least recently seen is
    forgotten first. The memory is at most ``max_clients * 2 * window`` origins.
    """

    __slots__ = ("_clients", "_max_clients", "_window")

    def __init__(self, max_clients: int, window: int) -> None:
        self._clients: OrderedDict[int, _Client] = OrderedDict()
        self._max_clients = max_clients
        self._window = window

    def first_time(self, client_id: int, seq: int) -> bool:
        """Record the origin (client_id, seq); True when it was not seen before."""
        client = self._clients.get(client_id)
        if client is not None:
            self._clients.move_to_end(client_id)
        elif is_original_origin((client_id, seq)):
            client = self._remember(client_id, _ClientStamps())
        else:
            self._remember(client_id, _ClientSeqs(seq))
            return True
        if isinstance(client, _ClientStamps):
            return self._first_stamp(client, seq)
        return self._first_seq(client, seq)

    def first_times(self, origins: list[Origin | None]) -> list[bool]:
        """:meth:`first_time` of each origin in turn; a value without one (None) is
        always new. A learner asks this for every client value of a decided batch:
        the common case (an original client seen before) is inlined."""
        answers: list[bool] = []
        append = answers.append
        clients, window = self._clients, self._window
        get, to_end = clients.get, clients.move_to_end
        for origin in origins:
            if origin is None:
                append(True)
                continue
            client_id, seq = origin
            client = get(client_id)
            if type(client) is not _ClientStamps:
                append(self.first_time(client_id, seq))
                continue
            to_end(client_id)
            order = client.order
            if client.seen is None and order and seq > order[-1]:
                # The common case of _first_stamp: a clock that runs forward.
                order.append(seq)
                if len(order) > window:
                    order.popleft()
                append(True)
            else:
                append(self._first_stamp(client, seq))
        return answers

    def _remember(self, client_id: int, client: _Client) -> _Client:
        self._clients[client_id] = client
        if len(self._clients) > self._max_clients:
            self._clients.popitem(last=False)
        return client

    def _first_stamp(self, client: _ClientStamps, stamp: int) -> bool:
        order, seen = client.order, client.seen
        if seen is None:
            if order and stamp <= order[-1]:
                at = bisect_left(order, stamp)
                if order[at] == stamp:
                    return False
                # Out of order: a set until the timestamps increase again.
                seen = client.seen = set(order)
                client.run = 0
        elif stamp in seen:
            return False
        if seen is not None:
            seen.add(stamp)
            client.run = client.run + 1 if order and stamp > order[-1] else 1
        order.append(stamp)
        if len(order) > self._window:
            forgotten = order.popleft()
            if seen is not None:
                seen.discard(forgotten)
        if seen is not None and client.run >= len(order):
            client.seen = None
        return True

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
