"""The benchmark's numbers: statistics, the machine's own ceiling, BENCHMARKS.md and its JSON.

The JSON file keeps one entry per section ("quick", "full", "scaling", "large_chain", ...);
a run replaces only the sections it measured, and BENCHMARKS.md is rendered from all of
them, so the document always shows the latest measurement of each thing and the command
that produced it.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# --- statistics ----------------------------------------------------------------


def percentiles(values: Sequence[float], points: Sequence[int]) -> dict[str, float]:
    """Nearest-rank percentiles; {} for no values."""
    if not values:
        return {}
    ordered = sorted(values)
    out: dict[str, float] = {}
    for p in points:
        rank = max(1, math.ceil(p / 100 * len(ordered)))
        out[f"p{p}"] = round(ordered[rank - 1], 1)
    return out


def slope_per_s(times: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of values over times (units per second); 0 for < 2 points."""
    n = len(times)
    if n < 2:
        return 0.0
    mean_t = sum(times) / n
    mean_v = sum(values) / n
    var = sum((t - mean_t) ** 2 for t in times)
    if var == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in zip(times, values, strict=True)) / var


# --- the machine's own ceiling -------------------------------------------------------------------


def _rate(fn: Any, items: Sequence[Any], min_s: float) -> float:
    """Calls per second of fn(item), cycling over items for at least min_s."""
    count = 0
    started = time.perf_counter()
    deadline = started + min_s
    while True:
        for item in items:
            fn(item)
        count += len(items)
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - started)


def measure_verify(min_s: float = 1.0) -> dict[str, Any]:
    """Ed25519 verifications per second on one core: the node's facade and each library."""
    from node import crypto

    key = crypto.SigningKey.generate()
    messages = [os.urandom(200) for _ in range(256)]
    triples = [(key.public_key, key.sign(m), m) for m in messages]
    out: dict[str, Any] = {
        "facade": round(_rate(lambda t: crypto.verify(*t), triples, min_s)),
        "facade_backend": getattr(crypto, "BACKEND", "cryptography"),
    }
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    out["cryptography"] = round(
        _rate(lambda t: Ed25519PublicKey.from_public_bytes(t[0]).verify(t[1], t[2]), triples, min_s)
    )
    try:
        from nacl.bindings import crypto_sign_open

        signed = [(t[0], t[1] + t[2]) for t in triples]
        out["libsodium"] = round(_rate(lambda s: crypto_sign_open(s[1], s[0]), signed, min_s))
    except ImportError:
        out["libsodium"] = None
    return out


def cores() -> int:
    return len(os.sched_getaffinity(0))


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "cores": cores(),
        "cpu": model,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


# --- JSON + markdown ----------------------------------------------------------------


def load_results(path: Path) -> dict[str, Any]:
    if path.exists():
        try:
            data = json.loads(path.read_text())
            if isinstance(data, dict):
                return data
        except ValueError:
            pass
    return {}


