"""The batched forms of the built-in TFs: torch twins of the numpy kernels in ``intensity.py`` and ``geometry.py``.

Each is the ``batched`` of its :class:`~learned_augment.ops.base.TF`, with the signature its kind prescribes (see
:mod:`learned_augment.ops.base`): image and point TFs map ``(n, C, H, W)`` float32 images in [0, 1] on any device,
warps build ``(n, H, W, 2)`` source coordinates; magnitudes come as ``(n,)`` float64 numpy arrays (kernel sizes and
the like are decided on the host, without a device round trip); random draws come from the given
``torch.Generator``, on its own device. Semantics follow the numpy kernels; ``batch.py`` rounds uint8 inputs to the
1/255 grid after each one, as the numpy path returns uint8.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F


def col(values: np.ndarray, device: torch.device) -> torch.Tensor:
    """Per-sample magnitudes as an (n, 1, 1, 1) float32 tensor that broadcasts over images."""
    return torch.from_numpy(values.astype(np.float32)).to(device).view(-1, 1, 1, 1)


def pixel_grid(h: int, w: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ys, xs)``, each (H, W) float32 pixel indices."""
    ys = torch.arange(h, device=device, dtype=torch.float32)
    xs = torch.arange(w, device=device, dtype=torch.float32)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return gy, gx


def _randint(high: int, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """``n`` integers in [0, high), drawn on the generator's device and moved to ``device``."""
    return torch.randint(0, high, (n,), generator=generator, device=generator.device).to(device)


# ------------------------------------------------------------------------------------------------ filters


def _correlate(x: torch.Tensor, taps: list[float], dim: int, padding: str) -> torch.Tensor:
    """Correlate ``x`` with the odd-length 1-D kernel ``taps`` along ``dim`` (-1 or -2), as weighted shifted copies.

    ``padding`` is ``"replicate"`` (``cv2.BORDER_REPLICATE``) or ``"constant"`` (zeros, ``cv2.BORDER_CONSTANT``).
    Shifted copies rather than ``conv2d``: single-channel convolutions are ~15x slower on the CPU (oneDNN), and the
    kernels here are short.
    """
    r = len(taps) // 2
    n = x.shape[dim]
    pad = (r, r, 0, 0) if dim == -1 else (0, 0, r, r)
    p = F.pad(x, pad, mode=padding)
    out = p.narrow(dim, 0, n) * taps[0]
    for i in range(1, len(taps)):
        out.add_(p.narrow(dim, i, n), alpha=taps[i])
    return out


def separable(x: torch.Tensor, taps: list[float], padding: str) -> torch.Tensor:
    """Filter (n, C, H, W) with the separable kernel ``taps`` along both axes (rows first, as OpenCV does)."""
    return _correlate(_correlate(x, taps, -1, padding), taps, -2, padding)


def gaussian_taps(sigma: float) -> list[float]:
    """The 1-D kernel ``cv2.GaussianBlur`` uses for float images, with the kernel size rule of ``intensity.blur``."""
    k = max(3, int(2 * math.ceil(3 * sigma) + 1))
    return [float(v) for v in cv2.getGaussianKernel(k, sigma, cv2.CV_32F).ravel()]


# ------------------------------------------------------------------------------------------------ point functions


def posterize(x: torch.Tensor, magnitude: np.ndarray, generator: torch.Generator) -> torch.Tensor:
    step = col(np.array([2.0 ** (8 - int(b)) for b in magnitude]), x.device)
    return torch.floor(torch.round(x * 255.0) / step) * step / 255.0


def brightness(x: torch.Tensor, magnitude: np.ndarray, generator: torch.Generator) -> torch.Tensor:
    return (x * col(magnitude, x.device)).clamp_(0.0, 1.0)


def contrast(x: torch.Tensor, magnitude: np.ndarray, generator: torch.Generator) -> torch.Tensor:
    return ((x - 0.5) * col(magnitude, x.device) + 0.5).clamp_(0.0, 1.0)


def gamma(x: torch.Tensor, magnitude: np.ndarray, generator: torch.Generator) -> torch.Tensor:
    return x.clamp(0.0, 1.0).pow(col(magnitude, x.device))


def solarize(x: torch.Tensor, magnitude: np.ndarray, generator: torch.Generator) -> torch.Tensor:
    return torch.where(x >= col(magnitude, x.device), 1.0 - x, x)


def invert(x: torch.Tensor, magnitude: np.ndarray, generator: torch.Generator) -> torch.Tensor:
    return 1.0 - x


# ------------------------------------------------------------------------------------------------ image ops


def _luma(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma (n, 1, H, W), summed in the same order as ``intensity._gray`` so float32 results agree."""
    return x[:, 0:1] * 0.299 + x[:, 1:2] * 0.587 + x[:, 2:3] * 0.114


def color(x: torch.Tensor, magnitude: np.ndarray, generator: torch.Generator) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    g = _luma(x)
    return (g + col(magnitude, x.device) * (x - g)).clamp_(0.0, 1.0)


# OpenCV's HSV -> RGB sector table: for each sector, which of (v, p, q, t) become (b, g, r).
_SECTOR_BGR = np.array([[1, 3, 0], [1, 0, 2], [3, 0, 1], [0, 2, 1], [0, 1, 3], [2, 1, 0]])


def _rgb_to_hsv(x: torch.Tensor, shift: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """OpenCV's float ``COLOR_RGB2HSV`` (hue in degrees) then the hue shift of ``intensity.hue``.

    Returns hue in sextants [0, 6), saturation and value, each (n, H, W).
    """
    eps = float(np.finfo(np.float32).eps)
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    v = torch.maximum(torch.maximum(r, g), b)
    diff = v - torch.minimum(torch.minimum(r, g), b)
    s = diff / (v.abs() + eps)
    k = 60.0 / (diff + eps)
    h = torch.where(v == r, (g - b) * k, torch.where(v == g, (b - r) * k + 120.0, (r - g) * k + 240.0))
    h = torch.where(h < 0, h + 360.0, h)
    h = torch.remainder(h + col(shift * 360.0, x.device).view(-1, 1, 1), 360.0)
    return h * (6.0 / 360.0), s, v


def _hsv_to_rgb(h6: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """OpenCV's ``HSV2RGB`` on (n, H, W) hue in sextants, saturation and value in [0, 1]; returns (n, 3, H, W)."""
    h6 = torch.fmod(h6, 6.0)
    sector = torch.floor(h6)
    f = h6 - sector
    bad = (sector < 0) | (sector >= 6)
    sector = torch.where(bad, torch.zeros_like(sector), sector).long()
    f = torch.where(bad, torch.zeros_like(f), f)
    tab = torch.stack((v, v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f))), dim=1)
    rgb_from = torch.from_numpy(_SECTOR_BGR[:, ::-1].copy()).to(h6.device)
    index = rgb_from[sector].permute(0, 3, 1, 2)
    return tab.gather(1, index)


