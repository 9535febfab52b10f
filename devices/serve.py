"""The daemon's one call: serve the learner and client devices until cancelled."""

from __future__ import annotations

import trio

from devices.engine import LARGEST_WHOLE_WRITE
from devices.fuse_door import serve_fuse
from devices.info import DeviceError, DeviceInfo
from devices.semantics import ClientDevice, LearnerDevice
from kpaxosd.interface import Proposals, ValueLog


async def serve_devices(
    log: ValueLog,
    proposals: Proposals,
    *,
    mount_dir: str = "/run/kpaxos",
    link_dir: str = "/dev",
    device_mode: int = 0o660,
    task_status: trio.TaskStatus[DeviceInfo] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``kpaxos-learner`` and ``kpaxos-client`` in ``link_dir`` until cancelled.

    The files live in a FUSE mount at ``mount_dir`` and are reached through symlinks
    in ``link_dir`` (the CUSE door, for kernels that have CUSE, is a later issue).

    Shutdown: close ``log`` first and make pending proposals fail, then cancel. Readers
    of the closed log get up to half a second to drain to EOF; then every request still
    pending is answered (reads and writes with EIO), the links are removed and the
    mount is detached.

    Args:
        log: the learner's delivered values; every reader follows it.
        proposals: where each write to the client device goes.
        mount_dir: the FUSE mount point (created if missing; a stale mount left by a
            crashed run is detached).
        link_dir: where the two symlinks go (a stale symlink is replaced).
        device_mode: permission bits of both files (owner: the daemon's user).

    Raises:
        DeviceError: the devices cannot be set up (the message is for the operator),
            or the mount was taken away while serving.
    """
    if proposals.max_value_size > LARGEST_WHOLE_WRITE:
        raise DeviceError(f"values of up to {proposals.max_value_size} bytes cannot pass the "
                          f"devices, which take at most {LARGEST_WHOLE_WRITE} bytes per write")
    learner = LearnerDevice(log)
    await serve_fuse(
        learner,
        ClientDevice(proposals),
        mount_dir=mount_dir,
        link_dir=link_dir,
        device_mode=device_mode,
        drain=learner.wait_readers_done,
        task_status=task_status,
    )
