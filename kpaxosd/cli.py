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

from kpaxosd.config import Config, ConfigError, default_config, describe, load_config
from kpaxosd.daemon import Daemon, DaemonError, DaemonSpec, DeviceOptions, KClientOptions
from kpaxosd.paxos.cluster import Address
from kpaxosd.storage import StorageError
from wire import MAX_VALUE_SIZE
from wire.original import CLIENT_VALUE_HEADER_SIZE

LOG_LEVELS = {
    "quiet": logging.CRITICAL + 10,
    "error": logging.ERROR,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}

DESCRIPTION = """\
Run Paxos roles (acceptor, proposer, learner, replica) of a Kernel_Paxos cluster.

With no role flags, this process hosts every role of the configuration plus a
learner: with no --config either, that is the built-in cluster on loopback
(acceptors 0-2 at 127.0.0.3:3003/4003/5003, proposer 0 at 127.0.0.2:3002).

A process hosting a learner serves the devices:
  echo value > /dev/kpaxos-client     propose; returns once decided
  cat /dev/kpaxos-learner             every decided value, in order
"""


def _address(text: str) -> Address:
    host, sep, port = text.rpartition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    try:
        number = int(port)
        if not 0 <= number <= 65535:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad port in {text!r}") from None
    return (host or "0.0.0.0", number)


def _mode(text: str) -> int:
    try:
        mode = int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an octal mode like 0660, got {text!r}"
        ) from None
    if not 0 <= mode <= 0o777:
        raise argparse.ArgumentTypeError(f"mode {text} is out of range")
    return mode


def _group(text: str) -> int:
    if text.isdigit():
        return int(text)
    try:
        return grp.getgrnam(text).gr_gid
    except KeyError:
        raise argparse.ArgumentTypeError(f"no group named {text!r}") from None


def _role_id(text: str) -> int:
    try:
        value = int(text)
        if value < 0:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an id from 0, got {text!r}") from None
    return value


