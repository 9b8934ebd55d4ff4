"""The batched torch path agrees with the numpy path image by image, keeps the tensor contract, and refuses bad input.

Parametrised over every entry of every named TF set, so a new entry is compared without touching this file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from learned_augment.ops import (
    NAMED_SETS,
    TF,
    Kind,
    TFEntry,
    TFSet,
    apply_sequence,
    apply_sequence_batch,
    batch_kernels,
    geometry,
    get_tf,
    get_tfset,
    register,
    register_tf,
    registered_tfs,
)
from learned_augment.ops import batch as batch_mod

H, W = 28, 32  # not square, so a swapped height and width shows; fits a padded 28x28 MNIST digit

# Tolerances, in grey levels (0..255), of deterministic single TFs against the CPU path. Resampling dominates:
# OpenCV 4.x warps at 1/32-pixel fixed-point positions (uint8 also with fixed-point weights) where grid_sample uses
# exact ones, so a pixel on a sharp edge (MNIST strokes: 255 levels over ~2 pixels) moves by up to 255/64 ~ 4 levels
# plus rounding (measured with OpenCV 4.10: max 5.3, mean <= 0.2); OpenCV 5.0 resamples exactly (max 1: rounding
# ties). cv2.GaussianBlur on uint8 uses 8-bit fixed-point weights: +-1 level.
SINGLE_MEAN_TOL = 0.5
SINGLE_MAX_TOL = 6.0
# Length-10 sequences: a 1-level difference can be magnified by later TFs (a posterize step, equalize's histogram,
# contrast 1.5), so a few pixels may differ by much more; the mean stays low (measured over 10 draws per set and
# form: mean <= 0.34, at most 1.1% of pixels beyond 4 levels with OpenCV 4.10; <= 0.07 and 0.3% with 5.0).
SEQ_MEAN_TOL = 1.0
SEQ_OUTLIER_LEVELS = 4.0
SEQ_OUTLIER_FRACTION = 0.02
# Point TFs: uint8 images use the CPU path's own look-up tables (exact); float images evaluate the same functions
# in float32 instead of float64.
POINT_FLOAT_TOL = 1e-5

ALL_SETS = {name: make() for name, make in NAMED_SETS.items()}


def entry_cases(select: Callable[[TFEntry], bool]) -> list[Any]:
    """``(set name, index)`` of each distinct entry of the named sets that ``select`` accepts (first set holding it)."""
    first: dict[str, Any] = {}
    for name, ts in ALL_SETS.items():
        for k, entry in enumerate(ts):
            if select(entry) and entry.id not in first:
                first[entry.id] = pytest.param(name, k, id=f"{name}-{entry.id}")
    return list(first.values())


DETERMINISTIC_CASES = entry_cases(lambda e: not e.tf.uses_rng)
RANDOM_CASES = entry_cases(lambda e: e.tf.uses_rng)
POINT_CASES = entry_cases(lambda e: e.tf.kind == Kind.POINT)


def scene(seed: int, h: int = H, w: int = W) -> np.ndarray:
    """An (H, W, 3) uint8 test image: colour gradients, a disc and a box, lightly blurred like a photograph."""
    r = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([xs / w, ys / h, 0.5 + 0.3 * np.sin(xs / 5 + ys / 7)], axis=-1)
    cx, cy = r.uniform(0.3, 0.7) * w, r.uniform(0.3, 0.7) * h
    img[(xs - cx) ** 2 + (ys - cy) ** 2 < (0.2 * min(h, w)) ** 2] = r.uniform(0.0, 1.0, 3)
    y0, x0 = r.integers(0, h // 2), r.integers(0, w // 2)
    img[y0 : y0 + h // 4, x0 : x0 + w // 3] = r.uniform(0.0, 1.0, 3)
    img = cv2.GaussianBlur(img, (3, 3), 0.8)
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def scenes() -> np.ndarray:
    """(4, H, W, 3) uint8 colour scenes."""
    return np.stack([scene(s) for s in range(4)])


@pytest.fixture(scope="module")
def digits(mnist_images: np.ndarray) -> np.ndarray:
    """(4, H, W, 1) uint8 MNIST digits, padded to the test size."""
    pad = ((0, 0), (0, H - 28), ((W - 28) // 2, W - 28 - (W - 28) // 2))
    return np.pad(mnist_images[:4], pad)[..., None]


def to_batch(images: np.ndarray) -> torch.Tensor:
    """(B, H, W, C) numpy -> (B, C, H, W) tensor."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()


