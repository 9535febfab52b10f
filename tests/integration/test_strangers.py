"""An open cluster (no key) that a stranger's well-formed datagrams cannot break.

The stranger is a socket on this host at an address that is no node of the
configuration; it sends only well-formed datagrams of the original wire format.
"""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kpaxosd.paxos.ballots import MAX_PROPOSERS, MAX_U32
from kpaxosd.paxos.effects import Persist
from kpaxosd.storage import AcceptorStore
from tests.integration.harness import (
    Cluster,
    Kpaxosd,
    cluster,
    echo,
    free_udp_port,
    loopback_config,
    read_lines,
)
from tests.integration.harness import role_addresses as roles_of
from wire import (
    Accept,
    Accepted,
    AcceptorOk,
    AcceptorState,
    LearnerHi,
    LearnerStuck,
    Message,
    Preempted,
    Prepare,
    Promise,
    ProposerHi,
    Repeat,
    Trim,
    encode,
)

pytestmark = pytest.mark.root

#: The top ballot of each proposer id: what wedged an open cluster for good.
TOP_BALLOTS = [MAX_U32 - MAX_U32 % MAX_PROPOSERS - MAX_PROPOSERS + pid
               for pid in range(MAX_PROPOSERS)]


@pytest.fixture
def stranger() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock


def learner_address(daemon: Kpaxosd) -> tuple[str, int]:
    found = re.search(r"learner\S* listening on ([\d.]+):(\d+)", daemon.log)
    assert found, daemon.log
    return found.group(1), int(found.group(2))


def forgeries(config: Path, learner: tuple[str, int]) -> Iterator[tuple[Message, tuple[str, int]]]:
    """Every message a stranger could send to wedge, empty or fool the cluster."""
    roles = roles_of(config)
    acceptors = {rid: address for (role, rid), address in roles.items() if role == "acceptor"}
    proposer = roles[("proposer", 0)]
    for address in acceptors.values():
        for iid in range(1, 40):
            for ballot in TOP_BALLOTS:
                yield Prepare(iid, ballot), address
            yield Accept(iid, TOP_BALLOTS[0], b"stranger's value"), address
        yield Trim(MAX_U32), address
    for aid in acceptors:
        for iid in range(1, 40):
            accepted = Accepted(aid, iid, TOP_BALLOTS[0], TOP_BALLOTS[0], b"stranger's value")
            yield accepted, learner
            yield accepted, proposer
            yield Preempted(aid, iid, MAX_U32), proposer
            yield Promise(aid, iid, TOP_BALLOTS[0], 0, b""), proposer
        yield AcceptorState(aid, MAX_U32), learner
        yield AcceptorState(aid, MAX_U32), proposer
    yield AcceptorOk(), learner
    yield ProposerHi(0, MAX_U32), proposer


def start(running: Cluster, name: str, config: Path, storage: Path,
          devices: list[str]) -> Kpaxosd:
    return running.start(name, "-c", str(config), "--device-backend", "fuse",
                         "--storage", str(storage), *devices)


def test_a_strangers_forgeries_neither_wedge_nor_fool_the_cluster_across_a_restart(
    tmp_path: Path, stranger: socket.socket,
) -> None:
    config = loopback_config(tmp_path / "paxos.conf")
    storage = tmp_path / "storage"
    with cluster(tmp_path) as running:
        _, link_dir, devices = running.devices("node")
        learner_dev, client = link_dir / "kpaxos-learner", link_dir / "kpaxos-client"
        first = start(running, "first", config, storage, devices)
        reader = running.spawn(["cat", str(learner_dev)], stdout=subprocess.PIPE)
        echo("before", client, timeout=60)
        for msg, address in forgeries(config, learner_address(first)):
            stranger.sendto(encode(msg), address)
        for word in ("after1", "after2"):
            echo(word, client, timeout=60)
        assert read_lines(reader.stdout, 3, timeout=60) == [b"before", b"after1", b"after2"]
        assert first.stop(signal.SIGTERM) == 0
        host, port = stranger.getsockname()
        log = first.log
        assert f"dropping PREPARE (and the like) from {host}:{port}" in log
        assert "is not the configured address of the proposer" in log
        assert "lost to this learner" not in log
        # Logged once a minute per source and receiving socket, not once per datagram.
        assert log.count(f"from {host}:{port}: that address") <= 6

        # What an acceptor persisted survives; the stranger's promises were never made.
        second = start(running, "second", config, storage, devices)
        again = running.spawn(["cat", str(learner_dev)], stdout=subprocess.PIPE)
        echo("restarted", client, timeout=60)
        assert read_lines(again.stdout, 4, timeout=60) == [
            b"before", b"after1", b"after2", b"restarted"]
        assert second.stop(signal.SIGTERM) == 0


