"""LearnedPolicyTransform and PolicyAugmentedDataset in DataLoaders: distinct worker streams, reproducible epochs."""

from __future__ import annotations

import pickle

import albumentations as A
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from transform_helpers import AlbumentationsFlags, ChangedFlags, IdsDataset, LabelledImages, one_thread, smooth_image

from learned_augment.ops import TFSet
from learned_augment.policy import LSTMPolicy, MeanFieldPolicy
from learned_augment.transforms import LearnedPolicyTransform, PolicyAugmentedDataset

# A batch that takes longer than this means a stuck worker: fail instead of hanging the suite.
LOADER_TIMEOUT_S = 120


def make_loader(dataset, context: str | None, workers: int = 2, loader_seed: int = 0, batch_size: int = 4):
    return DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=workers,
        multiprocessing_context=context if workers else None,
        worker_init_fn=one_thread if workers else None,
        generator=torch.Generator().manual_seed(loader_seed),
        timeout=LOADER_TIMEOUT_S if workers else 0,
    )


def run_epoch(dataset, context: str | None, workers: int = 2, loader_seed: int = 0, batch_size: int = 4):
    """All items of one epoch, in order: (outputs, applied ids, worker ids)."""
    loader = make_loader(dataset, context, workers, loader_seed, batch_size)
    outs, ids, wids = zip(*[(o, i, w) for o, i, w in loader])
    return torch.cat(outs), torch.cat(ids), torch.cat(wids)


def draws_per_epoch(dataset, epochs: int, workers: int = 2, loader_seed: int = 0) -> list[torch.Tensor]:
    """What every item drew (IdsDataset: the applied ids; ChangedFlags: replaced or kept), epoch by epoch.

    One DataLoader iterated ``epochs`` times with no ``set_epoch`` call, as a plain training loop does.
    """
    field = 0 if isinstance(dataset, ChangedFlags) else 1
    loader = make_loader(dataset, "fork" if workers else None, workers, loader_seed, batch_size=8)
    return [torch.cat([batch[field] for batch in loader]) for _ in range(epochs)]


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
    t = LearnedPolicyTransform(lstm, p=1.0, seed=123)
    ds = IdsDataset(t)
    first = run_epoch(ds, "fork")
    again = run_epoch(ds, "fork")
    t.set_epoch(1)
    nxt = run_epoch(ds, "fork")
    check_streams(first, again, nxt)


def test_spawn_workers_match_fork(lstm: LSTMPolicy) -> None:
    # Spawned workers unpickle their copy: the streams depend only on (seed, epoch, worker), not on the start method.
    # One spawned epoch (each spawned worker re-imports torch: seconds) checks all three properties against fork.
    t = LearnedPolicyTransform(lstm, p=1.0, seed=123)
    ds = IdsDataset(t, n=8)
    fork_0 = run_epoch(ds, "fork")
    t.set_epoch(1)
    fork_1 = run_epoch(ds, "fork")
    spawn_1 = run_epoch(ds, "spawn")
    check_streams(spawn_1, fork_1, fork_0)


def test_seeded_workers_draw_fresh_epochs_without_set_epoch(lstm: LSTMPolicy) -> None:
    # Workers are new processes each epoch; without the DataLoader's per-epoch seed they would restart the stream.
    ds = IdsDataset(LearnedPolicyTransform(lstm, p=1.0, seed=123))
    first = draws_per_epoch(ds, epochs=2)
    assert not torch.equal(first[0], first[1]), "epoch 1 repeated epoch 0"
    again = draws_per_epoch(ds, epochs=2)
    assert all(torch.equal(a, b) for a, b in zip(first, again)), "the same seeds gave different runs"
    other = draws_per_epoch(IdsDataset(LearnedPolicyTransform(lstm, p=1.0, seed=124)), epochs=1)
    assert not torch.equal(other[0], first[0]), "seed=123 and seed=124 drew the same epoch"


def test_unseeded_transform_follows_the_loader_generator(lstm: LSTMPolicy) -> None:
    ds = IdsDataset(LearnedPolicyTransform(lstm, p=1.0))
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
    a, b = LearnedPolicyTransform(lstm, p=1.0), LearnedPolicyTransform(lstm, p=1.0)
    a(img)
    b(img)
    draws_a = [tuple(a.last_params["tf_ids"]) for _ in range(5) if a(img) is not None]
    draws_b = [tuple(b.last_params["tf_ids"]) for _ in range(5) if b(img) is not None]
    assert draws_a != draws_b


