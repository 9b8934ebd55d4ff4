"""Geometric TFs (affine and non-affine warps) and how they move images, masks, boxes and keypoints.

Coordinates: matrices and warps work in pixel-*index* space (pixel centres at integers, as OpenCV resamples).
Keypoints use the same index space, as torchvision's ``KeyPoints`` and Albumentations do (a horizontal flip maps
x to ``W - 1 - x``). Boxes use continuous pixel space (pixel ``i`` spans ``[i, i + 1)``, a flip maps x to
``W - x``, as pascal_voc and torchvision's XYXY), so their outlines are shifted by half a pixel on the way in and
out. Borders are replicated ("edge" mode, as in the TANDA reference code): black or mirrored borders are exactly
the artefacts a discriminator learns to spot.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import cv2
import numpy as np

from . import batch_kernels as bk
from .base import Kind, Warp
from .base import register_builtin as _reg
from .image import restore_shape

BORDER = cv2.BORDER_REPLICATE

INTERPOLATIONS = ("bilinear", "nearest")
"""Image resampling modes of the geometric TFs (masks are always resampled with nearest)."""

_CV2_INTERPOLATION = {"bilinear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST}


def resolve_interpolation(interpolation: object) -> str:
    """``"bilinear"`` or ``"nearest"`` from a string (any case; ``"linear"`` too), a torchvision
    ``InterpolationMode``, a PIL ``Image.Resampling`` member, or an OpenCV flag (plain integers are read as OpenCV
    flags, as Albumentations does: ``cv2.INTER_NEAREST`` = 0, ``cv2.INTER_LINEAR`` = 1).

    Raises
    ------
    ValueError
        For any other mode (e.g. bicubic), naming the accepted ones.
    """
    resampling = _pil_resampling()
    if isinstance(interpolation, str):
        mode = interpolation.lower()
    elif resampling is not None and isinstance(interpolation, resampling):
        # An IntEnum whose numbers mean something else than OpenCV's (PIL's BILINEAR is 2, OpenCV's INTER_CUBIC).
        mode = str(getattr(interpolation, "name", "")).lower()
    elif isinstance(interpolation, (int, np.integer)) and not isinstance(interpolation, (bool, np.bool_)):
        interpolation = int(interpolation)
        # OpenCV / Albumentations flags: cv2.INTER_NEAREST == 0, cv2.INTER_LINEAR == 1.
        mode = {cv2.INTER_NEAREST: "nearest", cv2.INTER_LINEAR: "bilinear"}.get(interpolation, repr(interpolation))
    else:
        # torchvision's InterpolationMode is an Enum whose value is "nearest", "bilinear", ...
        mode = str(getattr(interpolation, "value", interpolation)).lower()
    if mode == "linear":
        mode = "bilinear"
    if mode not in INTERPOLATIONS:
        hint = ""
        if type(interpolation) is int:
            # Pillow's plain-int constants (Image.BILINEAR == 2) collide with OpenCV's numbers.
            hint = " (plain integers are OpenCV flags; for PIL pass Image.Resampling.BILINEAR or .NEAREST)"
        raise ValueError(
            f"interpolation must be 'bilinear' or 'nearest' (or torchvision's InterpolationMode / cv2.INTER_LINEAR, "
            f"cv2.INTER_NEAREST), got {interpolation!r}{hint}"
        )
    return mode


def _centre(h: int, w: int) -> tuple[float, float]:
    return (w - 1) / 2.0, (h - 1) / 2.0


def _about_centre(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """Conjugate a linear map ``a`` (2x2) so it acts about the image centre; returns a 3x3 matrix."""
    cx, cy = _centre(h, w)
    m = np.eye(3)
    m[:2, :2] = a
    m[:2, 2] = np.array([cx, cy]) - a @ np.array([cx, cy])
    return m


def rotate_matrix(degrees: float, h: int, w: int) -> np.ndarray:
    """Counter-clockwise rotation (y axis pointing down, as torchvision and PIL)."""
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    return _about_centre(np.array([[c, s], [-s, c]]), h, w)


def shear_x_matrix(s: float, h: int, w: int) -> np.ndarray:
    return _about_centre(np.array([[1.0, s], [0.0, 1.0]]), h, w)


def shear_y_matrix(s: float, h: int, w: int) -> np.ndarray:
    return _about_centre(np.array([[1.0, 0.0], [s, 1.0]]), h, w)


def zoom_matrix(z: float, h: int, w: int) -> np.ndarray:
    """Scale about the centre; ``z > 1`` zooms in."""
    if z <= 0:
        raise ValueError(f"zoom factor must be positive, got {z}")
    return _about_centre(np.array([[z, 0.0], [0.0, z]]), h, w)


def translate_x_matrix(f: float, h: int, w: int) -> np.ndarray:
    """Shift right by ``f`` times the width."""
    m = np.eye(3)
    m[0, 2] = f * w
    return m


def translate_y_matrix(f: float, h: int, w: int) -> np.ndarray:
    m = np.eye(3)
    m[1, 2] = f * h
    return m


def hflip_matrix(_: float | None, h: int, w: int) -> np.ndarray:
    return np.array([[-1.0, 0.0, w - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def vflip_matrix(_: float | None, h: int, w: int) -> np.ndarray:
    return np.array([[1.0, 0.0, 0.0], [0.0, -1.0, h - 1.0], [0.0, 0.0, 1.0]])


def swirl_warp(strength: float, h: int, w: int, rng: np.random.Generator, radius: float = 100.0) -> Warp:
    """skimage-style swirl about the centre: rotation by ``strength * exp(-rho / r)`` radians, r = radius*ln2/5.

    Radii are preserved, so the forward map for points is the exact inverse (rotate by the opposite angle).
    """
    cx, cy = _centre(h, w)
    decay = radius / 5.0 * math.log(2.0)
    map_x, map_y, map_xy = _swirl_maps(float(strength), int(h), int(w), float(radius))

    def forward(pts: np.ndarray) -> np.ndarray:
        px, py = pts[:, 0] - cx, pts[:, 1] - cy
        r = np.sqrt(px * px + py * py)
        t = np.arctan2(py, px) - strength * np.exp(-r / decay)
        return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)

    return Warp(map_x, map_y, forward, map_xy)


# 16 maps cover every swirl entry of a named set at one image size; more would hold hundreds of MB per worker
# for large images.
@functools.lru_cache(maxsize=16)
def _swirl_maps(strength: float, h: int, w: int, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # A TF set holds a few swirl strengths and images come in a few sizes, so the maps are built once each; they
    # are shared between calls, hence read-only.
    cx, cy = _centre(h, w)
    decay = radius / 5.0 * math.log(2.0)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = xs - cx, ys - cy
    rho = np.sqrt(dx * dx + dy * dy)
    theta = np.arctan2(dy, dx) + np.float32(strength) * np.exp(-rho / np.float32(decay))
    map_x = (cx + rho * np.cos(theta)).astype(np.float32)
    map_y = (cy + rho * np.sin(theta)).astype(np.float32)
    map_xy = np.dstack((map_x, map_y))
    for a in (map_x, map_y, map_xy):
        a.flags.writeable = False
    return map_x, map_y, map_xy


def elastic_warp(alpha: float, h: int, w: int, rng: np.random.Generator, sigma: float = 1.0) -> Warp:
    """Simard et al. (2003) elastic deformation: uniform noise in [-1, 1], Gaussian-smoothed, times ``alpha`` pixels.

    Destination pixel p samples source p + d(p); points move by the fixed-point inverse q = p - d(q).
    """
    noise = rng.uniform(-1.0, 1.0, size=(2, h, w)).astype(np.float32)
    k = max(3, int(2 * math.ceil(3 * sigma) + 1))
    dx = cv2.GaussianBlur(noise[0], (k, k), sigma, borderType=cv2.BORDER_CONSTANT) * np.float32(alpha)
    dy = cv2.GaussianBlur(noise[1], (k, k), sigma, borderType=cv2.BORDER_CONSTANT) * np.float32(alpha)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    map_x, map_y = xs + dx, ys + dy

    def forward(pts: np.ndarray) -> np.ndarray:
        q = pts.astype(np.float32).copy()
        for _ in range(5):
            qx = np.clip(q[:, 0], 0, w - 1).reshape(-1, 1).astype(np.float32)
            qy = np.clip(q[:, 1], 0, h - 1).reshape(-1, 1).astype(np.float32)
            ddx = cv2.remap(dx, qx, qy, cv2.INTER_LINEAR, borderMode=BORDER).ravel()
            ddy = cv2.remap(dy, qx, qy, cv2.INTER_LINEAR, borderMode=BORDER).ravel()
            q = np.stack([pts[:, 0] - ddx, pts[:, 1] - ddy], axis=1)
        return q.astype(np.float64)

    return Warp(map_x, map_y, forward)


# ---------------------------------------------------------------------------------------------------------------
# Resampling images and moving targets


_IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _pil_resampling() -> type | None:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with torchvision
        return None
    return Image.Resampling


def warp_affine_image(image: np.ndarray, m: np.ndarray, interpolation: str = "bilinear") -> np.ndarray:
    """Resample ``image`` under forward matrix ``m`` (3x3), replicated borders.

    ``interpolation`` is ``"bilinear"`` or ``"nearest"`` (this warp about 4x faster at 224x224, and blockier).
    """
    h, w = image.shape[:2]
    # Flips and the identity are recognised on the six numbers as plain floats: numpy's comparisons cost more than
    # the warp itself on small images.
    a = m[:2].ravel().tolist()
    if a == [-1.0, 0.0, w - 1.0, 0.0, 1.0, 0.0]:
        return restore_shape(cv2.flip(image, 1), image)
    if a == [1.0, 0.0, 0.0, 0.0, -1.0, h - 1.0]:
        return restore_shape(cv2.flip(image, 0), image)
    # np.allclose(a, identity, atol=1e-9) with its default rtol of 1e-5.
    if all(abs(x - y) <= 1e-9 + 1e-5 * abs(y) for x, y in zip(a, _IDENTITY)):
        return image.copy()
    out = cv2.warpAffine(image, m[:2], (w, h), flags=_CV2_INTERPOLATION[interpolation], borderMode=BORDER)
    return restore_shape(out, image)


def mask_mover(resample: Callable[[np.ndarray], np.ndarray], like: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """``move(mask)``: moves masks to the pixels that nearest resampling of the image ``like`` takes.

    OpenCV breaks ties and near-ties (coordinates half-way between two pixels, as a zoom makes on even sizes)
    differently in its fixed-point warp and in its IPP one, which it picks by the image's dtype. No rounding rule
    written here would match every build, so the source pixels are found by ``resample``-ing images of ``like``'s
    dtype and channel count that hold each pixel's own flat index.

    Parameters
    ----------
    resample:
        One geometric step with nearest resampling, e.g. ``partial(warp_affine_image, m=m, interpolation="nearest")``.
    like:
        The image the masks belong to: ``(H, W)`` or ``(H, W, C)``, uint8 or float32.

    Returns
    -------
    ``move``, taking a ``(H, W, ...)`` mask of any dtype to a new one of the same shape and dtype. The source pixels
    are found on its first call only, and shared by the masks after it.
    """
    h, w = like.shape[:2]
    found: list[np.ndarray] = []

    def move(mask: np.ndarray) -> np.ndarray:
        if not found:
            found.append(_source_pixels(resample, like))
        return mask.reshape(h * w, *mask.shape[2:])[found[0]]

    return move


def _source_pixels(resample: Callable[[np.ndarray], np.ndarray], like: np.ndarray) -> np.ndarray:
    """``(H, W)`` intp: the flat index of the pixel that ``resample`` takes each output pixel of ``like`` from."""
    h, w = like.shape[:2]
    channels = 1 if like.ndim == 2 else like.shape[2]
    # float32 holds every integer up to 2**24 exactly; the index is written in as many digits as it needs.
    base = 256 if like.dtype == np.uint8 else 1 << 24
    count = 1
    while base**count < h * w:
        count += 1
    index = np.arange(h * w, dtype=np.int64).reshape(h, w)
    digits = [(index // base**k % base).astype(like.dtype) for k in range(count)]
    digits += [np.zeros_like(digits[0])] * (-count % channels)
    src = np.zeros((h, w), dtype=np.intp)
    for first in range(0, len(digits), channels):
        out = resample(np.dstack(digits[first : first + channels])).reshape(h, w, channels)
        for c in range(channels):
            src += out[..., c].astype(np.intp) * base ** (first + c)
    return src


def warp_image(image: np.ndarray, warp: Warp, interpolation: str = "bilinear") -> np.ndarray:
    flags = _CV2_INTERPOLATION[interpolation]
    if warp.map_xy is not None:
        out = cv2.remap(image, warp.map_xy, None, interpolation=flags, borderMode=BORDER)  # type: ignore[call-overload]
    else:
        out = cv2.remap(image, warp.map_x, warp.map_y, interpolation=flags, borderMode=BORDER)
    return restore_shape(out, image)


def compose_geometry(steps: list[np.ndarray | Warp], h: int, w: int) -> Warp:
    """One :class:`Warp` doing ``steps`` (3x3 forward matrices and warps, in order) with a single resampling.

    The source of each destination pixel is found by pulling its coordinates back through the steps. The map is
    built forward, one OpenCV call per step: a later warp or matrix resamples the coordinate map of the steps
    before it (bilinear, replicated border: coordinates are clamped to the image between steps, as an intermediate
    image's replicated border did when the steps were resampled one by one), and a leading matrix is applied to
    the coordinates exactly. Points move forward through every step.
    """
    lead = None if isinstance(steps[0], Warp) else steps[0]
    coords: np.ndarray | None = None
    for step in steps[1:] if lead is not None else steps:
        if isinstance(step, Warp):
            m = step.map_xy if step.map_xy is not None else np.dstack((step.map_x, step.map_y))
            coords = m if coords is None else cv2.remap(coords, m, None, cv2.INTER_LINEAR, borderMode=BORDER)  # type: ignore[call-overload]
        elif coords is None:  # only when the first step is a warp-less matrix, which ``lead`` takes
            raise ValueError("consecutive matrices must be multiplied into one step before composing")
        else:
            coords = cv2.warpAffine(coords, step[:2], (w, h), flags=cv2.INTER_LINEAR, borderMode=BORDER)
    if coords is None:
        raise ValueError("compose_geometry needs at least one warp; resample a matrix with warp_affine_image")
    if lead is not None:
        clamped = np.clip(coords, 0.0, np.array([w - 1.0, h - 1.0], dtype=np.float32))
        coords = cv2.transform(clamped, np.linalg.inv(lead)[:2])
    elif not coords.flags.writeable:
        coords = coords.copy()

    def forward(pts: np.ndarray) -> np.ndarray:
        for step in steps:
            pts = warp_points(pts, step) if isinstance(step, Warp) else affine_points(pts, step)
        return pts

    return Warp(coords[..., 0], coords[..., 1], forward, coords)


def affine_points(pts: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Apply a 3x3 forward matrix to ``(N, 2)`` points in pixel-index space (keypoints' convention)."""
    return pts @ m[:2, :2].T + m[:2, 2]


def warp_points(pts: np.ndarray, warp: Warp) -> np.ndarray:
    """Move ``(N, 2)`` points in pixel-index space with a warp."""
    if len(pts) == 0:
        return pts.copy()
    return warp.forward(pts)


def _box_outline(boxes: np.ndarray, n: int) -> np.ndarray:
    """``n`` points along each edge of each box: (N * 4n, 2)."""
    t = np.linspace(0.0, 1.0, n)
    x0, y0, x1, y1 = (boxes[:, i : i + 1] for i in range(4))
    xs = np.concatenate([x0 + (x1 - x0) * t, x0 + (x1 - x0) * t, np.repeat(x0, n, 1), np.repeat(x1, n, 1)], 1)
    ys = np.concatenate([np.repeat(y0, n, 1), np.repeat(y1, n, 1), y0 + (y1 - y0) * t, y0 + (y1 - y0) * t], 1)
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


BOX_OUTLINE_POINTS = 16
"""Points per box edge tracked through a sequence: enough for swirl/elastic, exact for affine maps."""


def box_outline_points(boxes: np.ndarray, n: int = BOX_OUTLINE_POINTS) -> np.ndarray:
    """``n`` points along each edge of each ``(N, 4+)`` pascal_voc box, in pixel-index space: ``(N * 4n, 2)``."""
    # Boxes live in continuous space (pixel i spans [i, i + 1)); point maps work on pixel indices.
    return _box_outline(np.asarray(boxes, dtype=np.float64)[:, :4], n) - 0.5


def boxes_from_points(boxes: np.ndarray, pts: np.ndarray, h: int, w: int, clip: bool = True) -> np.ndarray:
    """The boxes enclosing each box's moved outline ``pts`` (from :func:`box_outline_points`), clipped to the
    ``h`` x ``w`` image unless ``clip`` is false (for callers that measure what left the image, as Albumentations'
    ``min_visibility`` does, and clip afterwards).

    Extra columns (labels) of ``boxes`` are kept.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    out = boxes.copy()
    if len(boxes) == 0:
        return out
    p = (pts + 0.5).reshape(len(boxes), -1, 2)
    out[:, 0], out[:, 1] = p[..., 0].min(1), p[..., 1].min(1)
    out[:, 2], out[:, 3] = p[..., 0].max(1), p[..., 1].max(1)
    if clip:
        out[:, 0:3:2] = np.clip(out[:, 0:3:2], 0, w)
        out[:, 1:4:2] = np.clip(out[:, 1:4:2], 0, h)
    return out


_reg(
    "rotate",
    Kind.AFFINE,
    rotate_matrix,
    signed=True,
    valid=(-360.0, 360.0),
    description="rotate by degrees, counter-clockwise",
)
_reg(
    "shear_x",
    Kind.AFFINE,
    shear_x_matrix,
    signed=True,
    valid=(-10.0, 10.0),
    description="horizontal shear (x += s * y)",
)
_reg(
    "shear_y",
    Kind.AFFINE,
    shear_y_matrix,
    signed=True,
    valid=(-10.0, 10.0),
    description="vertical shear (y += s * x)",
)
_reg(
    "translate_x",
    Kind.AFFINE,
    translate_x_matrix,
    signed=True,
    valid=(-1.0, 1.0),
    description="shift right by a fraction of width",
)
_reg(
    "translate_y",
    Kind.AFFINE,
    translate_y_matrix,
    signed=True,
    valid=(-1.0, 1.0),
    description="shift down by a fraction of height",
)
_reg("zoom", Kind.AFFINE, zoom_matrix, valid=(0.01, 100.0), description="scale about the centre (>1 zooms in)")
_reg("hflip", Kind.AFFINE, hflip_matrix, takes_magnitude=False, description="mirror left-right")
_reg("vflip", Kind.AFFINE, vflip_matrix, takes_magnitude=False, description="mirror top-bottom")
_reg(
    "swirl",
    Kind.WARP,
    swirl_warp,
    signed=True,
    valid=(-100.0, 100.0),
    description="skimage-style swirl (strength in radians)",
    batched=bk.swirl,
)
_reg(
    "elastic",
    Kind.WARP,
    elastic_warp,
    rng=True,
    valid=(0.0, 1000.0),
    description="elastic deformation (alpha in pixels, sigma 1)",
    batched=bk.elastic,
)
