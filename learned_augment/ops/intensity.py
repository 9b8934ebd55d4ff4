"""Intensity TFs: point-wise ones (fusable into one look-up table) and other pixel-level operations.

Point functions take float values in [0, 1] and work on numpy arrays of any shape, so the same function builds
uint8 look-up tables, transforms float32 images exactly, and serves the batched torch path's tables.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np
import torch

from . import batch_kernels as bk
from .base import Kind
from .base import register_builtin as _reg
from .image import as_float, like, n_channels, restore_shape, to_uint8

# ------------------------------------------------------------------------------------------------ point functions


def brightness(x: np.ndarray, f: float) -> np.ndarray:
    """PIL ``ImageEnhance.Brightness``: blend with black, i.e. multiply by ``f``."""
    return np.clip(x * f, 0.0, 1.0)


def contrast(x: np.ndarray, f: float) -> np.ndarray:
    """Scale the distance from mid-grey by ``f`` (point-wise, so it fuses into a look-up table)."""
    return np.clip((x - 0.5) * f + 0.5, 0.0, 1.0)


def gamma(x: np.ndarray, g: float) -> np.ndarray:
    if g <= 0:
        raise ValueError(f"gamma must be positive, got {g}")
    return np.power(np.clip(x, 0.0, 1.0), g)


def posterize(x: np.ndarray, bits: float) -> np.ndarray:
    """Keep the ``bits`` most significant bits of each 8-bit value."""
    b = int(bits)
    if not 1 <= b <= 8:
        raise ValueError(f"posterize bits must be in 1..8, got {bits}")
    step = float(2 ** (8 - b))
    return np.floor(np.rint(x * 255.0) / step) * step / 255.0


def solarize(x: np.ndarray, threshold: float) -> np.ndarray:
    """Invert values at or above ``threshold`` (in [0, 1])."""
    return np.where(x >= threshold, 1.0 - x, x)


def invert(x: np.ndarray, _: float | None = None) -> np.ndarray:
    return 1.0 - x


def identity(x: np.ndarray, _: float | None = None) -> np.ndarray:
    """The data unchanged: in a TF set it lets a policy choose shorter sequences (and costs nothing fused)."""
    return x


def point_lut(name: str, magnitude: float | None) -> np.ndarray:
    """The uint8 look-up table of one point TF entry (cached: entries are few and tables are tiny)."""
    from .base import get_tf

    return _lut(get_tf(name).fn, magnitude)


@functools.lru_cache(maxsize=4096)
def _lut(fn, magnitude: float | None) -> np.ndarray:
    # Keyed by the function, not the name: a TF re-registered under the same name must not reuse stale tables.
    grid = np.arange(256, dtype=np.float64) / 255.0
    y = fn(grid, magnitude)
    lut = np.clip(np.rint(np.asarray(y) * 255.0), 0, 255).astype(np.uint8)
    lut.flags.writeable = False
    return lut


# ------------------------------------------------------------------------------------------------ image operations


_LUMA = np.array([0.299, 0.587, 0.114])
"""ITU-R 601 luma weights of R, G and B."""


def color(image: np.ndarray, f: float, rng: np.random.Generator | None = None) -> np.ndarray:
    """PIL ``ImageEnhance.Color``: blend with the grayscale image (``f=0`` grey, ``f=1`` unchanged)."""
    if n_channels(image) == 1:
        return image.copy()
    # g + f * (x - g) with g = luma . x is linear in x: one 3x3 colour matrix, applied (and, for uint8, rounded and
    # saturated) by OpenCV in a single pass.
    m = f * np.eye(3) + (1.0 - f) * _LUMA
    return like(cv2.transform(image, m), image)


def hue(image: np.ndarray, shift: float, rng: np.random.Generator | None = None) -> np.ndarray:
    """Rotate the hue by ``shift`` turns (0.25 = 90 degrees); grayscale images are unchanged."""
    if n_channels(image) == 1:
        return image.copy()
    # uint8 goes through float32 too: OpenCV's 8-bit HSV quantises hue, saturation and value, which moves pixels by
    # up to ~10 grey levels even for a zero shift (and the uint8 and float32 results would disagree as much). uint8
    # stays on the 0..255 scale: hue and saturation do not depend on it, and it saves two scaling passes.
    hsv = cv2.cvtColor(image if image.dtype == np.float32 else image.astype(np.float32), cv2.COLOR_RGB2HSV)
    turn = math.fmod(shift * 360.0, 360.0)
    if turn < 0.0:
        # OpenCV's float HSV -> RGB wraps hues in [360, 720) back into range (its vectorised path does not wrap
        # negative ones), so a negative turn is applied as the equivalent positive one.
        turn += 360.0
    if turn:
        # One contiguous pass over all three channels instead of a strided update of the hue channel.
        hsv = cv2.add(hsv, (turn, 0.0, 0.0, 0.0))  # type: ignore[call-overload]  # a Scalar; the stubs lack it
    out = restore_shape(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), image)
    if image.dtype == np.uint8:
        # convertScaleAbs takes |x|, so values below 0 are clipped first; it rounds and saturates at 255 itself.
        return restore_shape(cv2.convertScaleAbs(np.maximum(out, 0.0, out=out)), image)
    return like(out, image)


def _from_float(result: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """:func:`like` for a float32 ``result``, with OpenCV's single pass for uint8 (rounding half to even)."""
    if reference.dtype == np.uint8:
        # convertScaleAbs takes |x|, so values below 0 are clipped first; it saturates at 255 itself.
        return restore_shape(cv2.convertScaleAbs(np.maximum(result, 0.0, out=result), alpha=255.0), reference)
    return like(result, reference)


