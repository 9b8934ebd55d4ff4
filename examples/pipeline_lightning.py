"""A learned policy in a Lightning ``LightningDataModule``, trained with DDP on 2 CPU processes: the ranks draw
distinct sequences, and a second run draws the same ones.

    python examples/pipeline_lightning.py --out runs/pipeline_lightning

Lightning's ``ddp`` strategy launches this script again for rank 1 (same arguments; ``LOCAL_RANK`` set), so all of
it runs in every process and only rank 0 writes. Every rank is seeded alike (``seed_everything`` and the
transform's ``seed=``), as distributed jobs usually are: the transform mixes the process's rank into its streams,
so rank 1's k-th sample does not get rank 0's k-th sequence. Each rank loads with one DataLoader worker (a forked
process, which inherits the rank from the process group).

The dataset returns the TF ids it applied next to each image; ``training_step`` keeps them, and at the end of
training they are gathered on rank 0, which writes ``draws.json`` under ``--out`` and prints one row per rank:
samples seen, samples augmented, distinct sequences and the share of its sequences the other rank drew too.
"""

from __future__ import annotations

import argparse
import json
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

import learned_augment as la
from learned_augment.data import load_sample

POLICY = "mnist-lstm"
# Half the images left untouched (the default for this policy is every image): the draws then show which were
# augmented, and that the streams decide it.
P = 0.5


class AugmentedDigits(Dataset):
    """Digits through a :class:`~learned_augment.LearnedPolicyTransform`, with what it applied.

    Items: ``(image (1, 28, 28) float32 in [0, 1], label, index, tf_ids (L,) int64)``, ``tf_ids`` all -1 when the
    transform left the image alone (fixed length, so the default collate stacks them).
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: la.LearnedPolicyTransform) -> None:
        self.images = images
        self.labels = labels
        self.transform = transform
        self.seq_len = transform.policy.seq_len

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int, torch.Tensor]:
        image = self.transform(self.images[i])
        params = self.transform.last_params
        ids = torch.full((self.seq_len,), -1, dtype=torch.int64)
        if params is not None and params["applied"]:
            ids[:] = torch.as_tensor(params["tf_ids"])
        return torch.from_numpy(image).float().div(255).unsqueeze(0), int(self.labels[i]), i, ids


class DigitsDataModule(L.LightningDataModule):
    """The first ``n`` digits of the shipped sample, augmented by the shipped MNIST policy (training set only)."""

    def __init__(self, n: int, batch_size: int, num_workers: int, seed: int) -> None:
        super().__init__()
        self.n, self.batch_size, self.num_workers, self.seed = n, batch_size, num_workers, seed
        self.train_set: AugmentedDigits | None = None

    def setup(self, stage: str) -> None:
        images, labels = load_sample()
        transform = la.LearnedPolicyTransform.from_pretrained(POLICY, p=P, seed=self.seed)
        self.train_set = AugmentedDigits(images[: self.n], labels[: self.n], transform)

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None
        # Lightning swaps in a DistributedSampler (shuffled, seeded from seed_everything): each rank its own images.
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers)


class TinyCNN(L.LightningModule):
    """A two-layer CNN that also keeps, per training sample, the epoch, index and TF ids the data loader applied."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 8, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(16, 10),
        )
        self.seen: list[torch.Tensor] = []
        self.gathered: torch.Tensor | None = None

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y, index, ids = batch
        epoch = torch.full_like(index, self.current_epoch)
        self.seen.append(torch.cat([epoch[:, None], index[:, None], ids], dim=1))
        return F.cross_entropy(self.net(x), y)

    def on_train_end(self) -> None:
        # Every rank ran the same number of batches (the DistributedSampler pads), so the shapes agree.
        gathered = self.all_gather(torch.cat(self.seen))
        assert isinstance(gathered, torch.Tensor)
        self.gathered = gathered.cpu()  # (world size, samples per rank, 2 + L)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05)


def summarise(per_rank: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per rank: samples, augmented samples, distinct sequences, share also drawn by another rank."""
    sequences = [{tuple(d["tf_ids"]) for d in draws if d["tf_ids"] is not None} for draws in per_rank]
    rows = []
    for rank, draws in enumerate(per_rank):
        others = set().union(*(s for r, s in enumerate(sequences) if r != rank))
        applied = [tuple(d["tf_ids"]) for d in draws if d["tf_ids"] is not None]
        shared = sum(seq in others for seq in applied) / max(1, len(applied))
        rows.append(
            {
                "rank": rank,
                "samples": len(draws),
                "augmented": len(applied),
                "distinct_sequences": len(set(applied)),
                "shared_with_other_ranks": shared,
            }
        )
    return rows


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    """Train; rank 0 returns (and writes) the report, the other ranks ``None``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=256, help="digits in the training set")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--batches", type=int, default=4, help="training batches per epoch and rank")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1, help="DataLoader workers per rank")
    ap.add_argument("--seed", type=int, default=0, help="seed_everything and the transform's seed")
    ap.add_argument("--out", type=Path, required=True, help="output folder (rank 0 writes draws.json)")
    a = ap.parse_args(argv)

    torch.set_num_threads(1)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    L.seed_everything(a.seed, workers=True, verbose=False)
    model = TinyCNN()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_epochs=a.epochs,
        limit_train_batches=a.batches,
        enable_checkpointing=False,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=DigitsDataModule(a.n, a.batch_size, a.workers, a.seed))
    if not trainer.is_global_zero:
        return None

    assert model.gathered is not None
    per_rank = [
        [
            {"epoch": int(row[0]), "index": int(row[1]), "tf_ids": None if row[2] < 0 else row[2:].tolist()}
            for row in rank_rows
        ]
        for rank_rows in model.gathered
    ]
    report = {
        "policy": POLICY,
        "seed": a.seed,
        "world_size": trainer.world_size,
        "epochs": a.epochs,
        "workers_per_rank": a.workers,
        "summary": summarise(per_rank),
        "draws": per_rank,
    }
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "draws.json").write_text(json.dumps(report, indent=1))
    print(f"{'rank':>4} {'samples':>7} {'augmented':>9} {'distinct':>8} {'shared':>7}")
    for row in report["summary"]:
        print(
            f"{row['rank']:>4} {row['samples']:>7} {row['augmented']:>9} {row['distinct_sequences']:>8} "
            f"{row['shared_with_other_ranks']:>7.1%}"
        )
    return report


if __name__ == "__main__":
    main()
