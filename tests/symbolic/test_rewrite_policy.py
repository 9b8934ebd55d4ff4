"""A rewrite policy fitted by fit_policy against a Tree-LSTM, used through the transform API images use."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import learned_augment as la
from learned_augment.symbolic import (
    TF_IDS,
    Node,
    TreeVerifier,
    fit_collate,
    generate,
    node_table,
    rewrite_tfset,
    symbolic_examples,
)

POINTS = np.random.default_rng(11).uniform(-4.0, 4.0, 64)


@pytest.fixture(scope="module")
def data() -> list[generate.Example]:
    return symbolic_examples(np.random.default_rng(2), 48, range(2, 6))


@pytest.fixture(scope="module")
def policy(data) -> la.Policy:
    torch.manual_seed(0)
    return la.fit_policy(
        [e.tree for e in data],
        rewrite_tfset(),
        "mean_field",
        seq_len=3,
        discriminator=TreeVerifier(dim=8, hidden=16),
        collate=fit_collate,
        steps=6,
        batch_size=8,
        n_seqs=2,
        diversity=0.0,  # rewrites are often exact no-ops: see examples/reproduce_symbolic.py
        entropy=1.0,
        g_lr=0.5,
        d_lr=3e-3,
        seed=0,
        progress=False,
        eval_every=0,
    )


def test_fit_moves_the_policy_and_records_its_history(policy: la.Policy) -> None:
    assert policy.tfset.ids == TF_IDS
    assert len(policy.history["d_loss"]) == 6
    probs = policy.probabilities()
    assert probs.sum() == pytest.approx(1.0, abs=1e-6)
    # Six small steps: the policy has moved off uniform (the generator step ran), not far.
    assert np.abs(probs - 1.0 / len(TF_IDS)).max() > 1e-6


def test_learned_policy_transform_rewrites_equations_and_keeps_them_true(policy: la.Policy, data) -> None:
    transform = la.LearnedPolicyTransform(policy, p=1.0, seed=0)
    outs = []
    for e in data:
        new = transform(e.tree)
        assert isinstance(new, Node) and new.op == "="
        assert generate.is_identity(new, POINTS, rtol=1e-5) in (bool(e.label), None)
        tfs = transform.last_params["tf_ids_str"]
        assert len(tfs) == 3 and set(tfs) <= set(TF_IDS)
        assert transform.replay(e.tree, transform.last_params) == new
        outs.append(new)
    # Most rewrites match only some equations (no tan, no exp): a quarter changed is plenty to show they ran.
    assert sum(o != e.tree for o, e in zip(outs, data)) > len(data) // 4
    again = la.LearnedPolicyTransform(policy, p=1.0, seed=0)
    assert [again(e.tree) for e in data] == outs


def test_policy_augmented_dataset_feeds_a_tree_batch_loader(policy: la.Policy, data) -> None:
    pairs = [(e.tree, e.label) for e in data]
    dataset = la.PolicyAugmentedDataset(pairs, la.LearnedPolicyTransform(policy, p=1.0, seed=0), p_augment=1.0)

    def collate(batch: list[tuple[Node, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        return node_table([t for t, _ in batch]), torch.tensor([y for _, y in batch])

    tables, labels = zip(*DataLoader(dataset, batch_size=16, collate_fn=collate))
    assert torch.cat(labels).tolist() == [y for _, y in pairs]
    assert all(t.ndim == 3 and t.shape[2] == 4 for t in tables)
    assert [dataset[i][0] for i in range(len(pairs))] != [t for t, _ in pairs]


def test_the_policy_saves_and_loads_by_tf_names(policy: la.Policy, tmp_path: Path, data) -> None:
    path = policy.save(str(tmp_path / "rewrites.safetensors"))
    loaded = la.load_policy(path)
    assert loaded.tfset.ids == TF_IDS
    a = la.LearnedPolicyTransform(policy, p=1.0, seed=4)
    b = la.LearnedPolicyTransform(loaded, p=1.0, seed=4)
    assert [a(e.tree) for e in data[:10]] == [b(e.tree) for e in data[:10]]
