"""``as_images`` on files: unreadable ``.npz`` archives and image files are refused in one line naming the file."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

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
