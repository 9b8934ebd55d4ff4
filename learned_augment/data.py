"""Turn the many ways users hold images into one array, and the shipped sample data.

``as_images`` accepts a torch ``Dataset`` (items may be images, ``(image, label, ...)`` tuples, whose labels are
ignored, dicts with an ``"image"`` entry, or paths to image files), any iterable of such items, a numpy array
``(N, H, W[, C])``, a folder of image files or an ``.npz`` file. Images may be PIL images, HWC numpy arrays or CHW
tensors; grey images among colour ones are read as colour (as torchvision's image folders read every file as RGB),
and all must share one size unless ``image_size`` resizes them as they are read. An alpha channel is dropped.
"""

from __future__ import annotations

import hashlib
import itertools
import numbers
import os
import warnings
import zipfile
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .arguments import MAX_SEED, check_int, check_size
from .ops.image import ALPHA_CHANNELS

# random_subset's stream of a seed: fit_policy's draws use streams 0-5 and, in distributed fits, 4 + 16k and
# 5 + 16k (learned_augment/fit/loop.py); 7 is free in both.
SUBSET_STREAM = 7
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


def load_sample(name: str = "mnist") -> tuple[np.ndarray, np.ndarray]:
    """The sample shipped inside the package: ``(images (N, 28, 28) uint8, labels (N,) uint8)``.

    ``"mnist"`` is the first 2,000 images of the MNIST test set (CC BY-SA 3.0; see ``learned_augment/samples``).
    """
    if name != "mnist":
        raise KeyError(f"unknown sample {name!r}; available: ['mnist']")
    with resources.files("learned_augment").joinpath("samples").joinpath("mnist_sample.npz").open("rb") as f:
        d = np.load(f)
        return d["images"].copy(), d["labels"].copy()


def to_hwc_uint8(item: Any) -> np.ndarray:
    """One image (PIL, HWC/HW numpy, CHW torch tensor; uint8 or float in [0, 1]) as an HWC uint8 array.

    An alpha channel (PIL LA or RGBA, or 2 or 4 channels) is dropped: policies are fitted on colour, the only thing
    their TFs change apart from geometry, and applied to images with alpha they move it with the colour."""
    if hasattr(item, "mode") and hasattr(item, "size") and hasattr(item, "convert"):
        # Integer and float modes (16-bit PNGs, TIFFs) keep their values for the dtype checks below:
        # convert("L") would clip them, to white or to black, without a word.
        wide = item.mode in ("I", "F") or item.mode.startswith("I;")
        if item.mode not in ("L", "RGB") and not wide:
            item = item.convert("RGB" if item.mode in ("RGBA", "RGBa", "P", "PA", "CMYK", "YCbCr") else "L")
        arr = np.asarray(item)
    elif hasattr(item, "detach") and hasattr(item, "permute"):
        t = item.detach().cpu()
        if t.ndim == 3:
            t = t.permute(1, 2, 0)
        arr = t.numpy()
    else:
        arr = np.asarray(item)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim == 3 and arr.shape[2] in ALPHA_CHANNELS:
        arr = arr[:, :, :-1]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3):
        raise ValueError(
            f"expected an image of shape (H, W) or (H, W, C) with C in (1, 3), or 2 or 4 with alpha last; got "
            f"{arr.shape}"
        )
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
            raise ValueError("float images must hold finite values in [0, 1]")
        return np.clip(np.rint(arr * 255), 0, 255).astype(np.uint8)
    hint = " (scale wider integers to 8 bits first, e.g. (a >> 8).astype(np.uint8) for 16-bit)"
    raise TypeError(f"unsupported image dtype {arr.dtype}; use uint8 or float in [0, 1]" + hint)


def _image_files(folder: Path, limit: int | None) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) found under {folder}")
    return files[:limit]


