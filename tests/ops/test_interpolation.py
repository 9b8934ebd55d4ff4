"""The ``interpolation`` option of geometric TFs: nearest resampling on the CPU path, the batched path and targets."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode

from learned_augment.ops import TFSet, apply_sequence, get_tfset
from learned_augment.ops.batch import apply_sequence_batch
from learned_augment.ops.geometry import resolve_interpolation

GEOMETRIC = ["rotate(+17)", "shear_x(+0.3)", "zoom(1.2)", "translate_y(-0.13)", "swirl(+0.4)", "elastic(1.5)"]


def _image(dtype: type, channels: int | None = 3, size: int = 40) -> np.ndarray:
    rng = np.random.default_rng(5)
    shape = (size, size) if channels is None else (size, size, channels)
    x = rng.integers(0, 256, shape, dtype=np.uint8)
    return x if dtype == np.uint8 else x.astype(np.float32) / np.float32(255.0)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("bilinear", "bilinear"),
        ("nearest", "nearest"),
        ("NEAREST", "nearest"),
        ("linear", "bilinear"),
        (InterpolationMode.NEAREST, "nearest"),
        (InterpolationMode.BILINEAR, "bilinear"),
        (cv2.INTER_NEAREST, "nearest"),
        (cv2.INTER_LINEAR, "bilinear"),
        (np.int64(cv2.INTER_NEAREST), "nearest"),
        (Image.Resampling.NEAREST, "nearest"),
        (Image.Resampling.BILINEAR, "bilinear"),  # 2 in PIL's numbering, cv2.INTER_CUBIC in OpenCV's
    ],
)
def test_accepted_spellings(given: object, expected: str) -> None:
    assert resolve_interpolation(given) == expected


@pytest.mark.parametrize(
    "bad", ["bicubic", InterpolationMode.BICUBIC, cv2.INTER_CUBIC, Image.Resampling.LANCZOS, True, None, 1.0, ""]
)
def test_other_modes_are_refused_by_name(bad: object) -> None:
    with pytest.raises(ValueError, match="interpolation must be 'bilinear' or 'nearest'"):
        apply_sequence(_image(np.uint8), ["rotate(+17)"], interpolation=bad)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("channels", [None, 1, 3])
@pytest.mark.parametrize("tf", GEOMETRIC)
def test_nearest_only_copies_existing_pixels(tf: str, dtype: type, channels: int | None) -> None:
    x = _image(dtype, channels)
    near = apply_sequence(x, [tf, "rotate(-5)"], interpolation="nearest", rng=3)
    bil = apply_sequence(x, [tf, "rotate(-5)"], interpolation="bilinear", rng=3)
    assert near.shape == x.shape and near.dtype == x.dtype
    flat_x = x.reshape(-1, 1 if x.ndim == 2 else x.shape[-1])
    flat_n = near.reshape(flat_x.shape)
    # Every output pixel is some input pixel, all channels together (no blending, no new colours).
    assert {tuple(p) for p in flat_n} <= {tuple(p) for p in flat_x}
    # Bilinear blends neighbours of random pixels, so it makes values nearest cannot.
    assert not np.array_equal(near, bil)


def test_nearest_and_bilinear_agree_on_exact_maps() -> None:
    """Flips and whole-pixel shifts land on pixel centres: both modes give the same exact result."""
    x = _image(np.uint8)
    for seq in (["hflip"], ["vflip", "hflip"], ["translate_x(+0.25)"], ["rotate(+90)"]):
        assert np.array_equal(apply_sequence(x, seq, interpolation="nearest"), apply_sequence(x, seq)), seq


def test_targets_do_not_depend_on_interpolation() -> None:
    x = _image(np.uint8)
    mask = (np.arange(40 * 40).reshape(40, 40) % 7).astype(np.uint8)
    targets = {"mask": mask, "bboxes": np.array([[5.0, 6.0, 20.0, 30.0, 1.0]]), "keypoints": np.array([[7.0, 9.0]])}
    seq = ["rotate(+17)", "swirl(+0.4)", "zoom(1.2)", "elastic(1.5)"]
    _, a = apply_sequence(x, seq, targets=targets, rng=1, interpolation="nearest")
    _, b = apply_sequence(x, seq, targets=targets, rng=1, interpolation="bilinear")
    assert np.array_equal(a["mask"], b["mask"])
    np.testing.assert_array_equal(a["bboxes"], b["bboxes"])
    np.testing.assert_array_equal(a["keypoints"], b["keypoints"])


def test_nearest_mask_and_image_move_together() -> None:
    """A label mask that equals the image's own channel stays equal to it under nearest resampling."""
    x = _image(np.uint8, channels=None)
    seq = ["rotate(+17)", "shear_x(+0.3)", "zoom(1.2)", "swirl(+0.4)"]
    img, t = apply_sequence(x, seq, targets={"mask": x.copy()}, interpolation="nearest")
    assert np.array_equal(img, t["mask"])


