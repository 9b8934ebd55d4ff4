"""``LearnedPolicyTransform``: a learned policy as a drop-in transform.

Called with one positional argument it is a torchvision transform, on the model of torchvision v2's
``flatten -> make_params -> transform -> unflatten``: the input is flattened into leaves, the images found among them,
one call's params drawn, applied to every image and to every target with them, and the leaves put back in their
places.
Called with keyword arguments it is an Albumentations ``DualTransform`` (see ``policy_albumentations``).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from ..ops.sequence import apply_sequence
from ..pretrained import card_p
from .albumentations_base import check_some_input
from .inputs import (
    are_batches,
    boxes_clipped,
    check_input_image,
    check_target_sizes,
    collect_tv_targets,
    find_images,
    flatten,
    is_target,
    map_single_image,
    match_layout,
    restore_tv_targets,
    shared_size,
    unflatten,
    wrap_like,
)
from .policy_albumentations import PolicyAlbumentationsAdapter
from .sources import PRETRAINED_PREFIX


class LearnedPolicyTransform(PolicyAlbumentationsAdapter):
    """Apply one freshly sampled TF sequence of a learned policy per call.

    Parameters
    ----------
    policy:
        A fitted :class:`~learned_augment.policy.Policy`, a path to a policy file, or ``"pretrained:<name>"``.
        Only path and pretrained sources can be written by ``A.to_dict``.
    p:
        Probability in [0, 1] of augmenting a given call (per sample for batched tensors). Default 1.0: every call
        gets a fresh sequence, as RandAugment and TrivialAugment augment every image; with the default short
        sequences (``fit_policy``'s L = 2) this measured best (README, 'Does it work?'). Long sequences (L = 10, as
        policies were fitted before 0.2) measured best at ``p=0.5``.
    seed:
        ``None`` or an integer >= 0; makes the stream of sequences reproducible. In the main process
        (``num_workers=0``) the stream starts from ``seed`` and continues from call to call and epoch to epoch. In
        ``DataLoader`` workers each worker draws from its own stream, derived from ``seed`` and the per-worker seed
        the ``DataLoader`` draws afresh every epoch from its ``generator``: every epoch gets fresh draws with no call
        needed, and a run repeats exactly when that generator (or PyTorch, ``torch.manual_seed``) is seeded too.
        With ``seed=None`` every call draws from PyTorch's global generator (in workers: the worker's, which the
        ``DataLoader`` seeds per worker and epoch), as torchvision's random transforms do: ``torch.manual_seed``
        before a call repeats that call, and before a run repeats the run; two transforms (two views of a sample)
        draw independently. (A recurrent policy of long sequences, L = 10, then pays a few cell steps per call, a
        few hundred microseconds; a seed draws its sequences in blocks.) Inside ``A.Compose(..., seed=s)`` the
        Compose's seed replaces this one, and a generator Albumentations hands over (``set_random_state``) seeds the
        stream from then on. In a distributed job every stream also mixes in the process's rank (the process
        group's, else torchrun's ``RANK``), so ranks seeded alike draw distinct sequences.
    interpolation:
        How geometric TFs resample images: ``"bilinear"`` (default) or ``"nearest"`` (warps about 4x faster at
        224x224, and what torchvision's AutoAugment family uses by default). torchvision's ``InterpolationMode``,
        PIL's ``Image.Resampling`` and ``cv2.INTER_LINEAR`` / ``cv2.INTER_NEAREST`` are accepted too; ``A.to_dict``
        stores the mode's name. Masks always use nearest.
    strict:
        Albumentations 2's flag (refuse unknown arguments instead of warning), accepted so that pipelines written
        for it build; every argument is checked here whatever it says.

    Bad arguments raise at construction: ``TypeError`` for a wrong type, ``ValueError`` for a value out of range.

    Accepted inputs (output type, shape and dtype equal the input's):

    * PIL images in mode ``"L"``, ``"RGB"``, ``"LA"`` or ``"RGBA"``;
    * numpy arrays ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)``, uint8, or float16 / float32 / float64 in [0, 1];
    * torch tensors ``(C, H, W)`` with C in {1, 3}, uint8 or floating (float16, bfloat16, float32, float64) in
      [0, 1], on any device, and batches ``(B, C, H, W)`` (a different sequence per sample, vectorised on the
      tensor's device); ``tv_tensors.Image`` stays a ``tv_tensors.Image``;
    * images with alpha, as arrays and tensors too (2 or 4 channels: grey or RGB, then alpha): the colour comes
      out as it would without alpha, and the alpha channel moves with the geometric TFs only;
    * torchvision v2 samples (tuples, dicts) holding images plus ``BoundingBoxes`` (formats XYXY, XYWH, CXCYWH;
      rotated ones are refused), ``Mask`` and ``KeyPoints`` (any number of each), which move with the images. As
      in v2, every ``tv_tensors.Image`` and PIL image of a sample is an image (where there is none, the first plain
      tensor of two or more dimensions, else the first such array), and all get the same params: the same TF
      sequence and the same random draws (stereo pairs, multi-view samples, RGB and depth). They must then share
      height and width (and batch size), else ``ValueError``, and ``BoundingBoxes`` / ``KeyPoints`` must have the
      images' size as ``canvas_size``; ``tv_tensors.Video`` raises ``TypeError``;
    * Albumentations calls with ``image``, ``mask``, ``masks``, ``bboxes`` and ``keypoints`` (with Albumentations
      installed: ``pip install 'learned-augment[albumentations]'``);
    * for a policy whose TFs are all custom ones (:func:`~learned_augment.register_tf`, e.g. over token lists or
      audio): any data, passed to the TFs as it is given (a copy, so TFs may change it in place), as
      :func:`~learned_augment.fit_policy` passed it when fitting.

    Tensor outputs are contiguous, as torchvision's kernels return them; an input in channels-last memory (HWC
    behind the ``(C, H, W)`` shape, as ``torch.from_numpy(hwc).permute(2, 0, 1)`` gives) keeps that layout.

    Like torchvision's transforms, the transform is a ``torch.nn.Module`` (``torch.nn.Sequential``,
    ``v2.RandomApply(torch.nn.ModuleList(...))``) with no parameters: the policy is not a submodule, so ``.to()``
    and ``.train()`` leave it as it is, and ``.eval()`` does not switch augmentation off (set ``p=0`` for that).

    After each call :attr:`last_params` holds what was applied (``{"applied", "tf_ids", "tf_seed", "tf_ids_str"}``;
    for a batch ``applied`` is a list, ``tf_ids`` is ``(B, L)`` and ``tf_ids_str`` one list per sample); pass it to
    :meth:`replay` to apply exactly the same to another input.

    Keypoints (torchvision ``KeyPoints``, Albumentations ``keypoints``) are in pixel-index coordinates (a mirror maps
    ``x`` to ``W - 1 - x``), boxes in continuous ones (``x`` to ``W - x``), as in both libraries. Albumentations
    keypoint angles (radians, y axis down) turn with the image content, as ``A.HorizontalFlip`` and
    ``A.RandomRotate90`` turn them, and scales change by the square root of the local area change.

    When images differ from those the policy was fitted on (other channels, or a height or width more than twice or
    less than half the fitted one, as recorded in ``policy.provenance["image_shape"]``; without that record, colour
    TFs such as ``hue`` on 1-channel images), the first such call warns with a
    :class:`~learned_augment.PolicyMismatchWarning`, once per transform.
    """

    @classmethod
    def from_pretrained(
        cls, name: str, p: float | None = None, seed: int | None = None, interpolation: Any = "bilinear"
    ) -> LearnedPolicyTransform:
        """A transform around a shipped policy (see :func:`learned_augment.list_pretrained`); ``p`` defaults to the
        p its model card measured (:func:`~learned_augment.pretrained.card_p`)."""
        return cls(PRETRAINED_PREFIX + name, p=card_p(name) if p is None else p, seed=seed, interpolation=interpolation)

    def __call__(self, *args: Any, force_apply: bool = False, **kwargs: Any) -> Any:
        if args and not kwargs:
            return self._positional_call(args[0] if len(args) == 1 else args)
        check_some_input(self, args, kwargs)
        return super().__call__(*args, force_apply=force_apply, **kwargs)

    def replay(self, inpt: Any, params: dict[str, Any]) -> Any:
        """Apply recorded ``params`` (from :attr:`last_params`) again, drawing nothing.

        ``inpt`` is anything a positional call accepts: one image, a torchvision sample with targets, a
        ``(B, C, H, W)`` batch when the params were recorded on a batch of the same size, or custom data.
        """
        return self._positional_call(inpt, params=params)

    # ------------------------------------------------------------------------------------------ positional calls

    def _positional_call(self, inputs: Any, params: dict[str, Any] | None = None) -> Any:
        if self._custom_data:
            return self._call_on_data(inputs, params)
        flat, spec = flatten(inputs)
        positions = find_images(flat)
        if not positions:
            raise TypeError(
                "no image found in the input: pass a PIL image, a numpy HWC array or a CHW/BCHW tensor "
                f"(got {', '.join(sorted({type(x).__name__ for x in flat})) or 'nothing'}); only a policy whose TFs "
                "are all custom (register_tf) takes other data"
            )
        images = [flat[i] for i in positions]
        if are_batches(images):
            if any(is_target(x) for x in flat):
                raise ValueError("batched tensors with boxes, masks or keypoints are not supported; pass one sample")
            return self._batch_sample(flat, spec, positions, params)
        # Checked before the draw, so that a sample that cannot share one fails whatever p draws.
        h, w = shared_size(images)
        for image in images:
            check_input_image(image, alpha=True)
        check_target_sizes(flat, positions, h, w)
        params = self._single_params(params)
        if not params["applied"]:
            return inputs
        targets, slots = collect_tv_targets(flat, positions)
        if not targets and all(isinstance(x, torch.Tensor) and x.device.type != "cpu" for x in images):
            # Each image seeded alike gets the same draws; the numpy path draws differently, hence all or none here.
            ids = torch.as_tensor(params["tf_ids"]).unsqueeze(0)
            for i, image in zip(positions, images):
                out = self._batch_kernel(image.as_subclass(torch.Tensor).unsqueeze(0), ids, params["tf_seed"])[0]
                flat[i] = wrap_like(match_layout(out, image), image)
            return unflatten(flat, spec)
        if targets:
            moved_targets: Any = None
            clip = boxes_clipped(slots)

            def run(a: np.ndarray) -> np.ndarray:
                nonlocal moved_targets
                res, moved_targets = self._apply_image(a, params, targets, clip_boxes=clip)
                return res

            # The targets move once, with the first image: the others share its size and its params.
            flat[positions[0]] = map_single_image(images[0], run)
            restore_tv_targets(flat, slots, moved_targets, h, w, clip)
            positions, images = positions[1:], images[1:]
        for i, image in zip(positions, images):
            flat[i] = map_single_image(image, lambda a: self._apply_image(a, params))
        return unflatten(flat, spec)

    def _single_params(self, params: dict[str, Any] | None) -> dict[str, Any]:
        """A fresh draw (``params is None``), or recorded ``params`` checked to be a single sample's."""
        if params is None:
            return self._make_params()
        if not params.get("applied", True):
            return {"applied": False}
        if np.ndim(params["tf_ids"]) != 1:
            raise ValueError("these params were recorded on a batch; replay them on a (B, C, H, W) tensor")
        return {"applied": True, **params}

    def _call_on_data(self, data: Any, params: dict[str, Any] | None) -> Any:
        """Custom TFs on the data as given, as ``fit_policy`` applied them (nothing about the data is assumed)."""
        params = self._single_params(params)
        if not params["applied"]:
            return data
        # Like Snorkel's TFApplier: a TF that edits its input in place must not edit the caller's (dataset's) item.
        return apply_sequence(copy.deepcopy(data), params["tf_ids"], self.tfset, rng=int(params["tf_seed"]))

    # ------------------------------------------------------------------------------------------ batches

    def _batch_kernel(self, images: torch.Tensor, ids: torch.Tensor, seed: int) -> torch.Tensor:
        """Plain ``(B, C, H, W)`` tensor in, plain tensor out (callers re-wrap tv_tensors)."""
        from ..ops.batch import apply_sequence_batch

        gen = torch.Generator(device=images.device).manual_seed(seed % (2**63 - 1))
        out = apply_sequence_batch(images, ids, self.tfset, generator=gen, interpolation=self.interpolation)
        self._check_fit(int(images.shape[1]), int(images.shape[2]), int(images.shape[3]))
        return out

    def _batch_sample(self, flat: list[Any], spec: Any, positions: list[int], params: dict[str, Any] | None) -> Any:
        """A sample of ``(B, C, H, W)`` batches: one draw of B sequences, sample ``b`` of every batch gets the
        ``b``-th."""
        images = [flat[i] for i in positions]
        shapes = {(int(x.shape[0]), int(x.shape[2]), int(x.shape[3])) for x in images}
        if len(shapes) > 1:
            shown = " and ".join("x".join(str(n) for n in (b, h, w)) for b, h, w in sorted(shapes))
            raise ValueError(
                "the batches of a sample share one draw, so they must have the same batch size, height and width; "
                f"got B x H x W = {shown}"
            )
        for image in images:  # before the draw, as for single images
            check_input_image(image, alpha=True)
        drawn = self._batch_params(int(images[0].shape[0]), params)
        if drawn is not None:
            for i, image in zip(positions, images):
                flat[i] = self._apply_batch(image, *drawn)
        return unflatten(flat, spec)

    def _batch_params(self, b: int, params: dict[str, Any] | None) -> tuple[np.ndarray, np.ndarray, int] | None:
        """Per sample of a batch of ``b``: whether it is augmented (Bernoulli(p)), its sequence, and the seed; a
        fresh draw recorded as :attr:`last_params` (``None`` for an empty batch), or ``params`` checked."""
        if params is None:
            if b == 0:
                return None
            self._start_call()
            rng = self._call_numpy_rng()
            apply = rng.random(b) < self.p if self.p < 1.0 else np.ones(b, dtype=bool)
            if self._per_call:  # one batched draw from a generator of this call
                generator = torch.Generator().manual_seed(int(rng.integers(2**63 - 1)))
                ids = self.policy_obj.sample(b, generator=generator).numpy()
            else:
                ids = self._sampler.take(b)
            seed = int(rng.integers(2**63 - 1))
            self._record_draw({"applied": apply.tolist(), "tf_ids": ids, "tf_seed": seed})
            return apply, ids, seed
        if "tf_ids" not in params and not np.any(params.get("applied", True)):
            return None  # recorded on a call that augmented nothing: nothing to replay
        ids = np.asarray(params["tf_ids"])
        if ids.ndim != 2 or ids.shape[0] != b:
            raise ValueError(
                f"params hold sequences of shape {ids.shape}, which cannot be replayed on a batch of {b} images"
            )
        apply = np.broadcast_to(np.asarray(params.get("applied", True), dtype=bool), (b,))
        return apply, ids, int(params["tf_seed"])

    def _apply_batch(self, images: torch.Tensor, apply: np.ndarray, ids: np.ndarray, seed: int) -> torch.Tensor:
        """(B, C, H, W): sequence ``ids[b]`` on sample ``b`` where ``apply[b]``, on the tensor's device."""
        if not apply.any():
            return images
        plain = images.as_subclass(torch.Tensor)
        out = self._batch_kernel(plain, torch.from_numpy(np.ascontiguousarray(ids)), seed)
        if not apply.all():
            keep = torch.from_numpy(~apply).to(images.device)
            out = torch.where(keep.view(-1, 1, 1, 1), plain, out)
        return wrap_like(match_layout(out, images), images)
