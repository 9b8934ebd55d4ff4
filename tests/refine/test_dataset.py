"""MixedRealityDataset: fractions, labels, output forms, refinement (cached or not), epochs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from learned_augment.refine import MixedRealityDataset

from .conftest import make_refiner


@pytest.fixture
def sources(digits16):
    x, y = digits16
    real = (x[:20], y[:20])
    synthetic = (255 - x[20:60], (y[20:60] + 100))  # labels offset so each item's source is visible in its label
    return real, synthetic


class _PILPairs(Dataset):
    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return Image.fromarray(self.images[i]), int(self.labels[i])


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.5, 0.8, 1.0])
def test_fraction_is_exact_and_labels_follow_the_source(sources, fraction: float) -> None:
    real, synthetic = sources
    ds = MixedRealityDataset(real, synthetic, synthetic_fraction=fraction, length=40)
    kinds = [ds.source_of(i) for i in range(len(ds))]
    assert sum(k[0] == "synthetic" for k in kinds) == round(40 * fraction)
    for i, (source, j, refined) in enumerate(kinds):
        image, label = ds[i]
        assert not refined
        if source == "real":
            assert label == real[1][j] and np.array_equal(image, real[0][j])
        else:
            assert label == synthetic[1][j] and np.array_equal(image, synthetic[0][j])


def test_default_length_shows_every_real_image_once(sources) -> None:
    real, synthetic = sources
    ds = MixedRealityDataset(real, synthetic, synthetic_fraction=0.5)
    assert len(ds) == 40
    real_idx = sorted(j for s, j, _ in (ds.source_of(i) for i in range(len(ds))) if s == "real")
    assert real_idx == list(range(20))
    assert len(MixedRealityDataset(real, synthetic, synthetic_fraction=1.0)) == 40


def test_epochs_redraw_deterministically(sources) -> None:
    real, synthetic = sources
    a = MixedRealityDataset(real, synthetic, seed=3)
    b = MixedRealityDataset(real, synthetic, seed=3)
    first = [a.source_of(i) for i in range(len(a))]
    assert first == [b.source_of(i) for i in range(len(b))]
    a.set_epoch(1)
    assert [a.source_of(i) for i in range(len(a))] != first
    a.set_epoch(0)
    assert [a.source_of(i) for i in range(len(a))] == first


def test_refined_synthetic_cached_and_uncached_agree(sources) -> None:
    real, synthetic = sources
    refiner = make_refiner()
    expected = refiner.refine_numpy(synthetic[0])
    for cache in (True, False):
        ds = MixedRealityDataset(real, synthetic, refiner, synthetic_fraction=0.5, cache=cache)
        for i in range(len(ds)):
            source, j, refined = ds.source_of(i)
            image, _ = ds[i]
            if source == "synthetic":
                # One image at a time runs other conv kernels than a batch; their last bits may round one grey
                # level apart. The cache refines in batches like refine_numpy, so it matches exactly.
                tol = 0 if cache else 1
                assert refined and np.abs(image.astype(int) - expected[j]).max() <= tol
            else:
                assert not refined and np.array_equal(image, real[0][j])
    ds = MixedRealityDataset(real, synthetic, refiner).precompute()
    assert ds._filled["synthetic"].all()


def test_refine_real(sources) -> None:
    real, synthetic = sources
    refiner = make_refiner(stages=2)
    shared = refiner.refine_numpy(real[0], "real_to_shared")
    ds = MixedRealityDataset(real, synthetic, refiner, synthetic_fraction=0.0, refine_real=True)
    for i in range(len(ds)):
        _, j, refined = ds.source_of(i)
        image, label = ds[i]
        assert refined and np.array_equal(image, shared[j]) and label == real[1][j]
    half = MixedRealityDataset(real, synthetic, refiner, synthetic_fraction=0.0, refine_real=0.5, length=400)
    share = np.mean([half.source_of(i)[2] for i in range(400)])
    assert 0.4 < share < 0.6
    with pytest.raises(ValueError, match="stages >= 2"):
        MixedRealityDataset(real, synthetic, make_refiner(stages=1), refine_real=True)
    with pytest.raises(ValueError, match="needs a refiner"):
        MixedRealityDataset(real, synthetic, refine_real=True)


def test_pil_real_gives_pil_everywhere(sources) -> None:
    real, synthetic = sources
    ds = MixedRealityDataset(_PILPairs(*real), synthetic, make_refiner())
    for i in range(len(ds)):
        image, label = ds[i]
        assert isinstance(image, Image.Image) and image.mode == "L" and image.size == (16, 16)
        assert isinstance(label, int)


def test_tensor_real_gives_tensors_of_its_dtype(sources) -> None:
    real, synthetic = sources
    t = torch.from_numpy(real[0]).unsqueeze(1).float() / 255
    ds = MixedRealityDataset((t, torch.from_numpy(real[1])), synthetic, synthetic_fraction=0.5)
    for i in range(len(ds)):
        image, label = ds[i]
        assert image.dtype == torch.float32 and image.shape == (1, 16, 16) and 0 <= image.min() <= image.max() <= 1
        assert isinstance(label, int)


def test_grey_synthetic_joins_colour_real(sources) -> None:
    real, synthetic = sources
    colour = (np.repeat(real[0][..., None], 3, axis=3), real[1])
    ds = MixedRealityDataset(colour, synthetic, synthetic_fraction=1.0)
    image, _ = ds[0]
    assert image.shape == (16, 16, 3) and np.array_equal(image[..., 0], image[..., 2])
    with pytest.raises(ValueError, match="channels"):
        MixedRealityDataset(real, (np.zeros((3, 16, 16, 3), np.uint8), np.zeros(3)))


def test_transform_and_dataloader(sources) -> None:
    real, synthetic = sources
    ds = MixedRealityDataset(real, synthetic, make_refiner(), transform=lambda im: torch.from_numpy(im).float())
    images, labels = next(iter(DataLoader(ds, batch_size=8)))
    assert images.shape == (8, 16, 16) and images.dtype == torch.float32 and labels.shape == (8,)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"synthetic_fraction": 1.5}, "synthetic_fraction"),
        ({"refine_real": 2.0}, "refine_real"),
        ({"length": -1}, "length"),
    ],
)
def test_bad_arguments(sources, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        MixedRealityDataset(*sources, **kwargs)


def test_bad_sources(sources) -> None:
    real, synthetic = sources
    with pytest.raises(ValueError, match="size"):
        MixedRealityDataset(real, (np.zeros((3, 20, 20), np.uint8), np.zeros(3)))
    with pytest.raises(ValueError, match="labels"):
        MixedRealityDataset((real[0], real[1][:3]), synthetic)
    with pytest.raises(TypeError):
        MixedRealityDataset(real[0], synthetic)
    with pytest.raises(ValueError, match="refiner takes"):
        MixedRealityDataset(real, synthetic, make_refiner(c_syn=3))
    with pytest.raises(IndexError):
        MixedRealityDataset(real, synthetic)[10_000]
