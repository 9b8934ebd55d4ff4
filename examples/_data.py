"""Loaders for the real data sets in ../shared/data (IDX MNIST and the CIFAR-10 JPEG npz), with clear errors, and the
synthetic photo-like images the benchmarks use without them."""

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


def mnist_digits(folder: str | Path | None, n: int) -> tuple[np.ndarray, str]:
    """The first ``n`` MNIST test digits from the IDX ``folder``, or the package's shipped sample without it; with
    a description of where they came from."""
    if folder is None:
        from learned_augment.data import load_sample

        return load_sample("mnist")[0][:n], "the MNIST sample shipped in learned_augment"
    return load_mnist_pool(folder)[0][:n], f"MNIST test images from {folder}"


def _cifar_npz(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        path = path / "cifar10_jpeg.npz"
    if not path.is_file():
        raise DataError(f"missing {path} (expected the CIFAR-10 JPEG npz)")
    return path


def _decode_jpegs(buf: np.ndarray, off: np.ndarray, count: int) -> np.ndarray:
    """The first ``count`` JPEGs of a concatenated buffer as (count, 32, 32, 3) uint8 RGB."""
    import cv2

    out = np.empty((max(count, 0), 32, 32, 3), dtype=np.uint8)
    for i in range(count):
        img = cv2.imdecode(buf[off[i] : off[i + 1]], cv2.IMREAD_COLOR)
        if img is None or img.shape != (32, 32, 3):
            raise ValueError(f"image {i} is not a 32x32 colour JPEG")
        out[i] = img[:, :, ::-1]  # OpenCV decodes to BGR
    return out


def load_cifar10(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test) from the JPEG npz: uint8 (N, 32, 32, 3) RGB."""
    path = _cifar_npz(path)
    try:
        d = np.load(path, allow_pickle=False)
        parts = []
        for split in ("train", "test"):
            buf, off = d[f"{split}_jpeg"], d[f"{split}_offsets"]
            parts += [_decode_jpegs(buf, off, len(off) - 1), d[f"y_{split}"].astype(np.int64)]
    except (KeyError, ValueError, OSError, TypeError) as exc:
        raise DataError(f"{path} is not the CIFAR-10 JPEG npz described in the data README ({exc})") from None
    return parts[0], parts[1], parts[2], parts[3]


def load_cifar10_test(path: str | Path, n: int) -> np.ndarray:
    """The first ``n`` CIFAR-10 test images from the JPEG npz, (n, 32, 32, 3) uint8 RGB; only those are decoded."""
    path = _cifar_npz(path)
    try:
        with np.load(path, allow_pickle=False) as d:
            buf, off = d["test_jpeg"], d["test_offsets"]
            out = _decode_jpegs(buf, off, min(n, len(off) - 1))
    except (KeyError, ValueError, OSError) as exc:
        raise DataError(f"{path} is not the CIFAR-10 JPEG npz ({exc})") from None
    if not len(out):
        raise DataError(f"{path} holds no test images")
    return out


def synthetic_images(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Smooth, photo-like stand-ins: upsampled colour noise plus a few hard edges, (n, size, size, 3) uint8.

    Constant or white-noise images would flatter or penalise some ops (equalize, JPEG-like content); these have
    smooth gradients and edges like natural images.
    """
    import cv2

    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        coarse = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        img = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
        for _ in range(3):
            centre = tuple(int(v) for v in rng.integers(0, size, 2))
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            cv2.circle(img, centre, int(rng.integers(size // 8, size // 3 + 1)), colour, -1)
        out[i] = img
    return out
