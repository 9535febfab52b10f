"""The device files' meaning, driven directly: no kernel, no engine."""

from __future__ import annotations

import errno
import random
import select
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing

from devices.engine import RequestError
from devices.ports import ProposalTimeout
from devices.semantics import (
    ClientDevice,
    ClientHandle,
    LearnerDevice,
    LearnerHandle,
    ReadMode,
    record_iid,
)
from devices.valuelog import ValueLog
from tests.devices.helpers import FakeProposals
from wire.device import (
    BOUNDS_ARG,
    FRAME_HEAD,
    IOCTL_BOUNDS,
    IOCTL_FRAMED,
    IOCTL_START,
    START_ARG,
    WRITE_FRAME_HEAD,
    StartAt,
    position_of,
)
from wire.original import VALUE_SIZE_WRITE


class FakeRequest:
    """Stands in for devices.engine.Request."""

    def __init__(self) -> None:
        self.answer: tuple[str, Any] | None = None
        self.on_interrupt: Callable[[], None] | None = None

    @property
    def answered(self) -> bool:
        return self.answer is not None

    def reply(self, body: bytes = b"") -> None:
        assert self.answer is None
        self.answer = ("data", body)

    def reply_written(self, count: int) -> None:
        assert self.answer is None
        self.answer = ("written", count)

    def reply_ioctl(self, result: int, out: bytes = b"") -> None:
        assert self.answer is None
        self.answer = ("ioctl", (result, out))

    def fail(self, err: int) -> None:
        if self.answer is None:
            self.answer = ("error", err)


class FakeServices:
    def __init__(self, nursery: trio.Nursery | None = None) -> None:
        self.notified: list[int] = []
        self.nursery = nursery

    def notify_poll(self, kh: int) -> None:
        self.notified.append(kh)

    def at_batch_end(self, callback: Callable[[], None]) -> None:
        callback()


def reader(log: ValueLog, services: FakeServices | None = None) -> LearnerHandle:
    return LearnerDevice(log).open(0, services or FakeServices())


def read(handle: LearnerHandle | ClientHandle, size: int, nonblocking: bool = False
         ) -> FakeRequest:
    request = FakeRequest()
    try:
        handle.read(request, size, nonblocking)  # type: ignore[arg-type]
    except RequestError as exc:
        request.fail(exc.errno)
    return request


def filled(*values: bytes) -> ValueLog:
    log = ValueLog()
    for iid, value in enumerate(values, 1):
        log.append(iid, value)
    return log


def test_reads_take_whole_and_partial_values_in_order() -> None:
    handle = reader(filled(b"hello", b"", b"world", b"!"))
    assert read(handle, 3).answer == ("data", b"hel")
    assert read(handle, 4).answer == ("data", b"lowo")
    assert read(handle, 100).answer == ("data", b"rld!")
    assert read(handle, 100, nonblocking=True).answer == ("error", errno.EAGAIN)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_any_read_size_sees_the_same_bytes(size: int) -> None:
    values = [b"a", b"bcd", b"", b"efghijk", b"l" * 20]
    handle = reader(filled(*values))
    data = b""
    while (request := read(handle, size, nonblocking=True)).answer != ("error", errno.EAGAIN):
        assert request.answer is not None
        data += request.answer[1]
    assert data == b"".join(values)


@pytest.mark.parametrize("seed", range(4))
def test_reads_of_any_sizes_fill_up_and_see_the_same_bytes_across_many_values(
    seed: int,
) -> None:
    """More values than a read fetches from the log at a time, of sizes 0 to 40, read
    with sizes from 1 byte to more than all of them: each read is as full as it can
    be, and together they are the values' bytes."""
    rng = random.Random(seed)
    values = [rng.randbytes(rng.choice([0, 1, 5, 40])) for _ in range(3000)]
    expected = b"".join(values)
    handle = reader(filled(*values))
    data = b""
    while len(data) < len(expected):
        size = rng.choice([1, 7, 40, 41, 1000, 30_000, 200_000])
        request = read(handle, size, nonblocking=True)
        assert request.answer is not None and request.answer[0] == "data"
        assert len(request.answer[1]) == min(size, len(expected) - len(data))
        data += request.answer[1]
    assert data == expected
    assert read(handle, 1, nonblocking=True).answer == ("error", errno.EAGAIN)


