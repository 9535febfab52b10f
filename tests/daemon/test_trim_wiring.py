"""Trimming in the daemon, part by part: the store keeps the trim point the acceptor
asks for, the value log and the learner device turn a Trimmed into an error at its
place, and --trim / ``trim N`` reach the learner's options."""

from __future__ import annotations

import errno
import logging
import random
import select
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from devices.semantics import LearnerDevice, LearnerHandle
from devices.valuelog import ReaderTooFarBehind, ValueLog, ValuesLost
from kpaxosd.cli import _with_flags, build_parser, main, spec_from_args
from kpaxosd.config import Config, ConfigError, load_config, parse_config
from kpaxosd.daemon import Daemon, DaemonSpec
from kpaxosd.endpoint import UdpEndpoint, open_udp_socket
from kpaxosd.metrics import DaemonCollector
from kpaxosd.paxos.cluster import Cluster
from kpaxosd.paxos.effects import Deliver, Trimmed
from kpaxosd.paxos.node import Node
from kpaxosd.storage import AcceptorStore
from tests.devices.test_device_semantics import FakeServices, read
from tests.paxos.lockstep import acceptor_stats
from wire import Accept, LearnerHi, Trim

LEARNER = ("127.0.0.1", 9)


# -- the acceptor's store ------------------------------------------------------------


@pytest.fixture
def sock() -> Iterator[socket.socket]:
    with open_udp_socket(("127.0.0.1", 0)) as bound:
        yield bound


def acceptor_endpoint(sock: socket.socket, store: AcceptorStore) -> UdpEndpoint:
    # LEARNER is also proposer 1: its ballots (11) are taken only from its address.
    cluster = Cluster(acceptors={0: sock.getsockname()[:2]}, proposers={1: LEARNER})
    node = Node(sock.getsockname()[:2], cluster, acceptor_id=0, rng=random.Random(0), now=0.0)
    records, trim_iid = store.load()
    node.restore_acceptor(records, trim_iid)
    return UdpEndpoint(node, sock, store=store, name="acceptor 0")


def test_a_trim_is_committed_with_the_records_and_survives_a_reopen(
    tmp_path: Path, sock: socket.socket
) -> None:
    store = AcceptorStore(tmp_path / "acceptor-0")
    endpoint = acceptor_endpoint(sock, store)
    endpoint.node.receive(LearnerHi(), LEARNER, 0.0)  # only a learner may trim
    for iid in range(1, 11):
        endpoint.node.receive(Accept(iid, 11, b"v%d" % iid), LEARNER, 0.0)
    endpoint.flush()
    # The TRIM and two more acceptances in one batch: one transaction.
    endpoint.node.receive(Accept(11, 11, b"v11"), LEARNER, 0.0)
    endpoint.node.receive(Trim(6), LEARNER, 0.0)
    endpoint.node.receive(Accept(12, 11, b"v12"), LEARNER, 0.0)
    endpoint.flush()
    records, trim_iid = store.load()
    assert trim_iid == 6
    assert [r.iid for r in records] == list(range(7, 13))
    store.close()

    reopened = AcceptorStore(tmp_path / "acceptor-0")
    try:
        restarted = acceptor_endpoint(sock, reopened)
        stats = acceptor_stats(restarted.node)
        assert (stats.trim_iid, stats.instances) == (6, 6)
    finally:
        reopened.close()


def test_a_trim_is_not_handed_to_the_learner_side(tmp_path: Path, sock: socket.socket) -> None:
    store = AcceptorStore(tmp_path / "acceptor-0")
    try:
        endpoint = acceptor_endpoint(sock, store)
        learned: list[object] = []
        endpoint._on_deliver = learned.extend
        endpoint.node.receive(LearnerHi(), LEARNER, 0.0)
        endpoint.node.receive(Accept(1, 11, b"v"), LEARNER, 0.0)
        endpoint.node.receive(Trim(1), LEARNER, 0.0)
        endpoint.flush()
        assert learned == []
        assert store.load() == ([], 1)
    finally:
        store.close()


