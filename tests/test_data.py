"""``as_images`` on files: unreadable ``.npz`` archives and image files are refused in one line naming the file."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from learned_augment.data import as_images

UNREADABLE = "is not a readable .npz archive of image arrays"


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(300))


def _pickle(path: Path) -> None:
    path.write_bytes(pickle.dumps(np.zeros((3, 8, 8), np.uint8)))


def _objects(path: Path) -> None:
    np.savez(path, images=np.array([object(), 1], dtype=object))


def _lone_array(path: Path) -> None:
    with open(path, "wb") as f:
        np.save(f, np.zeros((3, 8, 8), np.uint8))


def _empty_file(path: Path) -> None:
    path.write_bytes(b"")


def _truncated(path: Path) -> None:
    np.savez(path, images=np.zeros((3, 8, 8), np.uint8))
    path.write_bytes(path.read_bytes()[:-40])


@pytest.mark.parametrize("write", [_garbage, _pickle, _objects, _lone_array, _empty_file, _truncated])
def test_unreadable_npz_is_one_clear_line(write, tmp_path: Path) -> None:
    path = tmp_path / "data.npz"
    write(path)
    with pytest.raises(ValueError) as info:
        as_images(path)
    msg = str(info.value)
    assert UNREADABLE in msg and str(path) in msg and "\n" not in msg
    assert "allow_pickle" not in msg, "never advise loading pickle"


def test_npz_without_arrays_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.npz"
    np.savez(path)
    with pytest.raises(ValueError, match=r"empty\.npz holds no arrays"):
        as_images(path)


def test_npz_images_are_read(tmp_path: Path) -> None:
    path = tmp_path / "ok.npz"
    np.savez(path, labels=np.arange(3), images=np.full((3, 8, 8), 7, np.uint8))
    out = as_images(path)
    assert out.shape == (3, 8, 8, 1) and (out == 7).all()


def test_16_bit_image_in_a_folder_names_the_file(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8), np.uint8))
    cv2.imwrite(str(tmp_path / "b.png"), np.zeros((8, 8), np.uint16))
    with pytest.raises(TypeError, match=r"b\.png: unsupported image dtype uint16"):
        as_images(tmp_path)


@pytest.mark.parametrize(("limit", "error"), [(-1, ValueError), (0, ValueError), (2.5, TypeError), (True, TypeError)])
def test_bad_limit_is_refused(limit, error) -> None:
    with pytest.raises(error, match="^limit must be an integer >= 1"):
        as_images(np.zeros((4, 8, 8), np.uint8), limit=limit)


def test_pil_images_of_wide_modes_are_refused_or_scaled_not_clipped() -> None:
    from PIL import Image

    ramp16 = Image.fromarray(np.linspace(0, 65535, 64).reshape(8, 8).astype(np.uint16))
    with pytest.raises(TypeError, match="uint16.*8 bits"):
        as_images([ramp16])
    with pytest.raises(TypeError, match="int32"):
        as_images([Image.fromarray(np.arange(64, dtype=np.int32).reshape(8, 8))])
    ramp = np.linspace(0, 1, 64).reshape(8, 8).astype(np.float32)
    got = as_images([Image.fromarray(ramp)])
    assert np.array_equal(got[0, :, :, 0], np.rint(ramp * 255).astype(np.uint8))


def test_items_may_be_paths_dicts_or_pairs_in_either_order(tmp_path: Path) -> None:
    from PIL import Image

    images = np.stack([np.full((8, 8), 40 * i, np.uint8) for i in range(3)])
    paths = []
    for i, im in enumerate(images):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(im).save(paths[-1])
    expected = images[..., None]
    assert np.array_equal(as_images(paths), expected)
    assert np.array_equal(as_images([str(p) for p in paths]), expected)
    assert np.array_equal(as_images([{"image": Image.open(p), "label": 1} for p in paths]), expected)
    assert np.array_equal(as_images([(np.int64(i), im) for i, im in enumerate(images)]), expected)
    assert np.array_equal(as_images([(i, im) for i, im in enumerate(images)]), expected)
    assert np.array_equal(as_images([(str(p), 0) for p in paths]), expected)  # ImageFolder.samples
    assert np.array_equal(as_images([{"image": p} for p in paths]), expected)
    assert np.array_equal(as_images([(torch.tensor(1), im) for im in images]), expected)
    with pytest.raises(ValueError, match="'image'.*keys \\['x'\\]"):
        as_images([{"x": images[0]}])
    with pytest.raises(ValueError, match="expected an image, got the int 5"):
        as_images([5])


def test_npz_suffix_in_capitals_is_read(tmp_path: Path) -> None:
    with open(tmp_path / "a.NPZ", "wb") as f:  # np.savez would add ".npz" to the name
        np.savez(f, images=np.zeros((2, 8, 8), np.uint8))
    assert as_images(tmp_path / "a.NPZ").shape == (2, 8, 8, 1)


def test_images_of_many_sizes_are_resized_as_they_are_read(tmp_path: Path) -> None:
    from PIL import Image

    for i, (h, w) in enumerate([(30, 40), (64, 48), (16, 16)]):
        Image.fromarray(np.full((h, w, 3), 50 * i, np.uint8)).save(tmp_path / f"{i}.png")
    with pytest.raises(ValueError, match="one size.*image_size"):
        as_images(tmp_path)
    got = as_images(tmp_path, image_size=(24, 20))
    assert got.shape == (3, 24, 20, 3) and [int(g[0, 0, 0]) for g in got] == [0, 50, 100]
    assert as_images(np.zeros((2, 8, 8), np.uint8), image_size=4).shape == (2, 4, 4, 1)
    assert as_images([np.zeros((8, 6), np.uint8), np.zeros((5, 9), np.uint8)], image_size=(7, 7)).shape == (2, 7, 7, 1)
    for bad, error in [((0, 4), ValueError), ((4, 4, 4), ValueError), (2.5, TypeError)]:
        with pytest.raises(error, match="^image_size"):
            as_images(tmp_path, image_size=bad)


def test_grey_files_among_colour_ones_are_read_as_colour(tmp_path: Path) -> None:
    # Real photo folders hold a few grey JPEGs among colour ones (torchvision's ImageFolder reads all as RGB).
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (6, 8), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), colour[:, :, ::-1])
    cv2.imwrite(str(tmp_path / "b.png"), grey)
    with pytest.warns(UserWarning, match="1 grey image among 1 colour ones: read as colour"):
        images = as_images(tmp_path)
    assert images.shape == (2, 6, 8, 3)
    assert np.array_equal(images[0], colour)
    assert all(np.array_equal(images[1][:, :, c], grey) for c in range(3))
    assert as_images([grey, grey]).shape == (2, 6, 8, 1)  # all grey stays grey
    with pytest.warns(UserWarning, match="read as colour"):
        assert as_images([grey, colour]).shape == (2, 6, 8, 3)


class _CountingDataset(torch.utils.data.Dataset):
    def __init__(self, images: np.ndarray) -> None:
        self.images, self.read = images, []

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        self.read.append(i)
        return self.images[i], 0


def test_subset_is_the_same_random_pick_from_every_kind_of_data(tmp_path: Path, monkeypatch) -> None:
    from learned_augment import data as data_module
    from learned_augment.data import random_subset

    images = np.random.default_rng(0).integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
    keep = random_subset(40, 10, seed=3)
    assert keep.dtype == np.int64 and len(np.unique(keep)) == 10 and np.all(np.diff(keep) > 0)
    assert np.array_equal(keep, random_subset(40, 10, seed=3)) and not np.array_equal(keep, random_subset(40, 10, 4))
    folder = tmp_path / "imgs"
    folder.mkdir()
    paths = []
    for i, img in enumerate(images):
        paths.append(folder / f"{i:03d}.png")
        cv2.imwrite(str(paths[-1]), img[:, :, ::-1])
    np.savez(tmp_path / "x.npz", images=images)
    read = []
    real_read = data_module._read_image
    monkeypatch.setattr(data_module, "_read_image", lambda p: read.append(p.name) or real_read(p))
    ds = _CountingDataset(images)
    for data in (images, ds, list(images), iter(images), folder, tmp_path / "x.npz", [str(p) for p in paths]):
        read.clear()
        assert np.array_equal(as_images(data, subset=10, seed=3), images[keep]), type(data)
        assert read in ([], [paths[i].name for i in keep])  # files: only the picked ones are read
    assert sorted(ds.read) == keep.tolist()  # a Dataset reads only the picked items
    assert np.array_equal(as_images(images, subset=99), images)  # more than there is: all, in order
    for data in (images, list(images), folder):
        picked = as_images(data, limit=20, subset=5, seed=3)  # the first 20, then 5 of them
        assert np.array_equal(picked, images[:20][random_subset(20, 5, 3)])


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [((10, 0, 0), ValueError, "^size"), ((10, 2, -1), ValueError, "^seed"), ((-3, 2, 0), ValueError, "^n_items")],
)
def test_bad_random_subset_arguments_are_named(args, error, match) -> None:
    from learned_augment.data import random_subset

    with pytest.raises(error, match=match):
        random_subset(*args)


@pytest.mark.parametrize(("kw", "error"), [({"subset": 0}, ValueError), ({"subset": 2.5}, TypeError)])
def test_bad_subset_is_refused(kw, error) -> None:
    with pytest.raises(error, match="^subset"):
        as_images(np.zeros((4, 8, 8), np.uint8), **kw)
    with pytest.raises(TypeError, match="^seed"):
        as_images(np.zeros((4, 8, 8), np.uint8), subset=2, seed=1.5)
