"""What only the FUSE door has: the mount, its directory, the links, stale mounts.

How the device files behave is in test_device_behaviour.py, for both doors.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import trio

from devices import DeviceError, DeviceInfo, serve_devices
from devices.fuse_door import FSTYPE, serve_fuse
from devices.mounts import clear_stale_mount, mount
from devices.semantics import ClientDevice, LearnerDevice
from devices.valuelog import ValueLog
from tests.devices.helpers import (
    FakeProposals,
    Served,
    force_unmount,
    is_mounted,
    python,
    run,
)

pytestmark = pytest.mark.root


@pytest.fixture
def door() -> str:
    """These tests are about the FUSE door only."""
    return "fuse"


async def echo(text: str, path: str) -> subprocess.CompletedProcess[bytes]:
    return await run(["sh", "-c", f'echo "{text}" > "{path}"'])


# -- the file system around the files ----------------------------------------------------


async def test_the_directory_holds_the_two_files(served: Served) -> None:
    listing = await run(["ls", "-ln", str(served.mount_dir)])
    lines = [line.split() for line in listing.stdout.decode().splitlines()[1:]]
    assert [(line[0], line[1], line[-1]) for line in lines] == [("drwxr-xr-x", "2", "devices")]
    listing = await run(["ls", "-lna", str(served.mount_dir / "devices")])
    lines = [line.split() for line in listing.stdout.decode().splitlines()[1:]]
    assert sorted((line[0], line[-1]) for line in lines) == [
        ("-rw-rw----", "client"), ("-rw-rw----", "learner"),
        ("drwxr-xr-x", "."), ("drwxr-xr-x", "..")]
    assert os.readlink(served.learner) == str(served.mount_dir / "devices" / "learner")
    assert os.readlink(served.client) == str(served.mount_dir / "devices" / "client")
    changed = await run(["sh", "-c", f'chmod 0640 "{served.learner}" && stat -L -c %a '
                         f'"{served.learner}"'])
    assert changed.stdout == b"640\n"
    missing = await run(["cat", str(served.mount_dir / "devices" / "nothing")])
    assert b"No such file" in missing.stderr


async def test_other_users_follow_the_mode(served: Served) -> None:
    nobody = 65534
    # The test's temporary directory is private to root: open the file relative to the
    # mount's root, which is world-searchable, after giving up root.
    script = f"""
        import os
        root = os.open({str(served.mount_dir / "devices")!r}, os.O_RDONLY | os.O_DIRECTORY)
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


def mount_unserved(mount_dir: Path) -> int:
    """Mount a kpaxos file system at ``mount_dir`` with no server: its /dev/fuse
    descriptor, which the caller closes (the server's death) or holds (its hang)."""
    fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
    try:
        mount("kpaxos", str(mount_dir), FSTYPE, 0,
              f"fd={fd},rootmode=40000,user_id=0,group_id=0")
    except BaseException:
        os.close(fd)
        raise
    return fd


async def serve_in_background(nursery: trio.Nursery, log: ValueLog, mount_dir: Path,
                              link_dir: Path) -> tuple[trio.CancelScope, DeviceInfo]:
    """serve_devices in ``nursery``; cancel the returned scope to stop it."""
    scope = trio.CancelScope()

    async def serve(task_status: trio.TaskStatus[DeviceInfo]) -> None:
        with scope:
            await serve_devices(log, FakeProposals(log), backend="fuse",
                                mount_dir=str(mount_dir), link_dir=str(link_dir),
                                task_status=task_status)

    info = await nursery.start(serve)
    return scope, info


async def test_stale_links_are_replaced_and_a_stray_file_moved_aside(
        device_dirs: tuple[Path, Path]) -> None:
    mount_dir, link_dir = device_dirs
    link_dir.mkdir()
    os.symlink("/nonexistent/learner", link_dir / "kpaxos-learner")
    # What `echo v > /dev/kpaxos-client` left while no daemon served the link.
    (link_dir / "kpaxos-client").write_text("a real file\n")
    log = ValueLog()
    try:
        async with trio.open_nursery() as nursery:
            scope, info = await serve_in_background(nursery, log, mount_dir, link_dir)
            assert os.readlink(info.learner) == str(mount_dir / "devices" / "learner")
            assert os.readlink(info.client) == str(mount_dir / "devices" / "client")
            [aside] = link_dir.glob("kpaxos-client.stray-*")
            assert aside.read_text() == "a real file\n"
            result = await echo("proposed", info.client)
            assert result.returncode == 0, result.stderr
            scope.cancel()
        assert not is_mounted(mount_dir)
        assert not os.path.lexists(link_dir / "kpaxos-learner")
    finally:
        force_unmount(mount_dir)


async def test_a_write_through_a_link_with_no_daemon_fails(
        device_dirs: tuple[Path, Path]) -> None:
    # The links a killed daemon left, over its mount directory with nothing mounted.
    mount_dir, link_dir = device_dirs
    mount_dir.mkdir()
    link_dir.mkdir()
    os.symlink(mount_dir / "devices" / "client", link_dir / "kpaxos-client")
    result = await echo("into the void?", str(link_dir / "kpaxos-client"))
    assert result.returncode != 0
    assert b"nonexistent" in result.stderr  # dash's word for ENOENT here
    assert list(mount_dir.iterdir()) == []


