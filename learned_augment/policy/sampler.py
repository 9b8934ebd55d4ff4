"""Amortised sampling: draw thousands of sequences at once and hand them out one by one."""

from __future__ import annotations

import numpy as np
import torch

from .base import Policy


class BlockSampler:
    """Hands out single sequences from blocks drawn ``block_size`` at a time.

    Parameters
    ----------
    policy:
        The policy to draw from.
    seed:
        Seed of the sampler's own ``torch.Generator``; ``None`` draws a fresh seed from the OS.
    block_size:
        Sequences drawn per refill.
    """

    def __init__(self, policy: Policy, seed: int | None = None, block_size: int = 4096) -> None:
        self.policy = policy
        self.block_size = int(block_size)
        self.generator = torch.Generator()
        self.reseed(seed)

    def reseed(self, seed: int | None) -> None:
        """Restart the stream from ``seed`` (``None``: a fresh random seed), dropping any buffered block."""
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0] >> 1)
        self.generator.manual_seed(int(seed))
        self._block = np.empty((0, self.policy.seq_len), dtype=np.int64)
        self._pos = 0

    def next(self) -> np.ndarray:
        """One sequence: ``(L,)`` int64 array."""
        if self._pos >= len(self._block):
            self._block = self.policy.sample(self.block_size, generator=self.generator).numpy()
            self._pos = 0
        out = self._block[self._pos]
        self._pos += 1
        return out

    def take(self, n: int) -> np.ndarray:
        """``n`` sequences: ``(n, L)`` int64 array (the same ones ``n`` calls of :meth:`next` would give)."""
        n = int(n)
        parts = []
        while n > 0:
            if self._pos >= len(self._block):
                self._block = self.policy.sample(self.block_size, generator=self.generator).numpy()
                self._pos = 0
            k = min(n, len(self._block) - self._pos)
            parts.append(self._block[self._pos : self._pos + k])
            self._pos += k
            n -= k
        if not parts:
            return self._block[:0].copy()
        return parts[0].copy() if len(parts) == 1 else np.concatenate(parts)
