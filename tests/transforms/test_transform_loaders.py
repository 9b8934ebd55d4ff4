"""LearnedPolicyTransform and PolicyAugmentedDataset in DataLoaders: distinct worker streams, reproducible epochs."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from transform_helpers import AlbumentationsFlags, ChangedFlags, IdsDataset, LabelledImages, one_thread

from learned_augment.ops import TFSet
from learned_augment.policy import LSTMPolicy, MeanFieldPolicy
from learned_augment.transforms import LearnedPolicyTransform, PolicyAugmentedDataset

# A batch that takes longer than this means a stuck worker: fail instead of hanging the suite.
LOADER_TIMEOUT_S = 120


def run_epoch(dataset, context: str | None, workers: int = 2, loader_seed: int = 0, batch_size: int = 4):
    """All items of one epoch, in order: (outputs, applied ids, worker ids)."""
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=workers,
        multiprocessing_context=context if workers else None,
        worker_init_fn=one_thread if workers else None,
        generator=torch.Generator().manual_seed(loader_seed),
        timeout=LOADER_TIMEOUT_S if workers else 0,
    )
    outs, ids, wids = zip(*[(o, i, w) for o, i, w in loader])
    return torch.cat(outs), torch.cat(ids), torch.cat(wids)


def per_worker(ids: torch.Tensor, wids: torch.Tensor) -> dict[int, torch.Tensor]:
    return {int(w): ids[wids == w] for w in wids.unique()}


@pytest.fixture
def lstm() -> LSTMPolicy:
    torch.manual_seed(0)
    return LSTMPolicy("cifar10", seq_len=4)


def check_streams(first, again, next_epoch) -> None:
    outs, ids, wids = first
    streams = per_worker(ids, wids)
    assert sorted(streams) == [0, 1], "both workers should have produced items"
    assert not torch.equal(streams[0], streams[1]), "the two workers drew the same sequences"
    assert len({tuple(r.tolist()) for r in ids}) > len(ids) // 2, "sequences repeat within a worker"
    assert torch.equal(again[0], outs) and torch.equal(again[1], ids), "equal seeds gave different epochs"
    assert not torch.equal(next_epoch[1], ids), "set_epoch did not change the draws"


def test_fork_workers_differ_and_seeded_epochs_repeat(lstm: LSTMPolicy) -> None:
    t = LearnedPolicyTransform(lstm, seed=123)
    ds = IdsDataset(t)
    first = run_epoch(ds, "fork")
    again = run_epoch(ds, "fork")
    t.set_epoch(1)
    nxt = run_epoch(ds, "fork")
    check_streams(first, again, nxt)


def test_spawn_workers_match_fork(lstm: LSTMPolicy) -> None:
    # Spawned workers unpickle their copy: the streams depend only on (seed, epoch, worker), not on the start method.
    # One spawned epoch (each spawned worker re-imports torch: seconds) checks all three properties against fork.
    t = LearnedPolicyTransform(lstm, seed=123)
    ds = IdsDataset(t, n=8)
    fork_0 = run_epoch(ds, "fork")
    t.set_epoch(1)
    fork_1 = run_epoch(ds, "fork")
    spawn_1 = run_epoch(ds, "spawn")
    check_streams(spawn_1, fork_1, fork_0)


def test_unseeded_transform_follows_the_loader_generator(lstm: LSTMPolicy) -> None:
    ds = IdsDataset(LearnedPolicyTransform(lstm))
    first = run_epoch(ds, "fork", loader_seed=5)
    again = run_epoch(ds, "fork", loader_seed=5)
    nxt = run_epoch(ds, "fork", loader_seed=6)
    check_streams(first, again, nxt)
    assert not torch.equal(run_epoch(ds, None, workers=0)[1], run_epoch(ds, None, workers=0)[1])


def test_albumentations_p_decisions_differ_between_workers() -> None:
    policy = MeanFieldPolicy(TFSet(["rotate(+20)", "zoom(1.15)"]), seq_len=1)
    ds = AlbumentationsFlags(A.Compose([LearnedPolicyTransform(policy, p=0.5)]))
    loader = DataLoader(
        ds,
        batch_size=8,
        num_workers=2,
        multiprocessing_context="fork",
        worker_init_fn=one_thread,
        timeout=LOADER_TIMEOUT_S,
    )
    flags, wids = (torch.cat(x) for x in zip(*loader))
    streams = per_worker(flags, wids)
    assert 0.2 < flags.double().mean() < 0.8
    assert not torch.equal(streams[0], streams[1]), "both workers made the same apply-or-skip decisions"


def test_seed_none_main_process_streams_are_fresh(lstm: LSTMPolicy) -> None:
    img = np.zeros((8, 8, 3), np.uint8)
    a, b = LearnedPolicyTransform(lstm), LearnedPolicyTransform(lstm)
    a(img)
    b(img)
    draws_a = [tuple(a.last_params["tf_ids"]) for _ in range(5) if a(img) is not None]
    draws_b = [tuple(b.last_params["tf_ids"]) for _ in range(5) if b(img) is not None]
    assert draws_a != draws_b


# ------------------------------------------------------------------------------------------------ augmented datasets


def rotations() -> LearnedPolicyTransform:
    return LearnedPolicyTransform(MeanFieldPolicy(TFSet(["rotate(+20)", "zoom(1.15)"]), seq_len=2), seed=0)


def test_policy_augmented_dataset_replaces_a_fraction_p() -> None:
    base = LabelledImages(400)
    ds = PolicyAugmentedDataset(base, rotations(), p_augment=0.3, seed=0)
    flags = ChangedFlags(ds, base)
    items = [flags[i] for i in range(len(flags))]
    changed = np.array([c for c, _, _ in items])
    assert abs(changed.mean() - 0.3) < 0.07
    assert [(lab, idx) for _, lab, idx in items] == [(i % 10, i) for i in range(400)], "labels must be preserved"
    # The replace-or-keep draws depend on (seed, epoch, index), not on the number of workers.
    loader = DataLoader(
        flags,
        batch_size=50,
        num_workers=2,
        multiprocessing_context="fork",
        worker_init_fn=one_thread,
        timeout=LOADER_TIMEOUT_S,
    )
    assert np.array_equal(torch.cat([c for c, _, _ in loader]).numpy(), changed)
    other = ChangedFlags(PolicyAugmentedDataset(base, rotations(), p_augment=0.3, seed=1), base)
    assert not np.array_equal([other[i][0] for i in range(len(base))], changed)


def test_policy_augmented_dataset_schedule_and_set_epoch() -> None:
    base = LabelledImages(40)
    t = rotations()
    ds = PolicyAugmentedDataset(base, t, p_augment=lambda epoch: min(1.0, 0.5 * epoch), seed=0)
    flags = ChangedFlags(ds, base)
    assert ds.p_augment == 0.0 and sum(flags[i][0] for i in range(40)) == 0
    ds.set_epoch(2)
    assert ds.p_augment == 1.0 and t._epoch == 2
    assert sum(flags[i][0] for i in range(40)) == 40
    ds.set_epoch(1)
    assert 8 <= sum(flags[i][0] for i in range(40)) <= 32


def test_policy_augmented_dataset_items_and_errors() -> None:
    base = LabelledImages(6)
    post = PolicyAugmentedDataset(base, rotations(), p_augment=1.0, post_transform=torch.from_numpy)
    img, label, idx = post[3]
    assert isinstance(img, torch.Tensor) and img.shape == (16, 16, 3) and (label, idx) == (3, 3)
    bare = PolicyAugmentedDataset(list(base.images), rotations(), p_augment=1.0)
    assert isinstance(bare[0], np.ndarray) and bare[0].shape == (16, 16, 3) and len(bare) == 6
    assert "p_augment=1.0" in repr(bare) and "LearnedPolicyTransform" in repr(bare)
    with pytest.raises(ValueError, match="p_augment"):
        PolicyAugmentedDataset(base, rotations(), p_augment=1.5)
