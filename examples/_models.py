"""End models for the reproduction scripts: a small CNN for 28x28 digits and CIFAR ResNets (He et al. 2016)."""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F


def _conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)
    )


class SmallCNN(nn.Module):
    """Three 3x3 conv blocks (each halving the resolution) with dropout, for ``(B, C, 28, 28)`` digits.

    Kept small on purpose: with 600 labels a bigger model only overfits faster, and the table trains it
    (rows x seeds) times on two shared CPU cores.

    Parameters
    ----------
    in_channels:
        Image channels.
    num_classes:
        Output logits.
    width:
        Channels of the first block; the next two double it.
    dropout:
        Dropout before the classifier.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 32, dropout: float = 0.3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv_bn(in_channels, width),
            nn.MaxPool2d(2),
            _conv_bn(width, 2 * width),
            nn.MaxPool2d(2),
            _conv_bn(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(4 * width, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class _BasicBlock(nn.Module):
    """Two 3x3 convs with an identity shortcut; "option A" (zero-padded, strided identity) when the shape changes,
    as in the paper's CIFAR ResNets, so ResNet-20 keeps its 0.27M parameters."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.stride = stride
        self.pad = c_out - c_in

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        short = x
        if self.stride != 1 or self.pad:
            short = x[:, :, :: self.stride, :: self.stride]
            short = F.pad(short, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return F.relu(out + short, inplace=True)


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 images: three stages of ``n`` basic blocks at 16, 32 and 64 channels.

    Parameters
    ----------
    depth:
        20, 32, 44, 56 or 110 (any ``6n + 2``).
    num_classes:
        Output logits.
    in_channels:
        Image channels.
    """

    def __init__(self, depth: int = 20, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        if (depth - 2) % 6 or depth < 8:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110), got {depth}")
        n = (depth - 2) // 6
        self.stem = _conv_bn(in_channels, 16)
        blocks: list[nn.Module] = []
        c_in = 16
        for c_out, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                blocks.append(_BasicBlock(c_in, c_out, stride if i == 0 else 1))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: Tensor) -> Tensor:
        x = self.blocks(self.stem(x))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def make_end_model(name: str, in_channels: int, num_classes: int = 10) -> nn.Module:
    """``"cnn"`` (digits), ``"resnet20"`` / ``"resnet56"`` (or any ``resnet<6n+2>``) by name."""
    if name == "cnn":
        return SmallCNN(in_channels, num_classes)
    if name.startswith("resnet") and name[6:].isdigit():
        return CifarResNet(int(name[6:]), num_classes, in_channels)
    raise ValueError(f"unknown end model {name!r}; use 'cnn', 'resnet20' or 'resnet56'")
