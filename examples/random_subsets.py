"""Is a fitted policy better than uniformly random sequences over a random subset of its TFs of the same size?

A default fit settles within a few steps on about 30 of the 56 TFs of the wide set (README, "One fit is one draw").
This script is the control for that: it draws random subsets of a TF set and prints the
``examples/reproduce_tanda.py`` commands that measure uniformly random sequences over each (``commands``), then
reads those reports beside the fitted policies' reports of the same table and the same end-model seeds and prints
and writes how the two compare (``summary``):

* every subset's test and validation accuracy, and the mean and spread over subsets;
* the same for the fits (one report per fit seed, as ``examples/fit_seeds.py`` reads them);
* the difference of the two means with its standard error (fits and subsets are independent draws), and the
  difference of the validation means.

Run::

    python examples/random_subsets.py commands --k 8 --size 30 --table small1000
    # ... run the printed commands, then:
    python examples/random_subsets.py summary --subsets runs/subset-small1000-*/results.json \\
        --fits examples/results/small1000-fit-seed*.json examples/results/defaults/small1000-new-user.json \\
        --out examples/results/small1000-random-subsets.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np

from learned_augment.ops import get_tfset

# The end-model settings of the README's digit tables (examples/reproduce_tanda.py flags).
TABLES = {
    "small1000": "--data ../shared/data/mnist --dataset mnist --pool-limit 1000 --labels 100 --seeds 10 --epochs 100 "
    "--threads 1 --val 900",
    "mnist600": "--data ../shared/data/mnist --dataset mnist --labels 600 --seeds 3 --epochs 60 --threads 1 --val 1000",
}


def draw_subsets(tfs: str, k: int, size: int, seed: int) -> list[list[str]]:
    """``k`` subsets of ``size`` TF ids of ``tfs``, subset ``j`` drawn by ``default_rng(seed + j)``, in set order."""
    ids = get_tfset(tfs).ids
    if not 0 < size <= len(ids):
        raise SystemExit(f"error: --size must lie in [1, {len(ids)}], got {size}")
    return [
        [ids[i] for i in sorted(np.random.default_rng(seed + j).choice(len(ids), size, replace=False))]
        for j in range(k)
    ]


def commands(args: argparse.Namespace) -> list[str]:
    lines = []
    for j, subset in enumerate(draw_subsets(args.tfs, args.k, args.size, args.seed)):
        tfs = shlex.quote("+".join(subset))
        lines.append(
            f"python examples/reproduce_tanda.py {TABLES[args.table]} --tfs {tfs} --seq-len 2 --p-augment 1 "
            f"--augs heuristic --out runs/subset-{args.table}-{j}"
        )
    print("\n".join(lines))
    return lines


def _row(path: Path, aug: str | None) -> dict[str, Any] | None:
    report = json.loads(path.read_text())
    if "rows" not in report:  # a summary among the reports a glob matched (small1000-fit-seeds.json)
        return None
    rows = {r["aug"]: r for r in report["rows"]}
    if aug is None:
        fitted = list(report.get("fits", {}))
        return rows.get(fitted[0]) if len(fitted) == 1 else None
    return rows.get(aug)


def _sd(a: np.ndarray) -> float:
    return float(a.std(ddof=1)) if len(a) > 1 else 0.0


def _spread(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    sd = _sd(a)
    return {
        "n": len(a),
        "mean": round(float(a.mean()), 2),
        "sd": round(sd, 2),
        "min": round(float(a.min()), 2),
        "max": round(float(a.max()), 2),
    }


# Settings that must agree between the fits' and the subsets' reports for the comparison to mean anything.
SAME = ("dataset", "labels", "pool_images", "seeds", "epochs", "model", "seq_len", "p_augment", "policy_order")


def _means(paths: list[Path], aug: str | None, what: str) -> list[dict[str, Any]]:
    out = []
    for path in paths:
        row = _row(path, aug)
        if row is None:
            continue
        val = row.get("val_accs") or []
        settings = json.loads(path.read_text()).get("settings", {})
        out.append(
            {
                "report": str(path),
                "test": float(np.mean(row["accs"])),
                "val": float(np.mean(val)) if val else None,
                "seeds": len(row["accs"]),
                "settings": {k: settings.get(k) for k in SAME},
            }
        )
    if not out:
        raise SystemExit(f"error: no {what} row found in the reports given")
    if len({m["seeds"] for m in out}) > 1:
        raise SystemExit(f"error: the {what} reports were run over different numbers of end-model seeds")
    return out


def summary(args: argparse.Namespace) -> dict[str, Any]:
    subsets = _means([Path(p) for p in args.subsets], "heuristic", "random-subset ('heuristic')")
    fits = _means([Path(p) for p in args.fits], None, "fitted")
    differ = {json.dumps(m.pop("settings"), sort_keys=True) for m in subsets + fits}
    if len(differ) > 1:
        raise SystemExit(f"error: the reports differ in their settings ({', '.join(SAME)}): {sorted(differ)}")
    s_raw, f_raw = (np.array([m["test"] for m in ms]) for ms in (subsets, fits))
    s_test, f_test = _spread(list(s_raw)), _spread(list(f_raw))
    se = float(np.hypot(_sd(s_raw) / np.sqrt(len(s_raw)), _sd(f_raw) / np.sqrt(len(f_raw))))
    vals = {name: [m["val"] for m in ms if m["val"] is not None] for name, ms in (("subsets", subsets), ("fits", fits))}
    result: dict[str, Any] = {
        "subsets": {
            "per_subset": subsets,
            "test": s_test,
            "val": _spread(vals["subsets"]) if vals["subsets"] else None,
        },
        "fits": {"per_fit": fits, "test": f_test, "val": _spread(vals["fits"]) if vals["fits"] else None},
        "fits_minus_subsets": {
            "test": round(float(f_raw.mean() - s_raw.mean()), 2),
            "test_se": round(se, 2),
            "val": round(float(np.mean(vals["fits"]) - np.mean(vals["subsets"])), 2)
            if vals["fits"] and vals["subsets"]
            else None,
        },
        "command": "python examples/random_subsets.py " + shlex.join(sys.argv[1:] if args.argv is None else args.argv),
    }
    print("| draws | n | test % mean ± sd (min..max) | validation % mean |")
    print("|---|---|---|---|")
    for name, part in (("random subsets", result["subsets"]), ("fitted policies", result["fits"])):
        t, v = part["test"], part["val"]
        vtext = f"{v['mean']:.2f}" if v else "-"
        print(f"| {name} | {t['n']} | {t['mean']:.2f} ± {t['sd']:.2f} ({t['min']:.2f}..{t['max']:.2f}) | {vtext} |")
    diff = result["fits_minus_subsets"]
    print(
        f"fitted minus random subsets: test {diff['test']:+.2f} ± {diff['test_se']:.2f} (s.e.), validation "
        f"{diff['val']:+.2f}"
        if diff["val"] is not None
        else f"fitted minus random subsets: test {diff['test']:+.2f}"
    )
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return result


def main(argv: list[str] | None = None) -> Any:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    c = sub.add_parser("commands", help="print the reproduce_tanda commands for random subsets")
    c.add_argument("--tfs", default="default")
    c.add_argument("--k", type=int, default=8)
    c.add_argument("--size", type=int, default=30)
    c.add_argument("--seed", type=int, default=1000)
    c.add_argument("--table", choices=sorted(TABLES), default="small1000")
    s = sub.add_parser("summary", help="compare the subsets' reports with the fits' reports")
    s.add_argument("--subsets", nargs="+", required=True, help="reports of the random-subset runs")
    s.add_argument("--fits", nargs="+", required=True, help="reports with one fitted row each (fit seeds)")
    s.add_argument("--out", help="write the comparison as JSON here")
    args = parser.parse_args(argv)
    args.argv = argv
    return commands(args) if args.what == "commands" else summary(args)


if __name__ == "__main__":
    main()
