"""Quickstart, torchvision: fit a policy on the shipped MNIST sample, then use it like any torchvision transform.

    python examples/quickstart_torchvision.py --out runs/quickstart_torchvision

1. fit a TANDA policy (an LSTM over TANDA's 25 MNIST TFs) on unlabeled images with ``fit_policy`` (a short fit:
   ``--steps 20``; ``--steps 0`` skips it and uses an untrained policy);
2. save it to one ``.safetensors`` file and build ``LearnedPolicyTransform(path)`` from it;
3. put the transform in ``transforms.Compose([..., transforms.ToTensor()])``, the way torchvision data sets take a
   ``transform``, and read batches with a ``DataLoader`` with 2 workers;
4. write ``quickstart_torchvision.png`` (originals, then one row per epoch) and the policy's TF frequencies.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

import learned_augment as la
from learned_augment.viz import frequency_png, image_grid, write_png


class DigitDataset(Dataset):
    """``(transform(PIL image), label)`` items, like ``torchvision.datasets.MNIST``."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform=None) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        img = Image.fromarray(self.images[index])
        return (self.transform(img) if self.transform else img), int(self.labels[index])


def single_thread(_: int) -> None:
    torch.set_num_threads(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/quickstart_torchvision", help="folder for the policy file and PNGs")
    ap.add_argument("--steps", type=int, default=20, help="fit steps (0: skip fitting, use an untrained policy)")
    ap.add_argument("--images", type=int, default=500, help="sample images to fit on")
    ap.add_argument("--seq-len", type=int, default=5, help="TFs per sequence (L)")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    images, labels = la.load_sample()  # (2000, 28, 28) uint8 MNIST digits, shipped with the package

    # 1. Fit (offline, once) on unlabeled images.
    t0 = time.perf_counter()
    if a.steps > 0:
        policy = la.fit_policy(
            images[: a.images],
            tfs="mnist",
            model="lstm",
            seq_len=a.seq_len,
            steps=a.steps,
            batch_size=16,
            seed=a.seed,
            progress=False,
        )
    else:
        torch.manual_seed(a.seed)
        policy = la.LSTMPolicy("mnist", seq_len=a.seq_len)
    print(f"policy: {policy} ({time.perf_counter() - t0:.1f} s)")

    # 2. One file holds it; the transform is built from the path (so pipelines can reference it by name).
    path = policy.save(str(out / "mnist-lstm.safetensors"))
    augment = la.LearnedPolicyTransform(path, seed=a.seed)
    print(f"transform: {augment}")

    # 3. A drop-in torchvision transform, in a DataLoader with worker processes.
    tf = transforms.Compose([augment, transforms.ToTensor()])
    n_show = 10
    dataset = DigitDataset(images[:n_show], labels[:n_show], transform=tf)
    loader = DataLoader(
        dataset,
        batch_size=n_show,
        shuffle=False,
        num_workers=a.workers,
        worker_init_fn=single_thread if a.workers else None,
    )
    rows = [list(images[:n_show])]
    for epoch in range(3):
        augment.set_epoch(epoch)  # fresh draws each epoch, reproducible for a fixed seed
        batch, batch_labels = next(iter(loader))
        assert batch.shape == (n_show, 1, 28, 28) and batch.dtype == torch.float32
        assert batch_labels.tolist() == labels[:n_show].tolist()
        rows.append([b[0].numpy() for b in batch])
    print(f"batches: {tuple(batch.shape)} {batch.dtype}, {a.workers} workers")

    # 4. Previews.
    grid = out / "quickstart_torchvision.png"
    write_png(grid, image_grid(rows, labels=["original"] + [f"epoch {e}" for e in range(3)]))
    frequency_png(policy, out / "frequencies.png")
    print(f"wrote {path}, {grid} and {out / 'frequencies.png'}")


if __name__ == "__main__":
    main()
