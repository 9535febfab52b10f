"""A learner with --storage keeps its log: a consumer that resumes after the position
it saved gets exactly the next values, across kill -9 of itself and of the learner;
and the learner passes over the same copies it would have without the restart."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

from tests.integration.harness import (
    cluster,
    free_tcp_port,
    loopback_config,
    role_addresses,
    scrape,
    wait_until,
)
from wire.datagram import encode
from wire.envelope import wrap
from wire.messages import ClientValue
from wire.original import OriginalClientValue, pack_client_value

VALUES = 10_000
#: Values written before the consumer and the learner are killed.
FIRST = 6_000
WRITERS = 4

#: Writes values first to end - 1, one open file per thread.
WRITER = """
import sys, threading
device, writers, first, end = sys.argv[1], *map(int, sys.argv[2:5])
def write(w):
    with open(device, "wb", buffering=0) as f:
        for n in range(first + w, end, writers):
            f.write(b"value-%06d\\n" % n)
threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
for t in threads: t.start()
for t in threads: t.join()
"""

#: A consumer that applies each value to its output and saves, with each one, the
#: position it read and the output's length, atomically: after a crash it cuts the
#: output back to what it saved and resumes after that position.
CONSUMER = """
import os, sys
from clients.log import LogReader
device, out_path, state_path = sys.argv[1:4]
after, length = None, 0
if os.path.exists(state_path):
    after, length = map(int, open(state_path).read().split())
out = os.open(out_path, os.O_WRONLY | os.O_CREAT)
os.ftruncate(out, length)
os.lseek(out, length, os.SEEK_SET)
with LogReader.open(device, after=after) if after is not None else LogReader.open(device) as log:
    for entry in log:
        length += os.write(out, entry.value)
        with open(state_path + ".new", "w") as state:
            state.write(f"{entry.position} {length}")
        os.replace(state_path + ".new", state_path)
