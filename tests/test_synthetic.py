"""The synthetic digit renderer: shapes, labels, determinism, and MNIST-like layout."""

from __future__ import annotations

import numpy as np
import pytest

from learned_augment.synthetic import render_digits


def test_shapes_dtypes_and_balanced_labels() -> None:
    images, labels = render_digits(203, seed=1)
    assert images.shape == (203, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (203,) and labels.dtype == np.int64
    counts = np.bincount(labels, minlength=10)
    assert counts.max() - counts.min() <= 1


def test_same_seed_same_images_other_seed_other_images() -> None:
    a, la = render_digits(40, seed=7)
    b, lb = render_digits(40, seed=7)
    c, _ = render_digits(40, seed=8)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    assert not np.array_equal(a, c)


def test_white_digit_on_black_centred() -> None:
    images, _ = render_digits(100, seed=2, noise=0.0)
    assert images.max() == 255
    border = np.concatenate([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], axis=1)
    assert border.mean() < 2.0, "strokes should stay off the border, like MNIST's 20x20 box in 28x28"
    ink = images.reshape(100, -1).mean(1)
    assert (ink > 5).all(), "every image holds a visible digit"


def test_options_sizes_digits_and_noise() -> None:
    images, labels = render_digits(30, size=16, seed=0, digits=[3, 8], blur=0.0, noise=20.0)
    assert images.shape == (30, 16, 16)
    assert set(labels.tolist()) == {3, 8}
    assert images[:, 0].mean() > 1.0, "noise reaches the background"
    assert render_digits(0)[0].shape == (0, 28, 28)


def test_stroke_width_is_controlled() -> None:
    thin, _ = render_digits(60, seed=3, stroke=(1.0, 1.0), blur=0.0)
    thick, _ = render_digits(60, seed=3, stroke=(3.5, 3.5), blur=0.0)
    assert thick.mean() > 1.5 * thin.mean()


@pytest.mark.parametrize(
    "kwargs",
    [{"n": -1}, {"n": 2.5}, {"size": 4}, {"digits": []}, {"digits": [10]}, {"fonts": []}, {"stroke": (3, 1)}],
)
def test_bad_arguments(kwargs: dict) -> None:
    args = {"n": 4, **kwargs}
    with pytest.raises(ValueError):
        render_digits(**args)
