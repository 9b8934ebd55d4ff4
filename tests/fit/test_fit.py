import cv2
import numpy as np
import pytest
import torch
from torch import nn

import learned_augment as la
from learned_augment.data import load_sample
from learned_augment.fit import fit_policy, load_checkpoint_policy
from learned_augment.io import ArtifactError
from learned_augment.ops import TFSet, mnist_tfs


@pytest.fixture(scope="module")
def digits():
    return load_sample()[0][:256]


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


FAST = dict(steps=6, batch_size=16, n_seqs=2, seq_len=3, progress=False, eval_every=3)


@pytest.mark.parametrize("model", ["lstm", "mean_field", "gru"])
def test_fit_returns_policy_with_history_and_provenance(digits, model):
    policy = fit_policy(digits, "mnist", model, **FAST)
    assert policy.seq_len == 3 and len(policy.tfset) == 25
    for key in ("d_loss", "g_loss", "reward", "diversity"):
        assert len(policy.history[key]) == 6 and all(np.isfinite(policy.history[key]))
    assert policy.history["rg_step"] == [0.0, 3.0, 5.0] and len(policy.history["rg_ratio"]) == 3
    prov = policy.provenance
    assert prov["steps"] == 6 and prov["device"] == "cpu" and prov["library_version"] == la.__version__
    assert len(prov["data_fingerprint"]) == 16


@pytest.mark.parametrize("rollouts", ["per_image", "batched"])
def test_same_seed_same_policy_and_different_seed_differs(digits, rollouts):
    a = fit_policy(digits, "mnist", "lstm", seed=3, rollouts=rollouts, **FAST)
    b = fit_policy(digits, "mnist", "lstm", seed=3, rollouts=rollouts, **FAST)
    c = fit_policy(digits, "mnist", "lstm", seed=4, rollouts=rollouts, **FAST)
    assert _same_weights(a, b)
    assert not _same_weights(a, c)


@pytest.mark.parametrize("rollouts", ["per_image", "batched"])
def test_resume_equals_uninterrupted(digits, tmp_path, rollouts):
    full = fit_policy(digits, "mnist", "lstm", seed=1, rollouts=rollouts, **FAST)
    ckpt = tmp_path / "fit.ckpt.safetensors"

    class Killed(Exception):
        pass

    def kill_at_step_3(step, metrics, policy):
        if step == 3:
            raise Killed

    with pytest.raises(Killed):
        fit_policy(
            digits,
            "mnist",
            "lstm",
            seed=1,
            checkpoint=ckpt,
            checkpoint_every=2,
            callbacks=[kill_at_step_3],
            rollouts=rollouts,
            **FAST,
        )
    partial = load_checkpoint_policy(ckpt)
    assert not _same_weights(partial, full)
    resumed = fit_policy(
        digits, "mnist", "lstm", seed=1, checkpoint=ckpt, checkpoint_every=2, rollouts=rollouts, **FAST
    )
    assert _same_weights(resumed, full)
    assert resumed.history["d_loss"] == full.history["d_loss"]


def test_resume_with_other_settings_is_refused(digits, tmp_path):
    ckpt = tmp_path / "fit.safetensors"
    fit_policy(digits, "mnist", "lstm", seed=1, checkpoint=ckpt, **FAST)
    with pytest.raises(ArtifactError, match="different settings"):
        fit_policy(digits, "mnist", "lstm", seed=2, checkpoint=ckpt, **FAST)


def test_resume_with_another_subset_is_refused_and_old_checkpoints_resume(digits, tmp_path):
    from learned_augment.io import load_artifact, save_artifact

    ckpt = tmp_path / "fit.safetensors"
    fit_policy(digits, "mnist", "lstm", subset=100, checkpoint=ckpt, **FAST)
    with pytest.raises(ArtifactError, match="different settings.*subset"):
        fit_policy(digits, "mnist", "lstm", subset=120, checkpoint=ckpt, **FAST)
    # A checkpoint written before fit_policy had ``subset`` (no such key) is a fit of all the data.
    half = {**FAST, "steps": 3}
    full = fit_policy(digits, "mnist", "lstm", **FAST)
    fit_policy(digits, "mnist", "lstm", checkpoint=ckpt, resume=False, **half)
    tensors, meta = load_artifact(ckpt)
    body = {k: v for k, v in meta.items() if k not in ("format_version", "kind", "library_version")}
    config = {k: v for k, v in body["config"].items() if k != "subset"}
    save_artifact(ckpt, tensors, "fit_checkpoint", {**body, "config": {**config, "total_steps": FAST["steps"]}})
    assert _same_weights(fit_policy(digits, "mnist", "lstm", checkpoint=ckpt, **FAST), full)


