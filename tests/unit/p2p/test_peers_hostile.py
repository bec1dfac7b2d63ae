"""PeerManager against unknown, lying, broken, silent and slow peers.

Each test keeps an honest link (a <-> b) running beside the bad one and checks that it
still carries messages afterwards: a bad peer may cost itself its link, nothing more.
"""

from __future__ import annotations

import ssl
import struct
import tracemalloc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import msgpack
import pytest
import trio

from p2p.framing import encode_frame
from p2p.peers import PeerManager
from p2p.tls import make_client_context

if TYPE_CHECKING:
    from conftest import Identity, P2PKit

TEST_TIMEOUT_S = 20


@asynccontextmanager
async def honest_pair(
    kit: P2PKit, extra_allowed: list[Identity], **options: Any
) -> AsyncIterator[tuple[Identity, PeerManager, PeerManager]]:
    """Managers a and b, linked; a also allows extra_allowed. Yields (a's identity, a, b)."""
    a, b = kit.identity("a"), kit.identity("b")
    async with kit.mesh([a, b], allowed=[a, b, *extra_allowed], **options) as (ma, mb):
        await kit.wait_until(lambda: kit.fully_connected([ma, mb]))
        yield a, ma, mb


async def assert_still_linked(a: PeerManager, b: PeerManager) -> None:
    assert b.node_id in a.connected_peers()
    assert a.send_nowait(b.node_id, {"t": "still-here"})
    assert await b.inbox.receive() == (a.node_id, {"t": "still-here"})
    assert b.send_nowait(a.node_id, {"t": "me-too"})
    assert await a.inbox.receive() == (b.node_id, {"t": "me-too"})


async def read_until_closed(stream: trio.abc.ReceiveStream) -> bytes:
    """Everything the other side sends before it closes (the caller bounds the time)."""
    received = bytearray()
    try:
        while data := await stream.receive_some(65536):
            received += data
    except trio.BrokenResourceError:
        pass
    return bytes(received)


async def test_unknown_key_is_refused_and_counted(kit: P2PKit) -> None:
    stranger = kit.identity("stranger")
    with trio.fail_after(TEST_TIMEOUT_S):
        async with honest_pair(kit, []) as (a_id, a, b):
            # The stranger trusts a (it may pin whatever it likes) and keeps dialling it.
            intruder = kit.manager(stranger, [a_id], {a_id.node_id: (kit.HOST, a.listen_port)})
            async with kit.running(intruder):
                await kit.wait_until(
                    lambda: (
                        a.counters["unknown_peer_refused"] >= 2
                        and intruder.counters["rejected_after_handshake"] >= 2
                    )
                )
                # In TLS 1.3 the refused client only learns of it on its first read.
                assert intruder.counters["dial_failed"] >= 2
                assert intruder.connected_peers() == []
                assert a.connected_peers() == [b.node_id]
                assert a.statistics()["inbox_depth"] == 0
                assert stranger.node_id.hex() not in a.statistics()["peers"]
                assert a.counters["handshake_failed"] >= 2
            await assert_still_linked(a, b)


async def test_forged_copy_of_a_validator_certificate_is_refused(kit: P2PKit) -> None:
    with trio.fail_after(TEST_TIMEOUT_S):
        async with honest_pair(kit, []) as (a_id, a, b):
            # b's certificate is public (genesis lists it); its private key is not.
            b_id = kit.Identity(
                name="b",
                private_key=None,
                node_id=b.node_id,
                cert_pem=a.allowed_certificates[b.node_id],
                key_pem=b"",
            )
            forger = kit.forger_of(b_id)
            async with kit.raw_tls_peer(forger, a.listen_port, [a_id.cert_pem]) as raw:
                # The handshake "succeeded" on our side; the refusal arrives on first read.
                await raw.send_hello()
                assert await read_until_closed(raw.stream) == b""
            assert a.counters["unknown_peer_refused"] == 1
            assert a.statistics()["peers"][b.node_id.hex()]["links_established"] == 1
            await assert_still_linked(a, b)


