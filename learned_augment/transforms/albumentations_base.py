"""The base classes of our transforms: Albumentations' when it is installed, a plain stand-in when it is not.

With Albumentations (``pip install 'learned-augment[albumentations]'``) the transforms are its ``DualTransform`` /
``ImageOnlyTransform`` and so work in ``A.Compose``, ``A.ReplayCompose`` and ``A.to_dict`` / ``A.from_dict``.
``A.from_dict`` finds transforms by class name in a registry filled when a class is defined, so the classes are
defined on Albumentations' base as soon as ``learned_augment`` is imported: a lazier import would make
``A.from_dict`` fail whenever nothing had touched ``learned_augment.transforms`` yet. Without Albumentations
nothing of it is imported and the transforms serve the positional (torchvision) protocol. Either way they are
``torch.nn.Module``s too (:class:`TransformModule`), as torchvision's transforms are.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import torch

INSTALL_HINT = "pip install 'learned-augment[albumentations]'"


def check_some_input(transform: object, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse a call with no input in one line (Albumentations' own call would fail deep inside with a KeyError)."""
    if not args and not kwargs:
        raise TypeError(f"{type(transform).__name__} takes one input (an image, a sample or your data), got none")


class PlainTransform:
    """What the transforms extend when Albumentations is not installed: ``p`` and the keyword-call refusal."""

    def __init__(self, p: float = 1.0) -> None:
        self.p = p

    def __call__(self, *args: Any, force_apply: bool = False, **kwargs: Any) -> Any:
        check_some_input(self, args, kwargs)
        raise TypeError(
            f"keyword calls ({', '.join(kwargs)}=...) are Albumentations' protocol, and Albumentations is not "
            f"installed ({INSTALL_HINT}); without it, pass the input positionally: t(image)"
        )

    def set_random_seed(self, seed: int | None) -> None:
        """Albumentations' seeding hook: without Albumentations there is no other generator to seed."""


class TransformModule(torch.nn.Module):
    """Makes a transform a ``torch.nn.Module``, as torchvision's are (``torch.nn.Sequential`` and
    ``v2.RandomApply(torch.nn.ModuleList(...))`` take only Modules), with no parameters, buffers or submodules.

    Attributes are set as on a plain object, never registered: the policy or refiner a transform wraps stays
    outside ``.to()``, ``.train()`` and ``state_dict()`` (a policy draws its sequences on the CPU whatever device
    the images are on; move a refiner with ``refiner.to(device)``), and a call writes no Module bookkeeping.
    ``.eval()`` does not switch augmentation off, as it does not for torchvision's transforms; the transform's own
    ``__call__`` runs, so forward hooks do not fire. Albumentations' base does not call up the chain, so a subclass
    runs :meth:`_init_module` before anything else in its ``__init__``.
    """

    if TYPE_CHECKING:
        # Albumentations' attributes (p, get_class_fullname...) are untyped, as they were before the Module base:
        # without this, the type checker would read them through torch.nn.Module.__getattr__ (Tensor | Module).
        def __getattr__(self, name: str) -> Any: ...

    def _init_module(self) -> None:
        torch.nn.Module.__init__(self)

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "_modules" not in state:  # pickled by a version that was not a torch.nn.Module
            self._init_module()
        torch.nn.Module.__setstate__(self, state)

    def _module_apply(self, fn: Any) -> Any:
        """``parent.apply(fn)`` (torch's recursive call) reaches our ``apply``, Albumentations' image kernel: a
        callable instead of an image is torch's call, answered as ``torch.nn.Module.apply`` does."""
        return torch.nn.Module.apply(self, fn)

    def forward(self, *inputs: Any) -> Any:
        """The positional (torchvision) call: ``t.forward(x)`` is ``t(x)``."""
        return self(*inputs)


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
