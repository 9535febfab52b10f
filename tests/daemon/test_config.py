from __future__ import annotations

import os
from pathlib import Path

import pytest

from kpaxosd.config import (
    MAX_CONFIG_BYTES,
    ConfigError,
    default_config,
    describe,
    load_config,
    parse_config,
)

GOOD = """\
# a libpaxos paxos.conf
acceptor 0 127.0.0.1 8800
acceptor 1 127.0.0.1 8801   # trailing comment
replica 2 127.0.0.1 8802
proposer 0 127.0.0.1 5550
proposer 1 127.0.0.1 5551
verbosity debug
learner-catch-up no
proposer-timeout 2.5
proposer-preexec-window 64
lmdb-sync yes
learner-max-held-bytes 1048576
"""


def test_a_libpaxos_file_is_understood() -> None:
    config = parse_config(GOOD, "paxos.conf")
    assert config.cluster.acceptors == {
        0: ("127.0.0.1", 8800),
        1: ("127.0.0.1", 8801),
        2: ("127.0.0.1", 8802),
    }
    assert config.cluster.proposers == {
        0: ("127.0.0.1", 5550),
        1: ("127.0.0.1", 5551),
        2: ("127.0.0.1", 8802),
    }
    assert config.verbosity == "debug"
    assert config.options.learner_catch_up is False
    assert config.options.proposer_timeout == 2.5
    assert config.options.preexec_window == 64
    assert config.options.learner_max_held_bytes == 1048576
    assert config.ignored == ((11, "lmdb-sync yes"),)


def test_the_built_in_cluster_is_the_originals() -> None:
    config = default_config()
    assert config.cluster.acceptors == {
        0: ("127.0.0.3", 3003),
        1: ("127.0.0.3", 4003),
        2: ("127.0.0.3", 5003),
    }
    assert config.cluster.proposers == {0: ("127.0.0.2", 3002)}
    assert config.options.preexec_window == 128
    assert config.options.max_values_per_instance == 1024  # batching on
    assert config.options.proposer_timeout == 1.0


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("acceptor 0 127.0.0.1 1\nproposer 0 127.0.0.1 2\nbogus 1\n", 3, "unknown directive"),
        ("acceptor 0 127.0.0.1\n", 1, "needs ID ADDRESS PORT"),
        ("acceptor x 127.0.0.1 1\n", 1, "id must be a number"),
        ("acceptor -1 127.0.0.1 1\n", 1, "id must be a number"),
        ("acceptor 0 example 1\n", 1, "not an IPv4 address"),
        # A role's address is where peers send and the only source its messages are
        # taken from: one host's, never any/broadcast/multicast.
        ("acceptor 0 0.0.0.0 1\n", 1, "'any address'"),
        ("proposer 0 255.255.255.255 1\n", 1, "broadcast"),
        ("acceptor 0 224.0.0.1 1\n", 1, "multicast"),
        ("acceptor 0 127.0.0.1 70000\n", 1, "port must be 1 to 65535"),
        ("acceptor 0 127.0.0.1 1\nacceptor 0 127.0.0.1 2\n", 2, "defined twice"),
        ("acceptor 0 127.0.0.1 1\nproposer 0 127.0.0.1 1\n", 2, "already acceptor 0"),
        ("acceptor 0 127.0.0.1 1\nacceptor 2 127.0.0.1 3\nproposer 0 127.0.0.1 2\n", 2,
         "acceptor 1 is missing"),
        ("acceptor 0 127.0.0.1 1\nproposer 0 127.0.0.1 2\nlearner 1 127.0.0.1 3\n", 3,
         "learner 0 is missing"),
        ("acceptor 0 127.0.0.1 1\nproposer 0 127.0.0.1 2\nlearner 0 127.0.0.1 1\n", 3,
         "already acceptor 0"),
        ("acceptor 0 127.0.0.1 1\nlearner 0 0.0.0.0 3\n", 2, "'any address'"),
        ("acceptor 0 127.0.0.1 1\nproposer 0 127.0.0.1 2\nverbosity loud\n", 3, "verbosity"),
        ("acceptor 0 127.0.0.1 1\nproposer 0 127.0.0.1 2\nproposer-timeout -1\n", 3,
         "proposer-timeout"),
        ("acceptor 0 127.0.0.1 1\nproposer 0 127.0.0.1 2\nlearner-catch-up maybe\n", 3,
         "yes or no"),
        ("acceptor 0 127.0.0.1 1\nproposer 0 127.0.0.1 2\nproposer-preexec-window 0\n", 3,
         "window"),
        ("acceptor 0 127.0.0.1 1\nproposer 0 127.0.0.1 2\nproposer-values-per-instance 0\n",
         3, "no batching"),
    ],
)
def test_a_wrong_line_is_named(text: str, line: int, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "my.conf")
    assert caught.value.line == line
    assert problem in str(caught.value)
    assert str(caught.value).startswith(f"my.conf:{line}: ")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("proposer 0 127.0.0.1 2\n", "no acceptor"),
        ("acceptor 0 127.0.0.1 2\n", "no proposer"),
        ("", "no acceptor"),
        ("".join(f"proposer {i} 127.0.0.1 {100 + i}\n" for i in range(11))
         + "acceptor 0 127.0.0.1 1\n", "proposer id 10"),
    ],
)
def test_a_file_missing_roles_is_refused(text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_config(text, "my.conf")


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.conf: cannot read"):
        load_config(tmp_path / "missing.conf")
    binary = tmp_path / "binary.conf"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(binary)


def test_only_a_regular_file_of_at_most_a_mebibyte_is_read(tmp_path: Path) -> None:
    # /dev/zero never ends and a FIFO would wait for a writer: both are refused at once.
    with pytest.raises(ConfigError, match="/dev/zero: not a regular file"):
        load_config("/dev/zero")
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config(fifo)
    big = tmp_path / "big.conf"
    big.write_text("# " + "x" * MAX_CONFIG_BYTES + "\n")
    with pytest.raises(ConfigError, match=r"too big for a paxos\.conf"):
        load_config(big)
    fits = tmp_path / "fits.conf"
    roles = "acceptor 0 127.0.0.1 1\nproposer 0 127.0.0.1 2\n"
    fits.write_text(roles + "#" * (MAX_CONFIG_BYTES - len(roles) - 1) + "\n")
    assert fits.stat().st_size == MAX_CONFIG_BYTES
    assert load_config(fits).cluster.acceptors == {0: ("127.0.0.1", 1)}


def test_batching_can_be_turned_off_for_original_learners() -> None:
    text = "acceptor 0 127.0.0.1 1\nproposer 0 127.0.0.1 2\nproposer-values-per-instance 1\n"
    assert parse_config(text).options.max_values_per_instance == 1


def test_learner_lines_list_the_learners_that_may_trim() -> None:
    config = parse_config(
        "replica 0 127.0.0.3 3003\nlearner 0 127.0.0.5 3005\nlearner 1 127.0.0.6 3005\n")
    cluster = config.cluster
    assert cluster.learners == {0: ("127.0.0.5", 3005), 1: ("127.0.0.6", 3005)}
    assert cluster.lists_learner_at(("127.0.0.6", 3005))
    assert cluster.lists_learner_at(("127.0.0.3", 3003))  # the replica hosts one
    assert not cluster.lists_learner_at(("127.0.0.5", 3006))
    assert "learner 1 at 127.0.0.6:3005" in list(describe(config))
    assert parse_config("replica 0 127.0.0.3 3003\n").cluster.learners == {}
