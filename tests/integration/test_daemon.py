"""The kpaxosd command as an operator meets it: real processes, real UDP, real devices."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests.integration.harness import (
    KPAXOSD,
    cluster,
    loopback_config,
    mounted,
    read_lines,
    wait_until,
)


def run_shell(script: str, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["sh", "-c", script], capture_output=True, timeout=timeout, check=False)


def test_the_built_in_cluster_decides_what_echo_writes_and_cat_reads_it(tmp_path: Path) -> None:
    with cluster(tmp_path) as running:
        mount_dir, link_dir, device_args = running.devices("node")
        daemon = running.start("kpaxosd", *device_args)
        learner, client = link_dir / "kpaxos-learner", link_dir / "kpaxos-client"
        assert learner.is_symlink() and client.is_symlink()
        assert mounted(mount_dir)

        cat = running.spawn(["cat", str(learner)], stdout=subprocess.PIPE)
        for word in ("hello", "paxos", "world"):
            done = run_shell(f"echo {word} > {client}")
            assert done.returncode == 0, done.stderr
        assert read_lines(cat.stdout, 3, timeout=30) == [b"hello", b"paxos", b"world"]
        assert "acceptor 0 listening on 127.0.0.3:3003" in daemon.log
        assert "proposer 0 listening on 127.0.0.2:3002" in daemon.log
        # Every socket of the built-in cluster is on loopback: the learner's too.
        listening = re.findall(r"listening on ([\d.]+):\d+", daemon.log)
        assert len(listening) >= 5 and all(h.startswith("127.") for h in listening), listening

        # The cat is now blocked in read: stopping the daemon must end it, not hang it.
        assert cat.poll() is None
        assert daemon.stop(signal.SIGTERM) == 0
        assert cat.wait(10) is not None
        assert not mounted(mount_dir)
        assert not learner.exists() and not learner.is_symlink()
        assert not client.is_symlink()


def test_sigint_ends_a_writer_waiting_for_a_decision(tmp_path: Path) -> None:
    # The proposer of this configuration never runs: nothing can be decided.
    config = loopback_config(tmp_path / "paxos.conf")
    with cluster(tmp_path) as running:
        mount_dir, link_dir, device_args = running.devices("learner")
        daemon = running.start("learner", "-c", str(config), "--learner", *device_args)
        writer = running.spawn(
            ["bash", "-c", f"echo stuck > {link_dir / 'kpaxos-client'}"], stderr=subprocess.PIPE
        )
        with pytest.raises(subprocess.TimeoutExpired):
            writer.wait(1.0)
        assert daemon.stop(signal.SIGINT) == 0
        assert writer.wait(10) != 0
        assert b"Input/output error" in writer.stderr.read()  # type: ignore[union-attr]
        assert not mounted(mount_dir)


def test_a_wrong_config_line_stops_the_daemon_naming_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.conf"
    config.write_text("acceptor 0 127.0.0.1 9000\nproposer 0 127.0.0.1 9001\nlearnr yes\n")
    done = subprocess.run([KPAXOSD, "-c", str(config)], capture_output=True, timeout=30)
    assert done.returncode == 2
    assert f"{config}:3: unknown directive 'learnr'" in done.stderr.decode()
    assert b"Traceback" not in done.stderr


def test_a_role_the_config_lacks_is_a_clear_error(tmp_path: Path) -> None:
    config = loopback_config(tmp_path / "paxos.conf")
    done = subprocess.run(
        [KPAXOSD, "-c", str(config), "--acceptor", "7"], capture_output=True, timeout=30
    )
    assert done.returncode == 1
    assert "defines no acceptor 7" in done.stderr.decode()
    assert b"Traceback" not in done.stderr


def test_an_address_in_use_is_a_clear_error(tmp_path: Path) -> None:
    config = loopback_config(tmp_path / "paxos.conf")
    with cluster(tmp_path) as running:
        running.start("first", "-c", str(config), "--acceptor", "0")
        done = subprocess.run(
            [KPAXOSD, "-c", str(config), "--acceptor", "0"], capture_output=True, timeout=30
        )
    assert done.returncode == 1
    assert "cannot bind acceptor 0" in done.stderr.decode()
    assert "Address already in use" in done.stderr.decode()
    assert b"Traceback" not in done.stderr


def test_check_config_prints_the_cluster(tmp_path: Path) -> None:
    config = loopback_config(tmp_path / "paxos.conf")
    done = subprocess.run(
        [KPAXOSD, "--check-config", "-c", str(config)], capture_output=True, timeout=30, text=True
    )
    assert done.returncode == 0
    assert "acceptor 2 at 127.0.0.1:" in done.stdout
    assert "proposer 0 at 127.0.0.1:" in done.stdout


def test_help_explains_roles_and_devices() -> None:
    done = subprocess.run([KPAXOSD, "--help"], capture_output=True, timeout=30, text=True)
    assert done.returncode == 0
    for option in ("--config", "--acceptor", "--proposer", "--replica", "--learner",
                   "--no-devices", "--verbosity", "/dev/kpaxos-client"):
        assert option in done.stdout


def test_separate_processes_decide_a_thousand_values_in_one_order(tmp_path: Path) -> None:
    config = loopback_config(tmp_path / "paxos.conf")
    with cluster(tmp_path) as running:
        running.start_acceptors_and_proposer(config)
        _, link_dir, device_args = running.devices("learner")
        running.start("learner", "-c", str(config), "--learner", *device_args)
        learner, client = link_dir / "kpaxos-learner", link_dir / "kpaxos-client"

        first = running.spawn(["cat", str(learner)], stdout=subprocess.PIPE)
        loop = run_shell(
            f'i=0; while [ $i -lt 1000 ]; do echo "value-$i" > {client} || exit 1; '
            f"i=$((i+1)); done",
            timeout=600,
        )
        assert loop.returncode == 0, loop.stderr
        seen = read_lines(first.stdout, 1000, timeout=60)
        assert sorted(seen) == sorted(f"value-{i}".encode() for i in range(1000))

        second = running.spawn(["cat", str(learner)], stdout=subprocess.PIPE)
        assert read_lines(second.stdout, 1000, timeout=60) == seen
        assert first.poll() is None, "the first cat stopped following"


def test_the_kclient_role_keeps_values_in_flight_and_reports_each_second(tmp_path: Path) -> None:
    config = loopback_config(tmp_path / "paxos.conf")
    with cluster(tmp_path) as running:
        running.start("cluster", "-c", str(config), "--no-devices")
        kclient = running.start(
            "kclient", "-c", str(config), "--client", "--outstanding", "10",
            "--value-size", "16", "--no-devices",
        )
        pattern = re.compile(
            r"^(\d+) value/sec, [\d.]+ Mbps, latency min (\d+) us max (\d+) us avg (\d+) us "
            r"p50 (\d+) us p99 (\d+) us$",
            re.MULTILINE,
        )

        def busy_lines() -> list[tuple[int, ...]]:
            return [
                tuple(int(n) for n in match.groups())
                for match in pattern.finditer(kclient.log)
                if int(match.group(1)) > 0
            ]

        wait_until(lambda: len(busy_lines()) >= 2, 60, "two busy statistics lines")
        for _rate, low, high, avg, p50, p99 in busy_lines():
            assert 0 < low <= p50 <= p99 <= high
            assert low <= avg <= high
            assert high < 10_000_000  # a decision takes less than 10 s here
        assert kclient.stop(signal.SIGINT) == 0
        assert re.search(r"^total: \d+ values", kclient.log, re.MULTILINE)


def test_the_learner_keeps_only_the_last_retain_values_for_new_readers(tmp_path: Path) -> None:
    config = loopback_config(tmp_path / "paxos.conf")
    with cluster(tmp_path) as running:
        _, link_dir, device_args = running.devices("node")
        running.start("node", "-c", str(config), "--retain", "3", *device_args)
        for i in range(5):
            done = run_shell(f"echo kept-{i} > {link_dir / 'kpaxos-client'}")
            assert done.returncode == 0, done.stderr
        late = running.spawn(["cat", str(link_dir / "kpaxos-learner")], stdout=subprocess.PIPE)
        assert read_lines(late.stdout, 3, timeout=30) == [b"kept-2", b"kept-3", b"kept-4"]
