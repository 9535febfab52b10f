"""How long a shutdown waits for readers of a closed log (devices.running.drain_readers)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from devices.running import DRAIN_IDLE_SECONDS, DRAIN_LIMIT_SECONDS, drain_readers


class FakeReaders:
    """Readers that read ``chunk`` bytes every ``every`` seconds until ``done_at``."""

    def __init__(self, *, every: float, done_at: float, chunk: int = 16) -> None:
        self.every, self.done_at, self.chunk = every, done_at, chunk
        self.start = trio.current_time()

    @property
    def bytes_read(self) -> int:
        reads = int(min(trio.current_time() - self.start, self.done_at) / self.every)
        return reads * self.chunk

    async def wait_readers_done(self) -> None:
        await trio.sleep_until(self.start + self.done_at)


async def drained_after(readers: FakeReaders) -> float:
    await drain_readers(readers, "the test devices")
    return trio.current_time() - readers.start


async def test_readers_that_keep_reading_are_waited_for_to_the_end(
        autojump_clock: trio.testing.MockClock) -> None:
    # Far longer than one idle period, but never idle for one.
    readers = FakeReaders(every=0.1, done_at=6.0)
    assert await drained_after(readers) == pytest.approx(6.0)


async def test_readers_that_stopped_reading_are_not_waited_for_long(
        autojump_clock: trio.testing.MockClock) -> None:
    readers = FakeReaders(every=3 * DRAIN_IDLE_SECONDS, done_at=60.0, chunk=0)
    assert await drained_after(readers) == pytest.approx(DRAIN_IDLE_SECONDS)


async def test_no_reader_holds_up_the_shutdown_past_the_limit(
        autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    readers = FakeReaders(every=0.1, done_at=1000.0)
    assert await drained_after(readers) == pytest.approx(DRAIN_LIMIT_SECONDS)
    assert "still reading after 10 s" in caplog.text


async def test_done_readers_end_the_wait_at_once(
        autojump_clock: trio.testing.MockClock) -> None:
    assert await drained_after(FakeReaders(every=0.1, done_at=0.0)) == 0.0
