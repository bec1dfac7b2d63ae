"""/healthz and /readyz: a chain that cannot commit is unhealthy, not only a dead process.

CometBFT's /health answers OK on a halted chain (tendermint #1729); here a check fails when
the node is halted, when transactions wait but no block has come for a while, when no block
has come for much longer than the chain's own maximum block interval, or when fewer
validators are connected than a quorum needs. /readyz adds: caught up (not syncing).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from node.daemon.chain import Chain
from node.daemon.status import StatusReport


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def stall_ms(chain: Chain) -> int:
    """How long without a commit counts as stalled: a few block intervals, at least 5 s."""
    params = chain.params
    return max(5000, 3 * params.max_block_interval_ms)


class Health:
    def __init__(
        self,
        *,
        status: StatusReport,
        chain: Chain,
        own_key: bytes,
    ) -> None:
        self._status = status
        self._chain = chain
        self._own_key = own_key

    @property
    def _validators(self) -> set[str]:
        """The set that signs the next block (it follows governance)."""
        return {k.hex() for k in self._chain.epoch_for(self._chain.store.head.height + 1).keys}

    @property
    def _own_is_validator(self) -> bool:
        return self._own_key.hex() in self._validators

    def validators_connected(self) -> int:
        return sum(
            1
            for p in self._status.peers()
            if p.get("connected") and p["public_key"] in self._validators
        )

    def checks(self, report: dict[str, Any] | None = None) -> list[Check]:
        s = self._status.status() if report is None else report
        chain = self._chain
        out = []
        halted = s["halted"]
        out.append(Check("not_halted", not halted, f"halted: {halted}" if halted else "running"))
        age_ms = int(s["consensus"].get("last_commit_age_ms", 0))
        limit_ms = stall_ms(chain)
        waiting = int(s["mempool"]["size"])
        proposable_ms = chain.mempool.oldest_proposable_age_ms()
        stuck = waiting > 0 and proposable_ms > limit_ms and age_ms > limit_ms
        out.append(
            Check(
                "committing",
                not stuck,
                f"{waiting} transactions wait and no block for {age_ms / 1000:.1f} s"
                if stuck
                else f"last block {age_ms / 1000:.1f} s ago, {waiting} transactions pending",
            )
        )
        idle_limit_ms = 3 * limit_ms
        out.append(
            Check(
                "blocks_coming",
                age_ms <= idle_limit_ms,
                f"{'no block for' if age_ms > idle_limit_ms else 'last block'} "
                f"{age_ms / 1000:.1f} s (blocks come at least every "
                f"{chain.params.max_block_interval_ms / 1000:g} s)",
            )
        )
        quorum = int(s["consensus"].get("quorum", 1))
        connected = self.validators_connected()
        reachable = connected + (1 if self._own_is_validator else 0)
        n = len(self._validators)
        out.append(
            Check(
                "quorum_reachable",
                reachable >= quorum,
                f"{reachable} of {n} validators reachable (this node included), a quorum is "
                f"{quorum}",
            )
        )
        return out

    def ready(self) -> list[Check]:
        s = self._status.status()
        out = self.checks(s)
        sync = s.get("syncing") or {}
        syncing = bool(sync.get("syncing"))
        target = sync.get("target_height")
        detail = f"syncing to height {target}" if syncing else f"caught up at height {s['height']}"
        out.append(Check("caught_up", not syncing, detail))
        return out


def as_json(checks: list[Check]) -> dict[str, Any]:
    failed = [c for c in checks if not c.ok]
    return {
        "status": "ok" if not failed else "failing",
        "failed": [c.name for c in failed],
        "checks": [asdict(c) for c in checks],
    }
