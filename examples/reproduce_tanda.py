"""Reproduce TANDA's results table and measure learned policies against today's free augmentations.

One end model, one recipe (SGD + Nesterov, OneCycle, same epochs and batch size), one labeled subset per seed; only
the augmentation changes between rows:

* ``none``: no augmentation.
* ``basic``: MNIST random translation (pad 2 + random crop); CIFAR-10 pad 4 + random crop + horizontal flip.
* ``heuristic``: uniformly random TF sequences over the same TF set as the learned policies (TANDA's baseline).
* ``tanda-mf`` / ``tanda-lstm``: TANDA policies fitted by ``fit_policy`` on the *unlabeled* pool (or loaded with
  ``--policy-mf`` / ``--policy-lstm``).
* ``randaugment``, ``trivialaugment`` (TrivialAugmentWide), ``autoaugment`` (its CIFAR-10 policy): torchvision v2.

Policy rows are applied as a user drops ``LearnedPolicyTransform`` into a pipeline: each sample is replaced by an
augmented copy (one fresh sequence) with probability ``--p-augment`` (default: the transform's default p), then
every sample gets the basic pad-and-crop (+ flip on CIFAR-10) (``--order seq-then-crop``). ``--order pad-seq-crop``
is the paper's CIFAR-10 order (pad, sequence, crop); ``--order seq-only`` skips the basic step. torchvision
baselines augment every sample after the basic step, as they are usually used.

Fit options left unset take ``fit_policy``'s defaults, so a run without them measures the library as a new user
calls it: ``fit_policy(pool, tfs=..., model=..., seed=...)``. ``--pool-limit`` shrinks the pool (labeled subset and
fit data) to a random subset, for the small-data table (1,000 unlabeled images, 100 labels).

Data: MNIST from the t10k IDX files: first half (5,000) = unlabeled pool, from which the labeled subset is drawn per
seed (class-balanced); second half = test set. CIFAR-10 from the JPEG npz: labeled subset of the 50k training
images (which are also the unlabeled pool), test on the official 10k.

Usage::

    python examples/reproduce_tanda.py --data ../shared/data/mnist --dataset mnist --labels 600 --seeds 3 \\
        --epochs 20 --fit-steps 300 --out runs/tanda_mnist
    python examples/reproduce_tanda.py --data DIR --dataset mnist --out DIR --smoke   # the whole pipeline in < 1 min

Writes ``results.json``, ``results.md``, ``freq-<policy>.png``, ``samples.png`` and the fitted policies
(``policy-<name>.safetensors``, reusable with ``--policy-*``) into ``--out``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import shlex
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torchvision
from _data import DataError, load_cifar10, load_mnist_pool
from _models import make_end_model
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

import learned_augment as la
from learned_augment.fit import fit_policy
from learned_augment.fit import loop as fit_loop
from learned_augment.fit.discriminator import DCGANDiscriminator
from learned_augment.fit.loop import MIN_STEPS
from learned_augment.ops import TFSet, get_tfset
from learned_augment.ops.tfset import NAMED_SETS
from learned_augment.policy import Policy, UniformPolicy
from learned_augment.transforms import LearnedPolicyTransform, PolicyAugmentedDataset
from learned_augment.viz import frequency_png, image_grid, write_png

AUGS = ("none", "basic", "heuristic", "tanda-mf", "tanda-lstm", "randaugment", "trivialaugment", "autoaugment")
POLICY_AUGS = ("heuristic", "tanda-mf", "tanda-lstm")
LABELS = {
    "none": "None",
    "basic": "Basic",
    "heuristic": "Heuristic (random sequences)",
    "tanda-mf": "TANDA mean-field",
    "tanda-lstm": "TANDA LSTM",
    "randaugment": "RandAugment",
    "trivialaugment": "TrivialAugmentWide",
    "autoaugment": "AutoAugment (CIFAR10 policy)",
}
FIT_MODELS = {"tanda-mf": "mean_field", "tanda-lstm": "lstm"}
# The paper counts label budgets against the official training sets (MNIST "1%" = 600 of 60,000).
OFFICIAL_TRAIN = {"mnist": 60_000, "cifar10": 50_000}
STATS = {"mnist": ((0.1307,), (0.3081,)), "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))}
PAPER = {  # Ratner et al. 2017, Table 1 (accuracy %), for the matching label budgets
    ("mnist", 600): {"none": 90.2, "basic": 95.3, "heuristic": 95.9, "tanda-mf": 96.5, "tanda-lstm": 96.7},
    ("mnist", 6000): {"none": 97.3, "basic": 98.7, "heuristic": 99.0, "tanda-mf": 99.2, "tanda-lstm": 99.1},
    ("cifar10", 5000): {"none": 66.0, "basic": 73.1, "heuristic": 77.5, "tanda-mf": 79.8, "tanda-lstm": 81.5},
    ("cifar10", 50000): {"none": 87.8, "basic": 91.9, "heuristic": 92.3, "tanda-mf": 94.4, "tanda-lstm": 94.0},
}
COLLAPSED = 0.25  # entropy ratio below which a fitted policy is flagged as collapsed in the notes
SUBSET_SEED = 10_000  # fixed draws (test subset, fit subset, sample grid), apart from the per-seed label draws
SMOKE = {"labels": "100", "test_limit": 200, "epochs": 1, "fit_steps": 3, "seeds": 1, "n_seqs": 2, "fit_limit": 500}


# ---------------------------------------------------------------------------------------------- data


@dataclass
class Split:
    """Images are ``(N, H, W, C)`` uint8; labels ``(N,)`` int64."""

    pool_x: np.ndarray
    pool_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    notes: list[str] = field(default_factory=list)


def load_split(dataset: str, data: str, test_limit: int | None) -> Split:
    """Read the data set and split it into the labeled/unlabeled pool and the test set (refusing bad data)."""
    if not Path(data).exists():
        raise DataError(f"data path {data} does not exist")
    try:
        if dataset == "mnist":
            x, y = load_mnist_pool(data)
            half = len(x) // 2
            # np.frombuffer arrays are read-only; torch wants writable ones
            x = x.copy()
            split = Split(x[:half, :, :, None], y[:half], x[half:, :, :, None], y[half:])
            split.notes.append(f"pool = first {half} images of the t10k file, test = the other {len(x) - half}")
        else:
            x_tr, y_tr, x_te, y_te = load_cifar10(data)
            split = Split(x_tr, y_tr, x_te, y_te)
    except (EOFError, zlib.error) as exc:  # truncated gzip files, which _data does not catch
        raise DataError(f"{data}: truncated or corrupt file ({exc})") from None
    if len(split.pool_x) == 0 or len(split.test_x) == 0:
        raise DataError(f"{data}: no images")
    if split.pool_y.min() < 0 or split.pool_y.max() > 9 or split.test_y.min() < 0 or split.test_y.max() > 9:
        raise DataError(f"{data}: labels outside 0..9")
    if test_limit is not None and test_limit < len(split.test_x):
        # A class-balanced draw, not the first N: the CIFAR-10 npz is sorted by class.
        keep = balanced_subset(split.test_y, test_limit, SUBSET_SEED)
        split.notes.append(
            f"test accuracy on a class-balanced subset of {test_limit} of {len(split.test_x)} test images"
        )
        split.test_x, split.test_y = split.test_x[keep], split.test_y[keep]
    return split


def parse_labels(text: str, dataset: str) -> int:
    """``600`` (a count) or ``0.01`` (a fraction of the official training set, as the paper counts)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--labels must be a count or a fraction, got {text!r}") from None
    n = int(round(value * OFFICIAL_TRAIN[dataset])) if value < 1 else int(value)
    if n < 10 or (value >= 1 and value != int(value)):
        raise argparse.ArgumentTypeError(f"--labels must give at least 10 images (one per class), got {text!r}")
    return n


