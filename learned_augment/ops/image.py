"""Validation and dtype helpers shared by every image TF.

Images on the CPU path are numpy arrays of shape ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` with dtype ``uint8``
(0..255) or ``float32`` (values in [0, 1]). Every TF returns the same shape and dtype it was given. Sequences
(:func:`~learned_augment.ops.apply_sequence`) also take 2 or 4 channels, read as grey or RGB followed by an alpha
channel: geometric TFs move it with the colour, the others leave it as it is (:func:`on_colour`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

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


ALPHA_CHANNELS = (2, 4)
"""Channel counts read as grey or RGB followed by an alpha channel (PIL's ``LA`` and ``RGBA``)."""


def check_image(image: object, name: str = "image", alpha: bool = False) -> np.ndarray:
    """Return ``image`` as a C-contiguous array after validating it; ``alpha=True`` also takes 2 or 4 channels
    (:data:`ALPHA_CHANNELS`).

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
    if image.ndim == 3 and image.shape[2] not in ((1, 3) + ALPHA_CHANNELS if alpha else (1, 3)):
        expected = "1 or 3 (or 2 or 4: grey or RGB, then alpha)" if alpha else "1 or 3"
        raise ValueError(
            f"{name} has {image.shape[2]} channels (shape {image.shape}); expected {expected} channels in HWC layout"
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


def colour_channels(channels: int) -> int:
    """How many of ``channels`` hold colour: all but a trailing alpha channel (:data:`ALPHA_CHANNELS`)."""
    return channels - 1 if channels in ALPHA_CHANNELS else channels


def split_alpha(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``(colour, alpha)`` of an image with an alpha channel (:data:`ALPHA_CHANNELS`), each ``(H, W, C)``;
    ``(image, None)`` for one without."""
    if image.ndim != 3 or image.shape[2] not in ALPHA_CHANNELS:
        return image, None
    # Contiguous copies: OpenCV's functions take them, and the alpha channel alone must not see the colour.
    return np.ascontiguousarray(image[:, :, :-1]), np.ascontiguousarray(image[:, :, -1:])


def on_colour(fn: Callable[[np.ndarray], np.ndarray], image: np.ndarray) -> np.ndarray:
    """``fn`` of ``image``'s colour channels, with its alpha channel (if it has one, :data:`ALPHA_CHANNELS`) put
    back unchanged: what a TF that changes pixel values does to an image with alpha."""
    colour, alpha = split_alpha(image)
    if alpha is None:
        return fn(image)
    return np.concatenate((restore_shape(fn(colour), colour), alpha), axis=2)
