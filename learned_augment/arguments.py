"""Argument checks shared by the public entry points: a bad argument fails up front, in one line naming it.

``TypeError`` when the value is of the wrong kind, ``ValueError`` when it is out of range.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch

MAX_SEED = 2**64 - 1
"""The largest seed of a fit: ``torch.manual_seed`` takes seeds below 2**64."""


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


def _bound(n: int) -> str:
    """``n`` as written in a message: ``2**64 - 1`` rather than its 20 digits."""
    return f"2**{(n + 1).bit_length() - 1} - 1" if n > 2**32 and (n + 1) & n == 0 else str(n)


def check_bool(value: Any, name: str) -> bool:
    """``value`` if it is ``True`` or ``False``; else a one-line ``TypeError``."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def check_int(value: Any, name: str, low: int = 0, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]`` (no upper bound for ``high=None``); bool and 2.0 are refused."""
    span = f">= {low}" if high is None else f"in [{low}, {_bound(high)}]"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer {span}, got {value!r} ({type(value).__name__})")
    n = int(value)
    if n < low or (high is not None and n > high):
        raise ValueError(f"{name} must be an integer {span}, got {value!r}")
    return n


def check_number(value: Any, name: str, positive: bool = False) -> float:
    """``value`` as a finite float, ``> 0`` if ``positive`` else ``>= 0``."""
    what = f"a finite {'positive' if positive else 'non-negative'} number"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {what}, got {value!r} ({type(value).__name__})")
    v = float(value)
    if not math.isfinite(v) or v < 0 or (positive and v == 0):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return v


def check_device(spec: Any, name: str = "device") -> torch.device:
    """``spec`` (``"cpu"``, ``"cuda"``, ``"cuda:N"``, a ``torch.device`` or a CUDA index ``N``, as ``torch.device``
    takes it) as a device this machine has."""
    if isinstance(spec, bool) or not isinstance(spec, (str, torch.device, int)):
        raise TypeError(f"{name} must be 'cpu', 'cuda', 'cuda:N' or a torch.device, got {spec!r}")
    try:
        dev = torch.device(spec)
    except (RuntimeError, ValueError):
        raise ValueError(f"{name} {spec!r} is not a device; use cpu, cuda or cuda:N") from None
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise ValueError(f"{name} {str(spec)!r}: only cpu and cuda are supported")
    if not torch.cuda.is_available():
        raise ValueError(f"{name} {spec}: torch sees no CUDA GPU on this machine; use cpu")
    n = torch.cuda.device_count()
    if dev.index is not None and dev.index >= n:
        raise ValueError(f"{name} {spec}: this machine has {n} CUDA GPU(s), cuda:0 to cuda:{n - 1}")
    return dev


def check_size(size: int | tuple[int, int] | None, name: str = "image_size") -> tuple[int, int] | None:
    """``None``, or ``size`` (an int or ``(height, width)``) as ``(height, width)``; one-line errors otherwise."""
    if size is None:
        return None
    if isinstance(size, (tuple, list)):
        if len(size) != 2:
            raise ValueError(f"{name} must be an int or (height, width), got {size!r}")
        return check_int(size[0], name, 1), check_int(size[1], name, 1)
    side = check_int(size, name, 1)
    return side, side
