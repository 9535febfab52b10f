"""A deterministic simulator of a whole kpaxos cluster (not trio: a heap and a seed).

Every node is a real :class:`kpaxosd.paxos.Node`. The network drops, duplicates,
delays and reorders datagrams; nodes crash and restart (an acceptor keeps what it
persisted, its trim point included; in half the seeds a learner keeps a durable log
as the daemon's learner store does — the next instance, an exactly-once memory
taken now and then, the origins delivered since — and goes on from it; everything
else starts from nothing); an
acceptor's store fails to commit a batch now and then (disk full, a failed fsync),
and the leading proposer may crash for good. Clients send enveloped values or the original
client's ``struct client_value`` and resend them after a second without a decision,
as the real clients do, some of them several values to a datagram (a batch, as
``kpaxos-client -b``). Proposers pack queued values into one instance (a batch) up to
the scenario's limit, and nodes may read what arrived within a while together (a
socket drain). One learner may trim the acceptors. A stranger outside the
configuration may forge well-formed datagrams of every type at any node, through
the faults and after (the stranger profile). Then the faults stop and every value
must reach every learner.

Checked throughout, against an oracle that watches the acceptors' Persist and
PersistTrim effects:

- safety: one value chosen per instance (no two values reach a majority);
- every learner delivers only chosen values, of submitted origins, as the reader
  should get them (an envelope's payload, an original value whole), each client
  value of a chosen batch as a value of its own (validity);
- each learner life delivers in order from instance 1, the client values of one
  instance in their batch order, and every instance or client value it skips
  carried the no-op or an origin it already delivered (integrity, deduplication:
  no origin delivered twice), or lies in a Trimmed range that some acceptor had
  really trimmed;
- identical sequences: at every (instance, place) every learner life of complete
  memory (from instance 1, or from a durable log of one, without a Trimmed gap) did
  the same, delivered the same origin there or passed over the same copy, however
  late it started, whatever it lost, whoever resent. In half the seeds the learners
  are listed, and one that lacks what the acceptors trimmed takes a peer's history
  and memory (kpaxosd.paxos.peers): it is then of complete memory if the peer was.
  Lives after a Trimmed gap that no peer filled are not compared, and counted;
- an acceptor names no trim point (ACCEPTOR_STATE) that it has not persisted, and
  persists none (PersistTrim) above the highest TRIM a learner of the simulation
  sent;
- read barriers: a learner that some reader asked for one at random times reaches it
  (BarrierReached) only once it delivered, or reported trimmed, every instance
  chosen before the barrier began;
- progress: after the faults stop, every live learner delivers every submitted
  value, or reports it trimmed away, within ``Scenario.settle`` simulated seconds.

Nothing depends on anything but the seed, so a failing seed replays exactly.
"""

from __future__ import annotations

import hashlib
import heapq
import random
import traceback
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from kpaxosd.paxos import (
    Address,
    Adopted,
    BarrierReached,
    Cluster,
    Deliver,
    Node,
    PaxosOptions,
    Persist,
    PersistTrim,
    QuorumReach,
    Send,
    Trimmed,
)
from kpaxosd.paxos.ballots import (
    CEILING_EPOCH,
    FIRST_ROUND_SPREAD,
    MAX_PROPOSERS,
    MAX_U32,
    ballot_ceiling,
    ballot_of,
)
from kpaxosd.paxos.options import HELD_RECORD_COST
from kpaxosd.paxos.peers import cut_piece
from wire import (
    AcceptorState,
    ClientValue,
    IdentifiedValue,
    Message,
    Origin,
    encode,
    identify_untrusted,
    is_original_origin,
    wrap,
)
from wire.batch import pack_batch, unpack_batch_untrusted
from wire.device import position_of
from wire.messages import (
    MESSAGE_TYPES,
    Accept,
    Accepted,
    AcceptorOk,
    BarrierAnswer,
    LearnerBarrier,
    LearnerDel,
    LearnerFetch,
    LearnerHi,
    LearnerHistory,
    LearnerStuck,
    Preempted,
    Prepare,
    Promise,
    ProposerHi,
    Repeat,
    Trim,
)
from wire.original import OriginalClientValue, pack_client_value

DEFAULT_OPTIONS = PaxosOptions()

# Event kinds, in the heap as (time, seq, kind, args).
(
    DATAGRAM, TIMER, SUBMIT, CHECK, CRASH, RESTART, HEAL, PROGRESS, ISOLATE, KILL, DRAIN, FORGE,
    BARRIER,
) = range(13)
#: Read barriers a learner host is asked for, a second (Simulation.on_barrier).
BARRIER_RATE = 2.0
#: Where a learner life stands before its first delivery: "after instance 0".
_BEFORE_ALL = 1 << 30

PROFILES = ("mixed", "long", "duel", "harsh", "bigwin", "leader", "steady", "stranger")


