"""Per-block costs in one process, without the network: where a block's time goes.

    .venv/bin/python scripts/bench_block.py                    # 20 blocks of 2,000 txs
    .venv/bin/python scripts/bench_block.py --blocks 50 --txs 1000 --accounts 200

Builds a genesis holding the benchmark's accounts, pre-signs the benchmark's transaction mix,
then for each block measures, in this order: admission as `tx_submit_batch` runs it
(`Chain.submit_raw`: decode, mempool checks, signatures in worker threads), decoding the
payload (fresh, as a backup that has not seen the txs would), verifying every signature, the
structural check a backup runs before preparing (`check_block_txs`), executing the block
alone, its state tree update alone (aborted), and the real `Store.commit_block` (check +
execute + state tree + every index + one synced LMDB write transaction). Prints a markdown
table of medians in ms, and per tx in µs.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio
from bench_workload import account_key, presign

from node.daemon.chain import Chain
from node.daemon.mempool import Mempool
from node.daemon.store import Store, TxnReader
from node.ledger.apps import check_block_txs, execute_block
from node.ledger.block import BlockHeader, build_block, decode_block, tx_root_of
from node.ledger.genesis import AccountInfo, Genesis, ValidatorInfo, compute_hash
from node.ledger.tx import Transaction, decode_tx

CHAIN = "bench-block"


def make_genesis(accounts: int, seed: int) -> Genesis:
    infos = tuple(
        AccountInfo(f"a{i}", account_key(seed, i).public_key, ("member",)) for i in range(accounts)
    )
    g = Genesis(
        chain_id=CHAIN,
        genesis_time="2026-01-01T00:00:00Z",
        validators=(ValidatorInfo("v0", b"\x01" * 32, "127.0.0.1:1", ""),),
        accounts=infos,
    )
    return Genesis(**{**vars(g), "hash": compute_hash(g)})


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return (time.perf_counter() - started) * 1000, value


def run(args: argparse.Namespace) -> dict[str, list[float]]:
    per_account = (args.blocks * args.txs + args.accounts - 1) // args.accounts
    signed = presign(
        run_seed=args.seed, chain_id=CHAIN, accounts=args.accounts, per_account=per_account
    )
    order = [signed[a][n] for n in range(per_account) for a in range(args.accounts)]
    raws = [t.raw for t in order]
    tmp = Path(tempfile.mkdtemp(prefix="bench-block"))
    store = Store(tmp / "db", sync=not args.no_sync)
    genesis = make_genesis(args.accounts, args.seed)
    store.init_genesis(genesis)
    mempool = Mempool(
        chain_id=CHAIN, account_of=lambda pk: store.get_state_obj(b"acct/" + pk), max_txs=1 << 20
    )
    chain = Chain(genesis, store, mempool)
    costs: dict[str, list[float]] = {
        k: []
        for k in ("admit", "decode", "verify", "check", "execute", "state_tree", "commit_block")
    }
    try:
        for b in range(args.blocks):
            batch = raws[b * args.txs : (b + 1) * args.txs]
            ms, outcomes = timed(lambda batch=batch: trio.run(chain.submit_raw, batch))
            if any(o.error is not None for o in outcomes):
                raise RuntimeError(f"admission refused: {outcomes[0].error}")
            costs["admit"].append(ms)
            txs = [decode_tx(r) for r in batch]
            mempool.remove_committed(txs)
            head = store.head
            header = BlockHeader(
                version=1,
                chain_id=CHAIN,
                height=head.height + 1,
                prev_hash=head.block_hash,
                view=0,
                proposer=0,
                timestamp_ms=head.timestamp_ms + 1000,
                tx_root=tx_root_of(txs),
                tx_count=len(txs),
                state_root=head.state_root,
                results_root=head.results_root,
            )
            block = build_block(header, txs)
            ms, decoded = timed(
                lambda block=block: decode_block(
                    block.payload, max_block_bytes=64 << 20, max_tx_bytes=16384
                )
            )
            costs["decode"].append(ms)
            ms, oks = timed(lambda decoded=decoded: [t.signature_ok() for t in decoded.txs])
            if not all(oks):
                raise RuntimeError("a pre-signed signature does not verify")
            costs["verify"].append(ms)

            def yes(tx: Transaction) -> bool:
                return True

            with store.env.begin() as txn:
                reader = TxnReader(txn, store.db["state"])
                txindex = store.db["txindex"]
                ms, _ = timed(
                    lambda txn=txn, reader=reader, txindex=txindex, decoded=decoded: (
                        check_block_txs(
                            decoded,
                            reader,
                            chain_id=CHAIN,
                            signature_ok=yes,
                            tx_known=lambda i: txn.get(i, db=txindex) is not None,
                        )
                    )
                )
                costs["check"].append(ms)
                ms, outcome = timed(
                    lambda reader=reader, decoded=decoded: execute_block(decoded, reader)
                )
                costs["execute"].append(ms)
            # The state tree's share: the same update in a write transaction that is aborted.
            with store.env.begin(write=True) as txn:
                ms, _ = timed(
                    lambda txn=txn, outcome=outcome: store.tree.update(
                        txn, store.head.state_root, outcome.writes
                    )
                )
                costs["state_tree"].append(ms)
                txn.abort()
            ms, _ = timed(
                lambda decoded=decoded: store.commit_block(
                    decoded, b"cert", chain_id=CHAIN, signature_ok=yes
                )
            )
            costs["commit_block"].append(ms)
    finally:
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return costs


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--blocks", type=int, default=20)
    p.add_argument("--txs", type=int, default=2000)
    p.add_argument("--accounts", type=int, default=200)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-sync", action="store_true")
    args = p.parse_args(argv)
    costs = run(args)
    print(f"{args.blocks} blocks of {args.txs} txs, {args.accounts} accounts (medians)\n")
    print("| step | ms per block | µs per tx |")
    print("|---|---|---|")
    for name, values in costs.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.1f} | {1000 * median / args.txs:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
