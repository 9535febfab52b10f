"""Many seeded runs of the deterministic simulator (see simulator.py for what is checked).

A failure prints the command that replays its seed. The sweeps below are what the
suite runs (2,740 seeds, most of them in the quick mixed profile); the soak runs
100,000 over every profile on all cores: ``python -m tests.sim.run --soak``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from kpaxosd.paxos import Address
from kpaxosd.paxos.barrier import BarrierRounds
from kpaxosd.paxos.dedupe import OriginFilter
from kpaxosd.paxos.node import Node
from kpaxosd.paxos.options import PaxosOptions
from kpaxosd.paxos.peers import HistoryServer
from kpaxosd.paxos.proposer import Proposer
from kpaxosd.paxos.senders import Refusal, Senders
from tests.sim.simulator import Host, Result, Scenario, Simulation, simulate
from wire import ClientValue, Message, Origin, is_original_origin
from wire.messages import MESSAGE_TYPES, BarrierAnswer, Trim

# (profile, seeds): the mixed profile is the broad sweep, the others a few of each.
SWEEPS = [
    ("mixed", 1600),
    ("long", 80),
    ("duel", 60),
    ("harsh", 150),
    ("bigwin", 40),
    ("leader", 150),
    ("steady", 60),
    # Some 18 ms a seed (the forged datagrams), against mixed's 4.
    ("stranger", 600),
]
#: Results of the sweeps, for the checks that the sweeps were not vacuous.
RESULTS: dict[str, list[Result]] = {}


@pytest.mark.parametrize(("profile", "count"), SWEEPS, ids=[p for p, _ in SWEEPS])
def test_sweep(profile: str, count: int) -> None:
    failures = []
    results = RESULTS.setdefault(profile, [])
    for seed in range(count):
        result = simulate(seed, profile)
        results.append(result)
        if not result.ok:
            failures.append(f"{result.failures[0]}\n    replay: {result.replay_command()}")
    assert not failures, f"{len(failures)} of {count} seeds failed:\n" + "\n".join(failures)


def _results(profile: str, count: int) -> list[Result]:
    """The sweep's results (run here when the sweep was deselected)."""
    return RESULTS.get(profile) or [simulate(seed, profile) for seed in range(count)]


def test_the_sweeps_exercise_what_they_should() -> None:
    mixed = _results("mixed", 300)
    # learners that went on from a durable log, and positions every learner agreed on
    assert sum(r.learner_restores for r in mixed) > 20
    assert sum(r.positions_compared for r in mixed) > 1000
    # learners that went on from a peer's history, past the acceptors' trim point
    assert sum(r.adoptions for r in mixed) > 3
    # read barriers reached, each checked against what was chosen when it began
    assert sum(r.barriers_reached for r in mixed) > 1000
    # learners that lost the quorum and found it again (isolated, or the acceptors down)
    assert sum(r.reach_changes for r in mixed) > 30
    assert sum(r.trimmed_reports for r in mixed) > 0  # learners that lost history
    assert sum(r.originals_delivered for r in mixed) > 0  # original struct values
    # client values decided in batches (packed by a client or by a proposer)
    assert sum(r.batched_deliveries for r in mixed) > 0
    # acceptors whose store failed to commit (disk full, fsync errors)
    assert sum(r.store_failures for r in mixed) > 0
    leader = _results("leader", 40)
    killed = [r for r in leader if r.scenario.kill_leader_at is not None]
    assert len(killed) == len(leader)
    # Values went on being decided after the leader died, in most runs.
    after = [r for r in killed if r.last_delivery_at > (r.scenario.kill_leader_at or 0) + 1.0]
    assert len(after) > len(killed) // 2


def test_the_stranger_forges_everything_and_is_refused() -> None:
    """The stranger sweep forged every type but CLIENT_VALUE (TRIM only where the
    learners are listed), with the learners listed in some seeds and not in others,
    and the nodes refused it for every reason there is."""
    results = _results("stranger", 100)
    listed = [r for r in results if r.scenario.list_learners]
    unlisted = [r for r in results if not r.scenario.list_learners]
    assert listed and unlisted
    forged: Counter[str] = Counter()
    for r in results:
        forged.update(r.forged)
    wanted = {t.__name__ for t in MESSAGE_TYPES if t is not ClientValue}
    assert set(forged) == wanted
    # Anyone may register and then trim where no learner is listed: no TRIM there.
    assert not any(r.forged.get(Trim.__name__) for r in unlisted)
    refused: Counter[str] = Counter()
    for r in results:
        refused.update(r.refused)
    assert all(refused[reason.value] > 0 for reason in Refusal)
    assert sum(r.refused.get(Refusal.NOT_A_LISTED_LEARNER.value, 0) for r in unlisted) == 0
    # The other profiles forge nothing.
    assert not any(r.forged for r in _results("mixed", 50))


