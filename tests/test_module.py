"""PolicyAugment: the tensor contract, train/eval, p, per-step seeding, nn.Module integration and bad input.

Behaviour only, never timing.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torchvision import tv_tensors

from learned_augment.module import PolicyAugment
from learned_augment.ops import TFSet, apply_sequence, register_tf
from learned_augment.policy import MeanFieldPolicy, UniformPolicy

H, W = 16, 20  # not square, so a swapped height and width shows

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))]
DTYPES = [torch.uint8, torch.float32, torch.float16, torch.bfloat16, torch.float64]


def policy(tfs: str = "default", seq_len: int = 4) -> UniformPolicy:
    return UniformPolicy(tfs, seq_len=seq_len)


def batch(b: int = 8, c: int = 3, dtype: torch.dtype = torch.uint8, seed: int = 0) -> torch.Tensor:
    """Smooth random images (B, C, H, W) of ``dtype``: uint8 0..255, floats in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand((b, c, 4, 5), generator=g)
    x = torch.nn.functional.interpolate(coarse, size=(H, W), mode="bilinear", align_corners=False).clamp(0, 1)
    return torch.round(x * 255).to(torch.uint8) if dtype == torch.uint8 else x.to(dtype)


def changed(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B,) bool: which samples differ from the input."""
    return (out.float() != x.float()).flatten(1).any(1).cpu()


# ---------------------------------------------------------------------------------------------- tensor contract


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("channels", [1, 3])
def test_shape_dtype_and_device_are_kept(device: str, dtype: torch.dtype, channels: int) -> None:
    x = batch(6, channels, dtype).to(device)
    out = PolicyAugment(policy(), p=1.0, seed=0)(x)
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert changed(out, x).any()
    if dtype.is_floating_point:
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_nearest_interpolation_runs_and_differs_from_bilinear() -> None:
    x = batch(8, 3, torch.float32)
    ts = TFSet(["rotate(+20)"])
    bilinear = PolicyAugment(UniformPolicy(ts, seq_len=1), p=1.0, seed=0)(x)
    nearest = PolicyAugment(UniformPolicy(ts, seq_len=1), p=1.0, seed=0, interpolation="nearest")(x)
    assert not torch.equal(bilinear, nearest)


def test_empty_batch_passes_through() -> None:
    x = batch(0)
    assert PolicyAugment(policy(), seed=0)(x) is x


# ---------------------------------------------------------------------------------------------- p, train and eval


def test_p_zero_is_the_identity() -> None:
    x = batch()
    aug = PolicyAugment(policy(), p=0.0, seed=0)
    for _ in range(3):
        assert aug(x) is x


def test_p_selects_samples_and_leaves_the_rest_untouched() -> None:
    x = batch(64, 3, torch.float32)
    aug = PolicyAugment(MeanFieldPolicy(TFSet(["invert"]), seq_len=1), p=0.5, seed=0)
    out = aug(x)
    hit = changed(out, x)
    assert 10 < int(hit.sum()) < 54
    torch.testing.assert_close(out[hit], 1.0 - x[hit], rtol=0, atol=1e-6)
    assert torch.equal(out[~hit], x[~hit])


def test_last_params_say_which_samples_got_which_sequence() -> None:
    """Replaying ``last_params`` sample by sample with the CPU path gives the batch's augmented samples."""
    x = batch(32, 3)
    tfs = TFSet(["invert", "hflip", "vflip", "rotate(+90)"])  # no interpolation or randomness: exact replay
    aug = PolicyAugment(MeanFieldPolicy(tfs, seq_len=3), p=0.5, seed=0)
    assert aug.last_params is None
    out = aug(x)
    params = aug.last_params
    assert params is not None and params["step"] == 0
    hit = np.flatnonzero(changed(out, x).numpy())
    assert set(hit) <= set(params["applied"]) and 4 < len(params["applied"]) < 28
    assert len(params["tf_ids"]) == len(params["applied"]) and all(len(t) == 3 for t in params["tf_ids"])
    for i, ids in zip(params["applied"], params["tf_ids"]):
        replay = apply_sequence(x[i].permute(1, 2, 0).numpy(), ids, tfs)
        assert np.array_equal(out[i].permute(1, 2, 0).numpy(), replay)
    aug.eval()
    aug(x)
    assert aug.last_params is params  # eval mode draws nothing and records nothing