async def test_a_pinned_node_at_another_nodes_address_is_not_taken_for_it(
    kit: P2PKit,
) -> None:
    a, b, c = kit.identity("a"), kit.identity("b"), kit.identity("c")
    with trio.fail_after(TEST_TIMEOUT_S):
        c_manager = kit.manager(c, [a, b, c], {})
        async with kit.running(c_manager):
            # a is told that b lives where c listens.
            a_manager = kit.manager(a, [a, b, c], {b.node_id: (kit.HOST, c_manager.listen_port)})
            async with kit.running(a_manager):
                await kit.wait_until(lambda: a_manager.counters["peer_key_mismatch"] >= 2)
                assert a_manager.counters["dial_failed"] >= 2
                assert a_manager.connected_peers() == []
                assert c_manager.connected_peers() == []
                # c saw a valid client that closed before the hello exchange.
                assert c_manager.counters["handshake_failed"] >= 1


async def test_an_unpinned_server_fails_the_dial(kit: P2PKit) -> None:
    a, b, impostor = kit.identity("a"), kit.identity("b"), kit.identity("impostor")
    with trio.fail_after(TEST_TIMEOUT_S):
        impostor_manager = kit.manager(impostor, [a, impostor], {})
        async with kit.running(impostor_manager):
            a_manager = kit.manager(
                a, [a, b], {b.node_id: (kit.HOST, impostor_manager.listen_port)}
            )
            async with kit.running(a_manager):
                await kit.wait_until(lambda: a_manager.counters["tls_failed"] >= 2)
                assert a_manager.counters["dial_failed"] >= 2
                assert a_manager.connected_peers() == []
                assert impostor_manager.connected_peers() == []


async def test_silent_handshakes_time_out_and_the_cap_refuses_more(kit: P2PKit) -> None:
    latecomer = kit.identity("latecomer")
    with trio.fail_after(TEST_TIMEOUT_S):
        async with honest_pair(
            kit, [latecomer], handshake_timeout_ms=500, max_concurrent_handshakes=2
        ) as (a_id, a, b):
            silent = [await trio.open_tcp_stream(kit.HOST, a.listen_port) for _ in range(2)]
            try:
                await kit.wait_until(lambda: a.statistics()["inbound_handshakes"] == 2)
                # The cap is reached: one more connection is closed at once.
                extra = await trio.open_tcp_stream(kit.HOST, a.listen_port)
                with trio.fail_after(0.4):  # well before the silent ones time out
                    assert await read_until_closed(extra) == b""
                await extra.aclose()
                assert a.counters["handshake_busy_refused"] == 1
                await assert_still_linked(a, b)
                # The silent ones are cut at the deadline.
                for stream in silent:
                    assert await read_until_closed(stream) == b""
                assert a.counters["handshake_timeout"] == 2
                assert a.statistics()["inbound_handshakes"] == 0
            finally:
                for stream in silent:
                    await stream.aclose()
            # Slots are free again: a real peer can join.
            joiner = kit.manager(
                latecomer, [a_id, latecomer], {a_id.node_id: (kit.HOST, a.listen_port)}
            )
            async with kit.running(joiner):
                await kit.wait_until(lambda: latecomer.node_id in a.connected_peers())
            await assert_still_linked(a, b)


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\nHost: example\r\n\r\n",
        b"\x16\x03\x01\x00\x05hello",  # a TLS record header with nonsense inside
        b"\x00" * 4096,
    ],
)
async def test_garbage_instead_of_tls_is_counted(kit: P2PKit, garbage: bytes) -> None:
    with trio.fail_after(TEST_TIMEOUT_S):
        async with honest_pair(kit, []) as (_, a, b):
            stream = await trio.open_tcp_stream(kit.HOST, a.listen_port)
            try:
                await stream.send_all(garbage)
                await read_until_closed(stream)
            finally:
                await stream.aclose()
            await kit.wait_until(lambda: a.counters["handshake_failed"] == 1)
            assert a.counters["tls_failed"] == 1
            await assert_still_linked(a, b)


async def test_tls_1_2_is_refused(kit: P2PKit) -> None:
    old = kit.identity("old")
    with trio.fail_after(TEST_TIMEOUT_S):
        async with honest_pair(kit, [old]) as (a_id, a, b):
            context = make_client_context(old.cert_pem, old.key_pem, [a_id.cert_pem])
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.maximum_version = ssl.TLSVersion.TLSv1_2
            tcp = await trio.open_tcp_stream(kit.HOST, a.listen_port)
            stream = trio.SSLStream(tcp, context, server_hostname=None)
            with pytest.raises(trio.BrokenResourceError):
                await stream.do_handshake()
            await trio.aclose_forcefully(stream)
            await kit.wait_until(lambda: a.counters["tls_failed"] == 1)
            await assert_still_linked(a, b)


