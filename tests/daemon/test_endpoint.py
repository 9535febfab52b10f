"""UDP endpoints, and the in-process hand-over between the endpoints of one daemon."""

from __future__ import annotations

import contextlib
import logging
import random
import shutil
import socket
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
import trio

from kpaxosd.auth import Authenticator
from kpaxosd.endpoint import (
    LocalBus,
    OncePerInterval,
    StoreHealth,
    UdpEndpoint,
    open_udp_socket,
    path_mtu,
)
from kpaxosd.paxos.cluster import Cluster
from kpaxosd.paxos.effects import Decision, Deliver
from kpaxosd.paxos.node import Node
from kpaxosd.storage import AcceptorStore
from wire import Accept, Accepted, ClientValue, Message, Repeat, decode_untrusted, encode


def _bound(stack: ExitStack) -> socket.socket:
    return stack.enter_context(open_udp_socket(("127.0.0.1", 0)))


async def _run_cluster(local_learner_on_bus: bool) -> tuple[dict[str, UdpEndpoint], list[bytes]]:
    """One acceptor, a proposer and two learners; returns them after one decision."""
    with ExitStack() as stack:
        socks = {name: _bound(stack) for name in ("acceptor", "proposer", "local", "remote")}
        cluster = Cluster(
            acceptors={0: socks["acceptor"].getsockname()},
            proposers={0: socks["proposer"].getsockname()},
        )
        now = trio.current_time()
        bus = LocalBus()
        decided: list[bytes] = []
        done = trio.Event()

        def deliver(effects: list[Decision]) -> None:
            decided.extend(v for e in effects if isinstance(e, Deliver) for v in e.values)
            if len(decided) == 2:
                done.set()

        def endpoint(name: str, on_bus: bool, **roles: object) -> UdpEndpoint:
            sock = socks[name]
            node = Node(sock.getsockname(), cluster, rng=random.Random(0), now=now,
                        **roles)  # type: ignore[arg-type]
            learner = bool(roles.get("learner"))
            return UdpEndpoint(node, sock, on_deliver=deliver if learner else None,
                               name=name, bus=bus if on_bus else None)

        endpoints = {
            "acceptor": endpoint("acceptor", True, acceptor_id=0),
            "proposer": endpoint("proposer", True, proposer_id=0),
            "local": endpoint("local", local_learner_on_bus, learner=True),
            # A peer in another process: only datagrams reach it.
            "remote": endpoint("remote", False, learner=True),
        }
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                for ep in endpoints.values():
                    nursery.start_soon(ep.run)
                # Let the learners register and the proposer prepare its window.
                while not all(
                    ep.node.learner is None or ep.node.learner.registration(0).name == "REGISTERED"
                    for ep in endpoints.values()
                ):
                    await trio.sleep(0.01)
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                    client.sendto(encode(ClientValue(b"hello")), cluster.proposers[0])
                await done.wait()
                nursery.cancel_scope.cancel()
        return endpoints, decided


async def test_endpoints_of_one_process_hand_messages_over_without_datagrams() -> None:
    endpoints, decided = await _run_cluster(local_learner_on_bus=True)
    assert decided == [b"hello", b"hello"]
    acceptor, proposer = endpoints["acceptor"].counters, endpoints["proposer"].counters
    # The acceptor heard PREPAREs and the ACCEPT in process, and the remote learner's
    # LEARNER_HI as a datagram; it answered the proposer and the local learner in
    # process, the remote learner by UDP.
    assert acceptor.local_in > 0 and acceptor.local_out > 0
    assert acceptor.datagrams_in > 0 and acceptor.datagrams_out > 0
    assert proposer.datagrams_out == 0
    # The client's CLIENT_VALUE was the proposer's only datagram.
    assert proposer.datagrams_in == 1
    local, remote = endpoints["local"].counters, endpoints["remote"].counters
    assert local.datagrams_in == local.datagrams_out == 0
    assert remote.local_in == remote.local_out == 0
    assert remote.datagrams_in > 0
    # Messages sent count alike either way.
    assert endpoints["proposer"].sent_by_type["ACCEPT"] >= 1


async def test_an_endpoint_off_the_bus_is_reached_by_datagrams() -> None:
    endpoints, decided = await _run_cluster(local_learner_on_bus=False)
    assert decided == [b"hello", b"hello"]
    local = endpoints["local"].counters
    assert local.local_in == local.local_out == 0
    assert local.datagrams_in > 0


