"""Protocol tunables, with libpaxos's defaults where libpaxos has one."""

from __future__ import annotations

from dataclasses import dataclass, fields

from wire.datagram import MAX_VALUE_SIZE

#: What the byte bounds (learner_max_held_bytes, acceptor_max_held_bytes) count for
#: each vote or record held beside its value's bytes: the objects around it (tuple,
#: ints, dict slot), about this much in CPython. Without it a stream of empty values
#: would cost memory and count nothing.
HELD_RECORD_COST = 256

#: The trimming a daemon's learner does when nothing says otherwise: the original
#: klearner's cantrim of 100,000 instances (trim_every) ...
DEFAULT_TRIM_EVERY = 100_000
#: ... and no more than this many bytes of them (trim_bytes): the acceptors then
#: hold 64 to 128 MiB of delivered instances, an eighth of acceptor_max_held_bytes
#: at most, whatever the size of the values.
DEFAULT_TRIM_BYTES = 64 * 1024 * 1024
#: About how many bytes a piece of history for a peer learner carries, by default.
DEFAULT_PIECE_BYTES = 32 * 1024


@dataclass(frozen=True, slots=True)
class PaxosOptions:
    """Options of the Paxos roles. Times are seconds on the caller's clock.

    Raises:
        ValueError: a count below 1 or a time that is not positive.
    """

    # -- proposer
    #: Instances for which phase 1 runs ahead of client values (libpaxos 128).
    preexec_window: int = 128
    #: An instance not closed this long after its last (re)start is retried higher.
    proposer_timeout: float = 1.0
    #: After a preemption the proposer waits a random time below this, doubled for
    #: every further preemption of the instance (capped at proposer_timeout), so two
    #: proposers duelling over an instance stop outbidding each other in lockstep.
    preempt_backoff: float = 0.01
    #: Client values waiting for an instance; more are dropped (and counted).
    max_queued_values: int = 65536
    #: Client values queued together go into one instance, up to this many, packed in
    #: a batch envelope (wire.batch) that kpaxos learners take apart again: under load
    #: one round of Paxos decides hundreds of values. 1 disables it (one value per
    #: instance, in the original format), for clusters with original kernel learners,
    #: which deliver a batch as one opaque value.
    max_values_per_instance: int = 1024
    #: Instances carrying client values through phase 2 at once. With that many
    #: accepting, client values wait in the queue and the next instance takes them
    #: together: a sender keeping thousands of values in flight, one per datagram
    #: (the client device's pipelined writes), gets a few large instances rather than
    #: one round each. One value at a time never waits. Filling a hole and values a
    #: quorum's promises oblige are not held back.
    max_accepting: int = 16
    #: The largest batch envelope proposed: a datagram's room for a value, less what
    #: the wrapper adds to every datagram (an authentication trailer).
    max_batch_bytes: int = MAX_VALUE_SIZE
    #: Client values are packed into one instance only while its batch stays within
    #: this many bytes (a single value bigger than that still goes, alone); None:
    #: max_batch_bytes. The daemon sets it from the path MTU to the acceptors: a
    #: datagram cut into fragments is lost when any fragment is, so under loss a
    #: 9 KB batch on a 1500-byte MTU crosses far less often than its six fragments'
    #: worth of small values would.
    batch_fill_bytes: int | None = None
    #: About how many bytes a piece of history given to a peer learner carries
    #: (kpaxosd.paxos.peers; a single value bigger than that still goes, alone).
    #: The daemon sets it from the path MTU to the listed learners, for the reason
    #: above: a 32 KB piece is 23 fragments on a 1500-byte MTU, and under a fifth of
    #: the datagrams lost it would cross about once in 200 tries.
    history_piece_bytes: int = DEFAULT_PIECE_BYTES
    #: The round of every instance's first ballot. libpaxos uses 1. None (the
    #: default) draws it from the node's rng at every start, below 2**24: a proposer
    #: remembers nothing across a restart, and its next life starting at round 1
    #: again could count a promise made to its previous life, still in flight to the
    #: same address, for the same ballot. Two lives would then propose two values
    #: under one ballot. A random first round makes that a one in millions chance.
    proposer_first_round: int | None = None
    #: The origins (wire.identity) of the last half of this many decided values, or
    #: more, are remembered (never more than this many): a client value whose origin
    #: is among them is not proposed again (nor one already queued or in flight). At
    #: 20,000 decisions a second this covers 1.6 to 3 seconds of resends; the
    #: learners' dedupe is the guarantee beyond that.
    proposer_decided_memory: int = 65536
    #: With several proposers, the lowest-numbered live one leads and the others
    #: forward client values to it, so that proposers do not preempt each other.
    #: False: every proposer proposes (libpaxos, and a duel under contention).
    stable_leader: bool = True
    #: Each proposer tells the others it is alive (PROPOSER_HI) this often ...
    heartbeat_interval: float = 0.2
    #: ... and a proposer not heard from for this long is taken for dead.
    leader_timeout: float = 1.0
    # -- learner
    #: Ask for history from instance 1 at start (libpaxos learner-catch-up).
    learner_catch_up: bool = True
    #: A hole that stays open this long gets a REPEAT.
    repeat_interval: float = 0.1
    #: Instances asked for in one REPEAT.
    repeat_max: int = 1000
    #: LEARNER_HI is resent this often until the acceptor answers ...
    hello_interval: float = 1.0
    #: ... and this often afterwards, so a restarted acceptor learns of us again.
    hello_keepalive: float = 5.0
    #: A learner that heard from no quorum of acceptors for this long says it cannot
    #: reach one (kpaxosd.paxos.reach); None: it never says so, nor asks who is there.
    quorum_timeout: float | None = None
    #: Votes are kept for instances at most this far beyond the next to deliver.
    learner_max_ahead: int = 100_000
    #: The votes and decisions the learner holds for instances it has not delivered
    #: take at most about this many bytes (their values, plus HELD_RECORD_COST each).
    #: Beyond it the learner lets go of the farthest instances, down to three
    #: quarters, and takes no new ones beyond what it kept until it is under half;
    #: never the next instance to deliver. What it let go of is still with the
    #: acceptors: hole repair asks for it again when delivery gets there. Keep it
    #: well above what a few instances take (acceptors x the largest value): a
    #: learner with room for one instance only takes one per round of REPEAT.
    learner_max_held_bytes: int = 64 * 1024 * 1024
    #: Deduplication memory: client ids remembered (least recently seen go first) ...
    dedupe_clients: int = 4096
    #: ... and, per client, how far below its highest sequence number seqs are told
    #: apart (anything older counts as already delivered).
    dedupe_window: int = 1024
    #: The original klearner's cantrim: every this many delivered instances, send
    #: TRIM to every acceptor so that they forget what this learner delivered, all
    #: but the last trim_every instances (learners a little behind still catch up by
    #: REPEAT). One learner of a cluster trims; None: this one does not (nor by
    #: trim_bytes). The daemon trims by default (DEFAULT_TRIM_EVERY; kpaxosd/cli.py).
    trim_every: int | None = None
    #: With trim_every, a TRIM also goes out each time the instances delivered since
    #: the last such mark take this many bytes (their values, plus HELD_RECORD_COST
    #: each, as the acceptors count them), down to the previous mark: the acceptors
    #: keep the last trim_bytes to 2 * trim_bytes of delivered instances (one
    #: instance more at most), or the last trim_every to 2 * trim_every instances,
    #: whichever is less. A count alone is no bound on bytes: 100,000 instances of
    #: 60 KB batches are 6 GB, and the acceptors would fill up (at
    #: acceptor_max_held_bytes) and stop the cluster before the first TRIM. Keep it
    #: well under half of acceptor_max_held_bytes.
    trim_bytes: int = DEFAULT_TRIM_BYTES
    # -- acceptor
    #: ACCEPTED messages sent in answer to one REPEAT.
    repeat_reply_max: int = 1024
    #: PREPARE/ACCEPT/TRIM this far beyond the highest accepted instance are junk.
    acceptor_max_ahead: int = 1_000_000
    #: The records an acceptor holds (above its trim point) take at most about this
    #: many bytes (their values, plus HELD_RECORD_COST each): at the bound a PREPARE
    #: or ACCEPT for an instance it holds no record of is refused (and counted), so
    #: a stream of forged ACCEPTs, each moving the horizon on, cannot grow it without
    #: end. Records held may still take values, up to an eighth of the bound more
    #: (at least a preexec_window of the largest values): what a proposer prepared
    #: before the acceptor filled up can still be decided, and then trimmed. It never
    #: forgets a vote to make room: only TRIM frees it. A cluster that never trims
    #: stops taking new instances once its acceptors are full.
    acceptor_max_held_bytes: int = 1024 * 1024 * 1024
    #: Registered learners; the longest silent one is forgotten first.
    max_learners: int = 256

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or isinstance(value, bool):
                continue
            if isinstance(value, int) and value < 1:
                raise ValueError(f"{f.name} must be at least 1, got {value}")
            if isinstance(value, float) and not value > 0:
                raise ValueError(f"{f.name} must be positive, got {value}")
        if self.max_batch_bytes > MAX_VALUE_SIZE:
            raise ValueError(
                f"max_batch_bytes ({self.max_batch_bytes}) exceeds a datagram's room for a "
                f"value ({MAX_VALUE_SIZE})"
            )
        if self.leader_timeout <= self.heartbeat_interval:
            raise ValueError(
                f"leader_timeout ({self.leader_timeout}) must exceed heartbeat_interval "
                f"({self.heartbeat_interval}), or every leader looks dead"
            )
