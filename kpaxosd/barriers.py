"""Read barriers for the learner device, and whether its learner reaches a quorum.

The learner does the work (:mod:`kpaxosd.paxos.barrier`, :mod:`kpaxosd.paxos.reach`);
this is the daemon's side of it: each barrier a device asks for gets a token, goes
to the node, and is answered when the learner's BarrierReached comes — with the end
of the device log then, which holds every value the barrier waited for — or fails:
NoQuorum while the learner hears from no quorum of acceptors, ProposalTimeout after
the client timeout, NodeStopping at shutdown.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import trio

from devices.ports import NodeStopping, NoQuorum, Outcome, ProposalError, ProposalTimeout
from devices.valuelog import ValueLog
from kpaxosd.paxos.effects import BarrierReached, Signal

log = logging.getLogger("kpaxos")


class _Barrier:
    """One barrier a device waits for, until it is told or withdrawn."""

    __slots__ = ("_owner", "deadline", "done", "token")

    def __init__(self, owner: ReadBarriers, token: int, done: Callable[[Outcome], None],
                 deadline: float) -> None:
        self._owner = owner
        self.token = token
        self.done = done
        self.deadline = deadline

    def withdraw(self) -> None:
        self._owner._forget(self.token)


class ReadBarriers:
    """The :class:`devices.ports.Barriers` of the daemon's learner.

    Args:
        begin: starts barrier ``token`` in the learner's node.
        forget: drops it there, when nobody waits for it any more.
        values: the device log, whose end answers a barrier reached.
        timeout: seconds a barrier may wait (0: for ever).
        quorum_timeout: what the learner waits before it says no quorum answers
            (for the errors' words).

    :meth:`run` must be running for barriers to time out.
    """

    def __init__(self, begin: Callable[[int], None], forget: Callable[[int], None],
                 values: ValueLog, *, timeout: float, quorum_timeout: float | None) -> None:
        self._begin = begin
        self._forget_in_node = forget
        self._values = values
        self._timeout = timeout
        self._quorum_timeout = quorum_timeout
        self._waiting: dict[int, _Barrier] = {}
        self._next_token = 0
        self._reachable = True
        self._reach_callbacks: list[Callable[[bool], None]] = []
        self._stopping = False
        self._wakeup = trio.Event()

    @property
    def reachable(self) -> bool:
        return self._reachable

    def barrier(self, done: Callable[[Outcome], None]) -> _Barrier:
        if self._stopping:
            raise NodeStopping("the node is stopping")
        if not self._reachable:
            raise self._no_quorum()
        token, self._next_token = self._next_token, self._next_token + 1
        deadline = trio.current_time() + self._timeout if self._timeout > 0 else math.inf
        first = not self._waiting
        waiting = self._waiting[token] = _Barrier(self, token, done, deadline)
        self._begin(token)
        if first:
            self._wakeup.set()  # the others' deadlines are earlier: run() sleeps for them
        return waiting

    def when_reach_changes(self, callback: Callable[[bool], None]) -> None:
        self._reach_callbacks.append(callback)

    def on_signals(self, signals: Sequence[Signal]) -> None:
        """The learner's barriers reached and changes of reach (after the decisions
        of the same flush went to the device log)."""
        for signal in signals:
            if isinstance(signal, BarrierReached):
                waiting = self._waiting.pop(signal.token, None)
                if waiting is not None:
                    _tell(waiting, self._values.end_position)
            else:
                self._reach_changed(signal.reachable, signal.there)

    def _reach_changed(self, reachable: bool, there: int) -> None:
        self._reachable = reachable
        if reachable:
            log.warning("the learner hears from a quorum of acceptors again (%d); writes "
                        "and barriers are taken again", there)
        else:
            log.warning("the learner hears from no quorum of acceptors (%d answered within "
                        "%g s): writes to the client device and read barriers fail with "
                        "ENOTCONN until it does", there, self._quorum_timeout or 0)
            self._fail_all(self._no_quorum())
        for callback in self._reach_callbacks:
            try:
                callback(reachable)
            except Exception:
                log.exception("a callback told of the learner's reach failed")

    def _no_quorum(self) -> NoQuorum:
        return NoQuorum(f"the learner heard from no quorum of acceptors within "
                        f"{self._quorum_timeout or 0:g} s")

    def stop(self) -> None:
        """Fail every pending and future barrier with NodeStopping."""
        self._stopping = True
        self._fail_all(NodeStopping("the node stopped before the barrier was reached"))

    def _forget(self, token: int) -> None:
        if self._waiting.pop(token, None) is not None:
            self._forget_in_node(token)

    def _fail_all(self, error: ProposalError) -> None:
        waiting = list(self._waiting.values())
        self._waiting.clear()
        for barrier in waiting:
            self._forget_in_node(barrier.token)
            _tell(barrier, error)

    async def run(self) -> None:
        """Time out the barriers that waited too long (the oldest first: one timeout
        for all, so their deadlines come in the order they began)."""
        waiting = self._waiting
        while True:
            self._wakeup = trio.Event()
            now = trio.current_time()
            while waiting and (oldest := next(iter(waiting.values()))).deadline <= now:
                self._forget(oldest.token)
                _tell(oldest, ProposalTimeout(f"no barrier within {self._timeout:g} s"))
            wake_at = next(iter(waiting.values())).deadline if waiting else math.inf
            with trio.move_on_at(wake_at):
                await self._wakeup.wait()


def _tell(barrier: _Barrier, outcome: Outcome) -> None:
    try:
        barrier.done(outcome)
    except Exception:
        log.exception("a barrier's callback failed")
