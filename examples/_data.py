"""Loaders for the real data sets in ../shared/data (IDX MNIST and the CIFAR-10 JPEG npz), with clear errors."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np


class DataError(SystemExit):
    """Missing or malformed data: exits with a one-line message."""

    def __init__(self, msg: str) -> None:
        super().__init__(f"error: {msg}")


def _idx(path: Path, magic: int, header: int) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"missing {path}")
    try:
        raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:  # a truncated .gz raises EOFError, a corrupt one zlib.error
        raise DataError(f"cannot read {path}: {exc}") from None
    if len(raw) < header or int.from_bytes(raw[:4], "big") != magic:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    return np.frombuffer(raw, np.uint8, offset=header)


def load_mnist_pool(folder: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The 10k MNIST test images and labels from ``folder`` (t10k-*-idx*-ubyte.gz): (10000, 28, 28), (10000,)."""
    folder = Path(folder)
    x = _idx(folder / "t10k-images-idx3-ubyte.gz", 2051, 16)
    y = _idx(folder / "t10k-labels-idx1-ubyte.gz", 2049, 8)
    if x.size % 784 or x.size // 784 != y.size:
        raise DataError(f"{folder}: image and label counts disagree ({x.size / 784:.1f} vs {y.size})")
    return x.reshape(-1, 28, 28), y.astype(np.int64)


def load_cifar10(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test) from the JPEG npz: uint8 (N, 32, 32, 3) RGB."""
    import cv2

    path = Path(path)
    if path.is_dir():
        path = path / "cifar10_jpeg.npz"
    if not path.is_file():
        raise DataError(f"missing {path}")
    try:
        d = np.load(path, allow_pickle=False)
        parts = []
        for split in ("train", "test"):
            buf, off = d[f"{split}_jpeg"], d[f"{split}_offsets"]
            imgs = np.stack(
                [cv2.imdecode(buf[off[i] : off[i + 1]], cv2.IMREAD_COLOR)[:, :, ::-1] for i in range(len(off) - 1)]
            )
            parts += [imgs, d[f"y_{split}"].astype(np.int64)]
    except (KeyError, ValueError, OSError, TypeError) as exc:
        raise DataError(f"{path} is not the CIFAR-10 JPEG npz described in the data README ({exc})") from None
    return parts[0], parts[1], parts[2], parts[3]
