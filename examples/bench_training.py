"""Training-loop throughput: what an augmentation costs the end model's training, side by side in one run.

Each row trains the same ResNet-20 (``channels_last``, SGD) on the same 32x32 images through a
``torch.utils.data.DataLoader`` whose workers (one torch and OpenCV thread each) apply the row's augmentation:

* no augmentation, crop-and-flip (torchvision v2, pad 4), torchvision RandAugment and TrivialAugmentWide after
  crop-and-flip, and the shipped ``cifar10-lstm`` policy through :class:`~learned_augment.LearnedPolicyTransform`
  at its default ``p`` before crop-and-flip: each in the order ``reproduce_tanda.py``'s CIFAR-10 table applies it.

The own-cost column times the augmentation alone on the input type it gets in the row (torchvision's ops on a
uint8 tensor, so with the conversion from numpy; the policy on the numpy image).

A repeat is one epoch of training per row, rows interleaved (repeat 1 of every row, then repeat 2, ...) so that a
change in the machine's load hits every row alike; the median of ``--repeats`` is reported in images per second,
after one untimed warm-up epoch per row. Workers are not persistent (``DataLoader``'s default): every epoch starts
them again, as in most training scripts, so their start-up is part of the cost. Beside each row: the transform's
own cost, measured in this process on one thread (ms per image), and what that cost alone would predict for the
epoch, spread over the workers. The load average at the start and the end is printed and stored.

Run::

    python examples/bench_training.py --cifar ../shared/data/cifar10/cifar10_jpeg.npz --out bench_training.json
    python examples/bench_training.py --quick --out /tmp/bench_training.json     # seconds: every row runs
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
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torchvision
from _data import load_cifar10_test, synthetic_images
from _models import make_end_model
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

import learned_augment as la


class Images(Dataset):
    """(augmented CHW float image, label) items over uint8 HWC images; the label is the index modulo 10."""

    def __init__(self, images: np.ndarray, transform: Callable[[Any], Any]) -> None:
        self.images = images
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[i]), i % 10


def _to_chw(img: Any) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)


def rows(seed: int) -> list[tuple[str, Callable[[Any], Any], Callable[[Any], Any] | None]]:
    """(name, whole per-sample pipeline, the augmentation alone for the cost column) of every row."""
    finish = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * 3, [0.25] * 3)])
    crop = [v2.RandomCrop(32, padding=4, padding_mode="reflect"), v2.RandomHorizontalFlip()]
    policy = la.LearnedPolicyTransform(la.load_pretrained("cifar10-lstm"), seed=seed)
    tv = {"torchvision RandAugment": v2.RandAugment(), "torchvision TrivialAugmentWide": v2.TrivialAugmentWide()}
    out: list[tuple[str, Callable[[Any], Any], Callable[[Any], Any] | None]] = [
        ("no augmentation", v2.Compose([_to_chw, finish]), None),
        ("crop and flip (torchvision v2)", v2.Compose([_to_chw, *crop, finish]), v2.Compose([_to_chw, *crop])),
    ]
    for name, op in tv.items():
        out.append((name + " + crop and flip", v2.Compose([_to_chw, *crop, op, finish]), v2.Compose([_to_chw, op])))
    name = f"ours: shipped cifar10-lstm, p={policy.p:g} + crop and flip"
    out.append((name, v2.Compose([policy, _to_chw, *crop, finish]), policy))
    return out


def own_cost_ms(fn: Callable[[Any], Any] | None, images: np.ndarray, n: int) -> float | None:
    """Milliseconds per image of ``fn`` alone, here, on one thread (``n`` calls after a short warm-up)."""
    if fn is None:
        return None
    for img in images[:8]:
        fn(img)
    start = time.perf_counter()
    for i in range(n):
        fn(images[i % len(images)])
    return 1000.0 * (time.perf_counter() - start) / n


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def train_rates(
    datasets: Sequence[Dataset], workers: int, batch_size: int, repeats: int, seed: int
) -> tuple[list[list[float]], list[float]]:
    """Images/s of one training epoch per dataset, repeats interleaved; and each row's final training loss."""
    loaders, models, opts = [], [], []
    for ds in datasets:
        loaders.append(
            DataLoader(
                ds,
                batch_size=batch_size,
                shuffle=True,
                drop_last=True,
                generator=torch.Generator().manual_seed(seed),
                num_workers=workers,
                worker_init_fn=_one_thread if workers else None,
                # DataLoader's default, as in most training scripts: every epoch starts its workers afresh, so the
                # rates include each worker's start and its first calls.
                persistent_workers=False,
            )
        )
        torch.manual_seed(seed)
        model = make_end_model("resnet20", 3).to(memory_format=torch.channels_last)
        models.append(model)
        opts.append(torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4))
    losses = [float("nan")] * len(loaders)

    def epoch(k: int) -> float:
        model, opt = models[k], opts[k]
        model.train()
        seen = 0
        start = time.perf_counter()
        for xb, yb in loaders[k]:
            loss = F.cross_entropy(model(xb.to(memory_format=torch.channels_last)), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(xb)
            losses[k] = loss.item()
        return seen / (time.perf_counter() - start)

    for k in range(len(loaders)):  # warm-up: starts the workers
        epoch(k)
    rates: list[list[float]] = [[] for _ in loaders]
    for _ in range(repeats):
        for k in range(len(loaders)):
            rates[k].append(epoch(k))
    return rates, losses


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cifar", type=Path, help="CIFAR-10 JPEG npz (its first test images); default: synthetic images")
    p.add_argument("--images", type=int, default=5000, help="images per epoch (default 5,000: the CIFAR-10 table)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers, one thread each (default 2)")
    p.add_argument(
        "--threads", type=int, default=2, help="torch threads of the training process (default 2, as in the table)"
    )
    p.add_argument("--repeats", type=int, default=3, help="timed epochs per row; the median is reported")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="256 images, 1 repeat, batch 32: checks every row runs")
    p.add_argument("--out", type=Path, default=Path("bench_training.json"), help="JSON results file")
    a = p.parse_args(argv)
    if a.quick:
        a.images, a.repeats, a.batch_size = 256, 1, 32
    if a.images < a.batch_size or a.batch_size < 1 or a.repeats < 1 or a.threads < 1 or a.workers < 0:
        p.error("need --images >= --batch-size >= 1, --repeats >= 1, --threads >= 1 and --workers >= 0")
    return a


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    a = parse_args(argv)
    torch.set_num_threads(a.threads)
    cv2.setNumThreads(1)
    if a.cifar is not None:
        images = load_cifar10_test(a.cifar, a.images)
        source = f"the first {len(images)} CIFAR-10 test images from {a.cifar}"
    else:
        images = synthetic_images(a.images, 32, a.seed)
        source = "synthetic smooth 32x32 RGB images"
    load_start = list(os.getloadavg())
    started = time.perf_counter()
    specs = rows(a.seed)
    torch.set_num_threads(1)
    costs = [own_cost_ms(alone, images, min(len(images), 1000)) for _, _, alone in specs]
    torch.set_num_threads(a.threads)
    rates, losses = train_rates(
        [Images(images, pipe) for _, pipe, _ in specs], a.workers, a.batch_size, a.repeats, a.seed
    )
    base = statistics.median(rates[1])
    table = []
    for (name, _, _), r, cost, loss in zip(specs, rates, costs, losses):
        rate = statistics.median(r)
        epoch_s = len(images) / rate
        table.append(
            {
                "name": name,
                "images_per_s": rate,
                "repeats": r,
                "epoch_s": epoch_s,
                "vs_crop_and_flip": rate / base,
                "own_ms_per_image": cost,
                # The transform's own work per epoch, spread over the workers (or in the main process without any).
                "own_s_per_epoch_per_worker": None if cost is None else cost * len(images) / 1000 / max(1, a.workers),
                "final_train_loss": loss,
            }
        )
    meta = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "images": source,
        "n_images": len(images),
        "model": "resnet20, channels_last, SGD",
        "batch_size": a.batch_size,
        "workers": a.workers,
        "threads": a.threads,
        "repeats": a.repeats,
        "quick": a.quick,
        "cpu_count": os.cpu_count(),
        "loadavg_start": load_start,
        "loadavg_end": list(os.getloadavg()),
        "seconds": round(time.perf_counter() - started, 1),
        "platform": platform.platform(),
        "versions": {
            "learned_augment": la.__version__,
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
        },
    }
    report = {"meta": meta, "rows": table}
    print(
        f"\ntraining loop: ResNet-20 on {len(images)} 32x32 images, batch {a.batch_size}, {a.workers} worker(s), "
        f"{a.threads} training thread(s); images/s, median of {a.repeats} epochs"
    )
    print(f"{'row':<52}{'images/s':>10}{'epoch s':>9}{'vs crop':>9}{'own ms/img':>12}{'own s/epoch/worker':>20}")
    for r in table:
        own = "-" if r["own_ms_per_image"] is None else f"{r['own_ms_per_image']:.3f}"
        per = "-" if r["own_s_per_epoch_per_worker"] is None else f"{r['own_s_per_epoch_per_worker']:.1f}"
        print(
            f"{r['name']:<52}{r['images_per_s']:>10,.0f}{r['epoch_s']:>9.1f}{r['vs_crop_and_flip']:>8.2f}x"
            f"{own:>12}{per:>20}"
        )
    print(
        "load average (1, 5, 15 min) at start {} and end {} on {} CPUs".format(
            "/".join(f"{v:.2f}" for v in load_start), "/".join(f"{v:.2f}" for v in meta["loadavg_end"]), os.cpu_count()
        )
    )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {a.out}")
    return report


if __name__ == "__main__":
    main()
