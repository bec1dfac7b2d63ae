"""The simulator's modules live next to the tests (tests/ has no packages): make them
importable, for the tests here and for scripts/simulate."""

from __future__ import annotations

import sys
from pathlib import Path

SIM_DIR = str(Path(__file__).resolve().parent)
if SIM_DIR not in sys.path:
    sys.path.insert(0, SIM_DIR)
