"""Apply a different TF sequence to every image of a batch, vectorised over the batch (the GPU path).

Images stay ``(B, C, H, W)`` float32 on their device. The L steps of the sequences are walked in order; at each step
the samples are grouped by what their entry needs, and each group is one batched tensor operation:

* affine entries are multiplied into a per-sample 3x3 matrix; a sample's run is resampled (one ``grid_sample`` for
  all samples whose run ends at this step) when its next entry is of another kind, or at the end;
* point entries of uint8 images compose per-sample 256-entry look-up tables (exactly the CPU path's tables),
  applied once when the run ends; float images get the point functions themselves, step by step, as the CPU path's
  float branch evaluates them (a table would blur posterize's steps and solarize's threshold between grid points);
* warps (swirl, elastic), image operations, custom TFs and float point functions run on the subset of samples that
  have them at this step, with per-sample magnitudes, through the TF's batched form (``TF.batched``; the built-ins'
  are in ``batch_kernels.py``). A TF without one cannot run here.

Fusion decisions and look-up tables are made on the host from the TF ids alone (no device round trips); only the
finished matrices and tables travel to the device. The built-ins' batched forms follow the numpy kernels in
``geometry.py`` and ``intensity.py``; where those go through uint8 (every TF of a uint8 image returns uint8), uint8
inputs are rounded to the 1/255 grid after each operation here too, so both paths agree to within resampling
round-off.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from . import geometry as geo
from .base import TF, Kind
from .batch_kernels import pixel_grid
from .image import ALPHA_CHANNELS, MAX_PIXELS, check_unit_range, colour_channels
from .intensity import point_lut
from .plan import Fusion, fusion, reorder, roles
from .tfset import TFSet, get_tfset

__all__ = ["apply_sequence_batch", "has_batched_form"]

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_FIXED_SEED = 0
_INV255 = 1.0 / 255.0

# Kind codes for the host-side plan (numpy arrays of small ints are cheaper to compare than enums).
_AFFINE, _POINT, _OTHER, _WARP = 0, 1, 2, 3


@dataclass(frozen=True)
class _Context:
    """What the run needs besides the images and the plan."""

    generator: torch.Generator
    u8: bool
    """The input was uint8: round to the 1/255 grid after every operation, as the CPU path returns uint8."""
    colour: int
    """How many leading channels hold colour; a trailing alpha channel only moves with the geometric TFs."""
    mode: str = "bilinear"
    """grid_sample mode of geometric TFs: "bilinear" or "nearest"."""


_BatchOp = Callable[[torch.Tensor, np.ndarray, torch.Generator], torch.Tensor]
"""A point, image or custom TF's batched form (see :mod:`~learned_augment.ops.base`):
``op(x (n, C, H, W) float32 in [0, 1], magnitudes (n,) float64, generator) -> (n, C, H, W)``."""

_WarpMap = Callable[[np.ndarray, int, int, torch.Generator, torch.device], torch.Tensor]
"""A warp TF's batched form: ``maps(magnitudes (n,), H, W, generator, device) -> (n, H, W, 2)`` source pixel
coordinates (x, y) per destination."""


# ------------------------------------------------------------------------------------------------ resampling


def _normaliser(h: int, w: int) -> np.ndarray:
    """Pixel-index coordinates -> grid_sample's normalised ones for ``align_corners=False``.

    With ``align_corners=False`` pixel ``i`` has its centre at ``(2i + 1) / W - 1``, which is valid for any size
    (``align_corners=True`` divides by ``W - 1`` and breaks for 1-pixel images). Pixel centres at integer indices is
    OpenCV's convention; ``padding_mode='border'`` clamps source coordinates to ``[0, W - 1]``, which is what
    ``cv2.BORDER_REPLICATE`` does for bilinear sampling.
    """
    return np.array([[2.0 / w, 0.0, 1.0 / w - 1.0], [0.0, 2.0 / h, 1.0 / h - 1.0], [0.0, 0.0, 1.0]])


def _warp_affine(x: torch.Tensor, forward: np.ndarray, mode: str = "bilinear") -> torch.Tensor:
    """Resample ``x`` (n, C, H, W) under per-sample forward matrices ``forward`` (n, 3, 3) in pixel-index space."""
    n, _, h, w = x.shape
    norm = _normaliser(h, w)
    # grid_sample pulls: each destination pixel reads the source at inverse(forward) @ destination.
    theta = norm @ np.linalg.inv(forward) @ np.linalg.inv(norm)
    t = torch.from_numpy(theta[:, :2]).to(device=x.device, dtype=torch.float32).view(n, 2, 3, 1, 1)
    # F.affine_grid's result, built by broadcasting: its batched matmul with a 3-wide inner dimension is twice as
    # slow on the CPU.
    xs = ((2.0 * torch.arange(w, device=x.device, dtype=torch.float32) + 1.0) / w - 1.0).view(1, 1, w)
    ys = ((2.0 * torch.arange(h, device=x.device, dtype=torch.float32) + 1.0) / h - 1.0).view(1, h, 1)
    gx = t[:, 0, 0] * xs + (t[:, 0, 1] * ys + t[:, 0, 2])
    gy = t[:, 1, 0] * xs + (t[:, 1, 1] * ys + t[:, 1, 2])
    grid = torch.stack((gx, gy), dim=-1)
    return F.grid_sample(x, grid, mode=mode, padding_mode="border", align_corners=False)


def _remap(x: torch.Tensor, map_x: torch.Tensor, map_y: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """``cv2.remap`` (replicated border) for a batch: maps are (n, H, W) source pixel indices."""
    h, w = x.shape[-2:]
    grid = torch.stack(((2.0 * map_x + 1.0) / w - 1.0, (2.0 * map_y + 1.0) / h - 1.0), dim=-1)
    return F.grid_sample(x, grid, mode=mode, padding_mode="border", align_corners=False)


# ------------------------------------------------------------------------------------------------ warps


def _sample_coords(coords: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
    """Bilinear look-up of (n, H, W, 2) pixel-coordinate maps at (n, H, W, 2) pixel positions (border clamped), as
    ``geometry.compose_geometry`` interpolates a warp's map with ``cv2.remap``."""
    h, w = coords.shape[1:3]
    grid = torch.stack(((2.0 * at[..., 0] + 1.0) / w - 1.0, (2.0 * at[..., 1] + 1.0) / h - 1.0), dim=-1)
    out = F.grid_sample(coords.permute(0, 3, 1, 2), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.permute(0, 2, 3, 1)


def _pull_back(at: torch.Tensor, forward: np.ndarray) -> torch.Tensor:
    """Pixel positions (n, H, W, 2) through the inverse of per-sample forward matrices (n, 3, 3)."""
    inv = torch.from_numpy(np.linalg.inv(forward)[:, :2]).to(device=at.device, dtype=torch.float32)
    inv = inv.view(-1, 1, 1, 2, 3)
    x, y = at[..., 0], at[..., 1]
    return torch.stack(
        (
            inv[..., 0, 0] * x + inv[..., 0, 1] * y + inv[..., 0, 2],
            inv[..., 1, 0] * x + inv[..., 1, 1] * y + inv[..., 1, 2],
        ),
        dim=-1,
    )


# ------------------------------------------------------------------------------------------------ the plan


@dataclass(frozen=True)
class _Plan:
    """Per-entry data for the entries a batch uses, built on the host once per call.

    ``kinds[k]`` is ``_AFFINE``, ``_WARP``, ``_POINT`` (a point entry, for uint8 images) or ``_OTHER``;
    ``fuse[k]`` its :class:`~learned_augment.ops.plan.Fusion` class as this batch runs it (point entries of float
    images run alone, through their batched form);
    ``matrices[k]`` the forward 3x3 matrix of an affine entry (identity otherwise); ``luts[k]`` the uint8 table of a
    point entry (identity otherwise); ``warps[k]`` the batched form of a warp entry; ``ops[k]`` that of any other
    entry; ``names[k]`` the TF's name, for errors; ``mags[k]`` the magnitude (NaN for none).
    """

    kinds: np.ndarray
    fuse: np.ndarray
    matrices: np.ndarray
    luts: np.ndarray
    ops: dict[int, _BatchOp]
    warps: dict[int, _WarpMap]
    names: dict[int, str]
    mags: np.ndarray

    @classmethod
    def build(cls, tfset: TFSet, used: np.ndarray, h: int, w: int, u8: bool) -> _Plan:
        k = len(tfset)
        kinds = np.full(k, _OTHER, dtype=np.int8)
        fuse = np.full(k, int(Fusion.ALONE), dtype=np.int8)
        matrices = np.tile(np.eye(3), (k, 1, 1))
        luts = np.tile(np.arange(256, dtype=np.uint8), (k, 1))
        mags = np.full(k, np.nan)
        ops: dict[int, _BatchOp] = {}
        warps: dict[int, _WarpMap] = {}
        names: dict[int, str] = {}
        for i in used.tolist():
            entry = tfset[i]
            tf = entry.tf
            names[i] = tf.name
            fuse[i] = fusion(tf.kind)
            if entry.magnitude is not None:
                mags[i] = entry.magnitude
            if tf.kind == Kind.AFFINE:
                kinds[i] = _AFFINE
                matrices[i] = tf.fn(entry.magnitude, h, w)
            elif tf.kind == Kind.WARP:
                kinds[i] = _WARP
                warps[i] = _batched_form(tf)
            elif tf.kind == Kind.POINT:
                # Built for float images too: building the table validates the magnitude as the CPU path does.
                luts[i] = point_lut(entry.name, entry.magnitude)
                if u8:
                    kinds[i] = _POINT
                else:
                    fuse[i] = Fusion.ALONE
                    ops[i] = tf.batched or _table_op(luts[i])
            else:
                ops[i] = _batched_form(tf)
        return cls(kinds, fuse, matrices, luts, ops, warps, names, mags)


def _table_op(lut: np.ndarray) -> _BatchOp:
    """A user point TF on float images: its uint8 table, interpolated (the function itself is numpy code)."""
    values = torch.from_numpy(lut.astype(np.float32) * np.float32(_INV255))

    def op(x: torch.Tensor, mags: np.ndarray, generator: torch.Generator) -> torch.Tensor:
        return _apply_lut(x, values.to(x.device).expand(x.shape[0], 256))

    return op


def has_batched_form(tf: TF) -> bool:
    """Whether ``tf`` runs here: affine and point TFs always do (matrices, tables), others need a batched form."""
    return tf.kind in (Kind.AFFINE, Kind.POINT) or tf.batched is not None


def _batched_form(tf: TF) -> Callable[..., torch.Tensor]:
    """The TF's batched form; a TF without one cannot run here."""
    if tf.batched is not None:
        return tf.batched
    if tf.kind == Kind.CUSTOM:
        raise NotImplementedError(
            f"TF {tf.name!r} is a custom TF without a batched form; register it with register_tf(..., batched=fn) to "
            "run it in apply_sequence_batch, or apply such sequences per image with apply_sequence."
        )
    raise NotImplementedError(
        f"TF {tf.name!r} ({tf.kind.value}) has no batched form; give its TF one (batched=fn) to run it in "
        "apply_sequence_batch, or apply such sequences per image with apply_sequence."
    )


# ------------------------------------------------------------------------------------------------ the run


class _Run:
    """Walks the sequences step by step, holding the images and each sample's pending geometric and point run.

    A sample's pending geometry is ``maps`` (where ``has_map``: (H, W, 2) source coordinates of the warps so far)
    followed by ``matrix`` (the affine TFs since): the image it stands for reads the run's first image at
    ``maps(clamp(inverse(matrix) @ p))``. It is resampled once, when a TF that is not geometric comes or the
    sequence ends, as :func:`~learned_augment.ops.geometry.compose_geometry` does on the CPU.
    """

    def __init__(self, x: torch.Tensor, plan: _Plan, ctx: _Context) -> None:
        b = x.shape[0]
        self.x = x
        self.plan = plan
        self.ctx = ctx
        self.matrix = np.tile(np.eye(3), (b, 1, 1))
        self.geo_pending = np.zeros(b, dtype=bool)
        self.maps: torch.Tensor | None = None
        self.has_map = np.zeros(b, dtype=bool)
        self.lut = np.tile(np.arange(256, dtype=np.uint8), (b, 1))
        self.point_pending = np.zeros(b, dtype=bool)

    def step(self, entries: np.ndarray) -> None:
        """Apply one step: ``entries`` (B,) holds each sample's TF index at this step."""
        kinds = self.plan.kinds[entries]
        fuse = self.plan.fuse[entries]
        # A pending run ends where a sample's next TF is of another fusion class (the planner's steps).
        self.flush_geometry(self.geo_pending & (fuse != Fusion.GEOMETRY))
        self.flush_points(self.point_pending & (fuse != Fusion.POINT))

        idx = np.flatnonzero(kinds == _AFFINE)
        if idx.size:
            self.matrix[idx] = self.plan.matrices[entries[idx]] @ self.matrix[idx]
            self.geo_pending[idx] = True
        idx = np.flatnonzero(kinds == _WARP)
        if idx.size:
            maps = [self.plan.warps[int(e)] for e in entries[idx]]
            for fn in _in_first_seen_order(maps, entries[idx]):
                sel = idx[[m is fn for m in maps]]
                self._add_warp(sel, fn, entries[sel])
        idx = np.flatnonzero(kinds == _POINT)
        if idx.size:
            # Applying table t after the run so far is t[run], as in sequence._apply_points.
            self.lut[idx] = np.take_along_axis(self.plan.luts[entries[idx]], self.lut[idx].astype(np.intp), axis=1)
            self.point_pending[idx] = True

        others = np.flatnonzero(kinds == _OTHER)
        if others.size:
            ops = [self.plan.ops[int(e)] for e in entries[others]]
            # One call per operation (all magnitudes at once), in a fixed order so random draws are reproducible.
            for op in _in_first_seen_order(ops, entries[others]):
                sel = others[[o is op for o in ops]]
                self._run_op(sel, op, entries[sel])

    def finish(self) -> torch.Tensor:
        self.flush_geometry(self.geo_pending)
        self.flush_points(self.point_pending)
        return self.x

    def _add_warp(self, idx: np.ndarray, maps: _WarpMap, entries: np.ndarray) -> None:
        """Fold warp ``maps`` (the batched form of ``entries``, one per sample ``idx``) into the pending geometry."""
        h, w = self.x.shape[-2:]
        q = maps(self.plan.mags[entries], h, w, self.ctx.generator, self.x.device)
        q = _checked(q, (idx.size, h, w, 2), self.x.device, "coordinates", self.plan.names[int(entries[0])])
        q[..., 0].clamp_(0.0, w - 1.0)
        q[..., 1].clamp_(0.0, h - 1.0)
        q = self._through_pending(idx, q)
        if self.maps is None:
            self.maps = torch.empty((self.x.shape[0], h, w, 2), device=self.x.device, dtype=torch.float32)
        self.maps[torch.from_numpy(idx).to(self.x.device)] = q
        self.has_map[idx] = True
        self.matrix[idx] = np.eye(3)
        self.geo_pending[idx] = True

    def _through_pending(self, idx: np.ndarray, q: torch.Tensor) -> torch.Tensor:
        """Pull positions ``q`` (n, H, W, 2) back through samples ``idx``'s pending geometry (matrix, then maps)."""
        mats = self.matrix[idx]
        moved = ~np.isclose(mats[:, :2], np.eye(3)[:2], atol=1e-9).all(axis=(1, 2))
        if moved.any():
            q = q.clone()
            sel = torch.from_numpy(np.flatnonzero(moved)).to(q.device)
            q[sel] = _pull_back(q[sel], mats[moved])
        mapped = self.has_map[idx]
        if mapped.any():
            assert self.maps is not None
            sel = torch.from_numpy(np.flatnonzero(mapped)).to(q.device)
            own = torch.from_numpy(idx[mapped]).to(q.device)
            q = q.clone() if not moved.any() else q
            q[sel] = _sample_coords(self.maps[own], q[sel])
        return q

    def flush_geometry(self, mask: np.ndarray) -> None:
        idx = np.flatnonzero(mask)
        if not idx.size:
            return
        plain = idx[~self.has_map[idx]]
        if plain.size:
            mats = self.matrix[plain]
            # The CPU path copies instead of resampling when the product is the identity (e.g. hflip twice).
            identity = np.isclose(mats[:, :2], np.eye(3)[:2], atol=1e-9).all(axis=(1, 2))
            warp = plain[~identity]
            if warp.size:
                fwd = mats[~identity]
                self._update(warp, lambda x: _warp_affine(x, fwd, self.ctx.mode))
        mapped = idx[self.has_map[idx]]
        if mapped.size:
            h, w = self.x.shape[-2:]
            gy, gx = pixel_grid(h, w, self.x.device)
            grid = torch.stack((gx, gy), dim=-1).expand(mapped.size, h, w, 2)
            src = self._through_pending(mapped, grid)
            self._update(mapped, lambda x: _remap(x, src[..., 0], src[..., 1], self.ctx.mode))
            self.has_map[mapped] = False
        self.matrix[idx] = np.eye(3)
        self.geo_pending[idx] = False

    def flush_points(self, mask: np.ndarray) -> None:
        idx = np.flatnonzero(mask)
        if not idx.size:
            return
        table = torch.from_numpy(self.lut[idx]).to(self.x.device).to(torch.float32) * _INV255
        self._update(idx, self._on_colour(lambda x: _lookup(x, table)))
        self.lut[idx] = np.arange(256, dtype=np.uint8)
        self.point_pending[idx] = False

    def _run_op(self, idx: np.ndarray, op: _BatchOp, entries: np.ndarray) -> None:
        """Apply ``op`` (the batched form of ``entries``, one per sample ``idx``) to those samples."""
        mags = self.plan.mags[entries]
        name = self.plan.names[int(entries[0])]
        self._update(
            idx, self._on_colour(lambda x: _checked(op(x, mags, self.ctx.generator), x.shape, x.device, "images", name))
        )

    def _on_colour(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        """``fn`` on the colour channels only, the alpha channel (if any) put back unchanged."""
        k = self.ctx.colour
        if k == self.x.shape[1]:
            return fn
        return lambda x: torch.cat((fn(x[:, :k].contiguous()), x[:, k:]), dim=1)

    def _update(self, idx: np.ndarray, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Replace samples ``idx`` of the batch by ``fn`` of them (rounded to the uint8 grid for uint8 inputs)."""
        if idx.size == self.x.shape[0]:
            self.x = self._settle(fn(self.x))
            return
        sel = torch.from_numpy(idx).to(self.x.device)
        self.x.index_copy_(0, sel, self._settle(fn(self.x.index_select(0, sel))))

    def _settle(self, y: torch.Tensor) -> torch.Tensor:
        # The CPU path returns uint8 after every TF of a uint8 image; rounding here too keeps later steps (posterize,
        # equalize, look-up tables) reading the same values.
        # In place: ``y`` is always a fresh result (or the batch being replaced), and on the CPU every temporary of
        # a large batch costs page faults.
        return y.clamp_(0.0, 1.0).mul_(255.0).round_().mul_(_INV255) if self.ctx.u8 else y


def _checked(y: object, shape: tuple[int, ...], device: torch.device, what: str, name: str) -> torch.Tensor:
    """A batched form's result as float32, after checking it is what the run expects (user forms can be wrong)."""
    if not isinstance(y, torch.Tensor) or not y.is_floating_point():
        got = f"dtype {y.dtype}" if isinstance(y, torch.Tensor) else type(y).__name__
        raise TypeError(f"the batched form of TF {name!r} must return a float tensor, got {got}")
    if tuple(y.shape) != tuple(shape) or y.device != device:
        raise ValueError(
            f"the batched form of TF {name!r} returned {what} of shape {tuple(y.shape)} on {y.device}; expected "
            f"{tuple(shape)} on {device}"
        )
    return y.to(torch.float32)


def _in_first_seen_order(keys: list[Any], entries: np.ndarray) -> list[Any]:
    """Distinct ``keys`` ordered by the smallest entry index using each: a fixed order, so draws are reproducible."""
    first: dict[Any, int] = {}
    for e, key in sorted(zip(entries.tolist(), keys), key=lambda pair: pair[0]):
        first.setdefault(key, e)
    return list(first)


def _lookup(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Per-sample look-up of images on the uint8 grid: ``table`` (n, 256) holds values in [0, 1]."""
    index = (x.reshape(x.shape[0], -1) * 255.0).round_().long()
    return table.gather(1, index).reshape(x.shape)


def _apply_lut(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Per-sample look-up of float images: ``table`` (n, 256) values in [0, 1], linearly interpolated at ``x * 255``.

    On the uint8 grid this is exactly the table; between grid points it is piecewise linear.
    """
    n = x.shape[0]
    pos = (x.reshape(n, -1) * 255.0).clamp_(0.0, 255.0)
    base = pos.floor().clamp_(max=254.0)
    frac = pos - base
    i0 = base.long()
    lo = table.gather(1, i0)
    hi = table.gather(1, i0 + 1)
    return (lo + frac * (hi - lo)).reshape(x.shape)


# ------------------------------------------------------------------------------------------------ validation


def _check_images(images: object) -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor of shape (B, C, H, W), got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got shape {tuple(images.shape)}")
    b, c, h, w = images.shape
    if c not in (1, 3) + ALPHA_CHANNELS:
        raise ValueError(
            f"images have {c} channels (shape {tuple(images.shape)}); expected 1 or 3 (or 2 or 4: grey or RGB, then "
            "alpha) in BCHW layout"
        )
    if images.dtype != torch.uint8 and images.dtype not in _FLOAT_DTYPES:
        raise TypeError(
            f"images have dtype {images.dtype}; expected torch.uint8 (0..255) or a float dtype with values in [0, 1]"
        )
    if h == 0 or w == 0:
        raise ValueError(f"images are empty (shape {tuple(images.shape)})")
    if h * w > MAX_PIXELS:
        raise ValueError(f"images are too large ({h}x{w} pixels; the limit is {MAX_PIXELS} pixels)")
    if images.dtype != torch.uint8 and check_values(images):
        return images.clamp(0.0, 1.0)
    return images


def check_values(images: torch.Tensor) -> bool:
    """Refuse a float batch with NaN, infinities or values outside [0, 1] (beyond
    :data:`~learned_augment.ops.image.UNIT_TOLERANCE`), in one line; True where it needs clamping to [0, 1].
    One device sync; uint8 batches pass unread."""
    if images.dtype == torch.uint8 or images.numel() == 0:
        return False
    lo, hi = torch.aminmax(images.detach())
    return check_unit_range(float(lo), float(hi))


def _check_ids(ids: object, batch: int, k: int) -> np.ndarray:
    arr = ids.detach().cpu().numpy() if isinstance(ids, torch.Tensor) else np.asarray(ids)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"ids must hold integer indices into the TF set, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"ids must have shape (B, L), got shape {arr.shape}")
    if arr.shape[0] != batch:
        raise ValueError(f"ids has {arr.shape[0]} rows but there are {batch} images; give one sequence per image")
    if arr.size and (arr.min() < 0 or arr.max() >= k):
        bad = int(arr.min()) if arr.min() < 0 else int(arr.max())
        raise ValueError(f"TF index {bad} out of range for a TF set of {k} entries")
    return arr.astype(np.int64)


# ------------------------------------------------------------------------------------------------ entry point


def apply_sequence_batch(
    images: torch.Tensor,
    ids: torch.Tensor | np.ndarray,
    tfset: TFSet | str,
    *,
    generator: torch.Generator | None = None,
    interpolation: Any = "bilinear",
) -> torch.Tensor:
    """Apply one TF sequence per image to a batch, vectorised over the batch, on the images' device.

    Results match :func:`~learned_augment.ops.apply_sequence` applied image by image (pixelwise TFs moved after the
    geometric ones, each run of geometric TFs resampled once, point runs computed as the CPU path computes them),
    up to resampling round-off; TFs that draw random numbers use ``generator`` instead of a numpy one, so their
    draws differ from the CPU path's.

    Parameters
    ----------
    images:
        ``(B, C, H, W)`` tensor with C in {1, 3}, or 2 or 4 (grey or RGB, then an alpha channel that only the
        geometric TFs change): uint8 (0..255) or float16 / bfloat16 / float32 / float64 in [0, 1], on any device.
    ids:
        ``(B, L)`` integer indices into ``tfset``; row ``b`` is the sequence applied to image ``b``.
    tfset:
        TF set (or its name) that ``ids`` index into.
    generator:
        Source of the random draws of elastic, noise and cutout (on any device). ``None`` uses a fixed seed, so the
        call is deterministic.
    interpolation:
        ``"bilinear"`` (default) or ``"nearest"`` resampling of geometric TFs, as in
        :func:`~learned_augment.ops.apply_sequence`.

    Returns
    -------
    torch.Tensor
        The transformed images: same shape, dtype and device as ``images``.

    Raises
    ------
    TypeError
        If ``images`` is not a tensor, has an unsupported dtype, or ``ids`` are not integers; or a TF's batched form
        returns something other than a float tensor.
    ValueError
        If shapes do not fit, the images have no pixels (an empty batch is returned as an empty copy), float
        values lie outside [0, 1], or an id is out of range; or a TF's batched form returns a result of another
        shape or on another device.
    NotImplementedError
        If a sequence uses a TF without a batched form (a custom TF registered without ``batched=``, a wrapped
        Albumentations transform, ...).

    Notes
    -----
    Checking the value range of float images synchronises with the device once per call. User-registered affine
    and point TFs are supported (a point TF without a batched form goes through its 256-entry table on float
    images, linearly interpolated), and so are custom, image and warp TFs given a batched form (see
    :func:`~learned_augment.ops.register_tf`).
    """
    ts = get_tfset(tfset)
    mode = geo.resolve_interpolation(interpolation)
    images = _check_images(images)
    seq = _check_ids(ids, images.shape[0], len(ts))
    if images.shape[0] == 0:  # an empty batch (the last of a sharded epoch) has nothing to transform
        return images.clone()
    h, w = images.shape[-2:]
    u8 = images.dtype == torch.uint8
    plan = _Plan.build(ts, np.unique(seq), h, w, u8)
    seq = reorder(seq, roles(ts))
    if generator is None:
        generator = torch.Generator(device=images.device).manual_seed(_FIXED_SEED)
    with torch.no_grad():
        x = images.to(torch.float32) * _INV255 if u8 else images.to(torch.float32, copy=True)
        run = _Run(x.contiguous(), plan, _Context(generator, u8, colour_channels(int(images.shape[1])), mode))
        for t in range(seq.shape[1]):
            run.step(seq[:, t])
        out = run.finish()
        if u8:
            return torch.round(out.clamp(0.0, 1.0) * 255.0).to(torch.uint8)
        return out.clamp(0.0, 1.0).to(images.dtype)
