"""The user-facing devices: ``/dev/kpaxos-learner`` and ``/dev/kpaxos-client``.

One engine speaks the FUSE kernel protocol (:mod:`devices.engine`, the ABI in
:mod:`devices.fuse_abi`); the device semantics live in :mod:`devices.semantics`; the
FUSE front door (:mod:`devices.fuse_door`) serves them in a mount.
"""

from devices.engine import EngineStatistics
from devices.info import DeviceError, DeviceInfo
from devices.serve import serve_devices

__all__ = ["DeviceError", "DeviceInfo", "EngineStatistics", "serve_devices"]
