"""The 2017 programs' TCP protocols: kpaxos-learner and kpaxos-client --protocol.

Stand-ins written from the vectors (tests/devices/programs_2017_tcp.py) play the 2017
client against a real kpaxos-learner, and the 2017 learner against a real
kpaxos-client, on a real daemon's learner device, through both doors (``cuse`` runs
in the test VM): several clients at once, and a 3891411 learner that trims.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.devices.programs_2017_tcp import TcpClient, TcpLearner
from tests.devices.test_daemon_devices import SLOW, device_args
from tests.integration.harness import (
    cluster,
    free_tcp_port,
    loopback_config,
    read_lines,
    role_addresses,
)
from tests.integration.test_clients import BIN
from wire.original import GREETING_ACK, ID_GREETING_CODEC

pytestmark = pytest.mark.root

PROTOCOLS_2017 = {"2017-09-10": "175aafb", "2017-09-18": "3891411"}


def test_the_greeting_and_its_acknowledgement_are_the_originals_bytes(
    programs_2017_vectors: dict[str, bytes],
) -> None:
    vectors = programs_2017_vectors
    assert ID_GREETING_CODEC.pack(0x12345678) == vectors[
        "tcp3891411_client_to_learner_hello_id305419896"]
    assert ID_GREETING_CODEC.pack(1540928341) == vectors["obs3891411_tcp_hello"]
    assert vectors["tcp3891411_learner_to_client_ack"] == GREETING_ACK


def test_the_2017_tcp_programs_through_the_door(door: str, tmp_path: Path) -> None:
    config = loopback_config(tmp_path / "paxos.conf")
    proposer = role_addresses(config)[("proposer", 0)]
    with cluster(tmp_path) as running:
        args, folder = device_args(door, tmp_path, running)
        # No trimming of its own: what the acceptors forget, a program asked for.
        daemon = running.start("kpaxosd", "-c", str(config), *args, "--trim", "0",
                               ready=False).wait_ready(SLOW)
        device = str(folder / "kpaxos-learner")
        for protocol, commit in PROTOCOLS_2017.items():
            # The 2017 clients, two at once with values in flight, through kpaxos-learner.
            port = free_tcp_port()
            learner = running.spawn(
                [BIN / "kpaxos-learner", "--config", str(config), "--protocol", protocol,
                 "--learner-device", device, "-v", "16", "-s", "127.0.0.1", str(port)],
                stdout=subprocess.PIPE)
            assert read_lines(learner.stdout, 1, timeout=SLOW) == [
                f"listening on 127.0.0.1:{port} ({protocol} protocol)".encode()]
            clients = [TcpClient(commit, ("127.0.0.1", port), proposer, outstanding=3,
                                 seed=seed) for seed in range(2)]
            try:
                for _ in range(10):
                    for client in clients:
                        client.run(client.own + 1, timeout=SLOW)
            finally:
                for client in clients:
                    client.close()
            if protocol == "2017-09-18":
                assert all(client.acks == 1 for client in clients)
            learner.send_signal(2)
            assert learner.wait(SLOW) == 0
            # kpaxos-client through the 2017 learner (3891411's trims every 50 records).
            stand_in = TcpLearner(commit, device, trim_period=50)
            try:
                done = subprocess.run(
                    [BIN / "kpaxos-client", "--config", str(config), "--protocol", protocol,
                     "-s", *map(str, stand_in.address), "-v", "16", "-o", "4",
                     "--duration", "4"], capture_output=True, text=True, timeout=SLOW,
                    check=False)
            finally:
                stand_in.close()
            assert done.returncode == 0, done.stderr
            assert f"({protocol} protocol)" in done.stdout
            total = re.search(r"^total: (\d+) values", done.stdout, re.MULTILINE)
            assert total is not None and int(total.group(1)) > 0, done.stdout
            assert stand_in.forwarded > 0
        assert "in the 2017-09-18 protocol trims the acceptors" in daemon.log


def test_a_2018_client_is_told_what_a_2017_learner_answered(tmp_path: Path) -> None:
    config = loopback_config(tmp_path / "paxos.conf")
    with cluster(tmp_path) as running:
        _, link_dir, device_args_ = running.devices("node")
        running.start("cluster", "-c", str(config), *device_args_)
        learner = TcpLearner("3891411", str(link_dir / "kpaxos-learner"))
        try:
            done = subprocess.run(
                [BIN / "kpaxos-client", "--config", str(config), "--protocol", "2018",
                 "-s", *map(str, learner.address), "-v", "16", "--duration", "2"],
                capture_output=True, text=True, timeout=60, check=False)
        finally:
            learner.close()
        assert done.returncode == 1
        assert "not our ids" in done.stderr and "Traceback" not in done.stderr
