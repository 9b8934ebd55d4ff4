"""examples/text_augmentation.py: a policy over token-list TFs, fitted and used through the image transform API."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader

import learned_augment as la
from learned_augment.ops import base
from learned_augment.ops.base import Kind

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "text_augmentation.py"
SEEDS = (0, 1, 2)
# Enough for the critic to learn that shuffled sentences are fake (the share is 0.03-0.05 at seeds 0-4), and still a
# fit of about a second on one core.
STEPS = 100


@pytest.fixture(scope="module")
def example() -> Iterator[ModuleType]:
    """The example as a module; the TFs it registers leave the registry afterwards (registry-wide tests)."""
    before = set(base.registered_tfs())
    spec = importlib.util.spec_from_file_location("text_augmentation_example", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    for name in set(base.registered_tfs()) - before:
        base._REGISTRY.pop(name, None)


@pytest.fixture(scope="module")
def runs(example: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[dict[str, Any], Path]]:
    """``main`` at seeds 0-2 with a short fit: seed -> (returned result, its --out file)."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("text_example")
    results = {}
    for seed in SEEDS:
        path = out / f"seed{seed}" / "result.json"
        results[seed] = (example.main(["--steps", str(STEPS), "--seed", str(seed), "--out", str(path)]), path)
    return results


@pytest.fixture(scope="module")
def short_policy(example: ModuleType) -> la.Policy:
    return example.fit_text_policy([t for t, _ in example.make_corpus(64, 0)], steps=5, seed=0)


def _is_sentence(tokens: Any, vocab: list[str]) -> bool:
    return isinstance(tokens, list) and len(tokens) > 0 and all(isinstance(w, str) and w in vocab[1:] for w in tokens)


def test_policy_is_fitted_over_the_custom_tf_set(example: ModuleType, runs) -> None:
    for result, path in runs.values():
        assert result["tfs"] == example.TF_IDS
        assert all(e.tf.kind == Kind.CUSTOM for e in la.get_tfset(result["tfs"]))
        shares = [row["share"] for row in result["frequencies"]]
        assert sum(shares) == pytest.approx(1.0, abs=1e-3)
        assert max(shares) > 0.3  # the fit moved the policy away from uniform (0.2)
        assert json.loads(path.read_text()) == json.loads(json.dumps(result))


@pytest.mark.parametrize("seed", SEEDS)
def test_destructive_tf_falls_below_uniform(runs, seed: int) -> None:
    result, _ = runs[seed]
    assert result["uniform_share"] == pytest.approx(0.2)
    assert result["destructive_share"] < 0.5 * result["uniform_share"], result["frequencies"]


def test_augmented_items_are_token_lists_from_the_vocabulary(example: ModuleType, runs) -> None:
    for result, _ in runs.values():
        for ex in result["transform_examples"]:
            assert _is_sentence(ex["original"], example.VOCAB) and _is_sentence(ex["augmented"], example.VOCAB)
            assert len(ex["tfs"]) == 3 and all(tf in example.TF_IDS for tf in ex["tfs"])
        assert all(_is_sentence(s, example.VOCAB) for s in result["loader_batch"]["sentences"])


def test_transform_is_reproducible_with_a_seed(example: ModuleType, short_policy: la.Policy) -> None:
    sentences = [t for t, _ in example.make_corpus(20, 1)]
    originals = [list(t) for t in sentences]

    def augment(seed: int) -> list[list[str]]:
        transform = la.LearnedPolicyTransform(short_policy, p=1.0, seed=seed)
        return [transform(t) for t in sentences]

    first = augment(0)
    assert augment(0) == first
    assert augment(1) != first
    assert sentences == originals  # the caller's lists are left alone
    assert all(_is_sentence(t, example.VOCAB) for t in first)
    transform = la.LearnedPolicyTransform(short_policy, p=1.0, seed=0)
    out = transform(sentences[0])
    assert transform.last_params is not None
    assert transform.replay(sentences[0], transform.last_params) == out


def test_the_same_seed_repeats_the_whole_run(example: ModuleType, runs) -> None:
    again = example.main(["--steps", str(STEPS), "--seed", "1"])
    first, _ = runs[1]
    assert {k: v for k, v in again.items() if k != "fit_seconds"} == {
        k: v for k, v in first.items() if k != "fit_seconds"
    }


def test_dataloader_yields_padded_batches_with_labels(example: ModuleType, short_policy: la.Policy) -> None:
    corpus = example.make_corpus(20, 0)
    dataset = la.PolicyAugmentedDataset(corpus, la.LearnedPolicyTransform(short_policy, p=1.0, seed=0), p_augment=1.0)
    loader = DataLoader(dataset, batch_size=8, shuffle=False, collate_fn=example.loader_collate)
    batches = list(loader)
    assert [len(labels) for _, labels in batches] == [8, 8, 4]
    labels = torch.cat([labels for _, labels in batches]).tolist()
    assert labels == [label for _, label in corpus]  # augmentation keeps each sentence's label
    for ids, _ in batches:
        assert ids.dtype == torch.long and ids.ndim == 2
        assert 0 <= int(ids.min()) and int(ids.max()) < len(example.VOCAB)
        # padded to the batch's longest sentence: some row has no padding
        assert bool((ids != 0).all(dim=1).any())
    assert [t for t, _ in corpus] != [dataset[i][0] for i in range(len(corpus))]  # items were augmented


def test_cli_rejects_a_fit_of_no_steps(example: ModuleType) -> None:
    with pytest.raises(SystemExit):
        example.main(["--steps", "0"])
