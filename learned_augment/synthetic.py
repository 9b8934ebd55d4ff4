"""A free, fully labeled synthetic source: digits drawn with OpenCV's Hershey fonts.

It stands in for rendered 3D data in the MR-GAN setting: unlimited and exactly labeled, but visibly not from the
real domain (vector-font strokes of even width, no pen pressure). Each image is drawn large, moved by one affine
warp (slant, rotation, scale, position) and reduced with area interpolation, which anti-aliases the strokes the
way MNIST's scanning did. White digits on black, centred in a box like MNIST's 20x20-in-28x28 layout.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

FONTS: tuple[int, ...] = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_PLAIN,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_COMPLEX_SMALL,
    cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
    cv2.FONT_HERSHEY_SCRIPT_COMPLEX,
)
_SUPERSAMPLE = 4


def render_digits(
    n: int,
    size: int = 28,
    seed: int = 0,
    *,
    digits: Sequence[int] = tuple(range(10)),
    fonts: Sequence[int] = FONTS,
    italic: float = 0.25,
    stroke: tuple[float, float] = (1.5, 3.5),
    height: tuple[float, float] = (0.6, 0.75),
    aspect: tuple[float, float] = (0.8, 1.2),
    slant: float = 0.3,
    rotation: float = 10.0,
    jitter: float = 0.06,
    blur: float = 0.6,
    noise: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Render ``n`` labeled digits.

    Parameters
    ----------
    n:
        Number of images. Labels cycle through ``digits`` in a shuffled order, so classes are balanced to within one.
    size:
        Side of the square output images, at least 8.
    seed:
        Every random draw comes from ``numpy.random.default_rng(seed)``: the same arguments give the same images.
    digits:
        The classes to draw (each in 0..9); the label is the digit itself.
    fonts:
        OpenCV Hershey font ids to pick from uniformly.
    italic:
        Probability of OpenCV's italic variant of the font.
    stroke:
        Range of the stroke width in output pixels.
    height:
        Range of the glyph height as a fraction of ``size`` (MNIST digits are about 20/28 = 0.71 tall).
    aspect:
        Range of the horizontal stretch applied to the glyph.
    slant:
        Maximum absolute horizontal shear (0.3 moves the top of a glyph 0.3 of its height sideways).
    rotation:
        Maximum absolute rotation in degrees.
    jitter:
        Maximum absolute shift of the glyph's centre, as a fraction of ``size``.
    blur:
        Maximum sigma (output pixels) of a Gaussian blur drawn uniformly per image; 0 disables.
    noise:
        Maximum standard deviation (grey levels) of additive Gaussian noise drawn uniformly per image; 0 disables.

    Returns
    -------
    images:
        ``(n, size, size)`` uint8, white (255) digits on black (0).
    labels:
        ``(n,)`` int64.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer; got {n!r}")
    if size < 8:
        raise ValueError(f"size must be at least 8; got {size}")
    digits = [int(d) for d in digits]
    if not digits or any(not 0 <= d <= 9 for d in digits):
        raise ValueError(f"digits must be a non-empty selection of 0..9; got {digits}")
    if not fonts:
        raise ValueError("fonts must name at least one OpenCV Hershey font")
    for name, (lo, hi) in (("stroke", stroke), ("height", height), ("aspect", aspect)):
        if not 0 < lo <= hi:
            raise ValueError(f"{name} must be a range (low, high) with 0 < low <= high; got {(lo, hi)}")

    rng = np.random.default_rng(seed)
    # Draw every parameter up front, vectorised: the per-image loop then only draws with OpenCV.
    labels = np.asarray(digits, dtype=np.int64)[rng.permutation(n) % len(digits)]
    font = np.asarray(fonts)[rng.integers(0, len(fonts), n)] | np.where(rng.random(n) < italic, cv2.FONT_ITALIC, 0)
    stroke_px = rng.uniform(*stroke, n)
    glyph_h = rng.uniform(*height, n) * size
    stretch = rng.uniform(*aspect, n)
    shear = rng.uniform(-slant, slant, n)
    angle = np.deg2rad(rng.uniform(-rotation, rotation, n))
    shift = rng.uniform(-jitter, jitter, (n, 2)) * size
    sigma = rng.uniform(0.0, blur, n)
    noise_sd = rng.uniform(0.0, noise, n)

    big = size * _SUPERSAMPLE
    canvas = np.zeros((big, big), np.uint8)
    images = np.empty((n, size, size), np.uint8)
    for i in range(n):
        canvas[:] = 0
        text = str(labels[i])
        f = int(font[i])
        # Draw at about the final glyph height so the placement warp hardly rescales the strokes.
        (_, base_h), _ = cv2.getTextSize(text, f, 1.0, 1)
        scale = glyph_h[i] * _SUPERSAMPLE / max(base_h, 1)
        (w, h), _ = cv2.getTextSize(text, f, scale, 1)
        cv2.putText(canvas, text, ((big - w) // 2, (big + h) // 2), f, scale, 255, 1, cv2.LINE_AA)
        _set_stroke(canvas, stroke_px[i] * _SUPERSAMPLE)
        x, y, bw, bh = cv2.boundingRect(canvas)
        if bw == 0 or bh == 0:
            raise RuntimeError(f"font {f} drew nothing for {text!r}")
        warp = _placement(x + bw / 2, y + bh / 2, bw, bh, glyph_h[i], stretch[i], shear[i], angle[i], shift[i], size)
        drawn = cv2.warpAffine(canvas, warp, (big, big), flags=cv2.INTER_LINEAR, borderValue=0)
        img = cv2.resize(drawn, (size, size), interpolation=cv2.INTER_AREA)
        if sigma[i] > 0.05:
            img = cv2.GaussianBlur(img, (0, 0), float(sigma[i]))
        if noise_sd[i] > 0:
            noisy = img.astype(np.float32) + rng.normal(0.0, noise_sd[i], img.shape).astype(np.float32)
            img = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
        images[i] = img
    return images, labels


def _set_stroke(canvas: np.ndarray, width: float) -> None:
    """Thicken or thin the glyph on ``canvas`` in place so its strokes are about ``width`` pixels wide.

    The font's own stroke width differs between fonts and OpenCV versions (OpenCV 5 draws its built-in outline
    font for the Hershey ids, and ``thickness`` only switches it to bold), so it is measured, not assumed: twice the
    distance from the stroke's centre line to its edge, read from the distance transform.
    """
    dist = cv2.distanceTransform((canvas > 127).astype(np.uint8), cv2.DIST_L2, 3)
    ink = dist[dist > 0]
    if ink.size == 0:
        return
    delta = width - 2.0 * float(np.percentile(ink, 95))
    k = int(round(abs(delta)))
    if k < 1:
        return
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k + 1, k + 1))
    op = cv2.dilate if delta > 0 else cv2.erode
    canvas[:] = op(canvas, kernel)


def _placement(
    cx: float,
    cy: float,
    bw: int,
    bh: int,
    glyph_h: float,
    stretch: float,
    shear: float,
    angle: float,
    shift: np.ndarray,
    size: int,
) -> np.ndarray:
    """The (2, 3) supersampled-canvas affine map that sizes, slants, turns and places one glyph."""
    s = glyph_h * _SUPERSAMPLE / bh
    # Slant and stretch widen the glyph; keep it inside the central 85% so no stroke is cut at the border.
    width = (bw * stretch + abs(shear) * bh) * s
    s *= min(1.0, 0.85 * size * _SUPERSAMPLE / width)
    scale = np.diag([s * stretch, s])
    slant = np.array([[1.0, -shear], [0.0, 1.0]])  # image y grows downward: a positive shear leans right
    c, si = np.cos(angle), np.sin(angle)
    turn = np.array([[c, -si], [si, c]])
    a = turn @ slant @ scale
    centre = (np.array([size / 2, size / 2]) + shift) * _SUPERSAMPLE
    t = centre - a @ np.array([cx, cy])
    return np.hstack([a, t[:, None]]).astype(np.float64)
