"""The port through which the devices propose: what the daemon must provide.

The devices need a way to propose a value and be told where it was decided; the
daemon's proposals (:mod:`kpaxosd.proposals`) implement this protocol, raising these
errors. The port lives here, with the package that needs it, so that ``devices``
imports nothing of ``kpaxosd`` (docs/architecture.md, "Dependencies").
"""

from __future__ import annotations

import errno
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


class Proposals(Protocol):
    """The proposal entry point of a node hosting a learner."""

    @property
    def max_value_size(self) -> int:
        """The largest value, in bytes, that ``propose`` accepts."""
        ...

    async def propose(self, value: bytes) -> int:
        """Propose ``value`` and return the log position it was decided at
        (:mod:`wire.device`: its instance and its place in it).

        Raises:
            ValueTooLarge: the value cannot be carried in a datagram.
            ProposalTimeout: no decision within the node's client timeout.
            NodeStopping: the node shut down before a decision.
        """
        ...


__all__ = [
    "NodeStopping",
    "ProposalError",
    "ProposalTimeout",
    "Proposals",
    "ValueTooLarge",
]