def test_accepts_dataset_of_tuples_iterable_and_folder(digits, tmp_path):
    import cv2

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return 40

        def __getitem__(self, i):
            return torch.from_numpy(digits[i]).float().div(255).unsqueeze(0), i % 10

    for data in (DS(), iter(list(digits[:40])), digits[:40, :, :, None]):
        p = fit_policy(data, "mnist", "mean_field", steps=1, batch_size=8, n_seqs=1, seq_len=2, progress=False)
        assert p.provenance["n_items"] == 40
    for i in range(12):
        cv2.imwrite(str(tmp_path / f"{i}.png"), digits[i])
    p = fit_policy(tmp_path, "mnist", "mean_field", steps=1, batch_size=8, n_seqs=1, seq_len=2, progress=False)
    assert p.provenance["n_items"] == 12


@pytest.mark.parametrize("rollouts", ["per_image", "batched"])
def test_misspecified_tfs_are_learned_away(digits, rollouts):
    """TANDA's finding: with destructive TFs in the vocabulary, the learned policy rarely applies them, whichever
    executor makes the rollouts.

    Bound: after fitting, the destructive TFs together get under half their uniform share. A policy that
    ignored the discriminator would stay at the uniform share (5/30 = 0.167); in our runs the fitted share is
    about 0.02, so half of uniform leaves a wide margin against noise while still failing for a
    policy that learned nothing.
    """
    destructive = ["invert", "blur(2)", "rotate(+90)", "rotate(-90)", "cutout(0.5)"]
    tfs = TFSet(mnist_tfs().ids + destructive)
    # 14x14 digits keep the test to seconds; the destructive TFs are just as destructive at that size.
    images = np.stack([cv2.resize(x, (14, 14), interpolation=cv2.INTER_AREA) for x in load_sample()[0][:1024]])
    policy = fit_policy(
        images,
        tfs,
        "mean_field",
        seq_len=4,
        steps=60,
        batch_size=32,
        n_seqs=2,
        g_lr=0.5,
        d_lr=1e-3,
        progress=False,
        eval_every=0,
        seed=0,
        rollouts=rollouts,
    )
    assert policy.provenance["rollouts"] == rollouts
    p = policy.probabilities()
    share = p[[tfs.index_of(t) for t in destructive]].sum()
    uniform = len(destructive) / len(tfs)
    assert share < 0.5 * uniform, f"destructive share {share:.3f} vs uniform {uniform:.3f}"


