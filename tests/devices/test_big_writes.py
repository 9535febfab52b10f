"""Big values through the client device, written by real shell commands: one write of a
value is one value, whole even with other writers at the same time.

Every test runs once per door (``fuse`` here, ``cuse`` in the test VM). The writes of
glibc's stdio (bash's ``echo`` and ``printf``) are as long as the file's st_blksize
when that is below BUFSIZ (8 KiB), else BUFSIZ: the FUSE door's files say 128 KiB, a
CUSE node is devtmpfs's and says 4096, so stdio writes a value in one piece through
FUSE only, and only up to BUFSIZ; elsewhere the stdio cases check that every byte
arrives, in order.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import trio

from tests.devices.helpers import Served, run
from wire import MAX_VALUE_SIZE

pytestmark = pytest.mark.root

SIZES = [6000, 60_000]
#: What bash's stdout buffer holds: a longer echo or printf is several writes.
STDIO_BUFSIZ = 8192


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


def in_one_write(served: Served, tool: str, size: int) -> bool:
    """Whether ``tool`` writes a value of ``size`` bytes with one write().

    stdio (echo, printf) cannot: a CUSE node says devtmpfs's 4096, and stdio never
    writes more than BUFSIZ at once. Those cases still check that every byte arrives,
    in order, as consecutive values.
    """
    if tool in ("echo", "printf"):
        return served.door != "cuse" and size <= STDIO_BUFSIZ
    return True


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("tool", ["echo", "printf", "cat", "dd"])
async def test_one_command_proposes_one_value(served: Served, tmp_path: Path, tool: str,
                                              size: int) -> None:
    allow_big_values(served)
    value = value_of(size)
    result = await run(commands(tool, value, tmp_path / "value", served.client))
    assert result.returncode == 0, result.stderr
    if in_one_write(served, tool, size):
        assert [len(v) for v in served.proposals.proposed] == [size]
    else:
        assert b"".join(served.proposals.proposed) == value
    assert await learned(served, size) == value


@pytest.mark.parametrize("tool", ["echo", "cat"])
async def test_concurrent_writers_never_interleave(served: Served, tmp_path: Path,
                                                   tool: str) -> None:
    sizes = [6000] if tool == "echo" else SIZES
    whole = in_one_write(served, tool, max(sizes))
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
        for command in loops:
            nursery.start_soon(write, command)
    assert [r.returncode for r in results] == [0] * writers, [r.stderr for r in results]
    proposed = served.proposals.proposed
    if whole:
        assert sorted(proposed) == sorted(values * rounds)  # every value whole, none cut
    else:
        assert sum(map(len, proposed)) == sum(map(len, values)) * rounds
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