@dataclass(frozen=True)
class Scenario:
    """What one seed simulates."""

    seed: int
    layout: str = "split"  # "split": one role per node; "replica": acceptor+... per node
    proposers: int = 1
    learners: int = 2
    window: int = 4
    drop: float = 0.1
    dup: float = 0.05
    min_delay: float = 0.0005
    max_delay: float = 0.02
    #: Chance that a datagram is held back much longer (reordering) ...
    straggle: float = 0.03
    #: ... by up to this long: old duplicates arriving seconds later are what
    #: catches a ballot used twice.
    straggle_max: float = 0.5
    #: Node crashes per simulated second while faults last.
    crash_rate: float = 0.5
    #: Partitions per simulated second: a node cut off (state and timers running).
    isolate_rate: float = 0.0
    fault_until: float = 4.0
    #: How long after the faults stop every value must be delivered everywhere.
    settle: float = 30.0
    clients: int = 2
    values_per_client: int = 3
    #: How many of the clients are original clients (struct client_value, not an
    #: envelope).
    original_clients: int = 0
    #: PaxosOptions.trim_every of the last learner (None: nobody trims).
    trim_every: int | None = None
    #: PaxosOptions.trim_bytes of the last learner, when it trims: 1 makes every
    #: instance a byte mark (it keeps one instance), a few hundred bytes a mark every
    #: few instances.
    trim_bytes: int = DEFAULT_OPTIONS.trim_bytes
    #: PaxosOptions.stable_leader.
    stable_leader: bool = True
    #: Crash the host of proposer 0 (the leader) for good at this time (None: never).
    kill_leader_at: float | None = None

    #: PaxosOptions.proposer_first_round (None: random per proposer life).
    first_round: int | None = None
    #: PaxosOptions.max_values_per_instance (1: no batching by proposers).
    values_per_instance: int = 1
    #: A client sends up to this many of its values in one CLIENT_VALUE (a batch).
    client_batch: int = 1
    #: A node reads what arrived within this long together (Node.receive_many), as
    #: a socket drain does; 0: one message at a time.
    drain: float = 0.0
    #: Chance that an acceptor's store fails to commit a batch while faults last.
    store_fail: float = 0.0
    #: PaxosOptions.learner_max_held_bytes and acceptor_max_held_bytes; not drawn
    #: from the seed (a sweep sets them small to make the nodes shed and refuse).
    learner_max_held_bytes: int = DEFAULT_OPTIONS.learner_max_held_bytes
    acceptor_max_held_bytes: int = DEFAULT_OPTIONS.acceptor_max_held_bytes
    #: Datagrams per simulated second that an adversary outside the configuration
    #: forges (Simulation.on_forge), from the start to the end of the settle period.
    strangers: float = 0.0
    #: The Cluster lists the learner hosts (``learner`` lines): only they may speak
    #: as learners to the acceptors. Otherwise any address may register.
    list_learners: bool = False
    #: Learners keep a durable log (what the daemon's learner store keeps: the
    #: next instance, an exactly-once memory taken now and then, the origins
    #: delivered since) and a restart goes on from it; otherwise a restarted learner
    #: starts over from instance 1.
    learner_storage: bool = False
    profile: str = "mixed"

    @classmethod
    def from_seed(cls, seed: int, profile: str = "mixed") -> Scenario:
        """The scenario of ``seed``: the seed picks among the shapes of the profile.

        mixed: a bit of everything, short (the test suite's default). long: more
        values and clients over longer faults. duel: two proposers without a stable
        leader (libpaxos's contention), many values. harsh: heavy loss, duplication,
        reordering, crashes and partitions. bigwin: libpaxos's default window of
        128. leader: three proposers, and the leader crashes for good while the
        other faults go on. steady: three proposers and no faults at all (a test
        checks that nobody is preempted). stranger: the mixed shapes, with an
        adversary outside the configuration forging 50 to 500 well-formed
        datagrams a second of every type but CLIENT_VALUE, until the end of the
        settle period; the learners are listed in the configuration in half of the
        seeds.
        """
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; one of {', '.join(PROFILES)}")
        r = random.Random(seed * 7919 + 1)
        sc = cls(
            seed=seed,
            profile=profile,
            layout=r.choice(["split", "split", "replica"]),
            proposers=r.choice([1, 2]),
            window=r.choice([1, 2, 4, 4, 8, 16]),
            drop=r.choice([0.0, 0.05, 0.1, 0.3]),
            dup=r.choice([0.0, 0.05, 0.2]),
            max_delay=r.choice([0.002, 0.02, 0.1]),
            straggle=r.choice([0.0, 0.03, 0.1]),
            straggle_max=r.choice([0.5, 0.5, 3.0]),
            crash_rate=r.choice([0.0, 0.3, 1.0, 2.0]),
            isolate_rate=r.choice([0.0, 0.0, 0.5, 1.0]),
            fault_until=r.uniform(1.0, 5.0),
            clients=r.randint(1, 3),
            values_per_client=r.randint(1, 4),
        )
        sc = replace(
            sc,
            original_clients=r.randint(0, sc.clients),
            trim_every=r.choice([None, None, 1, 2, 5]),
            stable_leader=r.random() < 0.8,
        )
        if profile == "long":
            sc = replace(
                sc,
                fault_until=r.uniform(5.0, 15.0),
                clients=r.randint(2, 5),
                values_per_client=r.randint(3, 10),
            )
        elif profile == "duel":
            sc = replace(
                sc,
                proposers=2,
                stable_leader=False,
                clients=4,
                values_per_client=6,
                window=r.choice([4, 16, 64]),
                max_delay=0.05,
            )
        elif profile == "harsh":
            sc = replace(
                sc,
                drop=0.4,
                dup=0.3,
                straggle=0.2,
                straggle_max=3.0,
                crash_rate=3.0,
                isolate_rate=1.0,
                fault_until=8.0,
                values_per_client=5,
            )
        elif profile == "bigwin":
            sc = replace(sc, window=128, clients=3, values_per_client=10)
        elif profile == "leader":
            sc = replace(
                sc,
                proposers=3,
                learners=3,
                stable_leader=True,
                crash_rate=r.choice([0.0, 0.3]),
                fault_until=r.uniform(3.0, 6.0),
                clients=3,
                values_per_client=r.randint(3, 6),
            )
            sc = replace(sc, kill_leader_at=r.uniform(0.3, sc.fault_until - 1.0))
        elif profile == "steady":
            sc = replace(
                sc,
                proposers=3,
                stable_leader=True,
                drop=0.0,
                dup=0.0,
                straggle=0.0,
                crash_rate=0.0,
                isolate_rate=0.0,
                clients=3,
                values_per_client=r.randint(5, 10),
            )
        # Drawn last, so that every field above stays what it was for the seed.
        sc = replace(
            sc,
            values_per_instance=r.choice([1, 2, 8, 1024]),
            client_batch=r.choice([1, 1, 2, 4]),
            drain=r.choice([0.0, 0.0, 0.002, 0.01]),
        )
        if profile == "steady":
            return sc
        sc = replace(sc, store_fail=r.choice([0.0, 0.0, 0.05, 0.3]))
        if profile == "stranger":
            # After every other draw, so that the base shape of the seed is mixed's.
            sc = replace(sc, strangers=r.uniform(50.0, 500.0), list_learners=r.random() < 0.5)
        if sc.trim_every is not None:
            # Drawn after every other: the seeds' other fields stay what they were.
            sc = replace(sc, trim_bytes=r.choice([sc.trim_bytes, sc.trim_bytes, 1, 2000]))
        # Drawn last of all, for the same reason.
        sc = replace(sc, learner_storage=r.random() < 0.5)
        if profile != "stranger":
            # Listed learners fetch trimmed history from one another.
            sc = replace(sc, list_learners=r.random() < 0.5)
        return sc


class _Life:
    """One incarnation of a learner: what it delivered since it (re)started (or
    since the start of the durable log it went on from)."""

    __slots__ = ("adopted", "complete", "iid", "origins", "position", "trimmed")

    def __init__(self) -> None:
        #: The instance of the last delivery (or Trimmed), and the position in its
        #: client values after what was delivered (_BEFORE_ALL: nothing left there).
        self.iid = 0
        self.position = _BEFORE_ALL
        self.origins: set[Origin] = set()
        #: Origins of values chosen in the instances it reported Trimmed.
        self.trimmed: set[Origin] = set()
        #: Its exactly-once memory is that of a learner that delivered everything
        #: from instance 1: it must pass over exactly what every such learner passes
        #: over. False once it reported Trimmed (it never saw what it skipped).
        self.complete = True
        #: The instances of the last peer history taken (Adopted), (first, next).
        self.adopted = (0, 0)


class _History:
    """What a learner delivered, as the daemon's device log keeps it: what the node
    serves to peer learners (kpaxosd.paxos.peers.DeliveredHistory)."""

    def __init__(self) -> None:
        self.positions: list[int] = []
        self.entries: list[tuple[int, bytes, Origin | None]] = []
        #: The first instance from which every value delivered is held.
        self.start = 1

    def add(self, effect: Deliver | Trimmed) -> None:
        if isinstance(effect, Trimmed):
            self.start = effect.next_iid
            return
        for position, value, origin in zip(effect.positions(), effect.values,
                                           effect.origins, strict=True):
            self.positions.append(position)
            self.entries.append((position, value, origin))

    def complete_from(self) -> int:
        return self.start

    def entries_after(self, position: int, end_iid: int, max_bytes: int,
                      ) -> list[tuple[int, bytes, Origin | None]] | None:
        if position < position_of(self.start, 0) - 1:
            return None
        at = bisect_right(self.positions, position)
        return cut_piece(self.entries[at:], end_iid, max_bytes)


