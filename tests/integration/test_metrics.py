"""Prometheus metrics scraped from a running daemon."""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from tests.integration.harness import (
    cluster,
    free_tcp_port,
    loopback_config,
    read_lines,
    scrape,
)


def test_metrics_are_scraped_during_a_run(tmp_path: Path) -> None:
    config = loopback_config(tmp_path / "paxos.conf")
    port = free_tcp_port()
    with cluster(tmp_path) as running:
        _, link_dir, device_args = running.devices("node")
        running.start("node", "-c", str(config), "--metrics", f"127.0.0.1:{port}", *device_args)
        cat = running.spawn(["cat", str(link_dir / "kpaxos-learner")], stdout=subprocess.PIPE)
        for i in range(5):
            subprocess.run(["bash", "-c", f"echo metric-{i} > {link_dir / 'kpaxos-client'}"],
                           check=True, timeout=60)
        read_lines(cat.stdout, 5, timeout=30)
        samples = scrape(port)

    assert samples["kpaxos_decided_values_total"] == 5
    assert samples["kpaxos_decided_instances_total"] == 5
    assert samples["kpaxos_decided_bytes_total"] == sum(len(f"metric-{i}\n") for i in range(5))
    assert samples['kpaxos_messages_received_total{role="acceptor 0",type="ACCEPT"}'] >= 5
    assert samples['kpaxos_messages_sent_total{role="acceptor 0",type="ACCEPTED"}'] >= 5
    assert samples['kpaxos_messages_received_total{role="proposer 0",type="CLIENT_VALUE"}'] >= 5
    assert samples['kpaxos_datagrams_dropped_total{reason="malformed",role="learner"}'] == 0
    assert 'kpaxos_proposer_retries_total{role="proposer 0"}' in samples
    assert 'kpaxos_proposer_preemptions_total{role="proposer 0"}' in samples
    # Five values, one at a time: nothing is left open beyond the window prepared ahead,
    # and all five instances are known decided.
    assert samples['kpaxos_proposer_decided_below{role="proposer 0"}'] == 6
    assert samples['kpaxos_proposer_open_instances{role="proposer 0"}'] >= 1
    assert samples['kpaxos_learner_stuck_reports_total{role="learner"}'] == 0
    assert 'kpaxos_learner_repeat_rounds_total{role="learner"}' in samples
    assert samples["kpaxos_device_readers"] == 1
    assert samples["kpaxos_device_reader_lag_max"] == 0
    assert samples["kpaxos_decision_latency_seconds_count"] == 5
    assert samples['kpaxos_decision_latency_seconds_bucket{le="+Inf"}'] == 5


def test_anything_but_metrics_is_not_found(tmp_path: Path) -> None:
    config = loopback_config(tmp_path / "paxos.conf")
    port = free_tcp_port()
    with cluster(tmp_path) as running:
        running.start("node", "-c", str(config), "--acceptor", "0", "--metrics",
                      f"127.0.0.1:{port}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=10)
        except urllib.error.HTTPError as error:
            assert error.code == 404
        else:
            raise AssertionError("expected 404")
