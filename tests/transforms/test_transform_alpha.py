"""Images with alpha (PIL LA and RGBA, 2 or 4 channels) through the transforms: their colour is augmented as it
would be without alpha, the alpha channel moves with the geometric TFs only, and the fit drops it."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import albumentations as A
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from transform_helpers import H, W, smooth_image

from learned_augment import PolicyAugment, PolicyMismatchWarning
from learned_augment.data import as_images, to_hwc_uint8
from learned_augment.ops import TFSet, register_tf
from learned_augment.policy import MeanFieldPolicy, UniformPolicy
from learned_augment.transforms import LearnedPolicyTransform

MIXED = TFSet(
    ["rotate(+20)", "zoom(1.15)", "hflip", "swirl(+0.6)", "brightness(1.5)", "equalize", "hue(+0.25)", "blur(1)"],
    name="mixed",
)


def _policy() -> UniformPolicy:
    return UniformPolicy(MIXED, seq_len=4)


def _alpha(seed: int = 1) -> np.ndarray:
    """(H, W) uint8: an opaque square on a half-transparent ground, off centre."""
    a = np.full((H, W), 128, np.uint8)
    a[4 + seed : 14 + seed, 6:20] = 255
    return a


def _rgba(seed: int = 0) -> np.ndarray:
    return np.dstack([smooth_image(seed), _alpha(seed)])


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_pil_images_with_alpha_keep_their_mode_and_colour(mode: str) -> None:
    rgba = _rgba()
    arr = rgba if mode == "RGBA" else rgba[..., [0, 3]]
    colour = Image.fromarray(arr[..., :-1] if mode == "RGBA" else arr[..., 0])
    with_alpha, without = LearnedPolicyTransform(_policy(), seed=3), LearnedPolicyTransform(_policy(), seed=3)
    for _ in range(6):
        out = with_alpha(Image.fromarray(arr))
        assert out.mode == mode and out.size == (W, H)
        plain = without(colour)
        np.testing.assert_array_equal(np.asarray(out)[..., :-1].reshape(np.asarray(plain).shape), np.asarray(plain))


def test_an_opaque_image_stays_opaque_and_a_transparent_one_transparent() -> None:
    # Borders are replicated: no transparent corners appear, as none would in the colour.
    t = LearnedPolicyTransform(_policy(), seed=0)
    for value in (255, 0):
        image = Image.fromarray(np.dstack([smooth_image(0), np.full((H, W), value, np.uint8)]))
        for _ in range(5):
            assert (np.asarray(t(image))[..., 3] == value).all()


def test_alpha_moves_with_the_image_in_albumentations_as_a_mask_does() -> None:
    t = LearnedPolicyTransform(_policy(), seed=0, interpolation="nearest")
    compose = A.Compose([t], seed=0)
    rgba = _rgba()
    changed = 0
    for _ in range(8):
        out = compose(image=rgba, mask=rgba[..., 3].copy())
        assert out["image"].shape == (H, W, 4) and out["image"].dtype == np.uint8
        # Under nearest resampling the alpha channel takes the pixels the mask takes.
        np.testing.assert_array_equal(out["image"][..., 3], out["mask"])
        changed += not np.array_equal(out["mask"], rgba[..., 3])
    assert changed


def test_tv_tensors_image_with_alpha_and_its_targets() -> None:
    rgba = torch.from_numpy(_rgba()).permute(2, 0, 1).contiguous()
    boxes = tv_tensors.BoundingBoxes([[6.0, 5.0, 20.0, 15.0]], format="XYXY", canvas_size=(H, W))
    with_alpha, without = LearnedPolicyTransform(_policy(), seed=5), LearnedPolicyTransform(_policy(), seed=5)
    for _ in range(5):
        img, moved = with_alpha(tv_tensors.Image(rgba), boxes)
        plain, plain_moved = without(tv_tensors.Image(rgba[:3]), boxes)
        assert isinstance(img, tv_tensors.Image) and img.shape == (4, H, W)
        assert torch.equal(img[:3], plain) and torch.equal(moved, plain_moved)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_batches_with_alpha_through_the_transform_and_the_module(dtype: torch.dtype) -> None:
    batch = torch.from_numpy(np.stack([_rgba(i) for i in range(6)])).permute(0, 3, 1, 2).contiguous()
    if dtype == torch.float32:
        batch = batch.float() / 255
    out = LearnedPolicyTransform(_policy(), seed=2)(batch)
    plain = LearnedPolicyTransform(_policy(), seed=2)(batch[:, :3].contiguous())
    assert out.shape == batch.shape and out.dtype == dtype and torch.equal(out[:, :3], plain)
    module = PolicyAugment(_policy(), seed=2)
    out = module(batch)
    assert out.shape == batch.shape and out.dtype == dtype
    assert torch.equal(out[:, :3], PolicyAugment(_policy(), seed=2)(batch[:, :3].contiguous()))
    assert not torch.equal(out[:, 3], batch[:, 3])  # the alpha moved with the geometric TFs


def test_alpha_is_not_a_channel_the_fit_check_counts() -> None:
    policy = _policy()
    policy.provenance = {"image_shape": [H, W, 3]}
    with warnings.catch_warnings():
        warnings.simplefilter("error", PolicyMismatchWarning)
        LearnedPolicyTransform(policy, seed=0)(Image.fromarray(_rgba()))
        PolicyAugment(policy, seed=0)(torch.zeros(2, 4, H, W))
    with pytest.warns(PolicyMismatchWarning, match="1 channel instead of 3"):
        LearnedPolicyTransform(policy, seed=0)(Image.fromarray(_rgba()[..., [0, 3]]))


def test_the_fit_reads_images_with_alpha_as_their_colour() -> None:
    rgba = np.stack([_rgba(i) for i in range(3)])
    np.testing.assert_array_equal(as_images(rgba), rgba[..., :3])
    np.testing.assert_array_equal(as_images([Image.fromarray(a) for a in rgba]), rgba[..., :3])
    la = Image.fromarray(rgba[0][..., [0, 3]])
    np.testing.assert_array_equal(to_hwc_uint8(la), rgba[0][..., :1])
    chw = torch.from_numpy(rgba[0]).permute(2, 0, 1)
    np.testing.assert_array_equal(to_hwc_uint8(chw), rgba[0][..., :3])


def test_other_channel_counts_are_still_refused_in_one_line() -> None:
    t = LearnedPolicyTransform(_policy(), seed=0)
    for bad in (np.zeros((H, W, 5), np.uint8), torch.zeros(5, H, W), torch.zeros(2, 6, H, W)):
        with pytest.raises(ValueError, match="channels") as info:
            t(bad)
        assert "\n" not in str(info.value) and "alpha" in str(info.value)
    with pytest.raises(ValueError, match="convert to 'RGBA'"):
        t(Image.new("PA", (W, H)))


def test_a_draw_of_custom_tfs_only_leaves_alpha_alone(tf_name: Callable[[str], str]) -> None:
    """Custom TFs of a mixed set see the colour of an image with alpha whatever else was drawn (a draw of custom
    TFs only must not take the any-data path and hand them the alpha channel)."""
    name = tf_name("invert")

    @register_tf(name)
    def invert(image: np.ndarray) -> np.ndarray:
        assert image.shape[-1] == 3, image.shape
        return 255 - image

    rgba = _rgba()
    t = LearnedPolicyTransform(MeanFieldPolicy(TFSet([name, "hflip"]), seq_len=1), seed=0)
    seen = set()
    for _ in range(12):
        out = t(rgba)
        drawn = t.last_params["tf_ids_str"][0]
        seen.add(drawn)
        np.testing.assert_array_equal(out[..., 3], rgba[..., 3] if drawn == name else rgba[:, ::-1, 3])
        if drawn == name:
            np.testing.assert_array_equal(out[..., :3], 255 - rgba[..., :3])
    assert seen == {name, "hflip"}


def test_a_palette_image_with_transparency_is_told_to_keep_it() -> None:
    image = Image.new("P", (W, H))
    image.info["transparency"] = 0
    with pytest.raises(ValueError, match="convert to 'RGBA'"):
        LearnedPolicyTransform(_policy(), seed=0)(image)
    with pytest.raises(ValueError, match="convert to 'RGB'"):
        LearnedPolicyTransform(_policy(), seed=0)(Image.new("P", (W, H)))
