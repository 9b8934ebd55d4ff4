"""learned_augment: learned data augmentation (TANDA policies, MR-GAN refiners) as drop-in PyTorch transforms."""

from ._version import __version__
from .data import as_images, load_sample
from .errors import UnknownNameError
from .fit import DCGANDiscriminator, fit_policy
from .io import ArtifactError
from .module import PolicyAugment
from .ops import (
    TF,
    TFEntry,
    TFSet,
    apply_sequence,
    apply_sequence_batch,
    apply_tf,
    get_tfset,
    register_tf,
    registered_tfs,
    wrap_albumentations,
)
from .policy import GRUPolicy, LSTMPolicy, MeanFieldPolicy, Policy, UniformPolicy, make_policy
from .policy.files import load_policy
from .pretrained import list_pretrained, load_pretrained, model_card
from .refine import MixedRealityDataset, Refiner, fit_refiner
from .transforms import LearnedPolicyTransform, PolicyAugmentedDataset, PolicyMismatchWarning, RefineSynthetic

__all__ = [
    "TF",
    "ArtifactError",
    "DCGANDiscriminator",
    "GRUPolicy",
    "LSTMPolicy",
    "LearnedPolicyTransform",
    "MeanFieldPolicy",
    "MixedRealityDataset",
    "Policy",
    "PolicyAugmentedDataset",
    "PolicyAugment",
    "PolicyMismatchWarning",
    "RefineSynthetic",
    "Refiner",
    "TFEntry",
    "TFSet",
    "UniformPolicy",
    "UnknownNameError",
    "__version__",
    "apply_sequence",
    "apply_sequence_batch",
    "apply_tf",
    "as_images",
    "fit_policy",
    "fit_refiner",
    "get_tfset",
    "list_pretrained",
    "load_policy",
    "load_pretrained",
    "load_sample",
    "make_policy",
    "model_card",
    "register_tf",
    "registered_tfs",
    "wrap_albumentations",
]
