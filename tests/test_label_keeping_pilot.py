"""examples/label_keeping_pilot.py: the label cost, and its share of the advantages added to the library's."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture()
def pilot(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    return importlib.import_module("label_keeping_pilot")


def _classifier() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(1 * 6 * 6, 10))


def test_label_cost_is_the_cross_entropy_against_the_clean_images_class(pilot: ModuleType) -> None:
    clf = _classifier()
    x0 = torch.rand(4, 1, 6, 6) * 2 - 1
    changed = torch.rand(4, 1, 6, 6) * 2 - 1
    stacked = torch.stack([x0, x0, changed])  # (L+1, n, C, H, W): a no-op step, then a change
    cost = pilot.label_cost(clf, stacked, "mnist")
    assert cost.shape == (4, 3)
    torch.testing.assert_close(cost[:, 0], cost[:, 1])
    mean, std = 0.1307, 0.3081
    logits = clf(((changed + 1) / 2 - mean) / std)
    target = clf(((x0 + 1) / 2 - mean) / std).argmax(1)
    expected = torch.nn.functional.cross_entropy(logits, target, reduction="none")
    torch.testing.assert_close(cost[:, 2], expected.detach())


def test_the_label_costs_advantages_are_added_to_the_librarys(
    pilot: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With the library's share zero, what is left is the discounted sum of label-cost changes minus its batch mean.
    n, steps = 5, 3
    monkeypatch.setattr(
        pilot.fit_loop._Run,
        "advantages",
        lambda self, stacked, real, n_local: (torch.zeros(n, steps - 1), torch.zeros(n, steps), torch.ones(n, 2)),
    )
    clf = _classifier()
    stacked = torch.rand(steps, n, 1, 6, 6) * 2 - 1
    run = SimpleNamespace(config={"gamma": 0.5, "batch_size": n, "n_seqs": 1}, group=SimpleNamespace(sum=lambda t: t))
    adv, cost, _ = pilot.with_label_cost(clf, "mnist", 2.0)(run, stacked, None, n)
    extra = 2.0 * pilot.label_cost(clf, stacked, "mnist")
    torch.testing.assert_close(cost, extra)
    returns = torch.stack(
        [(extra[:, 1] - extra[:, 0]) + 0.5 * (extra[:, 2] - extra[:, 1]), extra[:, 2] - extra[:, 1]], 1
    )
    torch.testing.assert_close(adv, returns - returns.mean(0, keepdim=True))


def test_in_a_real_fit_the_advantages_are_those_of_the_summed_cost(
    pilot: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Wrapped around the library's own advantages: what the policy step gets must be the discounted returns of the
    # summed cost (realism, diversity and label) minus their mean over the batch, as if the library had summed them.
    seen: list[tuple[torch.Tensor, torch.Tensor, float]] = []
    wrapped = pilot.with_label_cost(_classifier(), "mnist", 1.0)

    def spy(self, stacked, real, n_local):  # type: ignore[no-untyped-def]
        adv, cost, dist = wrapped(self, stacked, real, n_local)
        seen.append((adv, cost, self.config["gamma"]))
        return adv, cost, dist

    monkeypatch.setattr(pilot.fit_loop._Run, "advantages", spy)
    images = np.random.default_rng(0).integers(0, 256, (16, 6, 6, 1), dtype=np.uint8)
    policy = pilot.fit_loop.fit_policy(images, ["rotate(+5)", "hflip", "blur(1)"], "lstm", seq_len=2, steps=2)
    assert len(policy.history["reward"]) == 2 and len(seen) == 2
    for adv, cost, gamma in seen:
        deltas = cost[:, 1:] - cost[:, :-1]
        returns = torch.stack([deltas[:, 0] + gamma * deltas[:, 1], deltas[:, 1]], 1)
        torch.testing.assert_close(adv, returns - returns.mean(0, keepdim=True), rtol=1e-4, atol=1e-4)
