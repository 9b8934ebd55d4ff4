"""Generators over TF-id sequences: uniform, mean-field, LSTM and GRU policies."""

from .base import Policy
from .models import GRUPolicy, LSTMPolicy, MeanFieldPolicy, RecurrentPolicy, UniformPolicy, make_policy
from .sampler import BlockSampler, PrefixSampler

__all__ = [
    "BlockSampler",
    "GRUPolicy",
    "LSTMPolicy",
    "MeanFieldPolicy",
    "Policy",
    "PrefixSampler",
    "RecurrentPolicy",
    "UniformPolicy",
    "make_policy",
]
