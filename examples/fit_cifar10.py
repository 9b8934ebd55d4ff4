"""Fit TANDA policies on the unlabeled CIFAR-10 training images and report wall time, steps/s and the R/G ratio.

python examples/fit_cifar10.py --data ../shared/data/cifar10 --model lstm --images 50000 --out runs/cifar10
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from _data import load_cifar10
from _fitrun import fit_and_report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="cifar10_jpeg.npz or its folder")
    ap.add_argument("--model", default="lstm", choices=["lstm", "gru", "mean_field"])
    ap.add_argument("--tfs", default="cifar10")
    ap.add_argument("--images", type=int, default=50000, help="training images used (one epoch)")
    ap.add_argument("--seq-len", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--n-seqs", type=int, default=5)
    ap.add_argument("--d-width", type=int, default=32)
    ap.add_argument("--diversity", type=float, default=1e-3)
    ap.add_argument("--jitter", action="store_true", help="sub-pixel jitter of D's inputs (see fit_policy)")
    ap.add_argument("--g-lr", type=float, default=0.2)
    ap.add_argument("--d-lr", type=float, default=1e-4, help="discriminator (Adam) learning rate; the paper's is 1e-5")
    ap.add_argument("--entropy", type=float, default=0.0, help="entropy bonus (0.1 kept the MNIST LSTM diverse)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/fit_cifar10")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    x_train, _, _, _ = load_cifar10(a.data)
    data = x_train[: a.images]
    fit_and_report(
        "cifar10",
        data,
        data,
        Path(a.out),
        dict(
            tfs=a.tfs,
            model=a.model,
            seq_len=a.seq_len,
            batch_size=a.batch_size,
            n_seqs=a.n_seqs,
            d_width=a.d_width,
            diversity=a.diversity,
            jitter=a.jitter,
            g_lr=a.g_lr,
            d_lr=a.d_lr,
            entropy=a.entropy,
            device=a.device,
            seed=a.seed,
        ),
        {
            "device": a.device,
            "threads": a.threads,
            "jitter": a.jitter,
            "entropy": a.entropy,
            "g_lr": a.g_lr,
            "d_lr": a.d_lr,
        },
    )


if __name__ == "__main__":
    main()
