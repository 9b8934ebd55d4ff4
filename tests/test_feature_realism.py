"""examples/feature_realism.py: ranks, the split, SimCLR views, the three scores, the damage classifier, the script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_reproduce_tanda_smoke import EXAMPLES, ROOT, write_fake_mnist
from torch import nn

import learned_augment as la

sys.path.insert(0, str(EXAMPLES))
import feature_realism  # noqa: E402


def test_spearman_shares_ranks_between_ties() -> None:
    assert feature_realism.average_ranks(np.array([5.0, 1.0, 5.0, 0.0])).tolist() == [2.5, 1.0, 2.5, 0.0]
    # Ties broken by order would rank the three zeros 0, 1, 2 against 2, 1, 0 and lower the correlation.
    a, b = np.array([0.0, 0.0, 0.0, 1.0, 2.0]), np.array([0.0, 0.0, 0.0, 3.0, 4.0])
    assert feature_realism.spearman(a, b) == pytest.approx(1.0)
    assert feature_realism.spearman(a, -b) == pytest.approx(-1.0)
    assert feature_realism.spearman(a, np.ones(5)) == 0.0
    lo, hi = feature_realism.gap_interval(b, a, b, seed=0, n=200)
    assert lo <= 0.0 <= hi  # the same ranks: no gap


def test_held_out_images_are_in_neither_training_set() -> None:
    held, ssl, lab = feature_realism.split(500, held=100, ssl_images=450, labeled=300, seed=3)
    assert len(held) == 100 and len(ssl) == 400 and len(lab) == 300
    assert not set(held) & set(ssl) and not set(held) & set(lab)


def test_two_views_draw_per_image_and_stay_in_range() -> None:
    x = torch.rand(1, 3, 16, 16).expand(8, 3, 16, 16).contiguous()  # eight copies of one image
    gen = torch.Generator().manual_seed(0)
    v = feature_realism.two_views(x, gen)
    assert v.shape == x.shape and v.min() >= 0 and v.max() <= 1
    assert len({tuple(im.flatten()[:32].tolist()) for im in v}) == 8  # each copy got its own crop and jitter
    grey = feature_realism.two_views(torch.rand(4, 1, 12, 12), gen)
    assert grey.shape == (4, 1, 12, 12)


def test_identity_loses_no_image_and_a_flip_of_noise_loses_most() -> None:
    rng = np.random.default_rng(0)
    images = (rng.random((30, 16, 16, 1)) * 255).astype(np.uint8)
    pixels = nn.Flatten()  # features = pixels: a flipped noise image is nearest to some other image
    lost = feature_realism.identity_loss(pixels, images, la.TFSet(["identity", "vflip"]), seed=0)
    assert lost[0] == 0.0 and lost[1] > 0.5


def test_feature_discriminator_detects_inverted_digits() -> None:
    rng = np.random.default_rng(0)
    digits = ((rng.random((200, 16, 16, 1)) < 0.15) * 255).astype(np.uint8)
    torch.manual_seed(0)
    enc = feature_realism.Encoder(1, width=8).eval()
    detect = feature_realism.feature_detectability(
        enc, digits[:150], digits[150:], la.TFSet(["identity", "invert"]), steps=60, seed=0
    )
    assert abs(detect[0]) < 0.05 and detect[1] > detect[0] + 0.1, detect


def test_encoder_file_keeps_its_split_and_refuses_another(tmp_path: Path) -> None:
    enc = feature_realism.Encoder(1, width=8).eval()
    about = {"data": "mnist", "seed": 0, "held": 100, "images": 500}
    path = tmp_path / "e.encoder.safetensors"
    feature_realism.save_encoder(enc, path, {**about, "ssl_epochs": 3})
    again, meta = feature_realism.load_encoder(path, about)
    x = torch.rand(4, 1, 16, 16)
    assert torch.equal(enc(x), again(x)) and meta["ssl_epochs"] == 3
    with pytest.raises(SystemExit, match="seed"):  # another split: its images may include the held-out ones
        feature_realism.load_encoder(path, {**about, "seed": 1})


def _top_or_bottom(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Two classes: the bright half is the top (0) or the bottom (1); a vertical flip swaps them."""
    rng = np.random.default_rng(0)
    y = np.arange(n) % 2
    x = (rng.random((n, 28, 28, 1)) * 60).astype(np.uint8)
    x[y == 0, :14] += 150
    x[y == 1, 14:] += 150
    return x, y


def test_damage_classifier_learns_and_sees_the_tfs_it_is_given() -> None:
    x, y = _top_or_bottom(200)
    flipped = x[160:, ::-1].copy()
    plain = feature_realism.train_classifier(x[:160], y[:160], cifar=False, epochs=15, seed=0)
    assert feature_realism.accuracy(plain, x[160:], y[160:]) > 80.0
    assert feature_realism.accuracy(plain, flipped, y[160:]) < 20.0  # a flip reads as the other class
    seen = feature_realism.train_classifier(x[:160], y[:160], False, 15, 0, tfset=la.TFSet(["vflip"]))
    # Half its images flipped under the same label: the flip no longer decides the class the other way.
    assert feature_realism.accuracy(seen, flipped, y[160:]) > 30.0


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
    assert report["changing_tfs"] < len(la.get_tfset("default"))  # colour TFs leave grey digits as they are
    assert report["encoder"] == {
        "data": "mnist",
        "seed": 0,
        "held": 20,
        "images": 80,
        "ssl_images": 40,
        "ssl_epochs": 1,
    }
    assert report["command"].startswith("python examples/feature_realism.py --mnist ")
    encoder = out.with_suffix(".encoder.safetensors")
    again = tmp_path / "again.json"  # the saved encoder is reused, and the SimCLR training skipped
    proc = subprocess.run([*cmd[:-1], str(again), "--encoder", str(encoder)], capture_output=True, text=True,
                          timeout=600, cwd=ROOT)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "SimCLR encoder on" not in proc.stdout
    assert json.loads(again.read_text())["knn_accuracy"] == report["knn_accuracy"]
    other = subprocess.run([*cmd[:-1], str(again), "--encoder", str(encoder), "--seed", "1"], capture_output=True,
                           text=True, timeout=600, cwd=ROOT)  # fmt: skip
    assert other.returncode != 0 and "encoder trained with other seed" in other.stderr
