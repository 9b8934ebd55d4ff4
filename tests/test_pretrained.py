import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import learned_augment as la
from learned_augment.io import read_metadata
from learned_augment.pretrained import pretrained_path

EXPECTED = {"mnist-lstm", "mnist-meanfield", "cifar10-lstm", "cifar10-meanfield", "digits-synthetic-to-mnist"}
ROOT = Path(__file__).resolve().parent.parent


def test_registry_lists_the_shipped_artifacts():
    assert EXPECTED <= set(la.list_pretrained())
    with pytest.raises(KeyError, match="available"):
        pretrained_path("imagenet-transformer")


def test_unknown_names_are_refused_plainly():
    with pytest.raises(la.UnknownNameError) as info:
        la.load_pretrained("nope")
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    assert str(info.value).startswith("no pretrained artifact named 'nope'; available: ['cifar10-lstm', ")


def test_names_that_are_paths_are_refused(tmp_path):
    # Only the shipped artifacts load by name: a path, even to a valid policy file, is not a name.
    la.UniformPolicy(["hflip"], 1).save(tmp_path / "elsewhere.safetensors")
    folder = pretrained_path("mnist-lstm").parent
    outside = os.path.relpath(tmp_path / "elsewhere", folder)
    for name in [outside, "../pretrained/mnist-lstm", "./mnist-lstm", str(folder / "mnist-lstm")]:
        with pytest.raises(la.UnknownNameError, match=r"^no pretrained artifact named .*; available: \["):
            la.load_pretrained(name)
        with pytest.raises(ValueError, match="no pretrained artifact named"):
            la.LearnedPolicyTransform.from_pretrained(name)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_artifact_loads_and_matches_its_card(name):
    card = la.model_card(name)
    path = pretrained_path(name)
    meta = read_metadata(path)
    assert card["name"] == name and card["kind"] == meta["kind"]
    assert card["file_bytes"] == path.stat().st_size
    for key in ("summary", "data", "fit_command", "seed", "end_model", "fit"):
        assert key in card, key
    # Every card says where the artifact should not be used, in words a user reads before adopting it.
    assert isinstance(card.get("limits"), str) and len(card["limits"]) > 40, card.get("limits")
    obj = la.load_pretrained(name)
    if meta["kind"] == "policy":
        assert card["tfs"] == meta["tfs"] == obj.tfset.ids
        assert card["seq_len"] == meta["seq_len"] == obj.seq_len
        assert card["model"] == meta["model"] == obj.kind
        assert card["fit"]["steps"] == meta["provenance"]["steps"]
        p = obj.probabilities()
        assert p.shape == (len(obj.tfset),) and abs(p.sum() - 1) < 1e-6
    else:
        assert meta["kind"] == "refiner"
        x = la.load_sample()[0][:4]
        out = obj.refine_numpy(x)
        assert out.shape[0] == 4 and out.dtype == np.uint8


@pytest.mark.parametrize("name", ["mnist-lstm", "cifar10-meanfield"])
def test_from_pretrained_transform(name):
    t = la.LearnedPolicyTransform.from_pretrained(name, p=1.0, seed=0)
    img = np.zeros((28, 28), np.uint8) if name.startswith("mnist") else np.zeros((32, 32, 3), np.uint8)
    img[8:20, 10:16] = 255
    out = t(img)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert name in repr(t)


def test_card_measured_gain_is_what_the_table_says():
    card = la.model_card("mnist-meanfield")
    row = card["end_model"]["accuracy"]
    assert row["aug"] == "tanda-mf" and len(row["accs"]) == 3
    assert abs(np.mean(row["accs"]) - row["acc_mean"]) < 0.01


def test_wheel_contains_artifacts_and_sample(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    wheel = next(tmp_path.glob("learned_augment-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in EXPECTED:
        assert f"learned_augment/pretrained/{name}.safetensors" in names
        assert f"learned_augment/pretrained/{name}.json" in names
    assert "learned_augment/samples/mnist_sample.npz" in names
    assert "learned_augment/samples/README.md" in names
    size = wheel.stat().st_size
    assert size < 10 * 1024 * 1024, f"wheel is {size} bytes"
    json.dumps({"wheel_bytes": size})