@dataclass
class _LearnerStore:
    """What a learner's durable log holds (the daemon's LearnerStore, as the sim
    needs it): where delivery goes on, the exactly-once memory of one instance and
    the origins delivered since, and what the sim's checks carry over a restart."""

    next_iid: int = 1
    memory: bytes | None = None
    since: list[Origin | None] = field(default_factory=list)
    delivered: set[Origin] = field(default_factory=set)
    trimmed: set[Origin] = field(default_factory=set)
    complete: bool = True


@dataclass(eq=False)
class Host:
    name: str
    address: Address
    acceptor_id: int | None = None
    proposer_id: int | None = None
    learner: bool = False
    options: PaxosOptions = field(default_factory=PaxosOptions)
    up: bool = True
    #: Crashed for good (Scenario.kill_leader_at): never restarted.
    dead: bool = False
    node: Node | None = None
    incarnation: int = 0
    storage: dict[int, Persist] = field(default_factory=dict)
    #: The persisted trim point (PersistTrim).
    trim_iid: int = 0
    #: Preemptions of the proposer's earlier lives.
    preemptions: int = 0
    #: Votes the learner shed, PREPAREs/ACCEPTs the acceptor refused full, in the
    #: earlier lives (the byte bounds).
    shed: int = 0
    refused_full: int = 0
    #: Messages the node refused from their source, by reason, in the earlier lives.
    refused: Counter[str] = field(default_factory=Counter)
    isolated_until: float = 0.0
    timer_due: float | None = None
    timer_token: int = 0
    #: Datagrams waiting for the node's next drain (Scenario.drain).
    inbox: list[tuple[Message, Address]] = field(default_factory=list)
    life: _Life = field(default_factory=_Life)
    #: Origins any life of this learner delivered or reported trimmed (what a
    #: watching client sees).
    seen: set[Origin] = field(default_factory=set)
    #: Its durable log (Scenario.learner_storage), None without one.
    learner_store: _LearnerStore | None = None
    #: What its learner delivered, served to its peers (kept over a restart with a
    #: durable log, as the daemon's is).
    history: _History = field(default_factory=_History)


def _bound_counts(node: Node) -> tuple[int, int, int]:
    """A node's proposer preemptions, learner sheds and acceptor refusals (the byte
    bounds), 0 for a role it does not host."""
    stats = node.statistics()
    return (
        stats.proposer.preemptions if stats.proposer else 0,
        stats.learner.shed if stats.learner else 0,
        stats.acceptor.refused_full if stats.acceptor else 0,
    )


@dataclass
class Result:
    scenario: Scenario
    failures: list[str]
    datagrams: int
    deliveries: int
    end_time: float
    digest: str
    #: Preemptions over every proposer life.
    preemptions: int = 0
    #: What the run exercised: Trimmed effects, original values delivered, and the
    #: time of the last delivery (after a leader was killed, say).
    trimmed_reports: int = 0
    originals_delivered: int = 0
    last_delivery_at: float = 0.0
    #: Deliveries of client values that were chosen inside a batch.
    batched_deliveries: int = 0
    #: Batches whose commit the acceptor's store failed (Scenario.store_fail).
    store_failures: int = 0
    #: Votes learners shed and PREPAREs/ACCEPTs acceptors refused, for their byte
    #: bounds (Scenario.learner_max_held_bytes, acceptor_max_held_bytes).
    learner_shed: int = 0
    acceptor_refused_full: int = 0
    #: What the adversary forged (Scenario.strangers), by message type name, and what
    #: the nodes refused from their source, by reason (Node.statistics().refused),
    #: over every node life: the stranger's datagrams mostly, but also a real
    #: learner's TRIM to an acceptor that lost its registration in a crash.
    forged: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    #: Learner restarts that went on from a durable log (Scenario.learner_storage),
    #: the positions whose verdict every learner of complete memory agreed on, and
    #: the verdicts of lives without one (they skipped trimmed history), not compared.
    learner_restores: int = 0
    #: Peer histories learners went on from (Adopted).
    adoptions: int = 0
    positions_compared: int = 0
    uncompared: int = 0
    #: Read barriers begun and reached (the others' learners crashed first, or the
    #: run ended).
    barriers_begun: int = 0
    barriers_reached: int = 0
    #: Times a learner said it could no longer, or again, reach a quorum.
    reach_changes: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures

    def replay_command(self) -> str:
        sc = self.scenario
        return f"python -m tests.sim.run --profile {sc.profile} --start {sc.seed} --seeds 1 -v"


class Violation(Exception):
    pass


