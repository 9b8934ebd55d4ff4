"""Throughput of our TF sequences against torchvision and Albumentations, side by side in one process.

Four sections, each printed as a table and written to one JSON file (``--out``):

1. **Per image, one CPU thread** (``--threads``): :func:`learned_augment.ops.apply_sequence` with random sequences
   of 2 and 10 TFs from the ``"default"`` and ``"cifar10"`` TF sets (a different sequence every call, drawn ahead of
   time), :class:`~learned_augment.LearnedPolicyTransform` on numpy images, torchvision v2 RandAugment (2 ops),
   AutoAugment (CIFAR-10 policy) and TrivialAugmentWide on PIL and on uint8 tensor inputs (plus RandAugment with
   bilinear resampling, as ours resamples, where its default is nearest), and an Albumentations pipeline of
   comparable ops (``A.SomeOf(n=2)`` of them, and all ten in a row). uint8 RGB at each ``--sizes``.
2. **In a DataLoader**: ``LearnedPolicyTransform`` (mean-field and LSTM policies over the ``"cifar10"`` TF set,
   L = 2 and 10) against torchvision RandAugment and TrivialAugmentWide, in the same ``torch.utils.data.DataLoader``
   over 32x32 uint8 images returning tensors, with 0, 1 and 2 workers (one torch thread each).
3. **Batched**: :func:`learned_augment.ops.apply_sequence_batch` with a different L = 10 sequence per sample, batch
   256, at 224x224 on CUDA when a GPU is present (with torchvision applied sample by sample on the GPU for scale),
   and at 32x32 on the CPU for reference.
4. **As an nn.Module**: :class:`~learned_augment.module.PolicyAugment` (mean-field and LSTM policies over the
   ``"cifar10"`` TF set, L = 10) in training mode on a uint8 batch of 64 on the CPU at 32x32 and 224x224, one call
   per batch: sampling a sequence per sample included, as in a training step; beside it, when kornia is installed
   (it is not a dependency: ``pip install kornia``), kornia's batched augmentation on the same batch as float in
   [0, 1] (its input type): ``RandAugment(n=2)``, ``TrivialAugment`` and an ``AugmentationSequential`` of ten
   comparable ops (rotation, shear, translation, flip, brightness, contrast, saturation, hue, sharpness, noise).

Rates are images per second, the median of ``--repeats`` timed repeats after a warm-up. In section 1 the repeats of
all rows of a size are interleaved (repeat 1 of every row, then repeat 2, ...) so that a change in the machine's load
during the run hits every row alike rather than whichever row happened to be running. The load average at the start
and the end is printed and stored: on a shared machine, read the figures together with it.

Run::

    python examples/benchmark_throughput.py --cifar ../shared/data/cifar10/cifar10_jpeg.npz --out bench.json
    python examples/benchmark_throughput.py --quick --out /tmp/bench.json    # seconds; every row, tiny counts
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

# Albumentations otherwise asks PyPI for a newer version at import time: a network call inside a benchmark.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from _data import load_cifar10_test, synthetic_images  # noqa: E402
from PIL import Image  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402
from torchvision.transforms import v2  # noqa: E402

from learned_augment import LearnedPolicyTransform  # noqa: E402
from learned_augment.module import PolicyAugment  # noqa: E402
from learned_augment.ops import apply_sequence  # noqa: E402
from learned_augment.ops.batch import apply_sequence_batch  # noqa: E402
from learned_augment.ops.tfset import TFSet, get_tfset  # noqa: E402
from learned_augment.policy import LSTMPolicy, MeanFieldPolicy, Policy  # noqa: E402

TF_SETS = ("default", "cifar10")
SEQ_LENS = (2, 10)
INTERPOLATIONS = ("bilinear", "nearest")
"""Our rows resample both ways: bilinear is the default, nearest is what RandAugment does by default."""
LOADER_WORKERS = (0, 1, 2)
LOADER_SIZE = 32
BATCH = 256
BATCH_SEQ_LEN = 10
GPU_SIZE = 224
TARGET_2OPS = 1.5
TARGET_10OPS = 1.0
TARGET_GPU = 100_000.0
NOT_MEASURED_GPU = "not measured (no GPU)"
MODULE_BATCH = 64
MODULE_SEQ_LEN = 10
MODULE_SIZES = (32, 224)


@dataclass(frozen=True)
class Counts:
    """How much work each measurement does."""

    pool: int
    """Distinct images cycled through (per size)."""
    per_image: Callable[[int], int]
    """Calls per timed repeat, given the image size."""
    warmup: int
    loader_images: int
    loader_batch: int
    batch_iters: int
    module_iters: Callable[[int], int]
    """PolicyAugment calls per timed repeat, given the image size."""
    repeats: int


def make_counts(quick: bool, repeats: int) -> Counts:
    if quick:
        return Counts(16, lambda s: 8, 2, 64, 16, 1, lambda s: 1, repeats)
    # ~2000 calls at 32x32, fewer for larger images, so each timed repeat lasts about a second.
    return Counts(256, lambda s: max(100, int(2000 * 32 / s)), 20, 3072, 64, 4, lambda s: max(2, 512 // s), repeats)


# ---------------------------------------------------------------------------------------------- images


def load_cifar_pool(path: Path, n: int) -> np.ndarray:
    """The first ``n`` CIFAR-10 test images from the JPEG npz: (n, 32, 32, 3) uint8 RGB (only those are decoded)."""
    return load_cifar10_test(path, n)


def images_at(base: np.ndarray, size: int) -> np.ndarray:
    """``base`` (n, h, w, 3) resized to ``size`` (bicubic upsampling for 224 from CIFAR's 32)."""
    if base.shape[1:3] == (size, size):
        return base
    interp = cv2.INTER_CUBIC if size > base.shape[1] else cv2.INTER_AREA
    return np.stack([cv2.resize(im, (size, size), interpolation=interp) for im in base])


# ---------------------------------------------------------------------------------------------- section 1


@dataclass
class Case:
    """One per-image row: ``call(i)`` augments the i-th input (inputs and sequences are prepared beforehand)."""

    name: str
    library: str
    input: str
    ops: int
    call: Callable[[int], Any]


def albumentations_ops() -> list[A.BasicTransform]:
    """Ten Albumentations ops comparable to our TFs (same border handling as our warps: replicate)."""
    border = cv2.BORDER_REPLICATE
    return [
        A.Affine(rotate=(-30, 30), border_mode=border, p=1.0),
        A.Affine(shear={"x": (-17, 17), "y": (0, 0)}, border_mode=border, p=1.0),
        A.Affine(translate_percent=(-0.25, 0.25), border_mode=border, p=1.0),
        A.HorizontalFlip(p=1.0),
        A.RandomBrightnessContrast(brightness_limit=0.5, contrast_limit=0.5, p=1.0),
        A.HueSaturationValue(hue_shift_limit=20, sat_shift_limit=30, val_shift_limit=0, p=1.0),
        A.Sharpen(p=1.0),
        A.Posterize(num_bits=(4, 6), p=1.0),
        A.Solarize(threshold_range=(0.5, 0.75), p=1.0),
        A.Equalize(p=1.0),
    ]


def mean_field(tfs: str, seq_len: int, seed: int = 0) -> MeanFieldPolicy:
    """A mean-field policy with non-uniform logits, as a fitted one has (speed does not depend on them)."""
    policy = MeanFieldPolicy(tfs, seq_len=seq_len)
    with torch.no_grad():
        policy.logits.copy_(torch.randn(policy.num_tfs, generator=torch.Generator().manual_seed(seed)))
    return policy


def per_image_cases(pool: np.ndarray, n: int, seed: int) -> list[Case]:
    """Every per-image row for one image size, inputs converted ahead of time to each library's input type."""
    rng = np.random.default_rng(seed)
    gen = np.random.default_rng(seed + 1)
    arrays = list(pool)
    pils = [Image.fromarray(a) for a in arrays]
    tensors = [torch.from_numpy(a).permute(2, 0, 1).contiguous() for a in arrays]
    cases: list[Case] = []

    for name in TF_SETS:
        ts = get_tfset(name)
        for seq_len in SEQ_LENS:
            # One sequence per call: the same n sequences are replayed in every repeat.
            seqs = rng.integers(0, len(ts), (n, seq_len))
            for interp in INTERPOLATIONS:
                call = sequence_call(arrays, seqs, ts, gen, interp)
                label = f"ours apply_sequence {name!r}" + ("" if interp == "bilinear" else f" {interp}")
                cases.append(Case(label, "learned_augment", "numpy", seq_len, call))
    for seq_len in SEQ_LENS:
        # The transform users touch: sampling, dispatch and the wrapper around apply_sequence included.
        t = LearnedPolicyTransform(mean_field("cifar10", seq_len, seed), p=1.0, seed=seed)
        name = "ours LearnedPolicyTransform mean-field 'cifar10'"
        cases.append(Case(name, "learned_augment", "numpy", seq_len, cycling(t, arrays)))

    tv = [
        ("torchvision RandAugment", 2, v2.RandAugment(num_ops=2)),
        ("torchvision AutoAugment CIFAR10", 2, v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)),
        ("torchvision TrivialAugmentWide", 1, v2.TrivialAugmentWide()),
        # RandAugment resamples with NEAREST by default; our warps are bilinear. This row prices that difference.
        ("torchvision RandAugment bilinear", 2, v2.RandAugment(num_ops=2, interpolation=v2.InterpolationMode.BILINEAR)),
    ]
    for label, ops, tf in tv:
        cases.append(Case(label, "torchvision", "PIL", ops, cycling(tf, pils)))
        cases.append(Case(label, "torchvision", "tensor", ops, cycling(tf, tensors)))

    some2 = A.Compose([A.SomeOf(albumentations_ops(), n=2, replace=False, p=1.0)], seed=seed)
    all10 = A.Compose(albumentations_ops(), seed=seed)
    for label, ops, pipeline in (
        ("albumentations SomeOf(n=2) of 10", 2, some2),
        ("albumentations all 10 in a row", 10, all10),
    ):
        cases.append(Case(label, "albumentations", "numpy", ops, cycling(albumentations_call(pipeline), arrays)))
    return cases