def test_every_reader_starts_at_the_oldest_retained_value() -> None:
    log = filled(b"1", b"2", b"3")
    log.trim_before(1)
    device = LearnerDevice(log)
    first, second = device.open(0, FakeServices()), device.open(0, FakeServices())
    assert read(first, 10).answer == ("data", b"23")
    assert read(second, 1).answer == ("data", b"2")
    assert device.open_readers == 2


def test_a_waiting_read_is_answered_by_the_next_append() -> None:
    log = ValueLog()
    handle = reader(log)
    first, second = read(handle, 3), read(handle, 3)
    assert not first.answered and not second.answered
    log.append(1, b"abcdef")  # one append serves both, in order
    assert first.answer == ("data", b"abc")
    assert second.answer == ("data", b"def")


def test_an_interrupted_read_does_not_take_values() -> None:
    log = ValueLog()
    handle = reader(log)
    interrupted = read(handle, 10)
    interrupted.fail(errno.EINTR)  # what the engine does on FUSE_INTERRUPT
    log.append(1, b"kept")
    assert read(handle, 10).answer == ("data", b"kept")


def test_closing_the_log_drains_then_says_eof() -> None:
    log = filled(b"last")
    handle = reader(log)
    waiting = reader(log)
    assert read(waiting, 10).answer == ("data", b"last")
    blocked = read(waiting, 10)
    log.close()
    assert blocked.answer == ("data", b"")
    assert read(handle, 10).answer == ("data", b"last")
    assert read(handle, 10).answer == ("data", b"")
    assert read(handle, 10, nonblocking=True).answer == ("data", b"")


def test_the_device_counts_the_bytes_its_readers_are_given() -> None:
    log = filled(b"abc")
    device = LearnerDevice(log)
    first, second = device.open(0, FakeServices()), device.open(0, FakeServices())
    read(first, 2)
    read(second, 10)
    assert device.bytes_read == 5  # what a shutdown watches while readers drain
    read(first, 10)
    blocked = read(first, 10)
    assert device.bytes_read == 6
    log.close()
    assert blocked.answer == ("data", b"")
    read(first, 10)  # EOF gives nothing: a reader stuck at EOF is not progress
    assert device.bytes_read == 6


def test_a_reader_overtaken_by_trimming_gets_epipe_once() -> None:
    log = filled(b"aa", b"bb", b"cc")
    handle = reader(log)
    assert read(handle, 1).answer == ("data", b"a")
    log.trim_before(2)
    assert handle.poll(None) & (select.POLLIN | select.POLLERR) == select.POLLIN | select.POLLERR
    assert read(handle, 10).answer == ("error", errno.EPIPE)
    assert read(handle, 10).answer == ("data", b"cc")


def test_trimming_what_a_reader_has_read_loses_nothing() -> None:
    log = filled(b"aa", b"bb")
    handle = reader(log)
    assert read(handle, 10).answer == ("data", b"aabb")
    log.append(3, b"cc")
    log.trim_before(2)  # the reader is at 2: nothing lost
    assert read(handle, 10).answer == ("data", b"cc")


def test_poll_reports_readable_only_when_a_read_would_not_block() -> None:
    log = ValueLog()
    services = FakeServices()
    handle = reader(log, services)
    writable = select.POLLOUT | select.POLLWRNORM
    readable = select.POLLIN | select.POLLRDNORM
    assert handle.poll(None) == writable
    assert handle.poll(42) == writable
    log.append(1, b"")  # an empty value has no bytes: still not readable
    assert services.notified == []
    assert handle.poll(None) == writable
    log.append(2, b"x")
    assert services.notified == [42]
    assert handle.poll(None) == writable | readable
    log.append(3, b"y")
    assert services.notified == [42]  # told once per registration
    read(handle, 10)
    assert handle.poll(7) == writable
    log.close()
    assert services.notified == [42, 7]
    assert handle.poll(None) == writable | readable  # EOF is readable


def test_release_unsubscribes_and_fails_what_still_waits() -> None:
    log = ValueLog()
    device = LearnerDevice(log)
    handle = device.open(0, FakeServices())
    waiting = read(handle, 10)
    handle.release()
    assert waiting.answer == ("error", errno.EBADF)
    assert device.open_readers == 0
    log.append(1, b"nobody listens")


# -- record mode (the original user-space learner) ---------------------------------------

RECORD_KEY = "record_iid7_client0x11223344_t1500000000.123456_size8_abcdefg0"


