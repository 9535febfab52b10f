"""One UDP endpoint driving one sans-IO :class:`~kpaxosd.paxos.node.Node`.

The loop is the one of docs/architecture.md, "The run loop": wait until the socket is
readable or the core's deadline passes, drain every pending datagram with non-blocking
reads (one scheduler round trip per batch, not per datagram), let the core handle its
timers, then carry out what it asked for in order.

The endpoints of one daemon share a :class:`LocalBus`: a message for an address that
another endpoint of the same process owns is handed to that endpoint's node as the
message object, without encoding, a datagram or a scheduler round trip. Remote peers
still get UDP, in the original wire format.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import enum
import errno
import logging
import math
import socket
import time
from collections.abc import Callable
from typing import TypeVar

import trio

from kpaxosd.auth import Authenticator, AuthError
from kpaxosd.paxos.cluster import Address
from kpaxosd.paxos.effects import (
    Adopted,
    BarrierReached,
    Decision,
    Deliver,
    Effect,
    Persist,
    PersistTrim,
    QuorumReach,
    Send,
    Signal,
    Trimmed,
)
from kpaxosd.paxos.node import Node
from kpaxosd.paxos.senders import Refusal
from kpaxosd.statistics import EndpointCounters, EndpointStatistics
from kpaxosd.storage import AcceptorStore, StorageError
from wire import MESSAGE_TYPES, WireError, decode_untrusted, encode
from wire.messages import Message

log = logging.getLogger("kpaxos.udp")

#: Datagrams handled before the core's output is flushed and other tasks get a turn.
DRAIN_LIMIT = 4096
#: A full acceptor (acceptor_max_held_bytes) says so at most this often, in seconds.
FULL_WARNING_INTERVAL = 60.0
SOCKET_BUFFER_BYTES = 4 * 1024 * 1024


#: How often an endpoint with a key warns about one source's unauthenticated datagrams.
UNAUTHENTICATED_WARNING_INTERVAL = 60.0
#: Sources remembered for that; a flood from many addresses cannot grow it further.
UNAUTHENTICATED_SOURCES_REMEMBERED = 1024
#: How often an endpoint warns about one source speaking for a node it is not.
REFUSED_WARNING_INTERVAL = 60.0
#: What each refusal means, for the warning.
_REFUSED_BECAUSE = {
    Refusal.NOT_THE_ACCEPTOR: "is not the configured address of the acceptor the message "
                              "speaks for",
    Refusal.NOT_THE_PROPOSER: "is not the configured address of the proposer the message "
                              "speaks for",
    Refusal.NOT_A_LEARNER: "has not registered as a learner (LEARNER_HI)",
    Refusal.NOT_A_LISTED_LEARNER: "is no learner (nor replica) of the configuration's "
                                  "learner lines",
}


class OncePerInterval:
    """Says whether something about a source is due to be said again: at most once per
    ``interval`` seconds per source, remembering at most ``capacity`` sources.

    When full, the source said longest ago is forgotten (it may be said again early:
    a bounded table matters more than a warning's exact rate under a flood).
    """

    def __init__(self, interval: float, capacity: int) -> None:
        self.interval = interval
        self.capacity = capacity
        # Source -> when it was last said; oldest first, as they were said in order.
        self._said_at: collections.OrderedDict[Address, float] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._said_at)

    def due(self, source: Address, now: float) -> bool:
        """True (and noted as said now) when ``source`` was not said within the interval."""
        said_at = self._said_at
        last = said_at.get(source)
        if last is not None and now - last < self.interval:
            return False
        said_at[source] = now
        said_at.move_to_end(source)
        # Entries older than the interval say nothing any more: drop them from the front.
        while said_at:
            oldest, when = next(iter(said_at.items()))
            if now - when < self.interval and len(said_at) <= self.capacity:
                break
            if oldest == source:  # just noted; everything before it is gone
                break
            del said_at[oldest]
        return True


class StoreHealth(enum.Enum):
    """Whether an endpoint's acceptor store holds what the acceptor remembers."""

    #: Every commit succeeded.
    OK = "ok"
    #: The last commit failed; the acceptor went back to what the store holds.
    FAILING = "failing"
    #: A commit failed and the store could not be read back: the acceptor's memory
    #: may be ahead of it, so nothing leaves until the store reads again.
    UNKNOWN = "unknown"


_T = TypeVar("_T")

#: Linux's IP_MTU (linux/in.h): the MTU of a connected socket's route. Python's socket
#: module does not export it.
IP_MTU = 14
#: What IPv4 (without options) and UDP put before a datagram's payload.
IPV4_UDP_HEADERS = 20 + 8


def _about_the_route(address: Address, ask: Callable[[socket.socket], _T]) -> _T | None:
    """``ask`` of a UDP socket connected to ``address`` (nothing is sent); None when
    there is no route."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            return ask(sock)
    except OSError:
        return None


def path_mtu(address: Address) -> int | None:
    """The MTU of the route to ``address`` (nothing is sent); None when unknown."""
    return _about_the_route(
        address, lambda sock: int(sock.getsockopt(socket.IPPROTO_IP, IP_MTU)))


def source_host_towards(address: Address) -> str | None:
    """The address of this host that datagrams to ``address`` leave from (nothing is
    sent); None when there is no route."""
    return _about_the_route(address, lambda sock: str(sock.getsockname()[0]))


def bind_towards(sock: socket.socket, address: Address) -> None:
    """Bind the unbound ``sock`` where this host reaches ``address`` from (any port),
    not (as a first send would) to every interface; left to the kernel without a route."""
    source = source_host_towards(address)
    if source is not None:
        sock.bind((source, 0))


def open_udp_socket(address: Address) -> socket.socket:
    """A non-blocking UDP socket bound to ``address``.

    Raises:
        OSError: the address cannot be bound (in use, not local).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            with contextlib.suppress(OSError):  # a smaller buffer still works
                sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


class LocalBus:
    """Hands messages between the endpoints of one daemon, in process, as objects.

    A Send to an address that a registered endpoint owns is posted to that
    endpoint's inbox; :meth:`pump` then feeds every inbox to its endpoint (all of an
    inbox, then one flush, as a drained socket would) until no inbox holds anything.
    Pumping is never nested: a flush that posts (or a delivery that proposes) only
    enqueues, and whoever called the outermost flush pumps afterwards.
    """

    def __init__(self) -> None:
        self._endpoints: dict[Address, UdpEndpoint] = {}
        # The inboxes not yet pumped, in the order they were first posted to.
        self._inboxes: dict[UdpEndpoint, list[tuple[Message, Address]]] = {}
        # Flushes under way, and whether a pump is: either defers pumping.
        self._holds = 0
        self._pumping = False

    def register(self, endpoint: UdpEndpoint) -> None:
        self._endpoints[endpoint.address] = endpoint

    def endpoint_at(self, address: Address) -> UdpEndpoint | None:
        return self._endpoints.get(address)

    def post(self, target: UdpEndpoint, msg: Message, src: Address) -> None:
        inbox = self._inboxes.get(target)
        if inbox is None:
            self._inboxes[target] = [(msg, src)]
        else:
            inbox.append((msg, src))

    def hold(self) -> None:
        """Defer pumping until the matching :meth:`release` (a flush under way)."""
        self._holds += 1

    def release(self) -> None:
        self._holds -= 1

    def pump(self) -> None:
        """Feed every posted message to its endpoint, and what that posts, until none is left."""
        if self._pumping or self._holds or not self._inboxes:
            return
        self._pumping = True
        try:
            now = trio.current_time()
            inboxes = self._inboxes
            while inboxes:
                # Everything posted to the first inbox so far goes in one batch; what
                # its flush posts to it again waits behind the other inboxes.
                target = next(iter(inboxes))
                target.receive_local(inboxes.pop(target), now)
        finally:
            self._pumping = False


class UdpEndpoint:
    """Runs ``node`` on ``sock``; what its learner learned goes to ``on_deliver``.

    ``on_deliver`` gets, once per flush, the learner's decisions of that flush in order
    (Deliver, Trimmed, Adopted), so that values decided together reach readers together;
    ``on_signal`` then its barriers reached and changes of reach (Signal), in order.

    With a ``bus``, messages for the other endpoints on that bus skip the socket.
    """

    def __init__(
        self,
        node: Node,
        sock: socket.socket,
        *,
        on_deliver: Callable[[list[Decision]], None] | None = None,
        on_signal: Callable[[list[Signal]], None] | None = None,
        store: AcceptorStore | None = None,
        auth: Authenticator | None = None,
        name: str = "endpoint",
        bus: LocalBus | None = None,
    ) -> None:
        self.node = node
        self.sock = sock
        self.name = name
        self.store = store
        self.auth = auth
        #: Messages sent, by type name (for metrics).
        self.sent_by_type: collections.Counter[str] = collections.Counter()
        self.counters = EndpointCounters()
        self._on_deliver = on_deliver
        self._on_signal = on_signal
        self._bus = bus
        host, port = sock.getsockname()[:2]
        self._address: Address = (host, port)
        # The proposer this endpoint's proposer follows, to log each change of leader.
        self._leader = None if node.proposer is None else node.proposer.leader
        self._said_too_big = False
        # Warnings about a source sending without this cluster's key, rate limited.
        self._refused_warnings = OncePerInterval(
            REFUSED_WARNING_INTERVAL, UNAUTHENTICATED_SOURCES_REMEMBERED)
        self._unauthenticated_warnings = OncePerInterval(
            UNAUTHENTICATED_WARNING_INTERVAL, UNAUTHENTICATED_SOURCES_REMEMBERED
        )
        self.store_health = StoreHealth.OK
        # The run loop's timer scope, whose deadline is the node's next_deadline.
        self._timer: trio.CancelScope | None = None
        # store_failures when the current run of failures began (for the log).
        self._failures_before = 0
        # The acceptor's refused_full when the last warning that it is full went
        # out, and when the next may.
        self._refused_warned = 0
        self._full_warning_due = -math.inf
        if bus is not None:
            bus.register(self)

    @property
    def address(self) -> Address:
        return self._address

    def statistics(self) -> EndpointStatistics:
        """What this endpoint and its node have done, at this moment."""
        node = self.node
        hosted = {"proposer": node.proposer, "learner": node.learner, "acceptor": node.acceptor}
        return EndpointStatistics(
            name=self.name,
            roles=frozenset(role for role, part in hosted.items() if part is not None),
            node=node.statistics(),
            sent_by_type=dict(self.sent_by_type),
            counters=dataclasses.replace(self.counters),
            durable=self.store is not None,
            store_failing=self.store is not None and self.store_health is not StoreHealth.OK,
        )

    def send_messages(self, messages: list[tuple[Message, Address]]) -> None:
        """Send each ``(msg, dest)`` from this endpoint, as :meth:`send_message` does, but
        let the endpoints of this process take them together: one batch, not a round
        of the whole protocol per message."""
        bus = self._bus
        if bus is None:
            for msg, dest in messages:
                self.send_message(msg, dest)
            return
        bus.hold()
        try:
            for msg, dest in messages:
                self.send_message(msg, dest)
        finally:
            bus.release()
        bus.pump()

    def send_message(self, msg: Message, dest: Address) -> None:
        """Send ``msg`` from this endpoint; loss is UDP's, never an error.

        An endpoint of this process gets the message object itself; only a socket
        needs its bytes.
        """
        bus = self._bus
        target = bus.endpoint_at(dest) if bus is not None else None
        if target is None:
            self._send_bytes(encode(msg), dest)
            return
        assert bus is not None
        self.counters.local_out += 1
        bus.post(target, msg, self.address)
        bus.pump()

    def flush(self) -> None:
        """Carry out what the core asked for, in its order.

        Every Persist of the batch, and its PersistTrim if any, is made durable in
        one transaction before any message of the batch leaves: persisting first
        keeps each Persist ahead of the Send it guards, and one sync for the whole
        batch is the group commit. The trim goes after the records in that
        transaction; the acceptor persists nothing at or below its trim point, so
        the highest trim point of the batch drops exactly what the acceptor forgot.

        Messages for endpoints of this process are only posted here; the caller
        pumps the bus afterwards (:meth:`run` does).
        """
        proposer, acceptor = self.node.proposer, self.node.acceptor
        if proposer is not None and proposer.leader != self._leader:
            self._leader_changed(proposer.pid, proposer.leader)
        if acceptor is not None and acceptor.refused_full != self._refused_warned:
            self._warn_full()
        effects = self.node.pop_effects()
        if not effects:
            return
        if self.store is not None and not self._persist(effects):
            # Nothing of this batch leaves: the store does not hold what it answers.
            effects = [effect for effect in effects if not isinstance(effect, Send)]
        bus = self._bus
        if bus is not None:
            bus.hold()
        try:
            self._carry_out(effects)
        finally:
            if bus is not None:
                bus.release()

    def _warn_full(self) -> None:
        """Say that the acceptor refuses new instances, once a minute at most."""
        now = time.monotonic()
        if now < self._full_warning_due:
            return
        acceptor = self.node.acceptor
        assert acceptor is not None
        log.warning("%s: the acceptor holds %d bytes of records, at its bound: it refused "
                    "%d PREPARE/ACCEPT for new instances (%d in all); only a TRIM makes room",
                    self.name, acceptor.held_bytes,
                    acceptor.refused_full - self._refused_warned, acceptor.refused_full)
        self._refused_warned = acceptor.refused_full
        self._full_warning_due = now + FULL_WARNING_INTERVAL

    def _persist(self, effects: list[Effect]) -> bool:
        """Commit the batch's Persist and PersistTrim effects; False when the store
        does not hold them (the acceptor is then back to what it does hold)."""
        assert self.store is not None
        persists = [effect for effect in effects if isinstance(effect, Persist)]
        trims = [effect.iid for effect in effects if isinstance(effect, PersistTrim)]
        trim = max(trims) if trims else None
        if self.store_health is StoreHealth.UNKNOWN:
            # This batch was answered from a memory that may be ahead of the disk:
            # none of it leaves, whether or not the store reads again now.
            self._resync_store()
            return False
        if not persists and trim is None:
            return True
        try:
            self.store.commit(persists, trim)
        except StorageError as exc:
            self._store_failed(exc, [record.iid for record in persists], trim)
            return False
        if self.store_health is not StoreHealth.OK:
            log.warning("%s: the store at %s takes writes again after %d failed "
                        "commits; the acceptor votes again", self.name, self.store.path,
                        self.counters.store_failures - self._failures_before)
            self.store_health = StoreHealth.OK
        return True

    def _store_failed(self, exc: StorageError, iids: list[int], trim: int | None) -> None:
        assert self.store is not None
        self.counters.store_failures += 1
        if self.store_health is StoreHealth.OK:
            self._failures_before = self.counters.store_failures - 1
            log.error("%s: %s; the acceptor answers nothing it could not store, and "
                      "votes again once a write succeeds", self.name, exc)
        self.store_health = StoreHealth.FAILING
        try:
            durable, trim_iid = self.store.durable(iids, trim)
        except StorageError as read_exc:
            log.error("%s: %s; the acceptor stays silent until its store reads again",
                      self.name, read_exc)
            self.store_health = StoreHealth.UNKNOWN
            return
        self.node.revert_acceptor(iids, durable, trim_iid)

    def _resync_store(self) -> None:
        """After a store that could not be read back: all of it, or stay silent."""
        assert self.store is not None and self.node.acceptor is not None
        try:
            durable, trim_iid = self.store.load()
        except StorageError:
            return
        self.node.revert_acceptor(self.node.acceptor.held(), durable, trim_iid)
        self.store_health = StoreHealth.FAILING
        log.warning("%s: the store at %s reads again; the acceptor is back to what it stored",
                    self.name, self.store.path)

    def _leader_changed(self, pid: int, leader: int) -> None:
        before, self._leader = self._leader, leader
        if leader == pid:
            log.warning("proposer %d leads now (proposer %s fell silent)", pid, before)
        else:
            log.info("proposer %d follows proposer %d and forwards client values to it",
                     pid, leader)

    def _carry_out(self, effects: list[Effect]) -> None:
        bus, on_deliver, sent_by_type = self._bus, self._on_deliver, self.sent_by_type
        counters = self.counters
        me = self.address
        # A message sent to several peers (an ACCEPT to every acceptor) is encoded once.
        last_msg: Message | None = None
        last_data = b""
        learned: list[Decision] = []
        signals: list[Signal] = []
        for effect in effects:
            if isinstance(effect, Send):
                msg, dest = effect.msg, effect.dest
                sent_by_type[MESSAGE_TYPES[type(msg)].name] += 1
                target = bus.endpoint_at(dest) if bus is not None else None
                if target is not None:
                    assert bus is not None
                    counters.local_out += 1
                    bus.post(target, msg, me)
                    continue
                if msg is not last_msg:
                    last_msg, last_data = msg, encode(msg)
                self._send_bytes(last_data, dest)
            elif isinstance(effect, (Deliver, Trimmed, Adopted)):
                learned.append(effect)
            elif isinstance(effect, (BarrierReached, QuorumReach)):
                signals.append(effect)
        if learned and on_deliver is not None:
            on_deliver(learned)
        if signals and self._on_signal is not None:
            self._on_signal(signals)

    def _send_bytes(self, data: bytes, dest: Address) -> None:
        if self.auth is not None:
            data = self.auth.seal(data, time.time())
        try:
            self.sock.sendto(data, dest)
            self.counters.datagrams_out += 1
        except OSError as exc:
            # A full buffer or an unreachable peer: the protocol's retries cover it.
            self.counters.send_failures += 1
            if exc.errno == errno.EMSGSIZE and not self._said_too_big:
                # No retry can help this one: say so, once, whatever the verbosity.
                self._said_too_big = True
                log.error("%s: a %d-byte datagram to %s:%d is too big to send: %s",
                          self.name, len(data), dest[0], dest[1], exc)
            elif log.isEnabledFor(logging.DEBUG):
                log.debug("%s: sending to %s:%d failed: %s", self.name, dest[0], dest[1], exc)

    def act(self, action: Callable[[Node, float], None]) -> None:
        """Call ``action`` with the node and the time, then carry out what it asked
        for: a local input (a read barrier), not a datagram."""
        action(self.node, trio.current_time())
        self.flush_and_pump()
        self._tighten_timer()

    def receive_local(self, inbox: list[tuple[Message, Address]], now: float) -> None:
        """Hand the node what other endpoints of this process posted, then flush."""
        self.counters.local_in += len(inbox)
        self.node.set_wall_clock(time.time())
        self.node.receive_many(inbox, now)
        self.flush()
        self._tighten_timer()

    def _tighten_timer(self) -> None:
        # What came over the bus (or a local call) may have set a timer (a proposer's
        # retry) that the run loop, asleep on its socket, does not know of: nothing
        # else wakes it. Only an earlier deadline matters: a later one wakes the loop
        # early, and it takes the node's deadline then (moving a scope's deadline is
        # not free).
        timer = self._timer
        if timer is not None:
            deadline = self.node.next_deadline()
            if deadline is not None and deadline < timer.deadline:
                timer.deadline = deadline

    def _drain(self, now: float, wall: float) -> None:
        """Read every pending datagram (up to DRAIN_LIMIT), then hand them to the node
        together."""
        received: list[tuple[Message, Address]] = []
        try:
            self._read_pending(received, now, wall)
        finally:
            self.node.receive_many(received, now)

    def _read_pending(self, received: list[tuple[Message, Address]], now: float,
                      wall: float) -> None:
        sock, counters, auth = self.sock, self.counters, self.auth
        keep = received.append
        for _ in range(DRAIN_LIMIT):
            try:
                data, src = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # e.g. ECONNREFUSED reported from an earlier send: nothing to read.
                log.debug("%s: receive error %s", self.name, exc)
                continue
            counters.datagrams_in += 1
            if auth is not None:
                try:
                    data = auth.open_untrusted(data, wall)
                except AuthError as exc:
                    counters.unauthenticated += 1
                    log.debug("%s: dropped a datagram from %s:%d: %s", self.name, *src,
                              exc.reason)
                    self._warn_unauthenticated(src, exc.reason, now)
                    continue
            try:
                msg = decode_untrusted(data)
            except WireError as exc:
                counters.malformed += 1
                log.debug("%s: dropped a datagram from %s:%d: %s", self.name, *src, exc)
                continue
            keep((msg, src))

    def _warn_refused(self, refused: dict[Address, tuple[Refusal, type[Message]]],
                      now: float) -> None:
        """Say who speaks for a node it is not, once a minute per source (counted by
        reason in the metrics either way)."""
        for src, (refusal, kind) in refused.items():
            if self._refused_warnings.due(src, now):
                log.warning("%s: dropping %s (and the like) from %s:%d: that address %s; "
                            "a stranger, or a node started with another configuration?",
                            self.name, MESSAGE_TYPES[kind].name, *src,
                            _REFUSED_BECAUSE[refusal])

    def _warn_unauthenticated(self, src: Address, reason: str, now: float) -> None:
        """Say why a source's datagrams are dropped, once a minute per source: a node
        started without the cluster's key (or with another) is otherwise silent, only
        a counter growing."""
        if reason == "replayed":
            return  # a copy of a valid datagram: an attacker's or the network's, not a setup
        if not self._unauthenticated_warnings.due(src, now):
            return
        if reason == "stale":
            log.warning("%s: dropping datagrams from %s:%d stamped too far from this host's "
                        "clock; are the clocks of the cluster synchronised (NTP)?",
                        self.name, *src)
        else:
            log.warning("%s: dropping datagrams from %s:%d without this cluster's "
                        "authentication (%s); does that node run without --auth-key-file, "
                        "or with another key?", self.name, *src, reason)

    async def run(self) -> None:
        """Serve until cancelled."""
        node, sock = self.node, self.sock
        self.flush_and_pump()
        while True:
            # One cancel scope serves every wake-up until the core's deadline passes
            # (entering and leaving one costs more than moving its deadline).
            with trio.CancelScope() as timer:
                self._timer = timer
                while True:
                    deadline = node.next_deadline()
                    if deadline is None:
                        deadline = math.inf
                    if deadline != timer.deadline:
                        timer.deadline = deadline
                    await trio.lowlevel.wait_readable(sock)
                    self._serve(trio.current_time())
            self._serve(trio.current_time())

    def _serve(self, now: float) -> None:
        """What one wake-up does: read what came, run the timers due, carry it all out."""
        node = self.node
        # One reading of the wall clock a wake-up: it opens the ballot ceiling
        # (ballots.ballot_ceiling) and dates the authenticated datagrams.
        wall = time.time()
        node.set_wall_clock(wall)
        self._drain(now, wall)
        refused = node.pop_refused_sources()
        if refused:
            self._warn_refused(refused, now)
        deadline = node.next_deadline()
        if deadline is not None and deadline <= now:
            node.handle_timer(now)
        self.flush_and_pump()

    def flush_and_pump(self) -> None:
        """:meth:`flush`, then hand over what it posted to other endpoints (and so on)."""
        self.flush()
        if self._bus is not None:
            self._bus.pump()