def _frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


BAD_FRAMES: dict[str, tuple[bytes, str]] = {
    "oversized_length": (struct.pack(">I", 64 * 1024 + 1), "frame_too_large"),
    "huge_length": (b"\xff\xff\xff\xff", "frame_too_large"),
    "zero_length": (b"\x00\x00\x00\x00", "bad_frame"),
    "not_msgpack": (struct.pack(">I", 1) + b"\xc1", "bad_frame"),
    "two_values": (_frame(msgpack.packb({"t": "x"}) + b"\x00"), "bad_frame"),
    "array_message": (_frame(msgpack.packb(["t", "x"])), "bad_frame"),
    "scalar_message": (_frame(msgpack.packb(42)), "bad_frame"),
    "no_kind": (encode_frame({"x": 1}), "bad_frame"),
    "kind_not_str": (encode_frame({"t": 5}), "bad_frame"),
    "second_hello": (encode_frame({"t": "hello", "version": 1}), "bad_frame"),
}


@pytest.mark.parametrize("case", sorted(BAD_FRAMES))
async def test_bad_frame_after_hello_closes_only_that_link(kit: P2PKit, case: str) -> None:
    data, counter = BAD_FRAMES[case]
    rogue = kit.identity("rogue")
    with trio.fail_after(TEST_TIMEOUT_S):
        async with honest_pair(kit, [rogue], max_frame_bytes=64 * 1024) as (a_id, a, b):
            async with kit.linked_raw_peer(rogue, a_id, a) as raw:
                await raw.stream.send_all(encode_frame({"t": "fine", "n": 1}))
                assert await a.inbox.receive() == (rogue.node_id, {"t": "fine", "n": 1})
                await raw.stream.send_all(data)
                await read_until_closed(raw.stream)
            await kit.wait_until(lambda: rogue.node_id not in a.connected_peers())
            assert a.counters[counter] == 1
            other = "bad_frame" if counter == "frame_too_large" else "frame_too_large"
            assert a.counters[other] == 0
            assert a.statistics()["peers"][rogue.node_id.hex()]["last_close_reason"] == counter
            assert a.statistics()["inbox_depth"] == 0
            await assert_still_linked(a, b)


BAD_HELLOS: dict[str, dict[str, Any]] = {
    "wrong_chain": {"chain_id": "another-chain"},
    "wrong_version": {"version": 2},
    "bool_version": {"version": True},
    "missing_version": {"version": None},
    "claims_another_node": {"node_id": b"\x01" * 32},
    "not_a_hello": {"t": "tx"},
}


@pytest.mark.parametrize("case", sorted(BAD_HELLOS))
async def test_mismatched_hello_is_refused(kit: P2PKit, case: str) -> None:
    rogue = kit.identity("rogue")
    with trio.fail_after(TEST_TIMEOUT_S):
        async with (
            honest_pair(kit, [rogue]) as (a_id, a, b),
            kit.raw_tls_peer(rogue, a.listen_port, [a_id.cert_pem]) as raw,
        ):
            hello = await raw.receive_frame()
            assert hello["chain_id"] == kit.CHAIN_ID
            await raw.send_hello(**BAD_HELLOS[case])
            await read_until_closed(raw.stream)
            await kit.wait_until(lambda: a.counters["hello_mismatch"] == 1)
            assert rogue.node_id not in a.connected_peers()
            assert a.statistics()["peers"][rogue.node_id.hex()]["links_established"] == 0
            await assert_still_linked(a, b)


async def test_silent_peer_is_dropped_after_the_idle_timeout(kit: P2PKit) -> None:
    quiet = kit.identity("quiet")
    with trio.fail_after(TEST_TIMEOUT_S):
        async with honest_pair(kit, [quiet], ping_interval_ms=100, idle_timeout_ms=600) as (
            a_id,
            a,
            b,
        ):
            async with kit.linked_raw_peer(quiet, a_id, a) as raw:
                # a keeps sending pings; the raw peer reads them but never answers.
                data = await read_until_closed(raw.stream)
                pings = raw.decoder.feed(data)
            assert len(pings) >= 2 and all(p == {"t": "ping"} for p in pings)
            assert a.counters["idle_timeout"] == 1
            assert a.statistics()["peers"][quiet.node_id.hex()]["last_close_reason"] == (
                "idle_timeout"
            )
            # a and b ping each other, so their quiet link survives the same timeout.
            await assert_still_linked(a, b)


