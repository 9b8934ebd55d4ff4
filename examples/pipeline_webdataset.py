"""A learned policy in a WebDataset pipeline: tar shards read by 2 DataLoader workers, one shard each, the images
augmented by ``map_tuple(LearnedPolicyTransform(...), ...)``.

    python examples/pipeline_webdataset.py --out runs/pipeline_webdataset

Writes ``--shards`` tar shards of the shipped MNIST digits (PNG + class) under ``--out``/shards; every shard holds
the *same* ``--n`` digits, so the workers see identical images and must still augment them differently. The
transform is seeded; so is the loader's generator, from which each epoch draws its workers' seeds: a second run
repeats every draw, and the second epoch draws afresh.

Writes ``draws.json`` under ``--out`` (per sample: epoch, worker, shard, key, the TF ids applied or null, a digest
of the output) and prints one row per epoch and worker.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import webdataset as wds

import learned_augment as la
from learned_augment.data import load_sample

POLICY = "mnist-lstm"
# Half the images left untouched (the default for this policy is every image): the draws then show which were
# augmented, and that the streams decide it.
P = 0.5


def write_shards(folder: Path, images: np.ndarray, labels: np.ndarray, shards: int) -> list[str]:
    """``shards`` tar shards under ``folder``, each holding all of ``images`` (keys ``000000``, ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in range(shards):
        path = folder / f"digits-{s:06d}.tar"
        with wds.TarWriter(str(path)) as sink:
            for i, (image, label) in enumerate(zip(images, labels)):
                sink.write({"__key__": f"{i:06d}", "png": image, "cls": int(label)})
        paths.append(str(path))
    return paths


class RecordDraw:
    """A pipeline stage after the transform: adds the worker and the TF ids the transform just applied.

    WebDataset pipelines are generators, so this stage sees each sample right after the transform made it.
    """

    def __init__(self, transform: la.LearnedPolicyTransform) -> None:
        self.transform = transform

    def __call__(self, sample: tuple[np.ndarray, int, str, str]) -> dict[str, Any]:
        image, label, key, url = sample
        params = self.transform.last_params
        info = torch.utils.data.get_worker_info()
        ids = params["tf_ids"] if params is not None and params["applied"] else None
        return {
            "worker": -1 if info is None else info.id,
            "shard": Path(url).name,
            "key": key,
            "label": label,
            "tf_ids": None if ids is None else [int(i) for i in ids],
            "digest": hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()[:16],
        }


def make_loader(urls: list[str], seed: int, workers: int) -> wds.WebLoader:
    transform = la.LearnedPolicyTransform.from_pretrained(POLICY, p=P, seed=seed)
    dataset = (
        # shardshuffle=False: the default worker splitter hands shard i to worker i % workers.
        wds.WebDataset(urls, shardshuffle=False)
        .decode("l8")  # PNG -> (H, W) uint8
        .to_tuple("png", "cls", "__key__", "__url__")
        .map_tuple(transform, None, None, None)
        .map(RecordDraw(transform))
    )
    # The generator seeds the workers (a fresh draw per epoch), and with them the transform's streams.
    generator = torch.Generator().manual_seed(seed)
    return wds.WebLoader(dataset, batch_size=None, num_workers=workers, generator=generator)


def summarise(draws: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per epoch and worker: samples, augmented, distinct sequences, and samples whose key the other workers
    augmented with the same sequence in that epoch."""
    groups: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for d in draws:
        groups.setdefault((d["epoch"], d["worker"]), []).append(d)
    rows = []
    for (epoch, worker), ds in sorted(groups.items()):
        others = {
            (d["key"], tuple(d["tf_ids"]))
            for (e, w), group in groups.items()
            if e == epoch and w != worker
            for d in group
            if d["tf_ids"] is not None
        }
        applied = [d for d in ds if d["tf_ids"] is not None]
        rows.append(
            {
                "epoch": epoch,
                "worker": worker,
                "shard": ds[0]["shard"],
                "samples": len(ds),
                "augmented": len(applied),
                "distinct_sequences": len({tuple(d["tf_ids"]) for d in applied}),
                "same_as_other_workers": sum((d["key"], tuple(d["tf_ids"])) in others for d in applied),
            }
        )
    return rows


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Write the shards, read them for ``--epochs`` epochs; returns the report it writes."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=32, help="digits per shard (the same in every shard)")
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers (one shard each by default)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0, help="the transform's seed and the loader generator's")
    ap.add_argument("--out", type=Path, required=True, help="output folder (shards/ and draws.json)")
    a = ap.parse_args(argv)

    torch.set_num_threads(1)
    images, labels = load_sample()
    urls = write_shards(a.out / "shards", images[: a.n], labels[: a.n], a.shards)
    loader = make_loader(urls, a.seed, a.workers)
    draws = [{"epoch": epoch, **sample} for epoch in range(a.epochs) for sample in loader]

    report = {"policy": POLICY, "seed": a.seed, "summary": summarise(draws), "draws": draws}
    (a.out / "draws.json").write_text(json.dumps(report, indent=1))
    print(f"{'epoch':>5} {'worker':>6} {'shard':>18} {'samples':>7} {'augmented':>9} {'distinct':>8} {'same':>4}")
    for r in report["summary"]:
        print(
            f"{r['epoch']:>5} {r['worker']:>6} {r['shard']:>18} {r['samples']:>7} {r['augmented']:>9} "
            f"{r['distinct_sequences']:>8} {r['same_as_other_workers']:>4}"
        )
    return report


if __name__ == "__main__":
    main()
