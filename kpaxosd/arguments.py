"""Command-line value types shared by kpaxosd and the client programs.

Each type turns one word of a command line into a checked value or raises
:class:`argparse.ArgumentTypeError`, which argparse reports naming the flag. With
:class:`OneLineParser` that report is one line and exit status 2, as for any other
mistake in the arguments.

Numbers are ASCII digits only: ``int()`` and ``float()`` also take ``8_800``, spaces,
``nan``, ``inf`` and other scripts' digits, none of which an operator means as a port,
a count or a time.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import re
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from wire import MAX_VALUE_SIZE
from wire.original import CLIENT_VALUE_HEADER_SIZE

#: The address of a role or server: (IPv4 address, port).
HostPort = tuple[str, int]

_INTEGER = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_OCTAL = re.compile(r"[0-7]+")

#: The payload of an original client value (struct client_value) fits one datagram.
MAX_CLIENT_VALUE_SIZE = MAX_VALUE_SIZE - CLIENT_VALUE_HEADER_SIZE


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr, exit status 2.

    argparse prints the whole usage before the error; for a daemon's or a script's log
    one line saying which flag is wrong, and pointing at --help, reads better.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _integer(text: str, expected: str) -> int:
    if not _INTEGER.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return int(text)


def integer_in(low: int, high: int | None, expected: str) -> Callable[[str], int]:
    """A type for whole numbers from ``low`` to ``high`` (None: no upper bound);
    ``expected`` says what they are, for the error message."""

    def parse(text: str) -> int:
        number = _integer(text, expected)
        if number < low or (high is not None and number > high):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return number

    return parse


positive_int = integer_in(1, None, "a whole number from 1")
non_negative_int = integer_in(0, None, "a whole number from 0")
port = integer_in(1, 65535, "a port from 1 to 65535")
#: A port to listen on, where 0 lets the system choose one.
listen_port = integer_in(0, 65535, "a port from 0 (any free port) to 65535")
value_size = integer_in(0, MAX_CLIENT_VALUE_SIZE, f"0 to {MAX_CLIENT_VALUE_SIZE} bytes")


def octal_mode(text: str) -> int:
    """File permissions written in octal, like 0660."""
    if not _OCTAL.fullmatch(text) or int(text, 8) > 0o777:
        raise argparse.ArgumentTypeError(f"expected an octal mode like 0660, got {text!r}")
    return int(text, 8)


def _seconds(text: str, low_ok: bool) -> float:
    expected = "seconds from 0" if low_ok else "a number of seconds above 0"
    if not _DECIMAL.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    seconds = float(text)
    # 1e999 parses as inf: no finite wait is that long, so it is a typo.
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not low_ok):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return seconds


def positive_seconds(text: str) -> float:
    """A finite time above 0, in seconds."""
    return _seconds(text, low_ok=False)


def non_negative_seconds(text: str) -> float:
    """A finite time from 0, in seconds (what 0 means is the flag's business)."""
    return _seconds(text, low_ok=True)


def _ipv4(text: str) -> ipaddress.IPv4Address:
    try:
        # ipaddress takes only ASCII digits and no leading zeros (no octal surprises).
        return ipaddress.IPv4Address(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an IPv4 address like 127.0.0.1, got {text!r}"
        ) from None


def _refuse_group_addresses(address: ipaddress.IPv4Address, text: str) -> None:
    # A broadcast or multicast address reaches many hosts or none: never one peer.
    if address == ipaddress.IPv4Address("255.255.255.255"):
        raise argparse.ArgumentTypeError(f"{text} is the broadcast address, not one host's")
    if address.is_multicast:
        raise argparse.ArgumentTypeError(f"{text} is a multicast address, not one host's")


def unicast_ipv4(text: str) -> str:
    """The IPv4 address of one host to send to: not 0.0.0.0, broadcast or multicast."""
    address = _ipv4(text)
    _refuse_group_addresses(address, text)
    if address.is_unspecified:
        raise argparse.ArgumentTypeError(
            f"{text} is 'any address', which can be listened on but not sent to; "
            "give the host's address"
        )
    return str(address)


def listen_ipv4(text: str) -> str:
    """An IPv4 address to listen on; 0.0.0.0 is every address of this host."""
    address = _ipv4(text)
    _refuse_group_addresses(address, text)
    return str(address)


def listen_address(text: str) -> HostPort:
    """``HOST:PORT`` to listen on: an empty HOST is 0.0.0.0, port 0 any free port."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT like 127.0.0.1:9100, got {text!r}")
    return (listen_ipv4(host) if host else "0.0.0.0", listen_port(port_text))


def host_and_port(host_type: Callable[[str], str]) -> type[argparse.Action]:
    """An action for ``nargs=2`` flags written ``HOST PORT``: argparse would apply one
    type to both words, so this checks each with its own."""

    class HostAndPort(argparse.Action):
        def __call__(
            self,
            parser: argparse.ArgumentParser,
            namespace: argparse.Namespace,
            values: str | Sequence[Any] | None,
            option_string: str | None = None,
        ) -> None:
            assert isinstance(values, list) and len(values) == 2
            try:
                address: HostPort = (host_type(values[0]), port(values[1]))
            except argparse.ArgumentTypeError as exc:
                raise argparse.ArgumentError(self, str(exc)) from None
            setattr(namespace, self.dest, address)

    return HostAndPort