def to_numpy(batch: torch.Tensor) -> np.ndarray:
    return batch.permute(0, 2, 3, 1).numpy()


def levels(images: np.ndarray) -> np.ndarray:
    """Images on the 0..255 scale as float64, whatever their dtype."""
    x = images.astype(np.float64)
    return x if images.dtype == np.uint8 else x * 255.0


def cpu_reference(images: np.ndarray, ids: np.ndarray, tfset: TFSet) -> np.ndarray:
    """``apply_sequence`` image by image: (B, H, W, C) -> (B, H, W, C)."""
    return np.stack([apply_sequence(img, list(seq), tfset).reshape(img.shape) for img, seq in zip(images, ids)])


def compare(images: np.ndarray, ids: np.ndarray, tfset: TFSet) -> np.ndarray:
    """Absolute differences, in grey levels, between the batched and the CPU path."""
    out = to_numpy(apply_sequence_batch(to_batch(images), ids, tfset))
    assert out.dtype == images.dtype
    return np.abs(levels(out) - levels(cpu_reference(images, ids, tfset)))


def input_forms(scenes: np.ndarray, digits: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "u8_rgb": scenes,
        "f32_rgb": scenes.astype(np.float32) / np.float32(255.0),
        "u8_gray": digits,
        "f32_gray": digits.astype(np.float32) / np.float32(255.0),
    }


def deterministic_ids(tfset: TFSet) -> np.ndarray:
    return np.array([k for k, e in enumerate(tfset) if not e.tf.uses_rng])


# ------------------------------------------------------------------------------------------------ single entries


@pytest.mark.parametrize(("set_name", "k"), DETERMINISTIC_CASES)
def test_entry_matches_cpu_path(set_name: str, k: int, scenes: np.ndarray, digits: np.ndarray) -> None:
    ts = ALL_SETS[set_name]
    for form, images in input_forms(scenes, digits).items():
        d = compare(images, np.full((len(images), 1), k), ts)
        assert d.mean() <= SINGLE_MEAN_TOL, f"{form}: mean diff {d.mean():.3f}"
        assert d.max() <= SINGLE_MAX_TOL, f"{form}: max diff {d.max():.3f}"


@pytest.mark.parametrize(("set_name", "k"), RANDOM_CASES)
def test_random_entry_contract(set_name: str, k: int, scenes: np.ndarray) -> None:
    """Random TFs draw from torch, not numpy, so they cannot equal the CPU path: check the contract instead."""
    ts = ALL_SETS[set_name]
    ids = np.full((len(scenes), 2), k)
    for images in (to_batch(scenes), to_batch(scenes).float() / 255.0):
        first = apply_sequence_batch(images, ids, ts, generator=torch.Generator().manual_seed(3))
        again = apply_sequence_batch(images, ids, ts, generator=torch.Generator().manual_seed(3))
        other = apply_sequence_batch(images, ids, ts, generator=torch.Generator().manual_seed(4))
        assert first.shape == images.shape and first.dtype == images.dtype
        assert torch.equal(first, again)
        assert not torch.equal(first, other)
        assert not torch.equal(first, images)
        assert float(first.min()) >= 0 and float(first.max()) <= (255 if images.dtype == torch.uint8 else 1)
        # Each sample draws its own randomness.
        assert not torch.equal(first[0], first[1])


