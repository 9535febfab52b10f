"""The twelve Kernel_Paxos datagrams, and kpaxos's extension, as immutable values.

These are what the rest of kpaxos handles; the byte layout that carries them is
declared once in :mod:`wire.datagram`.

Extensions: type words from 100 up are kpaxos's own; the original never sends them.
They go only to the proposers of the configuration (PROPOSER_HI from a proposer,
LEARNER_STUCK from a learner) and between the learners it lists (LEARNER_FETCH,
LEARNER_HISTORY); LEARNER_BARRIER goes from a learner to the acceptors, which answer
BARRIER_ANSWER: an original acceptor never answers, and a learner asks only when a
reader asks for a read barrier. An original learner or client never sees one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class MessageType(enum.IntEnum):
    """The type word that opens every datagram (libpaxos ``paxos_message_type``)."""

    PREPARE = 0
    PROMISE = 1
    ACCEPT = 2
    ACCEPTED = 3
    PREEMPTED = 4
    REPEAT = 5
    TRIM = 6
    ACCEPTOR_STATE = 7
    CLIENT_VALUE = 8
    LEARNER_HI = 9
    LEARNER_DEL = 10
    ACCEPTOR_OK = 11
    #: kpaxos extension: a proposer is alive (the stable leader's heartbeat).
    PROPOSER_HI = 100
    #: kpaxos extension: a learner cannot learn an instance from the acceptors.
    LEARNER_STUCK = 101
    #: kpaxos extension: a learner asks a peer learner for history the acceptors
    #: trimmed.
    LEARNER_FETCH = 102
    #: kpaxos extension: a peer learner's answer, a piece of that history.
    LEARNER_HISTORY = 103
    #: kpaxos extension: a learner asks an acceptor the highest instance it accepted
    #: (a read barrier).
    LEARNER_BARRIER = 104
    #: kpaxos extension: an acceptor's answer to LEARNER_BARRIER.
    BARRIER_ANSWER = 105


#: The first type word of kpaxos's extensions.
FIRST_EXTENSION = 100


@dataclass(frozen=True, slots=True)
class Prepare:
    iid: int
    ballot: int


@dataclass(frozen=True, slots=True)
class Promise:
    aid: int
    iid: int
    ballot: int
    value_ballot: int
    value: bytes


@dataclass(frozen=True, slots=True)
class Accept:
    iid: int
    ballot: int
    value: bytes


@dataclass(frozen=True, slots=True)
class Accepted:
    aid: int
    iid: int
    ballot: int
    value_ballot: int
    value: bytes


@dataclass(frozen=True, slots=True)
class Preempted:
    aid: int
    iid: int
    ballot: int


@dataclass(frozen=True, slots=True)
class Repeat:
    from_iid: int
    to_iid: int


@dataclass(frozen=True, slots=True)
class Trim:
    iid: int


@dataclass(frozen=True, slots=True)
class AcceptorState:
    aid: int
    trim_iid: int


@dataclass(frozen=True, slots=True)
class ClientValue:
    value: bytes


@dataclass(frozen=True, slots=True)
class LearnerHi:
    pass


@dataclass(frozen=True, slots=True)
class LearnerDel:
    pass


@dataclass(frozen=True, slots=True)
class AcceptorOk:
    pass


@dataclass(frozen=True, slots=True)
class ProposerHi:
    """kpaxos extension. Proposer ``pid`` is alive, and knows every instance below
    ``decided_below`` decided (a taking-over proposer need not prepare those)."""

    pid: int
    decided_below: int


@dataclass(frozen=True, slots=True)
class LearnerStuck:
    """kpaxos extension. A learner cannot learn instance ``iid``: the acceptors it
    asked hold too few acceptances at one ballot. The leading proposer runs the
    instance again."""

    iid: int


@dataclass(frozen=True, slots=True)
class LearnerFetch:
    """kpaxos extension. A learner that lacks history from ``from_iid`` on, which
    the acceptors trimmed, asks a peer learner for a piece of it, in transfer
    ``session``: ``part`` 0 the peer's exactly-once memory from byte ``cursor``, 1
    the values it delivered after position ``cursor`` (see kpaxosd.paxos.peers).
    ``cursor`` is a u64 in two words, high first."""

    session: int
    from_iid: int
    part: int
    cursor_high: int
    cursor_low: int


@dataclass(frozen=True, slots=True)
class LearnerHistory:
    """kpaxos extension. A peer learner's answer to LEARNER_FETCH: in ``session``,
    for ``part`` (0, 1 as asked; 2 refused: nothing to give, or no longer), the
    history it gives runs from instance ``first_iid`` to just before ``end_iid``;
    ``value`` is the piece from ``cursor`` on. ``total``: part 0, the memory's size in
    bytes; part 1, the instance below which history is whole with this piece."""

    session: int
    part: int
    first_iid: int
    end_iid: int
    total: int
    cursor_high: int
    cursor_low: int
    value: bytes


@dataclass(frozen=True, slots=True)
class LearnerBarrier:
    """kpaxos extension. A learner asks an acceptor for the highest instance it
    accepted, in round ``session`` of its read barriers (kpaxosd.paxos.barrier)."""

    session: int


@dataclass(frozen=True, slots=True)
class BarrierAnswer:
    """kpaxos extension. Acceptor ``aid``'s answer to LEARNER_BARRIER ``session``: it
    accepted nothing above ``accepted_iid`` when it answered."""

    aid: int
    session: int
    accepted_iid: int


Message = (
    Prepare
    | Promise
    | Accept
    | Accepted
    | Preempted
    | Repeat
    | Trim
    | AcceptorState
    | ClientValue
    | LearnerHi
    | LearnerDel
    | AcceptorOk
    | ProposerHi
    | LearnerStuck
    | LearnerFetch
    | LearnerHistory
    | LearnerBarrier
    | BarrierAnswer
)

MESSAGE_TYPES: dict[type[Message], MessageType] = {
    Prepare: MessageType.PREPARE,
    Promise: MessageType.PROMISE,
    Accept: MessageType.ACCEPT,
    Accepted: MessageType.ACCEPTED,
    Preempted: MessageType.PREEMPTED,
    Repeat: MessageType.REPEAT,
    Trim: MessageType.TRIM,
    AcceptorState: MessageType.ACCEPTOR_STATE,
    ClientValue: MessageType.CLIENT_VALUE,
    LearnerHi: MessageType.LEARNER_HI,
    LearnerDel: MessageType.LEARNER_DEL,
    AcceptorOk: MessageType.ACCEPTOR_OK,
    ProposerHi: MessageType.PROPOSER_HI,
    LearnerStuck: MessageType.LEARNER_STUCK,
    LearnerFetch: MessageType.LEARNER_FETCH,
    LearnerHistory: MessageType.LEARNER_HISTORY,
    LearnerBarrier: MessageType.LEARNER_BARRIER,
    BarrierAnswer: MessageType.BARRIER_ANSWER,
}
