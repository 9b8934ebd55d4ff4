"""Merge reports of ``reproduce_tanda.py`` runs that differ only in their seeds into one report.

A long table is often measured in pieces (``--first-seed 1 --seeds 2`` after a run of seed 0). This joins the pieces:
each row's per-seed accuracies are put in seed order and its mean and standard deviation recomputed. Runs must agree
on everything that defines the end model and the rows (data, labels, model, schedule, p, order, TF set, ...); a seed
measured twice is refused rather than averaged, and so is a fitted row whose policy differs between the pieces.

Run::

    python examples/merge_results.py runs/c10_seed0/results.json runs/c10_seeds12/results.json --out runs/c10_3seeds
    python examples/merge_results.py A/results.json B/results.json --rows tanda-lstm --out C   # only that row
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from reproduce_tanda import mean_std, print_table, write_report

# Settings that must agree; seeds, threads, workers, device, versions and the fit record may differ between pieces.
SAME = (
    "dataset",
    "labels",
    "pool_images",
    "image_size",
    "test_images",
    "model",
    "epochs",
    "batch_size",
    "optimizer",
    "schedule",
    "p_augment",
    "policy_order",
    "interpolation",
    "tfs",
    "seq_len",
    "smoke",
)


def _same_policies(reports: list[dict[str, Any]]) -> None:
    """A fitted row must come from one policy in every piece (same fit arguments and TF frequencies).

    A fit argument recorded as ``None`` is the same fit as one not recorded at all (reports written before an
    option existed leave it out)."""
    seen: dict[str, Any] = {}
    for rep in reports:
        for aug, fit in rep.get("fits", {}).items():
            args = {k: v for k, v in (fit.get("fit_args") or {}).items() if v is not None}
            key = (json.dumps(args, sort_keys=True), json.dumps(fit.get("top_tfs")))
            if seen.setdefault(aug, key) != key:
                raise ValueError(f"row {aug!r} was measured with different policies in different reports")


def merge(reports: list[dict[str, Any]], keep: list[str] | None = None) -> dict[str, Any]:
    """One report from ``reports`` (see the module docstring), of the rows ``keep`` (default: all); raises
    ``ValueError`` when they cannot be joined."""
    if not reports:
        raise ValueError("nothing to merge")
    if keep is not None:
        reports = [{**rep, "rows": [r for r in rep["rows"] if r["aug"] in keep]} for rep in reports]
        reports = [{**rep, "fits": {k: v for k, v in rep.get("fits", {}).items() if k in keep}} for rep in reports]
        if not any(rep["rows"] for rep in reports):
            raise ValueError(f"no report holds the rows {keep}")
    first = reports[0]["settings"]
    for rep in reports[1:]:
        differing = [k for k in SAME if rep["settings"].get(k) != first.get(k)]
        if differing:
            raise ValueError(f"the reports differ in {differing}; only the seeds may differ")
    _same_policies(reports)
    rows: dict[str, dict[str, Any]] = {}
    per_seed: dict[str, dict[int, tuple[float, float | None, float]]] = {}
    for rep in reports:
        seeds = rep["settings"]["seeds"]
        for row in rep["rows"]:
            if len(row["accs"]) != len(seeds) or len(row["val_accs"]) not in (0, len(seeds)):
                raise ValueError(f"row {row['aug']!r} does not hold one accuracy per seed of {seeds}")
            rows.setdefault(row["aug"], row)
            got = per_seed.setdefault(row["aug"], {})
            for k, seed in enumerate(seeds):
                if seed in got:
                    raise ValueError(f"seed {seed} of row {row['aug']!r} appears in two reports")
                val = row["val_accs"][k] if row["val_accs"] else None
                got[seed] = (row["accs"][k], val, row["train_wall_s_per_seed"])
    all_seeds = sorted({s for got in per_seed.values() for s in got})
    merged_rows = []
    for aug, row in rows.items():
        seeds = sorted(per_seed[aug])
        if seeds != all_seeds:
            raise ValueError(f"row {aug!r} has seeds {seeds}, the merged table {all_seeds}: run the missing ones")
        accs = [per_seed[aug][s][0] for s in seeds]
        vals = [per_seed[aug][s][1] for s in seeds]
        m, sd = mean_std(accs)
        merged_rows.append(
            {
                **row,
                "acc_mean": round(m, 3),
                "acc_std": round(sd, 3),
                "accs": accs,
                # Validation only where every piece measured it.
                "val_accs": [] if None in vals else vals,
                "train_wall_s_per_seed": round(sum(per_seed[aug][s][2] for s in seeds) / len(seeds), 1),
            }
        )
    fits: dict[str, Any] = {}
    for rep in reports:
        fits.update(rep.get("fits", {}))
    notes = [n for rep in reports for n in rep.get("notes", [])]
    notes.append(f"merged from {len(reports)} runs that differ only in their seeds (merge_results.py)")
    return {
        **reports[0],
        "settings": {**first, "seeds": all_seeds},
        "rows": merged_rows,
        "fits": fits,
        "notes": list(dict.fromkeys(notes)),
        "command": " && ".join(rep["command"] for rep in reports),
        "total_wall_s": round(sum(rep.get("total_wall_s", 0.0) for rep in reports), 1),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("reports", type=Path, nargs="+", help="results.json files of reproduce_tanda.py")
    ap.add_argument("--out", type=Path, required=True, help="folder for the merged results.json and results.md")
    ap.add_argument("--rows", help="comma-separated rows to keep (e.g. tanda-lstm); default: every row")
    a = ap.parse_args(argv)
    reports = []
    for path in a.reports:
        try:
            rep = json.loads(path.read_text())
            missing = [k for k in ("settings", "rows", "command") if k not in rep]
        except (OSError, ValueError) as exc:
            raise SystemExit(f"error: {path}: {exc}") from None
        if missing:
            raise SystemExit(f"error: {path} is not a reproduce_tanda.py report (no {', '.join(missing)})")
        reports.append(rep)
    try:
        merged = merge(reports, [r.strip() for r in a.rows.split(",")] if a.rows else None)
    except (ValueError, KeyError) as exc:
        raise SystemExit(f"error: cannot merge {', '.join(map(str, a.reports))}: {exc}") from None
    a.out.mkdir(parents=True, exist_ok=True)
    write_report(a.out, merged)
    print_table(merged)
    print(f"wrote {a.out / 'results.json'} and {a.out / 'results.md'}")
    return merged


if __name__ == "__main__":
    main()
