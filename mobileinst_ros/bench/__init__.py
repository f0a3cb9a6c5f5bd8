"""mobileinst-bench: latency of MobileInst and peer heads on one CPU core."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_json(path: Path, result: Any) -> None:
    """Write a benchmark's result as indented JSON (its ``--json``), creating the folders above it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
