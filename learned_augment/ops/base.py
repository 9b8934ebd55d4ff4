"""The transformation function (TF): a named, deterministic function of (data, magnitude), and its registry.

A TF's ``kind`` tells the sequence machinery how it may be fused and how it moves targets:

* ``affine``: ``fn(magnitude, h, w) -> (3, 3)`` forward matrix in pixel-index coordinates. Runs of affine TFs are
  multiplied into one matrix and resampled once; masks, boxes and keypoints move with the same matrix.
* ``point``: ``fn(x, magnitude) -> y`` on float values in [0, 1], applied to every pixel. Runs of point TFs become one
  256-entry look-up table for uint8 images. Targets are untouched.
* ``warp``: ``fn(magnitude, h, w, rng) -> Warp``, a non-affine geometric map (swirl, elastic). Targets move with it.
* ``image``: ``fn(image, magnitude, rng) -> image`` for any other image operation (blur, equalize, ...). Targets are
  untouched. An image TF marked ``pixelwise`` (hue, saturation) maps each pixel's value on its own, like a point TF.
* ``custom``: a user function on any data (images, token lists, audio arrays). Nothing about the data is assumed.

A TF may also carry a ``batched`` form, which runs it in :func:`~learned_augment.ops.apply_sequence_batch` (and so in
:class:`~learned_augment.PolicyAugment`) on a whole ``(n, C, H, W)`` batch on the images' device, one magnitude per
image. Its signature follows the kind:

* ``point``, ``image``, ``custom``: ``batched(images, magnitude, generator) -> images``, where ``images`` is
  ``(n, C, H, W)`` float32 in [0, 1] (C in {1, 3}), ``magnitude`` an ``(n,)`` float64 numpy array on the host (NaN
  for TFs without one) and ``generator`` the ``torch.Generator`` to draw from (on its own device, which may differ
  from the images'). It returns the ``(n, C, H, W)`` float result on the images' device; ``images`` may be modified
  in place and returned. A point TF's batched form serves float images (uint8 ones use its look-up table); without
  one, float images go through the table, interpolated.
* ``warp``: ``batched(magnitude, h, w, generator, device) -> (n, H, W, 2)`` source pixel coordinates (x, y) of each
  destination pixel, as ``Warp.map_x`` / ``map_y`` hold them.
* ``affine``: none; the batched path composes the matrices of ``fn`` and resamples them itself.
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from ..errors import UnknownNameError


class Kind(str, Enum):
    AFFINE = "affine"
    POINT = "point"
    WARP = "warp"
    IMAGE = "image"
    CUSTOM = "custom"


@dataclass(frozen=True, eq=False)
class Warp:
    """A non-affine geometric map.

    Attributes
    ----------
    map_x, map_y:
        ``(H, W)`` float32 source coordinates (pixel index space) sampled for each destination pixel, as
        ``cv2.remap`` takes them.
    forward:
        Maps ``(N, 2)`` source points (x, y in pixel index space) to their destination positions.
    """

    map_x: np.ndarray
    map_y: np.ndarray
    forward: Callable[[np.ndarray], np.ndarray]
    map_xy: np.ndarray | None = None
    """Optionally, the same maps as one ``(H, W, 2)`` float32 array (``cv2.remap`` resamples faster with it)."""


@dataclass(frozen=True, eq=False)
class TF:
    """A transformation function.

    Parameters
    ----------
    name:
        Registry key, used in TF ids such as ``rotate(+5)`` and stored in policy files.
    kind:
        One of :class:`Kind`; see the module docstring for the signature ``fn`` must have.
    fn:
        The implementation.
    takes_magnitude:
        Whether entries of this TF carry a magnitude (``rotate(+5)``) or not (``hflip``).
    signed:
        Whether ids print the magnitude with an explicit sign (``rotate(+5)`` vs ``zoom(1.1)``).
    uses_rng:
        Whether the TF draws random numbers (elastic, noise, cutout): it is then deterministic given the generator.
    pixelwise:
        For ``image`` TFs: each output pixel depends only on the same input pixel, through one function for the
        whole image (hue, saturation). Point TFs are always pixelwise. Pixelwise TFs commute with geometric ones, so
        fused sequences apply them after the warps (see :func:`~learned_augment.ops.apply_sequence`).
    batched:
        The batched torch form of ``fn`` (see the module docstring for its signature by kind), or ``None``: the TF
        then runs per image only. Not for affine TFs.
    valid:
        The closed range ``(lo, hi)`` its magnitudes must lie in, checked wherever an entry is made (parsing an id,
        building a TF set, loading a policy file) rather than at the first call; ``None`` accepts any finite one.
    """

    name: str
    kind: Kind
    fn: Callable[..., Any]
    takes_magnitude: bool = True
    signed: bool = False
    uses_rng: bool = False
    description: str = ""
    pixelwise: bool = False
    batched: Callable[..., Any] | None = field(default=None, repr=False)
    _custom_args: tuple[bool, bool] = field(default=(False, False), repr=False)
    valid: tuple[float, float] | None = None

    def __repr__(self) -> str:
        return f"TF({self.name!r}, kind={self.kind.value})"

    @property
    def commutes_with_geometry(self) -> bool:
        """Whether moving this TF after a geometric one leaves the result unchanged (exactly under nearest
        resampling; up to interpolation round-off and clipping under bilinear)."""
        return self.kind == Kind.POINT or (self.kind == Kind.IMAGE and self.pixelwise and not self.uses_rng)


_REGISTRY: dict[str, TF] = {}

# The name part of a TF id (``tfset._ID`` is built on it): other names would make ids that cannot be parsed back.
NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")


def register(tf: TF, *, overwrite: bool = False) -> TF:
    """Add ``tf`` to the registry so TF sets and policy files can refer to it by name."""
    if not isinstance(tf.name, str) or NAME_PATTERN.fullmatch(tf.name) is None:
        raise ValueError(
            f"invalid TF name {tf.name!r}: start with a letter or underscore, then use letters, digits, '_', '.', '-'"
        )
    if tf.batched is not None and not callable(tf.batched):
        raise TypeError(f"the batched form of TF {tf.name!r} must be callable, got {type(tf.batched).__name__}")
    if tf.batched is not None and tf.kind == Kind.AFFINE:
        raise ValueError(
            f"affine TF {tf.name!r} takes no batched form: the batched path composes its matrices and resamples itself"
        )
    if tf.valid is not None:
        lo, hi = tf.valid
        if not lo <= hi:
            raise ValueError(f"the valid magnitudes of TF {tf.name!r} must be a range (lo, hi) with lo <= hi")
    if tf.name in _REGISTRY and not overwrite and _REGISTRY[tf.name] is not tf:
        raise ValueError(f"a TF named {tf.name!r} is already registered; pass overwrite=True to replace it")
    _REGISTRY[tf.name] = tf
    return tf


def register_builtin(
    name: str,
    kind: Kind,
    fn: Callable[..., Any],
    batched: Callable[..., Any] | None = None,
    *,
    takes_magnitude: bool = True,
    signed: bool = False,
    rng: bool = False,
    pixelwise: bool = False,
    valid: tuple[float, float] | None = None,
    description: str = "",
) -> None:
    """Register one of the library's own TFs (the geometric and intensity modules' one-line declarations)."""
    register(
        TF(
            name,
            kind,
            fn,
            takes_magnitude=takes_magnitude,
            signed=signed,
            uses_rng=rng,
            description=description,
            pixelwise=pixelwise,
            batched=batched,
            valid=valid,
        )
    )


def get_tf(name: str) -> TF:
    """Look up a registered TF by name; unknown names raise :class:`~learned_augment.UnknownNameError` (a
    ``KeyError`` and a ``ValueError``) with close matches."""
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownNameError(
            f"unknown TF {name!r}.{hint} Register your own with @learned_augment.register_tf({name!r}).", name
        ) from None


def registered_tfs() -> list[str]:
    """Names of all registered TFs, sorted."""
    return sorted(_REGISTRY)


def register_tf(
    name: str | None = None,
    *,
    signed: bool = False,
    overwrite: bool = False,
    batched: Callable[..., Any] | None = None,
    valid: tuple[float, float] | None = None,
) -> Callable[[Callable[..., Any]], TF]:
    """Decorator that turns a user function into a registered ``custom`` TF.

    The function receives the data as its first argument and may accept ``magnitude`` and ``rng`` keyword
    arguments; it must return data of the same kind. An image with alpha (2 or 4 channels) reaches it as its
    colour channels only, the alpha kept as it was, unless every TF of the policy is custom (then the data is
    passed as it is). The images of one sample share one generator state: a TF that draws per channel should draw
    as many numbers for a grey image as for an RGB one (as the built-in ``noise`` does), so that a grey and an RGB
    image of one sample (RGB and depth) get the same draws from the TFs after it. The data need not be an image::

        @la.register_tf("word_dropout")
        def word_dropout(tokens, magnitude, rng):
            keep = rng.random(len(tokens)) >= magnitude
            return [t for t, k in zip(tokens, keep) if k]

    Parameters
    ----------
    name:
        Registry key; defaults to the function's name.
    signed:
        Print magnitudes in ids with an explicit sign (``tint(+0.1)``).
    overwrite:
        Replace a TF already registered under ``name``.
    batched:
        For image TFs, the same operation on a batch, in torch (in the spirit of torchvision's
        ``register_kernel``): ``batched(images, magnitude=..., generator=...)``. ``images`` is ``(n, C, H, W)``
        float32 in [0, 1] (C in {1, 3}) on the batch's device; ``magnitude`` an ``(n,)`` float64 numpy array, one
        magnitude per image, on the host (move it with ``torch.as_tensor(magnitude, device=images.device)``);
        ``generator`` a ``torch.Generator``, on its own device (draw there, then move the draws). It declares
        ``magnitude`` exactly when the function does, and ``generator`` exactly when the function declares ``rng``.
        It returns the ``(n, C, H, W)`` float result on the same device and may modify ``images`` in place. With
        it, the TF runs in :func:`~learned_augment.ops.apply_sequence_batch` and
        :class:`~learned_augment.PolicyAugment`; without it, sequences using the TF are applied per image only
        (:func:`~learned_augment.ops.apply_sequence`). It should agree with the function on images (float, and
        uint8 scaled to [0, 1]; uint8 batches are rounded to the 1/255 grid after it, as the function's uint8
        result is)::

            def fade_batch(images, magnitude):
                m = torch.as_tensor(magnitude, dtype=images.dtype, device=images.device).view(-1, 1, 1, 1)
                return (0.5 + (images - 0.5) * m).clamp(0.0, 1.0)

            @la.register_tf("fade", batched=fade_batch)
            def fade(image, magnitude):
                x = image.astype(np.float32) / 255 if image.dtype == np.uint8 else image
                y = np.clip(0.5 + (x - 0.5) * magnitude, 0.0, 1.0)
                return np.rint(y * 255).astype(np.uint8) if image.dtype == np.uint8 else y.astype(np.float32)

    valid:
        The closed range ``(lo, hi)`` of magnitudes the function accepts: ids outside it (``fade(7)``) are refused
        when parsed, in a TF set or a policy file, not when the TF first runs. ``None`` accepts any finite magnitude.

    Raises
    ------
    ValueError
        If the name is invalid or taken (without ``overwrite``), ``valid`` is not a range, or ``batched`` declares
        other arguments than the function (``magnitude``; ``generator`` for ``rng``).
    TypeError
        If ``batched`` is not callable.
    """

    def wrap(fn: Callable[..., Any]) -> TF:
        params = inspect.signature(fn).parameters
        takes_mag = "magnitude" in params
        takes_rng = "rng" in params
        tf_name = name or fn.__name__
        tf = TF(
            name=tf_name,
            kind=Kind.CUSTOM,
            fn=fn,
            takes_magnitude=takes_mag,
            signed=signed,
            uses_rng=takes_rng,
            description=(fn.__doc__ or "").strip().split("\n")[0],
            batched=None if batched is None else _batched_call(tf_name, batched, takes_mag, takes_rng),
            _custom_args=(takes_mag, takes_rng),
            valid=None if valid is None else (float(valid[0]), float(valid[1])),
        )
        return register(tf, overwrite=overwrite)

    return wrap


def _batched_call(
    name: str, batched: Callable[..., Any], takes_mag: bool, takes_rng: bool
) -> Callable[[Any, np.ndarray, Any], Any]:
    """``batched`` called as every TF's batched form is, ``(images, magnitude, generator)``, passing on only the
    keyword arguments it declared, which must match the per-image function's (checked here, not at the first batch)."""
    if not callable(batched):
        raise TypeError(f"the batched form of TF {name!r} must be callable, got {type(batched).__name__}")
    params = inspect.signature(batched).parameters
    for arg, per_image, wanted in (("magnitude", "magnitude", takes_mag), ("generator", "rng", takes_rng)):
        if (arg in params) != wanted:
            does = "takes" if wanted else "does not take"
            raise ValueError(
                f"the batched form of TF {name!r} must {'' if wanted else 'not '}declare {arg!r}: its function "
                f"{does} {per_image!r}"
            )

    def call(images: Any, magnitude: np.ndarray, generator: Any) -> Any:
        kwargs: dict[str, Any] = {}
        if takes_mag:
            kwargs["magnitude"] = magnitude
        if takes_rng:
            kwargs["generator"] = generator
        return batched(images, **kwargs)

    return call