class _FixedCritic(nn.Module):
    """Says an item is real when its value is near zero (plus a dummy parameter so Adam has something)."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return 4.0 - 8.0 * x.abs().mean(dim=1) + 0.0 * self.dummy


def _planted_fit(entropy: float = 0.0):
    """A planted problem on non-image data: "nudge" keeps items near zero (real), "wreck" moves them far."""

    @la.register_tf("test_fit_nudge", overwrite=True)
    def nudge(x):
        return [v + 0.01 for v in x]

    @la.register_tf("test_fit_wreck", overwrite=True)
    def wreck(x):
        return [v + 1.0 for v in x]

    return fit_policy(
        [[0.0, 0.0, 0.0] for _ in range(64)],
        ["test_fit_nudge", "test_fit_wreck"],
        "mean_field",
        seq_len=3,
        steps=40,
        batch_size=16,
        n_seqs=2,
        discriminator=_FixedCritic(),
        collate=lambda xs: torch.tensor(xs, dtype=torch.float32),
        g_lr=0.05,
        diversity=0.0,
        entropy=entropy,
        progress=False,
        eval_every=0,
    )


def test_non_image_data_with_custom_tfs_and_planted_reward():
    """The TF that keeps items 'real' must gain probability."""
    p = _planted_fit().probabilities()
    assert p[0] > 0.8, p


def test_subset_of_non_image_items():
    from learned_augment.data import random_subset

    @la.register_tf("test_fit_id3", overwrite=True)
    def ident(x):
        return x

    seen: set[float] = set()

    def collate(xs):
        seen.update(v[0] for v in xs)
        return torch.tensor(xs)

    items = [[float(i)] for i in range(50)]
    kw = dict(discriminator=_FixedCritic(), collate=collate, steps=30, progress=False, eval_every=0, seed=4)
    policy = fit_policy(items, ["test_fit_id3"], "mean_field", subset=20, batch_size=4, **kw)
    assert policy.provenance["n_items"] == 20 and policy.provenance["data_fingerprint"] == "n=20"
    assert seen == {float(i) for i in random_subset(50, 20, seed=4)}  # 30 steps of 4: every picked item, no other


def test_non_image_data_needs_discriminator_and_collate():
    @la.register_tf("test_fit_id2", overwrite=True)
    def ident(x):
        return x

    with pytest.raises(ValueError, match="discriminator"):
        fit_policy([[1.0]], ["test_fit_id2"], "mean_field", steps=1, progress=False)


def test_nan_losses_stop_the_fit(tmp_path):
    class NaNCritic(_FixedCritic):
        def forward(self, x):
            return super().forward(x) * float("nan")

    @la.register_tf("test_fit_id3", overwrite=True)
    def ident(x):
        return [v + 0.5 for v in x]

    ckpt = tmp_path / "c.safetensors"
    with pytest.raises(FloatingPointError, match="diverged"):
        fit_policy(
            [[0.0]] * 8,
            ["test_fit_id3"],
            "mean_field",
            seq_len=2,
            steps=3,
            batch_size=4,
            discriminator=NaNCritic(),
            collate=lambda xs: torch.tensor(xs),
            progress=False,
            checkpoint=ckpt,
        )
    assert not ckpt.exists()


def test_bad_arguments(digits):
    with pytest.raises(ValueError, match="g_optimizer"):
        fit_policy(digits, "mnist", "lstm", g_optimizer="rmsprop", **FAST)
    with pytest.raises(KeyError, match="unknown TF set"):
        fit_policy(digits, "imagenet", "lstm", **FAST)
    with pytest.raises(FileNotFoundError):
        fit_policy("/nonexistent/folder", "mnist", "lstm", **FAST)


class _Unread:
    """Data that fails the test when read: bad settings must be refused before any data is."""

    def __len__(self):
        raise AssertionError("the data was read before the settings were checked")

    def __getitem__(self, i):
        raise AssertionError("the data was read before the settings were checked")


BAD_SETTINGS = [
    ({"seed": "a"}, TypeError, "^seed must be an integer"),
    ({"seed": -1}, ValueError, r"^seed must be an integer in \[0, 2\*\*64 - 1\], got -1$"),
    ({"seed": None}, TypeError, "^seed must be an integer"),
    ({"seed": 2**70}, ValueError, "^seed must be an integer"),
    ({"seed": 1.5}, TypeError, "^seed must be an integer"),
    ({"seed": True}, TypeError, "^seed must be an integer"),
    ({"device": "bogus"}, ValueError, "^device 'bogus' is not a device"),
    ({"device": "mps"}, ValueError, "only cpu and cuda"),
    ({"device": 1.5}, TypeError, "^device must be"),
    ({"limit": -1}, ValueError, "^limit must be an integer >= 1"),
    ({"limit": 2.5}, TypeError, "^limit"),
    ({"subset": 0}, ValueError, "^subset must be an integer >= 1"),
    ({"subset": 2.5}, TypeError, "^subset"),
    ({"hidden": 0}, ValueError, "^hidden"),
    ({"checkpoint_every": 0}, ValueError, "^checkpoint_every"),
    ({"n_seqs": 1.5}, TypeError, "^n_seqs"),
    ({"d_width": 0}, ValueError, "^d_width"),
    ({"seq_len": 2.7}, TypeError, "^seq_len"),
    ({"batch_size": "8"}, TypeError, "^batch_size"),
    ({"eval_every": -1}, ValueError, "^eval_every"),
    ({"steps": 0}, ValueError, "^steps"),
    ({"steps": None, "epochs": "1"}, TypeError, "^epochs"),
    ({"steps": None, "min_steps": 0}, ValueError, "^min_steps"),
    ({"g_lr": "0.1"}, TypeError, "^g_lr"),
    ({"g_optimizer": "rmsprop"}, ValueError, "^g_optimizer"),
    ({"rollouts": "fast"}, ValueError, "^rollouts"),
    ({"reward_precision": "half"}, ValueError, "^reward_precision"),
    ({"callbacks": [1]}, TypeError, "^callbacks"),
    ({"image_size": (0, 8)}, ValueError, "^image_size"),
]


@pytest.mark.parametrize(("kwargs", "error", "match"), BAD_SETTINGS, ids=[str(c[0]) for c in BAD_SETTINGS])
def test_bad_settings_fail_in_one_line_before_the_data_is_read(kwargs, error, match):
    with pytest.raises(error, match=match) as info:
        fit_policy(_Unread(), "mnist", "lstm", **{**FAST, **kwargs})
    assert "\n" not in str(info.value) and len(str(info.value)) <= 200


@pytest.mark.parametrize(("model", "match"), [("uniform", "nothing to fit"), ("transformer", "unknown policy model")])
def test_a_model_that_cannot_be_fitted_is_refused_before_the_data_is_read(model, match):
    with pytest.raises(ValueError, match=match):
        fit_policy(_Unread(), "mnist", model, **FAST)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_cuda_without_a_gpu_is_refused_up_front():
    with pytest.raises(ValueError, match="no CUDA GPU"):
        fit_policy(_Unread(), "mnist", "lstm", device="cuda", **FAST)
    with pytest.raises(ValueError, match="no CUDA GPU"):  # an index means cuda:N, as torch.device(0) does
        fit_policy(_Unread(), "mnist", "lstm", device=0, **FAST)


def test_integral_settings_of_other_types_are_accepted(digits):
    """numpy integers are integers: they fit as the same Python ints and are stored as such."""
    a = fit_policy(digits, "mnist", "lstm", seed=np.int64(3), **{**FAST, "batch_size": np.int32(16)})
    b = fit_policy(digits, "mnist", "lstm", seed=3, **FAST)
    assert _same_weights(a, b) and type(a.provenance["fit_args"]["seed"]) is int


def test_numpy_float_settings_are_stored_as_floats(digits, tmp_path):
    """A numpy float passes the check, so it must also reach the checkpoint's JSON as a plain float."""
    ckpt = tmp_path / "fit.ckpt"
    a = fit_policy(digits, "mnist", "lstm", g_lr=np.float32(0.5), diversity=np.float64(1e-3), checkpoint=ckpt, **FAST)
    b = fit_policy(digits, "mnist", "lstm", g_lr=0.5, diversity=1e-3, **FAST)
    assert ckpt.exists() and _same_weights(a, b)
    assert type(a.provenance["fit_args"]["g_lr"]) is float


