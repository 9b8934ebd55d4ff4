"""Sequence application: id resolution, fusion of affine runs (one warp) and point runs (one look-up table)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from learned_augment.ops import (
    NAMED_SETS,
    Kind,
    TFEntry,
    apply_sequence,
    apply_tf,
    cifar10_tfs,
    get_tfset,
    resolve,
)

SET_ENTRIES = sorted({e for make in NAMED_SETS.values() for e in make()}, key=lambda e: e.id)
AFFINE = [e for e in SET_ENTRIES if e.tf.kind == Kind.AFFINE]
# Entries that interpolate along both axes, so each resampling blurs the image. (Shears interpolate along one axis
# only, and flips or whole-pixel shifts not at all: a shear_y then a shear_x blurs no more than their product does.)
RESAMPLING = [e for e in AFFINE if e.name in ("rotate", "zoom")]
POINT = [e for e in SET_ENTRIES if e.tf.kind == Kind.POINT] + [
    TFEntry.parse(i) for i in ("invert", "gamma(0.5)", "posterize(3)", "solarize(0.3)", "brightness(3)")
]
NOT_GEOMETRIC = [e for e in SET_ENTRIES if e.tf.kind not in (Kind.AFFINE, Kind.WARP)] + POINT

H = W = 64
_YS, _XS = np.mgrid[0:H, 0:W].astype(np.float64)
_PERIOD = 24.0
_A, _B = 2 * np.pi / _PERIOD, 2 * np.pi / (1.5 * _PERIOD)
# A smooth image with known curvature: f = 0.5 + 0.2 sin(a x) cos(a y) + 0.15 sin(b (x + y)).
SMOOTH = (0.5 + 0.2 * np.sin(_A * _XS) * np.cos(_A * _YS) + 0.15 * np.sin(_B * (_XS + _YS))).astype(np.float32)
# Bilinear interpolation on the unit grid errs by at most (max|g_xx| + max|g_yy|) / 8 <= |H_g| / 4, with |H_g| the
# largest Hessian norm of the image g it samples. For SMOOTH, |H_f| <= 0.2 a^2 + 0.15 * 2 b^2. The fused run samples
# SMOOTH once; the unfused run's step k samples the intermediate image g = f o P^-1 (P the product of the steps
# before), whose Hessian is at most |H_f| / sigma_min(P)^2: zooming out sharpens what the next step resamples. Each
# uint8 result also rounds by up to half a grey level.
HESSIAN_NORM = 0.2 * _A**2 + 0.15 * 2 * _B**2
# The worst case needs the extreme curvature and the worst rounding at the same pixel at every step; on average the
# difference is much smaller (about a tenth of the bound over 400 random sequences).
MEAN_FRACTION_OF_BOUND = 0.25


def max_difference_grey(seq: list[TFEntry], h: int, w: int, uint8: bool) -> float:
    """Bound on |fused - unfused| in grey levels for an affine run applied to SMOOTH (see above)."""
    per_sample = 255 * HESSIAN_NORM / 4
    rounding = 0.5 if uint8 else 0.0
    bound = per_sample + rounding  # the fused run: one resampling of SMOOTH
    p = np.eye(2)
    for e in seq:
        sigma_min = np.linalg.svd(p, compute_uv=False).min()
        bound += per_sample / sigma_min**2 + rounding
        p = e.tf.fn(e.magnitude, h, w)[:2, :2] @ p
    return float(bound)


# Band-limited noise: plenty of detail for repeated bilinear resampling to wash out.
TEXTURE = cv2.GaussianBlur(np.random.default_rng(5).random((H, W)).astype(np.float32), (0, 0), 1.0)
TEXTURE = (TEXTURE - TEXTURE.min()) / (TEXTURE.max() - TEXTURE.min())


def as_grey(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float64) * (255.0 if img.dtype == np.float32 else 1.0)


def interior(seq: list[TFEntry], h: int, w: int, margin: float) -> np.ndarray:
    """Pixels whose source, after every step of ``seq``, stays ``margin`` pixels inside the frame.

    Fused and unfused results may legitimately differ elsewhere: the unfused run replicates the border at every
    step, the fused one only once.
    """
    q = np.stack([_XS[:h, :w].ravel(), _YS[:h, :w].ravel(), np.ones(h * w)])
    ok = np.ones(h * w, bool)
    for e in reversed(seq):
        q = np.linalg.inv(e.tf.fn(e.magnitude, h, w)) @ q
        ok &= (q[0] >= margin) & (q[0] <= w - 1 - margin) & (q[1] >= margin) & (q[1] <= h - 1 - margin)
    return ok.reshape(h, w)


def laplacian_var(img: np.ndarray, where: np.ndarray) -> float:
    return float(cv2.Laplacian(img.astype(np.float32), cv2.CV_32F)[where].var())


# ------------------------------------------------------------------------------------------------------ resolve


def test_resolve_accepts_indices_ids_and_entries() -> None:
    ts = cifar10_tfs()
    got = resolve([0, np.int64(32), "zoom(1.1)", TFEntry("hflip")], ts)
    assert got == [ts[0], ts[32], TFEntry("zoom", 1.1), TFEntry("hflip")]
    assert resolve([1, 2], "mnist") == [get_tfset("mnist")[1], get_tfset("mnist")[2]]


def test_resolve_errors() -> None:
    with pytest.raises(TypeError, match="integer TF ids need a tfset"):
        resolve([0])
    with pytest.raises(IndexError, match="TF index 33 out of range for a TF set of 33 entries"):
        resolve([33], "cifar10")
    with pytest.raises(IndexError, match="TF index -1 out of range"):
        resolve([-1], "cifar10")
    with pytest.raises(TypeError, match="TF ids must be ints, strings or TFEntry, got float"):
        resolve([1.0], "cifar10")
    with pytest.raises(KeyError, match="unknown TF set 'cifar'"):
        resolve([0], "cifar")


def test_integer_ids_index_into_the_set() -> None:
    x = np.rint(SMOOTH * 255).astype(np.uint8)
    ts = get_tfset("default")
    idx = [0, 5, len(ts) - 1, 12]
    np.testing.assert_array_equal(apply_sequence(x, idx, ts), apply_sequence(x, [ts.ids[i] for i in idx]))
    np.testing.assert_array_equal(apply_sequence(x, idx, "default"), apply_sequence(x, idx, ts))


def test_empty_sequence_returns_a_copy() -> None:
    x = np.rint(SMOOTH * 255).astype(np.uint8)
    y = apply_sequence(x, [])
    np.testing.assert_array_equal(y, x)
    assert not np.shares_memory(x, y)


# ------------------------------------------------------------------------------------------------------ affine runs


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@settings(max_examples=25, deadline=None)
@given(seq=st.lists(st.sampled_from(AFFINE), min_size=2, max_size=5))
def test_fused_affine_run_matches_unfused(seq: list[TFEntry], dtype: type) -> None:
    valid = interior(seq, H, W, margin=len(seq) + 1)
    assume(valid.sum() >= 100)
    x = SMOOTH if dtype == np.float32 else np.rint(SMOOTH * 255).astype(np.uint8)
    diff = np.abs(as_grey(apply_sequence(x, seq, fuse=True)) - as_grey(apply_sequence(x, seq, fuse=False)))[valid]
    bound = max_difference_grey(seq, H, W, uint8=dtype == np.uint8)
    assert diff.max() <= bound, f"max difference {diff.max():.2f} grey levels, bound {bound:.2f}"
    assert diff.mean() <= MEAN_FRACTION_OF_BOUND * bound, f"mean difference {diff.mean():.2f} grey levels"


@settings(max_examples=25, deadline=None)
@given(seq=st.lists(st.sampled_from(RESAMPLING), min_size=2, max_size=5))
def test_fused_affine_run_is_sharper(seq: list[TFEntry]) -> None:
    valid = interior(seq, H, W, margin=len(seq) + 1)
    assume(valid.sum() >= 100)
    fused = apply_sequence(TEXTURE, seq, fuse=True)
    unfused = apply_sequence(TEXTURE, seq, fuse=False)
    assert laplacian_var(fused, valid) > laplacian_var(unfused, valid)


@pytest.mark.parametrize(
    ("steps", "exact"),
    [
        (["rotate(+10)"] * 6, "rotate(+60)"),
        (["zoom(1.1)"] * 3, "zoom(1.331)"),
        (["shear_x(+0.1)"] * 4, "shear_x(+0.4)"),
    ],
)
def test_fused_steps_equal_the_single_transform(steps: list[str], exact: str) -> None:
    ref = apply_tf(TEXTURE, exact)
    fused = apply_sequence(TEXTURE, steps)
    unfused = apply_sequence(TEXTURE, steps, fuse=False)
    valid = interior([TFEntry.parse(s) for s in steps], H, W, margin=len(steps) + 1)
    # The composed matrix equals the single one up to float rounding, which OpenCV's 1/32-pixel grid absorbs.
    assert np.abs(fused - ref)[valid].max() <= 1e-6
    assert np.abs(unfused - ref)[valid].mean() * 255 > 2.0
    assert laplacian_var(fused, valid) > 1.2 * laplacian_var(unfused, valid)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_fusion_keeps_the_order(dtype: type) -> None:
    # Quarter turns and whole-pixel shifts resample exactly, so fused and unfused must agree to the bit.
    x = np.rint(TEXTURE[:16, :16] * 255).astype(np.uint8)
    x = x if dtype == np.uint8 else x.astype(np.float32) / 255
    a = ["rotate(+90)", "translate_x(+0.25)", "vflip"]
    b = ["vflip", "translate_x(+0.25)", "rotate(+90)"]
    fa, fb = apply_sequence(x, a), apply_sequence(x, b)
    assert not np.array_equal(fa, fb)
    np.testing.assert_array_equal(fa, apply_sequence(x, a, fuse=False))
    np.testing.assert_array_equal(fb, apply_sequence(x, b, fuse=False))
    expected = np.empty_like(x)
    turned = np.rot90(x)
    expected[:, 4:], expected[:, :4] = turned[:, :-4], turned[:, :1]
    np.testing.assert_array_equal(fa, expected[::-1])


def test_cancelling_affine_run_is_lossless() -> None:
    x = np.rint(TEXTURE * 255).astype(np.uint8)
    for seq in (["rotate(+5)", "rotate(-5)"], ["zoom(1.25)", "zoom(0.8)"], ["hflip", "hflip"]):
        np.testing.assert_array_equal(apply_sequence(x, seq), x)
        assert not np.array_equal(apply_sequence(x, seq, fuse=False), x) or seq == ["hflip", "hflip"]


# ------------------------------------------------------------------------------------------------------ point runs


@settings(max_examples=40, deadline=None)
@given(seq=st.lists(st.sampled_from(POINT), min_size=1, max_size=6), seed=st.integers(0, 1000))
def test_fused_point_run_is_exact_on_uint8(seq: list[TFEntry], seed: int) -> None:
    # Each unfused step rounds to uint8 anyway, so one composed look-up table is exactly the same.
    x = np.random.default_rng(seed).integers(0, 256, (17, 23, 3), dtype=np.uint8)
    fused = apply_sequence(x, seq, fuse=True)
    np.testing.assert_array_equal(fused, apply_sequence(x, seq, fuse=False))
    step = x
    for e in seq:
        step = apply_tf(step, e)
    np.testing.assert_array_equal(fused, step)


@settings(max_examples=40, deadline=None)
@given(seq=st.lists(st.sampled_from(POINT), min_size=1, max_size=6), seed=st.integers(0, 1000))
def test_fused_point_run_matches_on_float32(seq: list[TFEntry], seed: int) -> None:
    x = np.random.default_rng(seed).random((17, 23), dtype=np.float32)
    fused = apply_sequence(x, seq, fuse=True)
    unfused = apply_sequence(x, seq, fuse=False)
    assert fused.dtype == np.float32
    # A tolerance, not equality: float arithmetic may be reordered. But only ulps: a fused run that kept float64
    # between steps would break rounding ties (posterize after brightness(0.5)) differently, a posterize level apart.
    np.testing.assert_allclose(fused, unfused, rtol=0, atol=1e-6)


def test_fused_point_run_breaks_ties_like_unfused() -> None:
    x = np.arange(256, dtype=np.float32).reshape(16, 16) / 255
    seq = ["posterize(4)", "solarize(0.5)", "brightness(0.5)", "posterize(3)"]
    np.testing.assert_array_equal(apply_sequence(x, seq), apply_sequence(x, seq, fuse=False))


def test_point_run_reaches_the_look_up_table_boundaries() -> None:
    x = np.arange(256, dtype=np.uint8).reshape(16, 16)
    y = apply_sequence(x, ["brightness(1.5)", "contrast(1.5)", "invert"])
    expected = x.astype(float) / 255
    for f in (lambda v: np.clip(v * 1.5, 0, 1), lambda v: np.clip((v - 0.5) * 1.5 + 0.5, 0, 1), lambda v: 1 - v):
        expected = np.rint(f(expected) * 255) / 255
    np.testing.assert_array_equal(y, np.rint(expected * 255).astype(np.uint8))


# ------------------------------------------------------------------------------------------------------ whole sequences


@settings(max_examples=30, deadline=None)
@given(seq=st.lists(st.sampled_from(NOT_GEOMETRIC), min_size=1, max_size=5), seed=st.integers(0, 1000))
def test_fusion_changes_nothing_without_geometric_tfs(seq: list[TFEntry], seed: int) -> None:
    x = np.rint(TEXTURE[:32, :40, None] * np.array([255, 180, 90])).astype(np.uint8)
    fused = apply_sequence(x, seq, rng=np.random.default_rng(seed))
    np.testing.assert_array_equal(fused, apply_sequence(x, seq, rng=np.random.default_rng(seed), fuse=False))


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@settings(max_examples=30, deadline=None)
@given(
    seq=st.lists(st.sampled_from(SET_ENTRIES), min_size=0, max_size=8),
    h=st.integers(1, 48),
    w=st.integers(1, 48),
    channels=st.sampled_from([None, 1, 3]),
    seed=st.integers(0, 1000),
    fuse=st.booleans(),
)
def test_sequence_contract(seq: list[TFEntry], h: int, w: int, channels: int | None, seed: int, fuse: bool,
                           dtype: type) -> None:  # fmt: skip
    shape = (h, w) if channels is None else (h, w, channels)
    x = np.random.default_rng(seed).random(shape, dtype=np.float32)
    x = np.rint(x * 255).astype(np.uint8) if dtype == np.uint8 else x
    before = x.copy()
    y = apply_sequence(x, seq, rng=np.random.default_rng(seed), fuse=fuse)
    assert y.shape == x.shape and y.dtype == x.dtype and not np.shares_memory(x, y)
    if dtype == np.float32:
        assert np.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
    np.testing.assert_array_equal(x, before)
    np.testing.assert_array_equal(apply_sequence(x, seq, rng=np.random.default_rng(seed), fuse=fuse), y)


def test_default_generator_is_deterministic() -> None:
    x = np.rint(TEXTURE * 255).astype(np.uint8)
    seq = ["elastic(1.5)", "noise(0.04)", "cutout(0.25)"]
    np.testing.assert_array_equal(apply_sequence(x, seq), apply_sequence(x, seq))


def test_one_generator_is_shared_along_the_sequence() -> None:
    # A recorded (sequence, seed) pair replays exactly: each random TF continues from the previous one's state.
    x = np.rint(TEXTURE * 255).astype(np.uint8)
    # (blur keeps rotate and elastic apart: fused, consecutive geometric TFs resample once, not step by step)
    seq = ["noise(0.04)", "rotate(+5)", "blur(1)", "elastic(1.5)", "noise(0.04)"]
    g = np.random.default_rng(11)
    step = x
    for tf_id in seq:
        step = apply_tf(step, tf_id, rng=g)
    np.testing.assert_array_equal(apply_sequence(x, seq, rng=np.random.default_rng(11)), step)
    twice = apply_sequence(x, ["noise(0.04)", "noise(0.04)"], rng=np.random.default_rng(11))
    same_noise = apply_sequence(apply_tf(x, "noise(0.04)", rng=np.random.default_rng(11)), ["noise(0.04)"],
                                rng=np.random.default_rng(11))  # fmt: skip
    assert not np.array_equal(twice, same_noise)
