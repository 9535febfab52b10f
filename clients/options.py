"""Options the original programs share: the cluster layout and the learner device."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Awaitable, Callable

import trio

from kpaxosd.arguments import non_negative_int
from kpaxosd.auth import Authenticator, AuthKeyError, load_key
from kpaxosd.config import ConfigError, default_config, load_config
from kpaxosd.paxos.cluster import Cluster

DEFAULT_DEVICE = "/dev/kpaxos-learner"

#: Turns a datagram into what goes on the wire (adds the authentication trailer).
Sealer = Callable[[bytes], bytes]


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE",
                        help="the cluster's paxos.conf (default: the built-in loopback cluster)")
    parser.add_argument("-c", "--chardev-id", type=non_negative_int, metavar="ID",
                        help="use the original device path /dev/chardevice/klearnerID "
                             "(kpaxosd --compat-devices) instead of --learner-device")
    parser.add_argument("--learner-device", default=DEFAULT_DEVICE, metavar="PATH",
                        help="the learner device (default: %(default)s)")
    parser.add_argument("--auth-key-file", metavar="FILE",
                        help="the cluster's key, when its datagrams are authenticated "
                             "(default: the configuration's auth-key-file, else none)")


#: The TCP protocols between kpaxos-learner and kpaxos-client, by the date of the
#: Kernel_Paxos programs that spoke them (tests/vectors/kernel_paxos_2017_programs.txt).
PROTOCOLS = ("2017-09-10", "2017-09-18", "2018")
PROTOCOL_HELP = {
    "2017-09-10": "175aafb: no greeting; the learner sends every record to every client",
    "2017-09-18": "3891411: the client sends its id (int32), the learner answers 'k' and "
                  "sends it only its own records",
    "2018": "the client sends the range of its ids, the learner echoes it and sends the "
            "records of those ids",
}


def add_protocol_option(parser: argparse.ArgumentParser) -> None:
    choices = "; ".join(f"{name}: {what}" for name, what in PROTOCOL_HELP.items())
    parser.add_argument("--protocol", choices=PROTOCOLS, default="2018",
                        help=f"the TCP protocol between learner and clients, named by the "
                             f"date of the Kernel_Paxos programs that spoke it ({choices}; "
                             f"default: 2018)")


def learner_device_path(args: argparse.Namespace) -> str:
    if args.chardev_id is not None:
        return f"/dev/chardevice/klearner{args.chardev_id}"
    return str(args.learner_device)


def cluster_from_args(args: argparse.Namespace, prog: str) -> tuple[Cluster, Sealer]:
    """The cluster of ``--config`` and how to seal datagrams for it.

    A bad configuration (exit status 2, as kpaxosd) or key file (1) ends the program
    with one line naming where it was given.
    """
    try:
        config = load_config(args.config) if args.config else default_config()
    except ConfigError as exc:
        print(f"{prog}: error: --config: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    key_file = args.auth_key_file or config.auth_key_file
    try:
        auth = None if key_file is None else Authenticator(load_key(key_file))
    except AuthKeyError as exc:
        given = "--auth-key-file" if args.auth_key_file else f"{config.source}: auth-key-file"
        print(f"{prog}: error: {given}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None

    def seal(datagram: bytes) -> bytes:
        return datagram if auth is None else auth.seal(datagram, time.time())

    return config.cluster, seal


def leaf_errors(error: BaseException) -> list[BaseException]:
    """The exceptions inside a (possibly nested) exception group."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaf_errors(inner)]
    return [error]


def run_program(
    prog: str,
    program: Callable[[argparse.Namespace], Awaitable[int]],
    args: argparse.Namespace,
    expected: tuple[type[BaseException], ...],
) -> int:
    """Run ``program`` under trio; expected errors become one line each and exit 1."""
    try:
        return trio.run(program, args)
    except KeyboardInterrupt:
        return 0
    except BaseException as error:  # the last line of defence before the user
        leaves = leaf_errors(error)
        if not all(isinstance(leaf, expected) for leaf in leaves):
            raise
        for leaf in leaves:
            print(f"{prog}: error: {leaf}", file=sys.stderr)
        return 1
