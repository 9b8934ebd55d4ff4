"""Sampling sequences for transforms: amortised blocks for a seeded stream, or one exact draw per call from given
uniforms."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
    """Draws one sequence from ``L`` given uniforms, by inverse CDF of each step's conditional distribution,
    memoised by prefix.

    A transform that follows PyTorch's global generator on every call (``torch.manual_seed`` then a call repeats
    that call, as for torchvision's random transforms) cannot hand out a block drawn in advance; this makes such a
    draw cost a few table look-ups once the prefixes it meets are known (all of them, for L = 2 sequences). A
    recurrent policy computes a new prefix's conditional with one cell step from its parent's state, in numpy
    (:meth:`RecurrentPolicy.numpy_step`); another policy with :meth:`Policy.next_probabilities`; one that
    implements only :meth:`Policy.sample` draws with it, from a generator seeded by the uniforms.

    Parameters
    ----------
    policy:
        The policy to draw from.
    max_prefixes:
        The memo is emptied when it holds this many prefixes. It is also emptied when the policy's parameters have
        changed (an optimiser step, ``load_state_dict``), which is looked at every :attr:`VERSION_EVERY` draws.
    """

    VERSION_EVERY = 64

    def __init__(self, policy: Policy, max_prefixes: int = 4096) -> None:
        self.policy = policy
        self.max_prefixes = int(max_prefixes)
        self._memo: dict[tuple[int, ...], tuple[np.ndarray, Any]] = {}
        self._version: tuple[tuple[int, int], ...] | None = None
        self._until_check = 0
        self._numpy_step: Any = None  # RecurrentPolicy.numpy_step(), taken afresh when the weights change
        self._sample_only = False

    def _weights_version(self) -> tuple[tuple[int, int], ...]:
        out = []
        for p in self.policy.parameters():
            try:
                out.append((id(p), p._version))
            except RuntimeError:  # an inference tensor (made under torch.inference_mode) cannot change
                out.append((id(p), -1))
        return tuple(out)

    def _entry(self, prefix: tuple[int, ...]) -> tuple[np.ndarray, Any]:
        """``(cdf, state)`` of ``prefix``; the parent of a new prefix is in the memo (draws walk from the root)."""
        entry = self._memo.get(prefix)
        if entry is None:
            if len(self._memo) >= self.max_prefixes:
                self._memo.clear()
            if self._numpy_step is not None:
                parent = self._entry(prefix[:-1])[1] if prefix else None
                probs, state = self._numpy_step(parent, prefix[-1] if prefix else None)
            else:
                probs, state = self.policy.next_probabilities(prefix), None
            entry = (np.cumsum(probs), state)
            self._memo[prefix] = entry
        return entry

    def draw(self, uniforms: Sequence[float]) -> np.ndarray:
        """One sequence, ``(L,)`` int64, from ``L`` uniforms in [0, 1)."""
        seq_len = self.policy.seq_len
        if len(uniforms) != seq_len:
            raise ValueError(f"{seq_len} uniforms are needed, got {len(uniforms)}")
        self._until_check -= 1
        if self._until_check < 0:
            self._until_check = self.VERSION_EVERY - 1
            version = self._weights_version()
            if version != self._version:
                self._memo.clear()
                self._version = version
                numpy_step = getattr(self.policy, "numpy_step", None)
                self._numpy_step = numpy_step() if callable(numpy_step) else None
        if not self._sample_only:
            try:
                return self._inverse_cdf(uniforms)
            except NotImplementedError:  # a subclass with sample() alone
                self._sample_only = True
        seed = int(uniforms[0] * 2.0**53)
        return self.policy.sample(1, generator=torch.Generator().manual_seed(seed))[0].numpy()

    def _inverse_cdf(self, uniforms: Sequence[float]) -> np.ndarray:
        out: list[int] = []
        last = self.policy.num_tfs - 1
        for u in uniforms:
            cdf = self._entry(tuple(out))[0]
            out.append(min(int(np.searchsorted(cdf, u * cdf[-1], side="right")), last))
        return np.array(out, dtype=np.int64)
