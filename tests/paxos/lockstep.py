"""Nodes on a perfect network, in lockstep: every datagram arrives, in the order it
was sent, at the current time; time moves only when a test says so.

A test may drop datagrams with ``drop`` (a predicate on source, destination and
message). Datagrams for addresses that are not nodes (clients) are kept in
``outside``; Deliver and Trimmed effects per node in ``delivered``, BarrierReached and
QuorumReach in ``signals``.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Iterable

from kpaxosd.paxos import (
    Address,
    Adopted,
    BarrierReached,
    Deliver,
    Node,
    Persist,
    PersistTrim,
    QuorumReach,
    Send,
    Trimmed,
)
from kpaxosd.paxos.stats import AcceptorStatistics, LearnerStatistics, ProposerStatistics
from wire import Message, encode

Drop = Callable[[Address, Address, Message], bool]


# A node's statistics of a role it must host.


def proposer_stats(node: Node) -> ProposerStatistics:
    stats = node.statistics().proposer
    assert stats is not None, "no proposer here"
    return stats


def learner_stats(node: Node) -> LearnerStatistics:
    stats = node.statistics().learner
    assert stats is not None, "no learner here"
    return stats


def acceptor_stats(node: Node) -> AcceptorStatistics:
    stats = node.statistics().acceptor
    assert stats is not None, "no acceptor here"
    return stats


class Lockstep:
    def __init__(self, nodes: Iterable[Node], now: float = 0.0) -> None:
        self.nodes: dict[Address, Node] = {node.endpoint: node for node in nodes}
        self.now = now
        self.queue: deque[tuple[Address, Address, Message]] = deque()
        self.outside: list[tuple[Address, Address, Message]] = []
        self.delivered: dict[Address, list[Deliver | Trimmed]] = defaultdict(list)
        self.persisted: dict[Address, list[Persist | PersistTrim]] = defaultdict(list)
        self.signals: dict[Address, list[BarrierReached | QuorumReach]] = defaultdict(list)
        self.drop: Drop | None = None
        self.datagrams = 0

    def delivered_iids(self, address: Address) -> list[int | Trimmed]:
        """The iids ``address`` delivered, in order (a Trimmed as itself)."""
        return [d.iid if isinstance(d, Deliver) else d for d in self.delivered[address]]

    def send(self, src: Address, dest: Address, msg: Message) -> None:
        """A datagram from outside (a client), delivered on the next settle()."""
        self.queue.append((src, dest, msg))

    def settle(self) -> None:
        """Carry every node's effects out until no datagram is left in flight."""
        for address in self.nodes:
            self._drain(address)
        while self.queue:
            src, dest, msg = self.queue.popleft()
            node = self.nodes.get(dest)
            if node is None:
                self.outside.append((src, dest, msg))
                continue
            if self.drop is not None and self.drop(src, dest, msg):
                continue
            node.receive(msg, src, self.now)
            self._drain(dest)

    def advance(self, until: float) -> None:
        """Let time pass to ``until``, running every timer that falls due on the way."""
        self.settle()
        while True:
            due = [
                (deadline, address)
                for address, node in self.nodes.items()
                if (deadline := node.next_deadline()) is not None and deadline <= until
            ]
            if not due:
                break
            deadline, address = min(due)
            self.now = max(self.now, deadline)
            self.nodes[address].handle_timer(self.now)
            self.settle()
        self.now = until

    def _drain(self, address: Address) -> None:
        for effect in self.nodes[address].pop_effects():
            if isinstance(effect, Send):
                encode(effect.msg)  # everything the core sends must fit the wire
                self.datagrams += 1
                self.queue.append((address, effect.dest, effect.msg))
            elif isinstance(effect, Deliver | Trimmed):
                self.delivered[address].append(effect)
            elif isinstance(effect, Adopted):
                raise AssertionError(f"{effect!r}: lockstep runs no peer learners")
            elif isinstance(effect, BarrierReached | QuorumReach):
                self.signals[address].append(effect)
            else:
                self.persisted[address].append(effect)