MASK_SEQUENCES = [
    ["zoom(1.1)"],  # even sizes put many source coordinates exactly half-way between two pixels
    ["zoom(1.25)"],
    ["zoom(0.8)", "translate_x(+0.25)"],
    ["rotate(+17)", "shear_y(-0.3)"],
    ["hflip", "zoom(1.25)", "swirl(+0.4)"],
    ["elastic(1.5)", "zoom(1.1)"],
]


@pytest.mark.parametrize("seq", MASK_SEQUENCES, ids=lambda s: "+".join(s))
@pytest.mark.parametrize("channels", [None, 1, 3])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize(("h", "w"), [(40, 60), (41, 61)])
def test_nearest_mask_equals_the_image_pixel_for_pixel(
    seq: list[str], channels: int | None, dtype: type, h: int, w: int
) -> None:
    rng = np.random.default_rng(h + w)
    x = rng.integers(0, 256, (h, w) if channels is None else (h, w, channels), dtype=np.uint8)
    x = x if dtype == np.uint8 else x.astype(np.float32) / np.float32(255.0)
    img, t = apply_sequence(x, seq, targets={"mask": x.copy(), "masks": [x.copy()]}, rng=1, interpolation="nearest")
    assert np.array_equal(img, t["mask"]) and np.array_equal(img, t["masks"][0])


@pytest.mark.parametrize("seq", MASK_SEQUENCES, ids=lambda s: "+".join(s))
def test_masks_of_any_dtype_take_the_pixels_the_image_takes(seq: list[str]) -> None:
    """Masks OpenCV cannot resample (int64 labels, bool) pick the same source pixels as the nearest image."""
    h, w = 40, 60
    x = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    labels = np.arange(h * w, dtype=np.int64).reshape(h, w)
    on = x[..., 0] > 127
    img, t = apply_sequence(x, seq, targets={"masks": [labels, on]}, rng=1, interpolation="nearest")
    assert t["masks"][0].dtype == np.int64 and t["masks"][1].dtype == np.bool_
    assert np.array_equal(img, x.reshape(h * w, 3)[t["masks"][0]])
    assert np.array_equal(img[..., 0] > 127, t["masks"][1])


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_batched_nearest_matches_cpu_nearest(dtype: torch.dtype) -> None:
    ts = get_tfset("cifar10")
    rng = np.random.default_rng(2)
    images = np.stack([_image(np.uint8, 3, size=48) for _ in range(6)])
    images = (images + rng.integers(0, 256, images.shape, dtype=np.uint8)).astype(np.uint8)
    # Affine runs (one grid_sample per run) and swirls (the remap path); elastic draws differ between the paths.
    geo = [i for i, e in enumerate(ts) if e.tf.kind.name == "AFFINE" or e.name == "swirl"]
    assert any(ts[i].name == "swirl" for i in geo)
    ids = rng.choice(geo, size=(6, 4))
    cpu = np.stack([apply_sequence(im, s, ts, interpolation="nearest") for im, s in zip(images, ids)])
    t = torch.from_numpy(images).permute(0, 3, 1, 2)
    t = t if dtype == torch.uint8 else t.to(dtype) / 255.0
    out = apply_sequence_batch(t, ids, ts, interpolation="nearest").permute(0, 2, 3, 1)
    got = out.numpy() if dtype == torch.uint8 else np.rint(out.numpy() * 255.0).astype(np.uint8)
    # Nearest picks whole pixels: the two paths may disagree only where a source coordinate is a near-tie (more
    # often after a swirl, whose maps the two paths compute with different float32 trigonometry: ~1.3% here).
    assert (got != cpu).any(axis=-1).mean() < 0.03
    bil = apply_sequence_batch(torch.from_numpy(images).permute(0, 3, 1, 2), ids, ts).permute(0, 2, 3, 1).numpy()
    assert (bil != cpu).any(axis=-1).mean() > 0.2


def test_batched_path_refuses_other_modes() -> None:
    with pytest.raises(ValueError, match="interpolation must be"):
        apply_sequence_batch(torch.zeros(1, 3, 8, 8), np.zeros((1, 1), int), TFSet(["rotate(+5)"]), interpolation=3)


def test_a_refused_plain_int_points_to_pils_enum() -> None:
    # Pillow's plain-int BILINEAR is 2 (OpenCV's INTER_CUBIC): the error names the spelling that works.
    with pytest.raises(ValueError, match=r"for PIL pass Image\.Resampling\.BILINEAR"):
        resolve_interpolation(2)
    assert resolve_interpolation(Image.Resampling.BILINEAR) == "bilinear"
    with pytest.raises(ValueError) as refused:
        resolve_interpolation(Image.Resampling.BICUBIC)  # already PIL's enum: no hint about plain integers
    assert "plain integers" not in str(refused.value)
