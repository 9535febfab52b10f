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


class _ClientStamps:
    """An original client: its values' timestamps, exactly, the last ``window`` of them."""

    __slots__ = ("order", "seen")

    def __init__(self) -> None:
        self.order: deque[int] = deque()
        self.seen: set[int] = set()


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

    def _remember(self, client_id: int, client: _Client) -> _Client:
        self._clients[client_id] = client
        if len(self._clients) > self._max_clients:
            self._clients.popitem(last=False)
        return client

    def _first_stamp(self, client: _ClientStamps, stamp: int) -> bool:
        if stamp in client.seen:
            return False
        client.seen.add(stamp)
        client.order.append(stamp)
        if len(client.order) > self._window:
            client.seen.discard(client.order.popleft())
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