async def test_a_message_for_a_local_endpoint_is_handed_over_as_it_is() -> None:
    with ExitStack() as stack:
        a, b = _bound(stack), _bound(stack)
        cluster = Cluster(acceptors={0: b.getsockname()})
        now = trio.current_time()
        bus = LocalBus()
        sender = UdpEndpoint(Node(a.getsockname(), cluster, rng=random.Random(0), now=now),
                             a, bus=bus)
        acceptor = UdpEndpoint(
            Node(b.getsockname(), cluster, acceptor_id=0, rng=random.Random(0), now=now),
            b, bus=bus,
        )
        sender.send_message(ClientValue(b"x"), acceptor.address)
        assert sender.counters.local_out == 1
        assert acceptor.counters.local_in == 1
        # An acceptor ignores CLIENT_VALUE: the message reached its node and was counted.
        assert acceptor.node.statistics().dropped == 1


def test_a_datagram_too_big_to_send_is_logged_once_as_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # No retry can send it, so it must not vanish into the debug log like a full buffer.
    with ExitStack() as stack:
        sock, peer = _bound(stack), _bound(stack)
        cluster = Cluster(acceptors={0: peer.getsockname()}, proposers={})
        node = Node(sock.getsockname(), cluster, learner=True, rng=random.Random(0), now=0.0)
        endpoint = UdpEndpoint(node, sock, on_deliver=None, name="learner")
        with caplog.at_level(logging.ERROR, logger="kpaxos.udp"):
            for _ in range(3):
                endpoint._send_bytes(b"x" * 70_000, peer.getsockname())
        too_big = [r for r in caplog.records if "too big to send" in r.getMessage()]
        assert len(too_big) == 1
        assert endpoint.counters.send_failures == 3


def test_the_path_mtu_is_the_routes_and_unknown_without_a_route() -> None:
    with open("/sys/class/net/lo/mtu") as lo:
        # An IPv4 packet is at most 65,535 bytes, whatever the interface allows.
        assert path_mtu(("127.0.0.1", 9)) == min(int(lo.read()), 65535)
    # No UDP socket connects to the broadcast address without SO_BROADCAST.
    assert path_mtu(("255.255.255.255", 9)) is None


def _health(endpoint: UdpEndpoint) -> StoreHealth:
    # Read afresh: mypy would carry an earlier assert's narrowing past the calls that
    # change it.
    return endpoint.store_health


def _answered_iids(sock: socket.socket) -> list[int]:
    """The iids of the ACCEPTEDs waiting at ``sock`` (anything else fails the test)."""
    answers = _answers(sock)
    assert all(isinstance(msg, Accepted) for msg in answers), answers
    return [msg.iid for msg in answers if isinstance(msg, Accepted)]


def _answers(sock: socket.socket) -> list[Message]:
    got = []
    sock.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        while True:
            got.append(decode_untrusted(sock.recv(65535)))
    return got


def _acceptor_on_a_small_store(
    stack: ExitStack, tmp_path: Path,
) -> tuple[Node, UdpEndpoint, AcceptorStore, socket.socket]:
    """Acceptor 0 on a real store whose 64 KiB map fills after a few records, and the
    socket of its proposer."""
    sock, proposer = _bound(stack), _bound(stack)
    cluster = Cluster(acceptors={0: sock.getsockname()}, proposers={0: proposer.getsockname()})
    node = Node(sock.getsockname(), cluster, acceptor_id=0, rng=random.Random(0), now=0.0)
    store = AcceptorStore(tmp_path / "acceptor-0", map_size=64 << 10)
    stack.callback(store.close)
    return node, UdpEndpoint(node, sock, store=store, name="acceptor 0"), store, proposer


def test_an_acceptor_whose_store_is_full_answers_only_what_the_store_holds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    # A real store whose map fills up after a few records stands for a full disk.
    with ExitStack() as stack:
        node, endpoint, store, proposer = _acceptor_on_a_small_store(stack, tmp_path)
        src = proposer.getsockname()
        with caplog.at_level(logging.WARNING, logger="kpaxos.udp"):
            iid = 0
            while endpoint.store_health is StoreHealth.OK:
                iid += 1
                assert iid < 100, "the store never filled"
                node.receive(Accept(iid, 10, bytes(6000)), src, 0.0)
                endpoint.flush()
            full = iid
            for _ in range(3):  # the proposer retries; nothing changes
                node.receive(Accept(full, 10, bytes(6000)), src, 0.0)
                node.receive(Repeat(1, full), src, 0.0)
                endpoint.flush()
            answered = {msg.iid for msg in _answers(proposer) if isinstance(msg, Accepted)}
            stored = {record.iid for record in store.load()[0]}
            assert answered == stored == set(range(1, full))
            assert node.acceptor is not None and node.acceptor.record(full) is None
            assert endpoint.counters.store_failures == 4
            # Space comes back (here: a bigger map once the store reopens).
            store._env.set_mapsize(1 << 20)
            node.receive(Accept(full, 10, bytes(6000)), src, 0.0)
            endpoint.flush()
        assert _health(endpoint) is StoreHealth.OK
        assert _answered_iids(proposer) == [full]
        said = [r.getMessage() for r in caplog.records]
        assert sum("votes again once a write succeeds" in m for m in said) == 1, said
        assert sum("takes writes again after 4 failed commits" in m for m in said) == 1, said


