"""A policy applied to images unlike its training images (channels, size) warns once per transform."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import albumentations as A
import numpy as np
import pytest
import torch
from PIL import Image
from transform_helpers import geometric_tfset, smooth_image

import learned_augment as la
from learned_augment.policy import MeanFieldPolicy, Policy

GREY = smooth_image(0, channels=1)[..., 0]
RGB = smooth_image(0)


def mismatch_warnings(t: la.LearnedPolicyTransform, inputs: list[Any], call: Callable | None = None) -> list:
    """The PolicyMismatchWarnings raised while ``t`` (or ``call``) runs on each input, every one shown."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for x in inputs:
            (call or t)(x)
    return [w for w in caught if issubclass(w.category, la.PolicyMismatchWarning)]


def check_one_line(w: warnings.WarningMessage, *parts: str) -> None:
    text = str(w.message)
    assert "\n" not in text
    assert "warnings.filterwarnings('ignore', category=learned_augment.PolicyMismatchWarning)" in text
    for part in parts:
        assert part in text, f"{part!r} missing from {text!r}"


GREY_FORMS: dict[str, Callable[[], Any]] = {
    "numpy HW": lambda: GREY.copy(),
    "numpy HW1": lambda: GREY[..., None].copy(),
    "PIL L": lambda: Image.fromarray(GREY),
    "tensor 1HW": lambda: torch.from_numpy(GREY)[None].clone(),
    "batch B1HW": lambda: torch.from_numpy(GREY)[None, None].repeat(3, 1, 1, 1),
}


@pytest.mark.parametrize("form", list(GREY_FORMS))
def test_colour_policy_on_grey_images_warns_once(form: str) -> None:
    t = la.LearnedPolicyTransform(MeanFieldPolicy("cifar10", seq_len=3), p=1.0, seed=0)
    caught = mismatch_warnings(t, [GREY_FORMS[form]() for _ in range(4)])
    assert len(caught) == 1
    check_one_line(caught[0], "hue", "color", "1-channel")
    # Named at the caller's line, not deep inside the library.
    assert caught[0].filename == __file__


def test_colour_policy_in_albumentations_warns_once() -> None:
    t = la.LearnedPolicyTransform(MeanFieldPolicy("cifar10", seq_len=3), p=1.0, seed=0)
    pipeline = A.Compose([t])
    caught = mismatch_warnings(t, [GREY] * 3, call=lambda x: pipeline(image=x, mask=(x > 99).astype(np.uint8)))
    assert len(caught) == 1


def test_shipped_rgb_policy_on_digits_warns() -> None:
    """The case that ran silently: ``cifar10-lstm`` (hue, flips) on 1-channel 28x28 digits."""
    t = la.LearnedPolicyTransform.from_pretrained("cifar10-lstm", p=1.0, seed=0)
    digits = la.load_sample()[0][:3]
    assert len(mismatch_warnings(t, list(digits))) == 1


@pytest.mark.parametrize(
    ("tfs", "image"),
    [("cifar10", RGB), ("mnist", GREY), (None, GREY), ("cifar10", torch.from_numpy(RGB).permute(2, 0, 1))],
    ids=["colour set on RGB", "mnist set on grey", "geometric set on grey", "colour set on RGB tensor"],
)
def test_matching_images_do_not_warn(tfs: str | None, image: Any) -> None:
    t = la.LearnedPolicyTransform(MeanFieldPolicy(tfs or geometric_tfset(), seq_len=3), p=1.0, seed=0)
    assert mismatch_warnings(t, [image] * 3) == []


def fitted_on(shape: list[int]) -> Policy:
    policy = MeanFieldPolicy(geometric_tfset(), seq_len=2)
    policy.provenance = {"image_shape": shape}
    return policy


@pytest.mark.parametrize(
    ("fitted", "image", "parts"),
    [
        ([32, 32, 3], GREY, ["fitted on 32x32x3", "1 channel instead of 3"]),
        ([32, 32, 1], RGB, ["fitted on 32x32x1", "3 channels instead of 1"]),
        ([32, 32, 3], smooth_image(0, h=224, w=224), ["224x224 pixels instead of 32x32"]),
        ([224, 224, 3], RGB, ["32x32 pixels instead of 224x224"]),
        ([32, 32, 3], smooth_image(0, h=32, w=80), ["32x80 pixels instead of 32x32"]),
    ],
    ids=["grey on RGB fit", "RGB on grey fit", "far larger", "far smaller", "far wider"],
)
def test_recorded_fit_shape_is_checked(fitted: list[int], image: np.ndarray, parts: list[str], tmp_path) -> None:
    # Through a file too: the shape travels in the provenance.
    path = fitted_on(fitted).save(str(tmp_path / "p.safetensors"))
    for t in (
        la.LearnedPolicyTransform(fitted_on(fitted), p=1.0, seed=0),
        la.LearnedPolicyTransform(path, p=1.0, seed=0),
    ):
        caught = mismatch_warnings(t, [image, image])
        assert len(caught) == 1
        check_one_line(caught[0], *parts)


@pytest.mark.parametrize("size", [(32, 32), (48, 48), (20, 24), (64, 64)])
def test_sizes_near_the_fitted_one_do_not_warn(size: tuple[int, int]) -> None:
    t = la.LearnedPolicyTransform(fitted_on([32, 32, 3]), p=1.0, seed=0)
    assert mismatch_warnings(t, [smooth_image(0, h=size[0], w=size[1])]) == []


def test_a_recorded_shape_overrides_the_colour_rule() -> None:
    policy = MeanFieldPolicy("cifar10", seq_len=2)
    policy.provenance = {"image_shape": [28, 28, 1]}
    assert mismatch_warnings(la.LearnedPolicyTransform(policy, p=1.0, seed=0), [GREY]) == []


def test_filterwarnings_silences_it() -> None:
    t = la.LearnedPolicyTransform(MeanFieldPolicy("cifar10", seq_len=2), p=1.0, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=la.PolicyMismatchWarning)
        t(GREY)
    assert caught == []
