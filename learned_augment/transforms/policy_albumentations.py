"""The Albumentations side of :class:`~learned_augment.transforms.LearnedPolicyTransform`: the ``DualTransform``
contract (``get_params`` draws, ``apply`` / ``apply_to_mask`` / ``apply_to_masks`` / ``apply_to_bboxes`` /
``apply_to_keypoints`` apply one draw to every target), seeding by ``A.Compose(seed=...)``, and what ``A.to_dict``
and ``A.ReplayCompose`` record. Without Albumentations these methods are never called."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..ops.image import colour_channels
from .albumentations_base import HAS_ALBUMENTATIONS
from .inputs import check_input_image, in_float32
from .policy_base import PolicyTransformBase, process_rank

_ANGLE, _SCALE = 3, 4
"""Columns of a keypoint's angle and scale in Albumentations 2's internal ``[x, y, z, angle, scale, ...]``."""

_STEP = 0.5
"""Pixels between a keypoint and the points that measure how its angle and scale change. Any step is exact for
affine TFs. A swirl's direction is then within 0.5 degrees of its derivative; an elastic field (smoothed at 1 px,
sampled by OpenCV on a 1/32 px grid) has no direction finer than about this."""


def _turn_and_scale(along: np.ndarray, across: np.ndarray, moved: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """How far (radians, towards +y) the sequence turns direction ``along`` at each keypoint, and by how much it
    scales lengths there: the square root of the local area change, so rotations, flips and shears keep a scale
    and ``zoom(z)`` multiplies it by z, as in ``A.Affine``.

    ``along``, ``across``: ``(N, 2)`` steps from each keypoint before the move; ``moved``: ``(3N, 2)`` the
    keypoints, then the points a step along, then a step across, after it.
    """
    along_after, across_after = moved[n : 2 * n] - moved[:n], moved[2 * n :] - moved[:n]

    def cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]

    # From cross and dot products, not two atan2: a keypoint nothing moved keeps its angle to the last bit.
    turn = np.arctan2(cross(along, along_after), (along * along_after).sum(axis=1))
    scale = np.sqrt(np.abs(cross(along_after, across_after)) / np.abs(cross(along, across)))
    return turn, scale


class PolicyAlbumentationsAdapter(PolicyTransformBase):
    """The ``DualTransform`` contract over the shared core."""

    def __call__(self, *args: Any, force_apply: bool = False, **kwargs: Any) -> Any:
        if HAS_ALBUMENTATIONS and not args:
            # Before the apply-or-skip draw, as on the positional path: a bad image fails whatever p draws.
            extra = getattr(self, "_additional_targets", {})
            for key in ("image", *(k for k, kind in extra.items() if kind == "image")):
                if kwargs.get(key) is not None:
                    check_input_image(kwargs[key], alpha=True)
            for key in ("images", *(k for k, kind in extra.items() if kind == "images")):
                for image in kwargs[key] if kwargs.get(key) is not None else ():
                    check_input_image(image, alpha=True)
        return super().__call__(*args, force_apply=force_apply, **kwargs)

    def set_random_seed(self, seed: int | None) -> None:
        super().set_random_seed(seed)
        if getattr(self, "_ready", False) and seed is not None:
            self._seed = int(seed)
            self._reseed_for_context(force=True)

    def set_random_state(self, random_generator: np.random.Generator, py_random: Any) -> None:
        super().set_random_state(random_generator, py_random)
        if getattr(self, "_ready", False):
            self._external_stream = True
            self._reseed([int(random_generator.integers(2**63 - 1)), process_rank(self._rank_hint)])
            self._stream_key = (os.getpid(), None, self._epoch, process_rank(self._rank_hint))

    def should_apply(self, force_apply: bool = False) -> bool:
        # Our own stream, not Albumentations' py_random: that one is copied unchanged into every DataLoader worker,
        # so all workers would make the same apply-or-skip decisions.
        self._start_call()
        if self.p <= 0.0:
            applied = False
        elif self.p >= 1.0 or force_apply:
            applied = True
        else:
            applied = self._uniform() < self.p
        if not applied:
            self.last_params = {"applied": False}
        return applied

    def get_params(self) -> dict[str, Any]:
        params = self._draw()
        self._record_draw({"applied": True, **params})
        return params

    # Albumentations' image kernel; torch's parent.apply(fn) reaches it too (see TransformModule).
    def apply(  # type: ignore[override]
        self, img: np.ndarray, tf_ids: np.ndarray | None = None, tf_seed: int = 0, **params: Any
    ) -> np.ndarray:
        if callable(img):
            return self._module_apply(img)
        # As the positional path: float16 and float64 run in float32 and come back in their dtype.
        return in_float32(lambda a: self._apply_image(a, {"tf_ids": tf_ids, "tf_seed": tf_seed}), img)

    def _targets_only(
        self, shape: tuple[int, ...], tf_ids: np.ndarray, tf_seed: int, clip_boxes: bool = True, **targets: Any
    ) -> dict:
        # Geometry and random fields depend only on (ids, image shape, seed): replay them on a blank canvas. The
        # canvas has the image's colour channels too, so TFs that draw per-pixel noise consume the generator exactly
        # as they did on the image, and a later random warp (elastic) gets the same field; an alpha channel draws
        # nothing and is left out.
        shape = tuple(shape)
        canvas = np.zeros(shape[:2] + tuple(colour_channels(c) for c in shape[2:3]), dtype=np.uint8)
        _, moved = self._apply_np(canvas, {"tf_ids": tf_ids, "tf_seed": tf_seed}, targets, clip_boxes)
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
        # Unclipped, as A.Affine returns them: Compose's postprocessing measures min_visibility against the boxes
        # as moved, then clips and filters them itself.
        moved = self._targets_only(params["shape"], tf_ids, tf_seed, clip_boxes=False, bboxes=pix)["bboxes"]
        out = np.asarray(bboxes, dtype=np.float64).copy()
        out[:, :4] = moved[:, :4] / scale
        return out.astype(np.asarray(bboxes).dtype, copy=False)

    def apply_to_keypoints(self, keypoints: np.ndarray, tf_ids: np.ndarray, tf_seed: int, **params: Any) -> np.ndarray:
        """Move ``(N, 5+)`` keypoints ``[x, y, z, angle, scale, ...]`` (Albumentations 2's layout: pixel-index x, y;
        angle in radians in [0, 2 pi), measured from the x axis towards the y axis, which points down)."""
        if len(keypoints) == 0:
            return keypoints
        kp = np.asarray(keypoints, dtype=np.float64)
        n = len(kp)
        # The angle and scale follow the sequence's local linear map, read off two more points a step along the
        # angle and a step across it, moved in the same call (exact for affine TFs, a finite difference for warps).
        along = _STEP * np.stack([np.cos(kp[:, _ANGLE]), np.sin(kp[:, _ANGLE])], axis=1)
        across = np.stack([-along[:, 1], along[:, 0]], axis=1)
        pts = np.concatenate([kp[:, :2], kp[:, :2] + along, kp[:, :2] + across])
        moved = self._targets_only(params["shape"], tf_ids, tf_seed, keypoints=pts)["keypoints"]
        turn, scale = _turn_and_scale(pts[n : 2 * n] - pts[:n], pts[2 * n :] - pts[:n], moved, n)
        out = np.asarray(keypoints).copy()
        out[:, :2] = moved[:n]
        out[:, _ANGLE] = np.mod(kp[:, _ANGLE] + turn, 2.0 * np.pi)
        # A tiny negative angle wraps to 2 pi once rounded, which Albumentations' range check refuses.
        out[out[:, _ANGLE] >= 2.0 * np.pi, _ANGLE] = 0.0
        out[:, _SCALE] = kp[:, _SCALE] * scale
        return out

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("policy", "seed", "interpolation")

    def get_transform_init_args(self) -> dict[str, Any]:
        if self.source is None:
            raise ValueError(
                f"this {type(self).__name__} wraps an in-memory policy, which A.to_dict cannot reference: "
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
