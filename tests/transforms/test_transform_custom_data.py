"""A policy over custom TFs (here: over token lists) as a transform and in PolicyAugmentedDataset."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import learned_augment as la
from learned_augment.ops import TFSet, apply_sequence
from learned_augment.policy import MeanFieldPolicy, UniformPolicy

TOKENS = "the quick brown fox jumps over the lazy dog".split()


@pytest.fixture
def text_tfs(tf_name: Callable[[str], str]) -> TFSet:
    """Three token TFs: a random drop (magnitude, rng), a swap of neighbours (rng) and an in-place reversal."""
    drop, swap, rev = tf_name("drop"), tf_name("swap"), tf_name("reverse")

    @la.register_tf(drop)
    def _drop(tokens: list[str], magnitude: float, rng: np.random.Generator) -> list[str]:
        keep = rng.random(len(tokens)) >= magnitude
        return [t for t, k in zip(tokens, keep) if k] or tokens[:1]

    @la.register_tf(swap)
    def _swap(tokens: list[str], rng: np.random.Generator) -> list[str]:
        out = list(tokens)
        if len(out) > 1:
            i = int(rng.integers(len(out) - 1))
            out[i], out[i + 1] = out[i + 1], out[i]
        return out

    @la.register_tf(rev)
    def _reverse(tokens: list[str]) -> list[str]:
        tokens.reverse()  # in place, on purpose: the caller's list must not change
        return tokens

    return TFSet([f"{drop}(0.3)", swap, rev], name="text")


def test_transform_on_token_lists(text_tfs: TFSet) -> None:
    t = la.LearnedPolicyTransform(MeanFieldPolicy(text_tfs, seq_len=3), p=1.0, seed=0)
    tokens = list(TOKENS)
    outs = [t(tokens) for _ in range(12)]
    assert tokens == TOKENS, "the input list was changed in place"
    assert all(isinstance(o, list) and o and set(o) <= set(TOKENS) for o in outs)
    assert len({tuple(o) for o in outs}) > 3
    lp = t.last_params
    assert lp["applied"] is True and lp["tf_ids"].shape == (3,)
    assert lp["tf_ids_str"] == [text_tfs[int(i)].id for i in lp["tf_ids"]]
    assert t.replay(tokens, lp) == outs[-1]
    assert apply_sequence(list(tokens), lp["tf_ids"], text_tfs, rng=lp["tf_seed"]) == outs[-1]
    again = la.LearnedPolicyTransform(MeanFieldPolicy(text_tfs, seq_len=3), p=1.0, seed=0)
    assert [again(tokens) for _ in range(12)] == outs


def test_p_and_batch_params(text_tfs: TFSet) -> None:
    never = la.LearnedPolicyTransform(UniformPolicy(text_tfs, seq_len=2), p=0.0, seed=0)
    assert never(TOKENS) is TOKENS and never.last_params == {"applied": False}
    assert never.replay(TOKENS, {"applied": False}) is TOKENS
    t = la.LearnedPolicyTransform(UniformPolicy(text_tfs, seq_len=2), seed=1)
    with pytest.raises(ValueError, match="recorded on a batch"):
        t.replay(TOKENS, {"applied": True, "tf_ids": np.zeros((2, 2), np.int64), "tf_seed": 0})


def test_arrays_the_image_path_would_refuse(tf_name: Callable[[str], str]) -> None:
    """Custom TFs over 1-D float64 signals: the data reaches them as given, not as an image."""
    gain, shift = tf_name("gain"), tf_name("shift")
    la.register_tf(gain)(lambda x, magnitude: x * magnitude)
    la.register_tf(shift)(lambda x, rng: np.roll(x, int(rng.integers(1, 4))))
    t = la.LearnedPolicyTransform(UniformPolicy(TFSet([f"{gain}(0.5)", shift]), seq_len=3), p=1.0, seed=0)
    signal = np.linspace(0.0, 1.0, 50)
    out = t(signal)
    assert out.shape == (50,) and out.dtype == np.float64 and not np.array_equal(out, signal)
    assert np.array_equal(t.replay(signal, t.last_params), out)


def test_policy_augmented_dataset_over_tokens(text_tfs: TFSet) -> None:
    items = [(TOKENS[: 3 + i % 6], i % 2) for i in range(40)]
    t = la.LearnedPolicyTransform(MeanFieldPolicy(text_tfs, seq_len=2), p=1.0, seed=0)
    ds = la.PolicyAugmentedDataset(items, t, p_augment=0.5, seed=0, post_transform=len)
    got = [ds[i] for i in range(len(ds))]
    assert [label for _, label in got] == [label for _, label in items]
    assert all(isinstance(n, int) and 1 <= n <= len(tokens) for (n, _), (tokens, _) in zip(got, items))
    assert items[5][0] == TOKENS[:8], "the dataset's items were changed in place"
    loader = DataLoader(
        la.PolicyAugmentedDataset(items, t, p_augment=1.0, seed=0),
        batch_size=8,
        num_workers=0,
        collate_fn=lambda batch: batch,
    )
    batches = list(loader)
    assert sum(len(b) for b in batches) == 40
    assert all(isinstance(tokens, list) and set(tokens) <= set(TOKENS) for b in batches for tokens, _ in b)


def test_image_policies_still_want_an_image(tf_name: Callable[[str], str]) -> None:
    name = tf_name("upper")
    la.register_tf(name)(lambda x: x)
    mixed = la.LearnedPolicyTransform(UniformPolicy(TFSet([name, "hflip"]), seq_len=2), p=1.0, seed=0)
    with pytest.raises(TypeError, match="no image found.*all custom"):
        mixed(TOKENS)
    # An image through a mixed set: the custom TF gets the numpy image, as before.
    out = mixed(torch.zeros(3, 8, 8, dtype=torch.uint8))
    assert out.shape == (3, 8, 8)
