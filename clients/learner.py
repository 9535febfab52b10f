"""``kpaxos-learner``: the original user-space learner.

Reads the learner device in record mode and forwards records of ``4 + V`` bytes over
TCP, in the protocol ``--protocol`` names: 2018 (the default), a client sends its
half-open id range as two native int32, the learner echoes them and forwards it the
records of those ids; 2017-09-18 (3891411), a client sends its id as one native int32,
the learner answers ``k`` and forwards it its own records; 2017-09-10 (175aafb), no
greeting, every record to every client. The 2017 clients look only at the first
record of each TCP read, so records go to them one per send, paced
(:data:`PACE_2017`), and a 2017-09-18 client takes a record whose iid's low byte is
``k`` for the acknowledgement: such a record goes to it with that byte one lower.

With ``-l N`` it has the acceptors forget what it read every N records, as the
2017-09-18 learner did: through the device (its trim writes), so the daemon's learner
sends the TRIM, up to the instance of the record, never one it has not delivered.
"""

from __future__ import annotations

import argparse
import collections
import signal
import sys
from collections.abc import Sequence
from functools import partial

import trio

from clients.options import (
    add_common_options,
    add_protocol_option,
    cluster_from_args,
    learner_device_path,
    run_program,
)
from clients.sources import (
    ID_RANGE,
    SourceError,
    device_records,
    open_record_device,
    trim_through,
)
from kpaxosd.arguments import OneLineParser, host_and_port, listen_ipv4, positive_int, value_size
from wire.original import (
    CLIENT_VALUE_HEADER_SIZE,
    GREETING_ACK,
    ID_GREETING_CODEC,
    unpack_record,
)

#: Between two records sent to one 2017 client: it reads up to 8 KiB and looks at the
#: first record only, so two records that reach it together lose the second.
PACE_2017 = 0.0005
#: Records waiting for one slow 2017 client before the oldest go (it resends after a
#: second, as the originals did).
MAX_QUEUED_2017 = 4096

DESCRIPTION = """\
The original Kernel_Paxos user-space learner: forwards decided values from the
learner device (record mode) to kpaxos-client programs connected over TCP.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="kpaxos-learner", description=DESCRIPTION)
    add_common_options(parser)
    parser.add_argument("-s", "--listen", nargs=2, metavar=("HOST", "PORT"),
                        action=host_and_port(listen_ipv4), default=("127.0.0.1", 4000),
                        help="where clients connect (default: 127.0.0.1 4000)")
    parser.add_argument("-v", "--value-size", type=value_size, default=64, metavar="BYTES",
                        help="payload bytes of the clients' values (default: 64)")
    parser.add_argument("-l", "--trim", type=positive_int, metavar="N",
                        help="have the acceptors forget what was read every N records, "
                             "through the device (the daemon's learner sends the TRIM); "
                             "default: never")
    parser.add_argument("-d", "--device", action="store_true",
                        help="read the learner device (the only source; accepted for the "
                             "original's command lines)")
    add_protocol_option(parser)
    return parser


class Forwarder:
    """The connected clients of the 2018 protocol, by the client-id range they asked for."""

    def __init__(self) -> None:
        self.clients: dict[trio.SocketStream, range] = {}

    async def forward(self, record: bytes, client_id: int) -> None:
        stream = self.target(client_id)
        if stream is not None:
            try:
                await stream.send_all(record)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.clients.pop(stream, None)

    def target(self, client_id: int) -> trio.SocketStream | None:
        for stream, ids in self.clients.items():
            if client_id in ids:
                return stream
        return None

    async def serve(self, stream: trio.SocketStream) -> None:
        greeting = b""
        try:
            while len(greeting) < ID_RANGE.size:
                chunk = await stream.receive_some(ID_RANGE.size - len(greeting))
                if not chunk:
                    return
                greeting += chunk
            start, stop = ID_RANGE.unpack(greeting)
            await stream.send_all(greeting)
            self.clients[stream] = range(start, stop)
            print(f"client connected for ids {start}..{stop - 1}", flush=True)
            while await stream.receive_some(4096):
                pass  # clients say nothing more; EOF ends them
        except trio.BrokenResourceError:
            pass
        finally:
            self.clients.pop(stream, None)
            await stream.aclose()


class _Client2017:
    """One connection of a 2017 protocol: its id (2017-09-18) and the records that wait
    for it, sent one at a time."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.client_id: int | None = None
        self.queue: collections.deque[bytes] = collections.deque(maxlen=MAX_QUEUED_2017)
        self.wakeup = trio.Event()

    def put(self, record: bytes) -> None:
        self.queue.append(record)
        self.wakeup.set()

    async def send_paced(self) -> None:
        while True:
            while not self.queue:
                self.wakeup = trio.Event()
                await self.wakeup.wait()
            await self.stream.send_all(self.queue.popleft())
            await trio.sleep(PACE_2017)


