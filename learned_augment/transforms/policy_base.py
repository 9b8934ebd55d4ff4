"""What both protocols of :class:`~learned_augment.transforms.LearnedPolicyTransform` share: the policy, its random
streams (one per DataLoader worker and epoch), making the params of one call, applying them to a numpy image, the
check against the images the policy was fitted on, pickling and ``repr``."""

from __future__ import annotations

import functools
import os
import random
import warnings
from typing import Any

import numpy as np
import torch

from ..arguments import check_bool, check_probability, check_seed
from ..ops.base import Kind
from ..ops.geometry import resolve_interpolation
from ..ops.image import colour_channels, on_colour, split_alpha
from ..ops.sequence import apply_sequence
from ..policy.base import Policy
from ..policy.sampler import BlockSampler, PrefixSampler
from .albumentations_base import DualTransform, TransformModule, public_class_fullname
from .fit_check import PolicyMismatchWarning, caller_stacklevel, mismatch_message
from .sources import resolve_policy


def process_rank(hint: int | None = None) -> int:
    """This process's rank in a distributed job, so that ranks draw distinct sequences.

    The default process group's rank when one is initialised (also in forked DataLoader workers, which inherit it),
    else ``hint`` (the rank recorded when the transform was pickled into a spawned worker), else torchrun's
    ``RANK`` variable, else 0.
    """
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return int(dist.get_rank())
    if hint is not None:
        return hint
    try:
        return max(0, int(os.environ.get("RANK", "0")))
    except ValueError:
        return 0


