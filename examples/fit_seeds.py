"""How much does a fit depend on its seed, and does the fit's own final reward tell the good fits from the bad?

Reads reports of ``examples/reproduce_tanda.py`` that differ only in ``--fit-seed`` (one fitted row each, the same
end-model seeds) and the report(s) holding the baselines of the same table, then prints and writes:

* every fit's test and validation accuracy, its final reward (the mean reward of its last 20 steps) and its paired
  difference to each baseline over the end-model seeds
  ("wins" / "loses" when the mean difference exceeds its standard deviation, else "ties");
* the spread of the fits, and how many beat each baseline's mean;
* "restarts" replayed on these fits (fit k times, keep the highest final reward: no labels needed): over every
  k-subset, the fit with the highest final reward, its mean test and validation accuracy against the mean single
  fit, and the Spearman rank correlation between final reward and accuracy. ``--fresh-from N`` reports the same
  for the fits with seed >= N alone (fits not looked at when the rule was chosen). ``--criterion d_loss_last20``
  (the discriminator's mean loss over the last 20 steps: higher, more confused) or ``rg_ratio_last`` replays the
  same rule with another number from the fit's summary in place of the final reward.

Run::

    python examples/fit_seeds.py --fits examples/results/small1000-fit-seed*.json \\
        examples/results/defaults/small1000-new-user.json --baselines examples/results/small1000-baselines.json \\
        examples/results/defaults/small1000-new-user.json --row tanda-lstm --fresh-from 8 \\
        --out examples/results/small1000-fit-seeds.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np
from _report import write_report


def _rows(path: Path) -> dict[str, dict[str, Any]]:
    return {r["aug"]: r for r in json.loads(path.read_text())["rows"]}


CRITERIA = {"reward_last20": "reward", "d_loss_last20": "d_loss", "rg_ratio_last": "rg_ratio"}


def load_fits(paths: list[Path], row: str, criterion: str = "reward_last20") -> dict[int, dict[str, Any]]:
    """Fit seed -> test accuracies, validation accuracies, final reward and ``criterion`` of the fitted row."""
    fits: dict[int, dict[str, Any]] = {}
    for path in paths:
        report = json.loads(path.read_text())
        if row not in report.get("fits", {}):
            continue
        fit = report["fits"][row]
        found = _rows(path)[row]
        seed = int(fit.get("fit_args", {}).get("seed", report["settings"]["fit"].get("seed", 0)))
        if seed in fits:
            raise SystemExit(f"error: two reports hold fit seed {seed} ({path})")
        fits[seed] = {
            "accs": found["accs"],
            "val_accs": found.get("val_accs") or [],
            "final_reward": fit["reward_last20"],
            "criterion": _criterion(fit, criterion, path),
            "report": str(path),
        }
    if not fits:
        raise SystemExit(f"error: no report holds a fitted row {row!r}")
    return fits


def _criterion(fit: dict[str, Any], name: str, path: Path) -> float:
    value = fit.get(name)
    if not isinstance(value, (int, float)):
        raise SystemExit(f"error: {path} has no {name} for its fit (got {value!r})")
    return float(value)


def _ranks(a: np.ndarray) -> np.ndarray:
    """Ranks from 0, ties sharing their mean rank (as Spearman's correlation takes them)."""
    ranks = np.empty(len(a))
    ranks[np.argsort(a, kind="stable")] = np.arange(len(a))
    for value in np.unique(a):
        tied = a == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(_ranks(np.asarray(a)), _ranks(np.asarray(b)))[0, 1])


