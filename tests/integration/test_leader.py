"""A stable leader among real replicas: the lowest live proposer leads, followers forward
client values to it, a kill -9 of the leader hands leadership to the next one, and a
leader restarted without its proposer state takes over again without breaking
agreement. Every value written is decided exactly once, everywhere in one order."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from kpaxosd.paxos.options import PaxosOptions
from tests.integration.harness import (
    Cluster,
    cluster,
    free_tcp_port,
    free_udp_port,
    read_lines,
    read_until,
    scrape,
    wait_until,
)

REPLICAS = 3
#: Values written before the leader dies, while it is dead, and after it came back.
BEFORE, DURING, AFTER = 60, 120, 60
WINDOW = PaxosOptions().preexec_window
#: Preemptions a proposer may see over the whole run, however many values: a takeover
#: costs at most one round over the window its predecessor prepared ahead, a comeback
#: (a fresh proposer starts at instance 1) one over its own first window and one over
#: its successor's. Proposers duelling would go on as long as values come.
PREEMPTION_BOUND = 4 * WINDOW

#: Writes each argument as one value to the client device (each write returns once
#: the value is decided) and says so on stdout.
WRITER = """
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
for value in sys.argv[2:]:
    data = (value + "\\n").encode()
    assert os.write(fd, data) == len(data)
    print("ok", value, flush=True)
"""


def role(rid: int) -> str:
    return f'{{role="acceptor {rid} + proposer {rid} + learner"}}'


def start_replica(
    running: Cluster, name: str, config: Path, rid: int, storage: Path, metrics: int
) -> tuple[Path, subprocess.Popen[bytes]]:
    """A replica with its devices and a reader of its learner device."""
    _, link_dir, device_args = running.devices(name)
    running.start(name, "-c", str(config), "--replica", str(rid), "--storage", str(storage),
                  "--metrics", f"127.0.0.1:{metrics}", *device_args)
    reader = running.spawn(["cat", str(link_dir / "kpaxos-learner")], stdout=subprocess.PIPE)
    return link_dir / "kpaxos-client", reader


def write(running: Cluster, client: Path, values: list[str]) -> subprocess.Popen[bytes]:
    return running.spawn([sys.executable, "-c", WRITER, str(client), *values],
                         stdout=subprocess.PIPE)


def test_the_leader_dies_and_comes_back_and_every_value_is_decided_once(
    tmp_path: Path,
) -> None:
    hosts = [f"127.0.0.{21 + rid}" for rid in range(REPLICAS)]
    config = tmp_path / "paxos.conf"
    config.write_text("".join(
        f"replica {rid} {host} {free_udp_port(host)}\n" for rid, host in enumerate(hosts)
    ))
    storage = tmp_path / "storage"
    metrics = [free_tcp_port() for _ in range(REPLICAS)]
    values = [f"value-{i}" for i in range(BEFORE + DURING + AFTER)]
    with cluster(tmp_path) as running:
        clients, readers = {}, {}
        for rid in range(REPLICAS):
            clients[rid], readers[rid] = start_replica(
                running, f"replica{rid}", config, rid, storage, metrics[rid]
            )
        leader = running.daemons[0]

        def leaders() -> list[int]:
            return [int(scrape(metrics[rid])[f"kpaxos_proposer_leader{role(rid)}"])
                    for rid in (1, 2)]

        def preemptions(rid: int) -> float:
            return scrape(metrics[rid])[f"kpaxos_proposer_preemptions_total{role(rid)}"]

        # Replica 2's device sends to its own proposer, a follower: it forwards.
        first = write(running, clients[2], values[:BEFORE])
        assert first.wait(120) == 0
        assert leaders() == [0, 0]
        # With a leader nobody contends: not one preemption.
        assert [preemptions(rid) for rid in range(REPLICAS)] == [0, 0, 0]
        assert scrape(metrics[2])[f"kpaxos_proposer_forwarded_total{role(2)}"] >= BEFORE

        during = write(running, clients[2], values[BEFORE : BEFORE + DURING])
        read_until(during.stdout, f"ok {values[BEFORE + DURING // 4]}\n".encode(), timeout=60)
        leader.proc.send_signal(signal.SIGKILL)
        leader.proc.wait(10)
        assert during.wait(120) == 0
        wait_until(lambda: leaders() == [1, 1], 30, "replica 1 to lead")
        assert "proposer 1 leads now (proposer 0 fell silent)" in running.daemons[1].log

        # Replica 0 again on its storage, its proposer fresh: the lowest id, it leads.
        clients[0], readers[0] = start_replica(
            running, "replica0-again", config, 0, storage, metrics[0]
        )
        wait_until(lambda: leaders() == [0, 0], 30, "replica 0 to lead again")
        # (The leader at start is not logged: this is the comeback.)
        for follower in (running.daemons[1], running.daemons[2]):
            wait_until(lambda daemon=follower: "follows proposer 0" in daemon.log, 30,
                       f"{follower.name} to log that it follows replica 0")
        after = write(running, clients[0], values[BEFORE + DURING :])
        assert after.wait(120) == 0

        decided = {rid: read_lines(readers[rid].stdout, len(values), timeout=60)
                   for rid in range(REPLICAS)}
        samples = {rid: scrape(metrics[rid]) for rid in range(REPLICAS)}

    # Every value once, in one order at every learner (replica 0's learner caught up
    # on the history from its acceptor's peers).
    expected = [value.encode() for value in values]
    assert sorted(decided[1]) == sorted(expected)
    assert decided[0] == decided[1] == decided[2]
    # Values written one at a time are decided in the order written.
    assert decided[1] == expected
    for rid in range(REPLICAS):
        assert samples[rid][f"kpaxos_messages_received_total{{role=\"acceptor {rid} + "
                            f"proposer {rid} + learner\",type=\"PROPOSER_HI\"}}"] > 0
        assert samples[rid][f"kpaxos_proposer_preemptions_total{role(rid)}"] <= PREEMPTION_BOUND
    # Replica 2 always had a lower id alive to follow: it never prepared anything.
    assert samples[2][f"kpaxos_proposer_preemptions_total{role(2)}"] == 0
    assert samples[2][f"kpaxos_proposer_forwarded_total{role(2)}"] >= BEFORE + DURING


def test_one_process_hosting_every_replica_delivers_each_value_once(tmp_path: Path) -> None:
    config = tmp_path / "paxos.conf"
    config.write_text("".join(
        f"replica {rid} 127.0.0.1 {free_udp_port()}\n" for rid in range(REPLICAS)
    ))
    port = free_tcp_port()
    values = [f"value-{i}" for i in range(20)]
    with cluster(tmp_path) as running:
        _, link_dir, device_args = running.devices("all")
        running.start("all", "-c", str(config), "--metrics", f"127.0.0.1:{port}", *device_args)
        reader = running.spawn(["cat", str(link_dir / "kpaxos-learner")], stdout=subprocess.PIPE)
        assert write(running, link_dir / "kpaxos-client", values).wait(120) == 0
        subprocess.run(["bash", "-c", f"echo last > {link_dir / 'kpaxos-client'}"], check=True,
                       timeout=60)
        # Three learners in the process, one feeding the devices: each value once.
        assert read_lines(reader.stdout, len(values) + 1, timeout=30) == [
            *(value.encode() for value in values), b"last"
        ]
        samples = scrape(port)
    for rid in range(REPLICAS):
        assert samples[f"kpaxos_proposer_leader{role(rid)}"] == 0
        assert samples[f"kpaxos_proposer_preemptions_total{role(rid)}"] == 0
    assert samples["kpaxos_decided_values_total"] == len(values) + 1
