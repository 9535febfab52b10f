"""The learner device's own protocol, past the original's: positions, start points, frames.

A **position** names one delivered value the same way at every learner of a cluster,
before and after restarts: the instance that decided it and its place among the
client values of that instance (a batch holds many)::

    position = iid << PLACE_BITS | place

so positions increase along the log, and are written and read as one decimal
integer. A batch fits one datagram, 4 bytes of length word at least per item, so no
instance holds ``1 << PLACE_BITS`` values.

Readers choose where to start and ask for framed reads with restricted ioctls (a
CUSE character device has no llseek; ioctls whose size and direction the command
encodes work through CUSE and FUSE alike):

- ``START`` (``struct kpaxos_start``): start at ``position`` (the first value at or
  after it), just after it, at the oldest value retained, or at the next value
  decided from now. A position older than the oldest retained fails with ERANGE,
  and ``BOUNDS`` then says which one that is.
- ``BOUNDS`` (``struct kpaxos_bounds``): the oldest position retained, and the
  position after the newest value (equal when nothing is retained).
- ``FRAMED``: from now on every read returns whole frames, as many as fit: the
  value's position and length (native byte order, as the original's device
  records are), then the value. Empty values count; a buffer too small for the
  next frame fails with EINVAL.
- ``BARRIER`` (``struct kpaxos_barrier``): a read barrier. It returns once every
  value decided anywhere in the cluster before it began is in the log (a quorum
  of acceptors confirms it), with ``end``, the position after the newest value
  in the log then: a reader that reads up to ``end`` has read every one of them.
  ENOTCONN while the learner hears from no quorum of acceptors, ETIMEDOUT after
  the daemon's client timeout, EINTR when interrupted.
- ``QUORUM`` (``struct kpaxos_quorum``): whether the learner hears from a quorum
  of acceptors now (1) or not (0). poll reports POLLPRI on a file whose last
  QUORUM answer (or, before any, its open) is no longer true.

On the client device ``FRAMED`` makes every later write whole frames of values to
propose (``WRITE_FRAME``: length, then the value), many values in one write(2).

Everything native-endian, like the original's records: these bytes never leave
the host.
"""

from __future__ import annotations

import enum

from construct import Const, GreedyBytes, Int32un, Int64un, Prefixed, Struct

from wire.ioctl import io, ior, iow
from wire.layout import fast_struct

#: Bits of a position that hold the place of a value in its instance.
PLACE_BITS = 16
PLACES_PER_INSTANCE = 1 << PLACE_BITS


def position_of(iid: int, place: int) -> int:
    """The position of the value at ``place`` among the client values of ``iid``."""
    return iid << PLACE_BITS | place


def iid_of(position: int) -> int:
    """The instance that decided the value at ``position``."""
    return position >> PLACE_BITS


class StartAt(enum.IntEnum):
    """Where ``START`` puts a reader."""

    #: The first value at or after the position.
    FROM = 0
    #: The first value after the position.
    AFTER = 1
    #: The oldest value retained (where every open starts).
    OLDEST = 2
    #: The next value decided from now on.
    NOW = 3


#: ``struct kpaxos_start { u64 position; u32 how; u32 reserved; }``
START = Struct(
    "position" / Int64un,
    "how" / Int32un,
    "reserved" / Const(0, Int32un),
)
#: ``struct kpaxos_bounds { u64 oldest; u64 end; }``
BOUNDS = Struct(
    "oldest" / Int64un,
    "end" / Int64un,
)
#: ``struct kpaxos_barrier { u64 end; }``
BARRIER = Struct(
    "end" / Int64un,
)
#: ``struct kpaxos_quorum { u32 reachable; }``
QUORUM = Struct(
    "reachable" / Int32un,
)
#: One frame of a framed read: position, length, then the value.
FRAME = Struct(
    "position" / Int64un,
    "value" / Prefixed(Int32un, GreedyBytes),
)
#: One frame of a framed write to the client device: length, then the value.
WRITE_FRAME = Struct(
    "value" / Prefixed(Int32un, GreedyBytes),
)

#: The fast paths: a frame's position and length word; the ioctl arguments.
FRAME_HEAD = fast_struct(FRAME)
WRITE_FRAME_HEAD = fast_struct(WRITE_FRAME)
START_ARG = fast_struct(START)
BOUNDS_ARG = fast_struct(BOUNDS)
BARRIER_ARG = fast_struct(BARRIER)
QUORUM_ARG = fast_struct(QUORUM)

#: The ioctl type byte of the kpaxos devices (unused in the kernel's ioctl-number
#: table).
IOCTL_TYPE = 0xE5
IOCTL_START = iow(IOCTL_TYPE, 1, START.sizeof())
IOCTL_BOUNDS = ior(IOCTL_TYPE, 2, BOUNDS.sizeof())
IOCTL_FRAMED = io(IOCTL_TYPE, 3)
IOCTL_BARRIER = ior(IOCTL_TYPE, 4, BARRIER.sizeof())
IOCTL_QUORUM = ior(IOCTL_TYPE, 5, QUORUM.sizeof())