@pytest.mark.parametrize(("set_name", "k"), POINT_CASES)
def test_point_entries_are_exact(set_name: str, k: int, scenes: np.ndarray) -> None:
    ts = ALL_SETS[set_name]
    ids = np.full((len(scenes), 1), k)
    assert compare(scenes, ids, ts).max() == 0
    # Float values between the uint8 grid points, where a look-up table would have to interpolate.
    off_grid = np.clip(scenes.astype(np.float32) / np.float32(255.0) + np.float32(0.3 / 255.0), 0.0, 1.0)
    assert compare(off_grid, ids, ts).max() / 255.0 <= POINT_FLOAT_TOL


@pytest.mark.parametrize("set_name", ["cifar10", "default"])
def test_point_runs_are_exact(set_name: str, scenes: np.ndarray) -> None:
    ts = ALL_SETS[set_name]
    pool = [k for k, e in enumerate(ts) if e.tf.kind == Kind.POINT]
    ids = np.random.default_rng(1).choice(pool, size=(len(scenes), 10))
    assert compare(scenes, ids, ts).max() == 0
    off_grid = np.clip(scenes.astype(np.float32) / np.float32(255.0) + np.float32(0.3 / 255.0), 0.0, 1.0)
    assert compare(off_grid, ids, ts).max() / 255.0 <= POINT_FLOAT_TOL


# ------------------------------------------------------------------------------------------------ random TFs


def test_noise_has_the_requested_spread() -> None:
    images = torch.full((8, 3, 32, 32), 0.5)
    out = apply_sequence_batch(images, np.zeros((8, 1), dtype=int), TFSet(["noise(0.04)"]))
    delta = out - images
    assert abs(float(delta.mean())) < 0.002
    assert float(delta.std()) == pytest.approx(0.04, rel=0.05)


def test_cutout_zeroes_one_square_per_sample() -> None:
    images = torch.full((16, 1, H, W), 200, dtype=torch.uint8)
    out = apply_sequence_batch(images, np.zeros((16, 1), dtype=int), TFSet(["cutout(0.25)"]))
    side = round(0.25 * min(H, W))
    for zeroed in (out[:, 0] == 0).numpy():
        rows, cols = np.flatnonzero(zeroed.any(1)), np.flatnonzero(zeroed.any(0))
        assert 1 <= rows.size <= side and 1 <= cols.size <= side
        # One axis-aligned rectangle, clipped by the border only.
        assert zeroed.sum() == rows.size * cols.size
        assert rows.size == side or rows[0] == 0 or rows[-1] == H - 1
        assert cols.size == side or cols[0] == 0 or cols[-1] == W - 1


def test_elastic_smoothing_matches_opencv() -> None:
    noise = np.random.default_rng(0).uniform(-1, 1, size=(2, 2, H, W)).astype(np.float32)
    smooth = batch_kernels.smooth_fields(torch.from_numpy(noise)).numpy()
    for i, j in np.ndindex(2, 2):
        ref = cv2.GaussianBlur(noise[i, j], (7, 7), 1.0, borderType=cv2.BORDER_CONSTANT)
        np.testing.assert_allclose(smooth[i, j], ref, atol=1e-6)


