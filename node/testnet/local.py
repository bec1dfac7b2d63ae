"""`chain testnet`: a local multi-node network in one directory, each node its own process.

Layout under --dir (default ./testnet):
  testnet.json            what was generated (nodes, ports, chain id)
  accounts/<name>.key     account keys: admin, manufacturer, shipper, retailer, inspector
  node<i>/                a node home: config.toml, genesis.toml, node_key, node_cert.pem,
                          data/ (LMDB), control.sock, node.log, node.pid
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from node.daemon.config import NodeConfig, NodeSection, P2PSection, render_config
from node.daemon.home import create_node_identity, make_home_dir, now_iso, write_genesis
from node.ledger import crypto
from node.ledger.genesis import AccountInfo, ConsensusParams, Genesis, ValidatorInfo

ACCOUNTS = (
    ("admin", ("admin",)),
    ("manufacturer", ("member",)),
    ("shipper", ("member",)),
    ("retailer", ("member",)),
    ("inspector", ("member", "inspector")),
)
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0


class TestnetError(Exception):
    pass


def _manifest(root: Path) -> dict[str, Any]:
    path = root / "testnet.json"
    if not path.exists():
        raise TestnetError(f"no testnet in {root}: start one with `chain testnet up --dir {root}`")
    return json.loads(path.read_text())


def generate(
    root: Path,
    *,
    validators: int,
    full_nodes: int = 0,
    base_port: int = 26650,
    chain_id: str = "testnet",
    params: ConsensusParams | None = None,
) -> dict[str, Any]:
    if validators < 1:
        raise TestnetError("--validators must be at least 1")
    make_home_dir(root)
    accounts = []
    for name, roles in ACCOUNTS:
        key = crypto.SigningKey.generate()
        crypto.write_key_file(root / "accounts" / f"{name}.key", key)
        accounts.append(AccountInfo(name, key.public_key, roles))
    nodes = []
    vinfos = []
    identities: dict[str, tuple[bytes, str]] = {}
    for i in range(validators + full_nodes):
        name = f"node{i}"
        home = root / name
        key, cert = create_node_identity(home, name)
        identities[name] = (key.public_key, cert)
        address = f"127.0.0.1:{base_port + i}"
        nodes.append(
            {
                "name": name,
                "home": name,
                "validator": i < validators,
                "address": address,
                "public_key": key.public_key.hex(),
            }
        )
        if i < validators:
            vinfos.append(ValidatorInfo(name, key.public_key, address, cert))
    genesis = Genesis(
        chain_id=chain_id,
        genesis_time=now_iso(),
        validators=tuple(vinfos),
        accounts=tuple(accounts),
        consensus=params or ConsensusParams(),
    )
    full = [n for n in nodes if not n["validator"]]
    for node in nodes:
        home = root / node["home"]
        genesis = write_genesis(home / "genesis.toml", genesis)
        if node["validator"]:
            # Validators accept the full nodes; full nodes dial every validator (from genesis).
            allow = tuple(n["public_key"] for n in full)
            peers: tuple[str, ...] = ()
        else:
            allow = ()
            peers = tuple(f"{n['public_key']}@{n['address']}" for n in nodes if n["validator"])
        peer_dir = home / "peers"
        peer_dir.mkdir(exist_ok=True)
        for other in nodes:
            if other is not node:
                (peer_dir / f"{other['public_key']}.pem").write_text(identities[other["name"]][1])
        config = NodeConfig(
            home=home,
            node=NodeSection(name=node["name"]),
            p2p=P2PSection(listen=node["address"], peers=peers, allow=allow),
        )
        (home / "config.toml").write_text(render_config(config))
    manifest = {
        "chain_id": chain_id,
        "validators": validators,
        "full_nodes": full_nodes,
        "nodes": nodes,
        "genesis_hash": genesis.hash.hex(),
    }
    (root / "testnet.json").write_text(json.dumps(manifest, indent=2))
    return manifest


# --- processes -----------------------------------------------------------------------------------


def _pid(home: Path) -> int | None:
    try:
        pid = int((home / "node.pid").read_text())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def start_node(root: Path, name: str) -> int:
    home = root / name
    if not (home / "config.toml").exists():
        raise TestnetError(f"no node {name!r} in {root}")
    running = _pid(home)
    if running is not None:
        return running
    sock = home / "control.sock"
    if sock.exists():
        sock.unlink()  # stale after a kill -9; the node would refuse to start otherwise
    log = open(home / "node.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [sys.executable, "-m", "node", "start", "--home", str(home)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    (home / "node.pid").write_text(str(proc.pid))
    return proc.pid


def signal_node(root: Path, name: str, sig: int) -> bool:
    pid = _pid(root / name)
    if pid is None:
        return False
    os.kill(pid, sig)
    return True


def wait_stopped(root: Path, names: list[str], timeout_s: float) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        alive = [n for n in names if _pid(root / n) is not None]
        if not alive:
            return []
        time.sleep(0.1)
    return [n for n in names if _pid(root / n) is not None]


def stop_all(root: Path) -> None:
    names = [n["name"] for n in _manifest(root)["nodes"]]
    for name in names:
        signal_node(root, name, signal.SIGTERM)
    for name in wait_stopped(root, names, STOP_TIMEOUT_S):
        signal_node(root, name, signal.SIGKILL)
    wait_stopped(root, names, 5.0)
    for name in names:
        (root / name / "node.pid").unlink(missing_ok=True)


def query(root: Path, name: str, timeout_s: float = 2.0) -> dict[str, Any] | None:
    from node.rpc.client import RpcClient

    try:
        with RpcClient(root / name / "control.sock", timeout_s=timeout_s) as rpc:
            return dict(rpc.call("node_status"))  # type: ignore[arg-type]
    except Exception:
        return None


def wait_committing(root: Path, names: list[str], timeout_s: float, min_height: int = 1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        statuses = [query(root, n) for n in names]
        if all(s is not None and s["height"] >= min_height for s in statuses):
            return True
        time.sleep(0.2)
    return False


# --- live view ------------------------------------------------------------------------------------


class LiveView:
    def __init__(self, root: Path, names: list[str]) -> None:
        self.root = root
        self.names = names
        self._last: dict[str, tuple[float, int]] = {}
        self._lines_drawn = 0

    def rows(self) -> list[str]:
        out = [
            f"{'node':<7}{'height':>8}{'view':>6}{'leader':>8}{'peers':>7}{'mempool':>9}"
            f"{'tx/s':>9}  state"
        ]
        now = time.monotonic()
        for name in self.names:
            st = query(self.root, name, timeout_s=1.0)
            if st is None:
                out.append(f"{name:<7}{'-':>8}{'-':>6}{'-':>8}{'-':>7}{'-':>9}{'-':>9}  down")
                continue
            txs = st["counters"]["txs_committed"]
            prev = self._last.get(name)
            rate = (txs - prev[1]) / (now - prev[0]) if prev and now > prev[0] else 0.0
            self._last[name] = (now, txs)
            c = st.get("consensus", {})
            state = (
                "halted" if st["halted"] else ("syncing" if st["syncing"].get("syncing") else "ok")
            )
            out.append(
                f"{name:<7}{st['height']:>8}{c.get('view', '-'):>6}{c.get('leader', '-'):>8}"
                f"{st['peers']:>7}{st['mempool']['size']:>9}{rate:>9.0f}  {state}"
            )
        return out

    def draw(self, tty: bool, extra: list[str] | None = None) -> None:
        rows = self.rows()
        if tty:
            if extra is not None:  # a fixed number of lines, so the redraw stays in place
                rows += ["", "recent demo activity:", *extra[-8:], *[""] * (8 - len(extra[-8:]))]
            width = max(20, shutil.get_terminal_size().columns - 1)
            rows = [r[:width] for r in rows]
            if self._lines_drawn:
                sys.stdout.write(f"\x1b[{self._lines_drawn}F")
            sys.stdout.write("".join(r + "\x1b[K\n" for r in rows))
            self._lines_drawn = len(rows)
        else:
            stamp = time.strftime("%H:%M:%S")
            sys.stdout.write("".join(f"{stamp} {r}\n" for r in rows[1:]))
        sys.stdout.flush()


# --- commands -------------------------------------------------------------------------------------


def cmd_up(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    if args.fresh and root.exists():
        if (root / "testnet.json").exists():
            stop_all(root)
        shutil.rmtree(root)
    if (root / "testnet.json").exists():
        manifest = _manifest(root)
        if manifest["validators"] != args.validators or manifest["full_nodes"] != args.full_nodes:
            raise TestnetError(
                f"{root} holds a testnet of {manifest['validators']} validators and "
                f"{manifest['full_nodes']} full nodes; use --fresh to replace it or --dir elsewhere"
            )
    else:
        params = ConsensusParams(**{k: v for k, v in (("tick_ms", args.tick_ms),) if v})
        manifest = generate(
            root,
            validators=args.validators,
            full_nodes=args.full_nodes,
            base_port=args.base_port,
            chain_id=args.chain_id,
            params=params,
        )
    names = [n["name"] for n in manifest["nodes"]]
    for name in names:
        start_node(root, name)
    print(
        f"testnet of {manifest['validators']} validator(s) and {manifest['full_nodes']} full "
        f"node(s) starting in {root} ...",
        flush=True,
    )
    if not wait_committing(root, names, START_TIMEOUT_S):
        print(
            f"nodes did not all commit within {START_TIMEOUT_S:.0f}s; see {root}/node*/node.log",
            file=sys.stderr,
        )
        if not args.detach:
            stop_all(root)
        return 1
    print(
        f"committing. send transactions with e.g. `chain item register pallet-1` "
        f"(socket {root}/node0/control.sock, key {root}/accounts/admin.key)",
        flush=True,
    )
    if args.detach:
        return 0
    demo = None
    if args.demo:
        from node.testnet.demo import start_demo

        demo = start_demo(root, quiet=sys.stdout.isatty())
    view = LiveView(root, names)
    tty = sys.stdout.isatty()
    deadline = time.monotonic() + args.duration if args.duration else None
    try:
        while deadline is None or time.monotonic() < deadline:
            view.draw(tty, demo.recent(8) if demo is not None else None)
            time.sleep(1.0 if tty else 5.0)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
    finally:
        stop_all(root)  # first: the demo's pending calls then fail at once
        if demo is not None:
            demo.stop()
    print("testnet stopped", flush=True)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    stop_all(Path(args.dir))
    print("testnet stopped")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    names = [n["name"] for n in _manifest(root)["nodes"]]
    if args.json:
        print(json.dumps({n: query(root, n) for n in names}, indent=2))
    else:
        print("\n".join(LiveView(root, names).rows()))
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    path = Path(args.dir) / args.node / "node.log"
    if not path.exists():
        raise TestnetError(f"no log at {path}")
    lines = path.read_text(errors="replace").splitlines()
    print("\n".join(lines[-args.lines :]))
    return 0


def cmd_kill(args: argparse.Namespace) -> int:
    sig = signal.SIGTERM if args.graceful else signal.SIGKILL
    if not signal_node(Path(args.dir), args.node, sig):
        raise TestnetError(f"{args.node} is not running")
    print(f"sent {signal.Signals(sig).name} to {args.node}")
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    pid = start_node(Path(args.dir), args.node)
    print(f"{args.node} running (pid {pid})")
    return 0


def add_testnet_parser(sub: Any, make: Any) -> None:
    testnet = sub.add_parser("testnet", help="a local multi-node testnet (the main job)")
    tsub = testnet.add_subparsers(dest="testnet_cmd", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--dir", default="testnet", help="testnet directory (default ./testnet)")

    p = make(
        tsub,
        "up",
        "generate (if needed) and start a local testnet, then show a live view",
        "chain testnet up --validators 4 --demo",
        _wrap(cmd_up),
    )
    common(p)
    p.add_argument("--validators", type=int, default=4)
    p.add_argument("--full-nodes", type=int, default=0, dest="full_nodes")
    p.add_argument("--base-port", type=int, default=26650, dest="base_port")
    p.add_argument("--chain-id", default="testnet", dest="chain_id")
    p.add_argument("--tick-ms", type=int, default=0, dest="tick_ms", help=argparse.SUPPRESS)
    p.add_argument("--fresh", action="store_true", help="wipe --dir first")
    p.add_argument("--demo", action="store_true", help="run a traceability/notary workload")
    p.add_argument("--detach", action="store_true", help="return once committing; stop with `down`")
    p.add_argument("--duration", type=float, default=0, help="stop after this many seconds")
    p = make(tsub, "down", "stop every node of the testnet", "chain testnet down", _wrap(cmd_down))
    common(p)
    p = make(
        tsub, "status", "one look at every node", "chain testnet status --json", _wrap(cmd_status)
    )
    common(p)
    p.add_argument("--json", action="store_true")
    p = make(
        tsub, "logs", "print the end of a node's log", "chain testnet logs node2", _wrap(cmd_logs)
    )
    common(p)
    p.add_argument("node")
    p.add_argument("-n", "--lines", type=int, default=50)
    p = make(
        tsub,
        "kill",
        "kill a node (SIGKILL; --graceful for SIGTERM)",
        "chain testnet kill node1",
        _wrap(cmd_kill),
    )
    common(p)
    p.add_argument("node")
    p.add_argument("--graceful", action="store_true")
    p = make(
        tsub, "start", "start a stopped node again", "chain testnet start node1", _wrap(cmd_start)
    )
    common(p)
    p.add_argument("node")


def _wrap(func: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(func(args))
        except TestnetError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    return run
