"""The fit's rollout: every prefix is exactly what the transform produces for that many TFs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from learned_augment.fit.loop import resolve_rollouts
from learned_augment.fit.rollout import batch_prefixes, image_prefixes, padded_tfset
from learned_augment.ops import TF, TFSet, apply_sequence, get_tfset, register, register_tf
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


# ------------------------------------------------------------------------------------------------ batched prefixes

# Tolerances of the batched executor against the numpy one for length-10 sequences, in grey levels (the same as
# tests/ops/test_batch.py states and explains: OpenCV's fixed-point resampling against grid_sample's exact one).
SEQ_MEAN_TOL = 1.0
SEQ_OUTLIER_LEVELS = 4.0
SEQ_OUTLIER_FRACTION = 0.02


def _numpy_prefixes(x: np.ndarray, ids: np.ndarray, ts) -> np.ndarray:
    """``(L+1, n, H, W, C)`` from :func:`image_prefixes`, one sequence at a time."""
    rows = [
        np.stack(image_prefixes(img, [ts[int(k)] for k in row], np.random.default_rng(0))) for img, row in zip(x, ids)
    ]
    return np.stack(rows, axis=1)


@pytest.mark.parametrize("name", ["cifar10", "default", "mnist"])
@pytest.mark.parametrize("channels", [1, 3])
def test_batched_prefixes_match_the_per_image_rollout(name: str, channels: int) -> None:
    ts = get_tfset(name)
    padded, pad = padded_tfset(ts)
    usable = [i for i, e in enumerate(ts) if not e.tf.uses_rng]
    rng = np.random.default_rng(11)
    # Smooth images, as photographs and digits are: on pixel noise every resampling difference is an edge.
    coarse = rng.uniform(0.0, 255.0, (12, 5, 6, channels)).astype(np.float32)
    x = np.stack([cv2.resize(c, (24, 20), interpolation=cv2.INTER_CUBIC).reshape(20, 24, channels) for c in coarse])
    x = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    ids = rng.choice(usable, size=(12, 10))
    got = batch_prefixes(torch.from_numpy(x).permute(0, 3, 1, 2), ids, padded, pad, torch.Generator().manual_seed(0))
    assert got.shape == (11, 12, channels, 20, 24) and got.dtype == torch.uint8
    got_np = got.permute(0, 1, 3, 4, 2).numpy()
    np.testing.assert_array_equal(got_np[0], x)
    d = np.abs(got_np.astype(np.float64) - _numpy_prefixes(x, ids, ts).astype(np.float64))
    for t in range(1, 11):
        assert d[t].mean() <= SEQ_MEAN_TOL, f"prefix {t}: mean diff {d[t].mean():.3f}"
        outliers = (d[t] > SEQ_OUTLIER_LEVELS).mean()
        assert outliers <= SEQ_OUTLIER_FRACTION, f"prefix {t}: {outliers:.4f} of pixels beyond 4 levels"


def test_batched_prefixes_of_random_tfs_are_valid_draws() -> None:
    """cutout and noise are drawn afresh per prefix: each prefix holds its TFs' effect (one zeroed square per
    cutout), and the generator makes the call reproducible."""
    ts = get_tfset("default")
    padded, pad = padded_tfset(ts)
    x = np.full((3, 16, 16, 3), 200, dtype=np.uint8)
    ids = np.array([[ts.index_of("cutout(0.25)"), ts.index_of("hflip")]] * 3)
    images = torch.from_numpy(x).permute(0, 3, 1, 2)
    a = batch_prefixes(images, ids, padded, pad, torch.Generator().manual_seed(1))
    b = batch_prefixes(images, ids, padded, pad, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    for t in (1, 2):
        zeroed = (a[t] == 0).all(dim=1).sum(dim=(1, 2))
        assert (zeroed > 0).all() and (zeroed < 16 * 16).all()


def test_batched_prefixes_keep_the_input_and_handle_empty_sequences() -> None:
    ts = get_tfset("mnist")
    padded, pad = padded_tfset(ts)
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 1, 8, 8), dtype=np.uint8))
    before = images.clone()
    out = batch_prefixes(images, np.zeros((2, 0), dtype=np.int64), padded, pad, torch.Generator())
    assert out.shape == (1, 2, 1, 8, 8) and torch.equal(out[0], before)
    batch_prefixes(images, np.array([[0, 1], [2, 3]]), padded, pad, torch.Generator())
    assert torch.equal(images, before)


def test_padded_tfset_keeps_every_index() -> None:
    ts = get_tfset("cifar10")
    padded, pad = padded_tfset(ts)
    assert padded.ids[: len(ts)] == ts.ids and padded.ids[pad] == "identity" and pad == len(ts)
    with_identity = TFSet([*ts.ids[:3], "identity"])
    assert padded_tfset(with_identity) == (with_identity, 3)


def test_rollout_mode_is_batched_on_accelerators_only_when_every_tf_can_be(tf_name) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    ts = get_tfset("default")
    assert resolve_rollouts("auto", cpu, ts, True) == "per_image"
    assert resolve_rollouts("auto", cuda, ts, True) == "batched"
    assert resolve_rollouts("auto", cuda, ts, False) == "per_image"
    assert resolve_rollouts("per_image", cuda, ts, True) == "per_image"
    assert resolve_rollouts("batched", cpu, ts, True) == "batched"

    plain, fast = tf_name("plain"), tf_name("fast")
    register(TF(plain, Kind.IMAGE, lambda image, magnitude, rng: image, takes_magnitude=False))

    @register_tf(fast, batched=lambda images, magnitude, generator: images)
    def same(image, magnitude=None, rng=None):
        return image

    with_plain = TFSet([*ts.ids[:4], plain])
    assert resolve_rollouts("auto", cuda, with_plain, True) == "per_image"
    with pytest.raises(ValueError, match=plain):
        resolve_rollouts("batched", cuda, with_plain, True)
    assert resolve_rollouts("auto", cuda, TFSet([*ts.ids[:4], f"{fast}(0.5)"]), True) == "batched"
    with pytest.raises(ValueError, match="needs images without collate"):
        resolve_rollouts("batched", cpu, ts, False)
    with pytest.raises(ValueError, match="rollouts must be one of"):
        resolve_rollouts("gpu", cpu, ts, True)
