"""The transforms users touch: a learned policy (and a refiner) as a drop-in torchvision (v1 and v2) and
Albumentations transform, and TANDA's dataset wrapper.

One class serves both ecosystems. Called with a positional argument :class:`LearnedPolicyTransform` behaves like a
torchvision transform (``t(img)``, or ``t(sample)`` inside ``transforms.v2.Compose`` with tv_tensors; a policy over
custom TFs takes any data); called with keyword arguments it is an Albumentations ``DualTransform``
(``t(image=..., mask=..., bboxes=..., keypoints=...)``) and so works inside ``A.Compose``, ``A.ReplayCompose`` and
``A.to_dict``/``A.from_dict``. Albumentations is optional (``pip install 'learned-augment[albumentations]'``):
without it the torchvision side works unchanged.

One file per job: ``inputs`` (input dispatch), ``policy_base`` (policy, random streams, numpy application),
``policy_albumentations`` (the ``DualTransform`` contract), ``policy_transform`` (the positional protocol),
``refine_transform``, ``dataset``, ``fit_check`` (images unlike the fitted ones), ``albumentations_base``.
"""

from .dataset import PolicyAugmentedDataset
from .fit_check import PolicyMismatchWarning
from .policy_transform import LearnedPolicyTransform
from .refine_transform import RefineSynthetic
from .sources import PRETRAINED_PREFIX
from .sources import resolve_policy as _resolve_policy  # noqa: F401  (learned_augment.module builds on it)

__all__ = [
    "PRETRAINED_PREFIX",
    "LearnedPolicyTransform",
    "PolicyAugmentedDataset",
    "PolicyMismatchWarning",
    "RefineSynthetic",
]
