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


def _template() -> list[str]:
    """The literal text of the report template in section 18.3: each template line split at
    its {placeholders}, without the "..." comment lines."""
    section = DOC.split("### 18.3 The report page", 1)[1]
    block = section.split("```\n", 2)[1]
    fragments: list[str] = []
    for line in block.splitlines():
        if line.lstrip().startswith("..."):
            continue
        fragments += [f for f in re.split(r"\{[^{}]*\}", line) if len(f.strip()) > 3]
    return fragments


def test_the_report_template_text_is_what_the_renderer_writes() -> None:
    """Every literal fragment of the specified template occurs in a rendered page (the
    published bundle's), so the spec and the renderer say the same words."""
    import json

    files = json.loads((vectorkit.VECTORS / "bundles.json").read_text())["files"]
    page = files["report.html"]
    fragments = _template()
    assert len(fragments) > 25
    missing = [f for f in fragments if f not in page]
    assert missing == []