"""


def lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def end_of(device: Path) -> int:
    """The position after the newest value the learner behind ``device`` delivered."""
    done = subprocess.run([sys.executable, "-c", BOUNDS, str(device)], capture_output=True,
                          text=True, timeout=30, check=True)
    return int(done.stdout)


BOUNDS = "import sys; from clients.log import reader_bounds; print(reader_bounds(sys.argv[1])[1])"


def test_a_consumer_resumes_exactly_after_kill_9_of_itself_and_of_its_learner(
    tmp_path: Path,
) -> None:
    config = loopback_config(tmp_path / "paxos.conf", catch_up=True)
    reference_out, consumed, state = (tmp_path / "reference", tmp_path / "consumed",
                                      tmp_path / "consumer-state")
    with cluster(tmp_path) as running:
        running.start_acceptors_and_proposer(config)
        # The reference learner trims: the acceptors keep only the last 500 to 1,000
        # instances, so what the consumer has not read yet when it dies survives only
        # in the durable learner's own log.
        _, reference_dir, reference_args = running.devices("reference")
        running.start("reference", "-c", str(config), "--learner", "--trim", "500",
                      *reference_args)
        with open(reference_out, "wb") as sink:
            running.spawn(["cat", reference_dir / "kpaxos-learner"], stdout=sink)
        _, durable_dir, durable_args = running.devices("durable")
        learner_args = ("-c", str(config), "--learner", "--storage", str(tmp_path / "store"),
                        *durable_args)
        durable = running.start("durable", *learner_args)

        def consumer() -> subprocess.Popen[bytes]:
            return running.spawn([sys.executable, "-c", CONSUMER,
                                  str(durable_dir / "kpaxos-learner"), str(consumed),
                                  str(state)])

        def write(first: int, end: int, writers: int) -> None:
            writer = running.spawn([sys.executable, "-c", WRITER,
                                    str(reference_dir / "kpaxos-client"), str(writers),
                                    str(first), str(end)])
            assert writer.wait(300) == 0

        # 6,000 values one at a time (an instance each); the consumer dies early on.
        reader = consumer()
        writer = running.spawn([sys.executable, "-c", WRITER,
                                str(reference_dir / "kpaxos-client"), "1", "0", str(FIRST)])
        wait_until(lambda: lines(consumed) >= 1000, 120, "the consumer to start")
        reader.send_signal(signal.SIGKILL)
        reader.wait(10)
        assert writer.wait(300) == 0
        wait_until(lambda: end_of(durable_dir / "kpaxos-learner")
                   == end_of(reference_dir / "kpaxos-learner"), 120,
                   "the durable learner to deliver the first values")
        durable.proc.send_signal(signal.SIGKILL)
        durable.proc.wait(10)

        # A learner without a log of its own could not give the consumer what it missed.
        _, _, fresh_args = running.devices("fresh")
        fresh = running.start("fresh", "-c", str(config), "--learner", *fresh_args)
        wait_until(lambda: "are lost to this learner" in fresh.log, 60,
                   "the acceptors to say they trimmed the history")

        again = running.start("durable-again", *learner_args)
        assert f"{FIRST} values restored" in again.log, again.log
        reader = consumer()
        write(FIRST, VALUES, WRITERS)  # the rest, four writers at a time
        wait_until(lambda: lines(reference_out) >= VALUES, 120, "the reference reader")
        wait_until(lambda: lines(consumed) >= VALUES, 120, "the consumer to catch up")
        reader.kill()
    assert lines(reference_out) == VALUES
    assert consumed.read_bytes() == reference_out.read_bytes()


def test_a_restarted_learner_passes_over_a_copy_its_log_let_go_of(tmp_path: Path) -> None:
    """The exactly-once memory comes back whole, not only from the values kept.

    Fifty original client values are decided; the learner keeps only the last ten
    (--retain 10) and has the acceptors forget all but the last instances (--trim 2).
    Learner and proposer are killed with -9 and restarted (the new proposer finds
    no trace of the first values, so it has the first one decided again when its
    client resends it): the learner passes over that copy, as one that never
    stopped would, and delivers the next new value.
    """
    config = loopback_config(tmp_path / "paxos.conf", catch_up=True)
    proposer = role_addresses(config)[("proposer", 0)]
    with cluster(tmp_path) as running:
        running.start_acceptors_and_proposer(config)
        _, link_dir, device_args = running.devices("durable")
        learner_args = ("-c", str(config), "--learner", "--storage", str(tmp_path / "store"),
                        "--retain", "10", "--trim", "2", *device_args)
        first_life = running.start("durable", *learner_args)
        before, after = tmp_path / "before", tmp_path / "after"
        with open(before, "wb") as sink:
            running.spawn(["cat", link_dir / "kpaxos-learner"], stdout=sink)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            for tens in range(5):  # ten at a time: the log lets go of the older ones
                for n in range(10 * tens + 1, 10 * tens + 11):
                    client.sendto(encode(ClientValue(original_value(n))), proposer)
                last = b"payload-%03d" % (10 * tens + 10)
                wait_until(lambda last=last: last in before.read_bytes(), 60,
                           f"value {10 * tens + 10}")
            assert before.read_bytes().count(b"payload-") == 50
            first_life.proc.send_signal(signal.SIGKILL)
            first_life.proc.wait(10)
            old_proposer = next(d for d in running.daemons if d.name == "proposer")
            old_proposer.proc.send_signal(signal.SIGKILL)
            old_proposer.proc.wait(10)
            running.start("proposer-again", "-c", str(config), "--proposer", "0")
            metrics = free_tcp_port()
            second_life = running.start("durable-again", *learner_args,
                                        "--metrics", f"127.0.0.1:{metrics}")
            restored = re.search(r"(\d+) values restored", second_life.log)
            assert restored and int(restored[1]) < 50, second_life.log  # not value 1
            with open(after, "wb") as sink:
                running.spawn(["cat", link_dir / "kpaxos-learner"], stdout=sink)
            client.sendto(encode(ClientValue(original_value(1))), proposer)  # a resend
            client.sendto(encode(ClientValue(original_value(51))), proposer)
            wait_until(lambda: b"payload-051" in after.read_bytes(), 60, "the next value")
            # The copy was decided again, and passed over (not lost on the way).
            suppressed = {name: count for name, count in scrape(metrics).items()
                          if name.startswith("kpaxos_duplicates_suppressed_total")}
            assert list(suppressed.values()) == [1], suppressed
    # What the second life retained (the last ten, less what 51 pushed out before cat
    # read it), then 51: never the copy.
    delivered = [int(n) for n in re.findall(rb"payload-(\d+)", after.read_bytes())]
    assert delivered == [*range(delivered[0], 52)] and delivered[0] > 40, delivered


def original_value(n: int) -> bytes:
    """The n-th value of one original client (its id, a timestamp per value)."""
    return pack_client_value(OriginalClientValue(77, 1_700_000_000, n, b"payload-%03d" % n))


def test_a_learner_with_storage_keeps_values_of_any_origin(tmp_path: Path) -> None:
    """An envelope's ids are u64s and an original timestamp may pass 2**63 µs: the
    durable log keeps such values (committing one once raised out of the daemon),
    and gives them back after kill -9."""
    config = loopback_config(tmp_path / "paxos.conf", catch_up=True)
    proposer = role_addresses(config)[("proposer", 0)]
    wide = [wrap(2**64 - 1, 2**64 - 1, b"wide-envelope"),
            pack_client_value(OriginalClientValue(5, 2**62, 999_999, b"wide-stamp"))]
    with cluster(tmp_path) as running:
        running.start_acceptors_and_proposer(config)
        _, link_dir, device_args = running.devices("durable")
        learner_args = ("-c", str(config), "--learner", "--storage", str(tmp_path / "store"),
                        *device_args)
        durable = running.start("durable", *learner_args)
        out = tmp_path / "out"
        with open(out, "wb") as sink, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            running.spawn(["cat", link_dir / "kpaxos-learner"], stdout=sink)
            for value in wide:
                client.sendto(encode(ClientValue(value)), proposer)
            wait_until(lambda: b"wide-stamp" in out.read_bytes()
                       and b"wide-envelope" in out.read_bytes(), 60, "both values")
        assert durable.proc.poll() is None, durable.log
        durable.proc.send_signal(signal.SIGKILL)
        durable.proc.wait(10)
        again = running.start("durable-again", *learner_args)
        assert "2 values restored" in again.log, again.log
        replayed = subprocess.run(["timeout", "5", "cat", link_dir / "kpaxos-learner"],
                                  capture_output=True, check=False).stdout
        assert b"wide-envelope" in replayed and b"wide-stamp" in replayed
