"""Write the published test vectors, tests/vectors/*.json (docs/PROTOCOL.md, "Test vectors").

    python scripts/make_vectors.py          # every file; documents.json runs openssl ts

The generators are tests/unit/proofs/vectorkit.py, docvectors.py and bundlevectors.py;
tests/unit/proofs/test_vectors.py checks the implementation against the files. Regenerate
only after a deliberate change of a format, and read the diff: a vector that changes is a
protocol change.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "unit" / "proofs")]

import bundlevectors  # noqa: E402
import docvectors  # noqa: E402
import vectorkit  # noqa: E402
from support.tsa import make_tsa, serve_tsa  # noqa: E402


def main() -> int:
    vectorkit.VECTORS.mkdir(parents=True, exist_ok=True)
    for name, build in vectorkit.DETERMINISTIC.items():
        (vectorkit.VECTORS / name).write_text(vectorkit.dump(build()))
        print(f"wrote tests/vectors/{name}")
    with tempfile.TemporaryDirectory() as tmp, serve_tsa(make_tsa(Path(tmp) / "tsa")) as tsa:
        documents = docvectors.documents(tsa)
    (vectorkit.VECTORS / "documents.json").write_text(vectorkit.dump(documents))
    print("wrote tests/vectors/documents.json")
    (vectorkit.VECTORS / "bundles.json").write_text(vectorkit.dump(bundlevectors.bundles()))
    print("wrote tests/vectors/bundles.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