def test_eval_mode_is_the_identity_and_train_mode_augments_again() -> None:
    x = batch()
    aug = PolicyAugment(policy(), p=1.0, seed=0)
    aug.eval()
    assert aug(x) is x and aug.step == 0
    aug.train()
    assert changed(aug(x), x).any() and aug.step == 1


# ---------------------------------------------------------------------------------------------- seeding


def run_steps(aug: nn.Module, x: torch.Tensor, n: int = 3) -> list[torch.Tensor]:
    return [aug(x) for _ in range(n)]


def test_seed_reproduces_every_step_and_steps_differ() -> None:
    x = batch(8, 3, torch.float32)
    first = run_steps(PolicyAugment(policy(), p=1.0, seed=3), x)
    torch.manual_seed(123)  # a seeded module ignores the global generator
    second = run_steps(PolicyAugment(policy(), p=1.0, seed=3), x)
    for a, b in zip(first, second):
        assert torch.equal(a, b)
    assert not torch.equal(first[0], first[1]) and not torch.equal(first[1], first[2])
    assert not torch.equal(first[0], PolicyAugment(policy(), p=1.0, seed=4)(x))


def test_step_k_depends_on_seed_and_k_only() -> None:
    x = batch(8, 3, torch.float32)
    full = run_steps(PolicyAugment(policy(), p=1.0, seed=3), x)
    resumed = PolicyAugment(policy(), p=1.0, seed=3)
    resumed.step = 2
    assert torch.equal(resumed(x), full[2])
    # A call on another batch size at step 1 does not shift step 2.
    other = PolicyAugment(policy(), p=1.0, seed=3)
    other(x)
    other(x[:3])
    assert torch.equal(other(x), full[2])


@pytest.mark.parametrize("seed", [3, None])
def test_ranks_seeded_alike_draw_distinct_reproducible_batches(monkeypatch, seed) -> None:
    x = batch(8, 3, torch.float32)

    def on_rank(rank: int) -> torch.Tensor:
        monkeypatch.setenv("RANK", str(rank))
        torch.manual_seed(0)
        return PolicyAugment(policy(), p=1.0, seed=seed)(x)

    assert not torch.equal(on_rank(0), on_rank(1))
    assert torch.equal(on_rank(1), on_rank(1))


def test_random_tfs_draw_from_the_step_stream() -> None:
    x = batch(4, 3, torch.float32)
    ts = TFSet(["noise(0.1)"])
    a = run_steps(PolicyAugment(UniformPolicy(ts, seq_len=1), p=1.0, seed=0), x, 2)
    b = run_steps(PolicyAugment(UniformPolicy(ts, seq_len=1), p=1.0, seed=0), x, 2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[0], a[1])


def test_seed_none_follows_torch_manual_seed() -> None:
    x = batch(8, 3, torch.float32)
    aug = PolicyAugment(policy(), p=0.7)
    torch.manual_seed(0)
    first = run_steps(aug, x)
    torch.manual_seed(0)
    second = run_steps(aug, x)
    for a, b in zip(first, second):
        assert torch.equal(a, b)
    assert not torch.equal(first[0], first[1])


def test_each_sample_gets_its_own_sequence() -> None:
    one = batch(1, 3, torch.float32)
    x = one.expand(16, -1, -1, -1).contiguous()
    out = PolicyAugment(policy(seq_len=2), p=1.0, seed=0)(x)
    distinct = {out[i].numpy().tobytes() for i in range(len(out))}
    assert len(distinct) > 8


def test_a_deep_copy_continues_the_same_stream() -> None:
    x = batch(8, 3, torch.float32)
    aug = PolicyAugment(policy(), p=1.0, seed=5)
    aug(x)
    twin = copy.deepcopy(aug)
    assert torch.equal(aug(x), twin(x))


