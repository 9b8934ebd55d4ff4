"""One process of a small fit under torchrun, for tests/fit/test_distributed.py.

    torchrun --standalone --nproc_per_node=2 tests/fit/distributed_worker.py OUT [--checkpoint P] [--die-at S]

Fits a mean-field policy on 14x14 digits with a discriminator without batch norm (so fits on any number of
processes agree to float precision) and, on rank 0, saves the policy to OUT. ``--die-at S`` kills rank 1 (or the
only rank) abruptly after step S, as a crashed machine would.
"""

from __future__ import annotations

import argparse
import os

import cv2
import numpy as np
import torch
from torch import distributed as dist
from torch import nn

import learned_augment as la
from learned_augment.data import load_sample


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--die-at", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--seed-per-rank", action="store_true", help="seed = rank: ranks disagree (must be refused)")
    ap.add_argument("--rank0-only", action="store_true", help="only rank 0 fits, without distributed=True")
    a = ap.parse_args()
    torch.set_num_threads(1)
    if "WORLD_SIZE" in os.environ:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    images = np.stack([cv2.resize(x, (14, 14), interpolation=cv2.INTER_AREA) for x in load_sample()[0][:256]])
    torch.manual_seed(0)
    disc = nn.Sequential(nn.Flatten(), nn.Linear(14 * 14, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))

    def die(step: int, metrics: dict, policy: la.Policy) -> None:
        if a.die_at is not None and step == a.die_at and rank == min(1, world - 1):
            os._exit(3)

    if a.rank0_only and rank != 0:
        dist.destroy_process_group()
        return
    policy = la.fit_policy(
        images[..., None],
        "mnist",
        "mean_field",
        seq_len=4,
        steps=a.steps,
        batch_size=a.batch_size,
        n_seqs=2,
        discriminator=disc,
        g_lr=0.5,
        seed=rank if a.seed_per_rank else 0,
        checkpoint=a.checkpoint,
        checkpoint_every=4,
        callbacks=[die],
        progress=False,
        eval_every=5,
        distributed=dist.is_initialized() and not a.rank0_only,
    )
    if rank == 0:
        policy.save(a.out)
    if dist.is_initialized():
        if not a.rank0_only:
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