def test_a_flood_of_learner_hellos_and_repeats_from_strangers_stops_nothing(
    tmp_path: Path, stranger: socket.socket,
) -> None:
    # More strangers than an acceptor keeps learners (max_learners, 256): the daemon's
    # own learner is pushed out of the acceptors' tables, and must get back in.
    config = loopback_config(tmp_path / "paxos.conf")
    acceptors = [address for (role, _), address in roles_of(config).items()
                 if role == "acceptor"]
    with cluster(tmp_path) as running, contextlib.ExitStack() as stack:
        _, link_dir, devices = running.devices("node")
        learner_dev, client = link_dir / "kpaxos-learner", link_dir / "kpaxos-client"
        start(running, "node", config, tmp_path / "storage", devices)
        reader = running.spawn(["cat", str(learner_dev)], stdout=subprocess.PIPE)
        echo("before", client, timeout=60)
        strangers = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
                     for _ in range(300)]
        for sock in strangers:
            sock.bind(("127.0.0.1", 0))
            for address in acceptors:
                sock.sendto(encode(LearnerHi()), address)
        for _ in range(50):
            for address in acceptors:
                stranger.sendto(encode(Repeat(1, MAX_U32)), address)
        words = [f"after{n}" for n in range(5)]
        for word in words:
            echo(word, client, timeout=60)
        assert read_lines(reader.stdout, 6, timeout=60) == [
            b"before", *(word.encode() for word in words)]


def test_a_cluster_wedged_by_an_older_version_decides_again(tmp_path: Path) -> None:
    # What an older kpaxos persisted after a stranger's top-ballot PREPAREs, and one
    # acceptance at a forged ballot on one acceptor only (not decided).
    config = loopback_config(tmp_path / "paxos.conf")
    storage = tmp_path / "storage"
    acceptors = sorted(rid for role, rid in roles_of(config) if role == "acceptor")
    for aid in acceptors:
        store = AcceptorStore(storage / f"acceptor-{aid}")
        wedged = [Persist(iid, MAX_U32, 0, b"") for iid in range(1, 50)]
        if aid == 0:
            wedged[0] = Persist(1, MAX_U32, MAX_U32, b"forged")
        store.commit(wedged)
        store.close()
    with cluster(tmp_path) as running:
        _, link_dir, devices = running.devices("node")
        daemon = start(running, "node", config, storage, devices)
        reader = running.spawn(["cat", str(link_dir / "kpaxos-learner")],
                               stdout=subprocess.PIPE)
        for word in ("decided", "again"):
            echo(word, link_dir / "kpaxos-client", timeout=60)
        assert read_lines(reader.stdout, 2, timeout=60) == [b"decided", b"again"]
        assert "49 promises" in daemon.log and "are lowered" in daemon.log
        assert "hold a value accepted at a forged ballot" in daemon.log


def test_where_learners_are_listed_a_stranger_gets_nothing_and_trims_nothing(
    tmp_path: Path, stranger: socket.socket,
) -> None:
    config = loopback_config(tmp_path / "paxos.conf")
    learner = ("127.0.0.1", free_udp_port("127.0.0.1"))
    with config.open("a") as file:
        file.write(f"learner 0 {learner[0]} {learner[1]}\n")
    roles = roles_of(config)
    acceptors = [address for (role, _), address in roles.items() if role == "acceptor"]
    storage = tmp_path / "storage"
    with cluster(tmp_path) as running:
        _, link_dir, devices = running.devices("node")
        learner_dev, client = link_dir / "kpaxos-learner", link_dir / "kpaxos-client"
        # The daemon's learner trims after every instance, from its listed address.
        first = start(running, "first", config, storage, [*devices, "--trim", "1"])
        assert learner_address(first) == learner
        reader = running.spawn(["cat", str(learner_dev)], stdout=subprocess.PIPE)
        for word in ("one", "two", "three"):
            echo(word, client, timeout=60)
        for _ in range(20):
            for address in acceptors:
                for msg in (LearnerHi(), Repeat(1, MAX_U32), Trim(MAX_U32), LearnerStuck(1)):
                    stranger.sendto(encode(msg), address)
            stranger.sendto(encode(LearnerStuck(1)), roles[("proposer", 0)])
        echo("after", client, timeout=60)
        assert read_lines(reader.stdout, 4, timeout=60) == [b"one", b"two", b"three", b"after"]
        # Not one answer, nor a copy of a decided value, came back to the stranger.
        stranger.settimeout(1.0)
        with pytest.raises(TimeoutError):
            stranger.recvfrom(65536)
        assert first.stop(signal.SIGTERM) == 0
        host, port = stranger.getsockname()
        assert f"from {host}:{port}: that address is no learner (nor replica)" in first.log

        # Across a restart on the same storage the cluster decides on.
        second = start(running, "second", config, storage, devices)
        echo("restarted", client, timeout=60)
        assert second.stop(signal.SIGTERM) == 0
