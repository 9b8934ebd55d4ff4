"""Apply sampled TF sequences to data and keep every intermediate result, as the per-step rewards need.

For images, prefix ``t`` is exactly what ``apply_sequence(x, ids[:t])`` returns (fused): pixelwise TFs act after
the geometric TFs of their stretch, each prefix resamples ONCE from the image at the start of the stretch (the
geometric TFs so far composed into one map), and inside a run of point TFs the look-up tables are composed. So the
discriminator judges the same images the transform will produce at training time, not a blurrier chain of
resamplings. A geometric step re-applies the stretch's pixelwise TFs (one table and the hue/saturation steps);
every other step costs one application. The coordinate map of the stretch's geometry grows by one OpenCV call per
geometric step (kept between prefixes) instead of being rebuilt from the stretch's start for every prefix.

:func:`batch_prefixes` makes the same prefixes for a whole batch of sequences through the batched executor
(:func:`~learned_augment.ops.apply_sequence_batch`), on the images' device: what a fit on an accelerator uses, so
its rollouts do not wait on the CPU.
"""

from __future__ import annotations

import copy
from typing import Any

import cv2
import numpy as np
import torch

from ..ops import geometry as geo
from ..ops.base import Kind, Warp, call_custom
from ..ops.batch import apply_sequence_batch
from ..ops.image import restore_shape
from ..ops.intensity import point_lut
from ..ops.plan import Fusion, Role, fusion, role
from ..ops.sequence import add_geometric_step, apply_sequence
from ..ops.tfset import TFEntry, TFSet

_IDENTITY_LUT = np.arange(256, dtype=np.uint8)


class _PixelwiseTail:
    """The pixelwise TFs of the current stretch, applied incrementally on top of the geometric result."""

    def __init__(self) -> None:
        self.entries: list[TFEntry] = []
        self.before_run: np.ndarray | None = None  # the image before the trailing run of point TFs, if any
        self.lut = _IDENTITY_LUT

    def push(self, cur: np.ndarray, e: TFEntry) -> np.ndarray:
        """Apply one more pixelwise TF to ``cur`` (the current prefix)."""
        self.entries.append(e)
        return self._apply(cur, e)

    def replay(self, image: np.ndarray) -> np.ndarray:
        """Apply all pixelwise TFs of the stretch to a new geometric result."""
        entries, self.entries = self.entries, []
        self.before_run, self.lut = None, _IDENTITY_LUT
        cur = image
        for e in entries:
            cur = self.push(cur, e)
        return cur

    def _apply(self, cur: np.ndarray, e: TFEntry) -> np.ndarray:
        if fusion(e.tf.kind) == Fusion.POINT and cur.dtype == np.uint8:
            if self.before_run is None:
                self.before_run, self.lut = cur, _IDENTITY_LUT
            self.lut = point_lut(e.name, e.magnitude)[self.lut]
            return restore_shape(cv2.LUT(self.before_run, self.lut), self.before_run)
        self.before_run = None
        return apply_sequence(cur, [e])


class _GeometryChain:
    """The geometric TFs of the current stretch, composed as :func:`~learned_augment.ops.geometry.compose_geometry`
    composes them, but incrementally.

    ``compose_geometry`` resamples a coordinate map once per step after a leading matrix; rebuilding it for every
    prefix made a stretch of k geometric TFs cost k^2 / 2 resamplings (half of an MNIST rollout). Here the map of
    the steps after the lead is kept, and the map before the last step too while that step is a matrix, which the
    next affine TF folds into (the same OpenCV calls on the same inputs, so the same bytes).
    """

    def __init__(self, h: int, w: int) -> None:
        self.h, self.w = h, w
        self.steps: list[np.ndarray | Warp] = []
        self.coords: np.ndarray | None = None  # the map of every step after a leading matrix
        self.before_last: np.ndarray | None = None  # the map before ``steps[-1]`` when that is a later matrix

    def add(self, e: TFEntry, rng: np.random.Generator) -> None:
        n = len(self.steps)
        add_geometric_step(self.steps, e, self.h, self.w, rng)
        last = self.steps[-1]
        if isinstance(last, Warp):
            m = last.map_xy if last.map_xy is not None else np.dstack((last.map_x, last.map_y))
            if self.coords is None:
                self.coords = m
            else:
                self.coords = cv2.remap(self.coords, m, None, cv2.INTER_LINEAR, borderMode=geo.BORDER)  # type: ignore[call-overload]
            self.before_last = None
        elif len(self.steps) > 1:  # a matrix after a warp (the leading matrix is applied in ``apply``)
            if len(self.steps) > n:
                self.before_last = self.coords
            assert self.before_last is not None  # a warp came before this matrix and set the map
            self.coords = cv2.warpAffine(
                self.before_last, last[:2], (self.w, self.h), flags=cv2.INTER_LINEAR, borderMode=geo.BORDER
            )

    def apply(self, image: np.ndarray) -> np.ndarray:
        """``image`` resampled once through every step so far."""
        first = self.steps[0]
        if len(self.steps) == 1:
            return geo.warp_image(image, first) if isinstance(first, Warp) else geo.warp_affine_image(image, first)
        coords = self.coords
        assert coords is not None  # steps after the first exist, and the first warp among them set the map
        if not isinstance(first, Warp):
            clamped = np.clip(coords, 0.0, np.array([self.w - 1.0, self.h - 1.0], dtype=np.float32))
            coords = cv2.transform(clamped, np.linalg.inv(first)[:2])
        return restore_shape(
            cv2.remap(image, coords, None, interpolation=cv2.INTER_LINEAR, borderMode=geo.BORDER),  # type: ignore[call-overload]
            image,
        )


