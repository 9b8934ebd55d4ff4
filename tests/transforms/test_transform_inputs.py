"""LearnedPolicyTransform on every accepted input type, its errors, replay, repr, pickling and the batched path."""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from transform_helpers import H, W, smooth_image

from learned_augment.ops import TFSet, apply_sequence
from learned_augment.policy import LSTMPolicy, MeanFieldPolicy
from learned_augment.transforms import LearnedPolicyTransform

# Every entry changes an image without symmetries, and none draws random numbers (so replays are exact).
CHANGING_IDS = ["rotate(+20)", "zoom(1.15)", "shear_x(+0.2)", "translate_y(-0.1)", "brightness(1.5)"]

RGB = smooth_image(0)
GRAY = smooth_image(1, channels=1)[..., 0]
F32 = np.float32(1.0 / 255.0)

# name -> (make the input, its HWC float64 form on the 0..1 scale, tolerance of the output against the numpy path)
INPUTS: dict[str, tuple[Callable[[], Any], np.ndarray, float]] = {
    "pil_L": (lambda: Image.fromarray(GRAY), GRAY[..., None] / 255.0, 0.0),
    "pil_RGB": (lambda: Image.fromarray(RGB), RGB / 255.0, 0.0),
    "np_hw_uint8": (lambda: GRAY.copy(), GRAY[..., None] / 255.0, 0.0),
    "np_hw1_uint8": (lambda: GRAY[..., None].copy(), GRAY[..., None] / 255.0, 0.0),
    "np_hw3_uint8": (lambda: RGB.copy(), RGB / 255.0, 0.0),
    "np_hw_float32": (lambda: GRAY.astype(np.float32) * F32, GRAY[..., None] * F32, 1e-6),
    "np_hw1_float32": (lambda: GRAY[..., None].astype(np.float32) * F32, GRAY[..., None] * F32, 1e-6),
    "np_hw3_float32": (lambda: RGB.astype(np.float32) * F32, RGB * F32, 1e-6),
    "np_hw3_float64": (lambda: RGB / 255.0, RGB * F32, 1e-6),
    "torch_chw3_uint8": (lambda: torch.from_numpy(RGB).permute(2, 0, 1).contiguous(), RGB / 255.0, 0.0),
    "torch_chw1_uint8": (lambda: torch.from_numpy(GRAY)[None].clone(), GRAY[..., None] / 255.0, 0.0),
    "torch_chw3_float32": (lambda: torch.from_numpy(RGB * F32).permute(2, 0, 1), RGB * F32, 1e-6),
    "torch_chw1_float32": (lambda: torch.from_numpy(GRAY[None] * F32), GRAY[..., None] * F32, 1e-6),
    "torch_chw3_float64": (lambda: torch.from_numpy(RGB / 255.0).permute(2, 0, 1), RGB * F32, 1e-6),
    "torch_chw3_float16": (lambda: torch.from_numpy(RGB * F32).permute(2, 0, 1).half(), RGB * F32, 2e-3),
    "torch_chw3_bfloat16": (lambda: torch.from_numpy(RGB * F32).permute(2, 0, 1).bfloat16(), RGB * F32, 1e-2),
    "tv_image_uint8": (lambda: tv_tensors.Image(torch.from_numpy(RGB).permute(2, 0, 1)), RGB / 255.0, 0.0),
    "tv_image_float32": (lambda: tv_tensors.Image(torch.from_numpy(RGB * F32).permute(2, 0, 1)), RGB * F32, 1e-6),
}


def signature(x: Any) -> tuple:
    """Type, shape and dtype (PIL: mode and size) of an input."""
    if isinstance(x, Image.Image):
        return type(x), x.mode, x.size
    return type(x), tuple(x.shape), x.dtype


def as_hwc01(x: Any) -> np.ndarray:
    """Any accepted single image as (H, W, C) float64 on the 0..1 scale."""
    if isinstance(x, Image.Image):
        x = np.asarray(x)
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().float().permute(1, 2, 0).numpy() if x.dtype != torch.uint8 else x.permute(1, 2, 0).numpy()
    x = np.asarray(x)
    if x.ndim == 2:
        x = x[..., None]
    return x / 255.0 if x.dtype == np.uint8 else x.astype(np.float64)


@pytest.fixture
def changing() -> LearnedPolicyTransform:
    return LearnedPolicyTransform(MeanFieldPolicy(TFSet(CHANGING_IDS), seq_len=3), p=1.0, seed=5)


