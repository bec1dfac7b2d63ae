"""Prometheus metrics through prometheus-client, named chain_<subsystem>_<name>_<unit>.

One custom collector reads node_status's sources when Prometheus scrapes (nothing is kept
up to date between scrapes), and two histograms are observed on each commit. Every series
exists from the first scrape on, zero included (a gauge that vanishes when all is well
cannot be alerted on: chain_consensus_missing_validators reads 0, it never disappears).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Final

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from node.daemon.chain import Chain
from node.daemon.observe.diagnose import Diagnosis
from node.daemon.observe.health import Health
from node.daemon.status import StatusReport
from node.daemon.store import Committed

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
COMMIT_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
ROUND_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)

Stats = Callable[[], dict[str, Any]]


class Metrics:
    def __init__(
        self,
        *,
        status: StatusReport,
        chain: Chain,
        health: Health,
        diagnosis: Diagnosis,
        rpc_stats: Stats,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.commit_duration = Histogram(
            "chain_block_commit_duration_seconds",
            "Time to execute a certified block and write it to LMDB in one transaction",
            buckets=COMMIT_BUCKETS,
            registry=self.registry,
        )
        self.round_duration = Histogram(
            "chain_consensus_round_duration_seconds",
            "Time from this node's previous commit to this one (one block in flight: a "
            "consensus round under load; up to the block interval when idle)",
            buckets=ROUND_BUCKETS,
            registry=self.registry,
        )
        self._chain = chain
        self._last_commit_s: float | None = None
        self._collector = _NodeCollector(status, health, diagnosis, rpc_stats)
        self.registry.register(self._collector)
        self.gateway_stats: Stats | None = None

    def on_commit(self, committed: Committed, now_s: float) -> None:
        self.commit_duration.observe(self._chain.last_commit_s)
        if self._last_commit_s is not None:
            self.round_duration.observe(max(0.0, now_s - self._last_commit_s))
        self._last_commit_s = now_s

    def render(self) -> bytes:
        self._collector.gateway_stats = self.gateway_stats
        return bytes(generate_latest(self.registry))


def _gauge(name: str, doc: str, value: float, labels: dict[str, str] | None = None) -> Metric:
    if labels:
        g = GaugeMetricFamily(name, doc, labels=list(labels))
        g.add_metric(list(labels.values()), value)
        return g
    return GaugeMetricFamily(name, doc, value=value)


def _counter(name: str, doc: str, value: float) -> Metric:
    return CounterMetricFamily(name, doc, value=value)


class _NodeCollector(Collector):
    def __init__(
        self, status: StatusReport, health: Health, diagnosis: Diagnosis, rpc_stats: Stats
    ) -> None:
        self._status = status
        self._health = health
        self._diagnosis = diagnosis
        self._rpc_stats = rpc_stats
        self.gateway_stats: Stats | None = None

    def collect(self) -> Iterator[Metric]:
        s = self._status.status()
        c = s["consensus"]
        counters = s["counters"]
        yield _gauge(
            "chain_node_info",
            "Constant 1, labelled with what identifies this node",
            1,
            {"chain_id": s["chain_id"], "node": s["node"], "validator": str(c["validator_index"])},
        )
        yield _gauge(
            "chain_node_halted", "1 when the node stopped committing", int(bool(s["halted"]))
        )
        yield _gauge(
            "chain_node_uptime_seconds", "Seconds since the node started", s["uptime_ms"] / 1000
        )
        yield _gauge("chain_consensus_height", "Height of the last committed block", s["height"])
        yield _gauge("chain_consensus_view", "Current PBFT view", c["view"])
        yield _gauge("chain_consensus_leader", "Index of the current view's leader", c["leader"])
        yield _gauge("chain_consensus_quorum", "Votes a quorum needs (2f+1)", c["quorum"])
        yield _gauge(
            "chain_consensus_missing_validators",
            "Validators whose votes the late round in flight lacks (0 when rounds are on time)",
            self._diagnosis.missing_count(),
        )
        yield _gauge(
            "chain_consensus_last_commit_age_seconds",
            "Seconds since this node's last commit",
            c["last_commit_age_ms"] / 1000,
        )
        yield _gauge(
            "chain_consensus_failed_views", "Views in a row that failed", c["failed_views"]
        )
        reasons = CounterMetricFamily(
            "chain_consensus_view_changes", "View changes started, by reason", labels=["reason"]
        )
        replica_counters = c.get("counters", {})
        for key in ("timeout", "censorship", "escalated", "joined"):
            reasons.add_metric([key], replica_counters.get(f"view_changes.{key}", 0))
        yield reasons
        misbehaviour = CounterMetricFamily(
            "chain_consensus_misbehaviour",
            "Evidence of misbehaviour seen, by kind",
            labels=["kind"],
        )
        for kind, count in sorted(c.get("misbehaviour", {}).items()):
            misbehaviour.add_metric([kind], count)
        yield misbehaviour
        yield _counter(
            "chain_blocks_committed", "Blocks committed since start", counters["blocks_committed"]
        )
        yield _counter(
            "chain_txs_committed", "Transactions committed since start", counters["txs_committed"]
        )
        yield _counter(
            "chain_consensus_invalid_proposals",
            "Proposals this node refused to prepare",
            counters.get("invalid_proposals", 0),
        )
        mempool = s["mempool"]
        yield _gauge("chain_mempool_size", "Transactions waiting in the mempool", mempool["size"])
        yield _gauge("chain_mempool_bytes", "Bytes of the waiting transactions", mempool["bytes"])
        yield _gauge(
            "chain_mempool_oldest_age_seconds",
            "Age of the oldest waiting transaction",
            mempool["oldest_age_ms"] / 1000,
        )
        yield _gauge("chain_p2p_peers", "Connected p2p peers", s["peers"])
        yield _gauge(
            "chain_p2p_validators_connected",
            "Connected peers that are validators",
            self._health.validators_connected(),
        )
        sync = s.get("syncing") or {}
        yield _gauge(
            "chain_sync_syncing", "1 while block sync catches up", int(bool(sync.get("syncing")))
        )
        storage = s.get("storage") or {}
        if "used_bytes" in storage:
            yield _gauge(
                "chain_storage_used_bytes", "Bytes the LMDB map uses", storage["used_bytes"]
            )
        health = GaugeMetricFamily(
            "chain_health_check_ok", "1 when the /healthz check passes", labels=["check"]
        )
        for check in self._health.checks(s):
            health.add_metric([check.name], int(check.ok))
        yield health
        yield from self._rpc(self._rpc_stats())
        if self.gateway_stats is not None:
            yield from self._gateway(self.gateway_stats())

    def _rpc(self, r: dict[str, Any]) -> Iterator[Metric]:
        yield _counter("chain_rpc_requests", "JSON-RPC requests, both transports", r["requests"])
        errors = CounterMetricFamily(
            "chain_rpc_errors", "JSON-RPC error answers, by code", labels=["code"]
        )
        for code, count in sorted(r["errors_by_code"].items()):
            errors.add_metric([str(code)], count)
        yield errors
        yield _gauge("chain_rpc_subscriptions", "Open subscriptions", r["subscriptions_open"])
        yield _counter(
            "chain_rpc_subscribers_dropped",
            "Subscribers dropped for falling behind",
            r["subscribers_dropped"],
        )

    def _gateway(self, g: dict[str, Any]) -> Iterator[Metric]:
        yield _gauge("chain_gateway_connections", "Open gateway connections", g["connections_open"])
        refused = CounterMetricFamily(
            "chain_gateway_connections_refused", "Connections refused, by reason", labels=["reason"]
        )
        for reason, count in sorted(g["refused"].items()):
            refused.add_metric([reason], count)
        yield refused
        requests = CounterMetricFamily(
            "chain_gateway_http_requests", "HTTP requests by status code", labels=["status"]
        )
        for status, count in sorted(g["http_status"].items()):
            requests.add_metric([str(status)], count)
        yield requests
        yield _gauge("chain_gateway_websockets", "Open WebSocket sessions", g["websockets_open"])