# -- the value log ----------------------------------------------------------------------


def test_a_gap_takes_a_position_and_reading_it_is_an_error() -> None:
    log = ValueLog()
    log.append(1, b"a")
    log.add_gap(2, 50)
    log.append(50, b"b")
    assert (log.first_index, log.next_index) == (0, 3)
    assert log.values_from(0, 10) == [b"a"]  # stops before the gap
    assert log.is_gap(1) and not log.is_gap(0) and not log.is_gap(2)
    for at in (log.get, log.value_at, lambda index: log.values_from(index, 10)):
        with pytest.raises(ValuesLost) as caught:
            at(1)
        lost = caught.value
        assert isinstance(lost, ReaderTooFarBehind)
        assert (lost.first_iid, lost.next_iid, lost.first_index) == (2, 50, 2)
        assert "instances 2 to 49 were trimmed" in str(lost)
    assert log.values_from(2, 10) == [b"b"]


def test_forgetting_the_front_of_the_log_forgets_its_gaps() -> None:
    log = ValueLog()
    log.add_gap(1, 10)
    for iid in range(10, 20):
        log.append(iid, b"v")
    log.add_gap(20, 30)
    log.trim_before(3)
    assert not log.is_gap(0)
    with pytest.raises(ReaderTooFarBehind) as caught:
        log.get(0)
    assert not isinstance(caught.value, ValuesLost)
    assert log.is_gap(11)


# -- the learner device -----------------------------------------------------------------


def gapped() -> ValueLog:
    log = ValueLog()
    log.append(1, b"aa")
    log.append(2, b"")
    log.add_gap(3, 9)
    log.append(9, b"bb")
    return log


def open_reader(log: ValueLog) -> LearnerHandle:
    return LearnerDevice(log).open(0, FakeServices())


def test_a_reader_reads_up_to_the_gap_then_gets_epipe_once_then_goes_on() -> None:
    handle = open_reader(gapped())
    assert read(handle, 100).answer == ("data", b"aa")
    assert handle.poll(None) & (select.POLLIN | select.POLLERR) == select.POLLIN | select.POLLERR
    assert read(handle, 100).answer == ("error", errno.EPIPE)
    assert read(handle, 100).answer == ("data", b"bb")
    assert read(handle, 100, nonblocking=True).answer == ("error", errno.EAGAIN)


@pytest.mark.parametrize("size", [1, 2, 3])
def test_any_read_size_meets_the_gap_at_the_same_place(size: int) -> None:
    handle = open_reader(gapped())
    answers: list[tuple[str, Any]] = []
    while (answer := read(handle, size, nonblocking=True).answer) != ("error", errno.EAGAIN):
        assert answer is not None  # answered at once
        answers.append(answer)
    data = [body for kind, body in answers]
    epipe = answers.index(("error", errno.EPIPE))
    assert b"".join(data[:epipe]) == b"aa"
    assert b"".join(data[epipe + 1 :]) == b"bb"


def test_a_waiting_reader_is_told_of_a_gap_as_it_happens() -> None:
    log = ValueLog()
    handle = open_reader(log)
    waiting = read(handle, 100)
    assert not waiting.answered
    log.add_gap(1, 5)
    assert waiting.answer == ("error", errno.EPIPE)
    log.append(5, b"live")
    assert read(handle, 100).answer == ("data", b"live")


def test_a_record_reader_gets_epipe_at_the_gap() -> None:
    log = ValueLog()
    handle = open_reader(log)
    assert read_write_value_size(handle, 4)
    log.append(1, b"aaaa")
    log.add_gap(2, 7)
    log.append(7, b"bbbb")
    assert read(handle, 8).answer == ("data", (1).to_bytes(4, "little") + b"aaaa")
    assert read(handle, 8).answer == ("error", errno.EPIPE)
    # The gap takes a number too: the record iids say something is missing there.
    assert read(handle, 8).answer == ("data", (3).to_bytes(4, "little") + b"bbbb")


