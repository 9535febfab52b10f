"""The daemon: the roles this process hosts, their UDP endpoints, and the devices."""

from __future__ import annotations

import dataclasses
import logging
import random
import signal
import socket
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import trio

from devices.valuelog import ValueLog
from kpaxosd.auth import TRAILER_SIZE as AUTH_TRAILER_SIZE
from kpaxosd.auth import Authenticator, AuthKeyError, load_key
from kpaxosd.barriers import ReadBarriers
from kpaxosd.config import Config
from kpaxosd.decisions import Decisions, DeviceLogFeed, DeviceLogHistory, DurableLogFeed
from kpaxosd.endpoint import (
    IPV4_UDP_HEADERS,
    LocalBus,
    UdpEndpoint,
    open_udp_socket,
    path_mtu,
    source_host_towards,
)
from kpaxosd.kclient import KClient
from kpaxosd.metrics import make_registry, open_metrics_socket, serve_metrics
from kpaxosd.paxos.acceptor import Restored
from kpaxosd.paxos.cluster import Address
from kpaxosd.paxos.effects import Signal
from kpaxosd.paxos.node import Node
from kpaxosd.paxos.options import PaxosOptions
from kpaxosd.paxos.peers import HISTORY_HEADER_BYTES
from kpaxosd.proposals import ClientProposals
from kpaxosd.statistics import DaemonStatistics, DecidedCounters
from kpaxosd.storage import (
    AcceptorStore,
    LearnerLog,
    LearnerStore,
    LoggedGap,
    LoggedValue,
)
from wire import MAX_VALUE_SIZE
from wire.datagram import MAX_DATAGRAM_SIZE
from wire.device import position_of

if TYPE_CHECKING:
    from devices import DeviceInfo

log = logging.getLogger("kpaxos")

#: How long blocked readers and writers get to see EOF or EIO before the devices go.
SHUTDOWN_GRACE = 0.2
#: Each stops the daemon cleanly. SIGHUP and SIGUSR1 too: by default they would kill
#: it with no clean-up (the mount and links left behind); kpaxosd reloads nothing.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1)


class DaemonError(Exception):
    """A start-up failure worth one clear line to the operator."""


@dataclass
class DeviceOptions:
    """How the devices are served (see devices.serve_devices)."""

    mount_dir: str = "/run/kpaxos"
    link_dir: str = "/dev"
    mode: int = 0o660
    #: "auto" (CUSE when the kernel has it, else FUSE), "cuse" or "fuse".
    backend: Literal["auto", "cuse", "fuse"] = "auto"
    #: The devices' group id; None: the daemon's group.
    group: int | None = None
    #: Put before every device name, e.g. for a second instance beside the real one.
    name_prefix: str = ""
    #: Also serve the learner as /dev/chardevice/klearner<ID>, the original's path.
    compat_learner_id: int | None = None


@dataclass
class KClientOptions:
    """The kclient role: values kept in flight by the daemon itself."""

    outstanding: int = 1
    value_size: int = 64
    proposer_id: int = 0


@dataclass
class DaemonSpec:
    """What one kpaxosd process hosts."""

    config: Config
    acceptors: list[int] = field(default_factory=list)
    proposers: list[int] = field(default_factory=list)
    replicas: list[int] = field(default_factory=list)
    learner: bool = False
    #: Which listed learner (the configuration's ``learner`` lines) that is; None
    #: where it lists none.
    learner_id: int | None = None
    #: Where a learner of its own listens; None: the address this host reaches the
    #: acceptors from, on a free port (never every interface unless asked).
    learner_address: Address | None = None
    devices: DeviceOptions | None = None
    #: The proposer the client device sends to; None: the lowest one this process
    #: hosts (a follower forwards to the leader, so a replica's device keeps working
    #: when the leader dies), else proposer 0.
    client_proposer: int | None = None
    client_timeout: float = 30.0
    #: Writes and read barriers fail with ENOTCONN once the learner heard from no
    #: quorum of acceptors for this long (0: they wait for client_timeout).
    quorum_timeout: float = 2.0
    kclient: KClientOptions | None = None
    #: Directory of the durable acceptor stores (one LMDB environment per acceptor).
    storage: str | None = None
    #: The key file that turns on datagram authentication (None: the original wire).
    auth_key_file: str | None = None
    #: Where to serve Prometheus metrics, (host, port); None: nowhere.
    metrics: Address | None = None
    #: Delivered values kept for device readers; older ones are forgotten.
    retain: int = 1_000_000
    #: ... and at most this many bytes of them (whole receive batches; the newest
    #: batch stays even when larger), so that large values cannot take the memory.
    retain_bytes: int = 256 * 1024 * 1024
    #: Hand messages between this process's own endpoints in process (no datagram).
    local_delivery: bool = True


