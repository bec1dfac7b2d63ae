"""A consortium across hosts (issue 11, item 3): one network namespace per organisation, each
with its own IP and DNS name on a bridge this test creates.

The ceremony runs per organisation, on its own host and into its own home: `chain init`,
`chain genesis member`; the member files travel to a coordinator (org1), who runs
`chain genesis build`; the genesis travels back and each organisation runs
`chain genesis install`, which must print the same hash everywhere. No organisation's
private key may exist outside its own home. Then 4 validators and 1 full node start, each in
its namespace, listening on 0.0.0.0:26650 and advertised by DNS name; transactions commit;
the leader's cable is pulled and plugged back; every node ends on the same chain.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.netns import Hosts, NetnsUnavailable, check_available

from node.client.wallet import Wallet
from node.ledger import crypto
from node.ledger.genesis import load_genesis
from node.rpc.client import RpcClient

VALIDATORS = ["org1", "org2", "org3", "org4"]
FULL_NODE = "org5"
ORGS = [*VALIDATORS, FULL_NODE]
PORT = 26650  # the same in every namespace: they are separate network stacks
START_S = 60.0
CUT_S = 12.0  # the leader stays unplugged for three view timeouts
CATCH_UP_S = 90.0
FLAPS = 8  # link toggles of the flapping scenario, FLAP_S apart
FLAP_S = 1.5

try:
    check_available()
    UNAVAILABLE = ""
except NetnsUnavailable as exc:
    UNAVAILABLE = str(exc)

pytestmark = pytest.mark.skipif(bool(UNAVAILABLE), reason=f"network namespaces: {UNAVAILABLE}")


@pytest.fixture
def world() -> Iterator[tuple[Hosts, Path]]:
    root = Path(tempfile.mkdtemp(prefix="hosts", dir="/tmp"))
    hosts = Hosts(ORGS)
    with hosts:
        try:
            yield hosts, root
        finally:
            _stop_nodes(root)
    assert hosts.leftovers() == [], "namespaces, links or /etc/netns files left behind"
    shutil.rmtree(root, ignore_errors=True)


_procs: dict[str, subprocess.Popen[bytes]] = {}


def _stop_nodes(root: Path) -> None:
    for proc in _procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in _procs.values():
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    _procs.clear()


def chain(*args: str) -> list[str]:
    return [sys.executable, "-m", "node", *args]


def home(root: Path, org: str) -> Path:
    return root / org / "home"  # each organisation's machine: only its home is private


def ceremony(hosts: Hosts, root: Path) -> dict[str, str]:
    """Run the ceremony; {org: the genesis hash its `genesis install` printed}."""
    coordinator = root / "org1" / "inbox"
    coordinator.mkdir(parents=True)
    for org in ORGS:
        (root / org).mkdir(exist_ok=True)
        listen, advertise = f"0.0.0.0:{PORT}", f"{hosts.fqdn(org)}:{PORT}"
        h = str(home(root, org))
        hosts.run(org, chain("init", "--home", h, "--name", org, "--listen", listen,
                             "--advertise", advertise))  # fmt: skip
        extra = ["--role", "admin", "--role", "member"] if org == "org1" else []
        kind = ["--full-node"] if org == FULL_NODE else ["--governor"]
        out = root / org / f"{org}.member.toml"
        hosts.run(org, chain("genesis", "member", "--home", h, "-o", str(out), *extra, *kind))
        shutil.copy(out, coordinator)  # "sent by e-mail": public parts only
    members = sorted(str(p) for p in coordinator.glob("*.member.toml"))
    genesis = root / "org1" / "genesis.toml"
    hosts.run("org1", chain("genesis", "build", *members, "--chain-id", "hosts-1",
                            "--threshold", "2/3", "-o", str(genesis)))  # fmt: skip
    printed: dict[str, str] = {}
    for org in ORGS:
        received = root / org / "genesis.received.toml"
        shutil.copy(genesis, received)  # sent back to every organisation
        kind = ["--full-node"] if org == FULL_NODE else []
        out = hosts.run(org, chain("genesis", "install", "--home", str(home(root, org)),
                                   str(received), *kind))  # fmt: skip
        printed[org] = next(
            line.split()[-1] for line in out.splitlines() if line.startswith("genesis hash ")
        )
    for org in VALIDATORS:  # the full node's organisation asks each validator to admit it
        member = root / FULL_NODE / f"{FULL_NODE}.member.toml"
        hosts.run(org, chain("peer", "allow", "--home", str(home(root, org)), str(member)))
    return printed


def secrets_of(org_home: Path) -> list[bytes]:
    keys = [org_home / "node_key", *sorted((org_home / "accounts").glob("*.key"))]
    out = []
    for path in keys:
        seed = crypto.read_key_file(path).seed()
        out += [seed, seed.hex().encode(), path.read_bytes().strip()]
    return out


def assert_keys_stay_home(root: Path) -> None:
    """Every file anywhere under the test root, except an organisation's own home, is free
    of that organisation's private keys (as raw seed, hex or key-file text)."""
    files = [p for p in root.rglob("*") if p.is_file() and not p.is_socket()]
    for org in ORGS:
        own = home(root, org)
        secret = secrets_of(own)
        for path in files:
            if own in path.parents:
                continue
            data = path.read_bytes()
            assert not any(s in data for s in secret), f"{org}'s private key found in {path}"


