"""The kclient role: the original benchmarking client inside the daemon.

Kernel_Paxos's kclient module was a client and a learner in one: it kept values in
flight at a proposer and saw them decided through its own learner. Here the values go
out from the learner's endpoint and come back as the learner's deliveries, with the
same engine and the same per-second line as ``kpaxos-client``.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Sequence
from typing import TextIO

import trio

from kpaxosd.client_engine import ClientEngine, total_line
from kpaxosd.paxos.cluster import Address
from kpaxosd.paxos.effects import Decision, Deliver
from wire import ClientValue, Message
from wire.original import unpack_client_value_untrusted


class KClient:
    def __init__(
        self,
        send: Callable[[Message, Address], None],
        proposer: Address,
        *,
        outstanding: int,
        value_size: int,
        rng: random.Random,
        out: TextIO = sys.stdout,
    ) -> None:
        self._send = send
        self._proposer = proposer
        self._out = out
        self.engine = ClientEngine(
            base_id=rng.randrange(0, 2**31 - outstanding),
            outstanding=outstanding,
            value_size=value_size,
            rng=rng,
        )

    def _propose(self, value: bytes) -> None:
        self._send(ClientValue(value), self._proposer)

    def on_decisions(self, decisions: Sequence[Decision]) -> None:
        for decision in decisions:
            if isinstance(decision, Deliver):
                self.delivered(decision)

    def delivered(self, effect: Deliver) -> None:
        # The engine recognises its own values by client id and timestamp; anything
        # else (a device writer's value, another client's) passes by.
        engine = self.engine
        for delivered in effect.values:
            value = unpack_client_value_untrusted(delivered)
            if value is not None:
                following = engine.delivered(value, time.time())
                if following is not None:
                    self._propose(following)

    async def run(self) -> None:
        """Keep values in flight and print a line a second until cancelled."""
        engine = self.engine
        for value in engine.start(time.time()):
            self._propose(value)
        started = last = time.monotonic()
        next_report = trio.current_time() + 1
        try:
            while True:
                wake = min(next_report, trio.current_time() + engine.next_resend_at() - time.time())
                await trio.sleep_until(wake)
                for value in engine.due_resends(time.time()):
                    self._propose(value)
                if trio.current_time() >= next_report:
                    now = time.monotonic()
                    print(engine.take_interval().line(now - last), file=self._out, flush=True)
                    last, next_report = now, next_report + 1
        finally:
            print(total_line(engine.total, time.monotonic() - started), file=self._out,
                  flush=True)
