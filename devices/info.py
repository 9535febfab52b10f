"""What serving the devices reports: where they are, or why they could not be served."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from devices.engine import EngineStatistics

#: The devices' names: ``/dev/kpaxos-learner`` and ``/dev/kpaxos-client``.
LEARNER_DEVICE = "kpaxos-learner"
CLIENT_DEVICE = "kpaxos-client"


class DeviceError(Exception):
    """The devices could not be served; the message says why, for an operator."""


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """Handed to ``task_status.started()`` once the devices can be opened.

    Attributes:
        door: ``"cuse"`` (real character devices) or ``"fuse"`` (files in a FUSE
            mount, reached through symlinks).
        learner: the path users open to read decided values.
        client: the path users open to propose values.
        learner_target: the file ``learner`` points at (the same path for CUSE).
        client_target: the file ``client`` points at.
        compat_learner: the learner under the original's path
            (``/dev/chardevice/klearner0``), if asked for.
        mount_dir: the FUSE mount, or None.
        statistics: the protocol engine's counters, for tests and diagnostics.
        reader_lags: how many delivered values each open learner reader has yet to
            read (for metrics).
    """

    door: str
    learner: str
    client: str
    learner_target: str
    client_target: str
    compat_learner: str | None
    mount_dir: str | None
    statistics: Callable[[], EngineStatistics] = field(repr=False, compare=False)
    reader_lags: Callable[[], list[int]] = field(default=list, repr=False, compare=False)