def test_seed_none_follows_torch_manual_seed(lstm: LSTMPolicy) -> None:
    # As torchvision's RandAugment: the global seed repeats a main-process run, set before or after construction.
    img = smooth_image(0)
    batch = torch.from_numpy(np.stack([smooth_image(i) for i in range(3)])).permute(0, 3, 1, 2)

    def run(seed: int, seed_first: bool) -> list:
        if seed_first:
            torch.manual_seed(seed)
        t = LearnedPolicyTransform(lstm, p=0.7)
        if not seed_first:
            torch.manual_seed(seed)
        return [t(img) for _ in range(6)] + [t(batch).numpy()]

    reference = run(0, seed_first=True)
    for again in (run(0, seed_first=True), run(0, seed_first=False)):
        assert all(np.array_equal(a, b) for a, b in zip(reference, again)), "torch.manual_seed(0) did not repeat"
    assert not all(np.array_equal(a, b) for a, b in zip(reference, run(1, seed_first=True)))


def test_seed_none_repeats_a_call_after_torch_manual_seed(lstm: LSTMPolicy) -> None:
    # torchvision's contract for its random transforms: seeding the global generator before a call repeats that
    # call, on the same transform object, whatever it drew before (a stream seeded once would not).
    img = smooth_image(1)
    batch = torch.from_numpy(np.stack([smooth_image(i) for i in range(4)])).permute(0, 3, 1, 2)
    t = LearnedPolicyTransform(lstm, p=0.7)
    for x in (img, torch.from_numpy(img).permute(2, 0, 1), batch):
        outs, params = [], []
        for _ in range(3):
            torch.manual_seed(11)
            outs.append(np.asarray(t(x)))
            params.append(repr(t.last_params))
            t(x)  # a draw in between must not matter
        assert all(np.array_equal(outs[0], o) for o in outs) and len(set(params)) == 1
    draws = set()
    for seed in range(8):
        torch.manual_seed(seed)
        t(img)
        draws.add(repr(t.last_params))
    assert len(draws) > 4


# ------------------------------------------------------------------------------------------------ augmented datasets


def rotations() -> LearnedPolicyTransform:
    return LearnedPolicyTransform(MeanFieldPolicy(TFSet(["rotate(+20)", "zoom(1.15)"]), seq_len=2), p=1.0, seed=0)


def test_policy_augmented_dataset_replaces_a_fraction_p() -> None:
    base = LabelledImages(400)
    ds = PolicyAugmentedDataset(base, rotations(), p_augment=0.3, seed=0)
    flags = ChangedFlags(ds, base)
    items = [flags[i] for i in range(len(flags))]
    changed = np.array([c for c, _, _ in items])
    assert abs(changed.mean() - 0.3) < 0.07
    assert [(lab, idx) for _, lab, idx in items] == [(i % 10, i) for i in range(400)], "labels must be preserved"
    in_workers = draws_per_epoch(flags, epochs=1)[0].double()
    assert abs(in_workers.mean() - 0.3) < 0.07
    other = ChangedFlags(PolicyAugmentedDataset(base, rotations(), p_augment=0.3, seed=1), base)
    assert not np.array_equal([other[i][0] for i in range(len(base))], changed)


@pytest.mark.parametrize("workers", [0, 2])
def test_policy_augmented_dataset_draws_fresh_epochs_without_set_epoch(workers: int) -> None:
    base = LabelledImages(200)

    def flags(seed: int = 0) -> ChangedFlags:
        return ChangedFlags(PolicyAugmentedDataset(base, rotations(), p_augment=0.5, seed=seed), base)

    first = draws_per_epoch(flags(), epochs=2, workers=workers)
    assert not torch.equal(first[0], first[1]), "epoch 1 replaced the same samples as epoch 0"
    again = draws_per_epoch(flags(), epochs=2, workers=workers)
    assert all(torch.equal(a, b) for a, b in zip(first, again)), "the same seeds gave different runs"
    assert not torch.equal(draws_per_epoch(flags(seed=1), epochs=1, workers=workers)[0], first[0])
    if workers:
        # All workers of an epoch share the DataLoader's base seed: the draws do not depend on how many there are.
        assert torch.equal(draws_per_epoch(flags(), epochs=1, workers=1)[0], first[0])


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