def cycling(fn: Callable[[Any], Any], inputs: Sequence[Any]) -> Callable[[int], Any]:
    """``call(i) = fn(inputs[i % len(inputs)])``: a different image each call, prepared ahead of time."""
    m = len(inputs)

    def call(i: int) -> Any:
        return fn(inputs[i % m])

    return call


def sequence_call(
    arrays: Sequence[np.ndarray], seqs: np.ndarray, ts: TFSet, gen: np.random.Generator, interpolation: str
) -> Callable[[int], Any]:
    """``call(i)`` applies the i-th sequence to the i-th image (both cycled).

    One generator for all calls, as a training loop would hold: ``rng=None`` would build a fresh seeded generator
    inside every call, a cost no real user pays.
    """
    m, n = len(arrays), len(seqs)

    def call(i: int) -> Any:
        return apply_sequence(arrays[i % m], seqs[i % n], ts, rng=gen, interpolation=interpolation)

    return call


def albumentations_call(pipeline: A.Compose) -> Callable[[np.ndarray], np.ndarray]:
    """The pipeline as an image -> image function."""

    def call(image: np.ndarray) -> np.ndarray:
        return pipeline(image=image)["image"]

    return call


def run_interleaved(cases: Sequence[Case], n: int, warmup: int, repeats: int) -> list[list[float]]:
    """Images/s of every case in every repeat; repeat r of all cases runs before repeat r + 1 of any."""
    for case in cases:
        for i in range(warmup):
            case.call(i)
    rates: list[list[float]] = [[] for _ in cases]
    for _ in range(repeats):
        for k, case in enumerate(cases):
            call = case.call
            start = time.perf_counter()
            for i in range(n):
                call(i)
            rates[k].append(n / (time.perf_counter() - start))
    return rates