def test_entropy_bonus_keeps_the_policy_diverse():
    """On the planted problem the bonus must hold the policy nearer uniform than the plain fit does."""
    plain, bonus = _planted_fit(0.0), _planted_fit(2.0)
    assert bonus.entropy_ratio() > plain.entropy_ratio() + 0.1
    assert bonus.probabilities()[0] > 0.5  # the bonus must not undo what the critic taught


class _BatchNormCritic(nn.Module):
    """Sees only each item's mean, through batch norm: it can tell a shifted batch from a real one only when both
    are normalised together."""

    def __init__(self):
        super().__init__()
        self.norm = nn.BatchNorm1d(1, affine=False)
        self.head = nn.Linear(1, 1)

    def forward(self, x):
        return self.head(self.norm(x.mean(dim=1, keepdim=True))).squeeze(1)


def test_discriminator_sees_real_and_generated_items_in_one_batch(tf_name):
    """A TF that shifts every item alike must be detectable by a batch-norm discriminator (it is not when real and
    generated items are normalised as separate batches: the shift is subtracted away)."""
    shift = tf_name("shift")

    @la.register_tf(shift)
    def _shift(x):
        return [v + 2.0 for v in x]

    rng = np.random.default_rng(0)
    data = [list(rng.normal(size=4)) for _ in range(256)]
    policy = fit_policy(
        data,
        [shift],
        "mean_field",
        seq_len=1,
        steps=80,
        batch_size=32,
        n_seqs=1,
        d_lr=0.05,
        discriminator=_BatchNormCritic(),
        collate=lambda xs: torch.tensor(xs, dtype=torch.float32),
        diversity=0.0,
        progress=False,
        eval_every=0,
    )
    assert np.mean(policy.history["d_loss"][-20:]) < 0.3


