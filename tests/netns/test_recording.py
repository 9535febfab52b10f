"""The scenario's recording (tests/netns/recording.py, writer.py) makes histories the
checker can judge: parsed as written, and from real devices a history that passes,
which a single moved receipt breaks."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

from tests.history.checker import check
from tests.history.model import History, Write
from tests.integration.harness import cluster, loopback_config, wait_until
from tests.netns.recording import (
    LearnerReader,
    Recording,
    WriterRecord,
    entries_in,
    writes_in,
)
from tests.netns.scenario import WRITER


def test_a_writer_record_gives_every_write_with_its_outcome(tmp_path: Path) -> None:
    record = tmp_path / "writes.tsv"
    record.write_text(
        "started\tvalue-00000\t1.5\n"
        "started\tvalue-00001\t1.75\n"
        "started\tvalue-00002\t2.0\n"
        "ended\tvalue-00000\t2.5\t65536\n"
        "failed\tvalue-00001\t3.0\tECONNABORTED\n")
    writes = sorted(writes_in(WriterRecord("w", record)), key=lambda w: w.value)
    assert writes == [
        Write("w", b"value-00000", 1.5, 2.5, 65536, None),
        Write("w", b"value-00001", 1.75, 3.0, None, "ECONNABORTED"),
        Write("w", b"value-00002", 2.0, None, None, None),  # never returned
    ]


def test_a_reader_output_counts_whole_lines_only(tmp_path: Path) -> None:
    output = tmp_path / "reads.out"
    output.write_bytes(b"65536\tvalue-00000\n65537\tvalue-00001\n131072\tval")
    assert entries_in(output) == [(65536, b"value-00000"), (65537, b"value-00001")]


def test_writes_and_reads_through_real_devices_make_a_linearizable_history(
    tmp_path: Path,
) -> None:
    config = loopback_config(tmp_path / "paxos.conf", catch_up=True)
    values = 200
    with cluster(tmp_path) as running:
        running.start_acceptors_and_proposer(config)
        _, link_dir, device_args = running.devices("learner")
        running.start("learner", "-c", str(config), "--learner", "--device-backend", "fuse",
                      *device_args)
        reader = LearnerReader(running, "l0", link_dir / "kpaxos-learner", tmp_path)
        reader.start()
        record = WriterRecord("through-l0", tmp_path / "writes.tsv")
        subprocess.run([sys.executable, str(WRITER), str(link_dir / "kpaxos-client"), "0",
                        str(values), "8", str(record.path), "10"], check=True, timeout=120)
        wait_until(lambda: reader.count() >= values, 60, f"{values} values read")
        history = Recording(writers=[record], readers=[reader]).history()
    assert sum(w.acknowledged for w in history.writes) == values
    assert [len(read.entries) for read in history.reads] == [values]
    assert check(history) == []

    # One receipt moved to its neighbour's position: the checker must see it.
    first, second = sorted((w for w in history.writes), key=lambda w: w.position or 0)[:2]
    moved = dataclasses.replace(first, position=second.position)
    broken = History(tuple(moved if w is first else w for w in history.writes),
                     history.reads)
    assert {v.kind for v in check(broken)} >= {"wrong-position"}
