"""Smoke test of examples/benchmark_throughput.py: a ``--quick`` run writes every row with positive rates.

Behaviour only, never timing: a shared CI machine makes any speed assertion flaky.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SCRIPT = EXAMPLES / "benchmark_throughput.py"
SIZES = (32, 224)

PER_IMAGE = {
    ("ours apply_sequence 'default'", "numpy", 2),
    ("ours apply_sequence 'default'", "numpy", 10),
    ("ours apply_sequence 'cifar10'", "numpy", 2),
    ("ours apply_sequence 'cifar10'", "numpy", 10),
    ("ours apply_sequence 'default' nearest", "numpy", 2),
    ("ours apply_sequence 'default' nearest", "numpy", 10),
    ("ours apply_sequence 'cifar10' nearest", "numpy", 2),
    ("ours apply_sequence 'cifar10' nearest", "numpy", 10),
    ("ours LearnedPolicyTransform mean-field 'cifar10'", "numpy", 2),
    ("ours LearnedPolicyTransform mean-field 'cifar10'", "numpy", 10),
    ("torchvision RandAugment", "PIL", 2),
    ("torchvision RandAugment", "tensor", 2),
    ("torchvision AutoAugment CIFAR10", "PIL", 2),
    ("torchvision AutoAugment CIFAR10", "tensor", 2),
    ("torchvision TrivialAugmentWide", "PIL", 1),
    ("torchvision TrivialAugmentWide", "tensor", 1),
    ("torchvision RandAugment bilinear", "PIL", 2),
    ("torchvision RandAugment bilinear", "tensor", 2),
    ("albumentations SomeOf(n=2) of 10", "numpy", 2),
    ("albumentations all 10 in a row", "numpy", 10),
}
LOADER = {
    ("no augmentation (loader overhead)", 0),
    ("ours LearnedPolicyTransform mean-field 'cifar10'", 2),
    ("ours LearnedPolicyTransform mean-field 'cifar10'", 10),
    ("ours LearnedPolicyTransform LSTM 'cifar10'", 10),
    ("torchvision RandAugment", 2),
    ("torchvision TrivialAugmentWide", 1),
}
BATCH_CPU = {"ours apply_sequence_batch 'default'", "ours apply_sequence_batch 'cifar10'"}
BATCH_GPU = BATCH_CPU | {
    "torchvision RandAugment, per-sample loop",
    "torchvision TrivialAugmentWide, per-sample loop",
}


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    # The quick run takes ~15 s; the timeout only guards against a hang on a heavily loaded machine.
    cmd = [sys.executable, str(SCRIPT), "--quick", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def positive_rates(row: dict[str, Any], repeats: int) -> bool:
    rates = row["repeats"]
    return row["images_per_s"] > 0 and len(rates) == repeats and all(r > 0 for r in rates)


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    """One ``--quick`` run on synthetic images: (the JSON report, stdout)."""
    out = tmp_path_factory.mktemp("bench") / "results.json"
    proc = run("--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout


def test_per_image_rows_and_targets(quick: tuple[dict[str, Any], str]) -> None:
    report, _ = quick
    rows = report["per_image"]
    for size in SIZES:
        at = {(r["name"], r["input"], r["ops"]) for r in rows if r["size"] == size}
        assert at == PER_IMAGE, size
    assert len(rows) == len(PER_IMAGE) * len(SIZES)
    assert all(positive_rates(r, 3) for r in rows)

    targets = report["ratios"]
    assert {(t["size"], t["ours"]) for t in targets} == {
        (s, f"apply_sequence {ts!r} L={n} {mode}")
        for s in SIZES
        for ts in ("default", "cifar10")
        for n in (2, 10)
        for mode in ("bilinear", "nearest")
    }
    for t in targets:
        assert t["ratio"] > 0 and t["ratio_best"] > 0 and t["ratio_same_interpolation"] > 0
        assert isinstance(t["met"], bool) and t["met"] == (t["ratio"] >= t["target"])
        assert t["target"] == (1.5 if " L=2 " in t["ours"] else 1.0)
        assert t["ours"].endswith(t["interpolation"])
        assert t["baseline"].startswith("torchvision RandAugment (2 ops")


def test_dataloader_rows(quick: tuple[dict[str, Any], str]) -> None:
    report, _ = quick
    rows = report["dataloader"]
    assert {(r["name"], r["ops"], r["workers"]) for r in rows} == {
        (name, ops, w) for name, ops in LOADER for w in (0, 1, 2)
    }
    assert all(positive_rates(r, 3) and r["size"] == 32 for r in rows)


def test_batch_rows(quick: tuple[dict[str, Any], str]) -> None:
    report, _ = quick
    rows = report["batch"]
    cpu = [r for r in rows if r["device"] == "cpu"]
    gpu = [r for r in rows if r["device"] == "cuda"]
    assert {r["name"] for r in cpu} == BATCH_CPU and all(positive_rates(r, 3) for r in cpu)
    assert {r["name"] for r in gpu} == BATCH_GPU
    assert all(r["batch_size"] == 256 for r in rows)
    assert all(r["size"] == 224 for r in gpu)
    if torch.cuda.is_available():
        assert all(positive_rates(r, 3) for r in gpu)
        assert isinstance(report["targets"]["gpu_batch"]["met"], bool)
    else:
        assert all(r["images_per_s"] is None and r["status"] == "not measured (no GPU)" for r in gpu)
        assert report["targets"]["gpu_batch"]["met"] is None


def test_module_rows(quick: tuple[dict[str, Any], str]) -> None:
    report, stdout = quick
    names = {"ours PolicyAugment mean-field 'cifar10'", "ours PolicyAugment LSTM 'cifar10'"}
    if importlib.util.find_spec("kornia") is not None:
        names |= {"kornia RandAugment(n=2)", "kornia TrivialAugment", "kornia 10 ops"}
    assert {(r["name"], r["size"]) for r in report["module"]} == {(n, s) for n in names for s in (32, 224)}
    assert all(positive_rates(r, 3) and r["batch_size"] == 64 and r["device"] == "cpu" for r in report["module"])
    assert "PolicyAugment" in stdout


def test_meta_and_printed_table(quick: tuple[dict[str, Any], str]) -> None:
    report, stdout = quick
    meta = report["meta"]
    assert meta["quick"] and meta["threads"] == 1 and meta["repeats"] == 3
    assert len(meta["loadavg_start"]) == 3 and len(meta["loadavg_end"]) == 3
    assert set(meta["versions"]) >= {"torch", "torchvision", "albumentations", "opencv", "numpy"}
    assert "synthetic" in meta["images"]
    for text in ("images/s", "load average", "torchvision RandAugment", "albumentations", "DataLoader", "target"):
        assert text in stdout


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    return importlib.import_module("benchmark_throughput")


def write_fake_cifar(path: Path, n: int = 5) -> Path:
    """An npz laid out like the CIFAR-10 JPEG one: concatenated JPEG bytes and offsets, per split."""
    rng = np.random.default_rng(0)
    blobs = [cv2.imencode(".jpg", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))[1].ravel() for _ in range(n)]
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
    buf = io.BytesIO()
    np.savez(buf, test_jpeg=np.concatenate(blobs), test_offsets=offsets, y_test=np.zeros(n, np.int64))
    path.write_bytes(buf.getvalue())
    return path


def test_cifar_pool_decodes_only_what_it_needs(script: ModuleType, tmp_path: Path) -> None:
    path = write_fake_cifar(tmp_path / "cifar.npz", n=5)
    pool = script.load_cifar_pool(path, 3)
    assert pool.shape == (3, 32, 32, 3) and pool.dtype == np.uint8
    assert script.load_cifar_pool(path, 100).shape[0] == 5
    big = script.images_at(pool, 224)
    assert big.shape == (3, 224, 224, 3) and big.dtype == np.uint8


def test_bad_cifar_path_is_one_error_line(script: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        script.load_cifar_pool(tmp_path / "nowhere.npz", 4)
    message = str(info.value.code)
    assert message.startswith("error:") and "nowhere.npz" in message and "\n" not in message
    (tmp_path / "junk.npz").write_bytes(b"not an npz")
    with pytest.raises(SystemExit) as info:
        script.load_cifar_pool(tmp_path / "junk.npz", 4)
    assert str(info.value.code).startswith("error:")