@pytest.mark.parametrize("seed", [123, None])
@pytest.mark.parametrize("workers", [0, 2])
def test_ranks_of_a_distributed_job_draw_distinct_reproducible_sequences(lstm, monkeypatch, seed, workers) -> None:
    # Every rank of a distributed job seeds alike (same seed=, same torch.manual_seed, same loader generator);
    # torchrun's RANK variable (or the process group) must still give each rank its own stream.
    def epoch_on(rank: int) -> torch.Tensor:
        monkeypatch.setenv("RANK", str(rank))
        torch.manual_seed(0)
        return run_epoch(IdsDataset(LearnedPolicyTransform(lstm, p=1.0, seed=seed)), "fork", workers=workers)[1]

    rank0, rank1 = epoch_on(0), epoch_on(1)
    assert not torch.equal(rank0, rank1), "two ranks drew the same sequences"
    assert torch.equal(epoch_on(1), rank1), "a rank's draws are not reproducible"


def test_spawned_workers_keep_the_rank_of_the_process_that_pickled_them(lstm, monkeypatch) -> None:
    # A spawned worker of a job whose launcher sets no RANK variable has no process group to ask: the rank is
    # recorded when the DataLoader pickles the transform for it.
    t = LearnedPolicyTransform(lstm, p=1.0, seed=7)
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda *a: 1)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda *a: 2)  # the DataLoader asks too
    fork_rank1 = run_epoch(IdsDataset(t, n=8), "fork")[1]
    copy = pickle.loads(pickle.dumps(t))
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    assert torch.equal(run_epoch(IdsDataset(copy, n=8), "fork")[1], fork_rank1)
    assert not torch.equal(run_epoch(IdsDataset(t, n=8), "fork")[1], fork_rank1)
    # Pickled outside a job, a copy keeps no rank.
    assert pickle.loads(pickle.dumps(LearnedPolicyTransform(lstm, p=1.0, seed=7)))._rank_hint is None


def test_a_draw_before_the_process_group_exists_does_not_pin_rank_0s_stream(lstm, monkeypatch) -> None:
    # Looking at dataset[0] before trainer.fit draws on rank 0's stream; once the rank is known the transform must
    # switch to that rank's stream, not keep going on rank 0's.
    image = smooth_image(0)
    monkeypatch.delenv("RANK", raising=False)
    early = LearnedPolicyTransform(lstm, p=1.0, seed=5)
    early(image)
    monkeypatch.setenv("RANK", "1")
    early(image)
    fresh = LearnedPolicyTransform(lstm, p=1.0, seed=5)
    fresh(image)
    assert np.array_equal(early.last_params["tf_ids"], fresh.last_params["tf_ids"])


class TwoViews(torch.utils.data.Dataset):
    """Two ``seed=None`` transforms of one policy on the same image (two views, as SimCLR or FixMatch take)."""

    def __init__(self, policy, n: int = 8) -> None:
        self.t1, self.t2 = LearnedPolicyTransform(policy), LearnedPolicyTransform(policy)
        self.image = smooth_image(0)
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int):
        self.t1(self.image), self.t2(self.image)
        p1, p2 = self.t1.last_params, self.t2.last_params
        return torch.from_numpy(np.concatenate([p1["tf_ids"], p2["tf_ids"]]).astype(np.int64)), torch.tensor(
            [p1["tf_seed"] == p2["tf_seed"]]
        )


@pytest.mark.parametrize("workers", [0, 2])
def test_two_unseeded_transforms_draw_independently_and_repeat_under_the_loader_seed(lstm, workers):
    def draws(loader_seed: int):
        loader = make_loader(TwoViews(lstm), "fork" if workers else None, workers, loader_seed, batch_size=4)
        ids, same_seed = zip(*loader)
        return torch.cat(ids), torch.cat(same_seed)

    torch.manual_seed(0)
    ids, same_seed = draws(0)
    half = ids.shape[1] // 2
    assert not same_seed.any()
    assert not torch.equal(ids[:, :half], ids[:, half:])
    torch.manual_seed(0)
    again, _ = draws(0)
    if workers:  # a fresh dataset in fresh workers: the loader's seed alone decides the draws
        assert torch.equal(ids, again)