@pytest.mark.parametrize("name", list(INPUTS))
def test_input_type_round_trips(name: str, changing: LearnedPolicyTransform) -> None:
    make, ref01, tol = INPUTS[name]
    x = make()
    before = signature(x)
    kept = as_hwc01(x).copy()
    out = changing(x)
    assert signature(out) == before
    assert np.array_equal(as_hwc01(x), kept), "the input was modified in place"
    got = as_hwc01(out)
    assert not np.allclose(got, kept), "nothing was applied"
    # Same values as the numpy kernels on the canonical form: catches CHW/HWC and channel mix-ups in the dispatch.
    lp = changing.last_params
    assert lp is not None and lp["applied"]
    u8 = tol == 0.0
    src = np.rint(ref01 * 255).astype(np.uint8) if u8 else ref01.astype(np.float32)
    ref = apply_sequence(src, lp["tf_ids"], changing.tfset, rng=np.random.default_rng(lp["tf_seed"]))
    ref = ref / 255.0 if u8 else ref.astype(np.float64)
    np.testing.assert_allclose(got, ref, atol=tol + 1e-12)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float64])
@pytest.mark.parametrize("tv", [False, True])
def test_batch_round_trips_type_shape_dtype(dtype: torch.dtype, tv: bool, changing: LearnedPolicyTransform) -> None:
    pytest.importorskip("learned_augment.ops.batch")
    x = torch.from_numpy(np.stack([smooth_image(s) for s in range(3)])).permute(0, 3, 1, 2).contiguous()
    x = x if dtype == torch.uint8 else x.to(dtype) / 255.0
    x = tv_tensors.Image(x) if tv else x
    out = changing(x)
    assert type(out) is type(x) and out.shape == x.shape and out.dtype == x.dtype
    lp = changing.last_params
    assert lp["tf_ids"].shape == (3, 3)
    assert lp["tf_ids_str"] == [[changing.tfset[int(i)].id for i in row] for row in lp["tf_ids"]]
    assert all(not torch.equal(out[i], x[i]) for i in range(3))


def test_batch_matches_per_image_path(cifar_policy: LSTMPolicy) -> None:
    pytest.importorskip("learned_augment.ops.batch")
    t = LearnedPolicyTransform(cifar_policy, p=1.0, seed=0)
    images = np.stack([smooth_image(s) for s in range(8)])
    batch = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    for form in (batch, batch.float() / 255.0):
        out = t(form)
        lp = t.last_params
        assert lp["applied"] == [True] * 8 and lp["tf_ids"].shape == (8, 4)
        assert len({tuple(r) for r in lp["tf_ids"]}) > 1, "every sample should get its own sequence"
        for i in range(8):
            single = {"applied": True, "tf_ids": lp["tf_ids"][i], "tf_seed": lp["tf_seed"]}
            ref = t.replay(form[i], single)
            d = (out[i].double() - ref.double()).abs() * (1.0 if form.dtype == torch.uint8 else 255.0)
            assert d.mean() <= 1.0, f"sample {i}: mean diff {d.mean():.2f} levels"
            assert (d > 4).double().mean() <= 0.02, f"sample {i}: {(d > 4).double().mean():.1%} pixels differ"
        # The batch itself can be replayed exactly.
        assert torch.equal(t.replay(form, lp), out)


def test_batch_respects_p_per_sample(cifar_policy: LSTMPolicy) -> None:
    pytest.importorskip("learned_augment.ops.batch")
    t = LearnedPolicyTransform(cifar_policy, p=0.5, seed=1)
    x = torch.from_numpy(np.stack([smooth_image(s) for s in range(64)])).permute(0, 3, 1, 2).contiguous()
    out = t(x)
    applied = np.array(t.last_params["applied"])
    assert 16 <= applied.sum() <= 48
    for i in range(64):
        if not applied[i]:
            assert torch.equal(out[i], x[i])
    assert sum(not torch.equal(out[i], x[i]) for i in np.flatnonzero(applied)) >= applied.sum() - 2


def _in_layout(x: torch.Tensor, layout: str) -> torch.Tensor:
    """``x`` (CHW or BCHW, a tv_tensor kept one) copied into contiguous or channels-last (HWC) memory."""
    plain = x.as_subclass(torch.Tensor)
    if layout == "contiguous":
        out = plain.contiguous()
    else:
        batch = plain if plain.ndim == 4 else plain.unsqueeze(0)
        out = batch.contiguous(memory_format=torch.channels_last)
        out = out if plain.ndim == 4 else out[0]
    return tv_tensors.wrap(out, like=x) if isinstance(x, tv_tensors.TVTensor) else out


