"""The daemon's one call: serve the learner and client devices until cancelled."""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
from collections.abc import Callable
from typing import Literal

import trio

from devices.cuse_door import CUSE_DEVICE, CuseDevice, check_device_name, serve_cuse
from devices.engine import LARGEST_WHOLE_WRITE
from devices.fuse_door import serve_fuse
from devices.info import CLIENT_DEVICE, LEARNER_DEVICE, DeviceError, DeviceInfo
from devices.ports import Barriers, Proposals
from devices.semantics import ClientDevice, LearnerDevice
from devices.valuelog import ValueLog

logger = logging.getLogger("kpaxos.devices")

Backend = Literal["auto", "cuse", "fuse"]
BACKENDS: tuple[Backend, ...] = ("auto", "cuse", "fuse")
#: ``modprobe cuse`` must not hold up the daemon for long.
_MODPROBE_TIMEOUT = 10.0


def compat_learner_name(learner_id: int) -> str:
    """The original's learner device, under ``/dev``: ``chardevice/klearner<ID>``."""
    return f"chardevice/klearner{learner_id}"


async def choose_backend(
    backend: Backend,
    *,
    cuse_device: str = CUSE_DEVICE,
    modprobe: tuple[str, ...] = ("modprobe", "cuse"),
) -> Literal["cuse", "fuse"]:
    """The door to serve through, logging which and why.

    ``auto`` and ``cuse`` load the cuse module when ``cuse_device`` is missing and
    take CUSE if ``cuse_device`` then opens; ``auto`` falls back to FUSE otherwise.

    Raises:
        DeviceError: ``cuse`` was asked for and CUSE cannot be had.
    """
    if backend == "fuse":
        logger.info("devices: FUSE, as asked (--device-backend fuse)")
        return "fuse"
    loaded = ""
    if not os.path.exists(cuse_device):
        loaded = await _modprobe(modprobe)
    try:
        os.close(os.open(cuse_device, os.O_RDWR | os.O_CLOEXEC))
    except OSError as exc:
        why = f"{cuse_device}: {exc.strerror}" + (f"; {loaded}" if loaded else "")
        if backend == "cuse":
            raise DeviceError(f"CUSE was asked for, but {why}") from None
        logger.info("devices: FUSE, because CUSE is not available (%s)", why)
        return "fuse"
    logger.info("devices: CUSE, because %s opened%s", cuse_device,
                f" ({loaded})" if loaded else "")
    return "cuse"


async def _modprobe(command: tuple[str, ...]) -> str:
    """Run ``command``; what happened, in a few words for the log."""
    what = " ".join(command)
    try:
        with trio.fail_after(_MODPROBE_TIMEOUT):
            result = await trio.run_process(list(command), check=False, capture_stdout=True,
                                            capture_stderr=True, stdin=subprocess.DEVNULL)
    except OSError as exc:
        return f"{what}: {exc.strerror}"
    except trio.TooSlowError:
        return f"{what}: no answer in {_MODPROBE_TIMEOUT:g} s"
    if result.returncode == 0:
        return f"after {what}"
    lines = result.stderr.decode(errors="replace").strip().splitlines()
    return f"{what} failed: {lines[-1] if lines else f'exit status {result.returncode}'}"


async def serve_devices(
    log: ValueLog,
    proposals: Proposals,
    *,
    barriers: Barriers | None = None,
    trim_acceptors: Callable[[int], None] | None = None,
    backend: Backend = "auto",
    name_prefix: str = "",
    compat_learner_id: int | None = None,
    device_mode: int = 0o660,
    device_gid: int | None = None,
    mount_dir: str = "/run/kpaxos",
    link_dir: str = "/dev",
    cuse_device: str = CUSE_DEVICE,
    task_status: trio.TaskStatus[DeviceInfo] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``kpaxos-learner`` and ``kpaxos-client`` until cancelled.

    Through CUSE they are character devices ``/dev/PREFIXkpaxos-learner`` and
    ``/dev/PREFIXkpaxos-client``; through FUSE they are files in a mount at
    ``mount_dir``, reached through symlinks of those names in ``link_dir``.

    Shutdown: close ``log`` first and make pending proposals fail, then cancel. Readers
    of the closed log read on to EOF as long as they keep reading (up to ten seconds,
    devices.running.drain_readers); then every request still
    pending is answered (reads and writes with EIO) and the devices are removed (CUSE:
    the connections are closed; FUSE: the links removed and the mount detached).

    Args:
        log: the learner's delivered values; every reader follows it.
        proposals: where each write to the client device goes.
        barriers: the learner device's read barriers and reach (None: ENOTTY).
        trim_acceptors: lets the acceptors forget up to an instance, for the trim
            writes of the 2017-09-18 programs (None: those are ignored).
        backend: ``cuse``, ``fuse``, or ``auto`` (CUSE if it can be had).
        name_prefix: put before every device name, so that a second instance or a
            test does not collide with the real devices; may end in ``/`` (a folder).
        compat_learner_id: also serve the learner as ``chardevice/klearner<ID>`` (with
            the prefix), the original's path.
        device_mode: permission bits of the devices.
        device_gid: their group (default: the daemon's); the owner is the daemon's user.
        mount_dir: the FUSE mount point (created if missing; a stale mount left by a
            crashed run is detached). FUSE only.
        link_dir: where the FUSE door's symlinks go (a stale symlink is replaced).

    Raises:
        DeviceError: the devices cannot be set up (the message is for the operator),
            or they were taken away while serving.
    """
    if proposals.max_value_size > LARGEST_WHOLE_WRITE:
        raise DeviceError(f"values of up to {proposals.max_value_size} bytes cannot pass the "
                          f"devices, which take at most {LARGEST_WHOLE_WRITE} bytes per write")
    compat = None if compat_learner_id is None else compat_learner_name(compat_learner_id)
    for name in (LEARNER_DEVICE, CLIENT_DEVICE, compat):
        if name is not None:
            check_device_name(name_prefix + name)
    learner = LearnerDevice(log, barriers, trim_acceptors)
    client = ClientDevice(proposals)
    task_status = _AddReaderLags(task_status, learner)
    if await choose_backend(backend, cuse_device=cuse_device) == "cuse":
        devices = [CuseDevice(name_prefix + LEARNER_DEVICE, learner),
                   CuseDevice(name_prefix + CLIENT_DEVICE, client)]
        if compat is not None:
            devices.append(CuseDevice(name_prefix + compat, learner))
        await serve_cuse(devices, device_mode=device_mode, device_gid=device_gid,
                         drain=learner, cuse_device=cuse_device,
                         task_status=task_status)
    else:
        await serve_fuse(learner, client, mount_dir=mount_dir, link_dir=link_dir,
                         device_mode=device_mode, device_gid=device_gid,
                         name_prefix=name_prefix, compat_learner=compat,
                         drain=learner, task_status=task_status)


class _AddReaderLags:
    """Hands the door's DeviceInfo on with the learner's reader lags attached."""

    def __init__(self, outer: trio.TaskStatus[DeviceInfo], learner: LearnerDevice) -> None:
        self._outer = outer
        self._learner = learner

    def started(self, value: DeviceInfo | None = None) -> None:
        assert value is not None, "the doors always report their DeviceInfo"
        self._outer.started(dataclasses.replace(value, reader_lags=self._learner.reader_lags))
