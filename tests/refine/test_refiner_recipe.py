"""The README's refiner table was measured with the defaults ``fit_refiner`` has today.

``examples/results/mrgan/F*_stage2_shared.json`` are the reports of ``examples/reproduce_mrgan.py`` behind the
table. Their refiner settings must be what ``fit_refiner`` does by default for their 28x28 images; change a default
without re-measuring and this test fails.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from learned_augment.refine import default_sizes, fit_refiner

REPORTS = sorted((Path(__file__).resolve().parents[2] / "examples" / "results" / "mrgan").glob("F*_stage2_shared.json"))


def test_the_table_has_both_label_counts() -> None:
    labels = {k for p in REPORTS for k in json.loads(p.read_text())["results"]}
    assert labels == {"150 labels (0.25%)", "600 labels (1%)"}, labels


@pytest.mark.parametrize("path", REPORTS, ids=[p.name for p in REPORTS])
def test_table_settings_are_todays_defaults(path: Path) -> None:
    report = json.loads(path.read_text())
    settings, refiner = report["settings"], report["refiner"]
    sig = inspect.signature(fit_refiner).parameters
    sized = default_sizes(28, 28)
    assert refiner["steps_per_stage"] == sized["steps"]
    used = {"batch_size": settings["refiner_batch"], "ngf": settings["ngf"], "n_blocks": settings["n_blocks"]}
    used["ndf"] = settings["ndf"]
    assert used == {k: sized[k] for k in used}
    assert settings["stages"] == sig["stages"].default and settings["stage2"] == sig["stage2"].default
    assert settings["lambda_self_reg"] == sig["lambda_self_reg"].default
    assert settings["lambda_semantic"] == 1.0  # fit_refiner's default when synthetic labels are given


def test_default_sizes_follow_the_image_size() -> None:
    small, large = default_sizes(28, 28), default_sizes(64, 64)
    assert small["steps"] == 400 and small["epochs"] is None and small["ngf"] < large["ngf"]
    assert large["steps"] is None and large["epochs"] == 5.0
    assert default_sizes(32, 100) == small  # the shorter side decides


@pytest.mark.parametrize("size", [16, 36])
def test_unset_sizes_take_the_defaults_for_the_images(size: int) -> None:
    import numpy as np

    x = np.random.default_rng(0).integers(0, 256, (40, size, size), dtype=np.uint8)
    refiner = fit_refiner(x, 255 - x, stages=1, steps=1, progress=False)
    used = refiner.provenance["settings"]
    sized = default_sizes(size, size)
    assert {k: used[k] for k in ("batch_size", "ngf", "n_blocks", "ndf")} == {
        k: sized[k] for k in ("batch_size", "ngf", "n_blocks", "ndf")
    }
    assert refiner.provenance["steps"] == [1]
