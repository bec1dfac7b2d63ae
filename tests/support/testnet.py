"""Drive a real local testnet (OS processes, real sockets, real LMDB) from tests.

`Testnet` is node.testnet's LocalTestnet (the one `chain testnet` runs) in a fresh
directory under /tmp that `down` removes; `chain_cmd` runs the `chain` command itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from node.testnet.local import LocalTestnet, free_base_port

REPO = Path(__file__).resolve().parents[2]

__all__ = ["REPO", "Testnet", "chain_cmd", "free_base_port"]


def chain_cmd(
    *args: str, timeout_s: float = 120.0, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`chain ARGS...` as a separate process from the repository root."""
    proc = subprocess.run(
        [sys.executable, "-m", "node", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"chain {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


class Testnet(LocalTestnet):
    """A testnet of its own on free ports; use it as a context manager (up, then down)."""

    __test__ = False

    def __init__(
        self, validators: int = 1, full_nodes: int = 0, tick_ms: int = 0, gateway: bool = False
    ) -> None:
        # supervise: if pytest dies (a CI timeout's SIGKILL), the nodes stop by themselves.
        super().__init__(
            validators=validators,
            full_nodes=full_nodes,
            tick_ms=tick_ms,
            prefix="ct",
            gateway=gateway,
            supervise=True,
        )

    def __enter__(self) -> Testnet:
        super().__enter__()
        return self
