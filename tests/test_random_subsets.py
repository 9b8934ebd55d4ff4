"""examples/random_subsets.py: the subsets it draws and its comparison of fits with random subsets."""

from __future__ import annotations

import importlib
import json
import shlex
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture()
def script(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    return importlib.import_module("random_subsets")


def test_commands_draw_distinct_reproducible_subsets_of_the_set(script: ModuleType) -> None:
    lines = script.main(["commands", "--k", "3", "--size", "5", "--tfs", "mnist", "--table", "mnist600"])
    subsets = script.draw_subsets("mnist", 3, 5, 1000)
    assert len(subsets) == 3 and all(len(s) == 5 and len(set(s)) == 5 for s in subsets)
    assert len({tuple(s) for s in subsets}) == 3
    assert [shlex.split(line)[shlex.split(line).index("--tfs") + 1] for line in lines] == ["+".join(s) for s in subsets]
    assert all("--labels 600" in line and "--augs heuristic" in line for line in lines)
    with pytest.raises(SystemExit, match="--size"):
        script.draw_subsets("mnist", 1, 500, 0)


def _report(path: Path, aug: str, accs: list[float], fitted: bool) -> str:
    report = {"settings": {"seq_len": 2}, "rows": [{"aug": aug, "accs": accs, "val_accs": [a - 1 for a in accs]}]}
    if fitted:
        report["fits"] = {aug: {}}
    path.write_text(json.dumps(report))
    return str(path)


def test_summary_compares_the_means_of_fits_and_subsets(script: ModuleType, tmp_path: Path) -> None:
    subsets = [_report(tmp_path / f"s{i}.json", "heuristic", [80.0 + i, 82.0 + i], False) for i in range(3)]
    fits = [_report(tmp_path / f"f{i}.json", "tanda-lstm", [83.0 + 2 * i, 85.0 + 2 * i], True) for i in range(2)]
    (tmp_path / "summary.json").write_text("{}")  # a summary matched by a glob is skipped
    out = tmp_path / "out.json"
    result = script.main(
        ["summary", "--subsets", *subsets, "--fits", *fits, str(tmp_path / "summary.json"), "--out", str(out)]
    )
    assert json.loads(out.read_text())["fits_minus_subsets"] == result["fits_minus_subsets"]
    assert result["subsets"]["test"]["mean"] == 82.0 and result["fits"]["test"]["mean"] == 85.0
    assert result["fits_minus_subsets"]["test"] == 3.0 and result["fits_minus_subsets"]["val"] == 3.0
    assert result["fits_minus_subsets"]["test_se"] == pytest.approx((1 / 3 + 2 / 2) ** 0.5, abs=0.01)
    with pytest.raises(SystemExit, match="no fitted row"):
        script.main(["summary", "--subsets", *subsets, "--fits", *subsets])
    other = json.loads(Path(fits[0]).read_text())
    other["settings"]["seq_len"] = 3
    Path(fits[0]).write_text(json.dumps(other))
    with pytest.raises(SystemExit, match="differ in their settings"):
        script.main(["summary", "--subsets", *subsets, "--fits", *fits])
