"""Faults during fitting: SIGKILL mid-run, kills during checkpoint writes, NaN weights.

A fit killed with SIGKILL (no clean-up runs) and resumed in a new process ends bit-identical to an uninterrupted
one; the checkpoint is a complete file at every moment (it is polled while being rewritten after every step, and a
writer is killed at random moments mid-write); an update that turns weights NaN never reaches a checkpoint or the
returned policy.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from reliability_helpers import POLICY_FIT, REFINER_FIT, WORKER, policy_data, refiner_data
from safetensors.torch import load_file

from learned_augment.fit import fit_policy, load_checkpoint_policy
from learned_augment.io import ArtifactError, load_artifact, load_policy, read_metadata, save_artifact
from learned_augment.refine import Refiner, fit_refiner


def _policy_progress(meta: dict[str, Any]) -> int:
    return int(meta["step"])


def _refiner_progress(meta: dict[str, Any]) -> int:
    p = meta["progress"]
    return (int(p["stage"]) - 1) * REFINER_FIT["steps"] + int(p["step"])


class Chain:
    """Runs the worker again and again on one checkpoint, killing it with SIGKILL at chosen points."""

    def __init__(self, kind: str, folder: Path) -> None:
        self.kind = kind
        self.ckpt = folder / f"{kind}.ckpt.safetensors"
        self.out = folder / f"{kind}.safetensors"
        self.log = folder / f"{kind}.log"
        self.progress = _policy_progress if kind == "policy" else _refiner_progress
        self.polls = 0
        self.kills: list[int] = []

    def _start(self, delay: float) -> subprocess.Popen:
        args = [sys.executable, str(WORKER), self.kind, str(self.ckpt), str(self.out), str(delay), str(self.log)]
        return subprocess.Popen(args, cwd=WORKER.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def kill_at(self, at_least: int, delay: float = 0.15) -> None:
        proc = self._start(delay)
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the worker ended (rc {proc.returncode}) before it could be killed: {proc.stderr.read()}")
            assert time.monotonic() < deadline, "the worker made no progress"
            if self.ckpt.exists():
                # The worker replaces this file after every step: whenever we look, it must be complete.
                done = self.progress(read_metadata(self.ckpt))
                self.polls += 1
                if done >= at_least:
                    break
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL
        done = self.progress(load_artifact(self.ckpt)[1])
        self.kills.append(done)

    def finish(self) -> None:
        proc = self._start(0.0)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()

    def finish_here(self) -> None:
        """Resume to the end in this process (saves an interpreter start; the kills were all in fresh ones)."""
        assert self.kind == "policy"
        first: list[int] = []
        cb = [lambda step, metrics, policy: first.append(step)]
        fit_policy(policy_data(), checkpoint=self.ckpt, checkpoint_every=1, callbacks=cb, **POLICY_FIT).save(
            str(self.out)
        )
        with open(self.log, "a") as f:
            f.write(f"step {first[0]}\n")

    def starts(self) -> list[str]:
        return self.log.read_text().splitlines()


def _run_policy_chain(folder: Path) -> Chain:
    chain = Chain("policy", folder)
    chain.kill_at(3)
    chain.kill_at(chain.kills[-1] + 4)
    chain.finish_here()
    return chain


def _run_refiner_chain(folder: Path) -> Chain:
    chain = Chain("refiner", folder)
    chain.kill_at(REFINER_FIT["steps"] + 1)  # in stage 2, after stage 1 finished
    chain.finish()
    return chain


@pytest.fixture(scope="module")
def chains(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Chain]:
    """Both kill-and-resume chains, run side by side (each is mostly waiting for fresh interpreters to start)."""
    folder = tmp_path_factory.mktemp("chains")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the policy chain ends in this process; module fixtures run before one_thread()
    try:
        with ThreadPoolExecutor(2) as pool:
            policy = pool.submit(_run_policy_chain, folder)
            refiner = pool.submit(_run_refiner_chain, folder)
            return {"policy": policy.result(), "refiner": refiner.result()}
    finally:
        torch.set_num_threads(threads)


def test_sigkilled_fit_policy_resumes_bit_identical(chains: dict[str, Chain], tmp_path: Path) -> None:
    chain = chains["policy"]
    # Each run began where the checkpoint of the killed one stood, not from scratch.
    assert chain.starts() == ["step 0", f"step {chain.kills[0]}", f"step {chain.kills[1]}"]
    assert 3 <= chain.kills[0] < chain.kills[1] < POLICY_FIT["steps"]

    straight_ckpt = tmp_path / "straight.ckpt.safetensors"
    straight = fit_policy(policy_data(), checkpoint=straight_ckpt, checkpoint_every=10**6, **POLICY_FIT)
    resumed = load_policy(chain.out)
    for (k, a), (k2, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    assert resumed.history == straight.history
    # The whole training state (discriminator, both optimisers) agrees too, not just the policy.
    final, reference = load_file(chain.ckpt), load_file(straight_ckpt)
    assert final.keys() == reference.keys()
    assert all(torch.equal(final[k], reference[k]) for k in final)
    assert chain.polls >= 2


def test_sigkilled_fit_refiner_resumes_bit_identical(chains: dict[str, Chain]) -> None:
    chain = chains["refiner"]
    killed_stage, killed_step = divmod(chain.kills[0], REFINER_FIT["steps"])
    assert killed_stage == 1, "the kill should land in stage 2"
    assert chain.starts() == ["stage 1 step 0", f"stage {killed_stage + 1} step {killed_step}"]

    x, y = refiner_data()
    straight = fit_refiner(x, y, **REFINER_FIT)
    resumed = Refiner.load(chain.out)
    nets = lambda r: [*r.synthetic_to_real, *(r.real_to_shared[k] for k in sorted(r.real_to_shared))]  # noqa: E731
    for a, b in zip(nets(straight), nets(resumed)):
        for (k, p), (k2, q) in zip(a.state_dict().items(), b.state_dict().items()):
            assert k == k2 and torch.equal(p, q), k
    assert resumed.history == straight.history


# ------------------------------------------------------------------------------------------------ kills mid-write


def test_checkpoint_is_never_half_written(tmp_path: Path) -> None:
    """Kill a process that rewrites one 2 MB artifact in a loop, 25 times at random moments, most of them mid-write.

    After every kill the file loads and is one complete version (the tensor and the metadata agree); nothing but
    the artifact and, at most, the temporary file of the interrupted write is left in the folder.
    """
    path = tmp_path / "ckpt.safetensors"
    n = 1 << 19
    rng = np.random.default_rng(0)
    versions: set[int] = set()
    t0 = time.perf_counter()
    save_artifact(path, {"w": torch.zeros(n)}, "stress", {"i": 0})
    write_s = time.perf_counter() - t0
    for kill in range(25):
        pid = os.fork()
        if pid == 0:  # the child: rewrite the file until killed
            try:
                i = (kill + 1) * 1_000_000
                while True:
                    i += 1
                    save_artifact(path, {"w": torch.from_numpy(np.full(n, i, np.float32))}, "stress", {"i": i})
            finally:
                os._exit(1)
        # Wait until this writer has replaced the file at least once (a loaded machine can delay it by far more
        # than write_s), then kill it at a random moment, most likely in the middle of a later write.
        first = (kill + 1) * 1_000_000 + 1
        deadline = time.perf_counter() + 60
        while read_metadata(path).get("i", 0) < first and time.perf_counter() < deadline:
            time.sleep(write_s / 4)
        time.sleep(float(rng.uniform(0.0, 3.0)) * write_s)
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, "the writer died on its own"
        tensors, meta = load_artifact(path, kind="stress")
        w = tensors["w"]
        assert w.shape == (n,) and bool((w == meta["i"]).all()), "tensor and metadata come from different writes"
        versions.add(meta["i"])
        leftovers = {p.name for p in tmp_path.iterdir()} - {path.name}
        assert all(name.startswith(f".{path.name}.") and name.endswith(".tmp") for name in leftovers), leftovers
        for name in leftovers:
            (tmp_path / name).unlink()
    assert len(versions) >= 15, "the kills did not land between different writes"


# ------------------------------------------------------------------------------------------------ NaN weights


def _poison_at(step: int):
    def cb(s: int, metrics: dict[str, float], policy: Any) -> None:
        if s == step:
            with torch.no_grad():
                next(policy.parameters()).fill_(float("nan"))

    return cb


@pytest.mark.parametrize(("poisoned", "caught_by"), [(3, "not saved"), (4, "diverged at step 5")])
def test_nan_weights_never_reach_a_fit_policy_checkpoint(poisoned: int, caught_by: str, tmp_path: Path) -> None:
    # As if the update of step ``poisoned`` had diverged: its losses were finite, the weights it left are not. The
    # next checkpoint (after step 3) or the next step's losses (step 5) stop the fit; the last good checkpoint stays.
    ckpt = tmp_path / "c.safetensors"
    kw = {**POLICY_FIT, "steps": 8}
    with pytest.raises(FloatingPointError, match=caught_by):
        fit_policy(policy_data(), checkpoint=ckpt, checkpoint_every=2, callbacks=[_poison_at(poisoned)], **kw)
    tensors, meta = load_artifact(ckpt)
    assert meta["step"] == 2 if poisoned == 3 else 4
    assert all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())


def test_nan_weights_after_the_last_step_are_not_returned() -> None:
    kw = {**POLICY_FIT, "steps": 3}
    with pytest.raises(FloatingPointError, match="last update"):
        fit_policy(policy_data(), callbacks=[_poison_at(2)], **kw)


@pytest.mark.parametrize("arg", ["g_lr", "d_lr", "diversity", "gamma"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0])
def test_fit_policy_refuses_non_finite_settings(arg: str, value: float, tmp_path: Path) -> None:
    ckpt = tmp_path / "c.safetensors"
    with pytest.raises(ValueError, match=arg):
        fit_policy(policy_data(), checkpoint=ckpt, **{**POLICY_FIT, "steps": 1, arg: value})
    assert not ckpt.exists()


def test_nan_pixels_are_refused_before_fitting() -> None:
    x = policy_data()[:16].astype(np.float32) / 255
    x[3, 4, 5] = np.nan
    with pytest.raises(ValueError, match="finite"):
        fit_policy(x, **{**POLICY_FIT, "steps": 1})
    with pytest.raises(ValueError, match="finite"):
        fit_refiner(x[:, :16, :16], x[:, :16, :16], **{**REFINER_FIT, "steps": 1})


def test_corrupt_checkpoint_state_is_an_artifact_error(tmp_path: Path) -> None:
    ckpt = tmp_path / "c.safetensors"
    kw = {**POLICY_FIT, "steps": 2}
    fit_policy(policy_data(), checkpoint=ckpt, **kw)
    tensors, meta = load_artifact(ckpt)
    body = {k: v for k, v in meta.items() if k not in ("format_version", "kind", "library_version")}
    for broken in ({**body, "optim": {}}, {**body, "history": [1]}, {**body, "step": 10**9}):
        save_artifact(ckpt, tensors, "fit_checkpoint", broken)
        with pytest.raises(ArtifactError, match="cannot resume"):
            fit_policy(policy_data(), checkpoint=ckpt, **kw)


def test_optimizer_state_of_the_wrong_shape_is_an_artifact_error(tmp_path: Path) -> None:
    """torch's Optimizer.load_state_dict takes any shape: the fit would resume and then fail inside Adam's step."""
    ckpt = tmp_path / "c.safetensors"
    kw = {**POLICY_FIT, "steps": 2}
    fit_policy(policy_data(), checkpoint=ckpt, **kw)
    tensors, meta = load_artifact(ckpt)
    body = {k: v for k, v in meta.items() if k not in ("format_version", "kind", "library_version")}
    for name, bad in (("opt_d/state/0/exp_avg", torch.zeros(3)), ("opt_d/state/0/step", torch.zeros(2))):
        save_artifact(ckpt, {**tensors, name: bad}, "fit_checkpoint", body)
        with pytest.raises(ArtifactError, match=f"optimizer state '{name}'") as info:
            fit_policy(policy_data(), checkpoint=ckpt, **kw)
        assert "\n" not in str(info.value)


def test_refiner_optimizer_state_of_the_wrong_shape_is_an_artifact_error(tmp_path: Path) -> None:
    ckpt = tmp_path / "c.safetensors"
    x, y = refiner_data()
    kw = {**REFINER_FIT, "stages": 1, "steps": 2}
    fit_refiner(x, y, checkpoint=ckpt, **kw)
    tensors, meta = load_artifact(ckpt)
    body = {k: v for k, v in meta.items() if k not in ("format_version", "kind", "library_version")}
    name = next(k for k in tensors if k.startswith("stage1.opt_") and k.endswith(".exp_avg"))
    save_artifact(ckpt, {**tensors, name: torch.zeros(3)}, "refiner_checkpoint", body)
    with pytest.raises(ArtifactError, match=f"optimizer state '{name}' has shape \\(3,\\)"):
        fit_refiner(x, y, checkpoint=ckpt, **kw)


def test_checkpoint_policy_without_its_config_is_an_artifact_error(tmp_path: Path) -> None:
    ckpt = tmp_path / "c.safetensors"
    fit_policy(policy_data(), checkpoint=ckpt, **{**POLICY_FIT, "steps": 1})
    tensors, meta = load_artifact(ckpt)
    body = {k: v for k, v in meta.items() if k not in ("format_version", "kind", "library_version", "config")}
    config = meta["config"]
    for broken in (body, {**body, "config": {k: v for k, v in config.items() if k != "tfs"}}, {**body, "config": 1}):
        save_artifact(ckpt, tensors, "fit_checkpoint", broken)
        with pytest.raises(ArtifactError, match="incomplete fit config"):
            load_checkpoint_policy(ckpt)
