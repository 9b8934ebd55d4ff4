"""examples/merge_results.py: reports of runs that differ only in their seeds join into one table."""

from __future__ import annotations

import copy
import importlib
import json
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture()
def script(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    return importlib.import_module("merge_results")


def _report(seeds: list[int], accs: dict[str, list[float]]) -> dict:
    settings = {k: 1 for k in ("labels", "pool_images", "test_images", "epochs", "batch_size", "seq_len")}
    settings.update(dataset="cifar10", model="resnet20", p_augment=0.5, smoke=False, seeds=seeds)
    rows = [
        {
            "aug": aug,
            "label": aug,
            "recipe": "r",
            "acc_mean": sum(a) / len(a),
            "acc_std": 0.0,
            "accs": a,
            "val_accs": [x - 1 for x in a],
            "train_wall_s_per_seed": 10.0 * len(seeds),
            "paper": None,
        }
        for aug, a in accs.items()
    ]
    return {"settings": settings, "rows": rows, "fits": {}, "notes": [], "command": f"run {seeds}", "total_wall_s": 5}


def test_pieces_join_in_seed_order(script: ModuleType, tmp_path: Path) -> None:
    later = _report([1, 2], {"basic": [72.0, 74.0], "tanda-lstm": [75.0, 73.0]})
    first = _report([0], {"basic": [70.0], "tanda-lstm": [71.0]})
    paths = []
    for name, rep in (("b.json", later), ("a.json", first)):
        (tmp_path / name).write_text(json.dumps(rep))
        paths.append(str(tmp_path / name))
    merged = script.main([*paths, "--out", str(tmp_path / "out")])
    assert merged["settings"]["seeds"] == [0, 1, 2]
    lstm = next(r for r in merged["rows"] if r["aug"] == "tanda-lstm")
    assert lstm["accs"] == [71.0, 75.0, 73.0] and lstm["val_accs"] == [70.0, 74.0, 72.0]
    assert lstm["acc_mean"] == 73.0 and lstm["acc_std"] == 2.0
    assert json.loads((tmp_path / "out" / "results.json").read_text())["rows"] == merged["rows"]
    assert (tmp_path / "out" / "results.md").read_text().count("tanda-lstm") >= 1


def test_rows_picks_the_rows_measured_on_every_seed(script: ModuleType) -> None:
    first = _report([0], {"basic": [70.0], "tanda-lstm": [71.0]})
    later = _report([1], {"tanda-lstm": [75.0]})
    with pytest.raises(ValueError, match="basic"):
        script.merge([first, later])
    merged = script.merge([first, later], ["tanda-lstm"])
    assert [r["aug"] for r in merged["rows"]] == ["tanda-lstm"] and merged["rows"][0]["accs"] == [71.0, 75.0]
    with pytest.raises(ValueError, match="no report"):
        script.merge([first, later], ["autoaugment"])


def test_runs_that_differ_beyond_seeds_or_repeat_a_seed_are_refused(script: ModuleType) -> None:
    a = _report([0], {"basic": [70.0]})
    b = copy.deepcopy(a)
    b["settings"]["seeds"] = [1]
    b["settings"]["epochs"] = 20
    with pytest.raises(ValueError, match="epochs"):
        script.merge([a, b])
    with pytest.raises(ValueError, match="seed 0"):
        script.merge([a, copy.deepcopy(a)])
    c = copy.deepcopy(a)
    c["settings"]["seeds"] = [1]
    c["rows"].append({**c["rows"][0], "aug": "heuristic"})
    with pytest.raises(ValueError, match="heuristic"):  # measured on seed 1 only
        script.merge([a, c])
    d = copy.deepcopy(a)
    d["settings"]["seeds"] = [1]
    a["fits"] = {"basic": {"fit_args": {"steps": 500}, "top_tfs": [["x", 0.1]]}}
    d["fits"] = {"basic": {"fit_args": {"steps": 300}, "top_tfs": [["x", 0.1]]}}
    with pytest.raises(ValueError, match="different policies"):
        script.merge([a, d])


def test_an_unset_fit_argument_is_the_same_fit_as_one_not_recorded(script: ModuleType) -> None:
    """Reports written before an option existed lack it; later ones record its unset value as None."""
    a = _report([0], {"tanda-lstm": [74.0]})
    b = _report([1], {"tanda-lstm": [75.0]})
    a["fits"] = {"tanda-lstm": {"fit_args": {"steps": 500}, "top_tfs": [["x", 0.1]]}}
    b["fits"] = {"tanda-lstm": {"fit_args": {"steps": 500, "subset": None}, "top_tfs": [["x", 0.1]]}}
    assert script.merge([a, b])["rows"][0]["accs"] == [74.0, 75.0]
    b["fits"]["tanda-lstm"]["fit_args"]["subset"] = 10_000
    with pytest.raises(ValueError, match="different policies"):
        script.merge([a, b])


def test_a_file_that_is_not_a_report_is_one_error_line(script: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(SystemExit) as info:
        script.main([str(tmp_path / "x.json"), "--out", str(tmp_path / "o")])
    message = str(info.value.code)
    assert message.startswith("error:") and "x.json" in message and "\n" not in message
