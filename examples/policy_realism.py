"""Does a fitted policy prefer the TFs that keep images realistic? And how fast does it stop moving?

TANDA's premise is that the discriminator D rewards the TFs that keep data realistic. This script checks what a fit
actually learned against a reference that no policy can bias:

* a **reference discriminator**, trained (same architecture and optimiser as ``fit_policy``'s) on real images
  against single TFs drawn uniformly from the vocabulary, scores each TF by its mean cost increase
  ``-log D(tf(x)) + log D(x)`` on held-out images (its *detectability*; low = realistic);
* ``fit_policy`` with the defaults is run once per value of ``--floors`` (the diversity charge's floor
  ``learned_augment.fit.loop.NO_OP_FLOOR``; 1e-6 is the library's), and for each fit the script prints the
  Spearman rank correlation between the policy's TF frequencies and the TFs' detectability (negative: the policy
  prefers realistic TFs; near zero: it picks TFs without regard to realism), the entropy ratio, and how many TFs
  are at under 0.5% of the draws after 5 and 50 steps and at the end (a policy pushed to its logit bound early
  stops moving).

Run::

    python examples/policy_realism.py --cifar ../shared/data/cifar10/cifar10_jpeg.npz --out runs/realism.json
    python examples/policy_realism.py --mnist ../shared/data/mnist --out runs/realism_mnist.json
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _data import load_cifar10, load_mnist_pool
from _report import write_report
from torch.nn import functional as F

import learned_augment as la
from learned_augment.fit import loop
from learned_augment.fit.discriminator import DCGANDiscriminator
from learned_augment.ops.sequence import apply_sequence


def to_tensor(images: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div(127.5).sub(1.0)
    return x.reshape(*images.shape[:3], -1).permute(0, 3, 1, 2)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation (ties broken by order; enough for continuous scores)."""
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def reference_detectability(pool: np.ndarray, held: np.ndarray, tfset: la.TFSet, steps: int, seed: int) -> np.ndarray:
    """Per TF: mean cost increase on ``held`` under a D trained on ``pool`` against uniformly drawn single TFs."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    disc = DCGANDiscriminator(pool.shape[-1] if pool.ndim == 4 else 1, pool.shape[1:3])
    opt = torch.optim.Adam(disc.parameters(), lr=1e-4, betas=(0.5, 0.999))
    for _ in range(steps):
        real = pool[rng.choice(len(pool), 32, replace=False)]
        fake = np.stack(
            [apply_sequence(im, [tfset[int(k)]], rng=rng) for im, k in zip(real, rng.integers(0, len(tfset), 32))]
        )
        logits = disc(torch.cat([to_tensor(real), to_tensor(fake.reshape(real.shape))])).reshape(-1)
        target = torch.cat([torch.ones(32), torch.zeros(32)])
        loss = F.binary_cross_entropy_with_logits(logits, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    disc.eval()
    with torch.no_grad():
        base = F.softplus(-disc(to_tensor(held)).reshape(-1))
        out = []
        for k, entry in enumerate(tfset):
            r = np.random.default_rng(seed + 1 + k)
            y = np.stack([apply_sequence(im, [entry], rng=r) for im in held]).reshape(held.shape)
            out.append(float((F.softplus(-disc(to_tensor(y)).reshape(-1)) - base).mean()))
    return np.array(out)


def frequencies(policy: la.Policy, n: int = 20000) -> np.ndarray:
    ids = policy.sample(n, generator=torch.Generator().manual_seed(0)).numpy().ravel()
    return np.bincount(ids, minlength=policy.num_tfs) / ids.size


def fit_with_floor(pool: np.ndarray, floor: float, seed: int, steps: int | None) -> tuple[la.Policy, dict[int, int]]:
    """The default fit with ``NO_OP_FLOOR = floor``; TFs under 0.5% of the draws after 5 and 50 steps."""
    at: dict[int, int] = {}

    def watch(step: int, metrics: dict[str, float], policy: la.Policy) -> None:
        if step + 1 in (5, 50):
            at[step + 1] = int((frequencies(policy) < 0.005).sum())

    old = loop.NO_OP_FLOOR
    loop.NO_OP_FLOOR = floor
    try:
        policy = la.fit_policy(pool, seed=seed, steps=steps, progress=False, callbacks=[watch])
    finally:
        loop.NO_OP_FLOOR = old
    return policy, at


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--cifar", type=Path, help="the CIFAR-10 JPEG npz")
    src.add_argument("--mnist", type=Path, help="the MNIST IDX folder (its 5,000-image pool)")
    p.add_argument("--images", type=int, default=10000, help="unlabeled images to fit on (a random subset)")
    p.add_argument("--held", type=int, default=1000, help="held-out images the TFs are scored on")
    p.add_argument("--d-steps", type=int, default=500, help="training steps of the reference discriminator")
    p.add_argument("--floors", default="1e-6,1e-3", help="NO_OP_FLOOR values to fit with, comma-separated")
    p.add_argument("--steps", type=int, default=None, help="fit steps (default: fit_policy's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    data = load_cifar10(a.cifar)[0] if a.cifar else load_mnist_pool(a.mnist)[0]
    perm = np.random.default_rng(a.seed).permutation(len(data))
    n_fit = min(a.images, len(data) - a.held)
    pool, held = data[perm[:n_fit]], data[perm[n_fit : n_fit + a.held]]
    tfset = la.get_tfset("default")
    detect = reference_detectability(pool, held, tfset, a.d_steps, a.seed)
    order = np.argsort(detect)
    print(f"reference D ({a.d_steps} steps against uniform single TFs), detectability on {len(held)} held-out images")
    print("  most realistic:", ", ".join(f"{tfset.ids[i]} {detect[i]:+.3f}" for i in order[:8]))
    print("  least realistic:", ", ".join(f"{tfset.ids[i]} {detect[i]:+.3f}" for i in order[-8:]))
    fits = []
    print(f"\n{'NO_OP_FLOOR':>12} {'spearman':>9} {'entropy':>8} {'<0.5% @5':>9} {'@50':>5} {'end':>5}  top TFs")
    for floor in (float(f) for f in a.floors.split(",")):
        policy, at = fit_with_floor(pool, floor, a.seed, a.steps)
        freq = frequencies(policy)
        row = {
            "no_op_floor": floor,
            "spearman_vs_detectability": round(spearman(detect, freq), 3),
            "entropy_ratio": round(policy.entropy_ratio(), 4),
            "tfs_under_half_percent": {"step5": at.get(5), "step50": at.get(50), "end": int((freq < 0.005).sum())},
            "top_tfs": [(t, round(q, 4)) for t, q in policy.top_tfs(8)],
            "frequencies": dict(zip(tfset.ids, (round(float(q), 5) for q in freq))),
        }
        fits.append(row)
        u = row["tfs_under_half_percent"]
        top = ", ".join(t for t, _ in row["top_tfs"][:5])
        print(
            f"{floor:>12g} {row['spearman_vs_detectability']:>+9.2f} {row['entropy_ratio']:>8.3f} "
            f"{u['step5']!s:>9} {u['step50']!s:>5} {u['end']:>5}  {top}"
        )
    args = sys.argv[1:] if argv is None else argv
    result = {
        "command": shlex.join(["python", "examples/policy_realism.py", *args]),
        "settings": {**{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()}, "tfs": "default"},
        "detectability": dict(zip(tfset.ids, (round(float(d), 4) for d in detect))),
        "fits": fits,
        "total_wall_s": round(time.perf_counter() - t0, 1),
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    write_report(a.out, result)
    return result


if __name__ == "__main__":
    main()