def write(handle: LearnerHandle | ClientHandle, data: bytes, nonblocking: bool = False
          ) -> FakeRequest:
    request = FakeRequest()
    try:
        handle.write(request, data, nonblocking)  # type: ignore[arg-type]
    except RequestError as exc:
        request.fail(exc.errno)
    return request


def test_a_first_write_of_8_bytes_picks_record_mode(chardev_vectors: dict[str, bytes]) -> None:
    log = filled(*(b"decided before %d" % i for i in range(6)))  # the next is the 7th
    handle = reader(log)
    assert handle.mode is ReadMode.FRESH
    assert write(handle, chardev_vectors["config_write_value_size_40"]).answer == ("written", 8)
    assert handle.mode is ReadMode.RECORD  # type: ignore[comparison-overlap]  # mypy narrowed
    # the original started at the next decision: what was decided before is not read
    waiting = read(handle, 100)
    assert waiting.answer is None
    record = chardev_vectors[RECORD_KEY]
    log.append(7, record[4:])
    assert waiting.answer == ("data", record)


def test_records_pad_or_cut_values_and_come_one_per_read() -> None:
    log = ValueLog()
    handle = reader(log)
    write(handle, (5).to_bytes(8, "little"))
    log.append(1, b"abc")
    log.append(2, b"")  # an empty value is still a decided instance
    log.append(3, b"abcdefgh")
    assert [read(handle, 4096).answer for _ in range(3)] == [
        ("data", b"\x01\0\0\0abc\0\0"),
        ("data", b"\x02\0\0\0" + bytes(5)),
        ("data", b"\x03\0\0\0abcde"),
    ]
    assert read(handle, 9, nonblocking=True).answer == ("error", errno.EAGAIN)


def test_a_read_too_small_for_a_record_gets_einval() -> None:
    log = ValueLog()
    handle = reader(log)
    write(handle, (40).to_bytes(8, "little"))
    assert read(handle, 43).answer == ("error", errno.EINVAL)
    log.append(1, b"value")
    assert read(handle, 43).answer == ("error", errno.EINVAL)  # not a partial record
    assert read(handle, 44).answer == ("data", b"\x01\0\0\0value" + bytes(35))


def test_iids_past_int32_wrap_as_the_original_cast_did() -> None:
    assert [record_iid(index) for index in (0, 2**31 - 2, 2**31 - 1, 2**32 - 1)] == [
        1, 2**31 - 1, -(2**31), 0]


def test_reads_waiting_when_record_mode_starts_get_records() -> None:
    log = ValueLog()
    handle = reader(log)
    big, small = read(handle, 100), read(handle, 3)
    write(handle, (2).to_bytes(8, "little"))
    assert small.answer == ("error", errno.EINVAL)
    log.append(1, b"xyz")
    assert big.answer == ("data", b"\x01\0\0\0xy")


def test_poll_in_record_mode_counts_empty_values() -> None:
    log = ValueLog()
    handle = reader(log)
    write(handle, (1).to_bytes(8, "little"))
    assert not handle.poll(None) & select.POLLIN
    log.append(1, b"")
    assert handle.poll(None) & select.POLLIN


@pytest.mark.parametrize("first", [b"1234567", b"123456789", b"", (2**40).to_bytes(8, "little")])
def test_every_other_write_to_the_learner_is_einval(first: bytes) -> None:
    log = filled(b"one")
    handle = reader(log)
    assert write(handle, first).answer == ("error", errno.EINVAL)
    assert handle.mode is ReadMode.STREAM  # the chance has passed
    assert write(handle, (8).to_bytes(8, "little")).answer == ("error", errno.EINVAL)
    assert read(handle, 10).answer == ("data", b"one")


def test_a_second_size_write_is_einval() -> None:
    handle = reader(ValueLog())
    assert write(handle, (8).to_bytes(8, "little")).answer == ("written", 8)
    assert write(handle, (9).to_bytes(8, "little")).answer == ("error", errno.EINVAL)
    assert handle.mode is ReadMode.RECORD


async def test_wait_readers_done_waits_for_readers_of_a_closed_log() -> None:
    log = ValueLog()
    device = LearnerDevice(log)
    handle = device.open(0, FakeServices())
    with trio.fail_after(1):
        await device.wait_readers_done()  # log open: nothing to wait for
    log.close()
    done = trio.Event()

    async def wait() -> None:
        await device.wait_readers_done()
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait)
        await trio.testing.wait_all_tasks_blocked()
        assert not done.is_set()
        handle.release()
    assert done.is_set()


