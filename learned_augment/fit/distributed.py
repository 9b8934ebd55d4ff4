"""Data-parallel fits: what ``fit_policy`` does differently when ``torch.distributed`` is initialised.

Every process (rank) holds the whole policy and discriminator. A step's global batch of ``batch_size`` real items
is split across ranks by position (rank ``r`` takes positions ``r, r + W, ...``), and so are the ``batch_size *
n_seqs`` sampled sequences (sequence ``j`` belongs to item position ``j % batch_size``); every rank samples the
whole step's TF ids from the same generator and keeps its own rows, and each sequence's TF randomness is derived
from ``(seed, step, j)``, so which rank rolls a sequence out does not change it. The discriminator's gradients
are averaged by ``DistributedDataParallel``, the policy's by one all-reduce; the statistics the rewards need
across the batch (the real batch's variance, the per-step baseline) and the logged metrics are all-reduced, so
every rank computes the same update, and a fit equals a single-process fit of the same global batch and seed up
to floating-point summation order and batch norm, whose statistics stay per rank (``SyncBatchNorm`` needs GPUs:
on CUDA the default discriminator's batch norms are synchronised). Two things draw per rank and so do not match a
single-process fit: ``jitter``'s sub-pixel shifts and the R/G ratio's random sequences; with
``rollouts="batched"`` (the default on GPUs) also the draws of random TFs (cutout, noise, elastic), which come from
one generator per rank.

Every rank must call ``fit_policy`` with the same data and arguments: the fit checks this at its start (a rank
that skipped the call, as in ``if rank == 0: fit_policy(...)``, cannot be detected and would leave the others
waiting; that is why a data-parallel fit must be asked for with ``distributed=True``).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch
from torch import distributed as dist
from torch import nn


class FitGroup:
    """The processes that share one fit; a world of one is a plain single-process fit.

    Parameters
    ----------
    distributed:
        ``True``: fit over the default process group (it must be initialised). ``False``: fit in this process
        alone, whatever the process group.
    """

    def __init__(self, distributed: bool = False) -> None:
        ready = dist.is_available() and dist.is_initialized()
        if distributed and not ready:
            raise RuntimeError(
                "fit_policy(distributed=True) needs torch.distributed.init_process_group() first "
                "(torchrun sets up the environment for it)"
            )
        self.rank = dist.get_rank() if distributed else 0
        self.world = dist.get_world_size() if distributed else 1

    @property
    def active(self) -> bool:
        """Whether more than this process takes part."""
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes checkpoints and shows progress."""
        return self.rank == 0

    def check_batch(self, batch_size: int, n_items: int) -> None:
        """Refuse a global batch that does not split evenly (the gradient averages would weight ranks unequally)."""
        if batch_size % self.world:
            clamped = f" (clamped to the {n_items} items)" if batch_size == n_items else ""
            raise ValueError(
                f"batch_size {batch_size}{clamped} (the global batch) must be a multiple of the {self.world} processes"
            )

    def check_same(self, config: dict[str, Any]) -> None:
        """Refuse a fit whose data or arguments differ between ranks (it would hang or silently diverge)."""
        if not self.active:
            return
        mine = json.dumps(config, sort_keys=True, default=str)
        seen: list[Any] = [None] * self.world
        dist.all_gather_object(seen, mine)
        if len(set(seen)) > 1:
            others = json.loads(next(v for v in seen if v != mine))
            diff = sorted(k for k in set(config) | set(others) if config.get(k) != others.get(k))
            raise ValueError(
                f"fit_policy got different {', '.join(diff)} on different processes; a distributed fit needs the "
                "same data and arguments on every rank"
            )

    def all_ok(self, ok: bool, device: torch.device) -> bool:
        """Whether ``ok`` holds on every rank (so that all raise together instead of some waiting forever)."""
        if not self.active:
            return ok
        flag = torch.tensor([1.0 if ok else 0.0], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item() > 0)

    def local(self, n: int) -> np.ndarray:
        """This rank's positions among ``n`` (items of a batch or its sequences)."""
        return np.arange(self.rank, n, self.world)

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """Element-wise sum over ranks (a new tensor)."""
        out = t.detach().clone()
        if self.active:
            dist.all_reduce(out)
        return out

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        """Element-wise mean over ranks (a new tensor)."""
        return self.sum(t) / self.world if self.active else t.detach().clone()

    def average_gradients(self, module: nn.Module) -> None:
        """Replace each gradient by its mean over ranks, in one all-reduce."""
        if not self.active:
            return
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def average_buffers(self, module: nn.Module) -> None:
        """Average floating-point buffers (batch-norm running statistics) so eval-mode passes agree on every rank."""
        if not self.active:
            return
        for b in module.buffers():
            if b.is_floating_point():
                dist.all_reduce(b)
                b /= self.world

    def broadcast(self, module: nn.Module) -> None:
        """Copy rank 0's parameters and buffers to every rank."""
        if not self.active:
            return
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)

    def wrap(self, disc: nn.Module, device: torch.device, sync_batch_norm: bool) -> nn.Module:
        """``disc`` for the training pass: itself alone, ``DistributedDataParallel`` over several processes.

        ``sync_batch_norm`` (CUDA only) replaces the batch norms of ``disc`` in place: only for a discriminator the
        fit built itself, never for a user's module, which would come back unusable outside a process group.
        """
        if not self.active:
            return disc
        if device.type == "cuda":
            if sync_batch_norm:
                disc = nn.SyncBatchNorm.convert_sync_batchnorm(disc)
            ids = [device.index if device.index is not None else torch.cuda.current_device()]
            return nn.parallel.DistributedDataParallel(disc, device_ids=ids)
        return nn.parallel.DistributedDataParallel(disc)

    def barrier(self) -> None:
        """Wait for every rank (after rank 0 wrote a checkpoint the others may read)."""
        if self.active:
            dist.barrier()

    def __repr__(self) -> str:
        return f"FitGroup(rank={self.rank}, world={self.world})"
