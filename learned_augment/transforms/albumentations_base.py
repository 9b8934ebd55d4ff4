"""The base classes of our transforms: Albumentations' when it is installed, a plain stand-in when it is not.

With Albumentations (``pip install 'learned-augment[albumentations]'``) the transforms are its ``DualTransform`` /
``ImageOnlyTransform`` and so work in ``A.Compose``, ``A.ReplayCompose`` and ``A.to_dict`` / ``A.from_dict``.
``A.from_dict`` finds transforms by class name in a registry filled when a class is defined, so the classes are
defined on Albumentations' base as soon as ``learned_augment`` is imported: a lazier import would make
``A.from_dict`` fail whenever nothing had touched ``learned_augment.transforms`` yet. Without Albumentations
nothing of it is imported and the transforms serve the positional (torchvision) protocol.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

INSTALL_HINT = "pip install 'learned-augment[albumentations]'"


class PlainTransform:
    """What the transforms extend when Albumentations is not installed: ``p`` and the keyword-call refusal."""

    def __init__(self, p: float = 1.0) -> None:
        self.p = p

    def __call__(self, *args: Any, force_apply: bool = False, **kwargs: Any) -> Any:
        if not kwargs:
            raise TypeError(f"{type(self).__name__} takes one input (an image, a sample or your data), got none")
        raise TypeError(
            f"keyword calls ({', '.join(kwargs)}=...) are Albumentations' protocol, and Albumentations is not "
            f"installed ({INSTALL_HINT}); without it, pass the input positionally: t(image)"
        )

    def set_random_seed(self, seed: int | None) -> None:
        """Albumentations' seeding hook: without Albumentations there is no other generator to seed."""


def public_class_fullname(cls: type) -> str:
    """The name ``A.to_dict`` writes and ``A.from_dict`` looks up: ours by their public path
    (``learned_augment.transforms.<Class>``) whichever module defines them, so saved pipelines keep loading;
    subclasses defined elsewhere by their own module."""
    module = cls.__module__
    if module.startswith(f"{__package__}."):
        module = str(__package__)
    return f"{module}.{cls.__name__}"


if TYPE_CHECKING:
    from albumentations import DualTransform, ImageOnlyTransform

    HAS_ALBUMENTATIONS: bool
else:
    # Albumentations asks PyPI for a newer version when imported unless told not to: importing a library must not
    # reach the network (and DataLoader workers that import it afresh would each ask again).
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    try:
        from albumentations import DualTransform, ImageOnlyTransform
    except ImportError:
        DualTransform = ImageOnlyTransform = PlainTransform
        HAS_ALBUMENTATIONS = False
    else:
        HAS_ALBUMENTATIONS = True
