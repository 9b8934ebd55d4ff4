"""User TFs: decorated functions over any data, user point/affine TFs, and wrapped Albumentations transforms.

Every TF registered here gets a unique name from the ``tf_name`` fixture, which also removes it afterwards.
"""

from __future__ import annotations

from typing import Any

import albumentations as A
import numpy as np
import pytest
import torch

from learned_augment.ops import (
    TF,
    Kind,
    TFEntry,
    TFSet,
    apply_sequence,
    get_tf,
    register,
    register_tf,
    registered_tfs,
    wrap_albumentations,
)

TOKENS = "the quick brown fox jumps over the lazy dog again and again".split()


def _image(channels: int | None = 3, dtype: type = np.uint8, seed: int = 0) -> np.ndarray:
    shape = (20, 24) if channels is None else (20, 24, channels)
    x = np.random.default_rng(seed).random(shape, dtype=np.float32)
    return np.rint(x * 255).astype(np.uint8) if dtype == np.uint8 else x


# ------------------------------------------------------------------------------------------------------ decorator


def test_token_tf_with_magnitude_and_rng(tf_name: Any) -> None:
    name = tf_name("word_dropout")

    @register_tf(name)
    def word_dropout(tokens: list[str], magnitude: float, rng: np.random.Generator) -> list[str]:
        """Drop each word with probability ``magnitude``."""
        keep = rng.random(len(tokens)) >= magnitude
        return [t for t, k in zip(tokens, keep) if k]

    assert isinstance(word_dropout, TF) and word_dropout.kind == Kind.CUSTOM
    assert word_dropout.uses_rng and word_dropout.takes_magnitude
    assert word_dropout.description == "Drop each word with probability ``magnitude``."
    assert name in registered_tfs() and get_tf(name) is word_dropout

    out = apply_sequence(TOKENS, [f"{name}(0.5)"], rng=np.random.default_rng(1))
    assert isinstance(out, list) and 0 < len(out) < len(TOKENS) and set(out) <= set(TOKENS)
    assert apply_sequence(TOKENS, [f"{name}(0.5)"], rng=np.random.default_rng(1)) == out
    assert apply_sequence(TOKENS, [f"{name}(0.5)"], rng=np.random.default_rng(2)) != out
    assert apply_sequence(TOKENS, [f"{name}(0)"]) == TOKENS
    assert apply_sequence(TOKENS, [f"{name}(1)"]) == []
    # None means a fixed seed: a repeatable call.
    assert apply_sequence(TOKENS, [f"{name}(0.3)"]) == apply_sequence(TOKENS, [f"{name}(0.3)"])


def test_token_tfs_compose_and_index_through_a_set(tf_name: Any) -> None:
    swap, rev = tf_name("swap"), tf_name("reverse")

    @register_tf(swap)
    def _swap(tokens: list[str], rng: np.random.Generator) -> list[str]:
        i, j = rng.choice(len(tokens), 2, replace=False)
        out = list(tokens)
        out[i], out[j] = out[j], out[i]
        return out

    @register_tf(rev)
    def _reverse(tokens: list[str]) -> list[str]:
        return tokens[::-1]

    ts = TFSet([swap, rev], name="text")
    assert ts.ids == [swap, rev]
    out = apply_sequence(TOKENS, [0, 1, 1, 0], ts, rng=np.random.default_rng(4))
    assert sorted(out) == sorted(TOKENS) and out != TOKENS
    assert apply_sequence(TOKENS, [1, 1], ts) == TOKENS
    data, targets = apply_sequence(TOKENS, [1], ts, targets={"labels": [1, 2]})
    assert data == TOKENS[::-1] and targets == {"labels": [1, 2]}


