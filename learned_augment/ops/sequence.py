"""Apply a sequence of TF entries to an image and its targets, fusing what can be fused.

Pixelwise TFs (point TFs, hue, saturation) commute with geometric ones: changing each pixel's value and then moving
pixels is moving them and then changing their values (exactly under nearest resampling, up to interpolation
round-off under bilinear). So a fused sequence first moves every pixelwise TF after the geometric TFs of its stretch
(the TFs between two TFs that do not commute, such as blur or noise), keeping the order within each group. Then each
run of consecutive geometric TFs is resampled ONCE: affine matrices are multiplied into one warp, and runs with a
warp (swirl, elastic) among them are composed into one coordinate map
(:func:`~learned_augment.ops.geometry.compose_geometry`). A sequence of 10 random CIFAR-10 TFs resamples once
instead of 3.6 times on average, so the image is not worn down by repeated bilinear blur (composing a swirl
costs one extra float-map resampling; see the README's speed section). Runs of consecutive point TFs become one uint8
look-up table (exactly equal to applying them one by one, since each step rounds to uint8 anyway). Everything else
runs as it comes. The reordering and what runs as one step are :mod:`learned_augment.ops.plan`'s rules, shared with
the batched executor and the fit's rollouts.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from . import geometry as geo
from .base import Kind, Warp, call_custom
from .image import check_image, on_colour, restore_shape, split_alpha
from .intensity import point_lut
from .plan import geometry_first, steps
from .tfset import TFEntry, TFSet, get_tfset

TARGET_KEYS = ("mask", "masks", "bboxes", "keypoints")

_FIXED_RNG_SEED = 0


def resolve(tf_ids: Sequence[Any], tfset: TFSet | str | None = None) -> list[TFEntry]:
    """Turn a sequence of ints (indices into ``tfset``), id strings or entries into entries."""
    out = []
    ts = get_tfset(tfset) if tfset is not None else None
    for t in tf_ids:
        if isinstance(t, TFEntry):
            out.append(t)
        elif isinstance(t, str):
            out.append(TFEntry.parse(t))
        elif isinstance(t, (int, np.integer)):
            if ts is None:
                raise TypeError("integer TF ids need a tfset to index into")
            if not 0 <= int(t) < len(ts):
                raise IndexError(f"TF index {int(t)} out of range for a TF set of {len(ts)} entries")
            out.append(ts[int(t)])
        else:
            raise TypeError(f"TF ids must be ints, strings or TFEntry, got {type(t).__name__}")
    return out


def _check_targets(targets: Mapping[str, Any], h: int, w: int) -> dict[str, Any]:
    unknown = set(targets) - set(TARGET_KEYS)
    if unknown:
        raise KeyError(f"unknown target(s) {sorted(unknown)}; supported: {list(TARGET_KEYS)}")
    out: dict[str, Any] = {}
    for key, value in targets.items():
        if value is None:
            out[key] = None
        elif key == "mask":
            out[key] = _check_mask(value, h, w, key)
        elif key == "masks":
            out[key] = [_check_mask(m, h, w, f"masks[{i}]") for i, m in enumerate(value)]
        else:
            arr = np.asarray(value, dtype=np.float64)
            cols = 4 if key == "bboxes" else 2
            if arr.size == 0 and arr.ndim != 2:
                arr = arr.reshape(0, cols)
            if arr.ndim != 2 or arr.shape[1] < cols:
                raise ValueError(f"{key} must have shape (N, {cols}+), got {arr.shape}")
            if not np.isfinite(arr[:, :cols]).all():
                # Warps would turn one bad coordinate into a NaN box (inf - inf) instead of saying what was wrong.
                raise ValueError(f"{key} hold NaN or infinite coordinates")
            out[key] = arr
    return out


def _check_mask(mask: Any, h: int, w: int, name: str) -> np.ndarray:
    m = np.asarray(mask)
    if m.shape[:2] != (h, w):
        raise ValueError(f"{name} has shape {m.shape}, but the image is {h}x{w}")
    return m


_BOX_POINTS = "_box_points"


def _move_targets(t: dict[str, Any], mask_fn, point_fn) -> None:
    for key, value in t.items():
        if value is None:
            continue
        if key == "mask":
            t[key] = mask_fn(value)
        elif key == "masks":
            t[key] = [mask_fn(m) for m in value]
        elif key == _BOX_POINTS:
            t[key] = point_fn(value)
        elif key == "keypoints" and len(value):
            moved = value.copy()
            moved[:, :2] = point_fn(value[:, :2])
            t[key] = moved


def apply_sequence(
    image: Any,
    tf_ids: Sequence[Any],
    tfset: TFSet | str | None = None,
    *,
    targets: Mapping[str, Any] | None = None,
    rng: np.random.Generator | int | None = None,
    fuse: bool = True,
    interpolation: Any = "bilinear",
    clip_boxes: bool = True,
) -> Any:
    """Apply TFs in order to ``image`` (and, if given, its targets).

    Parameters
    ----------
    image:
        ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` numpy array, uint8 or float32 in [0, 1]; 2 or 4 channels are
        grey or RGB followed by alpha, which geometric TFs move with the colour and the other TFs leave as it is
        (they see the colour channels only). If every TF in the sequence is a ``custom`` TF, any data (tokens,
        audio, ...) is accepted and passed through untouched.
    tf_ids:
        Indices into ``tfset``, id strings (``"rotate(+5)"``) or :class:`TFEntry` objects.
    tfset:
        TF set (or its name) that integer ids index into.
    targets:
        Optional dict with any of ``mask`` ((H, W[, C]) any dtype, nearest resampling), ``masks`` (list of masks),
        ``bboxes`` ((N, 4+) pascal_voc pixels ``x_min, y_min, x_max, y_max``; extra columns kept) and
        ``keypoints`` ((N, 2+) ``x, y`` pixels; extra columns kept). Geometric TFs move them with the image.
    rng:
        Generator for TFs that draw random numbers (elastic, noise, cutout), or an int seed for one. ``None`` uses a
        fixed seed, so the call is deterministic. A generator is only built when a TF in the sequence draws.
    fuse:
        Apply pixelwise TFs after the geometric TFs they commute with (:func:`geometry_first`), then resample each
        run of geometric TFs once and turn runs of point TFs into one look-up table. ``False`` applies every TF as
        it comes, one resampling per geometric TF.
    interpolation:
        How geometric TFs resample the image: ``"bilinear"`` (default) or ``"nearest"`` (torchvision's
        ``InterpolationMode`` and ``cv2.INTER_LINEAR`` / ``cv2.INTER_NEAREST`` work too). Nearest is what
        torchvision's AutoAugment family uses by default; its warps are about 4x faster at 224x224 and geometric
        TFs then only copy existing pixel values. Masks always use nearest, taking the very pixels a nearest image
        takes (so a mask equal to the image stays equal to it); boxes and keypoints do not depend on it.
    clip_boxes:
        Clip moved boxes to the image (default). ``False`` returns the boxes enclosing the moved outlines as they
        are, partly or wholly outside the image, for a caller that filters by the share left visible and clips
        itself (Albumentations' ``min_visibility``, torchvision boxes with ``clamping_mode=None``).

    Returns
    -------
    The transformed image (same shape and dtype), or ``(image, targets)`` when ``targets`` was given.
    """
    entries = resolve(tf_ids, tfset)
    if fuse:
        entries = geometry_first(entries)
    interp = geo.resolve_interpolation(interpolation)
    gen = _generator(rng, entries)
    if entries and all(e.tf.kind == Kind.CUSTOM for e in entries):
        data = image
        for e in entries:
            data = call_custom(e.tf, data, e.magnitude, _or_fixed(gen))
        return data if targets is None else (data, dict(targets))

    img = check_image(image, alpha=True)
    h, w = img.shape[:2]
    tgt = _check_targets(targets, h, w) if targets is not None else None
    if tgt is not None and tgt.get("bboxes") is not None and len(tgt["bboxes"]):
        # Boxes are tracked as outline points through the whole sequence and boxed once at the end: re-boxing
        # after every geometric step would let each rotation or warp inflate the box further.
        tgt[_BOX_POINTS] = unmoved_box_points = geo.box_outline_points(tgt["bboxes"])
    for kind, group in steps(entries, fuse):
        if kind == Kind.AFFINE:
            m = _affine_run(tuple((e.tf.fn, e.magnitude) for e in group), h, w)
            resample = functools.partial(geo.warp_affine_image, m=m)
            img = _move_pixels(img, resample, interp, tgt, functools.partial(geo.affine_points, m=m))
        elif kind == Kind.POINT:
            img = on_colour(functools.partial(_apply_points, group=group), img)
        elif kind == Kind.WARP:
            wp = _geometric_run(group, h, w, gen)
            resample = functools.partial(geo.warp_image, warp=wp)
            img = _move_pixels(img, resample, interp, tgt, functools.partial(geo.warp_points, warp=wp))
        elif kind == Kind.IMAGE:
            img = on_colour(functools.partial(_image_step, group[0], gen=gen), img)
        else:
            img = on_colour(functools.partial(_custom_step, group[0], gen=gen), img)
    if img is image:
        # An empty sequence must not hand back the caller's own array.
        img = img.copy()
    if tgt is not None and _BOX_POINTS in tgt:
        pts = tgt.pop(_BOX_POINTS)
        if pts is not unmoved_box_points:  # only geometric steps touch boxes (no clipping for intensity TFs)
            tgt["bboxes"] = geo.boxes_from_points(tgt["bboxes"], pts, h, w, clip=clip_boxes)
    return img if tgt is None else (img, tgt)


def _move_pixels(
    img: np.ndarray,
    resample: Callable[..., np.ndarray],
    interpolation: str,
    tgt: dict[str, Any] | None,
    point_fn: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """One geometric step, ``resample(image, interpolation=...)``, on the image, its alpha channel and its targets.

    The colour is resampled alone, so it comes out exactly as it would without alpha (OpenCV's warps may round
    differently for different channel counts). Masks, and alpha under nearest resampling, take the very pixels the
    colour takes (:func:`~learned_augment.ops.geometry.mask_mover`); under bilinear alpha is resampled as a grey
    image."""
    colour, alpha = split_alpha(img)
    out = resample(colour, interpolation=interpolation)
    move = None
    if tgt or (alpha is not None and interpolation == "nearest"):
        move = geo.mask_mover(functools.partial(resample, interpolation="nearest"), colour)
    if alpha is not None:
        alpha = (
            move(alpha)
            if move is not None and interpolation == "nearest"
            else resample(alpha, interpolation=interpolation)
        )
        out = np.concatenate((out, alpha.reshape(out.shape[:2] + (1,))), axis=2)
    if tgt:
        assert move is not None
        _move_targets(tgt, move, point_fn)
    return out


def _image_step(e: TFEntry, img: np.ndarray, gen: np.random.Generator | None) -> np.ndarray:
    return e.tf.fn(img, e.magnitude, gen)


def _custom_step(e: TFEntry, img: np.ndarray, gen: np.random.Generator | None) -> np.ndarray:
    """Custom TF ``e`` on ``img``, refused in one line unless it keeps the shape and dtype."""
    out = check_image(
        np.asarray(call_custom(e.tf, img, e.magnitude, _or_fixed(gen))), name=f"output of TF {e.tf.name!r}"
    )
    if out.shape != img.shape or out.dtype != img.dtype:
        raise ValueError(
            f"custom TF {e.tf.name!r} turned a {img.shape} {img.dtype} image into a {out.shape} "
            f"{out.dtype} one; TFs must keep the shape and dtype"
        )
    return out


def _generator(rng: np.random.Generator | int | None, entries: list[TFEntry]) -> np.random.Generator | None:
    """The generator TFs draw from; seeding one costs more than most TFs on small images, so only when needed."""
    if isinstance(rng, np.random.Generator):
        return rng
    if not any(e.tf.uses_rng for e in entries):
        # TFs that do not declare uses_rng must not draw (tests/ops/test_tfs.py checks the built-in ones), and
        # call_custom passes a generator only to functions that declared an ``rng`` argument.
        return None
    return np.random.default_rng(_FIXED_RNG_SEED if rng is None else rng)


def _or_fixed(gen: np.random.Generator | None) -> np.random.Generator:
    # Without a generator no TF in the sequence takes one, so this one is never drawn from (custom TFs only).
    return gen if gen is not None else np.random.default_rng(_FIXED_RNG_SEED)


@functools.lru_cache(maxsize=4096)
def _affine_run(run: tuple[tuple[Callable[..., np.ndarray], float | None], ...], h: int, w: int) -> np.ndarray:
    """Product of a run of affine TFs' matrices (cached per run and size: read-only, shared between calls)."""
    # Keyed by the functions, not the names: a TF re-registered under the same name must not reuse stale matrices.
    m = np.eye(3)
    for fn, magnitude in run:
        m = fn(magnitude, h, w) @ m
    m.flags.writeable = False
    return m


def add_geometric_step(
    steps: list[np.ndarray | Warp], e: TFEntry, h: int, w: int, rng: np.random.Generator | None
) -> None:
    """Append geometric TF ``e`` to ``steps`` for :func:`~learned_augment.ops.geometry.compose_geometry`: a matrix
    folds into a matrix just before it (as a plain affine run does); a warp is drawn (random warps draw in order)."""
    if e.tf.kind == Kind.AFFINE:
        m = e.tf.fn(e.magnitude, h, w)
        if steps and not isinstance(steps[-1], Warp):
            steps[-1] = m @ steps[-1]
        else:
            steps.append(m)
    else:
        steps.append(e.tf.fn(e.magnitude, h, w, rng))


def _geometric_run(group: list[TFEntry], h: int, w: int, gen: np.random.Generator | None) -> Warp:
    """One warp for a run of geometric TFs with at least one warp among them."""
    steps: list[np.ndarray | Warp] = []
    for e in group:
        add_geometric_step(steps, e, h, w, gen)
    if len(steps) == 1 and isinstance(steps[0], Warp):
        return steps[0]
    return geo.compose_geometry(steps, h, w)


def _apply_points(img: np.ndarray, group: list[TFEntry]) -> np.ndarray:
    if img.dtype == np.uint8:
        lut = point_lut(group[0].name, group[0].magnitude)
        for e in group[1:]:
            lut = point_lut(e.name, e.magnitude)[lut]
        return restore_shape(cv2.LUT(img, lut), img)
    x = img
    for e in group:
        # Clip and round to float32 after every step, as an unfused run does, so fusing never changes a float result:
        # e.g. posterize after brightness(0.5) can land exactly on a rounding tie that float64 and float32 break
        # differently, a whole posterize level apart.
        x = np.clip(e.tf.fn(x.astype(np.float64), e.magnitude), 0.0, 1.0).astype(np.float32)
    return x


def apply_tf(image: Any, tf_id: Any, tfset: TFSet | str | None = None, **kwargs: Any) -> Any:
    """Apply a single TF (shorthand for ``apply_sequence(image, [tf_id], ...)``)."""
    return apply_sequence(image, [tf_id], tfset, **kwargs)
