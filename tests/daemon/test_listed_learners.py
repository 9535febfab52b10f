"""``learner`` lines: which learner a process hosts, and where it listens."""

from __future__ import annotations

import pytest

from kpaxosd.cli import build_parser, spec_from_args
from kpaxosd.config import parse_config
from kpaxosd.daemon import DaemonError, plan_endpoints

LISTED = """\
acceptor 0 127.0.0.3 3003
acceptor 1 127.0.0.3 4003
acceptor 2 127.0.0.3 5003
proposer 0 127.0.0.2 3002
learner 0 127.0.0.5 3005
learner 1 127.0.0.6 3005
"""


def plan(argv: list[str], text: str = LISTED) -> list[tuple[tuple[str, int], str]]:
    config = parse_config(text, "paxos.conf")
    spec = spec_from_args(build_parser().parse_args(["--no-devices", *argv]), config)
    return [(p.address, p.describe()) for p in plan_endpoints(spec)]


def test_a_listed_learner_listens_at_its_address() -> None:
    assert plan(["--learner", "1"]) == [(("127.0.0.6", 3005), "learner")]
    assert plan(["--learner", "1", "--learner-address", "127.0.0.6:3005"]) == [
        (("127.0.0.6", 3005), "learner")]
    # The whole cluster in one process hosts the first listed learner.
    assert (("127.0.0.5", 3005), "learner") in plan([])


@pytest.mark.parametrize(("argv", "problem"), [
    (["--learner"], "say which this is with --learner ID"),
    (["--client"], "say which this is with --learner ID"),
    (["--learner", "2"], "defines no learner 2 (it has learners 0 at 127.0.0.5:3005, 1 at"),
    (["--learner", "0", "--learner-address", "127.0.0.5:0"],
     "is not learner 0's address in paxos.conf (127.0.0.5:3005)"),
])
def test_a_learner_that_the_acceptors_would_not_take_is_refused(
    argv: list[str], problem: str,
) -> None:
    with pytest.raises(DaemonError) as caught:
        plan(argv)
    assert problem in str(caught.value)


def test_without_learner_lines_a_learner_needs_no_id() -> None:
    unlisted = "".join(line + "\n" for line in LISTED.splitlines() if "learner" not in line)
    assert plan(["--learner", "--learner-address", "127.0.0.9:0"], unlisted) == [
        (("127.0.0.9", 0), "learner")]
    with pytest.raises(DaemonError, match="lists no learners; give --learner without an ID"):
        plan(["--learner", "0"], unlisted)


def test_a_replica_hosts_its_own_learner() -> None:
    text = "replica 0 127.0.0.3 3003\nlearner 0 127.0.0.5 3005\n"
    assert plan(["--replica", "0"], text) == [(("127.0.0.3", 3003), "acceptor 0 + proposer 0 "
                                                                    "+ learner")]
    assert plan([], text) == [(("127.0.0.3", 3003), "acceptor 0 + proposer 0 + learner")]
    with pytest.raises(DaemonError, match="whose learner is on the replica's address"):
        plan(["--replica", "0", "--learner", "0"], text)
