"""``PolicyAugmentedDataset``: TANDA's end-model recipe as a dataset wrapper."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from ..arguments import check_probability
from ..policy.base import Policy
from .policy_transform import LearnedPolicyTransform


class PolicyAugmentedDataset(torch.utils.data.Dataset):
    """TANDA's end-model recipe: each sample is replaced by an augmented copy with probability ``p_augment``.

    Parameters
    ----------
    dataset:
        Any map-style dataset whose items are images or ``(image, label, ...)`` tuples; for a policy over custom
        TFs, any data or ``(data, label, ...)`` tuples (token lists, audio arrays, ...).
    transform:
        Usually a :class:`LearnedPolicyTransform` built with ``p=1.0`` (a policy, a policy file's path or
        ``"pretrained:<name>"`` is wrapped in one), so that ``p_augment`` alone sets the
        fraction replaced (a transform with ``p=0.5`` would halve it); any callable on the items' first
        element works.
    p_augment:
        Fraction of samples replaced, or a callable ``epoch -> fraction`` (a schedule; see :meth:`set_epoch`).
    seed:
        Seed of the replace-or-keep draws. The draw for an index depends on ``(seed, epoch, index)``, on how many
        times this process has read that index (so epochs differ in the main process) and, in ``DataLoader``
        workers, on the base seed the ``DataLoader`` draws afresh each epoch from its ``generator`` and shares
        among its workers (so epochs differ there too, and one worker or eight give the same draws; with
        ``persistent_workers=True`` the base seed stays, and the draws depend on the number of workers). No
        :meth:`set_epoch` call is needed for fresh draws; with workers, seed the ``DataLoader``'s generator (or
        ``torch.manual_seed``) to repeat a run.
    post_transform:
        Applied to every image after the (possible) augmentation, e.g. ``ToTensor()`` and normalisation.
    """

    def __init__(
        self,
        dataset: Any,
        transform: Any,
        p_augment: float | Any = 0.5,
        seed: int = 0,
        post_transform: Any = None,
    ) -> None:
        if isinstance(transform, (str, os.PathLike, Policy)):
            transform = LearnedPolicyTransform(transform)
        elif not callable(transform):
            raise TypeError(
                f"transform must be callable (e.g. a LearnedPolicyTransform), got {type(transform).__name__}"
            )
        self.dataset = dataset
        self.transform = transform
        self.schedule = p_augment if callable(p_augment) else None
        self.p_augment = check_probability(p_augment(0) if callable(p_augment) else p_augment, "p_augment")
        self.seed = int(seed)
        self.epoch = 0
        self.post_transform = post_transform
        self._reads: np.ndarray | None = None

    def set_epoch(self, epoch: int) -> None:
        """Advance the schedule and the transform's random stream to ``epoch``."""
        self.epoch = int(epoch)
        if self.schedule is not None:
            self.p_augment = check_probability(self.schedule(self.epoch), "p_augment")
        if hasattr(self.transform, "set_epoch"):
            self.transform.set_epoch(self.epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        item = self.dataset[index]
        is_tuple = isinstance(item, tuple)
        image, rest = (item[0], item[1:]) if is_tuple else (item, ())
        if self._replace(int(index)):
            image = self.transform(image)
        if self.post_transform is not None:
            image = self.post_transform(image)
        return (image, *rest) if is_tuple else image

    def _replace(self, index: int) -> bool:
        """The replace-or-keep draw for ``index`` (see ``seed`` in the class docstring)."""
        n = len(self)
        index = index % n
        if self._reads is None or len(self._reads) != n:
            self._reads = np.zeros(n, dtype=np.uint32)
        material = [self.seed, self.epoch, index, int(self._reads[index])]
        self._reads[index] += 1
        info = torch.utils.data.get_worker_info()
        if info is not None:
            # The DataLoader's base seed for this epoch, shared by all its workers (torch gives worker k base + k).
            material.append(info.seed - info.id)
        return bool(np.random.default_rng(material).random() < self.p_augment)

    def __repr__(self) -> str:
        return f"PolicyAugmentedDataset(n={len(self)}, p_augment={self.p_augment}, transform={self.transform!r})"
