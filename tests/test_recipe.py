"""The README's 'library defaults' rows were measured with the defaults the signatures have today.

``examples/results/defaults/*.json`` are the reports of ``examples/reproduce_tanda.py`` behind the README's
"library defaults" rows. Each records the arguments ``fit_policy`` actually used; they must equal today's defaults,
and its policy rows must have used ``LearnedPolicyTransform``'s default ``p``. Change a default without
re-measuring and this test fails. Reports of earlier defaults live in ``examples/results/previous-defaults``.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from learned_augment.fit import fit_policy
from learned_augment.fit.loop import MIN_STEPS, fit_length
from learned_augment.transforms import LearnedPolicyTransform

RESULTS = Path(__file__).resolve().parents[1] / "examples" / "results" / "defaults"
# Arguments a new user passes (the TF set and the model) or that identify the run rather than the recipe.
PASSED = {"model", "seed", "total_steps"}


def _reports() -> list[tuple[str, dict]]:
    return [(p.name, json.loads(p.read_text())) for p in sorted(RESULTS.glob("*.json"))]


def _defaults_reports() -> list[tuple[str, dict]]:
    """Every report in the folder: each must have been measured with today's defaults."""
    return _reports()


def test_results_hold_library_default_rows() -> None:
    assert len(_defaults_reports()) >= 3, [n for n, _ in _reports()]


@pytest.mark.parametrize("name,report", _defaults_reports(), ids=[n for n, _ in _defaults_reports()])
def test_default_rows_used_todays_defaults(name: str, report: dict) -> None:
    sig = inspect.signature(fit_policy).parameters
    assert report["fits"], f"{name}: no fitted policy"
    for aug, fit in report["fits"].items():
        args = fit["fit_args"]
        for key, value in args.items():
            if key not in PASSED:
                assert value == sig[key].default, f"{name} {aug}: {key}={value!r}, default now {sig[key].default!r}"
        expected = fit_length(report["settings"]["fit"]["pool_images"], sig["batch_size"].default, 1.0, None, MIN_STEPS)
        assert args["total_steps"] == expected, f"{name} {aug}: {args['total_steps']} steps, defaults give {expected}"
    p_default = inspect.signature(LearnedPolicyTransform).parameters["p"].default
    assert report["settings"]["p_augment"] == p_default
    assert report["settings"]["policy_order"] == "seq-then-crop"


def test_new_user_rows_used_the_default_tf_set_and_length() -> None:
    """The README's "as a new user calls them" rows: ``fit_policy(images)`` with no TF set, no length."""
    sig = inspect.signature(fit_policy).parameters
    new_user = {
        name
        for name, report in _defaults_reports()
        if report["settings"]["tfs"].split(" ")[0] == sig["tfs"].default
        and report["settings"]["seq_len"] == sig["seq_len"].default
    }
    assert {"small1000-new-user.json", "mnist600-new-user.json", "cifar10-new-user.json"} <= new_user, sorted(new_user)
