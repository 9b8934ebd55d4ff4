"""The JSON report every measuring script ends with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_report(out: Path | None, result: dict[str, Any]) -> None:
    """Write ``result`` to ``out`` (its folder made if missing) and say where; nothing when ``out`` is ``None``."""
    if out is None:
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {out}")
