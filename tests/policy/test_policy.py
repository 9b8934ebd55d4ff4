import itertools
import re

import numpy as np
import pytest
import torch

from learned_augment.policy import (
    BlockSampler,
    GRUPolicy,
    LSTMPolicy,
    MeanFieldPolicy,
    Policy,
    UniformPolicy,
    make_policy,
)
from learned_augment.policy.sampler import PrefixSampler

TINY = ["rotate(+5)", "hflip", "zoom(1.1)"]
KINDS = [UniformPolicy, MeanFieldPolicy, LSTMPolicy, GRUPolicy]


def _randomise(policy: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in policy.parameters():
            p.copy_(torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("cls", KINDS)
def test_sample_shape_range_and_reproducibility(cls):
    policy = cls("cifar10", seq_len=7)
    _randomise(policy)
    a = policy.sample(500, generator=torch.Generator().manual_seed(1))
    b = policy.sample(500, generator=torch.Generator().manual_seed(1))
    assert a.shape == (500, 7) and a.dtype == torch.long
    assert int(a.min()) >= 0 and int(a.max()) < 33
    assert torch.equal(a, b)
    c = policy.sample(500, generator=torch.Generator().manual_seed(2))
    assert not torch.equal(a, c)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
@pytest.mark.parametrize("cls", KINDS)
def test_a_policy_moved_to_another_float_dtype_still_samples_and_scores(cls, dtype):
    policy = cls("cifar10", seq_len=3)
    _randomise(policy)
    ids = policy.to(dtype).sample(64, generator=torch.Generator().manual_seed(0))
    assert ids.shape == (64, 3) and int(ids.max()) < 33
    assert torch.isfinite(policy.log_prob(ids)).all()


@pytest.mark.parametrize("cls", KINDS)
def test_log_prob_is_a_distribution_over_all_sequences(cls):
    policy = cls(TINY, seq_len=3)
    _randomise(policy, 3)
    all_seqs = torch.tensor(list(itertools.product(range(3), repeat=3)))
    total = policy.log_prob(all_seqs).exp().sum().item()
    assert total == pytest.approx(1.0, abs=1e-5)


def test_mean_field_log_prob_matches_brute_force():
    policy = MeanFieldPolicy(TINY, seq_len=3)
    with torch.no_grad():
        policy.logits.copy_(torch.tensor([0.5, -1.0, 2.0]))
    p = torch.softmax(policy.logits.detach(), 0)
    for seq in itertools.product(range(3), repeat=3):
        expected = float(torch.log(p[list(seq)]).sum())
        got = float(policy.log_prob(torch.tensor([seq])).detach())
        assert got == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("cls", [LSTMPolicy, GRUPolicy])
def test_recurrent_sampling_matches_log_prob(cls):
    """Empirical frequencies of sampled sequences agree with exp(log_prob) (brute force over K^L)."""
    policy = cls(TINY, seq_len=2)
    _randomise(policy, 5)
    n = 60000
    ids = policy.sample(n, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(ids[:, 0] * 3 + ids[:, 1], minlength=9).double() / n
    all_seqs = torch.tensor(list(itertools.product(range(3), repeat=2)))
    expected = policy.log_prob(all_seqs).exp().detach().double()
    assert torch.allclose(counts, expected, atol=0.01)


def test_recurrent_logits_are_bounded():
    policy = LSTMPolicy(TINY, seq_len=4, logit_range=4.0)
    with torch.no_grad():
        policy.head.weight.mul_(1000)
    steps = policy.step_log_probs(policy.sample(100)).exp()
    # With |logits| <= R / 2 = 2, no TF gets less than exp(-4) / (1 + 2 exp(0))... bounded away from zero.
    assert float(steps.min()) > np.exp(-4.0) / 3.0 - 1e-6


def test_probabilities_sum_to_one_and_uniform_is_flat():
    u = UniformPolicy("mnist", 5)
    p = u.probabilities(n_samples=50000)
    assert p.sum() == pytest.approx(1.0)
    assert np.abs(p - 1 / 25).max() < 0.01
    mf = MeanFieldPolicy("mnist", 5)
    assert mf.probabilities() == pytest.approx(np.full(25, 1 / 25))


def test_reinforce_step_moves_probability_toward_rewarded_tf():
    """One policy-gradient step with the loop's loss form raises the probability of a TF with lower cost."""
    for policy in (MeanFieldPolicy(TINY, 3), LSTMPolicy(TINY, 3)):
        opt = torch.optim.SGD(policy.parameters(), lr=0.5)
        before = policy.probabilities(n_samples=20000)[1]
        for _ in range(20):
            ids = policy.sample(256, generator=torch.Generator().manual_seed(0))
            cost = (ids != 1).float()  # TF 1 (hflip) costs nothing, the others cost 1 per step
            adv = cost - cost.mean(0, keepdim=True)
            loss = (policy.step_log_probs(ids) * adv).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        after = policy.probabilities(n_samples=20000)[1]
        assert after > before + 0.2, (type(policy).__name__, before, after)


def test_block_sampler_hands_out_the_policy_stream():
    policy = MeanFieldPolicy("cifar10", 4)
    _randomise(policy)
    s = BlockSampler(policy, seed=3, block_size=16)
    got = s.take(40)
    assert got.shape == (40, 4)
    s.reseed(3)
    assert np.array_equal(s.take(40), got)


@pytest.mark.parametrize("cls", KINDS)
def test_next_probabilities_are_the_conditionals_of_log_prob(cls):
    """p(tau_t | prefix) times the prefix's probability gives the probability of the longer prefix, for every
    prefix; the base class's generic answer (from step_log_probs) agrees with each model's own."""
    policy = cls(TINY, seq_len=3)
    _randomise(policy, 4)
    all_seqs = torch.tensor(list(itertools.product(range(3), repeat=3)))
    joint = policy.log_prob(all_seqs).exp().detach().double().view(3, 3, 3).numpy()
    for prefix in [(), (0,), (2,), (1, 0), (2, 2)]:
        got = policy.next_probabilities(prefix)
        assert got.shape == (3,) and got.sum() == pytest.approx(1.0)
        np.testing.assert_allclose(got, Policy.next_probabilities(policy, prefix), atol=1e-6)
        marginal = joint[prefix].reshape(3, -1).sum(1) if prefix else joint.reshape(3, -1).sum(1)
        np.testing.assert_allclose(got, marginal / marginal.sum(), atol=1e-5)
    with pytest.raises(ValueError, match="0 to 2 TFs"):
        policy.next_probabilities((0, 1, 2))


@pytest.mark.parametrize("cls", [MeanFieldPolicy, LSTMPolicy, GRUPolicy])
def test_prefix_sampler_draws_the_policy_distribution(cls):
    """Sequences drawn from uniforms by inverse CDF follow exp(log_prob): a chi-square over all K^L sequences."""
    policy = cls(TINY, seq_len=2)
    _randomise(policy, 6)
    sampler = PrefixSampler(policy)
    rng = np.random.default_rng(0)
    n = 30000
    ids = np.stack([sampler.draw(rng.random(2)) for _ in range(n)])
    counts = np.bincount(ids[:, 0] * 3 + ids[:, 1], minlength=9)
    expected = n * policy.log_prob(torch.tensor(list(itertools.product(range(3), repeat=2)))).exp().detach().numpy()
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 30.0, chi2  # 8 degrees of freedom: p < 1e-4 for a correct sampler
    assert sampler.draw([0.0, 0.0]).tolist() != sampler.draw([0.999, 0.999]).tolist()
    with pytest.raises(ValueError, match="2 uniforms"):
        sampler.draw([0.5])


def test_prefix_sampler_follows_weights_changed_in_place():
    policy = MeanFieldPolicy(TINY, seq_len=2)
    sampler = PrefixSampler(policy)
    with torch.no_grad():
        policy.logits.copy_(torch.tensor([20.0, 0.0, 0.0]))
    assert sampler.draw([0.5, 0.5]).tolist() == [0, 0]
    policy.load_state_dict({"logits": torch.tensor([0.0, 0.0, 20.0])})
    draws = [sampler.draw([0.5, 0.5]).tolist() for _ in range(PrefixSampler.VERSION_EVERY)]
    assert draws[-1] == [2, 2]


def test_make_policy_names_and_errors():
    assert isinstance(make_policy("meanfield", "mnist"), MeanFieldPolicy)
    assert isinstance(make_policy("mean-field", "mnist"), MeanFieldPolicy)
    assert isinstance(make_policy("gru", "mnist", hidden=8), GRUPolicy)
    with pytest.raises(ValueError, match="unknown policy model"):
        make_policy("transformer", "mnist")
    with pytest.raises(ValueError, match="seq_len"):
        MeanFieldPolicy("mnist", 0)
    with pytest.raises(ValueError, match="shape"):
        MeanFieldPolicy("mnist", 3).log_prob(torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(IndexError, match="ids must lie"):
        MeanFieldPolicy("mnist", 3).log_prob(torch.full((2, 3), 25))


@pytest.mark.parametrize("tf_id", ["blur(1e9)", "zoom(0)", "posterize(100)"])
@pytest.mark.parametrize("cls", KINDS)
def test_a_policy_over_an_out_of_range_magnitude_is_refused_when_built(cls, tf_id):
    # Accepted, it would raise inside every call of the transform (OpenCV's error for blur).
    with pytest.raises(ValueError, match=r"takes magnitudes in \[.*\], got " + re.escape(repr(tf_id))):
        cls(["hflip", tf_id], 2)


def test_repr_names_kind_tfset_length_and_top_tfs():
    r = repr(LSTMPolicy("cifar10", 10))
    assert "LSTMPolicy" in r and "cifar10" in r and "K=33" in r and "L=10" in r and "top=[" in r


@pytest.mark.parametrize("model", ["uniform", "mean_field", "lstm", "gru"])
def test_model_name_is_the_model_fit_policy_takes(model: str) -> None:
    """``model_name`` is the word ``make_policy``/``fit_policy`` take; ``kind`` (the TF kinds' word) stays an alias."""
    policy = make_policy(model, "mnist", 3)
    assert policy.model_name == model and policy.kind == model
    assert make_policy(policy.model_name, "mnist", 3).model_name == model


def test_a_subclass_that_names_its_model_kind_keeps_that_name() -> None:
    from learned_augment.policy import UniformPolicy

    class Legacy(UniformPolicy):
        kind = "legacy"

    assert Legacy("mnist", 2).model_name == "legacy"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"seq_len": 2.7}, TypeError),
        ({"seq_len": 0}, ValueError),
        ({"seq_len": True}, TypeError),
        ({"hidden": 0}, ValueError),
        ({"hidden": 1.5}, TypeError),
    ],
)
def test_policy_sizes_must_be_positive_integers(kwargs, error):
    from learned_augment.policy.models import LSTMPolicy

    with pytest.raises(error, match=next(iter(kwargs))):
        LSTMPolicy("mnist", **kwargs)


@pytest.mark.parametrize("cls", [LSTMPolicy, GRUPolicy])
def test_numpy_step_gives_the_torch_conditionals(cls):
    policy = cls("cifar10", seq_len=4)
    _randomise(policy, 7)
    step, state, prefix = policy.numpy_step(), None, []
    for k in [3, 17, 0, 32]:
        probs, state = step(state, prefix[-1] if prefix else None)
        np.testing.assert_allclose(probs, Policy.next_probabilities(policy, tuple(prefix)), atol=1e-6)
        prefix.append(k)
        if len(prefix) == policy.seq_len:
            break


def test_prefix_sampler_draws_from_sample_alone_and_from_inference_tensors():
    class SampleOnly(Policy):
        def sample(self, n, generator=None):
            return torch.full((int(n), self.seq_len), 1, dtype=torch.long)

    assert PrefixSampler(SampleOnly(TINY, seq_len=2)).draw([0.3, 0.6]).tolist() == [1, 1]
    with torch.inference_mode():
        policy = MeanFieldPolicy(TINY, seq_len=2)
    assert PrefixSampler(policy).draw([0.1, 0.9]).tolist() == [0, 2]