def image_prefixes(image: np.ndarray, entries: list[TFEntry], rng: np.random.Generator) -> list[np.ndarray]:
    """``[x_0, x_1, ..., x_L]`` for a uint8 image, each equal to the fused application of the first t TFs."""
    h, w = image.shape[:2]
    outs = [image]
    cur = image
    base = image  # the image at the start of the current stretch
    geometry = _GeometryChain(h, w)  # its geometric TFs so far
    tail = _PixelwiseTail()
    for e in entries:
        # The planner's rules (ops.plan), applied one TF at a time so every prefix is the fused image of its TFs.
        r = role(e.tf)
        if r == Role.MOVES:
            geometry.add(e, rng)
            cur = tail.replay(geometry.apply(base))
        elif r == Role.RECOLOURS:
            cur = tail.push(cur, e)
        else:
            cur = apply_sequence(cur, [e], rng=rng)
            base, geometry, tail = cur, _GeometryChain(h, w), _PixelwiseTail()
        outs.append(cur)
    return outs


def custom_prefixes(item: Any, entries: list[TFEntry], rng: np.random.Generator) -> list[Any]:
    """Prefixes for non-image data through user TFs (no fusion).

    Each TF gets its own copy (as Snorkel's TF applier and our transform do): a TF that edits its input in place must
    change neither the data set's item nor the prefixes already kept.
    """
    outs = [item]
    for e in entries:
        if e.tf.kind == Kind.CUSTOM:
            item = call_custom(e.tf, copy.deepcopy(item), e.magnitude, rng)
        else:
            item = apply_sequence(item, [e], rng=rng)
        outs.append(item)
    return outs


def padded_tfset(tfset: TFSet) -> tuple[TFSet, int]:
    """``tfset`` with ``identity`` appended when it lacks it, and the index of ``identity``: the filler that lets
    prefixes of every length share one ``(rows, L)`` id array."""
    if "identity" in tfset.ids:
        return tfset, tfset.index_of("identity")
    return TFSet([*tfset, TFEntry("identity")]), len(tfset)


def batch_prefixes(
    images: torch.Tensor,
    ids: np.ndarray,
    tfset: TFSet,
    pad: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """``x_0 .. x_L`` of ``n`` sequences at once, through the batched executor on the images' device.

    Prefix ``t`` of sequence ``j`` is its first ``t`` TFs followed by ``L - t`` identities, all ``n * L`` rows in
    one call of :func:`~learned_augment.ops.apply_sequence_batch`: each is the fused image of its TFs (an identity
    is an identity look-up table, which changes no pixel), as :func:`image_prefixes` makes it, up to the batched
    executor's resampling round-off. That is about ``n * L^2 / 2`` TF applications against ``n * L`` for the
    per-image rollout, cheap on an accelerator, and ``n * L`` images held at once.

    Parameters
    ----------
    images:
        ``(n, C, H, W)`` uint8 (or float in [0, 1]) inputs of the sequences, on any device.
    ids:
        ``(n, L)`` integer TF indices into ``tfset``.
    tfset:
        The TF set, holding ``identity`` at index ``pad`` (:func:`padded_tfset`).
    pad:
        Index of ``identity`` in ``tfset``.
    generator:
        Source of random TFs' draws, on the images' device. They are drawn afresh for every prefix, so a prefix is
        not its successor's starting point: the rewards see another cutout square or noise field at each step, an
        unbiased but noisier comparison than the per-image rollout's.

    Returns
    -------
    torch.Tensor
        ``(L+1, n, C, H, W)``, same dtype and device as ``images``; ``[0]`` is ``images``.
    """
    n, seq_len = ids.shape
    if seq_len == 0:
        return images.unsqueeze(0).clone()
    steps = np.arange(seq_len)
    # Row (t - 1) * n + j: sequence j's first t TFs, then identities.
    rows = np.where(steps[None, None, :] < np.arange(1, seq_len + 1)[:, None, None], ids[None], pad)
    flat = torch.from_numpy(rows.reshape(seq_len * n, seq_len).astype(np.int64))
    repeated = images.repeat(seq_len, *([1] * (images.dim() - 1)))
    out = apply_sequence_batch(repeated, flat, tfset, generator=generator)
    return torch.cat((images.unsqueeze(0), out.view(seq_len, *images.shape)))
