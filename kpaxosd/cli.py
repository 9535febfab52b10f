"""``kpaxosd``: run any set of Paxos roles, and the devices when a learner is hosted."""

from __future__ import annotations

import argparse
import dataclasses
import grp
import logging
import os
import sys
from collections.abc import Sequence

import trio

from kpaxosd.arguments import (
    OneLineParser,
    integer_in,
    listen_address,
    non_negative_seconds,
    octal_mode,
    positive_int,
    value_size,
)
from kpaxosd.auth import AuthKeyError, load_key
from kpaxosd.config import Config, ConfigError, default_config, describe, load_config
from kpaxosd.daemon import Daemon, DaemonError, DaemonSpec, DeviceOptions, KClientOptions
from kpaxosd.paxos.cluster import Cluster
from kpaxosd.paxos.options import DEFAULT_TRIM_EVERY
from kpaxosd.storage import StorageError

LOG_LEVELS = {
    "quiet": logging.CRITICAL + 10,
    "error": logging.ERROR,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}

DESCRIPTION = """\
Run Paxos roles (acceptor, proposer, learner, replica) of a Kernel_Paxos cluster.

With no role flags, this process hosts every role of the configuration plus a
learner (learner 0 where it has learner lines): with no --config either, that is
the built-in cluster on loopback (acceptors 0-2 at 127.0.0.3:3003/4003/5003,
proposer 0 at 127.0.0.2:3002).

A process hosting a learner serves the devices:
  echo value > /dev/kpaxos-client     propose; returns once decided
  cat /dev/kpaxos-learner             every decided value, in order
"""

EPILOG = """\
SIGINT, SIGTERM, SIGHUP and SIGUSR1 each stop the daemon cleanly (exit status 0):
readers of the learner device read on to end-of-file, blocked writers get EIO, and
the devices disappear. After a death without clean-up (kill -9, the OOM killer) the
next start on the same paths detaches the dead FUSE mount and replaces the links.
"""


def _group(text: str) -> int:
    if text.isascii() and text.isdigit():
        return int(text)
    try:
        return grp.getgrnam(text).gr_gid
    except KeyError:
        raise argparse.ArgumentTypeError(f"no group named {text!r}") from None


_role_id = integer_in(0, None, "an id from 0")
#: What a bare ``--learner`` stands for: a learner, whichever the configuration allows.
_ANY_LEARNER = -1
_trim_count = integer_in(0, 1_000_000_000,
                         "a count of instances from 0 (no trimming) to 1000000000")