@dataclass
class _EndpointPlan:
    address: Address
    acceptor_id: int | None = None
    proposer_id: int | None = None
    learner: bool = False

    def describe(self) -> str:
        roles = []
        if self.acceptor_id is not None:
            roles.append(f"acceptor {self.acceptor_id}")
        if self.proposer_id is not None:
            roles.append(f"proposer {self.proposer_id}")
        if self.learner:
            roles.append("learner")
        return " + ".join(roles)


def plan_endpoints(spec: DaemonSpec) -> list[_EndpointPlan]:
    """Group the hosted roles by address: a replica's roles share one endpoint."""
    cluster = spec.config.cluster
    plans: dict[Address, _EndpointPlan] = {}

    def plan_for(address: Address) -> _EndpointPlan:
        return plans.setdefault(address, _EndpointPlan(address))

    def need(table: dict[int, Address], kind: str, role_id: int) -> Address:
        if role_id not in table:
            known = ", ".join(str(i) for i in sorted(table)) or "none"
            raise DaemonError(
                f"{spec.config.source} defines no {kind} {role_id} (it has {kind}s {known})"
            )
        return table[role_id]

    for aid in spec.acceptors:
        plan_for(need(cluster.acceptors, "acceptor", aid)).acceptor_id = aid
    for pid in spec.proposers:
        plan_for(need(cluster.proposers, "proposer", pid)).proposer_id = pid
    for rid in spec.replicas:
        address = need(cluster.acceptors, "acceptor", rid)
        if cluster.proposers.get(rid) != address:
            raise DaemonError(
                f"{spec.config.source}: {rid} is not a replica (its acceptor and proposer differ)"
            )
        plan = plan_for(address)
        plan.acceptor_id = plan.proposer_id = rid
        plan.learner = True
    result = list(plans.values())
    if spec.learner and not any(plan.learner for plan in result):
        result.append(_EndpointPlan(_learner_address(spec), learner=True))
    elif spec.learner_id is not None and spec.replicas:
        raise DaemonError(f"--learner {spec.learner_id}: this process hosts a replica, "
                          "whose learner is on the replica's address; leave --learner out")
    return result


def _learner_address(spec: DaemonSpec) -> Address:
    """Where the learner of its own listens: its listed address, the one asked for,
    or the address this host reaches the acceptors from."""
    config, learners = spec.config, spec.config.cluster.learners
    if not learners:
        if spec.learner_id is not None:
            raise DaemonError(f"{config.source} lists no learners; give --learner without "
                              "an ID (or add learner lines)")
        return spec.learner_address or (_learner_host(config), 0)
    listed = ", ".join(f"{lid} at {host}:{port}" for lid, (host, port) in learners.items())
    if spec.learner_id is None:
        raise DaemonError(f"{config.source} lists learners ({listed}), and the acceptors "
                          "take learners only from there: say which this is with --learner ID")
    if spec.learner_id not in learners:
        raise DaemonError(f"{config.source} defines no learner {spec.learner_id} (it has "
                          f"learners {listed})")
    address = learners[spec.learner_id]
    if spec.learner_address is not None and spec.learner_address != address:
        raise DaemonError(
            f"--learner-address {spec.learner_address[0]}:{spec.learner_address[1]} is not "
            f"learner {spec.learner_id}'s address in {config.source} "
            f"({address[0]}:{address[1]}); leave it out")
    return address


