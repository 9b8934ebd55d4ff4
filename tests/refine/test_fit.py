"""fit_refiner: learning on a planted pair of domains, history, checkpoints, resume, NaN detection, validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors import safe_open

from learned_augment.io import load_artifact, read_metadata
from learned_augment.refine import LOSS_NAMES, ImagePool, StepInfo, fit_refiner

from .conftest import TINY


def _weights(refiner) -> list[torch.Tensor]:
    nets = [*refiner.synthetic_to_real, *(refiner.real_to_shared[k] for k in sorted(refiner.real_to_shared))]
    return [t for net in nets for t in net.state_dict().values()]


def test_cycle_loss_falls_on_planted_domains(digits16) -> None:
    x, _ = digits16
    refiner = fit_refiner(x, 255 - x, stages=1, steps=40, lr=1e-3, **TINY)
    cyc = np.add(refiner.history["stage1"]["cycle_syn"], refiner.history["stage1"]["cycle_real"])
    assert cyc[-8:].mean() < 0.6 * cyc[:8].mean()


def test_history_and_lr_schedule(digits16) -> None:
    x, _ = digits16
    refiner = fit_refiner(x, 255 - x, stages=2, steps=6, **TINY)
    assert set(refiner.history) == {"stage1", "stage2"}
    for losses in refiner.history.values():
        assert set(losses) == set(LOSS_NAMES)
        assert all(len(v) == 6 for v in losses.values())
        lr = losses["lr"]
        assert lr[:3] == [2e-4] * 3 and lr[3] > lr[4] > lr[5] > 0, "held for half, then decayed linearly"
    assert refiner.stages == 2 and refiner.directions == ("synthetic_to_real", "real_to_shared")
    assert refiner.provenance["steps"] == [6, 6] and refiner.provenance["device"] == "cpu"
    assert refiner.provenance["synthetic"]["n"] == 64


def test_epochs_set_the_stage_length(digits16) -> None:
    x, _ = digits16
    refiner = fit_refiner(x[:10], x[:6], stages=1, epochs=0.5, **TINY)
    assert len(refiner.history["stage1"]["G_total"]) == 2  # ceil(0.5 * 10 / 4)


def test_same_seed_same_weights_other_seed_other_weights(digits16) -> None:
    x, _ = digits16
    a = fit_refiner(x, 255 - x, stages=1, steps=3, seed=1, **TINY)
    b = fit_refiner(x, 255 - x, stages=1, steps=3, seed=1, **TINY)
    c = fit_refiner(x, 255 - x, stages=1, steps=3, seed=2, **TINY)
    assert all(torch.equal(p, q) for p, q in zip(_weights(a), _weights(b)))
    assert not all(torch.equal(p, q) for p, q in zip(_weights(a), _weights(c)))


def test_fit_leaves_the_global_rng_alone(digits16) -> None:
    x, _ = digits16
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fit_refiner(x, 255 - x, stages=1, steps=2, **TINY)
    assert torch.equal(torch.rand(3), expected)


class _Killed(Exception):
    pass


@pytest.mark.parametrize(
    ("kill_stage", "kill_step", "colour", "stage2"),
    [
        (1, 3, False, "cycle"),
        (1, 6, False, "cycle"),
        (2, 5, False, "cycle"),
        (1, 5, True, "cycle"),
        (2, 3, True, "shared"),
    ],
)
def test_resume_equals_uninterrupted(
    digits16, tmp_path, kill_stage: int, kill_step: int, colour: bool, stage2: str
) -> None:
    x, _ = digits16
    y = np.repeat(255 - x[..., None], 3, axis=3) if colour else 255 - x
    kw = dict(stages=2, steps=6, pool_size=3, lambda_self_reg=0.0 if colour else 1.0, stage2=stage2, **TINY)
    straight = fit_refiner(x, y, **kw)

    def kill(info: StepInfo) -> None:
        if (info.stage, info.step) == (kill_stage, kill_step):
            raise _Killed

    ck = tmp_path / "ck.safetensors"
    with pytest.raises(_Killed):
        fit_refiner(x, y, checkpoint=ck, checkpoint_every=2, callbacks=[kill], **kw)
    progress = read_metadata(ck)["progress"]
    assert (progress["stage"], progress["step"]) == (kill_stage, kill_step - kill_step % 2)
    seen: list[tuple[int, int]] = []
    resumed = fit_refiner(
        x, y, checkpoint=ck, checkpoint_every=2, callbacks=[lambda i: seen.append((i.stage, i.step))], **kw
    )
    assert seen[0] == ((kill_stage, progress["step"] + 1) if progress["step"] < 6 else (kill_stage + 1, 1))
    for p, q in zip(_weights(straight), _weights(resumed)):
        assert torch.equal(p, q)
    assert resumed.history == straight.history


def test_finished_checkpoint_returns_without_training(digits16, tmp_path) -> None:
    x, _ = digits16
    ck = tmp_path / "ck.safetensors"
    first = fit_refiner(x, 255 - x, stages=1, steps=3, checkpoint=ck, **TINY)
    calls: list[StepInfo] = []
    again = fit_refiner(x, 255 - x, stages=1, steps=3, checkpoint=ck, callbacks=[calls.append], **TINY)
    assert calls == []
    assert all(torch.equal(p, q) for p, q in zip(_weights(first), _weights(again)))


def test_checkpoint_is_plain_tensors_and_json(digits16, tmp_path) -> None:
    x, _ = digits16
    ck = tmp_path / "ck.safetensors"
    fit_refiner(x, 255 - x, stages=1, steps=2, checkpoint=ck, **TINY)
    tensors, meta = load_artifact(ck, kind="refiner_checkpoint")
    assert meta["progress"] == {"stage": 1, "step": 2, "wall_time_s": meta["progress"]["wall_time_s"]}
    assert any(".opt_g." in k and k.endswith("exp_avg_sq") for k in tensors)
    assert "stage1.pool_real.rng" in tensors and tensors["stage1.pool_real.images"].shape[0] == 8
    with safe_open(str(ck), framework="pt") as f:
        assert set(f.keys()) == set(tensors)
    assert not list(tmp_path.glob(".*.tmp")), "atomic writes leave no temporary files"


def test_checkpoint_of_another_fit_is_refused(digits16, tmp_path) -> None:
    x, _ = digits16
    ck = tmp_path / "ck.safetensors"
    fit_refiner(x, 255 - x, stages=1, steps=2, checkpoint=ck, **TINY)
    with pytest.raises(ValueError, match="different fit.*lr"):
        fit_refiner(x, 255 - x, stages=1, steps=2, lr=1e-3, checkpoint=ck, **TINY)
    fit_refiner(x, 255 - x, stages=1, steps=2, lr=1e-3, checkpoint=ck, resume=False, **TINY)
    assert read_metadata(ck)["fit"]["lr"] == 1e-3


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(digits16, tmp_path) -> None:
    x, _ = digits16
    ck = tmp_path / "ck.safetensors"

    def poison(info: StepInfo) -> None:
        if info.step == 2:
            with torch.no_grad():
                next(info.networks["G"].parameters()).fill_(float("nan"))

    with pytest.raises(FloatingPointError, match="stage 1, step 3.*non-finite"):
        fit_refiner(x, 255 - x, stages=1, steps=6, checkpoint=ck, checkpoint_every=2, callbacks=[poison], **TINY)
    tensors, meta = load_artifact(ck)
    assert meta["progress"]["step"] == 2
    assert all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())


def test_grey_synthetic_to_colour_real(digits16) -> None:
    x, _ = digits16
    colour = np.repeat(255 - x[..., None], 3, axis=3)
    refiner = fit_refiner(x, colour, stages=2, steps=2, **TINY)
    assert (refiner.synthetic_channels, refiner.real_channels) == (1, 3)
    assert refiner.refine_numpy(x[:2]).shape == (2, 16, 16, 3)
    assert refiner.refine_numpy(colour[:2], "real_to_shared").shape == (2, 16, 16, 3)
    assert refiner.history["stage1"]["identity_syn2real"][0] == 0.0, "no identity loss across channel counts"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 0}, "steps"),
        ({"steps": 2, "epochs": 1}, "not both"),
        ({"stages": 0}, "stages"),
        ({"lr": 0.0}, "lr"),
        ({"lambda_cycle": float("nan")}, "lambda_cycle"),
        ({"betas": (0.5, 1.0)}, "betas"),
        ({"pool_size": -1}, "pool_size"),
        ({"batch_size": 0}, "batch_size"),
        ({"stage2": "mixed"}, "stage2"),
    ],
)
def test_bad_arguments(digits16, kwargs: dict, match: str) -> None:
    x, _ = digits16
    args = {**TINY, "steps": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        fit_refiner(x, x, **args)


class _Unread:
    """Images that fail the test when read: bad settings must be refused before any image is."""

    def __len__(self) -> int:
        raise AssertionError("the images were read before the settings were checked")

    def __getitem__(self, i: int) -> None:
        raise AssertionError("the images were read before the settings were checked")


BAD_SETTINGS = [
    ({"seed": -1}, ValueError, r"^seed must be an integer in \[0, 2\*\*64 - 1\], got -1$"),
    ({"seed": "a"}, TypeError, "^seed"),
    ({"seed": None}, TypeError, "^seed"),
    ({"seed": 2**70}, ValueError, "^seed"),
    ({"seed": 1.5}, TypeError, "^seed"),
    ({"device": "bogus"}, ValueError, "^device 'bogus' is not a device"),
    ({"device": "mps"}, ValueError, "only cpu and cuda"),
    ({"stages": 1.5}, TypeError, "^stages"),
    ({"stages": 9}, ValueError, "^stages"),
    ({"ngf": 0}, ValueError, "^ngf"),
    ({"n_blocks": -1}, ValueError, "^n_blocks"),
    ({"ndf": "4"}, TypeError, "^ndf"),
    ({"disc_layers": 0}, ValueError, "^disc_layers"),
    ({"batch_size": 0}, ValueError, "^batch_size"),
    ({"steps": 0}, ValueError, "^steps"),
    ({"steps": None, "epochs": -1.0}, ValueError, "^epochs"),
    ({"lr": "1e-3"}, TypeError, "^lr"),
    ({"betas": 0.5}, TypeError, "^betas"),
    ({"betas": (0.5, 1.0)}, ValueError, "^betas"),
    ({"betas": (0.5, "x")}, TypeError, "^betas"),
    ({"callbacks": [1]}, TypeError, "^callbacks"),
]


@pytest.mark.parametrize(("kwargs", "error", "match"), BAD_SETTINGS, ids=[str(c[0]) for c in BAD_SETTINGS])
def test_bad_settings_fail_in_one_line_before_the_images_are_read(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match) as info:
        fit_refiner(_Unread(), _Unread(), **{**TINY, "steps": 1, **kwargs})
    assert "\n" not in str(info.value)


def test_numpy_scalar_settings_fit_as_python_numbers(digits16, tmp_path) -> None:
    """numpy scalars pass the checks, so they must reach the checkpoint's JSON as plain numbers."""
    x, _ = digits16
    ckpt = tmp_path / "r.ckpt"
    a = fit_refiner(
        x, 255 - x, stages=np.int64(1), steps=np.int64(2), lr=np.float32(1e-3), checkpoint=ckpt, seed=1, **TINY
    )
    b = fit_refiner(x, 255 - x, stages=1, steps=2, lr=float(np.float32(1e-3)), seed=1, **TINY)
    assert ckpt.exists()
    assert all(torch.equal(p, q) for p, q in zip(_weights(a), _weights(b)))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_cuda_without_a_gpu_is_refused_up_front() -> None:
    with pytest.raises(ValueError, match="no CUDA GPU"):
        fit_refiner(_Unread(), _Unread(), device="cuda", **{**TINY, "steps": 1})


