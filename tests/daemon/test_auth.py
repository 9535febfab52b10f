from __future__ import annotations

import os
from pathlib import Path

import pytest

from kpaxosd.auth import Authenticator, AuthError, AuthKeyError, load_key
from tests.conftest import read_vectors
from wire.auth import TRAILER, TRAILER_SIZE

KEY = b"k" * 32
VECTORS = read_vectors("kernel_paxos_wire.txt")
NOW = 1_800_000_000.0


def test_a_sealed_datagram_opens_to_itself() -> None:
    auth = Authenticator(KEY)
    sealed = auth.seal(VECTORS["prepare_iid1_ballot11"], NOW)
    assert len(sealed) == len(VECTORS["prepare_iid1_ballot11"]) + TRAILER_SIZE
    assert TRAILER.parse(sealed[-TRAILER_SIZE:]).sent_ms == int(NOW * 1000)
    assert auth.open_untrusted(sealed, NOW + 1) == VECTORS["prepare_iid1_ballot11"]


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda sealed: sealed[:-TRAILER_SIZE], "bad-mac"),  # the original datagram, no MAC
        (lambda sealed: sealed[:10], "missing"),
        (lambda sealed: sealed[:-1] + bytes([sealed[-1] ^ 1]), "bad-mac"),
        (lambda sealed: bytes([sealed[0] ^ 0xFF]) + sealed[1:], "bad-mac"),
        (lambda sealed: Authenticator(b"x" * 32).seal(sealed[:-TRAILER_SIZE], NOW), "bad-mac"),
    ],
)
def test_a_missing_or_wrong_mac_is_refused(mangle: object, reason: str) -> None:
    auth = Authenticator(KEY)
    sealed = auth.seal(VECTORS["accepted_aid1_iid9_ballot13_vballot13_hello"], NOW)
    with pytest.raises(AuthError) as caught:
        auth.open_untrusted(mangle(sealed), NOW)  # type: ignore[operator]
    assert caught.value.reason == reason


def test_a_datagram_outside_the_clock_window_is_refused() -> None:
    auth = Authenticator(KEY, max_skew=30)
    sealed = auth.seal(VECTORS["trim_iid100000"], NOW)
    assert auth.open_untrusted(sealed, NOW + 29)
    with pytest.raises(AuthError, match="stale"):
        auth.open_untrusted(sealed, NOW + 31)
    with pytest.raises(AuthError, match="stale"):
        auth.open_untrusted(sealed, NOW - 31)


def test_a_replayed_client_value_is_refused_but_other_messages_pass() -> None:
    auth = Authenticator(KEY)
    value = auth.seal(VECTORS["client_value_hello"], NOW)
    assert auth.open_untrusted(value, NOW) == VECTORS["client_value_hello"]
    with pytest.raises(AuthError, match="replayed"):
        auth.open_untrusted(value, NOW + 5)
    # The same value sent anew (a new stamp) is a new datagram.
    assert auth.open_untrusted(auth.seal(VECTORS["client_value_hello"], NOW + 1), NOW + 1)
    # Paxos messages are idempotent: a duplicate is the network's, not an attack.
    prepare = auth.seal(VECTORS["prepare_iid1_ballot11"], NOW)
    assert auth.open_untrusted(prepare, NOW) == auth.open_untrusted(prepare, NOW)


def write_key(path: Path, key: bytes, mode: int) -> Path:
    path.write_bytes(key)
    os.chmod(path, mode)
    return path


def test_a_key_file_others_may_read_is_refused(tmp_path: Path) -> None:
    loose = write_key(tmp_path / "key", KEY, 0o644)
    with pytest.raises(AuthKeyError, match=r"mode 0644: others may read it; chmod 600"):
        load_key(loose)
    assert load_key(write_key(tmp_path / "tight", KEY + b"\n", 0o600)) == KEY


def test_a_key_file_may_be_a_link_and_the_mode_of_its_target_counts(tmp_path: Path) -> None:
    # As Kubernetes mounts a secret: key -> ..data/key, ..data -> ..2026_12_03/.
    version = tmp_path / "..2026_12_03"
    version.mkdir()
    target = write_key(version / "key", KEY, 0o600)
    (tmp_path / "..data").symlink_to(version.name)
    link = tmp_path / "key"
    link.symlink_to("..data/key")
    assert load_key(link) == KEY
    target.chmod(0o640)
    with pytest.raises(AuthKeyError, match=r"a link to .*/key\) has mode 0640: others may"):
        load_key(link)
    (tmp_path / "dangling").symlink_to("nowhere")
    with pytest.raises(AuthKeyError, match=r"cannot open the key file .*dangling"):
        load_key(tmp_path / "dangling")


def test_a_key_file_that_is_no_regular_file_is_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(AuthKeyError, match="not a regular file"):
        load_key(fifo)
    with pytest.raises(AuthKeyError, match="not a regular file"):
        load_key("/dev/zero")


def test_a_short_or_missing_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AuthKeyError, match="needs 16"):
        load_key(write_key(tmp_path / "short", b"tiny", 0o600))
    with pytest.raises(AuthKeyError, match="cannot open"):
        load_key(tmp_path / "absent")
