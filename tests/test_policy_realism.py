"""examples/policy_realism.py: its rank correlation, the reference discriminator, the floor override, the script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_reproduce_tanda_smoke import EXAMPLES, ROOT, write_fake_mnist

import learned_augment as la
from learned_augment.fit import loop

sys.path.insert(0, str(EXAMPLES))
import policy_realism  # noqa: E402


def test_spearman_ranks() -> None:
    a = np.array([0.1, 0.5, 0.2, 0.9])
    assert policy_realism.spearman(a, a**3) == pytest.approx(1.0)
    assert policy_realism.spearman(a, -a) == pytest.approx(-1.0)


def test_reference_discriminator_finds_the_destructive_tf() -> None:
    """Against uniformly drawn single TFs, D learns that inverted digits are fake and identity ones are not."""
    rng = np.random.default_rng(0)
    digits = ((rng.random((300, 28, 28, 1)) < 0.15) * 255).astype(np.uint8)
    tfs = la.TFSet(["identity", "invert"])
    detect = policy_realism.reference_detectability(digits[:250], digits[250:], tfs, steps=60, seed=0)
    assert detect[1] > detect[0] + 0.1, detect


def test_fit_with_floor_sets_and_restores_the_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    library = loop.NO_OP_FLOOR
    seen = []

    def fake_fit(images: np.ndarray, **kwargs: object) -> la.Policy:
        seen.append(loop.NO_OP_FLOOR)
        return la.make_policy("lstm", "default", 2)

    monkeypatch.setattr(policy_realism.la, "fit_policy", fake_fit)
    policy, _ = policy_realism.fit_with_floor(np.zeros((4, 8, 8, 1), np.uint8), 1e-3, seed=0, steps=1)
    assert seen == [1e-3] and loop.NO_OP_FLOOR == library and policy.num_tfs == len(la.get_tfset("default"))


def test_script_on_fake_digits(tmp_path: Path) -> None:
    data = write_fake_mnist(tmp_path / "mnist", n=120)
    out = tmp_path / "realism.json"
    cmd = [sys.executable, str(EXAMPLES / "policy_realism.py"), "--mnist", str(data), "--images", "40", "--held",
           "20", "--d-steps", "3", "--steps", "6", "--floors", "1e-6,1e-3", "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert len(report["detectability"]) == len(la.get_tfset("default"))
    assert report["command"].startswith("python examples/policy_realism.py --mnist ")
    assert "--floors 1e-6,1e-3" in report["command"]
    assert [f["no_op_floor"] for f in report["fits"]] == [1e-6, 1e-3]
    for fit in report["fits"]:
        assert -1.0 <= fit["spearman_vs_detectability"] <= 1.0
        assert sum(fit["frequencies"].values()) == pytest.approx(1.0, abs=1e-3)
        assert fit["tfs_under_half_percent"]["step5"] is not None
