"""kpaxos-cat: the decided values on standard output, from where you choose.

    kpaxos-cat [--device PATH] [--from POS | --after POS | --from-now] [--positions]
               [--until-now]

Like ``cat /dev/kpaxos-learner`` (the values' bytes, in order, from the oldest value
the learner retains), but it can start at a position, just after one (where a
consumer that saved the last position it read resumes), or at the next value decided
from now; with ``--positions`` each value comes after its position in decimal and a
tab. Empty values write nothing, as with ``cat``. With ``--until-now`` it does a read
barrier first and stops, exit status 0, after the newest value decided anywhere in
the cluster before it started (what a quorum of acceptors confirms): a linearizable
read, which sees every write acknowledged before it began. A position older than what the
learner retains is an error naming the oldest retained one (exit status 1); values lost
while reading (the learner let them go before they were read, or never learned them)
are reported on standard error where they happened, reading goes on, and the exit
status is 1.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

from clients.log import DEFAULT_DEVICE, Entry, LogError, LogReader, ValuesLost
from wire.device import StartAt

PROG = "kpaxos-cat"


def position(text: str) -> int:
    """A position as written: one decimal integer, not negative."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a position (a decimal integer "
                                         f"from 0)")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Write the values decided by a kpaxos cluster to standard output, "
                    "in order, from a position of the log (by default from the oldest "
                    "value the learner retains, as cat reads). Every value has a position "
                    "(a decimal integer, increasing along the log, the same at every "
                    "learner of the cluster and across restarts).",
        epilog="A consumer that saves the position of the last value it applied resumes "
               "with --after that position. Exit status: 0 when the daemon stopped (or, "
               "with --until-now, once every value up to the barrier was written), "
               "1 on an error (with --until-now, ENOTCONN: the learner hears from no "
               "quorum of acceptors) or if values were lost while reading.",
    )
    parser.add_argument("--device", default=DEFAULT_DEVICE, metavar="PATH",
                        help=f"the learner device (default {DEFAULT_DEVICE})")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--from", dest="from_position", type=position, metavar="POS",
                       help="start at the value at position POS (or the first after it)")
    start.add_argument("--after", type=position, metavar="POS",
                       help="start at the first value after position POS")
    start.add_argument("--from-now", action="store_true",
                       help="start at the next value decided from now")
    parser.add_argument("--positions", action="store_true",
                        help="write each value's position in decimal and a tab before it")
    parser.add_argument("--until-now", action="store_true",
                        help="first do a read barrier (confirmed by a quorum of acceptors), "
                             "then write every value from the start up to the newest one "
                             "decided before it, and exit 0: a read that sees every write "
                             "acknowledged before it began, on any host")
    return parser


def open_reader(args: argparse.Namespace) -> LogReader:
    if args.from_now:
        return LogReader.open(args.device, start=StartAt.NOW)
    return LogReader.open(args.device, from_position=args.from_position, after=args.after)


def copy(reader: LogReader, out: int, *, positions: bool, until: int | None = None) -> bool:
    """Write every value until the daemon stops, or up to position ``until``; whether
    values were lost on the way."""
    lost = False
    while True:
        try:
            entries = reader.read() if until is None else reader.read_before(until)
        except ValuesLost as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            lost = True
            continue
        if not entries:
            return lost
        write(entries, out, positions=positions)


def write(entries: list[Entry], out: int, *, positions: bool) -> None:
    if positions:
        data = b"".join(b"%d\t%s" % (entry.position, entry.value)
                        for entry in entries if entry.value)
    else:
        data = b"".join(entry.value for entry in entries)
    view = memoryview(data)
    while view:
        view = view[os.write(out, view):]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with open_reader(args) as reader:
            until = reader.barrier() if args.until_now else None
            lost = copy(reader, sys.stdout.fileno(), positions=args.positions, until=until)
    except LogError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    except BrokenPipeError:
        # The reader of our output went away (| head): as cat, stop quietly.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGPIPE)
        return 128 + signal.SIGPIPE
    except OSError as exc:
        print(f"{PROG}: error: writing the output failed: {exc.strerror}", file=sys.stderr)
        return 1
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
