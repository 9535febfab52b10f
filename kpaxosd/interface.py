"""What the device layer may use of the daemon: the delivered-value log and proposals.

``devices/`` imports this module and nothing else of ``kpaxosd``.
"""

from __future__ import annotations

import errno
from typing import Protocol

from kpaxosd.valuelog import DeliveredValue, LogClosed, ReaderTooFarBehind, ValueLog


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
        """Propose ``value`` and return the iid that decided it.

        Raises:
            ValueTooLarge: the value cannot be carried in a datagram.
            ProposalTimeout: no decision within the node's client timeout.
            NodeStopping: the node shut down before a decision.
        """
        ...


__all__ = [
    "DeliveredValue",
    "LogClosed",
    "NodeStopping",
    "ProposalError",
    "ProposalTimeout",
    "Proposals",
    "ReaderTooFarBehind",
    "ValueLog",
    "ValueTooLarge",
]
