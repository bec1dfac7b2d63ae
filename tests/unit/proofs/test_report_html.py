"""The provenance report renders in headless Chromium: a screenshot is taken and the rendered
page shows the item's steps. Skipped only when Chromium is not installed (scripts/test
installs Debian's `chromium` when it runs as root)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from proofkit import CertifiedChain, StoreSource

from node.proofs import provenance

CHROMIUM_TIMEOUT_S = 90
WINDOW = (1200, 1600)


def chromium_binary() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip(
            "chromium is not installed and could not be installed here "
            "(scripts/test runs `apt-get install chromium` when it is root)"
        )
    return found


def run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    command = [
        chromium_binary(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *args,
    ]
    # Its own session, so that a timeout can end chromium's helper processes too.
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=CHROMIUM_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    finally:
        # Helpers (zygote, GPU, utility processes) must not outlive the test.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def png_facts(data: bytes) -> tuple[int, int, int]:
    """(width, height, distinct byte values of the image data): a blank page has few."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, width, height, idat = 8, 0, 0, b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


@pytest.fixture
def report(tmp_path: Path, busy_chain: CertifiedChain) -> Path:
    files = provenance.build_bundle(StoreSource(busy_chain), busy_chain.genesis, "pallet-1")
    out = tmp_path / "bundle"
    provenance.write_bundle(files, out)
    return out / "report.html"


def test_report_renders_in_headless_chromium(tmp_path: Path, report: Path) -> None:
    shot = tmp_path / "report.png"
    result = run_chromium(
        tmp_path, f"--screenshot={shot}", f"--window-size={WINDOW[0]},{WINDOW[1]}", report.as_uri()
    )
    assert result.returncode == 0, result.stderr[-2000:]
    width, height, distinct = png_facts(shot.read_bytes())
    assert (width, height) == WINDOW
    assert distinct > 40  # text, tables and colours, not a blank page


def test_rendered_page_shows_the_items_steps(tmp_path: Path, report: Path) -> None:
    result = run_chromium(tmp_path, "--dump-dom", report.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout.decode()
    sections = re.findall(r'<section id="item-\d+">.*?</section>', dom, flags=re.S)
    assert len(sections) == 3
    pallet = sections[0]
    rows = re.findall(r"<tr><td>(\d+)</td><td>[^<]*</td><td>\d+</td><td>([^<]+)</td>", pallet)
    assert rows == [
        ("0", "registered"),
        ("1", "event"),
        ("2", "transfer"),
        ("3", "event"),
        ("4", "transfer"),
    ]
    assert "Verified offline:" in dom and "Item pallet-1" in dom
