"""``kpaxos-client``: the original benchmarking client.

Sends CLIENT_VALUE datagrams (each value an original ``struct client_value``) to a
proposer, keeps ``-o`` values in flight, learns of their decision from the learner
device (``-d``, record mode; ``--stream``, stream mode) or from a kpaxos-learner
(``-s HOST PORT``), and prints one line of statistics a second.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import random
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence

import trio

from clients.options import (
    Sealer,
    add_common_options,
    add_protocol_option,
    cluster_from_args,
    learner_device_path,
    run_program,
)
from clients.sources import (
    SourceError,
    device_records,
    follow_learner,
    open_learner,
    open_record_device,
    open_stream_device,
    stream_client_values,
)
from kpaxosd.arguments import (
    OneLineParser,
    host_and_port,
    non_negative_int,
    positive_int,
    positive_seconds,
    unicast_ipv4,
    value_size,
)
from kpaxosd.client_engine import ClientEngine, total_line
from kpaxosd.endpoint import IPV4_UDP_HEADERS, bind_towards, path_mtu
from kpaxosd.paxos.cluster import Address
from wire import MAX_VALUE_SIZE, ClientValue, encode
from wire.batch import BATCH_OVERHEAD, ITEM_OVERHEAD, pack_batch
from wire.original import CLIENT_VALUE_HEADER_SIZE, unpack_client_value_untrusted, unpack_record

#: Client ids are an int32 of the original struct client_value: below 2**31.
CLIENT_ID_LIMIT = 2**31

DESCRIPTION = """\
The original Kernel_Paxos benchmarking client. Keeps N values outstanding at a
proposer and prints, once a second:

  N value/sec, X Mbps, latency min A us max B us avg C us p50 D us p99 E us

Learn of decisions from the learner device (-d) or from a kpaxos-learner (-s).
Ctrl-C prints the totals and exits.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="kpaxos-client",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_options(parser)
    parser.add_argument("-o", "--outstanding", type=positive_int, default=1, metavar="N",
                        help="values kept in flight (default: 1)")
    parser.add_argument("-v", "--value-size", type=value_size, default=64, metavar="BYTES",
                        help="payload bytes of each value (default: 64)")
    parser.add_argument("-p", "--proposer-id", type=non_negative_int, default=0, metavar="ID",
                        help="the proposer of the configuration to send to (default: 0)")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("-d", "--device", action="store_true",
                     help="learn decisions from the learner device, in record mode (default)")
    how.add_argument("--stream", action="store_true",
                     help="learn decisions from the learner device in stream mode, many "
                          "values per read; every value decided on the cluster must then be "
                          "an original client value of at most -v bytes")
    how.add_argument("-s", "--learner-server", nargs=2, metavar=("HOST", "PORT"),
                     action=host_and_port(unicast_ipv4),
                     help="learn decisions from a kpaxos-learner listening at HOST PORT")
    parser.add_argument("-b", "--values-per-datagram", type=non_negative_int, default=1,
                        metavar="N",
                        help="send up to N values in one CLIENT_VALUE datagram, as a batch "
                             "(wire.batch) that a kpaxos proposer takes apart; each is still "
                             "decided and delivered as a value of its own. 0: as many as "
                             "are ready at once and fit one unfragmented datagram to the "
                             "proposer (default: 1, one value per datagram as the original "
                             "client, which an original proposer understands)")
    parser.add_argument("-i", "--id", type=non_negative_int, metavar="ID",
                        help="first client id (default: random); slot k uses ID+k")
    parser.add_argument("--duration", type=positive_seconds, metavar="SECONDS",
                        help="stop after this long (default: until Ctrl-C)")
    add_protocol_option(parser)
    return parser


