"""Subscriptions: exact notification format, fan-out, ordering against the subscribe answer,
unsubscribe, slow subscribers dropped with a final notification, cleanup."""

from __future__ import annotations

import json

import pytest
import trio
import trio.testing

from node.rpc.errors import INVALID_PARAMS, SUBSCRIBER_DROPPED, TOO_MANY_SUBSCRIPTIONS


def rpc_request(method: str, params: object = None, request_id: object = 1) -> dict[str, object]:
    value: dict[str, object] = {"jsonrpc": "2.0", "method": method, "id": request_id}
    if params is not None:
        value["params"] = params
    return value


async def subscribe(connection, topic: str, request_id: object = "sub") -> int:
    answer = await connection.request(rpc_request("subscribe", {"topic": topic}, request_id))
    assert answer["id"] == request_id, answer
    subscription = answer["result"]
    assert isinstance(subscription, int) and not isinstance(subscription, bool)
    return subscription


async def test_notification_has_the_exact_wire_format(server, connect) -> None:
    connection = await connect()
    subscription = await subscribe(connection, "blocks")
    assert server.hub.publish("blocks", {"height": 7, "hash": "ab"}) == 1
    line = await connection.read_line()
    assert json.loads(line) == {
        "jsonrpc": "2.0",
        "method": "subscription",
        "params": {"subscription": subscription, "result": {"height": 7, "hash": "ab"}},
    }
    assert "id" not in json.loads(line), "a notification has no id"


async def test_positional_subscribe_and_unknown_topics(server, connect) -> None:
    connection = await connect()
    answer = await connection.request(rpc_request("subscribe", ["tx:abc"]))
    assert isinstance(answer["result"], int)
    for topic, fragment in [
        ("nope", "unknown topic 'nope'; topics: blocks, tx:<...>"),
        ("tx:", "unknown topic 'tx:'"),
        ("", "at least 1 characters"),
        ("b" * 300, "at most 256 characters"),
    ]:
        answer = await connection.request(rpc_request("subscribe", {"topic": topic}, 2))
        assert answer["error"]["code"] == INVALID_PARAMS
        assert fragment in answer["error"]["message"]
    answer = await connection.request(rpc_request("subscribe", {"topic": 5}, 3))
    assert answer["error"]["code"] == INVALID_PARAMS


async def test_fan_out_to_every_subscriber_of_the_topic_only(server, connect) -> None:
    first, second, other = await connect(), await connect(), await connect()
    first_id = await subscribe(first, "blocks")
    second_id = await subscribe(second, "blocks")
    other_id = await subscribe(other, "tx:aa")
    assert len({first_id, second_id, other_id}) == 3
    assert server.hub.publish("blocks", 1) == 2
    assert server.hub.publish("tx:aa", "done") == 1
    assert server.hub.publish("tx:bb", "nobody") == 0
    assert (await first.read_json())["params"] == {"subscription": first_id, "result": 1}
    assert (await second.read_json())["params"] == {"subscription": second_id, "result": 1}
    assert (await other.read_json())["params"] == {"subscription": other_id, "result": "done"}


async def test_notifications_arrive_in_publish_order(server, connect) -> None:
    connection = await connect()
    subscription = await subscribe(connection, "blocks")
    for height in range(200):
        server.hub.publish("blocks", height)
        if height % 7 == 0:
            await trio.sleep(0)
    results = [(await connection.read_json())["params"] for _ in range(200)]
    assert results == [{"subscription": subscription, "result": h} for h in range(200)]


async def test_handler_subscription_is_announced_before_its_first_push(server, connect) -> None:
    connection = await connect()
    # watch_tx subscribes and publishes before it returns: the answer must still come first.
    answer = await connection.request(rpc_request("watch_tx", {"tx_id": "ab12"}, "w"))
    assert answer["id"] == "w"
    push = await connection.read_json()
    assert push["params"] == {
        "subscription": answer["result"],
        "result": {"tx_id": "ab12", "status": "early"},
    }


async def test_batch_subscription_is_announced_before_its_first_push(server, connect) -> None:
    connection = await connect()
    batch = [rpc_request("watch_tx", ["x1"], 1), rpc_request("watch_tx", ["x2"], 2)]
    answers = await connection.request(batch)
    ids = [answer["result"] for answer in answers]
    pushes = [await connection.read_json() for _ in range(2)]
    assert sorted(push["params"]["subscription"] for push in pushes) == sorted(ids)


async def test_failed_call_leaves_no_subscription(server, connect) -> None:
    connection = await connect()
    answer = await connection.request(rpc_request("watch_then_fail", None, 1))
    assert answer["error"]["code"] == 1002
    assert server.hub.subscriber_count("blocks") == 0
    assert server.hub.publish("blocks", "ignored") == 0
    assert server.statistics()["subscriptions_open"] == 0


async def test_subscribe_as_notification_leaves_no_subscription(server, connect) -> None:
    connection = await connect()
    await connection.send_json({"jsonrpc": "2.0", "method": "subscribe", "params": ["blocks"]})
    assert (await connection.request(rpc_request("echo", [1])))["result"] == [1]
    assert server.hub.subscriber_count("blocks") == 0


async def test_unsubscribe_stops_pushes_immediately(server, connect) -> None:
    connection = await connect()
    subscription = await subscribe(connection, "blocks")
    for height in range(5):
        server.hub.publish("blocks", height)  # queued, not yet written
    answer = await connection.request(rpc_request("unsubscribe", [subscription], "u"))
    # Queued pushes may precede the answer; none may follow it.
    seen = []
    while "id" not in answer:
        seen.append(answer["params"]["result"])
        answer = await connection.read_json()
    assert answer == {"jsonrpc": "2.0", "result": True, "id": "u"}
    assert seen == list(range(len(seen)))
    assert server.hub.publish("blocks", "after") == 0
    assert (await connection.request(rpc_request("echo", ["probe"], "p")))["id"] == "p"
    answer = await connection.request(rpc_request("unsubscribe", {"subscription": subscription}))
    assert answer["error"]["code"] == INVALID_PARAMS
    assert f"no subscription {subscription}" in answer["error"]["message"]


