"""Latency percentiles against offered load, as a PNG beside BENCHMARKS.md (matplotlib is an
optional bench dependency: without it no plot is written)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_latency_plot(report: dict[str, Any], path: Path, title: str = "") -> bool:
    """p50 / p95 / p99 submit-to-commit against offered tx/s; the saturation rate as a line.
    False (nothing written) without matplotlib or without latency runs."""
    runs = sorted(report.get("latency", []), key=lambda r: r["offered_tps"])
    if not runs:
        return False
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    offered = [r["offered_tps"] for r in runs]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for key, style in (("p50", "o-"), ("p95", "s--"), ("p99", "^-")):
        ax.plot(offered, [r["latency_ms"].get(key, float("nan")) for r in runs], style, label=key)
    sat = report.get("saturation", {}).get("committed_on_all_tps")
    if sat:
        ax.axvline(sat, color="grey", linestyle=":", label=f"saturation {sat:,.0f} tx/s")
    ax.axhline(250, color="red", linewidth=0.6, linestyle=":", label="250 / 500 ms targets")
    ax.axhline(500, color="red", linewidth=0.6, linestyle=":")
    ax.set_xlabel("offered load, tx/s (open loop)")
    ax.set_ylabel("submit to commit on every node, ms")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or f"{report.get('validators', '?')} validators, {report.get('date', '')}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
