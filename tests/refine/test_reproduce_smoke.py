"""examples/reproduce_mrgan.py end to end on made-up IDX files (smoke settings), and its refusal of bad data."""

from __future__ import annotations

import gzip
import importlib.util
import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from learned_augment.synthetic import render_digits

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "reproduce_mrgan.py"


def _write_idx(folder: Path, images: np.ndarray, labels: np.ndarray) -> None:
    n, h, w = images.shape
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(struct.pack(">IIII", 2051, n, h, w) + images.tobytes())
    )
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(struct.pack(">II", 2049, n) + labels.astype(np.uint8).tobytes())
    )


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("reproduce_mrgan", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_run_writes_the_table(tmp_path) -> None:
    images, labels = render_digits(400, seed=5, stroke=(2.0, 2.5))
    _write_idx(tmp_path, images, labels)
    out = tmp_path / "out"
    cmd = [sys.executable, str(SCRIPT), "--mnist", str(tmp_path), "--out", str(out), "--smoke"]
    proc = subprocess.run(
        [*cmd, "--seeds", "1", "--fractions", "0.001", "--synthetic", "60", "--val", "40"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((out / "results.json").read_text())
    row = report["results"]["60 labels (0.1%)"]
    assert set(row) == {
        "real only",
        "+ raw synthetic (stage 0)",
        "+ stage-1 refined",
        "+ stage-2 refined (MR-GAN)",
        "+ stage-2, test refined too",
        "+ stage-2 synthetic, raw real only",
    }
    assert all(len(v) == 1 and 0 <= v[0] <= 100 for v in row.values())
    assert set(report["synthetic_only"]) == {"raw synthetic", "stage-1 refined", "stage-2 refined"}
    assert report["refiner"]["wall_time_s"] > 0 and report["smoke"] is True
    quality = report["refiner"]["quality"]
    assert set(quality) == {"stage1", "stage2"} and quality["stage1"]["prediction_kept"][0] == 100.0
    assert set(report["results_val"]["60 labels (0.1%)"]) == set(row) and report["data"]["val"] == 40
    table = (out / "results.md").read_text()
    assert "| 60 labels (0.1%) |" in table and "Smoke run" in table and "validation split" in table
    assert (out / "refiner.safetensors").is_file()


def test_missing_files_are_named(script, tmp_path, capsys) -> None:
    assert script.main(["--mnist", str(tmp_path), "--out", str(tmp_path / "o"), "--smoke"]) == 2
    assert "missing MNIST file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("images_blob", "labels_blob", "match"),
    [
        (struct.pack(">IIII", 9999, 1, 28, 28) + bytes(784), struct.pack(">II", 2049, 1) + b"\x01", "magic"),
        (struct.pack(">IIII", 2051, 2, 28, 28) + bytes(784), struct.pack(">II", 2049, 2) + b"\x01\x02", "header"),
        (struct.pack(">IIII", 2051, 1, 28, 28) + bytes(784), struct.pack(">II", 2049, 2) + b"\x01\x02", "labels"),
        (struct.pack(">IIII", 2051, 1, 28, 28) + bytes(784), struct.pack(">II", 2049, 1) + b"\x0c", "0..9"),
        (struct.pack(">IIII", 2051, 1, 30, 30) + bytes(900), struct.pack(">II", 2049, 1) + b"\x01", "multiples"),
    ],
)
def test_malformed_files_are_refused(script, tmp_path, images_blob, labels_blob, match) -> None:
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(images_blob))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels_blob))
    with pytest.raises(script.DataError, match=match):
        script.read_idx(tmp_path)


def test_not_gzip_is_refused(script, tmp_path) -> None:
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"plain bytes")
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"plain bytes")
    with pytest.raises(script.DataError, match="decompress"):
        script.read_idx(tmp_path)


def test_labeled_draw_is_balanced_and_checked(script) -> None:
    labels = np.arange(200) % 10
    idx = script.draw_labeled(labels, 25, seed=0)
    assert len(idx) == 25 and len(set(idx)) == 25
    counts = np.bincount(labels[idx], minlength=10)
    assert counts.max() - counts.min() <= 1
    with pytest.raises(script.DataError, match="class"):
        script.draw_labeled(labels, 300, seed=0)