def balanced_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of ``n`` items, as equal per class as possible, drawn with ``seed`` (sorted)."""
    classes = np.unique(labels)
    rng = np.random.default_rng([seed, 1])
    per = np.full(len(classes), n // len(classes))
    per[rng.permutation(len(classes))[: n % len(classes)]] += 1
    out = []
    for c, k in zip(classes, per):
        idx = np.flatnonzero(labels == c)
        if len(idx) < k:
            raise DataError(f"class {c} has {len(idx)} pool images; {k} are needed for {n} balanced labels")
        out.append(rng.choice(idx, size=k, replace=False))
    return np.sort(np.concatenate(out))


class ArrayDataset(Dataset):
    """``(image, label)`` items from uint8 ``(N, H, W, C)`` images, with an optional per-image transform."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Callable[[Any], Any] | None = None):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        img = self.images[i]
        return (self.transform(img) if self.transform is not None else img), int(self.labels[i])


def to_chw(img: Any) -> torch.Tensor:
    """``(H, W, C)`` uint8 numpy -> ``(C, H, W)`` uint8 tensor (tensors pass through)."""
    if isinstance(img, torch.Tensor):
        return img
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)


def _normalise(dataset: str) -> v2.Transform:
    mean, std = STATS[dataset]
    return v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])


def basic_pad(dataset: str, size: int) -> int:
    """Padding of the basic random crop: 2 px at 28 for digits (scaled with ``--resize``), 4 px for CIFAR-10."""
    return max(1, round(2 * size / 28)) if dataset == "mnist" else 4


def _basic(dataset: str, size: int, padded: bool = False) -> list[v2.Transform]:
    """Digits: random translation (pad + crop); CIFAR-10: pad 4, crop, flip. ``padded``: the input is already padded."""
    pad = None if padded else basic_pad(dataset, size)
    if dataset == "mnist":
        return [v2.RandomCrop(size, padding=pad)]
    return [v2.RandomCrop(size, padding=pad), v2.RandomHorizontalFlip()]


