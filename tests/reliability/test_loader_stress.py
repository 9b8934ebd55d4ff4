"""Load: LearnedPolicyTransform in DataLoader workers over many images (no memory growth, no worker dying), and
shared by threads (no exceptions, every output valid and exactly one of the outputs its own input can give).

The soak itself lives in ``examples/stress.py``; CI runs its short version here (5,000 images), the full run
(200,000 images, ``python examples/stress.py --images 200000``) is marked slow.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from learned_augment.ops import TFSet
from learned_augment.policy import LSTMPolicy, UniformPolicy
from learned_augment.transforms import LearnedPolicyTransform

STRESS = Path(__file__).resolve().parents[2] / "examples" / "stress.py"


def _load_stress() -> Any:
    spec = importlib.util.spec_from_file_location("learned_augment_stress_example", STRESS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # so its Dataset class pickles by name (spawned workers)
    spec.loader.exec_module(module)
    return module


stress = _load_stress()


def check_soak(r: dict[str, Any], images: int, max_growth_mb: float) -> None:
    assert r["images"] == images, "items were lost"
    assert len(r["worker_pids"]) == r["workers"] == 2, "a worker produced nothing (or was replaced)"
    assert r["contract_violations"] == 0
    for name, p in r["processes"].items():
        assert p["growth_mb"] < max_growth_mb, f"{name} grew by {p['growth_mb']} MB: {r['processes']}"


def test_soak_short() -> None:
    r = stress.soak(images=5000, workers=2)
    check_soak(r, 5000, max_growth_mb=24.0)


@pytest.mark.slow
def test_soak_full() -> None:
    r = stress.soak(images=200_000, workers=2)
    check_soak(r, 200_000, max_growth_mb=32.0)


def test_stress_script_writes_its_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "soak.json"
    assert stress.main(["--images", "300", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["images"] == 300 and r["workers"] == 2 and "main" in r["processes"] and r["wall_s"] > 0
    assert "growth" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------ threads


@pytest.fixture
def busy_switching() -> Iterator[None]:
    # Switch threads every 10 us instead of 5 ms, so interleavings that would take hours to occur happen here.
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    before_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    sys.setswitchinterval(before)
    torch.set_num_threads(before_threads)


EXACT_IDS = ["hflip", "vflip", "rotate(+90)", "rotate(-90)", "invert"]
"""TFs whose every composition on a square uint8 image is exact: one of 16 known images (8 symmetries x invert)."""


def _variants(x: np.ndarray) -> list[np.ndarray]:
    out = []
    for k in range(4):
        r = np.rot90(x, k)
        for v in (r, r[:, ::-1]):
            out += [v, 255 - v]
    return out


def test_exact_outputs_from_a_transform_shared_by_threads(busy_switching: None) -> None:
    """8 threads, 3,000 calls, one shared transform: each output is one of the images its own input can become.

    An output computed from another call's image, a half-applied sequence or a torn buffer would match none.
    """
    t = LearnedPolicyTransform(UniformPolicy(TFSet(EXACT_IDS), seq_len=5), p=1.0, seed=0)
    t._sampler.block_size = 7  # refill the shared block of sequences often, while other threads read it

    def call(i: int) -> tuple[bool, str]:
        x = np.random.default_rng(i).integers(0, 256, (9, 9, 3), dtype=np.uint8)
        form = i % 3
        if form == 0:
            y = t(x)
        elif form == 1:
            y = np.asarray(t(Image.fromarray(x)))
        else:
            y = t(image=x)["image"]  # the Albumentations call
        return any(np.array_equal(y, v) for v in _variants(x)), ["numpy", "PIL", "albumentations"][form]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(3000)))
    wrong = [form for ok, form in results if not ok]
    assert not wrong, f"{len(wrong)} outputs match no symmetry of their input ({set(wrong)})"


def test_every_tf_from_threads_keeps_the_contract(busy_switching: None) -> None:
    torch.manual_seed(0)
    t = LearnedPolicyTransform(LSTMPolicy(stress.every_tf_set(), seq_len=4, hidden=16), p=1.0, seed=0)

    def call(i: int) -> None:
        rng = np.random.default_rng(i)
        hwc = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
        if i % 4 == 0:
            y = t(hwc)
            assert y.shape == hwc.shape and y.dtype == np.uint8
        elif i % 4 == 1:
            y = t(hwc.astype(np.float32) / 255)
            assert y.dtype == np.float32 and np.isfinite(y).all() and 0 <= y.min() <= y.max() <= 1
        elif i % 4 == 2:
            x = torch.from_numpy(hwc).permute(2, 0, 1).float() / 255
            y = t(x)
            assert y.shape == x.shape and torch.isfinite(y).all() and 0 <= y.min() <= y.max() <= 1
        else:
            xb = torch.from_numpy(np.stack([hwc, hwc[::-1]])).permute(0, 3, 1, 2).contiguous()
            y = t(xb)
            assert y.shape == xb.shape and y.dtype == torch.uint8

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(call, range(1200)))  # re-raises the first exception of any thread