def _learner_host(config: Config) -> str:
    """The one address of this host that the acceptors are reached from."""
    routes = {source_host_towards(address) for address in config.cluster.acceptors.values()}
    hosts = sorted(host for host in routes if host is not None)
    if len(hosts) == 1:
        return hosts[0]
    if not hosts:
        raise DaemonError(
            f"no route from this host to any acceptor of {config.source}; is the network "
            "up? (or give --learner-address HOST:PORT)")
    raise DaemonError(
        f"this host reaches the acceptors of {config.source} from several addresses "
        f"({', '.join(hosts)}); choose where the learner listens with --learner-address "
        "HOST:PORT (0.0.0.0 for every interface)")


def _report_restored(aid: int, path: Path, restored: Restored) -> None:
    """Say what a store held that no proposer of ours could have asked for."""
    if restored.lowered:
        log.warning(
            "acceptor %d: %d promises in %s were for ballots no proposer of this cluster "
            "reaches (up to %d, instances %d to %d): forged PREPAREs that a kpaxos "
            "without sender checks took; they are lowered to what was accepted, and "
            "those instances can be decided again", aid, len(restored.lowered), path,
            restored.highest_lowered, min(restored.lowered), max(restored.lowered))
    if restored.accepted_absurd:
        log.error(
            "acceptor %d: %d instances in %s (%d to %d) hold a value accepted at a "
            "forged ballot; they are left as they are: where a quorum of acceptors holds "
            "one, it is decided; anywhere else that instance cannot be decided. To start "
            "over, stop every node and move every acceptor's --storage aside (what they "
            "hold is lost)", aid, len(restored.accepted_absurd), path,
            min(restored.accepted_absurd), max(restored.accepted_absurd))


def _restore_learner(node: Node, logged: LearnerLog, values: list[LoggedValue], path: Path,
                     now: float) -> int:
    """Put the learner back where its durable log stopped; the instance of the
    exactly-once memory it went on from (0: none)."""
    if not logged.next_iid:
        return 0
    memory = logged.memory
    if memory is not None:
        since = position_of(memory.next_iid, 0)
        try:
            node.restore_learner(logged.next_iid, [entry.origin for entry in values
                                                   if entry.position >= since],
                                 now, memory.memory,
                                 whole=not any(isinstance(entry, LoggedGap)
                                               for entry in logged.entries))
        except ValueError as exc:
            log.warning("the learner log at %s keeps an exactly-once memory this learner "
                        "cannot go on from (%s); it goes on "
                        "from the origins of the values kept, and may deliver again a copy "
                        "of a value older than those", path, exc)
        else:
            return memory.next_iid
    node.restore_learner(logged.next_iid, [entry.origin for entry in values], now,
                         whole=False)
    return 0


