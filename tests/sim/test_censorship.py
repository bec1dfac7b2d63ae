"""Censorship suspicion must never start a view-change storm (issue: one client's nonce-gap
transaction drove the views up by ~14 per second on a real testnet).

A healthy cluster, no faults, a steady stream of transactions of which every third has a
nonce gap (no leader can propose it). The run goes on for a long calm phase; the views must
stay where they are."""

from __future__ import annotations

import dataclasses

from simulator.plan import plan_for_seed
from simulator.world import World

CALM_TICKS = 600  # 24 to 40 censorship timeouts


def calm_plan(seed: int, n: int, gap_tx_every: int) -> object:
    plan = plan_for_seed(seed, validators=n)
    return dataclasses.replace(
        plan,
        byzantine={},
        faults=(),
        fault_ticks=5,
        drop_rate=0.0,
        duplicate_rate=0.0,
        slow_rate=0.0,
        gap_tx_every=gap_tx_every,
        calm_ticks=CALM_TICKS,
    )


def test_nonce_gap_transactions_start_no_view_changes() -> None:
    for seed, n in ((1, 4), (2, 4), (3, 7)):
        result = World(calm_plan(seed, n, gap_tx_every=3)).run()  # type: ignore[arg-type]
        assert result.ok, f"seed {seed}: {result.violation}"
        assert result.end_tick >= CALM_TICKS
        assert result.stats.get("blocks", 0) > 100
        assert result.stats.get("censorship_suspected", 0) == 0, (seed, result.stats)
        assert result.stats.get("views_changed", 0) == 0, (seed, result.stats)


def test_a_censoring_leader_is_still_voted_out() -> None:
    """The other side: a leader that leaves out proposable txs is replaced, once."""
    for seed in range(10, 40):
        plan = calm_plan(seed, 4, gap_tx_every=3)
        leader = 0
        plan = dataclasses.replace(plan, byzantine={leader: frozenset({"censor"})})  # type: ignore[type-var]
        result = World(plan).run()  # type: ignore[arg-type]
        assert result.ok, f"seed {seed}: {result.violation}"
        assert result.stats.get("censorship_suspected", 0) >= 1, (seed, result.stats)
        # Suspicion moved the view on, and then the honest leaders included the txs.
        assert 1 <= result.stats.get("views_changed", 0) <= 3, (seed, result.stats)
        return
