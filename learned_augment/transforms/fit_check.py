"""Does an image look like those the policy was fitted on? A policy's choices were judged on its training images:
colour TFs do nothing on grey images, and TFs measured in pixels (a blur's sigma, a 3x3 erosion) are strong at
32 px and faint at 224 px."""

from __future__ import annotations

import inspect
import numbers
import os
from typing import Any

from ..policy.base import Policy

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep

FITTED_SHAPE_KEY = "image_shape"
"""``policy.provenance[FITTED_SHAPE_KEY]``: ``[H, W, C]`` of the images the policy was fitted on, when recorded."""

COLOUR_ONLY_TFS = frozenset({"hue", "color"})
"""TFs that leave 1-channel images unchanged: a TF set with them was meant for colour images."""

SIZE_FACTOR = 2.0
"""Warn when the height or width is more than this factor away from the fitted one, either way."""

SILENCE = "silence with warnings.filterwarnings('ignore', category=learned_augment.PolicyMismatchWarning)"


class PolicyMismatchWarning(UserWarning):
    """A policy is applied to images unlike the ones it was fitted on (other channels, or a size far from them)."""


def fitted_shape(policy: Policy) -> tuple[int, int, int] | None:
    """``(H, W, C)`` of the fit's images from the policy's provenance; ``None`` when not recorded (or malformed)."""
    shape: Any = policy.provenance.get(FITTED_SHAPE_KEY)
    if not isinstance(shape, (list, tuple)) or len(shape) != 3:
        return None
    if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in shape):
        return None
    h, w, c = (int(v) for v in shape)
    return (h, w, c) if min(h, w, c) > 0 else None


def mismatch_message(policy: Policy, channels: int, h: int, w: int) -> str | None:
    """One line saying how a ``(h, w, channels)`` image differs from the policy's fit, or ``None`` if it does not.

    With a recorded fitted shape, the channels must match and the size be within :data:`SIZE_FACTOR`. Without
    one, only a TF set with colour-only TFs (:data:`COLOUR_ONLY_TFS`) on a 1-channel image is flagged.
    """
    fitted = fitted_shape(policy)
    if fitted is not None:
        fh, fw, fc = fitted
        problems = []
        if fc != channels:
            problems.append(f"{channels} channel{'' if channels == 1 else 's'} instead of {fc}")
        if max(h / fh, fh / h, w / fw, fw / w) > SIZE_FACTOR:
            problems.append(f"{h}x{w} pixels instead of {fh}x{fw}")
        if not problems:
            return None
        return (
            f"this policy was fitted on {fh}x{fw}x{fc} images and is applied to images with {' and '.join(problems)}: "
            f"its TF choices were learnt on other images; {SILENCE}"
        )
    if channels != 1:
        return None
    colour = sorted({e.name for e in policy.tfset} & COLOUR_ONLY_TFS)
    if not colour:
        return None
    return (
        f"this policy's TFs include colour TFs ({', '.join(colour)}) that do nothing on the 1-channel images it is "
        f"applied to: those draws leave the image as it is; {SILENCE}"
    )


def caller_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning raised by this function's caller name the first frame outside
    ``learned_augment`` (the user's line, or the pipeline's), however deep in the library it was raised."""
    frame = inspect.currentframe()
    frame = frame.f_back if frame is not None else None
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    return level
