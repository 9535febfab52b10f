"""kpaxos-client's sending: values in batches of up to -b per CLIENT_VALUE datagram."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from clients.client import datagram_sender
from kpaxosd.endpoint import IPV4_UDP_HEADERS, path_mtu
from wire import ClientValue, decode_untrusted
from wire.batch import unpack_batch_untrusted


@pytest.fixture
def sockets() -> Iterator[tuple[socket.socket, socket.socket]]:
    proposer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with proposer, client:
        # Room for the largest test's datagrams, all sent before any is read.
        proposer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        proposer.bind(("127.0.0.1", 0))
        proposer.settimeout(10)
        yield proposer, client


def _received(proposer: socket.socket, datagrams: int) -> list[list[bytes]]:
    """The values of each datagram, a batch taken apart."""
    received = []
    for _ in range(datagrams):
        message = decode_untrusted(proposer.recv(65536))
        assert isinstance(message, ClientValue)
        received.append(unpack_batch_untrusted(message.value) or [message.value])
    return received


@pytest.mark.parametrize("sizes", [[96] * 7, [96, 96, 10, 96, 96, 96, 5]],
                         ids=["one size", "sizes"])
def test_values_go_in_batches_of_up_to_b(
    sockets: tuple[socket.socket, socket.socket], sizes: list[int]
) -> None:
    proposer, client = sockets
    send_all = datagram_sender(client, lambda datagram: datagram, proposer.getsockname(), 3)
    values = [bytes([i]) * size for i, size in enumerate(sizes)]
    send_all(values)
    assert _received(proposer, 3) == [values[0:3], values[3:6], values[6:7]]


def test_batches_fit_one_datagram(sockets: tuple[socket.socket, socket.socket]) -> None:
    proposer, client = sockets
    trailer = b"t" * 24  # as an authentication trailer would take room
    send_all = datagram_sender(client, lambda datagram: datagram + trailer,
                               proposer.getsockname(), 100)
    values = [bytes([i]) * 20_000 for i in range(7)]
    send_all(values)
    received = []
    for _ in range(3):
        datagram = proposer.recv(65536)
        assert datagram.endswith(trailer)
        message = decode_untrusted(datagram[: -len(trailer)])
        assert isinstance(message, ClientValue)
        received.append(unpack_batch_untrusted(message.value) or [message.value])
    assert received == [values[0:3], values[3:6], values[6:7]]


def test_one_value_per_datagram_goes_unbatched(
    sockets: tuple[socket.socket, socket.socket]
) -> None:
    proposer, client = sockets
    send_all = datagram_sender(client, lambda datagram: datagram, proposer.getsockname(), 1)
    send_all([b"a" * 40, b"b" * 40])
    assert _received(proposer, 2) == [[b"a" * 40], [b"b" * 40]]


def test_b0_fills_datagrams_to_the_path_mtu(sockets: tuple[socket.socket, socket.socket]) -> None:
    proposer, client = sockets
    address = proposer.getsockname()
    send_all = datagram_sender(client, lambda datagram: datagram, address, 0)
    values = [i.to_bytes(4, "big") * 24 for i in range(1000)]
    send_all(values)
    room = path_mtu(address)
    assert room is not None
    received: list[bytes] = []
    while len(received) < len(values):
        datagram = proposer.recv(65536)
        assert len(datagram) <= room - IPV4_UDP_HEADERS
        message = decode_untrusted(datagram)
        assert isinstance(message, ClientValue)
        batch = unpack_batch_untrusted(message.value)
        assert batch is not None and len(batch) > 100  # no count limit, only the room
        received.extend(batch)
    assert received == values
