"""Copy fitted artifacts into ``learned_augment/pretrained/`` and write their model cards.

Each card is built from the artifact's own metadata (so a test can check the two agree) plus the measured end-model
result from the reproduction that used it. Run after the fits and reproductions:

    python examples/make_pretrained.py --tanda-mnist runs/tanda_mnist --cifar10 runs/cifar10 --mrgan runs/mrgan
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from learned_augment.io import read_metadata

DEST = Path(__file__).resolve().parent.parent / "learned_augment" / "pretrained"


def _row(results: dict[str, Any], aug: str) -> dict[str, Any] | None:
    return next((r for r in results["rows"] if r["aug"] == aug), None)


# Where each artifact should and should not be used, from the measured tables (``--limits NAME=TEXT``).
LIMITS: dict[str, str] = {}


def _ship(src: Path, name: str, card: dict[str, Any]) -> None:
    meta = read_metadata(src)
    card = {"name": name, "kind": meta["kind"], "file_bytes": src.stat().st_size, **card}
    limits = LIMITS.get(name)
    if limits is None and (DEST / f"{name}.json").exists():
        limits = json.loads((DEST / f"{name}.json").read_text()).get("limits")
    if limits:
        card["limits"] = limits
    if meta["kind"] == "policy":
        prov = meta.get("provenance", {})
        card.update(
            model=meta["model"],
            tfs=meta["tfs"],
            tfset_name=meta.get("tfset_name"),
            seq_len=meta["seq_len"],
            fit={
                "steps": prov.get("steps"),
                "wall_time_s": prov.get("wall_time_s"),
                "device": prov.get("device"),
                "n_items": prov.get("n_items"),
                "data_fingerprint": prov.get("data_fingerprint"),
                "args": prov.get("fit_args"),
            },
        )
    else:
        prov = meta.get("provenance", {})
        card.update(
            fit={
                "steps": prov.get("steps"),
                "wall_time_s": prov.get("wall_time_s"),
                "device": prov.get("device"),
                "settings": prov.get("settings"),
            }
        )
    shutil.copyfile(src, DEST / f"{name}.safetensors")
    (DEST / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"shipped {name} ({card['file_bytes']} bytes)")


def _merge_results(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """One report from several runs with the same end-model recipe; later rows replace earlier ones of that aug.

    The merged report keeps the first report's settings; each row remembers the command that measured it.
    """
    keys = ("dataset", "labels", "seeds", "model", "epochs", "batch_size", "optimizer", "schedule", "p_augment")
    keys += ("policy_order", "tfs", "seq_len", "smoke", "image_size", "interpolation", "pool_images")
    first = reports[0]
    rows: dict[str, dict[str, Any]] = {}
    for rep_ in reports:
        differing = [k for k in keys if rep_["settings"].get(k) != first["settings"].get(k)]
        if differing:
            raise SystemExit(f"error: results differ in end-model settings {differing}; they cannot share a card")
        for row in rep_["rows"]:
            rows[row["aug"]] = {**row, "command": rep_["command"]}
    return {**first, "rows": list(rows.values())}


# End-model settings a baseline row (no policy) shares with the policy rows it is compared with.
BASELINE_KEYS = ("dataset", "labels", "seeds", "model", "epochs", "batch_size", "optimizer", "schedule", "image_size")
BASELINE_KEYS += ("pool_images", "test_images")
BASELINE_ROWS = ("basic", "trivialaugment", "randaugment", "autoaugment")


def _add_baselines(res: dict[str, Any], paths: list[Path] | None) -> dict[str, Any]:
    """``res`` with the torchvision baseline rows of other reports of the same end model (same data, labels,
    seeds, model and schedule, as far as both reports record them; their p, TF set and length do not apply to a
    baseline) appended."""
    rows = list(res["rows"])
    for path in paths or []:
        other = json.loads(Path(path).read_text())
        # Older reports lack some keys (image_size): only keys both record can differ.
        mine, theirs = res["settings"], other["settings"]
        differing = [k for k in BASELINE_KEYS if k in mine and k in theirs and mine[k] != theirs[k]]
        if differing:
            raise SystemExit(f"error: {path}: baselines of another end model (differs in {differing})")
        rows += [{**r, "command": other["command"]} for r in other["rows"] if r["aug"] in BASELINE_ROWS]
    return {**res, "rows": rows}


def _tfs_text(settings: dict[str, Any]) -> str:
    """The TF set of a report's settings (``"default (K=56)"``) in words."""
    name, _, size = str(settings["tfs"]).partition(" ")
    words = {"mnist": "TANDA's 25 MNIST TFs", "cifar10": "TANDA's 33 CIFAR-10 TFs"}
    return words.get(name, f"the wide {name!r} TF set {size}".rstrip() if name == "default" else name)


