"""The 2017 programs' device protocols, played by stand-ins against a real daemon.

The stand-ins (tests/devices/programs_2017.py) write the bytes of the golden vectors
— checked here first — then propose and learn through a real kpaxosd's learner device,
through both doors (``cuse`` runs in the test VM): each commit's device client on its
own, then all three at once on one device, and a 3891411 program whose trim writes
have the daemon's learner trim the acceptors.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.devices.programs_2017 import (
    COMMITS,
    DeviceClient,
    client_value_datagram,
    open_write,
)
from tests.devices.test_daemon_devices import SLOW, device_args
from tests.integration.harness import (
    cluster,
    free_tcp_port,
    loopback_config,
    role_addresses,
    scrape,
)
from wire.original import pack_trim_command

pytestmark = pytest.mark.root

#: The canonical value of the vectors: client 0x12345678 at 1505772749.123456.
CANONICAL = (0x12345678, 1505772749, 123456, b"abcdefghijklmno\0")


@pytest.mark.parametrize("commit", COMMITS)
def test_the_stand_ins_write_the_bytes_of_the_originals(
    commit: str, programs_2017_vectors: dict[str, bytes],
) -> None:
    vectors = programs_2017_vectors
    assert open_write(commit, 16) == vectors[f"dev{commit}_open_write_v16"]
    assert open_write(commit, 64) == vectors[f"dev{commit}_open_write_v64"]
    assert client_value_datagram(*CANONICAL) == vectors[f"udp{commit}_client_value_v16"]
    if commit == "3891411":
        assert pack_trim_command(1) == vectors["dev3891411_trim_write_iid100000_t100000"]
        assert pack_trim_command(100001) == vectors["dev3891411_trim_write_iid200000_t100000"]
        assert pack_trim_command(2001) == vectors["dev3891411_trim_write_iid3000_t1000"]


def test_every_2017_device_client_proposes_and_learns_alone_and_all_at_once(
    door: str, tmp_path: Path,
) -> None:
    config = loopback_config(tmp_path / "paxos.conf")
    proposer = role_addresses(config)[("proposer", 0)]
    with cluster(tmp_path) as running:
        args, folder = device_args(door, tmp_path, running)
        running.start("kpaxosd", "-c", str(config), *args, ready=False).wait_ready(SLOW)
        device = str(folder / "kpaxos-learner")
        for seed, commit in enumerate(COMMITS):
            program = DeviceClient(commit, device, proposer, seed=seed, outstanding=3)
            try:
                program.run(20, timeout=SLOW)
            finally:
                program.close()
            # Every record its own iid, one more each (batching or not).
            assert program.iids == list(range(program.iids[0], program.iids[0] + len(
                program.iids))), (commit, program.iids)
        # Several programs on one device at once: each gets every record.
        programs = [DeviceClient(commit, device, proposer, seed=10 + k)
                    for k, commit in enumerate(COMMITS)]
        try:
            for _ in range(10):
                for program in programs:
                    program.run(program.own + 1, timeout=SLOW)
        finally:
            for program in programs:
                program.close()
        assert all(program.own >= 10 for program in programs)


def test_a_2017_09_18_program_trims_the_acceptors_through_the_device(
    door: str, tmp_path: Path,
) -> None:
    config = loopback_config(tmp_path / "paxos.conf")
    proposer = role_addresses(config)[("proposer", 0)]
    metrics = free_tcp_port()
    with cluster(tmp_path) as running:
        args, folder = device_args(door, tmp_path, running)
        # No --trim of its own: what the acceptors forget, the program asked for.
        daemon = running.start("kpaxosd", "-c", str(config), *args, "--trim", "0",
                               "--metrics", f"127.0.0.1:{metrics}",
                               ready=False).wait_ready(SLOW)
        program = DeviceClient("3891411", str(folder / "kpaxos-learner"), proposer,
                               trim_period=10)
        try:
            program.run(35, timeout=SLOW)
        finally:
            program.close()
        assert program.trims[:3] == [1, 11, 21]
        assert "in the 2017-09-18 protocol trims the acceptors" in daemon.log
        trimmed = scrape(metrics)['kpaxos_acceptor_trim_iid{role="acceptor 0"}']
        assert trimmed >= 1, trimmed
