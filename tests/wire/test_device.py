"""The learner device's own protocol: positions, the ioctl arguments, frames."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from wire.batch import BATCH_OVERHEAD, ITEM_OVERHEAD
from wire.datagram import MAX_VALUE_SIZE
from wire.device import (
    BOUNDS,
    BOUNDS_ARG,
    FRAME,
    FRAME_HEAD,
    IOCTL_BOUNDS,
    IOCTL_FRAMED,
    IOCTL_START,
    PLACES_PER_INSTANCE,
    START,
    START_ARG,
    StartAt,
    iid_of,
    position_of,
)
from wire.ioctl import IOC_NONE, IOC_READ, IOC_WRITE, ioc_dir, ioc_size


@given(iid=st.integers(0, 2**32 - 1), place=st.integers(0, PLACES_PER_INSTANCE - 1))
def test_positions_name_instance_and_place_and_increase_along_the_log(
    iid: int, place: int
) -> None:
    position = position_of(iid, place)
    assert (iid_of(position), position % PLACES_PER_INSTANCE) == (iid, place)
    following = (position_of(iid, place + 1) if place + 1 < PLACES_PER_INSTANCE
                 else position_of(iid + 1, 0))
    assert position < following <= position_of(iid + 1, 0)
    assert position < 2**64


def test_no_instance_holds_more_values_than_a_position_has_places() -> None:
    # A batch fits one value; every item costs its length word at least.
    assert (MAX_VALUE_SIZE - BATCH_OVERHEAD) // ITEM_OVERHEAD < PLACES_PER_INSTANCE


def test_the_ioctl_arguments_and_their_fast_paths_agree() -> None:
    assert START.sizeof() == START_ARG.size == 16
    assert BOUNDS.sizeof() == BOUNDS_ARG.size == 16
    assert START.build({"position": 7, "how": StartAt.AFTER}) == START_ARG.pack(7, 1, 0)
    assert BOUNDS.parse(BOUNDS_ARG.pack(3, 9)) == {"oldest": 3, "end": 9}
    frame = FRAME.build({"position": 2**40 + 5, "value": b"value"})
    assert frame == FRAME_HEAD.pack(2**40 + 5, 5) + b"value"
    assert FRAME_HEAD.size == 12


def test_the_ioctl_numbers_say_their_direction_and_size() -> None:
    # The kernel copies a restricted ioctl's argument by what its number says.
    assert (ioc_dir(IOCTL_START), ioc_size(IOCTL_START)) == (IOC_WRITE, 16)
    assert (ioc_dir(IOCTL_BOUNDS), ioc_size(IOCTL_BOUNDS)) == (IOC_READ, 16)
    assert (ioc_dir(IOCTL_FRAMED), ioc_size(IOCTL_FRAMED)) == (IOC_NONE, 0)
    assert len({IOCTL_START, IOCTL_BOUNDS, IOCTL_FRAMED}) == 3
