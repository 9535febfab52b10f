"""The 2017 programs' TCP protocols: kpaxos-learner and kpaxos-client --protocol.

Stand-ins written from the vectors (tests/integration/programs_2017_tcp.py) play the
2017 client against a real kpaxos-learner, and the 2017 learner against a real
kpaxos-client, on a real daemon's learner device (FUSE).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.harness import (
    cluster,
    free_tcp_port,
    loopback_config,
    read_lines,
    role_addresses,
)
from tests.integration.programs_2017_tcp import TcpClient, TcpLearner
from tests.integration.test_clients import BIN, check_statistics
from wire.original import GREETING_ACK, ID_GREETING_CODEC

pytestmark = pytest.mark.root

COMMIT_OF = {"2017-09-10": "175aafb", "2017-09-18": "3891411"}


def test_the_greeting_and_its_acknowledgement_are_the_originals_bytes(
    programs_2017_vectors: dict[str, bytes],
) -> None:
    vectors = programs_2017_vectors
    assert ID_GREETING_CODEC.pack(0x12345678) == vectors[
        "tcp3891411_client_to_learner_hello_id305419896"]
    assert ID_GREETING_CODEC.pack(1540928341) == vectors["obs3891411_tcp_hello"]
    assert vectors["tcp3891411_learner_to_client_ack"] == GREETING_ACK


@pytest.mark.parametrize("protocol", ["2017-09-10", "2017-09-18"])
def test_2017_clients_learn_through_kpaxos_learner(protocol: str, tmp_path: Path) -> None:
    config = loopback_config(tmp_path / "paxos.conf")
    proposer = role_addresses(config)[("proposer", 0)]
    port = free_tcp_port()
    with cluster(tmp_path) as running:
        _, link_dir, device_args = running.devices("node")
        running.start("cluster", "-c", str(config), *device_args)
        learner = running.spawn(
            [BIN / "kpaxos-learner", "--config", str(config), "--protocol", protocol,
             "--learner-device", str(link_dir / "kpaxos-learner"), "-v", "16",
             "-s", "127.0.0.1", str(port)], stdout=subprocess.PIPE)
        assert read_lines(learner.stdout, 1, timeout=60) == [
            f"listening on 127.0.0.1:{port} ({protocol} protocol)".encode()]
        # Two programs at once, each with values in flight (3891411's -o 3).
        clients = [TcpClient(COMMIT_OF[protocol], ("127.0.0.1", port), proposer,
                             outstanding=3, seed=seed) for seed in range(2)]
        try:
            for _ in range(15):
                for client in clients:
                    client.run(client.own + 1, timeout=60)
        finally:
            for client in clients:
                client.close()
        if protocol == "2017-09-18":
            assert all(client.acks == 1 for client in clients)
        learner.send_signal(2)
        assert learner.wait(15) == 0


@pytest.mark.parametrize("protocol", ["2017-09-10", "2017-09-18"])
def test_kpaxos_client_learns_through_a_2017_learner(protocol: str, tmp_path: Path) -> None:
    config = loopback_config(tmp_path / "paxos.conf")
    with cluster(tmp_path) as running:
        _, link_dir, device_args = running.devices("node")
        daemon = running.start("cluster", "-c", str(config), *device_args, "--trim", "0")
        learner = TcpLearner(COMMIT_OF[protocol], str(link_dir / "kpaxos-learner"),
                             trim_period=50)
        try:
            done = subprocess.run(
                [BIN / "kpaxos-client", "--config", str(config), "--protocol", protocol,
                 "-s", *map(str, learner.address), "-v", "16", "-o", "4", "--duration", "4"],
                capture_output=True, text=True, timeout=60, check=False)
        finally:
            learner.close()
        assert done.returncode == 0, done.stderr
        assert f"({protocol} protocol)" in done.stdout
        check_statistics(done.stdout)
        assert learner.forwarded > 0
        if protocol == "2017-09-18":
            # The 3891411 learner's -l 50 trimmed the acceptors through the device.
            assert "in the 2017-09-18 protocol trims the acceptors" in daemon.log


def test_a_2018_client_is_told_what_a_2017_learner_answered(tmp_path: Path) -> None:
    config = loopback_config(tmp_path / "paxos.conf")
    with cluster(tmp_path) as running:
        _, link_dir, device_args = running.devices("node")
        running.start("cluster", "-c", str(config), *device_args)
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