def hue(x: torch.Tensor, magnitude: np.ndarray, generator: torch.Generator) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    return _hsv_to_rgb(*_rgb_to_hsv(x, magnitude)).clamp_(0.0, 1.0)


def equalize(x: torch.Tensor, magnitude: np.ndarray, generator: torch.Generator) -> torch.Tensor:
    """``cv2.equalizeHist`` per channel, on the image rounded to uint8 as ``intensity.equalize`` does."""
    n, c, h, w = x.shape
    rows = n * c
    q = torch.round(x.clamp(0.0, 1.0) * 255.0).long().reshape(rows, h * w)
    offsets = torch.arange(rows, device=x.device).view(-1, 1) * 256
    hist = torch.bincount((q + offsets).reshape(-1), minlength=rows * 256).view(rows, 256)
    cdf = hist.cumsum(1)
    # OpenCV maps the darkest present value to 0 and scales the rest of the cumulative histogram to 255.
    first = (hist > 0).to(torch.uint8).argmax(1, keepdim=True)
    lowest = hist.gather(1, first)
    scale = 255.0 / (h * w - lowest).to(torch.float32)
    lut = torch.round((cdf - lowest).to(torch.float32) * scale)
    identity = torch.arange(256, device=x.device, dtype=torch.float32).expand(rows, 256)
    lut = torch.where(lowest == h * w, identity, lut)
    return (lut.gather(1, q) / 255.0).reshape(x.shape)


def autocontrast(x: torch.Tensor, magnitude: np.ndarray, generator: torch.Generator) -> torch.Tensor:
    lo = x.amin(dim=(2, 3), keepdim=True)
    hi = x.amax(dim=(2, 3), keepdim=True)
    spread = hi > lo
    scale = 1.0 / torch.where(spread, hi - lo, torch.ones_like(hi))
    return torch.where(spread, (x - lo) * scale, x).clamp_(0.0, 1.0)


