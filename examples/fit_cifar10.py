"""Fit TANDA policies on the unlabeled CIFAR-10 training images and report wall time, steps/s and the R/G ratio.

python examples/fit_cifar10.py --data ../shared/data/cifar10 --model lstm --images 50000 --out runs/cifar10
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from _data import load_cifar10

import learned_augment as la
from learned_augment.viz import frequency_png, preview


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
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/fit_cifar10")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    x_train, _, _, _ = load_cifar10(a.data)
    data = x_train[: a.images]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    policy = la.fit_policy(
        data,
        a.tfs,
        a.model,
        a.seq_len,
        batch_size=a.batch_size,
        n_seqs=a.n_seqs,
        d_width=a.d_width,
        diversity=a.diversity,
        jitter=a.jitter,
        device=a.device,
        seed=a.seed,
        checkpoint=out / f"{a.model}.ckpt.safetensors",
    )
    wall = time.perf_counter() - t
    steps = policy.provenance["steps"]
    rg = policy.history["rg_ratio"]
    path = out / f"cifar10-{a.model}.safetensors"
    policy.save(str(path))
    frequency_png(policy, out / f"cifar10-{a.model}-frequencies.png")
    preview(policy, data[:8], out / f"cifar10-{a.model}-preview.png")
    result = {
        "model": a.model,
        "tfs": a.tfs,
        "images": len(data),
        "seq_len": a.seq_len,
        "steps": steps,
        "wall_s": round(wall, 1),
        "steps_per_s": round(steps / wall, 3),
        "rg_ratio_last": rg[-1] if rg else None,
        "rg_ratio_mean_last5": float(np.mean(rg[-5:])) if rg else None,
        "device": a.device,
        "threads": a.threads,
        "jitter": a.jitter,
        "top_tfs": policy.top_tfs(5),
        "policy": str(path),
    }
    print(json.dumps(result, indent=2))
    (out / f"fit_cifar10_{a.model}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
