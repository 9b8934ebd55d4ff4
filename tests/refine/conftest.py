"""Tiny data and refiners shared by the refine tests (16x16 images keep every fit to a fraction of a second)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from learned_augment.data import load_sample
from learned_augment.refine import Refiner
from learned_augment.refine.networks import GeneratorConfig, ResnetGenerator, init_weights

TINY = {"ngf": 4, "n_blocks": 1, "ndf": 4, "batch_size": 4, "progress": False}


@pytest.fixture(autouse=True)
def _one_thread():
    # Bit-exact comparisons need one fixed thread count; one also leaves the other cores to parallel work.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def digits16() -> tuple[np.ndarray, np.ndarray]:
    """(64, 16, 16) uint8 MNIST digits and their labels."""
    images, labels = load_sample()
    small = np.stack([cv2.resize(im, (16, 16), interpolation=cv2.INTER_AREA) for im in images[:64]])
    return small, labels[:64].astype(np.int64)


def make_refiner(stages: int = 2, c_syn: int = 1, c_real: int = 1, size: int = 16, seed: int = 0) -> Refiner:
    """A randomly initialised refiner (no fit): enough to test plumbing."""
    gen = torch.Generator().manual_seed(seed)
    chain, shared = [], {}
    for k in range(1, stages + 1):
        g = ResnetGenerator(GeneratorConfig(c_syn if k == 1 else c_real, c_real, ngf=4, n_blocks=1))
        init_weights(g, gen)
        chain.append(g)
        if k >= 2:
            f = ResnetGenerator(GeneratorConfig(c_real, c_real, ngf=4, n_blocks=1))
            init_weights(f, gen)
            shared[k] = f
    return Refiner(chain, shared, (size, size), provenance={"note": "test"})
