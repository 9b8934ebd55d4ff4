"""Sampling sequences for transforms: amortised blocks for a stream, or one exact draw per call from a given
numpy generator."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

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


class PrefixSampler:
    """Draws a sequence from ``L`` given uniforms, by inverse CDF of each step's conditional distribution
    (:meth:`Policy.next_probabilities`), memoised by prefix.

    A transform that follows PyTorch's global generator on every call (``torch.manual_seed`` then a call repeats
    that call, as for torchvision's random transforms) cannot hand out a block drawn in advance; this makes such a
    draw cost a few table look-ups once the prefixes are known (all of them, for L = 2 sequences). The memo is
    dropped when it holds ``max_prefixes`` entries and when the policy's parameters have changed in place (an
    optimiser step, ``load_state_dict``), which is looked at every :attr:`VERSION_EVERY` draws.
    """

    VERSION_EVERY = 64

    def __init__(self, policy: Policy, max_prefixes: int = 1 << 16) -> None:
        self.policy = policy
        self.max_prefixes = int(max_prefixes)
        self._params = list(policy.parameters())
        self._cdfs: dict[tuple[int, ...], list[float]] = {}
        self._version: tuple[int, ...] | None = None
        self._until_check = 0

    def _cdf(self, prefix: tuple[int, ...]) -> list[float]:
        cdf = self._cdfs.get(prefix)
        if cdf is None:
            if len(self._cdfs) >= self.max_prefixes:
                self._cdfs.clear()
            cdf = np.cumsum(self.policy.next_probabilities(prefix)).tolist()
            self._cdfs[prefix] = cdf
        return cdf

    def draw(self, uniforms: Sequence[float]) -> np.ndarray:
        """One sequence, ``(L,)`` int64, from ``L`` uniforms in [0, 1)."""
        self._until_check -= 1
        if self._until_check < 0:
            self._until_check = self.VERSION_EVERY - 1
            version = tuple(p._version for p in self._params)
            if version != self._version:
                self._cdfs.clear()
                self._version = version
        out: list[int] = []
        last = self.policy.num_tfs - 1
        for u in uniforms[: self.policy.seq_len]:
            cdf = self._cdf(tuple(out))
            out.append(min(bisect.bisect_right(cdf, u * cdf[-1]), last))
        if len(out) != self.policy.seq_len:
            raise ValueError(f"{self.policy.seq_len} uniforms are needed, got {len(uniforms)}")
        return np.array(out, dtype=np.int64)

    def take(self, n: int, seed: int) -> np.ndarray:
        """``n`` sequences, ``(n, L)`` int64: one batched :meth:`Policy.sample`, its generator seeded with ``seed``."""
        generator = torch.Generator().manual_seed(int(seed))
        return self.policy.sample(int(n), generator=generator).numpy()
