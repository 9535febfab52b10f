"""Trimming end to end: a learner with --trim makes durable acceptors forget, a kill -9'd
acceptor keeps its trim point, and a learner that starts too late is told what it lost
(an error in its log, EPIPE for its device readers) and then follows live."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.harness import (
    cluster,
    free_tcp_port,
    loopback_config,
    read_until,
    role_addresses,
    scrape,
    wait_until,
)
from tests.integration.test_durability import ask
from wire import Accepted, AcceptorState, Repeat, encode

TRIM = 100
#: Instances decided before the late learner starts: far more than the acceptors keep.
DECIDED = 3000
#: What an acceptor may hold: the last TRIM to 2 * TRIM instances, and the proposer's
#: window of instances prepared ahead (twice, for one run of retries), whatever the
#: length of the run.
ACCEPTOR_BOUND = 2 * TRIM + 2 * 128

#: Reads a learner device, copying what it reads to stdout and an EPIPE as a line.
READER = """
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
while True:
    try:
        data = os.read(fd, 65536)
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        data = b"<EPIPE>\\n"
    if not data:
        break
    os.write(1, data)
"""


# One scenario told in order; its steps share the running cluster.
def test_a_trimming_learner_bounds_the_acceptors_and_a_late_learner_is_told(  # noqa: PLR0915
    tmp_path: Path,
) -> None:
    config = loopback_config(tmp_path / "paxos.conf")
    acceptor_addresses = {aid: role_addresses(config)[("acceptor", aid)] for aid in range(3)}
    storage = tmp_path / "storage"
    ports = {aid: free_tcp_port() for aid in range(3)}
    trimmer_port = free_tcp_port()
    with cluster(tmp_path) as running:
        acceptors = {
            aid: running.start(f"acceptor{aid}", "-c", str(config), "--acceptor", str(aid),
                               "--storage", str(storage), "--metrics", f"127.0.0.1:{ports[aid]}")
            for aid in range(3)
        }
        running.start("proposer", "-c", str(config), "--proposer", "0")
        trimmer = running.start("trimmer", "-c", str(config), "--learner", "--no-devices",
                                "--trim", str(TRIM), "--metrics", f"127.0.0.1:{trimmer_port}")
        load = running.start("load", "-c", str(config), "--client", "--outstanding", "16",
                             "--no-devices", "--verbosity", "info")

        def next_iid() -> int:
            return int(scrape(trimmer_port)['kpaxos_learner_next_iid{role="learner"}'])

        wait_until(lambda: next_iid() > DECIDED, 240, f"{DECIDED} instances decided")
        assert load.stop() == 0
        # Let what the load left in flight be decided, until nothing moves.
        settled = [next_iid()]
        while True:
            time.sleep(1)
            settled.append(next_iid())
            if settled[-1] == settled[-2]:
                break
        highest = settled[-1] - 1

        trim_points, held = {}, {}
        for aid in range(3):
            samples = scrape(ports[aid])
            role = f'{{role="acceptor {aid}"}}'
            trim_points[aid] = int(samples[f"kpaxos_acceptor_trim_iid{role}"])
            held[aid] = int(samples[f"kpaxos_acceptor_instances{role}"])
            assert highest - 2 * TRIM <= trim_points[aid] <= highest - TRIM
            assert held[aid] <= ACCEPTOR_BOUND
        assert "lost to this learner" not in trimmer.log

        # kill -9 and a restart on the same storage: the trim point and only the
        # records above it come back.
        acceptors[0].proc.send_signal(signal.SIGKILL)
        acceptors[0].proc.wait(10)
        restarted = running.start("acceptor0-again", "-c", str(config), "--acceptor", "0",
                                  "--storage", str(storage))
        restored = re.search(r"\((\d+) instances restored, trimmed up to (\d+)\)", restarted.log)
        assert restored is not None, restarted.log
        assert int(restored.group(2)) == trim_points[0]
        assert int(restored.group(1)) == held[0]
        # Asked for history, it says where it trimmed, and has nothing below.
        answers = ask(acceptor_addresses[0], encode(Repeat(1, highest)), want=TRIM)
        assert AcceptorState(0, trim_points[0]) in answers
        kept = [m.iid for m in answers if isinstance(m, Accepted)]
        assert kept and all(trim_points[0] < iid <= highest for iid in kept)

        # A learner that starts now (learner-catch-up) cannot get instances 1 to the
        # trim point: it says so, its reader gets EPIPE, then what is kept, then live.
        _, late_dir, late_args = running.devices("late")
        late = running.start("late", "-c", str(config), "--learner", *late_args)
        reader = running.spawn([sys.executable, "-c", READER, str(late_dir / "kpaxos-learner")],
                               stdout=subprocess.PIPE)
        first = min(trim_points.values())
        wait_until(lambda: "lost to this learner" in late.log, 60, "the late learner's error")
        lost = re.search(r"ERROR kpaxos: instances (\d+) to (\d+) are lost to this learner",
                         late.log)
        assert lost is not None, late.log
        assert int(lost.group(1)) == 1 and first <= int(lost.group(2)) <= max(trim_points.values())
        assert read_until(reader.stdout, b"<EPIPE>\n", timeout=30) == b"<EPIPE>\n"

        subprocess.run(["bash", "-c", f"echo live-after-trim > {late_dir / 'kpaxos-client'}"],
                       check=True, timeout=60)
        after = read_until(reader.stdout, b"live-after-trim\n", timeout=30)
        assert b"<EPIPE>" not in after
        assert late.log.count("lost to this learner") == 1
