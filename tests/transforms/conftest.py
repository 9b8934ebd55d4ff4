"""Fixtures for the transform tests: small policies (random init) and policy files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transform_helpers import geometric_tfset

from learned_augment.policy import LSTMPolicy, MeanFieldPolicy


@pytest.fixture
def geo_policy() -> MeanFieldPolicy:
    """Mean-field policy (uniform at init) over geometric TFs, L = 3."""
    return MeanFieldPolicy(geometric_tfset(), seq_len=3)


@pytest.fixture
def cifar_policy() -> LSTMPolicy:
    """LSTM policy over TANDA's CIFAR-10 TFs (deterministic ones only), L = 4, seeded random init."""
    torch.manual_seed(0)
    return LSTMPolicy("cifar10", seq_len=4)


@pytest.fixture
def geo_policy_path(geo_policy: MeanFieldPolicy, tmp_path: Path) -> str:
    return geo_policy.save(str(tmp_path / "geo.safetensors"))
