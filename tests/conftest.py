"""Shared fixtures: the golden vectors (tests/vectors, copied from the original's bytes)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# No per-example deadline: the machines are small and shared, and a slow example is
# not a wrong one. "fuzz" is the longer hunt: pytest --hypothesis-profile=fuzz tests/fuzz
settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "fuzz", max_examples=20_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("default")

REPO = Path(__file__).resolve().parent.parent
VECTORS = REPO / "tests" / "vectors"


def read_vectors(name: str) -> dict[str, bytes]:
    """``name -> bytes`` from one of the golden vector files of the original C code."""
    path = VECTORS / name
    vectors: dict[str, bytes] = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, hexbytes = line.split()
        vectors[key] = bytes.fromhex(hexbytes)
    return vectors


@pytest.fixture(scope="session")
def wire_vectors() -> dict[str, bytes]:
    return read_vectors("kernel_paxos_wire.txt")


@pytest.fixture(scope="session")
def chardev_vectors() -> dict[str, bytes]:
    return read_vectors("chardev_records.txt")


@pytest.fixture(scope="session")
def programs_2017_vectors() -> dict[str, bytes]:
    """The vectors of the 2017 user-space programs: the lines ``NAME HEX`` of the prose
    in kernel_paxos_2017_programs.txt (names start with what carries them)."""
    vectors: dict[str, bytes] = {}
    for line in (VECTORS / "kernel_paxos_2017_programs.txt").read_text().splitlines():
        match = PROGRAM_VECTOR.fullmatch(line)
        if match is not None:
            vectors[match["name"]] = bytes.fromhex(match["hex"])
    return vectors


PROGRAM_VECTOR = re.compile(r"(?P<name>(?:dev|tcp|udp|obs|kern)\w+) (?P<hex>(?:[0-9a-f]{2})+)")
