"""Shared scenes, checks and (picklable, importable by spawned workers) datasets for the transform tests."""

from __future__ import annotations

import numpy as np
import torch

from learned_augment.ops import TFSet

H, W = 32, 32
RECT = (9.0, 10.0, 23.0, 20.0)
"""The white rectangle of :func:`scene` as a continuous pascal_voc box: pixel columns 9..22, rows 10..19."""
DOT = (21.0, 6.0)
"""Centre (x, y) of the Gaussian dot in the green channel, in pixel-index coordinates (a keypoint)."""

GEOMETRIC_IDS = [
    "rotate(+20)",
    "rotate(-20)",
    "shear_x(+0.2)",
    "zoom(0.85)",
    "zoom(1.15)",
    "hflip",
    "vflip",
    "swirl(+0.6)",
    "translate_x(+0.1)",
    "translate_y(-0.1)",
]
"""Geometric TFs only: every draw moves the targets, so the consistency checks always have something to check."""


def geometric_tfset() -> TFSet:
    return TFSet(GEOMETRIC_IDS, name="geometric")


def scene() -> np.ndarray:
    """(H, W, 3) uint8: red = white filled rectangle :data:`RECT`, green = Gaussian dot at :data:`DOT`, blue = 0."""
    img = np.zeros((H, W, 3), np.uint8)
    x0, y0, x1, y1 = (int(v) for v in RECT)
    img[y0:y1, x0:x1, 0] = 255
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    dot = 255.0 * np.exp(-((xs - DOT[0]) ** 2 + (ys - DOT[1]) ** 2) / (2 * 1.2**2))
    img[..., 1] = np.rint(dot).astype(np.uint8)
    return img


def rect_mask() -> np.ndarray:
    """(H, W) uint8: 1 inside :data:`RECT`."""
    m = np.zeros((H, W), np.uint8)
    x0, y0, x1, y1 = (int(v) for v in RECT)
    m[y0:y1, x0:x1] = 1
    return m


def smooth_image(seed: int, h: int = H, w: int = W, channels: int = 3) -> np.ndarray:
    """A (h, w, channels) uint8 image without symmetries: gradients plus an off-centre bright square."""
    r = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    planes = [xs / w, ys / h, 0.5 + 0.3 * np.sin(xs / 5 + ys / 7)][:channels]
    img = np.stack(planes, axis=-1)
    y0, x0 = int(r.integers(2, h // 3)), int(r.integers(2, w // 3))
    img[y0 : y0 + h // 4, x0 : x0 + w // 3] = 0.9
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


BOX_INFLATION = 6.0
"""How much larger than the object a moved box may be, per side. A box crossing a swirl between two affine runs is
re-enclosed after each (affine, warp, affine) step, which inflates it (measured: up to 5.0 px on this scene)."""


def check_box_encloses(red: np.ndarray, box: np.ndarray, what: str) -> None:
    """The box (continuous x0, y0, x1, y1) encloses every bright pixel (1 px slack) and is not much larger."""
    ys, xs = np.nonzero(red > 100)
    assert len(xs), f"{what}: the rectangle left the image"
    x0, y0, x1, y1 = (float(v) for v in box)
    lo_x, lo_y, hi_x, hi_y = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    assert lo_x >= x0 - 1 and lo_y >= y0 - 1 and hi_x <= x1 + 1 and hi_y <= y1 + 1, (
        f"{what}: box {box} does not enclose the bright pixels [{lo_x}, {lo_y}, {hi_x}, {hi_y}]"
    )
    slack = BOX_INFLATION
    assert lo_x <= x0 + slack and lo_y <= y0 + slack and hi_x >= x1 - slack and hi_y >= y1 - slack, (
        f"{what}: box {box} is much larger than the bright pixels [{lo_x}, {lo_y}, {hi_x}, {hi_y}]"
    )


def check_mask(mask: np.ndarray, red: np.ndarray, what: str) -> None:
    """The moved mask covers the moved rectangle: IoU with the thresholded image above 0.8."""
    m, r = np.asarray(mask).reshape(red.shape) > 0, red > 127
    iou = (m & r).sum() / max(1, (m | r).sum())
    assert iou > 0.8, f"{what}: mask IoU with the image is {iou:.2f}"


def dot_centre(green: np.ndarray) -> tuple[float, float] | None:
    """Intensity-weighted centre (x, y) of the dot around the brightest pixel; None if it left the image."""
    iy, ix = np.unravel_index(int(np.argmax(green)), green.shape)
    if green[iy, ix] < 128 or not (2 <= ix < green.shape[1] - 2 and 2 <= iy < green.shape[0] - 2):
        return None
    win = green[iy - 2 : iy + 3, ix - 2 : ix + 3].astype(np.float64)
    win = np.clip(win - 0.3 * win.max(), 0, None)
    ys, xs = np.mgrid[-2:3, -2:3]
    return float(ix + (win * xs).sum() / win.sum()), float(iy + (win * ys).sum() / win.sum())


def check_keypoint(green: np.ndarray, kp: np.ndarray, what: str, tol: float = 0.75) -> bool:
    """The keypoint sits on the moved dot (pixel-index coordinates); False when the dot left the image."""
    c = dot_centre(green)
    if c is None:
        return False
    d = float(np.hypot(c[0] - float(kp[0]), c[1] - float(kp[1])))
    assert d <= tol, f"{what}: keypoint {tuple(float(v) for v in kp[:2])} is {d:.2f} px from the dot at {c}"
    return True


# ------------------------------------------------------------------------------------------------ DataLoader helpers


def one_thread(_: int) -> None:
    """worker_init_fn: two cores are shared by two workers."""
    torch.set_num_threads(1)


class IdsDataset(torch.utils.data.Dataset):
    """``n`` copies of one image through ``transform``; items report which TFs were applied, and by which worker."""

    def __init__(self, transform, n: int = 16) -> None:
        self.transform = transform
        self.n = n
        self.image = smooth_image(0)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int):
        out = self.transform(self.image)
        lp = self.transform.last_params
        ids = np.asarray(lp["tf_ids"]) if lp.get("applied") else np.full(self.transform.policy.seq_len, -1)
        info = torch.utils.data.get_worker_info()
        return torch.from_numpy(out), torch.from_numpy(ids.astype(np.int64)), -1 if info is None else info.id


class AlbumentationsFlags(torch.utils.data.Dataset):
    """``n`` copies of one image through an Albumentations pipeline; items say whether its first transform ran."""

    def __init__(self, pipeline, n: int = 32) -> None:
        self.pipeline = pipeline
        self.n = n
        self.image = smooth_image(1)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int):
        out = self.pipeline(image=self.image)["image"]
        info = torch.utils.data.get_worker_info()
        return int(not np.array_equal(out, self.image)), -1 if info is None else info.id


class LabelledImages(torch.utils.data.Dataset):
    """``(image, label, index)`` items of distinct random images."""

    def __init__(self, n: int, seed: int = 0) -> None:
        self.images = np.random.default_rng(seed).integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.images[index], index % 10, index


class ChangedFlags(torch.utils.data.Dataset):
    """Wraps a dataset of :class:`LabelledImages` items: ``(changed, label, index)``."""

    def __init__(self, augmented, original: LabelledImages) -> None:
        self.augmented = augmented
        self.original = original

    def __len__(self) -> int:
        return len(self.original)

    def __getitem__(self, index: int):
        img, label, idx = self.augmented[index]
        return int(not np.array_equal(img, self.original.images[index])), label, idx
