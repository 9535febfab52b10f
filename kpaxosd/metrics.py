"""Prometheus metrics of a running daemon, served over HTTP from the trio loop.

Everything is read at scrape time from a snapshot of counters the daemon keeps anyway
(:class:`kpaxosd.statistics.DaemonStatistics`: the core's statistics, the endpoints'
counters, the devices' readers), so the hot path pays nothing for metrics. Serving
from the trio loop, not from prometheus_client's thread, means a scrape never reads
state while the loop changes it.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from functools import partial

import trio
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kpaxosd.paxos.senders import Refusal
from kpaxosd.statistics import DaemonStatistics, EndpointStatistics

log = logging.getLogger("kpaxos.metrics")

#: Seconds from a write to /dev/kpaxos-client until its value is decided.
LATENCY_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5,
                   1.0, 2.0, 5.0, 10.0, 30.0)


class DaemonCollector(Collector):
    def __init__(self, snapshot: Callable[[], DaemonStatistics]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        daemon = self._snapshot()
        decided = daemon.decided
        yield _counter("kpaxos_decided_instances", "Instances the learner delivered.",
                       decided.instances)
        yield _counter("kpaxos_decided_values", "Values the learner delivered.", decided.values)
        yield _counter("kpaxos_decided_bytes", "Bytes of the values the learner delivered.",
                       decided.bytes)

        received = CounterMetricFamily("kpaxos_messages_received",
                                       "Paxos messages handed to a role, by type.",
                                       labels=["role", "type"])
        sent = CounterMetricFamily("kpaxos_messages_sent", "Paxos messages sent, by type.",
                                   labels=["role", "type"])
        datagrams = CounterMetricFamily(
            "kpaxos_datagrams_dropped",
            "Datagrams dropped: malformed, unauthenticated (missing or wrong MAC, stale, "
            "replayed), ignored by the protocol (junk for the roles hosted), not sent, or "
            "refused from their source (not_the_acceptor, not_the_proposer, not_a_learner: "
            "a message for a role the configuration gives another address).",
            labels=["role", "reason"],
        )
        store_failures = CounterMetricFamily(
            "kpaxos_acceptor_store_failures",
            "Commits of the acceptor's store that failed (disk full, I/O error).",
            labels=["role"],
        )
        store_failing = GaugeMetricFamily(
            "kpaxos_acceptor_store_failing",
            "1 while the acceptor's last commit failed: it votes no more until one "
            "succeeds.", labels=["role"],
        )
        per_role = [(kind(name, documentation, labels=["role"]), part, field, hosted_only)
                    for kind, name, documentation, part, field, hosted_only in _ROLE_METRICS]
        for endpoint in daemon.endpoints:
            role = endpoint.name
            stats = endpoint.node
            for kind, count in stats.received.items():
                received.add_metric([role, kind.name], count)
            for kind_name, count in endpoint.sent_by_type.items():
                sent.add_metric([role, kind_name], count)
            counters = endpoint.counters
            for reason, count in (("malformed", counters.malformed),
                                  ("unauthenticated", counters.unauthenticated),
                                  ("ignored", stats.dropped),
                                  ("send_failed", counters.send_failures)):
                datagrams.add_metric([role, reason], count)
            for refusal in Refusal:
                datagrams.add_metric([role, refusal.value], stats.refused.get(refusal.value, 0))
            if endpoint.durable:
                store_failures.add_metric([role], counters.store_failures)
                store_failing.add_metric([role], endpoint.store_failing)
            for family, part, field, hosted_only in per_role:
                value = _role_value(endpoint, part, field, hosted_only)
                if value is not None:
                    family.add_metric([role], value)
        yield from (received, sent, datagrams, store_failures, store_failing)
        yield from (family for family, _, _, _ in per_role)

        lags = daemon.reader_lags
        yield GaugeMetricFamily("kpaxos_device_readers", "Open readers of the learner device.",
                                value=len(lags))
        yield GaugeMetricFamily("kpaxos_device_reader_lag_max",
                                "Delivered values the furthest-behind reader has not read.",
                                value=max(lags, default=0))
        yield GaugeMetricFamily("kpaxos_device_reader_lag_total",
                                "Delivered values not yet read, summed over readers.",
                                value=sum(lags))


def _role_value(endpoint: EndpointStatistics, part: str, field: str, hosted_only: bool,
                ) -> int | None:
    """One field of a role's statistics on ``endpoint``; None: left out."""
    stats = getattr(endpoint.node, part)
    if hosted_only and part not in endpoint.roles:
        return None
    if stats is None:
        # The first metrics were reported by every endpoint, 0 where the role is not
        # hosted; dashboards may sum them.
        return 0
    value: int | None = getattr(stats, field)
    return value


