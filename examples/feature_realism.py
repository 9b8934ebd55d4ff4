"""Would a discriminator on self-supervised features see which TFs damage labels better than one on pixels?

TANDA's reward is a discriminator's realism score; what an end model needs is variety that keeps the label. On the
wide ``default`` set the pixel discriminator spots a blur (which keeps a digit) more easily than a mirror (which may
not), and on CIFAR-10 it spots almost nothing. This script measures, per TF of a vocabulary:

* **pixel detectability**: the mean cost increase ``-log D(tf(x)) + log D(x)`` on held-out images under
  ``fit_policy``'s DCGAN discriminator trained against single TFs drawn uniformly (``policy_realism.py``'s reference);
* **feature detectability**: the same for a small MLP head on a *frozen* encoder trained without labels
  (SimCLR: NT-Xent over two views made by random resized crops, flips, colour jitter and greyscale) on the
  unlabeled pool;
* **identity lost**: how often a TF makes an image's features no longer nearest to its own clean copy;
* **damage**: clean accuracy minus accuracy on ``tf(x)`` of a classifier trained on labeled pool images with the
  tables' crop (and flip on CIFAR-10); with ``--damage-classifier tfs`` half its training images also get one TF
  drawn uniformly from the set (each TF on about 1% of them), so that what is merely new to it weighs less. Labels
  measure; they are never part of a fit. The held-out images are in neither the encoder's nor the classifier's
  (:func:`split`).

It prints the Spearman rank correlation (average ranks for ties) of each score with the damage, over all TFs and
over the TFs that change the images, a bootstrap interval of the feature-minus-pixel gap, and the encoder's k-NN
accuracy as a sanity check, and writes JSON (and the encoder, as safetensors with its split, for ``--encoder``).

Run::

    python examples/feature_realism.py --mnist ../shared/data/mnist --out runs/feature_realism_mnist.json
    python examples/feature_realism.py --cifar ../shared/data/cifar10/cifar10_jpeg.npz --threads 2 \\
        --out runs/feature_realism_cifar10.json
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _data import load_cifar10, load_mnist_pool
from _models import SmallCNN, make_end_model
from _report import write_report
from policy_realism import reference_detectability
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

import learned_augment as la
from learned_augment.ops.sequence import apply_sequence


def average_ranks(a: np.ndarray) -> np.ndarray:
    """Ranks from 0, ties sharing their mean rank (many TFs tie: exact no-ops score 0 on every measure)."""
    order = np.argsort(a, kind="stable")
    ranks = np.empty(len(a))
    ranks[order] = np.arange(len(a), dtype=float)
    for value in np.unique(a):
        tied = a == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation with average ranks for ties (0.0 when either side is constant)."""
    ra, rb = average_ranks(np.asarray(a, float)), average_ranks(np.asarray(b, float))
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def gap_interval(a: np.ndarray, b: np.ndarray, target: np.ndarray, seed: int, n: int = 2000) -> tuple[float, float]:
    """95% bootstrap interval, over TFs drawn with replacement, of ``spearman(a, target) - spearman(b, target)``."""
    rng = np.random.default_rng(seed)
    gaps = []
    for _ in range(n):
        i = rng.integers(0, len(target), len(target))
        gaps.append(spearman(a[i], target[i]) - spearman(b[i], target[i]))
    lo, hi = np.percentile(gaps, [2.5, 97.5])
    return float(lo), float(hi)