def bench_per_image(base: np.ndarray, sizes: Sequence[int], counts: Counts, seed: int) -> list[dict[str, Any]]:
    rows = []
    for size in sizes:
        pool = images_at(base, size)
        n = counts.per_image(size)
        cases = per_image_cases(pool, n, seed)
        print(f"  {size}x{size}: {len(cases)} rows x {counts.repeats} repeats x {n} images ...", flush=True)
        for case, rates in zip(cases, run_interleaved(cases, n, counts.warmup, counts.repeats)):
            rows.append(
                {
                    "section": "per_image",
                    "name": case.name,
                    "library": case.library,
                    "input": case.input,
                    "size": size,
                    "ops": case.ops,
                    "images": n,
                    "images_per_s": statistics.median(rates),
                    "best_images_per_s": max(rates),
                    "repeats": rates,
                }
            )
    return rows


def _fastest(rows: Sequence[dict[str, Any]], name: str) -> dict[str, Any]:
    """The row named ``name`` with the highest rate (torchvision's faster input path)."""
    return max((r for r in rows if r["name"] == name), key=lambda r: r["images_per_s"])


def ratios(rows: Sequence[dict[str, Any]], sizes: Sequence[int]) -> list[dict[str, Any]]:
    """The issue's two targets per size, TF set and resampling mode, against RandAugment's faster input path.

    ``ratio`` is always against RandAugment as shipped (nearest resampling); ``ratio_same_interpolation`` against
    RandAugment resampling the way our row does (the like-for-like comparison).
    """
    out = []
    for size in sizes:
        at = [r for r in rows if r["size"] == size]

        ra = _fastest(at, "torchvision RandAugment")
        ra_same = {"nearest": ra, "bilinear": _fastest(at, "torchvision RandAugment bilinear")}
        for name in TF_SETS:
            for interp in INTERPOLATIONS:
                label = f"ours apply_sequence {name!r}" + ("" if interp == "bilinear" else f" {interp}")
                for seq_len, target in ((2, TARGET_2OPS), (10, TARGET_10OPS)):
                    ours = next(r for r in at if r["name"] == label and r["ops"] == seq_len)
                    ratio = ours["images_per_s"] / ra["images_per_s"]
                    out.append(
                        {
                            "size": size,
                            "ours": f"apply_sequence {name!r} L={seq_len} {interp}",
                            "interpolation": interp,
                            "baseline": f"torchvision RandAugment (2 ops, {ra['input']})",
                            "ours_images_per_s": ours["images_per_s"],
                            "baseline_images_per_s": ra["images_per_s"],
                            "ratio": ratio,
                            # Best repeat against best repeat: less sensitive to other jobs on a shared machine.
                            "ratio_best": ours["best_images_per_s"] / ra["best_images_per_s"],
                            "ratio_same_interpolation": ours["images_per_s"] / ra_same[interp]["images_per_s"],
                            "target": target,
                            "met": ratio >= target,
                        }
                    )
    return out


