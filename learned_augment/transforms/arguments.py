"""Constructor checks shared by the transforms: bad arguments fail at build time, in one line naming the argument."""

from __future__ import annotations

import numbers
from typing import Any


def check_probability(value: Any, name: str = "p") -> float:
    """``value`` as a float in [0, 1]; ``TypeError`` for non-numbers, ``ValueError`` outside the range (or NaN)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in [0, 1], got {value!r} ({type(value).__name__})")
    p = float(value)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return p


def check_seed(value: Any, name: str = "seed") -> int | None:
    """``None`` or ``value`` as a non-negative int (numpy's seeding refuses negative ones)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be None or an integer >= 0, got {value!r} ({type(value).__name__})")
    if value < 0:
        raise ValueError(f"{name} must be None or an integer >= 0, got {value!r}")
    return int(value)