def start(hosts: Hosts, root: Path, org: str, lifeline: int) -> None:
    h = home(root, org)
    log = open(h / "node.log", "ab")  # noqa: SIM115 - the child keeps its own copy
    with log:
        _procs[org] = subprocess.Popen(
            hosts.command(org, chain("start", "--home", str(h), "--stop-on-eof", str(lifeline))),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            pass_fds=(lifeline,),  # if pytest dies, the nodes stop (see node.testnet.local)
        )


def status(root: Path, org: str) -> dict | None:
    try:
        with RpcClient(home(root, org) / "control.sock", timeout_s=3) as rpc:
            return rpc.call("node_status")
    except Exception:
        return None


def wait_heights(root: Path, orgs: list[str], height: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen = {o: (status(root, o) or {}).get("height", -1) for o in orgs}
        if all(h >= height for h in seen.values()):
            return
        for org, proc in _procs.items():
            assert proc.poll() is None, (
                f"{org} exited: {(home(root, org) / 'node.log').read_text()[-3000:]}"
            )
        time.sleep(0.2)
    logs = {o: (home(root, o) / "node.log").read_text()[-1500:] for o in orgs}
    raise AssertionError(f"heights {seen} did not all reach {height} in {timeout_s}s: {logs}")


def send_records(root: Path, org: str, count: int, tag: str) -> None:
    key = crypto.read_key_file(home(root, org) / "accounts" / f"{org}.key")
    with RpcClient(home(root, org) / "control.sock", timeout_s=30) as rpc:
        wallet = Wallet(rpc, key)
        ids = [wallet.send("record.put", {"ns": "hosts", "key": f"{tag}-{i}", "value": i},
                           wait=False)["tx_id"] for i in range(count)]  # fmt: skip
        for tx_id in ids:
            r = rpc.call("tx_wait", {"tx_id": tx_id, "timeout_ms": 30_000})
            assert r["status"] == "committed", r


def test_consortium_across_namespaces(world: tuple[Hosts, Path]) -> None:
    hosts, root = world
    printed = ceremony(hosts, root)
    genesis = load_genesis(home(root, "org1") / "genesis.toml")
    assert set(printed.values()) == {genesis.hash.hex()}, printed
    assert [v.address for v in genesis.validators] == [
        f"{hosts.fqdn(o)}:{PORT}" for o in VALIDATORS
    ]
    assert_keys_stay_home(root)

    read_end, write_end = os.pipe()
    try:
        for org in ORGS:
            start(hosts, root, org, read_end)
        wait_heights(root, ORGS, 1, START_S)
        send_records(root, "org1", 20, "before")
        h = status(root, "org1")["height"]
        wait_heights(root, ORGS, h, 30)

        hosts.link("org1", up=False)  # the leader of view 0 loses its network
        cut = time.monotonic()
        cut_at = max(status(root, o)["height"] for o in ORGS)
        send_records(root, "org2", 20, "during")  # 3 of 4 validators are a quorum
        time.sleep(max(0.0, cut + CUT_S - time.monotonic()))
        during = status(root, "org2")["height"]
        assert during > cut_at
        assert status(root, "org1")["height"] <= cut_at + 1  # it really was cut off
        hosts.link("org1", up=True)

        send_records(root, "org3", 10, "after")
        target = status(root, "org2")["height"] + 2
        wait_heights(root, ORGS, target, CATCH_UP_S)

        # A minority cut off (issue 15 item 5): org4 alone; the other three commit.
        hosts.link("org4", up=False)
        minority_at = status(root, "org4")["height"]
        send_records(root, "org2", 10, "minority")
        assert status(root, "org4")["height"] <= minority_at + 1
        hosts.link("org4", up=True)
        # A flapping link: org3's cable in and out while the others commit.
        for i in range(FLAPS):
            hosts.link("org3", up=i % 2 == 1)
            time.sleep(FLAP_S)
        hosts.link("org3", up=True)
        send_records(root, "org1", 10, "flapping")
        target = max(status(root, o)["height"] for o in ORGS) + 2
        wait_heights(root, ORGS, target, CATCH_UP_S)
        common = min(status(root, o)["height"] for o in ORGS)
        hashes = {}
        for org in ORGS:
            with RpcClient(home(root, org) / "control.sock", timeout_s=10) as rpc:
                # Every block, not only the last: no node ever committed another block.
                chain_hashes = []
                for start_h in range(1, common + 1, 100):
                    calls = [
                        ("block_get", {"height": x})
                        for x in range(start_h, min(common, start_h + 99) + 1)
                    ]
                    chain_hashes += [a["hash"] for a in rpc.batch(calls)]
                hashes[org] = tuple(chain_hashes)
                got = rpc.call("record_get", {"ns": "hosts", "key": "during-19"})
                assert got["value"] == 19, (org, got)
        assert len(set(hashes.values())) == 1, hashes
        assert status(root, FULL_NODE)["consensus"]["validator_index"] is None
    finally:
        os.close(write_end)
        os.close(read_end)
    assert_keys_stay_home(root)