def restarts_replay(fits: dict[int, dict[str, Any]], k: int, name: str = "reward") -> dict[str, float]:
    """Every k-subset of the fits: the pick by the highest criterion against the mean single fit."""
    seeds = sorted(fits)
    test = np.array([np.mean(fits[s]["accs"]) for s in seeds])
    val = np.array([np.mean(fits[s]["val_accs"]) if fits[s]["val_accs"] else np.nan for s in seeds])
    score = np.array([fits[s]["criterion"] for s in seeds])
    picks = [max(c, key=lambda i: score[i]) for c in itertools.combinations(range(len(seeds)), k)]
    return {
        "fits": len(seeds),
        "k": k,
        "pick_test": round(float(test[picks].mean()), 2),
        "single_test": round(float(test.mean()), 2),
        "pick_val": round(float(val[picks].mean()), 2),
        "single_val": round(float(val.mean()), 2),
        "worst_pick_test": round(float(test[picks].min()), 2),
        f"spearman_{name}_test": round(spearman(score, test), 2),
        f"spearman_{name}_val": round(spearman(score, val), 2),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fits", type=Path, nargs="+", required=True, help="reports of fits that differ in --fit-seed")
    p.add_argument("--baselines", type=Path, nargs="+", required=True, help="reports holding the baseline rows")
    p.add_argument("--row", default="tanda-lstm", help="the fitted row of the --fits reports")
    p.add_argument("--k", type=int, nargs="+", default=[2, 3], help="restarts to replay")
    p.add_argument("--fresh-from", type=int, default=None, help="also report fits with seed >= N alone")
    p.add_argument(
        "--criterion", choices=sorted(CRITERIA), default="reward_last20", help="the fit summary's number to pick by"
    )
    p.add_argument("--out", type=Path, default=None, help="write the summary as JSON here")
    a = p.parse_args(argv)
    fits = load_fits(a.fits, a.row, a.criterion)
    short = CRITERIA[a.criterion]
    baselines: dict[str, dict[str, Any]] = {}
    for path in a.baselines:
        baselines.update({k: v for k, v in _rows(path).items() if k != a.row})
    per_fit = {}
    print(f"{'fit seed':>8} {'test':>6} {'val':>6} {'reward':>7}  " + "  ".join(f"vs {b}" for b in baselines))
    for seed in sorted(fits):
        f = fits[seed]
        versus = {}
        for name, base in baselines.items():
            n = min(len(f["accs"]), len(base["accs"]))
            d = np.array(f["accs"][:n]) - np.array(base["accs"][:n])
            sd = float(d.std(ddof=1)) if n > 1 else 0.0
            verdict = "wins" if d.mean() > sd else ("loses" if -d.mean() > sd else "ties")
            versus[name] = {"diff": round(float(d.mean()), 2), "sd": round(sd, 2), "verdict": verdict}
        val = round(float(np.mean(f["val_accs"])), 2) if f["val_accs"] else None
        per_fit[seed] = {"test": round(float(np.mean(f["accs"])), 2), "val": val, "final_reward": f["final_reward"]}
        if a.criterion != "reward_last20":
            per_fit[seed][a.criterion] = f["criterion"]
        per_fit[seed]["versus"] = versus
        cells = "  ".join(f"{v['diff']:+.2f} ± {v['sd']:.2f} {v['verdict']}" for v in versus.values())
        print(
            f"{seed:>8} {per_fit[seed]['test']:>6.2f} {val if val is not None else '-':>6} "
            f"{f['final_reward']:>7.2f}  {cells}"
        )
    tests = np.array([v["test"] for v in per_fit.values()])
    spread = {"fits": len(tests), "mean": round(float(tests.mean()), 2), "sd": round(float(tests.std(ddof=1)), 2)}
    spread.update(min=round(float(tests.min()), 2), max=round(float(tests.max()), 2))
    above = {b: int((tests > np.mean(base["accs"])).sum()) for b, base in baselines.items()}
    verdicts = {
        b: {v: sum(1 for f in per_fit.values() if f["versus"][b]["verdict"] == v) for v in ("wins", "ties", "loses")}
        for b in baselines
    }
    print(
        f"\n{spread['fits']} fits: {spread['mean']:.2f} ± {spread['sd']:.2f} (min {spread['min']}, max {spread['max']})"
    )
    for b, base in baselines.items():
        print(f"  vs {b} ({np.mean(base['accs']):.2f}): {above[b]} fits above its mean; paired: {verdicts[b]}")
    groups = {"all": fits}
    if a.fresh_from is not None:
        groups[f"seed >= {a.fresh_from}"] = {s: f for s, f in fits.items() if s >= a.fresh_from}
    replay = {}
    print(f"\nrestarts replayed (the highest {a.criterion} of every k-subset):")
    for label, group in groups.items():
        for k in a.k:
            if len(group) < k:
                continue
            r = restarts_replay(group, k, short)
            replay[f"{label}, k={k}"] = r
            print(
                f"  {label}, k={k}: pick {r['pick_test']:.2f} (val {r['pick_val']:.2f}) vs single"
                f" {r['single_test']:.2f} (val {r['single_val']:.2f}); worst pick {r['worst_pick_test']:.2f};"
                f" Spearman({short}, test)"
                f" {r[f'spearman_{short}_test']:+.2f}, ({short}, val) {r[f'spearman_{short}_val']:+.2f}"
            )
    args = sys.argv[1:] if argv is None else argv
    result = {
        "command": shlex.join(["python", "examples/fit_seeds.py", *args]),
        "per_fit": per_fit,
        "spread": spread,
        "fits_above_baseline_mean": above,
        "paired_verdicts": verdicts,
        "restarts_replay": replay,
        **({"criterion": a.criterion} if a.criterion != "reward_last20" else {}),
        "baselines": {b: round(float(np.mean(base["accs"])), 2) for b, base in baselines.items()},
    }
    write_report(a.out, result)
    return result


if __name__ == "__main__":
    main()
