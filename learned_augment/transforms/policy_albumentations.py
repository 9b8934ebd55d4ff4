"""The Albumentations side of :class:`~learned_augment.transforms.LearnedPolicyTransform`: the ``DualTransform``
contract (``get_params`` draws, ``apply`` / ``apply_to_mask`` / ``apply_to_masks`` / ``apply_to_bboxes`` /
``apply_to_keypoints`` apply one draw to every target), seeding by ``A.Compose(seed=...)``, and what ``A.to_dict``
and ``A.ReplayCompose`` record. Without Albumentations these methods are never called."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .policy_base import PolicyTransformBase, process_rank


class PolicyAlbumentationsAdapter(PolicyTransformBase):
    """The ``DualTransform`` contract over the shared core."""

    def set_random_seed(self, seed: int | None) -> None:
        super().set_random_seed(seed)
        if getattr(self, "_ready", False) and seed is not None:
            self._seed = int(seed)
            self._reseed_for_context(force=True)

    def set_random_state(self, random_generator: np.random.Generator, py_random: Any) -> None:
        super().set_random_state(random_generator, py_random)
        if getattr(self, "_ready", False):
            self._reseed([int(random_generator.integers(2**63 - 1)), process_rank(self._rank_hint)])
            self._stream_key = (os.getpid(), None, self._epoch, process_rank(self._rank_hint))

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
        return self._apply_image(img, {"tf_ids": tf_ids, "tf_seed": tf_seed})

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
