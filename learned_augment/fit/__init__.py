"""Fitting TF policies: ``fit_policy`` and its default discriminator."""

from .discriminator import DCGANDiscriminator
from .loop import fit_policy, load_checkpoint_policy, reward_dtype

__all__ = ["DCGANDiscriminator", "fit_policy", "load_checkpoint_policy", "reward_dtype"]