class PolicyTransformBase(DualTransform, TransformModule):
    """The shared core; see :class:`~learned_augment.transforms.LearnedPolicyTransform` for the arguments."""

    def __init__(
        self,
        policy: Any,
        p: float = 1.0,
        seed: int | None = None,
        interpolation: Any = "bilinear",
        *,
        strict: bool = False,
    ) -> None:
        p = check_probability(p)
        seed = check_seed(seed)
        interpolation = resolve_interpolation(interpolation)
        strict = check_bool(strict, "strict")
        self._init_module()
        self._ready = False
        super().__init__(p=p)
        # Albumentations 2's flag for refusing unknown arguments; every argument is checked here anyway.
        self.strict = strict
        self.interpolation = interpolation
        self.policy_obj, self.source = resolve_policy(policy)
        self.policy_obj.eval()
        self._seed = seed
        self._epoch = 0
        self._rank_hint: int | None = None
        self._sampler = BlockSampler(self.policy_obj, seed=0)
        self._prefix_sampler = PrefixSampler(self.policy_obj)
        self._rng = np.random.default_rng(0)
        self._call_rng = random.Random(0)  # seed=None: this call's draws (see _start_call)
        self._stream_key: tuple[int, int | None, int, int] | None = None
        # Set once Albumentations hands the transform its Compose's generator: the stream then comes from there.
        self._external_stream = False
        self._last_params: dict[str, Any] | None = None
        self._names_pending = False
        # The fit treats data as images unless every TF is a custom one (fit_policy's rule): so does the transform.
        self._custom_data = all(e.tf.kind == Kind.CUSTOM for e in self.policy_obj.tfset)
        self._checked_shape: tuple[int, int, int] | None = None
        self._mismatch_warned = False
        self._ready = True

    @classmethod
    def get_class_fullname(cls) -> str:
        return public_class_fullname(cls)

    @property
    def policy(self) -> Policy:
        return self.policy_obj

    @property
    def tfset(self) -> Any:
        return self.policy_obj.tfset

    @property
    def last_params(self) -> dict[str, Any] | None:
        """What the last call applied (see the class docstring); ``None`` before the first call."""
        lp = self._last_params
        if self._names_pending and lp is not None:
            # Formatting the ids costs as much as augmenting a small image, and few callers read them.
            lp["tf_ids_str"] = self._names(lp["tf_ids"])
            self._names_pending = False
        return lp

    @last_params.setter
    def last_params(self, value: dict[str, Any] | None) -> None:
        self._last_params = value
        self._names_pending = False

    def _record_draw(self, params: dict[str, Any]) -> None:
        """Record drawn ``params`` as :attr:`last_params`, its ``tf_ids_str`` added on first read."""
        self._last_params = params
        self._names_pending = True

    def _names(self, ids: np.ndarray) -> list[str] | list[list[str]]:
        """Id strings of a sequence's TF indices (one list per sample for a batch's ``(B, L)``)."""
        if np.ndim(ids) == 2:
            return [[self.tfset[int(i)].id for i in row] for row in ids]
        return [self.tfset[int(i)].id for i in ids]

    # ------------------------------------------------------------------------------------------ randomness

    def set_epoch(self, epoch: int) -> None:
        """Mix ``epoch`` into the seeded streams (like ``DistributedSampler.set_epoch``); a ``seed=None`` transform
        draws from PyTorch's global generator, which the ``DataLoader`` reseeds every epoch, and ignores it.

        Not needed for fresh draws each epoch (see ``seed``); useful to make an epoch's draws depend on its number,
        e.g. to resume a run. Call it on the transform the ``DataLoader`` copies into its workers, before iterating.
        Workers started with ``persistent_workers=True`` keep the copy they were given and do not see later calls.
        """
        self._epoch = int(epoch)
        self._stream_key = None

    def _reseed(self, seed_material: list[int] | int | None) -> None:
        ss = np.random.SeedSequence(seed_material)
        s_sampler, s_rng = ss.generate_state(2, dtype=np.uint64)
        self._sampler.reseed(int(s_sampler >> 1))
        self._rng = np.random.default_rng(int(s_rng))

    def _reseed_for_context(self, force: bool = False) -> None:
        """Give each rank, DataLoader worker and epoch its own stream; cheap check on every call."""
        info = torch.utils.data.get_worker_info()
        # Distributed jobs seed every rank alike (the same seed=, the same torch.manual_seed, hence the same
        # DataLoader base seeds): without the rank, rank r's k-th sample would get rank 0's k-th sequence. The rank
        # is part of the key because it can change under a transform that already drew: a draw before
        # init_process_group (a look at dataset[0] before trainer.fit) would otherwise keep rank 0's stream.
        rank = process_rank(self._rank_hint)
        key = (os.getpid(), None if info is None else info.seed, self._epoch, rank)
        if not force and key == self._stream_key:
            return
        self._stream_key = key
        if info is not None:
            # Workers are new processes every epoch (unless persistent), so nothing of theirs remembers the last
            # epoch; ``info.seed`` is what changes: the DataLoader draws it per epoch and worker from its generator.
            if self._seed is not None:
                self._reseed([self._seed, self._epoch, info.id + 1, info.seed, rank])
            else:
                # From the worker's global generator (the DataLoader seeds it with info.seed), not from info.seed
                # alone: two transforms in one worker (two views of a sample) must not draw alike.
                self._reseed([int(torch.empty((), dtype=torch.int64).random_().item()), self._epoch, rank])
        elif self._seed is not None:
            self._reseed([self._seed, self._epoch, 0, rank])
        else:
            # From PyTorch's global generator, as torchvision's random transforms: torch.manual_seed repeats a run.
            self._reseed([int(torch.empty((), dtype=torch.int64).random_().item()), rank])

    @property
    def _per_call(self) -> bool:
        """``seed=None`` outside a seeded Albumentations pipeline: every call draws from PyTorch's global generator."""
        return self._seed is None and not self._external_stream

    def _start_call(self) -> None:
        """Ready the draws of one call. ``seed=None``: a generator for this call only, seeded from PyTorch's global
        one (and the rank), so ``torch.manual_seed`` before a call repeats it, in the main process as in a
        ``DataLoader`` worker (which the ``DataLoader`` seeds); otherwise the seeded stream of this context."""
        if self._per_call:
            value = int(torch.empty((), dtype=torch.int64).random_().item())
            self._call_rng = random.Random(value + (process_rank(self._rank_hint) << 64))
        else:
            self._reseed_for_context()

    def _uniform(self) -> float:
        """One uniform in [0, 1) of this call (after :meth:`_start_call`)."""
        return self._call_rng.random() if self._per_call else float(self._rng.random())

    def _call_numpy_rng(self) -> np.random.Generator:
        """A numpy generator for this call's vectorised draws (after :meth:`_start_call`)."""
        return np.random.default_rng(self._call_rng.getrandbits(64)) if self._per_call else self._rng

    def _draw(self) -> dict[str, Any]:
        """One sequence and its TF seed (after :meth:`_start_call`)."""
        if self._per_call:
            rng = self._call_rng
            ids = self._prefix_sampler.draw([rng.random() for _ in range(self.policy_obj.seq_len)])
            return {"tf_ids": ids, "tf_seed": rng.getrandbits(63)}
        self._reseed_for_context()
        return {"tf_ids": self._sampler.next().copy(), "tf_seed": int(self._rng.integers(2**63 - 1))}

    def _make_params(self) -> dict[str, Any]:
        """The params of one single-sample call: ``{"applied": False}`` with probability ``1 - p``, else a draw.
        Recorded as :attr:`last_params`."""
        self._start_call()
        if self.p < 1.0 and self._uniform() >= self.p:
            self.last_params = {"applied": False}
            return {"applied": False}
        params = {"applied": True, **self._draw()}
        self._record_draw(dict(params))
        return params

    # ------------------------------------------------------------------------------------------ application

    def _apply_image(
        self,
        image: np.ndarray,
        params: dict[str, Any],
        targets: dict[str, Any] | None = None,
        clip_boxes: bool = True,
    ) -> Any:
        """:meth:`_apply_np` on an image (not a target's blank canvas), checked against the policy's fit after it
        was accepted: ``(H, W)`` or ``(H, W, C)``."""
        out = self._apply_np(image, params, targets, clip_boxes)
        self._check_fit(1 if image.ndim == 2 else image.shape[2], image.shape[0], image.shape[1])
        return out

    def _apply_np(
        self,
        image: np.ndarray,
        params: dict[str, Any],
        targets: dict[str, Any] | None = None,
        clip_boxes: bool = True,
    ) -> Any:
        # The seed, not a generator: apply_sequence seeds one only if a TF of the sequence draws.
        run = functools.partial(
            apply_sequence,
            tf_ids=params["tf_ids"],
            tfset=self.tfset,
            rng=int(params["tf_seed"]),
            interpolation=self.interpolation,
            clip_boxes=clip_boxes,
        )
        tfset = self.tfset
        if split_alpha(image)[1] is not None and all(tfset[int(i)].tf.kind == Kind.CUSTOM for i in params["tf_ids"]):
            # A draw of custom TFs only would take apply_sequence's any-data branch and hand them the alpha channel
            # too; on an image they see the colour, whatever else was drawn.
            out = on_colour(run, image)
            return out if targets is None else (out, dict(targets))
        return run(image, targets=targets)

    def _check_fit(self, channels: int, h: int, w: int) -> None:
        """Warn once per transform when images look unlike those the policy was fitted on (see ``fit_check``);
        ``channels`` counts an alpha channel, which the policy's TFs do not read."""
        channels = colour_channels(channels)
        shape = (channels, h, w)
        if shape == self._checked_shape or self._mismatch_warned:
            return
        self._checked_shape = shape
        message = mismatch_message(self.policy_obj, channels, h, w)
        if message is not None:
            self._mismatch_warned = True
            warnings.warn(message, PolicyMismatchWarning, stacklevel=caller_stacklevel())

    # ------------------------------------------------------------------------------------------ pickling, repr

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_stream_key"] = None  # a copy in another process must reseed for its own context
        # A spawned worker has no process group to ask: carry the group's rank (only that: a rank taken from the
        # environment is in the worker's environment too, and a copy pickled outside a job must not keep one).
        dist = torch.distributed
        ready = dist.is_available() and dist.is_initialized()
        state["_rank_hint"] = dist.get_rank() if ready else self._rank_hint
        # The copy reseeds before its first draw, so the sampler is rebuilt rather than copied: its torch.Generator
        # does not survive torch's multiprocessing pickler (spawned DataLoader workers die unpickling it).
        state["_sampler"] = None
        state["_prefix_sampler"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._sampler = BlockSampler(self.policy_obj, seed=0)
        self._prefix_sampler = PrefixSampler(self.policy_obj)
        self.__dict__.setdefault("_external_stream", False)  # pickled by a version without it

    def __repr__(self) -> str:
        src = f", source={self.source!r}" if self.source else ""
        seed = f", seed={self._seed}" if self._seed is not None else ""
        interp = f", interpolation={self.interpolation!r}" if self.interpolation != "bilinear" else ""
        return f"{type(self).__name__}(policy={self.policy_obj!r}, p={self.p}{seed}{interp}{src})"
