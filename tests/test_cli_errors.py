"""User mistakes on the command line: one ``error:`` line, exit code 2, and no fit started for a bad option."""

import cv2
import numpy as np
import pytest
import torch

from learned_augment.cli import main


def _error_line(args, capsys):
    try:
        rc = main(args)
    except SystemExit as exc:  # argparse's own errors
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    return lines[0]


@pytest.fixture
def no_fit(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a fit started despite a bad command line")

    monkeypatch.setattr("learned_augment.fit.fit_policy", refuse)
    monkeypatch.setattr("learned_augment.refine.fit_refiner", refuse)


FIT = ["fit", "sample", "--limit", "8", "--batch-size", "4", "--seq-len", "2", "--no-progress"]


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--steps", "0"], "--steps"),
        (["--steps", "-3"], "--steps"),
        (["--epochs", "0"], "--epochs"),
        (["--steps", "1", "--seed", "-1"], "--seed"),
        (["--steps", "1", "--g-lr", "nan"], "--g-lr"),
        (["--steps", "1", "--limit", "-1"], "--limit"),
        (["--steps", "1", "--device", "foo"], "not a device"),
        (["--steps", "1", "--device", "cuda:x"], "not a device"),
        (["--steps", "1", "--device", "meta"], "only cpu and cuda"),
    ],
)
def test_fit_refuses_bad_options_before_fitting(extra, needle, tmp_path, capsys, no_fit):
    out = tmp_path / "p.safetensors"
    assert needle in _error_line(FIT + ["--out", str(out)] + extra, capsys)
    assert not out.exists()


@pytest.mark.parametrize("name", ["p.txt", "p", "p.safetensors.bak", "missing/p.safetensors"])
def test_fit_refuses_an_out_path_it_cannot_write(name, tmp_path, capsys, no_fit):
    line = _error_line(FIT + ["--steps", "1", "--out", str(tmp_path / name)], capsys)
    assert "--out" in line and not (tmp_path / name).exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
@pytest.mark.parametrize("command", ["fit", "refine-fit"])
def test_cuda_without_a_gpu_is_one_line(command, tmp_path, capsys, no_fit):
    args = [command, "sample"] + (["sample"] if command == "refine-fit" else [])
    args += ["--out", str(tmp_path / "o.safetensors"), "--device", "cuda", "--steps", "1", "--no-progress"]
    assert "no CUDA GPU" in _error_line(args, capsys)


def _folder(tmp_path, images):
    for i, img in enumerate(images):
        cv2.imwrite(str(tmp_path / f"{i}.png"), img)
    return tmp_path


def test_grey_images_among_colour_ones_are_fitted_as_colour(tmp_path, monkeypatch):
    # As torchvision's image folders read every file as RGB: no error, a warning with the count.
    seen = {}

    def record(images, **kwargs):
        seen["shape"] = images.shape
        raise SystemExit(0)

    monkeypatch.setattr("learned_augment.fit.fit_policy", record)
    grey = np.full((16, 16), 100, np.uint8)
    colour = np.full((16, 16, 3), 100, np.uint8)
    _folder(tmp_path, [grey, grey, colour])
    with pytest.warns(UserWarning, match="2 grey images among 1 colour ones"), pytest.raises(SystemExit):
        main(["fit", str(tmp_path), "--out", str(tmp_path / "o.safetensors"), "--no-progress"])
    assert seen["shape"] == (3, 16, 16, 3)


def test_mixed_sizes_still_say_resize(tmp_path, capsys, no_fit):
    _folder(tmp_path, [np.zeros((16, 16), np.uint8), np.zeros((20, 16), np.uint8)])
    line = _error_line(["fit", str(tmp_path), "--out", str(tmp_path / "o.safetensors"), "--no-progress"], capsys)
    assert "one size" in line and "Resize them first" in line


@pytest.mark.parametrize(
    "args, needle",
    [
        (["fit", "sample"], "--out"),
        (["fit", "sample", "--out", "o.safetensors", "--model", "transformer"], "--model"),
        (["bench", "mnist-lstm", "--size", "0"], "--size"),
        (["preview", "mnist-lstm", "sample", "--n", "-1"], "--n"),
        (["preview", "mnist-lstm", "sample", "--samples", "0"], "--samples"),
        (["preview", "mnist-lstm", "sample", "--out", "grid.jpg"], ".png"),
        (["inspect", "not-a-pretrained-name"], "no such file or pretrained name"),
        (["inspect", "digits-synthetic-to-mnist", "--png", "f.png"], "refiner"),
        (["bench", "digits-synthetic-to-mnist"], "refiner"),
        (["demo", "--steps", "0"], "--steps"),
        (["demo", "--threads", "0"], "--threads"),
        ([], "command"),
    ],
)
def test_command_line_mistakes_are_one_line(args, needle, tmp_path, monkeypatch, capsys, no_fit):
    monkeypatch.chdir(tmp_path)
    assert needle in _error_line(args, capsys)
    assert not list(tmp_path.iterdir())


def test_refiner_preview_refuses_images_of_the_wrong_channel_count(tmp_path, capsys):
    _folder(tmp_path, [np.zeros((28, 28, 3), np.uint8)] * 2)
    args = ["preview", "digits-synthetic-to-mnist", str(tmp_path), "--out", str(tmp_path / "g.png")]
    assert "1-channel" in _error_line(args, capsys)


@pytest.mark.parametrize("make", ["empty", "garbage"])
def test_an_unreadable_npz_is_one_line(make, tmp_path, capsys, no_fit):
    path = tmp_path / "d.npz"
    if make == "empty":
        np.savez(path)
    else:
        path.write_bytes(b"not a zip archive" * 20)
    line = _error_line(["fit", str(path), "--out", str(tmp_path / "o.safetensors"), "--no-progress"], capsys)
    assert "d.npz" in line and "allow_pickle" not in line
