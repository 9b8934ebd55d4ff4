"""Where a transform's model comes from: an object, a file path, or ``"pretrained:<name>"`` (the only two sources
``A.to_dict`` can write down)."""

from __future__ import annotations

import os
from typing import Any

from ..policy.base import Policy

PRETRAINED_PREFIX = "pretrained:"


def resolve_policy(policy: Any) -> tuple[Policy, str | None]:
    """A policy object and, when it came from a file or the pretrained registry, its serialisable source."""
    if isinstance(policy, Policy):
        return policy, None
    if isinstance(policy, (str, os.PathLike)):
        text = os.fspath(policy)
        if text.startswith(PRETRAINED_PREFIX):
            from ..pretrained import load_pretrained

            loaded = load_pretrained(text[len(PRETRAINED_PREFIX) :])
            if not isinstance(loaded, Policy):
                raise TypeError(
                    f"pretrained artifact {text[len(PRETRAINED_PREFIX) :]!r} is a {type(loaded).__name__}, not a policy"
                )
            return loaded, text
        from ..policy.files import load_policy

        return load_policy(text), text
    raise TypeError(
        f"policy must be a Policy, a path to a policy file or 'pretrained:<name>', got {type(policy).__name__}"
    )


def resolve_refiner(refiner: Any) -> tuple[Any, str | None]:
    """A refiner object and, when it came from a file or the pretrained registry, its serialisable source."""
    from ..refine import Refiner

    if isinstance(refiner, Refiner):
        return refiner, None
    if isinstance(refiner, (str, os.PathLike)):
        text = os.fspath(refiner)
        if text.startswith(PRETRAINED_PREFIX):
            from ..pretrained import load_pretrained

            obj = load_pretrained(text[len(PRETRAINED_PREFIX) :])
            if not isinstance(obj, Refiner):
                raise TypeError(f"pretrained artifact {text!r} is a {type(obj).__name__}, not a Refiner")
            return obj, text
        return Refiner.load(text), text
    raise TypeError(
        f"refiner must be a Refiner, a path to a refiner file or 'pretrained:<name>', got {type(refiner).__name__}"
    )