def save_results(path: Path, results: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def _fmt_int(x: Any) -> str:
    return f"{x:,.0f}" if isinstance(x, int | float) else str(x)


def _cpu_split(cpu: dict[str, Any]) -> str:
    if not cpu:
        return ""
    return (
        f"Cores busy: all {cpu['machine_cores']}, nodes {cpu['nodes_cores']}, "
        f"load generator {cpu['bench_cores']}, other processes on the machine "
        f"{cpu['other_cores']}, steal {cpu['steal_cores']}."
    )


def render_headline(name: str, r: dict[str, Any]) -> list[str]:
    lines = [
        f"### {name}: {r['validators']} validators — measured {r['date']}",
        "",
        f"Command: `{r['command']}`",
        "",
        f"Machine: {r['machine']['cores']} cores ({r['machine']['cpu']}), "
        f"Python {r['machine']['python']}; load generator on the same machine. "
        f"Production defaults: sync on, TLS on, every check on. "
        f"Workload: {r['accounts']} accounts, mix {r['mix']}.",
        "",
    ]
    if r.get("saturation"):
        lines += _render_saturation(r["saturation"], r["ceiling_tps"])
    if r.get("latency"):
        lines += _render_latency(r["latency"])
    if r.get("resources"):
        lines += _render_resources(r)
    lines += _render_ceiling(r)
    return lines


def _render_saturation(sat: dict[str, Any], ceiling: float) -> list[str]:
    lines = _table(
        [
            "committed on all nodes",
            "per-second min / median / max",
            "node CPU per tx (all nodes)",
            "ceiling",
            "ratio",
        ],
        [
            [
                f"**{_fmt_int(sat['committed_on_all_tps'])} tx/s** over "
                f"{sat['window_s']:.0f} s after {sat['warmup_s']:.0f} s warm-up",
                f"{_fmt_int(sat['per_second_tps']['min'])} / "
                f"{_fmt_int(sat['per_second_tps']['median'])} / "
                f"{_fmt_int(sat['per_second_tps']['max'])}",
                f"{sat.get('node_cpu_us_per_tx', '-')} µs",
                f"{_fmt_int(ceiling)} tx/s",
                f"{sat['committed_on_all_tps'] / ceiling:.2f}",
            ]
        ],
    )
    mp = sat["mempool_total"]
    return [
        *lines,
        "",
        f"Saturation = closed loop with {sat['in_flight_txs']:,} transactions in flight "
        f"(submitted, not yet committed on every node), batches of {sat['batch_txs']} per "
        f"`tx_submit_batch`, spread over all nodes. {sat['blocks']} blocks, "
        f"{sat['txs_per_block']:,} tx/block. Mempool (sum over nodes) first / last / max: "
        f"{mp['first']:,} / {mp['last']:,} / {mp['max']:,}, slope {mp['slope_per_s']:+.1f}/s. "
        f"Refusals: {sat['refused'] or 'none'}."
        + (" **Ran out of pre-signed transactions.**" if sat["ran_out_of_txs"] else "")
        + " "
        + _cpu_split(sat.get("machine_cpu", {})),
        "",
    ]


def _render_latency(runs: list[dict[str, Any]]) -> list[str]:
    rows = []
    for run in runs:
        lat = run["latency_ms"]
        first = run.get("first_node_latency_ms", {})
        rows.append(
            [
                _fmt_int(run["offered_tps"]),
                f"{run['duration_s']:.0f} s",
                _fmt_int(run["txs"]),
                lat.get("p50", "-"),
                lat.get("p95", "-"),
                f"**{lat.get('p99', '-')}**",
                lat.get("p100", "-"),
                f"{first.get('p50', '-')} / {first.get('p99', '-')}",
                run["missing"],
                run["refused"] or "-",
                run.get("machine_cpu", {}).get("other_cores", "-"),
            ]
        )
    header = ["offered tx/s", "for", "txs", "p50", "p95", "p99", "max"]
    header += ["first node p50 / p99", "missing", "refused", "other cores"]
    return [
        "Submit-to-commit latency, open loop (from each transaction's scheduled send time to "
        "the moment the LAST node reported its block), ms; 'first node' is the same to the "
        "first node's report (the difference is commit skew between nodes); 'other cores' is "
        "CPU taken by processes that are not part of the benchmark:",
        "",
        *_table(header, rows),
        "",
    ]


def _render_resources(r: dict[str, Any]) -> list[str]:
    res = r["resources"]
    sat = r.get("saturation", {})
    rows = []
    for i, node in enumerate(res["nodes"]):
        cpu = sat["cpu"][i] if sat else {"cpu_s": "-", "cores": "-"}
        rows.append(
            [
                f"node{i}",
                cpu["cpu_s"],
                cpu["cores"],
                f"{node['peak_rss_anon_mb']:.0f}",
                f"{node['vm_hwm_mb']:.0f}",
                f"{node['bytes_per_tx']:.0f}",
            ]
        )
    return [
        "Per node (CPU over the saturation window; RssAnon peak over the whole run, LMDB's "
        "mapped pages excluded; bytes on disk = LMDB pages in use / transactions stored):",
        "",
        *_table(
            ["node", "CPU s", "cores busy", "peak RssAnon MB", "VmHWM MB", "disk bytes/tx"], rows
        ),
        "",
        f"Load generator CPU over the run: {res['bench_cpu_s']:.1f} s. Result check: "
        f"{r.get('result_check', {})} (tx_get on a random sample).",
        "",
    ]


def _render_ceiling(r: dict[str, Any]) -> list[str]:
    v = r["verify_per_s"]
    return [
        f"Ceiling = Ed25519 verify rate of the node's facade ({v['facade_backend']}) measured in "
        f"this run, {_fmt_int(v['facade'])}/s per core, x {r['machine']['cores']} cores / "
        f"{r['validators']} validators = {_fmt_int(r['ceiling_tps'])} tx/s (every validator "
        f"checks every signature once). Libraries on one core: cryptography "
        f"{_fmt_int(v['cryptography'])}/s, libsodium (PyNaCl) {_fmt_int(v['libsodium'])}/s.",
        "",
    ]


def render(results: dict[str, Any], intro: Sequence[str]) -> str:
    lines = list(intro)
    for name in ("full", "quick"):
        if name in results:
            lines += render_headline(name, results[name])
    for name, section in sorted(results.items()):
        if name in ("full", "quick") or not isinstance(section, dict):
            continue
        if "markdown" in section:
            lines += [f"### {section.get('title', name)} — measured {section['date']}", ""]
            lines += [f"Command: `{section['command']}`", ""]
            lines += section["markdown"]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"