_values_per_instance = integer_in(1, 100_000, "1 to 100000 values (1: no batching)")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="kpaxosd",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-c", "--config", metavar="FILE",
        help="a libpaxos-style paxos.conf (default: the built-in loopback cluster)",
    )
    parser.add_argument(
        "--check-config", action="store_true",
        help="check the configuration, print the cluster it describes, and exit",
    )
    roles = parser.add_argument_group("roles (repeatable; none given = the whole cluster)")
    roles.add_argument("--acceptor", metavar="ID", type=_role_id, action="append", default=[],
                       help="host acceptor ID of the configuration")
    roles.add_argument("--proposer", metavar="ID", type=_role_id, action="append", default=[],
                       help="host proposer ID of the configuration")
    roles.add_argument("--replica", metavar="ID", type=_role_id, action="append", default=[],
                       help="host replica ID: its acceptor, proposer and a learner on one address")
    roles.add_argument("--learner", metavar="ID", nargs="?", const=_ANY_LEARNER, type=_role_id,
                       help="host a learner (and the devices); where the configuration "
                            "lists learners, ID says which, and it listens at its address")
    roles.add_argument("--storage", metavar="DIR",
                       help="keep acceptor state durably in LMDB under DIR/acceptor-ID "
                            "(default: the configuration's storage, else in memory)")
    roles.add_argument("--auth-key-file", metavar="FILE",
                       help="authenticate every datagram with the key in FILE (mode 0600, at "
                            "least 16 bytes); every node of the cluster needs the same key "
                            "(default: the configuration's auth-key-file, else none: the "
                            "original wire format)")
    roles.add_argument("--trim", metavar="N", type=_trim_count,
                       help="the learner hosted here lets the acceptors forget: every N "
                            "delivered instances it sends TRIM, and they drop all but the "
                            "last N to 2N instances (the original's cantrim), or all but the "
                            "last --trim-bytes to twice that if that is less; 0: no trimming. "
                            "One learner of a cluster should trim (acceptors keep the highest "
                            "TRIM). A learner further behind than what the acceptors keep "
                            "cannot catch up: it logs an error naming the instances it lost, "
                            "its device readers get EPIPE there, and it goes on after them "
                            "(default: the configuration's trim, else 100000 for the learner "
                            "that should trim: learner 0 where the configuration lists "
                            "learners, else the lowest replica's, else any learner; others "
                            "do not trim)")
    roles.add_argument("--trim-bytes", metavar="N", type=positive_int,
                       help="with trimming, also send TRIM each time N bytes were delivered "
                            "since the last, so the acceptors keep at most 2N bytes of "
                            "delivered instances (default: the configuration's trim-bytes, "
                            "else 67108864, 64 MiB)")
    roles.add_argument("--learner-address", metavar="HOST:PORT", type=listen_address,
                       help="where the learner listens for acceptors; an empty HOST or "
                            "0.0.0.0 is every interface, port 0 a free one (default: the "
                            "address this host reaches the acceptors from, a free port)")
    roles.add_argument("--values-per-instance", type=_values_per_instance, metavar="N",
                       help="the proposer decides up to N queued client values in one "
                            "instance, as a batch that kpaxos learners take apart; 1 keeps "
                            "one value per instance, for original kernel learners (default: "
                            "the configuration's proposer-values-per-instance, else 1024)")
    roles.add_argument("--learner-max-held-bytes", type=positive_int, metavar="N",
                       help="the learner holds votes and decisions it has not delivered up to "
                            "about N bytes, letting go of the farthest instances beyond (they "
                            "are asked for again when delivery gets there; default: the "
                            "configuration's learner-max-held-bytes, else 67108864, 64 MiB)")
    roles.add_argument("--acceptor-max-held-bytes", type=positive_int, metavar="N",
                       help="an acceptor holding records of about N bytes takes no new "
                            "instance until a TRIM makes room; it logs a warning (default: the "
                            "configuration's acceptor-max-held-bytes, else 1073741824, 1 GiB)")
    devices = parser.add_argument_group("devices (served by a process hosting a learner)")
    devices.add_argument("--no-devices", action="store_true", help="serve no devices")
    devices.add_argument("--device-backend", choices=["auto", "cuse", "fuse"], default="auto",
                         help="cuse: real character devices /dev/kpaxos-learner and "
                              "/dev/kpaxos-client (loads the cuse module if needed); fuse: "
                              "files in a FUSE mount, linked from those paths; auto: CUSE "
                              "when the kernel has it, else FUSE, and the log says which "
                              "and why (default: auto)")
    devices.add_argument("--device-mode", type=octal_mode, default=0o660, metavar="MODE",
                         help="permissions of the devices, octal (default: 0660)")
    devices.add_argument("--device-group", type=_group, metavar="GROUP",
                         help="group of the devices, a name or a number (default: the "
                              "daemon's group)")
    devices.add_argument("--device-name-prefix", default="", metavar="PREFIX",
                         help="put PREFIX before every device name, so that a second "
                              "instance or a test does not collide with the real devices: "
                              "/dev/PREFIXkpaxos-learner (CUSE) or LINK_DIR/PREFIXkpaxos-"
                              "learner (FUSE); a PREFIX ending in / makes a folder, e.g. "
                              "'test/' gives /dev/test/kpaxos-learner (default: none)")
    devices.add_argument("--compat-devices", action="store_true",
                         help="also serve the learner as /dev/chardevice/klearnerID, the "
                              "original Kernel_Paxos path (with the prefix, if any); record "
                              "mode makes it a drop-in for the original user-space learner")
    devices.add_argument("--compat-learner-id", type=_role_id, metavar="ID",
                         help="the ID in /dev/chardevice/klearnerID (default: 0; implies "
                              "--compat-devices)")
    devices.add_argument("--mount-dir", default="/run/kpaxos", metavar="DIR",
                         help="FUSE backend: where the mount holding the device files goes "
                              "(default: %(default)s)")
    devices.add_argument("--link-dir", default="/dev", metavar="DIR",
                         help="FUSE backend: where the kpaxos-learner and kpaxos-client "
                              "links go (default: %(default)s)")
    devices.add_argument("--client-proposer", type=_role_id, metavar="ID",
                         help="the proposer that /dev/kpaxos-client sends to (default: the "
                              "lowest proposer or replica of this process, which forwards to "
                              "the leader; else 0)")
    devices.add_argument("--client-timeout", type=non_negative_seconds, default=30.0,
                         metavar="SECONDS",
                         help="a write to /dev/kpaxos-client fails with ETIMEDOUT when no "
                              "decision comes within this time, and so does a read barrier "
                              "(default: 30; 0 = wait forever)")
    devices.add_argument("--quorum-timeout", type=non_negative_seconds, default=2.0,
                         metavar="SECONDS",
                         help="once the learner has heard from no quorum of acceptors for "
                              "this long, writes to /dev/kpaxos-client and read barriers fail "
                              "at once with ENOTCONN, and poll on /dev/kpaxos-learner reports "
                              "POLLPRI, until it hears from one again; it asks each silent "
                              "acceptor 8 times a timeout (default: 2; 0 = never: they wait "
                              "for --client-timeout)")
    kclient = parser.add_argument_group(
        "the kclient role (the original benchmarking client inside the daemon)"
    )
    kclient.add_argument("--client", action="store_true",
                         help="host a client and its own learner, keeping values in flight "
                              "and printing a line of statistics a second")
    kclient.add_argument("--outstanding", type=positive_int, default=1, metavar="N",
                         help="values the client keeps in flight (default: 1)")
    kclient.add_argument("--value-size", type=value_size, default=64, metavar="BYTES",
                         help="payload bytes of each client value (default: 64)")
    kclient.add_argument("--proposer-id", type=_role_id, default=0, metavar="ID",
                         help="the proposer the client sends to (default: 0)")
    parser.add_argument("--metrics", metavar="HOST:PORT", type=listen_address,
                        help="serve Prometheus metrics at http://HOST:PORT/metrics")
    parser.add_argument("--retain", type=positive_int, default=1_000_000, metavar="N",
                        help="delivered values kept for readers of the learner device; a "
                             "reader further behind gets an error (EPIPE) and continues from "
                             "the oldest kept (default: 1000000)")
    parser.add_argument("--retain-bytes", type=positive_int, default=256 * 1024 * 1024, metavar="N",
                        help="and at most N bytes of them, the oldest going first, as for "
                             "--retain (default: 268435456, 256 MiB)")
    parser.add_argument("--no-local-delivery", action="store_true",
                        help="send messages between the roles of this process as UDP "
                             "datagrams too (default: hand them over in process)")
    parser.add_argument("-v", "--verbosity", choices=sorted(LOG_LEVELS),
                        help="log level; overrides the configuration's verbosity (default: info)")
    return parser


