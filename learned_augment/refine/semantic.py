"""A classifier of the synthetic labels, for refinement that keeps the label and for a label-free quality signal.

Synthetic images come with labels for free. A small CNN trained on them (never on a real label) serves twice:

* CyCADA's semantic-consistency loss (Hoffman et al., 2018): the frozen classifier must still read the synthetic
  label off a refined image, so the refiner may change the style of a digit but not its identity;
* a quality signal printed during the fit: how often the classifier's prediction survives refinement, and the
  Fréchet distance between its features of refined synthetic images and of real images (FID with a domain-specific
  feature extractor). Neither uses a label of a real image.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as fnn
from torch import nn

from .networks import init_weights

QUALITY_NAMES: tuple[str, ...] = ("step", "prediction_kept", "feature_distance", "real_kept", "shared_distance")
"""Columns of :attr:`Refiner.quality` per stage, one row per evaluation.

``prediction_kept``: % of synthetic images whose classifier prediction is the same after every stage so far as
before refinement. ``feature_distance``: Fréchet distance between classifier features of those refined images and
of real images (lower is closer; the raw synthetic images' distance is row 0 of stage 1, at step 0).
``real_kept``: % of real images whose prediction survives the stage's real-side generator (real -> synthetic in
stage 1, real -> shared from stage 2). ``shared_distance``: Fréchet distance between refined synthetic images and
real images mapped by that generator (MR-GAN's shared domain from stage 2).
"""


class LabelClassifier(nn.Module):
    """``(B, C, H, W)`` images in [-1, 1] -> ``(B, n_classes)`` logits; :meth:`features` gives the 64-d embedding.

    Two conv/pool stages and a global average pool, so it works on any size divisible by 4 with few weights.
    """

    def __init__(self, in_channels: int, n_classes: int, width: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(True),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(True),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1),
            nn.ReLU(True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(2 * width, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def to_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Grey -> RGB by repetition, RGB -> grey by the channel mean; unchanged when the count already matches."""
    if x.shape[1] == channels:
        return x
    return x.expand(-1, channels, -1, -1) if x.shape[1] == 1 else x.mean(1, keepdim=True)


def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    channels: int,
    steps: int,
    batch_size: int,
    seed: int,
    device: torch.device,
) -> LabelClassifier:
    """Fit a :class:`LabelClassifier` on ``(N, C, H, W)`` uint8 images and ``(N,)`` int64 labels; returned frozen.

    Random shifts of up to 2 pixels make it read digits rather than their exact placement, so it still reads them
    after a refiner has moved some strokes. Adam 1e-3; every draw comes from generators seeded by ``seed``.
    """
    gen = torch.Generator().manual_seed(seed)
    n_classes = int(labels.max()) + 1
    with torch.device("meta"):
        net: nn.Module = LabelClassifier(channels, n_classes)
    net = net.to_empty(device="cpu")
    init_weights(net, gen)
    for m in net.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02, generator=gen)
            nn.init.zeros_(m.bias)
    clf = net.to(device).train()
    opt = torch.optim.Adam(clf.parameters(), lr=1e-3)
    n = len(images)
    for _ in range(steps):
        idx = torch.randint(0, n, (min(batch_size, n),), generator=gen)
        x = to_channels(images[idx.to(images.device)].float() / 127.5 - 1.0, channels)
        dy, dx = (int(v) for v in torch.randint(-2, 3, (2,), generator=gen))
        x = torch.roll(x, (dy, dx), dims=(2, 3))
        loss = fnn.cross_entropy(clf(x), labels[idx.to(labels.device)])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return freeze(clf)


def freeze(clf: nn.Module) -> LabelClassifier:
    clf.eval().requires_grad_(False)
    assert isinstance(clf, LabelClassifier)
    return clf


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to the rows of ``a`` and ``b`` (``(N, D)`` features each).

    ``|mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2))``, with the trace of the matrix square root taken as the sum
    of square roots of the eigenvalues of ``C_a^(1/2) C_b C_a^(1/2)`` (symmetric, so no complex round-off).
    """
    a64, b64 = a.double().cpu().numpy(), b.double().cpu().numpy()
    mu = a64.mean(0) - b64.mean(0)
    ca, cb = np.cov(a64, rowvar=False), np.cov(b64, rowvar=False)
    w, v = np.linalg.eigh(ca)
    root_a = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    cross = np.linalg.eigvalsh(root_a @ cb @ root_a)
    value = float(mu @ mu + np.trace(ca) + np.trace(cb) - 2.0 * np.sqrt(np.clip(cross, 0.0, None)).sum())
    return max(value, 0.0)
