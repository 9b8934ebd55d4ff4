"""Data-parallel fits under torchrun (gloo, 2 CPU processes) against single-process fits of the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import learned_augment as la
from learned_augment.fit.distributed import FitGroup

WORKER = Path(__file__).with_name("distributed_worker.py")
REPO = Path(__file__).resolve().parents[2]


def _run(out: Path, *args: str, processes: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    cmd = (launcher if processes > 1 else [sys.executable]) + [str(WORKER), str(out), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=REPO)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return la.load_policy(str(path)).state_dict()


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> dict[str, torch.Tensor]:
    out = tmp_path_factory.mktemp("single") / "policy.safetensors"
    r = _run(out, processes=1)
    assert r.returncode == 0, r.stderr[-2000:]
    return _weights(out)


@pytest.fixture(scope="module")
def double(tmp_path_factory) -> dict[str, torch.Tensor]:
    out = tmp_path_factory.mktemp("double") / "policy.safetensors"
    r = _run(out)
    assert r.returncode == 0, r.stderr[-2000:]
    return _weights(out)


def test_two_processes_equal_one_process_of_the_same_global_batch(single, double):
    # Only the order of float sums differs (all-reduce vs one mean): 1e-4 is far below what one SGD step at
    # g_lr 0.5 moves a logit (about 1e-2), far above float32 rounding.
    assert _max_diff(single, double) < 1e-4
    assert _max_diff(single, _weights_of_untrained()) > 1e-3, "the fit must have moved the policy"


def _weights_of_untrained() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return la.policy.make_policy("mean_field", "mnist", 4).state_dict()


def test_a_fit_killed_on_one_rank_resumes_with_the_same_or_another_world_size(tmp_path, double):
    ckpt = tmp_path / "fit.ckpt"
    crashed = _run(tmp_path / "never.safetensors", "--checkpoint", str(ckpt), "--die-at", "9")
    assert crashed.returncode != 0
    assert ckpt.exists() and not (tmp_path / "never.safetensors").exists()
    steps_done = la.io.load_artifact(str(ckpt), kind="fit_checkpoint")[1]["step"]
    assert steps_done == 8  # checkpoints every 4 steps; rank 1 died after step 9

    again = ckpt.with_name("copy.ckpt")
    again.write_bytes(ckpt.read_bytes())
    resumed = _run(tmp_path / "resumed.safetensors", "--checkpoint", str(ckpt))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _max_diff(_weights(tmp_path / "resumed.safetensors"), double) < 1e-5

    alone = _run(tmp_path / "alone.safetensors", "--checkpoint", str(again), processes=1)
    assert alone.returncode == 0, alone.stderr[-2000:]
    assert _max_diff(_weights(tmp_path / "alone.safetensors"), double) < 1e-4


def test_a_global_batch_that_does_not_split_evenly_is_refused(tmp_path):
    r = _run(tmp_path / "p.safetensors", "--batch-size", "15", "--steps", "2")
    assert r.returncode != 0
    assert "batch_size 15 (the global batch) must be a multiple of the 2 processes" in r.stderr


def test_ranks_that_disagree_on_the_arguments_are_refused(tmp_path):
    r = _run(tmp_path / "p.safetensors", "--seed-per-rank", "--steps", "2")
    assert r.returncode != 0
    assert "fit_policy got different seed on different processes" in r.stderr


def test_a_fit_on_rank_0_only_runs_alone_by_default(tmp_path, single):
    # The usual pattern inside a distributed training script: fitting on one rank must not wait for the others.
    out = tmp_path / "p.safetensors"
    r = _run(out, "--rank0-only")
    assert r.returncode == 0, r.stderr[-2000:]
    assert _max_diff(_weights(out), single) == 0.0


def test_distributed_true_without_a_process_group_says_how_to_start_one():
    images = np.zeros((8, 8, 8, 1), np.uint8)
    with pytest.raises(RuntimeError, match="init_process_group"):
        la.fit_policy(images, "mnist", steps=1, distributed=True, progress=False)


@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("n", [4, 12, 60])
def test_ranks_share_out_every_position_exactly_once(world, n):
    positions = []
    for rank in range(world):
        group = FitGroup(False)
        group.rank, group.world = rank, world
        positions.extend(group.local(n).tolist())
    assert sorted(positions) == list(range(n))


def test_sequences_of_a_rank_roll_out_its_own_items():
    # Sequence j rolls out item position j % batch; a rank must hold the items of all its sequences.
    batch, n_seqs, world = 12, 3, 4
    for rank in range(world):
        group = FitGroup(False)
        group.rank, group.world = rank, world
        items = set(group.local(batch).tolist())
        seqs = group.local(batch * n_seqs)
        assert {int(j) % batch for j in seqs} == items
        assert [int(j) % batch for j in seqs[: len(items)]] == sorted(items)  # the first ones: one per item