def test_an_acceptor_whose_store_vanished_stays_silent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    # The store cannot be read back after a failed commit (its files are gone): the
    # acceptor's memory may be ahead of any disk, so nothing leaves, and the store is
    # not made afresh (an empty one would forget every promise).
    with ExitStack() as stack:
        node, endpoint, store, proposer = _acceptor_on_a_small_store(stack, tmp_path)
        src = proposer.getsockname()
        node.receive(Accept(1, 10, b"one"), src, 0.0)
        endpoint.flush()
        assert _answered_iids(proposer) == [1]
        shutil.rmtree(store.path)
        with caplog.at_level(logging.WARNING, logger="kpaxos.udp"):
            for iid in range(2, 20):  # until the map is full
                node.receive(Accept(iid, 10, bytes(6000)), src, 0.0)
                endpoint.flush()
            assert endpoint.store_health is StoreHealth.UNKNOWN
            node.receive(Repeat(1, 20), src, 0.0)
            endpoint.flush()
        answered = set(_answered_iids(proposer))
        assert 1 not in answered and max(answered) < 19
        assert not store.path.exists()
        assert any("stays silent" in r.getMessage() for r in caplog.records)


def test_once_per_interval_says_each_source_once_a_minute() -> None:
    limiter = OncePerInterval(60.0, capacity=1024)
    a, b = ("127.0.0.1", 1), ("127.0.0.1", 2)
    assert limiter.due(a, 0.0)
    assert not limiter.due(a, 1.0)
    assert limiter.due(b, 1.0)  # each source has its own minute
    assert not limiter.due(a, 59.9)
    assert limiter.due(a, 60.0)
    assert not limiter.due(a, 119.0)
    assert not limiter.due(b, 60.9)
    assert limiter.due(b, 61.0)


def test_once_per_interval_remembers_a_bounded_number_of_sources() -> None:
    limiter = OncePerInterval(60.0, capacity=3)
    sources = [("127.0.0.1", port) for port in range(1, 6)]
    for t, source in enumerate(sources):
        assert limiter.due(source, float(t))
        assert len(limiter) <= 3
    # The oldest two were forgotten when the table was full: said again, early.
    assert limiter.due(sources[0], 5.0)
    assert not limiter.due(sources[4], 5.0)
    # Sources said more than a minute ago are forgotten as time goes on.
    assert limiter.due(("127.0.0.2", 1), 200.0)
    assert len(limiter) == 1


def test_unauthenticated_datagrams_are_warned_of_once_a_minute_per_source(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A node started without the cluster's key: its datagrams are dropped, and the
    # operator is told which address sends them, without a line per datagram.
    with ExitStack() as stack:
        sock, keyless, other = _bound(stack), _bound(stack), _bound(stack)
        cluster = Cluster(acceptors={0: sock.getsockname()}, proposers={0: keyless.getsockname()})
        node = Node(sock.getsockname(), cluster, acceptor_id=0, rng=random.Random(0), now=0.0)
        endpoint = UdpEndpoint(node, sock, auth=Authenticator(b"k" * 32), name="acceptor 0")
        datagram = encode(Accept(1, 10, b"value"))

        def send_and_drain(sender: socket.socket, now: float, count: int = 3) -> list[str]:
            caplog.clear()
            for _ in range(count):
                sender.sendto(datagram, sock.getsockname())
            with caplog.at_level(logging.WARNING, logger="kpaxos.udp"):
                endpoint._drain(now, time.time())
            return [r.getMessage() for r in caplog.records]

        host, port = keyless.getsockname()
        said = send_and_drain(keyless, 0.0)
        assert len(said) == 1, said
        assert f"dropping datagrams from {host}:{port} without this cluster's authentication" \
            in said[0]
        assert "--auth-key-file" in said[0]
        assert send_and_drain(keyless, 30.0) == []
        assert len(send_and_drain(other, 30.0)) == 1  # another source: its own warning
        assert len(send_and_drain(keyless, 60.0)) == 1  # a minute later: once more
        assert endpoint.counters.unauthenticated == 12
        assert node.acceptor is not None and node.acceptor.record(1) is None
        # Signed with the key but an hour old: the clocks, not the key, are at fault.
        late = _bound(stack)
        datagram = Authenticator(b"k" * 32).seal(datagram, time.time() - 3600)
        said = send_and_drain(late, 60.0)
        assert len(said) == 1 and "are the clocks of the cluster synchronised" in said[0], said
