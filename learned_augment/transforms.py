"""The transforms users touch: a learned policy as a drop-in torchvision (v1 and v2) and Albumentations transform.

One class serves both ecosystems. Called with positional arguments it behaves like a torchvision transform
(``t(img)``, or ``t(sample)`` inside ``transforms.v2.Compose`` with tv_tensors); called with keyword arguments it is
an Albumentations ``DualTransform`` (``t(image=..., mask=..., bboxes=..., keypoints=...)``) and so works inside
``A.Compose``, ``A.ReplayCompose`` and ``A.to_dict``/``A.from_dict``.
"""

from __future__ import annotations

import os
from typing import Any

import albumentations as A
import numpy as np
import torch
from albumentations.core.transforms_interface import BaseTransformInitSchema
from pydantic import ConfigDict, Field

from .ops.geometry import resolve_interpolation
from .ops.sequence import apply_sequence
from .policy.base import Policy
from .policy.sampler import BlockSampler

PRETRAINED_PREFIX = "pretrained:"

try:  # PIL is a torchvision dependency; keep the import soft for type checks only
    from PIL import Image as PILImage
except ImportError:  # pragma: no cover
    PILImage = None  # type: ignore[assignment]


def _resolve_policy(policy: Any) -> tuple[Policy, str | None]:
    """A policy object and, when it came from a file or the pretrained registry, its serialisable source."""
    if isinstance(policy, Policy):
        return policy, None
    if isinstance(policy, (str, os.PathLike)):
        text = os.fspath(policy)
        if text.startswith(PRETRAINED_PREFIX):
            from .pretrained import load_pretrained

            loaded = load_pretrained(text[len(PRETRAINED_PREFIX) :])
            if not isinstance(loaded, Policy):
                raise TypeError(
                    f"pretrained artifact {text[len(PRETRAINED_PREFIX) :]!r} is a {type(loaded).__name__}, not a policy"
                )
            return loaded, text
        from .io import load_policy

        return load_policy(text), text
    raise TypeError(
        f"policy must be a Policy, a path to a policy file or 'pretrained:<name>', got {type(policy).__name__}"
    )


def _is_pil(x: Any) -> bool:
    return PILImage is not None and isinstance(x, PILImage.Image)


