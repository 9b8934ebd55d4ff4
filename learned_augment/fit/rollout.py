"""Apply sampled TF sequences to data and keep every intermediate result, as the per-step rewards need.

For images, prefix ``t`` is exactly what ``apply_sequence(x, ids[:t])`` returns (fused): pixelwise TFs act after
the geometric TFs of their stretch, each prefix resamples ONCE from the image at the start of the stretch (the
geometric TFs so far composed into one map), and inside a run of point TFs the look-up tables are composed. So the
discriminator judges the same images the transform will produce at training time, not a blurrier chain of
resamplings. A geometric step re-applies the stretch's pixelwise TFs (one table and the hue/saturation steps);
every other step costs one application.
"""

from __future__ import annotations

import copy
from typing import Any

import cv2
import numpy as np

from ..ops import geometry as geo
from ..ops.base import Kind, Warp, call_custom
from ..ops.image import restore_shape
from ..ops.intensity import point_lut
from ..ops.sequence import add_geometric_step, apply_sequence
from ..ops.tfset import TFEntry

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
        if e.tf.kind == Kind.POINT and cur.dtype == np.uint8:
            if self.before_run is None:
                self.before_run, self.lut = cur, _IDENTITY_LUT
            self.lut = point_lut(e.name, e.magnitude)[self.lut]
            return restore_shape(cv2.LUT(self.before_run, self.lut), self.before_run)
        self.before_run = None
        return apply_sequence(cur, [e])


def image_prefixes(image: np.ndarray, entries: list[TFEntry], rng: np.random.Generator) -> list[np.ndarray]:
    """``[x_0, x_1, ..., x_L]`` for a uint8 image, each equal to the fused application of the first t TFs."""
    h, w = image.shape[:2]
    outs = [image]
    cur = image
    base = image  # the image at the start of the current stretch
    steps: list[np.ndarray | Warp] = []  # its geometric TFs so far: folded matrices and drawn warps
    tail = _PixelwiseTail()
    for e in entries:
        kind = e.tf.kind
        if kind in (Kind.AFFINE, Kind.WARP):
            add_geometric_step(steps, e, h, w, rng)
            if len(steps) > 1:
                moved = geo.warp_image(base, geo.compose_geometry(steps, h, w))
            elif isinstance(steps[0], Warp):
                moved = geo.warp_image(base, steps[0])
            else:
                moved = geo.warp_affine_image(base, steps[0])
            cur = tail.replay(moved)
        elif e.tf.commutes_with_geometry:
            cur = tail.push(cur, e)
        else:
            cur = apply_sequence(cur, [e], rng=rng)
            base, steps, tail = cur, [], _PixelwiseTail()
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
