"""Quickstart, Albumentations: a learned policy in ``A.Compose`` with a mask, a box and a keypoint per image.

    python examples/quickstart_albumentations.py --out runs/quickstart_albumentations

1. take a shipped policy (``LearnedPolicyTransform.from_pretrained("mnist-lstm")``: an LSTM over TANDA's 25 MNIST
   TFs, fitted on MNIST; fitting your own is in quickstart_torchvision.py), or, with ``--policy untrained``, a policy
   built directly and saved to a file. Either way the pipeline references it by name or path;
2. put ``LearnedPolicyTransform(path)`` in an ``A.Compose`` with ``bbox_params`` and ``keypoint_params``: the digit's
   mask, its bounding box and a keypoint on its topmost stroke pixel move with the image;
3. round-trip the pipeline through ``A.to_dict`` / JSON / ``A.from_dict`` and replay a draw with ``A.ReplayCompose``;
4. read batches with a ``DataLoader`` with 2 workers and write ``quickstart_albumentations.png``: originals and
   augmented digits with their moved box (red), keypoint (green) and mask outline (blue).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

import learned_augment as la
from learned_augment.viz import image_grid, write_png


def annotate(digit: np.ndarray) -> dict:
    """Albumentations inputs for one digit: the image, its mask, its box (pascal_voc) and its topmost pixel."""
    mask = (digit > 127).astype(np.uint8)
    ys, xs = np.nonzero(mask)
    top = int(np.argmin(ys))
    return {
        "image": np.repeat(digit[..., None], 3, axis=2),
        "mask": mask,
        "bboxes": [[float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]],
        "labels": [1],
        "keypoints": [[float(xs[top]), float(ys[top])]],
    }


class AnnotatedDigits(Dataset):
    """Items ``(image (H, W, 3) uint8, mask (H, W), boxes (n, 4), keypoints (k, 2))`` through ``pipeline``."""

    def __init__(self, digits: np.ndarray, pipeline: A.Compose) -> None:
        self.digits, self.pipeline = digits, pipeline

    def __len__(self) -> int:
        return len(self.digits)

    def __getitem__(self, index: int):
        out = self.pipeline(**annotate(self.digits[index]))
        boxes = np.asarray(out["bboxes"], np.float32).reshape(-1, 4)
        keypoints = np.asarray(out["keypoints"], np.float32).reshape(-1, 2)
        return out["image"], out["mask"], boxes, keypoints


def keep_lists(batch: list) -> tuple:
    """Boxes and keypoints vary in number per image (a box leaving the image is dropped), so no stacking."""
    return tuple(zip(*batch))


def single_thread(_: int) -> None:
    torch.set_num_threads(1)


def draw(image: np.ndarray, mask: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray, scale: int = 4) -> np.ndarray:
    """An RGB preview, upscaled so the annotations are visible."""
    h, w = image.shape[:2]
    big = cv2.resize(np.ascontiguousarray(image), (w * scale, h * scale), interpolation=cv2.INTER_NEAREST)
    big_mask = cv2.resize(mask, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(big_mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(big, contours, -1, (60, 120, 255), 1)
    for x0, y0, x1, y1 in boxes:
        cv2.rectangle(big, (int(x0 * scale), int(y0 * scale)), (int(x1 * scale) - 1, int(y1 * scale) - 1), (255, 0, 0))
    for x, y in keypoints:  # pixel-index coordinates: the centre of pixel (x, y)
        cv2.circle(big, (int((x + 0.5) * scale), int((y + 0.5) * scale)), 3, (0, 255, 0), -1)
    return big


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/quickstart_albumentations", help="folder for the policy, JSON and PNG")
    ap.add_argument("--policy", default="pretrained", choices=["pretrained", "untrained"])
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    digits, _ = la.load_sample()

    # 1. A shipped policy (or one of your own, saved to a file).
    if a.policy == "pretrained":
        augment = la.LearnedPolicyTransform.from_pretrained("mnist-lstm", p=0.9)
    else:
        torch.manual_seed(a.seed)
        path = la.LSTMPolicy("mnist", seq_len=4).save(str(out / "mnist-lstm.safetensors"))
        augment = la.LearnedPolicyTransform(path, p=0.9)

    # 2. A dual transform: image, mask, boxes and keypoints move together.
    pipeline = A.Compose(
        [augment],
        bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"]),
        keypoint_params=A.KeypointParams(format="xy"),
        seed=a.seed,
    )
    print(pipeline)

    # 3. Serialisation (names and numbers only: the policy is referenced by its path) and replay.
    spec = out / "pipeline.json"
    spec.write_text(json.dumps(A.to_dict(pipeline), indent=2))
    restored = A.from_dict(json.loads(spec.read_text()))
    sample = annotate(digits[0])
    assert np.array_equal(restored(**sample)["image"], pipeline(**sample)["image"]), "from_dict changed the pipeline"
    replay = A.ReplayCompose([la.LearnedPolicyTransform(augment.source)])
    first = replay(image=sample["image"], mask=sample["mask"])
    again = A.ReplayCompose.replay(first["replay"], image=sample["image"], mask=sample["mask"])
    assert np.array_equal(first["image"], again["image"]) and np.array_equal(first["mask"], again["mask"])
    print(f"round trip through {spec} and ReplayCompose: identical outputs")

    # 4. In a DataLoader with worker processes (each worker draws its own sequences).
    n_show = 8
    loader = DataLoader(
        AnnotatedDigits(digits[:n_show], pipeline),
        batch_size=n_show,
        num_workers=a.workers,
        collate_fn=keep_lists,
        worker_init_fn=single_thread if a.workers else None,
    )
    originals = [annotate(d) for d in digits[:n_show]]
    rows = [[draw(s["image"], s["mask"], np.asarray(s["bboxes"]), np.asarray(s["keypoints"])) for s in originals]]
    for epoch in range(2):
        augment.set_epoch(epoch)  # optional: draws are fresh every epoch anyway; this ties them to the epoch
        images, masks, boxes, keypoints = next(iter(loader))
        rows.append([draw(*item) for item in zip(images, masks, boxes, keypoints)])
    grid = out / "quickstart_albumentations.png"
    write_png(grid, image_grid(rows, scale=1, labels=["original", "epoch 0", "epoch 1"]))
    print(f"wrote {spec} and {grid}")


if __name__ == "__main__":
    main()
