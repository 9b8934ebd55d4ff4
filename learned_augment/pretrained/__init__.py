"""Shipped pretrained policies and refiners, each with a model card (``<name>.json`` beside ``<name>.safetensors``).

Files are the same artifact format as user files and load offline from the installed package.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import UnknownNameError

_SUFFIX = ".safetensors"


def _folder() -> Path:
    return Path(str(resources.files("learned_augment").joinpath("pretrained")))


def list_pretrained() -> list[str]:
    """Names of the shipped artifacts, e.g. ``["cifar10-lstm", "mnist-lstm", ...]``."""
    return sorted(p.name[: -len(_SUFFIX)] for p in _folder().glob(f"*{_SUFFIX}"))


def pretrained_path(name: str) -> Path:
    """File path of a shipped artifact; other names (paths such as ``"../x"`` included) raise
    :class:`~learned_augment.UnknownNameError` (a ``KeyError`` and a ``ValueError``) listing the available ones."""
    available = list_pretrained()
    if name not in available:
        raise UnknownNameError(f"no pretrained artifact named {name!r}; available: {available}", name)
    return _folder() / f"{name}{_SUFFIX}"


def model_card(name: str) -> dict[str, Any]:
    """The model card of a shipped artifact (data, TF set, fit command, cost and measured gain)."""
    pretrained_path(name)
    card = _folder() / f"{name}.json"
    return json.loads(card.read_text()) if card.is_file() else {}


def card_p(name: str) -> float:
    """The p a shipped policy was measured with (its card's ``end_model.settings.p_augment``), else 1.0.

    ``from_pretrained`` applies a shipped policy as its card measured it: policies with long sequences (L = 10) were
    measured, and are best, at p = 0.5; the default short ones at p = 1.
    """
    settings = model_card(name).get("end_model", {}).get("settings", {})
    p = settings.get("p_augment") if isinstance(settings, dict) else None
    return float(p) if isinstance(p, (int, float)) and not isinstance(p, bool) and 0.0 <= p <= 1.0 else 1.0


def load_pretrained(name: str) -> Any:
    """Load a shipped policy (``Policy``) or refiner (``Refiner``) by name."""
    from ..io import read_metadata
    from ..policy.files import load_policy

    path = pretrained_path(name)
    kind = read_metadata(path).get("kind")
    if kind == "policy":
        return load_policy(path)
    if kind == "refiner":
        from ..refine import Refiner

        return Refiner.load(path)
    raise ValueError(f"pretrained artifact {name!r} has unsupported kind {kind!r}")
