"""Bad and unusual inputs to LearnedPolicyTransform and to every TF: handled as documented or refused clearly.

"Clearly" means a ``TypeError`` or ``ValueError`` whose message names the problem, raised before anything is
returned; never an ``IndexError`` from deep inside, never a silently wrong image (wrong shape, dtype or range,
NaN pixels, or the caller's array modified in place). The hypothesis tests at the end drive random shapes,
dtypes, layouts and values through both and hold every outcome to that rule.
"""

from __future__ import annotations

from typing import Any

import albumentations as A
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image
from torchvision import tv_tensors

from learned_augment.ops import NAMED_SETS, Kind, TFEntry, TFSet, apply_sequence, apply_tf, get_tf, registered_tfs
from learned_augment.policy import UniformPolicy
from learned_augment.transforms import LearnedPolicyTransform


def _every_entry() -> list[TFEntry]:
    """Every entry of every named set, plus the built-in TFs without a magnitude that no set uses."""
    entries = {e for make in NAMED_SETS.values() for e in make()}
    for name in registered_tfs():
        tf = get_tf(name)
        if tf.kind != Kind.CUSTOM and not tf.takes_magnitude:
            entries.add(TFEntry(name))
    return sorted(entries, key=lambda e: e.id)


EVERY_ENTRY = _every_entry()
EVERY_SET = TFSet(EVERY_ENTRY, name="every")


def test_every_builtin_tf_is_covered() -> None:
    builtin = {n for n in registered_tfs() if get_tf(n).kind != Kind.CUSTOM}
    assert builtin == {e.name for e in EVERY_ENTRY}, "add the new TF to a named set or give it a magnitude here"


@pytest.fixture(scope="module")
def every() -> LearnedPolicyTransform:
    """Four TFs per call drawn uniformly from every built-in TF entry (~90)."""
    return LearnedPolicyTransform(UniformPolicy(EVERY_SET, seq_len=4), p=1.0, seed=0)


# ------------------------------------------------------------------------------------------------ output contract


def _signature(x: Any) -> tuple:
    if isinstance(x, Image.Image):
        return type(x), x.mode, x.size
    return type(x), tuple(x.shape), x.dtype


def _copy(x: Any) -> Any:
    if isinstance(x, Image.Image):
        return x.copy()
    return x.clone() if isinstance(x, torch.Tensor) else x.copy()


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, Image.Image):
        return a.mode == b.mode and np.array_equal(np.asarray(a), np.asarray(b))
    if isinstance(a, torch.Tensor):
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        if a.is_floating_point():
            return np.array_equal(a.float().numpy(), b.float().numpy(), equal_nan=True)
        return torch.equal(a, b)
    return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


def check_output(x: Any, y: Any) -> None:
    """The documented contract: same type, shape (PIL: mode and size) and dtype; floats finite in [0, 1]."""
    assert _signature(y) == _signature(x), f"{_signature(x)} -> {_signature(y)}"
    if isinstance(y, Image.Image):
        return
    if isinstance(y, torch.Tensor):
        if y.is_floating_point() and y.numel():
            yf = y.float()
            assert torch.isfinite(yf).all(), "non-finite output"
            assert yf.min() >= 0 and yf.max() <= 1, f"float output outside [0, 1]: [{yf.min()}, {yf.max()}]"
        return
    if y.dtype.kind == "f" and y.size:
        assert np.isfinite(y).all(), "non-finite output"
        assert y.min() >= 0 and y.max() <= 1, f"float output outside [0, 1]: [{y.min()}, {y.max()}]"


def run_checked(t: Any, x: Any) -> Any:
    """Call ``t(x)``; the output keeps the contract and the input is not modified."""
    before = _copy(x)
    y = t(x)
    check_output(x, y)
    assert _equal(x, before), "the transform modified its input in place"
    return y


# ------------------------------------------------------------------------------------------------ refused inputs

H, W = 12, 10
U8 = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)

