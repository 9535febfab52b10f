"""``kpaxos-learner``: the original user-space learner.

Reads the learner device in record mode and forwards each record over TCP to the
connected client whose id range holds the value's client_id (the original's
protocol: a client sends its half-open id range as two native int32, the learner
echoes them, then sends records of ``4 + V`` bytes). With ``-l N`` it has the
acceptors forget what it read every N records, as the 2017-09-18 learner did: through
the device (its trim writes), so the daemon's learner sends the TRIM, up to the
instance of the record, never one it has not delivered.
"""

from __future__ import annotations

import argparse
import signal
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
from clients.sources import (
    ID_RANGE,
    SourceError,
    device_records,
    open_record_device,
    trim_through,
)
from kpaxosd.arguments import OneLineParser, host_and_port, listen_ipv4, positive_int, value_size
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
                        help="have the acceptors forget what was read every N records, "
                             "through the device (the daemon's learner sends the TRIM); "
                             "default: never")
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
    cluster_from_args(args, "kpaxos-learner")  # a bad configuration is said at once
    record_value_size = CLIENT_VALUE_HEADER_SIZE + args.value_size
    fd = open_record_device(learner_device_path(args), record_value_size,
                            trims=args.trim is not None)
    forwarder = Forwarder()
    host, port = args.listen
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(trio.serve_tcp, forwarder.serve, port, host=host))
        print(f"listening on {host}:{port}", flush=True)

        async def forward() -> None:
            async for record in device_records(fd, record_value_size):
                iid, value = unpack_record(record)
                client_id = int.from_bytes(value[:4], sys.byteorder, signed=True)
                stream = forwarder.target(client_id)
                if stream is not None:
                    try:
                        await stream.send_all(record)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        forwarder.clients.pop(stream, None)
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
