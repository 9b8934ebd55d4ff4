"""Policy files: a :class:`~learned_augment.policy.Policy` as one safetensors artifact (weights plus JSON metadata:
model, TF ids, sequence length, hyper-parameters, provenance, history), and back, checking every name and shape
before anything is built. The container itself (atomic writes, digests, refusal of hostile headers) is
:mod:`learned_augment.io`.
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path
from typing import Any

import torch

from ..errors import UnknownNameError
from ..io import ArtifactError, load_artifact, save_artifact
from ..ops.tfset import TFSet
from .models import make_policy


def save_policy(policy: Any, path: str | os.PathLike[str]) -> Path:
    """Save a :class:`~learned_augment.policy.Policy` as one artifact file."""
    meta = {
        "model": policy.model_name,
        "tfs": policy.tfset.ids,
        "tfset_name": policy.tfset.name,
        "seq_len": policy.seq_len,
        "hparams": policy.hparams(),
        "provenance": policy.provenance,
        "history": policy.history,
    }
    return save_artifact(path, dict(policy.state_dict()), "policy", meta)


MAX_FILE_TFS = 10_000
"""Most TFs a policy file may name (the named sets have 25 to 60); more is refused before any id is parsed."""

_CHEAP_PARAMS = 2**22
"""Policies whose declared size is at most this many parameters (16 MB) are built directly when loaded."""


def _int_or_zero(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return 0  # not a size: make_policy refuses it with its own message


def _declared_params(k: int, hidden: int) -> int:
    """An upper bound on the parameters of a policy over ``k`` TFs with state size ``hidden``: the embedding, an
    LSTM cell (a GRU cell is smaller), the head; ``k`` for the state-free models."""
    h = max(hidden, 0)
    return (k + 1) * h + 4 * h * (2 * h + 2) + (h + 1) * k


def policy_from_state(meta: dict[str, Any], tensors: dict[str, torch.Tensor], source: str) -> Any:
    """Rebuild a policy from its metadata and weights, checking every name and shape."""
    try:
        ids = meta["tfs"]
        model = meta["model"]
        seq_len = meta["seq_len"]
        hparams = meta.get("hparams") or {}
    except (KeyError, TypeError) as exc:
        raise ArtifactError(f"{source}: policy metadata is incomplete ({exc})") from None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ArtifactError(f"{source}: 'tfs' must be a list of TF ids")
    if len(ids) > MAX_FILE_TFS:
        raise ArtifactError(f"{source}: {len(ids)} TFs, more than the {MAX_FILE_TFS} a policy file may name")
    if not isinstance(model, str):
        raise ArtifactError(f"{source}: 'model' must be a policy name, got {model!r}")
    if type(seq_len) is not int or not 1 <= seq_len <= 1000:
        raise ArtifactError(f"{source}: implausible sequence length {seq_len!r}")
    if not isinstance(hparams, dict):
        raise ArtifactError(f"{source}: 'hparams' must be a JSON object, got {hparams!r}")
    logit_range = hparams.get("logit_range")
    if logit_range is not None and not (
        isinstance(logit_range, (int, float)) and not isinstance(logit_range, bool) and 0 < logit_range < math.inf
    ):
        # NaN would make every sampled sequence the last TF repeated, silently.
        raise ArtifactError(f"{source}: 'logit_range' must be a finite positive number, got {logit_range!r}")
    name = meta.get("tfset_name")
    if name is not None and not isinstance(name, str):
        raise ArtifactError(f"{source}: 'tfset_name' must be a string, got {name!r}")
    try:
        tfset = TFSet(ids, name=name)
    except UnknownNameError as exc:
        raise ArtifactError(
            f"{source} uses unknown TF {exc.name!r}: register it with @learned_augment.register_tf before loading"
        ) from None
    except (KeyError, ValueError) as exc:
        raise ArtifactError(f"{source}: bad TF list ({exc})") from None
    # A hostile ``hidden`` (10**6 asks for a 16 TB LSTM) or TF count must be refused, not allocated: beyond a size
    # that is cheap to build, the policy is first built on the meta device (no memory) and its shapes compared with
    # the file's, which are bounded by the file size. Not always: the first meta build costs about a second.
    big = _declared_params(len(tfset), _int_or_zero(hparams.get("hidden"))) > _CHEAP_PARAMS
    try:
        with torch.device("meta") if big else contextlib.nullcontext():
            skeleton = make_policy(model, tfset, seq_len, **hparams)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise ArtifactError(f"{source}: cannot build policy ({exc})") from None
    expected = skeleton.state_dict()
    if set(expected) != set(tensors):
        raise ArtifactError(
            f"{source}: weights do not match a {model} policy "
            f"(missing {sorted(set(expected) - set(tensors))}, unexpected {sorted(set(tensors) - set(expected))})"
        )
    for k, v in expected.items():
        if tuple(v.shape) != tuple(tensors[k].shape) or v.dtype != tensors[k].dtype:
            raise ArtifactError(
                f"{source}: tensor {k!r} has shape {tuple(tensors[k].shape)} ({tensors[k].dtype}), "
                f"expected {tuple(v.shape)} ({v.dtype})"
            )
        if v.is_floating_point() and not torch.isfinite(tensors[k]).all():
            raise ArtifactError(f"{source}: tensor {k!r} holds NaN or infinite values")
    provenance = meta.get("provenance") or {}
    history = meta.get("history") or {}
    if not isinstance(provenance, dict):
        raise ArtifactError(f"{source}: 'provenance' must be a JSON object")
    if not isinstance(history, dict) or not all(isinstance(v, list) for v in history.values()):
        raise ArtifactError(f"{source}: 'history' must map names to lists of values")
    policy = make_policy(model, tfset, seq_len, **hparams) if big else skeleton
    policy.load_state_dict(tensors, strict=True)
    policy.provenance = dict(provenance)
    policy.history = {str(k): list(v) for k, v in history.items()}
    return policy.eval()


def load_policy(path: str | os.PathLike[str]) -> Any:
    """Load a policy saved with ``policy.save(path)`` (or a shipped one by file path)."""
    tensors, meta = load_artifact(path, kind="policy")
    return policy_from_state(meta, tensors, str(path))
