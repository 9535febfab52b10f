"""The values the core itself gives a meaning to."""

from __future__ import annotations

#: The value a proposer fills a hole with (Proposer, "no-op"): decided like any
#: other, never delivered. Empty, so no client value can be taken for it.
NOOP = b""

__all__ = ["NOOP"]
