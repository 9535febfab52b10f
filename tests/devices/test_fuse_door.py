"""The devices through the FUSE door, used the way users use them: real ``cat``, ``echo``,
``dd`` and small Python programs in subprocesses."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
from functools import partial
from pathlib import Path

import pytest
import trio

from devices import DeviceError, DeviceInfo, serve_devices
from devices.fuse_door import FSTYPE, serve_fuse
from devices.mounts import mount
from devices.semantics import ClientDevice, LearnerDevice
from kpaxosd.interface import NodeStopping, ProposalError, ProposalTimeout, ValueLog
from tests.devices.helpers import (
    SHOULD,
    STILL_BLOCKED,
    FakeProposals,
    Served,
    force_unmount,
    is_mounted,
    kill_all,
    read_until,
    still_running,
    wait_until,
)

pytestmark = pytest.mark.root


def python(script: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(script)]


async def run(command: list[str]) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(SHOULD):
        return await trio.run_process(command, capture_stdout=True, capture_stderr=True,
                                      check=False, stdin=subprocess.DEVNULL)


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


async def test_wrong_directions_say_einval(served: Served) -> None:
    result = await run(python(f"""
        import errno, os
        for path, op in [({served.learner!r}, lambda fd: os.write(fd, b"x")),
                         ({served.client!r}, lambda fd: os.read(fd, 10))]:
            fd = os.open(path, os.O_RDWR)
            try:
                op(fd)
            except OSError as exc:
                print(errno.errorcode[exc.errno])
    """))
    assert result.stdout == b"EINVAL\nEINVAL\n"


# -- the file system around the files ----------------------------------------------------


async def test_the_directory_holds_the_two_files(served: Served) -> None:
    listing = await run(["ls", "-ln", str(served.mount_dir)])
    lines = sorted(line.split() for line in listing.stdout.decode().splitlines()[1:])
    assert [(line[0], line[-1]) for line in lines] == [("-rw-rw----", "client"),
                                                       ("-rw-rw----", "learner")]
    assert os.readlink(served.learner) == str(served.mount_dir / "learner")
    assert os.readlink(served.client) == str(served.mount_dir / "client")
    changed = await run(["sh", "-c", f'chmod 0640 "{served.learner}" && stat -L -c %a '
                         f'"{served.learner}"'])
    assert changed.stdout == b"640\n"
    missing = await run(["cat", str(served.mount_dir / "nothing")])
    assert b"No such file" in missing.stderr


async def test_other_users_follow_the_mode(served: Served) -> None:
    nobody = 65534
    # The test's temporary directory is private to root: open the file relative to the
    # mount's root, which is world-searchable, after giving up root.
    script = f"""
        import os
        root = os.open({str(served.mount_dir)!r}, os.O_RDONLY | os.O_DIRECTORY)
        if {{mode}}:
            os.chmod("learner", {{mode}}, dir_fd=root)
        os.setgid({nobody}); os.setuid({nobody})
        try:
            os.close(os.open("learner", os.O_RDONLY | os.O_NONBLOCK, dir_fd=root))
            print("opened")
        except PermissionError:
            print("denied")
    """
    assert (await run(python(script.format(mode=0)))).stdout == b"denied\n"
    assert (await run(python(script.format(mode=0o664)))).stdout == b"opened\n"


# -- set-up and shutdown -----------------------------------------------------------------


async def serve_in_background(nursery: trio.Nursery, log: ValueLog, mount_dir: Path,
                              link_dir: Path) -> tuple[trio.CancelScope, DeviceInfo]:
    """serve_devices in ``nursery``; cancel the returned scope to stop it."""
    scope = trio.CancelScope()

    async def serve(task_status: trio.TaskStatus[DeviceInfo]) -> None:
        with scope:
            await serve_devices(log, FakeProposals(log), mount_dir=str(mount_dir),
                                link_dir=str(link_dir), task_status=task_status)

    info = await nursery.start(serve)
    return scope, info


async def test_cancelling_ends_blocked_readers_and_removes_everything(
        device_dirs: tuple[Path, Path]) -> None:
    mount_dir, link_dir = device_dirs
    log = ValueLog()
    processes: list[trio.Process] = []
    try:
        async with trio.open_nursery() as nursery:
            scope, info = await serve_in_background(nursery, log, mount_dir, link_dir)
            cat = await nursery.start(partial(
                trio.run_process, ["cat", info.learner], check=False,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
            processes.append(cat)
            await wait_until(lambda: info.statistics().pending == 1)
            assert await still_running(cat)
            started = trio.current_time()
            scope.cancel()
            with trio.fail_after(SHOULD):
                await cat.wait()
            assert trio.current_time() - started < 1.0
        assert cat.returncode != 0  # an error, not EOF: the log was not closed
        assert not is_mounted(mount_dir)
        assert not os.path.lexists(link_dir / "kpaxos-learner")
        assert not os.path.lexists(link_dir / "kpaxos-client")
    finally:
        kill_all(processes)
        force_unmount(mount_dir)


async def test_closing_the_log_lets_readers_drain_before_shutdown(
        device_dirs: tuple[Path, Path]) -> None:
    mount_dir, link_dir = device_dirs
    log = ValueLog()
    values = [f"value {i}\n".encode() for i in range(3000)]
    for iid, value in enumerate(values, 1):
        log.append(iid, value)
    processes: list[trio.Process] = []
    try:
        async with trio.open_nursery() as nursery:
            scope, _ = await serve_in_background(nursery, log, mount_dir, link_dir)
            reader = await nursery.start(partial(
                trio.run_process, python(f"""
                    import os, sys, time
                    fd = os.open({str(link_dir / "kpaxos-learner")!r}, os.O_RDONLY)
                    print("open", flush=True)
                    time.sleep(0.1)  # the daemon stops meanwhile
                    data = b""
                    while chunk := os.read(fd, 4096):
                        data += chunk
                    print(len(data), flush=True)
                """), check=False, stdout=subprocess.PIPE))
            processes.append(reader)
            assert await read_until(reader.stdout, b"open\n") == b"open\n"
            log.close()
            scope.cancel()  # the daemon's order: close the log, then cancel the devices
            expected = f"{sum(map(len, values))}\n".encode()
            assert await read_until(reader.stdout, expected) == expected
    finally:
        kill_all(processes)
        force_unmount(mount_dir)


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


async def test_stale_links_are_replaced_and_files_refused(
        device_dirs: tuple[Path, Path]) -> None:
    mount_dir, link_dir = device_dirs
    link_dir.mkdir()
    os.symlink("/nonexistent/learner", link_dir / "kpaxos-learner")
    log = ValueLog()
    try:
        async with trio.open_nursery() as nursery:
            scope, _ = await serve_in_background(nursery, log, mount_dir, link_dir)
            assert os.readlink(link_dir / "kpaxos-learner") == str(mount_dir / "learner")
            scope.cancel()
        (link_dir / "kpaxos-client").write_text("a real file\n")
        with pytest.raises(DeviceError, match="not a symlink"):
            await serve_devices(log, FakeProposals(log), mount_dir=str(mount_dir),
                                link_dir=str(link_dir))
        assert (link_dir / "kpaxos-client").read_text() == "a real file\n"
        assert not is_mounted(mount_dir)
        assert not os.path.lexists(link_dir / "kpaxos-learner")
    finally:
        force_unmount(mount_dir)


async def test_a_stale_mount_of_a_crashed_run_is_cleared(
        device_dirs: tuple[Path, Path]) -> None:
    mount_dir, link_dir = device_dirs
    mount_dir.mkdir()
    fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
    try:
        mount("kpaxos", str(mount_dir), FSTYPE, 0,
              f"fd={fd},rootmode=40000,user_id=0,group_id=0")
    finally:
        os.close(fd)  # the "daemon" dies: its connection is gone, the mount stays
    try:
        assert is_mounted(mount_dir)
        log = ValueLog()
        async with trio.open_nursery() as nursery:
            scope, _ = await serve_in_background(nursery, log, mount_dir, link_dir)
            log.append(1, b"works")
            result = await run(["dd", f"if={link_dir / 'kpaxos-learner'}", "bs=5", "count=1",
                                "status=none"])
            assert result.stdout == b"works"
            scope.cancel()
        assert not is_mounted(mount_dir)
    finally:
        force_unmount(mount_dir)


async def test_a_live_mount_is_not_taken_over(served: Served, tmp_path: Path) -> None:
    with pytest.raises(DeviceError, match="already served"):
        await serve_devices(served.log, served.proposals, mount_dir=str(served.mount_dir),
                            link_dir=str(tmp_path / "other-links"))
    assert is_mounted(served.mount_dir)


async def test_set_up_errors_are_device_errors(device_dirs: tuple[Path, Path]) -> None:
    mount_dir, link_dir = device_dirs
    log = ValueLog()
    with pytest.raises(DeviceError, match="does not exist"):
        await serve_fuse(LearnerDevice(log), ClientDevice(FakeProposals(log)),
                         mount_dir=str(mount_dir), link_dir=str(link_dir), device_mode=0o660,
                         fuse_device="/nonexistent/fuse")
    big = FakeProposals(log)
    big.max_value_size = 1 << 20
    with pytest.raises(DeviceError, match="cannot pass"):
        await serve_devices(log, big, mount_dir=str(mount_dir), link_dir=str(link_dir))
    assert not is_mounted(mount_dir)


async def test_an_unmount_from_outside_is_reported(device_dirs: tuple[Path, Path]) -> None:
    mount_dir, link_dir = device_dirs
    log = ValueLog()
    try:
        with pytest.RaisesGroup(pytest.RaisesExc(DeviceError, match="went away")):
            async with trio.open_nursery() as nursery:
                await serve_in_background(nursery, log, mount_dir, link_dir)
                result = await run(["umount", str(mount_dir)])
                assert result.returncode == 0, result.stderr
        assert not os.path.lexists(link_dir / "kpaxos-learner")
    finally:
        force_unmount(mount_dir)
