"""Positions through a door: kpaxos-cat and clients.log on a real device file.

Every test runs once per door (the ``door`` fixture): ``fuse`` here, ``cuse`` inside the
test VM, where a character device has no llseek and the ioctls are what starts a reader.
"""

from __future__ import annotations

import errno
import sys
from pathlib import Path

import pytest

from tests.devices.helpers import Served, python, read_until, run
from wire.device import position_of

pytestmark = pytest.mark.root

#: The real command, as installed in the venv beside this Python.
KPAXOS_CAT = str(Path(sys.executable).with_name("kpaxos-cat"))

ONE, TWO, THREE = position_of(1, 0), position_of(2, 0), position_of(2, 5)


def fill(served: Served) -> None:
    served.log.append(1, b"one\n")
    served.log.append(2, b"two\n")
    served.log.append(2, b"three\n", place=5)  # a batch: the sixth of instance 2


async def cat(served: Served, *options: str) -> tuple[int, bytes, str]:
    done = await run([KPAXOS_CAT, "--device", served.learner, *options])
    return done.returncode, done.stdout, done.stderr.decode()


async def test_kpaxos_cat_starts_where_asked_and_says_the_positions(served: Served) -> None:
    fill(served)
    served.log.close()  # the daemon stops: each reader gets what is retained, then EOF
    assert await cat(served) == (0, b"one\ntwo\nthree\n", "")
    assert await cat(served, "--positions") == (
        0, f"{ONE}\tone\n{TWO}\ttwo\n{THREE}\tthree\n".encode(), "")
    assert await cat(served, "--from", str(TWO)) == (0, b"two\nthree\n", "")
    assert await cat(served, "--after", str(TWO), "--positions") == (
        0, f"{THREE}\tthree\n".encode(), "")
    assert await cat(served, "--from", str(TWO + 1)) == (0, b"three\n", "")
    assert await cat(served, "--from", "0") == (0, b"one\ntwo\nthree\n", "")  # before it all
    assert await cat(served, "--after", str(THREE)) == (0, b"", "")


async def test_kpaxos_cat_from_now_gets_only_what_is_decided_after_it_started(
    served: Served,
) -> None:
    fill(served)
    reader = await served.start([KPAXOS_CAT, "--device", served.learner, "--from-now",
                                 "--positions"])
    # Started (START then FRAMED) and blocked in its first read: "now" is behind it.
    await served.wait_stats(lambda s: s.pending == 1)
    served.log.append(3, b"four\n")
    assert reader.stdout is not None
    expected = f"{position_of(3, 0)}\tfour\n".encode()
    assert await read_until(reader.stdout, expected) == expected
    served.log.close()
    assert await reader.wait() == 0


async def test_a_position_no_longer_retained_is_an_error_naming_the_oldest(
    served: Served,
) -> None:
    fill(served)
    served.log.trim_before(1)  # --retain let "one" go
    served.log.close()
    status, out, err = await cat(served, "--from", str(ONE))
    assert (status, out) == (1, b"")
    assert err == (f"kpaxos-cat: error: position {ONE} is no longer retained: the oldest "
                   f"retained position is {TWO}\n")
    assert await cat(served, "--from", str(TWO)) == (0, b"two\nthree\n", "")


async def test_values_lost_while_reading_are_reported_where_they_were(served: Served) -> None:
    served.log.append(1, b"one\n")
    served.log.add_gap(2, 9)  # the acceptors trimmed 2 to 8 before this learner learned them
    served.log.append(9, b"nine\n")
    served.log.close()
    status, out, err = await cat(served, "--positions")
    assert (status, out) == (1, f"{ONE}\tone\n{position_of(9, 0)}\tnine\n".encode())
    assert err.startswith(f"kpaxos-cat: values were lost after position {ONE}:"), err


async def test_bad_positions_and_devices_are_one_line_errors(served: Served, tmp_path: Path
                                                             ) -> None:
    for bad in (["--from", "-1"], ["--after", "x"], ["--from", "1", "--after", "2"]):
        status, _, err = await cat(served, *bad)
        assert status == 2 and "Traceback" not in err and "kpaxos-cat: error:" in err, err
    done = await run([KPAXOS_CAT, "--device", str(tmp_path / "none")])
    assert done.returncode == 1
    assert done.stderr.decode().startswith("kpaxos-cat: error: cannot open "), done.stderr
    plain = tmp_path / "plain"
    plain.write_bytes(b"not a device")
    done = await run([KPAXOS_CAT, "--device", str(plain)])
    assert (done.returncode, b"does not know positions" in done.stderr) == (1, True)


RESUMER = """
    import sys
    from clients.log import LogReader
    saved = int(sys.argv[2])
    with LogReader.open(sys.argv[1], after=saved) as log:
        print(log.bounds())
        for entry in log:
            print(entry.position, entry.value)
"""


async def test_a_python_consumer_resumes_after_the_position_it_saved(served: Served) -> None:
    fill(served)
    served.log.close()
    done = await run([*python(RESUMER), served.learner, str(ONE)])
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines() == [
        f"({ONE}, {THREE + 1})", f"{TWO} b'two\\n'", f"{THREE} b'three\\n'"]


RAW_FRAMES = """
    import errno, fcntl, os, sys
    from wire.device import FRAME_HEAD, IOCTL_FRAMED
    fd = os.open(sys.argv[1], os.O_RDONLY)
    fcntl.ioctl(fd, IOCTL_FRAMED)
    try:
        os.read(fd, FRAME_HEAD.size + 3)  # "one\\n" does not fit
    except OSError as exc:
        print(errno.errorcode[exc.errno])
    data = os.read(fd, FRAME_HEAD.size + 4)
    print(FRAME_HEAD.unpack_from(data), data[FRAME_HEAD.size:])
"""


async def test_a_framed_read_too_small_for_the_next_frame_is_einval(served: Served) -> None:
    fill(served)
    done = await run([*python(RAW_FRAMES), served.learner])
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines() == [
        errno.errorcode[errno.EINVAL], f"({ONE}, 4) b'one\\n'"]