def test_fit_length_has_a_floor_for_small_data_sets():
    from learned_augment.fit.loop import MIN_STEPS, fit_length

    # 1,000 images at batch 32 is 31 steps per epoch: the floor lifts it; a large set keeps its epochs.
    assert fit_length(1000, 32, 1.0, None, MIN_STEPS) == MIN_STEPS
    assert fit_length(50_000, 32, 1.0, None, MIN_STEPS) == 1562
    assert fit_length(1000, 32, 1.0, None, 10) == 31
    assert fit_length(1000, 32, 1.0, 7, MIN_STEPS) == 7  # explicit steps win
    for bad in (dict(steps=0), dict(steps=-3), dict(steps=2.5), dict(min_steps=0), dict(epochs=0.0)):
        kw = dict(epochs=1.0, steps=None, min_steps=MIN_STEPS) | bad
        with pytest.raises(ValueError, match=next(iter(bad))):
            fit_length(1000, 32, **kw)


def test_subset_fits_on_a_random_subset_drawn_from_the_seed(digits):
    from learned_augment.data import random_subset

    keep = random_subset(256, 100, seed=0)
    assert len(np.unique(keep)) == 100 and np.all(np.diff(keep) > 0) and keep[-1] < 256
    assert np.array_equal(keep, random_subset(256, 100, seed=0))
    assert not np.array_equal(keep, random_subset(256, 100, seed=1))
    assert not np.array_equal(keep, np.arange(100))  # random, not the first ones (that is limit)
    a = fit_policy(digits, "mnist", "lstm", subset=100, **FAST)
    b = fit_policy(digits[keep], "mnist", "lstm", **FAST)  # the same fit as on the subset itself
    assert a.provenance["n_items"] == 100 and _same_weights(a, b)
    assert a.provenance["data_fingerprint"] == b.provenance["data_fingerprint"]
    whole = fit_policy(digits, "mnist", "lstm", subset=1000, **FAST)  # more than there is: all of it
    assert whole.provenance["n_items"] == 256 and _same_weights(whole, fit_policy(digits, "mnist", "lstm", **FAST))


def test_subset_sets_the_length_in_passes_over_the_subset(digits):
    fast = {k: v for k, v in FAST.items() if k != "steps"}
    policy = fit_policy(digits, "mnist", "lstm", subset=64, epochs=2.0, min_steps=1, **fast)
    assert policy.provenance["steps"] == 8  # 2 passes over 64 items in batches of 16, not over 256


def test_small_fit_from_epochs_runs_min_steps(digits):
    policy = fit_policy(digits[:40], "mnist", "mean_field", seq_len=2, batch_size=8, n_seqs=1, min_steps=9,
                        progress=False, eval_every=0)  # fmt: skip
    assert policy.provenance["steps"] == 9 and len(policy.history["d_loss"]) == 9


@pytest.mark.parametrize("shape", ["(B,)", "(B, 1)"])
def test_discriminator_may_return_b_or_b_by_1(shape):
    class Critic(_FixedCritic):
        def forward(self, x):
            out = super().forward(x)
            return out if shape == "(B,)" else out[:, None]

    @la.register_tf("test_fit_shift", overwrite=True)
    def shift(x):
        return [v + 0.5 for v in x]

    policy = fit_policy([[0.0]] * 8, ["test_fit_shift"], "mean_field", seq_len=2, steps=2, batch_size=4,
                        discriminator=Critic(), collate=lambda xs: torch.tensor(xs), progress=False)  # fmt: skip
    assert len(policy.history["d_loss"]) == 2


