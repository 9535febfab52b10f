"""The CUSE front door: real character devices, ``/dev/kpaxos-learner`` and friends.

Each device is its own open of ``/dev/cuse``. The kernel's first request on it is
CUSE_INIT; the answer is ``cuse_init_out`` followed by ``DEVNAME=<name>\\0``, and while
our write of that answer returns the kernel registers the character device, which
devtmpfs shows as ``/dev/<name>`` (a name with a ``/`` makes a folder:
``chardevice/klearner0``). Everything after that — OPEN, READ, WRITE, POLL, INTERRUPT,
RELEASE — is the engine's, exactly as for the FUSE door. Closing the descriptor
unregisters the device and its node goes away.

CUSE has no attribute operations, so the node's mode and group are set with chmod and
chown once it appears (devtmpfs makes it 0600 root:root).
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass

import trio

from devices.engine import DEFAULT_MAX_WRITE, Device, Engine, Request, negotiate_minor
from devices.fuse_abi import (
    CUSE_INIT_INFO_MAX,
    KERNEL_VERSION,
    Opcode,
    cuse_init_in,
    cuse_init_out,
    parse_untrusted,
)
from devices.info import DeviceError, DeviceInfo
from devices.running import Readers, run_engines

logger = logging.getLogger("kpaxos.devices")

CUSE_DEVICE = "/dev/cuse"
#: Where devtmpfs shows the devices CUSE registers.
DEV_DIR = "/dev"
#: How long a registered device may take to show up in DEV_DIR (devtmpfs makes it
#: at once; udev, where devtmpfs is not mounted, a little later).
_NODE_TIMEOUT = 5.0


def check_device_name(name: str) -> str:
    """``name`` if CUSE can register it as ``/dev/<name>``.

    Raises:
        DeviceError: empty, absolute, with empty or dot folders, or with characters the
            device info string cannot carry.
    """
    parts = name.split("/")
    if (not name or len(name) > 200 or any(part in ("", ".", "..") for part in parts)
            or any(c in name for c in "\0\n=") or not name.isprintable()):
        raise DeviceError(f"{name!r} cannot be a device name: use letters, digits, '-', "
                          f"'_', '.' and '/' between folder names")
    return name


class CuseDoor:
    """The door: CUSE_INIT for one device named ``name``; the engine does the rest."""

    def __init__(self, name: str, device: Device) -> None:
        self.name = check_device_name(name)
        self._device = device
        self._info = f"DEVNAME={name}\0".encode()
        assert len(self._info) <= CUSE_INIT_INFO_MAX

    # -- the door protocol --------------------------------------------------------------

    def device_for(self, nodeid: int) -> Device | None:
        return self._device  # CUSE opens carry no node id that means anything

    def handle(self, engine: Engine, request: Request, body: memoryview) -> bool:
        if request.opcode != Opcode.CUSE_INIT:
            return False
        arg = parse_untrusted(cuse_init_in, body)
        minor = negotiate_minor(arg.major, arg.minor)
        request.reply(cuse_init_out.build({
            "major": KERNEL_VERSION,
            "minor": minor,
            # Never CUSE_UNRESTRICTED_IOCTL: restricted ioctls, whose argument the
            # kernel decodes from the number and copies itself, as for a FUSE file;
            # the engine refuses unrestricted ones (docs/devices.md, "One engine, two doors").
            "flags": 0,
            "max_read": engine.max_write,
            "max_write": engine.max_write,
            "dev_major": 0,  # 0: the kernel picks the numbers
            "dev_minor": 0,
        }) + self._info)
        logger.debug("CUSE_INIT: kernel %d.%d, speaking 7.%d, DEVNAME=%s",
                     arg.major, arg.minor, minor, self.name)
        engine.initialized(minor)
        return True


@dataclass(frozen=True, slots=True)
class CuseDevice:
    """One character device to register: ``/dev/<name>`` serving ``device``."""

    name: str
    device: Device


def open_cuse(path: str = CUSE_DEVICE) -> int:
    """A new, non-blocking CUSE connection.

    Raises:
        DeviceError: ``path`` cannot be opened (the message says why).
    """
    try:
        return os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise DeviceError(f"{path} does not exist: this kernel has no CUSE "
                          f"(try 'modprobe cuse')") from None
    except OSError as exc:
        raise DeviceError(f"cannot open {path}: {exc.strerror} (the devices need root)") from None


async def serve_cuse(
    devices: Sequence[CuseDevice],
    *,
    device_mode: int,
    device_gid: int | None = None,
    drain: Readers | None = None,
    max_write: int = DEFAULT_MAX_WRITE,
    cuse_device: str = CUSE_DEVICE,
    dev_dir: str = DEV_DIR,
    task_status: trio.TaskStatus[DeviceInfo] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Register ``devices`` (learner, client, then optionally the compat learner) with
    CUSE and serve them until cancelled.

    Args:
        device_mode: permission bits of every node.
        device_gid: group of every node (default: the daemon's).
        drain: as for :func:`devices.fuse_door.serve_fuse`.

    Raises:
        DeviceError: CUSE cannot be opened, refused a device (a name already taken), a
            node did not appear, or a connection ended while serving.
    """
    paths = [os.path.join(dev_dir, device.name) for device in devices]
    fds: list[int] = []
    try:
        engines = []
        for device in devices:
            fds.append(open_cuse(cuse_device))
            engines.append(Engine(fds[-1], CuseDoor(device.name, device.device),
                                  max_write=max_write))
        what = "the CUSE devices " + ", ".join(paths)
        async with run_engines(engines, what=what, drain=drain) as running:
            for path, device, engine in zip(paths, devices, engines, strict=True):
                await _wait_for_node(path, device.name, engine)
                _set_owner_and_mode(path, device_mode, device_gid)
            logger.info("devices served through CUSE: %s", ", ".join(paths))
            task_status.started(DeviceInfo(
                door="cuse", learner=paths[0], client=paths[1],
                learner_target=paths[0], client_target=paths[1],
                compat_learner=paths[2] if len(paths) > 2 else None,
                mount_dir=None, statistics=running.statistics))
            ended = await running.wait_any_finished()
        raise DeviceError(f"the CUSE connection of {paths[engines.index(ended)]} ended")
    finally:
        for fd in fds:
            # Closing unregisters the device: the kernel removes its node.
            trio.lowlevel.notify_closing(fd)
            os.close(fd)
        if fds:
            logger.info("devices %s removed", ", ".join(paths[:len(fds)]))


