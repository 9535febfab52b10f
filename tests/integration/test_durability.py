"""Durable acceptors: kill -9 and a restart on the same storage lose nothing."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from pathlib import Path

from kpaxosd.paxos.ballots import ballot_of
from tests.integration.harness import (
    cluster,
    loopback_config,
    read_lines,
    role_addresses,
    wait_until,
)
from wire import (
    Accepted,
    Preempted,
    Prepare,
    Repeat,
    WireError,
    decode_untrusted,
    encode,
    unwrap_untrusted,
)


def ask(acceptor: tuple[str, int], request: bytes, want: int, timeout: float = 10,
        source: tuple[str, int] = ("127.0.0.1", 0)) -> list[object]:
    """Send ``request`` to an acceptor (again each second) from ``source`` and collect
    ``want`` answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(source)
        sock.settimeout(0.2)
        answers: dict[tuple[object, ...], object] = {}
        deadline = time.monotonic() + timeout
        next_send = 0.0
        while len(answers) < want and time.monotonic() < deadline:
            if time.monotonic() >= next_send:
                sock.sendto(request, acceptor)
                next_send = time.monotonic() + 1
            try:
                data, _ = sock.recvfrom(65535)
                msg = decode_untrusted(data)
            except (TimeoutError, WireError):
                continue
            key = (type(msg).__name__, getattr(msg, "iid", None))
            answers[key] = msg
        return list(answers.values())


def test_an_acceptor_killed_and_restarted_on_its_storage_keeps_everything(tmp_path: Path) -> None:
    config = loopback_config(tmp_path / "paxos.conf")
    addresses = {aid: role_addresses(config)[("acceptor", aid)] for aid in range(3)}
    storage = tmp_path / "storage"
    with cluster(tmp_path) as running:
        acceptors = {
            aid: running.start(f"acceptor{aid}", "-c", str(config), "--acceptor", str(aid),
                               "--storage", str(storage))
            for aid in range(3)
        }
        proposer = running.start("proposer", "-c", str(config), "--proposer", "0")
        _, link_dir, device_args = running.devices("learner")
        running.start("learner", "-c", str(config), "--learner", *device_args)
        client = link_dir / "kpaxos-client"
        cat = running.spawn(["cat", str(link_dir / "kpaxos-learner")], stdout=subprocess.PIPE)
        values = [f"durable-{i}".encode() for i in range(20)]
        for value in values:
            done = subprocess.run(["bash", "-c", f"echo {value.decode()} > {client}"],
                                  capture_output=True, timeout=60, check=False)
            assert done.returncode == 0, done.stderr
        assert read_lines(cat.stdout, 20, timeout=30) == values

        acceptors[0].proc.send_signal(signal.SIGKILL)
        acceptors[0].proc.wait(10)
        restarted = running.start("acceptor0-again", "-c", str(config), "--acceptor", "0",
                                  "--storage", str(storage))
        restored = re.search(r"\((\d+) instances restored", restarted.log)
        assert restored is not None and int(restored.group(1)) >= 20, restarted.log

        accepted = ask(addresses[0], encode(Repeat(1, 100)), want=20)
        by_iid = {msg.iid: msg for msg in accepted if isinstance(msg, Accepted)}
        assert sorted(by_iid) == list(range(1, 21))
        payloads = []
        for iid in range(1, 21):
            envelope = unwrap_untrusted(by_iid[iid].value)
            assert envelope is not None
            payloads.append(envelope.payload.rstrip(b"\n"))
        assert payloads == values

        # The promises survived too: a low ballot is refused with the one promised. A
        # PREPARE is taken only from the proposer its ballot names: ask from its address.
        assert proposer.stop(signal.SIGTERM) == 0
        low = ballot_of(1, 0)
        answer = ask(addresses[0], encode(Prepare(5, low)), want=1,
                     source=role_addresses(config)[("proposer", 0)])
        assert len(answer) == 1 and isinstance(answer[0], Preempted)
        assert answer[0].ballot >= by_iid[5].ballot > low


def test_without_storage_a_restarted_acceptor_remembers_nothing(tmp_path: Path) -> None:
    # The contrast that shows the test above measures the storage, not luck.
    config = loopback_config(tmp_path / "paxos.conf")
    address = role_addresses(config)[("acceptor", 0)]
    with cluster(tmp_path) as running:
        running.start("cluster", "-c", str(config), "--no-devices")
        kclient = running.start("kclient", "-c", str(config), "--no-devices", "--client",
                                "--outstanding", "4")
        wait_until(lambda: re.search(r"^[1-9]\d* value/sec", kclient.log, re.MULTILINE),
                   60, "values to be decided")
    # Leaving the block kill -9's every process.
    with cluster(tmp_path) as running:
        running.start("acceptor0", "-c", str(config), "--acceptor", "0")
        assert ask(address, encode(Repeat(1, 100)), want=1, timeout=2) == []
