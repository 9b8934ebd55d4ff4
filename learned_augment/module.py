"""A learned policy as an ``nn.Module`` that augments a batch on its own device (kornia-style, inside the model)."""

from __future__ import annotations

import numbers
import os
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from .ops.batch import _FLOAT_DTYPES, _Plan, apply_sequence_batch, check_values
from .ops.geometry import resolve_interpolation
from .ops.image import ALPHA_CHANNELS, colour_channels
from .ops.tfset import TFSet
from .policy.base import Policy
from .pretrained import card_p
from .transforms import PRETRAINED_PREFIX, _resolve_policy
from .transforms.fit_check import PolicyMismatchWarning, caller_stacklevel, mismatch_message
from .transforms.inputs import match_layout, wrap_like
from .transforms.policy_base import process_rank

__all__ = ["PolicyAugment"]


class PolicyAugment(nn.Module):
    """Augment a ``(B, C, H, W)`` batch (or one ``(C, H, W)`` image) with a learned policy, on its device: one fresh
    sequence per sample.

    For augmentation after the batch reaches the accelerator, as a layer of the model or a step of the training
    loop (``nn.Sequential(PolicyAugment(policy), model)``). Each sample gets its own TF sequence drawn from the
    policy, applied by :func:`~learned_augment.ops.apply_sequence_batch` (vectorised over the batch).

    Like :class:`torch.nn.Dropout`, it acts in training mode only: after ``.eval()`` it returns its input unchanged
    (and draws nothing), so the same model evaluates on clean images.

    Parameters
    ----------
    policy:
        A fitted :class:`~learned_augment.policy.Policy`, a path to a policy file, or ``"pretrained:<name>"`` (see
        :meth:`from_pretrained`). Every TF of its set must have a batched form (the built-ins do; give a custom TF one
        with ``register_tf(..., batched=fn)``, or apply such policies per sample with
        :class:`~learned_augment.LearnedPolicyTransform`).
    p:
        Probability that a sample is augmented, independently per sample; the others pass through unchanged.
        Default 1.0, as :class:`~learned_augment.LearnedPolicyTransform`'s (measured best with the default short
        sequences; long L = 10 sequences measured best at ``p=0.5``).
    seed:
        ``None`` (default): every call draws from PyTorch's global generator, so ``torch.manual_seed`` makes a run
        reproducible. A non-negative int: the k-th training-mode call (``k =`` :attr:`step`, from 0) draws from a
        stream derived from ``(seed, k)`` alone, whatever else in the program draws random numbers; set
        :attr:`step` to resume a run mid-way (or to key a batch's draws to its position, e.g. in a Ray Data
        ``map_batches``). In distributed training the process's rank (the process group's, else torchrun's
        ``RANK``) is mixed into both kinds of stream, so processes seeded alike draw distinct sequences.
    interpolation:
        How geometric TFs resample: ``"bilinear"`` (default) or ``"nearest"`` (or torchvision's
        ``InterpolationMode``, PIL's ``Image.Resampling``, ``cv2.INTER_LINEAR`` / ``cv2.INTER_NEAREST``).

    Attributes
    ----------
    step:
        Number of training-mode calls so far: the ``k`` of the next call's stream when ``seed`` is set.
    last_params:
        What the last training-mode call applied, as kornia keeps its ``_params``: ``{"step": k, "applied": [the
        augmented samples' indices], "tf_ids": [one list of TF indices into tfset per applied sample]}``; ``None``
        before the first call.

    Notes
    -----
    * Input ``(B, C, H, W)``, C in {1, 3} (or 2 or 4: grey or RGB, then an alpha channel that only the geometric
      TFs move): uint8 (0..255) or float16 / bfloat16 / float32 / float64 in [0, 1], on any device; a single
      ``(C, H, W)`` image is augmented as a batch of one, as torchvision's transforms take one. Output: the same
      shape, dtype and device.
    * Not differentiable: augmented samples carry no gradient to the input (samples left unaugmented pass through
      unchanged). The module has no parameters or buffers.
    * The policy is held, not registered as a submodule: its weights stay out of ``parameters()`` (so no optimiser
      or DDP sees them) and ``state_dict()``, and ``.to(device)`` leaves it where it is; sequences are drawn on the
      host and only the images live on the device.
    * Checking that float images lie in [0, 1] synchronises with the device once per training-mode call.

    Examples
    --------
    >>> aug = PolicyAugment.from_pretrained("cifar10-meanfield", p=0.5, seed=0)
    >>> model = nn.Sequential(aug, nn.Conv2d(3, 8, 3))
    >>> model(torch.rand(4, 3, 32, 32)).shape
    torch.Size([4, 8, 30, 30])
    """

    p: float
    seed: int | None
    interpolation: str
    source: str | None
    step: int
    last_params: dict[str, Any] | None
    _policy: Policy

    def __init__(
        self,
        policy: Policy | str | os.PathLike[str],
        p: float = 1.0,
        seed: int | None = None,
        interpolation: Any = "bilinear",
    ) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0):
            raise ValueError(f"seed must be None or a non-negative int, got {seed!r}")
        resolved, source = _resolve_policy(policy)
        _check_batchable(resolved.tfset, source)
        self.p = float(p)
        self.seed = None if seed is None else int(seed)
        self.interpolation = resolve_interpolation(interpolation)
        self.source = source
        self.step = 0
        self.last_params = None
        self._mismatch_warned: bool = False
        # Not a submodule: see the class notes.
        object.__setattr__(self, "_policy", resolved)
        _run_augment_eagerly()

    @classmethod
    def from_pretrained(
        cls, name: str, p: float | None = None, seed: int | None = None, interpolation: Any = "bilinear"
    ) -> PolicyAugment:
        """A module around a shipped policy (see :func:`learned_augment.list_pretrained`); ``p`` defaults to the p
        its model card measured (:func:`~learned_augment.pretrained.card_p`)."""
        return cls(PRETRAINED_PREFIX + name, p=card_p(name) if p is None else p, seed=seed, interpolation=interpolation)

    @property
    def policy(self) -> Policy:
        """The policy the sequences are drawn from."""
        return self._policy

    @property
    def tfset(self) -> TFSet:
        return self._policy.tfset

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Augment a batch (training mode) or return it unchanged (eval mode).

        Parameters
        ----------
        images:
            ``(B, C, H, W)`` with C in {1, 3}, or 2 or 4 with alpha last: uint8 (0..255) or floating point in
            [0, 1], on any device; or one ``(C, H, W)`` image.

        Returns
        -------
        torch.Tensor
            The input's shape, dtype and device; ``images`` itself when no sample is augmented.

        Raises
        ------
        TypeError
            If ``images`` is not a tensor, or has a dtype other than uint8 or floating point.
        ValueError
            If ``images`` is not ``(B, C, H, W)`` or ``(C, H, W)`` with C in {1, 3} (or 2 or 4: grey or RGB, then
            an alpha channel that only the geometric TFs move), or float values lie outside [0, 1].
        """
        if isinstance(images, torch.Tensor) and images.ndim == 3:
            if images.shape[0] not in (1, 3) + ALPHA_CHANNELS:
                raise ValueError(
                    "PolicyAugment: one image is (C, H, W), channels first: 1 (grey) or 3 (RGB), or 2 or 4 with "
                    f"alpha last; got shape {tuple(images.shape)}"
                )
            batch = images.as_subclass(torch.Tensor).unsqueeze(0)
            _check_batch(batch)
            if not self.training:
                return images
            out = self._augment(batch)
            return images if out is batch else wrap_like(out[0], images)
        _check_batch(images)
        if not self.training:
            return images
        return self._augment(images)

    def _augment(self, images: torch.Tensor) -> torch.Tensor:
        # Run eagerly under torch.compile (see _run_augment_eagerly): host-side planning (numpy, a step counter that
        # changes every call, read and advanced here for that reason) would make it recompile each step.
        step = self.step
        self.step += 1
        # The values are checked before the draw, so that a bad batch fails whatever p draws.
        check_values(images)
        self._warn_if_unlike(images)
        b = images.shape[0]
        self.last_params = {"step": step, "applied": [], "tf_ids": []}
        if b == 0 or self.p == 0.0:
            return images
        sampler, op_seed = self._streams(step)
        if self.p < 1.0:
            chosen = np.flatnonzero((torch.rand(b, generator=sampler) < self.p).numpy())
            if chosen.size == 0:
                return images
        else:
            chosen = np.arange(b)
        ids = self._policy.sample(chosen.size, generator=sampler)
        self.last_params = {"step": step, "applied": chosen.tolist(), "tf_ids": ids.tolist()}
        ops = torch.Generator(device=images.device).manual_seed(op_seed)
        # Detached: the TFs run without autograd, and samples left alone keep theirs through index_copy.
        plain = images.detach().as_subclass(torch.Tensor)
        if chosen.size == b:
            out = apply_sequence_batch(plain, ids, self.tfset, generator=ops, interpolation=self.interpolation)
        else:
            sel = torch.from_numpy(chosen).to(images.device)
            moved = apply_sequence_batch(
                plain.index_select(0, sel), ids, self.tfset, generator=ops, interpolation=self.interpolation
            )
            out = images.as_subclass(torch.Tensor).index_copy(0, sel, moved)
        # The input's layout and tv_tensor type (a tv_tensors.Image batch stays one), as torchvision's kernels.
        return wrap_like(match_layout(out, images), images)

    def _warn_if_unlike(self, images: torch.Tensor) -> None:
        """One PolicyMismatchWarning per module, as the transforms give, for batches unlike the fitted images."""
        if getattr(self, "_mismatch_warned", False):
            return
        c, h, w = (int(n) for n in images.shape[1:])
        message = mismatch_message(self._policy, colour_channels(c), h, w)
        if message is not None:
            self._mismatch_warned = True
            warnings.warn(message, PolicyMismatchWarning, stacklevel=caller_stacklevel())

    def _streams(self, step: int) -> tuple[torch.Generator, int]:
        """The call's host generator (apply-or-skip draws, then sequences) and the seed of its on-device draws."""
        if self.seed is None:
            material = [int(torch.empty((), dtype=torch.int64).random_().item()), process_rank()]
        else:
            material = [self.seed, step, process_rank()]
        s_host, s_device = np.random.SeedSequence(material).generate_state(2, dtype=np.uint64)
        return torch.Generator().manual_seed(int(s_host >> 1)), int(s_device >> 1)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        _run_augment_eagerly()  # unpickled in a fresh process (a spawned worker, torch.load of a whole model)

    def extra_repr(self) -> str:
        source = f", source={self.source!r}" if self.source else ""
        return f"policy={self._policy!r}{source}, p={self.p:g}, seed={self.seed}, interpolation={self.interpolation!r}"


