"""Backup and restore (issue 11, item 4): a backup taken under load, from a running node, is
one consistent height; a validator that lost its data dir is restored from it, rejoins,
catches up and agrees with the others; `chain check` passes on it and finds damage."""

from __future__ import annotations

import json
import shutil
import struct
import tempfile
from pathlib import Path

import lmdb
from support.load import Load
from support.testnet import Testnet, chain_cmd, free_base_port

from node.daemon.store import DB_NAMES

CATCH_UP_S = 60.0


def _json(*args: str) -> dict:
    return json.loads(chain_cmd(*args, "--json").stdout)


def test_validator_restored_from_a_backup_under_load_rejoins_and_agrees() -> None:
    with Testnet(validators=4) as net:
        with Load(net, ["manufacturer", "shipper"], nodes=[0, 1], seed=11, pause_s=0.0) as load:
            assert load.wait_for_more(40, 60) >= 40, load.errors
            backup = net.dir.parent / "node3.backup"
            made = _json("backup", "--home", str(net.home(3)), "-o", str(backup))
            assert made["height"] > 0 and backup.stat().st_size > made["data_bytes"]
            assert not list(backup.parent.glob(".backup-*"))  # its scratch copy is gone
            assert load.wait_for_more(60, 60) >= 60  # the chain moves on past the backup
            net.kill(3)  # and then the validator's disk is lost
            shutil.rmtree(net.data_dir(3))
            restored = _json("restore", str(backup), "--home", str(net.home(3)))
            assert restored["height"] == made["height"]
            assert restored["vote_guard"] == "backup" and restored["previous_data_dir"] is None
            net.start(3)
            target = net.status(0)["height"] + 2
            status = net.wait_height(3, target, timeout_s=CATCH_UP_S)
            assert status["height"] >= target
            assert load.wait_for_more(20, 60) >= 20  # and commits go on with it
        heights = [net.status(i)["height"] for i in range(4)]
        common = min(heights)
        hashes = set()
        for i in range(4):
            with net.rpc(i) as rpc:
                hashes.add(rpc.call("block_get", {"height": common})["hash"])
        assert len(hashes) == 1, f"nodes disagree at height {common}"
        net.stop_all()
        for i in (0, 3):
            report = _json("check", "--home", str(net.home(i)), "--replay")
            assert report["ok"] and report["replayed"], report["problems"]


def test_restore_keeps_the_newer_vote_guard_and_check_finds_damage() -> None:
    root = Path(tempfile.mkdtemp(prefix="bk", dir="/tmp"))
    try:
        with Testnet(validators=4) as net:
            net.wait_height(0, 3)
            backup = root / "n1.backup"
            chain_cmd("backup", "--home", str(net.home(1)), "-o", str(backup))
            net.wait_height(1, net.status(1)["height"] + 3)
            refused = chain_cmd("restore", str(backup), "--home", str(net.home(1)), check=False)
            assert refused.returncode == 1 and "holds this node home" in refused.stderr
            net.stop_all()
            restored = _json("restore", str(backup), "--home", str(net.home(1)))
            assert restored["vote_guard"] == "kept"  # the replaced store's, newer
            assert Path(restored["previous_data_dir"]).is_dir()  # kept aside, not deleted
            assert _json("check", "--home", str(net.home(1)))["ok"]
            other = net.home(2)
            home = net.home(0)
            _damage_state(home)
            report = chain_cmd("check", "--home", str(home), "--json", check=False)
            assert report.returncode == 1
            problems = json.loads(report.stdout)["problems"]
            assert any("state is damaged" in p for p in problems), problems
            _drop_certificate(other, 2)
            problems = json.loads(
                chain_cmd("check", "--home", str(other), "--json", check=False).stdout
            )["problems"]
            assert any("block 2: certificate missing" in p for p in problems), problems
            wrong = chain_cmd(
                "restore", str(backup), "--home", str(_foreign_home(root)), check=False
            )
            assert wrong.returncode == 1 and "not of this home's genesis" in wrong.stderr
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _env(home: Path) -> lmdb.Environment:
    return lmdb.open(str(home / "data"), max_dbs=len(DB_NAMES) + 2, map_size=1 << 30)


def _damage_state(home: Path) -> None:
    env = _env(home)
    try:
        db = env.open_db(b"state")
        with env.begin(write=True) as txn:
            key, value = next(iter(txn.cursor(db=db)))
            txn.put(key, bytes(value) + b"x", db=db)
    finally:
        env.close()


def _drop_certificate(home: Path, height: int) -> None:
    env = _env(home)
    try:
        db = env.open_db(b"certs")
        with env.begin(write=True) as txn:
            assert txn.delete(struct.pack(">Q", height), db=db)
    finally:
        env.close()


def _foreign_home(root: Path) -> Path:
    home = root / "solo"
    chain_cmd("init", "--single", "--home", str(home), "--listen", f"127.0.0.1:{free_base_port(1)}")
    return home