async def test_client_writes_are_proposals() -> None:
    log = ValueLog()
    proposals = FakeProposals(log)
    async with trio.open_nursery() as nursery:
        handle = ClientDevice(proposals).open(0, FakeServices(nursery))
        ok, empty, failing = FakeRequest(), FakeRequest(), FakeRequest()
        handle.write(ok, b"value", False)  # type: ignore[arg-type]
        handle.write(empty, b"", False)  # type: ignore[arg-type]
        assert empty.answer == ("written", 0)
        await trio.testing.wait_all_tasks_blocked()
        assert ok.answer == ("written", 5)
        proposals.fail_with = ProposalTimeout("no quorum")
        handle.write(failing, b"v", False)  # type: ignore[arg-type]
        await trio.testing.wait_all_tasks_blocked()
        assert failing.answer == ("error", errno.ETIMEDOUT)
        too_big = write(handle, b"x" * 101)
        assert too_big.answer == ("error", errno.EMSGSIZE)
    assert proposals.proposed == [b"value", b"v", b"x" * 101]
    # Writable, and readable: the receipt of "value".
    assert handle.poll(None) == (select.POLLOUT | select.POLLWRNORM
                                 | select.POLLIN | select.POLLRDNORM)


async def test_an_interrupt_withdraws_the_client_write() -> None:
    log = ValueLog()
    proposals = FakeProposals(log)
    proposals.gate = trio.Event()
    async with trio.open_nursery() as nursery:
        handle = ClientDevice(proposals).open(0, FakeServices(nursery))
        request = FakeRequest()
        handle.write(request, b"value", False)  # type: ignore[arg-type]
        await proposals.wait_proposed(1)
        await trio.testing.wait_all_tasks_blocked()
        request.fail(errno.EINTR)
        assert request.on_interrupt is not None
        request.on_interrupt()
        await trio.testing.wait_all_tasks_blocked()
        proposals.gate.set()
    assert request.answer == ("error", errno.EINTR)
    assert log.next_index == 0


async def test_client_reads_give_each_write_its_position_in_the_order_written() -> None:
    log = ValueLog()
    proposals = FakeProposals(log)
    async with trio.open_nursery() as nursery:
        handle = ClientDevice(proposals).open(0, FakeServices(nursery))
        assert read(handle, 10).answer == ("data", b"")  # nothing written: EOF
        first_held = proposals.hold(b"first")
        writes = [FakeRequest() for _ in range(3)]
        for request, value in zip(writes, [b"first", b"second", b"third"], strict=True):
            handle.write(request, value, False)  # type: ignore[arg-type]
        await trio.testing.wait_all_tasks_blocked()
        assert [w.answer for w in writes] == [None, ("written", 6), ("written", 5)]
        assert read(handle, 10, nonblocking=True).answer == ("error", errno.EAGAIN)
        waiting = read(handle, 100)
        assert waiting.answer is None  # the first write's receipt comes first
        first_held.set()
        await trio.testing.wait_all_tasks_blocked()
        # "second" and "third" were decided first; the receipts follow the writes.
        at = {log.get(i).value: log.get(i).position for i in range(3)}
        assert at[b"first"] == position_of(3, 0)
        # One line a read: the rest waits for the next reads.
        assert waiting.answer == ("data", b"%d\n" % at[b"first"])
        assert [read(handle, 100).answer for _ in range(3)] == [
            ("data", b"%d\n" % at[b"second"]), ("data", b"%d\n" % at[b"third"]),
            ("data", b"")]


async def test_a_failed_write_has_no_receipt() -> None:
    log = ValueLog()
    proposals = FakeProposals(log)
    async with trio.open_nursery() as nursery:
        handle = ClientDevice(proposals).open(0, FakeServices(nursery))
        proposals.fail_with = ProposalTimeout("no decision")
        failed = FakeRequest()
        handle.write(failed, b"lost", False)  # type: ignore[arg-type]
        await trio.testing.wait_all_tasks_blocked()
        assert failed.answer == ("error", errno.ETIMEDOUT)
        proposals.fail_with = None
        done = FakeRequest()
        handle.write(done, b"kept", False)  # type: ignore[arg-type]
        await trio.testing.wait_all_tasks_blocked()
        partial = read(handle, 3)
        assert (partial.answer, read(handle, 10).answer) == (("data", b"655"), ("data", b"36\n"))


