"""A learner that lacks what the acceptors trimmed takes it from a listed peer learner
(kpaxosd.paxos.peers): the same values at the same positions, and the same copies
passed over from then on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.integration.harness import cluster, free_udp_port, loopback_config

#: Reads ``count`` entries of the learner device from the oldest retained, printing
#: each as "position value"; "LOST" where values were lost.
READER = """
import sys
from clients.log import LogReader, ValuesLost
device, count = sys.argv[1], int(sys.argv[2])
seen = 0
with LogReader.open(device) as log:
    while seen < count:
        try:
            entries = log.read()
        except ValuesLost:
            print("LOST", flush=True)
            continue
        for entry in entries:
            print(entry.position, entry.value.decode().strip(), flush=True)
            seen += 1
"""


def entries(device: Path, count: int) -> list[str]:
    done = subprocess.run([sys.executable, "-c", READER, str(device), str(count)],
                          capture_output=True, text=True, timeout=120, check=True)
    return done.stdout.splitlines()


def test_a_learner_started_after_a_trim_takes_the_history_from_its_peer(
    tmp_path: Path,
) -> None:
    config = loopback_config(tmp_path / "paxos.conf", catch_up=True)
    with config.open("a") as lines:
        for lid in range(2):
            lines.write(f"learner {lid} 127.0.0.1 {free_udp_port()}\n")
    with cluster(tmp_path) as running:
        running.start_acceptors_and_proposer(config)
        _, first_dir, first_args = running.devices("first")
        # The first learner has the acceptors keep only the last 20 to 40 instances.
        first = running.start("first", "-c", str(config), "--learner", "0", "--trim", "20",
                              *first_args)
        client = first_dir / "kpaxos-client"
        written = subprocess.run(
            ["bash", "-c", f"for i in $(seq 1 200); do echo v$i > {client} || exit 1; done"],
            capture_output=True, timeout=300)
        assert written.returncode == 0, written.stderr
        history = entries(first_dir / "kpaxos-learner", 200)
        assert [line.split()[1] for line in history] == [f"v{i}" for i in range(1, 201)]

        _, late_dir, late_args = running.devices("late")
        late = running.start("late", "-c", str(config), "--learner", "1", *late_args)
        caught_up = entries(late_dir / "kpaxos-learner", 200)
        assert caught_up == history, (caught_up[:5], history[:5], late.log[-3000:])
        subprocess.run(["bash", "-c", f"echo after > {late_dir / 'kpaxos-client'}"],
                       check=True, timeout=60)
        assert entries(late_dir / "kpaxos-learner", 201)[-1].endswith(" after")
        assert entries(first_dir / "kpaxos-learner", 201)[-1].endswith(" after")
        assert "lost to this learner" not in late.log
        assert "from the peer learner at" in late.log, late.log
    assert "lost to this learner" not in first.log
