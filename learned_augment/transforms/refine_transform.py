"""``RefineSynthetic``: a fitted MR-GAN refiner as a transform (torchvision positional calls and Albumentations)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from ..arguments import check_bool, check_probability, check_seed
from .albumentations_base import ImageOnlyTransform, TransformModule, check_some_input, public_class_fullname
from .inputs import are_batches, check_input_image, find_images, flatten, map_single_image, unflatten, wrap_like
from .policy_base import process_rank
from .sources import resolve_refiner


class RefineSynthetic(ImageOnlyTransform, TransformModule):
    """Refine images with a fitted MR-GAN refiner (synthetic -> real, or real -> shared domain).

    Geometry is unchanged, so masks, boxes and keypoints pass through untouched. Accepts the same inputs as
    :class:`LearnedPolicyTransform` (PIL ``"L"``/``"RGB"``, numpy HWC, CHW and BCHW tensors on any device, v2
    samples, Albumentations calls); the output has the input's type and dtype, and the refiner's output channel
    count (a grey-to-colour refiner turns an ``"L"`` image into ``"RGB"``). Height and width must be multiples of 4.

    A ``torch.nn.Module`` with no parameters, as torchvision's transforms: the refiner is not a submodule, so
    ``.to()`` leaves it where it is (move it with ``refiner.to(device)``).

    Parameters
    ----------
    refiner:
        A :class:`~learned_augment.refine.Refiner`, a path to a refiner file, or ``"pretrained:<name>"``.
    direction:
        ``"synthetic_to_real"`` or ``"real_to_shared"`` (MR-GAN's stage-2 refinement of real images).
    p:
        Probability in [0, 1] of refining a given call (per sample for batches).
    seed:
        ``None`` or an integer >= 0: seed of the apply-or-skip draws. ``None`` draws them from PyTorch's global
        generator, as ``T.RandomApply`` does (fresh in every ``DataLoader`` worker and epoch, repeated by
        ``torch.manual_seed``); an integer gives each worker its own stream from ``seed`` and the per-worker seed.
    strict:
        Albumentations 2's flag, accepted so that pipelines written for it build; every argument is checked here.

    Albumentations calls (``A.Compose``, ``A.to_dict``) need Albumentations: ``pip install
    'learned-augment[albumentations]'``.
    """

    def __init__(
        self,
        refiner: Any,
        direction: str = "synthetic_to_real",
        p: float = 1.0,
        seed: int | None = None,
        *,
        strict: bool = False,
    ) -> None:
        p = check_probability(p)
        seed = check_seed(seed)
        strict = check_bool(strict, "strict")
        self._init_module()
        super().__init__(p=p)
        self.strict = strict  # Albumentations 2's flag; every argument is checked here anyway
        self.refiner_obj, self.source = resolve_refiner(refiner)
        if direction not in self.refiner_obj.directions:
            raise ValueError(
                f"direction {direction!r} is not available; this refiner has {self.refiner_obj.directions}"
            )
        self.direction = direction
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self._stream_key: tuple[int, int | None, int] | None = None

    @classmethod
    def get_class_fullname(cls) -> str:
        return public_class_fullname(cls)

    def _coins(self, n: int) -> np.ndarray:
        """``n`` uniform draws on [0, 1) for the apply-or-skip decisions."""
        if self._seed is None:
            return torch.rand(n, dtype=torch.float64).numpy()
        # A generator made at construction would be copied unchanged into every worker, every epoch.
        # The rank too: ranks seeded alike would otherwise refine the same samples (as the policy transform).
        info, rank = torch.utils.data.get_worker_info(), process_rank()
        key = (os.getpid(), None if info is None else info.seed, rank)
        if key != self._stream_key:
            if self._stream_key is not None or info is not None or rank:
                # A forked process that is not a worker restarts the stream, as the policy transform's does.
                self._rng = np.random.default_rng(
                    [self._seed, rank] if info is None else [self._seed, info.id + 1, info.seed, rank]
                )
            self._stream_key = key
        return self._rng.random(n)

    def _refine_np(self, img: np.ndarray) -> np.ndarray:
        squeeze = img.ndim == 2
        hwc = img[:, :, None] if squeeze else img
        x = torch.from_numpy(np.array(hwc, copy=True)).permute(2, 0, 1)  # a writable copy: inputs may be read-only
        out = self.refiner_obj.refine(x, self.direction).permute(1, 2, 0).numpy()
        return out[:, :, 0] if squeeze and out.shape[2] == 1 else np.ascontiguousarray(out)

    # Albumentations' image kernel; torch's parent.apply(fn) reaches it too (see TransformModule).
    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:  # type: ignore[override]
        if callable(img):
            return self._module_apply(img)
        return self._refine_np(img)

    def __call__(self, *args: Any, force_apply: bool = False, **kwargs: Any) -> Any:
        if not (args and not kwargs):
            check_some_input(self, args, kwargs)
            return super().__call__(*args, force_apply=force_apply, **kwargs)
        inputs = args[0] if len(args) == 1 else args
        flat, spec = flatten(inputs)
        positions = find_images(flat)
        if not positions:
            raise TypeError("no image found in the input: pass a PIL image, a numpy HWC array or a CHW/BCHW tensor")
        # As torchvision v2 does, every image of a sample (each tv_tensors.Image and PIL image) is refined, with one
        # draw of p: the refiner itself is deterministic.
        images = [flat[i] for i in positions]
        for image in images:  # before the draw, so that a bad input fails whatever p draws
            check_input_image(image)
        if are_batches(images):
            if len({x.shape[0] for x in images}) > 1:
                raise ValueError("the images of a sample share one draw, so batches must all have the same size")
            keep = torch.from_numpy(self._coins(images[0].shape[0]) >= self.p)
            for i, image in zip(positions, images):
                out = self.refiner_obj.refine(image.as_subclass(torch.Tensor), self.direction)
                if keep.any():
                    if out.shape[1] != image.shape[1]:
                        raise ValueError("p < 1 on a batch needs a refiner that keeps the channel count")
                    out = torch.where(keep.to(image.device).view(-1, 1, 1, 1), image.as_subclass(torch.Tensor), out)
                flat[i] = wrap_like(out, image)
            return unflatten(flat, spec)
        if self.p < 1.0 and self._coins(1)[0] >= self.p:
            return inputs
        for i, image in zip(positions, images):
            if isinstance(image, torch.Tensor) and image.ndim == 3:
                flat[i] = wrap_like(self.refiner_obj.refine(image.as_subclass(torch.Tensor), self.direction), image)
            else:
                flat[i] = map_single_image(image, self._refine_np)
        return unflatten(flat, spec)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("refiner", "direction", "seed")

    def get_transform_init_args(self) -> dict[str, Any]:
        if self.source is None:
            raise ValueError(
                "this RefineSynthetic wraps an in-memory refiner, which A.to_dict cannot reference: "
                "save it with refiner.save(path) and build the transform from that path"
            )
        return {"refiner": self.source, "direction": self.direction, "seed": self._seed}

    def __repr__(self) -> str:
        src = f", source={self.source!r}" if self.source else ""
        return f"{type(self).__name__}(refiner={self.refiner_obj!r}, direction={self.direction!r}, p={self.p}{src})"