# ---------------------------------------------------------------------------------------------- section 2


class ImageDataset(Dataset):
    """``length`` items cycling over ``images`` (n, H, W, 3) uint8; each item is augmented, then a (3, H, W) tensor.

    ``as_pil`` hands the transform a PIL image (torchvision's faster input path at this size) instead of numpy.
    """

    def __init__(self, images: np.ndarray, length: int, transform: Callable[[Any], Any] | None, as_pil: bool) -> None:
        self.images = images
        self.length = length
        self.transform = transform
        self.as_pil = as_pil

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> torch.Tensor:
        img = self.images[index % len(self.images)]
        x: Any = Image.fromarray(img) if self.as_pil else img
        if self.transform is not None:
            x = self.transform(x)
        if isinstance(x, Image.Image):
            # A copy, as torchvision's pil_to_tensor makes: np.asarray of a PIL image is read-only.
            x = np.array(x)
        return torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)


def one_thread_worker(_: int) -> None:
    """Workers each get one thread, so 2 workers use 2 cores rather than oversubscribing them."""
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def loader_rates(datasets: Sequence[Dataset], workers: int, batch_size: int, repeats: int) -> list[list[float]]:
    """Images/s over whole epochs of one loader per dataset, the loaders' epochs interleaved.

    All loaders keep their (persistent) workers alive for the whole measurement, so repeat r of every loader runs
    before repeat r + 1 of any, as in the per-image section; idle workers block on their queues and cost nothing.
    One untimed epoch per loader first starts its workers and warms them up.
    """
    loaders = [
        DataLoader(
            dataset,
            batch_size=batch_size,
            num_workers=workers,
            worker_init_fn=one_thread_worker if workers else None,
            persistent_workers=workers > 0,
        )
        for dataset in datasets
    ]
    for loader in loaders:
        for _ in loader:
            pass
    rates: list[list[float]] = [[] for _ in loaders]
    for _ in range(repeats):
        for k, loader in enumerate(loaders):
            start = time.perf_counter()
            seen = sum(len(batch) for batch in loader)
            rates[k].append(seen / (time.perf_counter() - start))
    return rates