# ---------------------------------------------------------------------------------------------- as an nn.Module


def test_in_sequential_a_training_step_and_eval() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3)
    model = nn.Sequential(PolicyAugment(policy(), p=0.5, seed=0), conv)
    x = batch(8, 3, torch.float32)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = model(x).square().mean()
    loss.backward()
    opt.step()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), conv(x))


def test_no_parameters_buffers_or_state_and_the_policy_stays_put() -> None:
    pol = MeanFieldPolicy("default", seq_len=3)
    model = nn.Sequential(PolicyAugment(pol, p=1.0, seed=0), nn.Conv2d(3, 4, 3))
    assert [n for n, _ in model.named_parameters()] == ["1.weight", "1.bias"]
    assert list(model[0].buffers()) == [] and model[0].state_dict() == {}
    model.to(torch.float64)
    assert pol.logits.dtype == torch.float32
    assert model[0].policy is pol


def test_gradients_are_not_required() -> None:
    x = batch(8, 3, torch.float32)
    aug = PolicyAugment(policy(), p=0.5, seed=0)
    with torch.no_grad():
        assert aug(x).shape == x.shape
    with torch.inference_mode():
        assert aug(x).shape == x.shape
    out = PolicyAugment(policy(), p=1.0, seed=0)(x.clone().requires_grad_())
    assert not out.requires_grad  # every sample augmented: nothing to differentiate


def test_samples_left_alone_keep_their_gradient() -> None:
    x = batch(32, 3, torch.float32).requires_grad_()
    out = PolicyAugment(MeanFieldPolicy(TFSet(["invert"]), seq_len=1), p=0.5, seed=0)(x)
    out.sum().backward()
    assert x.grad is not None
    hit = changed(out.detach(), x.detach())
    assert hit.any() and (~hit).any()
    assert torch.equal(x.grad[~hit], torch.ones_like(x.grad[~hit]))
    assert torch.equal(x.grad[hit], torch.zeros_like(x.grad[hit]))


def test_torch_compile_runs_the_augmentation_eagerly() -> None:
    x = batch(4, 3, torch.float32)
    eager = run_steps(PolicyAugment(policy(), p=1.0, seed=1), x, 2)
    compiled = torch.compile(PolicyAugment(policy(), p=1.0, seed=1), backend="eager")
    for expected in eager:
        assert torch.equal(compiled(x), expected)


def test_torch_compile_does_not_recompile_as_the_step_advances() -> None:
    x = batch(4, 3, torch.float32)
    compiled = torch.compile(PolicyAugment(policy(), p=1.0, seed=1), backend="eager")
    compiled(x)
    with torch.compiler.set_stance("fail_on_recompile"):
        for _ in range(3):
            compiled(x)


def test_channels_last_batches_stay_channels_last() -> None:
    x = batch(4, 3, torch.float32).contiguous(memory_format=torch.channels_last)
    for p in (1.0, 0.5):
        out = PolicyAugment(policy(), p=p, seed=0)(x)
        assert out.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("bad", [float("nan"), 1.5, -0.2])
def test_bad_values_fail_on_every_call_whatever_p_draws(bad: float) -> None:
    x = batch(2, 3, torch.float32)
    x[1, 0, 0, 0] = bad
    aug = PolicyAugment(policy(), p=0.3, seed=0)
    for _ in range(8):
        with pytest.raises(ValueError, match="NaN|values in \\[0, 1\\]"):
            aug(x)


def test_round_off_outside_0_1_is_taken_and_clamped() -> None:
    x = batch(4, 3, torch.float32)
    x[0, 0, 0, 0], x[1, 0, 0, 0] = 1.0000001, -3e-8  # an unnormalise's round-off
    out = PolicyAugment(policy(), p=1.0, seed=0)(x)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    x[2, 0, 0, 0] = 1.11  # a bicubic resize's ringing: refused, the range printed in full
    with pytest.raises(ValueError, match="1.11"):
        PolicyAugment(policy(), p=1.0, seed=0)(x)