def test_bad_data(digits16) -> None:
    x, _ = digits16
    with pytest.raises(ValueError, match="one size"):
        fit_refiner(x, np.zeros((4, 20, 20), np.uint8), steps=1, **TINY)
    with pytest.raises(ValueError, match="divisible by 4"):
        fit_refiner(x[:, :14, :14], x[:, :14, :14], steps=1, **TINY)
    with pytest.raises(ValueError, match="channel"):
        fit_refiner(x, np.repeat(x[..., None], 3, axis=3), steps=1, lambda_self_reg=1.0, **TINY)


def test_image_pool_keeps_then_swaps() -> None:
    pool = ImagePool(2, seed=0)
    a = torch.arange(3.0).view(3, 1, 1, 1)
    out = pool.query(a)
    assert out.shape == a.shape and pool.count == 2
    assert torch.equal(out[:2], a[:2])
    assert ImagePool(0, seed=0).query(a) is a


def _mean_image_gap(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.mean(0) - b.mean(0)).abs().mean())


def test_shared_stage_two_brings_the_two_sets_together(digits16) -> None:
    """Planted domains (digits and their negatives): after stage 2 the refined synthetic images and the real images
    mapped into the shared domain have closer mean images with ``stage2="shared"`` than with the CycleGAN stage 2,
    whose F maps real images toward the synthetic side while G maps synthetic ones toward the real side."""
    x, _ = digits16
    y = 255 - x
    xt = torch.from_numpy(x)[:, None].float() / 127.5 - 1.0
    yt = torch.from_numpy(y)[:, None].float() / 127.5 - 1.0
    gaps = {}
    for mode in ("cycle", "shared"):
        r = fit_refiner(x, y, stages=2, steps=40, lr=1e-3, stage2=mode, lambda_identity=0.05, **TINY)
        with torch.no_grad():
            g2 = r.synthetic_to_real[1].eval()(r.synthetic_to_real[0].eval()(xt))
            f2 = r.real_to_shared[2].eval()(yt)
        gaps[mode] = _mean_image_gap(g2, f2)
        if mode == "shared":
            stage2 = r.history["stage2"]
            assert stage2["cycle_syn"] == [0.0] * 40 and stage2["D_syn"] == [0.0] * 40
    assert gaps["shared"] < 0.85 * gaps["cycle"], gaps
