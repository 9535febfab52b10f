"""The systemd units in systemd/: valid for systemd, and their command lines valid for
kpaxosd."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from kpaxosd import cli
from kpaxosd.config import default_config
from tests.conftest import REPO

UNITS = sorted((REPO / "systemd").glob("*.service"))
KPAXOSD = str(Path(sys.executable).with_name("kpaxosd"))


def exec_start(unit: Path) -> list[str]:
    for line in unit.read_text().splitlines():
        if line.startswith("ExecStart="):
            return shlex.split(line.removeprefix("ExecStart="))
    raise AssertionError(f"{unit.name} has no ExecStart")


def test_there_is_a_unit_per_role_set() -> None:
    assert {unit.name for unit in UNITS} == {
        "kpaxos-acceptor@.service",
        "kpaxos-proposer@.service",
        "kpaxos-learner@.service",
        "kpaxos-replica@.service",
    }


@pytest.mark.parametrize("unit", UNITS, ids=lambda unit: unit.name)
def test_systemd_accepts_the_unit(unit: Path, tmp_path: Path) -> None:
    # Point ExecStart at this checkout's kpaxosd, as /opt/kpaxos would be on a host.
    instance = tmp_path / unit.name.replace("@", "@0")
    instance.write_text(unit.read_text().replace("/opt/kpaxos/.venv/bin/kpaxosd", KPAXOSD))
    done = subprocess.run(["systemd-analyze", "verify", str(instance)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert unit.name.removesuffix(".service") not in done.stderr, done.stderr


@pytest.mark.parametrize("unit", UNITS, ids=lambda unit: unit.name)
def test_kpaxosd_accepts_the_command_line(unit: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    argv = exec_start(unit)
    assert argv[0] == "/opt/kpaxos/.venv/bin/kpaxosd"
    args = [word.replace("%i", "0") for word in argv[1:]]
    # The units use a group "kpaxos" the operator creates; it need not exist here.
    monkeypatch.setattr(cli, "_group", lambda name: 4242)
    parsed = cli.build_parser().parse_args(args)
    spec = cli.spec_from_args(parsed, default_config())
    roles = (spec.acceptors, spec.proposers, spec.replicas, spec.learner)
    assert any(roles), unit.name
