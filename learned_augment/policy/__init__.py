"""Generators over TF-id sequences: uniform, mean-field, LSTM and GRU policies."""

from .base import Policy
from .models import GRUPolicy, LSTMPolicy, MeanFieldPolicy, RecurrentPolicy, UniformPolicy, make_policy
from .sampler import BlockSampler

__all__ = [
    "BlockSampler",
    "GRUPolicy",
    "LSTMPolicy",
    "MeanFieldPolicy",
    "Policy",
    "RecurrentPolicy",
    "UniformPolicy",
    "make_policy",
]