def _read_image(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imdecode(np.fromfile(str(path), dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"cannot read image file {path}")
    if img.ndim == 3:
        img = img[:, :, :3][:, :, ::-1] if img.shape[2] >= 3 else img[:, :, :1]
    try:
        return to_hwc_uint8(img)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{path}: {exc}") from None


def _read_npz(path: Path) -> np.ndarray:
    """The image array of an ``.npz`` file: ``images``, else ``x``, else its first array."""
    # numpy's message for a file it cannot parse advises allow_pickle=True: pickle is never loaded here.
    unreadable = f"{path} is not a readable .npz archive of image arrays (pickled arrays are refused)"
    broken = (ValueError, OSError, EOFError, zipfile.BadZipFile)
    try:
        loaded = np.load(path, allow_pickle=False)
    except broken:
        raise ValueError(unreadable) from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):  # a lone .npy array under an .npz name
        raise ValueError(unreadable)
    with loaded as d:
        if not d.files:
            raise ValueError(f"{path} holds no arrays; expected an 'images' array")
        key = "images" if "images" in d.files else ("x" if "x" in d.files else d.files[0])
        try:
            return d[key]
        except broken:
            raise ValueError(unreadable) from None


def _resized(image: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """``image`` (HWC) at ``size``: area interpolation when shrinking both sides, else bilinear."""
    if size is None or image.shape[:2] == size:
        return image
    import cv2

    h, w = size
    shrink = h <= image.shape[0] and w <= image.shape[1]
    out = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return out[:, :, None] if out.ndim == 2 else out


def random_subset(n_items: int, size: int, seed: int) -> np.ndarray:
    """Positions of a random subset of items, the same for the same arguments.

    Parameters
    ----------
    n_items:
        Number of items to draw from.
    size:
        Items to keep; all of them where ``size >= n_items``.
    seed:
        An integer in [0, 2**64). The draw uses a stream of its own (see ``SUBSET_STREAM``), so a fit's other
        draws of the same seed are the same with and without a subset.

    Returns
    -------
    np.ndarray
        ``(min(size, n_items),)`` int64 positions, sorted, without repeats.
    """
    n_items = check_int(n_items, "n_items", 0)
    size = check_int(size, "size", 1)
    seed = check_int(seed, "seed", 0, MAX_SEED)
    if size >= n_items:
        return np.arange(n_items, dtype=np.int64)
    rng = np.random.default_rng(np.random.SeedSequence([seed, SUBSET_STREAM, 0]))
    return np.sort(rng.choice(n_items, size, replace=False)).astype(np.int64)


def as_images(
    data: Any,
    limit: int | None = None,
    image_size: int | tuple[int, int] | None = None,
    subset: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Collect ``data`` into one ``(N, H, W, C)`` uint8 array (C is 1 or 3). See the module docstring.

    ``image_size`` (an int or ``(height, width)``) resizes every image to it as it is read, so that a folder of
    photos of many sizes can be used; without it all images must have one size. ``limit`` keeps the first items;
    ``subset`` then a random ``subset`` of them (:func:`random_subset` of ``seed``), read alone where ``data`` is a
    folder, an array or a ``Dataset``.
    """
    if limit is not None:
        check_int(limit, "limit", 1)
    if subset is not None:
        check_int(subset, "subset", 1)
        check_int(seed, "seed", 0, MAX_SEED)
    hw = check_size(image_size)
    pick = (lambda n: np.arange(n)) if subset is None else (lambda n: random_subset(n, subset, seed))
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if not path.exists():
            raise FileNotFoundError(f"no such file or folder: {path}")
        if path.is_dir():
            files = _image_files(path, limit)
            return _stack([_resized(_read_image(files[i]), hw) for i in pick(len(files))])
        if path.suffix.lower() == ".npz":
            return as_images(_read_npz(path), limit, hw, subset, seed)
        raise ValueError(f"{path}: expected a folder of images or an .npz file with an 'images' array")
    if isinstance(data, np.ndarray):
        arr = data[:limit] if limit is not None else data
        if arr.ndim == 3:
            arr = arr[..., None]
        if arr.ndim == 4 and arr.shape[3] in ALPHA_CHANNELS:
            arr = arr[..., :-1]  # the policy's TFs never change alpha, so the fit has nothing to learn from it
        if arr.ndim != 4 or arr.shape[3] not in (1, 3):
            raise ValueError(
                f"image array must be (N, H, W) or (N, H, W, C) with C in (1, 3), or 2 or 4 with alpha last; got "
                f"{data.shape}"
            )
        if subset is not None and subset < len(arr):
            arr = arr[pick(len(arr))]
        if len(arr) == 0:
            raise ValueError("no images given")
        if hw is not None and arr.shape[1:3] != hw:
            return np.stack([_resized(to_hwc_uint8(a), hw) for a in arr])
        if arr.dtype != np.uint8:
            return np.stack([to_hwc_uint8(a) for a in arr])
        return np.ascontiguousarray(arr)
    if hasattr(data, "__len__") and hasattr(data, "__getitem__") and not isinstance(data, (list, tuple)):
        n = len(data) if limit is None else min(limit, len(data))
        return _stack([_resized(_image_of(data[int(i)]), hw) for i in pick(n)])
    if isinstance(data, Iterable):
        raw = list(itertools.islice(data, limit))  # only the picked items are decoded (a list of paths: read)
        return _stack([_resized(_image_of(raw[i]), hw) for i in pick(len(raw))])
    raise TypeError(f"cannot read images from {type(data).__name__}")


def _image_of(item: Any) -> np.ndarray:
    """The image of one item: an image, a path to an image file, an ``(image, label)`` pair (in either order) or
    a dict with an ``"image"`` (or ``"img"``) entry, as Hugging Face datasets give."""
    if isinstance(item, Mapping):
        key = next((k for k in ("image", "img") if k in item), None)
        if key is None:
            raise ValueError(f"a dict item needs an 'image' (or 'img') entry; got keys {sorted(map(str, item))[:8]}")
        item = item[key]
    elif isinstance(item, (tuple, list)) and item:
        item = next((x for x in item if not _is_scalar(x)), item[0])
    if isinstance(item, (str, os.PathLike)):  # a path: alone, in a pair (ImageFolder.samples) or in a dict
        return _read_image(Path(item))
    if _is_scalar(item):
        raise ValueError(f"expected an image, got the {type(item).__name__} {item!r}")
    return to_hwc_uint8(item)


def _is_scalar(x: Any) -> bool:
    """A label rather than an image: a number, or a 0-d array or tensor."""
    return isinstance(x, (numbers.Number, np.generic)) or (hasattr(x, "ndim") and x.ndim == 0)


def _stack(items: list[np.ndarray]) -> np.ndarray:
    """One ``(N, H, W, C)`` array. Grey images among colour ones are repeated to three channels (what they look
    like in colour)."""
    if not items:
        raise ValueError("no images given")
    if len({a.shape[2] for a in items}) > 1:
        grey = sum(a.shape[2] == 1 for a in items)
        warnings.warn(
            f"{grey} grey image{'s' if grey > 1 else ''} among {len(items) - grey} colour ones: read as colour "
            "(the grey channel repeated)",
            stacklevel=3,
        )
        items = [np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a for a in items]
    shapes = {a.shape for a in items}
    if len(shapes) > 1:
        raise ValueError(
            f"all images must have one size; found {sorted(shapes)[:4]}. Resize them first, or have them resized "
            "as they are read (image_size=(h, w); on the command line --image-size H W)"
        )
    return np.stack(items)


def fingerprint(images: np.ndarray) -> str:
    """A short content hash of an image array (recorded in artifacts' provenance)."""
    h = hashlib.sha256()
    h.update(str(images.shape).encode())
    h.update(np.ascontiguousarray(images).tobytes())
    return h.hexdigest()[:16]
