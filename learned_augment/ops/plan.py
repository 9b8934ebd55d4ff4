"""The one planner of TF sequences: what each TF is to the fusion, how a sequence is reordered, what runs as one.

Three executors run TF sequences: :func:`~learned_augment.ops.apply_sequence` (numpy / OpenCV, one image and its
targets), :func:`~learned_augment.ops.apply_sequence_batch` (torch, a batch on any device, a sequence per sample) and
the fit's rollouts (:mod:`learned_augment.fit.rollout`, every prefix ``x_0 .. x_L``). They agree on the image a
sequence makes because they take their rules from here:

* :func:`role`: a TF *moves* pixels (affine and warp TFs), *recolours* them one by one and so commutes with moving
  them (``commutes_with_geometry``: point TFs, hue, saturation), or is a *barrier* (blur, noise, cutout, custom TFs)
  that nothing crosses.
* :func:`reorder` (and :func:`geometry_first` for one list of entries): within each stretch between barriers the
  moving TFs come first, then the recolouring ones, each group in its own order; the barrier closes the stretch.
* :func:`fusion` and :func:`steps`: consecutive TFs of one fusion class run as one step (one resampling for a run of
  geometric TFs, one look-up table for a run of point TFs); every other TF is a step of its own.

How a step is executed (a composed matrix or coordinate map, a composed table) is each executor's business.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

import numpy as np

from .base import TF, Kind
from .tfset import TFEntry, TFSet


class Role(IntEnum):
    """What a TF is to the reordering (the values order a stretch: moving TFs first, then recolouring ones)."""

    MOVES = 0
    RECOLOURS = 1
    BARRIER = 2


class Fusion(IntEnum):
    """Which consecutive TFs run as one step."""

    GEOMETRY = 0  # affine and warp TFs: one resampling
    POINT = 1  # point TFs: one look-up table
    ALONE = 2  # everything else: a step of its own


def role(tf: TF) -> Role:
    """The role of ``tf`` in the reordering."""
    if tf.kind in (Kind.AFFINE, Kind.WARP):
        return Role.MOVES
    return Role.RECOLOURS if tf.commutes_with_geometry else Role.BARRIER


def fusion(kind: Kind) -> Fusion:
    """The fusion class of a TF kind."""
    if kind in (Kind.AFFINE, Kind.WARP):
        return Fusion.GEOMETRY
    return Fusion.POINT if kind == Kind.POINT else Fusion.ALONE


def roles(tfset: TFSet) -> np.ndarray:
    """``role`` of every entry of ``tfset``, as an int64 array indexed by TF id."""
    return np.array([int(role(e.tf)) for e in tfset], dtype=np.int64)


def reorder(seq: np.ndarray, role_of: np.ndarray) -> np.ndarray:
    """Every row of ``seq`` (B, L) of TF ids in fused order, given ``role_of`` (:func:`roles`) of the ids."""
    r = role_of[seq]
    barrier = r == Role.BARRIER
    # A TF's stretch is the number of barriers before it; within a stretch moving TFs sort first, then recolouring
    # ones, then the barrier that closes it. The sort is stable, so each group keeps its order.
    stretch = np.cumsum(barrier, axis=-1) - barrier
    order = np.argsort(stretch * len(Role) + r, axis=-1, kind="stable")
    return np.take_along_axis(seq, order, axis=-1)


def geometry_first(entries: Sequence[TFEntry]) -> list[TFEntry]:
    """Reorder ``entries`` as :func:`reorder` does: within each stretch between TFs that do not commute with
    geometry, the geometric TFs (affine and warp) first and the pixelwise ones after, each group in its order.

    The result is the same image (exactly under nearest resampling; under bilinear up to round-off and clipping)
    with fewer resamplings, and targets move identically: only geometric TFs move them, in their original order.
    """
    entries = list(entries)
    if not entries:
        return []
    role_of = np.array([int(role(e.tf)) for e in entries], dtype=np.int64)
    order = reorder(np.arange(len(entries))[None], role_of)[0]
    return [entries[int(i)] for i in order]


def steps(entries: Sequence[TFEntry], fuse: bool = True) -> list[tuple[Kind, list[TFEntry]]]:
    """Split a (reordered) sequence into the steps that run as one: runs of affine TFs (kind ``AFFINE``), runs of
    geometric TFs with a warp among them (kind ``WARP``: one composed resampling), runs of point TFs (``POINT``),
    and single TFs otherwise. ``fuse=False``: every TF is a step."""
    out: list[tuple[Kind, list[TFEntry]]] = []
    for e in entries:
        kind = e.tf.kind
        cls = fusion(kind)
        if fuse and out and cls != Fusion.ALONE and fusion(out[-1][0]) == cls:
            last, group = out[-1]
            group.append(e)
            if cls == Fusion.GEOMETRY and Kind.WARP in (kind, last):
                out[-1] = (Kind.WARP, group)
            continue
        out.append((kind, [e]))
    return out