def test_remap_matches_opencv_on_elastic_maps(scenes: np.ndarray) -> None:
    img = scenes[0].astype(np.float32) / np.float32(255.0)
    wp = geometry.elastic_warp(3.0, H, W, np.random.default_rng(1))
    ref = cv2.remap(img, wp.map_x, wp.map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    got = batch_mod._remap(to_batch(img[None]), torch.from_numpy(wp.map_x)[None], torch.from_numpy(wp.map_y)[None])
    assert np.abs(to_numpy(got)[0] - ref).max() * 255 <= SINGLE_MAX_TOL


def test_elastic_moves_digits_slightly(digits: np.ndarray) -> None:
    images = to_batch(digits)
    out = apply_sequence_batch(images, np.zeros((4, 1), dtype=int), TFSet(["elastic(1.5)"]))
    changed = np.abs(levels(to_numpy(out)) - levels(digits))
    # A small, smooth displacement: most of the digit moves a little, the background stays black.
    assert 0.5 < changed.mean() < 30
    assert (to_numpy(out)[:, :2] == 0).all()


# ------------------------------------------------------------------------------------------------ sequences


@pytest.mark.parametrize("set_name", list(ALL_SETS))
def test_long_mixed_sequences_match_cpu_path(set_name: str, scenes: np.ndarray, digits: np.ndarray) -> None:
    ts = ALL_SETS[set_name]
    pool = deterministic_ids(ts)
    rng = np.random.default_rng(7)
    for form, images in input_forms(scenes, digits).items():
        ids = rng.choice(pool, size=(len(images), 10))
        d = compare(images, ids, ts)
        assert d.mean() <= SEQ_MEAN_TOL, f"{form}: mean diff {d.mean():.3f}"
        assert (d > SEQ_OUTLIER_LEVELS).mean() <= SEQ_OUTLIER_FRACTION, f"{form}: {(d > SEQ_OUTLIER_LEVELS).mean()}"


def test_fusion_of_runs_matches_cpu_path(scenes: np.ndarray) -> None:
    """Runs of affine and point entries of different lengths, ending at different steps in different samples."""
    ts = get_tfset("default")
    seqs = [
        ["rotate(+15)", "shear_x(+0.1)", "zoom(1.1)", "brightness(1.25)", "contrast(0.75)", "hflip", "hue(+0.05)",
         "translate_x(+0.1)", "posterize(4)", "solarize(0.75)"],
        ["brightness(0.75)", "gamma(1.4)", "rotate(-5)", "hflip", "hflip", "color(1.4)", "contrast(1.5)",
         "posterize(6)", "shear_y(+0.1)", "zoom(0.9)"],
        ["hflip", "hflip", "equalize", "rotate(+30)", "rotate(-30)", "sharpness(1.75)", "autocontrast",
         "gamma(0.7)", "gamma(1.4)", "blur(1)"],
        ["translate_y(-0.25)", "shear_x(-0.3)", "shear_y(+0.3)", "zoom(1.25)", "rotate(+5)", "translate_x(+0.25)",
         "hflip", "rotate(-15)", "zoom(0.8)", "shear_y(-0.1)"],
    ]  # fmt: skip
    ids = np.array([[ts.index_of(t) for t in s] for s in seqs])
    for images in (scenes, scenes.astype(np.float32) / np.float32(255.0)):
        d = compare(images, ids, ts)
        assert d.mean() <= SEQ_MEAN_TOL
        assert (d > SEQ_OUTLIER_LEVELS).mean() <= SEQ_OUTLIER_FRACTION


def test_each_sample_gets_its_own_sequence(scenes: np.ndarray) -> None:
    ts = get_tfset("cifar10")
    images = to_batch(np.stack([scenes[0]] * 4))
    a = [ts.index_of(t) for t in ["rotate(+5)", "hue(+0.25)", "contrast(1.5)"]]
    b = [ts.index_of(t) for t in ["hflip", "brightness(0.5)", "swirl(-0.25)"]]
    out = apply_sequence_batch(images, np.array([a, b, a, b]), ts)
    assert torch.equal(out[0], out[2]) and torch.equal(out[1], out[3])
    assert not torch.equal(out[0], out[1])


def test_samples_do_not_depend_on_the_rest_of_the_batch(scenes: np.ndarray) -> None:
    ts = get_tfset("default")
    ids = np.random.default_rng(3).choice(deterministic_ids(ts), size=(4, 10))
    images = to_batch(scenes)
    whole = apply_sequence_batch(images, ids, ts)
    for i in range(4):
        assert torch.equal(whole[i : i + 1], apply_sequence_batch(images[i : i + 1], ids[i : i + 1], ts))


@pytest.mark.parametrize("size", [(1, 1), (1, 5), (4, 1), (3, 2)])
def test_tiny_images_match_cpu_path(size: tuple[int, int]) -> None:
    """One sample per deterministic entry of the default set: every TF at once, on images a kernel is wider than."""
    ts = get_tfset("default")
    ks = deterministic_ids(ts)
    images = np.random.default_rng(0).integers(0, 256, (len(ks), *size, 3), dtype=np.uint8)
    d = compare(images, ks[:, None], ts)
    assert d.max() <= SINGLE_MAX_TOL


def test_runs_under_deterministic_algorithms(scenes: np.ndarray) -> None:
    ts = get_tfset("default")
    ids = np.random.default_rng(2).integers(0, len(ts), size=(4, 10))
    expected = apply_sequence_batch(to_batch(scenes), ids, ts)
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        assert torch.equal(apply_sequence_batch(to_batch(scenes), ids, ts), expected)
    finally:
        torch.use_deterministic_algorithms(before)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_an_empty_batch_returns_an_empty_copy(dtype: torch.dtype) -> None:
    images = torch.zeros((0, 3, 8, 8), dtype=dtype)
    out = apply_sequence_batch(images, np.zeros((0, 2), dtype=int), "cifar10")
    assert out.shape == (0, 3, 8, 8) and out.dtype == dtype and out is not images
    with pytest.raises(ValueError, match="0 rows but there are 2 images"):
        apply_sequence_batch(torch.zeros((2, 3, 8, 8), dtype=dtype), np.zeros((0, 2), dtype=int), "cifar10")


def test_empty_sequences_return_a_copy(scenes: np.ndarray) -> None:
    images = to_batch(scenes).float() / 255.0
    out = apply_sequence_batch(images, np.zeros((4, 0), dtype=int), "default")
    assert torch.equal(out, images) and out.data_ptr() != images.data_ptr()


def test_none_generator_is_deterministic(scenes: np.ndarray) -> None:
    ts = get_tfset("default")
    ids = np.random.default_rng(0).integers(0, len(ts), size=(4, 10))
    images = to_batch(scenes)
    assert torch.equal(apply_sequence_batch(images, ids, ts), apply_sequence_batch(images, ids, ts))


# ------------------------------------------------------------------------------------------------ tensor contract


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("channels", [1, 3])
def test_shape_dtype_device_preserved(device: str, dtype: torch.dtype, channels: int, scenes: np.ndarray) -> None:
    ts = get_tfset("default")
    images = to_batch(scenes)[:, :channels].to(device)
    images = images if dtype == torch.uint8 else (images.to(dtype) / 255).clamp(0, 1)
    before = images.clone()
    ids = torch.randint(0, len(ts), (4, 10), generator=torch.Generator().manual_seed(0))
    out = apply_sequence_batch(images, ids, ts)
    assert out.shape == images.shape and out.dtype == dtype and out.device == images.device
    assert torch.equal(images, before), "the input batch must not be modified"
    assert not torch.equal(out, images)


def test_non_contiguous_input(scenes: np.ndarray) -> None:
    ts = get_tfset("default")
    ids = np.random.default_rng(4).integers(0, len(ts), size=(4, 10))
    images = to_batch(scenes)
    expected = apply_sequence_batch(images, ids, ts)
    assert torch.equal(apply_sequence_batch(images.to(memory_format=torch.channels_last), ids, ts), expected)
    wide = torch.cat([images, images], dim=3)[..., ::2]
    assert torch.equal(apply_sequence_batch(wide, ids, ts), apply_sequence_batch(wide.contiguous(), ids, ts))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(scenes: np.ndarray) -> None:
    ts = get_tfset("default")
    ids = np.random.default_rng(5).choice(deterministic_ids(ts), size=(4, 10))
    cpu = apply_sequence_batch(to_batch(scenes), ids, ts)
    gpu = apply_sequence_batch(to_batch(scenes).cuda(), torch.from_numpy(ids).cuda(), ts).cpu()
    d = (cpu.double() - gpu.double()).abs()
    assert float(d.mean()) <= SINGLE_MEAN_TOL and float((d > SEQ_OUTLIER_LEVELS).double().mean()) <= 0.01


def test_accepts_tensor_ids_and_tfset_names(scenes: np.ndarray) -> None:
    images = to_batch(scenes)
    ids = np.array([[0, 1], [2, 3], [4, 5], [6, 7]])
    a = apply_sequence_batch(images, ids, "cifar10")
    b = apply_sequence_batch(images, torch.from_numpy(ids).to(torch.int32), get_tfset("cifar10"))
    assert torch.equal(a, b)


# ------------------------------------------------------------------------------------------------ bad input


def _good() -> tuple[torch.Tensor, np.ndarray]:
    return torch.zeros((2, 3, 8, 8), dtype=torch.uint8), np.zeros((2, 3), dtype=np.int64)


@pytest.mark.parametrize(
    ("images", "ids", "error", "match"),
    [
        (np.zeros((2, 3, 8, 8), np.uint8), None, TypeError, "torch.Tensor"),
        (torch.zeros((3, 8, 8), dtype=torch.uint8), None, ValueError, "shape"),
        (torch.zeros((2, 5, 8, 8), dtype=torch.uint8), None, ValueError, "channels"),
        (torch.zeros((2, 8, 8, 3), dtype=torch.uint8), None, ValueError, "channels"),
        (torch.zeros((2, 3, 8, 8), dtype=torch.int32), None, TypeError, "dtype"),
        (torch.zeros((2, 3, 0, 8), dtype=torch.uint8), None, ValueError, "empty"),
        (torch.full((2, 3, 8, 8), 1.5), None, ValueError, r"\[0, 1\]"),
        (torch.full((2, 3, 8, 8), float("nan")), None, ValueError, "NaN"),
        (None, np.zeros((2, 3), dtype=np.float32), TypeError, "integer"),
        (None, np.zeros((2, 3), dtype=bool), TypeError, "integer"),
        (None, np.zeros(2, dtype=int), ValueError, r"\(B, L\)"),
        (None, np.zeros((3, 3), dtype=int), ValueError, "3 rows but there are 2 images"),
        (None, np.full((2, 3), 33), ValueError, "out of range"),
        (None, np.full((2, 3), -1), ValueError, "out of range"),
    ],
)
def test_bad_input_is_refused(images: object, ids: object, error: type[Exception], match: str) -> None:
    good_images, good_ids = _good()
    with pytest.raises(error, match=match):
        apply_sequence_batch(
            good_images if images is None else images,  # type: ignore[arg-type]
            good_ids if ids is None else ids,  # type: ignore[arg-type]
            "cifar10",
        )


def test_unknown_tfset_name_is_refused() -> None:
    with pytest.raises(KeyError, match="unknown TF set"):
        apply_sequence_batch(*_good(), "imagenet")


def test_custom_tfs_are_not_supported(tf_name) -> None:
    name = tf_name("custom")

    @register_tf(name)
    def identity(image):
        return image

    ts = TFSet(["rotate(+5)", name])
    images, _ = _good()
    with pytest.raises(NotImplementedError, match=name):
        apply_sequence_batch(images, np.array([[0, 1], [0, 0]]), ts)
    # Sequences that do not use it still run.
    apply_sequence_batch(images, np.array([[0, 0], [0, 0]]), ts)


def test_image_tfs_without_batched_twin_are_not_supported(tf_name) -> None:
    name = tf_name("image")
    register(TF(name, Kind.IMAGE, lambda image, magnitude, rng: image, takes_magnitude=False))
    with pytest.raises(NotImplementedError, match=name):
        apply_sequence_batch(*_good(), TFSet([name]))


def test_user_affine_and_point_tfs_are_supported(tf_name, scenes: np.ndarray) -> None:
    shift, inv = tf_name("shift"), tf_name("inv")
    register(TF(shift, Kind.AFFINE, lambda m, h, w: np.array([[1.0, 0, m], [0, 1, 0], [0, 0, 1]])))
    register(TF(inv, Kind.POINT, lambda x, m: 1.0 - x, takes_magnitude=False))
    ts = TFSet([f"{shift}(3)", inv, "rotate(+5)"])
    ids = np.array([[0, 1, 2], [1, 0, 0], [2, 2, 1], [1, 1, 0]])
    d = compare(scenes, ids, ts)
    assert d.mean() <= SINGLE_MEAN_TOL and d.max() <= SINGLE_MAX_TOL


# ------------------------------------------------------------------------------------------------ batched forms


def _fade(image: np.ndarray, magnitude: float) -> np.ndarray:
    """Blend towards mid-grey by ``magnitude`` (a user TF: numpy, uint8 or float32)."""
    x = image.astype(np.float32) / np.float32(255.0) if image.dtype == np.uint8 else image
    y = np.clip(np.float32(0.5) + (x - np.float32(0.5)) * np.float32(magnitude), 0.0, 1.0)
    return np.rint(y * 255.0).astype(np.uint8) if image.dtype == np.uint8 else y.astype(np.float32)


def _fade_batch(images: torch.Tensor, magnitude: np.ndarray) -> torch.Tensor:
    m = torch.as_tensor(magnitude, dtype=images.dtype, device=images.device).view(-1, 1, 1, 1)
    return (0.5 + (images - 0.5) * m).clamp(0.0, 1.0)


def _negative(image: np.ndarray) -> np.ndarray:
    return 255 - image if image.dtype == np.uint8 else 1.0 - image


def test_user_tfs_with_batched_forms_match_their_functions(tf_name, scenes: np.ndarray, digits: np.ndarray) -> None:
    fade, negative = tf_name("fade"), tf_name("negative")
    register_tf(fade, batched=_fade_batch)(_fade)
    register_tf(negative, batched=lambda images: 1.0 - images)(_negative)
    ts = TFSet([f"{fade}(0.5)", f"{fade}(1.5)", negative, "rotate(+15)", "hflip", "brightness(1.25)", "blur(1)"])
    rng = np.random.default_rng(0)
    for form, images in input_forms(scenes, digits).items():
        single = compare(images, rng.integers(0, 3, size=(len(images), 1)), ts)
        assert single.mean() <= SINGLE_MEAN_TOL and single.max() <= SINGLE_MAX_TOL, form
        d = compare(images, rng.integers(0, len(ts), size=(len(images), 10)), ts)
        assert d.mean() <= SEQ_MEAN_TOL, f"{form}: mean diff {d.mean():.3f}"
        assert (d > SEQ_OUTLIER_LEVELS).mean() <= SEQ_OUTLIER_FRACTION, form


def test_user_tf_with_a_batched_form_draws_from_the_generator(tf_name, scenes: np.ndarray) -> None:
    name = tf_name("dropout")
    seen: list[torch.Generator] = []

    def drop_batch(images: torch.Tensor, magnitude: np.ndarray, generator: torch.Generator) -> torch.Tensor:
        seen.append(generator)
        u = torch.rand(images.shape, generator=generator, device=generator.device).to(images.device)
        return images.masked_fill(u < torch.as_tensor(magnitude, device=images.device).view(-1, 1, 1, 1), 0.0)

    @register_tf(name, batched=drop_batch)
    def drop(image: np.ndarray, magnitude: float, rng: np.random.Generator) -> np.ndarray:
        return np.where(rng.random(image.shape) < magnitude, 0, image).astype(image.dtype)

    ts, ids, images = TFSet([f"{name}(0.3)"]), np.zeros((len(scenes), 1), dtype=int), to_batch(scenes)
    gen = torch.Generator().manual_seed(3)
    first = apply_sequence_batch(images, ids, ts, generator=gen)
    assert seen == [gen]
    assert torch.equal(first, apply_sequence_batch(images, ids, ts, generator=torch.Generator().manual_seed(3)))
    assert not torch.equal(first, apply_sequence_batch(images, ids, ts, generator=torch.Generator().manual_seed(4)))
    dropped = (first == 0) & (images != 0)
    assert 0.2 < float(dropped.float().mean()) < 0.4


def test_user_image_and_warp_tfs_with_batched_forms(tf_name, scenes: np.ndarray) -> None:
    """The lower-level ``TF(..., batched=)`` takes the fixed signature of its kind (see ``ops.base``)."""
    dim, shift = tf_name("dim"), tf_name("shift_warp")

    def dim_image(image: np.ndarray, magnitude: float, rng: np.random.Generator | None) -> np.ndarray:
        x = image.astype(np.float32) / np.float32(255.0) if image.dtype == np.uint8 else image
        y = x * np.float32(magnitude)
        return np.rint(y * 255.0).astype(np.uint8) if image.dtype == np.uint8 else y

    def dim_batch(images: torch.Tensor, magnitude: np.ndarray, generator: torch.Generator) -> torch.Tensor:
        return images * torch.as_tensor(magnitude, dtype=torch.float32, device=images.device).view(-1, 1, 1, 1)

    def shift_warp(pixels: float, h: int, w: int, rng: np.random.Generator | None) -> geometry.Warp:
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        return geometry.Warp(xs - np.float32(pixels), ys, lambda pts: pts + np.array([pixels, 0.0]))

    def shift_coords(mags: np.ndarray, h: int, w: int, generator: torch.Generator, device: torch.device) -> Any:
        gy, gx = batch_kernels.pixel_grid(h, w, device)
        m = torch.as_tensor(mags, dtype=torch.float32, device=device).view(-1, 1, 1)
        return torch.stack((gx - m, gy.expand(len(mags), h, w)), dim=-1)

    register(TF(dim, Kind.IMAGE, dim_image, batched=dim_batch))
    register(TF(shift, Kind.WARP, shift_warp, signed=True, batched=shift_coords))
    ts = TFSet([f"{shift}(+3)", f"{shift}(-2.5)", "rotate(+15)", "swirl(+0.5)", f"{dim}(0.75)"])
    ids = np.array([[0, 2, 4, 1], [2, 0, 3, 1], [1, 1, 4, 0], [3, 0, 2, 2]])
    d = compare(scenes, ids, ts)
    assert d.mean() <= SEQ_MEAN_TOL and (d > SEQ_OUTLIER_LEVELS).mean() <= SEQ_OUTLIER_FRACTION
    single = compare(scenes, np.array([[0], [1], [4], [1]]), ts)
    assert single.mean() <= SINGLE_MEAN_TOL and single.max() <= SINGLE_MAX_TOL


@pytest.mark.parametrize(
    ("returns", "error", "match"),
    [
        (lambda x: x[:, :, :-1], ValueError, r"returned images of shape \(4, 3, 27, 32\) on cpu; expected \(4, 3, 28"),
        (lambda x: x.numpy(), TypeError, "must return a float tensor, got ndarray"),
        (lambda x: (x * 255).to(torch.uint8), TypeError, "must return a float tensor, got dtype torch.uint8"),
    ],
)
def test_bad_batched_results_are_refused(tf_name, returns: Any, error: type, match: str, scenes: np.ndarray) -> None:
    name = tf_name("bad")
    register_tf(name, batched=lambda images: returns(images))(lambda image: image)
    with pytest.raises(error, match=f"the batched form of TF '{name}' {match}"):
        apply_sequence_batch(to_batch(scenes), np.zeros((4, 1), dtype=int), TFSet([name]))


def test_built_in_tfs_carry_their_batched_forms() -> None:
    builtin = [get_tf(n) for n in registered_tfs() if get_tf(n).fn.__module__.startswith("learned_augment.ops.")]
    assert {tf.kind for tf in builtin} == {Kind.AFFINE, Kind.POINT, Kind.WARP, Kind.IMAGE}
    for tf in builtin:
        # Affine TFs have their matrices composed by the batched path; identity's table is the identity.
        assert (tf.batched is None) == (tf.kind == Kind.AFFINE or tf.name == "identity"), tf.name
