"""Tree-LSTM batching by level equals one tree at a time; the verifiers learn; node tables are well formed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from learned_augment.symbolic import (
    SequenceVerifier,
    TreeLSTM,
    TreeVerifier,
    fit_collate,
    node_table,
    symbolic_examples,
    token_table,
)
from learned_augment.symbolic.encoding import LEFT, LEVEL, RIGHT, SYMBOL
from learned_augment.symbolic.rewrites import NODE_LIMIT
from learned_augment.symbolic.trees import SYMBOL_ID, call, equation, leaf, size


@pytest.fixture(scope="module")
def trees() -> list:
    return [e.tree for e in symbolic_examples(np.random.default_rng(0), 24, range(2, 8))]


def test_node_table_lists_children_before_parents(trees) -> None:
    table = node_table(trees)
    assert table.shape == (len(trees), max(size(t) for t in trees), 4) and table.dtype == torch.int64
    for t, rows in zip(trees, table):
        n = size(t)
        assert int((rows[:, SYMBOL] > 0).sum()) == n
        assert int(rows[n - 1, SYMBOL]) == SYMBOL_ID["="]
        for r in range(n):
            for child in (int(rows[r, LEFT]), int(rows[r, RIGHT])):
                if child >= 0:
                    assert child < r and rows[child, LEVEL] < rows[r, LEVEL]
        assert (rows[n:, LEVEL] == -1).all()


def test_a_hand_made_table() -> None:
    eq = equation(call("sin", leaf("x")), leaf(2))
    expected = [[SYMBOL_ID["x"], -1, -1, 0], [SYMBOL_ID["sin"], 0, -1, 1], [SYMBOL_ID["2"], -1, -1, 0]]
    expected.append([SYMBOL_ID["="], 1, 2, 2])
    assert node_table([eq]).tolist() == [expected]
    with pytest.raises(ValueError, match="does not fit"):
        node_table([eq], n_nodes=3)


def test_batched_by_level_equals_one_tree_at_a_time(trees) -> None:
    torch.manual_seed(0)
    model = TreeLSTM(dim=8, hidden=16)
    batched = model(node_table(trees))
    single = torch.cat([model(node_table([t])) for t in trees])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-6)
    # Padding to the fit's fixed table size changes nothing either.
    torch.testing.assert_close(model(fit_collate(trees)), batched, rtol=1e-5, atol=1e-6)
    assert fit_collate(trees).shape[1] == NODE_LIMIT


def test_batched_gradients_equal_summed_single_tree_gradients(trees) -> None:
    torch.manual_seed(0)
    model = TreeVerifier(dim=8, hidden=16)
    model(node_table(trees)).sum().backward()
    batched = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    for t in trees:
        model(node_table([t])).sum().backward()
    for a, b in zip(batched, (p.grad for p in model.parameters())):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_child_order_matters() -> None:
    torch.manual_seed(0)
    model = TreeLSTM(dim=8, hidden=16)
    x, one = leaf("x"), leaf(1)
    a, b = model(node_table([call("-", x, one), call("-", one, x)]))
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("kind", ["tree", "sequence"])
def test_verifiers_fit_a_small_training_set(kind: str) -> None:
    """A few hundred steps on 64 equations: training accuracy well above chance, so gradients reach every layer."""
    data = symbolic_examples(np.random.default_rng(1), 64, range(2, 5))
    x = node_table([e.tree for e in data]) if kind == "tree" else token_table([e.tree for e in data])
    y = torch.tensor([float(e.label) for e in data])
    torch.manual_seed(0)
    model = TreeVerifier(16, 32) if kind == "tree" else SequenceVerifier(16, 32)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        loss = F.binary_cross_entropy_with_logits(model(x).squeeze(1), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    acc = float(((model(x).squeeze(1) > 0).float() == y).float().mean())
    assert acc > 0.9
