"""Running a door's engines: started together, ready together, drained and stopped together.

Both doors serve through :class:`devices.engine.Engine` objects: the FUSE door one per
mount, the CUSE door one per character device. Each engine runs in a shielded scope so
that, when the devices are cancelled, readers of a closed log still get their last
values and EOF, however far behind they are, as long as they keep reading; then the
engines are cancelled and answer whatever is pending with EIO.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import fields
from typing import Protocol, TypeVar

import trio

from devices.engine import Engine, EngineStatistics
from devices.info import DeviceError

T = TypeVar("T")

logger = logging.getLogger("kpaxos.devices")

#: How long to wait for the kernel's INIT once the descriptor is open (or mounted).
INIT_TIMEOUT = 10.0
#: On shutdown with the log closed, readers drain to EOF for as long as one of them
#: read something in the last DRAIN_IDLE_SECONDS ...
DRAIN_IDLE_SECONDS = 0.5
#: ... but no longer than this in all (systemd's TimeoutStopSec must leave room for it).
DRAIN_LIMIT_SECONDS = 10.0


class Readers(Protocol):
    """The readers a shutdown waits for (:class:`devices.semantics.LearnerDevice`)."""

    async def wait_readers_done(self) -> None:
        """Return once no reader can still drain."""

    @property
    def bytes_read(self) -> int:
        """Grows whenever a reader is given data."""


class RunningEngines:
    """What the body of :func:`run_engines` can ask of the engines it runs."""

    def __init__(self, engines: Sequence[Engine]) -> None:
        self.engines = list(engines)

    def statistics(self) -> EngineStatistics:
        """The counters of every engine, added up."""
        return sum_statistics(engine.statistics() for engine in self.engines)

    async def wait_any_finished(self) -> Engine:
        """Return the first engine whose connection ended (the kernel ended it)."""
        return await _first_set([engine.finished for engine in self.engines],
                                self.engines)


def sum_statistics(stats: Iterable[EngineStatistics]) -> EngineStatistics:
    """Add up :class:`EngineStatistics` field by field."""
    items = list(stats)
    return EngineStatistics(**{field.name: sum(getattr(s, field.name) for s in items)
                               for field in fields(EngineStatistics)})


@asynccontextmanager
async def run_engines(
    engines: Sequence[Engine],
    *,
    what: str,
    drain: Readers | None = None,
) -> AsyncIterator[RunningEngines]:
    """Run ``engines`` and wait until every one has answered INIT.

    On the way out (the body ended, failed or was cancelled) the readers of ``drain``
    read on, shielded (see :func:`drain_readers`), and then the engines are cancelled.

    Args:
        what: names the devices in errors ("the FUSE file system at /run/kpaxos").
        drain: readers of a closed log, to let reach EOF before requests are failed.

    Raises:
        DeviceError: an engine did not start (its INIT never came or was refused), or
            its connection failed with an OSError.
    """
    try:
        async with trio.open_nursery() as nursery:
            scopes = [await nursery.start(_run_engine, engine) for engine in engines]
            try:
                await _wait_ready(engines, what)
                yield RunningEngines(engines)
            finally:
                if drain is not None:
                    with trio.CancelScope(shield=True):
                        await drain_readers(drain, what)
                for scope in scopes:
                    scope.cancel()
    except* DeviceError as group:
        raise first_leaf(group) from None
    except* OSError as group:
        raise DeviceError(f"the connection of {what} failed: {first_leaf(group)}") from None


async def drain_readers(readers: Readers, what: str) -> None:
    """Wait until ``readers`` are done, as long as they make progress: a reader far
    behind a closed log still reads every value and then EOF, one that stopped reading
    does not hold up the shutdown for long (:data:`DRAIN_IDLE_SECONDS`), and none for
    longer than :data:`DRAIN_LIMIT_SECONDS`."""
    with trio.move_on_after(DRAIN_LIMIT_SECONDS) as limit:
        while True:
            read_before = readers.bytes_read
            with trio.move_on_after(DRAIN_IDLE_SECONDS):
                await readers.wait_readers_done()
                return
            if readers.bytes_read == read_before:
                logger.info("readers of %s stopped reading; ending their reads", what)
                return
    if limit.cancelled_caught:
        logger.warning("readers of %s still reading after %g s; ending their reads",
                       what, DRAIN_LIMIT_SECONDS)


async def _run_engine(engine: Engine, *, task_status: trio.TaskStatus[trio.CancelScope]) -> None:
    # Shielded: on cancellation run_engines lets readers drain first, then cancels us.
    with trio.CancelScope(shield=True) as scope:
        task_status.started(scope)
        await engine.run()


async def _wait_ready(engines: Sequence[Engine], what: str) -> None:
    with trio.move_on_after(INIT_TIMEOUT):
        for engine in engines:
            # Whichever comes first: INIT answered, or the connection ended without it.
            await _first_set([engine.ready, engine.finished], [None, None])
    if not all(engine.ready.is_set() for engine in engines):
        raise DeviceError(f"the kernel did not start {what}")


async def _first_set(events: Sequence[trio.Event], results: Sequence[T]) -> T:
    """The result paired with the first of ``events`` to be set."""
    found: list[T] = []
    async with trio.open_nursery() as nursery:
        async def watch(event: trio.Event, result: T) -> None:
            await event.wait()
            found.append(result)
            nursery.cancel_scope.cancel()

        for event, result in zip(events, results, strict=True):
            nursery.start_soon(watch, event, result)
    return found[0]


def first_leaf(group: BaseExceptionGroup[Exception]) -> Exception:
    """The first exception in ``group`` that is not a group."""
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    assert isinstance(leaf, Exception)
    return leaf
