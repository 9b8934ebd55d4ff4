"""The policy interface: a generator over sequences of TF ids that never looks at the data."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..arguments import check_int
from ..ops.tfset import TFSet, get_tfset


class Policy(nn.Module):
    """A distribution over length-``seq_len`` sequences of indices into a TF set.

    Subclasses implement :meth:`step_log_probs` and :meth:`sample`. Everything else (frequencies, saving,
    ``repr``) is shared.

    Parameters
    ----------
    tfs:
        The TF vocabulary: a :class:`TFSet`, a named set (``"mnist"``, ``"cifar10"``, ``"default"``) or a list of ids.
    seq_len:
        Number of TFs applied per sample (L).
    """

    model_name = "policy"
    """The policy model (``"uniform"``, ``"mean_field"``, ``"lstm"``, ``"gru"``): ``fit_policy``'s ``model``."""

    def __init__(self, tfs: TFSet | str | list[str], seq_len: int = 10) -> None:
        super().__init__()
        seq_len = check_int(seq_len, "seq_len", low=1)
        self.tfset = get_tfset(tfs)
        self.seq_len = int(seq_len)
        self.history: dict[str, list[float]] = {}
        self.provenance: dict[str, Any] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A subclass written for older versions names its model ``kind = "..."``: that stays its model name.
        own = cls.__dict__.get("kind")
        if isinstance(own, str) and "model_name" not in cls.__dict__:
            cls.model_name = own

    @property
    def kind(self) -> str:
        """Older name of :attr:`model_name` (``kind`` is the TF kinds' word; kept so existing code still runs)."""
        return self.model_name

    @property
    def num_tfs(self) -> int:
        return len(self.tfset)

    def hparams(self) -> dict[str, Any]:
        """Constructor arguments (besides the TF set and L) needed to rebuild this policy."""
        return {}

    def step_log_probs(self, ids: torch.Tensor) -> torch.Tensor:
        """Log-probability of each chosen TF given the previous ones: ``(n, L)`` float."""
        return self.step_log_probs_and_entropy(ids)[0]

    def step_log_probs_and_entropy(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(log pi(tau_t | tau_<t), H(pi(. | tau_<t)))``, both ``(n, L)``: the entropy feeds the fit's bonus."""
        raise NotImplementedError

    def log_prob(self, ids: torch.Tensor) -> torch.Tensor:
        """Log-probability of whole sequences: ``(n,)`` float."""
        return self.step_log_probs(self._check_ids(ids)).sum(dim=1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` sequences: ``(n, L)`` int64 tensor of indices into :attr:`tfset`."""
        raise NotImplementedError

    def _check_ids(self, ids: torch.Tensor | np.ndarray) -> torch.Tensor:
        ids = torch.as_tensor(ids, dtype=torch.long)
        if ids.ndim != 2 or ids.shape[1] != self.seq_len:
            raise ValueError(f"ids must have shape (n, {self.seq_len}), got {tuple(ids.shape)}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.num_tfs):
            raise IndexError(f"ids must lie in [0, {self.num_tfs}), got range [{int(ids.min())}, {int(ids.max())}]")
        return ids

    @torch.no_grad()
    def next_probabilities(self, prefix: Sequence[int]) -> np.ndarray:
        """``pi(tau_t = k | tau_<t = prefix)`` for every TF ``k``: ``(K,)`` float64 summing to 1, ``t = len(prefix)``.

        From :meth:`step_log_probs` (one batched call over the ``K`` continuations), so any subclass that
        implements it gets this too; the library's policies answer without a network pass where they can.
        """
        t = len(prefix)
        if not 0 <= t < self.seq_len:
            raise ValueError(f"a prefix of a length-{self.seq_len} sequence has 0 to {self.seq_len - 1} TFs, got {t}")
        ids = torch.zeros(self.num_tfs, self.seq_len, dtype=torch.long)
        if t:
            ids[:, :t] = torch.as_tensor(list(prefix), dtype=torch.long)
        ids[:, t] = torch.arange(self.num_tfs)
        param = next(self.parameters(), None)
        if param is not None:
            ids = ids.to(param.device)
        p = self.step_log_probs(ids)[:, t].detach().double().cpu().exp()
        return (p / p.sum()).numpy()

    @torch.no_grad()
    def probabilities(self, n_samples: int = 20000, seed: int = 0) -> np.ndarray:
        """How often each TF is applied, averaged over positions: ``(K,)`` summing to 1."""
        g = torch.Generator().manual_seed(seed)
        ids = self.sample(n_samples, generator=g)
        counts = torch.bincount(ids.flatten(), minlength=self.num_tfs).double()
        return (counts / counts.sum()).numpy()

    def top_tfs(self, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` most frequent TF ids with their frequencies."""
        p = self.probabilities()
        order = np.argsort(-p, kind="stable")[:k]
        return [(self.tfset[int(i)].id, float(p[i])) for i in order]

    def entropy_ratio(self) -> float:
        """Entropy of the TF frequencies over its maximum log K (1 = uniform)."""
        p = self.probabilities()
        nz = p[p > 0]
        return float(-(nz * np.log(nz)).sum() / math.log(self.num_tfs)) if self.num_tfs > 1 else 1.0

    def save(self, path: str) -> str:
        """Save to one ``.safetensors`` file (weights + JSON metadata; no pickle)."""
        from .files import save_policy

        return str(save_policy(self, path))

    def as_transform(self, p: float = 1.0, seed: int | None = None, interpolation: Any = "bilinear") -> Any:
        """This policy as a :class:`~learned_augment.LearnedPolicyTransform` that augments a call with probability
        ``p``.

        Default 1.0, as :class:`~learned_augment.LearnedPolicyTransform`'s (measured best with the default short
        sequences; long L = 10 sequences measured best at ``p=0.5``).
        """
        from ..transforms import LearnedPolicyTransform

        return LearnedPolicyTransform(self, p=p, seed=seed, interpolation=interpolation)

    def extra_repr(self) -> str:
        top = ", ".join(f"{i} {p:.2f}" for i, p in self._repr_top())
        label = f"{self.tfset.name!r}, " if self.tfset.name else ""
        return f"tfs={label}K={self.num_tfs}, L={self.seq_len}, top=[{top}]"

    def _repr_top(self) -> list[tuple[str, float]]:
        """``top_tfs(3)``, cached by the parameters' contents: sampling takes ~0.5 s for an LSTM, and a transform's
        repr (logging, DataLoader workers) asks for it again and again while the weights stay put."""
        key = (
            repr(self.hparams()),
            tuple(self.tfset[i].id for i in range(self.num_tfs)),
            tuple(
                (n, t.dtype, tuple(t.shape), t.detach().cpu().numpy().tobytes()) for n, t in self.state_dict().items()
            ),
        )
        cached = self.__dict__.get("_repr_top_cache")
        if cached is None or cached[0] != key:
            cached = (key, self.top_tfs(3))
            self.__dict__["_repr_top_cache"] = cached
        return cached[1]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"
