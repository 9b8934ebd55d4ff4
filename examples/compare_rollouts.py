"""Do fits whose rollouts run through the batched executor learn the same policy as fits with per-image rollouts?

``fit_policy(rollouts="batched")`` makes every prefix ``x_0 .. x_L`` with the torch executor (what a fit on a GPU
uses); ``rollouts="per_image"`` with numpy / OpenCV. The two agree up to resampling round-off, and their random TFs
(cutout, noise, elastic) draw differently, so the fits are not bit-identical. This script fits the default LSTM with
both, over several seeds, on MNIST digits with TANDA's 25 TFs plus five destructive ones, and compares what the
policies learned:

* the share of draws the fitted policy gives the five destructive TFs (uniform: 5/30);
* the total variation distance between the TF frequencies of the two paths' fits of one seed, against the distance
  between two seeds' fits of one path (the noise floor): equivalent paths give cross-path distances no larger than
  the cross-seed ones.

Run::

    python examples/compare_rollouts.py --out runs/compare_rollouts.json               # the shipped digits
    python examples/compare_rollouts.py --mnist ../shared/data/mnist --seeds 3 --out runs/compare_rollouts.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _data import mnist_digits

import learned_augment as la

DESTRUCTIVE = ["invert", "blur(2)", "rotate(+90)", "rotate(-90)", "cutout(0.5)"]
MODES = ("per_image", "batched")


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    return 0.5 * float(np.abs(p - q).sum())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mnist", type=Path, default=None, help="MNIST IDX folder; without it, the shipped sample")
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=None, help="fit steps (default: fit_policy's)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    a = p.parse_args(argv)
    if a.seeds < 2:
        p.error("--seeds must be at least 2: the cross-seed distance is the noise floor")
    torch.set_num_threads(a.threads)
    images, source = mnist_digits(a.mnist, a.images)
    tfs = la.TFSet(la.get_tfset("mnist").ids + DESTRUCTIVE)
    bad = [tfs.index_of(t) for t in DESTRUCTIVE]

    freqs: dict[tuple[str, int], np.ndarray] = {}
    fits = []
    for seed in range(a.seeds):
        for mode in MODES:
            t0 = time.perf_counter()
            policy = la.fit_policy(images, tfs, seed=seed, steps=a.steps, rollouts=mode, progress=False)
            wall = time.perf_counter() - t0
            f = policy.probabilities()
            freqs[mode, seed] = f
            fits.append(
                {
                    "rollouts": mode,
                    "seed": seed,
                    "steps": policy.provenance["steps"],
                    "wall_s": round(wall, 1),
                    "destructive_share": float(f[bad].sum()),
                    "top_tfs": policy.top_tfs(5),
                }
            )
            print(f"{mode:<10} seed {seed}: destructive share {f[bad].sum():.4f}, {wall:.0f} s")

    cross_path = [total_variation(freqs["per_image", s], freqs["batched", s]) for s in range(a.seeds)]
    cross_seed = {
        mode: [total_variation(freqs[mode, s], freqs[mode, t]) for s, t in itertools.combinations(range(a.seeds), 2)]
        for mode in MODES
    }
    shares = {mode: [r["destructive_share"] for r in fits if r["rollouts"] == mode] for mode in MODES}
    print(f"\nTF frequencies of default LSTM fits, {len(tfs)} TFs ({len(DESTRUCTIVE)} destructive), {source}")
    print(f"{'':<38} {'mean':>7} {'max':>7}")
    print(f"{'TV distance, per_image vs batched':<38} {statistics.mean(cross_path):7.4f} {max(cross_path):7.4f}")
    for mode in MODES:
        d = cross_seed[mode]
        print(f"{'TV distance, seed vs seed, ' + mode:<38} {statistics.mean(d):7.4f} {max(d):7.4f}")
    for mode in MODES:
        s = shares[mode]
        print(f"{'destructive share, ' + mode:<38} {statistics.mean(s):7.4f} {max(s):7.4f}   (uniform 0.1667)")

    result = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "learned_augment": la.__version__,
        "torch": torch.__version__,
        "data": source,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items() if k != "out"},
        "tfs": tfs.ids,
        "fits": fits,
        "tv_cross_path": cross_path,
        "tv_cross_seed": cross_seed,
        "destructive_share": shares,
    }
    if a.out is not None:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