REFUSED: list[tuple[str, Any, type, str]] = [
    ("numpy int16", U8.astype(np.int16), TypeError, "int16"),
    ("numpy uint16", U8.astype(np.uint16), TypeError, "uint16"),
    ("numpy int64", U8.astype(np.int64), TypeError, "int64"),
    ("numpy bool", U8 > 100, TypeError, "bool"),
    ("numpy complex", U8.astype(np.complex64), TypeError, "complex64"),
    ("numpy object", U8.astype(object), TypeError, "object"),
    ("numpy float64 0..255", U8.astype(np.float64), ValueError, r"\[0, 1\]"),
    ("numpy float64 below 0", U8 / 255.0 - 0.5, ValueError, r"\[0, 1\]"),
    ("numpy float32 NaN", np.full((H, W, 3), np.nan, np.float32), ValueError, "NaN"),
    ("numpy float64 one NaN pixel", np.where(np.arange(H * W).reshape(H, W) == 7, np.nan, 0.5), ValueError, "NaN"),
    ("numpy float32 +inf", np.full((H, W), np.inf, np.float32), ValueError, "infinite"),
    ("numpy float64 -inf", np.full((H, W), -np.inf), ValueError, "infinite"),
    ("numpy float16 NaN", np.full((H, W, 1), np.nan, np.float16), ValueError, "NaN"),
    ("numpy 0x0", np.zeros((0, 0), np.uint8), ValueError, "empty"),
    ("numpy 0xWx3", np.zeros((0, W, 3), np.uint8), ValueError, "empty"),
    ("numpy Hx0x1 float", np.zeros((H, 0, 1), np.float32), ValueError, "empty"),
    ("numpy 5 channels", np.dstack([U8, U8[..., :2]]), ValueError, "5 channels"),
    ("numpy 0 channels", U8[..., :0], ValueError, "0 channels"),
    ("numpy 4-D", U8[None], ValueError, "shape"),
    ("torch bool", torch.zeros(3, H, W, dtype=torch.bool), TypeError, "bool"),
    ("torch int16", torch.zeros(3, H, W, dtype=torch.int16), TypeError, "int16"),
    ("torch int64", torch.zeros(1, H, W, dtype=torch.int64), TypeError, "int64"),
    ("torch complex", torch.zeros(3, H, W, dtype=torch.complex64), TypeError, "complex64"),
    ("torch float64 above 1", torch.full((3, H, W), 3.0, dtype=torch.float64), ValueError, r"\[0, 1\]"),
    ("torch float32 NaN", torch.full((3, H, W), float("nan")), ValueError, "NaN"),
    ("torch float16 inf", torch.full((1, H, W), float("inf"), dtype=torch.float16), ValueError, "infinite"),
    ("torch bfloat16 NaN", torch.full((3, H, W), float("nan"), dtype=torch.bfloat16), ValueError, "NaN"),
    ("torch 3x0x0", torch.zeros(3, 0, 0), ValueError, "empty"),
    ("torch 5 channels", torch.zeros(5, H, W), ValueError, "1 or 3 channels"),
    ("torch 6 channels", torch.zeros(6, H, W, dtype=torch.uint8), ValueError, "1 or 3 channels"),
    ("torch HW", torch.zeros(H, W), ValueError, r"\(C, H, W\)"),
    ("torch 5-D", torch.zeros(1, 2, 3, H, W), ValueError, r"\(C, H, W\)"),
    ("batch bool", torch.zeros(2, 3, H, W, dtype=torch.bool), TypeError, "bool"),
    ("batch NaN", torch.full((2, 3, H, W), float("nan")), ValueError, "NaN"),
    (
        "batch one NaN sample",
        torch.cat([torch.rand(1, 3, H, W), torch.full((1, 3, H, W), float("nan"))]),
        ValueError,
        "NaN",
    ),
    ("batch above 1", torch.full((2, 1, H, W), 2.0), ValueError, r"\[0, 1\]"),
    ("batch 2x3x0x4", torch.zeros(2, 3, 0, 4), ValueError, "empty"),
    ("batch 5 channels", torch.zeros(2, 5, H, W), ValueError, "5 channels"),
    ("tv_tensors.Image int32", tv_tensors.Image(torch.zeros(3, H, W, dtype=torch.int32)), TypeError, "int32"),
    ("PIL P", Image.new("P", (W, H)), ValueError, "mode 'P'"),
    ("PIL RGBa (premultiplied)", Image.new("RGBa", (W, H)), ValueError, "convert to 'RGBA'"),
    ("PIL PA", Image.new("PA", (W, H)), ValueError, "mode 'PA'"),
    ("PIL 1", Image.new("1", (W, H)), ValueError, "mode '1'"),
    ("PIL I", Image.new("I", (W, H)), ValueError, "mode 'I'"),
    ("PIL I;16", Image.new("I;16", (W, H)), ValueError, "mode 'I;16'"),
    ("PIL F", Image.new("F", (W, H)), ValueError, "mode 'F'"),
    ("PIL CMYK", Image.new("CMYK", (W, H)), ValueError, "mode 'CMYK'"),
    ("PIL YCbCr", Image.new("YCbCr", (W, H)), ValueError, "mode 'YCbCr'"),
    ("PIL HSV", Image.new("HSV", (W, H)), ValueError, "mode 'HSV'"),
    ("PIL RGB 0x0", Image.new("RGB", (0, 0)), ValueError, "empty"),
    ("PIL L 0x7", Image.new("L", (0, 7)), ValueError, "empty"),
    ("None", None, TypeError, "no image"),
    ("a path string", "image.png", TypeError, "no image"),
    ("nested lists", [[0, 1], [2, 3]], TypeError, "no image"),
]