def test_declared_arguments_are_passed(tf_name: Any) -> None:
    seen: dict[str, Any] = {}
    plain, mag, gen = tf_name("plain"), tf_name("mag"), tf_name("gen")

    @register_tf(plain)
    def _plain(data: Any) -> Any:
        seen["plain"] = data
        return data

    @register_tf(mag, signed=True)
    def _mag(data: Any, magnitude: float) -> Any:
        seen["magnitude"] = magnitude
        return data

    @register_tf(gen)
    def _gen(data: Any, rng: np.random.Generator) -> Any:
        seen["rng"] = rng
        return data

    assert not get_tf(plain).takes_magnitude and not get_tf(plain).uses_rng
    assert get_tf(mag).takes_magnitude and not get_tf(mag).uses_rng
    assert not get_tf(gen).takes_magnitude and get_tf(gen).uses_rng
    g = np.random.default_rng(0)
    apply_sequence("abc", [plain, f"{mag}(-2.5)", gen], rng=g)
    assert seen == {"plain": "abc", "magnitude": -2.5, "rng": g}
    assert TFEntry(mag, 2.0).id == f"{mag}(+2)"
    with pytest.raises(ValueError, match="takes no magnitude"):
        TFEntry.parse(f"{plain}(1)")
    with pytest.raises(ValueError, match="needs a magnitude"):
        TFEntry.parse(mag)


def test_name_defaults_to_the_function_name(tf_name: Any) -> None:
    name = tf_name("fn")

    def fn(data: list[int]) -> list[int]:
        return data[::-1]

    fn.__name__ = name
    tf = register_tf()(fn)
    assert tf.name == name and apply_sequence([1, 2, 3], [name]) == [3, 2, 1]


def test_custom_tf_on_images_mixes_with_builtins(tf_name: Any) -> None:
    name = tf_name("darken")

    @register_tf(name)
    def _darken(image: np.ndarray, magnitude: float) -> np.ndarray:
        return (image * magnitude).astype(image.dtype)

    x = _image()
    y = apply_sequence(x, ["hflip", f"{name}(0.5)", "hflip"])
    np.testing.assert_array_equal(y, (x * 0.5).astype(np.uint8))
    out, t = apply_sequence(x, [f"{name}(0.5)", "hflip"], targets={"bboxes": [[0, 0, 4, 4]]})
    np.testing.assert_allclose(t["bboxes"], [[20, 0, 24, 4]])


@pytest.mark.parametrize(
    ("returns", "error", "match"),
    [
        (lambda x: x.astype(np.float32) / 255, ValueError, "turned a .* uint8 image into a .* float32 one"),
        (lambda x: x[:, :-1], ValueError, "must keep the shape and dtype"),
        (lambda x: x[..., :1], ValueError, "must keep the shape and dtype"),
        (lambda x: x.astype(np.float64), TypeError, "output of TF .* has dtype float64"),
        (lambda x: x.tolist(), TypeError, "dtype int64"),
    ],
)
def test_custom_tf_output_is_checked(tf_name: Any, returns: Any, error: type, match: str) -> None:
    name = tf_name("bad")
    register_tf(name)(lambda image: returns(image))
    with pytest.raises(error, match=match):
        apply_sequence(_image(), ["hflip", name])


# ------------------------------------------------------------------------------------------------------ registry


def test_duplicate_names_and_overwrite(tf_name: Any) -> None:
    name = tf_name("dup")
    first = register_tf(name)(lambda data: data)
    with pytest.raises(ValueError, match=f"a TF named '{name}' is already registered; pass overwrite=True"):
        register_tf(name)(lambda data: data + [0])
    with pytest.raises(ValueError, match="already registered"):
        register_tf("rotate")(lambda data: data)
    assert register(first) is first  # the same object again is fine
    second = register_tf(name, overwrite=True)(lambda data: data + [0])
    assert get_tf(name) is second and apply_sequence([1], [name]) == [1, 0]
    assert get_tf("rotate").kind == Kind.AFFINE


@pytest.mark.parametrize("bad", ["my tf", "rot(", "a,b", "", " pad", "1abc", "<lambda>", "x)"])
def test_invalid_names_are_refused(bad: str) -> None:
    # Ids are "name(magnitude)": a name the id parser cannot read back would make unloadable policy files.
    with pytest.raises(ValueError, match="invalid TF name"):
        register_tf(bad)(lambda data: data)
    assert bad not in registered_tfs()


def test_unnamed_lambda_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid TF name '<lambda>'"):
        register_tf()(lambda data: data)


def test_declared_valid_range_is_checked_when_ids_are_parsed(tf_name: Any) -> None:
    name = tf_name("fade")

    @register_tf(name, valid=(0, 2))
    def fade(data: Any, magnitude: float) -> Any:
        return data

    assert get_tf(name).valid == (0.0, 2.0)
    assert TFSet([f"{name}(0)", f"{name}(2)"]).ids == [f"{name}(0)", f"{name}(2)"]
    with pytest.raises(ValueError, match=rf"^TF '{name}' takes magnitudes in \[0, 2\], got '{name}\(2.5\)'$"):
        TFEntry.parse(f"{name}(2.5)")
    with pytest.raises(ValueError, match="must be a range"):
        register_tf(tf_name("backwards"), valid=(1, 0))(fade.fn)