class Forwarder2017:
    """The connected clients of a 2017 protocol: every one (2017-09-10), or the first
    registered under the record's client_id (2017-09-18)."""

    def __init__(self, greeted: bool) -> None:
        self.greeted = greeted
        self.clients: list[_Client2017] = []

    async def forward(self, record: bytes, client_id: int) -> None:
        if not self.greeted:
            for client in self.clients:
                client.put(record)
            return
        for client in self.clients:
            if client.client_id == client_id:
                client.put(_not_an_ack(record))
                return

    async def serve(self, stream: trio.SocketStream) -> None:
        client = _Client2017(stream)
        self.clients.append(client)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client.send_paced)
                while chunk := await stream.receive_some(8192):
                    # The original took the first 4 bytes of each read as the
                    # connection's id, and answered each read with one 'k'.
                    if self.greeted and len(chunk) >= ID_GREETING_CODEC.size:
                        (client.client_id,) = ID_GREETING_CODEC.unpack_from(chunk)
                        await stream.send_all(GREETING_ACK)
                nursery.cancel_scope.cancel()
        except trio.BrokenResourceError:
            pass
        finally:
            self.clients.remove(client)
            await stream.aclose()


def _not_an_ack(record: bytes) -> bytes:
    """A 2017-09-18 client takes a read that starts with 'k' for the acknowledgement:
    a record whose iid's low byte is 'k' goes with that byte one lower (the iid is the
    only thing it changes, and the client does not use it otherwise)."""
    if record[:1] != GREETING_ACK:
        return record
    return bytes([record[0] - 1]) + record[1:]


async def run(args: argparse.Namespace) -> int:
    cluster_from_args(args, "kpaxos-learner")  # a bad configuration is said at once
    record_value_size = CLIENT_VALUE_HEADER_SIZE + args.value_size
    fd = open_record_device(learner_device_path(args), record_value_size,
                            trims=args.trim is not None)
    forwarder: Forwarder | Forwarder2017 = (
        Forwarder() if args.protocol == "2018"
        else Forwarder2017(greeted=args.protocol == "2017-09-18"))
    host, port = args.listen
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(trio.serve_tcp, forwarder.serve, port, host=host))
        print(f"listening on {host}:{port} ({args.protocol} protocol)", flush=True)

        async def forward() -> None:
            async for record in device_records(fd, record_value_size):
                iid, value = unpack_record(record)
                client_id = int.from_bytes(value[:4], sys.byteorder, signed=True)
                await forwarder.forward(record, client_id)
                if args.trim and iid % args.trim == 0:
                    trim_through(fd, iid)
            nursery.cancel_scope.cancel()

        async def stop_on_signal() -> None:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    break
            nursery.cancel_scope.cancel()

        nursery.start_soon(forward)
        nursery.start_soon(stop_on_signal)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_program("kpaxos-learner", run, args, (SourceError, OSError))


if __name__ == "__main__":
    sys.exit(main())
