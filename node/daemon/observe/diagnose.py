"""`node_diagnose` (`chain doctor`): why the chain is not committing, or is slow, in words.

It combines what the parts already know, read when asked: the replica's slot (whose
prepare and commit votes for the height in flight have arrived), the leader and our link to
it, the view changes of the last minute with the counters that say why they started, the
clock offsets seen in each proposer's block times, and the transactions that wait with the
reason no leader can propose them (a nonce gap). A sampler task notes view changes every
SAMPLE_INTERVAL_S and an on_commit hook notes block times; both are O(validators).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

import trio

from node.daemon.chain import Chain
from node.daemon.driver import ConsensusDriver
from node.daemon.status import StatusReport
from node.daemon.store import Committed
from node.ledger.genesis import Genesis

SAMPLE_INTERVAL_S: Final = 0.5
VIEW_CHANGE_WINDOW_S: Final = 60.0
MAX_VIEW_CHANGES: Final = 256
CLOCK_SAMPLES: Final = 20
MAX_WAITING_SHOWN: Final = 20
REASON_COUNTERS: Final = (
    "view_changes.timeout",
    "view_changes.censorship",
    "view_changes.escalated",
    "view_changes.joined",
)
REASON_WORDS: Final = {
    "view_changes.timeout": "the round timed out (no commit in time)",
    "view_changes.censorship": "transactions waited too long (censorship suspected)",
    "view_changes.escalated": "the previous view change did not complete",
    "view_changes.joined": "f+1 other validators asked for it",
}


@dataclass(frozen=True)
class ViewChange:
    at_ms: int
    from_view: int
    to_view: int
    leader_before: int
    reasons: tuple[str, ...]


class Diagnosis:
    def __init__(
        self, *, chain: Chain, driver: ConsensusDriver, status: StatusReport, genesis: Genesis
    ) -> None:
        self._chain = chain
        self._driver = driver
        self._status = status
        self._view_changes: deque[ViewChange] = deque(maxlen=MAX_VIEW_CHANGES)
        self._last_view = driver.replica.view
        self._last_counters = self._reason_counts()
        # proposer index -> recent (block time - our clock at commit), in ms
        self._clock: dict[int, deque[int]] = {}

    @property
    def _names(self) -> list[str]:
        """Validator names of the epoch that signs the next block."""
        return list(self._chain.epoch_for(self._chain.store.head.height + 1).names)

    @property
    def _keys(self) -> list[bytes]:
        return list(self._chain.epoch_for(self._chain.store.head.height + 1).keys)

    # --- sampling ------------------------------------------------------------------------------

    def _reason_counts(self) -> dict[str, int]:
        counters: Any = self._driver.replica.status().get("counters", {})
        return {k: int(counters.get(k, 0)) for k in REASON_COUNTERS}

    def sample(self) -> None:
        view = self._driver.replica.view
        if view == self._last_view:
            return
        counts = self._reason_counts()
        reasons = tuple(k for k in REASON_COUNTERS if counts[k] > self._last_counters.get(k, 0))
        leader_before = self._last_view % max(1, len(self._names))
        self._view_changes.append(
            ViewChange(int(time.time() * 1000), self._last_view, view, leader_before, reasons)
        )
        self._last_view = view
        self._last_counters = counts

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await trio.sleep(SAMPLE_INTERVAL_S)
            self.sample()

    def on_commit(self, committed: Committed) -> None:
        header = committed.block.header
        offset = int(header.timestamp_ms) - int(self._chain.clock_ms())
        samples = self._clock.setdefault(int(header.proposer), deque(maxlen=CLOCK_SAMPLES))
        samples.append(offset)

    # --- reading -------------------------------------------------------------------------------

    def name(self, index: int | None) -> str:
        if index is None or not 0 <= index < len(self._names):
            return f"validator {index}"
        return self._names[index]

    def missing_votes(self) -> dict[str, Any]:
        """The slot in flight: who has not prepared / committed, and whether that is late."""
        replica = self._driver.replica
        votes: dict[str, Any] = dict(replica.slot_votes())
        n = len(self._names)
        age_ms = int(votes["age_ticks"]) * self._driver.tick_ms
        stalled = age_ms > max(1000, self._chain.params.view_timeout_ms // 2)
        prepares = set(votes["prepares"])
        commits = set(votes["commits"])
        votes.update(
            {
                "age_ms": age_ms,
                "late": stalled,
                "missing_prepares": [self.name(i) for i in range(n) if i not in prepares],
                "missing_commits": [self.name(i) for i in range(n) if i not in commits],
            }
        )
        return votes

    def missing_count(self) -> int:
        """For chain_consensus_missing_validators: 0 unless the round in flight is late, then
        how many validators' votes it lacks (the leader alone when it has not proposed).
        A quiet chain (nothing to propose, the block interval not yet over) is not late."""
        votes = self.missing_votes()
        if not votes["late"] or len(self._names) <= 1:
            return 0
        if not votes["proposal"]:
            quiet = not self._chain.mempool.has_ready() and votes["age_ms"] < (
                self._chain.params.max_block_interval_ms + self._chain.params.view_timeout_ms
            )
            return 0 if quiet else 1
        return len(set(votes["missing_prepares"]) | set(votes["missing_commits"]))

    def view_changes(self) -> list[dict[str, Any]]:
        cutoff = int(time.time() * 1000) - int(VIEW_CHANGE_WINDOW_S * 1000)
        return [
            {
                "at": iso_ms(v.at_ms),
                "from_view": v.from_view,
                "to_view": v.to_view,
                "leader_before": self.name(v.leader_before),
                "reasons": [REASON_WORDS[r] for r in v.reasons] or ["not recorded"],
            }
            for v in self._view_changes
            if v.at_ms >= cutoff
        ]

    def clock_offsets(self) -> dict[str, dict[str, int]]:
        out = {}
        for index in sorted(self._clock):
            samples = self._clock[index]
            out[self.name(index)] = {"max_ms": max(samples), "last_ms": samples[-1]}
        return out

    def waiting(self) -> dict[str, Any]:
        chain = self._chain
        rows = []
        names: dict[bytes, str] = {}
        blocked = 0
        for tx, age_ms, expected in chain.mempool.waiting(MAX_WAITING_SHOWN):
            if tx.sender not in names:
                account = chain.account(tx.sender) or {}
                names[tx.sender] = str(account.get("name") or tx.sender.hex()[:16])
            if tx.nonce > expected:
                reason = f"nonce gap: its sender must first use nonce {expected}"
                blocked += 1
            else:
                reason = "proposable: waits for the next block"
            rows.append(
                {
                    "tx_id": tx.tx_id.hex(),
                    "sender": names[tx.sender],
                    "nonce": tx.nonce,
                    "age_ms": age_ms,
                    "why": reason,
                }
            )
        return {"count": len(chain.mempool), "shown": rows, "blocked_by_nonce_gap": blocked}

    async def rpc_node_diagnose(self, params: object, context: object) -> object:
        """The `node_diagnose` method (no params)."""
        return self.report()

    def report(self) -> dict[str, Any]:
        s = self._status.status()
        consensus = s["consensus"]
        leader = consensus.get("leader")
        peers = {p["public_key"]: p for p in self._status.peers()}
        me = consensus.get("validator_index")
        leader_link: dict[str, Any]
        if leader == me:
            leader_link = {"state": "this node is the leader"}
        elif isinstance(leader, int) and 0 <= leader < len(self._keys):
            row = peers.get(self._keys[leader].hex(), {})
            leader_link = {
                "state": "connected" if row.get("connected") else "not connected",
                **{k: row[k] for k in ("address", "direction", "head", "uptime_s") if k in row},
            }
        else:
            leader_link = {"state": "unknown"}
        votes = self.missing_votes()
        changes = self.view_changes()
        waiting = self.waiting()
        report = {
            "node": s["node"],
            "height": s["height"],
            "view": consensus.get("view"),
            "mode": consensus.get("mode"),
            "leader": {"index": leader, "name": self.name(leader), "link": leader_link},
            "last_commit_age_ms": consensus.get("last_commit_age_ms"),
            "halted": s["halted"],
            "syncing": s.get("syncing"),
            "votes": votes,
            "view_changes_last_minute": changes,
            "clock_offsets_ms": self.clock_offsets(),
            "waiting": waiting,
            "peers_connected": s.get("peers"),
            "validators_reachable": sum(
                1 for k in self._keys if peers.get(k.hex(), {}).get("connected")
            )
            + (1 if me is not None else 0),
            "quorum": consensus.get("quorum"),
        }
        report["verdict"], report["explanation"] = self._explain(report)
        return report

    def _explain(self, r: dict[str, Any]) -> tuple[str, list[str]]:
        lines: list[str] = []
        age_s = (r["last_commit_age_ms"] or 0) / 1000
        if r["halted"]:
            return "halted", [f"the node halted: {r['halted']} (see its log; it needs an operator)"]
        if (r["syncing"] or {}).get("syncing"):
            lines.append(f"catching up: fetching blocks up to {r['syncing'].get('target_height')}")
        votes = r["votes"]
        leader = r["leader"]
        verdict = "committing"
        if votes["late"]:
            verdict = "stalled" if age_s > 10 else "slow"
            if not votes["proposal"]:
                lines.append(
                    f"no proposal for height {votes['height']} in view {votes['view']} after "
                    f"{votes['age_ms'] / 1000:.1f} s: the leader {leader['name']} has not "
                    f"proposed (our link to it: {leader['link']['state']})"
                )
            else:
                if votes["missing_prepares"]:
                    lines.append(
                        f"height {votes['height']} view {votes['view']}: no prepare yet from "
                        + ", ".join(votes["missing_prepares"])
                    )
                if votes["missing_commits"]:
                    lines.append(
                        f"height {votes['height']} view {votes['view']}: no commit yet from "
                        + ", ".join(votes["missing_commits"])
                    )
        if r["view_changes_last_minute"]:
            verdict = "slow" if verdict == "committing" else verdict
            count = len(r["view_changes_last_minute"])
            last = r["view_changes_last_minute"][-1]
            lines.append(
                f"{count} view change(s) in the last minute; the last one left "
                f"{last['leader_before']} because {'; '.join(last['reasons'])}"
            )
        quorum = r["quorum"] or 1
        if r["validators_reachable"] < quorum and len(self._keys) > 1:
            verdict = "stalled"
            lines.insert(
                0,
                f"cannot commit: {r['validators_reachable']} of {len(self._keys)} validators "
                f"reachable (this node included) and a quorum needs {quorum}; check the links "
                "to the others (`chain status`, peers_list) and that they run",
            )
        waiting = r["waiting"]
        if waiting["blocked_by_nonce_gap"]:
            lines.append(
                f"{waiting['blocked_by_nonce_gap']} of the oldest pending transactions wait "
                "behind a nonce gap: their senders must submit the missing nonces first"
            )
        for name, clock in r["clock_offsets_ms"].items():
            if abs(clock["max_ms"]) > 2000:
                lines.append(f"{name}'s block times are {clock['max_ms']} ms off our clock")
        if not lines:
            lines.append(
                f"committing normally: height {r['height']}, last block {age_s:.1f} s ago, "
                f"view {r['view']} led by {leader['name']}"
            )
        return verdict, lines


def iso_ms(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"
