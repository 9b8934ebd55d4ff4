"""TANDA's generators: uniform ("heuristic"), mean-field and recurrent (LSTM/GRU) policies."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..arguments import check_int
from ..ops.tfset import TFSet
from .base import Policy


def _categorical(p: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One draw per row of unnormalised weights ``p`` (n, K) by inverse CDF (faster than ``torch.multinomial``)."""
    cdf = p.cumsum(dim=1)
    u = torch.rand(p.shape[0], 1, generator=generator) * cdf[:, -1:]
    return torch.searchsorted(cdf, u).squeeze(1).clamp_(max=p.shape[1] - 1)


class UniformPolicy(Policy):
    """Every TF equally likely at every step: TANDA's "heuristic" baseline (random sequences)."""

    model_name = "uniform"

    def step_log_probs_and_entropy(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_k = float(torch.log(torch.tensor(float(self.num_tfs))))
        return torch.full(ids.shape, -log_k), torch.full(ids.shape, log_k)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randint(0, self.num_tfs, (int(n), self.seq_len), generator=generator)

    def next_probabilities(self, prefix: Sequence[int]) -> np.ndarray:
        if not 0 <= len(prefix) < self.seq_len:
            return super().next_probabilities(prefix)  # raises the length error
        return np.full(self.num_tfs, 1.0 / self.num_tfs)


class MeanFieldPolicy(Policy):
    """One logit per TF; each step is drawn independently. Learns how often each TF may be applied.

    Parameters
    ----------
    tfs, seq_len:
        See :class:`Policy`.
    """

    model_name = "mean_field"

    def __init__(self, tfs: TFSet | str | list[str], seq_len: int = 10) -> None:
        super().__init__(tfs, seq_len)
        self.logits = nn.Parameter(torch.zeros(self.num_tfs))

    def step_log_probs_and_entropy(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logp = F.log_softmax(self.logits, dim=0)
        entropy = -(logp.exp() * logp).sum()
        return logp[ids], entropy.expand(ids.shape)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        p = F.softmax(self.logits.detach().float().cpu(), dim=0)
        flat = torch.multinomial(p, int(n) * self.seq_len, replacement=True, generator=generator)
        return flat.view(int(n), self.seq_len)

    @torch.no_grad()
    def probabilities(self, n_samples: int = 0, seed: int = 0) -> Any:
        return F.softmax(self.logits.detach().double().cpu(), dim=0).numpy()

    def next_probabilities(self, prefix: Sequence[int]) -> np.ndarray:
        if not 0 <= len(prefix) < self.seq_len:
            return super().next_probabilities(prefix)  # raises the length error
        return np.asarray(self.probabilities())  # every step is drawn alike, whatever came before


class RecurrentPolicy(Policy):
    """State-based policy: the input at step t is the one-hot of the TF chosen at t-1.

    Learns which *pairs* are lossy (blur then zoom, brighten then saturate). Logits are bounded as in the reference
    code: ``R * ((tanh(W h) + 1) / 2 - 0.5)``, so no TF is ever driven to probability zero.

    Parameters
    ----------
    tfs, seq_len:
        See :class:`Policy`.
    hidden:
        Size of the recurrent state.
    cell:
        ``"lstm"`` or ``"gru"``.
    logit_range:
        R, the bound on logits (4 for LSTM, 6 for GRU in the reference settings).
    """

    def __init__(
        self,
        tfs: TFSet | str | list[str],
        seq_len: int = 10,
        hidden: int = 32,
        cell: str = "lstm",
        logit_range: float | None = None,
    ) -> None:
        super().__init__(tfs, seq_len)
        if cell not in ("lstm", "gru"):
            raise ValueError(f"cell must be 'lstm' or 'gru', got {cell!r}")
        self.cell_type = cell
        self.hidden = check_int(hidden, "hidden", low=1)
        self.logit_range = float(logit_range if logit_range is not None else (4.0 if cell == "lstm" else 6.0))
        k = self.num_tfs
        # Input index k is the start token (no previous TF).
        self.embed = nn.Embedding(k + 1, self.hidden)
        self.cell = nn.LSTMCell(self.hidden, self.hidden) if cell == "lstm" else nn.GRUCell(self.hidden, self.hidden)
        self.head = nn.Linear(self.hidden, k)

    @property
    def model_name(self) -> str:  # type: ignore[override]
        return self.cell_type

    def hparams(self) -> dict[str, Any]:
        return {"hidden": self.hidden, "cell": self.cell_type, "logit_range": self.logit_range}

    def _logits(self, h: torch.Tensor) -> torch.Tensor:
        return self.logit_range * (torch.tanh(self.head(h)) / 2.0)

    def _step(self, prev: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        x = self.embed(prev)
        if self.cell_type == "lstm":
            h, c = self.cell(x, state)
            return h, (h, c)
        h = self.cell(x, state)
        return h, h

    def _init_state(self, n: int, device: torch.device) -> Any:
        # The weights' dtype, so that a policy moved with .double() or .half() still samples.
        z = torch.zeros(n, self.hidden, device=device, dtype=self.head.weight.dtype)
        return (z, z.clone()) if self.cell_type == "lstm" else z

    def _teacher_forced_states(self, ids: torch.Tensor) -> torch.Tensor:
        """Hidden states ``(n, L, hidden)`` after feeding the start token and ``ids[:, :-1]``.

        One fused ``torch.lstm`` / ``torch.gru`` call over the whole sequence, with the cell's own weights (the
        cells of ``nn.LSTM``/``nn.GRU`` and ``nn.LSTMCell``/``nn.GRUCell`` share gate layout and equations): a
        Python loop of cells launched ~10 small ops per step, forward and backward, and was a sixth of a fit step on
        a busy CPU. Saved policies keep their parameter names (``cell.weight_ih``, ...), so old files still load.
        """
        n = ids.shape[0]
        start = torch.full((n, 1), self.num_tfs, dtype=torch.long, device=ids.device)
        x = self.embed(torch.cat([start, ids[:, :-1]], dim=1))
        cell = self.cell
        params = [cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh]
        h0 = x.new_zeros(1, n, self.hidden)
        # train=True whatever the mode: there is no dropout to switch, and cuDNN refuses backward through an RNN
        # run in eval mode (log_prob(...).backward() on an eval-mode policy on a GPU).
        if self.cell_type == "lstm":
            return torch.lstm(x, (h0, h0), params, True, 1, 0.0, True, False, True)[0]
        return torch.gru(x, h0, params, True, 1, 0.0, True, False, True)[0]

    def step_log_probs_and_entropy(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ids = ids.to(self.head.weight.device)
        logp = F.log_softmax(self._logits(self._teacher_forced_states(ids)), dim=2)
        return logp.gather(2, ids.unsqueeze(2)).squeeze(2), -(logp.exp() * logp).sum(dim=2)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        n = int(n)
        device = self.head.weight.device
        prev = torch.full((n,), self.num_tfs, dtype=torch.long, device=device)
        state = self._init_state(n, device)
        out = torch.empty(n, self.seq_len, dtype=torch.long)
        for t in range(self.seq_len):
            h, state = self._step(prev, state)
            # Logits are bounded by R, so exp() cannot overflow and needs no normalisation before the CDF.
            choice = _categorical(torch.exp(self._logits(h).float()).cpu(), generator)
            out[:, t] = choice
            prev = choice.to(device)
        return out

    @torch.no_grad()
    def numpy_step(self) -> Callable[[Any, int | None], tuple[np.ndarray, Any]]:
        """A step of one sequence over a float64 copy of the current weights, in numpy: ``step(state, last)`` gives
        ``pi(. | prefix)`` over the TFs, ``(K,)`` float64 summing to 1, and the state to pass with the TF drawn
        next; ``state`` and ``last`` are the previous step's, ``None`` for the first step.

        About ten microseconds a step, where a call of the torch cell costs a hundred or more: what a transform
        drawing one sequence per call needs (:class:`~learned_augment.policy.sampler.PrefixSampler`). The copy does
        not follow later changes to the weights: take a new one then.
        """

        def host(t: torch.Tensor) -> np.ndarray:
            return t.detach().double().cpu().numpy()

        hid = self.hidden
        # The input's part of the gates for every previous TF (and the start token), looked up rather than computed.
        x_part = host(self.embed.weight) @ host(self.cell.weight_ih).T + host(self.cell.bias_ih)
        w_hh, b_hh = host(self.cell.weight_hh), host(self.cell.bias_hh)
        head_w, head_b = host(self.head.weight), host(self.head.bias)
        zeros = np.zeros(hid)
        start, lstm, half_range = self.num_tfs, self.cell_type == "lstm", self.logit_range / 2.0

        def step(state: Any, last: int | None) -> tuple[np.ndarray, Any]:
            x = x_part[start if last is None else int(last)]
            if lstm:  # gates i, f, g, o
                h, c = (zeros, zeros) if state is None else state
                gates = x + w_hh @ h + b_hh
                s = 0.5 * (np.tanh(0.5 * gates) + 1.0)
                c = s[hid : 2 * hid] * c + s[:hid] * np.tanh(gates[2 * hid : 3 * hid])
                h = s[3 * hid :] * np.tanh(c)
                new_state: Any = (h, c)
            else:  # gates r, z, n
                h = zeros if state is None else state
                hh = w_hh @ h + b_hh
                rz = 0.5 * (np.tanh(0.5 * (x[: 2 * hid] + hh[: 2 * hid])) + 1.0)
                n = np.tanh(x[2 * hid :] + rz[:hid] * hh[2 * hid :])
                h = n + rz[hid:] * (h - n)
                new_state = h
            p = np.exp(half_range * np.tanh(head_w @ h + head_b))
            return p / p.sum(), new_state

        return step


class LSTMPolicy(RecurrentPolicy):
    """LSTM policy (TANDA's state-based generator). See :class:`RecurrentPolicy`."""

    def __init__(
        self, tfs: TFSet | str | list[str], seq_len: int = 10, hidden: int = 32, logit_range: float = 4.0
    ) -> None:
        super().__init__(tfs, seq_len, hidden=hidden, cell="lstm", logit_range=logit_range)


class GRUPolicy(RecurrentPolicy):
    """GRU policy (used for TANDA's CIFAR-10 run, R = 6). See :class:`RecurrentPolicy`."""

    def __init__(
        self, tfs: TFSet | str | list[str], seq_len: int = 10, hidden: int = 32, logit_range: float = 6.0
    ) -> None:
        super().__init__(tfs, seq_len, hidden=hidden, cell="gru", logit_range=logit_range)


POLICY_KINDS: dict[str, type[Policy]] = {
    "uniform": UniformPolicy,
    "mean_field": MeanFieldPolicy,
    "lstm": LSTMPolicy,
    "gru": GRUPolicy,
}


def policy_kind(model: str) -> str:
    """The canonical name of a policy model (``"mf"`` and ``"meanfield"`` are ``"mean_field"``); ValueError if
    unknown."""
    key = model.replace("-", "_").lower() if isinstance(model, str) else None
    key = "mean_field" if key in ("meanfield", "mf") else key
    if key not in POLICY_KINDS:
        raise ValueError(f"unknown policy model {model!r}; choose from {sorted(POLICY_KINDS)}")
    return key


def make_policy(model: str, tfs: TFSet | str | list[str], seq_len: int = 10, **hparams: Any) -> Policy:
    """Build a policy by model name: ``"uniform"``, ``"mean_field"`` (or ``"meanfield"``), ``"lstm"``, ``"gru"``."""
    key = policy_kind(model)
    if key in ("lstm", "gru"):
        hp = {k: v for k, v in hparams.items() if k in ("hidden", "logit_range")}
        return POLICY_KINDS[key](tfs, seq_len, **hp)
    return POLICY_KINDS[key](tfs, seq_len)
