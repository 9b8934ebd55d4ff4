"""End models that verify equations: an N-ary (binary) Tree-LSTM and the sequence-LSTM baseline.

Both map a batch to one logit per equation (``> 0``: "it holds"), so either also serves as ``fit_policy``'s
discriminator.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from .encoding import LEFT, LEVEL, RIGHT, SYMBOL
from .trees import NUM_SYMBOLS


class TreeLSTM(nn.Module):
    """Binary N-ary Tree-LSTM (Tai et al., 2015), evaluated one tree level at a time for the whole batch.

    Children are told apart by position (``a - b`` is not ``b - a``): each gate has its own weights for the left
    and the right child, and each child its own forget gate. A unary node's missing right child, like a leaf's two,
    is a zero state.

    Parameters
    ----------
    dim:
        Symbol embedding size.
    hidden:
        State size ``H``.
    """

    def __init__(self, dim: int = 32, hidden: int = 64) -> None:
        super().__init__()
        self.hidden = hidden
        self.embed = nn.Embedding(NUM_SYMBOLS, dim, padding_idx=0)
        self.w = nn.Linear(dim, 5 * hidden)
        self.u = nn.Linear(2 * hidden, 5 * hidden, bias=False)

    def forward(self, table: torch.Tensor) -> torch.Tensor:
        """``(B, N, 4)`` node tables (:func:`~.encoding.node_table`) -> ``(B, H)`` root states."""
        return self.states(table)[roots(table)]

    def states(self, table: torch.Tensor) -> torch.Tensor:
        """``(B * N + 1, H)`` hidden states of every row of the flattened tables (the last row: zeros)."""
        b, n = table.shape[:2]
        table = table.long()
        sym = table[..., SYMBOL].reshape(-1)
        level = table[..., LEVEL].reshape(-1)
        offset = (torch.arange(b, device=table.device) * n).unsqueeze(1)
        # Child rows index a state buffer with one extra zero row, at b * n, for "no child".
        none = b * n
        left = torch.where(table[..., LEFT] >= 0, table[..., LEFT] + offset, none).reshape(-1)
        right = torch.where(table[..., RIGHT] >= 0, table[..., RIGHT] + offset, none).reshape(-1)
        h = torch.zeros(b * n + 1, self.hidden, device=table.device)
        c = torch.zeros_like(h)
        for lv in range(int(level.max()) + 1):
            idx = torch.nonzero(level == lv).squeeze(1)
            hl, hr, cl, cr = h[left[idx]], h[right[idx]], c[left[idx]], c[right[idx]]
            gates = self.w(self.embed(sym[idx])) + self.u(torch.cat([hl, hr], dim=1))
            i, fl, fr, o, u = gates.chunk(5, dim=1)
            c_new = torch.sigmoid(i) * torch.tanh(u) + torch.sigmoid(fl) * cl + torch.sigmoid(fr) * cr
            h_new = torch.sigmoid(o) * torch.tanh(c_new)
            h = h.index_copy(0, idx, h_new)
            c = c.index_copy(0, idx, c_new)
        return h


def roots(table: torch.Tensor) -> torch.Tensor:
    """``(B,)`` rows of the roots in the flattened ``(B, N, 4)`` tables: post-order puts each last."""
    b, n = table.shape[:2]
    return (table[..., SYMBOL] > 0).sum(1) - 1 + torch.arange(b, device=table.device) * n


def children(table: torch.Tensor, rows: torch.Tensor, side: int) -> torch.Tensor:
    """Flattened rows of the ``side`` (LEFT or RIGHT) children of the flattened ``rows``."""
    n = table.shape[1]
    return table.reshape(-1, 4)[rows, side].long() + (rows // n) * n


class TreeVerifier(nn.Module):
    """A :class:`TreeLSTM` over the whole equation and a comparison head: ``(B, N, 4)`` -> ``(B, 1)`` logits.

    The head sees the root (``=``) state and, as in sentence-pair models, the product and absolute difference of
    the two sides' states: whether the sides agree is the question, and the ``=`` node's gates alone are a less
    direct way to ask it. The tables must hold equations (an ``=`` root with two sides).
    """

    def __init__(self, dim: int = 32, hidden: int = 64) -> None:
        super().__init__()
        self.tree = TreeLSTM(dim, hidden)
        self.head = nn.Sequential(nn.Linear(3 * hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, table: torch.Tensor) -> torch.Tensor:
        table = table.long()
        h = self.tree.states(table)
        root = roots(table)
        lhs, rhs = h[children(table, root, LEFT)], h[children(table, root, RIGHT)]
        return self.head(torch.cat([h[root], lhs * rhs, (lhs - rhs).abs()], dim=1))


class SequenceVerifier(nn.Module):
    """The baseline: one LSTM reads each side's prefix token string; the same comparison head as :class:`TreeVerifier`.

    ``(B, 2, T)`` int64 token ids of the two sides, padded with 0 (:func:`~.encoding.token_table`) -> ``(B, 1)``
    logits. Only the encoder differs from the Tree-LSTM's, so the rows compare sequence and tree reading.
    """

    def __init__(self, dim: int = 32, hidden: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(NUM_SYMBOLS, dim, padding_idx=0)
        self.lstm = nn.LSTM(dim, hidden, batch_first=True)
        self.head = nn.Sequential(nn.Linear(3 * hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        b = ids.shape[0]
        flat = ids.long().flatten(0, 1)
        lengths = (flat > 0).sum(1).clamp_min(1).cpu()
        packed = pack_padded_sequence(self.embed(flat), lengths, batch_first=True, enforce_sorted=False)
        _, (last, _) = self.lstm(packed)
        lhs, rhs = last[0].view(b, 2, -1).unbind(1)
        return self.head(torch.cat([lhs + rhs, lhs * rhs, (lhs - rhs).abs()], dim=1))
