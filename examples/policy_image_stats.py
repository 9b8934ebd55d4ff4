"""Label-free check of what policies do to images: brightness, contrast and clipped pixels against real images.

python examples/policy_image_stats.py --data ../shared/data/cifar10 --tfs cifar10 \
    --policy learned_augment/pretrained/cifar10-meanfield.safetensors --out runs/image_stats.json

Rows: the real images, uniformly random sequences of the TF set (TANDA's "heuristic") and each policy given. A
policy that keeps images realistic should stay near the real row; a discriminator can be fooled by images that
are far from it (the CIFAR-10 LSTMs in the README blow out 40-60% of the pixels).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from _data import load_cifar10, load_mnist_pool

import learned_augment as la
from learned_augment.ops import apply_sequence, get_tfset


def image_stats(images: np.ndarray) -> dict[str, float]:
    """Mean intensity, mean per-image standard deviation (contrast) and shares of near-white / near-black values."""
    f = images.astype(np.float32) / 255.0
    return {
        "mean": float(f.mean()),
        "contrast": float(f.reshape(len(f), -1).std(axis=1).mean()),
        "white": float((images >= 250).mean()),
        "black": float((images <= 5).mean()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="CIFAR-10 npz / folder, or the MNIST folder with --dataset mnist")
    ap.add_argument("--dataset", default="cifar10", choices=["cifar10", "mnist"])
    ap.add_argument("--tfs", default=None, help="TF set of the heuristic row (default: the data set's)")
    ap.add_argument("--policy", action="append", default=[], help="policy file (repeatable)")
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--seq-len", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    a = ap.parse_args()

    torch.set_num_threads(1)
    if a.dataset == "cifar10":
        x = load_cifar10(a.data)[0][: a.images]
    else:
        x = load_mnist_pool(a.data)[0][: a.images]
    ts = get_tfset(a.tfs or a.dataset)
    rng = np.random.default_rng(a.seed)
    rows = [("real images", image_stats(x))]
    uniform = np.stack([apply_sequence(im, rng.integers(0, len(ts), a.seq_len), ts) for im in x])
    rows.append((f"uniform sequences ({ts.name or 'custom'}, L={a.seq_len})", image_stats(uniform)))
    for path in a.policy:
        policy = la.load_policy(path)
        seqs = policy.sample(len(x), generator=torch.Generator().manual_seed(a.seed)).numpy()
        out = np.stack([apply_sequence(im, s, policy.tfset) for im, s in zip(x, seqs)])
        rows.append((path, image_stats(out)))

    print(f"{'images':60s} {'mean':>6s} {'contrast':>9s} {'white %':>8s} {'black %':>8s}")
    for name, s in rows:
        print(f"{name[-60:]:60s} {s['mean']:6.3f} {s['contrast']:9.3f} {100 * s['white']:8.1f} {100 * s['black']:8.1f}")
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        report = {"command": vars(a), "rows": [{"images": n, **s} for n, s in rows]}
        Path(a.out).write_text(json.dumps(report, indent=2))
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