def datagram_sender(
    sock: socket.socket, seal: Sealer, proposer: Address, per_datagram: int
) -> Callable[[list[bytes]], None]:
    """What sends values to ``proposer``: up to ``per_datagram`` of them in one batch
    per CLIENT_VALUE datagram; 0: as many as one datagram carries unfragmented on the
    route to the proposer (its path MTU)."""

    def send(value: bytes) -> None:
        # A datagram that cannot go is resent after a second, like any other loss.
        with contextlib.suppress(OSError):
            sock.sendto(seal(encode(ClientValue(value))), proposer)

    # Room for a batch in one CLIENT_VALUE datagram, the authentication trailer included.
    trailer = len(seal(b""))
    batch_room = MAX_VALUE_SIZE - trailer
    if per_datagram == 0:
        per_datagram = sys.maxsize
        mtu = path_mtu(proposer)
        if mtu is not None:
            # A fragment lost loses the datagram: on a lossy network one unfragmented
            # datagram crosses far more often than a fragmented one.
            header = len(encode(ClientValue(b"")))
            batch_room = min(batch_room, mtu - IPV4_UDP_HEADERS - header - trailer)

    def send_all(values: list[bytes]) -> None:
        """Send ``values``, up to ``per_datagram`` of them in one batch per datagram."""
        if per_datagram == 1:
            for value in values:
                send(value)
            return
        if values and len(set(map(len, values))) == 1:
            # The engine's values are all of one size: whole chunks of them at once.
            per_chunk = min(per_datagram, max(1, (batch_room - BATCH_OVERHEAD)
                                              // (ITEM_OVERHEAD + len(values[0]))))
            for start in range(0, len(values), per_chunk):
                same_size = values[start : start + per_chunk]
                send(pack_batch(same_size) if len(same_size) > 1 else same_size[0])
            return
        chunk: list[bytes] = []
        size = BATCH_OVERHEAD
        for value in values:
            grown = size + ITEM_OVERHEAD + len(value)
            if chunk and (len(chunk) == per_datagram or grown > batch_room):
                send(pack_batch(chunk) if len(chunk) > 1 else chunk[0])
                chunk, grown = [], BATCH_OVERHEAD + ITEM_OVERHEAD + len(value)
            chunk.append(value)
            size = grown
        if chunk:
            send(pack_batch(chunk) if len(chunk) > 1 else chunk[0])

    return send_all


# The program's whole run (sources, senders, the engine's loop, the report); a
# candidate for splitting into a class with one method per phase.
async def run(args: argparse.Namespace) -> int:  # noqa: C901, PLR0915
    cluster, seal = cluster_from_args(args, "kpaxos-client")
    proposers = cluster.proposers
    if args.proposer_id not in proposers:
        raise SourceError(f"the configuration has no proposer {args.proposer_id}")
    proposer = proposers[args.proposer_id]
    rng = random.Random()
    if args.id is not None:
        base_id = args.id
    else:
        base_id = rng.randrange(0, CLIENT_ID_LIMIT - args.outstanding)
    engine = ClientEngine(
        base_id=base_id, outstanding=args.outstanding, value_size=args.value_size, rng=rng
    )
    record_size = CLIENT_VALUE_HEADER_SIZE + args.value_size

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    bind_towards(sock, proposer)

    send_all = datagram_sender(sock, seal, proposer, args.values_per_datagram)

    records: AsyncIterator[bytes] | None = None
    learner_streams: list[trio.SocketStream] = []
    headers: Iterator[tuple[Sequence[bytes], Sequence[int]]] | None = None
    # In stream mode a thread of its own reads the device and sends what follows
    # (a handover to the trio loop per read cost more than the rest of the client);
    # the engine is shared with the resends and the statistics, under this lock.
    engine_lock = threading.Lock()
    if args.stream:
        headers = stream_client_values(open_stream_device(learner_device_path(args)),
                                       args.value_size)
    elif args.learner_server:
        host, port = args.learner_server
        learner_streams = await open_learner(host, port, engine.client_ids, args.protocol)
        print(f"connected to the learner at {host}:{port} ({args.protocol} protocol)",
              flush=True)
    else:
        path = learner_device_path(args)
        fd = open_record_device(path, record_size)
        records = device_records(fd, record_size)

    print(f"client ids {engine.client_ids.start}..{engine.client_ids.stop - 1}, "
          f"{args.outstanding} outstanding, {args.value_size}-byte values, "
          f"proposer {args.proposer_id} at {proposer[0]}:{proposer[1]}", flush=True)
    started = time.monotonic()
    async with trio.open_nursery() as nursery:

        def follow_headers() -> None:
            assert headers is not None
            for identities, sizes in headers:
                with engine_lock:
                    following = engine.delivered_identities(identities, sizes, time.time())
                send_all(following)

        async def receive_headers() -> None:
            await trio.to_thread.run_sync(follow_headers, abandon_on_cancel=True)

        def take(record: bytes) -> None:
            _, body = unpack_record(record)
            value = unpack_client_value_untrusted(body)
            if value is None:
                return  # not an original client value: someone else's
            following = engine.delivered(value, time.time())
            if following is not None:
                send_all([following])

        async def receive() -> None:
            if learner_streams:
                await follow_learner(learner_streams, record_size, take)
                return
            assert records is not None
            async for record in records:
                take(record)

        async def resend() -> None:
            while True:
                with engine_lock:
                    wait = max(0.0, engine.next_resend_at() - time.time())
                await trio.sleep_until(trio.current_time() + wait)
                with engine_lock:
                    due = engine.due_resends(time.time())
                send_all(due)

        async def report() -> None:
            last = time.monotonic()
            while True:
                await trio.sleep(1)
                now = time.monotonic()
                with engine_lock:
                    interval = engine.take_interval()
                print(interval.line(now - last), flush=True)
                last = now

        async def stop_on_signal() -> None:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    break
            nursery.cancel_scope.cancel()

        async def stop_after_duration() -> None:
            await trio.sleep(args.duration if args.duration is not None else math.inf)
            nursery.cancel_scope.cancel()

        send_all(engine.start(time.time()))
        for task in (receive if headers is None else receive_headers, resend, report,
                     stop_on_signal, stop_after_duration):
            nursery.start_soon(task)

    elapsed = time.monotonic() - started
    with engine_lock:
        total = engine.total
    print(total_line(total, elapsed), flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Client ids are the original's int32: slot k of the client uses ID+k.
    if args.outstanding >= CLIENT_ID_LIMIT:
        parser.error(f"argument -o/--outstanding: at most {CLIENT_ID_LIMIT - 1} values")
    if args.id is not None and args.id + args.outstanding > CLIENT_ID_LIMIT:
        parser.error(f"argument -i/--id: ID+N (-o) must stay at most {CLIENT_ID_LIMIT}, "
                     "the original's int32 client ids")
    return run_program("kpaxos-client", run, args, (SourceError, OSError))


if __name__ == "__main__":
    sys.exit(main())
