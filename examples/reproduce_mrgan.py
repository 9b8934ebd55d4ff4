"""Reproduce MR-GAN's table on digits: does refined synthetic data help a classifier trained on a few real images?

Real domain: MNIST's t10k file (the only MNIST file in ../shared/data). Its first half is the pool the labeled
subsets are drawn from (and, unlabeled, what the refiner sees of the real domain); its second half is the test set.
Synthetic domain: digits rendered with OpenCV fonts (``learned_augment.synthetic``). One progressive refiner is
fitted (stage 1: synthetic -> real; stage 2: continued on the stage-1 output, plus real -> shared), then a small CNN
is trained with the same number of steps on

* the labeled real images alone,
* + raw synthetic images (MR-GAN's stage 0),
* + stage-1 refined synthetic images (CycleGAN),
* + stage-2 refined synthetic images, the real half being half raw, half refined into the shared domain (MR-GAN),
  tested twice: on the raw test images, and on the test images refined into the shared domain as well,
* + stage-2 refined synthetic images with the raw real images only (which half of stage 2 matters),

each at half real, half synthetic per batch, for each labeled fraction (of MNIST's 60,000 training labels, as the
paper counts) and seed; and on synthetic images alone (raw, stage 1, stage 2). Accuracy is on the real test half.

The refiner gets the synthetic labels (never a real one): its classifier drives the semantic-consistency loss
(``--lambda-semantic``) and the quality signal printed during the fit. ``--val N`` holds the last N pool images
out of the labeled draws and reports accuracy on them too: choose settings on that column, not on the test one.

Usage::

    python examples/reproduce_mrgan.py --mnist ../shared/data/mnist --out runs/mrgan --seeds 5 --val 1000
    python examples/reproduce_mrgan.py --mnist DIR --out DIR --smoke   # a minute-long run of the whole pipeline
    python examples/reproduce_mrgan.py --mnist DIR --out DIR --stages 1 --val 1000 --lambda-semantic 0  # ablation
"""

from __future__ import annotations

import argparse
import gzip
import inspect
import json
import struct
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from learned_augment import __version__
from learned_augment.refine import MixedRealityDataset, Refiner, fit_refiner
from learned_augment.refine.semantic import QUALITY_NAMES
from learned_augment.synthetic import render_digits

MNIST_TRAIN_SIZE = 60_000
IMAGES_FILE = "t10k-images-idx3-ubyte.gz"
LABELS_FILE = "t10k-labels-idx1-ubyte.gz"
CONFIGS = (
    "real only",
    "+ raw synthetic (stage 0)",
    "+ stage-1 refined",
    "+ stage-2 refined (MR-GAN)",
    "+ stage-2, test refined too",
    "+ stage-2 synthetic, raw real only",
)
SYNTHETIC_ONLY = ("raw synthetic", "stage-1 refined", "stage-2 refined")


class DataError(Exception):
    """The MNIST files are missing or not what they claim to be."""