class LearnedPolicyTransform(A.DualTransform):
    """Apply one freshly sampled TF sequence of a learned policy per call.

    Parameters
    ----------
    policy:
        A fitted :class:`~learned_augment.policy.Policy`, a path to a policy file, or ``"pretrained:<name>"``.
        Only path and pretrained sources can be written by ``A.to_dict``.
    p:
        Probability of augmenting a given call (per sample for batched tensors).
    seed:
        Makes the stream of sequences reproducible. In the main process (``num_workers=0``) the stream starts from
        ``seed`` and continues from call to call and epoch to epoch. In ``DataLoader`` workers each worker draws from
        its own stream, derived from ``seed`` and the per-worker seed the ``DataLoader`` draws afresh every epoch
        from its ``generator``: every epoch gets fresh draws with no call needed, and a run repeats exactly when
        that generator (or PyTorch, ``torch.manual_seed``) is seeded too. With ``seed=None`` the stream's seed is
        drawn from PyTorch's global generator at the first call (in workers: the per-worker seed), so
        ``torch.manual_seed`` makes runs reproducible, as for torchvision's random transforms. Inside
        ``A.Compose(..., seed=s)`` the Compose's seed replaces this one.
    interpolation:
        How geometric TFs resample images: ``"bilinear"`` (default) or ``"nearest"`` (warps about 4x faster at
        224x224, and what torchvision's AutoAugment family uses by default). torchvision's ``InterpolationMode``,
        PIL's ``Image.Resampling`` and ``cv2.INTER_LINEAR`` / ``cv2.INTER_NEAREST`` are accepted too; ``A.to_dict``
        stores the mode's name. Masks always use nearest.

    Accepted inputs (output type, shape and dtype equal the input's):

    * PIL images in mode ``"L"`` or ``"RGB"``;
    * numpy arrays ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)``, uint8, or float16 / float32 / float64 in [0, 1];
    * torch tensors ``(C, H, W)`` with C in {1, 3}, uint8 or floating (float16, bfloat16, float32, float64) in
      [0, 1], on any device, and batches ``(B, C, H, W)`` (a different sequence per sample, vectorised on the
      tensor's device); ``tv_tensors.Image`` stays a ``tv_tensors.Image``;
    * torchvision v2 samples (tuples, dicts) holding an image plus ``BoundingBoxes``, ``Mask`` and ``KeyPoints``,
      which move with the image;
    * Albumentations calls with ``image``, ``mask``, ``masks``, ``bboxes`` and ``keypoints``.

    After each call :attr:`last_params` holds what was applied (``{"applied", "tf_ids", "tf_seed", "tf_ids_str"}``;
    for a batch ``applied`` is a list and ``tf_ids`` is ``(B, L)``); pass it to :meth:`replay` to apply exactly the
    same to another input.

    Keypoints (torchvision ``KeyPoints``, Albumentations ``keypoints``) are in pixel-index coordinates (a mirror maps
    ``x`` to ``W - 1 - x``), boxes in continuous ones (``x`` to ``W - x``), as in both libraries.
    """

    class InitSchema(BaseTransformInitSchema):
        model_config = ConfigDict(arbitrary_types_allowed=True)
        policy: Any
        p: float = Field(ge=0, le=1)
        seed: int | None = None
        interpolation: Any = "bilinear"

    def __init__(self, policy: Any, p: float = 1.0, seed: int | None = None, interpolation: Any = "bilinear") -> None:
        self._ready = False
        super().__init__(p=p)
        self.interpolation = resolve_interpolation(interpolation)
        self.policy_obj, self.source = _resolve_policy(policy)
        self.policy_obj.eval()
        self._seed = seed
        self._epoch = 0
        self._sampler = BlockSampler(self.policy_obj, seed=0)
        self._rng = np.random.default_rng(0)
        self._stream_key: tuple[int, int | None, int] | None = None
        self._last_params: dict[str, Any] | None = None
        self._names_pending = False
        self._ready = True

    # ------------------------------------------------------------------------------------------ constructors

    @classmethod
    def from_pretrained(
        cls, name: str, p: float = 1.0, seed: int | None = None, interpolation: Any = "bilinear"
    ) -> LearnedPolicyTransform:
        """A transform around a shipped policy (see :func:`learned_augment.list_pretrained`)."""
        return cls(PRETRAINED_PREFIX + name, p=p, seed=seed, interpolation=interpolation)

    @property
    def policy(self) -> Policy:
        return self.policy_obj

    @property
    def tfset(self) -> Any:
        return self.policy_obj.tfset

    @property
    def last_params(self) -> dict[str, Any] | None:
        """What the last call applied (see the class docstring); ``None`` before the first call."""
        lp = self._last_params
        if self._names_pending and lp is not None:
            # Formatting the ids costs as much as augmenting a small image, and few callers read them.
            lp["tf_ids_str"] = self._names(lp["tf_ids"])
            self._names_pending = False
        return lp

    @last_params.setter
    def last_params(self, value: dict[str, Any] | None) -> None:
        self._last_params = value
        self._names_pending = False

    def _record_draw(self, params: dict[str, Any]) -> None:
        """Record a drawn single-sample ``params`` as :attr:`last_params`, its ``tf_ids_str`` added on first read."""
        self._last_params = params
        self._names_pending = True

    # ------------------------------------------------------------------------------------------ randomness

    def set_epoch(self, epoch: int) -> None:
        """Mix ``epoch`` into the streams (like ``DistributedSampler.set_epoch``).

        Not needed for fresh draws each epoch (see ``seed``); useful to make an epoch's draws depend on its number,
        e.g. to resume a run. Call it on the transform the ``DataLoader`` copies into its workers, before iterating.
        Workers started with ``persistent_workers=True`` keep the copy they were given and do not see later calls.
        """
        self._epoch = int(epoch)
        self._stream_key = None

    def _reseed(self, seed_material: list[int] | int | None) -> None:
        ss = np.random.SeedSequence(seed_material)
        s_sampler, s_rng = ss.generate_state(2, dtype=np.uint64)
        self._sampler.reseed(int(s_sampler >> 1))
        self._rng = np.random.default_rng(int(s_rng))

    def _reseed_for_context(self, force: bool = False) -> None:
        """Give each DataLoader worker (and each epoch) its own stream; cheap check on every call."""
        info = torch.utils.data.get_worker_info()
        key = (os.getpid(), None if info is None else info.seed, self._epoch)
        if not force and key == self._stream_key:
            return
        self._stream_key = key
        if info is not None:
            # Workers are new processes every epoch (unless persistent), so nothing of theirs remembers the last
            # epoch; ``info.seed`` is what changes: the DataLoader draws it per epoch and worker from its generator.
            if self._seed is not None:
                self._reseed([self._seed, self._epoch, info.id + 1, info.seed])
            else:
                self._reseed([info.seed, self._epoch])
        elif self._seed is not None:
            self._reseed([self._seed, self._epoch, 0])
        else:
            # From PyTorch's global generator, as torchvision's random transforms: torch.manual_seed repeats a run.
            self._reseed([int(torch.empty((), dtype=torch.int64).random_().item())])

    def set_random_seed(self, seed: int | None) -> None:
        super().set_random_seed(seed)
        if getattr(self, "_ready", False) and seed is not None:
            self._seed = int(seed)
            self._reseed_for_context(force=True)

    def set_random_state(self, random_generator: np.random.Generator, py_random: Any) -> None:
        super().set_random_state(random_generator, py_random)
        if getattr(self, "_ready", False):
            self._reseed([int(random_generator.integers(2**63 - 1))])
            self._stream_key = (os.getpid(), None, self._epoch)

    def _draw(self) -> dict[str, Any]:
        self._reseed_for_context()
        ids = self._sampler.next()
        return {"tf_ids": ids.copy(), "tf_seed": int(self._rng.integers(2**63 - 1))}

    # ------------------------------------------------------------------------------------------ numpy core

    def _apply_np(self, image: np.ndarray, params: dict[str, Any], targets: dict[str, Any] | None = None) -> Any:
        # The seed, not a generator: apply_sequence seeds one only if a TF of the sequence draws.
        return apply_sequence(
            image,
            params["tf_ids"],
            self.tfset,
            targets=targets,
            rng=int(params["tf_seed"]),
            interpolation=self.interpolation,
        )

    def replay(self, inpt: Any, params: dict[str, Any]) -> Any:
        """Apply recorded ``params`` (from :attr:`last_params`) again, drawing nothing.

        ``inpt`` is anything a positional call accepts: one image, a torchvision sample with targets, or a
        ``(B, C, H, W)`` batch when the params were recorded on a batch of the same size.
        """
        return self._torchvision_call(inpt, params=params)

    # ------------------------------------------------------------------------------------------ torchvision

    def __call__(self, *args: Any, force_apply: bool = False, **kwargs: Any) -> Any:
        if args and not kwargs:
            return self._torchvision_call(args[0] if len(args) == 1 else args)
        return super().__call__(*args, force_apply=force_apply, **kwargs)

    def _torchvision_call(self, inputs: Any, params: dict[str, Any] | None = None) -> Any:
        flat, spec = _flatten(inputs)
        image_pos = _find_image(flat)
        if image_pos is None:
            raise TypeError(
                "no image found in the input: pass a PIL image, a numpy HWC array or a CHW/BCHW tensor "
                f"(got {', '.join(sorted({type(x).__name__ for x in flat})) or 'nothing'})"
            )
        image = flat[image_pos]
        if isinstance(image, torch.Tensor) and image.ndim == 4:
            if any(_is_target(x) for x in flat):
                raise ValueError("batched tensors with boxes, masks or keypoints are not supported; pass one sample")
            flat[image_pos] = self._apply_batch(image, params)
            return _unflatten(flat, spec)
        if params is None:
            self._reseed_for_context()
            if self.p < 1.0 and self._rng.random() >= self.p:
                self.last_params = {"applied": False}
                return inputs
            params = {"applied": True, **self._draw()}
            self._record_draw(dict(params))
        elif not params.get("applied", True):
            return inputs
        elif np.ndim(params["tf_ids"]) != 1:
            raise ValueError("these params were recorded on a batch; replay them on a (B, C, H, W) tensor")
        targets, slots = _collect_tv_targets(flat, image_pos)
        if isinstance(image, torch.Tensor) and image.device.type != "cpu" and not targets:
            ids = torch.as_tensor(params["tf_ids"]).unsqueeze(0)
            out = self._batch_kernel(image.as_subclass(torch.Tensor).unsqueeze(0), ids, params["tf_seed"])[0]
            flat[image_pos] = _wrap_like(out, image)
            return _unflatten(flat, spec)
        h, w = _image_hw(image)
        if targets:
            out_img: Any = None

            def run(a: np.ndarray) -> np.ndarray:
                nonlocal out_img
                res, moved = self._apply_np(a, params, targets)
                out_img = moved
                return res

            flat[image_pos] = _map_single_image(image, run)
            _restore_tv_targets(flat, slots, out_img, h, w)
        else:
            flat[image_pos] = _map_single_image(image, lambda a: self._apply_np(a, params))
        return _unflatten(flat, spec)

    def _names(self, ids: np.ndarray) -> list[str]:
        return [self.tfset[int(i)].id for i in ids]

    def _batch_kernel(self, images: torch.Tensor, ids: torch.Tensor, seed: int) -> torch.Tensor:
        """Plain ``(B, C, H, W)`` tensor in, plain tensor out (callers re-wrap tv_tensors)."""
        from .ops.batch import apply_sequence_batch

        if images.dtype != torch.uint8 and not images.is_floating_point():
            raise TypeError(f"tensor images must be uint8 or floating point in [0, 1], got {images.dtype}")
        gen = torch.Generator(device=images.device).manual_seed(seed % (2**63 - 1))
        return apply_sequence_batch(images, ids, self.tfset, generator=gen, interpolation=self.interpolation)

    def _apply_batch(self, images: torch.Tensor, params: dict[str, Any] | None = None) -> torch.Tensor:
        """(B, C, H, W): one sequence per sample, Bernoulli(p) per sample, on the tensor's device."""
        b = images.shape[0]
        if params is None:
            if b == 0:
                return images
            self._reseed_for_context()
            apply = self._rng.random(b) < self.p if self.p < 1.0 else np.ones(b, dtype=bool)
            ids = self._sampler.take(b)
            seed = int(self._rng.integers(2**63 - 1))
            self.last_params = {"applied": apply.tolist(), "tf_ids": ids, "tf_seed": seed}
        else:
            ids = np.asarray(params["tf_ids"])
            if ids.ndim != 2 or ids.shape[0] != b:
                raise ValueError(
                    f"params hold sequences of shape {ids.shape}, which cannot be replayed on a batch of {b} images"
                )
            apply = np.broadcast_to(np.asarray(params.get("applied", True), dtype=bool), (b,))
            seed = int(params["tf_seed"])
        if not apply.any():
            return images
        plain = images.as_subclass(torch.Tensor)
        out = self._batch_kernel(plain, torch.from_numpy(np.ascontiguousarray(ids)), seed)
        if not apply.all():
            keep = torch.from_numpy(~apply).to(images.device)
            out = torch.where(keep.view(-1, 1, 1, 1), plain, out)
        return _wrap_like(out, images)

    # ------------------------------------------------------------------------------------------ Albumentations

    def should_apply(self, force_apply: bool = False) -> bool:
        # Our own stream, not Albumentations' py_random: that one is copied unchanged into every DataLoader worker,
        # so all workers would make the same apply-or-skip decisions.
        self._reseed_for_context()
        if self.p <= 0.0:
            applied = False
        elif self.p >= 1.0 or force_apply:
            applied = True
        else:
            applied = bool(self._rng.random() < self.p)
        if not applied:
            self.last_params = {"applied": False}
        return applied

    def get_params(self) -> dict[str, Any]:
        params = self._draw()
        self._record_draw({"applied": True, **params})
        return params

    def apply(self, img: np.ndarray, tf_ids: np.ndarray, tf_seed: int, **params: Any) -> np.ndarray:
        return self._apply_np(img, {"tf_ids": tf_ids, "tf_seed": tf_seed})

    def _targets_only(self, shape: tuple[int, ...], tf_ids: np.ndarray, tf_seed: int, **targets: Any) -> dict:
        # Geometry and random fields depend only on (ids, image shape, seed): replay them on a blank canvas. The
        # canvas has the image's channels too, so TFs that draw per-pixel noise consume the generator exactly as
        # they did on the image, and a later random warp (elastic) gets the same field.
        canvas = np.zeros(tuple(shape), dtype=np.uint8)
        _, moved = self._apply_np(canvas, {"tf_ids": tf_ids, "tf_seed": tf_seed}, targets)
        return moved

    def apply_to_mask(self, mask: np.ndarray, tf_ids: np.ndarray, tf_seed: int, **params: Any) -> np.ndarray:
        shape = params.get("shape", mask.shape[:2])
        return self._targets_only(shape, tf_ids, tf_seed, mask=mask)["mask"]

    def apply_to_masks(self, masks: Any, tf_ids: np.ndarray, tf_seed: int, **params: Any) -> Any:
        if len(masks) == 0:
            return masks
        shape = params.get("shape", masks[0].shape[:2])
        moved = self._targets_only(shape, tf_ids, tf_seed, masks=list(masks))["masks"]
        return np.stack(moved) if isinstance(masks, np.ndarray) else moved

    def apply_to_bboxes(self, bboxes: np.ndarray, tf_ids: np.ndarray, tf_seed: int, **params: Any) -> np.ndarray:
        if len(bboxes) == 0:
            return bboxes
        h, w = params["shape"][:2]
        scale = np.array([w, h, w, h], dtype=np.float64)
        pix = np.asarray(bboxes, dtype=np.float64).copy()
        pix[:, :4] *= scale
        moved = self._targets_only(params["shape"], tf_ids, tf_seed, bboxes=pix)["bboxes"]
        out = np.asarray(bboxes, dtype=np.float64).copy()
        out[:, :4] = moved[:, :4] / scale
        return out.astype(np.asarray(bboxes).dtype, copy=False)

    def apply_to_keypoints(self, keypoints: np.ndarray, tf_ids: np.ndarray, tf_seed: int, **params: Any) -> np.ndarray:
        if len(keypoints) == 0:
            return keypoints
        moved = self._targets_only(params["shape"], tf_ids, tf_seed, keypoints=np.asarray(keypoints, np.float64))
        out = np.asarray(keypoints).copy()
        out[:, :2] = moved["keypoints"][:, :2]
        return out

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("policy", "seed", "interpolation")

    def get_transform_init_args(self) -> dict[str, Any]:
        if self.source is None:
            raise ValueError(
                "this LearnedPolicyTransform wraps an in-memory policy, which A.to_dict cannot reference: "
                "save it with policy.save(path) and build the transform from that path"
            )
        return {"policy": self.source, "seed": self._seed, "interpolation": self.interpolation}

    def get_dict_with_id(self) -> dict[str, Any]:
        # ReplayCompose's record stays in memory, so it may hold an in-memory policy object (A.to_dict may not).
        state = {"__class_fullname__": self.get_class_fullname(), **self.get_base_init_args()}
        state.update(
            policy=self.source if self.source is not None else self.policy_obj,
            seed=self._seed,
            interpolation=self.interpolation,
        )
        state["id"] = id(self)
        return state

    # ------------------------------------------------------------------------------------------ pickling, repr

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_stream_key"] = None  # a copy in another process must reseed for its own context
        # The copy reseeds before its first draw, so the sampler is rebuilt rather than copied: its torch.Generator
        # does not survive torch's multiprocessing pickler (spawned DataLoader workers die unpickling it).
        state["_sampler"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._sampler = BlockSampler(self.policy_obj, seed=0)

    def __repr__(self) -> str:
        src = f", source={self.source!r}" if self.source else ""
        seed = f", seed={self._seed}" if self._seed is not None else ""
        interp = f", interpolation={self.interpolation!r}" if self.interpolation != "bilinear" else ""
        return f"{type(self).__name__}(policy={self.policy_obj!r}, p={self.p}{seed}{interp}{src})"


# ---------------------------------------------------------------------------------------------- input dispatch


def _flatten(inputs: Any) -> tuple[list[Any], Any]:
    """``tree_flatten``, except that a lone array, tensor or PIL image is its own one-leaf list (spec ``None``)."""
    if isinstance(inputs, (np.ndarray, torch.Tensor)) or _is_pil(inputs):
        # The common case, and flattening even a one-leaf tree costs as much as augmenting a small image.
        return [inputs], None
    from torch.utils._pytree import tree_flatten

    return tree_flatten(inputs)


def _unflatten(flat: list[Any], spec: Any) -> Any:
    if spec is None:
        return flat[0]
    from torch.utils._pytree import tree_unflatten

    return tree_unflatten(flat, spec)


def _find_image(flat: list[Any]) -> int | None:
    """torchvision's rule: an explicit image (tv_tensors.Image, PIL) wins; else the first plain tensor or array."""
    if len(flat) == 1 and (isinstance(flat[0], np.ndarray) or _is_pil(flat[0])):
        return 0
    if not any(isinstance(x, torch.Tensor) for x in flat):
        # No tensor, so no tv_tensor either: importing torchvision would cost seconds in every fresh worker.
        pil = next((i for i, x in enumerate(flat) if _is_pil(x)), None)
        return pil if pil is not None else next((i for i, x in enumerate(flat) if isinstance(x, np.ndarray)), None)
    from torchvision import tv_tensors

    for i, x in enumerate(flat):
        if isinstance(x, tv_tensors.Image) or _is_pil(x):
            return i
    for i, x in enumerate(flat):
        if isinstance(x, torch.Tensor) and not isinstance(x, tv_tensors.TVTensor):
            return i
        if isinstance(x, np.ndarray):
            return i
    return None


def _wrap_like(out: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``out`` as the same tv_tensor type as ``like`` (torch ops on tv_tensors return plain tensors)."""
    from torchvision import tv_tensors

    return tv_tensors.wrap(out, like=like) if isinstance(like, tv_tensors.TVTensor) else out


def _is_target(x: Any) -> bool:
    from torchvision import tv_tensors

    return isinstance(x, (tv_tensors.BoundingBoxes, tv_tensors.Mask)) or type(x).__name__ == "KeyPoints"


def _image_hw(image: Any) -> tuple[int, int]:
    if _is_pil(image):
        return image.height, image.width
    if image.ndim < 2:
        layout = "(C, H, W)" if isinstance(image, torch.Tensor) else "(H, W) or (H, W, C)"
        raise ValueError(f"images must have shape {layout}, got shape {tuple(image.shape)}")
    if isinstance(image, torch.Tensor):
        return int(image.shape[-2]), int(image.shape[-1])
    return int(image.shape[0]), int(image.shape[1])


_PIL_MODES = ("L", "RGB")


def _map_single_image(image: Any, fn: Any) -> Any:
    """Run ``fn`` on the numpy HWC form of one image and give the result back in the input's type."""
    if _is_pil(image):
        if image.mode not in _PIL_MODES:
            raise ValueError(
                f"PIL images in mode {image.mode!r} are not supported; convert to 'RGB' or 'L' first "
                "(e.g. img.convert('RGB'))"
            )
        return PILImage.fromarray(fn(np.asarray(image)))
    if isinstance(image, torch.Tensor):
        if image.ndim != 3:
            raise ValueError(f"tensor images must be (C, H, W) or (B, C, H, W), got shape {tuple(image.shape)}")
        if image.shape[0] not in (1, 3):
            raise ValueError(f"tensor images must have 1 or 3 channels (C, H, W), got shape {tuple(image.shape)}")
        dtype = image.dtype
        if dtype == torch.uint8:
            arr = image.detach().cpu().permute(1, 2, 0).numpy()
        elif dtype.is_floating_point:
            arr = image.detach().cpu().float().permute(1, 2, 0).numpy()
        else:
            raise TypeError(f"tensor images must be uint8 or floating point in [0, 1], got {dtype}")
        out = torch.from_numpy(np.ascontiguousarray(fn(np.ascontiguousarray(arr)))).permute(2, 0, 1)
        return _wrap_like(out.to(device=image.device, dtype=dtype), image)
    if isinstance(image, np.ndarray):
        if image.dtype in (np.float16, np.float64):
            return fn(image.astype(np.float32)).astype(image.dtype)
        return fn(image)
    raise TypeError(f"unsupported image type {type(image).__name__}")


_BOX_FORMATS = ("XYXY", "XYWH", "CXCYWH")


def _collect_tv_targets(flat: list[Any], image_pos: int) -> tuple[dict[str, Any], list[tuple[int, str, Any]]]:
    """Gather tv_tensors targets as ops targets (pixel boxes XYXY, HWC masks, (N, 2) keypoints)."""
    if not any(isinstance(x, torch.Tensor) for i, x in enumerate(flat) if i != image_pos):
        return {}, []
    from torchvision import tv_tensors
    from torchvision.transforms.v2 import functional as TF

    targets: dict[str, Any] = {}
    slots: list[tuple[int, str, Any]] = []
    masks: list[np.ndarray] = []
    for i, x in enumerate(flat):
        if i == image_pos:
            continue
        if isinstance(x, tv_tensors.BoundingBoxes):
            if "bboxes" in targets:
                raise ValueError("only one BoundingBoxes per sample is supported")
            fmt = x.format
            if fmt.name not in _BOX_FORMATS:
                raise NotImplementedError(
                    f"bounding box format {fmt.name} is not supported; use one of {', '.join(_BOX_FORMATS)}"
                )
            xyxy = TF.convert_bounding_box_format(x, new_format=tv_tensors.BoundingBoxFormat.XYXY)
            targets["bboxes"] = xyxy.detach().cpu().double().numpy().reshape(-1, 4)
            slots.append((i, "bboxes", x))
        elif isinstance(x, tv_tensors.Mask):
            arr = x.detach().cpu()
            lead = arr.shape[:-2]
            hwc = arr.reshape(-1, *arr.shape[-2:]).permute(1, 2, 0).numpy()
            masks.append(hwc)
            slots.append((i, f"masks:{len(masks) - 1}", (x, lead)))
        elif type(x).__name__ == "KeyPoints" and isinstance(x, tv_tensors.TVTensor):
            if "keypoints" in targets:
                raise ValueError("only one KeyPoints per sample is supported")
            targets["keypoints"] = x.detach().cpu().double().numpy().reshape(-1, 2)
            slots.append((i, "keypoints", x))
    if masks:
        targets["masks"] = masks
    return targets, slots


def _restore_tv_targets(flat: list[Any], slots: list[tuple[int, str, Any]], moved: dict[str, Any], h: int, w: int):
    from torchvision import tv_tensors
    from torchvision.transforms.v2 import functional as TF

    for i, key, orig in slots:
        if key == "bboxes":
            xyxy = torch.from_numpy(moved["bboxes"][:, :4]).to(orig.dtype).reshape(orig.shape[:-1] + (4,))
            boxes = tv_tensors.BoundingBoxes(
                xyxy, format=tv_tensors.BoundingBoxFormat.XYXY, canvas_size=orig.canvas_size, device=orig.device
            )
            flat[i] = TF.convert_bounding_box_format(boxes, new_format=orig.format)
        elif key.startswith("masks:"):
            mask, lead = orig
            hwc = moved["masks"][int(key.split(":")[1])]
            chw = torch.from_numpy(np.ascontiguousarray(hwc)).reshape(h, w, -1).permute(2, 0, 1)
            flat[i] = tv_tensors.wrap(chw.reshape(*lead, h, w).to(mask.device, mask.dtype), like=mask)
        elif key == "keypoints":
            pts = torch.from_numpy(moved["keypoints"][:, :2]).to(orig.dtype).reshape(orig.shape)
            flat[i] = tv_tensors.wrap(pts.to(orig.device), like=orig)


# ---------------------------------------------------------------------------------------------- datasets


class PolicyAugmentedDataset(torch.utils.data.Dataset):
    """TANDA's end-model recipe: each sample is replaced by an augmented copy with probability ``p_augment``.

    Parameters
    ----------
    dataset:
        Any map-style dataset whose items are images or ``(image, label, ...)`` tuples.
    transform:
        Usually a :class:`LearnedPolicyTransform`; any callable on images works.
    p_augment:
        Fraction of samples replaced, or a callable ``epoch -> fraction`` (a schedule; see :meth:`set_epoch`).
    seed:
        Seed of the replace-or-keep draws. The draw for an index depends on ``(seed, epoch, index)``, on how many
        times this process has read that index (so epochs differ in the main process) and, in ``DataLoader``
        workers, on the base seed the ``DataLoader`` draws afresh each epoch from its ``generator`` and shares
        among its workers (so epochs differ there too, and one worker or eight give the same draws). No
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
        self.dataset = dataset
        self.transform = transform
        self.schedule = p_augment if callable(p_augment) else None
        self.p_augment = float(p_augment(0)) if callable(p_augment) else float(p_augment)
        if not 0.0 <= self.p_augment <= 1.0:
            raise ValueError(f"p_augment must be in [0, 1], got {self.p_augment}")
        self.seed = int(seed)
        self.epoch = 0
        self.post_transform = post_transform
        self._reads: np.ndarray | None = None

    def set_epoch(self, epoch: int) -> None:
        """Advance the schedule and the transform's random stream to ``epoch``."""
        self.epoch = int(epoch)
        if self.schedule is not None:
            self.p_augment = float(self.schedule(self.epoch))
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


# ---------------------------------------------------------------------------------------------- refined synthetic


def _resolve_refiner(refiner: Any) -> tuple[Any, str | None]:
    from .refine import Refiner

    if isinstance(refiner, Refiner):
        return refiner, None
    if isinstance(refiner, (str, os.PathLike)):
        text = os.fspath(refiner)
        if text.startswith(PRETRAINED_PREFIX):
            from .pretrained import load_pretrained

            obj = load_pretrained(text[len(PRETRAINED_PREFIX) :])
            if not isinstance(obj, Refiner):
                raise TypeError(f"pretrained artifact {text!r} is a {type(obj).__name__}, not a Refiner")
            return obj, text
        return Refiner.load(text), text
    raise TypeError(
        f"refiner must be a Refiner, a path to a refiner file or 'pretrained:<name>', got {type(refiner).__name__}"
    )


class RefineSynthetic(A.ImageOnlyTransform):
    """Refine images with a fitted MR-GAN refiner (synthetic -> real, or real -> shared domain).

    Geometry is unchanged, so masks, boxes and keypoints pass through untouched. Accepts the same inputs as
    :class:`LearnedPolicyTransform` (PIL ``"L"``/``"RGB"``, numpy HWC, CHW and BCHW tensors on any device, v2
    samples, Albumentations calls); the output has the input's type and dtype, and the refiner's output channel
    count (a grey-to-colour refiner turns an ``"L"`` image into ``"RGB"``). Height and width must be multiples of 4.

    Parameters
    ----------
    refiner:
        A :class:`~learned_augment.refine.Refiner`, a path to a refiner file, or ``"pretrained:<name>"``.
    direction:
        ``"synthetic_to_real"`` or ``"real_to_shared"`` (MR-GAN's stage-2 refinement of real images).
    p:
        Probability of refining a given call (per sample for batches).
    seed:
        Seed of the apply-or-skip draws.
    """

    class InitSchema(BaseTransformInitSchema):
        model_config = ConfigDict(arbitrary_types_allowed=True)
        refiner: Any
        direction: str = "synthetic_to_real"
        p: float = Field(ge=0, le=1)
        seed: int | None = None

    def __init__(self, refiner: Any, direction: str = "synthetic_to_real", p: float = 1.0, seed: int | None = None):
        super().__init__(p=p)
        self.refiner_obj, self.source = _resolve_refiner(refiner)
        if direction not in self.refiner_obj.directions:
            raise ValueError(
                f"direction {direction!r} is not available; this refiner has {self.refiner_obj.directions}"
            )
        self.direction = direction
        self._seed = seed
        self._rng = np.random.default_rng(seed)

    def _refine_np(self, img: np.ndarray) -> np.ndarray:
        squeeze = img.ndim == 2
        hwc = img[:, :, None] if squeeze else img
        x = torch.from_numpy(np.array(hwc, copy=True)).permute(2, 0, 1)  # a writable copy: inputs may be read-only
        out = self.refiner_obj.refine(x, self.direction).permute(1, 2, 0).numpy()
        return out[:, :, 0] if squeeze and out.shape[2] == 1 else np.ascontiguousarray(out)

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        return self._refine_np(img)

    def __call__(self, *args: Any, force_apply: bool = False, **kwargs: Any) -> Any:
        if not (args and not kwargs):
            return super().__call__(*args, force_apply=force_apply, **kwargs)
        from torch.utils._pytree import tree_flatten, tree_unflatten

        inputs = args[0] if len(args) == 1 else args
        flat, spec = tree_flatten(inputs)
        pos = _find_image(flat)
        if pos is None:
            raise TypeError("no image found in the input: pass a PIL image, a numpy HWC array or a CHW/BCHW tensor")
        image = flat[pos]
        if isinstance(image, torch.Tensor) and image.ndim == 4:
            keep = torch.from_numpy(self._rng.random(image.shape[0]) >= self.p).to(image.device)
            out = self.refiner_obj.refine(image.as_subclass(torch.Tensor), self.direction)
            if keep.any():
                if out.shape[1] != image.shape[1]:
                    raise ValueError("p < 1 on a batch needs a refiner that keeps the channel count")
                out = torch.where(keep.view(-1, 1, 1, 1), image.as_subclass(torch.Tensor), out)
            flat[pos] = _wrap_like(out, image)
            return tree_unflatten(flat, spec)
        if self.p < 1.0 and self._rng.random() >= self.p:
            return inputs
        if isinstance(image, torch.Tensor) and image.ndim == 3:
            flat[pos] = _wrap_like(self.refiner_obj.refine(image.as_subclass(torch.Tensor), self.direction), image)
        else:
            flat[pos] = _map_single_image(image, self._refine_np)
        return tree_unflatten(flat, spec)

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
