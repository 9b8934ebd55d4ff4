"""``fit_policy``: TANDA's adversarial policy-gradient loop.

Each step draws a batch of real items and ``n_seqs`` TF sequences per item from the policy, and applies them,
keeping every prefix ``x_0 .. x_L``. Then:

* **Discriminator step**: binary cross-entropy, real items (label 1) against the fully transformed ``x_L`` of one
  sequence per item (label 0), both in one batch (so batch norm cannot normalise away what all fakes share).
* **Generator step** (REINFORCE): the per-step cost is ``c_t = -log D(x_t) + diversity / (d(x_0, x_t) + 1e-6)``, with
  ``d`` the mean squared difference relative to the variance of the real batch, so that ``diversity`` means the same
  whatever scale ``collate`` gives the data (the term keeps the policy off null sequences such as "flip, flip"; the
  1e-6 is :data:`NO_OP_FLOOR`).
  Rewards are the cost differences ``c_t - c_{t-1}``, returns are discounted by ``gamma``, the baseline is the
  per-step batch mean, and the loss is ``sum_t log pi(tau_t) * advantage_t`` averaged over sequences.

All randomness of step ``k`` is derived from ``(seed, k)``, so a fit killed and resumed from its checkpoint ends
bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .._version import __version__
from ..arguments import MAX_SEED, check_device, check_int, check_number, check_size
from ..data import as_images, fingerprint, random_subset
from ..io import (
    ArtifactError,
    check_optimizer_state,
    flatten_state,
    load_artifact,
    save_artifact,
    unflatten_state,
)
from ..ops.base import Kind
from ..ops.batch import has_batched_form
from ..ops.tfset import TFSet, get_tfset
from ..policy.base import Policy
from ..policy.files import policy_from_state
from ..policy.models import make_policy, policy_kind
from .discriminator import DCGANDiscriminator
from .distributed import FitGroup
from .rollout import batch_prefixes, custom_prefixes, image_prefixes, padded_tfset

Callback = Callable[[int, dict[str, float], Policy], Any]

CHECKPOINT_KIND = "fit_checkpoint"

# A fit from ``epochs`` runs at least this many steps: one epoch of 1,000 images at batch 32 is 31 steps, too few
# for the discriminator to learn what destroys the data, let alone for the policy to follow it.
MIN_STEPS = 500

# The diversity charge is ``diversity / (d + NO_OP_FLOOR)``: at most ``diversity / NO_OP_FLOOR`` (1,000 nats with
# the default diversity) for a sequence that changes nothing. A charge that large is what saturates the LSTM: where
# a TF is a no-op on a few images only (colour TFs on the ~5% near-grey CIFAR-10 images), one such sequence swamps
# a step. With 1e-3 (at most 1 nat) the policy tracks realism instead, and lost on digits (README, "Why CIFAR-10
# still loses"); kept at 1e-6 until something better is measured. ``examples/policy_realism.py`` varies it.
NO_OP_FLOOR = 1e-6


# fit_policy's ``rollouts`` values: how the prefixes x_0 .. x_L are made.
ROLLOUTS = ("auto", "per_image", "batched")


def _images_to_tensor(batch: np.ndarray) -> torch.Tensor:
    """(N, H, W, C) uint8 -> (N, C, H, W) float in [-1, 1], the discriminator's input scale."""
    t = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float()
    return t / 127.5 - 1.0


