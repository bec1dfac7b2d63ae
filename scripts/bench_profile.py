"""py-spy on the node processes during a benchmark window, and a text summary of what it saw.

    scripts/bench --quick --profile /tmp/prof          # records every node during saturation
    .venv/bin/python scripts/bench_profile.py /tmp/prof/node0.txt   # summarise one again

Recording uses `py-spy record --format raw --threads --nonblocking` (collapsed stacks, one
line per distinct stack with its sample count), so the nodes are not paused while sampled,
at 100 Hz (BENCH_PROFILE_HZ=400 in the environment for a short window with more samples).
The summary splits samples by thread (the trio event loop vs worker threads) and lists the
functions with the most samples on top of the stack (self) and anywhere in it (inclusive).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

SAMPLE_RATE_HZ = int(os.environ.get("BENCH_PROFILE_HZ", "100"))
_THREAD = re.compile(r"^(?:process \d+:)?thread \((?:0x)?[0-9a-fA-F]+\)")


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def record(
    pids: list[int], seconds: float, out_dir: Path, *, idle: bool = False, gil: bool = False
) -> list[Path]:
    """Sample each pid for `seconds` (in parallel); returns the raw files written."""
    exe = py_spy()
    if exe is None:
        raise RuntimeError("py-spy not found: `.venv/bin/pip install -e '.[bench]'`")
    out_dir.mkdir(parents=True, exist_ok=True)
    procs = []
    paths = []
    for i, pid in enumerate(pids):
        path = out_dir / f"node{i}.txt"
        cmd = [exe, "record", "-p", str(pid), "-d", str(max(1, int(seconds)))]
        cmd += ["-r", str(SAMPLE_RATE_HZ), "-f", "raw", "-t", "--nonblocking", "-o", str(path)]
        if idle:
            cmd.append("--idle")
        if gil:
            cmd.append("--gil")
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        paths.append(path)
    for proc in procs:
        try:
            proc.wait(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return [p for p in paths if p.exists()]


def record_later(
    pids: list[int], delay_s: float, seconds: float, out_dir: Path, *, gil: bool = False
) -> threading.Thread:
    def run() -> None:
        time.sleep(delay_s)
        try:
            record(pids, seconds, out_dir, gil=gil)
        except (RuntimeError, OSError) as exc:
            print(f"bench: profiling failed: {exc}", file=sys.stderr)

    thread = threading.Thread(target=run, name="py-spy", daemon=True)
    thread.start()
    return thread


def _frame_name(frame: str) -> str:
    # "function (module/path.py:123)" -> "function (module/path.py)"; line numbers split hot
    # functions into many rows, which hides them.
    return re.sub(r":\d+\)$", ")", frame.strip())


def summarize(path: Path, top: int = 25) -> str:
    threads: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = "?"
        if frames and _THREAD.match(frames[0]):
            thread = frames.pop(0)
        if frames and frames[0].startswith("process "):
            frames.pop(0)
        names = [_frame_name(f) for f in frames]
        role = "loop" if "MainThread" in thread else "worker"
        threads[role] += count
        total += count
        if names:
            self_time[names[-1]] += count
        for name in set(names):
            inclusive[name] += count
    seconds = total / SAMPLE_RATE_HZ
    out = [f"{path}: {total} samples ({seconds:.1f} thread-seconds busy)", "", "by thread:"]
    out += [f"  {n:>7}  {name}" for name, n in threads.most_common(8)]
    out += ["", "self (top of stack):"]
    out += [
        f"  {n:>7}  {100 * n / max(1, total):5.1f}%  {name}"
        for name, n in self_time.most_common(top)
    ]
    out += ["", "inclusive:"]
    out += [
        f"  {n:>7}  {100 * n / max(1, total):5.1f}%  {name}"
        for name, n in inclusive.most_common(top)
    ]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description="summarise py-spy raw files")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args(argv)
    for f in args.files:
        print(summarize(f, args.top))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