def loader_transforms(seed: int) -> list[tuple[str, int, Callable[[Any], Any] | None, bool]]:
    """(name, ops, transform, give it PIL) for every DataLoader row."""
    mf = "ours LearnedPolicyTransform mean-field 'cifar10'"
    lstm: Policy = LSTMPolicy("cifar10", seq_len=10)
    return [
        ("no augmentation (loader overhead)", 0, None, False),
        (mf, 2, LearnedPolicyTransform(mean_field("cifar10", 2, seed), p=1.0, seed=seed), False),
        (mf, 10, LearnedPolicyTransform(mean_field("cifar10", 10, seed), p=1.0, seed=seed), False),
        ("ours LearnedPolicyTransform LSTM 'cifar10'", 10, LearnedPolicyTransform(lstm, p=1.0, seed=seed), False),
        ("torchvision RandAugment", 2, v2.RandAugment(num_ops=2), True),
        ("torchvision TrivialAugmentWide", 1, v2.TrivialAugmentWide(), True),
    ]


def bench_loader(base: np.ndarray, counts: Counts, seed: int) -> list[dict[str, Any]]:
    pool = images_at(base, LOADER_SIZE)
    rows = []
    for workers in LOADER_WORKERS:
        print(f"  DataLoader, {workers} worker(s) ...", flush=True)
        specs = loader_transforms(seed)
        datasets = [ImageDataset(pool, counts.loader_images, transform, as_pil) for _, _, transform, as_pil in specs]
        all_rates = loader_rates(datasets, workers, counts.loader_batch, counts.repeats)
        for (name, ops, _, as_pil), rates in zip(specs, all_rates):
            rows.append(
                {
                    "section": "dataloader",
                    "name": name,
                    "input": "PIL" if as_pil else "numpy",
                    "size": LOADER_SIZE,
                    "ops": ops,
                    "workers": workers,
                    "images": counts.loader_images,
                    "batch_size": counts.loader_batch,
                    "images_per_s": statistics.median(rates),
                    "repeats": rates,
                }
            )
    return rows


# ---------------------------------------------------------------------------------------------- section 3


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def batch_rates(
    base: np.ndarray, device: torch.device, size: int, tfs: str, iters: int, repeats: int, seed: int
) -> list[float]:
    """apply_sequence_batch on a (BATCH, 3, size, size) uint8 batch with a fresh (BATCH, L) id array per call."""
    ts = get_tfset(tfs)
    pool = images_at(base, size)
    idx = np.arange(BATCH) % len(pool)
    x = torch.from_numpy(pool[idx]).permute(0, 3, 1, 2).contiguous().to(device)
    ids = np.random.default_rng(seed).integers(0, len(ts), (iters, BATCH, BATCH_SEQ_LEN))
    gen = torch.Generator(device=device).manual_seed(seed)
    for k in range(min(2, iters)):
        apply_sequence_batch(x, ids[k], ts, generator=gen)
    _sync(device)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for k in range(iters):
            apply_sequence_batch(x, ids[k], ts, generator=gen)
        _sync(device)
        rates.append(iters * BATCH / (time.perf_counter() - start))
    return rates


def per_sample_gpu_rates(base: np.ndarray, device: torch.device, transform: Callable, repeats: int) -> list[float]:
    """A torchvision transform applied sample by sample to a batch on the GPU (a whole-batch call would apply ONE
    draw to every sample, which is not per-sample augmentation)."""
    pool = images_at(base, GPU_SIZE)
    x = torch.from_numpy(pool[np.arange(BATCH) % len(pool)]).permute(0, 3, 1, 2).contiguous().to(device)
    for i in range(8):
        transform(x[i])
    _sync(device)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = [transform(img) for img in x]
        _sync(device)
        rates.append(len(out) / (time.perf_counter() - start))
    return rates


