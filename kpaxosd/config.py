"""The libpaxos / Kernel_Paxos ``paxos.conf``, and the built-in default cluster.

One directive a line, ``#`` starts a comment::

    acceptor 0 127.0.0.3 3003      # ID ADDRESS PORT; ids from 0 without gaps
    proposer 0 127.0.0.2 3002
    replica  1 127.0.0.4 3004      # proposer and acceptor on one address
    learner  0 127.0.0.5 3005      # ours: only listed learners may trim (see below)
    verbosity info                 # quiet | error | info | debug
    learner-catch-up yes
    proposer-timeout 1
    proposer-preexec-window 128
    trim 100000                    # the original's cantrim: this learner trims (see below)
    trim-bytes 67108864            # ours: and keeps at most this many bytes (see below)
    proposer-values-per-instance 1024  # ours: client values batched in one instance
    storage /var/lib/kpaxos        # ours: acceptors keep their state in LMDB here
    auth-key-file /etc/kpaxos/key  # ours: every datagram carries a keyed MAC
    learner-max-held-bytes 67108864    # ours: votes a learner holds (bytes)
    acceptor-max-held-bytes 1073741824 # ours: records an acceptor holds (bytes)

``trim N`` makes every learner that reads the file send TRIM to the acceptors every N
delivered instances (PaxosOptions.trim_every), and ``trim-bytes B`` also every B bytes
of them (PaxosOptions.trim_bytes); one learner of a cluster should trim, so it belongs
in that learner's own file (or use ``kpaxosd --trim``). ``trim 0`` turns trimming
off. Without ``trim`` the daemon trims by default where its learner is the one that
should (kpaxosd/cli.py, _with_default_trim).

``learner`` lines are ours (libpaxos has learners find the acceptors): where a file
lists learners, the acceptors take the learners' messages — registering, REPEAT,
LEARNER_STUCK and above all TRIM — only from those addresses and from replicas (see
kpaxosd/paxos/senders.py); ``kpaxosd --learner ID`` hosts listed learner ID there.
A file without them keeps the original's open registration.

Options libpaxos knows but kpaxos has no use for (its LMDB and TCP knobs) are
accepted and reported, so an existing file keeps working.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from kpaxosd.arguments import unicast_ipv4
from kpaxosd.paxos.cluster import Address, Cluster
from kpaxosd.paxos.options import PaxosOptions

VERBOSITY_LEVELS = ("quiet", "error", "info", "debug")
#: A paxos.conf is a few lines; a bigger file is the wrong file.
MAX_CONFIG_BYTES = 1024 * 1024

# Accepted for compatibility with libpaxos files; they configure parts kpaxos lacks.
IGNORED_LIBPAXOS_OPTIONS = frozenset(
    {
        "tcp-nodelay",
        "storage-backend",
        "acceptor-trash-files",
        "lmdb-sync",
        "lmdb-env-path",
        "lmdb-mapsize",
    }
)


class ConfigError(Exception):
    """A configuration that cannot be used; the message names file, line and problem."""

    def __init__(self, source: str, line: int | None, problem: str) -> None:
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {problem}")
        self.source = source
        self.line = line
        self.problem = problem


@dataclass(frozen=True)
class Config:
    cluster: Cluster
    options: PaxosOptions
    verbosity: str = "info"
    #: Directory of the durable acceptor stores; None keeps acceptors in memory.
    storage: str | None = None
    #: File holding the key that authenticates every datagram; None: the original wire.
    auth_key_file: str | None = None
    source: str = "<built-in>"
    #: Lines that were accepted but have no effect, as (line, text), for the log.
    ignored: tuple[tuple[int, str], ...] = field(default=())
    #: Whether the file says ``trim`` (``trim 0``: options.trim_every None): then the
    #: daemon's default trimming does not apply (kpaxosd/cli.py, _with_default_trim).
    trim_set: bool = False


def default_config() -> Config:
    """The original's built-in layout on loopback (docs/architecture.md, "Configuration")."""
    return Config(
        cluster=Cluster(
            acceptors={0: ("127.0.0.3", 3003), 1: ("127.0.0.3", 4003), 2: ("127.0.0.3", 5003)},
            proposers={0: ("127.0.0.2", 3002)},
        ),
        options=PaxosOptions(),
    )