def _has_layout(x: torch.Tensor, layout: str) -> bool:
    if layout == "contiguous":
        return x.is_contiguous()
    return (x if x.ndim == 4 else x.unsqueeze(0)).is_contiguous(memory_format=torch.channels_last)


TENSOR_INPUTS = [name for name in INPUTS if name.startswith(("torch_", "tv_"))]


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("name", TENSOR_INPUTS)
def test_tensor_outputs_are_contiguous_or_keep_channels_last(
    name: str, layout: str, changing: LearnedPolicyTransform
) -> None:
    """As torchvision's kernels: a contiguous tensor comes back contiguous (``.view(-1)`` works); a channels-last
    one (HWC memory behind the CHW shape) may keep that layout, and does here."""
    x = _in_layout(INPUTS[name][0](), layout)
    assert _has_layout(x, layout)
    out = changing(x)
    assert type(out) is type(x) and _has_layout(out, layout), f"strides {out.stride()} from {x.stride()}"
    if layout == "contiguous":
        out.view(-1)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("p", [1.0, 0.5])
def test_batch_outputs_are_contiguous_or_keep_channels_last(layout: str, p: float, cifar_policy: LSTMPolicy) -> None:
    pytest.importorskip("learned_augment.ops.batch")
    t = LearnedPolicyTransform(cifar_policy, p=p, seed=0)
    x = _in_layout(torch.from_numpy(np.stack([smooth_image(s) for s in range(6)])).permute(0, 3, 1, 2), layout)
    for form in (x, x.float() / 255.0):
        out = t(form)
        assert _has_layout(out, layout), f"strides {out.stride()} from {form.stride()}"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batch_stays_on_device_and_matches_cpu(cifar_policy: LSTMPolicy) -> None:
    t = LearnedPolicyTransform(cifar_policy, p=1.0, seed=0)
    x = torch.from_numpy(np.stack([smooth_image(s) for s in range(8)])).permute(0, 3, 1, 2).contiguous()
    out = t(x.cuda())
    assert out.device.type == "cuda" and out.dtype == torch.uint8
    cpu = t.replay(x, t.last_params)
    d = (out.cpu().double() - cpu.double()).abs()
    assert d.mean() <= 1.0
    single = t(x[0].cuda())
    assert single.device.type == "cuda" and single.shape == x[0].shape


# ------------------------------------------------------------------------------------------------ errors


BAD_INPUTS = [
    ("int16 array", lambda: np.zeros((H, W), np.int16), TypeError, "int16"),
    ("5-channel array", lambda: np.zeros((H, W, 5), np.uint8), ValueError, "5 channels"),
    ("CHW numpy array", lambda: np.zeros((3, H, W), np.uint8), ValueError, "channels"),
    ("empty array", lambda: np.zeros((0, W), np.uint8), ValueError, "empty"),
    ("float array out of range", lambda: np.full((H, W), 2.0, np.float32), ValueError, r"\[0, 1\]"),
    ("PIL P", lambda: Image.new("P", (W, H)), ValueError, "mode 'P'"),
    ("PIL PA", lambda: Image.new("PA", (W, H)), ValueError, "mode 'PA'"),
    ("empty PIL", lambda: Image.new("L", (0, 0)), ValueError, "empty"),
    ("5-channel tensor", lambda: torch.zeros(5, H, W), ValueError, "1 or 3 channels"),
    ("int16 tensor", lambda: torch.zeros(3, H, W, dtype=torch.int16), TypeError, "int16"),
    ("empty tensor", lambda: torch.zeros(3, 0, W), ValueError, "empty"),
    ("int16 batch", lambda: torch.zeros(2, 3, H, W, dtype=torch.int16), TypeError, "int16"),
    ("no image", lambda: [1, 2, 3], TypeError, "no image found"),
]


@pytest.mark.parametrize(("make", "exc", "match"), [b[1:] for b in BAD_INPUTS], ids=[b[0] for b in BAD_INPUTS])
def test_bad_inputs_fail_clearly(make: Callable[[], Any], exc: type, match: str, geo_policy: MeanFieldPolicy) -> None:
    t = LearnedPolicyTransform(geo_policy, p=1.0, seed=0)
    with pytest.raises(exc, match=match):
        t(make())


