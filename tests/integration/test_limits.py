"""Limits at the devices of a real daemon: oversize values, misuse, slow readers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.integration.harness import cluster, loopback_config, read_lines

OVERSIZE = """
import errno, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
try:
    os.write(fd, b"x" * 65536)
except OSError as exc:
    print(errno.errorcode[exc.errno])
else:
    print("accepted")
"""

LEARNER_WRITE = """
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
for data in (b"hello", b"12345678" * 2, b""):
    try:
        os.write(fd, data)
        print("accepted")
    except OSError as exc:
        print(errno.errorcode[exc.errno])
"""


def test_device_misuse_gets_clear_errors_and_loses_nothing(tmp_path: Path) -> None:
    config = loopback_config(tmp_path / "paxos.conf")
    with cluster(tmp_path) as running:
        _, link_dir, device_args = running.devices("node")
        running.start("node", "-c", str(config), *device_args)
        learner, client = link_dir / "kpaxos-learner", link_dir / "kpaxos-client"
        cat = running.spawn(["cat", str(learner)], stdout=subprocess.PIPE)
        subprocess.run(["bash", "-c", f"echo before > {client}"], check=True, timeout=60)

        oversize = subprocess.run([sys.executable, "-c", OVERSIZE, str(client)],
                                  capture_output=True, text=True, timeout=60)
        assert oversize.stdout.split() == ["EMSGSIZE"], oversize.stderr
        misuse = subprocess.run([sys.executable, "-c", LEARNER_WRITE, str(learner)],
                                capture_output=True, text=True, timeout=60)
        assert misuse.stdout.split()[:2] == ["EINVAL", "EINVAL"], misuse.stderr

        subprocess.run(["bash", "-c", f"echo after > {client}"], check=True, timeout=60)
        assert read_lines(cat.stdout, 2, timeout=30) == [b"before", b"after"]


def test_a_stopped_reader_does_not_slow_the_others(tmp_path: Path) -> None:
    config = loopback_config(tmp_path / "paxos.conf")
    with cluster(tmp_path) as running:
        _, link_dir, device_args = running.devices("node")
        running.start("node", "-c", str(config), *device_args)
        learner, client = link_dir / "kpaxos-learner", link_dir / "kpaxos-client"
        stalled = running.spawn(["cat", str(learner)], stdout=subprocess.PIPE)
        lively = running.spawn(["cat", str(learner)], stdout=subprocess.PIPE)
        os.kill(stalled.pid, signal.SIGSTOP)
        try:
            writer = subprocess.run(
                ["bash", "-c", f"for i in $(seq 1 300); do echo v$i > {client} || exit 1; done"],
                capture_output=True, timeout=300,
            )
            assert writer.returncode == 0, writer.stderr
            expected = [b"v%d" % i for i in range(1, 301)]
            assert read_lines(lively.stdout, 300, timeout=60) == expected
        finally:
            os.kill(stalled.pid, signal.SIGCONT)
        assert read_lines(stalled.stdout, 300, timeout=60) == expected