def call_custom(tf: TF, data: Any, magnitude: float | None, rng: np.random.Generator) -> Any:
    """Call a custom TF with the keyword arguments its function declared."""
    takes_mag, takes_rng = tf._custom_args
    kwargs: dict[str, Any] = {}
    if takes_mag:
        kwargs["magnitude"] = magnitude
    if takes_rng:
        kwargs["rng"] = rng
    return tf.fn(data, **kwargs)


def wrap_albumentations(transform: Any, name: str, *, overwrite: bool = False) -> TF:
    """Register a fixed-parameter Albumentations transform as an image TF.

    The transform is applied to the image only (with ``p`` forced to 1); its own random draws are seeded from the
    sequence's generator, so results are reproducible. Geometry it applies does not move other targets: wrap
    pixel-level transforms (colour, blur, noise) or accept that boxes and masks stay put.
    """
    if not callable(transform):
        raise TypeError(f"expected an Albumentations transform, got {type(transform).__name__}")
    transform.p = 1.0

    def run(image: np.ndarray, magnitude: float | None, rng: np.random.Generator) -> np.ndarray:
        if hasattr(transform, "set_random_seed"):
            transform.set_random_seed(int(rng.integers(2**31 - 1)))
        out = transform(image=image)["image"]
        return np.asarray(out).reshape(image.shape).astype(image.dtype, copy=False)

    tf = TF(
        name=name,
        kind=Kind.IMAGE,
        fn=run,
        takes_magnitude=False,
        uses_rng=True,
        description=f"Albumentations {type(transform).__name__}",
    )
    return register(tf, overwrite=overwrite)
