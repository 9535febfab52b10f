"""How the devices behave, through either door, used the way users use them: real
``cat``, ``echo``, ``dd`` and small Python programs in subprocesses.

Every test runs once per door (the ``door`` fixture): ``fuse`` here, ``cuse`` inside the
test VM (see tests/devices/conftest.py).
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
from pathlib import Path

import pytest
import trio

from devices.ports import NodeStopping, ProposalError, ProposalTimeout
from tests.devices.helpers import (
    SHOULD,
    STILL_BLOCKED,
    Served,
    is_mounted,
    python,
    read_until,
    run,
    serving,
    still_running,
)

pytestmark = pytest.mark.root


async def echo(text: str, path: str) -> subprocess.CompletedProcess[bytes]:
    return await run(["sh", "-c", f'echo "{text}" > "{path}"'])


# -- stream mode -------------------------------------------------------------------------


async def test_echo_then_cat_round_trip(served: Served) -> None:
    assert (await echo("hello", served.client)).returncode == 0
    assert (await echo("world", served.client)).returncode == 0
    cat = await served.start(["cat", served.learner])
    assert cat.stdout is not None
    assert await read_until(cat.stdout, b"hello\nworld\n") == b"hello\nworld\n"
    served.log.close()  # the daemon stops: the reader has everything, so EOF
    with trio.fail_after(SHOULD):
        await cat.wait()
    assert cat.returncode == 0


async def test_every_reader_has_its_own_cursor(served: Served) -> None:
    served.log.append(1, b"one\n")
    cats = [await served.start(["cat", served.learner]) for _ in range(3)]
    await served.wait_stats(lambda s: s.open_handles == 3)
    served.log.append(2, b"two\n")
    served.log.append(3, b"three\n")
    expected = b"one\ntwo\nthree\n"
    outputs = []
    for cat in cats:
        assert cat.stdout is not None
        outputs.append(await read_until(cat.stdout, expected))
    assert outputs == [expected] * 3
    # a reader opened later starts from the oldest value too
    late = await run(["dd", f"if={served.learner}", "bs=1", f"count={len(expected)}",
                      "status=none"])
    assert late.stdout == expected


async def test_blocking_read_is_woken_by_a_later_append(served: Served) -> None:
    cat = await served.start(["cat", served.learner])
    await served.wait_stats(lambda s: s.pending == 1)  # the READ waits in the engine
    assert await still_running(cat)
    served.log.append(1, b"late\n")
    assert cat.stdout is not None
    assert await read_until(cat.stdout, b"late\n") == b"late\n"


async def test_small_reads_split_values(served: Served) -> None:
    served.log.append(1, b"hello-world")
    served.log.append(2, b"xyz")
    result = await run(["dd", f"if={served.learner}", "bs=3", "count=5", "status=none"])
    assert result.stdout == b"hello-worldxyz"
    chunks = await run(python(f"""
        import os
        fd = os.open({served.learner!r}, os.O_RDONLY)
        print([os.read(fd, 3) for _ in range(5)])
    """))
    assert chunks.stdout.decode().strip() == (
        "[b'hel', b'lo-', b'wor', b'ldx', b'yz']")


async def test_nonblocking_read_says_eagain(served: Served) -> None:
    script = f"""
        import errno, os
        fd = os.open({served.learner!r}, os.O_RDONLY | os.O_NONBLOCK)
        try:
            os.read(fd, 100)
        except BlockingIOError as exc:
            print(errno.errorcode[exc.errno])
        else:
            print("no error")
    """
    result = await run(python(script))
    assert result.stdout == b"EAGAIN\n"
    served.log.append(1, b"ready")
    result = await run(python(script.replace('print("no error")', "pass").replace(
        "os.read(fd, 100)", "print(os.read(fd, 100))")))
    assert result.stdout == b"b'ready'\n"


@pytest.mark.parametrize("waiter", ["select", "poll"])
async def test_readable_only_when_a_value_waits(served: Served, waiter: str) -> None:
    wait = {
        "select": "bool(select.select([fd], [], [], {timeout})[0])",
        "poll": "bool(poller.poll({timeout} * 1000))",
    }[waiter]
    script = f"""
        import os, select, sys
        fd = os.open({served.learner!r}, os.O_RDONLY)
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        print("now", {wait.format(timeout=0)}, flush=True)
        print("later", {wait.format(timeout=SHOULD)}, flush=True)
        print(os.read(fd, 100), flush=True)
        print("again", {wait.format(timeout=0)}, flush=True)
    """
    waiter_process = await served.start(python(script))
    stdout = waiter_process.stdout
    assert stdout is not None
    assert await read_until(stdout, b"now False\n") == b"now False\n"
    # it is blocked in select/poll now, with the kernel's poll handle registered
    await served.wait_stats(lambda s: s.polls_scheduled >= 1)
    assert await still_running(waiter_process)
    served.log.append(1, b"value")
    rest = b"later True\nb'value'\nagain False\n"
    assert await read_until(stdout, rest) == rest
    assert served.stats().poll_notifications >= 1


async def test_readable_at_once_when_a_value_already_waits(served: Served) -> None:
    served.log.append(1, b"value")
    result = await run(python(f"""
        import os, select
        fd = os.open({served.learner!r}, os.O_RDONLY)
        print(bool(select.select([fd], [], [], 0)[0]))
    """))
    assert result.stdout == b"True\n"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
async def test_a_signal_ends_a_reader_blocked_in_read(served: Served, sig: int) -> None:
    cat = await served.start(["cat", served.learner])
    await served.wait_stats(lambda s: s.pending == 1)
    assert await still_running(cat)
    cat.send_signal(sig)
    with trio.fail_after(1):  # FUSE_INTERRUPT answered at once
        await cat.wait()
    assert cat.returncode == -sig
    assert served.stats().interrupts == 1
    assert served.stats().pending == 0


# -- the client device -------------------------------------------------------------------


async def test_echo_returns_only_once_the_value_is_decided(served: Served) -> None:
    served.proposals.gate = trio.Event()
    writer = await served.start(["sh", "-c", f'echo decided > "{served.client}"'])
    with trio.fail_after(SHOULD):
        await served.proposals.wait_proposed(1)
    assert served.proposals.proposed == [b"decided\n"]
    assert await still_running(writer)
    served.proposals.gate.set()
    with trio.fail_after(SHOULD):
        await writer.wait()
    assert writer.returncode == 0
    assert served.log.get(0).value == b"decided\n"


async def test_each_write_is_one_proposal(served: Served) -> None:
    result = await run(python(f"""
        import os
        fd = os.open({served.client!r}, os.O_WRONLY)
        print(os.write(fd, b"first"), os.write(fd, b"second"), os.write(fd, b""))
    """))
    assert result.stdout == b"5 6 0\n"
    assert served.proposals.proposed == [b"first", b"second"]


async def test_pipelined_writes_return_at_once_and_poll_tells_of_their_receipts(
    served: Served,
) -> None:
    served.proposals.gate = trio.Event()
    writer = await served.start(python(f"""
        import fcntl, os, select, struct, sys
        from wire.device import IOCTL_FRAMED
        fd = os.open({served.client!r}, os.O_RDWR | os.O_NONBLOCK)
        print(os.write(fd, b"one"), os.write(fd, b"two"), flush=True)  # queued
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        print(poller.poll(200), flush=True)  # undecided: nothing to read yet
        sys.stdin.readline()  # the values are let through
        got = b""
        while got.count(b"\\n") < 2:
            assert poller.poll(60_000)
            got += os.read(fd, 100)
        print(got.decode().split(), flush=True)
        fcntl.ioctl(fd, IOCTL_FRAMED)
        frames = b"".join(struct.pack("=I", len(v)) + v for v in (b"three", b"four"))
        print(os.write(fd, frames), flush=True)
        got = b""
        while got.count(b"\\n") < 2:
            assert poller.poll(60_000)
            got += os.read(fd, 100)
        print(got.decode().split(), flush=True)
    """), stdin=subprocess.PIPE)
    assert writer.stdout is not None and writer.stdin is not None
    assert await read_until(writer.stdout, b"3 3\n[]\n") == b"3 3\n[]\n"
    assert served.proposals.proposed == [b"one", b"two"]
    served.proposals.gate.set()
    await writer.stdin.send_all(b"go\n")
    with trio.fail_after(SHOULD):
        await writer.wait()
    rest = b""
    while chunk := await writer.stdout.receive_some():
        rest += chunk
    assert writer.returncode == 0
    at = {served.log.get(i).value: str(served.log.get(i).position) for i in range(4)}
    receipts = [[at[v] for v in (b"one", b"two")], [at[v] for v in (b"three", b"four")]]
    assert rest == b"%s\n%d\n%s\n" % (str(receipts[0]).encode(), 4 + 5 + 4 + 4,
                                       str(receipts[1]).encode())


async def test_a_value_too_large_fails_with_emsgsize(served: Served) -> None:
    # bash reports the write's errno (dash's echo says "I/O error" whatever it was)
    result = await run(["bash", "-c", f'echo {"x" * 200} > "{served.client}"'])
    assert result.returncode != 0
    assert os.strerror(errno.EMSGSIZE).encode() in result.stderr  # "Message too long"
    assert served.log.next_index == 0


async def test_a_write_longer_than_one_request_is_refused_whole(served: Served) -> None:
    result = await run(python(f"""
        import errno, os
        fd = os.open({served.client!r}, os.O_WRONLY)
        try:
            os.write(fd, b"x" * 300_000)
        except OSError as exc:
            print(errno.errorcode[exc.errno])
    """))
    assert result.stdout == b"EMSGSIZE\n"
    # the kernel cut it; its first piece was refused and the rest never sent
    assert len(served.proposals.proposed) == 1
    assert served.log.next_index == 0


async def test_a_write_waiting_for_its_decision_holds_up_no_other_write(
    served: Served,
) -> None:
    # Writers of one device wait for their own values only: the FUSE door lets the
    # kernel run writes to the client file in parallel (FOPEN_PARALLEL_DIRECT_WRITES).
    undecided = served.proposals.hold(b"slow")
    write = f"""
        import os, sys
        fd = os.open({served.client!r}, os.O_WRONLY)
        value = sys.argv[1].encode()
        assert os.write(fd, value) == len(value)
    """
    slow = await served.start([*python(write), "slow"])
    with trio.fail_after(SHOULD):
        await served.proposals.wait_proposed(1)
    # Started like the first (not run()): were it stuck behind the first write, only
    # the teardown's SIGKILL of both could free it.
    fast = await served.start([*python(write), "fast"])
    with trio.fail_after(SHOULD):
        await fast.wait()
    assert fast.returncode == 0
    assert slow.poll() is None
    assert [served.log.get(0).value] == [b"fast"]
    undecided.set()
    with trio.fail_after(SHOULD):
        await slow.wait()
    assert slow.returncode == 0
    assert served.log.get(1).value == b"slow"


@pytest.mark.parametrize("error", [ProposalTimeout("no quorum"), NodeStopping("stop")])
async def test_a_failed_proposal_reaches_the_writer(served: Served,
                                                    error: ProposalError) -> None:
    served.proposals.fail_with = error
    result = await run(python(f"""
        import errno, os
        fd = os.open({served.client!r}, os.O_WRONLY)
        try:
            os.write(fd, b"value")
        except OSError as exc:
            print(errno.errorcode[exc.errno])
    """))
    assert result.stdout.decode().strip() == errno.errorcode[error.errno]


async def test_an_interrupted_write_returns_at_once(served: Served) -> None:
    served.proposals.gate = trio.Event()
    # Python retries a write that failed with EINTR unless the signal handler raises:
    # this one raises, so the write returning at all shows it was answered.
    writer = await served.start(python(f"""
        import os, signal

        def interrupted(*_):
            raise InterruptedError

        signal.signal(signal.SIGUSR1, interrupted)
        fd = os.open({served.client!r}, os.O_WRONLY)
        try:
            os.write(fd, b"value")
        except InterruptedError:
            print("interrupted", flush=True)
    """))
    with trio.fail_after(SHOULD):
        await served.proposals.wait_proposed(1)
    assert await still_running(writer)
    writer.send_signal(signal.SIGUSR1)
    assert writer.stdout is not None
    assert await read_until(writer.stdout, b"interrupted\n") == b"interrupted\n"
    assert served.stats().interrupts == 1
    # the proposal was withdrawn from: opening the gate decides nothing
    served.proposals.gate.set()
    await trio.sleep(STILL_BLOCKED)
    assert served.log.next_index == 0


async def test_a_write_to_the_learner_says_einval(served: Served) -> None:
    result = await run(python(f"""
        import errno, os
        fd = os.open({served.learner!r}, os.O_RDWR)
        try:
            os.write(fd, b"x")
        except OSError as exc:
            print(errno.errorcode[exc.errno])
    """))
    assert result.stdout == b"EINVAL\n"


async def test_a_writer_reads_where_each_of_its_values_was_decided(served: Served) -> None:
    # The README's shell idiom: one open file, a write, then its receipt.
    script = (f'exec 3<>"{served.client}"; echo one >&3; echo two >&3; read a <&3; '
              f'read b <&3; echo "$a $b"; read c <&3 || echo eof')
    result = await run(["bash", "-c", script])
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{1 << 16} {2 << 16}\neof\n".encode()
    assert [served.log.get(i).value for i in range(2)] == [b"one\n", b"two\n"]


async def test_stopping_ends_blocked_readers_and_removes_the_devices(served: Served) -> None:
    cat = await served.start(["cat", served.learner], stdout=subprocess.DEVNULL)
    await served.wait_stats(lambda s: s.pending == 1)
    assert await still_running(cat)
    paths = served.device_paths()
    await served.stop()
    with trio.fail_after(SHOULD):
        await cat.wait()
    assert cat.returncode != 0  # an error, not EOF: the log was not closed
    for path in paths:
        assert not os.path.lexists(path)
    assert not is_mounted(served.mount_dir)


async def test_closing_the_log_lets_readers_drain_before_shutdown(served: Served) -> None:
    values = [f"value {i}\n".encode() for i in range(3000)]
    for iid, value in enumerate(values, 1):
        served.log.append(iid, value)
    reader = await served.start(python(f"""
        import os, sys, time
        fd = os.open({served.learner!r}, os.O_RDONLY)
        print("open", flush=True)
        time.sleep(0.1)  # the daemon stops meanwhile
        data = b""
        while chunk := os.read(fd, 4096):
            data += chunk
        print(len(data), flush=True)
    """))
    assert reader.stdout is not None
    assert await read_until(reader.stdout, b"open\n") == b"open\n"
    served.log.close()
    served.scope.cancel()  # the daemon's order: close the log, then cancel the devices
    expected = f"{sum(map(len, values))}\n".encode()
    assert await read_until(reader.stdout, expected) == expected


async def test_pending_writes_fail_with_eio_when_the_node_stops(served: Served) -> None:
    served.proposals.gate = trio.Event()
    writer = await served.start(["bash", "-c", f'echo v > "{served.client}"'])
    with trio.fail_after(SHOULD):
        await served.proposals.wait_proposed(1)
    served.proposals.fail_with = NodeStopping("stopping")
    served.proposals.gate.set()
    with trio.fail_after(SHOULD):
        await writer.wait()
    assert writer.stderr is not None
    assert b"Input/output error" in await writer.stderr.receive_some()




# -- the device files themselves ---------------------------------------------------------


async def test_the_devices_have_the_mode_and_group_asked_for(door: str, tmp_path: Path) -> None:
    async with serving(door, tmp_path, device_mode=0o640, device_gid=4242) as served:
        for path in served.device_paths():
            # FUSE: the client file has a size (see devices/fuse_door.py), the others none
            kind = ("character special file" if door == "cuse" else
                    "regular file" if path == served.client else "regular empty file")
            result = await run(["stat", "-L", "-c", "%a %g %F", path])
            assert result.stdout.decode().strip() == f"640 4242 {kind}", path
            # CUSE: the nodes themselves; FUSE: links to files in the mount
            test = "-c" if door == "cuse" else "-L"
            assert (await run(["test", test, path])).returncode == 0, path


async def test_the_original_learner_path_is_served_too(served: Served) -> None:
    assert served.compat.endswith("/chardevice/klearner0")
    served.log.append(1, b"same")
    both = await run(["sh", "-c", f'dd if="{served.learner}" bs=4 count=1 status=none; '
                                  f'dd if="{served.compat}" bs=4 count=1 status=none'])
    assert both.stdout == b"samesame"


# -- record mode: the original user-space learner ----------------------------------------

RECORD_KEY = "record_iid7_client0x11223344_t1500000000.123456_size8_abcdefg0"


@pytest.mark.parametrize("which", ["learner", "compat"])
async def test_record_mode_returns_the_originals_records(
        served: Served, chardev_vectors: dict[str, bytes], which: str) -> None:
    path = served.learner if which == "learner" else served.compat
    # Six values before the size write, not read: the record's value is the 7th, as
    # the vector's iid 7 (a record's iid is the value's number in the log).
    for iid in range(1, 7):
        served.log.append(iid, b"decided before the size write: not read")
    record = chardev_vectors[RECORD_KEY]
    reader = await served.start(python(f"""
        import errno, os
        fd = os.open({path!r}, os.O_RDWR)
        print(os.write(fd, bytes.fromhex({chardev_vectors["config_write_value_size_40"].hex()!r})),
              flush=True)
        print(os.read(fd, 4096).hex(), flush=True)
        print(os.read(fd, 44).hex(), flush=True)
        try:
            os.read(fd, 43)
        except OSError as exc:
            print(errno.errorcode[exc.errno], flush=True)
        try:
            os.write(fd, bytes(8))
        except OSError as exc:
            print(errno.errorcode[exc.errno], flush=True)
    """))
    assert reader.stdout is not None
    assert await read_until(reader.stdout, b"8\n") == b"8\n"
    served.log.append(7, record[4:])
    served.log.append(8, b"short")
    short = (8).to_bytes(4, "little") + b"short" + bytes(35)
    expected = f"{record.hex()}\n{short.hex()}\nEINVAL\nEINVAL\n".encode()
    assert await read_until(reader.stdout, expected) == expected
