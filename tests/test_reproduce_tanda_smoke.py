"""Smoke test of examples/reproduce_tanda.py: the whole pipeline on fake MNIST IDX files, and its refusals."""

from __future__ import annotations

import gzip
import importlib
import inspect
import json
import struct
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import learned_augment as la

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SCRIPT = EXAMPLES / "reproduce_tanda.py"
ROWS = ["none", "basic", "heuristic", "tanda-mf", "tanda-lstm", "randaugment", "trivialaugment", "autoaugment"]


def write_fake_mnist(folder: Path, n: int = 600) -> Path:
    """Gzipped IDX files named like MNIST's t10k set: sparse random 28x28 'digits', labels cycling 0..9."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images = ((rng.random((n, 28, 28)) < 0.15) * 255).astype(np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
    )
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(struct.pack(">II", 2049, n) + labels.tobytes()))
    return folder


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    # One thread: the suite shares the machine, and a 100-image run gains nothing from more.
    cmd = [sys.executable, str(SCRIPT), "--dataset", "mnist", "--threads", "1", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    """One ``--smoke`` run of every row (data folder, output folder, finished process)."""
    base = tmp_path_factory.mktemp("tanda")
    data, out = write_fake_mnist(base / "mnist"), base / "out"
    return data, out, run("--data", str(data), "--out", str(out), "--smoke")


def test_smoke_run_writes_every_row(smoke: tuple[Path, Path, subprocess.CompletedProcess[str]]) -> None:
    _, out, proc = smoke
    assert proc.returncode == 0, proc.stderr[-3000:]

    report = json.loads((out / "results.json").read_text())
    assert [r["aug"] for r in report["rows"]] == ROWS
    for row in report["rows"]:
        assert 0.0 <= row["acc_mean"] <= 100.0 and len(row["accs"]) == 1 and row["recipe"]
    settings = report["settings"]
    default_p = inspect.signature(la.LearnedPolicyTransform).parameters["p"].default
    assert settings["smoke"] and settings["p_augment"] == default_p and settings["epochs"] == 1
    assert settings["labels"] == 100 and settings["test_images"] == 200 and settings["fit"]["overrides"]["steps"] == 3
    assert set(report["fits"]) == {"tanda-mf", "tanda-lstm"} and "not_run" not in settings["fit"]

    md = (out / "results.md").read_text()
    for label in ("None", "Basic", "Heuristic", "TANDA mean-field", "TANDA LSTM", "RandAugment", "TrivialAugmentWide"):
        assert f"| {label}" in md
    assert "AutoAugment" in md and "SMOKE" in md
    for png in ("freq-tanda-mf.png", "freq-tanda-lstm.png", "samples.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "TrivialAugmentWide" in proc.stdout  # the table is printed too


def test_saved_policies_are_reused(smoke: tuple[Path, Path, subprocess.CompletedProcess[str]], tmp_path: Path) -> None:
    data, first, _ = smoke
    proc = run(
        "--data", str(data), "--out", str(tmp_path), "--smoke", "--augs", "tanda-mf,tanda-lstm",
        "--policy-mf", str(first / "policy-tanda-mf.safetensors"),
        "--policy-lstm", str(first / "policy-tanda-lstm.safetensors"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "results.json").read_text())
    assert [r["aug"] for r in report["rows"]] == ["tanda-mf", "tanda-lstm"]
    assert all(f["source"].startswith("loaded from") for f in report["fits"].values())
    assert "fit tanda" not in proc.stdout
    assert "not_run" in report["settings"]["fit"]


def test_missing_data_exits_with_one_line(tmp_path: Path) -> None:
    proc = run("--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"), "--smoke")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    message = proc.stderr.strip()
    assert message.startswith("error:") and "\n" not in message and "nowhere" in message, message


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The script as a module (its helpers ``_data``/``_models`` live next to it)."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    return importlib.import_module("reproduce_tanda")


@pytest.mark.parametrize("damage", ["empty", "magic", "truncated", "not-gzip", "counts", "labels", "too-few"])
def test_malformed_data_is_refused(script: ModuleType, tmp_path: Path, damage: str) -> None:
    data = write_fake_mnist(tmp_path / "mnist", n=100)
    images, labels = data / "t10k-images-idx3-ubyte.gz", data / "t10k-labels-idx1-ubyte.gz"
    raw = gzip.decompress(images.read_bytes())
    if damage == "empty":
        images.unlink()
    elif damage == "magic":
        images.write_bytes(gzip.compress(struct.pack(">I", 1234) + raw[4:]))
    elif damage == "truncated":
        images.write_bytes(images.read_bytes()[:200])
    elif damage == "not-gzip":
        images.write_bytes(b"this is not a gzip file")
    elif damage == "counts":
        images.write_bytes(gzip.compress(raw[: 16 + 50 * 784]))
    elif damage == "labels":
        labels.write_bytes(gzip.compress(struct.pack(">II", 2049, 100) + bytes([42] * 100)))
    # "too-few": the 50 pool images of an intact 100-image file cannot give the smoke run's 100 balanced labels.
    argv = ["--data", str(data), "--dataset", "mnist", "--out", str(tmp_path / "out"), "--smoke"]
    with pytest.raises(SystemExit) as info:
        script.main(argv)
    message = str(info.value.code)
    assert message.startswith("error:") and "\n" not in message, message
    assert not (tmp_path / "out" / "results.json").exists()


def test_first_seed_continues_a_run(script: ModuleType, tmp_path: Path) -> None:
    """``--first-seed S --seeds N`` runs seeds S..S+N-1 (each seed fixes its subset, init and batch order)."""
    base = ["--data", str(tmp_path), "--dataset", "mnist", "--out", str(tmp_path / "o")]
    later = script.parse_args([*base, "--first-seed", "2", "--seeds", "2"])
    assert later.seed_list == [2, 3]
    assert script.parse_args(base).seed_list == [0, 1, 2]
    with pytest.raises(SystemExit):
        script.parse_args([*base, "--first-seed", "-1"])


def test_tfs_flag_appends_ids_that_hold_a_plus_sign(script: ModuleType) -> None:
    tfs = script.parse_tfs("mnist+identity+rotate(+90)+cutout(0.5)")
    assert tfs.ids[-3:] == ["identity", "rotate(+90)", "cutout(0.5)"]
    assert len(tfs) == len(la.get_tfset("mnist")) + 3


def test_tfs_flag_takes_ids_alone(script: ModuleType) -> None:
    """Without a named set first, ``--tfs`` is the listed ids only (a vocabulary minus some TFs, for instance)."""
    tfs = script.parse_tfs("rotate(+5)+hflip+cutout(0.25)")
    assert tfs.ids == ["rotate(+5)", "hflip", "cutout(0.25)"]
    with pytest.raises(KeyError, match="unknown TF 'no_such_tf'"):
        script.parse_tfs("rotate(+5)+no_such_tf")


def test_no_op_floor_flag_holds_only_during_the_fit(
    script: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--no-op-floor`` sets the diversity charge's floor for the fit and puts the library's back afterwards."""
    from learned_augment.fit import loop

    library = loop.NO_OP_FLOOR
    seen = []
    monkeypatch.setattr(script, "fit_policy", lambda *a, **k: seen.append(loop.NO_OP_FLOOR) or "fitted")
    base = ["--data", str(tmp_path), "--dataset", "mnist", "--out", str(tmp_path / "o"), "--tfs", "default"]
    args = script.parse_args([*base, "--no-op-floor", "1e-3"])
    assert script.fit_one("tanda-lstm", np.zeros((4, 8, 8, 1), np.uint8), args, 10) == "fitted"
    assert seen == [1e-3] and loop.NO_OP_FLOOR == library
    for bad in ("0", "-1", "inf"):
        with pytest.raises(SystemExit):
            script.parse_args([*base, "--no-op-floor", bad])


def test_d_standardize_flag_fits_against_standardised_images_only_during_the_fit(
    script: ModuleType, tmp_path: Path
) -> None:
    """``--d-standardize``: the fit's discriminator cannot see brightness or contrast; the library's class is back
    afterwards."""
    import torch

    from learned_augment.fit import loop

    library = loop.DCGANDiscriminator
    base = ["--data", str(tmp_path), "--dataset", "mnist", "--out", str(tmp_path / "o"), "--tfs", "default"]
    args = script.parse_args([*base, "--d-standardize", "--fit-steps", "2", "--fit-batch-size", "4", "--n-seqs", "1"])
    images = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 1), dtype=np.uint8)
    script.fit_one("tanda-lstm", images, args, 10)
    assert loop.DCGANDiscriminator is library
    d = script.StandardizedDiscriminator(1, 16).eval()
    x = torch.rand(3, 1, 16, 16) * 2 - 1
    assert torch.allclose(d(x), d(0.5 * x + 0.2), atol=1e-3)  # a contrast and brightness change is invisible
