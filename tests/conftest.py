"""Shared fixtures: the golden vectors (tests/vectors, copied from the original's bytes)."""

from __future__ import annotations

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