async def _wait_for_node(path: str, name: str, engine: Engine) -> None:
    # lstat of the node opens nothing (and follows no link into a FUSE mount), so
    # this cannot end up waiting on a request only this thread would answer.
    with trio.move_on_after(_NODE_TIMEOUT):
        while not engine.finished.is_set():
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                pass
            else:
                if stat.S_ISCHR(st.st_mode) and _registered_as(name, st.st_rdev):
                    return
            await trio.sleep(0.01)
    if engine.finished.is_set():
        raise DeviceError(f"CUSE refused {path}: is the name taken by another CUSE "
                          f"device? (--device-name-prefix makes other names)")
    if os.path.lexists(path):
        raise DeviceError(f"{path} exists and is not a character device (a link left by "
                          f"the FUSE backend?); not replacing it")
    raise DeviceError(f"CUSE registered {path}, but it did not appear "
                      f"(is devtmpfs mounted on {os.path.dirname(path)}?)")


def _registered_as(name: str, rdev: int) -> bool:
    """Is ``rdev`` the number the kernel gave our device ``name``? (True when sysfs
    cannot tell: then any character device at the path is taken for ours.)"""
    try:
        with open(f"/sys/class/cuse/{name.replace('/', '!')}/dev") as f:
            major, minor = (int(n) for n in f.read().split(":"))
    except (OSError, ValueError):
        return True
    return os.major(rdev) == major and os.minor(rdev) == minor


def _set_owner_and_mode(path: str, mode: int, gid: int | None) -> None:
    try:
        os.chmod(path, mode)
        if gid is not None:
            os.chown(path, -1, gid)
    except OSError as exc:
        raise DeviceError(f"cannot set the mode or group of {path}: {exc.strerror}") from None


__all__ = ["CUSE_DEVICE", "CuseDevice", "CuseDoor", "check_device_name", "open_cuse",
           "serve_cuse"]
