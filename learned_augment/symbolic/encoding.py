"""Batches of trees as tensors: node tables for the Tree-LSTM, the sides' token strings for the sequence LSTM.

A **node table** lists a tree's nodes in post-order (children before their parent, the root last), one row each:
``(symbol id, left child row, right child row, level)``. A missing child is ``-1``; ``level`` is the node's height
(leaves 0), which is what the Tree-LSTM batches on. Padding rows are ``(0, -1, -1, -1)``. A batch is
``(B, N, 4)`` int64 with ``N`` the largest tree, or a fixed ``N`` for :func:`fit_collate` (``fit_policy`` stacks
the batches of every prefix of the TF sequences, which must have one shape).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .rewrites import NODE_LIMIT
from .trees import SYMBOL_ID, Node, prefix_tokens

SYMBOL, LEFT, RIGHT, LEVEL = range(4)


def _rows(tree: Node, rows: list[tuple[int, int, int, int]]) -> tuple[int, int]:
    """Append ``tree``'s post-order rows; returns its row and level."""
    kids = [_rows(a, rows) for a in tree.args]
    level = 1 + max(lv for _, lv in kids) if kids else 0
    left = kids[0][0] if kids else -1
    right = kids[1][0] if len(kids) > 1 else -1
    rows.append((SYMBOL_ID[tree.op], left, right, level))
    return len(rows) - 1, level


def node_table(trees: Sequence[Node], n_nodes: int | None = None) -> torch.Tensor:
    """``(B, N, 4)`` int64 node tables of ``trees``; ``N`` is ``n_nodes`` or the largest tree's size.

    Raises ``ValueError`` if a tree has more than ``n_nodes`` nodes.
    """
    tables = []
    for t in trees:
        rows: list[tuple[int, int, int, int]] = []
        _rows(t, rows)
        tables.append(rows)
    n = max(len(r) for r in tables) if n_nodes is None else n_nodes
    out = np.tile(np.array([0, -1, -1, -1], dtype=np.int64), (len(trees), n, 1))
    for i, rows in enumerate(tables):
        if len(rows) > n:
            raise ValueError(f"a tree of {len(rows)} nodes does not fit a table of {n}")
        out[i, : len(rows)] = rows
    return torch.from_numpy(out)


def fit_collate(trees: list[Node]) -> torch.Tensor:
    """Node tables of a fixed :data:`~.rewrites.NODE_LIMIT` rows: ``fit_policy``'s ``collate``."""
    return node_table(trees, NODE_LIMIT)


def token_table(equations: Sequence[Node]) -> torch.Tensor:
    """``(B, 2, T)`` int64 symbol ids of each side's prefix token string, padded with 0 to the longest side."""
    seqs = [[[SYMBOL_ID[s] for s in prefix_tokens(side)] for side in eq.args] for eq in equations]
    out = torch.zeros(len(seqs), 2, max(len(s) for pair in seqs for s in pair), dtype=torch.long)
    for i, pair in enumerate(seqs):
        for j, s in enumerate(pair):
            out[i, j, : len(s)] = torch.tensor(s)
    return out
