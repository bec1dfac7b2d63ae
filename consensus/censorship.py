"""When a backup should suspect its leader of censorship (the node's rule, shared with the
simulator so that both run the same one).

A backup calls `Replica.suspect_censorship()` only when all of these hold:
- a transaction that a leader could propose now has waited longer than the timeout. A tx
  with a nonce gap (nonce next + 2 while next + 1 is missing) is NOT proposable: no leader can
  include it, so it is no evidence against any leader;
- blocks kept committing within the timeout (a chain that commits nothing is a liveness
  problem for the view-change timer, not censorship);
- the last block was not full (a full block means a backlog, not censorship);
- the current view has run normally for longer than the timeout, so every leader gets a
  whole timeout before it can be blamed, and suspicion can never drive more than one view
  change per timeout (the Replica enforces that bound too, whatever the caller says).
All durations are in one unit of the caller's choice (the node uses ms, the simulator ticks).
"""

from __future__ import annotations


def censorship_suspected(
    *,
    oldest_proposable_wait: int,
    since_last_commit: int,
    view_age: int,
    timeout: int,
    last_block_full: bool,
) -> bool:
    if timeout <= 0:
        raise ValueError("the censorship timeout must be positive")
    return (
        oldest_proposable_wait > timeout
        and since_last_commit < timeout
        and view_age > timeout
        and not last_block_full
    )
