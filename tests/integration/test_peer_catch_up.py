"""A learner that lacks what the acceptors trimmed takes it from a listed peer learner
(kpaxosd.paxos.peers): the same values at the same positions, and the same copies
passed over from then on, even a copy of a value it never saw itself."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

from tests.integration.harness import (
    cluster,
    free_tcp_port,
    free_udp_port,
    loopback_config,
    role_addresses,
    scrape,
    wait_until,
)
from wire.datagram import encode
from wire.messages import ClientValue
from wire.original import OriginalClientValue, pack_client_value

#: One original client's value (struct client_value: its id and a timestamp).
ORIGINAL = pack_client_value(OriginalClientValue(77, 1_700_000_000, 1, b"original"))

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
            print(entry.position, entry.value.decode(errors="replace").strip(), flush=True)
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
        proposer = role_addresses(config)[("proposer", 0)]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as original_client:
            original_client.sendto(encode(ClientValue(ORIGINAL)), proposer)
        wait_until(lambda: entries(first_dir / "kpaxos-learner", 1), 60, "the first value")
        written = subprocess.run(
            ["bash", "-c", f"for i in $(seq 1 200); do echo v$i > {client} || exit 1; done"],
            capture_output=True, timeout=300)
        assert written.returncode == 0, written.stderr
        history = entries(first_dir / "kpaxos-learner", 201)
        assert [line.split(maxsplit=1)[1] for line in history[1:]] == [
            f"v{i}" for i in range(1, 201)]

        _, late_dir, late_args = running.devices("late")
        metrics = free_tcp_port()
        late = running.start("late", "-c", str(config), "--learner", "1", *late_args,
                             "--metrics", f"127.0.0.1:{metrics}")
        assert entries(late_dir / "kpaxos-learner", 201) == history
        assert "lost to this learner" not in late.log
        assert "from the peer learner at" in late.log, late.log

        # The first value's client resends it to a new proposer, which finds no trace
        # of it (the acceptors trimmed it) and has it decided again: the late learner
        # passes that copy over as the first does, with the memory it took.
        old_proposer = next(d for d in running.daemons if d.name == "proposer")
        old_proposer.proc.send_signal(signal.SIGKILL)
        old_proposer.proc.wait(10)
        running.start("proposer-again", "-c", str(config), "--proposer", "0")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as original_client:
            original_client.sendto(encode(ClientValue(ORIGINAL)), proposer)
        subprocess.run(["bash", "-c", f"echo after > {late_dir / 'kpaxos-client'}"],
                       check=True, timeout=60)
        late_log = entries(late_dir / "kpaxos-learner", 202)
        assert late_log == entries(first_dir / "kpaxos-learner", 202)
        assert late_log[-1].endswith(" after")
        scraped = scrape(metrics)
        suppressed = [count for name, count in scraped.items()
                      if name.startswith("kpaxos_duplicates_suppressed_total")]
        assert suppressed == [1], suppressed
        assert [count for name, count in scraped.items()
                if name.startswith("kpaxos_learner_peer_values_total")] == [201]
    assert "lost to this learner" not in first.log