def _reproduced_card(res: dict[str, Any], aug: str, data: str, fit_command: str | None, task: str) -> dict[str, Any]:
    """Card of a policy fitted and measured by ``reproduce_tanda.py``: its row of ``res`` beside the baselines."""
    row = _row(res, aug)
    if row is None:
        raise SystemExit(f"error: the results hold no {aug!r} row")
    tfs = _tfs_text(res["settings"])
    keys = ("heuristic", *BASELINE_ROWS)
    base = {k: _row(res, k) for k in keys if _row(res, k)}
    vs = f" vs {base['heuristic']['acc_mean']:.2f}% (random sequences)" if "heuristic" in base else ""
    settings = res["settings"]
    return {
        "summary": f"{row['label']} policy over {tfs}, L={settings['seq_len']}; {row['acc_mean']:.2f}%{vs} with "
        f"{settings['labels']} labels, {settings['epochs']} epochs, {len(row['accs'])} seeds",
        "data": data,
        "fit_command": fit_command or res["command"],
        "end_model_command": row.get("command", res["command"]),
        "seed": settings["fit"]["seed"],
        "end_model": {"task": task, "recipe": row["recipe"], "accuracy": row, "baselines": base, "settings": settings},
    }


def _merge_mrgan(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """One ``reproduce_mrgan.py`` report from runs of other label fractions with the same refiner settings."""
    first = reports[0]
    for rep in reports[1:]:
        mine = {k: v for k, v in rep["settings"].items() if k != "fractions"}
        if mine != {k: v for k, v in first["settings"].items() if k != "fractions"}:
            raise SystemExit("error: the MR-GAN reports were made with different settings; they cannot share a card")
    merged = {**first, "results": {}, "results_val": {}}
    for rep in reports:
        merged["results"].update(rep["results"])
        merged["results_val"].update(rep.get("results_val", {}))
    merged["command"] = " && ".join(_mrgan_command(rep["settings"]) for rep in reports)
    return merged


def _mrgan_command(settings: dict[str, Any]) -> str:
    """The ``reproduce_mrgan.py`` command line that ``settings`` (a report's) came from."""
    flags = []
    for k, v in settings.items():
        if k in ("smoke", "device") or v is None:
            continue
        value = " ".join(map(str, v)) if isinstance(v, list) else str(v)
        flags.append(f"--{k.replace('_', '-')} {value}")
    return "python examples/reproduce_mrgan.py --mnist ../shared/data/mnist --out runs/mrgan " + " ".join(flags)


def _mrgan_summary(res: dict[str, Any]) -> str:
    """Test accuracy per stage and label count, from the report's own numbers."""
    parts = []
    for labels, row in res["results"].items():
        mean = {k: sum(v) / len(v) for k, v in row.items()}  # per-seed test accuracies
        stages = [mean.get(k) for k in ("real only", "+ raw synthetic (stage 0)", "+ stage-1 refined")]
        stages.append(mean.get("+ stage-2 refined (MR-GAN)"))
        parts.append(f"{labels}: real only / raw / stage 1 / stage 2 " + " / ".join(f"{v:.2f}" for v in stages if v))
    return "; ".join(parts) + " (test %, 5 seeds)"


def _cifar10_card(folder: Path, model: str, res: dict[str, Any] | None) -> dict[str, Any]:
    """Card of a ``fit_cifar10.py`` policy; ``res`` is the reproduction that measured it (if run)."""
    fit = json.loads((folder / f"fit_cifar10_{model}.json").read_text())
    # The first cifar10-meanfield fit ran while jitter was on by default; its JSON predates the field.
    jitter = fit.get("jitter", model == "mean_field")
    entropy, g_lr = fit.get("entropy", 0.0), fit.get("g_lr", 0.2)
    command = (
        f"python examples/fit_cifar10.py --data ../shared/data/cifar10 --model {model} --images {fit['images']} "
        f"--threads {fit.get('threads', 1)}{' --jitter' if jitter else ''}"
        f"{f' --entropy {entropy:g}' if entropy else ''}{f' --g-lr {g_lr:g}' if g_lr != 0.2 else ''}"
    )
    card: dict[str, Any] = {
        "summary": f"TANDA {model} policy over TANDA's 33 CIFAR-10 TFs, L=10, fitted on {fit['images']:,} "
        f"unlabeled CIFAR-10 training images{f' with entropy bonus {entropy:g}' if entropy else ''}",
        "data": f"first {fit['images']:,} CIFAR-10 training images (JPEG copy), labels unused",
        "fit_command": command,
        "jitter": jitter,
        "entropy": entropy,
        "seed": 0,
        "rg_ratio_last": fit.get("rg_ratio_last"),
        "end_model": "not measured: the CIFAR-10 end-model reproduction has not been run yet",
    }
    row = _row(res, "tanda-lstm" if model == "lstm" else "tanda-mf") if res else None
    if res and row:
        base = {k: _row(res, k) for k in ("heuristic", *BASELINE_ROWS)}
        heur = base["heuristic"]["acc_mean"] if base["heuristic"] else float("nan")
        card["summary"] += (
            f"; {row['acc_mean']:.2f}% vs {heur:.2f}% (random sequences) with {res['settings']['labels']} labels, "
            f"{res['settings']['model']}, {res['settings']['epochs']} epochs"
        )
        card["end_model_command"] = row.get("command", res["command"])
        card["end_model"] = {
            "task": f"CIFAR-10, {res['settings']['labels']} labels, {res['settings']['model']}, official test set",
            "recipe": row["recipe"],
            "accuracy": row,
            "baselines": base,
            "settings": res["settings"],
        }
    return card


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tanda-mnist", type=Path, help="output folder of reproduce_tanda.py on MNIST")
    ap.add_argument("--mnist-lstm-policy", type=Path, help="LSTM policy file (default: from --tanda-mnist)")
    ap.add_argument("--mnist-lstm-results", type=Path, nargs="+", help="results.json(s) that measured it (merged)")
    ap.add_argument("--mnist-lstm-fit-command", help="the command that fitted it")
    ap.add_argument("--mnist-mf-policy", type=Path, help="mean-field policy file (default: from --tanda-mnist)")
    ap.add_argument("--mnist-mf-results", type=Path, nargs="+", help="results.json(s) that measured it (merged)")
    ap.add_argument("--mnist-mf-fit-command", help="the command that fitted it")
    ap.add_argument("--cifar10", type=Path, help="output folder of fit_cifar10.py (both models)")
    ap.add_argument("--cifar10-lstm", type=Path, help="output folder of the fit_cifar10.py LSTM fit (over --cifar10)")
    ap.add_argument("--cifar10-mf", type=Path, help="output folder of the mean-field fit (over --cifar10)")
    ap.add_argument(
        "--cifar10-results",
        type=Path,
        nargs="+",
        help="results.json of reproduce_tanda.py on CIFAR-10, if run; with several, a row of a later file replaces "
        "the same row of an earlier one (e.g. a rerun of one policy row with the same end-model settings)",
    )
    ap.add_argument(
        "--cifar10-lstm-policy", type=Path, help="a reproduce_tanda.py LSTM policy file (with --cifar10-results)"
    )
    ap.add_argument("--cifar10-lstm-fit-command", help="the command that fitted --cifar10-lstm-policy")
    for ds in ("mnist", "cifar10"):
        ap.add_argument(
            f"--{ds}-baselines",
            type=Path,
            nargs="+",
            help=f"{ds} reports (same data, labels, seeds and end model) whose torchvision rows join the cards",
        )
    ap.add_argument("--mrgan", type=Path, help="output folder of reproduce_mrgan.py (its refiner is shipped)")
    ap.add_argument(
        "--mrgan-results", type=Path, nargs="+", help="reproduce_mrgan.py results.json(s) for the card (merged)"
    )
    ap.add_argument(
        "--limits",
        action="append",
        default=[],
        metavar="NAME=TEXT",
        help="where the artifact NAME helps and where not to use it, from the measured tables (kept from the "
        "current card when not given)",
    )
    a = ap.parse_args()
    for item in a.limits:
        name, sep, text = item.partition("=")
        if not sep or not text.strip():
            raise SystemExit(f"error: --limits expects NAME=TEXT, got {item!r}")
        if not (DEST / f"{name}.json").exists() and name not in ("mnist-lstm", "mnist-meanfield"):
            raise SystemExit(f"error: --limits {name}: no such artifact")
        LIMITS[name] = text.strip()

    mnist = {
        "mnist-lstm": ("tanda-lstm", a.mnist_lstm_policy, a.mnist_lstm_results, a.mnist_lstm_fit_command),
        "mnist-meanfield": ("tanda-mf", a.mnist_mf_policy, a.mnist_mf_results, a.mnist_mf_fit_command),
    }
    for name, (aug, policy, results, fit_command) in mnist.items():
        if not (a.tanda_mnist or (policy and results)):
            continue
        paths = results or [a.tanda_mnist / "results.json"]
        res = _merge_results([json.loads(Path(p).read_text()) for p in paths])
        _ship(
            Path(policy) if policy else a.tanda_mnist / f"policy-{aug}.safetensors",
            name,
            _reproduced_card(
                _add_baselines(res, a.mnist_baselines),
                aug,
                "unlabeled pool: first 5,000 images of the MNIST t10k file",
                fit_command,
                "MNIST, 600 labels, small CNN, test on the last 5,000 t10k images",
            ),
        )
    cifar_dirs = {"lstm": a.cifar10_lstm or a.cifar10, "mean_field": a.cifar10_mf or a.cifar10}
    res = _merge_results([json.loads(p.read_text()) for p in a.cifar10_results]) if a.cifar10_results else None
    if a.cifar10_lstm_policy:
        if res is None:
            raise SystemExit("error: --cifar10-lstm-policy needs --cifar10-results (the table that measured it)")
        data = f"{res['settings']['fit']['pool_images']:,} unlabeled CIFAR-10 training images (JPEG copy)"
        task = f"CIFAR-10, {res['settings']['labels']} labels, {res['settings']['model']}, official test set"
        res = _add_baselines(res, a.cifar10_baselines)
        card = _reproduced_card(res, "tanda-lstm", data, a.cifar10_lstm_fit_command, task)
        _ship(a.cifar10_lstm_policy, "cifar10-lstm", card)
        cifar_dirs["lstm"] = None
    for model, name in (("lstm", "cifar10-lstm"), ("mean_field", "cifar10-meanfield")):
        folder = cifar_dirs[model]
        if folder is None:
            continue
        _ship(folder / f"cifar10-{model}.safetensors", name, _cifar10_card(folder, model, res))
    if a.mrgan:
        paths = a.mrgan_results or [a.mrgan / "results.json"]
        res = _merge_mrgan([json.loads(Path(p).read_text()) for p in paths])
        _ship(
            a.mrgan / "refiner.safetensors",
            "digits-synthetic-to-mnist",
            {
                "summary": "MR-GAN refiner, rendered digits -> MNIST, 2 stages (stage 2: shared domain); "
                + _mrgan_summary(res),
                "data": "10,000 digits from learned_augment.synthetic.render_digits and the 5,000-image MNIST pool",
                "fit_command": res["command"],
                "seed": 0,
                "end_model": res,
            },
        )


if __name__ == "__main__":
    main()
