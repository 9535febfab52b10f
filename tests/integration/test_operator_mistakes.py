"""Operator mistakes on the command line: one clear line on stderr, never a traceback.

Every case runs the real program. A bad argument exits 2; a runtime failure (an
address in use, a key file the daemon refuses) exits 1.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.harness import KPAXOSD, cluster, loopback_config

BIN = Path(sys.executable).parent
KEY = b"0123456789abcdef0123456789abcdef"
TIMEOUT = 30


def run(argv: list[str | Path]) -> subprocess.CompletedProcess[str]:
    # The timeout kills a program that, wrongly, started running instead of failing.
    return subprocess.run([str(word) for word in argv], capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)


def assert_one_line(done: subprocess.CompletedProcess[str], status: int, *wanted: str) -> str:
    """stderr is one line holding every ``wanted`` text, and the exit status is ``status``."""
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.endswith("\n"), done.stderr
    for text in wanted:
        assert text in done.stderr, done.stderr
    assert done.returncode == status, done.stderr
    return done.stderr


def write_key(path: Path, mode: int) -> Path:
    path.write_bytes(KEY)
    path.chmod(mode)
    return path


# --- kpaxosd ---------------------------------------------------------------------------


def test_a_metrics_address_in_use_is_one_line_naming_the_flag(tmp_path: Path) -> None:
    config = loopback_config(tmp_path / "paxos.conf")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run([KPAXOSD, "-c", config, "--acceptor", "0",
                    "--metrics", f"127.0.0.1:{port}"])
    assert_one_line(done, 1, f"--metrics: cannot listen on 127.0.0.1:{port}",
                    "Address already in use")


@pytest.mark.parametrize("address", ["no-such-host.invalid:9100", "127.0.0.1:99999",
                                     "127.0.0.1:8_800", "224.0.0.1:9100", "127.0.0.1"])
def test_a_metrics_address_that_cannot_be_is_refused_at_once(
    tmp_path: Path, address: str
) -> None:
    config = loopback_config(tmp_path / "paxos.conf")
    done = run([KPAXOSD, "-c", config, "--acceptor", "0", "--metrics", address])
    assert_one_line(done, 2, "kpaxosd: error: argument --metrics:")


def test_a_metrics_address_of_another_host_is_one_line(tmp_path: Path) -> None:
    # 127.0.0.1 is ours, 192.0.2.1 (TEST-NET-1) is nobody's: bind fails, nothing is sent.
    config = loopback_config(tmp_path / "paxos.conf")
    done = run([KPAXOSD, "-c", config, "--acceptor", "0", "--metrics", "192.0.2.1:9100"])
    assert_one_line(done, 1, "--metrics: cannot listen on 192.0.2.1:9100")


@pytest.mark.parametrize("source", ["/dev/zero", "directory", "fifo", "big"])
def test_a_config_that_is_no_small_regular_file_is_refused(tmp_path: Path, source: str) -> None:
    path = {"/dev/zero": Path("/dev/zero"), "directory": tmp_path}.get(source, tmp_path / source)
    if source == "fifo":
        os.mkfifo(path)
    elif source == "big":
        path.write_text("#" * (2 * 1024 * 1024))
    done = run([KPAXOSD, "-c", path, "--check-config"])
    assert_one_line(done, 2, "kpaxosd: error: -c/--config:", str(path))


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--client-timeout", "-1"), ("--client-timeout", "nan"), ("--client-timeout", "inf"),
     ("--learner-address", "127.0.0.1:8_800"), ("--learner-address", "255.255.255.255:1"),
     ("--retain", "0"), ("--outstanding", "-1"), ("--value-size", "99999999"),
     ("--acceptor", "\u0661"), ("--device-mode", "0o660"), ("--values-per-instance", "0")],
)
def test_a_bad_daemon_argument_is_one_line_naming_the_flag(
    tmp_path: Path, flag: str, value: str
) -> None:
    config = loopback_config(tmp_path / "paxos.conf")
    done = run([KPAXOSD, "-c", config, "--check-config", flag, value])
    assert_one_line(done, 2, f"kpaxosd: error: argument {flag}", "--help")


def test_a_key_file_may_be_a_link_to_a_private_file(tmp_path: Path) -> None:
    # As Kubernetes mounts a secret: key -> ..data/key, ..data -> a versioned folder.
    (tmp_path / "..v1").mkdir()
    write_key(tmp_path / "..v1" / "key", 0o600)
    (tmp_path / "..data").symlink_to("..v1")
    link = tmp_path / "key"
    link.symlink_to("..data/key")
    config = loopback_config(tmp_path / "paxos.conf")
    done = run([KPAXOSD, "-c", config, "--check-config", "--auth-key-file", link])
    assert done.returncode == 0, done.stderr
    assert f"authenticated with the key in {link}" in done.stdout
    with cluster(tmp_path) as running:
        node = running.start("node", "-c", str(config), "--acceptor", "0",
                             "--auth-key-file", str(link))
        assert "every datagram is authenticated" in node.log
    (tmp_path / "..v1" / "key").chmod(0o644)
    done = run([KPAXOSD, "-c", config, "--acceptor", "0", "--auth-key-file", link])
    assert_one_line(done, 1, "--auth-key-file:", "a link to", "mode 0644", "chmod 600")


@pytest.mark.parametrize("problem", ["missing", "world-readable", "group-readable", "short"])
@pytest.mark.parametrize("given", ["flag", "config"])
def test_check_config_refuses_a_key_file_the_daemon_would_refuse(
    tmp_path: Path, problem: str, given: str
) -> None:
    key = tmp_path / "key"
    if problem == "world-readable":
        write_key(key, 0o644)
    elif problem == "group-readable":
        write_key(key, 0o640)
    elif problem == "short":
        key.write_bytes(b"tiny")
        key.chmod(0o600)
    config = loopback_config(tmp_path / "paxos.conf")
    common: list[str | Path] = ["-c", config]
    if given == "flag":
        common += ["--auth-key-file", key]
    else:
        config.write_text(config.read_text() + f"auth-key-file {key}\n")
    where = "--auth-key-file:" if given == "flag" else f"{config}: auth-key-file:"
    done = run([KPAXOSD, *common, "--check-config"])
    assert_one_line(done, 1, where, str(key))
    assert done.stdout == ""
    # The daemon refuses it alike.
    done = run([KPAXOSD, *common, "--acceptor", "0"])
    assert_one_line(done, 1, where, str(key))


# --- kpaxos-client, kpaxos-learner, kpaxos-bench -------------------------------------------


@pytest.mark.parametrize(
    ("program", "args", "flag"),
    [
        ("kpaxos-client", ["--duration", "-1"], "--duration"),
        ("kpaxos-client", ["--duration", "nan"], "--duration"),
        ("kpaxos-client", ["--duration", "0"], "--duration"),
        ("kpaxos-client", ["-o", "0"], "-o/--outstanding"),
        ("kpaxos-client", ["-o", "3000000000"], "-o/--outstanding"),
        ("kpaxos-client", ["-i", "2147483647", "-o", "2"], "-i/--id"),
        ("kpaxos-client", ["-v", "-5"], "-v/--value-size"),
        ("kpaxos-client", ["-b", "-1"], "-b/--values-per-datagram"),
        ("kpaxos-client", ["-p", "x"], "-p/--proposer-id"),
        ("kpaxos-client", ["-s", "0.0.0.0", "4000"], "-s/--learner-server"),
        ("kpaxos-client", ["-s", "255.255.255.255", "4000"], "-s/--learner-server"),
        ("kpaxos-client", ["-s", "224.0.0.1", "4000"], "-s/--learner-server"),
        ("kpaxos-client", ["-s", "127.0.0.1", "0"], "-s/--learner-server"),
        ("kpaxos-client", ["-c", "-1"], "-c/--chardev-id"),
        ("kpaxos-learner", ["-s", "127.0.0.1", "99999"], "-s/--listen"),
        ("kpaxos-learner", ["-s", "127.0.0.1", "8_800"], "-s/--listen"),
        ("kpaxos-learner", ["-s", "127.0.0.1", "\u0668\u0668\u0660\u0660"], "-s/--listen"),
        ("kpaxos-learner", ["-s", "255.255.255.255", "4000"], "-s/--listen"),
        ("kpaxos-learner", ["-s", "239.1.1.1", "4000"], "-s/--listen"),
        ("kpaxos-learner", ["-s", "127.0.0.1"], "-s/--listen"),
        ("kpaxos-learner", ["-v", "-5"], "-v/--value-size"),
        ("kpaxos-learner", ["-l", "0"], "-l/--trim"),
        ("kpaxos-learner", ["-l", "-3"], "-l/--trim"),
        ("kpaxos-bench", ["--duration", "nan"], "--duration"),
        ("kpaxos-bench", ["--duration", "-1"], "--duration"),
        ("kpaxos-bench", ["--rss-every", "-1"], "--rss-every"),
        ("kpaxos-bench", ["-o", "0"], "-o/--outstanding"),
        ("kpaxos-bench", ["--retain", "0"], "--retain"),
    ],
)
def test_a_bad_client_argument_is_one_line_naming_the_flag(
    program: str, args: list[str], flag: str
) -> None:
    done = run([BIN / program, *args])
    assert_one_line(done, 2, f"{program}: error: argument {flag}", f"{program} --help")


@pytest.mark.parametrize("program", ["kpaxos-client", "kpaxos-learner"])
def test_a_client_config_that_is_no_regular_file_is_one_line(program: str) -> None:
    done = run([BIN / program, "--config", "/dev/zero"])
    assert_one_line(done, 2, f"{program}: error: --config: /dev/zero: not a regular file")


@pytest.mark.parametrize("program", ["kpaxos-client", "kpaxos-learner"])
def test_a_client_key_file_others_may_read_is_one_line(program: str, tmp_path: Path) -> None:
    key = write_key(tmp_path / "key", 0o644)
    done = run([BIN / program, "--auth-key-file", key])
    assert_one_line(done, 1, f"{program}: error: --auth-key-file:", "mode 0644")


def test_kpaxos_learner_without_its_device_is_one_line(tmp_path: Path) -> None:
    # -l trims through the device (the daemon's learner sends the TRIM), so a cluster
    # that lists learners is no obstacle; a missing device is.
    config = loopback_config(tmp_path / "paxos.conf")
    with config.open("a") as file:
        file.write("learner 0 127.0.0.1 3999\n")
    done = run([BIN / "kpaxos-learner", "--config", str(config), "-l", "100",
                "--learner-device", str(tmp_path / "no-such-device")])
    assert_one_line(done, 1, "kpaxos-learner: error: cannot open", "No such file")


def test_kpaxosd_names_the_learner_id_a_cluster_listing_learners_needs(tmp_path: Path) -> None:
    config = loopback_config(tmp_path / "paxos.conf")
    with config.open("a") as file:
        file.write("learner 0 127.0.0.1 3999\n")
    done = run([KPAXOSD, "--config", str(config), "--learner", "--no-devices"])
    assert_one_line(done, 1, "lists learners (0 at 127.0.0.1:3999)",
                    "say which this is with --learner ID")