def test_bad_construction_fails_clearly(geo_policy: MeanFieldPolicy, tmp_path) -> None:
    with pytest.raises(KeyError, match="nonexistent"):
        LearnedPolicyTransform("pretrained:nonexistent")
    with pytest.raises(KeyError, match="nonexistent"):
        LearnedPolicyTransform.from_pretrained("nonexistent")
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        LearnedPolicyTransform(str(tmp_path / "missing.safetensors"))
    with pytest.raises(TypeError, match="not a policy"):
        LearnedPolicyTransform.from_pretrained("digits-synthetic-to-mnist")
    with pytest.raises(TypeError, match="policy must be"):
        LearnedPolicyTransform(42)
    with pytest.raises(ValueError, match="p"):
        LearnedPolicyTransform(geo_policy, p=1.5)


# ------------------------------------------------------------------------------------------------ replay, seeds, p


def test_last_params_and_replay(changing: LearnedPolicyTransform) -> None:
    img, other = smooth_image(0), smooth_image(3)
    out = changing(img)
    lp = changing.last_params
    assert lp["applied"] is True and lp["tf_ids"].shape == (3,)
    assert lp["tf_ids_str"] == [changing.tfset[int(i)].id for i in lp["tf_ids"]]
    assert np.array_equal(changing.replay(img, lp), out)
    ref = apply_sequence(other, list(lp["tf_ids"]), changing.tfset, rng=np.random.default_rng(lp["tf_seed"]))
    assert np.array_equal(changing.replay(other, lp), ref)
    pil = changing.replay(Image.fromarray(img), lp)
    assert isinstance(pil, Image.Image) and np.array_equal(np.asarray(pil), out)
    assert changing.last_params is lp, "replay must not draw"
    draws = {tuple(changing.last_params["tf_ids"]) for _ in range(10) if changing(img) is not None}
    assert len(draws) > 1


