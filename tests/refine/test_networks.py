"""Generator and PatchGAN discriminator: shapes, ranges, configuration checks."""

from __future__ import annotations

import pytest
import torch

from learned_augment.refine.networks import (
    DiscriminatorConfig,
    GeneratorConfig,
    PatchDiscriminator,
    ResnetGenerator,
    check_image_size,
    init_weights,
    patch_grid,
    patch_layers_for,
)


@pytest.mark.parametrize(("c_in", "c_out"), [(1, 1), (1, 3), (3, 1), (3, 3)])
@pytest.mark.parametrize("size", [8, 16, 28])
def test_generator_shape_and_tanh_range(c_in: int, c_out: int, size: int) -> None:
    net = ResnetGenerator(GeneratorConfig(c_in, c_out, ngf=4, n_blocks=2))
    y = net(torch.randn(2, c_in, size, size) * 3)
    assert y.shape == (2, c_out, size, size)
    assert y.min() >= -1 and y.max() <= 1


def test_generator_layout_follows_the_reference() -> None:
    net = ResnetGenerator(GeneratorConfig(1, 1, ngf=8, n_blocks=6))
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    ups = [m for m in net.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert convs[0].kernel_size == (7, 7) and convs[0].out_channels == 8
    assert [c.stride for c in convs[1:3]] == [(2, 2), (2, 2)] and convs[2].out_channels == 32
    assert len(convs) == 1 + 2 + 6 * 2 + 1 and len(ups) == 2
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert any(isinstance(m, torch.nn.InstanceNorm2d) for m in net.modules())


@pytest.mark.parametrize("size", [6, 10, 30])
def test_generator_rejects_sizes_it_cannot_reproduce(size: int) -> None:
    net = ResnetGenerator(GeneratorConfig(1, 1, ngf=4, n_blocks=1))
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.zeros(1, 1, size, size))
    with pytest.raises(ValueError):
        check_image_size(size, 16)


@pytest.mark.parametrize(("size", "layers"), [(16, 1), (28, 2), (32, 2), (64, 3)])
def test_discriminator_scores_a_grid_of_patches(size: int, layers: int) -> None:
    assert patch_layers_for(size) == layers
    d = PatchDiscriminator(DiscriminatorConfig(3, ndf=8, n_layers=layers))
    out = d(torch.randn(2, 3, size, size))
    grid = patch_grid(size, layers)
    assert out.shape == (2, 1, grid, grid) and grid >= 4


def test_three_layers_is_the_70x70_reference() -> None:
    # 256x256 input and 3 layers give the reference's 30x30 grid of 70x70 patches.
    assert patch_grid(256, 3) == 30


@pytest.mark.parametrize(
    "bad",
    [{"in_channels": 2}, {"in_channels": True}, {"ngf": 0}, {"n_blocks": -1}, {"ngf": 10**6}, {"ngf": 4.0}],
)
def test_generator_config_is_validated(bad: dict) -> None:
    with pytest.raises(ValueError):
        GeneratorConfig(**bad)


def test_config_round_trip_rejects_unknown_keys() -> None:
    cfg = GeneratorConfig(1, 3, 8, 2)
    assert GeneratorConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown keys"):
        GeneratorConfig.from_dict({**cfg.to_dict(), "evil": 1})
    with pytest.raises(ValueError):
        DiscriminatorConfig.from_dict({"in_channels": 1})
    with pytest.raises(ValueError):
        DiscriminatorConfig(n_layers=0)


def test_init_is_repeatable_from_a_generator() -> None:
    nets = []
    for _ in range(2):
        net = ResnetGenerator(GeneratorConfig(1, 1, ngf=4, n_blocks=1))
        init_weights(net, torch.Generator().manual_seed(3))
        nets.append(net)
    for a, b in zip(nets[0].state_dict().values(), nets[1].state_dict().values()):
        assert torch.equal(a, b)
    first = next(nets[0].parameters())
    assert 0.005 < first.std().item() < 0.05