def _trim_count(text: str) -> int:
    try:
        value = int(text)
        if not 1 <= value <= 1_000_000_000:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a count of instances from 1 to 1000000000, got {text!r}"
        ) from None
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kpaxosd",
        description=DESCRIPTION,
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
    roles.add_argument("--learner", action="store_true", help="host a learner (and the devices)")
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
                            "last N to 2N instances (the original's cantrim). One learner of "
                            "a cluster should trim (acceptors keep the highest TRIM). A learner "
                            "further behind than what the acceptors keep cannot catch up: "
                            "it logs an error naming the instances it lost, its device "
                            "readers get EPIPE there, and it goes on after them "
                            "(default: the configuration's trim, else no trimming)")
    roles.add_argument("--learner-address", metavar="HOST:PORT", type=_address,
                       default=("0.0.0.0", 0),
                       help="where the learner listens for acceptors (default: any, port chosen)")
    roles.add_argument("--values-per-instance", type=int, metavar="N",
                       help="the proposer decides up to N queued client values in one "
                            "instance, as a batch that kpaxos learners take apart; 1 keeps "
                            "one value per instance, for original kernel learners (default: "
                            "the configuration's proposer-values-per-instance, else 1024)")
    roles.add_argument("--learner-max-held-bytes", type=int, metavar="N",
                       help="the learner holds votes and decisions it has not delivered up to "
                            "about N bytes, letting go of the farthest instances beyond (they "
                            "are asked for again when delivery gets there; default: the "
                            "configuration's learner-max-held-bytes, else 67108864, 64 MiB)")
    roles.add_argument("--acceptor-max-held-bytes", type=int, metavar="N",
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
    devices.add_argument("--device-mode", type=_mode, default=0o660, metavar="MODE",
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
    devices.add_argument("--client-timeout", type=float, default=30.0, metavar="SECONDS",
                         help="a write to /dev/kpaxos-client fails with ETIMEDOUT when no "
                              "decision comes within this time (default: 30; 0 = wait forever)")
    kclient = parser.add_argument_group(
        "the kclient role (the original benchmarking client inside the daemon)"
    )
    kclient.add_argument("--client", action="store_true",
                         help="host a client and its own learner, keeping values in flight "
                              "and printing a line of statistics a second")
    kclient.add_argument("--outstanding", type=int, default=1, metavar="N",
                         help="values the client keeps in flight (default: 1)")
    kclient.add_argument("--value-size", type=int, default=64, metavar="BYTES",
                         help="payload bytes of each client value (default: 64)")
    kclient.add_argument("--proposer-id", type=_role_id, default=0, metavar="ID",
                         help="the proposer the client sends to (default: 0)")
    parser.add_argument("--metrics", metavar="HOST:PORT", type=_address,
                        help="serve Prometheus metrics at http://HOST:PORT/metrics")
    parser.add_argument("--retain", type=int, default=1_000_000, metavar="N",
                        help="delivered values kept for readers of the learner device; a "
                             "reader further behind gets an error (EPIPE) and continues from "
                             "the oldest kept (default: 1000000)")
    parser.add_argument("--retain-bytes", type=int, default=256 * 1024 * 1024, metavar="N",
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
        args.acceptor or args.proposer or args.replica or args.learner or args.client
    )
    cluster = config.cluster
    if whole_cluster:
        both = {i for i in cluster.acceptors if cluster.proposers.get(i) == cluster.acceptors[i]}
        acceptors = [i for i in cluster.acceptors if i not in both]
        proposers = [i for i in cluster.proposers if i not in both]
        replicas = sorted(both)
        learner = True
    else:
        acceptors, proposers, replicas = args.acceptor, args.proposer, args.replica
        learner = args.learner or args.client
    return DaemonSpec(
        config=config,
        acceptors=acceptors,
        proposers=proposers,
        replicas=replicas,
        learner=learner,
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.retain < 1:
        parser.error("--retain must be at least 1")
    if args.retain_bytes < 1:
        parser.error("--retain-bytes must be at least 1")
    if args.outstanding < 1:
        parser.error("--outstanding must be at least 1")
    if not 0 <= args.value_size <= MAX_VALUE_SIZE - CLIENT_VALUE_HEADER_SIZE:
        parser.error(
            f"--value-size must be 0 to {MAX_VALUE_SIZE - CLIENT_VALUE_HEADER_SIZE} bytes"
        )
    try:
        config = load_config(args.config) if args.config else default_config()
    except ConfigError as exc:
        print(f"kpaxosd: error: {exc}", file=sys.stderr)
        return 2
    if args.trim is not None:
        config = dataclasses.replace(
            config, options=dataclasses.replace(config.options, trim_every=args.trim)
        )
    if args.values_per_instance is not None:
        if not 1 <= args.values_per_instance <= 100_000:
            parser.error("--values-per-instance must be 1 to 100000")
        count = args.values_per_instance
        options = dataclasses.replace(config.options, max_values_per_instance=count)
        config = dataclasses.replace(config, options=options)
    for flag, field in (("--learner-max-held-bytes", "learner_max_held_bytes"),
                        ("--acceptor-max-held-bytes", "acceptor_max_held_bytes")):
        held_bytes = getattr(args, field)
        if held_bytes is not None:
            if held_bytes < 1:
                parser.error(f"{flag} must be at least 1")
            options = dataclasses.replace(config.options, **{field: held_bytes})
            config = dataclasses.replace(config, options=options)
    if args.check_config:
        print(f"{config.source}: ok")
        for line in describe(config):
            print(f"  {line}")
        for number, text in config.ignored:
            print(f"  line {number} ignored: {text}")
        return 0
    configure_logging(args.verbosity or config.verbosity)
    log = logging.getLogger("kpaxos")
    for number, text in config.ignored:
        log.info("%s:%d: %r has no effect in kpaxos", config.source, number, text)
    try:
        spec = spec_from_args(args, config)
        return trio.run(_run, spec)
    except KeyboardInterrupt:
        return 0
    except BaseException as exc:
        expected = _expected_errors(exc)
        if expected:
            for error in expected:
                log.error("%s", error)
            return 1
        if isinstance(exc, SystemExit):
            raise
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
