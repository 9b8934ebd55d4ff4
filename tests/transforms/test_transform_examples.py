"""The quickstart examples run end to end on the shipped sample and write their PNGs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from learned_augment.io import load_policy

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# Each run takes about 5-10 s of CPU (imports, a 1-step fit, 2 forked workers); the limit leaves room for a busy
# machine.
TIMEOUT_S = 60

CASES = {
    "quickstart_torchvision.py": (
        ["--steps", "1", "--images", "64"],
        ["quickstart_torchvision.png", "frequencies.png", "mnist-lstm.safetensors"],
    ),
    "quickstart_albumentations.py": ([], ["quickstart_albumentations.png", "pipeline.json"]),
}


@pytest.mark.parametrize("script", list(CASES))
def test_quickstart_runs(script: str, tmp_path: Path) -> None:
    args, outputs = CASES[script]
    run = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--out", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        cwd=tmp_path,
    )
    assert run.returncode == 0, f"{script} failed:\n{run.stdout}\n{run.stderr}"
    for name in outputs:
        assert (tmp_path / name).is_file(), f"{script} did not write {name}"
    for png in tmp_path.glob("*.png"):
        img = cv2.imread(str(png))
        assert img is not None and img.shape[0] > 28 and img.shape[1] > 28, png
    if "mnist-lstm.safetensors" in outputs:
        assert load_policy(tmp_path / "mnist-lstm.safetensors").tfset.name == "mnist"
