"""Who is there: whether a learner hears from a quorum of acceptors.

While it does not, nothing it was asked to wait for can come — a decision, a
barrier's answer — and the daemon tells its writers and readers so at once
(:class:`~kpaxosd.paxos.effects.QuorumReach`) rather than at the end of a long
timeout. An acceptor counts as there for ``timeout`` seconds after anything came
from it (an acceptance, an answer, ACCEPTOR_OK); one not heard from for an eighth of
that is asked with LEARNER_HI, which every acceptor, the original's too, answers
with ACCEPTOR_OK. Eight asks per timeout: under a fifth of the datagrams lost, a
live acceptor goes unheard for a whole timeout about once in 3,000 timeouts, and a
quorum of them far less often.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from kpaxosd.paxos.cluster import Address
from kpaxosd.paxos.effects import Outbox, QuorumReach
from wire.messages import LearnerHi

#: Asks to a silent acceptor per timeout.
ASKS_PER_TIMEOUT = 8


class Reach:
    """Whether a quorum of ``acceptors`` was heard from within ``timeout`` seconds.

    It starts as reachable (nothing was waited for yet) and says every change with a
    QuorumReach effect. A ``timeout`` of 0 turns it off: always reachable, no asks.
    """

    def __init__(self, acceptors: Mapping[int, Address], quorum: int, timeout: float,
                 outbox: Outbox, now: float) -> None:
        self._acceptors = acceptors
        self._quorum = quorum
        self._timeout = timeout
        self._ask_every = timeout / ASKS_PER_TIMEOUT
        self._out = outbox
        #: When each acceptor was last heard from (start-up counts, once).
        self.heard_at: dict[int, float] = dict.fromkeys(acceptors, now)
        self.reachable = True
        self._due = now + self._ask_every if timeout > 0 else math.inf

    def heard(self, aid: int, now: float) -> None:
        """Something came from acceptor ``aid`` (checked by the caller)."""
        self.heard_at[aid] = now
        if not self.reachable:
            self._assess(now)

    def handle_timer(self, now: float) -> None:
        if self._due > now:
            return
        self._due = now + self._ask_every
        quiet = now - self._ask_every
        for aid, at in self.heard_at.items():
            if at <= quiet:
                self._out.send(self._acceptors[aid], LearnerHi())
        self._assess(now)

    def next_deadline(self) -> float:
        return self._due

    def _assess(self, now: float) -> None:
        since = now - self._timeout
        there = sum(1 for at in self.heard_at.values() if at > since)
        reachable = there >= self._quorum
        if reachable != self.reachable:
            self.reachable = reachable
            self._out.add(QuorumReach(reachable, there))