async def test_peer_that_stops_reading_cannot_grow_our_memory(kit: P2PKit) -> None:
    stuck = kit.identity("stuck")
    attempts = 400
    payload = b"m" * (64 * 1024)
    with trio.fail_after(TEST_TIMEOUT_S):
        async with (
            honest_pair(
                kit,
                [stuck],
                send_queue_frames=8,
                idle_timeout_ms=60_000,
                send_stall_timeout_ms=60_000,
            ) as (a_id, a, b),
            kit.linked_raw_peer(stuck, a_id, a),
        ):
            # The raw peer never reads again. Offer 25 MiB to it.
            tracemalloc.start()
            try:
                tracemalloc.reset_peak()
                accepted = 0
                for i in range(attempts):
                    accepted += a.send_nowait(stuck.node_id, {"t": "blob", "i": i, "p": payload})
                    await trio.sleep(0)  # let the writer run
                _, peak_bytes = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            stats = a.statistics()
            peer_stats = stats["peers"][stuck.node_id.hex()]
            drops = attempts - accepted
            assert drops > attempts // 2  # kernel buffers take a few MiB; the rest is dropped
            assert peer_stats["queue_full_drops"] == drops
            assert stats["counters"]["queue_full_drops"] == drops
            assert peer_stats["queue_depth"] <= 8
            assert peer_stats["queued_bytes"] <= 8 * (len(payload) + 64)
            assert peak_bytes < 8 * 1024 * 1024  # versus 25 MiB offered
            assert stuck.node_id in a.connected_peers()
            await assert_still_linked(a, b)


async def test_peer_that_stops_reading_is_dropped_after_the_stall_timeout(kit: P2PKit) -> None:
    stuck = kit.identity("stuck")
    payload = b"m" * (64 * 1024)
    with trio.fail_after(TEST_TIMEOUT_S):
        async with honest_pair(kit, [stuck], send_queue_frames=8, send_stall_timeout_ms=300) as (
            a_id,
            a,
            b,
        ):
            async with kit.linked_raw_peer(stuck, a_id, a):
                # Bounded: at most 2000 offers, each followed by a short sleep.
                for i in range(2000):
                    if stuck.node_id not in a.connected_peers():
                        break
                    a.send_nowait(stuck.node_id, {"t": "blob", "i": i, "p": payload})
                    await trio.sleep(0.001)
                assert stuck.node_id not in a.connected_peers()
            assert a.counters["send_stall"] == 1
            assert a.statistics()["peers"][stuck.node_id.hex()]["last_close_reason"] == (
                "send_stall"
            )
            await assert_still_linked(a, b)


async def test_newer_link_from_the_same_dialer_replaces_the_older(kit: P2PKit) -> None:
    x = kit.identity("x")
    with trio.fail_after(TEST_TIMEOUT_S):
        async with honest_pair(kit, [x]) as (a_id, a, b):
            async with (
                kit.linked_raw_peer(x, a_id, a) as old,
                # x reconnects while a still holds the old link (as after a half-open drop).
                kit.raw_tls_peer(x, a.listen_port, [a_id.cert_pem]) as new,
            ):
                await new.receive_frame()
                await new.send_hello()
                await kit.wait_until(lambda: a.counters["duplicate_link_closed"] == 1)
                await read_until_closed(old.stream)  # returns only once a has closed it
                assert x.node_id in a.connected_peers()
                assert a.send_nowait(x.node_id, {"t": "to-new"})
                frame = await new.receive_frame()
                while frame == {"t": "ping"}:  # bounded by the test deadline
                    frame = await new.receive_frame()
                assert frame == {"t": "to-new"}
                assert a.statistics()["peers"][x.node_id.hex()]["links_established"] == 2
            await assert_still_linked(a, b)


async def test_a_node_that_reaches_itself_refuses_the_link(kit: P2PKit) -> None:
    a, b = kit.identity("a"), kit.identity("b")
    [port] = await kit.reserve_ports(1)
    with trio.fail_after(TEST_TIMEOUT_S):
        # Misconfigured: b's address is a's own.
        manager = kit.manager(a, [a, b], {b.node_id: (kit.HOST, port)}, port=port)
        async with kit.running(manager):
            await kit.wait_until(lambda: manager.counters["self_connection"] >= 2)
            assert manager.connected_peers() == []
