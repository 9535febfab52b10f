"""kpaxos-bench prints its numbers (their size is the machine's business, not a test's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = str(Path(sys.executable).with_name("kpaxos-bench"))
FIELDS = {"values_per_s", "p50_us", "p99_us", "cpu_us_per_value", "max_rss_mb", "topology",
          "outstanding", "value_size", "udp_floor_dgrams_per_s", "udp_rtt_floor_us",
          "p50_over_rtt_floor"}


@pytest.mark.parametrize(("topology", "extra"), [("single", ["-b", "2", "--cat-reader"]),
                                                 ("processes", ["--no-device"])])
def test_the_bench_reports_its_numbers_as_json(topology: str, extra: list[str]) -> None:
    done = subprocess.run(
        [BENCH, "--topology", topology, "-o", "4", "--duration", "2", "--json", *extra],
        capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert set(result) >= FIELDS
    assert result["topology"] == topology
    assert result["outstanding"] == 4
    assert result["values_per_s"] > 0
    assert 0 < result["p50_us"] <= result["p99_us"]
    assert result["udp_floor_dgrams_per_s"] > 0
    assert result["udp_rtt_floor_us"] > 0
    assert result["p50_over_rtt_floor"] == pytest.approx(
        result["p50_us"] / result["udp_rtt_floor_us"], rel=0.01)
    assert result["max_rss_mb"] > 0
    if "--cat-reader" in extra:
        assert result["values_per_datagram"] == 2
        assert result["cat_reader_bytes"] > 0


def test_the_bench_drives_the_client_device_with_writers() -> None:
    done = subprocess.run([BENCH, "--writers", "3", "--duration", "2", "--json"],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 device writers" in done.stdout
    result = json.loads(done.stdout.splitlines()[-1])
    assert set(result) >= FIELDS | {"writers", "failed"}
    assert (result["writers"], result["failed"]) == (3, 0)
    assert result["values"] > 0 and result["values_per_s"] > 0
    assert 0 < result["p50_us"] <= result["p99_us"]


@pytest.mark.parametrize("per_write", [1, 10])
def test_the_bench_drives_the_client_device_pipelined(per_write: int) -> None:
    done = subprocess.run([BENCH, "--pipelined", "-o", "50", "--per-write", str(per_write),
                           "--duration", "2", "--json"],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert set(result) >= FIELDS | {"pipelined", "per_write", "failed"}
    assert (result["pipelined"], result["outstanding"], result["per_write"]) == (
        True, 50, per_write)
    assert result["failed"] == 0
    assert result["values"] > 0 and result["values_per_s"] > 0
    assert 0 < result["p50_us"] <= result["p99_us"]


@pytest.mark.parametrize("mode", ["--writers", "--pipelined"])
def test_device_modes_need_the_device(mode: str) -> None:
    args = [mode, "3"] if mode == "--writers" else [mode]
    done = subprocess.run([BENCH, *args, "--no-device"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert "write to the client device" in done.stderr
