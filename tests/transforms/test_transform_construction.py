"""Construction: our own signature and docstring in ``help``, ``py.typed``, and one-line errors for bad arguments."""

from __future__ import annotations

import inspect
import pydoc
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from transform_helpers import geometric_tfset

import learned_augment as la
from learned_augment.policy import MeanFieldPolicy

ROOT = Path(__file__).resolve().parents[2]
REFINER = "pretrained:digits-synthetic-to-mnist"


@pytest.mark.parametrize(
    ("cls", "params"),
    [
        (la.LearnedPolicyTransform, ["policy", "p", "seed", "interpolation", "strict"]),
        (la.RefineSynthetic, ["refiner", "direction", "p", "seed", "strict"]),
    ],
)
def test_help_shows_our_signature_and_docstring(cls: type, params: list[str]) -> None:
    assert list(inspect.signature(cls).parameters) == params
    assert cls.__init__.__name__ == "__init__"
    text = pydoc.render_doc(cls, renderer=pydoc.plaintext)
    assert "custom_init" not in text
    assert cls.__doc__.splitlines()[0] in text
    assert f"{cls.__name__}({params[0]}" in text


@pytest.mark.parametrize(
    "fn", [la.LearnedPolicyTransform, la.Policy.as_transform, la.PolicyAugment], ids=lambda fn: fn.__qualname__
)
def test_policies_augment_every_sample_by_default(fn: Any) -> None:
    """1.0: measured best with the default short sequences (README, 'Does it work?'), as RandAugment applies."""
    assert inspect.signature(fn).parameters["p"].default == 1.0


@pytest.mark.parametrize("cls", [la.LearnedPolicyTransform, la.PolicyAugment], ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", [n for n in la.list_pretrained() if "lstm" in n or "meanfield" in n])
def test_from_pretrained_applies_a_shipped_policy_at_its_cards_p(cls: Any, name: str) -> None:
    measured = la.model_card(name)["end_model"]["settings"]["p_augment"]
    assert cls.from_pretrained(name, seed=0).p == measured
    assert cls.from_pretrained(name, p=0.3, seed=0).p == 0.3


def test_card_p_falls_back_to_one_without_a_measured_p(monkeypatch: pytest.MonkeyPatch) -> None:
    from learned_augment import pretrained

    for card in ({}, {"end_model": {"settings": {"p_augment": "half"}}}, {"end_model": {"settings": {"p_augment": 7}}}):
        monkeypatch.setattr(pretrained, "model_card", lambda name, card=card: card)
        assert pretrained.card_p("x") == 1.0
    monkeypatch.setattr(pretrained, "model_card", lambda name: {"end_model": {"settings": {"p_augment": 0.5}}})
    assert pretrained.card_p("x") == 0.5


def test_package_is_typed() -> None:
    assert resources.files("learned_augment").joinpath("py.typed").is_file()
    assert '"py.typed"' in (ROOT / "pyproject.toml").read_text()


@pytest.fixture(scope="module")
def policy() -> MeanFieldPolicy:
    return MeanFieldPolicy(geometric_tfset(), seq_len=2)


BAD_TRANSFORM_ARGS: list[tuple[dict[str, Any], type, str]] = [
    ({"p": 1.5}, ValueError, r"^p must be in \[0, 1\], got 1\.5$"),
    ({"p": -0.1}, ValueError, r"^p must be in \[0, 1\]"),
    ({"p": float("nan")}, ValueError, r"^p must be in \[0, 1\]"),
    ({"p": "0.5"}, TypeError, r"^p must be a number in \[0, 1\], got '0\.5' \(str\)$"),
    ({"p": None}, TypeError, r"^p must be a number in \[0, 1\]"),
    ({"p": True}, TypeError, r"^p must be a number in \[0, 1\]"),
    ({"seed": -1}, ValueError, r"^seed must be None or an integer >= 0, got -1$"),
    ({"seed": 1.5}, TypeError, r"^seed must be None or an integer >= 0"),
    ({"seed": "3"}, TypeError, r"^seed must be None or an integer >= 0"),
    ({"interpolation": "bicubic"}, ValueError, r"^interpolation must be 'bilinear' or 'nearest'"),
]


@pytest.mark.parametrize(("kwargs", "error", "match"), BAD_TRANSFORM_ARGS, ids=[str(a[0]) for a in BAD_TRANSFORM_ARGS])
def test_bad_arguments_fail_in_one_line_naming_the_argument(
    kwargs: dict[str, Any], error: type, match: str, policy: MeanFieldPolicy
) -> None:
    with pytest.raises(error, match=match) as info:
        la.LearnedPolicyTransform(policy, **kwargs)
    assert "\n" not in str(info.value)
    with pytest.raises(error, match=match):
        policy.as_transform(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"p": 2}, ValueError, r"^p must be in \[0, 1\], got 2$"),
        ({"seed": -2}, ValueError, r"^seed must be None or an integer >= 0"),
        ({"p": "all"}, TypeError, r"^p must be a number"),
    ],
)
def test_refiner_bad_arguments_fail_in_one_line(kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match) as info:
        la.RefineSynthetic(REFINER, **kwargs)
    assert "\n" not in str(info.value)


def test_dataset_p_augment_fails_in_one_line(policy: MeanFieldPolicy) -> None:
    t = la.LearnedPolicyTransform(policy)
    with pytest.raises(ValueError, match=r"^p_augment must be in \[0, 1\], got 1\.5$"):
        la.PolicyAugmentedDataset([], t, p_augment=1.5)
    with pytest.raises(ValueError, match=r"^p_augment must be in \[0, 1\], got 2\.0$"):
        la.PolicyAugmentedDataset([], t, p_augment=lambda epoch: 1.0 + epoch).set_epoch(1)


def test_dataset_wraps_a_policy_or_a_name_and_refuses_what_it_cannot_call(
    policy: MeanFieldPolicy, tmp_path: Path
) -> None:
    import numpy as np

    images = [np.zeros((8, 8, 3), np.uint8)]
    saved = tmp_path / "p.safetensors"
    policy.save(saved)
    for transform in (policy, "pretrained:cifar10-lstm", saved):
        ds = la.PolicyAugmentedDataset(images, transform, p_augment=1.0)
        assert isinstance(ds.transform, la.LearnedPolicyTransform)
        assert ds[0].shape == (8, 8, 3)
    with pytest.raises(TypeError, match="^transform must be callable"):
        la.PolicyAugmentedDataset(images, 3)


def test_numpy_numbers_are_accepted(policy: MeanFieldPolicy) -> None:
    import numpy as np

    t = la.LearnedPolicyTransform(policy, p=np.float32(0.25), seed=np.int64(3))
    assert t.p == 0.25 and isinstance(t.p, float) and t._seed == 3 and isinstance(t._seed, int)
