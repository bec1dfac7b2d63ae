"""[node] log_format = "json": one JSON object per line."""

from __future__ import annotations

import json
import logging

from node.daemon.node import JsonLogFormatter


def test_json_log_lines() -> None:
    record = logging.LogRecord("chain.node", logging.WARNING, __file__, 1, "height %d", (7,), None)
    line = JsonLogFormatter().format(record)
    entry = json.loads(line)
    assert "\n" not in line
    assert entry["level"] == "warning" and entry["logger"] == "chain.node"
    assert entry["message"] == "height 7" and entry["time"].endswith("Z")
