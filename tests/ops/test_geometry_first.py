"""Fused sequences apply pixelwise TFs after the geometric TFs they commute with (``geometry_first``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from learned_augment.ops import TF, Kind, TFEntry, apply_sequence, geometry_first, get_tfset, register, resolve
from learned_augment.ops.base import get_tf
from learned_augment.ops.batch import apply_sequence_batch
from learned_augment.ops.plan import reorder, roles

PIXELWISE = ["brightness(1.5)", "contrast(0.5)", "gamma(0.7)", "posterize(4)", "solarize(0.5)", "invert",
             "color(1.8)", "hue(+0.25)", "hue(-0.1)"]  # fmt: skip
GEOMETRIC = ["rotate(+17)", "zoom(1.2)", "shear_x(-0.3)", "hflip", "translate_y(+0.2)", "swirl(+0.4)"]


def _image(channels: int = 3, size: int = 24, dtype: type = np.uint8) -> np.ndarray:
    x = np.random.default_rng(3).integers(0, 256, (size, size, channels), dtype=np.uint8)
    return x if dtype == np.uint8 else x.astype(np.float32) / np.float32(255.0)


def _ids(entries: list) -> list[str]:
    return [e.id for e in entries]


def test_geometry_first_moves_pixelwise_tfs_within_each_stretch() -> None:
    seq = resolve(["rotate(+5)", "brightness(1.5)", "hue(+0.1)", "zoom(1.1)", "blur(1)", "color(0.5)", "swirl(-0.25)"])
    assert _ids(geometry_first(seq)) == [
        "rotate(+5)", "zoom(1.1)", "brightness(1.5)", "hue(+0.1)", "blur(1)", "swirl(-0.25)", "color(0.5)",
    ]  # fmt: skip


@pytest.mark.parametrize("barrier", ["blur(1)", "noise(0.04)", "cutout(0.25)", "equalize", "sharpness(1.75)",
                                     "autocontrast", "erosion", "dilation"])  # fmt: skip
def test_tfs_that_do_not_commute_stay_in_place(barrier: str) -> None:
    seq = resolve(["brightness(1.5)", barrier, "rotate(+5)"])
    assert _ids(geometry_first(seq)) == _ids(seq)


def test_classification_of_builtin_tfs() -> None:
    assert all(TFEntry.parse(p).tf.commutes_with_geometry for p in PIXELWISE)
    for name in ["blur", "noise", "cutout", "equalize", "autocontrast", "sharpness", "erosion", "dilation"]:
        assert not get_tf(name).commutes_with_geometry, name


def test_user_image_tfs_do_not_commute_unless_declared_pixelwise(tf_name: Callable[[str], str]) -> None:
    def darker(img: np.ndarray, f: float | None, rng: object = None) -> np.ndarray:
        return (img // 2).astype(img.dtype)

    plain = register(TF(tf_name("darker"), Kind.IMAGE, darker, takes_magnitude=False))
    declared = register(TF(tf_name("darker_px"), Kind.IMAGE, darker, takes_magnitude=False, pixelwise=True))
    assert not plain.commutes_with_geometry
    assert declared.commutes_with_geometry
    seq = resolve([plain.name, "rotate(+5)", declared.name, "zoom(1.1)"])
    assert _ids(geometry_first(seq)) == [plain.name, "rotate(+5)", "zoom(1.1)", declared.name]


@pytest.mark.parametrize("pix", PIXELWISE)
@pytest.mark.parametrize("geom", GEOMETRIC)
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_pixelwise_tfs_commute_exactly_under_nearest(pix: str, geom: str, dtype: type) -> None:
    x = _image(dtype=dtype)
    a = apply_sequence(x, [pix, geom], fuse=False, interpolation="nearest")
    b = apply_sequence(x, [geom, pix], fuse=False, interpolation="nearest")
    # float32: OpenCV's vectorised and scalar loops (by pixel position) may round the last bit differently.
    np.testing.assert_allclose(a, b, rtol=0, atol=0 if dtype == np.uint8 else 1e-6)


def test_fused_sequence_resamples_once_across_pixelwise_tfs() -> None:
    x = _image()
    fused = apply_sequence(x, ["rotate(+5)", "brightness(1.25)", "zoom(0.9)", "hue(+0.1)", "shear_x(+0.1)"])
    once = apply_sequence(x, ["rotate(+5)", "zoom(0.9)", "shear_x(+0.1)", "brightness(1.25)", "hue(+0.1)"])
    np.testing.assert_array_equal(fused, once)
    # One bilinear resampling keeps more detail than three: the fused result is closer to the exact map applied
    # under nearest than the step-by-step one.
    stepwise = apply_sequence(x, ["rotate(+5)", "brightness(1.25)", "zoom(0.9)", "hue(+0.1)", "shear_x(+0.1)"],
                              fuse=False)  # fmt: skip
    assert np.abs(fused.astype(float) - stepwise.astype(float)).mean() > 1.0
    assert fused.astype(float).std() > stepwise.astype(float).std()


def test_targets_move_the_same_with_and_without_fusion() -> None:
    x = _image()
    mask = np.zeros(x.shape[:2], np.uint8)
    mask[5:15, 8:20] = 1
    targets = {"mask": mask, "bboxes": np.array([[4.0, 5.0, 15.0, 18.0]]), "keypoints": np.array([[6.0, 7.0]])}
    seq = ["hflip", "brightness(1.5)", "translate_x(+0.1)", "hue(+0.25)", "translate_y(-0.1)"]  # integer shifts
    _, fused = apply_sequence(x, seq, targets=targets)
    _, plain = apply_sequence(x, seq, targets=targets, fuse=False)
    for key in targets:
        np.testing.assert_allclose(fused[key], plain[key], atol=1e-6)


def _reference_order(entries: list[TFEntry]) -> list[TFEntry]:
    """The reordering written as its definition: geometric TFs stay, pixelwise ones wait for the next barrier."""
    out: list[TFEntry] = []
    waiting: list[TFEntry] = []
    for e in entries:
        if e.tf.kind in (Kind.AFFINE, Kind.WARP):
            out.append(e)
        elif e.tf.commutes_with_geometry:
            waiting.append(e)
        else:
            out += waiting + [e]
            waiting = []
    return out + waiting


@pytest.mark.parametrize("name", ["default", "cifar10", "mnist"])
def test_the_planner_reorders_rows_and_lists_as_the_definition_says(name: str) -> None:
    """Both executors' reordering (rows for the batched path, lists for the CPU path) is the planner's."""
    ts = get_tfset(name)
    seq = np.random.default_rng(0).integers(0, len(ts), (200, 10))
    rows = reorder(seq, roles(ts))
    for row, got in zip(seq, rows):
        want = _ids(_reference_order([ts[i] for i in row]))
        assert [ts[i].id for i in got] == want
        assert _ids(geometry_first([ts[i] for i in row])) == want


def test_batch_matches_cpu_on_interleaved_sequences() -> None:
    ts = get_tfset("cifar10")
    rng = np.random.default_rng(1)
    seq = rng.integers(0, len(ts), (16, 10))
    imgs = rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    out = apply_sequence_batch(torch.from_numpy(imgs).permute(0, 3, 1, 2), seq, ts).permute(0, 2, 3, 1).numpy()
    cpu = np.stack([apply_sequence(img, row, ts) for img, row in zip(imgs, seq)])
    diff = np.abs(out.astype(int) - cpu.astype(int))
    # Resampling round-off only (the sequence order is the same): a few grey levels on a few pixels.
    assert np.mean(diff) < 1.0
    assert np.mean(diff > 8) < 0.01


def _detail(img: np.ndarray) -> float:
    """Mean absolute difference between horizontal neighbours: what repeated bilinear resampling wears away."""
    return float(np.abs(np.diff(img.astype(float), axis=1)).mean())


@pytest.mark.parametrize(
    "seq", [["swirl(+0.25)", "swirl(-0.25)"], ["rotate(+5)", "swirl(+0.4)", "rotate(-5)", "swirl(-0.4)"]]
)
def test_a_warp_and_its_inverse_compose_to_nearly_the_identity(seq: list[str]) -> None:
    x = _image(size=48)
    fused = apply_sequence(x, seq)
    stepwise = apply_sequence(x, seq, fuse=False)
    inner = (slice(8, -8), slice(8, -8))  # replicated borders are not undone by the inverse
    err_fused = np.abs(fused[inner].astype(float) - x[inner]).mean()
    err_step = np.abs(stepwise[inner].astype(float) - x[inner]).mean()
    assert err_fused < 0.5 * err_step
    assert _detail(fused) > _detail(stepwise)


def test_a_run_with_warps_resamples_once_in_the_batched_path_too() -> None:
    x = _image(size=32)
    seq = ["rotate(+5)", "hue(+0.1)", "swirl(+0.25)", "brightness(1.25)", "zoom(0.9)"]
    ts = get_tfset([*seq])
    cpu = apply_sequence(x, seq)
    t = torch.from_numpy(x).permute(2, 0, 1)[None]
    out = apply_sequence_batch(t, np.arange(len(seq))[None], ts)[0].permute(1, 2, 0).numpy()
    d = np.abs(out.astype(int) - cpu.astype(int))
    # The CPU path interpolates the composed coordinate map with OpenCV's 1/32-pixel weights (coordinates within
    # 0.02 px of exact), grid_sample exactly: on this pure-noise image, where a neighbour differs by ~85 levels on
    # average, that moves values by about one level (measured: mean 1.13, 0.6% beyond 8 levels; both 0 when the
    # run is not composed).
    assert d.mean() < 2.0 and (d > 8).mean() < 0.02
    assert _detail(cpu) > _detail(apply_sequence(x, seq, fuse=False))


def test_targets_follow_a_composed_run() -> None:
    x = np.zeros((40, 40, 3), np.uint8)
    x[10:13, 26:29] = 255  # a bright square whose centre is the keypoint (27, 11)
    mask = (x[..., 0] > 0).astype(np.uint8)
    seq = ["rotate(+5)", "brightness(1.1)", "swirl(+0.4)", "zoom(1.1)", "shear_x(+0.1)"]
    img, tgt = apply_sequence(x, seq, targets={"mask": mask, "keypoints": np.array([[27.0, 11.0]])})
    ys, xs = np.nonzero(img[..., 0] > 127)
    kx, ky = tgt["keypoints"][0]
    assert abs(xs.mean() - kx) < 1.0 and abs(ys.mean() - ky) < 1.0
    my, mx = np.nonzero(tgt["mask"])
    assert abs(mx.mean() - kx) < 1.0 and abs(my.mean() - ky) < 1.0
