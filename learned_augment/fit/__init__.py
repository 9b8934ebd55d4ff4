"""Fitting TF policies: ``fit_policy`` and its default discriminator."""

from .discriminator import DCGANDiscriminator
from .loop import fit_policy, load_checkpoint_policy

__all__ = ["DCGANDiscriminator", "fit_policy", "load_checkpoint_policy"]
