"""A position names the same value at every learner of a cluster, and across restarts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.integration.harness import (
    Cluster,
    Kpaxosd,
    cluster,
    loopback_config,
    read_lines,
    wait_until,
)
from wire.device import PLACES_PER_INSTANCE
from wire.original import CLIENT_VALUE_HEADER_SIZE

BIN = Path(sys.executable).parent
#: The payload size of kpaxos-client's values.
VALUE_SIZE = 64


def positions_and_values(running: Cluster, daemon: Kpaxosd, link_dir: Path,
                         size: int = 0) -> bytes:
    """What ``kpaxos-cat --positions`` reads from ``daemon``'s learner until it stops
    (stopped once the reader has at least ``size`` bytes: a learner catching up)."""
    out = running.workdir / f"{daemon.name}.cat"
    with open(out, "wb") as sink:
        reader = running.spawn([BIN / "kpaxos-cat", "--positions", "--device",
                                link_dir / "kpaxos-learner"], stdout=sink)
    wait_until(lambda: out.stat().st_size >= size, 120, f"{daemon.name} to catch up")
    # Stopping the daemon gives every reader the whole retained log, then EOF.
    assert daemon.stop() == 0
    assert reader.wait(60) == 0
    return out.read_bytes()


def positions_of(output: bytes) -> list[int]:
    """The positions in ``kpaxos-cat --positions`` output of original client values:
    each value is a struct client_value of VALUE_SIZE payload bytes (no newline)."""
    positions, at = [], 0
    while at < len(output):
        tab = output.index(b"\t", at)
        positions.append(int(output[at:tab]))
        at = tab + 1 + CLIENT_VALUE_HEADER_SIZE + VALUE_SIZE
    assert at == len(output)
    return positions


def test_every_learner_and_every_restart_names_each_value_by_the_same_position(
    tmp_path: Path,
) -> None:
    config = loopback_config(tmp_path / "paxos.conf", catch_up=True)
    with cluster(tmp_path) as running:
        running.start_acceptors_and_proposer(config)
        # No trimming (however fast the machine): the restarted learner must find the
        # whole history at the acceptors.
        learners = {}
        for name in ("a", "b"):
            _, link_dir, device_args = running.devices(name)
            learners[name] = (running.start(name, "-c", str(config), "--learner", "--trim",
                                            "0", *device_args), link_dir)
        # Original client values, ten to a datagram: instances holding batches.
        load = subprocess.run(
            [BIN / "kpaxos-client", "--config", config, "-o", "40", "-b", "10", "--stream",
             "-v", str(VALUE_SIZE),
             "--learner-device", learners["a"][1] / "kpaxos-learner", "--duration", "2"],
            capture_output=True, timeout=120)
        assert load.returncode == 0, load.stderr

        a = positions_and_values(running, *learners["a"])
        b_before = positions_and_values(running, *learners["b"], len(a))
        # Restarted, b learns it all again from the acceptors (learner-catch-up).
        again = running.start("b-again", "-c", str(config), "--learner", "--trim", "0",
                              *running.devices("b")[2])
        b_after = positions_and_values(running, again, learners["b"][1], len(a))

    positions = positions_of(a)
    assert len(positions) >= 100, a[:200]
    assert positions == sorted(set(positions))
    assert any(p % PLACES_PER_INSTANCE for p in positions), "no batch: the test tested little"
    assert a == b_before == b_after


def test_a_writer_learns_where_its_value_was_decided_and_a_reader_finds_it_there(
    tmp_path: Path,
) -> None:
    with cluster(tmp_path) as running:
        _, link_dir, device_args = running.devices("node")
        running.start("node", *device_args)
        client, learner = link_dir / "kpaxos-client", link_dir / "kpaxos-learner"
        # The README's idiom, twice on one open file, then a reader at each position.
        told = subprocess.run(
            ["bash", "-c", f'exec 3<>"{client}"; for v in first second; do echo $v >&3; '
                           f'read pos <&3; echo $pos; done'],
            capture_output=True, timeout=60, check=True).stdout.split()
        assert len(told) == 2 and int(told[0]) < int(told[1])
        for position, value in zip(told, [b"first", b"second"], strict=True):
            reader = running.spawn([BIN / "kpaxos-cat", "--device", learner, "--from",
                                    position.decode()], stdout=subprocess.PIPE)
            assert read_lines(reader.stdout, 1, timeout=30) == [value]
            reader.kill()
            reader.wait()
