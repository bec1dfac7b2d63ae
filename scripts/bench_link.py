"""Throughput of one loopback TLS 1.3 link between two PeerManagers.

    .venv/bin/python scripts/bench_link.py              # a table of frames/s and MB/s per size
    .venv/bin/python scripts/bench_link.py --quick      # smaller runs
    .venv/bin/python scripts/bench_link.py --compare    # also with write batching off
    .venv/bin/python scripts/bench_link.py --ping-pong 5000   # one frame at a time

The sender queues as fast as the link takes frames (send_nowait until the queue is full,
then one waiting send); the receiver drains its inbox. Time runs from the first send to
the last message received. "MB/s" counts frame bytes on the wire before TLS overhead
(1 MB = 10**6 bytes); "frames/write" is how many frames the writer coalesced per socket
write. --ping-pong N sends one small frame and waits for the answer, N times: the CPU of
one frame sent and received on its own, as consensus votes are at light load (both ends run
in this one process, so the CPU is that of both). Numbers depend on the machine; this is a
measurement, never a test.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from p2p.identity import make_certificate, node_id_of, private_key_pem
from p2p.peers import PeerManager

HOST = "127.0.0.1"
CHAIN_ID = "bench"
# (payload bytes, messages) pairs: each run moves a few tens of MB at most.
SIZES = [(64, 200_000), (1024, 100_000), (16 * 1024, 20_000), (256 * 1024, 1_000), (1 << 20, 250)]
RUN_TIMEOUT_S = 120


@dataclass
class Result:
    payload_bytes: int
    messages: int
    seconds: float
    wire_bytes: int
    socket_writes: int
    batched: bool

    def row(self) -> str:
        rate = self.messages / self.seconds
        megabytes = self.wire_bytes / self.seconds / 1e6
        per_write = self.messages / max(self.socket_writes, 1)
        mode = "on " if self.batched else "off"
        return (
            f"{self.payload_bytes:>9} {mode} {self.messages:>8} {self.seconds:>7.2f} "
            f"{rate:>11.0f} {megabytes:>8.1f} {per_write:>12.1f}"
        )


def _manager(
    key: Ed25519PrivateKey,
    name: str,
    allowed: dict[bytes, bytes],
    dial: dict[bytes, tuple[str, int]],
    batched: bool,
) -> PeerManager:
    return PeerManager(
        node_id=node_id_of(key),
        cert_pem=make_certificate(key, name),
        key_pem=private_key_pem(key),
        listen_host=HOST,
        listen_port=0,
        chain_id=CHAIN_ID,
        allowed=allowed,
        dial=dial,
        # 1 byte means "never put two frames in one write": the unbatched baseline.
        write_batch_bytes=256 * 1024 if batched else 1,
        max_frame_bytes=2 << 20,
    )


async def _linked_pair(nursery: trio.Nursery, batched: bool) -> tuple[PeerManager, PeerManager]:
    """A dialling and a listening PeerManager, running in `nursery`, once linked."""
    keys = [Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()]
    names = ["dialer", "listener"]
    # Each peer is pinned to the certificate it presents: the same name on both sides.
    allowed = {
        node_id_of(key): make_certificate(key, name) for key, name in zip(keys, names, strict=True)
    }
    listener = _manager(keys[1], names[1], allowed, {}, batched)
    await nursery.start(listener.run)
    dial = {listener.node_id: (HOST, listener.listen_port)}
    dialer = _manager(keys[0], names[0], allowed, dial, batched)
    await nursery.start(dialer.run)
    while listener.node_id not in dialer.connected_peers():
        await trio.sleep(0.01)
    return dialer, listener


async def _run_one(payload_bytes: int, messages: int, batched: bool) -> Result:
    payload = b"x" * payload_bytes
    with trio.fail_after(RUN_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            sender, receiver = await _linked_pair(nursery, batched)
            before = sender.statistics()["peers"][receiver.node_id.hex()]
            done = trio.Event()
            started = trio.current_time()

            async def drain() -> None:
                for _ in range(messages):
                    await receiver.inbox.receive()
                done.set()

            nursery.start_soon(drain)
            for i in range(messages):
                message = {"t": "bench", "i": i, "p": payload}
                # Fast path first; when the queue is full, wait for room.
                queued = sender.send_nowait(receiver.node_id, message) or await sender.send(
                    receiver.node_id, message
                )
                if not queued:
                    raise RuntimeError("link lost during the benchmark")
            await done.wait()
            elapsed = trio.current_time() - started
            after = sender.statistics()["peers"][receiver.node_id.hex()]
            nursery.cancel_scope.cancel()
    return Result(
        payload_bytes=payload_bytes,
        messages=messages,
        seconds=elapsed,
        wire_bytes=after["bytes_out"] - before["bytes_out"],
        socket_writes=after["socket_writes"] - before["socket_writes"],
        batched=batched,
    )


async def _ping_pong(rounds: int, payload_bytes: int = 200) -> None:
    """One frame each way per round, each waiting for the other: no batching possible."""
    payload = b"x" * payload_bytes
    with trio.fail_after(RUN_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            asker, answerer = await _linked_pair(nursery, batched=True)

            async def answer() -> None:
                while True:
                    peer, message = await answerer.inbox.receive()
                    await answerer.send(peer, {"t": "bench", "i": message["i"], "p": payload})

            nursery.start_soon(answer)
            cpu_started, wall_started = time.process_time(), time.perf_counter()
            for i in range(rounds):
                await asker.send(answerer.node_id, {"t": "bench", "i": i, "p": payload})
                _, reply = await asker.inbox.receive()
                if reply["i"] != i:
                    raise RuntimeError("answers out of order")
            cpu_s = time.process_time() - cpu_started
            wall_s = time.perf_counter() - wall_started
            nursery.cancel_scope.cancel()
    frames = 2 * rounds
    print(
        f"ping-pong, {payload_bytes}-byte payloads, {rounds} round trips: "
        f"{1e6 * cpu_s / frames:.0f} µs of CPU per frame (sent and received, both ends), "
        f"{1e6 * wall_s / rounds:.0f} µs wall per round trip"
    )


async def _main(quick: bool, compare: bool) -> None:
    print(
        f"{'payload':>9} bat {'messages':>8} {'seconds':>7} {'frames/s':>11} "
        f"{'MB/s':>8} {'frames/write':>12}"
    )
    for payload_bytes, messages in SIZES:
        count = max(messages // 10, 50) if quick else messages
        for batched in (True, False) if compare else (True,):
            print((await _run_one(payload_bytes, count, batched)).row(), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a tenth of the messages")
    parser.add_argument(
        "--compare", action="store_true", help="also run each size with write batching off"
    )
    parser.add_argument(
        "--ping-pong", type=int, default=0, metavar="N", help="N round trips of one frame"
    )
    args = parser.parse_args(argv)
    if args.ping_pong:
        trio.run(_ping_pong, args.ping_pong)
    else:
        trio.run(_main, args.quick, args.compare)
    return 0


if __name__ == "__main__":
    sys.exit(main())
