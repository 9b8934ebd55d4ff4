"""``MixedRealityDataset``: labeled real and (refined) synthetic samples in one map-style dataset."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from ..data import to_hwc_uint8
from .refiner import Direction, Refiner

_CHUNK = 256
Source = Literal["real", "synthetic"]


class _Labeled:
    """Uniform ``(image, label)`` access to a Dataset of pairs or to an ``(images, labels)`` tuple of arrays."""

    def __init__(self, data: Any, what: str) -> None:
        self.what = what
        if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], (np.ndarray, torch.Tensor)):
            self.images, self.labels = data[0], data[1]
            if len(self.images) != len(self.labels):
                raise ValueError(f"{what}: {len(self.images)} images but {len(self.labels)} labels")
            self.dataset = None
        elif hasattr(data, "__getitem__") and hasattr(data, "__len__") and not isinstance(data, (tuple, list)):
            self.dataset = data
        else:
            raise TypeError(
                f"{what} must be a Dataset of (image, label) pairs or an (images, labels) tuple of arrays; "
                f"got {type(data).__name__}"
            )

    def __len__(self) -> int:
        return len(self.dataset) if self.dataset is not None else len(self.images)

    def get(self, i: int) -> tuple[Any, Any]:
        if self.dataset is None:
            label = self.labels[i]
            return self.images[i], label.item() if hasattr(label, "item") else label
        item = self.dataset[i]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise TypeError(f"{self.what} dataset items must be (image, label, ...); got {type(item).__name__}")
        return item[0], item[1]

    def hwc(self, i: int) -> np.ndarray:
        return to_hwc_uint8(self.get(i)[0])


@dataclass(frozen=True)
class _Form:
    """How the real images come (PIL, numpy or tensor; layout; dtype), so every output looks the same."""

    kind: Literal["pil", "numpy", "tensor"]
    channels: int
    squeeze: bool = False
    dtype: Any = None

    @classmethod
    def of(cls, image: Any, channels: int) -> _Form:
        if hasattr(image, "mode") and hasattr(image, "convert"):
            return cls("pil", channels)
        if isinstance(image, torch.Tensor):
            return cls("tensor", channels, squeeze=image.ndim == 2, dtype=image.dtype)
        arr = np.asarray(image)
        return cls("numpy", channels, squeeze=arr.ndim == 2, dtype=arr.dtype)

    def make(self, hwc: np.ndarray) -> Any:
        """Turn an ``(H, W, C)`` uint8 image into this form."""
        if hwc.shape[2] != self.channels:
            # Only grey -> colour reaches here (checked at construction): replicating the channel is lossless.
            hwc = np.repeat(hwc, self.channels, axis=2)
        if self.kind == "pil":
            from PIL import Image

            return Image.fromarray(hwc[:, :, 0] if self.channels == 1 else hwc)
        if self.kind == "numpy":
            out = hwc[:, :, 0] if self.squeeze else hwc
            return out if self.dtype == np.uint8 else (out / 255.0).astype(self.dtype)
        t = torch.from_numpy(np.ascontiguousarray(hwc)).permute(2, 0, 1)
        t = t[0] if self.squeeze else t.contiguous()
        return t if self.dtype == torch.uint8 else t.to(self.dtype) / 255.0


class MixedRealityDataset(Dataset):
    """Labeled samples drawn from real and synthetic data, the synthetic ones refined toward the real domain.

    Each index maps to one real or one synthetic sample; which one, and which image, is drawn once per epoch from
    ``seed`` (call :meth:`set_epoch` at the start of each epoch for fresh draws, as with ``DistributedSampler``).
    Exactly ``round(len(self) * synthetic_fraction)`` indices are synthetic. Real and synthetic images are each
    used in shuffled passes, so every real image appears before any repeats.

    Parameters
    ----------
    real, synthetic:
        A Dataset whose items are ``(image, label, ...)`` (images as PIL, ``(H, W[, C])`` numpy or ``(C, H, W)``
        tensors), or an ``(images, labels)`` tuple of arrays: numpy ``(N, H, W[, C])`` or tensor ``(N, C, H, W)``.
        Both share the image size; synthetic may be grey when real is colour.
    refiner:
        A fitted :class:`~learned_augment.refine.Refiner`. ``None`` mixes the raw synthetic images (MR-GAN's
        stage 0).
    synthetic_fraction:
        Share of synthetic samples, in [0, 1].
    refine_real:
        Probability (``True`` = 1) that a real sample is replaced by its ``real_to_shared`` refinement, which moves
        it into the domain shared with the refined synthetic images (MR-GAN stage 2; needs a stage >= 2 refiner).
        The label is the real one.
    cache:
        Refine each image once, in batches of 256 when first needed, and keep the result (memory: one uint8 copy
        of each refined image). Call :meth:`precompute` before creating DataLoader workers so they share the
        cache instead of each refining their own. ``False`` refines every access anew, one image at a time.
    transform:
        Applied to every image before it is returned (e.g. ``LearnedPolicyTransform``, ``ToTensor``).
    seed:
        Seeds the per-epoch draws.
    length:
        Samples per epoch. Default: enough that every real image appears once,
        ``ceil(len(real) / (1 - synthetic_fraction))`` (``len(synthetic)`` when the fraction is 1).

    Items are ``(image, label)``. Images come in the form of the real ones (PIL, numpy with the same layout and
    dtype, or tensors with the same dtype); synthetic and refined images are converted to it. Unrefined real images
    are returned exactly as the real source gives them.
    """

    def __init__(
        self,
        real: Any,
        synthetic: Any,
        refiner: Refiner | None = None,
        synthetic_fraction: float = 0.5,
        refine_real: bool | float = False,
        cache: bool = True,
        transform: Callable[[Any], Any] | None = None,
        seed: int = 0,
        length: int | None = None,
    ) -> None:
        if not (isinstance(synthetic_fraction, (int, float)) and 0.0 <= synthetic_fraction <= 1.0):
            raise ValueError(f"synthetic_fraction must be in [0, 1]; got {synthetic_fraction!r}")
        p_real = float(refine_real)
        if not 0.0 <= p_real <= 1.0:
            raise ValueError(f"refine_real must be a bool or a probability in [0, 1]; got {refine_real!r}")
        self.real = _Labeled(real, "real")
        self.synthetic = _Labeled(synthetic, "synthetic")
        self.refiner = refiner
        self.synthetic_fraction = float(synthetic_fraction)
        self.refine_real = p_real
        self.cache = cache
        self.transform = transform
        self.seed = seed
        n_real, n_syn = len(self.real), len(self.synthetic)
        if length is None:
            length = n_syn if synthetic_fraction == 1 else math.ceil(n_real / (1.0 - synthetic_fraction))
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise ValueError(f"length must be a non-negative integer; got {length!r}")
        self.length = length
        self.n_synthetic = round(length * self.synthetic_fraction)
        if self.n_synthetic and not n_syn:
            raise ValueError("synthetic_fraction > 0 needs at least one synthetic image")
        if length - self.n_synthetic and not n_real:
            raise ValueError("synthetic_fraction < 1 needs at least one real image")
        self._form = self._check_compatible()
        self._cached: dict[Source, np.ndarray] = {}
        self._filled: dict[Source, np.ndarray] = {}
        self.set_epoch(0)

    def _check_compatible(self) -> _Form:
        ref = self.real if len(self.real) else self.synthetic
        first = ref.get(0)[0]
        hwc = to_hwc_uint8(first)
        real_c = hwc.shape[2] if len(self.real) else None
        form = _Form.of(first, hwc.shape[2])
        if not len(self.synthetic):
            return form
        syn = self.synthetic.hwc(0)
        if syn.shape[:2] != hwc.shape[:2]:
            raise ValueError(f"real and synthetic images differ in size: {hwc.shape[:2]} and {syn.shape[:2]}")
        out_c = syn.shape[2]
        if self.refiner is not None:
            if self.refiner.synthetic_channels != syn.shape[2]:
                raise ValueError(
                    f"the refiner takes {self.refiner.synthetic_channels}-channel synthetic images; "
                    f"these have {syn.shape[2]}"
                )
            out_c = self.refiner.real_channels
            if real_c is not None and real_c != out_c:
                raise ValueError(f"the refiner makes {out_c}-channel images; the real ones have {real_c}")
            if self.refine_real > 0 and "real_to_shared" not in self.refiner.directions:
                raise ValueError("refine_real needs a refiner fitted with stages >= 2 (direction 'real_to_shared')")
        elif self.refine_real > 0:
            raise ValueError("refine_real needs a refiner")
        if real_c is not None and out_c != real_c and not (out_c == 1 and real_c == 3):
            raise ValueError(f"synthetic images have {out_c} channels, real ones {real_c}; convert one of them first")
        return form

    def set_epoch(self, epoch: int) -> None:
        """Draw which source and image each index gives for ``epoch`` (deterministic in ``seed`` and ``epoch``)."""
        rng = np.random.default_rng(np.random.SeedSequence([int(self.seed), int(epoch)]))
        n = self.length
        is_syn = np.zeros(n, dtype=bool)
        is_syn[rng.permutation(n)[: self.n_synthetic]] = True
        index = np.zeros(n, dtype=np.int64)
        index[is_syn] = _passes(len(self.synthetic), int(is_syn.sum()), rng)
        index[~is_syn] = _passes(len(self.real), int((~is_syn).sum()), rng)
        self._is_synthetic = is_syn
        self._index = index
        self._refined_real = ~is_syn & (rng.random(n) < self.refine_real)
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def source_of(self, i: int) -> tuple[Source, int, bool]:
        """``(source, index in that source, refined)`` of item ``i`` in the current epoch."""
        if not -self.length <= i < self.length:
            raise IndexError(f"index {i} out of range for a dataset of {self.length}")
        i %= self.length
        if self._is_synthetic[i]:
            return "synthetic", int(self._index[i]), self.refiner is not None
        return "real", int(self._index[i]), bool(self._refined_real[i])

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        source, j, refined = self.source_of(i)
        if source == "real":
            image, label = self.real.get(j)
            if refined:
                image = self._form.make(self._refined("real", j))
        else:
            raw, label = self.synthetic.get(j)
            image = self._form.make(self._refined("synthetic", j) if refined else to_hwc_uint8(raw))
        if self.transform is not None:
            image = self.transform(image)
        return image, label

    def precompute(self) -> MixedRealityDataset:
        """Refine every image the dataset can return now (a no-op without ``cache``); returns ``self``."""
        if self.cache and self.refiner is not None:
            sources: tuple[Source, ...] = ("synthetic", "real") if self.refine_real > 0 else ("synthetic",)
            for source in sources:
                n = len(self.synthetic if source == "synthetic" else self.real)
                for start in range(0, n, _CHUNK):
                    self._refined(source, start)
        return self

    def _refined(self, source: Source, j: int) -> np.ndarray:
        assert self.refiner is not None
        data = self.synthetic if source == "synthetic" else self.real
        direction: Direction = "synthetic_to_real" if source == "synthetic" else "real_to_shared"
        if not self.cache:
            return self.refiner.refine_numpy(data.hwc(j)[None], direction)[0]
        chunk = j // _CHUNK
        if source not in self._filled:
            self._filled[source] = np.zeros(math.ceil(len(data) / _CHUNK), dtype=bool)
        if not self._filled[source][chunk]:
            lo, hi = chunk * _CHUNK, min(len(data), (chunk + 1) * _CHUNK)
            out = self.refiner.refine_numpy(np.stack([data.hwc(k) for k in range(lo, hi)]), direction)
            if source not in self._cached:
                self._cached[source] = np.zeros((len(data), *out.shape[1:]), dtype=np.uint8)
            self._cached[source][lo:hi] = out
            self._filled[source][chunk] = True
        return self._cached[source][j]


def _passes(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` indices into ``n`` items: whole shuffled passes, then part of one more."""
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    reps = math.ceil(k / n)
    return np.concatenate([rng.permutation(n) for _ in range(reps)])[:k]