def spec_from_args(args: argparse.Namespace, config: Config) -> DaemonSpec:
    whole_cluster = not (
        args.acceptor or args.proposer or args.replica or args.learner is not None
        or args.client
    )
    cluster = config.cluster
    if whole_cluster:
        both = {i for i in cluster.acceptors if cluster.proposers.get(i) == cluster.acceptors[i]}
        acceptors = [i for i in cluster.acceptors if i not in both]
        proposers = [i for i in cluster.proposers if i not in both]
        replicas = sorted(both)
        learner = True
        # One set of devices per process: the first listed learner, if any.
        learner_id = 0 if cluster.learners and not replicas else None
    else:
        acceptors, proposers, replicas = args.acceptor, args.proposer, args.replica
        learner = args.learner is not None or args.client
        learner_id = None if args.learner in (None, _ANY_LEARNER) else args.learner
    if args.trim is None and not config.trim_set and _trims_by_default(
        cluster, learner, learner_id, replicas
    ):
        config = _with_default_trim(config)
    return DaemonSpec(
        config=config,
        acceptors=acceptors,
        proposers=proposers,
        replicas=replicas,
        learner=learner,
        learner_id=learner_id,
        learner_address=args.learner_address,
        devices=None
        if args.no_devices
        else DeviceOptions(
            mount_dir=args.mount_dir,
            link_dir=args.link_dir,
            mode=args.device_mode,
            backend=args.device_backend,
            group=args.device_group,
            name_prefix=args.device_name_prefix,
            compat_learner_id=_compat_learner_id(args),
        ),
        client_proposer=args.client_proposer,
        client_timeout=args.client_timeout,
        quorum_timeout=args.quorum_timeout,
        storage=args.storage or config.storage,
        auth_key_file=args.auth_key_file or config.auth_key_file,
        metrics=args.metrics,
        retain=args.retain,
        retain_bytes=args.retain_bytes,
        local_delivery=not args.no_local_delivery,
        kclient=KClientOptions(args.outstanding, args.value_size, args.proposer_id)
        if args.client
        else None,
    )


