"""What the Paxos core asks its wrapper to do, in order."""

from __future__ import annotations

from dataclasses import dataclass

from kpaxosd.paxos.cluster import Address
from wire.messages import Message


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``msg`` as one datagram from this node's endpoint to ``dest``."""

    dest: Address
    msg: Message


@dataclass(frozen=True, slots=True)
class Deliver:
    """Instance ``iid`` decided ``value`` (an envelope's payload, or a raw value).

    ``origin`` is the envelope's (client_id, seq), None for a raw value.
    """

    iid: int
    value: bytes
    origin: tuple[int, int] | None


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


Effect = Send | Deliver | Persist


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