def test_unknown_tf_suggests_and_explains() -> None:
    with pytest.raises(KeyError, match=r"unknown TF 'dilate'\. Did you mean dilation.*register_tf\('dilate'\)"):
        get_tf("dilate")


# ------------------------------------------------------------------------------------------------ user point, affine


def test_user_point_tf_fuses_and_overwrite_takes_effect(tf_name: Any) -> None:
    name = tf_name("level")
    register(TF(name, Kind.POINT, lambda x, m: np.clip(x + m, 0, 1), signed=True))
    x = np.arange(256, dtype=np.uint8).reshape(16, 16)
    y = apply_sequence(x, [f"{name}(+0.1)", "invert"])
    np.testing.assert_array_equal(y, 255 - np.clip(np.rint((x / 255 + 0.1) * 255), 0, 255))
    np.testing.assert_array_equal(y, apply_sequence(x, [f"{name}(+0.1)", "invert"], fuse=False))
    # Re-registering under the same name must not reuse the first function's cached look-up table.
    register(TF(name, Kind.POINT, lambda x, m: np.clip(x - m, 0, 1), signed=True), overwrite=True)
    y = apply_sequence(x, [f"{name}(+0.1)"])
    np.testing.assert_array_equal(y, np.clip(np.rint((x / 255 - 0.1) * 255), 0, 255))
    xf = x.astype(np.float32) / 255
    np.testing.assert_allclose(apply_sequence(xf, [f"{name}(+0.1)"]), np.clip(xf - 0.1, 0, 1), atol=1e-7)


def test_user_affine_tf_fuses_and_moves_targets(tf_name: Any) -> None:
    name = tf_name("shift_right")

    def shift(pixels: float, h: int, w: int) -> np.ndarray:
        m = np.eye(3)
        m[0, 2] = pixels
        return m

    register(TF(name, Kind.AFFINE, shift))
    x = _image(None)
    y, t = apply_sequence(x, [f"{name}(3)", "hflip"], targets={"keypoints": [[1.0, 2.0]]})
    np.testing.assert_array_equal(y[:, :-3], x[:, :-3][:, ::-1])
    np.testing.assert_allclose(t["keypoints"], [[24 - 1 - 4.0, 2.0]])  # index space: flip maps x to W - 1 - x
    np.testing.assert_array_equal(y, apply_sequence(x, [f"{name}(3)", "hflip"], fuse=False))


# ------------------------------------------------------------------------------------------------------ batched forms


def test_batched_form_is_carried_and_called_with_the_declared_arguments(tf_name: Any) -> None:
    calls: dict[str, dict[str, Any]] = {}
    full, plain = tf_name("full"), tf_name("plain")

    def full_batch(images: torch.Tensor, magnitude: np.ndarray, generator: torch.Generator) -> torch.Tensor:
        calls["full"] = {"magnitude": magnitude, "generator": generator}
        return images

    def plain_batch(images: torch.Tensor) -> torch.Tensor:
        calls["plain"] = {}
        return images

    register_tf(full, batched=full_batch)(lambda image, magnitude, rng: image)
    register_tf(plain, batched=plain_batch)(lambda image: image)
    x, mags, g = torch.zeros(2, 3, 4, 4), np.array([0.5, 1.5]), torch.Generator()
    # Every TF's batched form is called as (images, magnitude, generator); user forms get what they declared.
    assert get_tf(full).batched(x, mags, g) is x and get_tf(plain).batched(x, mags, g) is x
    assert calls["full"]["magnitude"] is mags and calls["full"]["generator"] is g
    assert calls["plain"] == {}
    assert register_tf(tf_name("none"))(lambda image: image).batched is None