def read_write_value_size(handle: LearnerHandle, size: int) -> bool:
    from tests.devices.test_device_semantics import FakeRequest

    request = FakeRequest()
    handle.write(request, size.to_bytes(8, "little"), False)  # type: ignore[arg-type]
    return request.answer == ("written", 8)


# -- the daemon's learner ---------------------------------------------------------------


def test_the_daemon_logs_counts_and_marks_what_its_learner_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    daemon = Daemon(DaemonSpec(config=load_config_text("")))
    with caplog.at_level(logging.ERROR, logger="kpaxos"):
        daemon.decisions.publish([Deliver(1, [b"a"], [None]), Trimmed(2, 40),
                                  Deliver(40, [b"b"], [None])])
    assert [r.getMessage() for r in caplog.records] == [
        "instances 2 to 39 are lost to this learner: the acceptors trimmed them before it "
        "learned them (TRIM from a learner further ahead); readers of the learner device "
        "get EPIPE there; delivery goes on at instance 40"
    ]
    values = daemon.values
    assert values.next_index == 3 and values.is_gap(1)
    assert values.get(2).value == b"b"
    assert (daemon.decided.values, daemon.decided.lost_instances) == (2, 38)


def test_a_gap_counts_against_retain() -> None:
    daemon = Daemon(DaemonSpec(config=load_config_text(""), retain=2))
    daemon.decisions.publish([Deliver(1, [b"a"], [None]), Trimmed(2, 5),
                              Deliver(5, [b"b"], [None])])
    assert (daemon.values.first_index, daemon.values.next_index) == (1, 3)


# -- configuration and command line -----------------------------------------------------

ROLES = "acceptor 0 127.0.0.1 3003\nproposer 0 127.0.0.1 3002\n"


def load_config_text(extra: str) -> Config:
    return parse_config(ROLES + extra, "paxos.conf")


def test_trim_in_the_configuration_sets_the_learners_trim_every() -> None:
    assert parse_config(ROLES).options.trim_every is None
    assert parse_config(ROLES + "trim 500\n").options.trim_every == 500
    off = parse_config(ROLES + "trim 0\n")
    assert off.options.trim_every is None and off.trim_set
    assert not parse_config(ROLES).trim_set
    assert parse_config(ROLES + "trim-bytes 4096\n").options.trim_bytes == 4096
    for bad in ("trim -1", "trim many", "trim 1 2"):
        with pytest.raises(ConfigError) as caught:
            parse_config(ROLES + bad + "\n", "paxos.conf")
        assert str(caught.value).startswith("paxos.conf:3: trim")


def test_the_trim_option_overrides_the_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "paxos.conf"
    config.write_text(ROLES + "trim 500\n")
    assert main(["-c", str(config), "--check-config"]) == 0
    assert "trims the acceptors every 500 delivered instances" in capsys.readouterr().out
    assert main(["-c", str(config), "--check-config", "--trim", "100"]) == 0
    assert "every 100 delivered instances (trim 100)" in capsys.readouterr().out
    assert main(["-c", str(config), "--check-config", "--trim", "0"]) == 0
    assert "trims" not in capsys.readouterr().out
    config.write_text(ROLES)
    # No trim anywhere: the whole cluster's learner trims by default.
    assert main(["-c", str(config), "--check-config"]) == 0
    assert "every 100000 delivered instances (trim 100000), or every 67108864 bytes" in (
        capsys.readouterr().out)
    assert main(["-c", str(config), "--check-config", "--trim", "0"]) == 0
    assert "trims" not in capsys.readouterr().out
    config.write_text(ROLES + "trim 0\n")
    assert main(["-c", str(config), "--check-config"]) == 0
    assert "trims" not in capsys.readouterr().out
    for bad in ("-5", "x"):
        with pytest.raises(SystemExit) as exited:
            main(["-c", str(config), "--trim", bad])
        assert exited.value.code == 2
        assert "--trim: expected a count of instances" in capsys.readouterr().err


