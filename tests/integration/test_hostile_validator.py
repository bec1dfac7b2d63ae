"""One faulty validator against three honest ones, on real processes (issue: live bugs).

node3 of a 4-validator testnet is stopped and replaced by a hostile peer holding its real
key and TLS identity (tests/support/hostile.py). With n = 4 every honest vote is needed, so
stalling one honest node stalls the chain. The peer sends, in turn:
  1. ~8 MiB pre-prepares for the next height, validly signed, though it does not lead the
     view (each a fresh payload of 40,000 junk-signed txs);
  2. validly signed ~8 MiB pre-prepares for view 2**64 - 1, which it does lead;
  3. votes with bad signatures that claim to come from validators 0, 1 and 2.
The honest three must keep committing (no gap over GAP_BOUND_S), their memory must not
grow by more than RSS_GROWTH_BOUND_MB, and the bad signatures must be blamed on node3's link,
never on the validators they name."""

from __future__ import annotations

import time
from pathlib import Path

import trio
from support.hostile import hostile_validator, junk_block
from support.testnet import Testnet

from consensus import Commit, Prepare, encode_message
from node.ledger import encoding

GAP_BOUND_S = 10.0  # blocks come every 2 s on an idle chain; the stall was 23-25 s
RSS_GROWTH_BOUND_MB = 120  # the far-future buffer held 260-270 MB
HONEST = (0, 1, 2)
JUNK_TXS = 40_000  # ~7.9 MiB: just inside max_block_bytes, so it is decoded, not refused


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def variants(chain_id: str, height: int, view: int, count: int) -> list[tuple[bytes, bytes]]:
    """`count` distinct junk payloads (the txs are shared; the headers differ), so that no
    cache can make a repeat cheap."""
    base, _ = junk_block(chain_id, height, JUNK_TXS, view=view, proposer=3)
    header, raws = encoding.unpack_fast(base)
    out = []
    from node.ledger.block import BlockHeader

    for i in range(count):
        h = BlockHeader(**{**header, "timestamp_ms": 1 + i})
        out.append((encoding.pack([h.to_obj(), raws]), h.hash()))
    return out


async def test_a_faulty_validator_neither_stalls_nor_bloats_the_honest_three() -> None:
    net = Testnet(validators=4)
    await trio.to_thread.run_sync(net.up)
    try:
        await trio.to_thread.run_sync(net.kill, 3)
        status = await trio.to_thread.run_sync(net.wait_height, 0, 2)
        chain_id = status["chain_id"]
        pids = {i: net.pid(i) for i in HONEST}
        assert all(pids.values())
        rss_before = {i: rss_mb(pid) for i, pid in pids.items() if pid}
        gaps: list[float] = []
        async with hostile_validator(net.dir / "node3") as bad:
            with trio.fail_after(30):
                while len(bad.manager.connected_peers()) < 3:
                    await trio.sleep(0.1)
            stop = trio.Event()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch_commits, net, stop, gaps)
                await attack(net, bad, chain_id)
                stop.set()
            rss_after = {i: rss_mb(pid) for i, pid in pids.items() if pid}
        logs = {i: net.log(i) for i in HONEST}
        statuses = {i: net.status(i) for i in HONEST}
    finally:
        await trio.to_thread.run_sync(net.down)
    print(f"longest commit gap {max(gaps):.1f} s; RSS before {rss_before} after {rss_after}")
    assert max(gaps) < GAP_BOUND_S, f"a commit gap of {max(gaps):.1f} s"
    for i in HONEST:
        assert rss_after[i] - rss_before[i] < RSS_GROWTH_BOUND_MB, (i, rss_before, rss_after)
        for claimed in HONEST:
            assert f"validator {claimed} misbehaved (bad-signature)" not in logs[i]
        assert "peer node3 (link) sent a bad consensus message (bad-signature)" in logs[i]
        st = statuses[i]
        assert st is not None
        links = st["consensus"]["misbehaving_links"]
        assert links.get("node3:bad-signature", 0) >= 1, links


async def watch_commits(net: Testnet, stop: trio.Event, gaps: list[float]) -> None:
    """The longest time any honest node went without a new height, while the attack ran."""
    last_height = {i: -1 for i in HONEST}
    last_change = {i: time.monotonic() for i in HONEST}
    while not stop.is_set():
        for i in HONEST:
            st = await trio.to_thread.run_sync(net.status, i, 1.0)
            now = time.monotonic()
            if st is not None and st["height"] > last_height[i]:
                last_height[i] = st["height"]
                last_change[i] = now
            gaps.append(now - last_change[i])
        await trio.sleep(0.2)


async def attack(net: Testnet, bad, chain_id: str) -> None:  # type: ignore[no-untyped-def]
    st = await trio.to_thread.run_sync(net.status, 0)
    assert st is not None
    head, view = st["height"], st["consensus"]["view"]
    # 1. Not the leader of this view: must be refused before its payload costs anything.
    # Aimed at the next height as the chain moves, a fresh payload each time (no cache helps).
    frames: dict[int, list[bytes]] = {}
    sent = 0
    with trio.move_on_after(12):
        for _ in range(10_000):
            st = await trio.to_thread.run_sync(net.status, 1, 1.0)
            if st is not None:
                head, view = st["height"], st["consensus"]["view"]
            if head + 1 not in frames:
                built = await trio.to_thread.run_sync(variants, chain_id, head + 1, view, 12)
                frames = {head + 1: [bad.pre_prepare(view, head + 1, p, d) for p, d in built]}
            for _ in range(3):
                bad.send_to_all(frames[head + 1][sent % 12])
                sent += 1
                await trio.sleep(0.1)
    # 2. The leader of view 2**64 - 1 (3 = (2**64 - 1) % 4): far-future views are refused.
    far = 2**64 - 1
    st = await trio.to_thread.run_sync(net.status, 0)
    head = st["height"] if st else head
    frames = [
        bad.pre_prepare(far, head + 1 + i, payload, digest)
        for i, (payload, digest) in enumerate(
            await trio.to_thread.run_sync(variants, chain_id, head + 1, far, 16)
        )
    ]
    for frame in frames:
        bad.send_to_all(frame)
        await trio.sleep(0.3)
    # 3. Votes that claim to come from the honest validators, with junk signatures.
    for _ in range(5):
        for claimed in HONEST:
            digest = bytes([claimed]) * 32
            bad.send_to_all(encode_message(Prepare(view, head + 2, digest, claimed, b"x" * 64)))
            bad.send_to_all(encode_message(Commit(view, head + 2, digest, claimed, b"y" * 64)))
        await trio.sleep(0.5)
    await trio.sleep(3)
