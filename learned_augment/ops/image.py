"""Validation and dtype helpers shared by every image TF.

Images on the CPU path are numpy arrays of shape ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` with dtype ``uint8``
(0..255) or ``float32`` (values in [0, 1]). Every TF returns the same shape and dtype it was given.
"""

from __future__ import annotations

import math

import numpy as np

MAX_PIXELS = 1 << 28
"""Largest accepted image (H * W), about 16k x 16k: larger inputs are refused instead of exhausting memory."""

SUPPORTED_DTYPES = (np.uint8, np.float32)

UNIT_TOLERANCE = 1e-3
"""How far float images may stray outside [0, 1] and still be taken (and clamped): the round-off of an
"unnormalise" leaves values such as 1.0000001. Anything further out (normalised images, a bicubic resize's
ringing) is refused, since the intensity TFs' meaning depends on the range."""


def check_unit_range(lo: float, hi: float, name: str = "images") -> bool:
    """Refuse float values that are not finite or lie outside [0, 1] by more than :data:`UNIT_TOLERANCE`, in one
    line; True where values lie (just) outside [0, 1] and need clamping."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} contain NaN or infinite values")
    if lo < -UNIT_TOLERANCE or hi > 1.0 + UNIT_TOLERANCE:
        raise ValueError(
            f"float {name} must hold values in [0, 1], got range [{lo!r}, {hi!r}]: unnormalise them, or clamp "
            "them to [0, 1], first"
        )
    return lo < 0.0 or hi > 1.0


def check_image(image: object, name: str = "image") -> np.ndarray:
    """Return ``image`` as a C-contiguous array after validating it.

    Raises
    ------
    TypeError
        If ``image`` is not a numpy array or its dtype is neither uint8 nor float32.
    ValueError
        If it has the wrong number of dimensions or channels, is empty or too large, or (float32) holds NaN/inf
        or values outside [0, 1].
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(image).__name__}")
    if image.dtype not in SUPPORTED_DTYPES:
        raise TypeError(
            f"{name} has dtype {image.dtype}; expected uint8 (0..255) or float32 (0..1). "
            "Convert first, e.g. image.astype(np.float32) / 255 for integer data."
        )
    if image.ndim not in (2, 3):
        raise ValueError(f"{name} must have shape (H, W) or (H, W, C), got shape {image.shape}")
    if image.ndim == 3 and image.shape[2] not in (1, 3):
        raise ValueError(
            f"{name} has {image.shape[2]} channels (shape {image.shape}); expected 1 or 3 channels in HWC layout"
        )
    h, w = image.shape[:2]
    if h == 0 or w == 0:
        raise ValueError(f"{name} is empty (shape {image.shape})")
    if h * w > MAX_PIXELS:
        raise ValueError(f"{name} is too large ({h}x{w} pixels; the limit is {MAX_PIXELS} pixels)")
    if image.dtype == np.float32 and check_unit_range(float(image.min()), float(image.max()), name):
        return np.clip(image, 0.0, 1.0)
    return np.ascontiguousarray(image)


def as_float(image: np.ndarray) -> np.ndarray:
    """Return a float32 copy in [0, 1] of a uint8 or float32 image."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) * np.float32(1.0 / 255.0)
    return image.astype(np.float32, copy=True)


def like(result: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Cast a float result in [0, 1] (or any-dtype result) back to ``reference``'s dtype and shape."""
    if reference.dtype == np.uint8 and result.dtype != np.uint8:
        result = np.clip(np.rint(result * 255.0), 0, 255).astype(np.uint8)
    elif reference.dtype == np.float32:
        result = np.clip(result, 0.0, 1.0).astype(np.float32, copy=False)
    return restore_shape(result, reference)


def restore_shape(result: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """OpenCV drops a trailing channel axis of size 1; put it back so shapes round-trip."""
    if result.shape != reference.shape:
        result = result.reshape(reference.shape)
    return result


def to_uint8(image: np.ndarray) -> np.ndarray:
    """uint8 view of an image (float32 in [0, 1] is scaled and rounded)."""
    if image.dtype == np.uint8:
        return image
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def n_channels(image: np.ndarray) -> int:
    return 1 if image.ndim == 2 else int(image.shape[2])
