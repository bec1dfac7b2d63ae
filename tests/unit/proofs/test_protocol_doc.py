"""docs/PROTOCOL.md against the implementation: the document must stand on its own (no
path into the source tree), name every offline rule with the title the verifier prints,
carry the report page's style sheet verbatim (a verifier rebuilds the page from the text),
and list every published vector file."""

from __future__ import annotations

import re
from pathlib import Path

import vectorkit

from node.proofs.report import REPORT_VERSION, STYLE
from node.proofs.rules import RULES

DOC = (Path(__file__).resolve().parents[3] / "docs" / "PROTOCOL.md").read_text()


def test_no_path_into_the_source_tree() -> None:
    assert re.findall(r"node/|\.py\b|consensus/|p2p/|simulator/", DOC) == []


def test_every_rule_is_specified_with_its_title() -> None:
    rows = dict(re.findall(r"^\| ([a-z0-9-]+) \| (.+?) \|$", DOC, re.M))
    for rule_id, title in RULES.items():
        assert rows.get(rule_id) == title, rule_id


def test_the_report_page_is_specified_verbatim() -> None:
    assert f"`{STYLE}`" in DOC
    assert f"### 18.3 The report page (report version {REPORT_VERSION})" in DOC
    assert f"(report version {REPORT_VERSION}). Check both" in DOC


def test_every_vector_file_is_listed() -> None:
    for name in [*vectorkit.DETERMINISTIC, "documents.json", "bundles.json"]:
        assert f"| {name} |" in DOC, name