def bench_batch(base: np.ndarray, counts: Counts, seed: int) -> list[dict[str, Any]]:
    rows = []
    cpu = torch.device("cpu")
    for tfs in TF_SETS:
        print(f"  batched CPU {tfs!r} ...", flush=True)
        rates = batch_rates(base, cpu, LOADER_SIZE, tfs, counts.batch_iters, counts.repeats, seed)
        rows.append(_batch_row(f"ours apply_sequence_batch {tfs!r}", "cpu", LOADER_SIZE, BATCH_SEQ_LEN, rates))
    gpu_rows = [(f"ours apply_sequence_batch {tfs!r}", BATCH_SEQ_LEN, tfs) for tfs in TF_SETS]
    gpu_rows += [
        ("torchvision RandAugment, per-sample loop", 2, v2.RandAugment(num_ops=2)),
        ("torchvision TrivialAugmentWide, per-sample loop", 1, v2.TrivialAugmentWide()),
    ]
    if not torch.cuda.is_available():
        print(f"  GPU rows: {NOT_MEASURED_GPU}", flush=True)
        return rows + [_batch_row(name, "cuda", GPU_SIZE, ops, None) for name, ops, _ in gpu_rows]
    device = torch.device("cuda")
    for name, ops, what in gpu_rows:
        print(f"  {name} on {torch.cuda.get_device_name(device)} ...", flush=True)
        if isinstance(what, str):
            # More calls on the GPU: one call is milliseconds, far shorter than a CPU timer tick matters.
            rates = batch_rates(base, device, GPU_SIZE, what, counts.batch_iters * 5, counts.repeats, seed)
        else:
            rates = per_sample_gpu_rates(base, device, what, counts.repeats)
        rows.append(_batch_row(name, "cuda", GPU_SIZE, ops, rates, torch.cuda.get_device_name(device)))
    return rows


def _batch_row(
    name: str, device: str, size: int, ops: int, rates: list[float] | None, device_name: str | None = None
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "section": "batch",
        "name": name,
        "device": device,
        "size": size,
        "ops": ops,
        "batch_size": BATCH,
        "images_per_s": statistics.median(rates) if rates else None,
        "repeats": rates or [],
    }
    if device_name:
        row["device_name"] = device_name
    if rates is None:
        row["status"] = NOT_MEASURED_GPU
    return row


# ---------------------------------------------------------------------------------------------- section 4


def module_cases(base: np.ndarray, size: int, seed: int) -> list[Case]:
    """PolicyAugment rows at one size: ``call(i)`` augments the same (MODULE_BATCH, 3, size, size) uint8 batch."""
    pool = images_at(base, size)
    x = torch.from_numpy(pool[np.arange(MODULE_BATCH) % len(pool)]).permute(0, 3, 1, 2).contiguous()
    policies: list[tuple[str, Policy]] = [
        ("mean-field", mean_field("cifar10", MODULE_SEQ_LEN, seed)),
        ("LSTM", LSTMPolicy("cifar10", seq_len=MODULE_SEQ_LEN)),
    ]
    cases = []
    for label, policy in policies:
        aug = PolicyAugment(policy, p=1.0, seed=seed).train()
        cases.append(
            Case(f"ours PolicyAugment {label} 'cifar10'", "learned_augment", "tensor", MODULE_SEQ_LEN, _on(aug, x))
        )
    xf = x.float() / 255.0
    for name, ops, module in kornia_modules():
        cases.append(Case(f"kornia {name}", "kornia", "float tensor", ops, _on(module, xf)))
    return cases


def kornia_modules() -> list[tuple[str, int, torch.nn.Module]]:
    """kornia's batched counterparts (name, ops per sample, module), or none when kornia is not installed."""
    try:
        import kornia.augmentation as K
        from kornia.augmentation.auto import RandAugment, TrivialAugment
    except ImportError:
        return []
    ten = K.AugmentationSequential(
        K.RandomRotation(30.0, p=1.0),
        K.RandomAffine(0.0, shear=15.0, p=1.0),
        K.RandomAffine(0.0, translate=(0.1, 0.1), p=1.0),
        K.RandomHorizontalFlip(p=1.0),
        K.RandomBrightness((0.7, 1.3), p=1.0),
        K.RandomContrast((0.7, 1.3), p=1.0),
        K.RandomSaturation((0.7, 1.3), p=1.0),
        K.RandomHue((-0.1, 0.1), p=1.0),
        K.RandomSharpness(0.5, p=1.0),
        K.RandomGaussianNoise(std=0.05, p=1.0),
    )
    return [
        ("RandAugment(n=2)", 2, RandAugment(n=2, m=10)),
        ("TrivialAugment", 1, TrivialAugment()),
        ("10 ops", 10, ten),
    ]


