"""The synthetic-label classifier: semantic-consistency loss, quality signal, Fréchet distance, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learned_augment.io import load_artifact, read_metadata, save_artifact
from learned_augment.refine import Refiner, StepInfo, fit_refiner
from learned_augment.refine.semantic import QUALITY_NAMES, frechet_distance, to_channels

from .conftest import TINY

LABELED = {**TINY, "classifier_steps": 20, "eval_images": 32}


def test_frechet_distance_is_zero_for_one_set_and_grows_with_the_mean_shift() -> None:
    a = torch.randn(400, 8, generator=torch.Generator().manual_seed(0))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shift = torch.zeros(8)
    shift[0] = 3.0
    assert frechet_distance(a, a + shift) == pytest.approx(9.0, rel=1e-6)
    assert frechet_distance(a, 2 * a) > 1.0, "a wider spread is a distance too"
    b = torch.randn(300, 8, generator=torch.Generator().manual_seed(1))
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-6)


def test_to_channels() -> None:
    grey = torch.rand(2, 1, 4, 4)
    assert to_channels(grey, 1) is grey
    assert torch.equal(to_channels(grey, 3)[:, 2], grey[:, 0])
    assert torch.allclose(to_channels(to_channels(grey, 3), 1), grey)


def test_semantic_loss_is_logged_only_when_asked(digits16) -> None:
    x, labels = digits16
    off = fit_refiner(x, 255 - x, stages=2, steps=3, synthetic_labels=labels, lambda_semantic=0.0, **LABELED)
    on = fit_refiner(x, 255 - x, stages=2, steps=3, synthetic_labels=labels, lambda_semantic=2.0, **LABELED)
    assert all(v == 0.0 for h in off.history.values() for v in h["semantic"])
    assert all(v > 0.0 for h in on.history.values() for v in h["semantic"])
    g = on.history["stage1"]
    others = sum(g[k][0] for k in ("adv_syn2real", "adv_real2syn", "cycle_syn", "cycle_real", "semantic"))
    assert g["G_total"][0] == pytest.approx(others + g["identity_syn2real"][0] + g["identity_real2syn"][0], rel=1e-5)
    assert on.provenance["settings"]["lambda_semantic"] == 2.0
    default = fit_refiner(x, 255 - x, stages=1, steps=1, synthetic_labels=labels, **LABELED)
    assert default.provenance["settings"]["lambda_semantic"] == 1.0, "labels turn the term on at the measured weight"
    unlabeled = fit_refiner(x, 255 - x, stages=1, steps=2, **TINY)
    assert unlabeled.quality == {} and "lambda_semantic" not in unlabeled.provenance["settings"]


def test_semantic_term_keeps_the_label(digits16) -> None:
    # Real images are inverted digits: an unconstrained refiner is free to scramble identities on the way there;
    # the consistency term makes the synthetic-label classifier still read the label off the refined images.
    x, labels = digits16
    kw = dict(
        stages=1, steps=40, lr=1e-3, synthetic_labels=labels, eval_every=40, **{**LABELED, "classifier_steps": 150}
    )
    kept = {
        lam: fit_refiner(x, 255 - x, lambda_semantic=lam, **kw).quality["stage1"]["prediction_kept"][-1]
        for lam in (0.0, 5.0)
    }
    assert kept[5.0] >= kept[0.0] + 20.0, kept


def test_quality_rows_are_printed_and_kept(digits16, capsys) -> None:
    x, labels = digits16
    refiner = fit_refiner(
        x, 255 - x, stages=2, steps=5, eval_every=2, synthetic_labels=labels, **{**LABELED, "progress": True}
    )
    assert set(refiner.quality) == {"stage1", "stage2"}
    for rows in refiner.quality.values():
        assert set(rows) == set(QUALITY_NAMES)
        assert rows["step"] == [0.0, 2.0, 4.0, 5.0], "the stage's input, every eval_every steps, and the end"
        assert all(0.0 <= v <= 100.0 for v in rows["prediction_kept"] + rows["real_kept"])
        assert all(v >= 0.0 for v in rows["feature_distance"] + rows["shared_distance"])
    s1, s2 = refiner.quality["stage1"], refiner.quality["stage2"]
    assert s1["prediction_kept"][0] == 100.0 and s1["real_kept"][0] == 100.0, "step 0 maps nothing yet"
    # Stage 2 starts from stage 1's output, stored as uint8 in between (so equal up to rounding).
    assert s2["prediction_kept"][0] == pytest.approx(s1["prediction_kept"][-1], abs=5.0)
    assert s2["feature_distance"][0] == pytest.approx(s1["feature_distance"][-1], rel=0.02)
    assert "refiner stage 2 step 4: prediction kept" in capsys.readouterr().out
    assert refiner.at_stage(1).quality == {"stage1": s1}


def test_quality_survives_save_and_load(digits16, tmp_path) -> None:
    x, labels = digits16
    refiner = fit_refiner(x, 255 - x, stages=2, steps=2, synthetic_labels=labels, **LABELED)
    path = refiner.save(tmp_path / "r.safetensors")
    loaded = Refiner.load(path)
    assert loaded.quality == refiner.quality and loaded.history == refiner.history
    assert read_metadata(path)["refiner"]["quality"]["stage1"] == sorted(QUALITY_NAMES)


@pytest.mark.parametrize(("kill_stage", "kill_step"), [(1, 3), (2, 5)])
def test_labeled_resume_equals_uninterrupted(digits16, tmp_path, kill_stage: int, kill_step: int) -> None:
    x, labels = digits16
    kw = dict(stages=2, steps=6, pool_size=3, synthetic_labels=labels, lambda_semantic=1.0, eval_every=2, **LABELED)
    straight = fit_refiner(x, 255 - x, **kw)

    def kill(info: StepInfo) -> None:
        if (info.stage, info.step) == (kill_stage, kill_step):
            raise KeyboardInterrupt

    ck = tmp_path / "ck.safetensors"
    with pytest.raises(KeyboardInterrupt):
        fit_refiner(x, 255 - x, checkpoint=ck, checkpoint_every=2, callbacks=[kill], **kw)
    assert any(k.startswith("classifier.") for k in load_artifact(ck)[0])
    resumed = fit_refiner(x, 255 - x, checkpoint=ck, checkpoint_every=2, **kw)
    for a, b in zip(
        straight.synthetic_to_real + [straight.real_to_shared[2]],
        resumed.synthetic_to_real + [resumed.real_to_shared[2]],
    ):
        assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert resumed.history == straight.history and resumed.quality == straight.quality
    other = np.roll(labels, 1)
    with pytest.raises(ValueError, match="different fit.*synthetic_labels"):
        fit_refiner(x, 255 - x, checkpoint=ck, **{**kw, "synthetic_labels": other})


def test_checkpoint_from_before_the_semantic_loss_resumes(digits16, tmp_path) -> None:
    x, _ = digits16
    kw = dict(stages=1, steps=4, **TINY)
    straight = fit_refiner(x, 255 - x, **kw)
    ck = tmp_path / "ck.safetensors"

    def kill(info: StepInfo) -> None:
        if info.step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit_refiner(x, 255 - x, checkpoint=ck, checkpoint_every=2, callbacks=[kill], **kw)
    tensors, meta = load_artifact(ck)
    names = meta["history_names"]
    keep = [i for i, n in enumerate(names) if n != "semantic"]
    tensors["history.stage1"] = tensors["history.stage1"][:, keep].contiguous()
    meta["history_names"] = [names[i] for i in keep]
    body = {k: v for k, v in meta.items() if k not in ("format_version", "kind", "library_version")}
    save_artifact(ck, tensors, kind=meta["kind"], metadata=body)
    resumed = fit_refiner(x, 255 - x, checkpoint=ck, **kw)
    assert resumed.history == straight.history


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lambda_semantic": 1.0}, "needs synthetic_labels"),
        ({"synthetic_labels": np.zeros(3, np.int64)}, "one per synthetic image"),
        ({"synthetic_labels": np.full(64, 0.5)}, "integers"),
        ({"synthetic_labels": np.full(64, -1)}, "class indices"),
        ({"lambda_semantic": -1.0}, "lambda_semantic"),
        ({"eval_every": -1}, "eval_every"),
        ({"classifier_steps": 0}, "classifier_steps"),
    ],
)
def test_bad_semantic_arguments(digits16, kwargs: dict, match: str) -> None:
    x, _ = digits16
    with pytest.raises(ValueError, match=match):
        fit_refiner(x, x, steps=1, **{**TINY, **kwargs})


def test_eval_every_0_measures_only_at_the_start_and_the_end_of_a_stage(digits16) -> None:
    x, labels = digits16
    refiner = fit_refiner(x, 255 - x, stages=1, steps=5, eval_every=0, synthetic_labels=labels, **LABELED)
    assert refiner.quality["stage1"]["step"] == [0.0, 5.0]
