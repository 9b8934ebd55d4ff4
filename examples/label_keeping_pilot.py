"""Pilot: does a reward that sees whether a sequence keeps the label help where the realism reward alone does not?

``fit_policy`` rewards a TF sequence for images its discriminator takes for real; on digits that reward drops the
translations a classifier learns from, and on CIFAR-10 it sees nothing (README, "Why CIFAR-10 still loses"). Whoever
trains on a small labeled set has a classifier at hand, so this pilot adds what the realism reward lacks: a label
cost. Per end-model seed:

1. a classifier (the end model, with the basic recipe: crop, and flip on CIFAR-10) is trained on that seed's
   labeled images;
2. a policy is fitted on the unlabeled pool with ``fit_policy``'s defaults plus, for every prefix ``x_t`` of a
   sequence, the cost ``--label-weight * CE(classifier(x_t), classifier's class for x_0)``: the classifier's own
   prediction on the clean image stands for the label, so the pool needs no labels;
3. the end model is trained on the same labeled images with that policy (p = 1, then the crop), and tested on the
   test set and on the seed's validation images (pool images outside its labeled subset).

Not a library feature: it measures whether labels in the reward are worth a change of scope (``fit_policy`` learns
from unlabeled data alone). The rows to compare with (same seeds and settings) are the reports of
``examples/reproduce_tanda.py``.

Run (MNIST-600)::

    python examples/label_keeping_pilot.py --data ../shared/data/mnist --dataset mnist --labels 600 --seeds 3 \\
        --epochs 60 --threads 1 --val 1000 --tfs default --seq-len 2 --p-augment 1 \\
        --out examples/results/mnist600-label-keeping-pilot.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import reproduce_tanda as rt
import torch
from torch import nn
from torch.nn import functional as F

from learned_augment.fit import loop as fit_loop


def label_cost(classifier: nn.Module, stacked: torch.Tensor, dataset: str) -> torch.Tensor:
    """Cross-entropy of the classifier on every prefix against its class for the clean image ``x_0``.

    Parameters
    ----------
    classifier:
        Takes images normalised as the end model's training set; put in eval mode.
    stacked:
        The fit's ``(L+1, n, C, H, W)`` prefixes in [-1, 1] (``x_0`` first).
    dataset:
        ``"mnist"`` or ``"cifar10"``: which normalisation the classifier expects.

    Returns
    -------
    torch.Tensor
        ``(n, L+1)`` costs in nats.
    """
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in rt.STATS[dataset])
    steps, n = stacked.shape[:2]
    x = ((stacked.flatten(0, 1).float() + 1.0) / 2.0 - mean) / std
    classifier.eval()
    with torch.no_grad():
        logits = torch.cat([classifier(chunk) for chunk in x.split(1024)]).view(steps, n, -1)
        target = logits[0].argmax(1)
        ce = torch.stack([F.cross_entropy(logits[t], target, reduction="none") for t in range(steps)])
    return ce.T


Advantages = Callable[[Any, torch.Tensor, torch.Tensor, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def with_label_cost(classifier: nn.Module, dataset: str, weight: float) -> Advantages:
    """``_Run.advantages`` with ``weight * label_cost`` added to every prefix's cost.

    The advantages are linear in the costs (discounted sums of cost changes minus their mean over the global
    batch), so the label cost's share is computed the same way and added to what the library computed."""
    original = fit_loop._Run.advantages

    def advantages(
        self: Any, stacked: torch.Tensor, real: torch.Tensor, n_local: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        adv, cost, dist = original(self, stacked, real, n_local)
        extra = weight * label_cost(classifier, stacked, dataset).to(cost.device)
        cfg = self.config
        returns = fit_loop.discounted_returns(extra, cfg["gamma"])
        baseline = self.group.sum(returns.sum(dim=0, keepdim=True)) / (cfg["batch_size"] * cfg["n_seqs"])
        return adv + returns - baseline, cost + extra, dist

    return advantages


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--label-weight", type=float, default=1.0, help="weight of the label cost (nats per nat)")
    p.add_argument("--out", type=Path, required=True, help="write the report (JSON) here")
    own, rest = p.parse_known_args(argv)
    # Everything else is reproduce_tanda's: the same data, split, seeds, end model and recipe.
    args = rt.parse_args([*rest, "--augs", "tanda-lstm", "--out", str(own.out.parent / "unused")])
    if own.label_weight < 0:
        raise SystemExit("error: --label-weight must be >= 0")
    ignored = {"--resize": args.resize, "--pool-limit": args.pool_limit, "--policy-lstm": args.policy_lstm}
    given = [flag for flag, value in ignored.items() if value is not None]
    if given or args.device not in ("auto", "cpu"):
        raise SystemExit(
            f"error: the pilot runs on the CPU over the whole pool; it does not take {given or '--device'}"
        )
    split = rt.load_split(args.dataset, args.data, args.test_limit)
    torch.set_num_threads(args.threads)
    rt.cv2.setNumThreads(1)
    device = torch.device("cpu")
    recipe = rt.Recipe(args.model, args.epochs, args.batch_size, args.lr, args.weight_decay, args.workers, device)
    test = (rt.normalised_tensor(split.test_x, args.dataset), torch.from_numpy(split.test_y))
    channels = split.pool_x.shape[-1]
    rows: list[dict[str, Any]] = []
    original = fit_loop._Run.advantages
    for seed in args.seed_list:
        t0 = time.perf_counter()
        idx = rt.balanced_subset(split.pool_y, args.n_labels, seed)
        val = rt.validation_set(split, idx, args.val, args.dataset, seed)
        crop = rt.train_dataset("basic", args.dataset, split.pool_x[idx], split.pool_y[idx], None, 1.0, seed, "")
        classifier = rt.train_model(crop, recipe, seed, channels)
        clf_acc = [rt.evaluate(classifier, x, y, device) for x, y in (test, val)]
        fit_loop._Run.advantages = with_label_cost(classifier, args.dataset, own.label_weight)  # type: ignore[method-assign]
        try:
            policy = rt.fit_one("tanda-lstm", split.pool_x, args, log_every=max(1, (args.fit_steps or 500) // 5))
        finally:
            fit_loop._Run.advantages = original  # type: ignore[method-assign]
        ds = rt.train_dataset(
            "tanda-lstm",
            args.dataset,
            split.pool_x[idx],
            split.pool_y[idx],
            policy,
            args.p_augment,
            seed,
            args.order,
            args.interpolation,
        )
        acc = rt.train_and_test(ds, [test, val], recipe, seed)
        summary = rt.fit_summary(policy, "fitted with the label cost")
        rows.append(
            {
                "seed": seed,
                "test": round(acc[0], 3),
                "val": round(acc[1], 3),
                "classifier_test": round(clf_acc[0], 3),
                "classifier_val": round(clf_acc[1], 3),
                "fit": summary,
                "wall_s": round(time.perf_counter() - t0, 1),
            }
        )
        print(
            f"seed {seed}: test {acc[0]:.2f} (validation {acc[1]:.2f}); classifier alone {clf_acc[0]:.2f} "
            f"({clf_acc[1]:.2f}); top TFs {summary['top_tfs'][:3]}",
            flush=True,
        )
    tests, vals = [r["test"] for r in rows], [r["val"] for r in rows]
    report = {
        "command": shlex.join(["python", "examples/label_keeping_pilot.py", *(sys.argv[1:] if argv is None else argv)]),
        "label_weight": own.label_weight,
        "note": "each fit's reward_last20 includes the label cost: not comparable with fit_policy's own fits",
        "rows": rows,
        "test_mean": round(float(np.mean(tests)), 3),
        "test_std": round(float(np.std(tests, ddof=1)), 3) if len(tests) > 1 else 0.0,
        "val_mean": round(float(np.mean(vals)), 3),
    }
    print(
        f"label-keeping pilot: test {report['test_mean']:.2f} ± {report['test_std']:.2f}, "
        f"validation {report['val_mean']:.2f}"
    )
    own.out.parent.mkdir(parents=True, exist_ok=True)
    own.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {own.out}")
    return report


if __name__ == "__main__":
    main()
