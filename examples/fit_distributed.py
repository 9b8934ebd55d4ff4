"""Fit a TANDA policy data-parallel over several processes with torchrun, and report steps per second.

    torchrun --standalone --nproc_per_node=2 examples/fit_distributed.py --out runs/fit_distributed
    python examples/fit_distributed.py --out runs/fit_single        # the same fit in one process

Every process runs this script; ``fit_policy(..., distributed=True)`` splits each global batch of
``--batch-size`` images across the processes (gloo on CPUs; NCCL with one GPU per process when CUDA is there and
``--device cuda``). Rank 0 writes the checkpoint (``--checkpoint``: a fit killed on any rank resumes from it when
launched again, with the same or another number of processes), the fitted policy (``policy.safetensors``) and a
JSON report with the wall time and steps per second; the script prints one table row.

The data are the 2,000 MNIST digits shipped in the package (nothing is downloaded), or ``--data`` (a folder of
images, an ``.npz`` or an IDX folder readable by :func:`learned_augment.data.as_images`). ``--discriminator mlp``
uses a small discriminator without batch norm, with which a fit on W processes equals the single-process fit to
float precision (batch norm's statistics stay per process on CPUs).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import distributed as dist
from torch import nn

import learned_augment as la
from learned_augment.data import as_images, load_sample


def mlp_discriminator(shape: tuple[int, int, int]) -> nn.Module:
    """A discriminator without batch norm (its fits on W processes equal the single-process fit)."""
    h, w, c = shape
    return nn.Sequential(nn.Flatten(), nn.Linear(h * w * c, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the example; returns the report that rank 0 writes."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None, help="images to fit on (default: the shipped MNIST sample)")
    ap.add_argument("--limit", type=int, default=None, help="use at most this many images")
    ap.add_argument("--tfs", default="mnist")
    ap.add_argument("--model", default="lstm", choices=["lstm", "gru", "mean_field"])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=32, help="the global batch, split across processes")
    ap.add_argument("--seq-len", type=int, default=10)
    ap.add_argument("--discriminator", default="dcgan", choices=["dcgan", "mlp"])
    ap.add_argument("--device", default="cpu", help="cpu or cuda (each process takes cuda:LOCAL_RANK)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--checkpoint", default=None, help="checkpoint path (resumed from when it exists)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True, help="output folder (rank 0 writes it)")
    a = ap.parse_args(argv)

    torch.set_num_threads(a.threads)
    launched = "WORLD_SIZE" in os.environ  # set by torchrun
    device = a.device
    if launched and not dist.is_initialized():
        cuda = a.device.startswith("cuda")
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
            device = f"cuda:{torch.cuda.current_device()}"
        dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)

    images = as_images(a.data, limit=a.limit) if a.data else load_sample()[0][: a.limit]
    if images.ndim == 3:
        images = images[..., None]
    torch.manual_seed(a.seed)  # the same initial weights in every process and in a single-process run
    disc = mlp_discriminator(images.shape[1:]) if a.discriminator == "mlp" else None

    resumed = a.checkpoint is not None and Path(a.checkpoint).exists()
    t0 = time.perf_counter()
    policy = la.fit_policy(
        images,
        a.tfs,
        a.model,
        a.seq_len,
        steps=a.steps,
        batch_size=a.batch_size,
        discriminator=disc,
        device=device,
        seed=a.seed,
        checkpoint=a.checkpoint,
        progress=rank == 0,
        distributed=dist.is_initialized(),
    )
    wall = time.perf_counter() - t0
    report = {
        "processes": world,
        "backend": dist.get_backend() if dist.is_initialized() else None,
        "steps": a.steps,
        "global_batch": a.batch_size,
        "threads_per_process": a.threads,
        "discriminator": a.discriminator,
        "wall_s": round(wall, 2),
        "resumed": resumed,  # then the wall time covers only the steps after the checkpoint
        "steps_per_s": None if resumed else round(a.steps / wall, 3),
        "top_tfs": [[name, round(float(p), 4)] for name, p in policy.top_tfs(5)],
    }
    if rank == 0:
        a.out.mkdir(parents=True, exist_ok=True)
        policy.save(str(a.out / "policy.safetensors"))
        (a.out / "report.json").write_text(json.dumps(report, indent=2))
        print(f"{'processes':>9} {'threads':>7} {'steps':>5} {'wall s':>7} {'steps/s':>7}  top TFs")
        tops = ", ".join(f"{n} {p:.2f}" for n, p in report["top_tfs"][:3])
        rate = "resumed" if resumed else f"{a.steps / wall:.2f}"
        print(f"{world:>9} {a.threads:>7} {a.steps:>5} {wall:>7.1f} {rate:>7}  {tops}")
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return report


if __name__ == "__main__":
    main()