# -- pipelined writes: O_NONBLOCK ------------------------------------------------------


_IN = select.POLLIN | select.POLLRDNORM
_OUT = select.POLLOUT | select.POLLWRNORM


async def test_a_nonblocking_write_returns_once_queued_and_its_receipt_follows() -> None:
    log = ValueLog()
    proposals = FakeProposals(log)
    held = [proposals.hold(b"a"), proposals.hold(b"b"), proposals.hold(b"c")]
    services = FakeServices()
    handle = ClientDevice(proposals).open(0, services)
    writes = [write(handle, value, nonblocking=True) for value in (b"a", b"b", b"c")]
    assert [w.answer for w in writes] == [("written", 1)] * 3
    assert read(handle, 100, nonblocking=True).answer == ("error", errno.EAGAIN)
    assert handle.poll(7) == _OUT  # not readable yet: the poller is told later
    held[1].set()
    await trio.testing.wait_all_tasks_blocked()
    assert services.notified == []  # "b" is decided, but "a" comes first
    held[0].set()
    held[2].set()
    await trio.testing.wait_all_tasks_blocked()
    assert services.notified == [7]
    at = {log.get(i).value: log.get(i).position for i in range(3)}
    # Non-blocking: every whole line that fits, in the order written.
    assert read(handle, 100, nonblocking=True).answer == (
        "data", b"%d\n%d\n%d\n" % (at[b"a"], at[b"b"], at[b"c"]))
    assert read(handle, 100, nonblocking=True).answer == ("data", b"")  # none due: EOF


async def test_a_nonblocking_write_is_eagain_without_room_and_poll_says_when_there_is() -> None:
    log = ValueLog()
    proposals = FakeProposals(log)
    services = FakeServices()
    handle = ClientDevice(proposals).open(0, services)
    proposals.set_room(False)
    assert write(handle, b"later", nonblocking=True).answer == ("error", errno.EAGAIN)
    assert proposals.proposed == []
    assert handle.poll(3) == _IN  # EOF to read, no room to write
    proposals.set_room(True)
    assert services.notified == [3]
    assert handle.poll(None) == _IN | _OUT
    assert write(handle, b"later", nonblocking=True).answer == ("written", 5)
    assert proposals.proposed == [b"later"]


async def test_a_nonblocking_write_that_fails_has_its_errno_in_the_receipts() -> None:
    log = ValueLog()
    proposals = FakeProposals(log)
    handle = ClientDevice(proposals).open(0, FakeServices())
    assert write(handle, b"first", nonblocking=True).answer == ("written", 5)
    proposals.fail_with = ProposalTimeout("no decision")
    assert write(handle, b"lost", nonblocking=True).answer == ("written", 4)
    proposals.fail_with = None
    assert write(handle, b"x" * 101, nonblocking=True).answer == ("error", errno.EMSGSIZE)
    assert read(handle, 100, nonblocking=True).answer == (
        "data", b"%d\n-%d\n" % (log.get(0).position, errno.ETIMEDOUT))


async def test_a_write_only_file_keeps_no_receipts() -> None:
    import os

    log = ValueLog()
    proposals = FakeProposals(log)
    handle = ClientDevice(proposals).open(os.O_WRONLY, FakeServices())
    for n in range(5):
        assert write(handle, b"v%d" % n, nonblocking=True).answer == ("written", 2)
    assert log.next_index == 5
    assert read(handle, 100, nonblocking=True).answer == ("data", b"")


async def test_receipts_left_unread_past_the_limit_are_dropped_with_one_epipe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from devices import semantics

    monkeypatch.setattr(semantics, "MAX_UNREAD_RECEIPTS", 3)
    log = ValueLog()
    handle = ClientDevice(FakeProposals(log)).open(0, FakeServices())
    for n in range(5):
        write(handle, b"v%d" % n)
    assert read(handle, 100).answer == ("error", errno.EPIPE)
    kept = b"".join(b"%d\n" % log.get(i).position for i in (2, 3, 4))
    assert read(handle, 100, nonblocking=True).answer == ("data", kept)


def frames_of(*values: bytes) -> bytes:
    return b"".join(WRITE_FRAME_HEAD.pack(len(value)) + value for value in values)


