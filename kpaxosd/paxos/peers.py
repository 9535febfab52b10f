"""Learning trimmed history from a peer learner (LEARNER_FETCH, LEARNER_HISTORY).

A learner that needs instances the acceptors trimmed asks the learners the
configuration lists (``learner`` lines), one at a time, instead of giving them up.
The peer that answers gives, in one transfer (a ``session``):

1. its exactly-once memory as it is now, just before its next instance ``end_iid``
   (:mod:`wire.exactly_once`), in pieces (part 0, by byte offset);
2. the values it delivered from ``first_iid`` — the asker's next instance, or the
   first the peer still holds every value of, if that is later — up to ``end_iid``,
   in pieces of whole instances where they fit (part 1, after a position), with
   their positions and origins (:mod:`wire.history`).

The asker delivers those values at the peer's positions, a gap (Trimmed) for what
no peer retained, takes the peer's memory at ``end_iid``, and goes on with the
acceptors from there: from then on it delivers what the peer delivers, whatever it
lost. It pulls one piece at a time, so neither side holds more than a piece and one
memory per transfer; a peer serves at most :data:`MAX_SERVED` transfers at once.

A lost datagram is asked again after ``repeat_interval``; :data:`FETCH_TRIES`
unanswered asks, or a refusal (part 2: the peer is not ahead, or no longer holds
what comes next), move on to the next peer, and after the last one the learner
gives the history up as before. Once a peer's memory is taken there is no other
peer to go on with (theirs are of other instances): what that peer cannot give
any more becomes a gap.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Protocol

from kpaxosd.paxos.cluster import Address
from kpaxosd.paxos.effects import Outbox
from kpaxosd.paxos.options import DEFAULT_PIECE_BYTES
from wire.auth import TRAILER_SIZE as AUTH_TRAILER_SIZE
from wire.datagram import MAX_DATAGRAM_SIZE
from wire.device import iid_of, position_of
from wire.history import Entry, entry_size, pack_entries, unpack_entries_untrusted
from wire.messages import LearnerFetch, LearnerHistory

if TYPE_CHECKING:
    import random

#: LEARNER_FETCH / LEARNER_HISTORY parts.
MEMORY, ENTRIES, REFUSED = 0, 1, 2
#: About how many bytes one piece of history carries by default (a whole instance may
#: take more, up to what a datagram holds): PaxosOptions.history_piece_bytes.
PIECE_BYTES = DEFAULT_PIECE_BYTES
#: LEARNER_HISTORY's header: the type word and eight more.
HISTORY_HEADER_BYTES = 9 * 4
#: What a piece may take at most: a datagram, less that header and an
#: authentication trailer.
MAX_PIECE_BYTES = MAX_DATAGRAM_SIZE - HISTORY_HEADER_BYTES - AUTH_TRAILER_SIZE
#: Transfers a learner serves at once; a new one makes it forget the oldest.
MAX_SERVED = 4
#: Unanswered asks of one peer before the next one is asked: one piece of a transfer
#: lost this many times in a row ends it, so it must not happen under the losses a
#: cluster runs with (under a fifth of the datagrams lost each way, a round trip is
#: lost 36 % of the time, and 16 in a row about once in ten million).
FETCH_TRIES = 16
#: The largest memory an asker takes: above the 34 MB of the largest one the default
#: bounds allow (4,096 original clients with 1,024 timestamps each).
MAX_MEMORY_BYTES = 64 << 20
_U32 = 0xFFFFFFFF


class DeliveredHistory(Protocol):
    """What a learner delivered, as the wrapper keeps it (the device log)."""

    def complete_from(self) -> int:
        """The first instance from which every value delivered is still held (after
        the last gap, and at or after the oldest instance held)."""
        ...

    def entries_after(self, position: int, end_iid: int, max_bytes: int) -> list[Entry] | None:
        """The values delivered after ``position`` and before instance ``end_iid``,
        ``(position, value, origin)``, whole instances while they add up to at most
        ``max_bytes`` (at least one instance, or its first values if it alone takes
        more); None when what follows ``position`` is no longer held."""
        ...


def cut_piece(entries: Iterable[Entry], end_iid: int, max_bytes: int) -> list[Entry]:
    """The first entries of ``entries`` (in position order) that make one piece of
    history: those before instance ``end_iid``, whole instances while they add up to
    at most ``max_bytes`` (at least one instance, or its first values if it alone
    takes more). What a :class:`DeliveredHistory` gives."""
    end = position_of(end_iid, 0)
    piece: list[Entry] = []
    size = 0
    for entry in entries:
        if entry[0] >= end:
            break
        cost = entry_size(entry[1], entry[2])
        if piece and size + cost > max_bytes:
            last = iid_of(piece[-1][0])
            if iid_of(entry[0]) == last and iid_of(piece[0][0]) != last:
                piece = [e for e in piece if iid_of(e[0]) != last]
            break
        piece.append(entry)
        size += cost
    return piece


def _split(cursor: int) -> tuple[int, int]:
    return cursor >> 32, cursor & _U32


def _joined(high: int, low: int) -> int:
    return high << 32 | low


@dataclass(frozen=True, slots=True)
class _Served:
    first_iid: int
    end_iid: int
    memory: bytes


class HistoryServer:
    """A learner's side as the peer asked: answers LEARNER_FETCH from its history."""

    def __init__(self, history: DeliveredHistory, outbox: Outbox,
                 piece_bytes: int = PIECE_BYTES) -> None:
        self._history = history
        self._out = outbox
        self._piece_bytes = piece_bytes
        self._served: OrderedDict[tuple[Address, int], _Served] = OrderedDict()

    def on_fetch(self, msg: LearnerFetch, src: Address, next_iid: int | None,
                 memory: Callable[[], bytes]) -> None:
        """Answer one ask; ``next_iid`` and ``memory``: the learner's, now."""
        key = (src, msg.session)
        served = self._served.get(key)
        cursor = _joined(msg.cursor_high, msg.cursor_low)
        if served is None and msg.part == MEMORY and cursor == 0:
            served = self._begin(key, msg, next_iid, memory)
        if served is None:
            self._refuse(src, msg)
            return
        if msg.part == MEMORY:
            piece = served.memory[cursor : cursor + self._piece_bytes]
            total = len(served.memory)
        elif msg.part == ENTRIES:
            entries = self._history.entries_after(cursor, served.end_iid,
                                                  self._piece_bytes)
            if entries is None:
                self._refuse(src, msg)
                return
            piece = pack_entries(entries)
            if len(piece) > MAX_PIECE_BYTES:
                # One value too near the largest a datagram holds to travel with its
                # position and origin: the asker gets a gap from there.
                self._refuse(src, msg)
                return
            total = self._whole_below(entries, served.end_iid)
        else:
            self._refuse(src, msg)
            return
        self._out.send(src, LearnerHistory(msg.session, msg.part, served.first_iid,
                                           served.end_iid, total, msg.cursor_high,
                                           msg.cursor_low, piece))

    def _whole_below(self, entries: list[Entry], end_iid: int) -> int:
        """The instance below which a piece of values leaves nothing to come: past
        its last instance unless that one goes on in the next piece."""
        if not entries:
            return end_iid
        last = iid_of(entries[-1][0])
        after = self._history.entries_after(entries[-1][0], end_iid, 0)
        return last if after and iid_of(after[0][0]) == last else last + 1

    def _begin(self, key: tuple[Address, int], msg: LearnerFetch, next_iid: int | None,
               memory: Callable[[], bytes]) -> _Served | None:
        if next_iid is None or next_iid <= msg.from_iid or msg.from_iid == 0:
            return None  # not ahead of the asker: nothing to give
        first = min(max(msg.from_iid, self._history.complete_from()), next_iid)
        served = self._served[key] = _Served(first, next_iid, memory())
        if len(self._served) > MAX_SERVED:
            self._served.popitem(last=False)
        return served

    def _refuse(self, src: Address, msg: LearnerFetch) -> None:
        self._out.send(src, LearnerHistory(msg.session, REFUSED, 0, 0, 0, msg.cursor_high,
                                           msg.cursor_low, b""))