def _on(module: torch.nn.Module, x: torch.Tensor) -> Callable[[int], Any]:
    def call(i: int) -> Any:
        return module(x)

    return call


def bench_module(base: np.ndarray, counts: Counts, seed: int) -> list[dict[str, Any]]:
    rows = []
    for size in MODULE_SIZES:
        n = counts.module_iters(size)
        cases = module_cases(base, size, seed)
        print(
            f"  {size}x{size}: {len(cases)} rows x {counts.repeats} repeats x {n} batches of {MODULE_BATCH} ...",
            flush=True,
        )
        for case, rates in zip(cases, run_interleaved(cases, n, 1, counts.repeats)):
            images = [r * MODULE_BATCH for r in rates]
            rows.append(
                {
                    "section": "module",
                    "name": case.name,
                    "device": "cpu",
                    "input": case.input,
                    "size": size,
                    "ops": case.ops,
                    "batch_size": MODULE_BATCH,
                    "batches": n,
                    "images_per_s": statistics.median(images),
                    "repeats": images,
                }
            )
    return rows


# ---------------------------------------------------------------------------------------------- report


def _rate(value: float | None) -> str:
    return f"{value:>10,.0f}" if value is not None else f"{'-':>10}"


def _spread(rates: Sequence[float]) -> str:
    return f"{min(rates):,.0f}-{max(rates):,.0f}" if rates else NOT_MEASURED_GPU


def print_report(report: dict[str, Any]) -> None:
    meta = report["meta"]
    print()
    print("per image, " + f"{meta['threads']} CPU thread(s), images/s (median of {meta['repeats']}; min-max)")
    print(f"{'size':>5}  {'row':<52}{'input':<8}{'ops':>4}{'images/s':>11}  spread")
    for r in report["per_image"]:
        print(
            f"{r['size']:>5}  {r['name']:<52}{r['input']:<8}{r['ops']:>4}{_rate(r['images_per_s'])} "
            f" {_spread(r['repeats'])}"
        )
    print()
    print("targets: ours / torchvision RandAugment at its faster input path, medians")
    for t in report["ratios"]:
        verdict = "met" if t["met"] else "NOT met"
        print(
            f"{t['size']:>5}  {t['ours']:<34} vs {t['baseline']:<40} {t['ratio']:>6.2f}x  "
            f"target >= {t['target']:g}x: {verdict:<8} (best repeats {t['ratio_best']:.2f}x; "
            f"vs RandAugment resampling {t['interpolation']} {t['ratio_same_interpolation']:.2f}x)"
        )
    print()
    print(f"DataLoader, {LOADER_SIZE}x{LOADER_SIZE} uint8 -> tensor, images/s (median of {meta['repeats']} epochs)")
    print(f"{'workers':>7}  {'row':<52}{'input':<8}{'ops':>4}{'images/s':>11}  spread")
    for r in report["dataloader"]:
        print(
            f"{r['workers']:>7}  {r['name']:<52}{r['input']:<8}{r['ops']:>4}{_rate(r['images_per_s'])} "
            f" {_spread(r['repeats'])}"
        )
    print()
    print(f"batched, B={BATCH}, a different sequence per sample, images/s")
    print(f"{'device':>7}  {'row':<52}{'size':>6}{'ops':>4}{'images/s':>11}  spread")
    for r in report["batch"]:
        print(
            f"{r['device']:>7}  {r['name']:<52}{r['size']:>6}{r['ops']:>4}{_rate(r['images_per_s'])} "
            f" {_spread(r['repeats'])}"
        )
    gpu = report["targets"]["gpu_batch"]
    print(f"GPU target >= {TARGET_GPU:,.0f} images/s at {GPU_SIZE}x{GPU_SIZE}: {gpu['verdict']}")
    print()
    print(
        f"nn.Module PolicyAugment (uint8) and kornia (float), B={MODULE_BATCH}, a different sequence per sample, CPU, "
        f"{meta['threads']} thread(s), images/s (median of {meta['repeats']})"
    )
    print(f"{'device':>7}  {'row':<52}{'size':>6}{'ops':>4}{'images/s':>11}  spread")
    for r in report["module"]:
        print(
            f"{r['device']:>7}  {r['name']:<52}{r['size']:>6}{r['ops']:>4}{_rate(r['images_per_s'])} "
            f" {_spread(r['repeats'])}"
        )
    print()
    print(
        "load average (1, 5, 15 min) at start {} and end {} on {} CPUs".format(
            _load(meta["loadavg_start"]), _load(meta["loadavg_end"]), meta["cpu_count"]
        )
    )


