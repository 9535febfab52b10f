"""Real faults: daemons on namespace hosts, a fifth of all datagrams dropped, kill -9.

tests/netns/network.py builds the hosts and drops the datagrams; tests/netns/scenario.py
runs the cluster on them. Each test removes its namespaces and rules whatever happens,
and first removes those a crashed earlier run left.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.history.checker import check
from tests.history.mutations import lose_write, lower_barrier, move_receipt, stale_read
from tests.netns.network import (
    Network,
    in_netns,
    network,
    prefixed_namespaces,
    remove_stale,
    run,
)
from tests.netns.scenario import Report, run_scenario

pytestmark = pytest.mark.root

DROP_PERCENT = 20


@pytest.fixture(autouse=True)
def _root_and_tools() -> None:
    # Like the device tests: a machine that cannot run these fails, it does not skip.
    if os.geteuid() != 0:
        pytest.fail("network namespaces need root: run the tests as root")
    for tool in ("nft", "nsenter", "ip"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: ./run.sh test installs it")


def ours() -> list[str]:
    return [name for name in prefixed_namespaces() if name.startswith(f"kpx-{os.getpid()}-")]


def drop_a_fifth(net: Network) -> None:
    net.drop_randomly(DROP_PERCENT)


def assert_faults_were_real(report: Report, at_least: int) -> None:
    assert report.counters is not None
    seen, dropped = report.counters.seen, report.counters.dropped
    assert seen > at_least, report
    assert 0.15 < dropped / seen < 0.25, report


RECEIVER = """
import socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
# Room for every datagram, so that on a busy machine only the switch drops (root may force it).
sock.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE, unnamed in socket
sock.bind((sys.argv[1], 9000))
print("bound", flush=True)
count = 0
sock.settimeout(120)  # the sender's interpreter may be slow to start
try:
    while True:
        sock.recv(100)
        count += 1
        sock.settimeout(2)
except TimeoutError:
    print(count)
"""

SENDER = """
import socket, sys, time
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(4000):
    sock.sendto(b"datagram", (sys.argv[1], 9000))
    if i % 100 == 0:
        time.sleep(0.001)  # the receiver's buffer must not be what drops
"""


def test_hosts_reach_each_other_nothing_else_and_the_switch_drops_a_fifth() -> None:
    with network(["h1", "h2"]) as net:
        h1, h2 = net["h1"], net["h2"]
        for host in (h1, h2):
            assert run("ip", "-n", host.netns, "route", "show", "default") == ""
            links = run("ip", "-n", host.netns, "-o", "link", "show").split("\n")
            assert sorted(line.split(":")[1].split("@")[0].strip()
                          for line in links if line) == ["eth0", "lo"]
        drop_a_fifth(net)
        receiver = subprocess.Popen(h2.argv(sys.executable, "-c", RECEIVER, h2.address),
                                    stdout=subprocess.PIPE, text=True)
        try:
            assert receiver.stdout is not None
            assert receiver.stdout.readline() == "bound\n"
            run(*h1.argv(sys.executable, "-c", SENDER, h2.address), timeout=60)
            received = int(receiver.communicate(timeout=30)[0])
        finally:
            receiver.kill()
            receiver.wait()
        counters = net.counters()
        assert counters.seen == 4000
        assert received == counters.seen - counters.dropped
        assert 600 < counters.dropped < 1000  # 20 % of 4000 is 800, sd 25
    assert ours() == []


def test_namespaces_a_crashed_run_left_are_removed_with_what_runs_in_them() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = f"kpx-{gone.pid}-1-sw"  # named after a process that no longer exists
    run("ip", "netns", "add", stale)
    # It says when it runs in the namespace: before that, nothing finds it there.
    left_running = subprocess.Popen(in_netns(stale, "sh", "-c", "echo in && exec sleep 600"),
                                    stdout=subprocess.PIPE)
    try:
        assert left_running.stdout is not None
        assert left_running.stdout.readline() == b"in\n"
        assert stale in prefixed_namespaces()
        assert stale in remove_stale()
        assert stale not in prefixed_namespaces()
        assert left_running.wait(10) == -9
    finally:
        left_running.kill()
        left_running.wait()
        if stale in prefixed_namespaces():
            run("ip", "netns", "delete", stale)


def test_three_learners_show_one_linearizable_log_through_loss_and_kill_9(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Ten thousand values, a fifth of the datagrams dropped, kill -9 of an acceptor, of
    a learner and of the proposer, a learner started after the acceptors trimmed: the
    three learners' (position, value) records are one, every value in it once, and the
    recorded writes, reads and read barriers pass the linearizability checker
    (tests/history), which this very history, broken one way or another, fails."""
    # The time limit only keeps a broken run from hanging; this machine takes about
    # forty seconds (two cores, shared).
    report = run_scenario(tmp_path, drop_a_fifth, values=10_000, time_limit=600,
                          judge_pace_after=90)
    # Far fewer than the datagrams a run sends (130,000 with several values to an
    # instance, 380,000 without): enough to show the traffic went through the switch.
    assert_faults_were_real(report, at_least=10_000)
    assert ours() == []
    history = report.history
    assert history is not None
    rng = random.Random(0)
    for mutation, kind in ((lower_barrier, "stale-barrier"), (stale_read, "stale-barrier"),
                           (lose_write, "lost-write"), (move_receipt, "wrong-position")):
        found = {violation.kind for violation in check(mutation(history, rng))}
        assert kind in found, (mutation.__name__, found)
    with capsys.disabled():
        print(f"\n[netns] {report}")