def default_trim_of(config_text: str, *flags: str) -> int | None:
    """The trim_every a daemon started with ``flags`` on ``config_text`` gets."""
    args = build_parser().parse_args(list(flags))
    config = _with_flags(args, parse_config(config_text))
    return spec_from_args(args, config).config.options.trim_every


def test_one_learner_of_a_configuration_trims_by_default() -> None:
    # The original's open layout: any learner (no configuration says which).
    assert default_trim_of(ROLES) == 100_000
    assert default_trim_of(ROLES, "--learner") == 100_000
    # Where learners are listed, learner 0 only.
    listed = ROLES + "learner 0 127.0.0.1 3005\nlearner 1 127.0.0.1 3006\n"
    assert default_trim_of(listed, "--learner", "0") == 100_000
    assert default_trim_of(listed, "--learner", "1") is None
    assert default_trim_of(listed) == 100_000
    # With replicas, the lowest replica's learner.
    replicas = "".join(f"replica {i} 127.0.0.1 {3010 + i}\n" for i in range(3))
    assert default_trim_of(replicas, "--replica", "0") == 100_000
    assert default_trim_of(replicas, "--replica", "1") is None
    assert default_trim_of(replicas) == 100_000
    # A process without a learner, a trim said, or trimming turned off.
    assert default_trim_of(ROLES, "--acceptor", "0") is None
    assert default_trim_of(ROLES, "--trim", "7") == 7
    assert default_trim_of(ROLES + "trim 9\n", "--learner", "0") == 9
    assert default_trim_of(ROLES, "--trim", "0") is None
    assert default_trim_of(ROLES + "trim 0\n") is None
    assert default_trim_of(listed, "--learner", "1", "--trim", "5") == 5


def test_the_client_device_defaults_to_a_proposer_of_this_process(tmp_path: Path) -> None:
    config = tmp_path / "paxos.conf"
    lines = [f"replica {i} 127.0.0.1 {free_port()}" for i in range(3)]
    config.write_text("\n".join(lines) + "\n")
    args = build_parser().parse_args(["-c", str(config), "--replica", "2", "--no-devices"])
    spec = spec_from_args(args, load_config(config))
    assert spec.client_proposer is None

    async def proposer_of_the_device() -> tuple[str, int]:
        daemon = Daemon(spec)
        daemon.bind()
        try:
            assert daemon.proposals is not None
            return daemon.proposals._proposer
        finally:
            daemon._stack.close()

    assert trio.run(proposer_of_the_device) == ("127.0.0.1", int(lines[2].split()[3]))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_metrics_show_the_trim_point_and_what_a_learner_lost(
    tmp_path: Path, sock: socket.socket
) -> None:
    store = AcceptorStore(tmp_path / "acceptor-0")
    try:
        endpoint = acceptor_endpoint(sock, store)
        endpoint.node.receive(LearnerHi(), LEARNER, 0.0)
        endpoint.node.receive(Accept(1, 11, b"v"), LEARNER, 0.0)
        endpoint.node.receive(Accept(2, 11, b"v"), LEARNER, 0.0)
        endpoint.node.receive(Trim(1), LEARNER, 0.0)
        endpoint.flush()
        daemon = Daemon(DaemonSpec(config=load_config_text("")))
        daemon.endpoints.append(endpoint)
        samples = {
            (metric.name, sample.labels.get("role")): sample.value
            for metric in DaemonCollector(daemon.statistics).collect()
            for sample in metric.samples
        }
        assert samples[("kpaxos_acceptor_trim_iid", "acceptor 0")] == 1
        assert samples[("kpaxos_acceptor_instances", "acceptor 0")] == 1
    finally:
        store.close()
