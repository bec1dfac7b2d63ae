"""The simulator's shortcut draws are the draws of the Random API they replace."""

from __future__ import annotations

import random

from simulator.plan import plan_for_seed
from simulator.world import World


def test_world_randint_draws_what_random_randint_draws() -> None:
    world = World(plan_for_seed(7))
    reference = random.Random()
    reference.setstate(world.rng.getstate())  # the world's own generator, as __init__ bound it
    bounds = [(1, 20), (20, 300), (0, 0), (5, 6), (1, 2**40)]
    for step in range(2_000):
        low, high = bounds[step % len(bounds)]
        assert world._randint(low, high) == reference.randint(low, high)