@pytest.mark.parametrize(
    ("fn", "batched", "match"),
    [
        (lambda image, magnitude: image, lambda images: images, "must declare 'magnitude': its function takes"),
        (lambda image: image, lambda images, magnitude: images, "must not declare 'magnitude': its function does not"),
        (lambda image, rng: image, lambda images: images, "must declare 'generator': its function takes 'rng'"),
        (lambda image: image, lambda images, generator: images, "must not declare 'generator': its function does not"),
    ],
)
def test_batched_form_must_declare_what_the_function_does(tf_name: Any, fn: Any, batched: Any, match: str) -> None:
    name = tf_name("mismatch")
    with pytest.raises(ValueError, match=f"the batched form of TF '{name}' {match}"):
        register_tf(name, batched=batched)(fn)
    assert name not in registered_tfs()


def test_batched_form_must_be_callable_and_not_affine(tf_name: Any) -> None:
    name = tf_name("uncallable")
    with pytest.raises(TypeError, match=f"the batched form of TF '{name}' must be callable, got int"):
        register_tf(name, batched=3)(lambda image: image)
    with pytest.raises(TypeError, match="must be callable"):
        register(TF(name, Kind.IMAGE, lambda image, magnitude, rng: image, batched=3))
    shift = tf_name("shift")
    with pytest.raises(ValueError, match=f"affine TF '{shift}' takes no batched form"):
        register(TF(shift, Kind.AFFINE, lambda m, h, w: np.eye(3), batched=lambda *args: args[0]))
    assert name not in registered_tfs() and shift not in registered_tfs()


# ------------------------------------------------------------------------------------------------------ Albumentations


ALBUMENTATIONS = {
    "blur": lambda: A.GaussianBlur(blur_limit=(3, 7), sigma_limit=(0.3, 2.0)),
    "brightness_contrast": lambda: A.RandomBrightnessContrast(brightness_limit=0.3, contrast_limit=0.3),
}


@pytest.mark.parametrize("kind", list(ALBUMENTATIONS))
@pytest.mark.parametrize(("channels", "dtype"), [(3, np.uint8), (None, np.uint8), (1, np.uint8), (3, np.float32)])
def test_wrapped_albumentations_transform(tf_name: Any, kind: str, channels: int | None, dtype: type) -> None:
    name = tf_name(kind)
    transform = ALBUMENTATIONS[kind]()
    tf = wrap_albumentations(transform, name)
    assert tf.kind == Kind.IMAGE and tf.uses_rng and not tf.takes_magnitude
    assert transform.p == 1.0
    x = _image(channels, dtype)
    before = x.copy()
    seq = ["rotate(+5)", name, "hflip", name]
    y = apply_sequence(x, seq, rng=np.random.default_rng(3))
    assert y.shape == x.shape and y.dtype == x.dtype
    if dtype == np.float32:
        assert y.min() >= 0 and y.max() <= 1
    np.testing.assert_array_equal(x, before)
    np.testing.assert_array_equal(apply_sequence(x, seq, rng=np.random.default_rng(3)), y)
    assert not np.array_equal(apply_sequence(x, seq, rng=np.random.default_rng(4)), y)
    assert not np.array_equal(apply_sequence(x, ["rotate(+5)", "hflip"], rng=np.random.default_rng(3)), y)


def test_wrapped_albumentations_in_a_set_with_targets(tf_name: Any) -> None:
    name = tf_name("alb_blur")
    wrap_albumentations(A.GaussianBlur(blur_limit=(5, 5), sigma_limit=(1.0, 1.0)), name)
    ts = TFSet(["hflip", name, "brightness(0.5)"])
    x = _image()
    mask = np.zeros(x.shape[:2], bool)
    mask[2:5, 3:9] = True
    y, t = apply_sequence(x, [1, 2], ts, targets={"mask": mask, "bboxes": [[3, 2, 9, 5]]})
    np.testing.assert_array_equal(t["mask"], mask)  # image TFs leave targets where they are
    np.testing.assert_array_equal(t["bboxes"], [[3, 2, 9, 5]])
    expected = apply_sequence(A.GaussianBlur(blur_limit=(5, 5), sigma_limit=(1.0, 1.0), p=1)(image=x)["image"],
                              ["brightness(0.5)"])  # fmt: skip
    np.testing.assert_array_equal(y, expected)


def test_wrap_albumentations_refuses_non_transforms(tf_name: Any) -> None:
    with pytest.raises(TypeError, match="expected an Albumentations transform, got int"):
        wrap_albumentations(3, tf_name("nope"))
    with pytest.raises(ValueError, match="already registered"):
        wrap_albumentations(A.GaussianBlur(), "rotate")