def resize_images(x: np.ndarray, size: int) -> np.ndarray:
    """``(N, H, W, C)`` uint8 images resized to ``size`` x ``size`` with area interpolation."""
    out = [cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA) for img in x]
    return np.stack([o if o.ndim == 3 else o[:, :, None] for o in out])


def validation_set(
    split: Split, labeled: np.ndarray, n: int | None, dataset: str, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` class-balanced pool images outside ``labeled`` (all of them if there are no more), normalised like the
    test set (empty when ``n`` is 0)."""
    if not n:
        return torch.empty(0), torch.empty(0)
    rest = np.setdiff1d(np.arange(len(split.pool_y)), labeled)
    keep = rest if n >= len(rest) else rest[balanced_subset(split.pool_y[rest], n, seed + 7_000)]
    return normalised_tensor(split.pool_x[keep], dataset), torch.from_numpy(split.pool_y[keep])


def normalised_tensor(x: np.ndarray, dataset: str) -> torch.Tensor:
    """``(N, H, W, C)`` uint8 -> ``(N, C, H, W)`` float, normalised with the data set's statistics."""
    mean, std = STATS[dataset]
    t = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255.0
    return (t - torch.tensor(mean).view(-1, 1, 1)) / torch.tensor(std).view(-1, 1, 1)


def pad_images(x: np.ndarray, pad: int) -> np.ndarray:
    """Zero-pad ``(N, H, W, C)`` images on all sides, as ``RandomCrop(padding=pad)`` does."""
    return np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))


def train_dataset(
    aug: str,
    dataset: str,
    x: np.ndarray,
    y: np.ndarray,
    policy: Policy | None,
    p_augment: float,
    seed: int,
    order: str,
    interpolation: str | None = None,
) -> Dataset:
    """The labeled subset as a training set with ``aug``'s recipe; items are (normalised CHW float, label)."""
    size = x.shape[1]
    norm = _normalise(dataset)
    if aug == "none":
        return ArrayDataset(x, y, v2.Compose([to_chw, norm]))
    if aug == "basic":
        return ArrayDataset(x, y, v2.Compose([to_chw, *_basic(dataset, size), norm]))
    if aug in POLICY_AUGS:
        assert policy is not None
        given = {"interpolation": interpolation} if interpolation else {}  # else the transform's default
        transform = LearnedPolicyTransform(policy, p=1.0, seed=seed, **given)
        if order == "seq-only":
            base, post = x, v2.Compose([to_chw, norm])
        elif order == "pad-seq-crop":
            # The paper's CIFAR-10 order: pad, apply the sequence to the padded image, then crop back (and flip).
            base = pad_images(x, basic_pad(dataset, size))
            post = v2.Compose([to_chw, *_basic(dataset, size, padded=True), norm])
        else:
            base, post = x, v2.Compose([to_chw, *_basic(dataset, size), norm])
        return PolicyAugmentedDataset(ArrayDataset(base, y), transform, p_augment, seed=seed, post_transform=post)
    tv = {
        "randaugment": v2.RandAugment(),
        "trivialaugment": v2.TrivialAugmentWide(),
        "autoaugment": v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10),
    }[aug]
    basic = _basic(dataset, size) if dataset == "cifar10" else []
    return ArrayDataset(x, y, v2.Compose([to_chw, *basic, tv, norm]))


def recipe_text(aug: str, dataset: str, p_augment: float, order: str, size: int) -> str:
    """How ``aug`` is applied, for the report (``size``: the images' side, which sets the padding)."""
    pad = basic_pad(dataset, size)
    basic = f"pad {pad} + random crop" if dataset == "mnist" else f"pad {pad} + random crop + hflip"
    if aug == "none":
        return "-"
    if aug == "basic":
        return basic
    if aug in POLICY_AUGS:
        what = f"p={p_augment:g} of samples replaced by a fresh sequence"
        if order == "seq-only":
            return what + " (no pad-crop)"
        if order == "pad-seq-crop":
            return what + f"; every sample: pad -> sequence -> {basic} (crop)"
        return what + f"; every sample: sequence -> {basic}"
    return "every sample" + (f", after {basic}" if dataset == "cifar10" else "")


# ---------------------------------------------------------------------------------------------- training


def _worker_init(_: int) -> None:
    # Workers must not multiply the main process's threads on a shared machine.
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


@dataclass
class Recipe:
    """The end-model training recipe shared by all rows."""

    model: str
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    workers: int
    device: torch.device


def train_and_test(
    ds: Dataset, evals: list[tuple[torch.Tensor, torch.Tensor]], recipe: Recipe, seed: int
) -> list[float]:
    """Train a fresh end model (initialised from ``seed``) on ``ds``; return its accuracy in % on each eval set."""
    model = train_model(ds, recipe, seed, channels=evals[0][0].shape[1])
    return [evaluate(model, x, y, recipe.device) for x, y in evals]


def train_model(ds: Dataset, recipe: Recipe, seed: int, channels: int) -> nn.Module:
    """A fresh end model for ``channels``-channel images, initialised from ``seed`` and trained on ``ds``."""
    torch.manual_seed(seed)  # same init for every row of this seed
    # channels_last: ResNet convolutions on the CPU ran markedly faster in this layout.
    fmt = torch.channels_last if recipe.model.startswith("resnet") else torch.contiguous_format
    model = make_end_model(recipe.model, channels).to(recipe.device, memory_format=fmt)
    loader = DataLoader(
        ds,
        batch_size=recipe.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),  # same batch order for every row of this seed
        num_workers=recipe.workers,
        worker_init_fn=_worker_init if recipe.workers else None,
    )
    opt = torch.optim.SGD(
        model.parameters(), lr=recipe.lr, momentum=0.9, nesterov=True, weight_decay=recipe.weight_decay
    )
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=recipe.epochs * len(loader))
    for epoch in range(recipe.epochs):
        if hasattr(ds, "set_epoch"):
            ds.set_epoch(epoch)
        model.train()
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb.to(recipe.device, memory_format=fmt)), yb.to(recipe.device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return model


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device, chunk: int = 1000) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(x), chunk):
        correct += int((model(x[i : i + chunk].to(device)).argmax(1).cpu() == y[i : i + chunk]).sum())
    return 100.0 * correct / len(x)


# ---------------------------------------------------------------------------------------------- policies


def load_given_policy(path: str, expected_tfs: Any, flag: str) -> Policy:
    """A policy file from ``--policy-*``, refused with one line if unreadable or over another TF set."""
    try:
        policy = la.load_policy(path)
    except Exception as exc:  # any failure to read a user's file is reported the same way
        raise SystemExit(f"error: {flag} {path}: cannot load the policy ({exc})") from None
    if policy.tfset != expected_tfs:
        raise SystemExit(
            f"error: {flag} {path} uses the TF set {policy.tfset.name or policy.tfset.ids[:3]}, not the one of "
            f"--tfs {expected_tfs.name or ''}; pass the matching --tfs so the heuristic row uses the same TFs"
        )
    return policy


def _split_outside_parentheses(text: str, sep: str) -> list[str]:
    """``text`` split at every ``sep`` that is not inside parentheses (TF ids hold signs: ``rotate(+90)``)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += (ch == "(") - (ch == ")")
        if ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return [*parts, text[start:]]


def parse_tfs(text: str) -> TFSet:
    """``--tfs``: a named set, optionally with extra TF ids appended by ``+`` (``mnist+identity+rotate(+90)``), or
    TF ids alone joined by ``+`` (``rotate(+5)+hflip``)."""
    name, *extra = _split_outside_parentheses(text, "+")
    if name not in NAMED_SETS:
        return TFSet([name, *extra], name=text)
    base = get_tfset(name)
    return TFSet(base.ids + extra, name=text) if extra else base


# --flag -> fit_policy argument; a flag left unset takes the library's default.
FIT_FLAGS = {
    "seq_len": "seq_len",
    "fit_steps": "steps",
    "fit_batch_size": "batch_size",
    "n_seqs": "n_seqs",
    "g_optimizer": "g_optimizer",
    "g_lr": "g_lr",
    "d_lr": "d_lr",
    "d_width": "d_width",
    "diversity": "diversity",
    "entropy": "entropy",
    "jitter": "jitter",
    "fit_subset": "subset",
}


def fit_images(args: argparse.Namespace) -> float:
    """The most pool images a fit sees: ``--fit-subset`` or ``fit_policy``'s default ``subset``."""
    default = inspect.signature(fit_policy).parameters["subset"].default
    subset = args.fit_subset if args.fit_subset is not None else default
    return math.inf if subset is None else subset


def fit_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The fit options given on the command line, as ``fit_policy`` keyword arguments."""
    return {kw: getattr(args, flag) for flag, kw in FIT_FLAGS.items() if getattr(args, flag) is not None}


class StandardizedDiscriminator(nn.Module):
    """fit_policy's discriminator on images standardised one by one (zero mean, unit deviation): brightness and
    contrast changes become invisible to it, so only what changes an image's shape can be detected."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.d = DCGANDiscriminator(*args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        mean, std = x.mean(dim=(1, 2, 3), keepdim=True), x.std(dim=(1, 2, 3), keepdim=True)
        return self.d((x - mean) / (std + 1e-3))


def fit_one(name: str, pool: np.ndarray, args: argparse.Namespace, log_every: int) -> Policy:
    """Fit one TANDA policy on the unlabeled pool, logging the losses and the R/G ratio as it goes."""
    if args.fit_limit is not None and args.fit_limit < len(pool):
        pool = pool[np.sort(np.random.default_rng(SUBSET_SEED).choice(len(pool), args.fit_limit, replace=False))]

    def log(step: int, m: dict[str, float], _: Policy) -> None:
        if step % log_every == 0:
            rg = f" rg_ratio={m['rg_ratio']:.3f}" if "rg_ratio" in m else ""
            print(
                f"  fit {name} step {step + 1}: d_loss={m['d_loss']:.3f} reward={m['reward']:.3f} "
                f"dist={m['diversity']:.4f}{rg}",
                flush=True,
            )

    floor, disc_class = fit_loop.NO_OP_FLOOR, fit_loop.DCGANDiscriminator
    if args.no_op_floor is not None:
        fit_loop.NO_OP_FLOOR = args.no_op_floor
    if args.d_standardize:
        fit_loop.DCGANDiscriminator = StandardizedDiscriminator  # built where fit_policy builds its own
    try:
        return fit_policy(
            pool,
            parse_tfs(args.tfs),
            FIT_MODELS[name],
            seed=args.fit_seed,
            progress=False,
            callbacks=[log],
            **fit_overrides(args),
        )
    except FloatingPointError as exc:
        raise SystemExit(f"error: fitting {name} failed: {exc}") from None
    finally:
        fit_loop.NO_OP_FLOOR, fit_loop.DCGANDiscriminator = floor, disc_class


def fit_summary(policy: Policy, source: str) -> dict[str, Any]:
    """What was learned, in numbers: top TFs, entropy, the last losses and R/G ratios."""
    h = policy.history or {}
    tail = lambda k: round(float(np.mean(h[k][-20:])), 4) if h.get(k) else None  # noqa: E731
    return {
        "source": source,
        "kind": policy.model_name,
        "top_tfs": [(t, round(p, 4)) for t, p in policy.top_tfs(6)],
        "entropy_ratio": round(policy.entropy_ratio(), 4),
        "wall_s": policy.provenance.get("wall_time_s"),
        "steps": policy.provenance.get("steps"),
        "d_loss_last20": tail("d_loss"),
        "reward_last20": tail("reward"),
        "dist_last20": tail("diversity"),
        "rg_ratio_first": round(h["rg_ratio"][0], 4) if h.get("rg_ratio") else None,
        "rg_ratio_last": round(h["rg_ratio"][-1], 4) if h.get("rg_ratio") else None,
        "fit_args": policy.provenance.get("fit_args"),
    }


def sample_grid(policies: dict[str, Policy], images: np.ndarray, path: Path, per_policy: int = 2) -> None:
    """Originals in the first row, then ``per_policy`` rows of fresh sequences per policy (always applied)."""
    rows, labels = [list(images)], ["original"]
    for name, pol in policies.items():
        tf = LearnedPolicyTransform(pol, p=1.0, seed=0)
        for _ in range(per_policy):
            rows.append([tf(img) for img in images])
            labels.append(name)
    write_png(path, image_grid(rows, labels=labels))


# ---------------------------------------------------------------------------------------------- report


def mean_std(accs: list[float]) -> tuple[float, float]:
    return float(np.mean(accs)), float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0


def markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    paper_col = any(r.get("paper") is not None for r in report["rows"])
    head = "| augmentation | test acc. % (mean ± std) | per seed | train wall s (per seed) |"
    head += " paper |" if paper_col else ""
    lines = [
        f"# TANDA reproduction: {s['dataset']}, {s['labels']} labels" + (" (SMOKE RUN)" if s["smoke"] else ""),
        "",
        head,
        "|---" * (5 if paper_col else 4) + "|",
    ]
    for r in report["rows"]:
        row = (
            f"| {r['label']} | {r['acc_mean']:.2f} ± {r['acc_std']:.2f} | "
            f"{', '.join(f'{a:.2f}' for a in r['accs'])} | {r['train_wall_s_per_seed']:.0f} |"
        )
        if paper_col:
            row += f" {r['paper'] if r.get('paper') is not None else '-'} |"
        lines.append(row)
    lines += ["", "Recipes:", ""]
    lines += [f"- {r['label']}: {r['recipe']}" for r in report["rows"]]
    if report["fits"]:
        lines += ["", "Policies:", ""]
        for name, f in report["fits"].items():
            top = ", ".join(f"{t} {p:.3f}" for t, p in f["top_tfs"])
            lines.append(
                f"- {name} ({f['source']}): top TFs {top}; entropy ratio {f['entropy_ratio']}; "
                f"R/G ratio {f['rg_ratio_first']} -> {f['rg_ratio_last']}; fit {f['steps']} steps, {f['wall_s']} s"
            )
    lines += ["", "Settings:", "", "```json", json.dumps(s, indent=1), "```"]
    if report["notes"]:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in report["notes"]]
    lines += ["", f"Command: `{report['command']}`", f"Total wall time: {report['total_wall_s']:.0f} s", ""]
    return "\n".join(lines)


def write_report(out: Path, report: dict[str, Any]) -> None:
    (out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "results.md").write_text(markdown(report))


def print_table(report: dict[str, Any]) -> None:
    print(f"\n{'augmentation':32s} {'acc % mean':>10s} {'std':>6s} {'wall s/seed':>12s} {'paper':>6s}")
    for r in report["rows"]:
        paper = f"{r['paper']:.1f}" if r.get("paper") is not None else "-"
        wall = r["train_wall_s_per_seed"]
        print(f"{r['label']:32s} {r['acc_mean']:10.2f} {r['acc_std']:6.2f} {wall:12.0f} {paper:>6s}")


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="MNIST folder (t10k IDX .gz files) or cifar10_jpeg.npz / its folder")
    ap.add_argument("--dataset", required=True, choices=["mnist", "cifar10"])
    ap.add_argument("--labels", help="labeled images: a count (600) or a fraction of the official training set")
    ap.add_argument(
        "--seeds", type=int, default=3, help="N seeds, from --first-seed; a seed fixes the subset and the init"
    )
    ap.add_argument(
        "--first-seed", type=int, default=0, help="start at this seed (seeds S..S+N-1): add seeds to an earlier run"
    )
    ap.add_argument("--epochs", type=int, help="end-model epochs (default 20 MNIST, 60 CIFAR-10)")
    ap.add_argument("--augs", default=",".join(AUGS), help=f"comma-separated rows, from {', '.join(AUGS)}")
    ap.add_argument("--policy-mf", help="pre-fitted mean-field policy file (skips its fit)")
    ap.add_argument("--policy-lstm", help="pre-fitted LSTM policy file (skips its fit)")
    ap.add_argument(
        "--p-augment",
        type=float,
        default=inspect.signature(LearnedPolicyTransform).parameters["p"].default,
        help="fraction of samples augmented in policy rows (default: the transform's default p)",
    )
    ap.add_argument(
        "--order",
        choices=["seq-then-crop", "pad-seq-crop", "seq-only"],
        default="seq-then-crop",
        help="policy rows: sequence then the basic pad-crop(-flip) (as users apply it), the paper's pad -> sequence "
        "-> crop, or the sequence alone",
    )
    ap.add_argument("--model", help="end model: cnn (MNIST default), resnet20 (CIFAR default), resnet56")
    ap.add_argument("--batch-size", type=int, help="end-model batch size (default 32 MNIST, 128 CIFAR-10)")
    ap.add_argument(
        "--lr", type=float, help="OneCycle max learning rate, SGD + Nesterov (default 0.05 MNIST, 0.1 CIFAR)"
    )
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument(
        "--val", type=int, default=0, help="also report accuracy on N unlabeled-pool images (to choose settings)"
    )
    ap.add_argument("--test-limit", type=int, help="evaluate on the first N test images (CPU budgets)")
    ap.add_argument("--interpolation", choices=["bilinear", "nearest"], help="policy rows (default: the transform's)")
    ap.add_argument("--resize", type=int, help="resize every image to N x N (e.g. 8: a low-resolution digits set)")
    ap.add_argument("--pool-limit", type=int, help="keep a random subset of this many pool images (small-data table)")
    group = ap.add_argument_group("policy fitting (fit_policy on the unlabeled pool; unset options: library defaults)")
    group.add_argument("--tfs", help="TF set (default: 'mnist' or 'cifar10', TANDA's sets)")
    group.add_argument("--fit-steps", type=int)
    group.add_argument("--seq-len", type=int)
    group.add_argument("--fit-batch-size", type=int)
    group.add_argument("--n-seqs", type=int, help="sequences per image in the generator step")
    group.add_argument("--g-optimizer", choices=["sgd", "adam"])
    group.add_argument("--g-lr", type=float)
    group.add_argument("--d-lr", type=float)
    group.add_argument("--d-width", type=int, help="discriminator width")
    group.add_argument("--diversity", type=float, help="weight of the diversity term")
    group.add_argument("--entropy", type=float, help="weight of the entropy bonus")
    group.add_argument("--jitter", action="store_true", default=None, help="sub-pixel jitter before the discriminator")
    group.add_argument("--fit-seed", type=int, default=0)
    group.add_argument(
        "--fit-limit", type=int, help="fit on a random subset of this many pool images (one fixed draw for every seed)"
    )
    group.add_argument(
        "--fit-subset", type=int, help="fit_policy's subset: a random subset of this many pool images, per fit seed"
    )
    group.add_argument(
        "--d-standardize",
        action="store_true",
        help="experiment: the fit's discriminator sees each image standardised (brightness and contrast hidden)",
    )
    group.add_argument(
        "--no-op-floor",
        type=float,
        help="experiment: the diversity charge's floor (learned_augment.fit.loop.NO_OP_FLOOR; library: 1e-6)",
    )
    ap.add_argument("--threads", type=int, default=2, help="torch threads (on a busy shared machine 1 can be faster)")
    ap.add_argument(
        "--workers",
        type=int,
        default=0,
        choices=[0, 1, 2],
        help="DataLoader workers (0 was fastest on 28x28 data; each count gives its own random streams)",
    )
    ap.add_argument("--device", default="auto", help="cpu, cuda or auto")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--smoke", action="store_true", help="tiny run of the whole pipeline (< 1 min): " + str(SMOKE))
    args = ap.parse_args(argv)

    if args.smoke:
        args.labels = SMOKE["labels"]
        args.seeds, args.epochs, args.fit_steps = SMOKE["seeds"], SMOKE["epochs"], SMOKE["fit_steps"]
        args.n_seqs, args.fit_limit = SMOKE["n_seqs"], SMOKE["fit_limit"]
        args.test_limit = min(args.test_limit or SMOKE["test_limit"], SMOKE["test_limit"])
    mnist = args.dataset == "mnist"
    try:
        args.n_labels = parse_labels(args.labels or ("600" if mnist else "5000"), args.dataset)
    except argparse.ArgumentTypeError as exc:
        ap.error(str(exc))
    args.aug_list = [a.strip() for a in args.augs.split(",") if a.strip()]
    unknown = [a for a in args.aug_list if a not in AUGS]
    if unknown or not args.aug_list:
        ap.error(f"unknown --augs {unknown}; choose from {', '.join(AUGS)}")
    if not 0.0 <= args.p_augment <= 1.0:
        ap.error("--p-augment must be in [0, 1]")
    if args.first_seed < 0:
        ap.error("--first-seed must be >= 0")
    if args.no_op_floor is not None and not 0 < args.no_op_floor < float("inf"):
        ap.error("--no-op-floor must be a positive number")
    args.seed_list = list(range(args.first_seed, args.first_seed + args.seeds))
    if args.seeds < 1 or (args.fit_steps is not None and args.fit_steps < 1):
        ap.error("--seeds and --fit-steps must be >= 1")
    if args.val < 0:
        ap.error("--val must be >= 0")
    if any(n is not None and n < 1 for n in (args.fit_subset, args.fit_limit)):
        ap.error("--fit-subset and --fit-limit must be >= 1")
    if args.pool_limit is not None and args.pool_limit < 10:
        ap.error("--pool-limit must be >= 10")
    args.epochs = args.epochs or (20 if mnist else 60)
    args.model = args.model or ("cnn" if mnist else "resnet20")
    args.batch_size = args.batch_size or (32 if mnist else 128)
    args.lr = args.lr or (0.05 if mnist else 0.1)
    args.tfs = args.tfs or args.dataset
    return args


def main(argv: list[str] | None = None) -> None:
    t0 = time.perf_counter()
    args = parse_args(argv)
    split = load_split(args.dataset, args.data, args.test_limit)
    if args.resize is not None:
        split.pool_x, split.test_x = resize_images(split.pool_x, args.resize), resize_images(split.test_x, args.resize)
        split.notes.append(f"images resized to {args.resize}x{args.resize} (area interpolation)")
    if args.pool_limit is not None and args.pool_limit < len(split.pool_x):
        keep = np.sort(
            np.random.default_rng([SUBSET_SEED, 2]).choice(len(split.pool_x), args.pool_limit, replace=False)
        )
        split.pool_x, split.pool_y = split.pool_x[keep], split.pool_y[keep]
        split.notes.append(f"pool = a random {args.pool_limit} of those images (labels and fits use only these)")
    try:
        tfset = parse_tfs(args.tfs)
    except (KeyError, ValueError, TypeError) as exc:
        raise SystemExit(f"error: --tfs {args.tfs!r}: {exc}") from None
    given = {"tanda-mf": args.policy_mf, "tanda-lstm": args.policy_lstm}
    seq_len = args.seq_len or inspect.signature(fit_policy).parameters["seq_len"].default
    policies: dict[str, Policy] = {"heuristic": UniformPolicy(tfset, seq_len)}
    for name, path in given.items():
        if path and name in args.aug_list:
            policies[name] = load_given_policy(path, tfset, "--policy-" + name.split("-")[1])
    fitted = [name for name in given if name in args.aug_list and name not in policies]
    subsets = {seed: balanced_subset(split.pool_y, args.n_labels, seed) for seed in args.seed_list}
    # Validation: pool images outside each seed's labeled subset (labels the experiment does not train on), to
    # choose settings without looking at the test set.
    val_sets = {seed: validation_set(split, idx, args.val, args.dataset, seed) for seed, idx in subsets.items()}
    # Everything is checked: only now touch the process-wide settings and the output folder.
    torch.set_num_threads(args.threads)
    # Per-sample warps of 28x28 / 32x32 images gain nothing from threads, and DataLoader workers forked after
    # OpenCV started its thread pool hung in our runs.
    cv2.setNumThreads(1)
    auto = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(auto if args.device == "auto" else args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    test_x = normalised_tensor(split.test_x, args.dataset)
    test_y = torch.from_numpy(split.test_y)
    recipe = Recipe(args.model, args.epochs, args.batch_size, args.lr, args.weight_decay, args.workers, device)
    notes = list(split.notes)
    notes.append("wall times are per seed on this machine, under whatever else it ran: compare them within a run only")
    if args.smoke:
        notes.append("SMOKE RUN: tiny subset, numbers are meaningless")
    if args.dataset == "cifar10" and args.epochs < 60:
        notes.append(f"reduced schedule for CPU: {args.epochs} epochs (the reference recipe uses 60)")
    settings = {
        "dataset": args.dataset,
        "labels": args.n_labels,
        "labels_fraction_of_official_train": round(args.n_labels / OFFICIAL_TRAIN[args.dataset], 5),
        "pool_images": len(split.pool_x),
        "image_size": list(split.pool_x.shape[1:]),
        "test_images": len(split.test_x),
        "seeds": args.seed_list,
        "model": args.model,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "optimizer": f"SGD(momentum=0.9, nesterov, weight_decay={args.weight_decay})",
        "schedule": f"OneCycleLR(max_lr={args.lr}) per step",
        "p_augment": args.p_augment,
        "policy_order": args.order,
        "interpolation": args.interpolation or "transform default",
        "tfs": f"{args.tfs} (K={len(tfset)})",
        "seq_len": seq_len,
        "fit": {
            "overrides": fit_overrides(args) or "none: fit_policy's defaults",
            **({"no_op_floor": args.no_op_floor} if args.no_op_floor is not None else {}),
            "seed": args.fit_seed,
            "pool_images": min(len(split.pool_x), args.fit_limit or len(split.pool_x), fit_images(args)),
            **({} if fitted else {"not_run": "no policy fitted in this run (a learned row loads its file: see fits)"}),
        },
        "threads": args.threads,
        "workers": args.workers,
        "device": str(device),
        "versions": {
            "learned_augment": la.__version__,
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
        },
        "smoke": args.smoke,
    }
    report: dict[str, Any] = {
        "settings": settings,
        "rows": [],
        "fits": {},
        "notes": notes,
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "total_wall_s": 0.0,
    }
    print(f"{args.dataset}: {args.n_labels} labels, {len(split.test_x)} test images, rows {args.aug_list}", flush=True)

    paper = PAPER.get((args.dataset, args.n_labels), {})
    for aug in args.aug_list:
        policy = policies.get(aug)
        if aug in FIT_MODELS:
            if policy is None:
                policy = fit_one(aug, split.pool_x, args, log_every=max(1, (args.fit_steps or MIN_STEPS) // 10))
                policy.save(str(out / f"policy-{aug}.safetensors"))
                policies[aug] = policy
                source = f"fitted, saved to policy-{aug}.safetensors"
            else:
                source = f"loaded from {given[aug]}"
            report["fits"][aug] = fit_summary(policy, source)
            if report["fits"][aug]["entropy_ratio"] < COLLAPSED:
                notes.append(
                    f"{aug} collapsed onto a few TFs (entropy ratio {report['fits'][aug]['entropy_ratio']}); "
                    "with SGD the generator's step size scales with the reward magnitudes: try a lower --g-lr"
                )
            frequency_png(policy, out / f"freq-{aug}.png")
        accs, val_accs, walls = [], [], []
        for seed, idx in subsets.items():
            t = time.perf_counter()
            ds = train_dataset(
                aug,
                args.dataset,
                split.pool_x[idx],
                split.pool_y[idx],
                policy,
                args.p_augment,
                seed,
                args.order,
                args.interpolation,
            )
            evals = [(test_x, test_y)] + ([val_sets[seed]] if args.val else [])
            acc = train_and_test(ds, evals, recipe, seed)
            accs.append(acc[0])
            val_accs += acc[1:]
            walls.append(time.perf_counter() - t)
            shown_val = f", validation {acc[1]:.2f}%" if args.val else ""
            print(f"  {aug} seed {seed}: {acc[0]:.2f}%{shown_val} ({walls[-1]:.0f} s)", flush=True)
        m, s = mean_std(accs)
        report["rows"].append(
            {
                "aug": aug,
                "label": LABELS[aug],
                "recipe": recipe_text(aug, args.dataset, args.p_augment, args.order, split.pool_x.shape[1]),
                "acc_mean": round(m, 3),
                "acc_std": round(s, 3),
                "accs": [round(a, 3) for a in accs],
                "val_accs": [round(a, 3) for a in val_accs],
                "train_wall_s_per_seed": round(float(np.mean(walls)), 1),
                "paper": paper.get(aug),
            }
        )
        val_text = f" (validation {np.mean(val_accs):.2f})" if val_accs else ""
        print(f"{LABELS[aug]}: {m:.2f} ± {s:.2f}{val_text}", flush=True)
        report["total_wall_s"] = round(time.perf_counter() - t0, 1)
        write_report(out, report)  # after every row, so a long run can be watched and a killed one keeps its rows

    shown = {k: v for k, v in policies.items() if k in args.aug_list}
    if shown:
        # One image from each of 8 classes (the CIFAR-10 npz is sorted by class, so not simply the first 8).
        sample_grid(shown, split.pool_x[balanced_subset(split.pool_y, 8, SUBSET_SEED)], out / "samples.png")
    report["total_wall_s"] = round(time.perf_counter() - t0, 1)
    write_report(out, report)
    print_table(report)
    print(f"\nwrote {out / 'results.json'} and {out / 'results.md'} ({report['total_wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
