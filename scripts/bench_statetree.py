"""Measure the state tree: hashes, nodes and wall time per write for block-sized batches.

    .venv/bin/python scripts/bench_statetree.py                      # 10k, 100k, 1M keys
    .venv/bin/python scripts/bench_statetree.py --sizes 10000 --batches 3

For each tree size the script loads that many random keys into a fresh LMDB environment in
a temporary directory (removed at the end), then applies --batches batches of --batch
changes each (by default 60% overwrites of existing keys, 40% new keys, the shape of a
ledger's writes), each batch in its own durable write transaction as the store does it.
It prints a markdown table: update time (the tree's own work), commit time (LMDB writing
and syncing the dirtied pages), hashes and nodes per write, and the cost of one proof.
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import lmdb

from node.ledger.statetree import EMPTY_ROOT, StateTree, verify_state_proof

LOAD_CHUNK = 100_000
PROOF_SAMPLES = 200


@dataclass
class Row:
    keys: int
    batch: int
    load_s: float
    update_ms: float
    commit_ms: float
    hashes_per_write: float
    reads_per_write: float
    written_per_write: float
    prove_us: float
    proof_siblings: float
    db_mib: float


def random_key(rng: random.Random) -> bytes:
    return b"acct/" + rng.randbytes(12)


def load(env: lmdb.Environment, tree: StateTree, keys: list[bytes], rng: random.Random) -> bytes:
    root = EMPTY_ROOT
    for start in range(0, len(keys), LOAD_CHUNK):
        with env.begin(write=True) as txn:
            chunk = {k: rng.randbytes(32) for k in keys[start : start + LOAD_CHUNK]}
            root = tree.update(txn, root, chunk)
    return root


def run_batches(
    env: lmdb.Environment,
    tree: StateTree,
    root: bytes,
    keys: list[bytes],
    batch: int,
    batches: int,
    rng: random.Random,
) -> tuple[bytes, list[float], list[float], int, int, int]:
    update_ms, commit_ms, hashes, reads, written = [], [], 0, 0, 0
    for _ in range(batches):
        changes: dict[bytes, bytes | None] = {}
        overwrites = int(batch * 0.6)
        for key in rng.sample(keys, overwrites):
            changes[key] = rng.randbytes(32)
        new_keys = [random_key(rng) for _ in range(batch - overwrites)]
        changes.update({k: rng.randbytes(32) for k in new_keys})
        keys.extend(new_keys)
        txn = env.begin(write=True)
        t0 = time.perf_counter()
        root, stats = tree.update_with_stats(txn, root, changes)
        t1 = time.perf_counter()
        txn.commit()
        t2 = time.perf_counter()
        update_ms.append((t1 - t0) * 1000)
        commit_ms.append((t2 - t1) * 1000)
        hashes += stats.hashes
        reads += stats.nodes_read
        written += stats.nodes_written
    return root, update_ms, commit_ms, hashes, reads, written


def measure_proofs(
    env: lmdb.Environment, tree: StateTree, root: bytes, keys: list[bytes], rng: random.Random
) -> tuple[float, float]:
    sample = rng.sample(keys, PROOF_SAMPLES)
    with env.begin() as txn:
        t0 = time.perf_counter()
        proofs = [tree.prove(txn, root, k) for k in sample]
        prove_us = (time.perf_counter() - t0) / len(sample) * 1e6
        # Sanity: a benchmark of a wrong tree measures nothing.
        for key, proof in zip(sample[:20], proofs, strict=False):
            value_hash = tree.get_value_hash(txn, root, key)
            if value_hash is None or proof.other_leaf is not None:
                raise RuntimeError("benchmark tree lost a key")
        absent = tree.prove(txn, root, b"no such key")
    if not verify_state_proof(root, b"no such key", None, absent):
        raise RuntimeError("absence proof failed to verify")
    siblings = statistics.mean(sum(1 for s in p.siblings if s != bytes(32)) for p in proofs)
    return prove_us, siblings


def bench_size(
    size: int, batch_sizes: list[int], batches: int, workdir: Path, seed: int
) -> list[Row]:
    rng = random.Random(seed)
    path = workdir / f"state-{size}"
    env = lmdb.open(str(path), map_size=16 << 30, max_dbs=4)
    try:
        tree = StateTree(env.open_db(b"state_nodes"))
        keys = [random_key(rng) for _ in range(size)]
        started = time.perf_counter()
        root = load(env, tree, keys, rng)
        load_s = time.perf_counter() - started
        rows = []
        for batch in batch_sizes:
            root, update_ms, commit_ms, hashes, reads, written = run_batches(
                env, tree, root, keys, batch, batches, rng
            )
            prove_us, siblings = measure_proofs(env, tree, root, keys, rng)
            writes = batch * batches
            rows.append(
                Row(
                    keys=size,
                    batch=batch,
                    load_s=load_s,
                    update_ms=statistics.median(update_ms),
                    commit_ms=statistics.median(commit_ms),
                    hashes_per_write=hashes / writes,
                    reads_per_write=reads / writes,
                    written_per_write=written / writes,
                    prove_us=prove_us,
                    proof_siblings=siblings,
                    db_mib=sum(f.stat().st_size for f in path.iterdir()) / (1 << 20),
                )
            )
            print(f"done: {size:,} keys, batches of {batch:,}", file=sys.stderr)
        return rows
    finally:
        env.close()
        shutil.rmtree(path, ignore_errors=True)


def print_table(rows: list[Row], command: str) -> None:
    print(f"\n`{command}` (Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)\n")
    print(
        "| keys | batch | update ms | commit ms | µs/write | hashes/write "
        "| nodes read/write | nodes written/write | prove µs | proof siblings | db MiB "
        "| load s |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        per_write_us = (r.update_ms + r.commit_ms) * 1000 / r.batch
        print(
            f"| {r.keys:,} | {r.batch:,} | {r.update_ms:.1f} | {r.commit_ms:.1f} "
            f"| {per_write_us:.1f} | {r.hashes_per_write:.1f} | {r.reads_per_write:.1f} "
            f"| {r.written_per_write:.1f} | {r.prove_us:.0f} | {r.proof_siblings:.1f} "
            f"| {r.db_mib:.0f} | {r.load_s:.1f} |"
        )
    print(
        "\nupdate/commit: median over the batches; µs/write = (update + commit) / batch; "
        "proof siblings: non-zero ones (the rest are implied)."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="tree sizes, keys")
    parser.add_argument("--batch", default="1000,4000", help="changes per batch (list)")
    parser.add_argument("--batches", type=int, default=5, help="batches per size, 1..100")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", default=None, help="where to put the temporary databases")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    batch_sizes = [int(b) for b in args.batch.split(",")]
    if not 1 <= args.batches <= 100 or not all(1 <= s <= 5_000_000 for s in sizes):
        parser.error("--batches must be 1..100 and sizes 1..5,000,000")
    if not all(1 <= b <= 100_000 for b in batch_sizes):
        parser.error("batch sizes must be 1..100,000")
    command = shlex.join(["python", "scripts/bench_statetree.py", *(argv or sys.argv[1:])])
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-statetree-", dir=args.dir) as workdir:
        for size in sizes:
            rows += bench_size(size, batch_sizes, args.batches, Path(workdir), args.seed)
    print_table(rows, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
