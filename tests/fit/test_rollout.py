"""The fit's rollout: every prefix is exactly what the transform produces for that many TFs."""

from __future__ import annotations

import numpy as np
import pytest

from learned_augment.fit.rollout import image_prefixes
from learned_augment.ops import apply_sequence, get_tfset
from learned_augment.ops import geometry as geo
from learned_augment.ops.base import Kind, Warp
from learned_augment.ops.sequence import add_geometric_step


@pytest.mark.parametrize("name", ["cifar10", "default", "mnist"])
@pytest.mark.parametrize("channels", [1, 3])
def test_prefixes_equal_fused_application(name: str, channels: int) -> None:
    ts = get_tfset(name)
    # TFs that draw random numbers draw them in a different order when each prefix is applied from scratch.
    usable = [i for i, e in enumerate(ts) if not e.tf.uses_rng]
    rng = np.random.default_rng(7)
    shape = (20, 24) if channels == 1 else (20, 24, 3)
    for _ in range(25):
        x = rng.integers(0, 256, shape, dtype=np.uint8)
        entries = [ts[int(i)] for i in rng.choice(usable, size=10)]
        prefixes = image_prefixes(x, entries, np.random.default_rng(0))
        assert len(prefixes) == 11
        assert prefixes[0] is x
        for t, p in enumerate(prefixes):
            np.testing.assert_array_equal(p, apply_sequence(x, entries[:t]), err_msg=f"{[e.id for e in entries[:t]]}")


def test_prefixes_do_not_modify_the_input() -> None:
    ts = get_tfset("cifar10")
    x = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    before = x.copy()
    image_prefixes(x, [ts[i] for i in range(len(ts))], np.random.default_rng(0))
    np.testing.assert_array_equal(x, before)


def _from_scratch(x: np.ndarray, entries: list, rng: np.random.Generator) -> list[np.ndarray]:
    """Geometric prefixes with the stretch's map rebuilt by ``compose_geometry`` for every prefix."""
    h, w = x.shape[:2]
    steps: list = []
    outs = [x]
    for e in entries:
        add_geometric_step(steps, e, h, w, rng)
        if len(steps) > 1:
            outs.append(geo.warp_image(x, geo.compose_geometry(steps, h, w)))
        elif isinstance(steps[0], Warp):
            outs.append(geo.warp_image(x, steps[0]))
        else:
            outs.append(geo.warp_affine_image(x, steps[0]))
    return outs


@pytest.mark.parametrize("name", ["cifar10", "default", "mnist"])
@pytest.mark.parametrize("channels", [1, 3])
def test_incremental_geometry_equals_composing_from_scratch(name: str, channels: int) -> None:
    # Random warps (elastic) included: both draw them in the same order from the same generator.
    ts = get_tfset(name)
    geometric = [i for i, e in enumerate(ts) if e.tf.kind in (Kind.AFFINE, Kind.WARP)]
    rng = np.random.default_rng(3)
    shape = (20, 24) if channels == 1 else (20, 24, 3)
    for _ in range(40):
        x = rng.integers(0, 256, shape, dtype=np.uint8)
        entries = [ts[int(i)] for i in rng.choice(geometric, size=int(rng.integers(1, 11)))]
        got = image_prefixes(x, entries, np.random.default_rng(5))
        want = _from_scratch(x, entries, np.random.default_rng(5))
        for t, (g, r) in enumerate(zip(got, want)):
            np.testing.assert_array_equal(g, r, err_msg=f"{[e.id for e in entries[: t + 1]]}")
