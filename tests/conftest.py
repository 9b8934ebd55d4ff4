"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import importlib
import itertools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from learned_augment.ops import base

_counter = itertools.count()

MNIST_SAMPLE = Path(__file__).resolve().parents[1] / "learned_augment" / "samples" / "mnist_sample.npz"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _import_example(name: str) -> ModuleType:
    sys.path.insert(0, str(EXAMPLES))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(EXAMPLES))


@pytest.fixture
def example() -> Callable[[str], ModuleType]:
    """``example("bench_fit")`` imports ``examples/bench_fit.py`` as a module (its imports of ``_data`` and the
    other helpers beside it resolve there)."""
    return _import_example


@pytest.fixture
def tf_name() -> Iterator[Callable[[str], str]]:
    """Make unique TF names for a test that registers TFs; they are removed from the registry afterwards.

    Unique names keep tests independent of their order (and of ``-p xdist``), and the clean-up keeps TFs made by
    one test out of the registry-wide parametrisations of another.
    """
    made: list[str] = []

    def make(stem: str = "tf") -> str:
        name = f"_test_{stem}_{next(_counter)}"
        made.append(name)
        return name

    before = set(base.registered_tfs())
    yield make
    for name in made:
        base._REGISTRY.pop(name, None)
    leaked = set(base.registered_tfs()) - before
    assert not leaked, f"test registered TFs without tf_name(): {sorted(leaked)}"


@pytest.fixture(scope="session")
def mnist_images() -> np.ndarray:
    """(N, 28, 28) uint8 digits from the shipped MNIST sample."""
    with np.load(MNIST_SAMPLE) as data:
        return data["images"][:16].copy()
