"""Delivering a resent client value once: deduplication by (client_id, seq).

A client that has not seen its value decided within a second sends it again, so one
value may be decided in two instances. Learners deliver only the first. The filter is
a pure function of the sequence of decided values, so every learner fed the same
decided sequence delivers the same values.
"""

from __future__ import annotations

from collections import OrderedDict


class _ClientSeqs:
    __slots__ = ("highest", "recent")

    def __init__(self, seq: int) -> None:
        self.highest = seq
        self.recent = {seq}


class OriginFilter:
    """Remembers which (client_id, seq) were delivered, within bounded memory.

    Per client: the highest seq seen and the seqs seen within ``window`` below it; a
    seq older than that counts as seen (clients number their values upwards, and a
    resend of something that old has long been decided). At most ``max_clients``
    clients are remembered; the least recently seen is forgotten first.
    """

    __slots__ = ("_clients", "_max_clients", "_window")

    def __init__(self, max_clients: int, window: int) -> None:
        self._clients: OrderedDict[int, _ClientSeqs] = OrderedDict()
        self._max_clients = max_clients
        self._window = window

    def first_time(self, client_id: int, seq: int) -> bool:
        """Record (client_id, seq); True when it was not seen before."""
        seqs = self._clients.get(client_id)
        if seqs is None:
            self._clients[client_id] = _ClientSeqs(seq)
            if len(self._clients) > self._max_clients:
                self._clients.popitem(last=False)
            return True
        self._clients.move_to_end(client_id)
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