# ---------------------------------------------------------------------------------------------- sources, repr


def test_policy_file_and_pretrained_name(tmp_path: Path) -> None:
    pol = MeanFieldPolicy("cifar10", seq_len=3)
    path = str(tmp_path / "p.safetensors")
    pol.save(path)
    x = batch(8, 3, torch.float32)
    from_obj = PolicyAugment(pol, p=1.0, seed=0)(x)
    from_file = PolicyAugment(path, p=1.0, seed=0)
    assert from_file.source == path and torch.equal(from_file(x), from_obj)
    pre = PolicyAugment.from_pretrained("cifar10-meanfield", p=0.5, seed=0)
    assert pre.source == "pretrained:cifar10-meanfield" and pre(x).shape == x.shape


def test_repr_names_policy_source_and_settings() -> None:
    text = repr(PolicyAugment.from_pretrained("cifar10-meanfield", p=0.5, seed=7, interpolation="nearest"))
    assert text.startswith("PolicyAugment(policy=MeanFieldPolicy(")
    for part in ("source='pretrained:cifar10-meanfield'", "p=0.5", "seed=7", "interpolation='nearest'"):
        assert part in text
    assert "PolicyAugment(" in repr(nn.Sequential(PolicyAugment(policy())))


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("images", "error", "match"),
    [
        (np.zeros((2, 3, H, W), np.uint8), TypeError, r"\(B, C, H, W\) torch.Tensor, got ndarray"),
        (torch.zeros((2, 2, 3, H, W), dtype=torch.uint8), ValueError, r"or a \(C, H, W\) image, got shape \(2, 2, 3"),
        (torch.zeros((5, H, W), dtype=torch.uint8), ValueError, r"one image is \(C, H, W\).*got shape \(5, 16, 20\)"),
        (torch.zeros((H, W, 3), dtype=torch.uint8), ValueError, r"channels first.*got shape \(16, 20, 3\)"),
        (torch.zeros((2, 5, H, W), dtype=torch.uint8), ValueError, r"or 2 or 4 with alpha last, got 5"),
        (torch.zeros((2, H, W, 3), dtype=torch.uint8), ValueError, "channels go second"),
        (torch.zeros((2, 3, H, W), dtype=torch.int64), TypeError, "got dtype torch.int64"),
        (torch.full((2, 3, H, W), 2.0), ValueError, r"\[0, 1\]"),
    ],
    ids=["numpy", "ndim5", "ndim3-5-channels", "ndim3-hwc", "5-channels", "channels-last", "int64", "float-range"],
)
def test_bad_images_raise_one_line(images: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match) as info:
        PolicyAugment(policy(), p=1.0, seed=0)(images)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_one_chw_image_is_a_batch_of_one(dtype: torch.dtype) -> None:
    # As torchvision's transforms take one (C, H, W) image: the same draw as the batch of one, the same shape back.
    image = torch.rand((3, H, W)) if dtype == torch.float32 else torch.randint(0, 256, (3, H, W), dtype=torch.uint8)
    one = PolicyAugment(policy(), p=1.0, seed=3)(image)
    batch = PolicyAugment(policy(), p=1.0, seed=3)(image[None])
    assert one.shape == image.shape and one.dtype == dtype
    assert torch.equal(one, batch[0]) and not torch.equal(one, image)
    aug = PolicyAugment(policy(), p=1.0, seed=3)
    assert aug.eval()(image) is image
    assert PolicyAugment(policy(), p=0.0)(image) is image
    wrapped = aug.train()(tv_tensors.Image(image))
    assert isinstance(wrapped, tv_tensors.Image) and wrapped.shape == image.shape


