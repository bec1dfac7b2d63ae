"""A hostile insider, continuously (issue 15 item 4): a peer holding a real validator key
sends well-formed but hostile frames drawn by hypothesis from the message schemas - every
consensus message kind with wrong types, huge or negative numbers, missing or extra fields,
far-future heights and views, floods of view changes and block requests, oversized batches
- then leads a view with invalid proposals, then stops reading so that the honest nodes'
send queues to it fill. The honest three stay up, count and drop, keep committing (no gap
over GAP_BOUND_S) and stay within RSS_GROWTH_BOUND_MB.

Replayable: the frames come from a fixed hypothesis seed (FUZZ_SEED) and a bounded number of
examples (FUZZ_EXAMPLES, from the environment; 300 in CI)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import msgpack
import trio
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from support.hostile import HostileValidator, hostile_validator, junk_block
from support.testnet import Testnet

from consensus import Commit, Prepare, ViewChange, encode_message

GAP_BOUND_S = 12.0
RSS_GROWTH_BOUND_MB = 150
FUZZ_SEED = int(os.environ.get("FUZZ_SEED", "20261201"))
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
HOSTILE = 0  # the hostile peer holds node0's key: it leads view 0
HONEST = (1, 2, 3)

ints = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.sampled_from([0, 1, 2, 3, 2**32, 2**63 - 1, 2**64 - 1, -1]),
)
scalars = st.one_of(
    ints,
    st.binary(max_size=80),
    st.text(max_size=20),
    st.none(),
    st.booleans(),
    st.binary(min_size=32, max_size=32),
    st.binary(min_size=64, max_size=64),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=6), max_leaves=20)


@st.composite
def consensus_wire(draw: st.DrawFn) -> bytes:
    """[version, kind, fields...] of every message kind, shapes right and wrong."""
    version = draw(st.sampled_from([2, 2, 2, 1, 3, -1]))
    kind = draw(st.sampled_from([1, 2, 3, 4, 5, 6, 7, 0, 99]))
    count = draw(st.sampled_from([3, 4, 5, 6, 7, 8, 2, 9]))
    fields = [draw(values) for _ in range(count)]
    return msgpack.packb([version, kind, *fields], use_bin_type=True)  # type: ignore[no-any-return]


@st.composite
def frames(draw: st.DrawFn) -> dict[str, Any]:
    which = draw(st.sampled_from(["c", "c", "c", "txs", "breq", "blks", "head", "junk"]))
    if which == "c":
        return {"t": "c", "m": draw(consensus_wire())}
    if which == "txs":
        return {
            "t": "txs",
            "txs": draw(st.lists(st.one_of(st.binary(max_size=300), values), max_size=600)),
        }
    if which == "breq":
        return {"t": "breq", "from": draw(ints), "max": draw(ints)}
    if which == "blks":
        return {
            "t": "blks",
            "from": draw(ints),
            "items": draw(st.lists(values, max_size=8)),
            "head": draw(ints),
        }
    if which == "head":
        return {"t": "head", "h": draw(ints), "ms": draw(ints)}
    return {"t": draw(st.text(min_size=1, max_size=8)), "x": draw(values)}


def draw_frames() -> list[dict[str, Any]]:
    """FUZZ_EXAMPLES frames from the fixed seed (hypothesis drives the drawing)."""
    out: list[dict[str, Any]] = []

    @seed(FUZZ_SEED)
    @settings(
        max_examples=FUZZ_EXAMPLES,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=False,
    )
    @given(frames())
    def collect(frame: dict[str, Any]) -> None:
        out.append(frame)

    collect()
    return out[:FUZZ_EXAMPLES]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def watch(net: Testnet, stop: trio.Event, gaps: list[float]) -> None:
    last = {i: -1 for i in HONEST}
    changed = {i: time.monotonic() for i in HONEST}
    while not stop.is_set():
        for i in HONEST:
            status = await trio.to_thread.run_sync(net.status, i, 1.0)
            now = time.monotonic()
            if status is not None and status["height"] > last[i]:
                last[i], changed[i] = status["height"], now
            gaps.append(now - changed[i])
        await trio.sleep(0.25)


async def flood(bad: HostileValidator, frames_to_send: list[dict[str, Any]]) -> int:
    sent = 0
    for frame in frames_to_send:
        sent += bad.send_frame(frame)
        await trio.sleep(0.005)
    # Floods of view changes (far-future views) and block requests, well formed and signed.
    for view in range(1, 200):
        unsigned = ViewChange(2**40 + view, None, None, None, None, bad.index, b"", 0)
        signature = bad.key.sign(unsigned.signing_bytes(bad.chain_id))
        vc = ViewChange(2**40 + view, None, None, None, None, bad.index, signature, 0)
        bad.send_to_all(encode_message(vc))
        bad.send_frame({"t": "breq", "from": 1, "max": 10**9})
        await trio.sleep(0.002)
    return sent


async def lead_badly(bad: HostileValidator, net: Testnet, chain_id: str) -> None:
    """As leader of view 0: proposals that reach validation and fail it, votes that conflict."""
    status = await trio.to_thread.run_sync(net.status, 1)
    assert status is not None
    head = status["height"]
    view = status["consensus"]["view"]
    if view % 4 != HOSTILE:
        return  # the view moved on already (it did: the honest ones voted it out)
    payload, digest = junk_block(chain_id, head + 1, 50, view=view, proposer=HOSTILE)
    bad.send_to_all(bad.pre_prepare(view, head + 1, payload, digest))
    other = bytes(32)
    for message in (
        Prepare(view, head + 1, other, HOSTILE, b"\1" * 64),
        Commit(view, head + 1, other, HOSTILE, b"\2" * 64),
    ):
        bad.send_to_all(encode_message(message))


async def test_a_hostile_insider_neither_crashes_nor_stalls_nor_bloats_the_honest_three() -> None:
    frames_to_send = await trio.to_thread.run_sync(draw_frames)
    assert len(frames_to_send) == FUZZ_EXAMPLES
    net = Testnet(validators=4)
    await trio.to_thread.run_sync(net.up)
    gaps: list[float] = []
    try:
        await trio.to_thread.run_sync(net.kill, HOSTILE)
        status = await trio.to_thread.run_sync(net.wait_height, 1, 1, 60)
        chain_id = status["chain_id"]
        pids = {i: net.pid(i) for i in HONEST}
        before = {i: rss_mb(p) for i, p in pids.items() if p}
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            async with hostile_validator(net.dir / f"node{HOSTILE}") as bad:
                with trio.fail_after(30):
                    while len(bad.manager.connected_peers()) < 3:
                        await trio.sleep(0.1)
                nursery.start_soon(watch, net, stop, gaps)
                await lead_badly(bad, net, chain_id)
                await flood(bad, frames_to_send)
                await trio.sleep(3)
            # A peer that stops reading: honest send queues to it fill, they must not care.
            async with hostile_validator(
                net.dir / f"node{HOSTILE}", read=False, inbox_size=1
            ) as deaf:
                with trio.fail_after(30):
                    while len(deaf.manager.connected_peers()) < 3:
                        await trio.sleep(0.1)
                await trio.sleep(12)
            stop.set()
        after = {i: rss_mb(p) for i, p in pids.items() if p}
        statuses = {i: await trio.to_thread.run_sync(net.status, i) for i in HONEST}
    finally:
        await trio.to_thread.run_sync(net.down)
    print(
        f"longest commit gap {max(gaps):.1f} s; RSS {before} -> {after}; "
        f"{FUZZ_EXAMPLES} fuzzed frames (seed {FUZZ_SEED})"
    )
    assert all(s is not None for s in statuses.values()), "an honest node died"
    assert max(gaps) < GAP_BOUND_S, f"a commit gap of {max(gaps):.1f} s"
    for i in HONEST:
        assert after[i] - before[i] < RSS_GROWTH_BOUND_MB, (i, before, after)
        st_ = statuses[i]
        assert st_ is not None
        dropped = st_["syncing"]["counters"]
        counted = sum(v for k, v in dropped.items() if k.startswith(("dropped", "unknown", "bad")))
        assert counted + sum(st_["consensus"]["misbehaviour"].values()) > 0, st_
