"""Images with an alpha channel (2 or 4 channels: grey or RGB, then alpha) through both executors: the colour
channels come out as they would without alpha, and the alpha channel moves with the geometric TFs only."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from learned_augment.ops import NAMED_SETS, TFEntry, TFSet, apply_sequence, apply_sequence_batch, register_tf
from learned_augment.ops.plan import Role, role

EVERY = sorted({e for make in NAMED_SETS.values() for e in make()}, key=lambda e: e.id)
H, W = 23, 30


def _images(dtype: type) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (H, W, 1), dtype=np.uint8)
    if dtype == np.float32:
        return colour.astype(np.float32) / 255, alpha.astype(np.float32) / 255
    return colour, alpha


def _moving_part(entries: list[TFEntry]) -> list[TFEntry]:
    return [e for e in entries if role(e.tf) == Role.MOVES]


@pytest.mark.parametrize("dtype", [np.uint8, np.float32], ids=["uint8", "float32"])
@pytest.mark.parametrize("entry", EVERY, ids=str)
def test_colour_is_as_without_alpha_and_alpha_only_moves(entry: TFEntry, dtype: type) -> None:
    colour, alpha = _images(dtype)
    seq = [entry, TFEntry.parse("rotate(+15)"), TFEntry.parse("brightness(1.5)")]
    rgba = apply_sequence(np.concatenate([colour, alpha], axis=2), seq, rng=3)
    assert rgba.shape == (H, W, 4) and rgba.dtype == dtype
    np.testing.assert_array_equal(rgba[..., :3], apply_sequence(colour, seq, rng=3))
    la = apply_sequence(np.concatenate([colour[..., :1], alpha], axis=2), seq, rng=3)
    np.testing.assert_array_equal(la[..., :1], apply_sequence(colour[..., :1], seq, rng=3))
    np.testing.assert_array_equal(la[..., 1], rgba[..., 3])
    if not any(e.tf.uses_rng for e in seq):  # random warps draw after the TFs before them: compared above only
        np.testing.assert_array_equal(rgba[..., 3:], apply_sequence(alpha, _moving_part(seq), rng=3))


def test_a_sequence_without_geometry_keeps_alpha_exactly() -> None:
    colour, alpha = _images(np.uint8)
    seq = ["brightness(1.5)", "equalize", "blur(1)", "posterize(3)", "hue(+0.25)", "solarize(0.5)"]
    out = apply_sequence(np.concatenate([colour, alpha], axis=2), seq)
    np.testing.assert_array_equal(out[..., 3:], alpha)
    assert not np.array_equal(out[..., :3], colour)


def test_targets_move_with_an_image_with_alpha() -> None:
    colour, alpha = _images(np.uint8)
    mask = (np.arange(H * W).reshape(H, W) % 7 == 0).astype(np.uint8)
    seq = ["rotate(+15)", "translate_x(+0.1)"]
    want = apply_sequence(colour, seq, targets={"mask": mask, "bboxes": [[2, 3, 20, 15]]}, interpolation="nearest")
    got = apply_sequence(
        np.concatenate([colour, alpha], axis=2),
        seq,
        targets={"mask": mask, "bboxes": [[2, 3, 20, 15]]},
        interpolation="nearest",
    )
    np.testing.assert_array_equal(got[0][..., :3], want[0])
    np.testing.assert_array_equal(got[1]["mask"], want[1]["mask"])
    np.testing.assert_allclose(got[1]["bboxes"], want[1]["bboxes"])
    # Under nearest resampling the alpha channel takes the very pixels a mask takes.
    alpha_mask = apply_sequence(colour, seq, targets={"mask": alpha[..., 0]}, interpolation="nearest")[1]["mask"]
    np.testing.assert_array_equal(got[0][..., 3], alpha_mask)


def test_custom_tfs_see_the_colour_channels_only(tf_name: Callable[[str], str]) -> None:
    name = tf_name("invert")
    seen: list[tuple[int, ...]] = []

    @register_tf(name)
    def invert(image: np.ndarray) -> np.ndarray:
        seen.append(image.shape)
        return 255 - image

    colour, alpha = _images(np.uint8)
    out = apply_sequence(np.concatenate([colour, alpha], axis=2), [name, "brightness(1.0)"])
    assert seen == [(H, W, 3)]
    np.testing.assert_array_equal(out[..., :3], 255 - colour)
    np.testing.assert_array_equal(out[..., 3:], alpha)
    # A sequence of custom TFs only takes any data as it is (tokens, audio, ...): the image, alpha and all.
    apply_sequence(np.concatenate([colour, alpha], axis=2), [name])
    assert seen[-1] == (H, W, 4)


@pytest.mark.parametrize("channels", [5, 6])
def test_other_channel_counts_are_refused_in_one_line(channels: int) -> None:
    with pytest.raises(ValueError, match=f"{channels} channels.*2 or 4: grey or RGB, then alpha") as info:
        apply_sequence(np.zeros((H, W, channels), np.uint8), ["hflip"])
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=f"{channels} channels.*then alpha"):
        apply_sequence_batch(torch.zeros(2, channels, H, W), np.zeros((2, 1), np.int64), TFSet(["hflip"]))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float16], ids=str)
def test_the_batch_executor_changes_colour_as_without_alpha(dtype: torch.dtype) -> None:
    ts = TFSet(EVERY)
    colour, alpha = _images(np.uint8)
    rgba = torch.from_numpy(np.concatenate([colour, alpha], axis=2)).permute(2, 0, 1)
    batch = rgba[None].repeat(len(ts), 1, 1, 1)
    if dtype != torch.uint8:
        batch = (batch.float() / 255).to(dtype)
    ids = np.stack([np.arange(len(ts)), np.roll(np.arange(len(ts)), 5), np.full(len(ts), 0)], axis=1)
    out4 = apply_sequence_batch(batch, ids, ts, generator=torch.Generator().manual_seed(1))
    out3 = apply_sequence_batch(batch[:, :3], ids, ts, generator=torch.Generator().manual_seed(1))
    out2 = apply_sequence_batch(batch[:, [0, 3]], ids, ts, generator=torch.Generator().manual_seed(1))
    out1 = apply_sequence_batch(batch[:, :1], ids, ts, generator=torch.Generator().manual_seed(1))
    assert out4.shape == batch.shape and out4.dtype == dtype
    assert torch.equal(out4[:, :3], out3) and torch.equal(out2[:, :1], out1)
    # Noise draws per colour channel, so a random warp after it draws differently for grey and RGB images.
    drawless = torch.from_numpy(~np.array([[ts[int(i)].tf.uses_rng for i in row] for row in ids]).any(axis=1))
    assert torch.equal(out2[drawless, 1], out4[drawless, 3])
    # Rows whose TFs do not move pixels keep their alpha exactly; the others move it.
    moves = np.array([[role(ts[int(i)].tf) == Role.MOVES for i in row] for row in ids]).any(axis=1)
    still = torch.from_numpy(~moves)
    assert torch.equal(out4[still, 3], batch[still, 3])
    assert not torch.equal(out4[~still, 3], batch[~still, 3])
