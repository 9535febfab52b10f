"""The ports through which the devices propose and wait: what the daemon must provide.

The devices need a way to propose a value and be told where it was decided, and a
way to wait for a read barrier and to know whether the learner reaches a quorum; the
daemon's proposals (:mod:`kpaxosd.proposals`) and barriers (:mod:`kpaxosd.barriers`)
implement these protocols, raising these errors. The ports live here, with the
package that needs them, so that ``devices`` imports nothing of ``kpaxosd``
(docs/architecture.md, "Dependencies").

Proposing is a call and a callback, not a task per value: a device write is one FUSE
request among thousands a second, and the daemon answers it from the decision itself.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Protocol


class ProposalError(Exception):
    """A proposal that did not get decided; ``errno`` is what a device write reports."""

    errno: int = errno.EIO


class ValueTooLarge(ProposalError):
    errno = errno.EMSGSIZE


class ProposalTimeout(ProposalError):
    errno = errno.ETIMEDOUT


class NodeStopping(ProposalError):
    errno = errno.EIO


class NoQuorum(ProposalError):
    """The learner hears from no quorum of acceptors: nothing can be decided now."""

    errno = errno.ENOTCONN


#: What a proposal's callback is given: the log position it was decided at
#: (:mod:`wire.device`), or why it was not.
Outcome = int | ProposalError


class Proposal(Protocol):
    """One submitted value."""

    def withdraw(self) -> None:
        """Nobody waits for the outcome any more: the callback will not be called.
        A value already sent may still be decided; one still queued never is sent."""
        ...


class Proposals(Protocol):
    """The proposal entry point of a node hosting a learner."""

    @property
    def max_value_size(self) -> int:
        """The largest value, in bytes, that ``submit`` accepts."""
        ...

    @property
    def has_room(self) -> bool:
        """Would a value submitted now be sent at once (not queued for room)?"""
        ...

    def submit(self, value: bytes, done: Callable[[Outcome], None], *,
               flush: bool = True, hold: float = 0.0) -> Proposal:
        """Propose ``value``; ``done`` is called once, later, with its outcome: the
        position, :class:`ProposalTimeout` (no decision within the node's client
        timeout) or :class:`NodeStopping` (the node shut down first). With ``flush``
        False the value waits for :meth:`flush`, which the caller promises soon; with
        ``hold`` it may wait that many seconds for others to travel with it.

        Raises:
            ValueTooLarge: the value cannot be carried in a datagram.
            NodeStopping: the node is shutting down.
        """
        ...

    def flush(self) -> None:
        """Send the values submitted with ``flush=False``, together."""
        ...

    def when_room(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once, as soon as :attr:`has_room` (or the node stops)."""
        ...


class Barriers(Protocol):
    """Read barriers and who is there, for the learner device."""

    @property
    def reachable(self) -> bool:
        """Whether the learner heard from a quorum of acceptors lately."""
        ...

    def barrier(self, done: Callable[[Outcome], None]) -> Proposal:
        """Start a read barrier; ``done`` is called once, later, with the position
        after every value decided before now (all of them in the log by then), or
        with :class:`NoQuorum`, :class:`ProposalTimeout` or :class:`NodeStopping`.
        Withdraw it to stop waiting.

        Raises:
            NoQuorum: the learner reaches no quorum now.
            NodeStopping: the node is shutting down.
        """
        ...

    def when_reach_changes(self, callback: Callable[[bool], None]) -> None:
        """Call ``callback`` with :attr:`reachable` each time it changes."""
        ...


__all__ = [
    "Barriers",
    "NoQuorum",
    "NodeStopping",
    "Outcome",
    "Proposal",
    "ProposalError",
    "ProposalTimeout",
    "Proposals",
    "ValueTooLarge",
]
