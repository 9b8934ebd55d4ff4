"""CycleGAN networks sized for small images: a ResNet-block generator and a PatchGAN discriminator.

Both follow Zhu et al. (2017): the generator is ``c7s1-k, d2k, d4k, R4k x n, u2k, uk, c7s1-C`` with instance
normalisation and reflection padding; the discriminator is a stack of 4x4 convolutions whose every output judges one
patch of the input, so it scores local texture rather than global layout (SimGAN's "local adversarial loss" makes
the same choice). Generators map images in ``[-1, 1]`` to images in ``[-1, 1]`` (tanh output).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

MAX_WIDTH = 1024
MAX_BLOCKS = 64
MAX_LAYERS = 6


@dataclass(frozen=True)
class GeneratorConfig:
    """Hyper-parameters of :class:`ResnetGenerator` (stored in artifacts, so plain JSON values).

    Parameters
    ----------
    in_channels, out_channels:
        1 (grey) or 3 (RGB); they may differ (grey synthetic renders refined toward RGB photos).
    ngf:
        Width of the first layer; the two downsamplings double it twice.
    n_blocks:
        Residual blocks at 1/4 resolution (6 in the CycleGAN reference for small images).
    """

    in_channels: int = 1
    out_channels: int = 1
    ngf: int = 32
    n_blocks: int = 6

    def __post_init__(self) -> None:
        _check_channels("in_channels", self.in_channels)
        _check_channels("out_channels", self.out_channels)
        _check_int("ngf", self.ngf, 1, MAX_WIDTH)
        _check_int("n_blocks", self.n_blocks, 0, MAX_BLOCKS)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> GeneratorConfig:
        """Rebuild from JSON, rejecting unknown or missing keys (the values are checked by the constructor)."""
        return cls(**_exact_keys(d, cls.__dataclass_fields__, "generator"))


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Hyper-parameters of :class:`PatchDiscriminator`.

    Parameters
    ----------
    in_channels:
        Channels of the images judged.
    ndf:
        Width of the first layer; each stride-2 layer doubles it (at most 8x).
    n_layers:
        Stride-2 convolutions. 3 gives the reference's 70x70 patches; use :func:`patch_layers_for` to pick a depth
        that leaves a grid of patches on small images (2 for 28x28: 34x34 patches on a 5x5 grid).
    """

    in_channels: int = 1
    ndf: int = 64
    n_layers: int = 3

    def __post_init__(self) -> None:
        _check_channels("in_channels", self.in_channels)
        _check_int("ndf", self.ndf, 1, MAX_WIDTH)
        _check_int("n_layers", self.n_layers, 1, MAX_LAYERS)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> DiscriminatorConfig:
        return cls(**_exact_keys(d, cls.__dataclass_fields__, "discriminator"))


def _check_int(name: str, value: Any, lo: int, hi: int) -> None:
    # bool is an int subclass; True as a channel count is a bug, not a 1.
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}]; got {value!r}")


def _check_channels(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value not in (1, 3):
        raise ValueError(f"{name} must be 1 (grey) or 3 (RGB); got {value!r}")


def _exact_keys(d: Any, fields: Any, what: str) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise ValueError(f"{what} configuration must be a mapping; got {type(d).__name__}")
    unknown, missing = set(d) - set(fields), set(fields) - set(d)
    if unknown or missing:
        raise ValueError(f"{what} configuration: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
    return dict(d)


def _norm(channels: int) -> nn.Module:
    # Instance norm without affine parameters or running statistics, as the reference: each image is normalised
    # by its own statistics, so train and eval mode compute the same function.
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResnetBlock(nn.Module):
    """Two 3x3 convolutions with a skip connection (reflection padding keeps borders artefact-free)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            _norm(channels),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            _norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """Image-to-image generator: ``(B, in_channels, H, W)`` in [-1, 1] -> ``(B, out_channels, H, W)`` in [-1, 1].

    ``H`` and ``W`` must be multiples of 4 (two stride-2 downsamplings, undone exactly by the upsamplings) and at
    least 8 (reflection padding needs more pixels than it pads).
    """

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        c, k = config.in_channels, config.ngf
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(c, k, 7), _norm(k), nn.ReLU(True)]
        for mult in (1, 2):
            layers += [nn.Conv2d(k * mult, k * mult * 2, 3, stride=2, padding=1), _norm(k * mult * 2), nn.ReLU(True)]
        layers += [ResnetBlock(k * 4) for _ in range(config.n_blocks)]
        for mult in (4, 2):
            layers += [
                nn.ConvTranspose2d(k * mult, k * mult // 2, 3, stride=2, padding=1, output_padding=1),
                _norm(k * mult // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(k, config.out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_size(x.shape[-2], x.shape[-1])
        return self.model(x)


class PatchDiscriminator(nn.Module):
    """PatchGAN: ``(B, C, H, W)`` in [-1, 1] -> ``(B, 1, h, w)`` raw scores, one per overlapping patch.

    The scores are unbounded because the least-squares GAN loss regresses them to 1 (real) and 0 (fake).
    """

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        self.config = config
        ndf = config.ndf
        layers: list[nn.Module] = [nn.Conv2d(config.in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        width = ndf
        for n in range(1, config.n_layers):
            nxt = ndf * min(2**n, 8)
            layers += [nn.Conv2d(width, nxt, 4, 2, 1), _norm(nxt), nn.LeakyReLU(0.2, True)]
            width = nxt
        nxt = ndf * min(2**config.n_layers, 8)
        layers += [nn.Conv2d(width, nxt, 4, 1, 1), _norm(nxt), nn.LeakyReLU(0.2, True)]
        layers += [nn.Conv2d(nxt, 1, 4, 1, 1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def patch_grid(size: int, n_layers: int) -> int:
    """Side of the score grid a :class:`PatchDiscriminator` with ``n_layers`` gives on a ``size`` x ``size`` image."""
    for _ in range(n_layers):
        size = (size + 2 - 4) // 2 + 1
    return size - 2


def patch_layers_for(size: int, max_layers: int = 3, min_grid: int = 4) -> int:
    """The deepest discriminator (at most ``max_layers``) that still scores a ``min_grid`` x ``min_grid`` grid.

    Deeper means larger patches; a 1x1 grid would make the "patch" discriminator a global one again.
    """
    for n in range(max_layers, 0, -1):
        if patch_grid(size, n) >= min_grid:
            return n
    return 1


def check_image_size(h: int, w: int) -> None:
    """Raise ``ValueError`` unless a ``ResnetGenerator`` maps ``h`` x ``w`` images to the same size."""
    if h % 4 or w % 4 or h < 8 or w < 8:
        raise ValueError(
            f"refiner images must be at least 8x8 with sides divisible by 4 (two stride-2 downsamplings); "
            f"got {h}x{w}. Pad or resize them first."
        )


def init_weights(net: nn.Module, generator: torch.Generator) -> None:
    """The reference initialisation, N(0, 0.02) weights and zero biases, drawn from ``generator``.

    A private generator instead of the global RNG makes fits repeatable without touching the user's torch seed.
    """
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02, generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