def split(n: int, held: int, ssl_images: int, labeled: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of the held-out images, of the encoder's and discriminators' pool and of the classifier's labeled
    images, from one permutation of ``n``: the held-out images are in neither of the others."""
    perm = np.random.default_rng(seed).permutation(n)
    held_idx, rest = perm[:held], perm[held:]
    return held_idx, rest[:ssl_images], rest[:labeled]


def unit(images: np.ndarray) -> torch.Tensor:
    """``(N, H, W[, C])`` uint8 -> ``(N, C, H, W)`` float in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div(255.0)
    return x.reshape(*images.shape[:3], -1).permute(0, 3, 1, 2).contiguous()


def two_views(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """SimCLR's augmentations, drawn per image on a batch in [0, 1]: resized crop (area 0.2-1, aspect 3/4-4/3),
    horizontal flip, colour jitter (p 0.8: brightness, contrast, saturation 0.6-1.4) and greyscale (p 0.2)."""
    b, c = x.shape[:2]

    def u(lo: float, hi: float, n: int = b) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    area, aspect = u(0.2, 1.0), torch.exp(u(math.log(3 / 4), math.log(4 / 3)))
    w, h = (area * aspect).sqrt().clamp(max=1.0), (area / aspect).sqrt().clamp(max=1.0)
    flip = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = w * flip, h
    theta[:, 0, 2], theta[:, 1, 2] = (1 - w) * u(-1, 1), (1 - h) * u(-1, 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    y = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    jit = (torch.rand(b, generator=gen) < 0.8).float().view(b, 1, 1, 1)
    y = y * (1 + jit * (u(0.6, 1.4).view(b, 1, 1, 1) - 1))
    mean = y.mean(dim=(1, 2, 3), keepdim=True)
    y = mean + (y - mean) * (1 + jit * (u(0.6, 1.4).view(b, 1, 1, 1) - 1))
    if c == 3:
        grey = (y * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        y = grey + (y - grey) * (1 + jit * (u(0.6, 1.4).view(b, 1, 1, 1) - 1))
        to_grey = (torch.rand(b, generator=gen) < 0.2).view(b, 1, 1, 1)
        y = torch.where(to_grey, grey.expand_as(y), y)
    return y.clamp(0, 1)


class Encoder(nn.Module):
    """Four 3x3 conv blocks (three of them halving the resolution), global average pool: ``(B, C, H, W)`` floats in
    [0, 1] -> ``(B, 8 * width)`` features."""

    def __init__(self, channels: int, width: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out, stride in ((channels, width, 1), (width, 2 * width, 2), (2 * width, 4 * width, 2),
                                    (4 * width, 8 * width, 2)):  # fmt: skip
            layers += [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        self.net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dim = 8 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 2 - 1)


def save_encoder(enc: Encoder, path: Path, about: dict[str, Any]) -> None:
    """The encoder's weights as safetensors, with what it was trained on (``about``) in the file's metadata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = {"channels": str(enc.net[0].in_channels), "width": str(enc.dim // 8)}
    meta = {**shape, **{k: json.dumps(v) for k, v in about.items()}}
    save_file({k: v.contiguous() for k, v in enc.state_dict().items()}, str(path), metadata=meta)


def load_encoder(path: Path, about: dict[str, Any]) -> tuple[Encoder, dict[str, Any]]:
    """An encoder saved by :func:`save_encoder`; exits with one line if it was trained on other data or another
    split (its training images could then include this run's held-out ones). Returns it and its metadata."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    saved = {k: json.loads(v) for k, v in meta.items() if k not in ("channels", "width")}
    differing = [k for k, v in about.items() if saved.get(k) != v]
    if differing:
        raise SystemExit(f"{path}: encoder trained with other {', '.join(differing)} than this run's ({saved})")
    enc = Encoder(int(meta["channels"]), int(meta["width"]))
    enc.load_state_dict(load_file(str(path)))
    return enc.eval(), saved


def train_simclr(pool: torch.Tensor, epochs: int, seed: int, batch: int = 256, tau: float = 0.5) -> Encoder:
    """A SimCLR encoder on ``pool`` ([0, 1] images), NT-Xent at temperature ``tau``; its projection head dropped."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    batch = min(batch, len(pool))  # a small pool: one batch of all of it
    enc = Encoder(pool.shape[1])
    proj = nn.Sequential(nn.Linear(enc.dim, enc.dim), nn.ReLU(inplace=True), nn.Linear(enc.dim, 128))
    params = [*enc.parameters(), *proj.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3, weight_decay=1e-6)
    steps = epochs * (len(pool) // batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(len(pool), generator=gen)
        total = 0.0
        for i in range(len(pool) // batch):
            x = pool[order[i * batch : (i + 1) * batch]]
            z = F.normalize(proj(enc(torch.cat([two_views(x, gen), two_views(x, gen)]))), dim=1)
            sim = z @ z.T / tau
            sim.fill_diagonal_(-1e9)
            target = torch.cat([torch.arange(batch, 2 * batch), torch.arange(batch)])
            loss = F.cross_entropy(sim, target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        print(
            f"  simclr epoch {epoch + 1}/{epochs}: loss {total / (len(pool) // batch):.3f} "
            f"({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    return enc.eval()


@torch.no_grad()
def embed(enc: nn.Module, x: torch.Tensor, chunk: int = 1000) -> torch.Tensor:
    """``(N, C, H, W)`` floats in [0, 1] -> ``(N, D)`` features, ``chunk`` images at a time."""
    return torch.cat([enc(x[i : i + chunk]) for i in range(0, len(x), chunk)])


@torch.no_grad()
def knn_accuracy(
    enc: Encoder, train: torch.Tensor, y_train: np.ndarray, test: torch.Tensor, y_test: np.ndarray
) -> float:
    """20-nearest-neighbour vote (cosine) of the encoder's features, in %."""
    a, b = F.normalize(embed(enc, train), dim=1), F.normalize(embed(enc, test), dim=1)
    nn_idx = (b @ a.T).topk(min(20, len(a)), dim=1).indices
    votes = torch.from_numpy(y_train)[nn_idx]
    pred = torch.mode(votes, dim=1).values.numpy()
    return float(100.0 * (pred == y_test).mean())


@torch.no_grad()
def identity_loss(enc: nn.Module, held: np.ndarray, tfset: la.TFSet, seed: int) -> np.ndarray:
    """Per TF: the share of held-out images whose transformed copy is *not* nearest (cosine, encoder features) to
    its own clean image among all clean held-out images: how often a TF loses an image's identity."""
    clean = F.normalize(embed(enc, unit(held)), dim=1)
    own = torch.arange(len(held))
    out = []
    for k, entry in enumerate(tfset):
        moved = F.normalize(embed(enc, unit(apply_each(held, entry, seed + 1 + k))), dim=1)
        out.append(float(((moved @ clean.T).argmax(1) != own).float().mean()))
    return np.array(out)


def apply_each(images: np.ndarray, entry: Any, seed: int) -> np.ndarray:
    """One TF on each ``(N, H, W[, C])`` uint8 image, drawn from a generator seeded with ``seed``; same shape."""
    r = np.random.default_rng(seed)
    return np.stack([apply_sequence(im, [entry], rng=r) for im in images]).reshape(images.shape)


def feature_detectability(
    enc: Encoder, pool: np.ndarray, held: np.ndarray, tfset: la.TFSet, steps: int, seed: int
) -> np.ndarray:
    """As the pixel reference, with a 2-layer MLP head on the frozen encoder's features as the discriminator."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    head = nn.Sequential(nn.Linear(enc.dim, 256), nn.LeakyReLU(0.2), nn.Linear(256, 1))
    opt = torch.optim.Adam(head.parameters(), lr=1e-3, betas=(0.5, 0.999))
    for _ in range(steps):
        real = pool[rng.choice(len(pool), 32, replace=False)]
        fake = np.stack(
            [apply_sequence(im, [tfset[int(k)]], rng=rng) for im, k in zip(real, rng.integers(0, len(tfset), 32))]
        ).reshape(real.shape)
        with torch.no_grad():
            feats = enc(torch.cat([unit(real), unit(fake)]))
        loss = F.binary_cross_entropy_with_logits(head(feats).reshape(-1), torch.cat([torch.ones(32), torch.zeros(32)]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        base = F.softplus(-head(embed(enc, unit(held))).reshape(-1))
        out = []
        for k, entry in enumerate(tfset):
            y = unit(apply_each(held, entry, seed + 1 + k))
            out.append(float((F.softplus(-head(embed(enc, y)).reshape(-1)) - base).mean()))
    return np.array(out)


def train_classifier(
    x: np.ndarray, y: np.ndarray, cifar: bool, epochs: int, seed: int, tfset: la.TFSet | None = None
) -> nn.Module:
    """The tables' end model on labeled pool images with their padding and crop (2 px digits; 4 px and a flip on
    CIFAR-10), one crop offset and flip per batch (not per image, as the tables' loaders draw them).

    With ``tfset``, half the images of each batch first get one TF drawn uniformly from it, so that the classifier
    has seen every TF: its accuracy on ``tf(x)`` then says whether the label survives the TF, not whether the TF is
    new to it."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = make_end_model("resnet20", 3) if cifar else SmallCNN(1)
    data, labels, pad = unit(x), torch.from_numpy(y).long(), 4 if cifar else 2
    batch = 128
    opt = torch.optim.SGD(model.parameters(), lr=0.1 if cifar else 0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    n_steps = epochs * math.ceil(len(data) / batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=opt.param_groups[0]["lr"], total_steps=n_steps)
    padded = F.pad(data, (pad, pad, pad, pad))
    h, w = data.shape[2:]
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(data), generator=gen)
        for i in range(0, len(data), batch):
            idx = order[i : i + batch]
            dx, dy = torch.randint(0, 2 * pad + 1, (2,), generator=gen).tolist()
            if tfset is None:
                xb = padded[idx, :, dy : dy + h, dx : dx + w]
            else:
                raw = x[idx.numpy()].copy()
                for j in np.flatnonzero(rng.random(len(raw)) < 0.5):
                    raw[j] = apply_sequence(raw[j], [tfset[int(rng.integers(len(tfset)))]], rng=rng).reshape(
                        raw[j].shape
                    )
                xb = F.pad(unit(raw), (pad, pad, pad, pad))[:, :, dy : dy + h, dx : dx + w]
            if cifar and torch.rand(1, generator=gen) < 0.5:
                xb = xb.flip(3)
            loss = F.cross_entropy(model(xb * 2 - 1), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    t = unit(x)
    pred = torch.cat([model(t[i : i + 500] * 2 - 1).argmax(1) for i in range(0, len(t), 500)]).numpy()
    return float(100.0 * (pred == y).mean())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--cifar", type=Path, help="the CIFAR-10 JPEG npz (its 50,000 training images are the pool)")
    src.add_argument("--mnist", type=Path, help="the MNIST IDX folder (its 5,000-image pool)")
    p.add_argument("--tfs", default="default", help="TF set to score")
    p.add_argument("--ssl-images", type=int, default=20000, help="unlabeled pool images for the encoder (at most)")
    p.add_argument("--ssl-epochs", type=int, default=15)
    p.add_argument("--labeled", type=int, default=10000, help="labeled pool images for the damage classifier")
    p.add_argument("--clf-epochs", type=int, default=20)
    p.add_argument(
        "--damage-classifier",
        choices=["crop", "tfs"],
        default="crop",
        help="crop: trained with the tables' crop only; tfs: also with one uniformly drawn TF on half the images",
    )
    p.add_argument("--encoder", type=Path, help="a saved encoder state dict (skips the SimCLR training)")
    p.add_argument("--held", type=int, default=1000, help="held-out pool images everything is scored on")
    p.add_argument("--d-steps", type=int, default=500, help="training steps of each discriminator")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    cifar = a.cifar is not None
    if cifar:
        x, y = load_cifar10(a.cifar)[:2]
    else:
        x, y = load_mnist_pool(a.mnist)
        x, y = x[: len(x) // 2, :, :, None].copy(), y[: len(y) // 2]  # the tables' pool: the t10k file's first half
    held_idx, ssl_idx, lab = split(len(x), a.held, a.ssl_images, a.labeled, a.seed)
    held_x, held_y = x[held_idx], y[held_idx]
    ssl_x = x[ssl_idx]
    tfset = la.get_tfset(a.tfs)

    split_about = {"data": "cifar10" if cifar else "mnist", "seed": a.seed, "held": a.held, "images": len(x)}
    if a.encoder is not None:
        enc, encoder_about = load_encoder(a.encoder, split_about)
    else:
        print(f"SimCLR encoder on {len(ssl_x)} unlabeled images, {a.ssl_epochs} epochs", flush=True)
        enc = train_simclr(unit(ssl_x), a.ssl_epochs, a.seed)
        encoder_about = {**split_about, "ssl_images": len(ssl_x), "ssl_epochs": a.ssl_epochs}
        if a.out is not None:  # for reuse by --encoder
            save_encoder(enc, a.out.with_suffix(".encoder.safetensors"), encoder_about)
    knn = knn_accuracy(enc, unit(x[lab]), y[lab], unit(held_x), held_y)
    print(f"  k-NN accuracy of its features on the held-out images: {knn:.2f}%", flush=True)
    print(f"classifier on {len(lab)} labeled images, {a.clf_epochs} epochs", flush=True)
    clf = train_classifier(x[lab], y[lab], cifar, a.clf_epochs, a.seed, tfset if a.damage_classifier == "tfs" else None)
    clean = accuracy(clf, held_x, held_y)
    damage = np.array(
        [clean - accuracy(clf, apply_each(held_x, e, a.seed + 1 + k), held_y) for k, e in enumerate(tfset)]
    )
    print(
        f"  clean accuracy {clean:.2f}%; damage per TF from {damage.min():+.1f} to {damage.max():+.1f} points",
        flush=True,
    )
    print("pixel discriminator", flush=True)
    pixel = reference_detectability(ssl_x, held_x, tfset, a.d_steps, a.seed)
    print("feature discriminator", flush=True)
    feature = feature_detectability(enc, ssl_x, held_x, tfset, a.d_steps, a.seed)
    ident = identity_loss(enc, held_x, tfset, a.seed)
    # TFs that leave every held-out image as it is (colour TFs on grey digits) tie at 0 on every score.
    changes = np.array([not np.array_equal(apply_each(held_x, e, a.seed + 1 + k), held_x) for k, e in enumerate(tfset)])
    scores = {"pixel": pixel, "feature": feature, "identity_lost": ident}
    rho = {k: spearman(v, damage) for k, v in scores.items()}
    rho_changing = {k: spearman(v[changes], damage[changes]) for k, v in scores.items()}
    gap = gap_interval(feature, pixel, damage, a.seed)
    print(f"\n{'TF':>20} {'damage':>7} {'pixel D':>8} {'feature D':>9} {'identity lost':>13}")
    for k in np.argsort(-damage):
        print(f"{tfset.ids[k]:>20} {damage[k]:>+7.2f} {pixel[k]:>+8.3f} {feature[k]:>+9.3f} {ident[k]:>13.3f}")
    print("\nSpearman with the damage: " + ", ".join(f"{k} {v:+.3f}" for k, v in rho.items()))
    print(
        f"  the {int(changes.sum())} TFs that change the images: "
        + ", ".join(f"{k} {v:+.3f}" for k, v in rho_changing.items())
    )
    print(
        f"  feature minus pixel: {rho['feature'] - rho['pixel']:+.3f}, "
        f"95% bootstrap interval over TFs {gap[0]:+.3f} to {gap[1]:+.3f}"
    )
    args = sys.argv[1:] if argv is None else argv
    result = {
        "command": shlex.join(["python", "examples/feature_realism.py", *args]),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
        "encoder": encoder_about,
        "knn_accuracy": round(knn, 2),
        "clean_accuracy": round(clean, 2),
        "spearman_with_damage": {k: round(v, 3) for k, v in rho.items()},
        "spearman_with_damage_changing_tfs": {k: round(v, 3) for k, v in rho_changing.items()},
        "changing_tfs": int(changes.sum()),
        "feature_minus_pixel_interval95": [round(gap[0], 3), round(gap[1], 3)],
        "per_tf": {
            t: {
                "damage": round(float(d), 2),
                "pixel": round(float(pp), 4),
                "feature": round(float(ff), 4),
                "identity_lost": round(float(ii), 4),
            }
            for t, d, pp, ff, ii in zip(tfset.ids, damage, pixel, feature, ident)
        },
        "total_wall_s": round(time.perf_counter() - t0, 1),
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    write_report(a.out, result)
    return result


if __name__ == "__main__":
    main()