class Phase(enum.Enum):
    """Where one transfer stands."""

    #: Taking the peer's memory, piece by piece.
    MEMORY = "memory"
    #: The memory is taken: taking the values up to its instance.
    ENTRIES = "entries"


@dataclass(frozen=True, slots=True)
class Adopt:
    """The peer's memory is whole: go on from its history (``first_iid`` on)."""

    peer: Address
    first_iid: int
    end_iid: int
    memory: bytes


@dataclass(frozen=True, slots=True)
class Values:
    """Values of the peer's history, in order; history is whole below ``whole_below``."""

    entries: list[Entry]
    whole_below: int


@dataclass(frozen=True, slots=True)
class Done:
    """The transfer is over: every value up to the peer's ``end_iid`` came, or (with
    ``lost_from``) the peer could not give those from that instance on."""

    end_iid: int
    lost_from: int | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    """No peer gave its memory: give the history up as without peers."""


Outcome = Adopt | Values | Done | Failed


class HistoryFetch:
    """The asker's side: one transfer from the peers in turn (see the module)."""

    def __init__(self, peers: list[Address], from_iid: int, rng: random.Random,
                 outbox: Outbox, interval: float, now: float) -> None:
        self._peers = peers
        self._from_iid = from_iid
        self._rng = rng
        self._out = outbox
        self._interval = interval
        self._peer_index = 0
        self.phase = Phase.MEMORY
        self._session = 0
        self._memory = bytearray()
        self._first_iid = self._end_iid = 0
        # Entries: the position asked after, and the instance history is whole below.
        self._after = 0
        self._whole_below = 0
        self._tries = 0
        self.due = now
        self._begin(now)

    @property
    def from_iid(self) -> int:
        """The instance the history is asked from."""
        return self._from_iid

    @property
    def peer(self) -> Address:
        return self._peers[self._peer_index]

    def on_history(self, msg: LearnerHistory, src: Address, now: float) -> Outcome | None:
        """What an answer brings (None: nothing, or not an answer to us)."""
        if src != self.peer or msg.session != self._session:
            return None
        cursor = _joined(msg.cursor_high, msg.cursor_low)
        if msg.part == REFUSED:
            return self._refused(now)
        if self.phase is Phase.MEMORY and msg.part == MEMORY and cursor == len(self._memory):
            return self._memory_piece(msg, now)
        if self.phase is Phase.ENTRIES and msg.part == ENTRIES and cursor == self._after:
            return self._entries_piece(msg, now)
        return None  # a late copy of an answer already taken

    def on_timer(self, now: float) -> Outcome | None:
        """Ask again, or move on to the next peer."""
        self._tries += 1
        if self._tries < FETCH_TRIES:
            self._ask(now)
            return None
        return self._refused(now)

    def _begin(self, now: float) -> None:
        self._session = self._rng.getrandbits(32)
        self._memory = bytearray()
        self._tries = 0
        self._ask(now)

    def _ask(self, now: float) -> None:
        if self.phase is Phase.MEMORY:
            part, cursor, from_iid = MEMORY, len(self._memory), self._from_iid
        else:
            part, cursor, from_iid = ENTRIES, self._after, self._first_iid
        self._out.send(self.peer, LearnerFetch(self._session, from_iid, part, *_split(cursor)))
        self.due = now + self._interval

    def _refused(self, now: float) -> Outcome | None:
        if self.phase is Phase.ENTRIES:
            return Done(self._end_iid, lost_from=self._whole_below)
        self._peer_index += 1
        if self._peer_index >= len(self._peers):
            return Failed()
        self._begin(now)
        return None

    def _memory_piece(self, msg: LearnerHistory, now: float) -> Outcome | None:
        if (msg.end_iid <= self._from_iid or not msg.first_iid <= msg.end_iid
                or msg.first_iid < self._from_iid or msg.total < len(self._memory)
                or msg.total > MAX_MEMORY_BYTES):
            return self._refused(now)  # not what was asked: a peer that has it wrong
        if not msg.value and len(self._memory) < msg.total:
            return self._refused(now)
        self._first_iid, self._end_iid = msg.first_iid, msg.end_iid
        self._memory += msg.value
        self._tries = 0
        if len(self._memory) < msg.total:
            self._ask(now)
            return None
        if len(self._memory) > msg.total:
            return self._refused(now)
        self.phase = Phase.ENTRIES
        self._after = position_of(self._first_iid, 0) - 1
        self._whole_below = self._first_iid
        self._ask(now)
        return Adopt(self.peer, self._first_iid, self._end_iid, bytes(self._memory))

    def _entries_piece(self, msg: LearnerHistory, now: float) -> Outcome:
        try:
            entries = unpack_entries_untrusted(msg.value)
        except ValueError:
            return Done(self._end_iid, lost_from=self._whole_below)
        end = position_of(self._end_iid, 0)
        positions = [position for position, _, _ in entries]
        if positions and (positions[0] <= self._after or positions[-1] >= end
                          or any(a >= b for a, b in pairwise(positions))):
            return Done(self._end_iid, lost_from=self._whole_below)
        if not entries:
            return Done(self._end_iid)
        if not iid_of(positions[-1]) <= msg.total <= self._end_iid:
            return Done(self._end_iid, lost_from=self._whole_below)
        self._tries = 0
        self._after = positions[-1]
        # Whole below the instance the peer names: past the last instance of the
        # piece, unless that one goes on in the next.
        self._whole_below = max(self._whole_below, msg.total)
        self._ask(now)
        return Values(entries, self._whole_below)
