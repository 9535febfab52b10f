"""The command-line value types that kpaxosd and the client programs share."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import pytest

from kpaxosd.arguments import (
    MAX_CLIENT_VALUE_SIZE,
    OneLineParser,
    host_and_port,
    listen_address,
    listen_ipv4,
    non_negative_int,
    non_negative_seconds,
    octal_mode,
    port,
    positive_int,
    positive_seconds,
    unicast_ipv4,
    value_size,
)


@pytest.mark.parametrize(
    ("parse", "text", "value"),
    [
        (port, "1", 1),
        (port, "65535", 65535),
        (positive_int, "7", 7),
        (non_negative_int, "0", 0),
        (value_size, str(MAX_CLIENT_VALUE_SIZE), MAX_CLIENT_VALUE_SIZE),
        (octal_mode, "0640", 0o640),
        (positive_seconds, "0.5", 0.5),
        (positive_seconds, "2", 2.0),
        (positive_seconds, "1e3", 1000.0),
        (non_negative_seconds, "0", 0.0),
        (unicast_ipv4, "127.0.0.1", "127.0.0.1"),
        (listen_ipv4, "0.0.0.0", "0.0.0.0"),
        (listen_address, "127.0.0.1:9100", ("127.0.0.1", 9100)),
        (listen_address, ":0", ("0.0.0.0", 0)),
    ],
)
def test_good_values_parse(parse: Callable[[str], object], text: str, value: object) -> None:
    assert parse(text) == value


@pytest.mark.parametrize(
    ("parse", "text"),
    [
        (port, "0"),
        (port, "65536"),
        (port, "99999"),
        (port, "8_800"),
        (port, "\u0668\u0668\u0660\u0660"),  # 8800 in Arabic-Indic digits
        (port, " 80"),
        (port, "+80"),
        (port, "0x50"),
        (positive_int, "0"),
        (positive_int, "-5"),
        (non_negative_int, "-5"),
        (value_size, str(MAX_CLIENT_VALUE_SIZE + 1)),
        (octal_mode, "0o640"),
        (octal_mode, "0800"),
        (octal_mode, "1777"),
        (positive_seconds, "0"),
        (positive_seconds, "-1"),
        (positive_seconds, "nan"),
        (positive_seconds, "inf"),
        (positive_seconds, "1e999"),
        (positive_seconds, "1_0"),
        (non_negative_seconds, "-1"),
        (non_negative_seconds, "nan"),
        (unicast_ipv4, "0.0.0.0"),
        (unicast_ipv4, "255.255.255.255"),
        (unicast_ipv4, "224.0.0.1"),
        (unicast_ipv4, "239.1.2.3"),
        (unicast_ipv4, "localhost"),
        (unicast_ipv4, "127.0.0.01"),
        (listen_ipv4, "255.255.255.255"),
        (listen_ipv4, "224.0.0.1"),
        (listen_address, "127.0.0.1"),
        (listen_address, "127.0.0.1:99999"),
        (listen_address, "no-such-host.invalid:9100"),
    ],
)
def test_bad_values_are_refused(parse: Callable[[str], object], text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse(text)


def test_a_bad_argument_is_one_line_naming_the_flag_and_exit_status_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = OneLineParser(prog="prog")
    parser.add_argument("--port", type=port)
    with pytest.raises(SystemExit) as exited:
        parser.parse_args(["--port", "99999"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("prog: error: argument --port: expected a port from 1 to 65535")
    assert "--help" in err


def test_host_and_port_checks_each_word_with_its_own_type(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = OneLineParser(prog="prog")
    parser.add_argument("-s", "--server", nargs=2, action=host_and_port(unicast_ipv4),
                        default=("127.0.0.1", 4000))
    assert parser.parse_args([]).server == ("127.0.0.1", 4000)
    assert parser.parse_args(["-s", "127.0.0.2", "4001"]).server == ("127.0.0.2", 4001)
    for words in (["0.0.0.0", "4000"], ["127.0.0.1", "99999"], ["224.0.0.1", "4000"]):
        with pytest.raises(SystemExit) as exited:
            parser.parse_args(["-s", *words])
        assert exited.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "argument -s/--server:" in err
