"""What one wake-up of an acceptor costs, against a bare trio echo.

    python -m tests.perf.acceptor_ping [--pings 5000] [--rounds 3]

A plain blocking socket, bound where the configuration puts proposer 0, sends ACCEPTs
one at a time to ``kpaxosd --acceptor 0`` and waits for each ACCEPTED; then the same
64-byte-value datagrams to a trio task that echoes them (``wait_readable``, drain,
``sendto``: the least a trio wake-up costs). For each it prints the p50 round trip and
the server's CPU (user + system) per ping, rounds alternating. The difference is what
the daemon's per-wake-up path adds to every hop of a value (issue #17's "an acceptor
costs 50-80 us of CPU per wake-up while a bare trio echo costs 8-12 us").
"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from clients.bench import cpu_seconds
from tests.integration.harness import loopback_config, role_addresses
from wire import Accept, encode, wrap

BIN = Path(sys.executable).parent

ECHO = """
import socket, sys, trio

async def main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", int(sys.argv[1])))
    sock.setblocking(False)
    while True:
        await trio.lowlevel.wait_readable(sock)
        while True:
            try:
                data, source = sock.recvfrom(65535)
            except BlockingIOError:
                break
            sock.sendto(data, source)

trio.run(main)
"""


def ping(server: str, pings: int, workdir: Path) -> tuple[float, float]:
    """(p50 round trip, server CPU per ping), both in microseconds."""
    config = loopback_config(workdir / "paxos.conf")
    addresses = role_addresses(config)
    (_, acceptor), (_, proposer) = addresses[("acceptor", 0)], addresses[("proposer", 0)]
    if server == "kpaxosd":
        argv = [str(BIN / "kpaxosd"), "-c", str(config), "--acceptor", "0",
                "--verbosity", "error"]
    else:
        argv = [sys.executable, "-c", textwrap.dedent(ECHO), str(acceptor)]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    try:
        time.sleep(3)  # started and bound
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", proposer))
            sock.settimeout(5)
            value = wrap(1, 1, b"x" * 64)
            warm = pings // 10
            times = []
            cpu_before = 0.0
            for iid in range(1, warm + pings + 1):
                if iid == warm + 1:
                    cpu_before = cpu_seconds(proc.pid)
                data = encode(Accept(iid, 10, value))  # round 1 of proposer 0
                started = time.perf_counter()
                sock.sendto(data, ("127.0.0.1", acceptor))
                sock.recv(65535)
                if iid > warm:
                    times.append(time.perf_counter() - started)
            cpu = cpu_seconds(proc.pid) - cpu_before
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    times.sort()
    return times[len(times) // 2] * 1e6, cpu / pings * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.perf.acceptor_ping",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pings", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kpaxos-ping-") as workdir:
        for _ in range(args.rounds):
            for server in ("trio-echo", "kpaxosd"):
                rtt, cpu = ping(server, args.pings, Path(workdir))
                print(f"{server:9s}: p50 round trip {rtt:5.0f} us, server CPU {cpu:5.0f} us "
                      f"per ping", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