def subpixel_jitter(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by a random sub-pixel offset in [-0.5, 0.5) px with bilinear resampling.

    Applied to real AND transformed images before the discriminator, so that the slight blur of one bilinear
    resampling no longer tells them apart: without it, D learns "resampled = fake" within a few hundred steps
    (its loss goes to ~0.001 on CIFAR-10) and the policy is pushed away from every geometric TF.
    """
    n, _, h, w = x.shape
    shift = torch.rand(n, 2, generator=generator) - 0.5
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = shift[:, 0] * 2.0 / w
    theta[:, 1, 2] = shift[:, 1] * 2.0 / h
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def fit_length(n_items: int, batch_size: int, epochs: float, steps: int | None, min_steps: int) -> int:
    """Number of steps of a fit: ``steps`` if given, else ``epochs`` passes of ``n_items``, at least ``min_steps``."""
    if steps is not None:
        if isinstance(steps, bool) or int(steps) != steps or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        return int(steps)
    if not math.isfinite(epochs) or epochs <= 0:
        raise ValueError(f"epochs must be a positive number, got {epochs!r}")
    if isinstance(min_steps, bool) or int(min_steps) != min_steps or min_steps < 1:
        raise ValueError(f"min_steps must be a positive integer, got {min_steps!r}")
    return max(int(min_steps), int(round(epochs * steps_per_epoch(n_items, batch_size))))


def steps_per_epoch(n_items: int, batch_size: int) -> int:
    """Full batches in one pass over ``n_items`` (a batch larger than the data set is the whole data set)."""
    return max(1, n_items // max(1, min(batch_size, n_items)))


def _step_seed(seed: int, step: int, stream: int) -> list[int]:
    return [int(seed), int(stream), int(step)]


def _torch_gen(
    seed: int, step: int, stream: int, extra: Sequence[int] = (), device: torch.device | str = "cpu"
) -> torch.Generator:
    """A torch generator on ``device`` seeded from ``(seed, stream, step, *extra)``."""
    s = np.random.SeedSequence(_step_seed(seed, step, stream) + list(extra)).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator(device=device).manual_seed(int(s >> 1))


def reward_dtype(precision: str, device: torch.device, builtin_discriminator: bool = True) -> torch.dtype:
    """The dtype of the reward pass for ``precision`` (``"float32"``, ``"bfloat16"``, ``"auto"``) on ``device``.

    ``"auto"`` takes bfloat16 only where it is native (CUDA GPUs of compute capability 8.0 or more, CPUs with AMX
    tiles; elsewhere bfloat16 convolutions are emulated and slower than float32) and only for the built-in
    discriminator: a user's module may hold operations without bfloat16 kernels, so it gets bfloat16 only when
    asked. Measured on a 2-core AMX CPU (``examples/bench_fit.py``, interleaved repeats): 1.6x the steps per second
    on 32x32 CIFAR-10 images and 2.0x on MNIST. The built-in discriminator's logits then differ from float32 by
    about 7e-3 on average (2e-2 at most, for logits of size ~5), against a spread of about 3 in the per-step costs;
    the TF frequencies of fits of one seed in both precisions differ far less than those of two seeds (README).
    """
    if precision == "float32":
        return torch.float32
    if precision == "bfloat16":
        return torch.bfloat16
    if precision != "auto":
        raise ValueError(f"reward_precision must be 'float32', 'bfloat16' or 'auto', got {precision!r}")
    if not builtin_discriminator:
        return torch.float32
    if device.type == "cuda":  # is_bf16_supported() also counts emulated bfloat16 (V100, T4)
        return torch.bfloat16 if torch.cuda.get_device_capability(device)[0] >= 8 else torch.float32
    if device.type == "cpu":
        amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
        return torch.bfloat16 if amx is not None and amx() else torch.float32
    return torch.float32


def _reward_autocast(device: torch.device, dtype: torch.dtype) -> Any:
    """Autocast for the reward pass, or nothing for float32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _logits(disc: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """One logit per item, shape ``(B,)``, from a discriminator that returns ``(B,)`` or ``(B, 1)``."""
    out = disc(x)
    n = x.shape[0]
    if not isinstance(out, torch.Tensor) or out.shape not in ((n,), (n, 1)):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"the discriminator must return one logit per item, shape ({n},) or ({n}, 1); got {shape}")
    return out.reshape(n)


def _stack_prefixes(batches: list[torch.Tensor]) -> torch.Tensor:
    """``(L+1, n, ...)`` from one collated batch per prefix step; they must agree in shape."""
    shapes = {tuple(b.shape) for b in batches}
    if len(shapes) > 1:
        raise ValueError(
            f"collate returned batches of different shapes for the prefixes of one sequence ({sorted(shapes)}); "
            "it must give one shape whatever the TFs did, e.g. pad token lists to a fixed length"
        )
    return torch.stack(batches)


def resolve_rollouts(mode: str, device: torch.device, tfset: TFSet, is_image: bool) -> str:
    """``"per_image"`` or ``"batched"``: how a fit with ``rollouts=mode`` on ``device`` makes its prefixes."""
    if mode not in ROLLOUTS:
        raise ValueError(f"rollouts must be one of {ROLLOUTS}, got {mode!r}")
    if mode == "per_image":
        return mode
    missing = sorted({e.tf.name for e in tfset if not has_batched_form(e.tf)})
    if mode == "batched":
        if not is_image:
            raise ValueError("rollouts='batched' needs images without collate=; use rollouts='per_image' or 'auto'")
        if missing:
            raise ValueError(
                f"rollouts='batched' needs a batched form for every TF; TFs {missing} have none: give them one "
                "(register_tf(..., batched=fn)) or use rollouts='per_image'"
            )
        return mode
    return "batched" if is_image and not missing and device.type != "cpu" else "per_image"


def _is_image_data(tfset: TFSet) -> bool:
    return any(e.tf.kind != Kind.CUSTOM for e in tfset)


def fit_policy(
    data: Any,
    tfs: TFSet | str | Sequence[str] = "default",
    model: str = "lstm",
    seq_len: int = 2,
    *,
    discriminator: nn.Module | None = None,
    collate: Callable[[list[Any]], torch.Tensor] | None = None,
    epochs: float = 1.0,
    steps: int | None = None,
    min_steps: int = MIN_STEPS,
    batch_size: int = 32,
    n_seqs: int = 5,
    d_lr: float = 1e-4,
    g_lr: float = 0.2,
    g_optimizer: str = "sgd",
    diversity: float = 1e-3,
    gamma: float = 0.5,
    entropy: float = 0.0,
    hidden: int = 32,
    d_width: int = 32,
    jitter: bool = False,
    eval_every: int = 25,
    reward_precision: str = "auto",
    device: str | torch.device = "cpu",
    rollouts: str = "auto",
    seed: int = 0,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 100,
    resume: bool = True,
    progress: bool = True,
    callbacks: Sequence[Callback] = (),
    limit: int | None = None,
    subset: int | None = None,
    image_size: int | tuple[int, int] | None = None,
    distributed: bool = False,
) -> Policy:
    """Learn a TF-sequence policy that keeps ``data`` realistic, from unlabeled data.

    Parameters
    ----------
    data:
        Unlabeled training data: a torch ``Dataset`` (labels in ``(image, label)`` items are ignored), an iterable
        of images, a numpy array ``(N, H, W[, C])``, a folder of image files or an ``.npz`` file. For non-image
        data (used with custom TFs), a list of items plus ``discriminator`` and ``collate``.
    tfs:
        TF vocabulary: ``"mnist"``, ``"cifar10"``, ``"default"``, a :class:`TFSet` or a list of TF ids.
    model:
        ``"lstm"``, ``"gru"`` or ``"mean_field"``.
    seq_len:
        TFs per sequence (L). Default 2, applied then to every sample (the transforms' default ``p=1``), as
        RandAugment applies two ops: over the wide default set this measured best on validation among L = 1, 2, 3
        and 10 (README, 'Does it work?'); longer sequences of it stacked too much change on each image.
    discriminator:
        Any ``nn.Module`` mapping a batch to one logit per item. Default: the DCGAN-style CNN sized to the images.
    collate:
        For non-image data: turns a list of items into the discriminator's input tensor, of one shape whatever the
        TFs did to the items (pad token lists to a fixed length); integer tensors (token ids) are fine.
    epochs, steps, min_steps:
        Length of the fit: ``steps`` if given, else ``epochs`` passes over the data in batches of ``batch_size``
        but never fewer than ``min_steps`` steps (500 by default: about 16,000 items seen at batch 32), so that a
        small data set still gets a fit that learns.
    batch_size:
        Real items per step.
    n_seqs:
        Sequences sampled per item for the generator step (the reference uses 5).
    d_lr, g_lr:
        Learning rates of the discriminator (Adam) and the generator.
    g_optimizer:
        ``"sgd"`` or ``"adam"``. The reference uses SGD (1e-3 on MNIST, 1e-4 on CIFAR-10 for its loss scale);
        our loss averages over sequences, and in our runs SGD at 0.2-0.5 moved the policy within a few dozen
        steps where Adam, which normalises the noisy policy gradient away, barely moved it.
    diversity:
        Weight ``alpha`` of the ``alpha / (d + 1e-6)`` term, where ``d`` is the mean squared change of an item
        divided by the variance of the real batch (scale-free: images on any range and custom data collated to any
        scale get the same penalty for the same relative change). The default 1e-3 matches the reference's 1e-4
        on MNIST, whose pixels (on [0, 1]) have a variance of about 0.1; the reference's 1e-3 on CIFAR-10 (pixel
        variance about 0.06) would be about 1.6e-2 here.
    gamma:
        Discount of the per-step rewards (reference: 0.5).
    entropy:
        Weight of an entropy bonus on the generator (not in the reference). Without it a mean-field policy fitted
        with a large learning rate can collapse onto a few harmless TFs, which loses the diversity that makes
        augmentation useful; the bonus keeps every TF the discriminator does not object to in play.
    hidden:
        Recurrent state size for LSTM/GRU policies.
    d_width:
        Channels of the default discriminator's first convolution.
    jitter:
        Shift real and transformed images by a random sub-pixel offset before the discriminator (images only),
        so interpolation blur is not a shortcut for telling them apart. Off by default: on 28x28 digits it
        slowed learning that destructive TFs are destructive (share after 60 steps 0.12 vs 0.02 without).
    eval_every:
        Steps between measurements of the R/G model-selection ratio (0: never).
    reward_precision:
        Arithmetic of the discriminator's pass that scores every prefix for the rewards (about two thirds of a
        step; its training pass stays float32): ``"float32"``, ``"bfloat16"`` or ``"auto"`` (default: bfloat16
        where the device runs it natively, CUDA GPUs with bfloat16 and CPUs with AMX tiles, for the built-in
        discriminator; else float32).
        See :func:`reward_dtype` for what was measured.
    device:
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a ``torch.device``: where the policy and the discriminator run.
    rollouts:
        How the prefixes ``x_0 .. x_L`` are made: ``"per_image"`` (numpy / OpenCV, one sequence at a time, on the
        CPU), ``"batched"`` (all sequences of a step in one call of
        :func:`~learned_augment.ops.apply_sequence_batch`, on ``device``; needs images and a batched form for every
        TF) or ``"auto"`` (default): batched on an accelerator when every TF has a batched form, per image
        otherwise (on the CPU the per-image path is the faster one). Both make the fused images the transform
        makes, up to resampling round-off; see :func:`~learned_augment.fit.rollout.batch_prefixes` for how their
        random draws differ.
    seed:
        Makes the fit reproducible: same seed, data and device give the same policy. An integer in [0, 2**64).
    checkpoint:
        Path of a checkpoint file, written atomically every ``checkpoint_every`` steps and at the end.
    resume:
        Continue from ``checkpoint`` if it exists (the result equals an uninterrupted fit).
    progress:
        Show a progress bar with the losses.
    callbacks:
        Called as ``cb(step, metrics, policy)`` after every step.
    limit:
        Use at most this many items of ``data``: the first ones.
    subset:
        Fit on a random subset of this many items (drawn from ``seed``; all of them where ``data`` holds fewer).
        The length of the fit (``epochs``) counts passes over the subset.
    image_size:
        Resize every image to this size (an int or ``(height, width)``) as it is read: a folder of photos of many
        sizes needs it (images of one size need nothing), stretched to it without keeping their aspect ratio
        (area interpolation when both sides shrink, else bilinear). The transform applies the policy at any size;
        it warns once (:class:`~learned_augment.PolicyMismatchWarning`) where a size is far from the fitted one.
    distributed:
        ``True``: a data-parallel fit over the processes of ``torch.distributed``'s default group (launch with
        ``torchrun``; gloo on CPUs, NCCL on GPUs with ``device=f"cuda:{local_rank}"``), called on every rank with
        the same data and arguments (checked). ``batch_size`` is the global batch, split evenly across processes;
        every process returns the same policy; only rank 0 writes ``checkpoint`` and shows progress;
        ``callbacks`` run on every rank. A resumed fit may use another number of processes. Off by default: a
        fit inside a distributed training script that runs on rank 0 only must not wait for the others. See
        :mod:`learned_augment.fit.distributed` for how far a fit on ``W`` processes equals a single-process one.

    Returns
    -------
    Policy
        The fitted policy, in eval mode, with ``history`` (``d_loss``, ``g_loss``, ``reward``, ``diversity``,
        ``rg_ratio`` measured at steps ``rg_step``) and ``provenance``.

    Raises
    ------
    TypeError, ValueError
        A setting of the wrong kind or out of range (``seed``, ``device``, sizes, rates), in one line naming it,
        before any data is read (:class:`~learned_augment.UnknownNameError`, a ``ValueError``, for an unknown TF or
        TF set).
    FloatingPointError
        A loss became NaN or infinite.
    """
    t_start = time.perf_counter()
    tfset = get_tfset(tfs if not isinstance(tfs, (list, tuple)) else list(tfs))
    # Every setting is checked before the data is read: a mistake costs no time and names its argument.
    seq_len = check_int(seq_len, "seq_len", 1)
    batch_size = check_int(batch_size, "batch_size", 1)
    n_seqs = check_int(n_seqs, "n_seqs", 1)
    hidden = check_int(hidden, "hidden", 1)
    d_width = check_int(d_width, "d_width", 1)
    eval_every = check_int(eval_every, "eval_every", 0)
    checkpoint_every = check_int(checkpoint_every, "checkpoint_every", 1)
    min_steps = check_int(min_steps, "min_steps", 1)
    steps = None if steps is None else check_int(steps, "steps", 1)
    limit = None if limit is None else check_int(limit, "limit", 1)
    subset = None if subset is None else check_int(subset, "subset", 1)
    image_size = check_size(image_size)
    # The checked values are the ones used: SGD accepts lr=nan, and a numpy scalar would pass; either would only
    # surface at the first checkpoint, as a JSON error about the config.
    epochs = check_number(epochs, "epochs", positive=True)
    d_lr, g_lr = check_number(d_lr, "d_lr"), check_number(g_lr, "g_lr")
    diversity, gamma = check_number(diversity, "diversity"), check_number(gamma, "gamma")
    entropy = check_number(entropy, "entropy")
    seed = check_int(seed, "seed", 0, MAX_SEED)
    dev = check_device(device)
    if policy_kind(model) == "uniform":
        raise ValueError("model='uniform' has nothing to fit: use UniformPolicy(tfs, seq_len) as it is")
    if g_optimizer not in ("adam", "sgd"):
        raise ValueError(f"g_optimizer must be 'adam' or 'sgd', got {g_optimizer!r}")
    callback_list = list(callbacks)
    if not all(callable(cb) for cb in callback_list):
        raise TypeError(f"callbacks must be functions cb(step, metrics, policy), got {callbacks!r}")
    is_image = _is_image_data(tfset) and collate is None
    dtype = reward_dtype(reward_precision, dev, builtin_discriminator=discriminator is None)
    rollout_mode = resolve_rollouts(rollouts, dev, tfset, is_image)
    if is_image:
        items = as_images(data, limit=limit, image_size=image_size, subset=subset, seed=seed)
        collate_fn: Callable[[list[Any]], torch.Tensor] = lambda xs: _images_to_tensor(np.stack(xs))
        data_fp = fingerprint(items)
    else:
        if discriminator is None or collate is None:
            raise ValueError("non-image data needs both a discriminator and a collate function")
        items = list(data)[:limit]  # type: ignore[assignment]
        if not items:
            raise ValueError("no data given")
        collate_fn = collate
        if subset is not None:
            items = [items[i] for i in random_subset(len(items), subset, seed)]  # type: ignore[assignment]
        data_fp = f"n={len(items)}"
    n_items = len(items)
    per_epoch = steps_per_epoch(n_items, batch_size)
    batch_size = min(batch_size, n_items)
    total_steps = fit_length(n_items, batch_size, epochs, steps, min_steps)
    group = FitGroup(distributed)
    group.check_batch(batch_size, n_items)
    mine = group.local(batch_size)  # this rank's item positions in each batch
    my_seqs = group.local(batch_size * n_seqs)  # and its sequences (sequence j rolls out item j % batch_size)

    # The fit seeds a fork of the global generators: the caller's are left as they were, so a study that builds
    # its end model after a fit still gets its own seed's weights and shuffles.
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        # Only the generators the fork restores: torch.manual_seed would also reset every other GPU's.
        torch.default_generator.manual_seed(seed)
        if dev.type == "cuda":
            with torch.cuda.device(dev):
                torch.cuda.manual_seed(seed)
        policy = make_policy(model, tfset, seq_len, hidden=hidden).to(dev)
        built_disc = discriminator is None
        if discriminator is None:
            h, w, c = items.shape[1:]
            discriminator = DCGANDiscriminator(c, (h, w), width=d_width)
        disc = discriminator.to(dev)
        opt_d = torch.optim.Adam(disc.parameters(), lr=d_lr, betas=(0.5, 0.999))
        if g_optimizer == "adam":
            opt_g: torch.optim.Optimizer = torch.optim.Adam(policy.parameters(), lr=g_lr)
        else:
            opt_g = torch.optim.SGD(policy.parameters(), lr=g_lr)

        config = {
            "model": policy.model_name,
            "tfs": tfset.ids,
            "seq_len": seq_len,
            "batch_size": batch_size,
            "n_seqs": n_seqs,
            "d_lr": d_lr,
            "g_lr": g_lr,
            "g_optimizer": g_optimizer,
            "diversity": diversity,
            "gamma": gamma,
            "entropy": entropy,
            "hidden": hidden,
            "d_width": d_width,
            "jitter": jitter,
            "reward_precision": reward_precision,
            "rollouts": rollouts,
            "seed": seed,
            "subset": subset,
            "total_steps": total_steps,
            "data": data_fp,
        }
        # Before any collective that would hang on ranks that disagree.
        group.check_same(config)
        group.broadcast(policy)
        run = _Run(
            policy=policy,
            disc=disc,
            # DistributedDataParallel over several processes (it copies rank 0's discriminator weights to the others).
            disc_train=group.wrap(disc, dev, sync_batch_norm=built_disc),
            opt_d=opt_d,
            opt_g=opt_g,
            group=group,
            items=items,
            tfset=tfset,
            collate=collate_fn,
            rollout=image_prefixes if is_image else custom_prefixes,
            prefix_set=padded_tfset(tfset) if rollout_mode == "batched" else None,
            is_image=is_image,
            config=config,
            device=dev,
            reward_dtype=dtype,
            mine=mine,
            my_seqs=my_seqs,
            per_epoch=per_epoch,
            n_items=n_items,
            jitter=jitter and is_image,
            eval_every=eval_every,
            callbacks=callback_list,
        )
        if checkpoint is not None and resume and Path(checkpoint).exists():
            run.start, run.history, run.elapsed_before = _load_checkpoint(
                checkpoint, config, policy, disc, opt_d, opt_g
            )
        run.train(checkpoint, checkpoint_every, progress, t_start)

        # The loss checks above see each step's losses before its update; an update that made the weights NaN at the
        # last step would otherwise be returned as a policy that samples one TF forever.
        _check_finite({"policy": policy}, f"fit_policy's last update (step {total_steps - 1}) made")
        policy.eval()
        policy.history = run.history
        policy.provenance = {
            "library_version": __version__,
            "data_fingerprint": data_fp,
            "n_items": n_items,
            # What the transform checks images against (channels, size): see PolicyMismatchWarning.
            **({"image_shape": [int(v) for v in items.shape[1:]]} if is_image else {}),
            "steps": total_steps,
            "wall_time_s": round(run.elapsed_before + time.perf_counter() - t_start, 2),
            "device": str(dev),
            "processes": group.world,
            "reward_dtype": str(dtype).removeprefix("torch."),
            "rollouts": rollout_mode,
            "torch": torch.__version__,
            "fit_args": {k: v for k, v in config.items() if k not in ("tfs", "data")},
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        return policy.cpu()


def discounted_returns(cost: torch.Tensor, gamma: float) -> torch.Tensor:
    """``(n, L)`` returns of ``(n, L+1)`` per-prefix costs: step ``t``'s cost change plus the later ones, each
    discounted by ``gamma`` per step (the policy-gradient targets before the batch-mean baseline)."""
    deltas = cost[:, 1:] - cost[:, :-1]
    returns = torch.zeros_like(deltas)
    acc = torch.zeros(deltas.shape[0], device=deltas.device, dtype=deltas.dtype)
    for t in range(deltas.shape[1] - 1, -1, -1):
        acc = deltas[:, t] + gamma * acc
        returns[:, t] = acc
    return returns


@dataclass
class _Run:
    """One fit's state and its steps: rollouts, the discriminator step, the advantages, the policy step and the
    checkpoint, each a method (the R/G evaluation is :func:`_rg_ratio`), as ``refine/fit.py`` keeps its own."""

    policy: Policy
    disc: nn.Module
    disc_train: nn.Module
    opt_d: torch.optim.Optimizer
    opt_g: torch.optim.Optimizer
    group: FitGroup
    items: Any
    tfset: TFSet
    collate: Callable[[list[Any]], torch.Tensor]
    rollout: Callable[..., list[Any]]
    prefix_set: tuple[TFSet, int] | None
    """The TF set padded with ``identity`` and its index, when the rollouts run batched on the device."""
    is_image: bool
    config: dict[str, Any]
    device: torch.device
    reward_dtype: torch.dtype
    mine: np.ndarray
    my_seqs: np.ndarray
    per_epoch: int
    n_items: int
    jitter: bool
    eval_every: int
    callbacks: list[Callback]
    start: int = 0
    elapsed_before: float = 0.0
    history: dict[str, list[float]] = field(
        default_factory=lambda: {k: [] for k in ("d_loss", "g_loss", "reward", "diversity", "rg_ratio", "rg_step")}
    )

    def train(self, checkpoint: str | Path | None, checkpoint_every: int, progress: bool, t_start: float) -> None:
        total = self.config["total_steps"]
        bar = None
        if progress and self.group.is_main:
            from tqdm.auto import tqdm

            bar = tqdm(
                total=total, initial=self.start, desc=f"fit {self.policy.model_name}", unit="step", dynamic_ncols=True
            )
        # The rollouts call OpenCV on one small image at a time: its thread pool gains nothing there and fights
        # torch's for the cores (a 5-step CLI fit: 17.6 s with both pools, 4.6 s with one thread each on 2 cores).
        opencv_threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            for step in range(self.start, total):
                metrics = self.step(step)
                for cb in self.callbacks:
                    cb(step, metrics, self.policy)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(
                        d=f"{metrics['d_loss']:.3f}", g=f"{metrics['g_loss']:.3f}", div=f"{metrics['diversity']:.4f}"
                    )
                done = step + 1
                if checkpoint is not None and (done % checkpoint_every == 0 or done == total):
                    self.checkpoint(checkpoint, done, step, t_start)
        finally:
            cv2.setNumThreads(opencv_threads)
            if bar is not None:
                bar.close()

    def step(self, step: int) -> dict[str, float]:
        """One step: rollouts, the discriminator step, the rewards and the policy step; returns the metrics."""
        cfg = self.config
        batch_size, seed = cfg["batch_size"], cfg["seed"]
        epoch, within = divmod(step, self.per_epoch)
        perm = np.random.default_rng(_step_seed(seed, epoch, 0)).permutation(self.n_items)
        batch = perm[within * batch_size : (within + 1) * batch_size]
        idx = batch[self.mine]
        ids, stacked, real = self.rollouts(step, batch, idx)
        d_loss = self.discriminator_step(real, stacked[-1, : len(idx)])
        adv, cost, dist = self.advantages(stacked, real, len(idx))
        g_loss_pg = self.policy_step(ids, adv)
        diversity = cfg["diversity"]
        # Means over the local rows, then over ranks (equal shares: the global means).
        local = torch.stack(
            [
                d_loss.detach(),
                cost[:, -1].mean() - (diversity / (dist[:, -1] + NO_OP_FLOOR)).mean(),
                -(cost[:, -1] - cost[:, 0]).mean(),
                dist[:, -1].mean(),
                g_loss_pg.detach(),
            ]
        ).double()
        d_loss_v, g_loss, reward, diversity_v, pg_v = (float(v) for v in self.group.mean(local))
        metrics = {"d_loss": d_loss_v, "g_loss": g_loss, "reward": reward, "diversity": diversity_v}
        if not all(math.isfinite(metrics[k]) for k in ("d_loss", "g_loss", "reward")) or not math.isfinite(pg_v):
            raise FloatingPointError(
                f"fit_policy diverged at step {step} (d_loss={metrics['d_loss']}, g_loss={metrics['g_loss']}); "
                "nothing was saved. Lower d_lr/g_lr or check the data for NaN values."
            )
        for k, v in metrics.items():
            self.history[k].append(v)
        if self.eval_every and (step % self.eval_every == 0 or step == cfg["total_steps"] - 1):
            metrics["rg_ratio"] = _rg_ratio(
                self.disc,
                self.items,
                idx,
                self.tfset,
                cfg["seq_len"],
                self.collate,
                self.rollout,
                seed,
                step,
                g_loss,
                self.device,
                self.jitter,
                self.group,
            )
            self.history["rg_ratio"].append(metrics["rg_ratio"])
            self.history["rg_step"].append(float(step))
        return metrics

    def rollouts(
        self, step: int, batch: np.ndarray, idx: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """This rank's sampled TF ids, their prefixes ``(L+1, n, ...)`` and the real items, on the device."""
        cfg = self.config
        seed, batch_size = cfg["seed"], cfg["batch_size"]
        gen = _torch_gen(seed, step, 2)
        self.policy.train()
        # Every rank draws the whole step's sequences from the same generator and keeps its own rows.
        ids = self.policy.sample(batch_size * cfg["n_seqs"], generator=gen)[torch.from_numpy(self.my_seqs)]
        real = self.collate([self.items[i] for i in idx])
        if self.prefix_set is not None:
            stacked = self._batched_prefixes(step, batch, ids)
        else:
            stacked = self._per_item_prefixes(step, batch, ids)
        if self.jitter:
            group = self.group
            jgen = _torch_gen(seed, step, 4 if not group.active else 4 + 16 * (group.rank + 1))
            real = subpixel_jitter(real, jgen)
            stacked = subpixel_jitter(stacked.flatten(0, 1), jgen).view(stacked.shape)
        return ids, stacked.to(self.device), real.to(self.device)

    def _per_item_prefixes(self, step: int, batch: np.ndarray, ids: torch.Tensor) -> torch.Tensor:
        """``(L+1, n, ...)`` prefixes, one sequence at a time through ``self.rollout`` (on the CPU)."""
        cfg = self.config
        seed, seq_len, batch_size = cfg["seed"], cfg["seq_len"], cfg["batch_size"]
        prefixes = []
        for j, row in zip(self.my_seqs, ids.numpy()):
            entries = [self.tfset[int(k)] for k in row]
            # Per sequence, so a sequence rolls out the same on whichever rank holds it.
            tf_rng = np.random.default_rng(_step_seed(seed, step, 1) + [int(j)])
            prefixes.append(self.rollout(self.items[batch[j % batch_size]], entries, tf_rng))
        # (L+1, n, ...) stacked per time step; the first len(idx) sequences are one per local item
        if self.is_image:
            # All prefixes as one uint8 array, converted to float in one pass (per-prefix collates made 11 strided
            # copies and 22 arithmetic passes); (L+1) * n images in time-major order.
            flat_u8 = np.stack([p[t] for t in range(seq_len + 1) for p in prefixes])
            return _images_to_tensor(flat_u8).unflatten(0, (seq_len + 1, len(prefixes)))
        return _stack_prefixes([self.collate([p[t] for p in prefixes]) for t in range(seq_len + 1)])

    def _batched_prefixes(self, step: int, batch: np.ndarray, ids: torch.Tensor) -> torch.Tensor:
        """``(L+1, n, C, H, W)`` prefixes of all sequences at once, on the device (:func:`batch_prefixes`)."""
        assert self.prefix_set is not None  # set whenever the rollouts run batched
        tfset, pad = self.prefix_set
        x0 = self.items[batch[self.my_seqs % self.config["batch_size"]]]
        images = torch.from_numpy(x0).to(self.device).permute(0, 3, 1, 2)
        # One generator for all of this rank's sequences (per rank, as the R/G ratio's draws): random TFs' draws
        # depend on how the sequences are split across processes, unlike the per-image path's.
        rank = [self.group.rank] if self.group.active else []
        gen = _torch_gen(self.config["seed"], step, 1, extra=rank, device=self.device)
        u8 = batch_prefixes(images, ids.numpy(), tfset, pad, gen)
        return u8.float() / 127.5 - 1.0

    def discriminator_step(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """One update of D on real items (label 1) against generated ones (label 0); returns its loss."""
        dev, n = self.device, len(real)
        bce = F.binary_cross_entropy_with_logits
        self.disc.train()
        # Real and generated items go through D in ONE batch: with separate batches, batch norm normalises each with
        # its own statistics and erases whatever all generated items share (on CIFAR-10, a policy that brightened
        # every image until 40-60% of its pixels were white went unpunished).
        both = _logits(self.disc_train, torch.cat([real, fake]))
        d_loss = 0.5 * (bce(both[:n], torch.ones(n, device=dev)) + bce(both[n:], torch.zeros(n, device=dev)))
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        self.group.average_buffers(self.disc)
        return d_loss

    @torch.no_grad()
    def advantages(
        self, stacked: torch.Tensor, real: torch.Tensor, n_local: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-step advantages ``(n, L)``, the per-prefix costs ``(n, L+1)`` and changes ``d(x_0, x_t)`` ``(n, L)``."""
        cfg = self.config
        seq_len, n_seqs, gamma, diversity = cfg["seq_len"], cfg["n_seqs"], cfg["gamma"], cfg["diversity"]
        disc, dev = self.disc, self.device
        disc.eval()
        with _reward_autocast(dev, self.reward_dtype):
            if self.jitter:  # each copy of x_0 got its own sub-pixel shift
                logits = _logits(disc, stacked.flatten(0, 1)).view(seq_len + 1, -1).T  # (n, L+1)
            else:
                # x_0 of sequence j is item j % n_local: D (per item in eval mode) scores each item once, not n_seqs
                # times.
                first = _logits(disc, stacked[0, :n_local]).repeat(n_seqs)
                rest = _logits(disc, stacked[1:].flatten(0, 1)).view(seq_len, -1)
                logits = torch.cat([first[None], rest]).T  # (n, L+1)
        logits = logits.float()
        cost = F.softplus(-logits)  # -log D(x_t)
        # float() first: a collate may return integer ids (for an nn.Embedding), which have no mean and, as uint8,
        # would wrap around when subtracted.
        scale = _variance(real, self.group).clamp_min(1e-12)
        dist = (stacked[1:].float() - stacked[:1].float()).pow(2).flatten(2).mean(2).T / scale
        cost[:, 1:] = cost[:, 1:] + diversity / (dist + NO_OP_FLOOR)
        returns = discounted_returns(cost, gamma)
        baseline = self.group.sum(returns.sum(dim=0, keepdim=True)) / (cfg["batch_size"] * n_seqs)
        return returns - baseline, cost, dist

    def policy_step(self, ids: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
        """One REINFORCE update of the policy; returns its loss."""
        logp, ent = self.policy.step_log_probs_and_entropy(ids.to(self.device))
        loss = (logp * adv).sum(dim=1).mean() - self.config["entropy"] * ent.sum(dim=1).mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.group.average_gradients(self.policy)
        self.opt_g.step()
        return loss

    def checkpoint(self, path: str | Path, done: int, step: int, t_start: float) -> None:
        """Write the checkpoint on rank 0, every rank agreeing that it was written."""
        # An update can turn the weights NaN after its step's losses were checked: never write that as a checkpoint
        # (resuming from it would fail at once, and it would have replaced the last good one). Every rank checks
        # (they hold the same weights), so all raise together.
        _check_finite({"policy": self.policy, "discriminator": self.disc}, f"fit_policy's update at step {step} made")
        failure: Exception | None = None
        if self.group.is_main:
            elapsed = self.elapsed_before + time.perf_counter() - t_start
            try:
                _save_checkpoint(
                    path, self.config, done, self.history, elapsed, self.policy, self.disc, self.opt_d, self.opt_g
                )
            except Exception as exc:  # re-raised below, after telling the other ranks not to wait
                failure = exc
        # A flag all ranks agree on, not a bare barrier: if rank 0 cannot write, all stop together.
        if not self.group.all_ok(failure is None, self.device):
            if failure is not None:
                raise failure
            raise RuntimeError(f"fit_policy: rank 0 could not write the checkpoint {path} (see its log)")


@torch.no_grad()
def _rg_ratio(disc, items, idx, tfset, seq_len, collate_fn, rollout, seed, step, g_loss, dev, jitter, group) -> float:
    """TANDA's model selection: D's loss on uniformly random sequences over its loss on generated ones."""
    stream = _step_seed(seed, step, 3) + ([group.rank] if group.active else [])
    rng = np.random.default_rng(stream)
    finals = []
    for i in idx:
        entries = [tfset[int(k)] for k in rng.integers(0, len(tfset), seq_len)]
        finals.append(rollout(items[i], entries, rng)[-1])
    x = collate_fn(finals)
    if jitter:
        x = subpixel_jitter(x, _torch_gen(seed, step, 5 if not group.active else 5 + 16 * (group.rank + 1)))
    r_loss = float(group.mean(F.softplus(-_logits(disc, x.to(dev))).mean().double()))
    return r_loss / max(g_loss, 1e-8)


def _variance(real: torch.Tensor, group: FitGroup) -> torch.Tensor:
    """Variance of every value of the real batch (all ranks' shares together)."""
    x = real.float()
    if not group.active:
        return x.var(unbiased=False)
    x64 = x.double()
    moments = group.sum(
        torch.stack([x64.sum(), x64.pow(2).sum(), torch.tensor(float(x.numel()), dtype=torch.float64, device=x.device)])
    )
    mean = moments[0] / moments[2]
    return (moments[1] / moments[2] - mean * mean).float()


def _check_finite(modules: dict[str, nn.Module], what: str) -> None:
    for name, module in modules.items():
        for k, v in module.state_dict().items():
            if v.is_floating_point() and not torch.isfinite(v).all():
                raise FloatingPointError(
                    f"{what} the {name} weight {k!r} NaN or infinite; it was not saved (a checkpoint, if any, "
                    "holds the last good state). Lower d_lr/g_lr or check the data for NaN values."
                )


def _save_checkpoint(path, config, step, history, elapsed, policy, disc, opt_d, opt_g) -> None:
    tensors: dict[str, torch.Tensor] = {}
    for name, module in (("policy", policy), ("disc", disc)):
        for k, v in module.state_dict().items():
            tensors[f"{name}/{k}"] = v.detach().cpu().clone()
    opt_state = {
        "opt_d": flatten_state(opt_d.state_dict(), "opt_d", tensors),
        "opt_g": flatten_state(opt_g.state_dict(), "opt_g", tensors),
    }
    meta = {"config": config, "step": step, "history": history, "elapsed_s": elapsed, "optim": opt_state}
    save_artifact(path, tensors, CHECKPOINT_KIND, meta)


def _load_checkpoint(path, config, policy, disc, opt_d, opt_g) -> tuple[int, dict[str, list[float]], float]:
    tensors, meta = load_artifact(path, kind=CHECKPOINT_KIND)
    saved = meta.get("config")
    if isinstance(saved, dict):  # written before fit_policy had ``rollouts`` or ``subset``
        saved = {"rollouts": "auto", "subset": None, **saved}
    if saved != config:
        diff = sorted(k for k in set(config) | set(saved or {}) if (saved or {}).get(k) != config.get(k))
        raise ArtifactError(
            f"checkpoint {path} was written by a fit with different settings ({', '.join(diff)}); "
            "pass resume=False to start over or use another checkpoint path"
        )
    for name, module in (("policy", policy), ("disc", disc)):
        sd = {k[len(name) + 1 :]: v for k, v in tensors.items() if k.startswith(name + "/")}
        try:
            module.load_state_dict(sd, strict=True)
        except RuntimeError as exc:
            raise ArtifactError(f"checkpoint {path}: {name} weights do not fit ({exc})") from None
    try:
        optim = meta.get("optim", {})
        for opt_name, opt in (("opt_d", opt_d), ("opt_g", opt_g)):
            opt.load_state_dict(unflatten_state(optim[opt_name], tensors))
            check_optimizer_state(opt, opt_name + "/state/{index}/{key}")
        history = {k: list(v) for k, v in meta["history"].items()}
        step = int(meta["step"])
        if not 0 <= step <= config["total_steps"]:
            raise ValueError(f"step {step} is outside this fit")
        return step, history, float(meta.get("elapsed_s", 0.0))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ArtifactError(f"checkpoint {path}: cannot resume from it ({type(exc).__name__}: {exc})") from None


def load_checkpoint_policy(path: str | Path) -> Policy:
    """The policy stored in a fit checkpoint (e.g. to inspect a fit that is still running)."""
    tensors, meta = load_artifact(path, kind=CHECKPOINT_KIND)
    try:
        cfg = meta["config"]
        hp = {"hidden": cfg["hidden"]} if cfg["model"] in ("lstm", "gru") else {}
        state = {"tfs": cfg["tfs"], "model": cfg["model"], "seq_len": cfg["seq_len"], "hparams": hp}
    except (KeyError, TypeError) as exc:
        raise ArtifactError(f"checkpoint {path}: incomplete fit config ({type(exc).__name__}: {exc})") from None
    pol = {k[len("policy/") :]: v for k, v in tensors.items() if k.startswith("policy/")}
    return policy_from_state(state, pol, str(path))
