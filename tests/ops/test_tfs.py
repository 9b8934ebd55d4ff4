"""Every TF of every named set and of the registry keeps the image contract; specific semantics; bad input.

The parametrisations are built from ``NAMED_SETS`` and the registry, so a new TF or set entry is tested without
touching this file (a new TF taking a magnitude must appear in a named set or in ``EDGE_MAGNITUDES``).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learned_augment.ops import (
    NAMED_SETS,
    Kind,
    TFEntry,
    apply_sequence,
    apply_tf,
    check_image,
    get_tf,
    registered_tfs,
)

# Magnitudes at the edges of each TF's useful range, beyond what the named sets use: they must keep the contract.
EDGE_MAGNITUDES: dict[str, list[float]] = {
    "rotate": [0, 90, -180, 360],
    "shear_x": [0, 1.0],
    "shear_y": [0, -1.0],
    "translate_x": [0, 1.0, -0.5],
    "translate_y": [0, 1.0, -0.5],
    "zoom": [0.25, 1.0, 4.0],
    "swirl": [0, 3.0, -3.0],
    "elastic": [0, 8.0],
    "brightness": [0, 1.0, 3.0],
    "contrast": [0, 1.0, 4.0],
    "gamma": [0.2, 1.0, 5.0],
    "posterize": [1, 8],
    "solarize": [0, 1.0],
    "color": [0, 1.0, 3.0],
    "hue": [0, 0.5, -1.0],
    "sharpness": [0, 1.0, 4.0],
    "blur": [0, 0.3, 3.0],
    "noise": [0, 0.5],
    "cutout": [0, 1.0],
}

BUILTIN_TFS = [n for n in registered_tfs() if get_tf(n).kind != Kind.CUSTOM]
SET_ENTRIES = {e for make in NAMED_SETS.values() for e in make()}


def _registry_entries() -> set[TFEntry]:
    out: set[TFEntry] = set()
    for name in BUILTIN_TFS:
        if not get_tf(name).takes_magnitude:
            out.add(TFEntry(name))
            continue
        used = sorted(e.magnitude for e in SET_ENTRIES if e.name == name and e.magnitude is not None)
        picks = ([used[0], used[-1]] if used else []) + EDGE_MAGNITUDES.get(name, [])
        out.update(TFEntry(name, float(m)) for m in picks)
    return out


ALL_ENTRIES = sorted(SET_ENTRIES | _registry_entries(), key=lambda e: e.id)
RNG_ENTRIES = [e for e in ALL_ENTRIES if e.tf.uses_rng]

FORMS = {
    "u8_hw": (np.uint8, None),
    "u8_hw1": (np.uint8, 1),
    "u8_hw3": (np.uint8, 3),
    "f32_hw": (np.float32, None),
    "f32_hw1": (np.float32, 1),
    "f32_hw3": (np.float32, 3),
}


def make_image(form: str, h: int = 24, w: int = 20, seed: int = 0) -> np.ndarray:
    """A non-symmetric test image: blocks of random colour over a gradient, so every TF visibly changes it."""
    dtype, channels = FORMS[form]
    rng = np.random.default_rng(seed)
    c = channels or 1
    blocks = rng.random(((h + 3) // 4, (w + 3) // 4, c))
    img = np.kron(blocks, np.ones((4, 4, 1)))[:h, :w]
    img = 0.7 * img + 0.3 * np.linspace(0.0, 1.0, w)[None, :, None]
    img = img if channels else img[..., 0]
    if dtype == np.uint8:
        return np.rint(img * 255).astype(np.uint8)
    return img.astype(np.float32)


def check_contract(x: np.ndarray, y: np.ndarray) -> None:
    assert y.shape == x.shape, f"shape {x.shape} -> {y.shape}"
    assert y.dtype == x.dtype, f"dtype {x.dtype} -> {y.dtype}"
    assert not np.shares_memory(x, y), "the output aliases the input"
    if y.dtype == np.float32:
        assert np.isfinite(y).all(), "non-finite output"
        assert y.min() >= 0.0 and y.max() <= 1.0, f"float output outside [0, 1]: [{y.min()}, {y.max()}]"


# ------------------------------------------------------------------------------------------------------ coverage


def test_named_sets_only_use_registered_tfs() -> None:
    registered = set(registered_tfs())
    for name, make in NAMED_SETS.items():
        missing = {e.name for e in make()} - registered
        assert not missing, f"set {name!r} uses unregistered TFs {missing}"


@pytest.mark.parametrize("name", BUILTIN_TFS)
def test_every_registered_tf_is_exercised(name: str) -> None:
    tf = get_tf(name)
    assert any(e.name == name for e in ALL_ENTRIES)
    if tf.takes_magnitude:
        assert name in EDGE_MAGNITUDES, f"add edge magnitudes for the new TF {name!r} to EDGE_MAGNITUDES"


# ------------------------------------------------------------------------------------------------------ contract


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("entry", ALL_ENTRIES, ids=str)
def test_tf_contract(entry: TFEntry, form: str) -> None:
    x = make_image(form)
    before = x.copy()
    y = apply_tf(x, entry)
    check_contract(x, y)
    np.testing.assert_array_equal(x, before, err_msg="the TF modified its input in place")
    # Deterministic for a given id, and fine with read-only input (memory-mapped data sets, cached arrays).
    x.setflags(write=False)
    np.testing.assert_array_equal(apply_tf(x, entry), y)
    np.testing.assert_array_equal(apply_tf(x, entry.id), y)


@pytest.mark.parametrize("entry", ALL_ENTRIES, ids=str)
def test_float_extremes_stay_in_range(entry: TFEntry) -> None:
    # Kernels whose weights sum to 1 only up to rounding must not push white past 1.0 (found: blur on a 1x2 image);
    # the result would be refused as input by the next call.
    for shape in [(1, 2), (2, 1), (5, 7, 3), (9, 9, 1)]:
        for value in (0.0, 1.0):
            y = apply_tf(np.full(shape, value, np.float32), entry)
            assert y.min() >= 0.0 and y.max() <= 1.0, f"{shape} of {value}: range [{y.min()}, {y.max()}]"


@pytest.mark.parametrize("form", ["u8_hw3", "f32_hw"])
@pytest.mark.parametrize("entry", ALL_ENTRIES, ids=str)
def test_tf_randomness_comes_only_from_the_generator(entry: TFEntry, form: str) -> None:
    x = make_image(form, 32, 32)
    a = apply_tf(x, entry, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(apply_tf(x, entry, rng=np.random.default_rng(1)), a)
    c = apply_tf(x, entry, rng=np.random.default_rng(2))
    if entry.tf.uses_rng and entry.magnitude != 0:
        assert not np.array_equal(a, c), "different generator seeds gave the same result"
    else:
        # A TF that does not declare uses_rng must not depend on the generator (nor do zero-strength random TFs).
        np.testing.assert_array_equal(a, c)


def test_some_tfs_use_rng() -> None:
    assert {"elastic", "noise", "cutout"} <= {e.name for e in RNG_ENTRIES}


@pytest.mark.parametrize("entry", ALL_ENTRIES, ids=str)
def test_uint8_and_float32_agree(entry: TFEntry) -> None:
    # The two dtypes run different code (LUTs and 8-bit OpenCV kernels vs float arithmetic); they may differ by
    # the rounding of the uint8 result, i.e. one grey level.
    x = make_image("u8_hw3", 32, 28)
    a = apply_tf(x, entry, rng=np.random.default_rng(0)).astype(int)
    b = apply_tf(x.astype(np.float32) / 255, entry, rng=np.random.default_rng(0))
    diff = np.abs(a - np.rint(b * 255))
    assert diff.max() <= 1, f"uint8 and float32 results differ by up to {diff.max()} grey levels"


@st.composite
def images(draw: st.DrawFn, max_side: int = 64) -> np.ndarray:
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    channels = draw(st.sampled_from([None, 1, 3]))
    dtype = draw(st.sampled_from([np.uint8, np.float32]))
    content = draw(st.sampled_from(["random", "zeros", "ones", "gradient"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    shape = (h, w) if channels is None else (h, w, channels)
    if content == "random":
        img = rng.random(shape)
    elif content == "zeros":
        img = np.zeros(shape)
    elif content == "ones":
        img = np.ones(shape)
    else:
        img = np.broadcast_to(np.linspace(0, 1, w).reshape((1, w) + (1,) * (len(shape) - 2)), shape)
    if dtype == np.uint8:
        return np.rint(img * 255).astype(np.uint8)
    return np.ascontiguousarray(img, dtype=np.float32)


@settings(max_examples=80, deadline=None)
@given(x=images(), entry=st.sampled_from(ALL_ENTRIES), seed=st.integers(0, 2**16))
def test_tf_contract_any_size(x: np.ndarray, entry: TFEntry, seed: int) -> None:
    before = x.copy()
    y = apply_tf(x, entry, rng=np.random.default_rng(seed))
    check_contract(x, y)
    np.testing.assert_array_equal(x, before)
    np.testing.assert_array_equal(apply_tf(x, entry, rng=np.random.default_rng(seed)), y)


@settings(max_examples=30, deadline=None)
@given(x=images(max_side=24), entry=st.sampled_from(ALL_ENTRIES))
def test_tf_accepts_non_contiguous_views(x: np.ndarray, entry: TFEntry) -> None:
    view = x[::-1, ::2]
    assert not view.flags.c_contiguous or view.shape[1] <= 1
    np.testing.assert_array_equal(apply_tf(view, entry), apply_tf(view.copy(), entry))


# ------------------------------------------------------------------------------------------------------ geometry


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 8, 28])
@pytest.mark.parametrize("channels", [None, 3])
def test_rotate_quarter_turns_equal_rot90(n: int, dtype: type, channels: int | None) -> None:
    x = make_image("u8_hw3" if channels else "u8_hw", n, n, seed=n)
    x = x if dtype == np.uint8 else x.astype(np.float32) / 255
    np.testing.assert_array_equal(apply_tf(x, "rotate(+90)"), np.rot90(x, 1))
    np.testing.assert_array_equal(apply_tf(x, "rotate(-90)"), np.rot90(x, -1))
    np.testing.assert_array_equal(apply_tf(x, "rotate(+180)"), np.rot90(x, 2))


def test_rotate_is_counter_clockwise() -> None:
    x = np.zeros((9, 9), np.uint8)
    x[4, 7] = 255  # right of the centre
    y = apply_tf(x, "rotate(+90)")
    assert np.unravel_index(np.argmax(y), y.shape) == (1, 4)  # above the centre


def test_rotate_half_turn_of_non_square_image() -> None:
    x = make_image("u8_hw3", 12, 17)
    np.testing.assert_array_equal(apply_tf(x, "rotate(+180)"), x[::-1, ::-1])


@pytest.mark.parametrize("form", list(FORMS))
def test_flips(form: str) -> None:
    x = make_image(form, 9, 14)
    np.testing.assert_array_equal(apply_tf(x, "hflip"), x[:, ::-1])
    np.testing.assert_array_equal(apply_tf(x, "vflip"), x[::-1])
    for fuse in (True, False):
        np.testing.assert_array_equal(apply_sequence(x, ["hflip", "hflip"], fuse=fuse), x)
        np.testing.assert_array_equal(apply_sequence(x, ["vflip", "hflip"], fuse=fuse), x[::-1, ::-1])


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize(
    "tf_id",
    ["zoom(1)", "rotate(+0)", "rotate(+360)", "shear_x(+0)", "shear_y(+0)", "translate_x(+0)", "swirl(+0)",
     "elastic(0)", "brightness(1)", "contrast(1)", "gamma(1)", "posterize(8)", "color(1)", "hue(+0)", "hue(+1)",
     "sharpness(1)", "blur(0)", "noise(0)"],
)  # fmt: skip
def test_neutral_magnitudes_are_identity(tf_id: str, form: str) -> None:
    x = make_image(form)
    y = apply_tf(x, tf_id)
    if x.dtype == np.uint8:
        np.testing.assert_array_equal(y, x)
    elif tf_id == "posterize(8)":
        # posterize works on 8-bit levels by definition, so float input is rounded to the nearest k / 255.
        np.testing.assert_allclose(y, np.rint(x * 255) / 255, atol=1e-6)
    else:
        # float32 arithmetic (luma blends, HSV, rotation matrices that are identity up to 1e-16, swirl maps in
        # float32) may move a value by a few ulps; well below anything visible.
        np.testing.assert_allclose(y, x, atol=2e-5)


def test_translate_shifts_by_a_fraction_of_the_size() -> None:
    x = make_image("u8_hw3", 12, 16)
    y = apply_tf(x, "translate_x(+0.25)")  # 4 pixels right
    np.testing.assert_array_equal(y[:, 4:], x[:, :-4])
    np.testing.assert_array_equal(y[:, :4], np.repeat(x[:, :1], 4, axis=1))  # replicated border
    y = apply_tf(x, "translate_y(-0.25)")  # 3 pixels up
    np.testing.assert_array_equal(y[:-3], x[3:])


def _bright_area(img: np.ndarray) -> int:
    return int((img > 127).sum())


def test_zoom_above_one_zooms_in() -> None:
    x = np.zeros((64, 64), np.uint8)
    x[24:40, 24:40] = 255
    assert _bright_area(apply_tf(x, "zoom(1.5)")) == pytest.approx(256 * 1.5**2, rel=0.1)
    assert _bright_area(apply_tf(x, "zoom(0.5)")) == pytest.approx(256 * 0.5**2, rel=0.1)


def test_shear_x_moves_lower_rows_right() -> None:
    x = np.zeros((33, 33), np.uint8)
    x[:, 16] = 255
    y = apply_tf(x, "shear_x(+0.25)")
    assert np.argmax(y[32]) == 16 + 4 and np.argmax(y[0]) == 16 - 4 and np.argmax(y[16]) == 16


def test_swirl_keeps_the_centre_and_twists_the_rest() -> None:
    x = make_image("u8_hw", 33, 33)
    y = apply_tf(x, "swirl(+1)")
    assert y[16, 16] == x[16, 16]
    assert np.abs(y.astype(int) - x).mean() > 10


def test_elastic_strength_grows_with_alpha() -> None:
    x = make_image("f32_hw", 48, 48)
    diffs = [np.abs(apply_tf(x, f"elastic({a})") - x).mean() for a in (0.5, 2.0, 8.0)]
    assert 0 < diffs[0] < diffs[1] < diffs[2]


# ------------------------------------------------------------------------------------------------------ intensity


def _all_levels(channels: int | None = None) -> np.ndarray:
    x = np.arange(256, dtype=np.uint8).reshape(16, 16)
    return x if channels is None else np.repeat(x[..., None], channels, axis=2)


def test_invert_twice_is_identity() -> None:
    x = _all_levels(3)
    np.testing.assert_array_equal(apply_tf(x, "invert"), 255 - x)
    for fuse in (True, False):
        np.testing.assert_array_equal(apply_sequence(x, ["invert", "invert"], fuse=fuse), x)
    xf = make_image("f32_hw3")
    np.testing.assert_allclose(apply_tf(xf, "invert"), 1 - xf, atol=1e-7)
    np.testing.assert_allclose(apply_sequence(xf, ["invert", "invert"]), xf, atol=1e-7)


@pytest.mark.parametrize("bits", range(1, 9))
def test_posterize_keeps_top_bits(bits: int) -> None:
    x = _all_levels()
    expected = x & np.uint8((0xFF << (8 - bits)) & 0xFF)
    np.testing.assert_array_equal(apply_tf(x, f"posterize({bits})"), expected)
    np.testing.assert_allclose(apply_tf(x.astype(np.float32) / 255, f"posterize({bits})"), expected / 255, atol=1e-6)


def test_solarize_inverts_at_and_above_threshold() -> None:
    x = _all_levels()
    y = apply_tf(x, "solarize(0.5)")
    np.testing.assert_array_equal(y[x < 128], x[x < 128])
    np.testing.assert_array_equal(y[x >= 128], 255 - x[x >= 128])
    np.testing.assert_array_equal(apply_tf(x, "solarize(0)"), 255 - x)
    np.testing.assert_array_equal(apply_tf(x, "solarize(1)"), np.where(x == 255, 0, x))


def test_brightness_contrast_gamma_values() -> None:
    x = _all_levels().astype(float)
    np.testing.assert_array_equal(apply_tf(_all_levels(), "brightness(0.5)"), np.rint(x * 0.5))
    np.testing.assert_array_equal(apply_tf(_all_levels(), "brightness(2)"), np.clip(x * 2, 0, 255))
    np.testing.assert_array_equal(apply_tf(_all_levels(), "contrast(0)"), np.full_like(x, 128))
    np.testing.assert_array_equal(apply_tf(_all_levels(), "gamma(2)"), np.rint((x / 255) ** 2 * 255))


@pytest.mark.parametrize("tf_id", ["hue(+0.25)", "hue(-0.1)", "color(0)", "color(0.5)", "color(1.5)"])
@pytest.mark.parametrize("form", list(FORMS))
def test_hue_and_color_leave_grayscale_untouched(tf_id: str, form: str) -> None:
    x = make_image(form)
    if x.ndim == 3 and x.shape[2] == 3:
        x = np.repeat(x[..., :1], 3, axis=2)  # grey stored as RGB
    y = apply_tf(x, tf_id)
    if x.dtype == np.uint8:
        np.testing.assert_array_equal(y, x)
    else:
        np.testing.assert_allclose(y, x, atol=1e-6)


def test_hue_and_color_change_colour_images() -> None:
    x = make_image("u8_hw3")
    assert np.abs(apply_tf(x, "hue(+0.25)").astype(int) - x).mean() > 10
    grey = apply_tf(x, "color(0)")
    assert (grey.max(axis=2) - grey.min(axis=2)).max() <= 1


def test_hue_full_turn_in_steps_returns_the_image() -> None:
    x = make_image("u8_hw3")
    y = apply_sequence(x, ["hue(+0.25)"] * 4)
    assert np.abs(y.astype(int) - x).max() <= 2


@pytest.mark.parametrize("shift", [0.1, -0.1, 0.25, -0.25, -0.75, 0.9])
def test_hue_matches_colorsys(shift: float) -> None:
    """Against Python's own HSV maths, pixel by pixel, on an image wide enough for OpenCV's vectorised path
    (which handles negative hues differently from its scalar tail)."""
    import colorsys

    x = np.random.default_rng(4).integers(0, 256, (8, 40, 3), dtype=np.uint8)
    ref = np.empty(x.shape, np.float64)
    for idx in np.ndindex(x.shape[:2]):
        h, s_, v = colorsys.rgb_to_hsv(*(x[idx] / 255.0))
        ref[idx] = colorsys.hsv_to_rgb((h + shift) % 1.0, s_, v)
    got_u8 = apply_tf(x, TFEntry("hue", shift))
    got_f32 = apply_tf(x.astype(np.float32) / np.float32(255.0), TFEntry("hue", shift))
    assert np.abs(got_u8.astype(int) - np.rint(ref * 255)).max() <= 1
    np.testing.assert_allclose(got_f32, ref, atol=1e-5)


def test_autocontrast_and_equalize_stretch_the_range() -> None:
    x = (make_image("u8_hw3") // 2 + 40).astype(np.uint8)
    for tf_id in ("autocontrast", "equalize"):
        y = apply_tf(x, tf_id)
        assert (y.reshape(-1, 3).max(0) == 255).all(), tf_id
        # Both are monotone per channel: order between pixels is kept.
        order = np.argsort(x[..., 0], axis=None, kind="stable")
        assert (np.diff(y[..., 0].ravel()[order].astype(int)) >= 0).all(), tf_id
    np.testing.assert_array_equal(apply_tf(np.full((5, 5), 77, np.uint8), "autocontrast"), 77)


def test_blur_sharpness_noise_cutout() -> None:
    x = make_image("f32_hw", 48, 48)
    assert apply_tf(x, "blur(1.5)").var() < x.var()
    assert np.abs(apply_tf(x, "sharpness(0)") - x).mean() > 0
    assert np.abs(np.diff(apply_tf(x, "sharpness(3)"), axis=1)).mean() > np.abs(np.diff(x, axis=1)).mean()
    mid = np.full((48, 48), 0.5, np.float32)
    assert np.std(apply_tf(mid, "noise(0.1)") - mid) == pytest.approx(0.1, rel=0.1)
    y = apply_tf(np.full((40, 40), 200, np.uint8), "cutout(0.25)", rng=np.random.default_rng(3))
    zeroed = y == 0
    assert 0 < zeroed.sum() <= 100
    rows, cols = np.nonzero(zeroed)
    assert zeroed[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all(), "cutout is not a rectangle"


def test_erosion_and_dilation_on_a_white_square() -> None:
    x = np.zeros((28, 28), np.uint8)
    x[8:18, 10:20] = 255
    eroded, dilated = apply_tf(x, "erosion"), apply_tf(x, "dilation")
    expected = np.zeros_like(x)
    expected[9:17, 11:19] = 255
    np.testing.assert_array_equal(eroded, expected)
    assert (dilated == 255).sum() == 12 * 12 - 4  # the 3x3 cross grows edges by one pixel, corners stay cut
    assert (dilated[7:19, 9:21] == 255).sum() == 12 * 12 - 4


def test_erosion_and_dilation_on_mnist(mnist_images: np.ndarray) -> None:
    for digit in mnist_images:
        eroded, dilated = apply_tf(digit, "erosion"), apply_tf(digit, "dilation")
        assert (eroded <= digit).all() and (digit <= dilated).all()
        assert eroded.astype(int).sum() < digit.astype(int).sum() < dilated.astype(int).sum()


# ------------------------------------------------------------------------------------------------------ bad input

GOOD = make_image("u8_hw3", 8, 8)
ONE_OF_EACH_KIND = sorted({e.tf.kind: e for e in ALL_ENTRIES}.values(), key=lambda e: e.id)


@pytest.mark.parametrize("entry", ONE_OF_EACH_KIND, ids=str)
@pytest.mark.parametrize(
    ("image", "error", "match"),
    [
        pytest.param(GOOD.astype(np.int16), TypeError, "dtype int16", id="int16"),
        pytest.param(GOOD.astype(np.float64) / 255, TypeError, "dtype float64", id="float64"),
        pytest.param(GOOD > 100, TypeError, "dtype bool", id="bool"),
        pytest.param(GOOD.tolist(), TypeError, "numpy array", id="list"),
        pytest.param(np.dstack([GOOD, GOOD[..., :2]]), ValueError, "5 channels", id="5-channels"),
        pytest.param(np.dstack([GOOD, GOOD]), ValueError, "6 channels", id="6-channels"),
        pytest.param(np.zeros((3, 32, 32), np.uint8), ValueError, "HWC", id="CHW"),
        pytest.param(GOOD[None], ValueError, "shape", id="4-D"),
        pytest.param(np.zeros((5,), np.uint8), ValueError, "shape", id="1-D"),
        pytest.param(np.zeros((0, 5, 3), np.uint8), ValueError, "empty", id="empty"),
        pytest.param(np.full((4, 4), np.nan, np.float32), ValueError, "NaN", id="nan"),
        pytest.param(np.full((4, 4), np.inf, np.float32), ValueError, "infinite", id="inf"),
        pytest.param(np.full((4, 4), 1.5, np.float32), ValueError, r"\[0, 1\]", id="above-1"),
        pytest.param(np.full((4, 4), -0.1, np.float32), ValueError, r"\[0, 1\]", id="below-0"),
        pytest.param(np.full((4, 4), 255.0, np.float32), ValueError, r"\[0, 1\]", id="float-0-255"),
    ],
)
def test_bad_images_are_refused(image: object, error: type, match: str, entry: TFEntry) -> None:
    with pytest.raises(error, match=match):
        apply_tf(image, entry)
    with pytest.raises(error, match=match):
        check_image(image)


def test_empty_image_is_refused_with_its_shape() -> None:
    with pytest.raises(ValueError, match=r"empty \(shape \(7, 0\)\)"):
        apply_tf(np.zeros((7, 0), np.uint8), "hflip")


def test_unknown_tf_id_is_refused() -> None:
    with pytest.raises(KeyError, match="unknown TF 'rotat'.*Did you mean rotate"):
        apply_tf(GOOD, "rotat(+5)")
    with pytest.raises(ValueError, match="malformed TF id"):
        apply_tf(GOOD, "rotate(")
    with pytest.raises(TypeError, match="TF ids must be"):
        apply_tf(GOOD, 3.5)


@pytest.mark.parametrize(
    ("tf_id", "match"),
    [("zoom(0)", r"TF 'zoom' takes magnitudes in \[0.01, 100\]"),
     ("zoom(-1)", r"TF 'zoom' takes magnitudes in \[0.01, 100\]"),
     ("gamma(0)", r"TF 'gamma' takes magnitudes in \[0.01, 100\]"),
     ("posterize(0)", r"TF 'posterize' takes magnitudes in \[1, 8\]"),
     ("posterize(9)", r"TF 'posterize' takes magnitudes in \[1, 8\]"),
     ("blur(1e9)", r"TF 'blur' takes magnitudes in \[0, 50\]")],
)  # fmt: skip
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_bad_magnitudes_are_refused(tf_id: str, match: str, dtype: type) -> None:
    with pytest.raises(ValueError, match=match):
        apply_tf(GOOD if dtype == np.uint8 else GOOD.astype(np.float32) / 255, tf_id)
