"""Authenticated clusters: strangers' and replayed datagrams are never decided."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from kpaxosd.auth import Authenticator
from tests.integration.harness import (
    KPAXOSD,
    cluster,
    loopback_config,
    read_until,
    role_addresses,
)
from wire import MAX_VALUE_SIZE, ClientValue, encode
from wire.batch import BATCH_OVERHEAD, ITEM_OVERHEAD

KEY = b"0123456789abcdef0123456789abcdef"


def test_only_authenticated_datagrams_are_decided_and_only_once(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_bytes(KEY)
    key_file.chmod(0o600)
    config = loopback_config(tmp_path / "paxos.conf")
    proposer = role_addresses(config)[("proposer", 0)]
    with cluster(tmp_path) as running:
        _, link_dir, device_args = running.devices("node")
        node = running.start("node", "-c", str(config), "--auth-key-file", str(key_file),
                             *device_args)
        cat = running.spawn(["cat", str(link_dir / "kpaxos-learner")], stdout=subprocess.PIPE)
        client = link_dir / "kpaxos-client"

        def echo(text: str) -> None:
            subprocess.run(["bash", "-c", f"echo {text} > {client}"], check=True, timeout=60)

        echo("first")
        assert read_until(cat.stdout, b"first\n", timeout=30) == b"first\n"

        sealed = Authenticator(KEY).seal(encode(ClientValue(b"signed\n")), time.time())
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.sendto(encode(ClientValue(b"stranger\n")), proposer)
            sock.sendto(sealed, proposer)
            sock.sendto(sealed, proposer)  # an attacker's replay
            stranger_host, stranger_port = sock.getsockname()
        time.sleep(0.5)
        echo("last")
        seen = read_until(cat.stdout, b"last\n", timeout=30)
        assert seen.count(b"signed\n") == 1, seen
        assert b"stranger" not in seen
        assert "dropped a datagram" in node.log
        # The operator learns which address sends without the key (a keyless node).
        assert (f"dropping datagrams from {stranger_host}:{stranger_port} without this "
                "cluster's authentication") in node.log


def test_a_key_file_others_may_read_stops_the_daemon(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_bytes(KEY)
    os.chmod(key_file, 0o644)
    config = loopback_config(tmp_path / "paxos.conf")
    done = subprocess.run([KPAXOSD, "-c", str(config), "--acceptor", "0", "--auth-key-file",
                           str(key_file)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert f"the key file {key_file} has mode 0644: others may read it" in done.stderr
    assert "Traceback" not in done.stderr


def test_full_batches_of_an_authenticated_cluster_fit_their_datagrams(tmp_path: Path) -> None:
    # Values queued together share an instance, up to a datagram's room; with a key the
    # trailer must fit too, or an ACCEPT of a full batch could never be sent.
    key_file = tmp_path / "key"
    key_file.write_bytes(KEY)
    key_file.chmod(0o600)
    config = loopback_config(tmp_path / "paxos.conf")
    proposer = role_addresses(config)[("proposer", 0)]
    authenticator = Authenticator(KEY)
    # Five of these fill a batch to exactly MAX_VALUE_SIZE, leaving no room for a trailer.
    size = (MAX_VALUE_SIZE - BATCH_OVERHEAD) // 5 - ITEM_OVERHEAD
    values = [f"big{i:02d}:".encode().ljust(size - 1, b"x") + b"\n" for i in range(40)]
    with cluster(tmp_path) as running:
        _, link_dir, device_args = running.devices("node")
        running.start("node", "-c", str(config), "--auth-key-file", str(key_file),
                      "--no-local-delivery", *device_args)
        cat = running.spawn(["cat", str(link_dir / "kpaxos-learner")], stdout=subprocess.PIPE)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for value in values:  # in one burst, so that they are queued together
                sock.sendto(authenticator.seal(encode(ClientValue(value)), time.time()),
                            proposer)
        seen = read_until(cat.stdout, values[-1], timeout=60)
        for value in values:
            assert seen.count(value) == 1, value[:6]
