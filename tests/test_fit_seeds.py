"""examples/fit_seeds.py: the spread of fits over their seeds, and restarts=k replayed by final reward."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture()
def script(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    return importlib.import_module("fit_seeds")


def _fit_report(path: Path, seed: int, accs: list[float], reward: float, d_loss: float = 0.5) -> Path:
    report = {
        "settings": {"fit": {"seed": seed}},
        "rows": [{"aug": "tanda-lstm", "accs": accs, "val_accs": [a - 1 for a in accs]}],
        "fits": {"tanda-lstm": {"reward_last20": reward, "d_loss_last20": d_loss, "fit_args": {"seed": seed}}},
    }
    path.write_text(json.dumps(report))
    return path


def test_table_verdicts_and_the_restarts_replay(script: ModuleType, tmp_path: Path) -> None:
    # The higher the final reward, the better the fit: the pick of every pair is its better fit.
    fits = [_fit_report(tmp_path / f"f{s}.json", s, [80.0 + s, 81.0 + s, 79.0 + s], reward=-10.0 + s) for s in range(4)]
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"rows": [{"aug": "crop", "accs": [81.0, 82.0, 80.0]}]}))
    out = tmp_path / "summary.json"
    result = script.main(["--fits", *map(str, fits), "--baselines", str(base), "--k", "2", "--out", str(out)])
    assert json.loads(out.read_text())["spread"] == result["spread"]
    assert result["spread"] == {"fits": 4, "mean": 81.5, "sd": 1.29, "min": 80.0, "max": 83.0}
    assert [result["per_fit"][s]["versus"]["crop"]["verdict"] for s in range(4)] == ["loses", "ties", "wins", "wins"]
    replay = result["restarts_replay"]["all, k=2"]
    # pairs (0,1) (0,2) (0,3) (1,2) (1,3) (2,3) pick 1 2 3 2 3 3: mean of 81, 82, 83, 82, 83, 83
    assert replay["pick_test"] == pytest.approx(82.33, abs=0.01)
    assert replay["single_test"] == 81.5 and replay["spearman_reward_test"] == 1.0
    assert result["fits_above_baseline_mean"] == {"crop": 2}


def test_another_criterion_picks_by_its_own_number(script: ModuleType, tmp_path: Path) -> None:
    # The discriminator's loss runs against accuracy here while the reward runs with it: each rule picks its way.
    fits = [
        _fit_report(tmp_path / f"f{s}.json", s, [80.0 + s, 81.0 + s], reward=float(s), d_loss=1.0 - 0.1 * s)
        for s in range(3)
    ]
    args = ["--fits", *map(str, fits), "--baselines", str(fits[0]), "--k", "2"]
    by_reward = script.main(args)["restarts_replay"]["all, k=2"]
    result = script.main([*args, "--criterion", "d_loss_last20"])
    by_d_loss = result["restarts_replay"]["all, k=2"]
    assert by_reward["spearman_reward_test"] == 1.0 and by_d_loss["spearman_d_loss_test"] == -1.0
    # pairs (0,1) (0,2) (1,2): the highest d_loss is the lower seed, 80.5 80.5 81.5; by reward 81.5 82.5 82.5
    assert by_d_loss["pick_test"] == pytest.approx(80.83, abs=0.01)
    assert by_reward["pick_test"] == pytest.approx(82.17, abs=0.01)
    assert result["criterion"] == "d_loss_last20" and result["per_fit"][2]["d_loss_last20"] == pytest.approx(0.8)
    assert "criterion" not in script.main(args)


def test_two_reports_of_one_seed_are_refused(script: ModuleType, tmp_path: Path) -> None:
    a = _fit_report(tmp_path / "a.json", 3, [80.0], -1.0)
    b = _fit_report(tmp_path / "b.json", 3, [81.0], -2.0)
    with pytest.raises(SystemExit, match="fit seed 3"):
        script.main(["--fits", str(a), str(b), "--baselines", str(a)])