def _run_augment_eagerly() -> None:
    """Wrap ``PolicyAugment._augment`` in ``torch.compiler.disable``, once, when the first module is built.

    Not at import: the wrapper imports ``torch._dynamo`` (about 2 s, 40% of ``import learned_augment``), which
    every DataLoader worker, DDP rank and Ray actor would pay without ever building a ``PolicyAugment``.
    """
    if not getattr(PolicyAugment, "_augment_is_eager", False):
        PolicyAugment._augment = torch.compiler.disable(PolicyAugment._augment)  # type: ignore[method-assign]
        PolicyAugment._augment_is_eager = True  # type: ignore[attr-defined]


def _check_batchable(tfset: TFSet, source: str | None) -> None:
    """Refuse, at construction, a policy whose TF set the batched path cannot run (rather than at some later step)."""
    try:
        _Plan.build(tfset, np.arange(len(tfset)), 8, 8, True)
    except NotImplementedError as exc:
        label = f" {source!r}" if source else ""
        raise ValueError(
            f"policy{label} cannot be applied to batches: {exc.args[0].split(';')[0]}; PolicyAugment runs only TFs "
            "with a batched form (give one with register_tf(..., batched=fn), or use LearnedPolicyTransform per "
            "sample instead)"
        ) from None


def _check_batch(images: object) -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"PolicyAugment expects a (B, C, H, W) torch.Tensor, got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(
            f"PolicyAugment expects a (B, C, H, W) batch or a (C, H, W) image, got shape {tuple(images.shape)}"
        )
    c = images.shape[1]
    if c not in (1, 3) + ALPHA_CHANNELS:
        raise ValueError(
            f"PolicyAugment: the policy's TFs handle 1 (grey) or 3 (RGB) channels, or 2 or 4 with alpha last, got {c} "
            f"(shape {tuple(images.shape)}; channels go second, (B, C, H, W))"
        )
    if images.dtype != torch.uint8 and images.dtype not in _FLOAT_DTYPES:
        raise TypeError(
            f"PolicyAugment expects uint8 (0..255) or floating point images in [0, 1], got dtype {images.dtype}"
        )
