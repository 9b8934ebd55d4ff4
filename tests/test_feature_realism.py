"""examples/feature_realism.py: SimCLR views, the identity score, the damage classifier, the script end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from test_reproduce_tanda_smoke import EXAMPLES, ROOT, write_fake_mnist

import learned_augment as la

sys.path.insert(0, str(EXAMPLES))
import feature_realism  # noqa: E402


def test_two_views_draw_per_image_and_stay_in_range() -> None:
    x = torch.rand(1, 3, 16, 16).expand(8, 3, 16, 16).contiguous()  # eight copies of one image
    gen = torch.Generator().manual_seed(0)
    v = feature_realism.two_views(x, gen)
    assert v.shape == x.shape and v.min() >= 0 and v.max() <= 1
    assert len({tuple(im.flatten()[:32].tolist()) for im in v}) == 8  # each copy got its own crop and jitter
    grey = feature_realism.two_views(torch.rand(4, 1, 12, 12), gen)
    assert grey.shape == (4, 1, 12, 12)


def test_identity_loses_no_image_and_the_encoder_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = (rng.random((30, 16, 16, 1)) * 255).astype(np.uint8)
    enc = feature_realism.Encoder(1).eval()
    lost = feature_realism.identity_loss(enc, images, la.TFSet(["identity", "vflip"]), seed=0)
    assert lost[0] == 0.0 and 0.0 <= lost[1] <= 1.0
    torch.save(enc.state_dict(), tmp_path / "e.pt")
    again = feature_realism.Encoder(1)
    again.load_state_dict(torch.load(tmp_path / "e.pt", weights_only=True))
    x = feature_realism.unit(images)
    assert torch.equal(feature_realism.embed(enc, x), feature_realism.embed(again.eval(), x))


def test_damage_classifier_learns_with_and_without_tfs() -> None:
    """Two separable classes (bright top half or bright bottom half): both classifiers beat chance clearly."""
    rng = np.random.default_rng(0)
    y = np.arange(200) % 2
    x = (rng.random((200, 28, 28, 1)) * 60).astype(np.uint8)
    x[y == 0, :14] += 150
    x[y == 1, 14:] += 150
    for tfs in (None, la.TFSet(["identity", "brightness(0.75)"])):
        clf = feature_realism.train_classifier(x[:160], y[:160], cifar=False, epochs=15, seed=0, tfset=tfs)
        assert feature_realism.accuracy(clf, x[160:], y[160:]) > 80.0


def test_script_on_fake_digits(tmp_path: Path) -> None:
    data = write_fake_mnist(tmp_path / "mnist", n=160)
    out = tmp_path / "fr.json"
    cmd = [sys.executable, str(EXAMPLES / "feature_realism.py"), "--mnist", str(data), "--ssl-images", "40",
           "--ssl-epochs", "1", "--labeled", "40", "--clf-epochs", "1", "--held", "20", "--d-steps", "2",
           "--damage-classifier", "tfs", "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert len(report["per_tf"]) == len(la.get_tfset("default"))
    assert set(report["spearman_with_damage"]) == {"pixel", "feature", "identity_lost"}
    assert report["command"].startswith("python examples/feature_realism.py --mnist ")
    encoder = out.with_suffix(".encoder.pt")
    assert encoder.is_file()
    again = tmp_path / "again.json"  # the saved encoder is reused, and the SimCLR training skipped
    proc = subprocess.run([*cmd[:-1], str(again), "--encoder", str(encoder)], capture_output=True, text=True,
                          timeout=600, cwd=ROOT)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "SimCLR encoder on" not in proc.stdout
    assert json.loads(again.read_text())["knn_accuracy"] == report["knn_accuracy"]
