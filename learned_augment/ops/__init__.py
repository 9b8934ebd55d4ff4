"""Transformation functions (TFs), TF sets, and fused sequence application."""

from . import geometry, intensity  # noqa: F401  (registers the built-in TFs)
from .base import TF, Kind, Warp, get_tf, register, register_tf, registered_tfs, wrap_albumentations
from .batch import apply_sequence_batch
from .image import check_image
from .sequence import apply_sequence, apply_tf, geometry_first, resolve
from .tfset import NAMED_SETS, TFEntry, TFSet, cifar10_tfs, default_tfs, get_tfset, mnist_tfs

__all__ = [
    "NAMED_SETS",
    "TF",
    "Kind",
    "TFEntry",
    "TFSet",
    "Warp",
    "apply_sequence",
    "apply_sequence_batch",
    "apply_tf",
    "check_image",
    "cifar10_tfs",
    "default_tfs",
    "geometry_first",
    "get_tf",
    "get_tfset",
    "mnist_tfs",
    "register",
    "register_tf",
    "registered_tfs",
    "resolve",
    "wrap_albumentations",
]
