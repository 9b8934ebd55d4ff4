"""``LearnedPolicyTransform(interpolation=...)`` on every call path, and through serialisation."""

from __future__ import annotations

import json
import pickle

import albumentations as A
import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode, v2
from transform_helpers import smooth_image

from learned_augment.ops import TFSet
from learned_augment.policy import MeanFieldPolicy
from learned_augment.transforms import LearnedPolicyTransform


def _pixels(a: np.ndarray) -> set[tuple[int, ...]]:
    return {tuple(p) for p in a.reshape(-1, a.shape[-1])}


@pytest.mark.parametrize("mode", ["nearest", InterpolationMode.NEAREST, cv2.INTER_NEAREST])
def test_nearest_on_numpy_pil_tensor_and_batch(geo_policy: MeanFieldPolicy, mode: object) -> None:
    t = LearnedPolicyTransform(geo_policy, p=1.0, seed=0, interpolation=mode)
    assert t.interpolation == "nearest"
    img = smooth_image(1)
    seen = _pixels(img)
    assert _pixels(t(img)) <= seen
    assert _pixels(np.asarray(t(Image.fromarray(img)))) <= seen
    chw = torch.from_numpy(img).permute(2, 0, 1)
    assert _pixels(t(chw).permute(1, 2, 0).numpy()) <= seen
    batch = t(torch.stack([chw] * 4)).permute(0, 2, 3, 1).numpy()
    assert all(_pixels(b) <= seen for b in batch)
    assert _pixels(A.Compose([t], seed=2)(image=img)["image"]) <= seen


def test_default_is_bilinear_and_makes_new_values(geo_policy: MeanFieldPolicy) -> None:
    t = LearnedPolicyTransform(geo_policy, p=1.0, seed=0)
    assert t.interpolation == "bilinear" and "interpolation" not in repr(t)
    img = smooth_image(1)
    assert any(not _pixels(t(img)) <= _pixels(img) for _ in range(5))


def test_same_draws_either_way(geo_policy: MeanFieldPolicy) -> None:
    """The mode changes resampling only: the sampled sequences (and so the targets) are the same."""
    a = LearnedPolicyTransform(geo_policy, p=1.0, seed=4)
    b = LearnedPolicyTransform(geo_policy, p=1.0, seed=4, interpolation="nearest")
    img = smooth_image(2)
    for _ in range(5):
        a(img), b(img)
        assert np.array_equal(a.last_params["tf_ids"], b.last_params["tf_ids"])


def test_bad_mode_is_refused(geo_policy: MeanFieldPolicy) -> None:
    with pytest.raises(ValueError, match="interpolation must be 'bilinear' or 'nearest'"):
        LearnedPolicyTransform(geo_policy, interpolation="bicubic")


def test_kept_by_to_dict_pickle_repr_and_v2_compose(geo_policy: MeanFieldPolicy, geo_policy_path: str) -> None:
    t = LearnedPolicyTransform(geo_policy_path, seed=3, interpolation=InterpolationMode.NEAREST)
    assert "interpolation='nearest'" in repr(t)
    spec = json.loads(json.dumps(A.to_dict(A.Compose([t]))))
    assert spec["transform"]["transforms"][0]["interpolation"] == "nearest"
    restored = A.from_dict(spec).transforms[0]
    assert restored.interpolation == "nearest"
    assert pickle.loads(pickle.dumps(t)).interpolation == "nearest"
    img = smooth_image(3)
    out = v2.Compose([v2.ToImage(), geo_policy.as_transform(p=1.0, seed=1, interpolation="nearest")])(img)
    assert _pixels(out.permute(1, 2, 0).numpy()) <= _pixels(img)
    assert LearnedPolicyTransform.from_pretrained("cifar10-lstm", interpolation="nearest").interpolation == "nearest"


@pytest.mark.parametrize("tfs", [["zoom(1.1)"], ["zoom(1.25)", "rotate(+17)", "swirl(+0.4)", "hflip"]])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_nearest_masks_equal_the_image_on_every_call_path(tfs: list[str], dtype: type) -> None:
    """Zooms on even sizes put source coordinates half-way between pixels: the mask must break those ties as the
    image does."""
    policy = MeanFieldPolicy(TFSet(tfs), seq_len=len(tfs))
    t = LearnedPolicyTransform(policy, p=1.0, seed=0, interpolation="nearest")
    im = np.random.default_rng(0).integers(0, 256, (40, 60), dtype=np.uint8)
    im = im if dtype == np.uint8 else im.astype(np.float32) / np.float32(255.0)
    for _ in range(4):
        out = t(image=im, mask=im.copy(), masks=[im.copy()])
        what = t.last_params["tf_ids_str"]
        assert np.array_equal(out["image"], out["mask"]) and np.array_equal(out["image"], out["masks"][0]), what
        out = A.Compose([t])(image=im, mask=im.copy())
        assert np.array_equal(out["image"], out["mask"]), t.last_params["tf_ids_str"]
    u8 = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (1, 40, 60), dtype=np.uint8))
    for _ in range(4):
        image, mask = t(tv_tensors.Image(u8), tv_tensors.Mask(u8[0]))
        assert torch.equal(image[0], mask), t.last_params["tf_ids_str"]
