"""The user-facing devices: ``/dev/kpaxos-learner`` and ``/dev/kpaxos-client``.

One engine speaks the FUSE kernel protocol (:mod:`devices.engine`, the ABI in
:mod:`devices.fuse_abi`); the device semantics live in :mod:`devices.semantics`. Two
front doors serve them: CUSE, real character devices (:mod:`devices.cuse_door`), and a
FUSE mount for kernels without CUSE (:mod:`devices.fuse_door`). :mod:`devices.serve`
chooses between them.
"""

from devices.engine import EngineStatistics
from devices.info import DeviceError, DeviceInfo
from devices.serve import BACKENDS, Backend, choose_backend, serve_devices

__all__ = ["BACKENDS", "Backend", "DeviceError", "DeviceInfo", "EngineStatistics",
           "choose_backend", "serve_devices"]