#: The metrics of each endpoint read from its node's statistics, labelled by the
#: endpoint's name: (family, name, help, the role whose statistics hold it (a
#: NodeStatistics field), its field there, whether only endpoints hosting the role
#: report it). A value that is None is left out.
_ROLE_METRICS: tuple[tuple[type[CounterMetricFamily | GaugeMetricFamily], str, str,
                           str, str, bool], ...] = (
    (CounterMetricFamily, "kpaxos_proposer_retries",
     "Instances retried after the proposer timeout.", "proposer", "retries", False),
    (CounterMetricFamily, "kpaxos_proposer_preemptions",
     "Instances preempted by a higher ballot.", "proposer", "preemptions", False),
    (CounterMetricFamily, "kpaxos_duplicates_suppressed",
     "Decided values not delivered again (same origin).", "learner", "duplicates", False),
    (CounterMetricFamily, "kpaxos_learner_peer_fetches",
     "Transfers of trimmed history taken from a peer learner.", "learner", "fetches", True),
    (CounterMetricFamily, "kpaxos_learner_peer_values",
     "Values delivered from a peer learner's history.", "learner", "fetched", True),
    (GaugeMetricFamily, "kpaxos_proposer_queued_values",
     "Client values waiting at the proposer.", "proposer", "queued_values", False),
    (CounterMetricFamily, "kpaxos_proposer_forwarded",
     "Client values a following proposer sent on to the leader.", "proposer", "forwarded", True),
    (GaugeMetricFamily, "kpaxos_proposer_leader",
     "The id of the proposer this one takes for the leader.", "proposer", "leader", True),
    (GaugeMetricFamily, "kpaxos_proposer_open_instances",
     "Instances the proposer has open (preparing, prepared, accepting).",
     "proposer", "open_instances", True),
    (GaugeMetricFamily, "kpaxos_proposer_decided_below",
     "Every instance below this one the proposer knows decided.",
     "proposer", "decided_below", True),
    (CounterMetricFamily, "kpaxos_proposer_reopened",
     "Instances the proposer ran again for a learner that could not learn them "
     "(LEARNER_STUCK).", "proposer", "reopened", True),
    (CounterMetricFamily, "kpaxos_proposer_already_decided",
     "Client values not proposed again: seen decided recently.",
     "proposer", "already_decided", True),
    (CounterMetricFamily, "kpaxos_learner_repeat_rounds",
     "Rounds of REPEAT the learner sent for missing instances.", "learner", "repeats_sent", True),
    (CounterMetricFamily, "kpaxos_learner_stuck_reports",
     "Rounds of LEARNER_STUCK the learner sent: an instance REPEAT could not fill.",
     "learner", "stuck_reports", True),
    (CounterMetricFamily, "kpaxos_learner_trimmed_instances",
     "Instances the learner never delivered: the acceptors trimmed them before it "
     "learned them.", "learner", "trimmed", True),
    (GaugeMetricFamily, "kpaxos_learner_instances",
     "Instances the learner holds (votes, decisions waiting for a hole).",
     "learner", "instances", True),
    (CounterMetricFamily, "kpaxos_learner_shed_votes",
     "Votes and decisions the learner let go of or refused to stay within its byte "
     "bound (REPEAT brings back what it needs).", "learner", "shed", True),
    (GaugeMetricFamily, "kpaxos_learner_held_bytes",
     "What the learner's votes and decisions take, as its byte bound counts it.",
     "learner", "held_bytes", True),
    (GaugeMetricFamily, "kpaxos_learner_next_iid",
     "The next instance the learner will deliver.", "learner", "next_iid", True),
    (GaugeMetricFamily, "kpaxos_acceptor_instances",
     "Instances the acceptor holds (all above its trim point).", "acceptor", "instances", True),
    (CounterMetricFamily, "kpaxos_acceptor_refused_full",
     "PREPAREs and ACCEPTs refused: the acceptor's records reached its byte bound "
     "(only TRIM makes room).", "acceptor", "refused_full", True),
    (GaugeMetricFamily, "kpaxos_acceptor_held_bytes",
     "What the acceptor's records take, as its byte bound counts it.",
     "acceptor", "held_bytes", True),
    (GaugeMetricFamily, "kpaxos_acceptor_trim_iid",
     "The acceptor's trim point: every instance up to it is forgotten.",
     "acceptor", "trim_iid", True),
)


def _counter(name: str, documentation: str, value: int) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def make_registry(snapshot: Callable[[], DaemonStatistics],
                  ) -> tuple[CollectorRegistry, Histogram]:
    """A registry with the metrics of the daemon whose ``snapshot`` it is given, and the
    decision latency histogram."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DaemonCollector(snapshot))
    latency = Histogram(
        "kpaxos_decision_latency_seconds",
        "Time from a write to /dev/kpaxos-client until its value was decided.",
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    return registry, latency


async def _answer(registry: CollectorRegistry, stream: trio.SocketStream) -> None:
    """One HTTP/1.0 exchange: GET /metrics gets the exposition, anything else 404."""
    try:
        request = b""
        with trio.move_on_after(5):
            while b"\r\n\r\n" not in request and len(request) < 8192:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    break
                request += chunk
        words = request.split(b"\r\n", 1)[0].split()
        if len(words) >= 2 and words[0] == b"GET" and words[1].split(b"?")[0] == b"/metrics":
            status, content_type, body = b"200 OK", CONTENT_TYPE_LATEST.encode(), generate_latest(
                registry
            )
        else:
            status, content_type, body = b"404 Not Found", b"text/plain", b"try /metrics\n"
        await stream.send_all(
            b"HTTP/1.0 " + status + b"\r\nContent-Type: " + content_type
            + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n"
            + body
        )
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        await stream.aclose()


def open_metrics_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening at ``host:port``, opened before the daemon runs so that
    an address in use stops it at start-up, with the other binding errors.

    Raises:
        OSError: the address cannot be bound (in use, not local).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # As trio.open_tcp_listeners: a restarted daemon may bind while old
        # connections linger in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def serve_metrics(
    registry: CollectorRegistry,
    sock: socket.socket,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Answer scrapes on ``sock`` (from :func:`open_metrics_socket`) until cancelled."""
    listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
    address = sock.getsockname()
    log.info("metrics at http://%s:%d/metrics", address[0], address[1])
    task_status.started()
    await trio.serve_listeners(partial(_answer, registry), [listener])