def test_bad_layout_raises_in_eval_mode_too() -> None:
    aug = PolicyAugment(policy()).eval()
    with pytest.raises(ValueError, match="channels"):
        aug(torch.zeros((2, H, W, 3)))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"p": 1.5}, ValueError, r"p must be a probability in \[0, 1\], got 1.5"),
        ({"p": "0.5"}, ValueError, "p must be"),
        ({"seed": -1}, ValueError, "seed must be None or a non-negative int"),
        ({"seed": 1.5}, ValueError, "seed must be"),
        ({"interpolation": "bicubic"}, ValueError, "interpolation must be"),
        ({"policy": 3}, TypeError, "policy must be a Policy"),
    ],
    ids=["p-range", "p-type", "seed-negative", "seed-float", "interpolation", "policy-type"],
)
def test_bad_arguments_raise_at_construction(kwargs: dict, error: type[Exception], match: str) -> None:
    args = {"policy": policy(), **kwargs}
    with pytest.raises(error, match=match):
        PolicyAugment(**args)


def test_policy_with_a_custom_tf_is_refused_at_construction(tf_name) -> None:
    name = tf_name("custom")

    @register_tf(name)
    def identity(image):
        return image

    with pytest.raises(ValueError, match=f"TF '{name}' is a custom TF.*LearnedPolicyTransform") as info:
        PolicyAugment(UniformPolicy(TFSet(["rotate(+5)", name]), seq_len=2))
    assert "\n" not in str(info.value)


def test_policy_with_a_batched_custom_tf_runs_and_matches_the_function(tf_name) -> None:
    name = tf_name("fade")

    def fade_batch(images: torch.Tensor, magnitude: np.ndarray) -> torch.Tensor:
        m = torch.as_tensor(magnitude, dtype=images.dtype, device=images.device).view(-1, 1, 1, 1)
        return (0.5 + (images - 0.5) * m).clamp(0.0, 1.0)

    @register_tf(name, batched=fade_batch)
    def fade(image: np.ndarray, magnitude: float) -> np.ndarray:
        y = np.clip(0.5 + (image.astype(np.float32) / np.float32(255.0) - 0.5) * np.float32(magnitude), 0.0, 1.0)
        return np.rint(y * 255.0).astype(np.uint8)

    x = batch(6, 3, torch.uint8)
    out = PolicyAugment(UniformPolicy(TFSet([f"{name}(0.5)"]), seq_len=2), p=1.0, seed=0)(x)
    expected = torch.stack(
        [torch.from_numpy(apply_sequence(img.permute(1, 2, 0).numpy(), [f"{name}(0.5)"] * 2)) for img in x]
    ).permute(0, 3, 1, 2)
    # Stricter than the batch tests' single-TF tolerance: no resampling here, only float32 rounding ties.
    assert int((out.int() - expected.int()).abs().max()) <= 1


def test_an_unpickled_module_still_runs_eagerly_under_torch_compile() -> None:
    # A fresh process (a spawned worker) gets the class without the compiler guard until a module is built or
    # unpickled there.
    import pickle
    import subprocess
    import sys

    blob = pickle.dumps(PolicyAugment(policy(), p=1.0, seed=1))
    code = (
        "import pickle, sys; from learned_augment.module import PolicyAugment; "
        "m = pickle.loads(sys.stdin.buffer.read()); print(PolicyAugment._augment_is_eager)"
    )
    out = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True, timeout=120)
    assert out.stdout.decode().strip() == "True", out.stderr.decode()[-1000:]


def test_a_tv_tensors_image_batch_stays_one() -> None:
    from torchvision import tv_tensors

    x = tv_tensors.Image(batch(4, 3, torch.float32))
    for p in (1.0, 0.5):
        out = PolicyAugment(policy(), p=p, seed=0)(x)
        assert type(out) is tv_tensors.Image and out.shape == x.shape


def test_batches_unlike_the_fitted_images_warn_once() -> None:
    import warnings

    from learned_augment import PolicyMismatchWarning

    aug = PolicyAugment("pretrained:cifar10-lstm", seed=0)  # fitted on 32x32 RGB
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            aug(batch(2, 1, torch.uint8))
    assert [w.category for w in caught] == [PolicyMismatchWarning]
