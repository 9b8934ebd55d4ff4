"""examples/policy_image_stats.py: the statistics it reports, and the whole script on fake MNIST files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from test_reproduce_tanda_smoke import EXAMPLES, ROOT, write_fake_mnist

sys.path.insert(0, str(EXAMPLES))
from policy_image_stats import image_stats  # noqa: E402


def test_image_stats_of_known_images() -> None:
    img = np.zeros((2, 4, 4, 3), np.uint8)
    img[0] = 255
    s = image_stats(img)
    assert s["mean"] == 0.5 and s["white"] == 0.5 and s["black"] == 0.5 and s["contrast"] == 0.0
    half = np.zeros((1, 2, 2), np.uint8)
    half[0, 0] = 255
    assert image_stats(half)["contrast"] == 0.5


def test_script_reports_real_uniform_and_policy_rows(tmp_path: Path) -> None:
    data = write_fake_mnist(tmp_path / "mnist", n=64)
    policy = ROOT / "learned_augment" / "pretrained" / "mnist-meanfield.safetensors"
    out = tmp_path / "stats.json"
    cmd = [sys.executable, str(EXAMPLES / "policy_image_stats.py"), "--data", str(data), "--dataset", "mnist",
           "--images", "32", "--policy", str(policy), "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [r["images"] for r in rows][:2] == ["real images", "uniform sequences (mnist, L=10)"]
    assert rows[2]["images"] == str(policy)
    assert all(0.0 <= r["white"] <= 1.0 and 0.0 <= r["mean"] <= 1.0 for r in rows)
