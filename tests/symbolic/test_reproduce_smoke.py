"""examples/reproduce_symbolic.py --smoke runs every row end to end and writes its JSON."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "reproduce_symbolic.py"


def test_smoke_run_prints_every_row_and_writes_json(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("reproduce_symbolic_example", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "result.json"
    result = module.main(["--smoke", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    rows = [r["row"] for r in result["table"]]
    assert rows == [r.strip() for r in module.ROWS]
    for r in result["table"]:
        assert 0.0 <= r["test_acc_mean"] <= 100.0 and len(r["per_seed"]) == 1
    assert result["table"][0]["reported"] == 76.40
    assert set(result["chosen_seq_len"]) == {"+ random rewrites", "+ learned rewrites"}
    for ex in result["transform_examples"]:
        assert ex["tfs"] and all(tf.startswith("sym.") for tf in ex["tfs"])