def load_config(path: str | Path) -> Config:
    """Read and check a configuration file.

    Raises:
        ConfigError: the file cannot be read or a line is wrong.
    """
    source = str(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; a regular file ignores it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(source, None, f"cannot read: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        # A device (/dev/zero) or a pipe never ends: reading it all would eat memory.
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(source, None, "not a regular file; give a paxos.conf file")
        if info.st_size > MAX_CONFIG_BYTES:
            raise ConfigError(
                source, None, f"{info.st_size} bytes is too big for a paxos.conf "
                f"(at most {MAX_CONFIG_BYTES}); is it the right file?"
            )
        with os.fdopen(os.dup(fd), "rb") as file:
            data = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(source, None, f"cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_CONFIG_BYTES:  # it grew after the fstat
        raise ConfigError(source, None, f"bigger than {MAX_CONFIG_BYTES} bytes")
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        raise ConfigError(source, None, f"cannot read: not UTF-8 text ({exc})") from None
    return parse_config(text, source)


def parse_config(text: str, source: str = "<string>") -> Config:
    """Parse the text of a configuration file (see the module docstring)."""
    parser = _Parser(source)
    for number, raw in enumerate(text.splitlines(), start=1):
        words = raw.split("#", 1)[0].split()
        if words:
            parser.line(number, words)
    return parser.finish()


def _parse_bool(word: str) -> bool:
    if word in ("yes", "true", "on", "1"):
        return True
    if word in ("no", "false", "off", "0"):
        return False
    raise ValueError(f"expected yes or no, got {word!r}")


def _parse_seconds(word: str) -> float:
    seconds = float(word)
    if not 0 < seconds <= 3600:
        raise ValueError(f"expected seconds between 0 and 3600, got {word}")
    return seconds


def _parse_window(word: str) -> int:
    window = int(word)
    if not 1 <= window <= 100_000:
        raise ValueError(f"expected a window of 1 to 100000 instances, got {word}")
    return window


def _parse_trim(word: str) -> int:
    every = int(word)
    if not 0 <= every <= 1_000_000_000:
        raise ValueError(f"expected a count of 0 (no trimming) to 1000000000 instances, "
                         f"got {word}")
    return every
def _parse_bytes(word: str) -> int:
    count = int(word)
    if count < 1:
        raise ValueError(f"expected a number of bytes of at least 1, got {word}")
    return count


def _parse_values_per_instance(word: str) -> int:
    count = int(word)
    if not 1 <= count <= 100_000:
        raise ValueError(f"expected 1 to 100000 values (1: no batching), got {word}")
    return count


def _parse_verbosity(word: str) -> str:
    if word not in VERBOSITY_LEVELS:
        raise ValueError(f"expected one of {', '.join(VERBOSITY_LEVELS)}, got {word!r}")
    return word


# option name -> (PaxosOptions field or "verbosity", parser of its one argument)
_OPTIONS: dict[str, tuple[str, Callable[[str], object]]] = {
    "verbosity": ("verbosity", _parse_verbosity),
    "storage": ("storage", str),
    "auth-key-file": ("auth_key_file", str),
    "learner-catch-up": ("learner_catch_up", _parse_bool),
    "proposer-timeout": ("proposer_timeout", _parse_seconds),
    "proposer-preexec-window": ("preexec_window", _parse_window),
    "trim": ("trim_every", _parse_trim),
    "trim-bytes": ("trim_bytes", _parse_bytes),
    "proposer-values-per-instance": ("max_values_per_instance", _parse_values_per_instance),
    "learner-max-held-bytes": ("learner_max_held_bytes", _parse_bytes),
    "acceptor-max-held-bytes": ("acceptor_max_held_bytes", _parse_bytes),
}


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.acceptors: dict[int, tuple[Address, int]] = {}
        self.proposers: dict[int, tuple[Address, int]] = {}
        self.learners: dict[int, tuple[Address, int]] = {}
        self.settings: dict[str, object] = {}
        self.ignored: list[tuple[int, str]] = []
        self.addresses: dict[Address, tuple[str, int, int]] = {}

    def fail(self, number: int | None, problem: str) -> ConfigError:
        return ConfigError(self.source, number, problem)

    def line(self, number: int, words: list[str]) -> None:
        key, args = words[0].lower(), words[1:]
        if key in ("acceptor", "proposer", "replica", "learner"):
            self.role(number, key, args)
        elif key in _OPTIONS:
            name, parse = _OPTIONS[key]
            if len(args) != 1:
                raise self.fail(number, f"{key} takes one value, got {len(args)}")
            try:
                self.settings[name] = parse(args[0])
            except ValueError as exc:
                raise self.fail(number, f"{key}: {exc}") from None
        elif key in IGNORED_LIBPAXOS_OPTIONS:
            self.ignored.append((number, " ".join(words)))
        else:
            raise self.fail(number, f"unknown directive {words[0]!r}")

    def role(self, number: int, key: str, args: list[str]) -> None:
        if len(args) != 3:
            got = " ".join(args) or "nothing"
            raise self.fail(number, f"{key} needs ID ADDRESS PORT, got {got}")
        id_word, host, port_word = args
        try:
            role_id = int(id_word)
            if role_id < 0:
                raise ValueError
        except ValueError:
            raise self.fail(number, f"{key} id must be a number from 0, got {id_word!r}") from None
        try:
            host = str(ipaddress.IPv4Address(host))
        except ValueError:
            raise self.fail(number, f"{key} {role_id}: {host!r} is not an IPv4 address") from None
        try:
            # Peers send to it and take this role's messages only from it: one host's.
            unicast_ipv4(host)
        except argparse.ArgumentTypeError as exc:
            raise self.fail(number, f"{key} {role_id}: {exc}") from None
        try:
            port = int(port_word)
            if not 1 <= port <= 65535:
                raise ValueError
        except ValueError:
            raise self.fail(
                number, f"{key} {role_id}: port must be 1 to 65535, got {port_word!r}"
            ) from None
        address = (host, port)
        if address in self.addresses:
            other, other_id, other_line = self.addresses[address]
            raise self.fail(
                number,
                f"{key} {role_id}: {host}:{port} is already {other} {other_id} (line {other_line})",
            )
        self.addresses[address] = (key, role_id, number)
        tables = {
            "acceptor": [("acceptor", self.acceptors)],
            "proposer": [("proposer", self.proposers)],
            "replica": [("acceptor", self.acceptors), ("proposer", self.proposers)],
            "learner": [("learner", self.learners)],
        }[key]
        for kind, table in tables:
            if role_id in table:
                raise self.fail(
                    number, f"{kind} {role_id} is defined twice (first on line {table[role_id][1]})"
                )
            table[role_id] = (address, number)

    def finish(self) -> Config:
        if not self.acceptors:
            raise self.fail(None, "no acceptor or replica is defined")
        if not self.proposers:
            raise self.fail(None, "no proposer or replica is defined")
        self.check_ids("acceptor", self.acceptors)
        self.check_ids("proposer", self.proposers)
        self.check_ids("learner", self.learners)
        verbosity = str(self.settings.pop("verbosity", "info"))
        storage = self.settings.pop("storage", None)
        auth_key_file = self.settings.pop("auth_key_file", None)
        trim_set = "trim_every" in self.settings
        if trim_set:
            # trim 0: no trimming, not even the daemon's default.
            self.settings["trim_every"] = self.settings["trim_every"] or None
        try:
            cluster = Cluster(
                acceptors={i: a for i, (a, _) in sorted(self.acceptors.items())},
                proposers={i: a for i, (a, _) in sorted(self.proposers.items())},
                learners={i: a for i, (a, _) in sorted(self.learners.items())},
            )
            options = PaxosOptions(**self.settings)  # type: ignore[arg-type]
        except ValueError as exc:
            raise self.fail(None, str(exc)) from None
        return Config(
            cluster=cluster,
            options=options,
            verbosity=verbosity,
            storage=None if storage is None else str(storage),
            auth_key_file=None if auth_key_file is None else str(auth_key_file),
            source=self.source,
            ignored=tuple(self.ignored),
            trim_set=trim_set,
        )

    def check_ids(self, kind: str, table: dict[int, tuple[Address, int]]) -> None:
        if not table:
            return
        missing = sorted(set(range(len(table))) - set(table))
        if missing:
            highest = max(table)
            raise self.fail(
                table[highest][1],
                f"{kind} ids must count from 0 without gaps; {kind} {missing[0]} is missing",
            )


def describe(config: Config) -> Iterable[str]:
    """Human lines describing the cluster (for logs and --check-config)."""
    for aid, (host, port) in config.cluster.acceptors.items():
        yield f"acceptor {aid} at {host}:{port}"
    for pid, (host, port) in config.cluster.proposers.items():
        yield f"proposer {pid} at {host}:{port}"
    for lid, (host, port) in config.cluster.learners.items():
        yield f"learner {lid} at {host}:{port}"
    if config.cluster.learners:
        yield ("only the listed learners and the replicas may register, ask for history "
               "and trim")
    trim_every = config.options.trim_every
    if trim_every is not None:
        yield (f"a learner hosted here trims the acceptors every {trim_every} delivered "
               f"instances (trim {trim_every}), or every {config.options.trim_bytes} bytes "
               f"of them")