def _let_in(
    kinds: tuple[type[Message], ...],
) -> Callable[[Senders, Message, Address], Refusal | None]:
    """Senders.refusal that takes ``kinds`` from anyone (a core without those checks)."""
    refusal = Senders.refusal

    def lenient(self: Senders, msg: Message, src: Address) -> Refusal | None:
        return None if isinstance(msg, kinds) else refusal(self, msg, src)

    return lenient


def test_the_checks_catch_a_core_that_takes_the_stranger(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without its sender checks the core is broken by the stranger's datagrams, and
    the stranger sweep says so: it is not vacuous."""
    monkeypatch.setattr(Senders, "refusal", _let_in(tuple(MESSAGE_TYPES)))
    failed = [r for r in (simulate(seed, "stranger") for seed in range(20)) if not r.ok]
    assert len(failed) > 10


def test_the_checks_catch_an_acceptor_that_trims_for_a_stranger(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An acceptor that takes TRIM from anyone is caught persisting a trim point no
    learner asked for."""
    monkeypatch.setattr(Senders, "refusal", _let_in((Trim,)))
    failures = [f for seed in range(40) for f in simulate(seed, "stranger").failures]
    assert any("but no learner asked above" in f for f in failures)


#: Byte bounds small enough that learners shed and acceptors fill up (an instance's
#: votes take some 600 bytes as counted, a record some 300): safety must hold, and
#: liveness wherever a learner trims (a full acceptor takes nothing new until then).
SMALL_BOUNDS = {"learner_max_held_bytes": 2048, "acceptor_max_held_bytes": 8192}


def replay(result: Result) -> str:
    """The command that runs ``result``'s seed again with the small bounds."""
    sc = result.scenario
    overrides = ", ".join(f"{name}={getattr(sc, name)!r}"
                          for name in ("trim_every", "trim_bytes", *SMALL_BOUNDS))
    return (f'python -c "from tests.sim.simulator import simulate; '
            f'print(simulate({sc.seed}, {sc.profile!r}, {overrides}).failures)"')


@pytest.mark.parametrize(("profile", "count"), [("mixed", 300), ("long", 40), ("harsh", 40)])
def test_small_byte_bounds_keep_safety_and_liveness(profile: str, count: int) -> None:
    results = [simulate(seed, profile, trim_every=(seed % 3) + 1, **SMALL_BOUNDS)
               for seed in range(count)]
    failures = [f"seed {r.scenario.seed}: {r.failures[0][:500]}\n    replay: {replay(r)}"
                for r in results if not r.ok]
    assert not failures, f"{len(failures)} of {count} seeds failed:\n" + "\n".join(failures)
    assert sum(r.learner_shed for r in results) > 0
    assert sum(r.acceptor_refused_full for r in results) > 0


@pytest.mark.parametrize(("profile", "count"), [("mixed", 200), ("long", 60)])
def test_trimming_by_bytes_keeps_small_acceptors_live_where_the_count_would_not(
    profile: str, count: int
) -> None:
    # trim_every alone would not trim before the acceptors are full (1000 instances
    # of some 300 bytes are far above 8192): the byte rule must do it. With
    # trim_bytes out of the way (10**9), 7 of the 60 long seeds fail on progress.
    results = [simulate(seed, profile, trim_every=1000, trim_bytes=2000, **SMALL_BOUNDS)
               for seed in range(count)]
    failures = [f"seed {r.scenario.seed}: {r.failures[0][:500]}\n    replay: {replay(r)}"
                for r in results if not r.ok]
    assert not failures, f"{len(failures)} of {count} seeds failed:\n" + "\n".join(failures)
    assert sum(r.acceptor_refused_full for r in results) > 0


def test_one_leader_and_no_faults_means_no_preemption() -> None:
    """The steady profile fails any run with a preemption; here is its contrast."""
    for seed in range(10):
        assert simulate(seed, "steady").preemptions == 0
    duels = [simulate(seed, "steady", stable_leader=False).preemptions for seed in range(10)]
    assert sum(duels) > 0


def test_a_seed_replays_exactly() -> None:
    first, second = simulate(17, "harsh"), simulate(17, "harsh")
    assert first.digest == second.digest
    assert (first.datagrams, first.end_time) == (second.datagrams, second.end_time)
    assert first.deliveries > 0


def test_profiles_differ() -> None:
    assert Scenario.from_seed(3, "duel").proposers == 2
    assert not Scenario.from_seed(3, "duel").stable_leader
    assert Scenario.from_seed(3, "leader").kill_leader_at is not None
    with pytest.raises(ValueError):
        Scenario.from_seed(3, "nope")


def test_the_checks_catch_a_broken_proposer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proposer that ignores what promises carry must be caught proposing a second
    value for a decided instance: the simulator is not vacuous."""
    original = Proposer._prepared

    def forgetful(self: Proposer, inst: object, now: float) -> None:
        promises = inst.promises  # type: ignore[attr-defined]
        for aid in promises:
            promises[aid] = (0, b"")
        original(self, inst, now)  # type: ignore[arg-type]

    monkeypatch.setattr(Proposer, "_prepared", forgetful)
    failures = [r for r in (simulate(seed) for seed in range(60)) if not r.ok]
    assert failures
    assert any("two values chosen" in f for r in failures for f in r.failures)


def test_the_checks_catch_an_original_value_delivered_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Learners that forget original values (and only those) are caught delivering
    one twice: "no origin delivered twice" covers original struct values."""
    first_times = OriginFilter.first_times

    def forgets_originals(self: OriginFilter, origins: list[Origin | None]) -> list[bool]:
        answers = first_times(self, origins)
        pairs = zip(origins, answers, strict=True)
        return [a or (o is not None and is_original_origin(o)) for o, a in pairs]

    monkeypatch.setattr(OriginFilter, "first_times", forgets_originals)
    # The proposers remember what they decided; make them forget too, so that
    # resends are decided again.
    monkeypatch.setattr(Proposer, "learned", lambda self, iid, value: None)
    monkeypatch.setattr("kpaxosd.paxos.dedupe.RecentOrigins.__contains__", lambda s, o: False)
    failures = [f for seed in range(200) for f in simulate(seed, "harsh").failures]
    assert any("delivered origin (-" in f and "twice" in f for f in failures)


def test_the_checks_catch_a_batch_delivered_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """A learner that hands on a decided batch as one value (as an original learner
    would) is caught: each client value in a batch must be delivered on its own."""
    monkeypatch.setattr("kpaxosd.paxos.learner.unpack_batch_untrusted", lambda value: None)
    failures = [f for seed in range(100) for f in simulate(seed).failures]
    assert any("was chosen" in f for f in failures)


def test_the_checks_catch_a_learner_that_forgets_its_exactly_once_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A durable learner restarted with an empty memory delivers a copy that every
    other learner passed over: the identical-sequence check (or, within one log's
    story, the delivered-twice check) says so."""
    restore = Simulation._restore_learner

    def forgetful(self: Simulation, host: Host, node: Node) -> None:
        store = host.learner_store
        if store is not None and store.next_iid > 1:
            store.memory, store.since = None, []
        restore(self, host, node)

    monkeypatch.setattr(Simulation, "_restore_learner", forgetful)
    failures = [f for seed in range(100) for f in simulate(seed, "long").failures]
    assert any("where another learner" in f or "twice" in f for f in failures), failures


def test_the_checks_catch_a_peer_that_gives_an_empty_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A peer learner that hands over the values it delivered but not its memory
    makes the asker deliver a copy the others passed over: caught."""
    begin = HistoryServer._begin

    def forgetful(self: HistoryServer, key: Any, msg: Any, next_iid: int | None,
                  memory: Callable[[], bytes]) -> Any:
        options = PaxosOptions()
        empty = OriginFilter(options.dedupe_clients, options.dedupe_window)
        return begin(self, key, msg, next_iid, empty.snapshot)

    monkeypatch.setattr(HistoryServer, "_begin", forgetful)
    failures = [f for seed in range(300) for f in simulate(seed, "long").failures]
    assert any("where another learner" in f or "twice" in f for f in failures), failures


def test_the_checks_catch_a_barrier_one_acceptor_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One acceptor's word is what the local learner knows, not what a quorum does:
    # a value decided by the others may not be delivered yet.
    answer = BarrierRounds.on_answer

    def one_is_enough(self: BarrierRounds, msg: BarrierAnswer, now: float) -> int | None:
        self._quorum = 1
        return answer(self, msg, now)

    monkeypatch.setattr(BarrierRounds, "on_answer", one_is_enough)
    failures = [r.failures[0] for r in (simulate(seed) for seed in range(60)) if not r.ok]
    assert any("reached barrier" in failure for failure in failures), failures
