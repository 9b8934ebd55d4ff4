"""A learned policy in a Ray Data pipeline: ``map_batches`` with a pool of 2 actors, each holding a
:class:`~learned_augment.PolicyAugment`; a second run augments every image exactly as the first.

    python examples/pipeline_ray.py --out runs/pipeline_ray

Starts a small local Ray (2 CPUs, no dashboard, a small object store) and augments the shipped MNIST digits twice
over: row ``id`` holds digit ``id % n``, so every digit appears in two batches. Which actor gets which batch is up
to Ray's scheduler; the draws must not depend on it, so each batch sets the module's ``step`` from its first ``id``
before augmenting (with ``seed`` set, a call draws from ``(seed, step)`` alone). The same rows then get the same
augmentation in every run, and two copies of a digit in different batches get different ones.

Writes ``augmented.json`` under ``--out`` (per row: its batch, the actor's process, whether it was augmented and a
digest of the output) and prints one row per batch.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch

import learned_augment as la
from learned_augment.data import load_sample

POLICY = "mnist-lstm"
# Just above Ray's smallest allowed object store (75 MiB); the data here are a few hundred kilobytes.
OBJECT_STORE_BYTES = 80 * 1024 * 1024


class Augment:
    """The ``map_batches`` callable: one :class:`~learned_augment.PolicyAugment` per actor, built once."""

    def __init__(self, seed: int, p: float) -> None:
        torch.set_num_threads(1)
        self.aug = la.PolicyAugment.from_pretrained(POLICY, p=p, seed=seed)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        images = torch.from_numpy(batch["image"]).unsqueeze(1)  # (B, 28, 28) uint8 -> (B, 1, 28, 28)
        # Key the draws to the data: the actor's own call count would depend on which batches it happened to get.
        self.aug.step = int(batch["id"][0])
        out = self.aug(images)
        augmented = (out != images).flatten(1).any(dim=1).numpy()
        out_np = out.squeeze(1).numpy()
        b = len(out_np)
        return {
            "id": batch["id"],
            "batch": np.full(b, int(batch["id"][0])),
            "actor": np.full(b, os.getpid()),
            "augmented": augmented,
            "digest": np.array([hashlib.sha1(img.tobytes()).hexdigest()[:16] for img in out_np]),
        }


def run_pipeline(images: np.ndarray, seed: int, p: float, batch_size: int, actors: int) -> list[dict[str, Any]]:
    """Augment every image in ``images`` twice over (rows ``0..2n-1``) on ``actors`` actors; per row, sorted by
    ``id``."""
    n = len(images)
    rows = [{"id": i, "image": images[i % n]} for i in range(2 * n)]
    # Blocks of exactly one batch keep the batches' rows, and so their first ids, the same from run to run.
    ds = ray.data.from_items(rows, override_num_blocks=2 * n // batch_size)
    out = ds.map_batches(
        Augment,
        fn_constructor_kwargs={"seed": seed, "p": p},
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors),
    )
    result = sorted(out.take_all(), key=lambda r: int(r["id"]))
    return [
        {
            "id": int(r["id"]),
            "batch": int(r["batch"]),
            "actor": int(r["actor"]),
            "augmented": bool(r["augmented"]),
            "digest": str(r["digest"]),
        }
        for r in result
    ]


def summarise(rows: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """Per batch: actor and augmented count; over the copies of each digit: how many were augmented alike."""
    batches: dict[int, dict[str, Any]] = {}
    for r in rows:
        b = batches.setdefault(r["batch"], {"batch": r["batch"], "actor": r["actor"], "samples": 0, "augmented": 0})
        b["samples"] += 1
        b["augmented"] += r["augmented"]
    pairs = [(rows[i], rows[i + n]) for i in range(n)]
    return {
        "batches": sorted(batches.values(), key=lambda b: b["batch"]),
        "actors": len({r["actor"] for r in rows}),
        "copies_both_augmented": sum(a["augmented"] and b["augmented"] for a, b in pairs),
        "copies_augmented_alike": sum(
            (a["augmented"] or b["augmented"]) and a["digest"] == b["digest"] for a, b in pairs
        ),
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the pipeline (twice with ``--rerun``); returns the report it writes."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=64, help="digits (each appears twice)")
    ap.add_argument("--batch-size", type=int, default=16, help="must divide 2 * n")
    ap.add_argument("--actors", type=int, default=2, help="actors in the map_batches pool")
    ap.add_argument("--p", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--rerun",
        action="store_true",
        help="run the pipeline again on one actor (fresh actors, other batch placement) and compare the rows",
    )
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    a = ap.parse_args(argv)
    if (2 * a.n) % a.batch_size:
        ap.error("--batch-size must divide 2 * --n")

    images = load_sample()[0][: a.n]
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=OBJECT_STORE_BYTES,
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        rows = run_pipeline(images, a.seed, a.p, a.batch_size, a.actors)
        rerun = run_pipeline(images, a.seed, a.p, a.batch_size, 1) if a.rerun else None
    finally:
        ray.shutdown()

    report: dict[str, Any] = {"policy": POLICY, "seed": a.seed, "p": a.p, "n": a.n, "summary": summarise(rows, a.n)}
    if rerun is not None:
        # Actors are new processes in each run: compare everything but the process ids.
        report["rerun_identical"] = [{**r, "actor": 0} for r in rows] == [{**r, "actor": 0} for r in rerun]
    report["rows"] = rows
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "augmented.json").write_text(json.dumps(report, indent=1))
    summary = report["summary"]
    print(f"{'batch':>5} {'actor':>8} {'samples':>7} {'augmented':>9}")
    for b in summary["batches"]:
        print(f"{b['batch']:>5} {b['actor']:>8} {b['samples']:>7} {b['augmented']:>9}")
    print(
        f"{summary['actors']} of {a.actors} actors ran batches; of {a.n} digits in two batches each, "
        f"{summary['copies_both_augmented']} were augmented in both, {summary['copies_augmented_alike']} alike"
    )
    if rerun is not None:
        print(f"rerun on one actor: {'identical' if report['rerun_identical'] else 'DIFFERENT'}")
    return report


if __name__ == "__main__":
    main()
