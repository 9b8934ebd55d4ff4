"""Apply sampled TF sequences to data and keep every intermediate result, as the per-step rewards need.

For images, prefix ``t`` is exactly what ``apply_sequence(x, ids[:t])`` returns (fused): inside a run of affine
TFs each prefix resamples ONCE from the image before the run, and inside a run of point TFs the look-up tables are
composed. So the discriminator judges the same images the transform will produce at training time, not a blurrier
chain of resamplings. Every step still costs one application.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from ..ops import geometry as geo
from ..ops.base import Kind, call_custom
from ..ops.image import restore_shape
from ..ops.intensity import point_lut
from ..ops.sequence import apply_sequence
from ..ops.tfset import TFEntry

_IDENTITY_LUT = np.arange(256, dtype=np.uint8)


def image_prefixes(image: np.ndarray, entries: list[TFEntry], rng: np.random.Generator) -> list[np.ndarray]:
    """``[x_0, x_1, ..., x_L]`` for a uint8 image, each equal to the fused application of the first t TFs."""
    h, w = image.shape[:2]
    outs = [image]
    cur = image
    run: Kind | None = None
    base = image
    m = np.eye(3)
    lut = _IDENTITY_LUT
    for e in entries:
        kind = e.tf.kind
        if kind == Kind.AFFINE:
            if run != Kind.AFFINE:
                base, m, run = cur, np.eye(3), Kind.AFFINE
            m = e.tf.fn(e.magnitude, h, w) @ m
            cur = geo.warp_affine_image(base, m)
        elif kind == Kind.POINT and cur.dtype == np.uint8:
            if run != Kind.POINT:
                base, lut, run = cur, _IDENTITY_LUT, Kind.POINT
            lut = point_lut(e.name, e.magnitude)[lut]
            cur = restore_shape(cv2.LUT(base, lut), base)
        else:
            run = None
            cur = apply_sequence(cur, [e], rng=rng)
        outs.append(cur)
    return outs


def custom_prefixes(item: Any, entries: list[TFEntry], rng: np.random.Generator) -> list[Any]:
    """Prefixes for non-image data through user TFs (no fusion)."""
    outs = [item]
    for e in entries:
        if e.tf.kind == Kind.CUSTOM:
            item = call_custom(e.tf, item, e.magnitude, rng)
        else:
            item = apply_sequence(item, [e], rng=rng)
        outs.append(item)
    return outs