async def test_a_framed_write_proposes_each_frame_with_its_own_receipt() -> None:
    log = ValueLog()
    proposals = FakeProposals(log)
    handle = ClientDevice(proposals).open(0, FakeServices())
    framed = FakeRequest()
    handle.ioctl(framed, IOCTL_FRAMED, b"", 0)  # type: ignore[arg-type]
    assert framed.answer == ("ioctl", (0, b""))
    data = frames_of(b"one", b"two", b"three")
    assert write(handle, data).answer == ("written", len(data))
    assert proposals.proposed == [b"one", b"two", b"three"]
    proposals.fail_with = ProposalTimeout("no decision")
    assert write(handle, frames_of(b"lost")).answer == ("written", 8)
    lines = b"".join(b"%d\n" % log.get(i).position for i in range(3))
    assert read(handle, 100, nonblocking=True).answer == (
        "data", lines + b"-%d\n" % errno.ETIMEDOUT)


@pytest.mark.parametrize(("data", "error"), [
    (frames_of(b"ok") + b"\x05\x00", errno.EINVAL),  # a length word cut short
    (frames_of(b"ok") + WRITE_FRAME_HEAD.pack(9) + b"short", errno.EINVAL),
    (frames_of(b"ok", b""), errno.EINVAL),  # the empty value is no proposal
    (frames_of(b"ok", b"x" * 101), errno.EMSGSIZE),
])
async def test_a_bad_framed_write_proposes_nothing_of_it(data: bytes, error: int) -> None:
    proposals = FakeProposals(ValueLog())
    handle = ClientDevice(proposals).open(0, FakeServices())
    handle.ioctl(FakeRequest(), IOCTL_FRAMED, b"", 0)  # type: ignore[arg-type]
    assert write(handle, data).answer == ("error", error)
    assert proposals.proposed == []
    assert read(handle, 100).answer == ("data", b"")  # no receipt is due


async def test_a_blocking_framed_write_waits_for_room() -> None:
    log = ValueLog()
    proposals = FakeProposals(log)
    handle = ClientDevice(proposals).open(0, FakeServices())
    handle.ioctl(FakeRequest(), IOCTL_FRAMED, b"", 0)  # type: ignore[arg-type]
    proposals.set_room(False)
    assert write(handle, frames_of(b"a"), nonblocking=True).answer == ("error", errno.EAGAIN)
    waiting = write(handle, frames_of(b"b"))
    assert waiting.answer is None
    proposals.set_room(True)
    assert waiting.answer == ("written", 5)
    assert proposals.proposed == [b"b"]


# -- positions: START, BOUNDS, FRAMED ---------------------------------------------------


def ioctl(handle: LearnerHandle, cmd: int, data: bytes = b"") -> FakeRequest:
    request = FakeRequest()
    try:
        handle.ioctl(request, cmd, data, 16)  # type: ignore[arg-type]
    except RequestError as exc:
        request.fail(exc.errno)
    return request


def start(handle: LearnerHandle, how: StartAt, position: int = 0) -> FakeRequest:
    return ioctl(handle, IOCTL_START, START_ARG.pack(position, how, 0))


def frames(data: bytes) -> list[tuple[int, bytes]]:
    found, at = [], 0
    while at < len(data):
        position, length = FRAME_HEAD.unpack_from(data, at)
        found.append((position, data[at + FRAME_HEAD.size : at + FRAME_HEAD.size + length]))
        at += FRAME_HEAD.size + length
    return found


def framed(log: ValueLog) -> LearnerHandle:
    handle = reader(log)
    assert ioctl(handle, IOCTL_FRAMED).answer == ("ioctl", (0, b""))
    return handle


def test_frames_carry_each_value_with_its_position_empty_ones_too() -> None:
    log = ValueLog()
    log.append(1, b"a")
    log.append(2, b"", place=0)
    log.append(2, b"bc", place=5)
    handle = framed(log)
    request = read(handle, 1000)
    assert request.answer is not None and request.answer[0] == "data"
    assert frames(request.answer[1]) == [
        (position_of(1, 0), b"a"), (position_of(2, 0), b""), (position_of(2, 5), b"bc")]


def test_frames_are_whole_and_a_buffer_too_small_for_the_next_is_einval() -> None:
    handle = framed(filled(b"x" * 10, b"y" * 10))
    request = read(handle, FRAME_HEAD.size + 15)  # the first frame and part of the second
    assert request.answer is not None
    assert frames(request.answer[1]) == [(position_of(1, 0), b"x" * 10)]
    assert read(handle, FRAME_HEAD.size + 9).answer == ("error", errno.EINVAL)
    assert read(handle, FRAME_HEAD.size + 10).answer is not None  # nothing was taken


