"""Membership changes on a live chain, on real processes (issue 10's acceptance test).

A 4-validator testnet with one full node, under a steady load, with node2 stopped before
the first change (so that the addition happens with an old validator down):
  1. adds node4 (running as a full node, it reports ready by itself once caught up);
  2. removes node1;
  3. rotates node3's key (node_key.next, switched at its epoch).
Commits continue throughout; node2, restarted after the last change, syncs across all
three; every node agrees on every block hash and holds every committed tx; receipts made
before and after the changes verify offline against the original genesis."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from support.load import Load
from support.testnet import Testnet, chain_cmd

EPOCH_BOUND_S = 90.0  # propose + 2 votes + the candidate's report + two blocks, with slack
SYNC_BOUND_S = 90.0
GOVERNORS = ("manufacturer", "shipper", "retailer")  # 3 of the 4 governors pass a change


def cli(net: Testnet, *args: str, account: str = "manufacturer", node: int = 0) -> Any:
    proc = chain_cmd(
        *args,
        "--socket",
        str(net.socket(node)),
        "--key",
        str(net.dir / "accounts" / f"{account}.key"),
        "--json",
    )
    return json.loads(proc.stdout)


def pass_change(net: Testnet, *propose: str) -> int:
    result = cli(net, "gov", "propose", *propose)
    assert result["status"] == "committed", result
    proposal = result["result"]["data"]["proposal"]
    for governor in GOVERNORS[1:]:
        vote = cli(net, "gov", "vote", str(proposal), "--approve", account=governor)
        assert vote["result"]["ok"], vote
    return int(proposal)


def epoch_of(net: Testnet, node: int) -> dict[str, Any]:
    with net.rpc(node) as rpc:
        return dict(rpc.call("epochs_list"))  # type: ignore[arg-type]


def wait_epoch(net: Testnet, node: int, epoch: int, bound_s: float = EPOCH_BOUND_S) -> float:
    started = time.monotonic()
    deadline = started + bound_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = epoch_of(net, node)
            if last["current"]["epoch"] >= epoch:
                return time.monotonic() - started
        except Exception as exc:  # a node restarting
            last = repr(exc)
        time.sleep(0.3)
    with net.rpc(0) as rpc:
        proposals = rpc.call("gov_list")
    raise AssertionError(f"node{node} not in epoch {epoch} after {bound_s}s: {last}; {proposals}")


def height(net: Testnet, node: int) -> int:
    st = net.status(node)
    return -1 if st is None else int(st["height"])


def receipt(net: Testnet, tx_id: str, path: Path) -> Path:
    with net.rpc(0) as rpc:
        doc = rpc.call("receipt_get", {"tx_id": tx_id})
    path.write_text(json.dumps(doc))
    return path


def test_add_remove_rotate_on_a_live_chain(tmp_path: Path) -> None:
    with Testnet(validators=4, full_nodes=1) as net:
        genesis = net.dir / "node0" / "genesis.toml"
        before = net.wallet("inspector").send("notary.anchor", {"digest": b"\x01" * 32})
        assert before["status"] == "committed"
        net.kill(2)  # an old validator down during the addition
        with Load(net, ["admin"], nodes=[0], seed=7) as load:
            # 1. node4 joins: proposal, votes, then its own readiness report.
            node4 = net.status(4)
            assert node4 is not None
            manifest = json.loads((net.dir / "testnet.json").read_text())
            address = manifest["nodes"][4]["address"]
            pass_change(
                net,
                "add-validator",
                "--name",
                "node4",
                "--public-key",
                node4["public_key"],
                "--address",
                address,
                "--certificate",
                str(net.dir / "node4" / "node_cert.pem"),
            )
            took_add = wait_epoch(net, 0, 1)
            made = load.wait_for_more(5, 60)
            assert made >= 5, "no commits after the addition"
            assert len(epoch_of(net, 0)["current"]["validators"]) == 5
            status4 = net.status(4)
            assert status4 is not None and status4["consensus"]["validator_index"] == 4
            # 2. node1 leaves.
            pass_change(net, "remove-validator", "node1")
            took_remove = wait_epoch(net, 0, 2)
            assert load.wait_for_more(5, 60) >= 5, "no commits after the removal"
            # 3. node3 rotates its node key.
            new_key = json.loads(
                chain_cmd("gov", "new-node-key", "--home", str(net.dir / "node3"), "--json").stdout
            )
            pass_change(
                net,
                "update-validator",
                "node3",
                "--public-key",
                new_key["public_key"],
                "--certificate",
                new_key["certificate"],
            )
            took_rotate = wait_epoch(net, 0, 3)
            assert load.wait_for_more(5, 60) >= 5, "no commits after the rotation"
            status3 = net.status(3)
            assert status3 is not None and status3["public_key"] == new_key["public_key"]
            # node2, stopped before the first change, syncs across all three.
            net.start(2)
            started = time.monotonic()
            target = height(net, 0)
            net.wait_height(2, target, timeout_s=SYNC_BOUND_S)
            took_sync = time.monotonic() - started
            wait_epoch(net, 2, 3, bound_s=30)
            after = net.wallet("inspector", node=2).send(
                "notary.anchor", {"digest": b"\x02" * 32}, timeout_ms=30_000
            )
            assert after["status"] == "committed", after
        committed = dict(load.committed)
        live = [0, 2, 3, 4]
        target = max(height(net, i) for i in live)
        for i in live:
            net.wait_height(i, target, timeout_s=60)
        hashes = {}
        for i in live:
            hashes[i] = []
            with net.rpc(i) as rpc:
                for start in range(1, target + 1, 100):
                    heights = range(start, min(target, start + 99) + 1)
                    answers = rpc.batch([("block_get", {"height": h}) for h in heights])
                    hashes[i] += [a["hash"] for a in answers]  # type: ignore[index]
        assert all(hashes[i] == hashes[0] for i in live), "nodes disagree on a block hash"
        for i in live:
            with net.rpc(i) as rpc:
                ids = sorted(committed)
                for start in range(0, len(ids), 100):
                    calls = [("tx_get", {"tx_id": t}) for t in ids[start : start + 100]]
                    lost = [a for a in rpc.batch(calls) if a["status"] != "committed"]  # type: ignore[index]
                    assert not lost, f"node{i} lacks committed txs: {lost[:2]}"
        for name, tx in (("before", before), ("after", after)):
            path = receipt(net, tx["tx_id"], tmp_path / f"{name}.json")
            verified = chain_cmd("verify", str(path), "--genesis", str(genesis), "--json")
            assert json.loads(verified.stdout)["ok"] is True, verified.stdout
        print(
            f"epoch changes took add {took_add:.1f} s, remove {took_remove:.1f} s, rotate "
            f"{took_rotate:.1f} s; node2 synced across them in {took_sync:.1f} s; "
            f"{len(committed)} load txs committed; height {target}"
        )
