"""Subscription pushes: each committed block to "blocks", each tx's outcome to "tx:<id>"."""

from __future__ import annotations

from node.daemon.store import Committed
from node.rpc.hub import SubscriptionHub

TOPICS = ("blocks",)
TOPIC_PREFIXES = ("tx:",)


def allow_topics(hub: SubscriptionHub) -> None:
    for topic in TOPICS:
        hub.allow_topic(topic)
    for prefix in TOPIC_PREFIXES:
        hub.allow_topic_prefix(prefix)


def publish_commit(hub: SubscriptionHub, committed: Committed) -> None:
    block = committed.block
    hub.publish(
        "blocks",
        {
            "height": block.height,
            "hash": block.hash.hex(),
            "txs": len(block.txs),
            "timestamp_ms": block.header.timestamp_ms,
        },
    )
    for tx, result in zip(block.txs, committed.outcome.results, strict=True):
        topic = "tx:" + tx.tx_id.hex()
        if hub.subscriber_count(topic):
            hub.publish(
                topic,
                {
                    "tx_id": tx.tx_id.hex(),
                    "height": block.height,
                    "status": "committed" if result.ok else "failed",
                    "code": result.code,
                    "reason": result.reason,
                },
            )
