"""`LocalTestnet`: a local multi-node network in one directory, each node its own OS process.

The one implementation behind `chain testnet` (node/cli/testnet.py), the integration tests
(tests/support/testnet.py) and the benchmarks (scripts/bench_net.py). It generates the
homes (node/testnet/homes.py), starts each node as `python -m node start --home ...` in a
session of its own (a Ctrl-C in the terminal never reaches the nodes; `down` stops them),
signals, stops and restarts them, and asks them for their status over their control
sockets. Nodes are found again through `node.pid` in their home, so another process (a
second `chain testnet ...` in another terminal) can drive a testnet it did not start.

With `supervise=True` (a foreground `chain testnet up`, the tests) the nodes this object
starts hold the read end of a lifeline pipe whose write end only this process has
(`chain start --stop-on-eof`): when this process ends, however it ends (SIGKILL too), the
kernel closes the pipe and every node stops. Without it (`--detach`) they outlive it.

Nodes are named node0, node1, ...; every method that takes a node accepts the name or its
index.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.ledger import crypto
from node.ledger.genesis import ConsensusParams
from node.testnet.homes import MANIFEST, TestnetError, generate, read_manifest

if TYPE_CHECKING:
    from types import TracebackType

    from node.client.wallet import Wallet
    from node.rpc.client import RpcClient

NodeRef = int | str
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
KILL_WAIT_S = 10.0
POLL_S = 0.1


def free_base_port(count: int) -> int:
    """A base port whose next `count` ports on 127.0.0.1 are free right now (best effort)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        if base + count >= 65000:
            continue
        free = True
        for port in range(base, base + count):
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    free = False
                    break
        if free:
            return base
    raise TestnetError("no free port range on 127.0.0.1")


def _alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie (one that exited and that its parent,
    maybe another process, has not reaped yet: it still answers signal 0)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc: signal 0 is all we know
    return state not in ("Z", "X")


