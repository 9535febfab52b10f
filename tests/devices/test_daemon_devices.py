"""The devices of a real kpaxosd process: started, used and stopped as an operator would.

Parametrized over the doors like the behaviour suite (``cuse`` runs in the test VM).
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from clients.log import LogReader
from kpaxosd.cli import build_parser, spec_from_args
from kpaxosd.config import default_config
from kpaxosd.daemon import DeviceOptions
from tests.devices.helpers import fresh_name_prefix
from tests.integration.harness import (
    KPAXOSD,
    Cluster,
    cluster,
    echo,
    loopback_config,
    mounted,
    read_lines,
)

pytestmark = pytest.mark.root

#: Generous bound for anything a daemon does: in the test VM, under software emulation
#: on a busy host, merely importing kpaxosd has taken more than 30 s.
SLOW = 300


def device_args(door: str, tmp_path: Path, running: Cluster) -> tuple[list[str], Path]:
    """kpaxosd's device options for ``door``, and the folder the devices appear in."""
    if door == "cuse":
        prefix = fresh_name_prefix()
        return ["--device-backend", "cuse", "--device-name-prefix", prefix], Path("/dev", prefix)
    mount_dir, link_dir = tmp_path / "mnt", tmp_path / "links"
    running.mounts.append(mount_dir)  # detached at the end whatever happens
    return ["--device-backend", "fuse", "--mount-dir", str(mount_dir),
            "--link-dir", str(link_dir)], link_dir


def test_sigterm_ends_a_blocked_reader_and_removes_the_devices(door: str,
                                                               tmp_path: Path) -> None:
    config = loopback_config(tmp_path / "paxos.conf")
    with cluster(tmp_path) as running:
        args, folder = device_args(door, tmp_path, running)
        daemon = running.start("kpaxosd", "-c", str(config), "--compat-devices", *args,
                               ready=False).wait_ready(SLOW)
        learner, client = folder / "kpaxos-learner", folder / "kpaxos-client"
        compat = folder / "chardevice" / "klearner0"
        echo("decided", client, timeout=SLOW)
        cat = running.spawn(["cat", str(learner)], stdout=subprocess.PIPE)
        assert read_lines(cat.stdout, 1, timeout=SLOW) == [b"decided"]
        assert cat.poll() is None  # blocked in read, waiting for the next value

        assert daemon.stop(signal.SIGTERM, timeout=SLOW) == 0
        assert cat.wait(SLOW) is not None
        for path in (learner, client, compat):
            assert not os.path.lexists(path), path
        assert not mounted(tmp_path / "mnt")
        chosen = "CUSE, because /dev/cuse opened" if door == "cuse" else "FUSE, as asked"
        assert f"devices: {chosen}" in daemon.log


def test_a_daemon_killed_by_sigkill_serves_the_same_names_again(door: str,
                                                                tmp_path: Path) -> None:
    # A crash leaves no clean-up behind: through CUSE the kernel drops the devices with
    # the dead daemon's /dev/cuse; through FUSE the mount stays and the next start
    # detaches it. Either way the same names must serve again, with nothing lost.
    config = loopback_config(tmp_path / "paxos.conf")
    with cluster(tmp_path) as running:
        args, folder = device_args(door, tmp_path, running)
        learner, client = folder / "kpaxos-learner", folder / "kpaxos-client"
        storage = ["--storage", str(tmp_path / "storage")]
        first = running.start("first", "-c", str(config), *storage, *args,
                              ready=False).wait_ready(SLOW)
        reader = running.spawn(["cat", str(learner)], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL)
        echo("before", client, timeout=SLOW)
        assert read_lines(reader.stdout, 1, timeout=SLOW) == [b"before"]

        first.proc.kill()
        first.proc.wait(SLOW)
        assert reader.wait(SLOW) != 0  # the dead daemon's reader ends; it does not hang

        second = running.start("second", "-c", str(config), *storage, *args,
                               ready=False).wait_ready(SLOW)
        again = running.spawn(["cat", str(learner)], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL)
        echo("after", client, timeout=SLOW)
        # The value decided before the crash is still in the log, then the new one.
        assert read_lines(again.stdout, 2, timeout=SLOW) == [b"before", b"after"]
        assert second.stop(signal.SIGTERM, timeout=SLOW) == 0
        assert again.wait(SLOW) is not None
        assert not os.path.lexists(learner) and not os.path.lexists(client)