def test_discriminator_with_wrong_output_shape_is_named():
    class TwoLogits(_FixedCritic):
        def forward(self, x):
            return super().forward(x)[:, None].expand(-1, 2)

    @la.register_tf("test_fit_shift2", overwrite=True)
    def shift(x):
        return [v + 0.5 for v in x]

    with pytest.raises(ValueError, match=r"one logit per item, shape \(8,\) or \(8, 1\); got \(8, 2\)"):
        fit_policy([[0.0]] * 8, ["test_fit_shift2"], "mean_field", seq_len=2, steps=2, batch_size=4,
                   discriminator=TwoLogits(), collate=lambda xs: torch.tensor(xs), progress=False)  # fmt: skip


def test_diversity_term_is_scale_free():
    """The same data collated at two scales, with a scale-invariant critic, gives the same fit."""

    class RelativeCritic(_FixedCritic):
        def forward(self, x):
            return 4.0 - 8.0 * x.abs().mean(dim=1) / x.abs().max().clamp_min(1e-9) + 0.0 * self.dummy

    @la.register_tf("test_fit_scale_nudge", overwrite=True)
    def nudge(x):
        return [v * 1.01 for v in x]

    @la.register_tf("test_fit_scale_wreck", overwrite=True)
    def wreck(x):
        return [v * 3.0 for v in x]

    rng = np.random.default_rng(0)
    data = [list(rng.random(4)) for _ in range(32)]

    def fit(scale):
        return fit_policy(data, ["test_fit_scale_nudge", "test_fit_scale_wreck"], "mean_field", seq_len=2, steps=8,
                          batch_size=8, n_seqs=2, discriminator=RelativeCritic(), diversity=1e-3, progress=False,
                          collate=lambda xs: scale * torch.tensor(xs, dtype=torch.float32), eval_every=0)  # fmt: skip

    small, large = fit(1.0), fit(1000.0)
    assert np.allclose(small.history["diversity"], large.history["diversity"], rtol=1e-4)
    assert np.allclose(small.probabilities(), large.probabilities(), atol=1e-5)


def test_image_fit_records_the_image_shape(digits, tmp_path):
    policy = fit_policy(digits, "mnist", "mean_field", **FAST)
    assert policy.provenance["image_shape"] == [28, 28, 1]
    policy.save(tmp_path / "p.safetensors")
    assert la.load_policy(tmp_path / "p.safetensors").provenance["image_shape"] == [28, 28, 1]


def test_custom_tfs_never_edit_the_data_set_in_place():
    @la.register_tf("test_fit_bump_in_place", overwrite=True)
    def bump(x):
        x[0] += 1.0
        return x

    data = [[0.0, 0.0, 0.0] for _ in range(8)]
    fit_policy(data, ["test_fit_bump_in_place"], "mean_field", seq_len=2, steps=3, batch_size=4, n_seqs=1,
               discriminator=_FixedCritic(), collate=lambda xs: torch.tensor(xs), progress=False)  # fmt: skip
    assert data == [[0.0, 0.0, 0.0]] * 8


def test_collate_may_return_integer_ids():
    class EmbedCritic(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 4)
            self.out = nn.Linear(4, 1)

        def forward(self, ids):
            return self.out(self.emb(ids).mean(dim=1))

    @la.register_tf("test_fit_add_one", overwrite=True)
    def add_one(x):
        return [min(v + 1, 9) for v in x]

    policy = fit_policy([[1, 2, 3]] * 8, ["test_fit_add_one"], "mean_field", seq_len=2, steps=2, batch_size=4,
                        discriminator=EmbedCritic(), collate=lambda xs: torch.tensor(xs, dtype=torch.long),
                        progress=False, eval_every=0)  # fmt: skip
    assert len(policy.history["diversity"]) == 2 and np.isfinite(policy.history["diversity"]).all()


def test_collate_of_varying_shape_is_explained():
    @la.register_tf("test_fit_grow", overwrite=True)
    def grow(x):
        return x + [0.0]

    with pytest.raises(ValueError, match="pad token lists to a fixed length"):
        fit_policy([[1.0]] * 8, ["test_fit_grow"], "mean_field", seq_len=2, steps=1, batch_size=4,
                   discriminator=_FixedCritic(), collate=lambda xs: torch.tensor(xs), progress=False)  # fmt: skip


