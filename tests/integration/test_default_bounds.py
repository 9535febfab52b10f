"""A cluster started with default options keeps bounded memory under a long load.

No --trim: the learner trims by default (kpaxosd/cli.py, _with_default_trim), by
instances and by bytes (PaxosOptions.trim_bytes). 200,000 values of 8,000 bytes are
1.6 GB of values, more than an acceptor holds before it refuses new instances
(acceptor_max_held_bytes, 1 GiB): without the default the cluster would stop at
about 130,000 values, and the daemon hosting three acceptors would take over 3 GB.
With it each acceptor holds at most two trim_bytes of delivered instances, plus
what is in flight, and the learner's log keeps at most --retain-bytes.

The bounds are of correctness, not of speed: the test waits for the values however
long the machine takes (up to LOAD_TIMEOUT), and asserts the peak memory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from kpaxosd.paxos.options import DEFAULT_TRIM_BYTES, PaxosOptions
from tests.integration.harness import cluster, free_tcp_port, loopback_config, scrape

BIN = Path(sys.executable).parent
VALUES = 200_000
VALUE_SIZE = 8000
LOAD_TIMEOUT = 900.0
#: The acceptors keep at most two trim_bytes of delivered instances, and the
#: instances not delivered yet: a window of open instances of at most 64 KB each.
ACCEPTOR_HELD_BOUND = 2 * DEFAULT_TRIM_BYTES + PaxosOptions().preexec_window * 64 * 1024
#: The daemon's peak RSS: three acceptors at their bound (their records cost a little
#: more than they count), the learner's log at --retain-bytes (256 MiB), its held
#: votes, the interpreter, and the allocator's slack. Unbounded, the acceptors alone
#: would take 3 GiB.
PEAK_RSS_BOUND_KIB = 1200 * 1024


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def summed(samples: dict[str, float], prefix: str) -> list[float]:
    return [value for name, value in samples.items() if name.startswith(prefix)]


def test_200000_values_through_a_default_cluster_keep_its_memory_bounded(
    tmp_path: Path,
) -> None:
    port = free_tcp_port()
    config = loopback_config(tmp_path / "paxos.conf")
    with cluster(tmp_path) as running:
        _, link_dir, device_args = running.devices("node")
        node = running.start("node", "-c", str(config), "--verbosity", "info",
                             "--metrics", f"127.0.0.1:{port}", *device_args)
        assert "trimming by default" in node.log
        client = running.spawn(
            [BIN / "kpaxos-client", "--config", str(config), "--stream",
             "--learner-device", str(link_dir / "kpaxos-learner"), "-o", "200",
             "-v", str(VALUE_SIZE), "--duration", str(LOAD_TIMEOUT)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + LOAD_TIMEOUT
        held_peak = 0.0
        decided = 0.0
        while decided < VALUES:
            assert time.monotonic() < deadline, f"only {decided:.0f} values decided"
            assert node.proc.poll() is None, node.log[-2000:]
            time.sleep(1)
            samples = scrape(port)
            decided = samples["kpaxos_decided_values_total"]
            held_peak = max(held_peak, *summed(samples, "kpaxos_acceptor_held_bytes"))
        client.send_signal(signal.SIGINT)
        client.wait(30)
        peak = peak_rss_kib(node.proc.pid)
        trim_points = summed(samples, "kpaxos_acceptor_trim_iid")
        refused = sum(summed(samples, "kpaxos_acceptor_refused_full_total"))
        assert node.proc.poll() is None

    if os.environ.get("KPAXOS_REPORT"):
        print(f"\n{decided:.0f} values decided; peak RSS {peak // 1024} MiB; acceptors held "
              f"at most {held_peak / 2**20:.1f} MiB; trim points {trim_points}")
    assert len(trim_points) == 3 and min(trim_points) > 0
    assert refused == 0
    assert held_peak <= ACCEPTOR_HELD_BOUND
    assert peak <= PEAK_RSS_BOUND_KIB
