"""What the Paxos core asks its wrapper to do, in order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kpaxosd.paxos.cluster import Address
from wire.device import position_of
from wire.identity import Origin
from wire.messages import Message


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``msg`` as one datagram from this node's endpoint to ``dest``."""

    dest: Address
    msg: Message


# Not frozen: a frozen dataclass's __init__ costs three times as much, and one is made
# per decided instance. Nobody changes one after it is made.
@dataclass(slots=True)
class Deliver:
    """Instance ``iid`` decided the client values ``values``, to deliver in order.

    An instance that decided a batch (:mod:`wire.batch`) gives one Deliver with every
    client value in it that was not delivered before, in the batch's order; any other
    value gives one Deliver of one value. Each value is an envelope's payload, any
    other value whole. An instance whose values were all delivered before gives none.

    ``origins[k]`` is the identity of ``values[k]`` (:mod:`wire.identity`): an
    envelope's (client_id, seq), an original ``struct client_value``'s client id and
    timestamp (first element below 0), None for a value without identity.

    ``places[k]`` is where ``values[k]`` sits among the client values of the
    instance (from 0): what a value's log position is made of, the same at every
    learner whatever each passed over as a duplicate. None when every client value
    of the instance is delivered (``places[k]`` is ``k``), the common case.
    """

    iid: int
    values: list[bytes]
    origins: list[Origin | None]
    places: list[int] | None = None

    def positions(self) -> Sequence[int]:
        """The log position of each of ``values`` (:mod:`wire.device`)."""
        first = position_of(self.iid, 0)
        if self.places is None:
            return range(first, first + len(self.values))
        return [first + place for place in self.places]


@dataclass(frozen=True, slots=True)
class Trimmed:
    """Instances ``first_iid`` to ``next_iid - 1`` are gone for this learner.

    The acceptors trimmed them before this learner learned their values: they will
    never be delivered here. Delivery goes on at ``next_iid``. It takes its place in
    delivery order: every Deliver before it has an iid below ``first_iid``, every
    Deliver after it an iid of at least ``next_iid``. A reader of the decided values
    must be told; nothing was skipped silently.
    """

    first_iid: int
    next_iid: int


@dataclass(frozen=True, slots=True)
class Persist:
    """An acceptor's whole record of ``iid`` after a change.

    It comes before the Send it guards: a promise or an acceptance must be durable
    before anyone hears of it. ``accepted_ballot`` 0 means nothing accepted yet.
    """

    iid: int
    promised_ballot: int
    accepted_ballot: int
    value: bytes


@dataclass(frozen=True, slots=True)
class PersistTrim:
    """The acceptor forgot every instance up to ``iid``: keep that trim point durably.

    The persisted records at or below ``iid`` may go; after a restart the trim point
    goes back in with :meth:`Node.restore_acceptor`. It comes before anything that
    relies on it (an ACCEPTOR_STATE naming it, a refusal below it): an acceptor that
    restarts must not answer for an instance it told someone it forgot.
    """

    iid: int


@dataclass(frozen=True, slots=True)
class Adopted:
    """The learner goes on from a peer learner's history (:mod:`kpaxosd.paxos.peers`).

    The Deliver that follow, from instance ``first_iid`` up to ``next_iid``, are what
    ``peer`` delivered (a Trimmed right after it says what no peer retained before
    ``first_iid``; one at the end, what the peer could not give after all); just
    before ``next_iid`` this learner's exactly-once memory is ``memory``, the peer's.
    A durable log keeps it once delivery reaches ``next_iid``, for a restart to go
    on from.
    """

    first_iid: int
    next_iid: int
    memory: bytes
    peer: Address


@dataclass(frozen=True, slots=True)
class BarrierReached:
    """Read barrier ``token`` is reached (:mod:`kpaxosd.paxos.barrier`): every value
    decided before it began was in a Deliver before this effect."""

    token: int


@dataclass(frozen=True, slots=True)
class QuorumReach:
    """The learner can reach a quorum of acceptors again, or no longer can
    (:mod:`kpaxosd.paxos.reach`); ``there``: how many it heard from."""

    reachable: bool
    there: int


Effect = (Send | Deliver | Persist | PersistTrim | Trimmed | Adopted | BarrierReached
          | QuorumReach)
#: What a learner tells whoever consumes its decisions, in delivery order.
Decision = Deliver | Trimmed | Adopted
#: What a learner tells whoever waits on it besides its decisions: barriers reached
#: (each after the decisions it waited for), and changes of reach.
Signal = BarrierReached | QuorumReach


class Outbox:
    """The ordered effect queue that the roles of one node share."""

    __slots__ = ("_effects",)

    def __init__(self) -> None:
        self._effects: list[Effect] = []

    def send(self, dest: Address, msg: Message) -> None:
        self._effects.append(Send(dest, msg))

    def add(self, effect: Effect) -> None:
        self._effects.append(effect)

    def drain(self) -> list[Effect]:
        effects, self._effects = self._effects, []
        return effects
