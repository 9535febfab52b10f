"""What serving the devices reports: where they are, or why they could not be served."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from devices.engine import EngineStatistics


class DeviceError(Exception):
    """The devices could not be served; the message says why, for an operator."""


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """Handed to ``task_status.started()`` once the devices can be opened.

    Attributes:
        door: ``"fuse"`` (files in a FUSE mount, reached through symlinks) or, once
            that door exists, ``"cuse"`` (real character devices).
        learner: the path users open to read decided values.
        client: the path users open to propose values.
        learner_target: the file ``learner`` points at (the same path for CUSE).
        client_target: the file ``client`` points at.
        mount_dir: the FUSE mount, or None.
        statistics: the protocol engine's counters, for tests and diagnostics.
    """

    door: str
    learner: str
    client: str
    learner_target: str
    client_target: str
    mount_dir: str | None
    statistics: Callable[[], EngineStatistics] = field(repr=False, compare=False)