class Daemon:
    def __init__(self, spec: DaemonSpec) -> None:
        self.spec = spec
        self.values = ValueLog()
        self.endpoints: list[UdpEndpoint] = []
        self.proposals: ClientProposals | None = None
        self.barriers: ReadBarriers | None = None
        self.learner_endpoint: UdpEndpoint | None = None
        self.kclient: KClient | None = None
        self.decided = DecidedCounters()
        #: The daemon's learner's decisions, for every consumer that subscribes: the
        #: counters and the device log from the start, the client proposals and the
        #: kclient once bind() makes them.
        self.decisions = Decisions()
        self.decisions.subscribe(self.decided)
        self._device_feed = DeviceLogFeed(self.values, retain=spec.retain,
                                          retain_bytes=spec.retain_bytes)
        self.decisions.subscribe(self._device_feed)
        self.device_info: DeviceInfo | None = None
        self.registry, self.latency = make_registry(self.statistics)
        self.bus = LocalBus() if spec.local_delivery else None
        self._stack = ExitStack()
        #: The listening socket of --metrics, opened by bind().
        self._metrics_socket: socket.socket | None = None

    def _fill_batches_to_the_mtu(self, options: PaxosOptions, authenticated: bool,
                                 ) -> PaxosOptions:
        """Batches that fit the smallest path MTU to the acceptors, unfragmented."""
        # A batch travels as the value of ACCEPT, PROMISE and ACCEPTED: the datagram's
        # room for a value (the last of them has the most header before it).
        room = _room_under_path_mtu(self.spec.config.cluster.acceptors.values(),
                                    MAX_DATAGRAM_SIZE - MAX_VALUE_SIZE, authenticated)
        if room is None or room[0] >= options.max_batch_bytes:
            return options
        fill, mtu = room
        log.info("the proposer packs client values into batches of at most %d bytes "
                 "(a path MTU of %d to the acceptors; a bigger value goes alone)", fill, mtu)
        return dataclasses.replace(options, batch_fill_bytes=max(fill, 1))

    def _history_pieces_to_the_mtu(self, options: PaxosOptions, authenticated: bool,
                                   ) -> PaxosOptions:
        """Pieces of history for peer learners that fit the smallest path MTU to the
        listed learners, unfragmented (kpaxosd.paxos.peers)."""
        room = _room_under_path_mtu(self.spec.config.cluster.learners.values(),
                                    HISTORY_HEADER_BYTES, authenticated)
        if room is None or room[0] >= options.history_piece_bytes:
            return options
        fill, mtu = room
        log.info("the learner gives its history to peer learners in pieces of at most "
                 "%d bytes (a path MTU of %d to them)", fill, mtu)
        return dataclasses.replace(options, history_piece_bytes=max(fill, 1))

    def bind(self) -> None:
        """Open every socket, so that address conflicts show before anything runs."""
        try:
            self._bind()
        except BaseException:
            # Whatever failed, nothing opened so far stays bound.
            self._stack.close()
            raise

    def _bind(self) -> None:
        # The set-up, step by step; each step may refuse with a DaemonError.
        seed_source = random.SystemRandom()
        self._open_metrics_socket()
        auth = self._load_auth()
        plans = plan_endpoints(self.spec)
        options = self._options_for(plans, auth)
        now = trio.current_time()
        for plan in plans:
            self._add_endpoint(plan, options, auth, random.Random(seed_source.getrandbits(64)),
                               now)
        self._log_trimming()
        if self.learner_endpoint is not None:
            if self.spec.storage is not None:
                self._open_learner_log(self.learner_endpoint.node, now)
            self._add_client_proposals(self.learner_endpoint, auth, seed_source)

    def _open_metrics_socket(self) -> None:
        if self.spec.metrics is None:
            return
        host, port = self.spec.metrics
        try:
            self._metrics_socket = self._stack.enter_context(open_metrics_socket(host, port))
        except OSError as exc:
            raise DaemonError(
                f"--metrics: cannot listen on {host}:{port}: {exc.strerror or exc}; "
                "choose a free address of this host"
            ) from None

    def _load_auth(self) -> Authenticator | None:
        key_file = self.spec.auth_key_file
        if key_file is None:
            return None
        try:
            auth = Authenticator(load_key(key_file))
        except AuthKeyError as exc:
            raise DaemonError(str(exc)) from None
        log.info("every datagram is authenticated with the key in %s", key_file)
        return auth

    def _options_for(self, plans: list[_EndpointPlan], auth: Authenticator | None,
                     ) -> PaxosOptions:
        """The configured options, with batches that fit the datagrams we send."""
        options = self.spec.config.options
        if self.spec.quorum_timeout > 0:
            options = dataclasses.replace(options, quorum_timeout=self.spec.quorum_timeout)
        if auth is not None:
            # A batch must leave room in its datagram for the authentication trailer.
            room = min(options.max_batch_bytes, MAX_VALUE_SIZE - AUTH_TRAILER_SIZE)
            options = dataclasses.replace(options, max_batch_bytes=room)
        if any(plan.proposer_id is not None for plan in plans):
            options = self._fill_batches_to_the_mtu(options, auth is not None)
        if any(plan.learner for plan in plans):
            options = self._history_pieces_to_the_mtu(options, auth is not None)
        return options

    def _add_endpoint(self, plan: _EndpointPlan, options: PaxosOptions,
                      auth: Authenticator | None, rng: random.Random, now: float) -> None:
        """Bind ``plan``'s socket and put the node of its roles behind it."""
        spec = self.spec
        try:
            sock = self._stack.enter_context(open_udp_socket(plan.address))
        except OSError as exc:
            host, port = plan.address
            raise DaemonError(
                f"cannot bind {plan.describe()} to {host}:{port}: {exc.strerror or exc}"
            ) from None
        # Several replicas in one process each keep their learner (its proposer
        # learns from it), but only the first feeds the devices, and only it
        # trims: the others would deliver every value again.
        feeds_devices = plan.learner and self.learner_endpoint is None
        if plan.learner and not feeds_devices and options.trim_every is not None:
            options = dataclasses.replace(options, trim_every=None)
        node = Node(
            sock.getsockname()[:2],
            spec.config.cluster,
            acceptor_id=plan.acceptor_id,
            proposer_id=plan.proposer_id,
            learner=plan.learner,
            options=options,
            rng=rng,
            now=now,
            # What it serves to the listed peer learners, and fetches from them.
            history=DeviceLogHistory(self.values) if plan.learner else None,
        )
        # Before the store is restored: what it holds above the ceiling was forged.
        node.set_wall_clock(time.time())
        store = None
        if plan.acceptor_id is not None and spec.storage is not None:
            store = self._open_store(plan.acceptor_id, node)
        endpoint = UdpEndpoint(
            node,
            sock,
            on_deliver=self.decisions.publish if feeds_devices else None,
            on_signal=self._on_signals if feeds_devices else None,
            store=store,
            auth=auth,
            name=plan.describe(),
            bus=self.bus,
        )
        self.endpoints.append(endpoint)
        if feeds_devices:
            self.learner_endpoint = endpoint
        host, port = endpoint.address
        log.info("%s listening on %s:%d", plan.describe(), host, port)

    def _on_signals(self, signals: list[Signal]) -> None:
        if self.barriers is not None:
            self.barriers.on_signals(signals)

    def _log_trimming(self) -> None:
        options = self.spec.config.options
        trim_every = options.trim_every
        if trim_every is not None and self.learner_endpoint is not None:
            log.info(
                "the learner trims the acceptors every %d delivered instances or %d bytes; "
                "they keep the last %d to %d instances, or %d to %d bytes of them if that "
                "is less, for learners behind it", trim_every, options.trim_bytes,
                trim_every, 2 * trim_every, options.trim_bytes, 2 * options.trim_bytes,
            )
        elif trim_every is not None:
            log.info("trim %d has no effect here: this process hosts no learner", trim_every)

    def _add_client_proposals(self, learner: UdpEndpoint, auth: Authenticator | None,
                              seed_source: random.Random) -> None:
        """What proposes for the client device (and the in-process kclient, if asked)."""
        spec = self.spec
        proposers = spec.config.cluster.proposers
        client_proposer = spec.client_proposer
        if client_proposer is None:
            client_proposer = min(spec.proposers + spec.replicas, default=0)
        if client_proposer not in proposers:
            raise DaemonError(f"the configuration has no proposer {client_proposer}")
        self.proposals = ClientProposals(
            learner.send_message,
            proposers[client_proposer],
            batch_room=self._client_batch_room(proposers[client_proposer], auth),
            client_id=seed_source.getrandbits(63),
            timeout=spec.client_timeout,
            overhead=0 if auth is None else AUTH_TRAILER_SIZE,
            observe_latency=self.latency.observe,
            seq_window=spec.config.options.dedupe_window,
            send_many=learner.send_messages,
        )
        self.decisions.subscribe(self.proposals)
        self.barriers = ReadBarriers(
            lambda token: learner.act(lambda node, now: node.barrier(token, now)),
            lambda token: learner.node.forget_barrier(token),
            self.values, timeout=spec.client_timeout,
            quorum_timeout=spec.quorum_timeout or None)
        self.barriers.when_reach_changes(self.proposals.set_reachable)
        if spec.kclient is None:
            return
        if spec.kclient.proposer_id not in proposers:
            raise DaemonError(f"the configuration has no proposer {spec.kclient.proposer_id}")
        self.kclient = KClient(
            learner.send_message,
            proposers[spec.kclient.proposer_id],
            outstanding=spec.kclient.outstanding,
            value_size=spec.kclient.value_size,
            rng=random.Random(seed_source.getrandbits(64)),
        )
        self.decisions.subscribe(self.kclient)

    def _client_batch_room(self, proposer: Address, auth: Authenticator | None) -> int | None:
        """The bytes of a batch of the client device's values in one CLIENT_VALUE:
        a datagram's room, or what one unfragmented datagram to the proposer holds;
        None (one value a datagram) where batches are not proposed."""
        if self.spec.config.options.max_values_per_instance == 1:
            return None  # for original learners, which take a batch for one value
        trailer = 0 if auth is None else AUTH_TRAILER_SIZE
        room = MAX_VALUE_SIZE - trailer
        mtu = path_mtu(proposer)
        if mtu is not None:
            header = MAX_DATAGRAM_SIZE - MAX_VALUE_SIZE  # CLIENT_VALUE's is smaller
            room = min(room, mtu - IPV4_UDP_HEADERS - header - trailer)
        return max(room, 1)

    def _open_store(self, aid: int, node: Node) -> AcceptorStore:
        assert self.spec.storage is not None
        path = Path(self.spec.storage) / f"acceptor-{aid}"
        store = AcceptorStore(path)
        self._stack.callback(store.close)
        records, trim_iid = store.load()
        restored = node.restore_acceptor(records, trim_iid)
        _report_restored(aid, path, restored)
        log.info(
            "acceptor %d keeps its state in %s (%d instances restored, trimmed up to %d)",
            aid, path, len(records), trim_iid,
        )
        return store

    def _open_learner_log(self, node: Node, now: float) -> None:
        """The learner's durable log: what it delivered comes back to the device log,
        and the learner goes on where it stopped, with the same exactly-once memory."""
        assert self.spec.storage is not None
        path = Path(self.spec.storage) / "learner"
        store = LearnerStore(path)
        self._stack.callback(store.close)
        logged = store.load()
        values = [entry for entry in logged.entries if isinstance(entry, LoggedValue)]
        self.values.began_at(logged.whole_from())
        self._device_feed.restore(logged.entries)
        memory_iid = _restore_learner(node, logged, values, path, now)
        learner = node.learner
        assert learner is not None
        self.decisions.subscribe_before(
            self._device_feed,
            DurableLogFeed(store, self.values, lambda: learner.next_iid,
                           learner.exactly_once_memory, memory_iid))
        if logged.next_iid:
            log.info("the learner keeps its log in %s: %d values restored (positions %d "
                     "to %d), delivery goes on at instance %d", path, len(values),
                     self.values.oldest_position, self.values.end_position - 1,
                     logged.next_iid)
        else:
            log.info("the learner keeps its log in %s", path)

    def statistics(self) -> DaemonStatistics:
        """A snapshot of what the daemon has done (for the metrics)."""
        info = self.device_info
        return DaemonStatistics(
            decided=dataclasses.replace(self.decided),
            endpoints=tuple(endpoint.statistics() for endpoint in self.endpoints),
            reader_lags=tuple(info.reader_lags()) if info is not None else (),
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled or until one of :data:`STOP_SIGNALS`, then shut down
        cleanly; stop signals arriving meanwhile are ignored."""
        with (self._stack, _ignoring_stop_signals_once_stopped() as stopped,
              trio.open_signal_receiver(*STOP_SIGNALS) as signals):
            async with trio.open_nursery() as nursery:
                for endpoint in self.endpoints:
                    nursery.start_soon(endpoint.run)
                if self.proposals is not None:
                    nursery.start_soon(self.proposals.run)
                if self.barriers is not None:
                    nursery.start_soon(self.barriers.run)
                if self.spec.devices is not None and self.proposals is not None:
                    self.device_info = await nursery.start(self._serve_devices, self.spec.devices)
                if self._metrics_socket is not None:
                    await nursery.start(serve_metrics, self.registry, self._metrics_socket)
                if self.kclient is not None:
                    nursery.start_soon(self.kclient.run)
                log.info("kpaxosd ready")
                task_status.started()
                async for signum in signals:
                    log.info("stopping on %s", signal.Signals(signum).name)
                    stopped.append(signum)
                    break
                await self.stop()
                nursery.cancel_scope.cancel()

    async def stop(self) -> None:
        """Wake blocked readers (EOF) and writers (EIO), say goodbye to acceptors."""
        now = trio.current_time()
        self.values.close()
        if self.proposals is not None:
            self.proposals.stop()
        if self.barriers is not None:
            self.barriers.stop()
        for endpoint in self.endpoints:
            endpoint.node.stop(now)
            endpoint.flush_and_pump()
        await trio.sleep(SHUTDOWN_GRACE)

    async def _serve_devices(
        self, options: DeviceOptions, *, task_status: trio.TaskStatus[DeviceInfo]
    ) -> None:
        from devices import serve_devices

        assert self.proposals is not None
        learner = self.learner_endpoint
        assert learner is not None

        def trim_acceptors(iid: int) -> None:
            learner.act(lambda node, now: node.trim_acceptors(iid))

        await serve_devices(
            self.values,
            self.proposals,
            barriers=self.barriers,
            trim_acceptors=trim_acceptors,
            backend=options.backend,
            name_prefix=options.name_prefix,
            compat_learner_id=options.compat_learner_id,
            device_mode=options.mode,
            device_gid=options.group,
            mount_dir=options.mount_dir,
            link_dir=options.link_dir,
            task_status=task_status,
        )


def _room_under_path_mtu(addresses: Iterable[Address], header: int, authenticated: bool,
                         ) -> tuple[int, int] | None:
    """The bytes one unfragmented datagram to every one of ``addresses`` carries after
    ``header`` bytes of message (and the authentication trailer), and the smallest
    path MTU they make; None where no path MTU is known."""
    known = [mtu for mtu in map(path_mtu, addresses) if mtu is not None]
    if not known:
        return None
    trailer = AUTH_TRAILER_SIZE if authenticated else 0
    return min(known) - IPV4_UDP_HEADERS - header - trailer, min(known)


@contextmanager
def _ignoring_stop_signals_once_stopped() -> Iterator[list[int]]:
    """Around trio's signal receiver: once a stop signal was taken (appended to the
    list yielded), the others are ignored until the process exits.

    Leaving its block, trio's receiver puts back the handlers it found and raises the
    signals still pending in it again: with the default handlers, a second SIGTERM of
    a burst would kill the stopping daemon. So the handlers it finds are SIG_IGN; when
    no signal stopped the daemon (it was cancelled), the real ones come back after.
    """
    originals = {signum: signal.signal(signum, signal.SIG_IGN) for signum in STOP_SIGNALS}
    stopped: list[int] = []
    try:
        yield stopped
    finally:
        if not stopped:
            for signum, handler in originals.items():
                if handler is not None:  # None: set outside Python, cannot be put back
                    signal.signal(signum, handler)
