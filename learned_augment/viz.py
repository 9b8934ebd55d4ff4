"""PNG previews: sample grids (originals vs augmented) and TF-frequency bar charts, drawn with OpenCV only."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from .io import atomic_write_bytes


def _to_rgb_u8(img: np.ndarray) -> np.ndarray:
    if img.dtype != np.uint8:
        img = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = img[:, :, None]
    return np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img


def image_grid(
    rows: Sequence[Sequence[np.ndarray]], scale: int = 3, pad: int = 2, labels: Sequence[str] | None = None
) -> np.ndarray:
    """Tile rows of equally sized images into one RGB uint8 image, optionally with a label left of each row."""
    if not rows or not rows[0]:
        raise ValueError("image_grid needs at least one image")
    h, w = rows[0][0].shape[:2]
    ch, cw = h * scale, w * scale
    label_w = 0
    if labels:
        label_w = max(cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)[0][0] for t in labels) + 10
    ncols = max(len(r) for r in rows)
    out = np.full((len(rows) * (ch + pad) + pad, label_w + ncols * (cw + pad) + pad, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        y = pad + r * (ch + pad)
        if labels:
            cv2.putText(out, labels[r], (4, y + ch // 2 + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        for c, img in enumerate(row):
            x = label_w + pad + c * (cw + pad)
            tile = cv2.resize(_to_rgb_u8(img), (cw, ch), interpolation=cv2.INTER_NEAREST)
            out[y : y + ch, x : x + cw] = tile
    return out


def frequency_chart(
    names: Sequence[str], freqs: Sequence[float], title: str = "TF frequencies", reference: float | None = None
) -> np.ndarray:
    """Horizontal bar chart (RGB uint8) of TF frequencies; ``reference`` draws a line (e.g. uniform 1/K)."""
    n = len(names)
    row, left, width = 16, max(cv2.getTextSize(s, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)[0][0] for s in names) + 12, 360
    top = 28
    img = np.full((top + n * row + 24, left + width + 70, 3), 255, np.uint8)
    cv2.putText(img, title, (8, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    fmax = max(max(freqs), reference or 0.0, 1e-9)
    for i, (name, f) in enumerate(zip(names, freqs)):
        y = top + i * row
        cv2.putText(img, name, (6, y + 11), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        bw = int(round(width * f / fmax))
        cv2.rectangle(img, (left, y + 2), (left + bw, y + row - 3), (66, 133, 244), -1)
        cv2.putText(
            img, f"{f:.3f}", (left + bw + 4, y + 11), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (60, 60, 60), 1, cv2.LINE_AA
        )
    if reference is not None:
        x = left + int(round(width * reference / fmax))
        cv2.line(img, (x, top - 2), (x, top + n * row), (219, 68, 55), 1)
        cv2.putText(
            img, "uniform", (x + 3, top + n * row + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (219, 68, 55), 1, cv2.LINE_AA
        )
    return img


def write_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Encode an RGB uint8 image as PNG and write it atomically."""
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:
        raise ValueError("PNG encoding failed")
    return atomic_write_bytes(path, buf.tobytes())


def preview(
    policy,
    images: np.ndarray,
    path: str | Path,
    n_images: int = 8,
    n_samples: int = 6,
    seed: int = 0,
    compare_uniform: bool = True,
) -> Path:
    """Write a PNG: originals in the first column, then ``n_samples`` augmentations per image (one row each);
    with ``compare_uniform``, rows of random (uniform) sequences of the same TF set follow for comparison."""
    from .ops.sequence import apply_sequence
    from .policy.models import UniformPolicy
    from .policy.sampler import BlockSampler

    rng = np.random.default_rng(seed)
    images = images[:n_images]
    rows, labels = [], []
    sources = [("learned", policy)]
    if compare_uniform:
        sources.append(("uniform", UniformPolicy(policy.tfset, policy.seq_len)))
    for label, pol in sources:
        sampler = BlockSampler(pol, seed=seed, block_size=256)
        for img in images:
            row = [img] + [apply_sequence(img, list(sampler.next()), pol.tfset, rng=rng) for _ in range(n_samples)]
            rows.append(row)
            labels.append(label)
    return write_png(path, image_grid(rows, labels=labels))


def frequency_png(policy, path: str | Path) -> Path:
    """Write the policy's TF frequencies as a bar chart PNG."""
    p = policy.probabilities()
    return write_png(
        path,
        frequency_chart(policy.tfset.ids, list(p), title=f"{policy.model_name} TF frequencies", reference=1.0 / len(p)),
    )
