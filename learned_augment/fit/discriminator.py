"""TANDA's default discriminator: a DCGAN-style CNN that scores how real an image looks (one logit)."""

from __future__ import annotations

import math

import torch
from torch import nn


class DCGANDiscriminator(nn.Module):
    """Stride-2 5x5 convolutions, LeakyReLU(0.2), batch norm after all but the first, then one linear logit.

    The reference uses four convolutions of widths 64, 128, 256, 512. Sized to the input: convolutions are added
    while the feature map is larger than 2 pixels, so 28x28 digits get three and 32x32 images four, and
    ``width`` scales the channel counts (the default 32 halves the reference widths: on a CPU it is four times
    cheaper and, in our runs, distinguishes realistic from destructive TFs just as well).

    Parameters
    ----------
    in_channels:
        1 or 3 (any positive number works).
    image_size:
        Height and width of the inputs (square or not: ``(h, w)``).
    width:
        Channels of the first convolution; each further one doubles it (capped at 8x).
    max_layers:
        At most this many convolutions.

    Input: ``(B, C, H, W)`` float, scaled to [-1, 1]. Output: ``(B,)`` logits (real = positive).
    """

    def __init__(self, in_channels: int, image_size: int | tuple[int, int], width: int = 32, max_layers: int = 4):
        super().__init__()
        h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
        layers: list[nn.Module] = []
        c_in, c_out, n = in_channels, width, 0
        while n < max_layers and min(h, w) > 2 or n == 0:
            layers.append(nn.Conv2d(c_in, c_out, 5, stride=2, padding=2, bias=n == 0))
            if n > 0:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            h, w = math.ceil(h / 2), math.ceil(w / 2)
            c_in, c_out, n = c_out, min(c_out * 2, width * 8), n + 1
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in * h * w, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1)).squeeze(1)
