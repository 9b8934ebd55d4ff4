"""Recurrent policies score sequences with one fused LSTM/GRU call: it must equal the step-by-step cell loop.

The loop below is the reference (it is also how ``sample`` walks the cells): same log-probabilities, entropies and
gradients within 1e-5, for any length, and the shipped policy files give the log-probabilities they gave before.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from learned_augment.policy import GRUPolicy, LSTMPolicy, make_policy
from learned_augment.policy.models import RecurrentPolicy
from learned_augment.pretrained import load_pretrained

PARAMETER_NAMES = [
    "embed.weight",
    "cell.weight_ih",
    "cell.weight_hh",
    "cell.bias_ih",
    "cell.bias_hh",
    "head.weight",
    "head.bias",
]


def _cell_loop(policy: RecurrentPolicy, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities and entropies ``(n, L)`` one cell step at a time."""
    n = ids.shape[0]
    prev = torch.full((n,), policy.num_tfs, dtype=torch.long)
    h = torch.zeros(n, policy.hidden)
    c = torch.zeros(n, policy.hidden)
    out, ent = [], []
    for t in range(ids.shape[1]):
        x = policy.embed(prev)
        if policy.cell_type == "lstm":
            h, c = policy.cell(x, (h, c))
        else:
            h = policy.cell(x, h)
        logp = F.log_softmax(policy.logit_range * torch.tanh(policy.head(h)) / 2.0, dim=1)
        out.append(logp.gather(1, ids[:, t : t + 1]).squeeze(1))
        ent.append(-(logp.exp() * logp).sum(dim=1))
        prev = ids[:, t]
    return torch.stack(out, dim=1), torch.stack(ent, dim=1)


def _randomised(cls: type[RecurrentPolicy], seq_len: int, seed: int, hidden: int = 16) -> RecurrentPolicy:
    policy = cls("cifar10", seq_len=seq_len, hidden=hidden)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in policy.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return policy


@pytest.mark.parametrize("cls", [LSTMPolicy, GRUPolicy])
@pytest.mark.parametrize("seq_len", [1, 2, 7, 10])
def test_fused_log_probs_and_entropy_equal_the_cell_loop(cls: type[RecurrentPolicy], seq_len: int) -> None:
    policy = _randomised(cls, seq_len, seed=seq_len)
    ids = torch.randint(0, policy.num_tfs, (50, seq_len), generator=torch.Generator().manual_seed(1))
    for training in (True, False):
        policy.train(training)
        with torch.no_grad():
            logp, ent = policy.step_log_probs_and_entropy(ids)
            ref_logp, ref_ent = _cell_loop(policy, ids)
        assert logp.shape == ent.shape == (50, seq_len)
        torch.testing.assert_close(logp, ref_logp, rtol=0, atol=1e-5)
        torch.testing.assert_close(ent, ref_ent, rtol=0, atol=1e-5)


@pytest.mark.parametrize("cls", [LSTMPolicy, GRUPolicy])
@pytest.mark.parametrize("seq_len", [1, 3, 10])
def test_fused_gradients_equal_the_cell_loop(cls: type[RecurrentPolicy], seq_len: int) -> None:
    policy = _randomised(cls, seq_len, seed=10 + seq_len)
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(0, policy.num_tfs, (40, seq_len), generator=g)
    adv = torch.randn(40, seq_len, generator=g)

    def grads(fn) -> dict[str, torch.Tensor]:
        policy.zero_grad(set_to_none=True)
        logp, ent = fn(ids)
        ((logp * adv).sum(dim=1).mean() - 0.1 * ent.sum(dim=1).mean()).backward()
        return {k: p.grad.clone() for k, p in policy.named_parameters() if p.grad is not None}

    fused = grads(policy.step_log_probs_and_entropy)
    loop = grads(lambda x: _cell_loop(policy, x))
    assert sorted(fused) == sorted(loop) == sorted(PARAMETER_NAMES)
    for k in loop:
        torch.testing.assert_close(fused[k], loop[k], rtol=0, atol=1e-5, msg=k)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_parameter_names_are_unchanged(kind: str) -> None:
    # Saved policies are safetensors weights by name: the names are the file format.
    assert list(make_policy(kind, "mnist", 10).state_dict()) == PARAMETER_NAMES


# Sums of log-probabilities of four seeded sequences under the shipped policies, as computed by the cell loop
# (``_cell_loop``) when they were refitted with 0.2's defaults (L = 2) and reshipped.
SHIPPED = {
    "mnist-lstm": [-14.73469, -14.751972, -6.807863, -11.898957],
    "cifar10-lstm": [-12.835736, -13.68565, -5.635495, -12.790321],
}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_policy_files_give_the_same_log_probs(name: str) -> None:
    policy = load_pretrained(name)
    assert isinstance(policy, RecurrentPolicy)
    ids = torch.randint(0, policy.num_tfs, (4, policy.seq_len), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logp = policy.step_log_probs(ids)
        ref = _cell_loop(policy, ids)[0]
    torch.testing.assert_close(logp.sum(dim=1), torch.tensor(SHIPPED[name]), rtol=0, atol=1e-4)
    torch.testing.assert_close(logp, ref, rtol=0, atol=1e-5)
