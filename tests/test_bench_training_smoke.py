"""Smoke test of examples/bench_training.py: every row trains, the table and the JSON say the same thing."""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture()
def script(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    return importlib.import_module("bench_training")


def test_quick_run_trains_every_row_and_writes_json(
    script: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "t.json"
    report = script.main(["--quick", "--workers", "0", "--threads", "1", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    names = [r["name"] for r in report["rows"]]
    assert names[0] == "no augmentation" and names[1].startswith("crop and flip")
    assert any("cifar10-lstm" in n for n in names) and any("RandAugment" in n for n in names)
    for row in report["rows"]:
        assert row["images_per_s"] > 0 and len(row["repeats"]) == 1
        assert math.isfinite(row["final_train_loss"])  # trained: not the NaN placeholder
    assert report["rows"][0]["own_ms_per_image"] is None
    assert all(r["own_ms_per_image"] > 0 for r in report["rows"][1:])
    printed = capsys.readouterr().out
    assert all(n in printed for n in names)


def test_bad_arguments_exit(script: ModuleType) -> None:
    with pytest.raises(SystemExit):
        script.parse_args(["--images", "10", "--batch-size", "64"])
