"""Opt-in datagram authentication: a keyed MAC on every datagram, and replay limits.

With ``auth-key-file`` every datagram carries a timestamp and a keyed BLAKE2b tag
(``wire/auth.py``). A receiver drops, and counts, datagrams without a valid tag,
those stamped further than ``max_skew`` from its own clock, and a CLIENT_VALUE it
already accepted within that window (the replay cache remembers their tags). So an
attacker holding an old valid datagram can neither get it processed after the window
nor get a value decided twice within it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from collections import OrderedDict
from pathlib import Path

from wire import MessageType
from wire.auth import TAG_SIZE, TRAILER_SIZE, pack_stamp, split_untrusted

MIN_KEY_BYTES = 16
DEFAULT_MAX_SKEW = 30.0
#: Client-value tags remembered for replay detection; the oldest go first.
REPLAY_CACHE_SIZE = 1 << 20


class AuthKeyError(Exception):
    """A key file that must not be used; the message says why."""


class AuthError(Exception):
    """A datagram that fails authentication (never processed)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def load_key(path: str | Path) -> bytes:
    """The key in ``path``: refused when others may read it or when it is short.

    ``path`` may be a symbolic link (Kubernetes mounts a secret as links into a
    directory it swaps atomically); the file it finally names is what must be a
    regular file that neither its group nor others may read.

    Raises:
        AuthKeyError: with a message naming the file and the problem.
    """
    try:
        # O_NONBLOCK: a FIFO put there must not hang the daemon waiting for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise AuthKeyError(f"cannot open the key file {path}: {exc.strerror}") from None
    try:
        # fstat of the open file: the target of any links, and no race with a rename.
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise AuthKeyError(f"the key file {path} is not a regular file")
        if info.st_mode & 0o077:
            named = f"{path} (a link to {os.path.realpath(path)})" if os.path.islink(path) \
                else str(path)
            raise AuthKeyError(
                f"the key file {named} has mode {stat.S_IMODE(info.st_mode):04o}: others may "
                f"read it; chmod 600 {path}"
            )
        key = os.read(fd, 4096).strip()
    finally:
        os.close(fd)
    if len(key) < MIN_KEY_BYTES:
        raise AuthKeyError(f"the key in {path} has {len(key)} bytes; it needs {MIN_KEY_BYTES}")
    return key


class Authenticator:
    def __init__(self, key: bytes, *, max_skew: float = DEFAULT_MAX_SKEW) -> None:
        self._key = key
        self._max_skew_ms = int(max_skew * 1000)
        self._client_values_seen: OrderedDict[bytes, int] = OrderedDict()

    def _tag(self, signed: bytes) -> bytes:
        return hashlib.blake2b(signed, key=self._key, digest_size=TAG_SIZE).digest()

    def seal(self, datagram: bytes, now: float) -> bytes:
        signed = datagram + pack_stamp(int(now * 1000))
        return signed + self._tag(signed)

    def open_untrusted(self, data: bytes, now: float) -> bytes:
        """The datagram inside ``data``.

        Raises:
            AuthError: no trailer, a wrong tag, a stale stamp, or a replayed client value.
        """
        parts = split_untrusted(data)
        if parts is None:
            raise AuthError("missing")
        datagram, sent_ms, signed, tag = parts
        if not hmac.compare_digest(self._tag(signed), tag):
            raise AuthError("bad-mac")
        now_ms = int(now * 1000)
        if abs(now_ms - sent_ms) > self._max_skew_ms:
            raise AuthError("stale")
        if datagram[:4] == MessageType.CLIENT_VALUE.to_bytes(4, "big"):
            self._check_replay(tag, now_ms)
        return datagram

    def _check_replay(self, tag: bytes, now_ms: int) -> None:
        seen = self._client_values_seen
        if tag in seen:
            raise AuthError("replayed")
        seen[tag] = now_ms
        # Entries older than twice the skew can no longer pass the stamp check.
        horizon = now_ms - 2 * self._max_skew_ms
        while seen:
            oldest_tag, stamp = next(iter(seen.items()))
            if stamp >= horizon and len(seen) <= REPLAY_CACHE_SIZE:
                break
            del seen[oldest_tag]


__all__ = ["TRAILER_SIZE", "AuthError", "AuthKeyError", "Authenticator", "load_key"]
