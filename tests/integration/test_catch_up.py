"""A learner started late replays the retained history from instance 1, then follows."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.integration.harness import cluster, loopback_config, read_lines


def test_a_late_learner_delivers_the_whole_history_then_follows_live(tmp_path: Path) -> None:
    config = loopback_config(tmp_path / "paxos.conf", catch_up=True)
    with cluster(tmp_path) as running:
        running.start_acceptors_and_proposer(config)
        _, early_dir, early_args = running.devices("early")
        running.start("early", "-c", str(config), "--learner", *early_args)
        early = running.spawn(["cat", str(early_dir / "kpaxos-learner")], stdout=subprocess.PIPE)
        client = early_dir / "kpaxos-client"
        first = subprocess.run(
            ["bash", "-c", f"for i in $(seq 1 150); do echo old$i > {client} || exit 1; done"],
            capture_output=True, timeout=300,
        )
        assert first.returncode == 0, first.stderr
        history = read_lines(early.stdout, 150, timeout=60)

        _, late_dir, late_args = running.devices("late")
        running.start("late", "-c", str(config), "--learner", *late_args)
        late = running.spawn(["cat", str(late_dir / "kpaxos-learner")], stdout=subprocess.PIPE)
        assert read_lines(late.stdout, 150, timeout=60) == history

        subprocess.run(["bash", "-c", f"echo new > {late_dir / 'kpaxos-client'}"], check=True,
                       timeout=60)
        assert read_lines(late.stdout, 1, timeout=30) == [b"new"]
        assert read_lines(early.stdout, 1, timeout=30) == [b"new"]