class Simulation:
    def __init__(self, scenario: Scenario) -> None:
        self.sc = scenario
        self.rng = random.Random(scenario.seed)
        self.now = 0.0
        self.heap: list[tuple[float, int, int, tuple[Any, ...]]] = []
        self.seq = 0
        self.healed = False
        self.failures: list[str] = []
        self.datagrams = 0
        self.deliveries = 0
        self.trimmed_reports = 0
        self.originals_delivered = 0
        self.batched_deliveries = 0
        self.store_failures = 0
        self.last_delivery_at = 0.0
        self.trace = hashlib.sha256()
        #: (iid, place) -> the origin delivered there, or None where the value was
        #: passed over as a copy: the same at every learner of complete memory.
        self.verdicts: dict[tuple[int, int], Origin | None] = {}
        #: Verdicts not compared: of learner lives that skipped trimmed history.
        self.uncompared = 0
        self.learner_restores = 0
        self.adoptions = 0
        # When a durable learner takes a new memory: its own generator, so that the
        # other draws of a seed stay what they were.
        self.store_rng = random.Random(scenario.seed * 6_700_417 + 5)
        self.hosts = self._make_hosts()
        self.by_address = {h.address: h for h in self.hosts}
        acceptors = {h.acceptor_id: h.address for h in self.hosts if h.acceptor_id is not None}
        proposers = {h.proposer_id: h.address for h in self.hosts if h.proposer_id is not None}
        self.learner_hosts = [h for h in self.hosts if h.learner]
        # Every learner host is listed, the replicas' too: the Cluster takes a
        # replica (acceptor and proposer on one address) for a learner anyway, but
        # not an acceptor that hosts a learner without a proposer (replica layout
        # with fewer proposers than learners).
        learners = (
            {lid: h.address for lid, h in enumerate(self.learner_hosts)}
            if scenario.list_learners
            else {}
        )
        self.cluster = Cluster(acceptors, proposers, learners)
        self.proposer_addresses = [proposers[p] for p in sorted(proposers)]
        self.learner_addresses = frozenset(h.address for h in self.learner_hosts)
        #: The highest TRIM a learner host sent: no acceptor may persist a trim
        #: point above it, whoever else sends TRIM.
        self.learner_trim = 0
        #: The highest iid an acceptor persisted: where the adversary aims "near".
        self.frontier = 0
        # The adversary draws from its own generator, so that what it forges does
        # not depend on how many draws the network and the faults took.
        self.stranger_rng = random.Random(scenario.seed * 104_729 + 17)
        # Its own generator: barriers leave every other draw of a seed as it was.
        self.barrier_rng = random.Random(scenario.seed * 7_919 + 3)
        #: Barriers not reached: token -> (host, its incarnation, the highest
        #: instance chosen when it began).
        self.barriers: dict[int, tuple[Host, int, int]] = {}
        self.barriers_begun = 0
        self.barriers_reached = 0
        self.reach_changes = 0
        self.forged: Counter[str] = Counter()
        #: A few addresses the adversary comes back to (it registers as a learner
        #: there and asks again), and every node's IP with a port that is not its.
        self.stranger_addresses = [
            (f"10.66.{self.stranger_rng.randrange(256)}.{self.stranger_rng.randrange(1, 255)}",
             self.stranger_rng.randrange(1024, 65536))
            for _ in range(8)
        ]
        self.stranger_addresses += [
            (h.address[0], h.address[1] + 1) for h in self.hosts
        ]
        assert not set(self.stranger_addresses) & set(self.by_address)
        options = PaxosOptions(
            preexec_window=scenario.window,
            proposer_first_round=scenario.first_round,
            stable_leader=scenario.stable_leader,
            max_values_per_instance=scenario.values_per_instance,
            learner_max_held_bytes=scenario.learner_max_held_bytes,
            acceptor_max_held_bytes=scenario.acceptor_max_held_bytes,
            # Who is there, in half the seeds: its asks must cost nothing of the rest.
            quorum_timeout=0.5 if self.barrier_rng.random() < 0.5 else None,
        )
        for host in self.hosts:
            host.options = options
        if scenario.trim_every is not None:
            self.learner_hosts[-1].options = replace(
                options, trim_every=scenario.trim_every, trim_bytes=scenario.trim_bytes)
        # The oracle: (iid, ballot) -> aid -> value, from the acceptors' Persist.
        self.accepted: dict[tuple[int, int], dict[int, bytes]] = {}
        self.chosen: dict[int, bytes] = {}
        # Everything clients submitted: origin -> the value sent, and what a reader
        # of decided values must get of it.
        self.proposed: dict[Origin, bytes] = {}
        self.submitted: dict[Origin, bytes] = {}

    # -- setup

    def _make_hosts(self) -> list[Host]:
        sc = self.sc
        hosts: list[Host] = []
        if sc.layout == "replica":
            for i in range(3):
                hosts.append(
                    Host(
                        f"R{i}",
                        (f"10.0.0.{i + 1}", 3003),
                        acceptor_id=i,
                        proposer_id=i if i < sc.proposers else None,
                        learner=i in (0, 2, 1)[: sc.learners],
                    )
                )
        else:
            hosts += [Host(f"A{i}", (f"10.0.1.{i + 1}", 3003), acceptor_id=i) for i in range(3)]
            hosts += [
                Host(f"P{i}", (f"10.0.2.{i + 1}", 3002), proposer_id=i) for i in range(sc.proposers)
            ]
            hosts += [
                Host(f"L{i}", (f"10.0.3.{i + 1}", 3004), learner=True) for i in range(sc.learners)
            ]
        return hosts

    def push(self, at: float, kind: int, *args: Any) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (at, self.seq, kind, args))

    def wall(self) -> float:
        """The wall clock the nodes are told: a year after the ballot ceiling's epoch,
        so that the ceiling moves (a round each SECONDS_PER_ROUND) while runs last."""
        return CEILING_EPOCH + 365 * 86400 + self.now

    def boot(self, host: Host) -> None:
        if not self.sc.learner_storage:
            host.history = _History()  # the device log lives in memory
        host.up = True
        host.incarnation += 1
        host.timer_due = None
        host.inbox = []
        host.life = _Life()
        node = Node(
            host.address,
            self.cluster,
            acceptor_id=host.acceptor_id,
            proposer_id=host.proposer_id,
            learner=host.learner,
            options=host.options,
            rng=random.Random(self.rng.getrandbits(64)),
            now=self.now,
            history=host.history if host.learner else None,
        )
        node.set_wall_clock(self.wall())
        if host.acceptor_id is not None and (host.storage or host.trim_iid):
            node.restore_acceptor(list(host.storage.values()), host.trim_iid)
        if host.learner and self.sc.learner_storage:
            self._restore_learner(host, node)
        host.node = node
        self.after(host)

    def _restore_learner(self, host: Host, node: Node) -> None:
        """Go on from the host's durable log, as the daemon does (kpaxosd.daemon)."""
        store = host.learner_store
        if store is None:
            host.learner_store = _LearnerStore()
            return
        if store.next_iid <= 1:
            return  # nothing delivered yet: starting over is going on
        node.restore_learner(store.next_iid, list(store.since), self.now, store.memory,
                             whole=store.complete)
        life = host.life
        life.iid, life.position = store.next_iid - 1, _BEFORE_ALL
        life.origins = set(store.delivered)
        life.trimmed = set(store.trimmed)
        life.complete = store.complete
        self.learner_restores += 1
        self.trace.update(f"{host.name} restored at {store.next_iid}".encode())

    def _keep_learner_log(self, host: Host, node: Node, effects: list[Any]) -> None:
        """Commit what the learner decided to its durable log (every flush, as the
        daemon's DurableLogFeed does), with a new memory now and then."""
        store = host.learner_store
        learner = node.learner
        if store is None or learner is None or learner.next_iid is None:
            return
        delivered = False
        for effect in effects:
            if isinstance(effect, Deliver):
                store.since.extend(effect.origins)
                store.delivered.update(o for o in effect.origins if o is not None)
                delivered = True
            elif isinstance(effect, Trimmed):
                store.trimmed |= host.life.trimmed
                store.complete = False
        store.next_iid = learner.next_iid
        if delivered and self.store_rng.random() < 0.3:
            store.memory = learner.exactly_once_memory()
            store.since = []

    # -- the run

    def run(self) -> Result:
        sc = self.sc
        try:
            for host in self.hosts:
                self.boot(host)
            self._schedule_clients()
            self._schedule_crashes()
            if sc.kill_leader_at is not None:
                self.push(sc.kill_leader_at, KILL)
            self.push(sc.fault_until, HEAL)
            end = sc.fault_until + sc.settle
            if sc.strangers > 0:
                self.push(self.stranger_rng.expovariate(sc.strangers), FORGE)
            self.push(self.barrier_rng.expovariate(BARRIER_RATE), BARRIER)
            handlers: dict[int, Callable[..., bool]] = {
                DATAGRAM: self.on_datagram,
                TIMER: self.on_timer,
                SUBMIT: self.on_submit,
                CHECK: self.on_check,
                CRASH: self.on_crash,
                RESTART: self.on_restart,
                HEAL: self.on_heal,
                PROGRESS: self.on_progress,
                ISOLATE: self.on_isolate,
                KILL: self.on_kill,
                DRAIN: self.on_drain,
                FORGE: self.on_forge,
                BARRIER: self.on_barrier,
            }
            while self.heap and not self.failures:
                at, _, kind, args = heapq.heappop(self.heap)
                if at > end:
                    break
                self.now = at
                if handlers[kind](*args):
                    break  # everything delivered everywhere
            else:
                pass
            if not self.failures:
                self._check_progress(final=True)
        except Violation as exc:
            self.failures.append(f"t={self.now:.4f}: {exc}")
        except Exception:
            self.failures.append(f"t={self.now:.4f}: exception\n{traceback.format_exc()}")
        preemptions, shed, refused, refused_by_reason = self._counts_over_lives()
        if sc.profile == "steady" and preemptions and not self.failures:
            # One leader and a perfect network: nobody should ever outbid anybody.
            self.failures.append(f"{preemptions} preemptions without a single fault")
        return Result(
            sc,
            self.failures,
            self.datagrams,
            self.deliveries,
            self.now,
            self.trace.hexdigest(),
            preemptions,
            self.trimmed_reports,
            self.originals_delivered,
            self.last_delivery_at,
            self.batched_deliveries,
            self.store_failures,
            shed,
            refused,
            forged=dict(self.forged),
            refused=dict(refused_by_reason),
            learner_restores=self.learner_restores,
            adoptions=self.adoptions,
            positions_compared=len(self.verdicts),
            uncompared=self.uncompared,
            barriers_begun=self.barriers_begun,
            barriers_reached=self.barriers_reached,
            reach_changes=self.reach_changes,
        )

    def _counts_over_lives(self) -> tuple[int, int, int, Counter[str]]:
        """Preemptions, learner sheds, acceptor refusals when full and refusals by
        source (by reason), over every life of every node."""
        preemptions = sum(h.preemptions for h in self.hosts)
        shed = sum(h.shed for h in self.hosts)
        refused = sum(h.refused_full for h in self.hosts)
        refused_by_reason: Counter[str] = Counter()
        for host in self.hosts:
            refused_by_reason.update(host.refused)
            if host.node:
                node_preemptions, node_shed, node_refused = _bound_counts(host.node)
                preemptions += node_preemptions
                shed += node_shed
                refused += node_refused
                refused_by_reason.update(host.node.statistics().refused)
        return preemptions, shed, refused, refused_by_reason

    def _schedule_clients(self) -> None:
        sc = self.sc
        for c in range(sc.clients):
            original = c < sc.original_clients
            client_id = (2000 if original else 1000) + c
            batch: list[Origin] = []
            for seq in range(1, sc.values_per_client + 1):
                payload = f"c{client_id}-{seq}".encode()
                if original:
                    # The original client: a struct client_value stamped with its
                    # send time, delivered whole.
                    stamp = (1_500_000_000 + seq, self.rng.randrange(1_000_000))
                    value = pack_client_value(OriginalClientValue(client_id, *stamp, payload))
                    submitted = value
                else:
                    value, submitted = wrap(client_id, seq, payload), payload
                origin = identify_untrusted(value).origin
                assert origin is not None
                self.proposed[origin] = value
                self.submitted[origin] = submitted
                batch.append(origin)
                if len(batch) == sc.client_batch or seq == sc.values_per_client:
                    at = self.rng.uniform(0.0, sc.fault_until)
                    proposer = self.rng.randrange(len(self.proposer_addresses))
                    self.push(at, SUBMIT, tuple(batch), proposer)
                    batch = []

    def _schedule_crashes(self) -> None:
        sc = self.sc
        for kind, rate in ((CRASH, sc.crash_rate), (ISOLATE, sc.isolate_rate)):
            if rate <= 0:
                continue
            at = self.rng.expovariate(rate)
            while at < sc.fault_until:
                host = self.rng.choice(self.hosts)
                self.push(at, kind, host, self.rng.uniform(0.1, 2.0))
                at += self.rng.expovariate(rate)

    # -- event handlers (a True return ends the run early)

    def on_datagram(self, src: Address, dst: Address, msg: Message) -> bool:
        host = self.by_address.get(dst)
        if host is None or not host.up or (not self.healed and self._cut_off(dst)):
            return False
        assert host.node is not None
        if self.sc.drain > 0:
            if not host.inbox:
                self.push(self.now + self.sc.drain, DRAIN, host, host.incarnation)
            host.inbox.append((msg, src))
            return False
        host.node.set_wall_clock(self.wall())
        host.node.receive(msg, src, self.now)
        self.after(host)
        return False

    def on_drain(self, host: Host, incarnation: int) -> bool:
        if not host.up or incarnation != host.incarnation:
            return False
        assert host.node is not None
        inbox, host.inbox = host.inbox, []
        host.node.set_wall_clock(self.wall())
        host.node.receive_many(inbox, self.now)
        self.after(host)
        return False

    def on_timer(self, host: Host, token: int) -> bool:
        if not host.up or token != host.timer_token:
            return False
        assert host.node is not None
        host.timer_due = None
        host.node.set_wall_clock(self.wall())
        host.node.handle_timer(self.now)
        due = host.node.next_deadline()
        if due is not None and due <= self.now:
            raise Violation(f"{host.name}: next_deadline {due} did not move past now")
        self.after(host)
        return False

    def on_submit(self, origins: tuple[Origin, ...], proposer: int) -> bool:
        address = self.proposer_addresses[proposer % len(self.proposer_addresses)]
        client = ("10.9.9.9", abs(origins[0][0]) % 65536)
        values = [self.proposed[origin] for origin in origins]
        value = values[0] if len(values) == 1 else pack_batch(values)
        self.transmit(client, address, ClientValue(value))
        self.push(self.now + 1.0, CHECK, origins, proposer)
        return False

    def on_check(self, origins: tuple[Origin, ...], proposer: int) -> bool:
        live = [h for h in self.learner_hosts if not h.dead]
        unseen = tuple(o for o in origins if o not in live[abs(o[0]) % len(live)].seen)
        if not unseen:
            return False
        # Not seen within a second: send again, to the next proposer (a client's
        # failover), like the kpaxos client device.
        return self.on_submit(unseen, proposer + 1)

    def on_crash(self, host: Host, downtime: float) -> bool:
        if not host.up or self.healed:
            return False
        self._bring_down(host)
        restart = self.now + downtime
        if restart < self.sc.fault_until:
            self.push(restart, RESTART, host)
        return False

    def on_kill(self) -> bool:
        """The host of proposer 0, the leader, crashes and never comes back."""
        host = next(h for h in self.hosts if h.proposer_id == 0)
        host.dead = True
        if host.up:
            self._bring_down(host)
        return False

    def _bring_down(self, host: Host) -> None:
        assert host.node is not None
        node_preemptions, node_shed, node_refused = _bound_counts(host.node)
        host.preemptions += node_preemptions
        host.shed += node_shed
        host.refused_full += node_refused
        host.refused.update(host.node.statistics().refused)
        host.up = False
        host.node = None
        host.inbox = []
        self.trace.update(f"crash {host.name} {self.now!r}".encode())

    def on_isolate(self, host: Host, duration: float) -> bool:
        # Healing ends every partition (transmit stops looking).
        host.isolated_until = max(host.isolated_until, self.now + duration)
        return False

    def on_restart(self, host: Host) -> bool:
        if not host.up and not host.dead:
            self.boot(host)
        return False

    def on_heal(self) -> bool:
        self.healed = True
        for host in self.hosts:
            if not host.up and not host.dead:
                self.boot(host)
        self.push(self.now + 0.5, PROGRESS)
        return False

    def on_progress(self) -> bool:
        if self._check_progress(final=False):
            return True
        self.push(self.now + 0.5, PROGRESS)
        return False

    def on_barrier(self) -> bool:
        """A reader asks a live learner for a read barrier: it must not be reached
        before everything chosen by now is delivered there (checked in after())."""
        rng = self.barrier_rng
        live = [h for h in self.learner_hosts if h.up and h.node is not None]
        if live:
            host = rng.choice(live)
            assert host.node is not None
            token = self.barriers_begun
            self.barriers_begun += 1
            self.barriers[token] = (host, host.incarnation, max(self.chosen, default=0))
            host.node.barrier(token, self.now)
            self.after(host)
        at = self.now + rng.expovariate(BARRIER_RATE)
        if at <= self.sc.fault_until + self.sc.settle:
            self.push(at, BARRIER)
        return False

    def observe_barrier(self, host: Host, reached: BarrierReached) -> None:
        begun = self.barriers.pop(reached.token, None)
        if begun is None or begun[0] is not host or begun[1] != host.incarnation:
            raise Violation(f"{host.name} reached barrier {reached.token}, which it never began")
        learner = host.node.learner if host.node is not None else None
        assert learner is not None
        delivered = (learner.next_iid or 1) - 1
        if delivered < begun[2]:
            raise Violation(f"{host.name} reached barrier {reached.token} having delivered "
                            f"up to instance {delivered}, but {begun[2]} was chosen before "
                            f"it began")
        self.barriers_reached += 1

    # -- the adversary: a stranger outside the configuration

    def on_forge(self) -> bool:
        """One forged datagram, then the next, until the settle period ends: what a
        stranger sends must cost neither safety nor liveness, so it goes on while
        the cluster is meant to recover."""
        sc, rng = self.sc, self.stranger_rng
        msg = self._forge_message()
        self.forged[type(msg).__name__] += 1
        self.trace.update(f"forge {msg!r}".encode())
        self.transmit(self._stranger_address(), rng.choice(self.hosts).address, msg)
        at = self.now + rng.expovariate(sc.strangers)
        if at <= sc.fault_until + sc.settle:
            self.push(at, FORGE)
        return False

    def _stranger_address(self) -> Address:
        """A source that is no node of the configuration: one the stranger came from
        before, a fresh 10.66.x.y, or a node's IP with a port that is not its."""
        rng = self.stranger_rng
        pick = rng.random()
        if pick < 0.6:
            return rng.choice(self.stranger_addresses)
        if pick < 0.8:
            return (f"10.66.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                    rng.randrange(1, 65536))
        ip, port = rng.choice(self.hosts).address
        # Every host has an IP of its own, so another port there is no node.
        return (ip, rng.choice([p for p in (port - 1, port + 1, rng.randrange(1, 65536))
                                if p != port]))

    def _forge_message(self) -> Message:
        """A well-formed message of any type the wire defines but CLIENT_VALUE, with
        fields meant to hurt.

        CLIENT_VALUE is left out: it is open to anyone by design (any client may
        propose), and a forged one would be chosen and delivered, which the oracle
        rightly takes for a value no client submitted. TRIM is left out where the
        learners are not listed: there anyone may register (LEARNER_HI) and then
        trim, by design (the README says so), and a stranger's trim would make the
        learners lose values they have not delivered.
        """
        rng = self.stranger_rng
        kinds = [t for t in MESSAGE_TYPES if t is not ClientValue]
        if not self.sc.list_learners:
            kinds.remove(Trim)
        kind = rng.choice(kinds)
        iid, ballot, aid = self._forged_iid, self._forged_ballot, self._forged_aid
        if kind is Prepare:
            return Prepare(iid(), ballot())
        if kind is Promise:
            return Promise(aid(), iid(), ballot(), ballot(), self._forged_value())
        if kind is Accept:
            return Accept(iid(), ballot(), self._forged_value())
        if kind is Accepted:
            return Accepted(aid(), iid(), ballot(), ballot(), self._forged_value())
        if kind is Preempted:
            return Preempted(aid(), iid(), ballot())
        if kind is Repeat:
            first = iid()
            return Repeat(first, rng.choice([first, min(first + 100, MAX_U32), MAX_U32, iid()]))
        if kind is Trim:
            # Far ahead of anything decided, or anywhere at all.
            far = min(self.frontier + rng.randrange(1, 10_000), MAX_U32)
            return Trim(rng.choice([far, far, MAX_U32, iid()]))
        if kind is AcceptorState:
            return AcceptorState(aid(), rng.choice([iid(), MAX_U32, self.frontier + 1]))
        if kind is ProposerHi:
            pid = rng.choice([*range(MAX_PROPOSERS), MAX_PROPOSERS, MAX_U32])
            return ProposerHi(pid, rng.choice([iid(), MAX_U32]))
        if kind in (LearnerStuck, LearnerFetch, LearnerHistory, LearnerBarrier, BarrierAnswer):
            return self._forged_learner_message(kind)
        # LEARNER_HI, LEARNER_DEL and ACCEPTOR_OK carry nothing but their type.
        assert kind in (LearnerHi, LearnerDel, AcceptorOk)
        return kind()

    def _forged_learner_message(self, kind: type[Message]) -> Message:
        """A LEARNER_STUCK or LEARNER_BARRIER, a BARRIER_ANSWER in any acceptor's name,
        or a LEARNER_FETCH or LEARNER_HISTORY of any session, part and cursor."""
        rng, iid = self.stranger_rng, self._forged_iid
        if kind is LearnerStuck:
            return LearnerStuck(iid())
        if kind is LearnerBarrier:
            return LearnerBarrier(rng.getrandbits(32))
        if kind is BarrierAnswer:
            return BarrierAnswer(self._forged_aid(), rng.getrandbits(32),
                                 rng.choice([iid(), MAX_U32]))
        session, part = rng.getrandbits(32), rng.choice([0, 0, 1, 2, 7])
        high, low = rng.choice([0, 0, MAX_U32]), rng.choice([0, iid(), MAX_U32])
        if kind is LearnerFetch:
            return LearnerFetch(session, rng.choice([1, iid()]), part, high, low)
        return LearnerHistory(session, part, iid(), iid(), rng.choice([0, 10, MAX_U32]),
                              high, low, self._forged_value())

    def _forged_iid(self) -> int:
        """Near the instances in use (below and above), at the edges, or huge."""
        rng = self.stranger_rng
        pick = rng.random()
        if pick < 0.6:
            return max(0, self.frontier + rng.randint(-8, 2 * self.sc.window + 8))
        if pick < 0.7:
            return rng.choice([0, 1, MAX_U32, MAX_U32 - 1])
        return rng.randrange(1 << 31, MAX_U32 + 1) if rng.random() < 0.5 else rng.getrandbits(32)

    def _forged_ballot(self) -> int:
        """The top of the u32, configured proposers' ballots (low, of a first round,
        at and above the ceiling of the moment), and others."""
        rng = self.stranger_rng
        pick = rng.random()
        pid = rng.randrange(len(self.proposer_addresses))
        if pick < 0.2:
            return MAX_U32
        if pick < 0.4:
            return ballot_of(rng.randint(1, 5), pid)
        if pick < 0.6:
            return ballot_of(rng.randrange(FIRST_ROUND_SPREAD), pid)
        if pick < 0.8:
            top = ballot_ceiling(self.wall()) // MAX_PROPOSERS
            return min(ballot_of(top + rng.randint(-2, 2), pid), MAX_U32)
        return rng.choice([0, rng.getrandbits(32)])

    def _forged_aid(self) -> int:
        """A configured acceptor's id mostly (spoofed), or one nobody has."""
        rng = self.stranger_rng
        if rng.random() < 0.7:
            return rng.randrange(3)
        return rng.choice([3, 4, 255, MAX_U32, rng.getrandbits(32)])

    def _forged_value(self) -> bytes:
        """Random bytes, the no-op, a value a client really submitted, or a forged
        envelope or batch in a real client's name."""
        rng = self.stranger_rng
        pick = rng.random()
        if pick < 0.3:
            return rng.randbytes(rng.randrange(64))
        if pick < 0.4:
            return b""
        if pick < 0.6 and self.proposed:
            return rng.choice(list(self.proposed.values()))
        forged = wrap(rng.choice([1000, 1001, 2000, 31337]), rng.randint(1, 10), b"forged")
        return forged if rng.random() < 0.5 else pack_batch([forged, rng.randbytes(8)])

    # -- effects

    # One dispatch over every effect kind, like the endpoint's; the branches are the
    # kinds.
    def after(self, host: Host) -> None:  # noqa: C901, PLR0912
        """Carry out what a node asked for, then re-arm its timer."""
        node = host.node
        assert node is not None
        effects = node.pop_effects()
        for effect in effects:
            # Before the store is asked: a trim point no learner asked for is wrong
            # whether or not its commit then fails.
            if isinstance(effect, PersistTrim) and effect.iid > self.learner_trim:
                raise Violation(f"{host.name} trims to {effect.iid}, but no learner "
                                f"asked above {self.learner_trim}")
        if self._commit_fails(host, effects):
            effects = [e for e in effects if not isinstance(e, (Send, Persist, PersistTrim))]
        for effect in effects:
            if isinstance(effect, Send):
                msg = effect.msg
                if isinstance(msg, AcceptorState) and msg.trim_iid > host.trim_iid:
                    raise Violation(
                        f"{host.name} told trim point {msg.trim_iid}, persisted {host.trim_iid}"
                    )
                self.transmit(host.address, effect.dest, msg)
            elif isinstance(effect, Persist):
                if host.acceptor_id is None:
                    raise Violation(f"{host.name} persisted without hosting an acceptor")
                if effect.iid <= host.trim_iid:
                    raise Violation(f"{host.name} persisted iid {effect.iid} below its trim")
                host.storage[effect.iid] = effect
                self.observe_acceptance(host.acceptor_id, effect)
            elif isinstance(effect, PersistTrim):
                if host.acceptor_id is None or effect.iid <= host.trim_iid:
                    raise Violation(f"{host.name}: unexpected {effect!r}")
                # The wrapper's job: keep the trim point, drop the records below.
                host.trim_iid = effect.iid
                host.storage = {i: p for i, p in host.storage.items() if i > effect.iid}
            elif isinstance(effect, Deliver):
                for value, origin in zip(effect.values, effect.origins, strict=True):
                    self.observe_delivery(host, effect.iid, value, origin)
                host.history.add(effect)
            elif isinstance(effect, Trimmed):
                self.observe_trimmed(host, effect)
                host.history.add(effect)
            elif isinstance(effect, Adopted):
                self.observe_adopted(host, effect)
            elif isinstance(effect, BarrierReached):
                self.observe_barrier(host, effect)
            elif isinstance(effect, QuorumReach):
                if host.options.quorum_timeout is None:
                    raise Violation(f"{host.name} judged its reach with no quorum_timeout")
                self.reach_changes += 1
            else:
                raise Violation(f"unknown effect {effect!r}")
        self._keep_learner_log(host, node, effects)
        self._check_held_bytes(node)
        due = node.next_deadline()
        if due != host.timer_due:
            host.timer_due = due
            host.timer_token += 1
            if due is not None:
                self.push(max(due, self.now), TIMER, host, host.timer_token)

    def _check_held_bytes(self, node: Node) -> None:
        """The byte counts the bounds go by, kept as messages come, are what a count
        from scratch gives (white box: the roles' private state)."""
        learner, acceptor = node.learner, node.acceptor
        if learner is not None:
            pending = sum(len(value) + HELD_RECORD_COST
                          for votes in learner._pending.values()
                          for _, value in votes._by_aid.values())
            instances = len(learner._pending) + len(learner._decided)
            decided = sum(len(value) for value in learner._decided.values())
            counted = pending + decided + instances * HELD_RECORD_COST
            if learner.held_bytes != counted:
                raise Violation(f"learner counts {learner.held_bytes} bytes, holds {counted}")
        if acceptor is not None:
            counted = sum(len(r.value) + HELD_RECORD_COST for r in acceptor._records.values())
            if acceptor.held_bytes != counted:
                raise Violation(f"acceptor counts {acceptor.held_bytes} bytes, holds {counted}")

    def _commit_fails(self, host: Host, effects: list[Any]) -> bool:
        """Whether the store fails to commit this batch (disk full, fsync error).

        As the daemon's endpoint does then: the acceptor goes back to what the store
        holds, and nothing of the batch leaves. A failed commit may still have
        reached the disk (a sync that failed after the write): then the store holds
        the batch, and so does the acceptor after reading it back.
        """
        if self.healed or self.sc.store_fail == 0.0 or host.acceptor_id is None:
            return False
        persists = [e for e in effects if isinstance(e, Persist)]
        trims = [e.iid for e in effects if isinstance(e, PersistTrim)]
        if not persists and not trims:
            return False
        if self.rng.random() >= self.sc.store_fail:
            return False
        assert host.node is not None
        self.store_failures += 1
        if self.rng.random() < 0.5:
            for p in persists:
                if p.iid > host.trim_iid:
                    host.storage[p.iid] = p
                    self.observe_acceptance(host.acceptor_id, p)
            if trims and max(trims) > host.trim_iid:
                host.trim_iid = max(trims)
                host.storage = {i: p for i, p in host.storage.items() if i > host.trim_iid}
        failed_trim = max(trims, default=host.trim_iid)
        iids = [p.iid for p in persists]
        durable = [host.storage[i] for i in iids if i in host.storage]
        durable += [p for i, p in host.storage.items() if host.trim_iid < i <= failed_trim]
        host.node.revert_acceptor(iids, durable, host.trim_iid)
        self.trace.update(f"store-fail {host.name} {self.now!r}".encode())
        return True

    def transmit(self, src: Address, dst: Address, msg: Message) -> None:
        encode(msg)  # everything the core sends must fit the wire
        self.datagrams += 1
        if isinstance(msg, Trim) and src in self.learner_addresses:
            self.learner_trim = max(self.learner_trim, msg.iid)
        if dst not in self.by_address:
            return
        sc, rng = self.sc, self.rng
        copies = 1
        if not self.healed:
            if rng.random() < sc.drop:
                return
            if self._cut_off(src) or self._cut_off(dst):
                return
            if rng.random() < sc.dup:
                copies = 2
        for _ in range(copies):
            delay = rng.uniform(sc.min_delay, sc.max_delay)
            if not self.healed and rng.random() < sc.straggle:
                delay += rng.uniform(0.0, sc.straggle_max)
            self.push(self.now + delay, DATAGRAM, src, dst, msg)

    def _cut_off(self, address: Address) -> bool:
        host = self.by_address.get(address)
        return host is not None and host.isolated_until > self.now

    # -- the oracle and the checks

    def observe_acceptance(self, aid: int, p: Persist) -> None:
        self.frontier = max(self.frontier, p.iid)
        if p.accepted_ballot == 0:
            return
        votes = self.accepted.setdefault((p.iid, p.accepted_ballot), {})
        before = votes.get(aid)
        if before is not None and before != p.value:
            raise Violation(
                f"acceptor {aid} accepted two values at iid {p.iid} ballot {p.accepted_ballot}"
            )
        votes[aid] = p.value
        if sum(1 for v in votes.values() if v == p.value) >= self.cluster.quorum:
            chosen = self.chosen.setdefault(p.iid, p.value)
            if chosen != p.value:
                raise Violation(f"two values chosen for iid {p.iid}: {chosen!r} and {p.value!r}")

    def _items(self, iid: int) -> list[IdentifiedValue]:
        """The client values chosen in ``iid``, as a reader gets them, in order."""
        value = self.chosen.get(iid)
        if value is None:
            raise Violation(f"iid {iid} is not chosen")
        if value == b"":
            return []  # the no-op that fills a hole: never delivered
        items = unpack_batch_untrusted(value)
        return [identify_untrusted(item) for item in ([value] if items is None else items)]

    def _check_duplicates(self, host: Host, iid: int, items: list[IdentifiedValue],
                          first_place: int) -> None:
        """Client values a learner passed over (at ``first_place`` on) must be ones
        it delivered already, and ones every other learner passes over."""
        for place, item in enumerate(items, first_place):
            if item.origin is None or item.origin not in host.life.origins:
                raise Violation(f"{host.name} skipped {item!r} of iid {iid}, not a duplicate")
            self._same_verdict(host, iid, place, None)

    def _same_verdict(self, host: Host, iid: int, place: int, origin: Origin | None) -> None:
        """Every learner delivers the same values at the same positions: what
        ``host`` did at (iid, place) — delivered ``origin``, or passed over (None) —
        is what every other learner of complete memory did there."""
        if not host.life.complete:
            self.uncompared += 1
            return
        before = self.verdicts.setdefault((iid, place), origin)
        if before != origin:
            did = "passed over" if origin is None else f"delivered {origin}"
            other = "passed it over" if before is None else f"delivered {before}"
            raise Violation(f"{host.name} {did} at iid {iid} place {place}, where another "
                            f"learner {other}")

    def _skip_to(self, host: Host, iid: int) -> None:
        """The learner moves on to ``iid``: what it left behind was duplicates."""
        life = host.life
        if life.iid > 0 and life.position < _BEFORE_ALL:
            self._check_duplicates(host, life.iid, self._items(life.iid)[life.position :],
                                   life.position)
        for skipped in range(life.iid + 1, iid):
            self._check_duplicates(host, skipped, self._items(skipped), 0)
        life.iid, life.position = iid, 0

    def observe_delivery(
        self, host: Host, iid: int, value: bytes, origin: Origin | None
    ) -> None:
        life = host.life
        self.deliveries += 1
        self.trace.update(f"{host.name} {iid} {origin}".encode())
        if iid < life.iid or (iid == life.iid and life.position == _BEFORE_ALL):
            raise Violation(f"{host.name} delivered iid {iid} after {life.iid}")
        if iid > life.iid:
            self._skip_to(host, iid)
        items = self._items(iid)
        rest = items[life.position :]
        at = next((k for k, item in enumerate(rest) if item.origin == origin), None)
        if origin is None or at is None or rest[at].payload != value:
            raise Violation(f"{host.name} delivered {(iid, value, origin)!r} but "
                            f"{self.chosen[iid]!r} was chosen")
        self._check_duplicates(host, iid, rest[:at], life.position)
        self._same_verdict(host, iid, life.position + at, origin)
        if origin in life.origins:
            raise Violation(f"{host.name} delivered origin {origin} twice")
        if self.submitted.get(origin) != value:
            raise Violation(
                f"{host.name} delivered {(iid, value, origin)!r}, which no client submitted"
            )
        life.origins.add(origin)
        life.position += at + 1
        host.seen.add(origin)
        self.last_delivery_at = self.now
        if is_original_origin(origin):
            self.originals_delivered += 1
        if self.chosen[iid] != self.proposed[origin]:
            self.batched_deliveries += 1

    def observe_adopted(self, host: Host, adopted: Adopted) -> None:
        """The learner goes on from a peer's history: what it delivers up to
        ``next_iid`` is the peer's, and so is its memory there. It is of complete
        memory if the peer's is; what that memory says was delivered before
        ``first_iid`` is what every learner of complete memory delivered there (the
        values from there on it delivers itself)."""
        life = host.life
        self.adoptions += 1
        peer = self.by_address.get(adopted.peer)
        if peer is None or not peer.learner or adopted.peer == host.address:
            raise Violation(f"{host.name} adopted the history of {adopted.peer}, no peer")
        if adopted.first_iid <= life.iid or adopted.next_iid < adopted.first_iid:
            raise Violation(f"{host.name}: {adopted!r} after delivering up to {life.iid}")
        life.adopted = (adopted.first_iid, adopted.next_iid)
        life.complete = peer.life.complete
        life.origins |= {origin for (iid, _), origin in self.verdicts.items()
                         if origin is not None and iid < adopted.first_iid}
        self.trace.update(f"{host.name} adopted {adopted.first_iid} {adopted.next_iid} "
                          f"from {peer.name}".encode())

    def observe_trimmed(self, host: Host, t: Trimmed) -> None:
        life = host.life
        self.trimmed_reports += 1
        self.trace.update(f"{host.name} trimmed {t.first_iid} {t.next_iid}".encode())
        if t.first_iid <= life.iid or t.next_iid <= t.first_iid:
            raise Violation(f"{host.name}: {t!r} after delivering up to {life.iid}")
        self._skip_to(host, t.first_iid)
        # The history before a peer's, or what a peer could not give after all: the
        # peer's memory says what came before.
        from_peer = life.adopted != (0, 0) and t.next_iid in life.adopted
        if not from_peer:
            life.complete = False
        trimmed = max(h.trim_iid for h in self.hosts if h.acceptor_id is not None)
        if trimmed < t.next_iid - 1 and not from_peer:
            raise Violation(f"{host.name}: {t!r} but the acceptors trimmed only to {trimmed}")
        for iid in range(t.first_iid, t.next_iid):
            for item in self._items(iid):
                if item.origin is not None:
                    life.trimmed.add(item.origin)
                    host.seen.add(item.origin)
        life.iid, life.position = t.next_iid - 1, _BEFORE_ALL

    def _check_progress(self, *, final: bool) -> bool:
        """Whether every learner delivered everything; on the final check, fail if not."""
        wanted = set(self.submitted)
        for host in self.learner_hosts:
            if host.dead:
                continue
            missing = wanted - host.life.origins - host.life.trimmed
            if missing:
                if final:
                    node = host.node
                    stats = node.statistics() if node else None
                    self.failures.append(
                        f"progress: {host.name} lacks {len(missing)} of {len(wanted)} values "
                        f"{sorted(missing)[:5]} at t={self.now:.2f} "
                        f"(faults ended at {self.sc.fault_until:.2f}); stats {stats}"
                    )
                return False
        return True


def simulate(seed: int, profile: str = "mixed", **overrides: Any) -> Result:
    """Run the scenario of ``seed`` in ``profile`` (fields may be overridden)."""
    scenario = replace(Scenario.from_seed(seed, profile), **overrides)
    return Simulation(scenario).run()