def _load(values: Sequence[float]) -> str:
    return "/".join(f"{v:.2f}" for v in values)


def gpu_target(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    measured = [
        r for r in rows if r["device"] == "cuda" and r["name"].startswith("ours") and r["images_per_s"] is not None
    ]
    if not measured:
        return {"target": TARGET_GPU, "met": None, "verdict": NOT_MEASURED_GPU}
    worst = min(r["images_per_s"] for r in measured)
    met = worst >= TARGET_GPU
    return {"target": TARGET_GPU, "met": met, "worst_images_per_s": worst, "verdict": "met" if met else "NOT met"}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny counts: checks that every row runs, in seconds")
    p.add_argument("--out", type=Path, default=Path("benchmark_throughput.json"), help="JSON results file")
    p.add_argument("--cifar", type=Path, default=None, help="CIFAR-10 JPEG npz; without it, synthetic images")
    p.add_argument("--sizes", default="32,224", help="per-image sizes, comma separated (default 32,224)")
    p.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads in this process (default 1)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per row; the median is reported")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    try:
        a.sizes = [int(s) for s in a.sizes.split(",") if s.strip()]
    except ValueError:
        p.error(f"--sizes must be comma-separated integers, got {a.sizes!r}")
    if not a.sizes or min(a.sizes) < 8:
        p.error("--sizes needs at least one size, each >= 8")
    if a.threads < 1 or a.repeats < 1:
        p.error("--threads and --repeats must be >= 1")
    return a


def main(argv: Sequence[str] | None = None) -> int:
    a = parse_args(argv)
    torch.set_num_threads(a.threads)
    cv2.setNumThreads(a.threads)
    torch.manual_seed(a.seed)
    counts = make_counts(a.quick, a.repeats)
    load_start = list(os.getloadavg())
    started = time.perf_counter()
    if a.cifar is not None:
        base = load_cifar_pool(a.cifar, counts.pool)
        source = f"CIFAR-10 test images from {a.cifar} (first {len(base)}; bicubic-upsampled for larger sizes)"
    else:
        base = synthetic_images(counts.pool, LOADER_SIZE, a.seed)
        source = "synthetic smooth images (upsampled colour noise plus discs)"
    meta: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quick": a.quick,
        "images": source,
        "sizes": a.sizes,
        "threads": a.threads,
        "repeats": a.repeats,
        "cpu_count": os.cpu_count(),
        "loadavg_start": load_start,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "versions": {
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "albumentations": A.__version__,
            "opencv": cv2.__version__,
            "numpy": np.__version__,
        },
        "dataloader_start_method": torch.multiprocessing.get_start_method(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    print(f"benchmark_throughput: {meta['command']}")
    print(f"  {source}; {a.threads} thread(s); load average {_load(load_start)} on {meta['cpu_count']} CPUs")
    print("per image ...", flush=True)
    per_image = bench_per_image(base, a.sizes, counts, a.seed)
    print("DataLoader ...", flush=True)
    loader = bench_loader(base, counts, a.seed)
    print("batched ...", flush=True)
    batch = bench_batch(base, counts, a.seed)
    print("nn.Module ...", flush=True)
    module = bench_module(base, counts, a.seed)
    meta["loadavg_end"] = list(os.getloadavg())
    meta["seconds"] = round(time.perf_counter() - started, 1)
    report = {
        "meta": meta,
        "per_image": per_image,
        "ratios": ratios(per_image, a.sizes),
        "dataloader": loader,
        "batch": batch,
        "targets": {"gpu_batch": gpu_target(batch)},
        "module": module,
    }
    print_report(report)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