@pytest.mark.parametrize("layout", ["same", "links-inside", "mount-is-a-link"])
async def test_overlapping_directories_are_refused(device_dirs: tuple[Path, Path],
                                                   layout: str) -> None:
    mount_dir, _ = device_dirs
    link_dir = {"same": mount_dir, "links-inside": mount_dir / "dev",
                "mount-is-a-link": mount_dir.parent}[layout]
    if layout == "mount-is-a-link":
        mount_dir = link_dir / "kpaxos-learner"
    log = ValueLog()
    try:
        with pytest.raises(DeviceError, match=r"--link-dir|--mount-dir"):
            await serve_devices(log, FakeProposals(log), backend="fuse",
                                mount_dir=str(mount_dir), link_dir=str(link_dir))
        assert not is_mounted(mount_dir)
    finally:
        force_unmount(mount_dir)


async def test_a_directory_that_is_not_empty_is_refused(
        device_dirs: tuple[Path, Path]) -> None:
    mount_dir, link_dir = device_dirs
    mount_dir.mkdir()
    (mount_dir / "precious").write_text("kept\n")
    log = ValueLog()
    try:
        with pytest.raises(DeviceError, match=r"--mount-dir\) is not empty \(precious\)"):
            await serve_devices(log, FakeProposals(log), backend="fuse",
                                mount_dir=str(mount_dir), link_dir=str(link_dir))
        assert not is_mounted(mount_dir)
        assert (mount_dir / "precious").read_text() == "kept\n"
    finally:
        force_unmount(mount_dir)


async def test_the_live_links_of_another_daemon_are_not_taken(
        served: Served, tmp_path: Path) -> None:
    other_mount = tmp_path / "other-mnt"
    try:
        with pytest.raises(DeviceError, match="belongs to the kpaxos daemon serving"):
            await serve_devices(served.log, served.proposals, backend="fuse",
                                mount_dir=str(other_mount), link_dir=str(served.link_dir))
        assert not is_mounted(other_mount)
        assert os.readlink(served.info.client) == str(served.mount_dir / "devices" / "client")
        result = await echo("still the first's", served.info.client)
        assert result.returncode == 0, result.stderr
    finally:
        force_unmount(other_mount)


async def test_the_links_of_a_dead_daemon_are_taken(device_dirs: tuple[Path, Path],
                                                    tmp_path: Path) -> None:
    mount_dir, link_dir = device_dirs
    dead_mount = tmp_path / "dead-mnt"
    dead_mount.mkdir()
    link_dir.mkdir()
    os.close(mount_unserved(dead_mount))  # that daemon died, its mount and links stayed
    os.symlink(dead_mount / "devices" / "client", link_dir / "kpaxos-client")
    log = ValueLog()
    try:
        async with trio.open_nursery() as nursery:
            scope, info = await serve_in_background(nursery, log, mount_dir, link_dir)
            assert os.readlink(info.client) == str(mount_dir / "devices" / "client")
            scope.cancel()
    finally:
        force_unmount(mount_dir)
        force_unmount(dead_mount)


async def test_a_stale_mount_of_a_crashed_run_is_cleared(
        device_dirs: tuple[Path, Path]) -> None:
    mount_dir, link_dir = device_dirs
    mount_dir.mkdir()
    # The "daemon" dies: its connection is gone, the mount stays ...
    os.close(mount_unserved(mount_dir))
    # ... and its links, some under names this run does not use.
    (link_dir / "chardevice").mkdir(parents=True)
    os.symlink(mount_dir / "learner", link_dir / "kpaxos-learner")
    os.symlink(mount_dir / "learner", link_dir / "old-prefix-kpaxos-learner")
    os.symlink(mount_dir / "learner", link_dir / "chardevice" / "klearner0")
    os.symlink("/elsewhere", link_dir / "not-ours")
    try:
        assert is_mounted(mount_dir)
        log = ValueLog()
        async with trio.open_nursery() as nursery:
            scope, _ = await serve_in_background(nursery, log, mount_dir, link_dir)
            assert sorted(os.listdir(link_dir)) == ["kpaxos-client", "kpaxos-learner",
                                                    "not-ours"]
            log.append(1, b"works")
            result = await run(["dd", f"if={link_dir / 'kpaxos-learner'}", "bs=5", "count=1",
                                "status=none"])
            assert result.stdout == b"works"
            scope.cancel()
        assert not is_mounted(mount_dir)
    finally:
        force_unmount(mount_dir)


async def test_a_mount_of_ours_whose_server_never_answers_is_detached(
        device_dirs: tuple[Path, Path]) -> None:
    mount_dir, _ = device_dirs
    mount_dir.mkdir()
    # A server that holds its connection and never answers, not even INIT: a probe of
    # the mount blocks until the connection ends.
    fd = mount_unserved(mount_dir)
    try:
        with trio.fail_after(5):
            await clear_stale_mount(str(mount_dir), FSTYPE, probe_timeout=0.2)
        assert not is_mounted(mount_dir)
    finally:
        os.close(fd)  # ends the probe left blocked in its thread (ENOTCONN)
        force_unmount(mount_dir)


async def test_a_live_mount_is_not_taken_over(served: Served, tmp_path: Path) -> None:
    with pytest.raises(DeviceError, match="already served"):
        await serve_devices(served.log, served.proposals, backend="fuse",
                            mount_dir=str(served.mount_dir),
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
        await serve_devices(log, big, backend="fuse", mount_dir=str(mount_dir),
                            link_dir=str(link_dir))
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