@pytest.mark.cuse
def test_auto_serves_the_real_names_as_character_devices(tmp_path: Path) -> None:
    # Only in the test VM: these are the real names, which nothing else there uses.
    config = loopback_config(tmp_path / "paxos.conf")
    with cluster(tmp_path) as running:
        daemon = running.start("kpaxosd", "-c", str(config), "--device-group", "4242",
                               "--compat-devices", ready=False).wait_ready(SLOW)
        assert "devices: CUSE, because /dev/cuse opened" in daemon.log
        check = subprocess.run(
            ["sh", "-c", "test -c /dev/kpaxos-learner && test -c /dev/kpaxos-client && "
                         "test -c /dev/chardevice/klearner0 && "
                         "stat -c '%a %g' /dev/kpaxos-learner /dev/kpaxos-client"],
            capture_output=True, text=True, timeout=SLOW, check=False)
        assert check.returncode == 0, check.stderr
        assert check.stdout.split("\n")[:2] == ["660 4242", "660 4242"]
        assert daemon.stop(signal.SIGTERM, timeout=SLOW) == 0
        assert not os.path.lexists("/dev/kpaxos-learner")
        assert not os.path.lexists("/dev/chardevice")


def test_device_options_from_the_command_line() -> None:
    def options(*argv: str) -> DeviceOptions | None:
        return spec_from_args(build_parser().parse_args(argv), default_config()).devices

    assert options() == DeviceOptions()
    assert options("--no-devices") is None
    assert options("--device-backend", "cuse", "--device-mode", "0640", "--device-group", "root",
                   "--device-name-prefix", "test/", "--compat-devices") == DeviceOptions(
        mode=0o640, backend="cuse", group=0, name_prefix="test/", compat_learner_id=0)
    assert options("--compat-learner-id", "3").compat_learner_id == 3  # type: ignore[union-attr]
    with pytest.raises(SystemExit):
        options("--device-group", "no-such-group-here")


def test_a_bad_name_prefix_is_one_clear_line(tmp_path: Path) -> None:
    config = loopback_config(tmp_path / "paxos.conf")
    done = subprocess.run([KPAXOSD, "-c", str(config), "--device-backend", "fuse",
                           "--mount-dir", str(tmp_path / "mnt"), "--link-dir", str(tmp_path),
                           "--device-name-prefix", "../"],
                          capture_output=True, text=True, timeout=SLOW, check=False)
    assert done.returncode == 1
    assert "'../kpaxos-learner' cannot be a device name" in done.stderr
    assert "Traceback" not in done.stderr
    assert not mounted(tmp_path / "mnt")


def test_a_read_barrier_and_the_quorum_through_the_door(door: str, tmp_path: Path) -> None:
    # The BARRIER and QUORUM ioctls are encoded (size and direction in the number), so
    # CUSE, which has no llseek and no fsync, carries them as FUSE does.
    config = loopback_config(tmp_path / "paxos.conf")
    with cluster(tmp_path) as running:
        args, folder = device_args(door, tmp_path, running)
        running.start("kpaxosd", "-c", str(config), *args, ready=False).wait_ready(SLOW)
        learner, client = folder / "kpaxos-learner", folder / "kpaxos-client"
        echo("first", client, timeout=SLOW)
        with LogReader.open(str(learner)) as log:
            assert log.quorum_reachable()
            poller = select.poll()
            poller.register(log.fileno(), select.POLLPRI)
            assert poller.poll(0) == []  # the quorum is as the file last heard
            assert [entry.value for entry in log.until_now()] == [b"first\n"]
            echo("second", client, timeout=SLOW)
            end = log.barrier()
            assert [entry.value for entry in log.read_before(end)] == [b"second\n"]
            assert log.read_before(end) == []
        done = subprocess.run([sys.executable, "-m", "clients.cat", "--device", str(learner),
                               "--until-now", "--positions"], capture_output=True,
                              timeout=SLOW, check=False)
        assert done.returncode == 0, done.stderr
        assert [line.split(b"\t")[1] for line in done.stdout.splitlines()] == [
            b"first", b"second"]
