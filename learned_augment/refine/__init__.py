"""Refined synthetic data (MR-GAN): CycleGAN refiner networks, progressive fitting and mixed real+synthetic data."""

from .dataset import MixedRealityDataset
from .fit import LOSS_NAMES, ImagePool, StepInfo, default_sizes, fit_refiner
from .networks import (
    DiscriminatorConfig,
    GeneratorConfig,
    PatchDiscriminator,
    ResnetGenerator,
    patch_layers_for,
)
from .refiner import DIRECTIONS, Refiner
from .semantic import QUALITY_NAMES

__all__ = [
    "DIRECTIONS",
    "LOSS_NAMES",
    "QUALITY_NAMES",
    "DiscriminatorConfig",
    "GeneratorConfig",
    "ImagePool",
    "MixedRealityDataset",
    "PatchDiscriminator",
    "Refiner",
    "ResnetGenerator",
    "StepInfo",
    "default_sizes",
    "fit_refiner",
    "patch_layers_for",
]