def _per_channel_u8(image: np.ndarray, op) -> np.ndarray:
    """Run a uint8 single-channel OpenCV op on each channel; float images go through uint8 and back."""
    u = to_uint8(image)
    if u.ndim == 2 or u.shape[2] == 1:
        out = restore_shape(op(np.ascontiguousarray(u.reshape(u.shape[:2]))), u)
    else:
        out = np.stack([op(np.ascontiguousarray(u[..., c])) for c in range(u.shape[2])], axis=2)
    return out if image.dtype == np.uint8 else out.astype(np.float32) / np.float32(255.0)


def equalize(image: np.ndarray, _: float | None = None, rng: np.random.Generator | None = None) -> np.ndarray:
    """Histogram equalisation per channel."""
    return _per_channel_u8(image, cv2.equalizeHist)


def autocontrast(image: np.ndarray, _: float | None = None, rng: np.random.Generator | None = None) -> np.ndarray:
    """Stretch each channel so its darkest value maps to 0 and its brightest to 1."""
    c = n_channels(image)
    # OpenCV's per-channel min/max is ~100x faster than numpy's reduction over a (H * W, C) view.
    lo, hi = np.array([cv2.minMaxLoc(ch)[:2] for ch in cv2.split(image.reshape(image.shape[0], image.shape[1], c))]).T
    if image.dtype == np.uint8:
        # Only 256 possible values: run the float32 formula on all of them, then look the image up.
        levels = np.arange(256, dtype=np.float32) * np.float32(1.0 / 255.0)
        grid = np.repeat(levels[:, None], c, axis=1)
        lut = to_uint8(_stretch(grid, levels[lo.astype(np.intp)], levels[hi.astype(np.intp)]))
        return restore_shape(cv2.LUT(image, lut.reshape(256, 1, c)), image)
    flat = image.reshape(-1, c)
    return like(_stretch(flat, lo.astype(np.float32), hi.astype(np.float32)).reshape(image.shape), image)


