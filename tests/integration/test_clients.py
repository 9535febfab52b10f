"""The original user-space programs against a real cluster: kpaxos-client, kpaxos-learner."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import read_vectors
from tests.integration.harness import (
    cluster,
    free_tcp_port,
    loopback_config,
    read_lines,
    read_until,
    scrape,
)
from wire import ClientValue, encode, wrap
from wire.original import OriginalClientValue, pack_client_value

BIN = Path(sys.executable).parent
LINE = re.compile(
    r"^(\d+) value/sec, [\d.]+ Mbps, latency min (\d+) us max (\d+) us avg (\d+) us "
    r"p50 (\d+) us p99 (\d+) us$",
    re.MULTILINE,
)


def check_statistics(output: str) -> None:
    lines = [tuple(int(n) for n in m.groups()) for m in LINE.finditer(output)]
    busy = [line for line in lines if line[0] > 0]
    assert len(busy) >= 2, output
    for _rate, low, high, avg, p50, p99 in busy:
        assert 0 < low <= p50 <= p99 <= high, output
        assert low <= avg <= high
        assert high < 10_000_000
    total = re.search(r"^total: (\d+) values in [\d.]+ s, (\d+) resent", output, re.MULTILINE)
    assert total is not None and int(total.group(1)) > 0, output


def test_kpaxos_client_learns_from_the_device_in_record_mode(tmp_path: Path) -> None:
    config = loopback_config(tmp_path / "paxos.conf")
    with cluster(tmp_path) as running:
        _, link_dir, device_args = running.devices("node")
        running.start("cluster", "-c", str(config), *device_args)
        done = subprocess.run(
            [BIN / "kpaxos-client", "--config", str(config), "-d",
             "--learner-device", str(link_dir / "kpaxos-learner"),
             "-o", "10", "-v", "32", "--duration", "4"],
            capture_output=True, text=True, timeout=60,
        )
    assert done.returncode == 0, done.stderr
    check_statistics(done.stdout)


def test_kpaxos_client_learns_from_the_device_in_stream_mode(tmp_path: Path) -> None:
    config = loopback_config(tmp_path / "paxos.conf")
    with cluster(tmp_path) as running:
        _, link_dir, device_args = running.devices("node")
        running.start("cluster", "-c", str(config), *device_args)
        client: list[str | Path] = [BIN / "kpaxos-client", "--config", str(config), "--stream",
                  "--learner-device", str(link_dir / "kpaxos-learner"), "-v", "32"]
        done = subprocess.run([*client, "-o", "10", "--duration", "4"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        check_statistics(done.stdout)
        # A value that is not a client value ends a stream-mode reader, with the reason.
        (link_dir / "kpaxos-client").write_bytes(b"hello\n")
        done = subprocess.run([*client, "-o", "1", "--duration", "10"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 1
        assert "not a client value" in done.stderr


def test_values_sent_as_batches_are_read_one_by_one(tmp_path: Path) -> None:
    """kpaxos-client -b sends several values per datagram; the proposer takes them
    apart and packs what it holds into instances, and a stream-mode reader still
    reads each as a client value of its own (a batch delivered whole would end it)."""
    config = loopback_config(tmp_path / "paxos.conf")
    with cluster(tmp_path) as running:
        _, link_dir, device_args = running.devices("node")
        running.start("cluster", "-c", str(config), *device_args)
        done = subprocess.run(
            [BIN / "kpaxos-client", "--config", str(config), "--stream",
             "--learner-device", str(link_dir / "kpaxos-learner"), "-v", "32",
             "-o", "50", "-b", "8", "--duration", "4"],
            capture_output=True, text=True, timeout=60,
        )
    assert done.returncode == 0, done.stderr
    check_statistics(done.stdout)


def test_kpaxos_client_learns_through_kpaxos_learner_over_tcp(tmp_path: Path) -> None:
    config = loopback_config(tmp_path / "paxos.conf")
    port, metrics = str(free_tcp_port()), free_tcp_port()
    with cluster(tmp_path) as running:
        _, link_dir, device_args = running.devices("node")
        running.start("cluster", "-c", str(config), *device_args,
                      "--metrics", f"127.0.0.1:{metrics}")
        learner = running.spawn(
            [BIN / "kpaxos-learner", "--config", str(config),
             "--learner-device", str(link_dir / "kpaxos-learner"),
             "-s", "127.0.0.1", port, "-l", "100"],
            stdout=subprocess.PIPE,
        )
        listening = f"listening on 127.0.0.1:{port} (2018 protocol)".encode()
        assert read_lines(learner.stdout, 1, timeout=30) == [listening]
        done = subprocess.run(
            [BIN / "kpaxos-client", "--config", str(config), "-s", "127.0.0.1", port,
             "-o", "10", "--duration", "4"],
            capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 0, done.stderr
        check_statistics(done.stdout)
        # Its -l 100 made the acceptors forget, through the device (its trim writes;
        # the daemon's learner sent the TRIM, up to an instance it delivered).
        assert "in the 2017-09-18 protocol trims the acceptors" in running.daemons[0].log
        assert scrape(metrics)['kpaxos_acceptor_trim_iid{role="acceptor 0"}'] >= 1
        learner.send_signal(2)
        assert learner.wait(15) == 0


def test_the_original_client_value_datagram_is_decided(tmp_path: Path) -> None:
    hello = read_vectors("kernel_paxos_wire.txt")["client_value_hello"]
    with cluster(tmp_path) as running:
        _, link_dir, device_args = running.devices("node")
        running.start("built-in", *device_args)
        cat = running.spawn(["cat", str(link_dir / "kpaxos-learner")], stdout=subprocess.PIPE)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(hello, ("127.0.0.2", 3002))
        assert read_until(cat.stdout, b"hello", timeout=30) == b"hello"


def test_help_lists_the_original_flags() -> None:
    for program, flags in (
        ("kpaxos-client", ["-h", "-o", "-v", "-p", "-c", "-d", "-s", "--config", "--duration"]),
        ("kpaxos-learner", ["-h", "-v", "-c", "-l", "-d", "-s", "--config"]),
    ):
        done = subprocess.run([BIN / program, "--help"], capture_output=True, text=True,
                              timeout=30)
        assert done.returncode == 0
        for flag in flags:
            assert re.search(rf"(^|\s|,){re.escape(flag)}[\s,]", done.stdout), (program, flag)


ORIGINAL_STRUCT = pack_client_value(
    OriginalClientValue(4242, 1_700_000_000, 123_456, b"once-original"))


@pytest.mark.parametrize(
    ("value", "read_back"),
    # Readers get an original struct whole, an envelope's payload only.
    [(ORIGINAL_STRUCT, ORIGINAL_STRUCT), (wrap(4243, 1, b"once-envelope"), b"once-envelope")],
    ids=["original-struct", "envelope"],
)
def test_a_client_value_resent_after_its_decision_is_decided_once(
    tmp_path: Path, value: bytes, read_back: bytes,
) -> None:
    # A client whose delivery was lost resends the very same datagram: the original
    # decided it again, kpaxos knows it by its origin (README, "Exactly once").
    datagram = encode(ClientValue(value))
    with cluster(tmp_path) as running:
        _, link_dir, device_args = running.devices("node")
        running.start("built-in", *device_args)
        cat = running.spawn(["cat", str(link_dir / "kpaxos-learner")], stdout=subprocess.PIPE)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(datagram, ("127.0.0.2", 3002))
            seen = read_until(cat.stdout, read_back, timeout=30)
            for _ in range(3):
                sock.sendto(datagram, ("127.0.0.2", 3002))
                time.sleep(0.2)
            # A raw value has no origin: it marks the end of what the resends could add.
            sock.sendto(encode(ClientValue(b"marker")), ("127.0.0.2", 3002))
            seen += read_until(cat.stdout, b"marker", timeout=30)
        assert seen.count(read_back) == 1, seen