def _trims_by_default(cluster: Cluster, learner: bool, learner_id: int | None,
                      replicas: Sequence[int]) -> bool:
    """Whether the learner hosted here trims when neither --trim nor ``trim`` says.

    Bounded by default (README, "Durability, authentication, metrics"): acceptors
    that never trim fill up at acceptor_max_held_bytes and stop the cluster. But the
    acceptors take the highest TRIM of any learner, and a learner behind the tail
    they keep loses values (Trimmed: a gap, EPIPE for its readers), so one learner of
    a configuration trims by default, the one that reads all of it: learner 0 where
    the file lists learners (only they may trim then), else the lowest replica's
    (replicas host the learners), else, in the original's open layout, any learner,
    as no configuration says which is the one.
    """
    if not (learner or replicas):  # a replica hosts a learner
        return False
    if cluster.learners:
        return learner_id == min(cluster.learners)
    replica_ids = [i for i, address in cluster.acceptors.items()
                   if cluster.proposers.get(i) == address]
    if replica_ids:
        return min(replica_ids) in replicas
    return True


def _with_default_trim(config: Config) -> Config:
    """``config`` trimming as by default: every DEFAULT_TRIM_EVERY instances, or
    trim_bytes (default DEFAULT_TRIM_BYTES) bytes of them."""
    options = dataclasses.replace(config.options, trim_every=DEFAULT_TRIM_EVERY)
    return dataclasses.replace(config, options=options)


def _compat_learner_id(args: argparse.Namespace) -> int | None:
    if args.compat_learner_id is not None:
        return int(args.compat_learner_id)
    return 0 if args.compat_devices else None


class JournalFormatter(logging.Formatter):
    """Lines for journald: a syslog priority prefix, no timestamp (the journal adds
    one), so ``journalctl -p err`` finds the errors."""

    PRIORITIES = {
        logging.CRITICAL: 2,
        logging.ERROR: 3,
        logging.WARNING: 4,
        logging.INFO: 6,
        logging.DEBUG: 7,
    }

    def format(self, record: logging.LogRecord) -> str:
        priority = self.PRIORITIES.get(record.levelno, 6)
        return f"<{priority}>{record.name}: {super().format(record)}"


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):  # set by systemd when stderr is the journal
        handler.setFormatter(JournalFormatter("%(message)s"))
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s kpaxosd %(levelname)s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LOG_LEVELS[level])