async def test_cannot_unsubscribe_another_connections_subscription(server, connect) -> None:
    owner, intruder = await connect(), await connect()
    subscription = await subscribe(owner, "blocks")
    answer = await intruder.request(rpc_request("unsubscribe", [subscription]))
    assert answer["error"]["code"] == INVALID_PARAMS
    assert server.hub.publish("blocks", "still") == 1
    assert (await owner.read_json())["params"]["result"] == "still"


async def test_slow_subscriber_is_dropped_with_a_final_notification(start_server, connect) -> None:
    server = await start_server(subscriber_queue=8)
    slow, healthy = await connect(), await connect()
    slow_id = await subscribe(slow, "blocks")
    healthy_id = await subscribe(healthy, "blocks")
    # Both forwarders park in receive(); each then takes one payload straight from the
    # publisher and queues 8 more. No checkpoint between publishes, so nothing drains.
    await trio.testing.wait_all_tasks_blocked()
    reached = [server.hub.publish("blocks", height) for height in range(9)]
    assert reached == [2] * 9
    assert server.hub.publish("blocks", 9) == 0  # both queues full: both dropped
    assert server.statistics()["subscribers_dropped"] == 2
    for connection, subscription in ((slow, slow_id), (healthy, healthy_id)):
        pushes = [await connection.read_json() for _ in range(10)]
        assert [push["params"].get("result") for push in pushes[:9]] == list(range(9))
        final = pushes[9]
        assert final["method"] == "subscription"
        assert final["params"]["subscription"] == subscription
        assert "result" not in final["params"]
        assert final["params"]["error"]["code"] == SUBSCRIBER_DROPPED
        assert "fell behind" in final["params"]["error"]["message"]
        assert final["params"]["error"]["data"] == {"topic": "blocks", "queue_capacity": 8}
        # The connection itself lives on.
        assert (await connection.request(rpc_request("echo", ["alive"])))["result"] == ["alive"]
    assert server.statistics()["subscriptions_open"] == 0


async def test_real_slow_reader_is_dropped_while_a_fast_one_keeps_up(start_server, connect) -> None:
    """A subscriber that stops reading fills its socket buffer, then its queue."""
    server = await start_server(subscriber_queue=32, write_timeout_s=60.0)
    slow, fast = await connect(), await connect()
    slow_id = await subscribe(slow, "blocks")
    fast_id = await subscribe(fast, "blocks")
    fast_results: list[int] = []

    async def read_fast() -> None:
        while True:  # ended by cancellation once the slow subscriber is dropped
            push = await fast.read_json()
            assert push["params"]["subscription"] == fast_id
            fast_results.append(push["params"]["result"]["n"])

    published = [0]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_fast)
        for n in range(100_000):
            server.hub.publish("blocks", {"n": n, "pad": "p" * 2048})
            published[0] = n + 1
            await trio.sleep(0)
            if server.statistics()["subscribers_dropped"]:
                break
        with trio.fail_after(10):
            while len(fast_results) < published[0]:  # bounded by the deadline
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert server.statistics()["subscribers_dropped"] == 1, "only the slow one is dropped"
    assert fast_results == list(range(published[0]))
    slow_results = []
    for _ in range(published[0] + 1):
        push = await slow.read_json()
        assert push["params"]["subscription"] == slow_id
        if "error" in push["params"]:
            assert push["params"]["error"]["code"] == SUBSCRIBER_DROPPED
            break
        slow_results.append(push["params"]["result"]["n"])
    else:
        pytest.fail("no final notification")
    assert slow_results == list(range(len(slow_results))), "no gap before the drop"
    assert len(slow_results) < published[0]


async def test_per_connection_subscription_limit(start_server, connect) -> None:
    await start_server(max_subscriptions_per_connection=2)
    connection = await connect()
    await subscribe(connection, "blocks", 1)
    await subscribe(connection, "tx:a", 2)
    answer = await connection.request(rpc_request("subscribe", ["tx:b"], 3))
    assert answer["error"]["code"] == TOO_MANY_SUBSCRIPTIONS
    assert answer["error"]["data"] == {"max_subscriptions": 2}
    other = await connect()
    await subscribe(other, "tx:b", 4)  # the limit is per connection


async def test_disconnect_removes_subscriptions(server, connect, wait_until) -> None:
    connection = await connect()
    await subscribe(connection, "blocks", 1)
    await subscribe(connection, "tx:1", 2)
    assert server.statistics()["subscriptions_open"] == 2
    await connection.aclose()
    await wait_until(lambda: server.statistics()["subscriptions_open"] == 0, "cleanup")
    assert server.hub.publish("blocks", "nobody") == 0


async def test_publish_encodes_once_and_rejects_non_json(server, connect) -> None:
    connection = await connect()
    await subscribe(connection, "blocks")
    with pytest.raises(TypeError):
        server.hub.publish("blocks", {"bad": object()})
    with pytest.raises(ValueError):
        server.hub.publish("blocks", float("inf"))
    assert server.hub.publish("blocks", "fine") == 1
    assert (await connection.read_json())["params"]["result"] == "fine"


async def test_topic_registration_is_validated(server) -> None:
    with pytest.raises(ValueError):
        server.hub.allow_topic("")
    with pytest.raises(ValueError):
        server.hub.allow_topic_prefix("x" * 257)