def test_start_from_after_oldest_and_now() -> None:
    log = filled(b"1", b"2", b"3")
    handle = framed(log)
    assert start(handle, StartAt.FROM, position_of(2, 0)).answer == ("ioctl", (0, b""))
    assert frames(read(handle, 100).answer[1]) == [  # type: ignore[index]
        (position_of(2, 0), b"2"), (position_of(3, 0), b"3")]
    start(handle, StartAt.AFTER, position_of(2, 0))
    assert frames(read(handle, 100).answer[1]) == [(position_of(3, 0), b"3")]  # type: ignore[index]
    start(handle, StartAt.FROM, position_of(1, 1))  # names no value: the next one
    assert frames(read(handle, 100).answer[1])[0] == (position_of(2, 0), b"2")  # type: ignore[index]
    start(handle, StartAt.OLDEST)
    assert len(frames(read(handle, 100).answer[1])) == 3  # type: ignore[index]
    start(handle, StartAt.NOW)
    assert read(handle, 100, nonblocking=True).answer == ("error", errno.EAGAIN)
    log.append(4, b"4")
    assert frames(read(handle, 100).answer[1]) == [(position_of(4, 0), b"4")]  # type: ignore[index]


def test_a_start_at_a_position_to_come_passes_over_values_below_it() -> None:
    log = filled(b"1")
    handle = framed(log)
    start(handle, StartAt.NOW)
    waiting = FakeRequest()
    handle.read(waiting, 100, False)  # type: ignore[arg-type]
    start(handle, StartAt.FROM, position_of(5, 0))  # the waiting read waits for 5 now
    log.append(3, b"3")
    log.append(4, b"4")
    assert waiting.answer is None
    log.append(5, b"5")
    assert waiting.answer is not None and frames(waiting.answer[1]) == [(position_of(5, 0), b"5")]


def test_a_start_before_what_is_retained_is_erange_and_bounds_say_the_oldest() -> None:
    log = filled(b"1", b"2", b"3")
    log.trim_before(1)
    handle = framed(log)
    assert start(handle, StartAt.FROM, position_of(1, 0)).answer == ("error", errno.ERANGE)
    bounds = ioctl(handle, IOCTL_BOUNDS).answer
    assert bounds == ("ioctl", (0, BOUNDS_ARG.pack(position_of(2, 0), position_of(3, 1))))
    # A log holding everything from instance 1 on has nothing older to miss.
    assert start(reader(filled(b"1")), StartAt.FROM, 0).answer == ("ioctl", (0, b""))


def test_a_start_inside_a_gap_reads_the_gap_error_first() -> None:
    log = filled(b"1")
    log.add_gap(2, 9)
    log.append(9, b"9")
    handle = framed(log)
    start(handle, StartAt.FROM, position_of(4, 0))
    assert read(handle, 100).answer == ("error", errno.EPIPE)
    assert frames(read(handle, 100).answer[1]) == [(position_of(9, 0), b"9")]  # type: ignore[index]


def test_ioctls_the_learner_does_not_know_or_cannot_do_now() -> None:
    handle = reader(filled(b"abc"))
    assert ioctl(handle, IOCTL_START, b"short").answer == ("error", errno.EINVAL)
    assert ioctl(handle, IOCTL_START, START_ARG.pack(0, 9, 0)).answer == ("error", errno.EINVAL)
    assert ioctl(handle, IOCTL_START, START_ARG.pack(0, 0, 1)).answer == ("error", errno.EINVAL)
    assert ioctl(handle, 0x1234).answer == ("error", errno.ENOTTY)
    read(handle, 1)  # in the middle of a value
    assert ioctl(handle, IOCTL_FRAMED).answer == ("error", errno.EINVAL)
    record = reader(filled(b"abc"))
    write = FakeRequest()
    record.write(write, VALUE_SIZE_WRITE.build(8), False)  # type: ignore[arg-type]
    assert record.mode is ReadMode.RECORD
    assert start(record, StartAt.OLDEST).answer == ("error", errno.EINVAL)
    assert ioctl(record, IOCTL_FRAMED).answer == ("error", errno.EINVAL)


# -- the 2017 programs' device protocols (tests/vectors/kernel_paxos_2017_programs.txt)


