"""Fault injection for tests, armed only by environment variables (never by config):

- CHAIN_CRASH_AT=POINT[:N]   the process exits at once (os._exit, exit status CRASH_EXIT)
  the N-th time (default 1st) it reaches the named point, with nothing flushed or closed,
  as a power cut would leave it. The points (CometBFT's FAIL_TEST_INDEX, by name):
    vote-persisted          a vote record is durable, its messages not yet sent
    decided-before-commit   a block is decided and journaled, not yet committed
    mid-commit-write        inside the block's LMDB write transaction, before it commits
    committed-before-answer the block is committed, waiters not yet answered
    sync-apply              a fetched block's certificate is checked, the block not applied
- CHAIN_CLOCK_OFFSET_MS=N    this node's clock runs N ms ahead (negative: behind).
- CHAIN_WRITE_ERROR_AT=N     the N-th block write fails as a disk error would (EIO).
"""

from __future__ import annotations

import os
import sys
import time

CRASH_EXIT = 86
POINTS = (
    "vote-persisted",
    "decided-before-commit",
    "mid-commit-write",
    "committed-before-answer",
    "sync-apply",
)
_armed: tuple[str, int] | None = None
_hits = 0


def _arm() -> tuple[str, int] | None:
    raw = os.environ.get("CHAIN_CRASH_AT", "")
    if not raw:
        return None
    name, _, count = raw.partition(":")
    if name not in POINTS or (count and not count.isdigit()):
        raise ValueError(f"CHAIN_CRASH_AT={raw!r}: points are {', '.join(POINTS)} [:N]")
    return name, int(count or 1)


_armed = _arm()


def crash_point(name: str) -> None:
    """Exit here if CHAIN_CRASH_AT names this point and its count is reached."""
    global _hits
    if _armed is None or _armed[0] != name:
        return
    _hits += 1
    if _hits >= _armed[1]:
        sys.stderr.write(f"crash point {name} reached ({_hits}): exiting\n")
        sys.stderr.flush()
        os._exit(CRASH_EXIT)


_write_error_at = int(os.environ.get("CHAIN_WRITE_ERROR_AT", "0") or 0)
_writes = 0


def write_fault() -> bool:
    """True for the block write CHAIN_WRITE_ERROR_AT names (and every one after it)."""
    global _writes
    if not _write_error_at:
        return False
    _writes += 1
    return _writes >= _write_error_at


def clock_offset_ms() -> int:
    raw = os.environ.get("CHAIN_CLOCK_OFFSET_MS", "0")
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"CHAIN_CLOCK_OFFSET_MS={raw!r} is not an integer") from exc


def wall_clock_ms() -> int:
    """The node's clock: wall time plus the injected offset (0 outside tests)."""
    return int(time.time() * 1000) + _OFFSET_MS


_OFFSET_MS = clock_offset_ms()