class LocalTestnet:
    """A testnet in `directory` (None: a fresh temporary directory under /tmp, short enough
    for control-socket paths, removed again by `down`).

    The shape arguments (validators, full_nodes, base_port, chain_id, tick_ms) are used when
    the directory holds no testnet yet; an existing one is reused as it is, provided it has
    the same number of validators and full nodes. base_port None picks free ports.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        directory: Path | str | None = None,
        *,
        validators: int = 1,
        full_nodes: int = 0,
        base_port: int | None = None,
        chain_id: str = "testnet",
        tick_ms: int = 0,
        remove_on_down: bool | None = None,
        prefix: str = "testnet",
        rpc_timeout_s: float = 30.0,
        gateway: bool = False,
        supervise: bool = False,
    ) -> None:
        self.temp_root: Path | None = None
        if directory is None:
            self.temp_root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
            self.dir = self.temp_root / "net"
        else:
            self.dir = Path(directory)
        self.validators = validators
        self.full_nodes = full_nodes
        self.base_port = base_port
        self.tick_ms = tick_ms
        self.remove_on_down = directory is None if remove_on_down is None else remove_on_down
        self.rpc_timeout_s = rpc_timeout_s
        self.gateway = gateway
        self._chain_id = chain_id
        self._manifest: dict[str, Any] | None = None
        self._procs: dict[str, subprocess.Popen[bytes]] = {}  # the nodes this object started
        self._exited: dict[str, int] = {}  # of those, the ones that exited: their status
        self.supervise = supervise
        self._lifeline: tuple[int, int] | None = None  # (read end, write end)

    # --- what is there ---------------------------------------------------------------------

    def exists(self) -> bool:
        return (self.dir / MANIFEST).exists()

    def manifest(self) -> dict[str, Any]:
        """testnet.json (TestnetError when the directory holds no testnet)."""
        if self._manifest is None:
            self._manifest = read_manifest(self.dir)
        return self._manifest

    @property
    def names(self) -> list[str]:
        """Node names: the generated ones, or the planned ones before generation."""
        if self.exists():
            return [n["name"] for n in self.manifest()["nodes"]]
        return [f"node{i}" for i in range(self.validators + self.full_nodes)]

    @property
    def chain_id(self) -> str:
        return str(self.manifest()["chain_id"]) if self.exists() else self._chain_id

    def name(self, node: NodeRef) -> str:
        return self.names[node] if isinstance(node, int) else node

    def home(self, node: NodeRef) -> Path:
        return self.dir / self.name(node)

    def socket(self, node: NodeRef = 0) -> Path:
        return self.home(node) / "control.sock"

    def data_dir(self, node: NodeRef) -> Path:
        return self.home(node) / "data"

    def log_path(self, node: NodeRef) -> Path:
        return self.home(node) / "node.log"

    def log(self, node: NodeRef) -> str:
        return self.log_path(node).read_text(errors="replace")

    def key(self, account: str) -> crypto.SigningKey:
        """An account key of accounts/ (admin, manufacturer, shipper, retailer, inspector)."""
        return crypto.read_key_file(self.dir / "accounts" / f"{account}.key")

    # --- making it -------------------------------------------------------------------------

    def wipe(self) -> None:
        """Stop the nodes of a testnet in the directory, if any, and remove the directory."""
        if self.dir.exists():
            if self.exists():
                self.stop_all()
            shutil.rmtree(self.dir)
        self._manifest = None

    def prepare(self) -> dict[str, Any]:
        """Generate the testnet unless the directory holds one of the same shape already."""
        if self.exists():
            manifest = self.manifest()
            if (manifest["validators"], manifest["full_nodes"]) != (
                self.validators,
                self.full_nodes,
            ):
                raise TestnetError(
                    f"{self.dir} holds a testnet of {manifest['validators']} validators and "
                    f"{manifest['full_nodes']} full nodes; use --fresh to replace it or "
                    "--dir elsewhere"
                )
            return manifest
        base_port = self.base_port
        if base_port is None:
            base_port = free_base_port(self.validators + self.full_nodes)
        params = ConsensusParams(tick_ms=self.tick_ms) if self.tick_ms else None
        self._manifest = generate(
            self.dir,
            validators=self.validators,
            full_nodes=self.full_nodes,
            base_port=base_port,
            chain_id=self._chain_id,
            params=params,
        )
        if self.gateway:
            self.enable_gateways()
        return self._manifest

    # --- the HTTPS gateway ---------------------------------------------------------------------

    def gateway_clients_dir(self) -> Path:
        return self.dir / "gateway-clients"

    def set_config(self, section: str, nodes: list[NodeRef] | None = None, **values: Any) -> None:
        """Change fields of one config.toml section on `nodes` (all by default). A running
        node reads them at its next start."""
        from dataclasses import replace

        from node.daemon.config import load_config, render_config

        for node in self.names if nodes is None else nodes:
            home = self.home(node)
            config = load_config(home)
            changed = replace(getattr(config, section), **values)
            (home / "config.toml").write_text(render_config(replace(config, **{section: changed})))
            load_config(home)  # the values must pass the node's own checks

    def enable_gateways(self) -> None:
        """Turn on every node's gateway on a free port, with its CA, and issue an admin, a
        submit and a read client certificate for each node into gateway-clients/."""
        from dataclasses import replace

        from node.daemon.config import load_config, render_config
        from node.daemon.gateway import ca

        base = free_base_port(len(self.names))
        for i, name in enumerate(self.names):
            home = self.home(name)
            config = load_config(home)
            gateway = replace(config.gateway, enabled=True, listen=f"127.0.0.1:{base + i}")
            (home / "config.toml").write_text(render_config(replace(config, gateway=gateway)))
            ca.init_ca(home, name)
            for role in ca.ROLES:
                ca.issue_client(home, role, role, self.gateway_clients_dir() / name / role)

    def gateway_url(self, node: NodeRef = 0) -> str:
        from node.daemon.config import load_config

        config = load_config(self.home(node))
        return f"https://{config.gateway.listen}"

    def gateway_credentials_dir(self, node: NodeRef = 0, role: str = "admin") -> Path:
        return self.gateway_clients_dir() / self.name(node) / role

    def up(self, timeout_s: float = START_TIMEOUT_S) -> dict[str, Any]:
        """Prepare, start every node and wait until all of them have committed a block
        (TestnetError after timeout_s; the nodes are left running for their logs: `down`)."""
        manifest = self.prepare()
        self.start_all()
        if not self.wait_committing(timeout_s):
            raise TestnetError(
                f"nodes did not all commit within {timeout_s:.0f}s; see {self.dir}/node*/node.log"
            )
        return manifest

    def down(self) -> None:
        """Stop every node (if there is a testnet) and remove the directory if it is ours."""
        try:
            if self.exists():
                self.stop_all()
        finally:
            self.close_lifeline()
            if self.remove_on_down:
                shutil.rmtree(self.temp_root or self.dir, ignore_errors=True)

    def __enter__(self) -> LocalTestnet:
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.down()

    # --- processes -------------------------------------------------------------------------

    def reap(self) -> None:
        """Collect the exit status of nodes this object started and that have exited."""
        for name, proc in list(self._procs.items()):
            status = proc.poll()
            if status is not None:
                del self._procs[name]
                self._exited[name] = status

    def failed(self) -> dict[str, int]:
        """Nodes this object started that have exited with a non-zero status since, by name."""
        self.reap()
        return {name: status for name, status in self._exited.items() if status != 0}

    def node_error(self, node: NodeRef) -> str:
        """What a node said about why it stopped: its last `error:` line, else its last
        log lines (for a testnet that must say why a node did not start)."""
        try:
            lines = self.log(node).rstrip().splitlines()
        except OSError:
            return "(no log)"
        for line in reversed(lines[-200:]):
            if line.startswith("error: "):
                return line[len("error: ") :]
        return "\n".join(lines[-5:]) or "(empty log)"

    def _lifeline_fd(self) -> int:
        if self._lifeline is None:
            self._lifeline = os.pipe()  # both ends close-on-exec: only pass_fds hands one on
        return self._lifeline[0]

    def close_lifeline(self) -> None:
        """Close the lifeline pipe: every node started with it stops (as if we had died)."""
        if self._lifeline is not None:
            for fd in self._lifeline:
                os.close(fd)
            self._lifeline = None

    def pid(self, node: NodeRef) -> int | None:
        """The node's process id while it runs (from node.pid in its home), else None."""
        self.reap()
        home = self.home(node)
        try:
            pid = int((home / "node.pid").read_text())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def start(self, node: NodeRef, env: dict[str, str] | None = None) -> int:
        """Start a node unless it runs already; its pid. `env`: extra environment for the
        node process (tests arm crash points or clock offsets with it)."""
        name = self.name(node)
        home = self.home(name)
        if not (home / "config.toml").exists():
            raise TestnetError(f"no node {name!r} in {self.dir}")
        running = self.pid(name)
        if running is not None:
            return running
        sock = home / "control.sock"
        if sock.exists():
            sock.unlink()  # stale after a kill -9; the node would refuse to start otherwise
        command = [sys.executable, "-m", "node", "start", "--home", str(home)]
        pass_fds: tuple[int, ...] = ()
        if self.supervise:
            pass_fds = (self._lifeline_fd(),)
            command += ["--stop-on-eof", str(pass_fds[0])]
        with open(home / "node.log", "ab") as log:  # the child keeps its own descriptor
            proc = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Its own session: a Ctrl-C or a hang-up of our terminal reaches only us,
                # and we stop the nodes in order.
                start_new_session=True,
                pass_fds=pass_fds,
                env={**os.environ, **env} if env else None,
            )
        self._procs[name] = proc
        self._exited.pop(name, None)
        (home / "node.pid").write_text(str(proc.pid))
        return proc.pid

    def start_all(self) -> None:
        for name in self.names:
            self.start(name)

    def send_signal(self, node: NodeRef, sig: int) -> bool:
        """Send `sig` to a running node; False when it does not run."""
        pid = self.pid(node)
        if pid is None:
            return False
        os.kill(pid, sig)
        return True

    def kill(self, node: NodeRef, sig: int = signal.SIGKILL) -> None:
        """Send `sig` (default SIGKILL) to a running node, TestnetError when it does not run.
        After SIGKILL, wait (up to KILL_WAIT_S) until the process is gone, so that a `start`
        right after it really starts the node again."""
        name = self.name(node)
        if not self.send_signal(name, sig):
            raise TestnetError(f"{name} is not running")
        if sig == signal.SIGKILL:
            self.wait_stopped([name], KILL_WAIT_S)

    def wait_stopped(self, nodes: list[NodeRef], timeout_s: float) -> list[str]:
        """Wait until none of `nodes` runs; the names still running after timeout_s."""
        names = [self.name(n) for n in nodes]
        deadline = time.monotonic() + timeout_s
        while True:
            alive = [n for n in names if self.pid(n) is not None]
            if not alive or time.monotonic() >= deadline:
                return alive
            time.sleep(POLL_S / 5)

    def stop_all(self) -> None:
        """SIGTERM every node, SIGKILL those still running after STOP_TIMEOUT_S."""
        names = [n["name"] for n in self.manifest()["nodes"]]
        for name in names:
            self.send_signal(name, signal.SIGTERM)
        for name in self.wait_stopped(list(names), STOP_TIMEOUT_S):
            self.send_signal(name, signal.SIGKILL)
        self.wait_stopped(list(names), 5.0)
        for name in names:
            (self.home(name) / "node.pid").unlink(missing_ok=True)

    # --- talking to the nodes ----------------------------------------------------------------

    def rpc(self, node: NodeRef = 0, timeout_s: float | None = None) -> RpcClient:
        """A blocking JSON-RPC client on the node's control socket (the caller closes it)."""
        from node.rpc.client import RpcClient

        timeout = self.rpc_timeout_s if timeout_s is None else timeout_s
        return RpcClient(self.socket(node), timeout_s=timeout)

    def wallet(self, account: str, node: NodeRef = 0) -> Wallet:
        """A wallet signing as `account`, sending through `node`."""
        from node.client.wallet import Wallet

        return Wallet(self.rpc(node), self.key(account))

    def status(self, node: NodeRef, timeout_s: float = 2.0) -> dict[str, Any] | None:
        """The node's node_status, or None when it does not answer."""
        try:
            with self.rpc(node, timeout_s=timeout_s) as rpc:
                status: dict[str, Any] = rpc.call("node_status")  # type: ignore[assignment]
                return status
        except Exception:
            return None

    def wait_committing(
        self,
        timeout_s: float,
        min_height: int = 1,
        nodes: list[NodeRef] | None = None,
        *,
        fail_fast: bool = False,
    ) -> bool:
        """Whether every node (or each of `nodes`) reached min_height within timeout_s.
        With fail_fast, a node this object started that exits meanwhile is a TestnetError
        at once, with the node's own error (a taken port, a bad config)."""
        names = self.names if nodes is None else [self.name(n) for n in nodes]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if fail_fast:
                self._raise_if_failed(names)
            statuses = [self.status(n) for n in names]
            if all(s is not None and s["height"] >= min_height for s in statuses):
                return True
            time.sleep(2 * POLL_S)
        return False

    def _raise_if_failed(self, names: list[str]) -> None:
        self.reap()
        for name in names:
            if name in self._exited:
                raise TestnetError(
                    f"{name} exited (status {self._exited[name]}) while starting: "
                    f"{self.node_error(name)} (log: {self.log_path(name)})"
                )

    def wait_height(self, node: NodeRef, height: int, timeout_s: float = 60.0) -> dict[str, Any]:
        """The node's status once it reports `height` or above (TestnetError after timeout_s)."""
        name = self.name(node)
        deadline = time.monotonic() + timeout_s
        last = None
        while time.monotonic() < deadline:
            last = self.status(name)
            if last is not None and last["height"] >= height:
                return last
            time.sleep(POLL_S)
        raise TestnetError(f"{name} did not reach height {height} in {timeout_s}s: {last}")