def _stretch(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``(x - lo) / (hi - lo)`` per channel (last axis) in float32; channels with ``hi == lo`` are unchanged."""
    spread = hi > lo
    scale = np.where(spread, 1.0 / np.maximum(hi - lo, 1e-12), 1.0).astype(np.float32)
    return np.where(spread, (x - lo) * scale, x)


_SMOOTH = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], dtype=np.float32) / 13.0


def sharpness(image: np.ndarray, f: float, rng: np.random.Generator | None = None) -> np.ndarray:
    """PIL ``ImageEnhance.Sharpness``: blend with a smoothed copy (``f=0`` smooth, ``f>1`` sharper)."""
    # smooth + f * (x - smooth) is itself a 3x3 convolution of x: one OpenCV pass, on uint8 directly (rounded and
    # saturated by OpenCV), instead of a float copy, a filter and two blends.
    kernel = (1.0 - f) * _SMOOTH
    kernel[1, 1] += f
    out = cv2.filter2D(image, -1, kernel.astype(np.float32), borderType=cv2.BORDER_REPLICATE)
    return like(restore_shape(out, image), image)


def blur(image: np.ndarray, sigma: float, rng: np.random.Generator | None = None) -> np.ndarray:
    """Gaussian blur with standard deviation ``sigma`` pixels."""
    if sigma <= 0:
        return image.copy()
    k = max(3, int(2 * math.ceil(3 * sigma) + 1))
    out = cv2.GaussianBlur(image, (k, k), sigma, borderType=cv2.BORDER_REPLICATE)
    # like() clips float32: the kernel's weights sum to 1 only up to rounding, so a white image can reach 1 + 1e-7.
    return like(out, image)


def noise(image: np.ndarray, std: float, rng: np.random.Generator | None = None) -> np.ndarray:
    """Additive Gaussian noise with standard deviation ``std`` (on the [0, 1] scale).

    Values come from 2^16 equiprobable normal quantiles (cut at 4.3 standard deviations). A grey image gets the
    first channel of the noise an RGB image of its size gets from the same generator state.
    """
    gen = rng if rng is not None else np.random.default_rng(0)
    xf = as_float(image)
    # Inverse-CDF sampling from 2**16 equiprobable normal quantiles (tails cut at 4.3 sigma): 16 random bits per
    # value and one table look-up, about 3x faster than the generator's own normal draws (measured at 224x224).
    # Draws for NOISE_CHANNELS channels whatever the image has (a grey one takes the first), so that the grey and
    # RGB images of one sample leave the generator at one point and a random TF after the noise draws alike.
    h, w = xf.shape[:2]
    c = n_channels(xf)
    drawn = max(c, bk.NOISE_CHANNELS)
    bits = np.frombuffer(gen.bytes(2 * h * w * drawn), dtype=np.uint16).reshape(h, w, drawn)[:, :, :c]
    n = _normal_quantiles().take(bits).reshape(xf.shape)
    n *= np.float32(std)
    xf += n
    return _from_float(xf, image)


@functools.cache
def _normal_quantiles() -> np.ndarray:
    """The 2**16 quantiles ``Phi^-1((i + 0.5) / 2**16)`` as float32 (mean 0, standard deviation 0.99999)."""
    p = (torch.arange(2**16, dtype=torch.float64) + 0.5) / 2**16
    q = torch.special.ndtri(p).to(torch.float32).numpy()
    q.flags.writeable = False
    return q


def cutout(image: np.ndarray, size: float, rng: np.random.Generator | None = None) -> np.ndarray:
    """Zero a square of side ``size * min(H, W)`` at a random position (it may be clipped by the border)."""
    if size <= 0:
        return image.copy()
    gen = rng if rng is not None else np.random.default_rng(0)
    h, w = image.shape[:2]
    side = max(1, int(round(size * min(h, w))))
    cy, cx = int(gen.integers(0, h)), int(gen.integers(0, w))
    out = image.copy()
    out[max(0, cy - side // 2) : cy - side // 2 + side, max(0, cx - side // 2) : cx - side // 2 + side] = 0
    return out


_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


def erosion(image: np.ndarray, _: float | None = None, rng: np.random.Generator | None = None) -> np.ndarray:
    """Grey-level erosion with a 3x3 cross (skimage's default footprint, as in TANDA)."""
    return restore_shape(cv2.erode(image, _CROSS, borderType=cv2.BORDER_REPLICATE), image)


def dilation(image: np.ndarray, _: float | None = None, rng: np.random.Generator | None = None) -> np.ndarray:
    """Grey-level dilation with a 3x3 cross."""
    return restore_shape(cv2.dilate(image, _CROSS, borderType=cv2.BORDER_REPLICATE), image)


# Identity needs no batched form: float images go through its (identity) look-up table.
_reg("brightness", Kind.POINT, brightness, bk.brightness, valid=(0.0, 100.0), description="multiply intensities by f")
_reg("contrast", Kind.POINT, contrast, bk.contrast, valid=(0.0, 100.0), description="scale distance from mid-grey by f")
_reg("gamma", Kind.POINT, gamma, bk.gamma, valid=(0.01, 100.0), description="x ** g")
_reg("posterize", Kind.POINT, posterize, bk.posterize, valid=(1.0, 8.0), description="keep the top bits of each value")
_reg(
    "solarize",
    Kind.POINT,
    solarize,
    bk.solarize,
    valid=(0.0, 1.0),
    description="invert values above a threshold in [0, 1]",
)
_reg("identity", Kind.POINT, identity, None, takes_magnitude=False, description="leave the image unchanged")
_reg("invert", Kind.POINT, invert, bk.invert, takes_magnitude=False, description="1 - x")
_reg(
    "color",
    Kind.IMAGE,
    color,
    bk.color,
    pixelwise=True,
    valid=(0.0, 100.0),
    description="saturation: blend with grayscale by f",
)
_reg(
    "hue",
    Kind.IMAGE,
    hue,
    bk.hue,
    signed=True,
    pixelwise=True,
    valid=(-1.0, 1.0),
    description="rotate hue by a fraction of a full turn",
)
_reg("equalize", Kind.IMAGE, equalize, bk.equalize, takes_magnitude=False, description="histogram equalisation")
_reg(
    "autocontrast",
    Kind.IMAGE,
    autocontrast,
    bk.autocontrast,
    takes_magnitude=False,
    description="stretch to full range",
)
_reg(
    "sharpness",
    Kind.IMAGE,
    sharpness,
    bk.sharpness,
    valid=(0.0, 100.0),
    description="blend with a smoothed copy by f",
)
_reg("blur", Kind.IMAGE, blur, bk.blur, valid=(0.0, 50.0), description="Gaussian blur, sigma in pixels")
_reg(
    "noise",
    Kind.IMAGE,
    noise,
    bk.noise,
    rng=True,
    valid=(0.0, 1.0),
    description="additive Gaussian noise, std on [0, 1] scale",
)
_reg(
    "cutout",
    Kind.IMAGE,
    cutout,
    bk.cutout,
    rng=True,
    valid=(0.0, 1.0),
    description="zero a random square, side as a fraction of size",
)
_reg("erosion", Kind.IMAGE, erosion, bk.erosion, takes_magnitude=False, description="grey erosion, 3x3 cross")
_reg("dilation", Kind.IMAGE, dilation, bk.dilation, takes_magnitude=False, description="grey dilation, 3x3 cross")
