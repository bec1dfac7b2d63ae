"""A few hundred seeded whole-cluster runs, with every invariant checked after every step.

The long soak is `scripts/simulate` (10,000 seeds by default)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from simulator.plan import plan_for_seed
from simulator.world import run_seed

ROOT = Path(__file__).resolve().parents[2]
CI_SEEDS = range(100_000, 100_000 + int(os.environ.get("SIM_CI_SEEDS", "300")))


def test_a_few_hundred_seeds_hold_every_invariant() -> None:
    totals: Counter[str] = Counter()
    failures = []
    for seed in CI_SEEDS:
        result = run_seed(seed)
        totals.update(result.stats)
        if not result.ok:
            failures.append(f"seed {seed}: {result.violation}")
    assert not failures, "replay with scripts/simulate --seeds 1 --start SEED\n" + "\n".join(
        failures
    )
    # The runs really were hostile: every fault kind was injected, views changed.
    for kind in (
        "faults.drop",
        "faults.duplicate",
        "faults.delay",
        "faults.partition",
        "faults.crash",
        "faults.crash_mid_actions",
        "faults.crash_all",
        "byzantine.equivocations",
        "byzantine.withheld",
        "byzantine.double_votes",
        "byzantine.twin_identities",
        "byzantine.lying_view_changes",
        "byzantine.split_withheld",
        "censorship_suspected",
    ):
        assert totals[kind] > 0, f"no {kind} injected in {len(CI_SEEDS)} seeds"
    assert totals["views_changed"] > 50
    assert totals["blocks"] > 20 * len(CI_SEEDS)


@pytest.mark.parametrize("n", [4, 7, 10])
def test_every_cluster_size_commits(n: int) -> None:
    for seed in range(3):
        result = run_seed(200_000 + seed, validators=n)
        assert result.ok, f"seed {200_000 + seed} n={n}: {result.violation}"
        assert result.stats["blocks"] > 0


def test_real_ed25519_run() -> None:
    seed = next(s for s in range(300_000, 301_000) if plan_for_seed(s).real_signatures)
    result = run_seed(seed)
    assert result.ok, result.violation
    assert result.stats["blocks"] > 0


def test_a_seed_replays_exactly_in_process_and_in_another_process() -> None:
    seed = 100_007
    first, second = run_seed(seed), run_seed(seed)
    assert first.trace_hash == second.trace_hash and first.stats == second.stats
    assert run_seed(seed + 1).trace_hash != first.trace_hash
    env = dict(os.environ, PYTHONHASHSEED="12345")  # another process, other str hashing
    completed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "simulate"),
            "--seeds",
            "1",
            "--start",
            str(seed),
            "--jobs",
            "1",
            "--trace",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert f"seed {seed} trace {first.trace_hash} ok=True" in completed.stdout
