import subprocess
import sys

import cv2
import numpy as np
import pytest

from learned_augment.cli import main
from learned_augment.io import load_policy

PY = [sys.executable, "-m", "learned_augment.cli"]


def _png_ok(path):
    img = cv2.imread(str(path))
    assert img is not None and img.ndim == 3 and img.shape[0] > 20 and img.shape[1] > 20
    return img


def test_demo_fits_saves_and_writes_pngs(tmp_path, capsys):
    rc = main(["demo", "--out", str(tmp_path), "--steps", "3", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "destructive TFs:" in out and "preview:" in out
    assert (tmp_path / "demo_policy.safetensors").stat().st_size > 0
    _png_ok(tmp_path / "preview.png")
    _png_ok(tmp_path / "frequencies.png")


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    path = d / "p.safetensors"
    assert (
        main(
            [
                "fit",
                "sample",
                "--out",
                str(path),
                "--tfs",
                "mnist",
                "--steps",
                "2",
                "--limit",
                "64",
                "--batch-size",
                "16",
                "--no-progress",
            ]
        )
        == 0
    )
    return path


def test_fit_inspect_preview_bench(policy_file, tmp_path, capsys):
    assert main(["inspect", str(policy_file), "--png", str(tmp_path / "f.png")]) == 0
    out = capsys.readouterr().out
    assert '"kind": "policy"' in out and "rotate(+2.5)" in out
    _png_ok(tmp_path / "f.png")
    assert main(["preview", str(policy_file), "sample", "--out", str(tmp_path / "p.png"), "--n", "3"]) == 0
    _png_ok(tmp_path / "p.png")
    assert main(["bench", str(policy_file), "--n", "30"]) == 0
    assert "images/s" in capsys.readouterr().out
    assert main(["list"]) == 0


def test_fit_from_folder_and_npz(tmp_path):
    imgs = (np.random.default_rng(0).random((20, 16, 16)) * 255).astype(np.uint8)
    np.savez(tmp_path / "d.npz", images=imgs)
    for i in range(10):
        cv2.imwrite(str(tmp_path / f"{i}.png"), imgs[i])
    for data in (tmp_path / "d.npz", tmp_path):
        out = tmp_path / "out.safetensors"
        assert (
            main(
                [
                    "fit",
                    str(data),
                    "--out",
                    str(out),
                    "--tfs",
                    "mnist",
                    "--steps",
                    "1",
                    "--batch-size",
                    "4",
                    "--seq-len",
                    "2",
                    "--no-progress",
                ]
            )
            == 0
        )
        assert out.exists()


@pytest.mark.parametrize(
    "args, needle",
    [
        (["inspect", "/nonexistent.safetensors"], "no such file"),
        (["preview", "/nonexistent.safetensors", "sample"], "no such file"),
        (["fit", "/nonexistent", "--out", "x.safetensors"], "no such file"),
        (["fit", "sample", "--out", "/tmp/x.safetensors", "--tfs", "imagenet"], "unknown tf set"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(args, needle):
    proc = subprocess.run(PY + args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0].lower()


def test_unreadable_image_is_a_clear_error(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    proc = subprocess.run(
        PY + ["fit", str(tmp_path), "--out", str(tmp_path / "o.safetensors"), "--steps", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "cannot read image" in proc.stderr and "Traceback" not in proc.stderr


def test_fit_subset_reads_and_fits_the_same_random_subset_as_fit_policy(tmp_path):
    from learned_augment.data import load_sample
    from learned_augment.fit import fit_policy

    out = tmp_path / "sub.safetensors"
    args = ["fit", "sample", "--out", str(out), "--tfs", "mnist", "--steps", "2", "--batch-size", "4"]
    assert main([*args, "--subset", "40", "--seed", "5", "--no-progress"]) == 0
    prov = load_policy(str(out)).provenance
    direct = fit_policy(load_sample()[0], "mnist", steps=2, batch_size=4, subset=40, seed=5, progress=False)
    assert prov["n_items"] == 40 and prov["fit_args"]["subset"] == 40
    assert prov["data_fingerprint"] == direct.provenance["data_fingerprint"]


def test_bad_option_exits_nonzero():
    proc = subprocess.run(PY + ["fit"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_fit_passes_the_main_fit_policy_options(tmp_path, capsys):
    out = tmp_path / "opts.safetensors"
    args = ["fit", "sample", "--out", str(out), "--tfs", "mnist", "--steps", "2", "--limit", "32", "--batch-size", "4"]
    args += ["--seq-len", "3", "--n-seqs", "2", "--g-lr", "0.05", "--g-optimizer", "adam", "--d-lr", "3e-4"]
    args += ["--diversity", "0.002", "--entropy", "0.1", "--jitter", "--no-progress"]
    assert main(args) == 0
    fit_args = load_policy(str(out)).provenance["fit_args"]
    expected = {"n_seqs": 2, "g_lr": 0.05, "g_optimizer": "adam", "d_lr": 3e-4, "diversity": 0.002, "entropy": 0.1}
    assert {k: fit_args[k] for k in expected} == expected and fit_args["jitter"] is True
    capsys.readouterr()
    assert main(["bench", str(out), "--n", "20", "--interpolation", "nearest"]) == 0
    assert "nearest resampling" in capsys.readouterr().out


def test_inspect_a_pretrained_policy_shows_its_model_card(capsys):
    from learned_augment.pretrained import model_card

    assert main(["inspect", "mnist-lstm"]) == 0
    out = capsys.readouterr().out
    assert "model card:" in out and model_card("mnist-lstm")["fit_command"] in out
    assert '"kind": "policy"' in out and "rotate(" in out


def test_inspect_a_refiner_shows_its_card_and_no_tf_table(capsys):
    assert main(["inspect", "digits-synthetic-to-mnist"]) == 0
    out = capsys.readouterr().out
    assert "model card:" in out and '"kind": "refiner"' in out and "Refiner(stages=2" in out
    assert "x uniform" not in out


def test_preview_of_a_refiner_is_a_before_after_grid(tmp_path, capsys):
    from learned_augment.pretrained import load_pretrained

    out = tmp_path / "refined.png"
    assert main(["preview", "digits-synthetic-to-mnist", "sample", "--out", str(out), "--n", "4"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    # image_grid's defaults: 3x scale and 2 px padding; one row of originals, then one per stage.
    rows = 1 + load_pretrained("digits-synthetic-to-mnist").stages
    assert _png_ok(out).shape[0] == rows * (28 * 3 + 2) + 2


class _FitCalled(Exception):
    pass


@pytest.fixture
def fit_calls(monkeypatch):
    """Record what ``fit`` passes to ``fit_policy`` and the thread settings it runs under, then stop."""
    import torch

    calls = []

    def record(images, **kwargs):
        calls.append({"kwargs": kwargs, "n": len(images), "torch": torch.get_num_threads(), "cv2": cv2.getNumThreads()})
        raise _FitCalled

    monkeypatch.setattr("learned_augment.fit.fit_policy", record)
    before = torch.get_num_threads(), cv2.getNumThreads()
    yield calls
    torch.set_num_threads(before[0])
    cv2.setNumThreads(before[1])


def test_fit_options_left_out_take_fit_policys_defaults(fit_calls, tmp_path):
    with pytest.raises(_FitCalled):
        main(["fit", "sample", "--out", str(tmp_path / "p.safetensors"), "--limit", "8", "--no-progress"])
    assert fit_calls[0]["kwargs"] == {"progress": False}


def test_fit_passes_only_the_options_given(fit_calls, tmp_path):
    args = ["fit", "sample", "--out", str(tmp_path / "p.safetensors"), "--limit", "8", "--epochs", "2"]
    with pytest.raises(_FitCalled):
        main(args + ["--min-steps", "7", "--tfs", "mnist", "--jitter", "--device", "cpu", "--seed", "3"])
    expected = {"epochs": 2.0, "min_steps": 7, "tfs": "mnist", "jitter": True, "device": "cpu", "seed": 3}
    assert fit_calls[0]["kwargs"] == {**expected, "progress": True}


def test_fit_subset_reads_only_the_subset_and_passes_it_on(fit_calls, tmp_path):
    with pytest.raises(_FitCalled):
        main(["fit", "sample", "--out", str(tmp_path / "p.safetensors"), "--limit", "8", "--subset", "5"])
    assert fit_calls[0]["kwargs"] == {"subset": 5, "progress": True} and fit_calls[0]["n"] == 5


def test_every_fit_option_is_a_fit_policy_parameter():
    import inspect

    from learned_augment.cli import FIT_OPTIONS
    from learned_augment.fit import fit_policy

    assert set(FIT_OPTIONS) <= set(inspect.signature(fit_policy).parameters)


@pytest.mark.parametrize("given, torch_threads", [([], 1), (["--threads", "2"], 2)])
def test_fit_threads(given, torch_threads, fit_calls, tmp_path):
    import torch

    torch.set_num_threads(3)
    cv2.setNumThreads(3)
    with pytest.raises(_FitCalled):
        main(["fit", "sample", "--out", str(tmp_path / "p.safetensors"), "--limit", "8"] + given)
    assert (fit_calls[0]["torch"], fit_calls[0]["cv2"]) == (torch_threads, 1)


def test_threads_is_documented_in_help(capsys):
    for command in ("fit", "demo"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "--threads" in capsys.readouterr().out


def test_python_m_learned_augment_is_the_command_line():
    proc = subprocess.run(
        [sys.executable, "-m", "learned_augment", "list"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and "mnist-lstm" in proc.stdout, proc.stderr


def test_fit_on_a_folder_of_many_sizes_with_image_size(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(30, 40), (64, 48), (20, 20), (33, 17)]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    out = tmp_path / "p.safetensors"
    args = ["fit", str(tmp_path), "--out", str(out), "--steps", "2", "--no-progress", "--batch-size", "4"]
    proc = subprocess.run(PY + args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--image-size" in proc.stderr
    proc = subprocess.run(PY + args + ["--image-size", "24", "28"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert load_policy(out).provenance["image_shape"] == [24, 28, 3]


@pytest.mark.parametrize("spec", ["rotate(+15),hflip,blur(1)", "hflip"])
def test_fit_takes_tf_ids_joined_by_commas(tmp_path, spec):
    out = tmp_path / "p.safetensors"
    args = ["fit", "sample", "--out", str(out), "--steps", "1", "--no-progress", "--limit", "64", "--tfs", spec]
    assert main(args) == 0
    assert load_policy(out).tfset.ids == spec.split(",")
