"""Read barriers: every value decided before a barrier began, confirmed by a quorum.

A program that saw its write acknowledged through one host's client device wants to
read it through another host's learner device. A barrier asks every acceptor for the
highest instance it accepted (LEARNER_BARRIER, answered with BARRIER_ANSWER: kpaxos
extensions) and is reached once the learner delivered every instance up to the
highest answer of a quorum. That covers every value decided before the barrier
began: a quorum of acceptors accepted it, and that quorum shares an acceptor with
the quorum that answered, which had accepted it when it answered. What the local
learner happens to know counts for nothing.

Answers must be to asks sent after the barrier began, so barriers begun while a
round of asks is out wait for the next round, sent once that one has a quorum. An
ask goes again, each resend interval, to the acceptors that have not answered (loss).
A round's session is drawn at random: an answer to an earlier round (a late copy, a
duplicate) is not counted in a later one.

Instances up to the answer that the learner cannot decide (accepted by fewer than a
quorum before their proposer died) are what its hole repair is for: it is told they
exist, asks for them, and reports them stuck to the leader, which runs them again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kpaxosd.paxos.ballots import MAX_U32
from kpaxosd.paxos.cluster import Address
from kpaxosd.paxos.effects import Outbox
from wire.messages import BarrierAnswer, LearnerBarrier

if TYPE_CHECKING:
    import random


@dataclass
class _Round:
    """One round of asks: the barriers it serves and the answers so far."""

    session: int
    tokens: list[int]
    resend_at: float
    answers: dict[int, int] = field(default_factory=dict)


class BarrierRounds:
    """The read barriers of one learner, from begin to the instance each waits for.

    Args:
        acceptors: acceptor id -> address.
        quorum: how many acceptors' answers make a round's.
        outbox: where the asks go.
        rng: draws the sessions.
        resend_interval: seconds before an unanswered ask goes again.
    """

    def __init__(self, acceptors: Mapping[int, Address], quorum: int, outbox: Outbox,
                 rng: random.Random, resend_interval: float) -> None:
        self._acceptors = acceptors
        self._quorum = quorum
        self._out = outbox
        self._rng = rng
        self._resend_interval = resend_interval
        self._round: _Round | None = None
        # Begun while a round was out: they go in the next.
        self._next_tokens: list[int] = []
        # Answered by a quorum: (instance to deliver through, token).
        self._targets: list[tuple[int, int]] = []

    @property
    def waiting(self) -> bool:
        """Whether a barrier is not reached yet."""
        return bool(self._round or self._next_tokens or self._targets)

    def begin(self, token: int, now: float) -> None:
        """Start barrier ``token``: :meth:`reached` names it once it is."""
        if self._round is None:
            self._start([token], now)
        else:
            self._next_tokens.append(token)

    def forget(self, token: int) -> None:
        """Nobody waits for barrier ``token`` any more (withdrawn, timed out): it is
        dropped, and never reached. A round already out goes on for the others."""
        if token in self._next_tokens:
            self._next_tokens.remove(token)
        elif self._round is not None and token in self._round.tokens:
            self._round.tokens.remove(token)
        else:
            self._targets = [(target, t) for target, t in self._targets if t != token]

    def on_answer(self, msg: BarrierAnswer, now: float) -> int | None:
        """Count one acceptor's answer; the instance the round's barriers wait for,
        when this answer completes its quorum (None otherwise)."""
        current = self._round
        if current is None or msg.session != current.session or msg.aid not in self._acceptors:
            return None
        current.answers[msg.aid] = msg.accepted_iid
        if len(current.answers) < self._quorum:
            return None
        target = max(current.answers.values())
        self._targets.extend((target, token) for token in current.tokens)
        self._round = None
        if self._next_tokens:
            tokens, self._next_tokens = self._next_tokens, []
            self._start(tokens, now)
        return target

    def reached(self, next_iid: int | None) -> list[int]:
        """The barriers reached by a learner whose next instance is ``next_iid``
        (None: it delivered nothing yet), taken off the list."""
        delivered = 0 if next_iid is None else next_iid - 1
        if not any(target <= delivered for target, _ in self._targets):
            return []
        done = [token for target, token in self._targets if target <= delivered]
        self._targets = [(target, token) for target, token in self._targets
                         if target > delivered]
        return done

    def handle_timer(self, now: float) -> None:
        current = self._round
        if current is None or current.resend_at > now:
            return
        current.resend_at = now + self._resend_interval
        for aid, address in self._acceptors.items():
            if aid not in current.answers:
                self._out.send(address, LearnerBarrier(current.session))

    def next_deadline(self) -> float | None:
        return None if self._round is None else self._round.resend_at

    def _start(self, tokens: list[int], now: float) -> None:
        session = self._rng.randint(0, MAX_U32)
        self._round = _Round(session, tokens, now + self._resend_interval)
        for address in self._acceptors.values():
            self._out.send(address, LearnerBarrier(session))
