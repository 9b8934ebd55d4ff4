"""Refiner: applying it (tensors and arrays), stages, save/load round trip, and hostile files."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch

from learned_augment.io import ArtifactError, load_artifact, read_metadata, save_artifact
from learned_augment.refine import Refiner

from .conftest import make_refiner


def test_refine_keeps_dtype_shape_and_range() -> None:
    refiner = make_refiner()
    u8 = torch.randint(0, 256, (3, 1, 16, 16), dtype=torch.uint8)
    out = refiner.refine(u8)
    assert out.dtype == torch.uint8 and out.shape == u8.shape
    for dtype in (torch.float32, torch.float64):
        x = torch.rand(3, 1, 16, 16, dtype=dtype)
        y = refiner.refine(x)
        assert y.dtype == dtype and y.shape == x.shape and 0 <= y.min() and y.max() <= 1
    single = refiner.refine(u8[0])
    assert torch.equal(single, out[0])


def test_uint8_and_float_inputs_agree() -> None:
    refiner = make_refiner()
    u8 = torch.randint(0, 256, (2, 1, 16, 16), dtype=torch.uint8)
    a = refiner.refine(u8).float()
    b = torch.round(refiner.refine(u8.float() / 255) * 255)
    assert (a - b).abs().max() <= 1


def test_refine_numpy_layouts() -> None:
    grey = make_refiner()
    x = np.random.default_rng(0).integers(0, 256, (5, 16, 16), dtype=np.uint8)
    assert grey.refine_numpy(x).shape == (5, 16, 16)
    assert grey.refine_numpy(x[..., None]).shape == (5, 16, 16, 1)
    np.testing.assert_array_equal(grey.refine_numpy(x, batch_size=2), grey.refine_numpy(x))
    colour = make_refiner(c_real=3)
    assert colour.refine_numpy(x).shape == (5, 16, 16, 3)
    assert colour.refine_numpy(np.zeros((2, 16, 16, 3), np.uint8), "real_to_shared").shape == (2, 16, 16, 3)


def test_directions_and_stages() -> None:
    refiner = make_refiner(stages=2)
    x = torch.randint(0, 256, (2, 1, 16, 16), dtype=torch.uint8)
    first = refiner.at_stage(1)
    assert first.stages == 1 and first.directions == ("synthetic_to_real",)
    expected = refiner.synthetic_to_real[0]
    with torch.no_grad():
        manual = torch.round((expected(x.float() / 127.5 - 1) + 1) / 2 * 255).clamp(0, 255).to(torch.uint8)
    assert torch.equal(first.refine(x), manual)
    assert not torch.equal(refiner.refine(x), first.refine(x))
    assert refiner.refine(x, "real_to_shared").shape == x.shape
    with pytest.raises(ValueError, match="stages >= 2"):
        first.refine(x, "real_to_shared")
    with pytest.raises(ValueError, match="direction"):
        refiner.refine(x, "sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        refiner.at_stage(3)


@pytest.mark.parametrize(
    ("x", "err"),
    [
        (torch.zeros(2, 3, 16, 16, dtype=torch.uint8), ValueError),
        (torch.full((1, 1, 16, 16), 1.5), ValueError),
        (torch.full((1, 1, 16, 16), float("nan")), ValueError),
        (torch.zeros(1, 1, 18, 18), ValueError),
        (torch.zeros(1, 1, 16, 16, dtype=torch.int32), TypeError),
        (np.zeros((1, 1, 16, 16), np.uint8), TypeError),
    ],
)
def test_refine_rejects_bad_input(x, err) -> None:
    with pytest.raises(err):
        make_refiner().refine(x)


def test_repr_and_to() -> None:
    refiner = make_refiner()
    assert refiner.to("cpu") is refiner
    text = repr(refiner)
    assert "stages=2" in text and "1->1" in text and "16x16" in text and "real_to_shared" in text


def test_save_load_round_trip_is_bit_exact(tmp_path) -> None:
    refiner = make_refiner(c_real=3)
    refiner.history = {"stage1": {"G_total": [1.5, 0.25], "lr": [2e-4, 1e-4]}, "stage2": {"G_total": [0.1, 0.3]}}
    path = refiner.save(tmp_path / "r.safetensors")
    loaded = Refiner.load(path)
    for a, b in zip(refiner._networks().items(), loaded._networks().items()):
        assert a[0] == b[0]
        for (ka, ta), (kb, tb) in zip(a[1].state_dict().items(), b[1].state_dict().items()):
            assert ka == kb and torch.equal(ta, tb)
    assert loaded.history == refiner.history
    assert loaded.provenance == refiner.provenance and loaded.image_size == (16, 16)
    x = np.random.default_rng(1).integers(0, 256, (4, 16, 16), dtype=np.uint8)
    np.testing.assert_array_equal(loaded.refine_numpy(x), refiner.refine_numpy(x))
    meta = read_metadata(path)
    assert meta["kind"] == "refiner" and meta["refiner"]["stages"] == 2
    assert meta["refiner"]["channels"] == {"synthetic": 1, "real": 3}
    assert meta["refiner"]["networks"]["stage2.real_to_shared"]["ngf"] == 4


def test_fitted_refiner_round_trip_keeps_provenance(tmp_path, digits16) -> None:
    from learned_augment.refine import fit_refiner

    from .conftest import TINY

    x, _ = digits16
    refiner = fit_refiner(x, 255 - x, stages=1, steps=2, **TINY)
    loaded = Refiner.load(refiner.save(tmp_path / "r.safetensors"))
    p = loaded.provenance
    assert p["steps"] == [2] and p["device"] == "cpu" and "fingerprint" in p["synthetic"] and p["wall_time_s"] >= 0
    assert p["library_version"] and loaded.history == refiner.history


@pytest.fixture
def saved(tmp_path):
    path = make_refiner().save(tmp_path / "r.safetensors")
    tensors, meta = load_artifact(path)
    return tmp_path, tensors, meta


def _resave(tmp_path, tensors, meta, name="bad.safetensors"):
    body = {k: v for k, v in meta.items() if k not in ("format_version", "kind", "library_version")}
    return save_artifact(tmp_path / name, tensors, kind=meta["kind"], metadata=body)


def test_truncated_and_garbage_files(saved) -> None:
    tmp_path, _, _ = saved
    data = (tmp_path / "r.safetensors").read_bytes()
    for i, blob in enumerate([data[: len(data) // 2], data[:5], b"", b"\x00" * 64, struct.pack("<Q", 10**12) + b"{}"]):
        p = tmp_path / f"t{i}.safetensors"
        p.write_bytes(blob)
        with pytest.raises(ArtifactError):
            Refiner.load(p)
    with pytest.raises(FileNotFoundError):
        Refiner.load(tmp_path / "missing.safetensors")


def test_wrong_kind(tmp_path) -> None:
    save_artifact(tmp_path / "p.safetensors", {"w": torch.zeros(2)}, kind="policy", metadata={})
    with pytest.raises(ArtifactError, match="not a 'refiner'"):
        Refiner.load(tmp_path / "p.safetensors")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t, m: m["refiner"]["networks"]["stage1.synthetic_to_real"].update(ngf=1024, n_blocks=64),
        lambda t, m: m["refiner"]["networks"]["stage1.synthetic_to_real"].update(ngf="4"),
        lambda t, m: m["refiner"]["networks"]["stage1.synthetic_to_real"].update(evil=1),
        lambda t, m: m["refiner"]["networks"].update({"stage9.synthetic_to_real": {}}),
        lambda t, m: m["refiner"]["networks"].pop("stage2.synthetic_to_real"),
        lambda t, m: m["refiner"].update(stages=99),
        lambda t, m: m["refiner"].update(stages=True),
        lambda t, m: m["refiner"].update(image_size=[15, 16]),
        lambda t, m: m["refiner"].update(image_size="big"),
        lambda t, m: m["refiner"].update(history={"stage1": ["G_total"]}),
        lambda t, m: m.pop("refiner"),
        lambda t, m: m.update(provenance=[1]),
        lambda t, m: t.pop("stage1.synthetic_to_real.model.1.weight"),
        lambda t, m: t.update({"stage1.synthetic_to_real.model.1.weight": torch.zeros(4, 1, 3, 3)}),
        lambda t, m: t.update({"stage1.synthetic_to_real.model.1.bias": torch.zeros(4, dtype=torch.float64)}),
        lambda t, m: t.update({"extra": torch.zeros(1)}),
    ],
)
def test_inconsistent_refiner_files_raise_artifact_error(saved, mutate) -> None:
    tmp_path, tensors, meta = saved
    meta = json.loads(json.dumps(meta))
    mutate(tensors, meta)
    with pytest.raises(ArtifactError):
        Refiner.load(_resave(tmp_path, tensors, meta))