def sharpness(x: torch.Tensor, magnitude: np.ndarray, generator: torch.Generator) -> torch.Tensor:
    # intensity._SMOOTH is [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13: a 3x3 box sum plus 4 times the centre.
    box = separable(x, [1.0, 1.0, 1.0], "replicate")
    smooth = box.add_(x, alpha=4.0).mul_(1.0 / 13.0)
    return (smooth + col(magnitude, x.device) * (x - smooth)).clamp_(0.0, 1.0)


def blur(x: torch.Tensor, magnitude: np.ndarray, generator: torch.Generator) -> torch.Tensor:
    out = x.clone()
    # Kernel size depends on sigma, so samples are filtered in groups of equal sigma (usually one group).
    for sigma in np.unique(magnitude):
        if sigma <= 0:
            continue
        sel = torch.from_numpy(np.flatnonzero(magnitude == sigma)).to(x.device)
        out[sel] = separable(x[sel], gaussian_taps(float(sigma)), "replicate")
    return out


NOISE_CHANNELS = 3
"""Channels' worth of noise drawn for every image, grey or RGB, on both executors (``intensity.noise`` too)."""


def noise(x: torch.Tensor, magnitude: np.ndarray, generator: torch.Generator) -> torch.Tensor:
    # Drawn on the generator's device, which may differ from the images'; NOISE_CHANNELS channels' worth whatever
    # the images have, so that grey and RGB batches of one sample leave the generator at one point.
    n, c, h, w = x.shape
    shape = (n, max(c, NOISE_CHANNELS), h, w)
    draws = torch.randn(shape, generator=generator, device=generator.device)[:, :c].to(x.device)
    return (x + col(magnitude, x.device) * draws).clamp_(0.0, 1.0)


def cutout(x: torch.Tensor, magnitude: np.ndarray, generator: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    # Python's round, as intensity.cutout sizes its square; a non-positive size cuts nothing.
    sides = [max(1, int(round(float(m) * min(h, w)))) if m > 0 else 0 for m in magnitude]
    side = torch.tensor(sides, device=x.device).view(-1, 1)
    cy = _randint(h, n, generator, x.device).view(-1, 1)
    cx = _randint(w, n, generator, x.device).view(-1, 1)
    top, left = cy - side // 2, cx - side // 2
    rows = torch.arange(h, device=x.device).view(1, -1)
    cols = torch.arange(w, device=x.device).view(1, -1)
    in_rows = (rows >= top) & (rows < top + side)
    in_cols = (cols >= left) & (cols < left + side)
    square = in_rows[:, :, None] & in_cols[:, None, :]
    return x.masked_fill(square[:, None], 0.0)


def _cross_extreme(x: torch.Tensor, reduce: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Grey erosion / dilation with a 3x3 cross and replicated border: extreme of the pixel and its 4 neighbours."""
    h, w = x.shape[-2:]
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    out = p[..., 1 : h + 1, 1 : w + 1]
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        out = reduce(out, p[..., dy : dy + h, dx : dx + w])
    return out


def erosion(x: torch.Tensor, magnitude: np.ndarray, generator: torch.Generator) -> torch.Tensor:
    return _cross_extreme(x, torch.minimum)


def dilation(x: torch.Tensor, magnitude: np.ndarray, generator: torch.Generator) -> torch.Tensor:
    return _cross_extreme(x, torch.maximum)


# ------------------------------------------------------------------------------------------------ warps


def swirl(magnitude: np.ndarray, h: int, w: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """``geometry.swirl_warp``'s maps for per-sample strengths (radians)."""
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    gy, gx = pixel_grid(h, w, device)
    dx, dy = gx - cx, gy - cy
    rho = torch.sqrt(dx * dx + dy * dy)
    decay = 100.0 / 5.0 * math.log(2.0)
    theta = torch.atan2(dy, dx) + col(magnitude, device).view(-1, 1, 1) * torch.exp(-rho / decay)
    return torch.stack((cx + rho * torch.cos(theta), cy + rho * torch.sin(theta)), dim=-1)


def smooth_fields(fields: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Gaussian-smooth (n, 2, H, W) displacement noise with zero padding, as ``geometry.elastic_warp`` does."""
    return separable(fields, gaussian_taps(sigma), "constant")


def elastic(magnitude: np.ndarray, h: int, w: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """``geometry.elastic_warp``: uniform [-1, 1] fields, smoothed (sigma 1), times alpha pixels, per sample."""
    uniform = torch.rand((len(magnitude), 2, h, w), generator=generator, device=generator.device).to(device)
    d = smooth_fields(uniform * 2.0 - 1.0) * col(magnitude, device)
    gy, gx = pixel_grid(h, w, device)
    return torch.stack((gx + d[:, 0], gy + d[:, 1]), dim=-1)