@pytest.mark.parametrize(("x", "error", "match"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_refused_inputs_fail_clearly(x: Any, error: type, match: str, every: LearnedPolicyTransform) -> None:
    before = _copy(x) if hasattr(x, "copy") or isinstance(x, torch.Tensor) else x
    with pytest.raises(error, match=match):
        every(x)
    if isinstance(x, (np.ndarray, torch.Tensor, Image.Image)):
        assert _equal(x, before)


ALBUMENTATIONS_REFUSED = [r for r in REFUSED if isinstance(r[1], np.ndarray) and r[1].dtype.kind in "uf"]


@pytest.mark.parametrize(
    ("x", "error", "match"), [r[1:] for r in ALBUMENTATIONS_REFUSED], ids=[r[0] for r in ALBUMENTATIONS_REFUSED]
)
def test_refused_inputs_fail_clearly_in_albumentations(x: Any, error: type, match: str) -> None:
    t = LearnedPolicyTransform(UniformPolicy(EVERY_SET, seq_len=4), p=1.0, seed=0)
    # float16 and float64 run in float32, as in a positional call: refused by their values, as there.
    with pytest.raises(error, match=match):
        A.Compose([t])(image=x)


@pytest.mark.parametrize(
    "x",
    [np.zeros(5, np.uint8), np.array(3, np.uint8), torch.zeros(5), torch.tensor(0.5)],
    ids=["numpy 1-D", "numpy 0-D", "torch 1-D", "torch 0-D"],
)
def test_arrays_of_fewer_than_two_dimensions_fail_clearly(x: Any, every: LearnedPolicyTransform) -> None:
    with pytest.raises(ValueError, match="shape"):
        every(x)


# ------------------------------------------------------------------------------------------------ accepted edge cases


def _readonly(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.setflags(write=False)
    return a


ACCEPTED: dict[str, Any] = {
    "numpy 1x1 grey": np.full((1, 1), 200, np.uint8),
    "numpy 1x1x1 float32": np.full((1, 1, 1), 0.25, np.float32),
    "numpy 1x1x3": np.full((1, 1, 3), 17, np.uint8),
    "numpy 1x17x3": U8[:1],
    "numpy 17x1 float64": np.linspace(0, 1, 17).reshape(17, 1),
    "numpy float16": (U8 / 255.0).astype(np.float16),
    "numpy float32 exactly 0 and 1": np.where(U8 > 127, 1.0, 0.0).astype(np.float32),
    "numpy Fortran order": np.asfortranarray(U8),
    "numpy reversed strides": U8[::-1, ::-1],
    "numpy every other channel": np.dstack([U8, U8])[..., ::2],
    "numpy transposed": U8.transpose(1, 0, 2),
    "numpy read-only": _readonly(U8),
    "numpy broadcast (stride 0)": np.broadcast_to(np.uint8(7), (H, W, 3)),
    "torch 1x1x1 uint8": torch.full((1, 1, 1), 9, dtype=torch.uint8),
    "torch 3x1x1 float": torch.rand(3, 1, 1),
    "torch 1xHx1 half": torch.rand(1, H, 1).half(),
    "torch permuted (non-contiguous)": torch.from_numpy(U8).permute(2, 0, 1),
    "torch strided slice": torch.from_numpy(np.ascontiguousarray(np.kron(U8, np.ones((2, 2, 1), np.uint8)))).permute(
        2, 0, 1
    )[:, ::2, ::2],
    "torch expanded (stride 0)": torch.rand(1, 1, 1).expand(3, H, W),
    "tv_tensors.Image 1x1": tv_tensors.Image(torch.rand(3, 1, 1)),
    "batch of 0": torch.zeros(0, 3, H, W),
    "batch 2x3x1x1": torch.rand(2, 3, 1, 1),
    "batch non-contiguous": torch.rand(2, H, W, 3).permute(0, 3, 1, 2),
    "batch uint8 1 channel": torch.randint(0, 256, (3, 1, H, W), dtype=torch.uint8),
    "PIL L": Image.fromarray(U8[..., 0]),
    "PIL RGB 1x1": Image.new("RGB", (1, 1), (200, 10, 30)),
    "PIL L 1xW": Image.new("L", (W, 1), 128),
}


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_accepted_edge_cases_keep_the_contract(name: str, every: LearnedPolicyTransform) -> None:
    for _ in range(8):  # eight draws of four TFs each
        run_checked(every, ACCEPTED[name])


@pytest.mark.parametrize(
    "name",
    [
        "numpy Fortran order",
        "numpy reversed strides",
        "numpy every other channel",
        "numpy transposed",
        "numpy broadcast (stride 0)",
        "torch permuted (non-contiguous)",
        "torch strided slice",
        "torch expanded (stride 0)",
        "batch non-contiguous",
    ],
)
def test_layout_does_not_change_the_result(name: str, every: LearnedPolicyTransform) -> None:
    x = ACCEPTED[name]
    for _ in range(8):
        y = every(x)
        contiguous = x.contiguous() if isinstance(x, torch.Tensor) else np.ascontiguousarray(x)
        assert _equal(every.replay(contiguous, every.last_params), y), every.last_params


@pytest.mark.parametrize("entry", EVERY_ENTRY, ids=str)
def test_every_tf_through_the_transform_on_tiny_images(entry: TFEntry) -> None:
    t = LearnedPolicyTransform(UniformPolicy(TFSet([entry]), seq_len=2), p=1.0, seed=0)
    for x in (
        np.full((1, 1), 77, np.uint8),
        np.full((1, 1, 3), 0.5, np.float32),
        np.full((1, 5, 3), 200, np.uint8),
        np.linspace(0, 1, 5, dtype=np.float32).reshape(5, 1),
        torch.rand(3, 2, 2),
        torch.randint(0, 256, (2, 1, 1, 1), dtype=torch.uint8),
        torch.rand(2, 3, 1, 3),
        Image.new("RGB", (1, 1), (1, 2, 3)),
    ):
        run_checked(t, x)


# ------------------------------------------------------------------------------------------------ every TF directly

TF_REFUSED: list[tuple[str, Any, type, str]] = [
    ("int16", U8.astype(np.int16), TypeError, "int16"),
    ("float64", U8 / 255.0, TypeError, "float64"),
    ("bool", U8 > 9, TypeError, "bool"),
    ("float32 NaN pixel", np.where(U8 > 250, np.nan, 0.5).astype(np.float32), ValueError, "NaN"),
    ("float32 inf", np.full((3, 3), np.inf, np.float32), ValueError, "infinite"),
    ("float32 above 1", np.full((3, 3, 3), 1.5, np.float32), ValueError, r"\[0, 1\]"),
    ("0x0", np.zeros((0, 0), np.uint8), ValueError, "empty"),
    ("1x0x3", np.zeros((1, 0, 3), np.uint8), ValueError, "empty"),
    ("5 channels", np.dstack([U8, U8[..., :2]]), ValueError, "5 channels"),
    ("6 channels", np.dstack([U8, U8]), ValueError, "6 channels"),
    ("1-D", np.zeros(5, np.uint8), ValueError, "shape"),
    ("0-D", np.array(5, np.uint8), ValueError, "shape"),
]


@pytest.mark.parametrize("entry", EVERY_ENTRY, ids=str)
def test_every_tf_refuses_every_bad_image(entry: TFEntry) -> None:
    for name, x, error, match in TF_REFUSED:
        try:
            with pytest.raises(error, match=match):
                apply_tf(x, entry)
        except BaseException as exc:
            raise AssertionError(f"{entry} on a {name} image: {exc}") from exc


@pytest.mark.parametrize("entry", EVERY_ENTRY, ids=str)
def test_every_tf_on_1x1_and_line_images(entry: TFEntry) -> None:
    for shape in [(1, 1), (1, 1, 1), (1, 1, 3), (1, 7), (7, 1, 3), (2, 2, 3)]:
        for dtype in (np.uint8, np.float32):
            rng = np.random.default_rng(0)
            x = rng.random(shape)
            x = np.rint(x * 255).astype(np.uint8) if dtype == np.uint8 else x.astype(np.float32)
            y = apply_tf(x, entry, rng=np.random.default_rng(1))
            check_output(x, y)


# ------------------------------------------------------------------------------------------------ boxes off the image

BOX_TFS = TFSet(["rotate(+20)", "hflip", "zoom(1.15)", "swirl(+0.6)", "translate_x(+0.1)", "elastic(1.5)", "vflip"])
SIDE = 32


@pytest.mark.parametrize(
    "box",
    [[100, 100, 120, 120], [-50, -50, -10, -10], [-5, -5, 40, 40], [30, 30, 90, 31], [0, 0, 0, 0], [10, 10, 5, 5]],
    ids=["far outside", "above-left outside", "larger than the image", "crossing the edge", "empty", "inverted"],
)
def test_boxes_off_the_image_come_back_clipped(box: list[float]) -> None:
    image = np.zeros((SIDE, SIDE, 3), np.uint8)
    rng = np.random.default_rng(0)
    for _ in range(30):
        ids = rng.integers(0, len(BOX_TFS), 3)
        _, moved = apply_sequence(image, ids, BOX_TFS, targets={"bboxes": np.array([box + [7.0]])}, rng=rng)
        out = moved["bboxes"]
        assert out.shape == (1, 5) and out[0, 4] == 7.0, "the label column was lost"
        x0, y0, x1, y1 = out[0, :4]
        assert np.isfinite(out).all()
        assert 0 <= x0 <= x1 <= SIDE and 0 <= y0 <= y1 <= SIDE, out
        if box[0] >= SIDE or box[2] <= 0:
            assert (x1 - x0) * (y1 - y0) < 1.0, f"a box entirely off the image came back with area: {out}"


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_boxes_and_keypoints_are_refused(bad: float) -> None:
    image = np.zeros((SIDE, SIDE), np.uint8)
    with pytest.raises(ValueError, match="NaN or infinite"):
        apply_sequence(image, [0], BOX_TFS, targets={"bboxes": [[bad, 0, 5, 5]]})
    with pytest.raises(ValueError, match="NaN or infinite"):
        apply_sequence(image, [0], BOX_TFS, targets={"keypoints": [[3, bad]]})
    # Extra columns (labels, angles) are the caller's business.
    apply_sequence(image, [0], BOX_TFS, targets={"bboxes": [[1, 1, 5, 5, bad]], "keypoints": [[3, 3, bad]]})


def test_torchvision_boxes_outside_the_canvas() -> None:
    t = LearnedPolicyTransform(UniformPolicy(BOX_TFS, seq_len=3), p=1.0, seed=0)
    image = tv_tensors.Image(torch.zeros(3, SIDE, SIDE, dtype=torch.uint8))
    for fmt, boxes in (("XYXY", [[100, 100, 120, 120], [-5, -5, 40, 40]]), ("CXCYWH", [[-20, 16, 8, 8]])):
        b = tv_tensors.BoundingBoxes(torch.tensor(boxes, dtype=torch.float32), format=fmt, canvas_size=(SIDE, SIDE))
        for _ in range(10):
            _, out = t(image, b)
            assert isinstance(out, tv_tensors.BoundingBoxes) and out.format == b.format and out.shape == b.shape
            xyxy = torch.as_tensor(
                tv_tensors.BoundingBoxes(out, format=fmt, canvas_size=(SIDE, SIDE)).as_subclass(torch.Tensor)
            )
            assert torch.isfinite(xyxy).all()
    nan_box = tv_tensors.BoundingBoxes(torch.tensor([[float("nan"), 0, 4, 4]]), format="XYXY", canvas_size=(SIDE, SIDE))
    with pytest.raises(ValueError, match="NaN or infinite"):
        t(image, nan_box)


@pytest.mark.parametrize("clip", [False, True])
def test_albumentations_boxes_outside_the_image(clip: bool) -> None:
    t = LearnedPolicyTransform(UniformPolicy(BOX_TFS, seq_len=3), p=1.0, seed=0)
    image = np.zeros((SIDE, SIDE, 3), np.uint8)
    compose = A.Compose([t], bbox_params=A.BboxParams(format="albumentations", label_fields=[], clip=clip))
    outside = np.array([[0.5, 0.5, 1.5, 1.5]])
    if not clip:
        # Albumentations itself refuses normalised boxes outside [0, 1] unless asked to clip them.
        with pytest.raises(ValueError, match="range"):
            compose(image=image, bboxes=outside)
        return
    for _ in range(10):
        out = np.asarray(compose(image=image, bboxes=outside)["bboxes"])
        assert np.isfinite(out).all() and ((out >= 0) & (out <= 1)).all(), out


# ------------------------------------------------------------------------------------------------ fuzzing

_NP_DTYPES = [np.uint8, np.float32, np.float64, np.float16, np.int16, np.uint16, np.int32, np.bool_]
_TORCH_DTYPES = [torch.uint8, torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int16, torch.bool]
_PIL_MODES = ["L", "RGB", "LA", "P", "RGBA", "1", "I", "F"]


def _values(draw: st.DrawFn, shape: tuple[int, ...], floating: bool, integer_max: int) -> np.ndarray:
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if not floating:
        return rng.integers(0, integer_max + 1, shape)
    kind = draw(st.sampled_from(["in range", "in range", "in range", "above 1", "below 0", "nan", "inf", "edges"]))
    x = rng.random(shape)
    if kind == "edges":
        x = np.round(x)
    elif kind == "above 1":
        x = x + 1.5
    elif kind == "below 0":
        x = x - 1.5
    elif kind in ("nan", "inf") and x.size:
        x.reshape(-1)[rng.integers(0, x.size)] = np.nan if kind == "nan" else np.inf
    return x


@st.composite
def any_input(draw: st.DrawFn) -> tuple[Any, bool]:
    """(input, whether the documented contract accepts it)."""
    container = draw(st.sampled_from(["numpy", "torch", "batch", "pil"]))
    h, w = draw(st.integers(0, 9)), draw(st.integers(0, 9))
    if container == "pil":
        mode = draw(st.sampled_from(_PIL_MODES))
        img = Image.new(mode, (w, h))
        channels = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}
        if mode in channels and h and w:
            c = channels[mode]
            img = Image.fromarray(_values(draw, (h, w, c) if c > 1 else (h, w), False, 255).astype(np.uint8))
        return img, mode in channels and h > 0 and w > 0
    c = draw(st.sampled_from([None, 0, 1, 2, 3, 4, 5]))
    layout = draw(st.sampled_from(["contiguous", "transposed", "strided"]))
    if container == "numpy":
        dtype = draw(st.sampled_from(_NP_DTYPES))
        shape = (h, w) if c is None else (h, w, c)
        floating = np.dtype(dtype).kind == "f"
        x = _values(draw, shape, floating, 1 if dtype == np.bool_ else 255).astype(dtype)
        if layout == "transposed":
            x = np.ascontiguousarray(np.swapaxes(x, 0, 1)).swapaxes(0, 1)
        elif layout == "strided":
            x = np.repeat(x, 2, axis=0)[::2]
        ok_dtype = dtype in (np.uint8, np.float32, np.float64, np.float16)
        ok_shape = (c is None or c in (1, 2, 3, 4)) and h > 0 and w > 0
        ok_values = not floating or (x.size == 0 or (np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1))
        return x, ok_dtype and ok_shape and ok_values
    dtype = draw(st.sampled_from(_TORCH_DTYPES))
    cc = 3 if c is None else c
    shape = (cc, h, w) if container == "torch" else (draw(st.integers(0, 3)), cc, h, w)
    floating = dtype.is_floating_point
    x = torch.from_numpy(_values(draw, shape, floating, 1 if dtype == torch.bool else 255)).to(dtype)
    if layout == "transposed":
        x = x.transpose(-1, -2).contiguous().transpose(-1, -2)
    elif layout == "strided":
        x = x.repeat_interleave(2, dim=-2)[..., ::2, :]
    ok_dtype = dtype == torch.uint8 or floating
    ok_shape = cc in (1, 2, 3, 4) and h > 0 and w > 0
    xf = x.float()
    ok_values = not floating or (x.numel() == 0 or (torch.isfinite(xf).all() and xf.min() >= 0 and xf.max() <= 1))
    if container == "batch" and shape[0] == 0:
        return x, True  # an empty batch is returned as it is
    return x, bool(ok_dtype and ok_shape and ok_values)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=any_input(), seed=st.integers(0, 1000))
def test_fuzz_learned_policy_transform(case: tuple[Any, bool], seed: int) -> None:
    x, accepted = case
    t = LearnedPolicyTransform(UniformPolicy(EVERY_SET, seq_len=3), p=1.0, seed=seed)
    before = _copy(x)
    if accepted:
        run_checked(t, x)
        event("accepted")
        return
    with pytest.raises((TypeError, ValueError)) as info:
        t(x)
    event(f"refused with {type(info.value).__name__}")
    assert str(info.value), "an error without a message"
    assert _equal(x, before)


@st.composite
def any_array(draw: st.DrawFn) -> tuple[np.ndarray, bool]:
    # Weighted toward what check_image accepts, so both outcomes are exercised often.
    ndim = draw(st.sampled_from([2, 2, 3, 3, 3, 0, 1, 4]))
    shape = tuple(draw(st.sampled_from([1, 2, 3, 5, 8, 13, 0])) for _ in range(min(ndim, 2)))
    if ndim >= 3:
        shape += tuple(draw(st.sampled_from([1, 3, 3, 2, 4, 5, 0])) for _ in range(ndim - 2))
    dtype = draw(st.sampled_from([np.uint8, np.uint8, np.float32, np.float32, *_NP_DTYPES]))
    floating = np.dtype(dtype).kind == "f"
    x = _values(draw, shape, floating, 1 if dtype == np.bool_ else 255).astype(dtype)
    if ndim >= 2 and draw(st.booleans()):
        x = np.flip(x, axis=1)
    ok_shape = ndim in (2, 3) and shape[0] > 0 and shape[1] > 0 and (ndim == 2 or shape[2] in (1, 2, 3, 4))
    ok_dtype = dtype in (np.uint8, np.float32)
    ok_values = not floating or (x.size == 0 or (np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1))
    return x, ok_shape and ok_dtype and ok_values


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=any_array(), entry=st.sampled_from(EVERY_ENTRY), seed=st.integers(0, 1000))
def test_fuzz_every_tf(case: tuple[np.ndarray, bool], entry: TFEntry, seed: int) -> None:
    x, accepted = case
    before = x.copy()
    if accepted:
        y = apply_tf(x, entry, rng=np.random.default_rng(seed))
        check_output(x, y)
        assert not np.shares_memory(x, y)
        event("accepted")
    else:
        with pytest.raises((TypeError, ValueError)) as info:
            apply_tf(x, entry, rng=np.random.default_rng(seed))
        event(f"refused with {type(info.value).__name__}")
        assert str(info.value)
    np.testing.assert_array_equal(x, before)
