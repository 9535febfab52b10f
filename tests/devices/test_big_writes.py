"""Big values through the client device, written by real shell commands: one command
writing a value proposes one value, whole even with other writers at the same time.

Every test runs once per door (``fuse`` here, ``cuse`` in the test VM). glibc's stdio
(bash's ``echo`` and ``printf``) writes a value longer than its buffer in two writes:
whole buffers (4096 bytes on a CUSE node, 8192 through FUSE), then the rest; the
device joins them (``devices.semantics.CONTINUED_BLOCK``).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import trio

from devices.ports import ProposalTimeout
from tests.devices.helpers import SHOULD, Served, python, run
from wire import MAX_VALUE_SIZE

pytestmark = pytest.mark.root

SIZES = [6000, 60_000]


def value_of(size: int, fill: bytes = b"v") -> bytes:
    return fill * (size - 1) + b"\n"


def commands(tool: str, value: bytes, source: Path, client: str) -> list[str]:
    """The bash command with which ``tool`` writes ``value`` (also in ``source``)."""
    source.write_bytes(value)
    body = value[:-1].decode()
    script = {
        "echo": f'echo "{body}" > "{client}"',
        "printf": f'printf "%s\\n" "{body}" > "{client}"',
        "cat": f'cat "{source}" > "{client}"',
        "dd": f'dd if="{source}" of="{client}" bs={len(value)} status=none',
    }[tool]
    return ["bash", "-c", script]


def allow_big_values(served: Served) -> None:
    served.proposals.max_value_size = MAX_VALUE_SIZE


async def learned(served: Served, size: int) -> bytes:
    """The first ``size`` bytes a new reader of the learner device reads."""
    result = await run(["head", "-c", str(size), served.learner])
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("tool", ["echo", "printf", "cat", "dd"])
async def test_one_command_proposes_one_value(served: Served, tmp_path: Path, tool: str,
                                              size: int) -> None:
    allow_big_values(served)
    value = value_of(size)
    result = await run(commands(tool, value, tmp_path / "value", served.client))
    assert result.returncode == 0, result.stderr
    assert served.proposals.proposed == [value]
    assert await learned(served, size) == value


@pytest.mark.parametrize("tool", ["echo", "cat"])
async def test_concurrent_writers_never_interleave(served: Served, tmp_path: Path,
                                                   tool: str) -> None:
    sizes = SIZES
    allow_big_values(served)
    writers, rounds = 4, 5
    values = [value_of(sizes[w % len(sizes)], fill=bytes([ord("a") + w]))
              for w in range(writers)]
    loops = []
    for w, value in enumerate(values):
        command = commands(tool, value, tmp_path / f"value{w}", served.client)[2]
        loops.append(["bash", "-c", f"for i in $(seq {rounds}); do {command} || exit 1; done"])
    results = []

    async def write(command: list[str]) -> None:
        results.append(await run(command))

    async with trio.open_nursery() as nursery:
        for loop in loops:
            nursery.start_soon(write, loop)
    assert [r.returncode for r in results] == [0] * writers, [r.stderr for r in results]
    proposed = served.proposals.proposed
    assert sorted(proposed) == sorted(values * rounds)  # every value whole, none cut
    total = sum(len(v) for v in proposed)
    assert await learned(served, total) == b"".join(proposed)


@pytest.mark.parametrize("tool", ["cat", "dd"])
async def test_a_value_over_the_largest_is_refused_once(served: Served, tmp_path: Path,
                                                        tool: str) -> None:
    allow_big_values(served)
    value = value_of(MAX_VALUE_SIZE + 1)
    result = await run(commands(tool, value, tmp_path / "value", served.client))
    assert result.returncode != 0
    assert os.strerror(errno.EMSGSIZE).encode() in result.stderr
    # one write, one refusal: no piece of it was proposed apart, none decided
    assert [len(v) for v in served.proposals.proposed] == [len(value)]
    assert served.log.next_index == 0


async def test_a_value_ended_by_close_is_proposed(served: Served) -> None:
    # The value's last write is a whole block: close ends it. Through FUSE close
    # answers for it; CUSE sends no FLUSH and the value is proposed on release.
    allow_big_values(served)
    result = await run(python(f"""
        import os
        fd = os.open({served.client!r}, os.O_WRONLY)
        print(os.write(fd, b"a" * 4096), os.write(fd, b"b" * 8192))
        os.close(fd)
    """))
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"4096 8192\n"
    value = b"a" * 4096 + b"b" * 8192
    assert await learned(served, len(value)) == value
    assert served.proposals.proposed == [value]


async def test_close_reports_the_failure_of_the_value_it_ends_where_it_can(
        served: Served) -> None:
    allow_big_values(served)
    served.proposals.fail_with = ProposalTimeout()
    result = await run(python(f"""
        import errno, os
        fd = os.open({served.client!r}, os.O_WRONLY)
        print(os.write(fd, b"a" * 4096))
        try:
            os.close(fd)
        except OSError as exc:
            print(errno.errorcode[exc.errno])
    """))
    assert result.returncode == 0, result.stderr
    # CUSE sends no FLUSH, so its close cannot fail; the value is proposed all the same
    # (on release) and its failure is logged
    assert result.stdout == (b"4096\n" if served.door == "cuse" else b"4096\nETIMEDOUT\n")
    with trio.fail_after(SHOULD):
        await served.proposals.wait_proposed(1)
    assert served.proposals.proposed == [b"a" * 4096]


async def test_writes_of_whole_blocks_join_until_one_that_is_not(served: Served) -> None:
    allow_big_values(served)
    result = await run(python(f"""
        import os
        fd = os.open({served.client!r}, os.O_WRONLY)
        print(os.write(fd, b"a" * 4096), os.write(fd, b"b" * 8192), os.write(fd, b"end"))
        print(os.write(fd, b"c" * 4095 + b"\\n"), os.write(fd, b"short"))
        os.close(fd)
    """))
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"4096 8192 3\n4096 5\n"
    # a block that ends a line is a value of its own
    assert served.proposals.proposed == [b"a" * 4096 + b"b" * 8192 + b"end",
                                         b"c" * 4095 + b"\n", b"short"]


async def test_joined_pieces_over_the_largest_value_are_refused(served: Served) -> None:
    allow_big_values(served)
    blocks = MAX_VALUE_SIZE // 4096
    result = await run(python(f"""
        import errno, os
        fd = os.open({served.client!r}, os.O_WRONLY)
        for _ in range({blocks}):
            os.write(fd, b"x" * 4096)
        try:
            os.write(fd, b"x" * 4096)
        except OSError as exc:
            print(errno.errorcode[exc.errno])
        print(os.write(fd, b"next"))
    """))
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"EMSGSIZE\n4\n"
    assert [len(v) for v in served.proposals.proposed] == [(blocks + 1) * 4096, 4]
    assert served.log.next_index == 1
