"""The live view of a local testnet: one row per node (height, view, leader, peers, mempool,
committed tx/s, state). On a terminal it redraws in place; otherwise it prints plain,
timestamped lines, so that a log or a pipe stays readable."""

from __future__ import annotations

import shutil
import sys
import time

from node.testnet.local import LocalTestnet

DEMO_LINES = 8


class LiveView:
    """Rows from each node's node_status; the tx/s column is the rate since the last rows()."""

    def __init__(self, net: LocalTestnet) -> None:
        self.net = net
        self.names = net.names
        self._last: dict[str, tuple[float, int]] = {}
        self._lines_drawn = 0

    def rows(self) -> list[str]:
        out = [
            f"{'node':<7}{'height':>8}{'view':>6}{'leader':>8}{'peers':>7}{'mempool':>9}"
            f"{'tx/s':>9}  state"
        ]
        now = time.monotonic()
        for name in self.names:
            st = self.net.status(name, timeout_s=1.0)
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
        """Print the rows (and, on a terminal, the last lines of `extra`: demo activity)."""
        rows = self.rows()
        if tty:
            if extra is not None:  # a fixed number of lines, so the redraw stays in place
                recent = extra[-DEMO_LINES:]
                rows += ["", "recent demo activity:", *recent, *[""] * (DEMO_LINES - len(recent))]
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