def test_equal_seeds_repeat_and_different_seeds_differ(geo_policy: MeanFieldPolicy) -> None:
    img = smooth_image(0)

    def run(seed: int) -> list[np.ndarray]:
        t = LearnedPolicyTransform(geo_policy, p=1.0, seed=seed)
        return [t(img) for _ in range(6)]

    a, b, c = run(7), run(7), run(8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_p_zero_never_changes_and_p_half_changes_about_half(geo_policy: MeanFieldPolicy) -> None:
    img = smooth_image(0)
    never = LearnedPolicyTransform(geo_policy, p=0.0, seed=0)
    for _ in range(20):
        assert np.array_equal(never(img), img)
        assert never.last_params == {"applied": False}
    half = LearnedPolicyTransform(MeanFieldPolicy(TFSet(CHANGING_IDS), seq_len=2), p=0.5, seed=0)
    changed = [not np.array_equal(half(img), img) for _ in range(300)]
    assert 0.4 <= np.mean(changed) <= 0.6


def test_pickle_round_trip_gives_a_working_transform(cifar_policy: LSTMPolicy) -> None:
    img = smooth_image(0)
    t = LearnedPolicyTransform(cifar_policy, p=0.8, seed=3)
    fresh = [t(img) for _ in range(4)]
    copy = pickle.loads(pickle.dumps(t))
    assert copy.p == 0.8 and copy.tfset == t.tfset
    assert torch.equal(copy.policy.head.weight, cifar_policy.head.weight)
    # A copy (as sent to a worker) restarts the seeded stream for its own context.
    assert all(np.array_equal(copy(img), f) for f in fresh)


def test_as_transform_and_repr(cifar_policy: LSTMPolicy) -> None:
    t = cifar_policy.as_transform(p=0.5, seed=2)
    assert isinstance(t, LearnedPolicyTransform) and t.policy is cifar_policy and t.p == 0.5
    img = smooth_image(0)
    assert np.array_equal(t(img), LearnedPolicyTransform(cifar_policy, p=0.5, seed=2)(img))
    text = repr(t)
    top = cifar_policy.top_tfs(1)[0][0]
    for part in ("LearnedPolicyTransform", "LSTMPolicy", "'cifar10'", "K=33", "L=4", top, "p=0.5", "seed=2"):
        assert part in text, f"{part!r} missing from {text}"
    mf = repr(LearnedPolicyTransform(MeanFieldPolicy("mnist", seq_len=3)))
    assert "MeanFieldPolicy" in mf and "'mnist'" in mf and "L=3" in mf


@pytest.mark.parametrize("kind", ["tensor", "batch", "numpy"])
def test_bad_float_values_fail_on_every_call_whatever_p_draws(kind: str) -> None:
    import learned_augment as la

    t = la.LearnedPolicyTransform(la.UniformPolicy(["hflip"], seq_len=1), p=0.3, seed=0)
    x = torch.rand(2, 3, 8, 8) if kind == "batch" else torch.rand(3, 8, 8)
    x.view(-1)[5] = 1.5
    image = x.permute(1, 2, 0).numpy() if kind == "numpy" else x
    for _ in range(8):
        with pytest.raises(ValueError, match="values in \\[0, 1\\]"):
            t(image)


BAD_INPUTS = {
    "5-channel batch": (torch.zeros((2, 5, 8, 8), dtype=torch.uint8), ValueError, "1 or 3 channels"),
    "int32 tensor": (torch.zeros((3, 8, 8), dtype=torch.int32), TypeError, "uint8 or floating point"),
    "CHW numpy": (np.zeros((3, 8, 8), np.uint8), ValueError, "8 channels"),
    "int64 numpy": (np.zeros((8, 8), np.int64), TypeError, "dtype int64"),
    "empty tensor": (torch.zeros((3, 0, 8), dtype=torch.uint8), ValueError, "empty"),
    "empty numpy": (np.zeros((0, 8, 3), np.uint8), ValueError, "empty"),
    "CMYK PIL": (Image.new("CMYK", (8, 8)), ValueError, "mode 'CMYK'"),
    "1-d tensor": (torch.zeros(8, dtype=torch.uint8), ValueError, "shape"),
}


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_fails_on_every_call_whatever_p_draws(name: str, p: float, changing) -> None:
    # As torchvision's RandomApply-style transforms would, a bad input is refused every time, not only on the
    # calls that augment.
    image, error, match = BAD_INPUTS[name]
    t = LearnedPolicyTransform(changing.policy, p=p, seed=0)
    for _ in range(6):
        with pytest.raises(error, match=match) as info:
            t(image)
        assert "\n" not in str(info.value)


def test_replaying_a_batch_call_that_augmented_nothing_returns_the_batch(changing) -> None:
    batch = torch.from_numpy(np.stack([smooth_image(i) for i in range(3)])).permute(0, 3, 1, 2)
    assert changing.replay(batch, {"applied": False}) is batch
    skipped = LearnedPolicyTransform(changing.policy, p=0.0, seed=0)
    skipped(batch)
    assert changing.replay(batch, skipped.last_params).equal(batch)


@pytest.mark.parametrize(
    ("mode", "advice"),
    [("I;16", "float tensor scaled to [0, 1]"), ("F", "float tensor"), ("La", "convert to 'LA'"),
     ("RGBa", "convert to 'RGBA'"), ("PA", "convert to 'RGBA'"), ("1", "convert to 'L'"),
     ("CMYK", "convert to 'RGB'")],
)  # fmt: skip
def test_unsupported_pil_modes_get_advice_that_loses_nothing_needed(
    mode: str, advice: str, geo_policy: MeanFieldPolicy
) -> None:
    t = LearnedPolicyTransform(geo_policy, p=1.0, seed=0)
    with pytest.raises(ValueError, match=re.escape(advice)) as info:
        t(Image.new(mode, (W, H)))
    assert "\n" not in str(info.value) and f"mode {mode!r}" in str(info.value)


def test_the_advice_for_16_bit_and_alpha_images_works(geo_policy: MeanFieldPolicy) -> None:
    """A 16-bit image as a float tensor in [0, 1]; an RGBA image's alpha as a mask beside its RGB."""
    from torchvision import tv_tensors

    deep = Image.fromarray(np.full((H, W), 40_000, np.uint16))
    x = torch.from_numpy(np.asarray(deep, np.float32) / 65535)[None]
    t = LearnedPolicyTransform(geo_policy, p=1.0, seed=0)
    out = t(x)
    assert out.shape == (1, H, W) and out.dtype == torch.float32 and float(out.max()) > 0.5
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[4:12, 4:12] = 255
    rgb = tv_tensors.Image(torch.from_numpy(rgba[..., :3]).permute(2, 0, 1).contiguous())
    alpha = tv_tensors.Mask(torch.from_numpy(rgba[..., 3]))
    img_out, alpha_out = t(rgb, alpha)
    assert isinstance(alpha_out, tv_tensors.Mask) and alpha_out.shape == (H, W)
    # The opaque square moved with the image: where the picture is white, alpha is too.
    assert torch.equal(img_out[0] > 127, alpha_out > 127)