def read_idx(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read the gzipped IDX image and label files: ``(N, H, W)`` uint8 and ``(N,)`` int64, checked."""
    paths = {name: folder / name for name in (IMAGES_FILE, LABELS_FILE)}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise DataError(f"missing MNIST file(s): {', '.join(missing)} (expected the gzipped IDX files)")
    try:
        raw_images = gzip.decompress(paths[IMAGES_FILE].read_bytes())
        raw_labels = gzip.decompress(paths[LABELS_FILE].read_bytes())
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"cannot decompress the MNIST files in {folder}: {exc}") from None
    if len(raw_images) < 16 or len(raw_labels) < 8:
        raise DataError("MNIST files are too short to hold IDX headers")
    magic, n, rows, cols = struct.unpack(">IIII", raw_images[:16])
    if magic != 2051:
        raise DataError(f"{paths[IMAGES_FILE]}: not an IDX image file (magic {magic}, expected 2051)")
    if len(raw_images) != 16 + n * rows * cols:
        raise DataError(f"{paths[IMAGES_FILE]}: header says {n}x{rows}x{cols} bytes; file has {len(raw_images) - 16}")
    lmagic, ln = struct.unpack(">II", raw_labels[:8])
    if lmagic != 2049:
        raise DataError(f"{paths[LABELS_FILE]}: not an IDX label file (magic {lmagic}, expected 2049)")
    if len(raw_labels) != 8 + ln or ln != n:
        raise DataError(f"{paths[LABELS_FILE]}: {len(raw_labels) - 8} labels for {n} images")
    if rows % 4 or cols % 4 or rows < 8 or cols < 8:
        raise DataError(f"images are {rows}x{cols}; the refiner needs sides that are multiples of 4")
    images = np.frombuffer(raw_images, np.uint8, offset=16).reshape(n, rows, cols).copy()
    labels = np.frombuffer(raw_labels, np.uint8, offset=8).astype(np.int64)
    if labels.size and labels.max() > 9:
        raise DataError(f"labels must be digits 0..9; found {labels.max()}")
    return images, labels


def draw_labeled(pool_labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Indices of ``count`` pool images, balanced over the 10 classes (remainder to the first classes)."""
    rng = np.random.default_rng(seed)
    picked = []
    for c in range(10):
        want = count // 10 + (1 if c < count % 10 else 0)
        idx = np.flatnonzero(pool_labels == c)
        if len(idx) < want:
            raise DataError(f"the pool has {len(idx)} images of class {c}; {want} are needed for {count} labels")
        picked.append(rng.choice(idx, want, replace=False))
    return np.sort(np.concatenate(picked))


class SmallCNN(nn.Module):
    """Two conv/pool stages and two linear layers: the usual small MNIST model."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 7 * 7, 64),
            nn.ReLU(),
            nn.Linear(64, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def train_and_test(
    real: tuple[np.ndarray, np.ndarray],
    synthetic: tuple[np.ndarray, np.ndarray],
    fraction: float,
    tests: list[tuple[np.ndarray, np.ndarray]],
    steps: int,
    batch_size: int,
    seed: int,
) -> list[float]:
    """Train a fresh :class:`SmallCNN` for ``steps`` batches drawn from the mix; return its accuracy in % on each
    of ``tests``."""
    torch.manual_seed(seed)
    model = SmallCNN()
    data = MixedRealityDataset(real, synthetic, synthetic_fraction=fraction, seed=seed, length=steps * batch_size)
    loader = DataLoader(data, batch_size=batch_size, shuffle=False)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    model.train()
    for images, labels in loader:
        x = images.unsqueeze(1).float() / 255.0
        loss = nn.functional.cross_entropy(model(x), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    accs = []
    with torch.no_grad():
        for images, truth in tests:
            correct = 0
            for start in range(0, len(images), 1000):
                x = torch.from_numpy(images[start : start + 1000]).unsqueeze(1).float() / 255.0
                correct += int((model(x).argmax(1).numpy() == truth[start : start + 1000]).sum())
            accs.append(100.0 * correct / max(len(images), 1))
    return accs


def summary(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0}


def fmt(values: list[float]) -> str:
    s = summary(values)
    return f"{s['mean']:.2f} ± {s['std']:.2f}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mnist", type=Path, required=True, help=f"folder with {IMAGES_FILE} and {LABELS_FILE}")
    p.add_argument("--out", type=Path, required=True, help="folder for the results, the refiner and its checkpoint")
    p.add_argument("--seeds", type=int, default=3, help="seeds per setting (labeled draw, classifier init, order)")
    p.add_argument("--fractions", type=float, nargs="+", default=[0.0025, 0.01], help="of MNIST's 60,000 labels")
    p.add_argument("--synthetic", type=int, default=10_000, help="rendered synthetic digits")
    # Unset: fit_refiner's defaults for the images' size (refine.fit.default_sizes), as a new user gets them.
    p.add_argument("--refiner-steps", type=int, help="refiner steps per stage (default: fit_refiner's)")
    p.add_argument("--refiner-batch", type=int, help="refiner batch (default: fit_refiner's)")
    p.add_argument("--ngf", type=int, help="refiner generator width (default: fit_refiner's)")
    p.add_argument("--n-blocks", type=int, help="refiner residual blocks (default: fit_refiner's)")
    p.add_argument("--ndf", type=int, help="refiner discriminator width (default: fit_refiner's)")
    p.add_argument("--lambda-self-reg", type=float, default=0.0, help="SimGAN L1 to the input (0: plain CycleGAN)")
    p.add_argument("--lambda-semantic", type=float, default=1.0, help="CyCADA semantic consistency (0: off)")
    p.add_argument("--stages", type=int, default=2, choices=(1, 2), help="refiner stages (1: skip MR-GAN's stage 2)")
    p.add_argument(
        "--stage2",
        choices=("cycle", "shared"),
        default=inspect.signature(fit_refiner).parameters["stage2"].default,
        help="what stage 2 learns (fit_refiner's stage2; default: its default)",
    )
    p.add_argument("--val", type=int, default=0, help="last N pool images: validation, never drawn as labeled")
    p.add_argument("--synthetic-only-seeds", type=int, help="seeds of the synthetic-only row (default --seeds)")
    p.add_argument("--eval-every", type=int, default=100, help="refiner steps between quality-signal lines")
    p.add_argument("--classifier-steps", type=int, default=400)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--device", default="cpu", help="device for the refiner fit")
    p.add_argument("--smoke", action="store_true", help="tiny data and few steps: checks the pipeline, not the method")
    args = p.parse_args(argv)
    if args.seeds < 1 or args.synthetic < 10 or any(not 0 < f < 1 for f in args.fractions) or args.val < 0:
        p.error("need --seeds >= 1, --synthetic >= 10, fractions in (0, 1) and --val >= 0")
    if args.smoke:
        args.synthetic = min(args.synthetic, 200)
        args.refiner_steps, args.refiner_batch, args.ngf, args.n_blocks, args.ndf = 3, 4, 4, 1, 8
        args.classifier_steps, args.batch_size = 5, 16
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    images, labels = read_idx(args.mnist)
    half = len(images) // 2
    pool, pool_labels = images[:half], labels[:half]
    test = (images[half:], labels[half:])
    if args.smoke:
        test = (test[0][:200], test[1][:200])
    if not len(pool) or not len(test[0]) or args.val >= len(pool):
        raise DataError(
            f"{len(images)} images are too few to split into a pool (with {args.val} held out) and a test half"
        )
    drawable = len(pool) - args.val
    val = (pool[drawable:], pool_labels[drawable:])
    print(
        f"real: pool {len(pool)} images, test {len(test[0])}; rendering {args.synthetic} synthetic digits", flush=True
    )
    syn, syn_labels = render_digits(args.synthetic, size=pool.shape[1], seed=12345)

    args.out.mkdir(parents=True, exist_ok=True)
    refiner_path = args.out / "refiner.safetensors"
    refiner = fit_refiner(
        syn,
        pool,
        stages=args.stages,
        steps=args.refiner_steps,
        batch_size=args.refiner_batch,
        ngf=args.ngf,
        n_blocks=args.n_blocks,
        ndf=args.ndf,
        lambda_self_reg=args.lambda_self_reg,
        stage2=args.stage2,
        synthetic_labels=syn_labels,
        lambda_semantic=args.lambda_semantic,
        eval_every=args.eval_every,
        classifier_steps=20 if args.smoke else 500,
        eval_images=50 if args.smoke else 500,
        device=args.device,
        seed=0,
        progress=not args.smoke,
        checkpoint=args.out / "refiner_checkpoint.safetensors",
        checkpoint_every=100,
    )
    refiner.save(refiner_path)
    refiner = Refiner.load(refiner_path)
    fit_s = refiner.provenance["wall_time_s"]
    print(f"refiner: {refiner}", flush=True)
    t0 = time.perf_counter()
    stage_images = {0: syn, **{k: refiner.at_stage(k).refine_numpy(syn) for k in range(1, args.stages + 1)}}
    refine_s = time.perf_counter() - t0
    configs, synthetic_rows = _configs(args.stages), SYNTHETIC_ONLY[: args.stages + 1]
    evals = [test, val] if args.val else [test]
    shared_evals = []
    if args.stages >= 2:
        shared_evals = [test, (refiner.refine_numpy(test[0], "real_to_shared"), test[1])]
        if args.val:
            shared_evals += [val, (refiner.refine_numpy(val[0], "real_to_shared"), val[1])]

    steps, bs = args.classifier_steps, args.batch_size
    results: dict[str, dict[str, list[float]]] = {}
    results_val: dict[str, dict[str, list[float]]] = {}
    for fraction in args.fractions:
        count = round(fraction * MNIST_TRAIN_SIZE)
        key = f"{count} labels ({100 * fraction:g}%)"
        results[key] = {c: [] for c in configs}
        results_val[key] = {c: [] for c in configs}
        for seed in range(args.seeds):
            idx = draw_labeled(pool_labels[:drawable], count, seed)
            real = (pool[idx], pool_labels[idx])
            runs = {
                CONFIGS[0]: (real, (syn, syn_labels), 0.0),
                CONFIGS[1]: (real, (stage_images[0], syn_labels), 0.5),
                CONFIGS[2]: (real, (stage_images[1], syn_labels), 0.5),
            }
            for name, (r, s, f) in runs.items():
                t = time.perf_counter()
                accs = train_and_test(r, s, f, evals, steps, bs, seed)
                results[key][name].append(accs[0])
                shown = f"{accs[0]:6.2f}%"
                if args.val:
                    results_val[key][name].append(accs[1])
                    shown += f"  (val {accs[1]:6.2f}%)"
                print(f"{key:>18} seed {seed} {name:<28} {shown}  ({time.perf_counter() - t:.0f} s)", flush=True)
            if args.stages >= 2:
                shared = refiner.refine_numpy(real[0], "real_to_shared")
                # Stage 2 trains in the shared domain: the real half is half raw and half refined toward it. The
                # same model is tested on raw test images and on test images refined into the shared domain.
                real_mixed = (np.concatenate([real[0], shared]), np.concatenate([real[1], real[1]]))
                accs = train_and_test(real_mixed, (stage_images[2], syn_labels), 0.5, shared_evals, steps, bs, seed)
                for k, name in enumerate(CONFIGS[3:5]):
                    results[key][name].append(accs[k])
                    shown = f"{accs[k]:6.2f}%"
                    if args.val:
                        results_val[key][name].append(accs[2 + k])
                        shown += f"  (val {accs[2 + k]:6.2f}%)"
                    print(f"{key:>18} seed {seed} {name:<28} {shown}", flush=True)
                name = CONFIGS[5]
                accs = train_and_test(real, (stage_images[2], syn_labels), 0.5, evals, steps, bs, seed)
                results[key][name].append(accs[0])
                if args.val:
                    results_val[key][name].append(accs[1])
                print(f"{key:>18} seed {seed} {name:<28} {accs[0]:6.2f}%", flush=True)

    synthetic_only: dict[str, list[float]] = {c: [] for c in synthetic_rows}
    anchor = (pool[:1], pool_labels[:1])  # fixes the output form; fraction 1.0 never draws from it
    only_seeds = args.seeds if args.synthetic_only_seeds is None else args.synthetic_only_seeds
    for seed in range(only_seeds):
        for k, name in enumerate(synthetic_rows):
            acc = train_and_test(anchor, (stage_images[k], syn_labels), 1.0, [test], steps, bs, seed)[0]
            synthetic_only[name].append(acc)
            print(f"synthetic only seed {seed} {name:<18} {acc:6.2f}%", flush=True)

    return {
        "library_version": __version__,
        "torch_version": torch.__version__,
        "smoke": args.smoke,
        "settings": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in ("mnist", "out")
        },
        "data": {"pool": len(pool), "val": args.val, "test": len(test[0]), "synthetic": len(syn)},
        "refiner": {
            "wall_time_s": fit_s,
            "device": refiner.provenance["device"],
            "threads": args.threads,
            "stages": args.stages,
            "steps_per_stage": refiner.provenance["steps"][0],
            "settings": {k: refiner.provenance["settings"].get(k) for k in ("batch_size", "ngf", "n_blocks", "ndf")},
            "refine_all_synthetic_s": round(refine_s, 2),
            "final_losses": {
                stage: {k: float(np.mean(v[-50:])) for k, v in h.items()} for stage, h in refiner.history.items()
            },
            "quality": refiner.quality,
        },
        "results": results,
        "results_val": results_val if args.val else {},
        "synthetic_only": synthetic_only,
    }


def _configs(stages: int) -> tuple[str, ...]:
    return CONFIGS if stages >= 2 else CONFIGS[:3]


def markdown(report: dict[str, Any]) -> str:
    r = report["refiner"]
    configs = _configs(r["stages"])
    synthetic_rows = SYNTHETIC_ONLY[: r["stages"] + 1]
    lines = []
    for title, table in (("test half", report["results"]), ("validation split of the pool", report["results_val"])):
        if not table:
            continue
        lines += [
            f"# MR-GAN-style table on digits (accuracy on the real {title}, %, mean ± std over seeds)",
            "",
            "| labeled real images | " + " | ".join(configs) + " |",
            "|---|" + "---|" * len(configs),
        ]
        lines += [f"| {key} | " + " | ".join(fmt(row[c]) for c in configs) + " |" for key, row in table.items()]
        lines.append("")
    quality = ["| stage | step | prediction kept % | feature distance to real | real kept % | shared distance |"]
    quality.append("|---|---|---|---|---|---|")
    for stage, rows in r["quality"].items():
        for i in {0, len(rows["step"]) - 1}:
            cells = [f"{rows[c][i]:.1f}" if "kept" in c else f"{rows[c][i]:.3f}" for c in QUALITY_NAMES[1:]]
            quality.append(f"| {stage} | {rows['step'][i]:.0f} | " + " | ".join(cells) + " |")
    lines += [
        "| trained on synthetic only | " + " | ".join(synthetic_rows) + " |",
        "|---|" + "---|" * len(synthetic_rows),
        "| accuracy | " + " | ".join(fmt(report["synthetic_only"][c]) for c in synthetic_rows) + " |",
        "",
        "Refiner quality signal (no real label used; step 0 is the stage's input):",
        "",
        *quality,
        "",
        f"Refiner fit: {r['wall_time_s']:.0f} s on {r['device']} ({r['threads']} thread(s)), "
        f"{r['steps_per_stage']} steps per stage, {r['stages']} stage(s); refining "
        f"{report['data']['synthetic']} images with each stage took {r['refine_all_synthetic_s']:.1f} s in all.",
        f"Data: pool {report['data']['pool']}, test {report['data']['test']}, "
        f"synthetic {report['data']['synthetic']}. Settings: `{json.dumps(report['settings'])}`.",
    ]
    if report["smoke"]:
        lines.append("\n**Smoke run**: tiny data and a few steps; these numbers say nothing about the method.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = run(args)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    (args.out / "results.json").write_text(json.dumps(report, indent=2))
    table = markdown(report)
    (args.out / "results.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
