"""The consensus simulator: whole PBFT clusters in one process, driven by one seed.

- world.py: the discrete-event loop (network, clocks, faults, byzantine identities), node.py
  (a simulated node: its store, its host and what it does for it);
- host.py and store.py: what carries out a replica's output, by the node's contract
  (consensus/ready.py), on a store with the node's journaling and restart rules;
- plan.py (a run drawn from its seed), checks.py (the invariants), byzantine.py, app.py
  (the simulated application), keys.py (HMAC stand-ins or real Ed25519);
- epochs.py (membership changes and the epochs a chain defines, by the node's governance
  rules) and members.py (who links to whom, joins and block sync as the set changes); the
  host follows epochs by the node's own rule (consensus/epochs.py);
- scenario.py: the transcript interpreter of tests/sim/scenarios/*.txt.

It imports the consensus core, the standard library, msgpack and cryptography; never node
(import-linter keeps it so). `scripts/simulate` runs it over many seeds.
"""

from simulator.world import RunResult, World, run_seed

__all__ = ["RunResult", "World", "run_seed"]
