"""``kpaxos-learner``: the original user-space learner.

Reads the learner device in record mode and forwards each record over TCP to the
connected client whose id range holds the value's client_id (the original's
protocol: a client sends its half-open id range as two native int32, the learner
echoes them, then sends records of ``4 + V`` bytes). With ``-l N`` it sends TRIM to
every acceptor each N delivered instances (between a LEARNER_HI and a LEARNER_DEL:
acceptors take a TRIM only from a registered learner). A configuration that lists
learners takes TRIM only from them: there the daemon's learner trims (``--trim``).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import sys
from collections.abc import Sequence
from functools import partial

import trio

from clients.options import (
    add_common_options,
    cluster_from_args,
    learner_device_path,
    run_program,
)
from clients.sources import ID_RANGE, SourceError, device_records, open_record_device
from kpaxosd.arguments import OneLineParser, host_and_port, listen_ipv4, positive_int, value_size
from kpaxosd.endpoint import bind_towards
from wire import LearnerDel, LearnerHi, Trim, encode
from wire.original import CLIENT_VALUE_HEADER_SIZE, unpack_record

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
                        help="send TRIM to the acceptors every N instances (default: never)")
    parser.add_argument("-d", "--device", action="store_true",
                        help="read the learner device (the only source; accepted for the "
                             "original's command lines)")
    return parser


class Forwarder:
    """The connected clients, by the client-id range they asked for."""

    def __init__(self) -> None:
        self.clients: dict[trio.SocketStream, range] = {}

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


async def run(args: argparse.Namespace) -> int:
    cluster, seal = cluster_from_args(args, "kpaxos-learner")
    if args.trim and cluster.learners:
        raise SourceError(
            "-l: the configuration lists learners, and the acceptors take TRIM only from "
            "them; let the daemon hosting one trim instead (kpaxosd --trim N)")
    record_value_size = CLIENT_VALUE_HEADER_SIZE + args.value_size
    fd = open_record_device(learner_device_path(args), record_value_size)
    trim_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    trim_sock.setblocking(False)
    bind_towards(trim_sock, next(iter(cluster.acceptors.values())))
    forwarder = Forwarder()
    host, port = args.listen
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(trio.serve_tcp, forwarder.serve, port, host=host))
        print(f"listening on {host}:{port}", flush=True)

        async def forward() -> None:
            delivered = 0
            async for record in device_records(fd, record_value_size):
                iid, value = unpack_record(record)
                client_id = int.from_bytes(value[:4], sys.byteorder, signed=True)
                stream = forwarder.target(client_id)
                if stream is not None:
                    try:
                        await stream.send_all(record)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        forwarder.clients.pop(stream, None)
                delivered += 1
                if args.trim and delivered % args.trim == 0:
                    # Acceptors take a TRIM only from a registered learner: this
                    # socket registers, trims and leaves (it reads no ACCEPTED copies).
                    trim_round = [seal(encode(msg)) for msg in (LearnerHi(), Trim(iid),
                                                                LearnerDel())]
                    for acceptor in cluster.acceptors.values():
                        for datagram in trim_round:
                            with contextlib.suppress(OSError):
                                trim_sock.sendto(datagram, acceptor)
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
