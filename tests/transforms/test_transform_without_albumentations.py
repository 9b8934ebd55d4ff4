"""Albumentations is optional: the torchvision side works without it, and importing it makes no network call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import albumentations as A
import numpy as np
import pytest

import learned_augment as la

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str, env: dict[str, str] | None = None) -> str:
    """Run ``code`` in a fresh interpreter (one thread); its stdout, or the failure with its stderr."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=full_env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


WITHOUT_ALBUMENTATIONS = """
    import sys
    sys.modules["albumentations"] = None  # `import albumentations` now raises ImportError, as when not installed
    import json, pickle
    import numpy as np, torch
    from PIL import Image
    from torchvision import transforms as T1, tv_tensors
    from torchvision.transforms import v2
    import learned_augment as la
    from learned_augment.transforms import LearnedPolicyTransform, PolicyAugmentedDataset, RefineSynthetic

    digit = np.zeros((28, 28), np.uint8)
    digit[5:22, 12:16] = 255
    t = LearnedPolicyTransform.from_pretrained("mnist-lstm", p=0.9, seed=0)
    out = {"numpy": t(digit).shape, "pil": T1.Compose([t, T1.ToTensor()])(Image.fromarray(digit)).shape}
    out["replay"] = bool(np.array_equal(t.replay(digit, t.last_params), t.replay(digit, t.last_params)))
    out["batch"] = t(torch.zeros(3, 1, 28, 28, dtype=torch.uint8)).shape
    boxes = tv_tensors.BoundingBoxes([[12, 5, 16, 22]], format="XYXY", canvas_size=(28, 28))
    img, target = v2.Compose([t])(tv_tensors.Image(torch.from_numpy(digit)[None]), {"boxes": boxes})
    out["v2"] = [type(img).__name__, type(target["boxes"]).__name__]
    out["pickle"] = pickle.loads(pickle.dumps(t))(digit).shape
    out["dataset"] = PolicyAugmentedDataset([(digit, 3)], t, p_augment=1.0)[0][0].shape
    out["refine"] = RefineSynthetic("pretrained:digits-synthetic-to-mnist")(digit).shape
    try:
        t(image=digit)
    except TypeError as e:
        out["keyword_call"] = str(e)
    out["bases"] = [c.__module__.split(".")[0] for c in LearnedPolicyTransform.__mro__]
    out["module"] = isinstance(t, torch.nn.Module) and not t.state_dict()
    out["sequential"] = torch.nn.Sequential(t)(torch.zeros(1, 28, 28, dtype=torch.uint8)).shape
    out["imported"] = sys.modules["albumentations"] is not None
    print(json.dumps(out))
"""


def test_torchvision_side_works_without_albumentations() -> None:
    out = json.loads(run_python(WITHOUT_ALBUMENTATIONS).splitlines()[-1])
    assert out["numpy"] == [28, 28] and out["pil"] == [1, 28, 28] and out["replay"]
    assert out["batch"] == [3, 1, 28, 28] and out["v2"] == ["Image", "BoundingBoxes"]
    assert out["pickle"] == [28, 28] and out["dataset"] == [28, 28] and out["refine"] == [28, 28]
    assert "albumentations" not in out["bases"] and not out["imported"]
    assert out["module"] and out["sequential"] == [1, 28, 28]
    assert "learned-augment[albumentations]" in out["keyword_call"], out["keyword_call"]


NETWORK_AUDIT = """
    import json, os, sys
    calls = []
    sys.addaudithook(lambda event, args: calls.append(event) if event.startswith(("socket.", "urllib.")) else None)
    import learned_augment
    print(json.dumps({"calls": calls, "albumentations": "albumentations" in sys.modules,
                      "env": os.environ.get("NO_ALBUMENTATIONS_UPDATE")}))
"""


def test_import_makes_no_network_call() -> None:
    env = {k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    full = {**env, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(NETWORK_AUDIT)], capture_output=True, text=True, env=full, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["calls"] == [], f"importing learned_augment reached for the network: {out['calls']}"
    # With Albumentations installed it is imported (A.from_dict must find our classes), with its update check off.
    assert out["albumentations"] and out["env"] == "1"


def test_albumentations_is_an_extra_and_still_in_the_test_extra() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = [d.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip() for d in project["dependencies"]]
    assert "albumentations" not in names
    extras = project["optional-dependencies"]
    assert any(d.startswith("albumentations") for d in extras["albumentations"])
    assert any(d.startswith("albumentations") for d in extras["test"])


def test_albumentations_names_stay_the_public_ones(tmp_path: Path) -> None:
    """Saved pipelines name ``learned_augment.transforms.<Class>``; the split into modules must not change that."""
    path = la.load_pretrained("mnist-lstm").save(str(tmp_path / "p.safetensors"))
    pipeline = A.Compose(
        [la.LearnedPolicyTransform(path, seed=1), la.RefineSynthetic("pretrained:digits-synthetic-to-mnist")]
    )
    spec = A.to_dict(pipeline)
    names = [t["__class_fullname__"] for t in spec["transform"]["transforms"]]
    assert names == ["learned_augment.transforms.LearnedPolicyTransform", "learned_augment.transforms.RefineSynthetic"]
    img = np.zeros((28, 28), np.uint8)
    restored = A.from_dict(json.loads(json.dumps(spec)))
    assert restored(image=img)["image"].shape == (28, 28)

    class Mine(la.LearnedPolicyTransform):
        pass

    assert Mine.get_class_fullname() == f"{__name__}.Mine"


@pytest.mark.parametrize("cls", [la.LearnedPolicyTransform, la.RefineSynthetic])
def test_albumentations_classes_when_installed(cls: type) -> None:
    assert issubclass(cls, A.BasicTransform)
