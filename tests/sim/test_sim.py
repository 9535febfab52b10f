"""Many seeded runs of the deterministic simulator (see simulator.py for what is checked).

A failure prints the command that replays its seed.
"""

from __future__ import annotations

import pytest

from kpaxosd.paxos.proposer import Proposer
from tests.sim.simulator import Scenario, simulate

# (profile, seeds): the mixed profile is the broad sweep, the others a few of each.
SWEEPS = [("mixed", 300), ("long", 12), ("duel", 12), ("harsh", 25), ("bigwin", 8)]


@pytest.mark.parametrize(("profile", "count"), SWEEPS, ids=[p for p, _ in SWEEPS])
def test_sweep(profile: str, count: int) -> None:
    failures = []
    for seed in range(count):
        result = simulate(seed, profile)
        if not result.ok:
            failures.append(f"{result.failures[0]}\n    replay: {result.replay_command()}")
    assert not failures, f"{len(failures)} of {count} seeds failed:\n" + "\n".join(failures)


def test_a_seed_replays_exactly() -> None:
    first, second = simulate(17, "harsh"), simulate(17, "harsh")
    assert first.digest == second.digest
    assert (first.datagrams, first.end_time) == (second.datagrams, second.end_time)
    assert first.deliveries > 0


def test_profiles_differ() -> None:
    assert Scenario.from_seed(3, "duel").proposers == 2
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