@pytest.mark.parametrize("commit", ["8ae324a", "175aafb", "3891411"])
def test_each_2017_programs_open_write_picks_record_mode(
    commit: str, programs_2017_vectors: dict[str, bytes],
) -> None:
    vectors = programs_2017_vectors
    log = filled(b"before")
    handle = reader(log)
    opened = vectors[f"dev{commit}_open_write_v16"]
    assert write(handle, opened).answer == ("written", len(opened))
    assert handle.mode is ReadMode.RECORD
    # The canonical value (client_value, -v 16) decided next: the record of iid 2 is
    # the vector's record of iid 1 but for the iid.
    record = vectors[f"dev{commit}_read_record_iid1_v16"]
    log.append(3, record[4:])
    assert read(handle, 8192).answer == ("data", (2).to_bytes(4, "little") + record[4:])


def trimming_reader() -> tuple[ValueLog, LearnerHandle, list[int]]:
    """A reader of a new log whose device records every trim it asks for."""
    trims: list[int] = []
    log = ValueLog()
    return log, LearnerDevice(log, trim_acceptors=trims.append).open(0, FakeServices()), trims


def test_a_2017_09_18_learner_without_the_trim_flag_reads_records(
    programs_2017_vectors: dict[str, bytes],
) -> None:
    log, handle, trims = trimming_reader()
    write(handle, programs_2017_vectors["dev3891411_open_write_v16_no_trim_flag"])
    log.append(1, b"x")
    assert read(handle, 8192).answer == ("data", b"\x01\0\0\0x" + bytes(47))
    # Without the flag the original kept a trim write and never used it.
    trim = programs_2017_vectors["dev3891411_trim_write_iid100000_t100000"]
    assert write(handle, trim).answer == ("written", 9)
    assert trims == []


def test_2017_09_18_trim_writes_trim_the_acceptors_up_to_the_records_instance(
    programs_2017_vectors: dict[str, bytes],
) -> None:
    log, handle, trims = trimming_reader()
    assert write(handle, programs_2017_vectors["dev3891411_open_write_v16"]).answer == (
        "written", 10)
    for iid in range(1, 4):  # three instances of two values: records 1 to 6
        log.extend_raw([position_of(iid, 0), position_of(iid, 1)], [b"a", b"b"])
    records = [read(handle, 8192).answer for _ in range(6)]
    assert [int.from_bytes(r[1][:4], "little") for r in records if r] == [1, 2, 3, 4, 5, 6]
    # '1' and the record iid (the vector's 1: "trim up to the record of iid 1").
    assert write(handle, programs_2017_vectors["dev3891411_trim_write_iid100000_t100000"]
                 ).answer == ("written", 9)
    assert write(handle, b"1" + (4).to_bytes(8, "little")).answer == ("written", 9)
    assert write(handle, b"1" + (60).to_bytes(8, "little")).answer == ("written", 9)
    assert trims == [1, 2]  # record 60 is not delivered: nothing to trim
    # A second value size is ignored, as the original did; other bytes are EINVAL.
    assert write(handle, programs_2017_vectors["dev3891411_open_write_v64"]).answer == (
        "written", 10)
    assert write(handle, b"2" + bytes(8)).answer == ("error", errno.EINVAL)


def test_a_write_the_device_cannot_understand_is_logged_once_per_open_file(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handle = reader(filled(b"one"))
    for _ in range(3):
        assert write(handle, b"\x99garbage").answer == ("error", errno.EINVAL)
    refusals = [r for r in caplog.records if "refused a write" in r.getMessage()]
    assert len(refusals) == 1 and "9967617262616765" in refusals[0].getMessage()
    other = reader(filled(b"one"))
    write(other, b"more")
    assert len([r for r in caplog.records if "refused a write" in r.getMessage()]) == 2


def test_a_2017_09_18_trim_write_naming_a_gap_or_a_value_let_go_of_still_trims() -> None:
    log, handle, trims = trimming_reader()
    write(handle, b"0" + (4).to_bytes(8, "little") + b"1")
    log.append(1, b"a")  # record 1
    log.add_gap(2, 5)  # record 2: instances 2 to 4, lost
    log.append(5, b"b")  # record 3
    assert write(handle, b"1" + (2).to_bytes(8, "little")).answer == ("written", 9)
    log.trim_before(2)  # records 1 and 2 let go of
    assert write(handle, b"1" + (3).to_bytes(8, "little")).answer == ("written", 9)
    assert trims == [2, 5]