def test_fit_runs_opencv_single_threaded_and_restores_it(digits):
    seen = []
    before = cv2.getNumThreads()
    cv2.setNumThreads(2)
    try:
        fit_policy(digits, "mnist", "mean_field", callbacks=[lambda *_: seen.append(cv2.getNumThreads())], **FAST)
        assert set(seen) == {1} and cv2.getNumThreads() == 2
    finally:
        cv2.setNumThreads(before)


def test_batched_rollouts_give_each_sequence_its_own_item(digits, monkeypatch):
    """Inside a fit, the batched prefixes are the per-image ones (deterministic TFs), row for row: sequence j rolls
    out item j % batch_size in both paths."""
    from learned_augment.fit import loop

    seen = {}
    original = loop._Run.rollouts

    def spy(self, step, batch, idx):
        ids, stacked, real = original(self, step, batch, idx)
        seen["batched"], seen["per_item"] = stacked, self._per_item_prefixes(step, batch, ids)
        return ids, stacked, real

    monkeypatch.setattr(loop._Run, "rollouts", spy)
    tfs = [e.id for e in mnist_tfs() if not e.tf.uses_rng]
    fit_policy(digits, tfs, "lstm", seq_len=6, steps=1, batch_size=16, n_seqs=3, progress=False, rollouts="batched")
    batched, per_item = seen["batched"], seen["per_item"]
    assert batched.shape == per_item.shape == (7, 48, 1, 28, 28)
    levels = (batched - per_item).abs() * 127.5
    assert levels[0].max() == 0
    assert float(levels.mean()) <= 1.0 and float((levels > 4).float().mean()) <= 0.02
    # The check can fail: a shifted item mapping moves whole digits.
    shifted = (batched[:, 1:] - per_item[:, :-1]).abs() * 127.5
    assert float(shifted.mean()) > 10 * float(levels.mean())


def test_batched_rollouts_with_random_tfs_and_jitter(digits):
    tfs = ["cutout(0.25)", "noise(0.04)", "elastic(1.0)", "rotate(+5)", "hflip"]
    policy = fit_policy(digits, tfs, "lstm", seed=0, jitter=True, rollouts="batched", **FAST)
    assert policy.provenance["rollouts"] == "batched"
    assert all(np.isfinite(v) for v in policy.history["d_loss"])


def test_resume_with_other_rollouts_is_refused(digits, tmp_path):
    ckpt = tmp_path / "fit.safetensors"
    fit_policy(digits, "mnist", "lstm", seed=0, checkpoint=ckpt, **FAST)
    with pytest.raises(ArtifactError, match="rollouts"):
        fit_policy(digits, "mnist", "lstm", seed=0, checkpoint=ckpt, rollouts="batched", **FAST)


def test_a_fit_leaves_the_callers_global_generator_as_it_was(digits):
    """A study that seeds its end model after the fit must get its own seed's weights, not the fit's."""
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    fit_policy(digits, "mnist", "lstm", **FAST)
    assert torch.equal(torch.rand(4), expected)


def test_a_fit_does_not_reseed_the_gpus(digits, monkeypatch):
    """torch.manual_seed would reset every CUDA generator to the fit's seed, whatever device the fit runs on."""

    def refuse(seed):
        raise AssertionError("fit_policy reseeded every GPU")

    monkeypatch.setattr(torch.cuda, "manual_seed_all", refuse)
    fit_policy(digits, "mnist", "lstm", **FAST)


def test_images_of_many_sizes_fit_with_image_size(digits):
    mixed = [cv2.resize(d, (20 + i % 3, 28 - i % 5)) for i, d in enumerate(digits[:32])]
    with pytest.raises(ValueError, match="image_size"):
        fit_policy(mixed, "mnist", "lstm", **FAST)
    policy = fit_policy(mixed, "mnist", "lstm", image_size=(24, 20), **FAST)
    assert policy.provenance["image_shape"] == [24, 20, 1]