def _expected_errors(group: BaseException) -> list[BaseException]:
    """The operator-facing errors inside a (possibly nested) exception group."""
    if isinstance(group, BaseExceptionGroup):
        found: list[BaseException] = []
        for inner in group.exceptions:
            found.extend(_expected_errors(inner))
        return found
    from devices import DeviceError

    expected = DaemonError | DeviceError | ConfigError | StorageError
    return [group] if isinstance(group, expected) else []


def _key_file_problem(args: argparse.Namespace, config: Config) -> str | None:
    """Why the daemon would refuse its key file (naming where the file was given),
    or None when it would load it or has none."""
    key_file = spec_from_args(args, config).auth_key_file
    if key_file is None:
        return None
    try:
        load_key(key_file)
    except AuthKeyError as exc:
        given = "--auth-key-file" if args.auth_key_file else f"{config.source}: auth-key-file"
        return f"{given}: {exc}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = _with_flags(args, load_config(args.config) if args.config else default_config())
    except ConfigError as exc:
        print(f"kpaxosd: error: -c/--config: {exc}", file=sys.stderr)
        return 2
    # The key file is checked here, as --check-config checks it, so that a key the
    # daemon would refuse fails the check too, and fails a start with one plain line.
    key_problem = _key_file_problem(args, config)
    if key_problem is not None:
        print(f"kpaxosd: error: {key_problem}", file=sys.stderr)
        return 1
    if args.check_config:
        _print_check(args, config)
        return 0
    configure_logging(args.verbosity or config.verbosity)
    log = logging.getLogger("kpaxos")
    for number, text in config.ignored:
        log.info("%s:%d: %r has no effect in kpaxos", config.source, number, text)
    try:
        spec = spec_from_args(args, config)
        if spec.config.options.trim_every is not None and config.options.trim_every is None:
            log.info("trimming by default, keeping the last %d to %d instances or %d to %d "
                     "bytes of them, whichever is less (--trim 0: no trimming)",
                     DEFAULT_TRIM_EVERY, 2 * DEFAULT_TRIM_EVERY,
                     spec.config.options.trim_bytes, 2 * spec.config.options.trim_bytes)
        return trio.run(_run, spec)
    except KeyboardInterrupt:
        return 0
    except BaseException as exc:
        return _report(exc, log)


def _with_flags(args: argparse.Namespace, config: Config) -> Config:
    """``config`` with the options that flags override."""
    options = config.options
    if args.trim is not None:
        # --trim 0: no trimming, not even the default (_with_default_trim).
        options = dataclasses.replace(options, trim_every=args.trim or None)
    if args.trim_bytes is not None:
        options = dataclasses.replace(options, trim_bytes=args.trim_bytes)
    if args.values_per_instance is not None:
        options = dataclasses.replace(options, max_values_per_instance=args.values_per_instance)
    if args.learner_max_held_bytes is not None:
        options = dataclasses.replace(options, learner_max_held_bytes=args.learner_max_held_bytes)
    if args.acceptor_max_held_bytes is not None:
        options = dataclasses.replace(options,
                                      acceptor_max_held_bytes=args.acceptor_max_held_bytes)
    return dataclasses.replace(config, options=options)


def _print_check(args: argparse.Namespace, config: Config) -> None:
    key_file = spec_from_args(args, config).auth_key_file
    print(f"{config.source}: ok")
    if key_file is not None:
        print(f"  every datagram is authenticated with the key in {key_file}")
    for line in describe(spec_from_args(args, config).config):
        print(f"  {line}")
    for number, text in config.ignored:
        print(f"  line {number} ignored: {text}")


def _report(exc: BaseException, log: logging.Logger) -> int:
    """The exit status for what ended the daemon, said in the log in plain words."""
    expected = _expected_errors(exc)
    if expected:
        for error in expected:
            log.error("%s", error)
        return 1
    if isinstance(exc, SystemExit):
        raise exc
    log.debug("internal error", exc_info=exc)
    log.error("internal error: %r (run with --verbosity debug for the traceback)", exc)
    return 1


async def _run(spec: DaemonSpec) -> int:
    daemon = Daemon(spec)
    daemon.bind()
    await daemon.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
