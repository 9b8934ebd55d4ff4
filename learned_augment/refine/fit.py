"""``fit_refiner``: progressive CycleGAN training (MR-GAN) of a synthetic-to-real refiner.

Stage 1 is a CycleGAN (Zhu et al., 2017) between the synthetic images X and the real images Y: generators
G: X -> Y and F: Y -> X, PatchGAN discriminators on each side, least-squares adversarial losses, L1 cycle losses
weighted by ``lambda_cycle``, L1 identity losses weighted by ``lambda_cycle * lambda_identity``, a pool of past
fakes for the discriminators, Adam, and a learning rate held for the first half of the steps then decayed linearly
toward zero. Stage k >= 2 continues from stage k-1's networks on the stage-(k-1) refined synthetic images
X_{k-1} = G_{k-1}(X_{k-2}) against the same real images: its G refines the already refined synthetic images further
and its F, kept as the refiner's ``real_to_shared`` direction, maps real images into the refined-synthetic domain,
so both sets move toward each other (``stage2="cycle"``; measured on MNIST they swap sides rather than meet). The
default ``stage2="shared"`` drops the cycle from stage 2 on: G and F map into one shared domain, judged by one
discriminator that tries to tell G's outputs from F's and that both try to leave undecided (MR-GAN's stage 2).
``lambda_self_reg`` adds SimGAN's L1 term between a refined image and its input, for G in every stage and, from
stage 2, for F too: both refine labeled images.

With ``synthetic_labels`` a small classifier is first trained on the synthetic images and their labels, then frozen
(:mod:`.semantic`). ``lambda_semantic`` weighs CyCADA's semantic-consistency loss: cross-entropy of that classifier
on G's refined images against the synthetic labels and, from stage 2, on F's real-to-shared images against the
classifier's own prediction on the real input (no real label is used). The same classifier measures the fit every
``eval_every`` steps on fixed subsets of both domains (:data:`.semantic.QUALITY_NAMES`), printed with the progress
bar and kept in the refiner's ``quality``.

Everything random has its own generator: weights from ``seed`` and the stage, the data order of each epoch from
``seed``, stage, domain and epoch (so it needs no saved state), and the image pools from generators whose state goes
into the checkpoint. With ``checkpoint=`` the full training state (weights, Adam moments, pools, RNG states,
history) is written atomically every ``checkpoint_every`` steps; a killed fit restarted with the same arguments
resumes and ends with the same weights, bit for bit on the same device, as an uninterrupted one.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as fnn
from torch import nn
from tqdm.auto import tqdm

from .._version import __version__
from ..arguments import MAX_SEED, check_device, check_int, check_number
from ..data import as_images, fingerprint
from ..io import ArtifactError, check_optimizer_state, load_artifact, save_artifact
from .networks import (
    MAX_BLOCKS,
    MAX_LAYERS,
    MAX_WIDTH,
    DiscriminatorConfig,
    GeneratorConfig,
    PatchDiscriminator,
    ResnetGenerator,
    check_image_size,
    init_weights,
    patch_layers_for,
)
from .refiner import MAX_STAGES, Refiner
from .semantic import QUALITY_NAMES, LabelClassifier, frechet_distance, freeze, to_channels, train_classifier

CHECKPOINT_KIND = "refiner_checkpoint"
LOSS_NAMES: tuple[str, ...] = (
    "adv_syn2real",
    "adv_real2syn",
    "cycle_syn",
    "cycle_real",
    "identity_syn2real",
    "identity_real2syn",
    "self_reg",
    "semantic",
    "G_total",
    "D_real",
    "D_syn",
    "lr",
)
_NETS = ("G", "F", "D_real", "D_syn")
STAGE2_MODES = ("cycle", "shared")
_INIT, _POOL, _ORDER, _CLASSIFIER, _EVAL = 0, 1, 2, 3, 4
_REFINE_CHUNK = 256


@dataclass
class StepInfo:
    """What a callback sees after every training step.

    Attributes
    ----------
    stage:
        1-based stage.
    step:
        Steps completed in this stage (1-based).
    steps:
        Steps this stage runs in total.
    losses:
        This step's values, keyed by :data:`LOSS_NAMES`.
    networks:
        The stage's ``G`` (synthetic -> real), ``F`` (real -> synthetic), ``D_real`` and ``D_syn``, live: read them,
        do not step them.
    """

    stage: int
    step: int
    steps: int
    losses: dict[str, float]
    networks: dict[str, nn.Module]


Callback = Callable[[StepInfo], None]


def _derive_seed(*keys: int) -> int:
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1, np.uint64)[0] >> 1)


class ImagePool:
    """The buffer of past generated images that the discriminator also sees (Shrivastava et al., 2017).

    Until ``size`` images are stored every query image is kept and returned; after that each query image is, with
    probability 1/2, swapped for a random stored one (which is returned in its place). Judging a mix of past fakes
    keeps the discriminator from forgetting what the generator produced a while ago.
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.count = 0
        self.images: torch.Tensor | None = None
        self.generator = torch.Generator().manual_seed(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        if self.images is None:
            self.images = images.new_zeros((self.size, *images.shape[1:]))
        out = []
        for img in images:
            if self.count < self.size:
                self.images[self.count] = img
                self.count += 1
                out.append(img)
            elif torch.rand(1, generator=self.generator).item() > 0.5:
                i = int(torch.randint(0, self.size, (1,), generator=self.generator).item())
                out.append(self.images[i].clone())
                self.images[i] = img
            else:
                out.append(img)
        return torch.stack(out)

    def state(self, prefix: str) -> tuple[dict[str, torch.Tensor], int]:
        tensors = {f"{prefix}.rng": self.generator.get_state()}
        if self.images is not None and self.count:
            tensors[f"{prefix}.images"] = self.images[: self.count]
        return tensors, self.count

    def restore(self, prefix: str, tensors: dict[str, torch.Tensor], count: int, device: torch.device) -> None:
        self.generator.set_state(tensors[f"{prefix}.rng"])
        self.count = count
        if count:
            saved = tensors[f"{prefix}.images"]
            if len(saved) != count or count > self.size:
                raise ValueError(f"{prefix} holds {len(saved)} images; expected {count} (pool size {self.size})")
            self.images = saved.new_zeros((self.size, *saved.shape[1:])).to(device)
            self.images[:count] = saved.to(device)


class _Stage:
    """One stage's networks, optimisers and pools."""

    def __init__(self, stage: int, c_syn: int, c_real: int, cfg: dict[str, Any], device: torch.device) -> None:
        self.stage = stage
        init = torch.Generator().manual_seed(_derive_seed(cfg["seed"], stage, _INIT))
        gen = {"ngf": cfg["ngf"], "n_blocks": cfg["n_blocks"]}
        disc = {"ndf": cfg["ndf"], "n_layers": cfg["disc_layers"]}
        # Built on the meta device and then given storage: torch's default initialisation would draw from (and
        # advance) the global RNG, and init_weights overwrites every parameter anyway.
        with torch.device("meta"):
            self.nets: dict[str, nn.Module] = {
                "G": ResnetGenerator(GeneratorConfig(in_channels=c_syn, out_channels=c_real, **gen)),
                "F": ResnetGenerator(GeneratorConfig(in_channels=c_real, out_channels=c_syn, **gen)),
                "D_real": PatchDiscriminator(DiscriminatorConfig(in_channels=c_real, **disc)),
                "D_syn": PatchDiscriminator(DiscriminatorConfig(in_channels=c_syn, **disc)),
            }
        for name in _NETS:
            net = self.nets[name].to_empty(device="cpu")
            init_weights(net, init)
            self.nets[name] = net.to(device).train()
        betas = (float(cfg["betas"][0]), float(cfg["betas"][1]))
        g_params = itertools.chain(self.nets["G"].parameters(), self.nets["F"].parameters())
        d_params = itertools.chain(self.nets["D_real"].parameters(), self.nets["D_syn"].parameters())
        self.opt = {
            "opt_g": torch.optim.Adam(g_params, lr=cfg["lr"], betas=betas),
            "opt_d": torch.optim.Adam(d_params, lr=cfg["lr"], betas=betas),
        }
        self.pools = {
            "pool_real": ImagePool(cfg["pool_size"], _derive_seed(cfg["seed"], stage, _POOL, 0)),
            "pool_syn": ImagePool(cfg["pool_size"], _derive_seed(cfg["seed"], stage, _POOL, 1)),
        }

    def continue_from(self, previous: _Stage) -> None:
        """Start from the previous stage's weights wherever the shapes agree (they differ only next to a channel
        count that changed: grey synthetic refined toward colour real images)."""
        for name in _NETS:
            own = self.nets[name].state_dict()
            prev = previous.nets[name].state_dict()
            own.update({k: v for k, v in prev.items() if k in own and own[k].shape == v.shape})
            self.nets[name].load_state_dict(own)

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        p = f"stage{self.stage}"
        tensors = {f"{p}.{n}.{k}": v for n in _NETS for k, v in self.nets[n].state_dict().items()}
        meta: dict[str, Any] = {"param_groups": {}, "pools": {}}
        for name, opt in self.opt.items():
            sd = opt.state_dict()
            for idx, st in sd["state"].items():
                tensors.update({f"{p}.{name}.{idx}.{k}": v for k, v in st.items()})
            meta["param_groups"][name] = sd["param_groups"]
        for name, pool in self.pools.items():
            t, count = pool.state(f"{p}.{name}")
            tensors.update(t)
            meta["pools"][name] = count
        return tensors, meta

    def restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any], device: torch.device) -> None:
        p = f"stage{self.stage}"
        for n in _NETS:
            keys = self.nets[n].state_dict()
            self.nets[n].load_state_dict({k: tensors[f"{p}.{n}.{k}"] for k in keys})
        for name, opt in self.opt.items():
            groups = meta["param_groups"][name]
            state: dict[int, dict[str, torch.Tensor]] = {}
            for key, value in tensors.items():
                if key.startswith(f"{p}.{name}."):
                    idx, field = key[len(p) + len(name) + 2 :].split(".", 1)
                    state.setdefault(int(idx), {})[field] = value
            for g in groups:
                g["betas"] = tuple(g["betas"])
            opt.load_state_dict({"state": state, "param_groups": groups})
            check_optimizer_state(opt, f"{p}.{name}.{{index}}.{{key}}")
        for name, pool in self.pools.items():
            pool.restore(f"{p}.{name}", tensors, int(meta["pools"][name]), device)


def fit_refiner(
    synthetic: Any,
    real: Any,
    stages: int = 2,
    *,
    steps: int | None = None,
    epochs: float | None = None,
    batch_size: int | None = None,
    lr: float = 2e-4,
    betas: tuple[float, float] = (0.5, 0.999),
    lambda_cycle: float = 10.0,
    lambda_identity: float = 0.5,
    lambda_self_reg: float = 0.0,
    stage2: str = "shared",
    synthetic_labels: Any = None,
    lambda_semantic: float | None = None,
    classifier_steps: int = 500,
    eval_every: int = 100,
    eval_images: int = 500,
    pool_size: int = 50,
    ngf: int | None = None,
    n_blocks: int | None = None,
    ndf: int | None = None,
    disc_layers: int | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
    progress: bool = True,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 500,
    resume: bool = True,
    callbacks: Sequence[Callback] | None = None,
) -> Refiner:
    """Fit a progressive CycleGAN refiner from synthetic toward real images (unpaired, labels unused).

    Parameters
    ----------
    synthetic, real:
        Images in any form :func:`learned_augment.data.as_images` reads (Dataset, iterable, ``(N, H, W[, C])``
        array, folder, ``.npz``). Both sets share ``H`` and ``W`` (multiples of 4); channel counts (1 or 3) may
        differ.
    stages:
        1 is plain CycleGAN; 2 is MR-GAN (see the module docstring); more stages repeat stage 2.
    steps, epochs:
        Length of each stage, as steps or as passes over the larger set (give at most one). Default: sized by the
        images, with ``batch_size``, ``ngf``, ``n_blocks`` and ``ndf`` (:func:`default_sizes`): for images up to 32
        px the settings the README's MNIST table measured (400 steps at batch 32, ``ngf`` 16, 3 blocks, ``ndf``
        32: about 5 minutes per stage on one CPU core), for larger ones CycleGAN's reference sizes (5 epochs at
        batch 16, ``ngf`` 32, 6 blocks, ``ndf`` 64).
    batch_size:
        Images from each domain per step (default: see ``steps``).
    lr, betas:
        Adam settings of every network (the CycleGAN reference values).
    lambda_cycle, lambda_identity, lambda_self_reg:
        Loss weights: cycle L1; identity L1 as a fraction of ``lambda_cycle`` (skipped where a generator changes
        the channel count); SimGAN's L1 between a refined image and its input (needs equal channel counts).
    stage2:
        What stages 2 and later learn. ``"shared"`` (default): no cycle; ``G`` (refined synthetic) and ``F`` (real)
        both map into one shared domain, pulled together by one discriminator that tries to tell ``G(x)`` from
        ``F(y)`` and that both aim to leave undecided (least-squares target 0.5), each kept near its input by an L1
        term of weight ``lambda_cycle * lambda_identity`` (or ``lambda_cycle`` when the identity weight is 0) and,
        with labels, by the semantic term. ``"cycle"``: a CycleGAN again, between the refined synthetic images and
        the real ones (its ``F`` maps real images toward the refined-synthetic side). Measured on MNIST with 150
        labels over 5 seeds (``examples/reproduce_mrgan.py``), stage 2 minus stage 1 on the validation split:
        +0.62 ± 0.49 points shared, -0.74 ± 0.50 cycle.
    synthetic_labels:
        ``(N,)`` integer class of each synthetic image (0..K-1). Enables the classifier behind ``lambda_semantic``
        and the quality signal; real labels are never needed.
    lambda_semantic:
        Weight of the semantic-consistency cross-entropy (needs ``synthetic_labels``). Default: 1.0 with labels
        (the weight the MNIST measurements in ``examples/reproduce_mrgan.py`` picked on a validation split), 0
        without.
    classifier_steps:
        Adam steps (batch 64) of the synthetic-label classifier, trained once before stage 1.
    eval_every, eval_images:
        Quality signal every ``eval_every`` steps (0: only) at the start and at the end of each stage, on
        ``eval_images`` images of each domain (needs ``synthetic_labels``).
    pool_size:
        Past fakes kept per discriminator (0 disables the pool).
    ngf, n_blocks:
        Generator width and residual blocks (default: see ``steps``).
    ndf, disc_layers:
        Discriminator width (default: see ``steps``) and stride-2 layers (default: the deepest that leaves a 4x4
        grid of patches).
    device:
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a ``torch.device``.
    seed:
        Makes the fit repeatable (bit for bit on CPU; CUDA kernels may differ in the last bits). An integer in
        [0, 2**64).
    progress:
        Show a tqdm bar with the current losses.
    checkpoint, checkpoint_every, resume:
        File for the training state, written atomically every ``checkpoint_every`` steps and at the end of every
        stage. With ``resume`` an existing checkpoint of the same fit (same data and settings) is continued; one
        from a different fit raises ``ValueError``. With ``resume=False`` it is overwritten.
    callbacks:
        Functions called with a :class:`StepInfo` after every step (for logging or early inspection).

    Returns
    -------
    Refiner
        On ``device``, with the per-stage loss ``history`` and the fit's ``provenance``.

    Raises
    ------
    TypeError, ValueError
        A setting of the wrong kind or out of range (``seed``, ``device``, sizes, rates), in one line naming it,
        before the images are read.
    FloatingPointError
        A loss became NaN or infinite; training stops before any update or checkpoint with the broken values.
    """
    # Every setting is checked before the images are read: a mistake costs no time and names its argument.
    seed = check_int(seed, "seed", 0, MAX_SEED)
    dev = check_device(device)
    stages = check_int(stages, "stages", 1, MAX_STAGES)
    checkpoint_every = check_int(checkpoint_every, "checkpoint_every", 1)
    # The checked values are the ones used: a numpy scalar would fail much later, in the checkpoint's JSON.
    lr = check_number(lr, "lr", positive=True)
    lambda_cycle = check_number(lambda_cycle, "lambda_cycle")
    lambda_identity = check_number(lambda_identity, "lambda_identity")
    lambda_self_reg = check_number(lambda_self_reg, "lambda_self_reg")
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"betas must be two numbers in [0, 1); got {betas!r}")
    b1, b2 = (check_number(b, "betas") for b in betas)
    if not (b1 < 1.0 and b2 < 1.0):
        raise ValueError(f"betas must be two numbers in [0, 1); got {betas!r}")
    betas = (b1, b2)
    if stage2 not in STAGE2_MODES:
        raise ValueError(f"stage2 must be one of {', '.join(map(repr, STAGE2_MODES))}; got {stage2!r}")
    pool_size = check_int(pool_size, "pool_size", 0)
    if lambda_semantic is not None:
        lambda_semantic = check_number(lambda_semantic, "lambda_semantic")
    classifier_steps = check_int(classifier_steps, "classifier_steps", 1)
    eval_every = check_int(eval_every, "eval_every", 0)
    eval_images = check_int(eval_images, "eval_images", 1)
    batch_size = None if batch_size is None else check_int(batch_size, "batch_size", 1)
    # None: sized by the images below.
    ngf = None if ngf is None else check_int(ngf, "ngf", 1, MAX_WIDTH)
    n_blocks = None if n_blocks is None else check_int(n_blocks, "n_blocks", 0, MAX_BLOCKS)
    ndf = None if ndf is None else check_int(ndf, "ndf", 1, MAX_WIDTH)
    disc_layers = None if disc_layers is None else check_int(disc_layers, "disc_layers", 1, MAX_LAYERS)
    if steps is not None and epochs is not None:
        raise ValueError("give steps or epochs, not both")
    if steps is not None:
        steps = check_int(steps, "steps", 1)
    if epochs is not None:
        epochs = check_number(epochs, "epochs", positive=True)
    callback_list = list(callbacks or ())
    if not all(callable(cb) for cb in callback_list):
        raise TypeError(f"callbacks must be functions cb(info), got {callbacks!r}")
    xs = _as_tensor(synthetic, "synthetic")
    ys = _as_tensor(real, "real")
    if xs.shape[2:] != ys.shape[2:]:
        raise ValueError(
            f"synthetic and real images must share one size; got {tuple(xs.shape[2:])} and {tuple(ys.shape[2:])}"
        )
    check_image_size(xs.shape[2], xs.shape[3])
    sized = default_sizes(xs.shape[2], xs.shape[3])
    batch_size = sized["batch_size"] if batch_size is None else batch_size
    ngf = sized["ngf"] if ngf is None else ngf
    n_blocks = sized["n_blocks"] if n_blocks is None else n_blocks
    ndf = sized["ndf"] if ndf is None else ndf
    if steps is None and epochs is None:
        steps, epochs = sized["steps"], sized["epochs"]
    c_syn, c_real = xs.shape[1], ys.shape[1]
    if lambda_semantic is None:
        lambda_semantic = 1.0 if synthetic_labels is not None else 0.0
    labels = _as_labels(synthetic_labels, len(xs)) if synthetic_labels is not None else None
    if lambda_semantic > 0 and labels is None:
        raise ValueError("lambda_semantic > 0 needs synthetic_labels (the class of every synthetic image)")
    if lambda_self_reg > 0 and c_syn != c_real:
        raise ValueError(
            f"lambda_self_reg compares a refined image with its input, so both need one channel count; "
            f"synthetic has {c_syn}, real has {c_real}"
        )
    per_stage = _stage_steps(steps, epochs, max(len(xs), len(ys)), batch_size)
    layers = disc_layers if disc_layers is not None else patch_layers_for(min(xs.shape[2], xs.shape[3]))
    cfg: dict[str, Any] = _jsonable(
        {
            "stages": stages,
            "steps_per_stage": per_stage,
            "batch_size": batch_size,
            "lr": lr,
            "betas": list(betas),
            "lambda_cycle": lambda_cycle,
            "lambda_identity": lambda_identity,
            "lambda_self_reg": lambda_self_reg,
            "pool_size": pool_size,
            "ngf": ngf,
            "n_blocks": n_blocks,
            "ndf": ndf,
            "disc_layers": layers,
            "seed": seed,
            "synthetic": {"n": len(xs), "shape": list(xs.shape[1:]), "fingerprint": fingerprint(xs.numpy())},
            "real": {"n": len(ys), "shape": list(ys.shape[1:]), "fingerprint": fingerprint(ys.numpy())},
        }
    )
    if stage2 != "cycle":
        # Only then: checkpoints of fits from before this option (whose stage 2 was the cycle) keep their config.
        cfg["stage2"] = stage2
    if labels is not None:
        # Only fits with labels carry these keys, so checkpoints of label-free fits stay what they were.
        cfg.update(
            lambda_semantic=float(lambda_semantic),
            classifier_steps=classifier_steps,
            eval_every=eval_every,
            eval_images=eval_images,
            synthetic_labels=fingerprint(labels.numpy()),
        )
    run = _Run(cfg, xs.to(dev), ys.to(dev), dev, progress, checkpoint, checkpoint_every, callback_list)
    run.labels = labels.to(dev) if labels is not None else None
    run.start(resume)
    return run.train()


class _Run:
    """The state of one ``fit_refiner`` call, so the loop, checkpointing and resuming share it."""

    def __init__(
        self,
        cfg: dict[str, Any],
        xs: torch.Tensor,
        ys: torch.Tensor,
        device: torch.device,
        progress: bool,
        checkpoint: str | os.PathLike[str] | None,
        checkpoint_every: int,
        callbacks: list[Callback],
    ) -> None:
        self.cfg = cfg
        self.xs, self.ys = xs, ys
        self.device = device
        self.progress = progress
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.checkpoint_every = checkpoint_every
        self.callbacks = callbacks
        self.finished: list[_Stage] = []
        self.current: _Stage | None = None
        self.step = 0
        self.history: dict[str, dict[str, list[float]]] = {}
        self.quality: dict[str, dict[str, list[float]]] = {}
        self.labels: torch.Tensor | None = None
        self.classifier: LabelClassifier | None = None
        self.elapsed = 0.0
        self._perms: dict[tuple[int, int, int], torch.Tensor] = {}

    def start(self, resume: bool) -> None:
        if self.checkpoint is None or not resume or not self.checkpoint.exists():
            return
        tensors, meta = load_artifact(self.checkpoint, kind=CHECKPOINT_KIND)
        saved = meta.get("fit")
        if saved != self.cfg:
            keys = sorted(k for k in set(self.cfg) | set(saved or {}) if (saved or {}).get(k) != self.cfg.get(k))
            raise ValueError(
                f"checkpoint {self.checkpoint} belongs to a different fit (differs in: {', '.join(keys)}); "
                "pass resume=False to start over, or another checkpoint path"
            )
        try:
            self._restore(tensors, meta)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ArtifactError(f"{self.checkpoint}: cannot resume from this checkpoint ({exc})") from None

    def _restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        prog = meta["progress"]
        stage, self.step, self.elapsed = int(prog["stage"]), int(prog["step"]), float(prog["wall_time_s"])
        if not 1 <= stage <= self.cfg["stages"] or not 0 <= self.step <= self.cfg["steps_per_stage"]:
            raise ValueError(f"progress {prog} is outside this fit")
        names = meta["history_names"]
        for k in range(1, stage + 1):
            t = tensors[f"history.stage{k}"]
            saved = {n: t[:, i].tolist() for i, n in enumerate(names)}
            # Checkpoints from before a loss existed resume with zeros for it (it was not in their objective).
            self.history[f"stage{k}"] = {n: saved.get(n, [0.0] * len(t)) for n in LOSS_NAMES}
            q = tensors.get(f"quality.stage{k}")
            if q is not None:
                self.quality[f"stage{k}"] = {n: q[:, i].tolist() for i, n in enumerate(QUALITY_NAMES)}
        if "lambda_semantic" in self.cfg:
            clf = self._new_classifier()
            clf.load_state_dict({k: tensors[f"classifier.{k}"] for k in clf.state_dict()})
            self.classifier = freeze(clf.to(self.device))
        for k in range(1, stage):
            done = self._new_stage(k)
            for n in ("G", "F"):
                sd = done.nets[n].state_dict()
                done.nets[n].load_state_dict({key: tensors[f"stage{k}.{n}.{key}"] for key in sd})
            self.finished.append(done)
        self.current = self._new_stage(stage)
        self.current.restore(tensors, meta["stage_state"], self.device)

    def _new_classifier(self) -> LabelClassifier:
        assert self.labels is not None
        return LabelClassifier(self.ys.shape[1], int(self.labels.max()) + 1)

    def _train_classifier(self) -> None:
        assert self.labels is not None
        self.classifier = train_classifier(
            self.xs,
            self.labels,
            self.ys.shape[1],
            self.cfg["classifier_steps"],
            64,
            _derive_seed(self.cfg["seed"], _CLASSIFIER),
            self.device,
        )

    def _new_stage(self, stage: int) -> _Stage:
        c_in = self.xs.shape[1] if stage == 1 else self.ys.shape[1]
        return _Stage(stage, c_in, self.ys.shape[1], self.cfg, self.device)

    def train(self) -> Refiner:
        began = time.perf_counter()
        base_elapsed = self.elapsed
        steps = self.cfg["steps_per_stage"]
        if self.labels is not None and self.classifier is None:
            self._train_classifier()
        if self.current is None:
            self.current = self._new_stage(1)
            self.history["stage1"] = {n: [] for n in LOSS_NAMES}
        while True:
            stage = self.current
            if self.step < steps:
                xs = self._stage_input()
                if self.classifier is not None and self.step == 0:
                    self._evaluate(stage, xs)
                bar = tqdm(
                    total=steps,
                    initial=self.step,
                    desc=f"refiner stage {stage.stage}/{self.cfg['stages']}",
                    disable=not self.progress,
                    leave=True,
                )
                try:
                    while self.step < steps:
                        losses = self._train_step(stage, xs)
                        self.step += 1
                        for n in LOSS_NAMES:
                            self.history[f"stage{stage.stage}"][n].append(losses[n])
                        self.elapsed = base_elapsed + time.perf_counter() - began
                        if self.classifier is not None and (
                            (self.cfg["eval_every"] and self.step % self.cfg["eval_every"] == 0) or self.step == steps
                        ):
                            self._evaluate(stage, xs)
                        if self.checkpoint and (self.step % self.checkpoint_every == 0 or self.step == steps):
                            self._save_checkpoint()
                        info = StepInfo(stage.stage, self.step, steps, losses, stage.nets)
                        for cb in self.callbacks:
                            cb(info)
                        cyc = losses["cycle_syn"] + losses["cycle_real"]
                        d = 0.5 * (losses["D_real"] + losses["D_syn"])
                        bar.set_postfix(G=f"{losses['G_total']:.3f}", D=f"{d:.3f}", cyc=f"{cyc:.3f}", refresh=False)
                        bar.update(1)
                finally:
                    bar.close()
            if stage.stage == self.cfg["stages"]:
                break
            nxt = self._new_stage(stage.stage + 1)
            nxt.continue_from(stage)
            self.finished.append(stage)
            self.current, self.step = nxt, 0
            self.history[f"stage{nxt.stage}"] = {n: [] for n in LOSS_NAMES}
        self.elapsed = base_elapsed + time.perf_counter() - began
        return self._refiner()

    def _stage_input(self) -> torch.Tensor:
        """Stage k trains on the synthetic images refined by stages 1..k-1 (uint8, as a user would store them)."""
        xs = self.xs
        for done in self.finished:
            xs = _apply_uint8(done.nets["G"], xs)
        return xs

    def _batch(self, data: torch.Tensor, domain: int) -> torch.Tensor:
        return data[self._batch_index(len(data), domain).to(data.device)].float() / 127.5 - 1.0

    def _batch_index(self, n: int, domain: int) -> torch.Tensor:
        b = self.cfg["batch_size"]
        pos = torch.arange(self.step * b, (self.step + 1) * b)
        idx = torch.empty(b, dtype=torch.long)
        stage = self.current.stage if self.current else 1
        for epoch in pos.div(n, rounding_mode="floor").unique().tolist():
            key = (stage, domain, epoch)
            if key not in self._perms:
                gen = torch.Generator().manual_seed(_derive_seed(self.cfg["seed"], stage, _ORDER, domain, epoch))
                # Two epochs at most are in use at once (a batch can straddle an epoch boundary).
                self._perms = {k: v for k, v in self._perms.items() if k[:2] != key[:2] or k[2] >= epoch - 1}
                self._perms[key] = torch.randperm(n, generator=gen)
            sel = pos.div(n, rounding_mode="floor") == epoch
            idx[sel] = self._perms[key][pos[sel] % n]
        return idx

    def _train_step(self, st: _Stage, xs: torch.Tensor) -> dict[str, float]:
        cfg = self.cfg
        steps = cfg["steps_per_stage"]
        half = steps // 2
        factor = 1.0 - max(0, self.step - half + 1) / (steps - half + 1)
        lr = cfg["lr"] * factor
        for opt in st.opt.values():
            for group in opt.param_groups:
                group["lr"] = lr
        x_idx = self._batch_index(len(xs), 0).to(xs.device)
        x = xs[x_idx].float() / 127.5 - 1.0
        y = self._batch(self.ys, 1)
        G, F, D_real, D_syn = (st.nets[n] for n in _NETS)
        lam, lam_idt, lam_sr = cfg["lambda_cycle"], cfg["lambda_identity"], cfg["lambda_self_reg"]

        fake_real = G(x)
        fake_syn = F(y)
        D_real.requires_grad_(False)
        D_syn.requires_grad_(False)
        zero = x.new_zeros(())
        shared = st.stage >= 2 and cfg.get("stage2", "cycle") == "shared"
        if shared:
            # A shared domain, what MR-GAN's stage 2 aims at: G (refined synthetic -> shared) and F (real -> shared)
            # both aim at the middle of one discriminator that tells their outputs apart (D_real's network, fed G(x)
            # as 1 and F(y) as 0), so the two sets meet instead of swapping sides; each output stays near its input
            # (L1, the identity weight) and keeps its class (the semantic term): there is no inverse to cycle through.
            keep = lam * lam_idt if lam_idt > 0 else lam
            g = {
                "adv_syn2real": _lsgan_to(D_real(fake_real), 0.5),
                "adv_real2syn": _lsgan_to(D_real(fake_syn), 0.5),
                "cycle_syn": zero,
                "cycle_real": zero,
                "identity_syn2real": fnn.l1_loss(fake_real, x) * keep,
                "identity_real2syn": fnn.l1_loss(fake_syn, y) * keep,
                "self_reg": zero,
            }
        else:
            g = {
                "adv_syn2real": _lsgan(D_real(fake_real), True),
                "adv_real2syn": _lsgan(D_syn(fake_syn), True),
                "cycle_syn": fnn.l1_loss(F(fake_real), x) * lam,
                "cycle_real": fnn.l1_loss(G(fake_syn), y) * lam,
                "identity_syn2real": zero,
                "identity_real2syn": zero,
                "self_reg": zero,
            }
            if lam_idt > 0 and x.shape[1] == y.shape[1]:
                g["identity_syn2real"] = fnn.l1_loss(G(y), y) * lam * lam_idt
                g["identity_real2syn"] = fnn.l1_loss(F(x), x) * lam * lam_idt
        if lam_sr > 0:
            # From stage 2 on F's output is used too (real refined into the shared domain), so it is held as well.
            reg = fnn.l1_loss(fake_real, x) + (fnn.l1_loss(fake_syn, y) if st.stage >= 2 else 0.0)
            g["self_reg"] = reg * lam_sr
        g["semantic"] = zero
        lam_sem = cfg.get("lambda_semantic", 0.0)
        if lam_sem > 0:
            assert self.classifier is not None and self.labels is not None
            clf, c = self.classifier, y.shape[1]
            sem = fnn.cross_entropy(clf(to_channels(fake_real, c)), self.labels[x_idx])
            if st.stage >= 2:
                with torch.no_grad():
                    pseudo = clf(y).argmax(1)
                sem = sem + fnn.cross_entropy(clf(to_channels(fake_syn, c)), pseudo)
            g["semantic"] = sem * lam_sem
        g["G_total"] = sum(g.values(), zero)
        values = self._checked(g)
        st.opt["opt_g"].zero_grad(set_to_none=True)
        g["G_total"].backward()
        st.opt["opt_g"].step()

        D_real.requires_grad_(True)
        D_syn.requires_grad_(True)
        past_real = st.pools["pool_real"].query(fake_real.detach())
        past_syn = st.pools["pool_syn"].query(fake_syn.detach())
        if shared:
            d = {
                "D_real": 0.5 * (_lsgan(D_real(past_real), True) + _lsgan(D_real(past_syn), False)),
                "D_syn": zero,
            }
        else:
            d = {
                "D_real": 0.5 * (_lsgan(D_real(y), True) + _lsgan(D_real(past_real), False)),
                "D_syn": 0.5 * (_lsgan(D_syn(x), True) + _lsgan(D_syn(past_syn), False)),
            }
        values.update(self._checked(d))
        st.opt["opt_d"].zero_grad(set_to_none=True)
        (d["D_real"] + d["D_syn"]).backward()
        st.opt["opt_d"].step()
        values["lr"] = lr
        return values

    def _checked(self, losses: dict[str, torch.Tensor]) -> dict[str, float]:
        values = dict(zip(losses, torch.stack([v.detach() for v in losses.values()]).tolist()))
        bad = {k: v for k, v in values.items() if not math.isfinite(v)}
        if bad:
            stage = self.current.stage if self.current else 1
            kept = f"; the checkpoint {self.checkpoint} holds the last good state" if self.checkpoint else ""
            raise FloatingPointError(
                f"refiner training diverged at stage {stage}, step {self.step + 1}: non-finite losses {bad}. "
                f"No update was applied with them{kept}. Try a lower lr, or check the images for corrupt values."
            )
        return values

    def _save_checkpoint(self) -> None:
        assert self.checkpoint is not None and self.current is not None
        tensors, stage_meta = self.current.state()
        for done in self.finished:
            for n in ("G", "F"):
                tensors.update({f"stage{done.stage}.{n}.{k}": v for k, v in done.nets[n].state_dict().items()})
        for name, losses in self.history.items():
            tensors[f"history.{name}"] = torch.tensor([losses[n] for n in LOSS_NAMES], dtype=torch.float64).T
        for name, rows in self.quality.items():
            tensors[f"quality.{name}"] = torch.tensor([rows[n] for n in QUALITY_NAMES], dtype=torch.float64).T
        if self.classifier is not None:
            tensors.update({f"classifier.{k}": v for k, v in self.classifier.state_dict().items()})
        if not all(torch.isfinite(t).all() for k, t in tensors.items() if t.is_floating_point()):
            raise FloatingPointError("refusing to write a checkpoint with non-finite weights or optimiser state")
        meta = {
            "fit": self.cfg,
            "progress": {"stage": self.current.stage, "step": self.step, "wall_time_s": self.elapsed},
            "stage_state": stage_meta,
            "history_names": list(LOSS_NAMES),
        }
        save_artifact(self.checkpoint, tensors, kind=CHECKPOINT_KIND, metadata=meta)

    def _refiner(self) -> Refiner:
        assert self.current is not None
        stages = [*self.finished, self.current]
        chain = [cast(ResnetGenerator, copy.deepcopy(s.nets["G"])) for s in stages]
        shared = {s.stage: cast(ResnetGenerator, copy.deepcopy(s.nets["F"])) for s in stages if s.stage >= 2}
        provenance = {
            "library_version": __version__,
            "torch_version": torch.__version__,
            "device": _device_name(self.device),
            "synthetic": self.cfg["synthetic"],
            "real": self.cfg["real"],
            "steps": [self.cfg["steps_per_stage"]] * self.cfg["stages"],
            "wall_time_s": round(self.elapsed, 3),
            "settings": {k: v for k, v in self.cfg.items() if k not in ("synthetic", "real")},
        }
        size = (self.xs.shape[2], self.xs.shape[3])
        refiner = Refiner(chain, shared, size, self.history, provenance, quality=self.quality)
        return refiner.to(self.device)

    @torch.no_grad()
    def _evaluate(self, st: _Stage, stage_input: torch.Tensor) -> None:
        """One row of :data:`QUALITY_NAMES` for this stage; at step 0 the stage's generators count as identities."""
        assert self.classifier is not None
        clf, c = self.classifier, self.ys.shape[1]
        gen = torch.Generator().manual_seed(_derive_seed(self.cfg["seed"], _EVAL))
        n = self.cfg["eval_images"]
        xi = torch.randperm(len(self.xs), generator=gen)[:n].to(self.xs.device)
        yi = torch.randperm(len(self.ys), generator=gen)[:n].to(self.ys.device)

        def scaled(t: torch.Tensor) -> torch.Tensor:
            return t.float() / 127.5 - 1.0

        def read(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            feats = torch.cat(
                [clf.features(to_channels(t[i : i + _REFINE_CHUNK], c)) for i in range(0, len(t), _REFINE_CHUNK)]
            )
            return feats, clf.head(feats).argmax(1)

        def mapped(net: nn.Module, t: torch.Tensor) -> torch.Tensor:
            if self.step == 0:
                return t
            net.eval()
            out = torch.cat([net(t[i : i + _REFINE_CHUNK]) for i in range(0, len(t), _REFINE_CHUNK)])
            net.train()
            return out

        _, pred_raw = read(scaled(self.xs[xi]))
        real = scaled(self.ys[yi])
        feats_real, pred_real = read(real)
        feats_ref, pred_ref = read(mapped(st.nets["G"], scaled(stage_input[xi])))
        feats_f, pred_f = read(mapped(st.nets["F"], real))
        row = {
            "step": float(self.step),
            "prediction_kept": 100.0 * (pred_ref == pred_raw).double().mean().item(),
            "feature_distance": frechet_distance(feats_ref, feats_real),
            "real_kept": 100.0 * (pred_f == pred_real).double().mean().item(),
            "shared_distance": frechet_distance(feats_ref, feats_f),
        }
        rows = self.quality.setdefault(f"stage{st.stage}", {k: [] for k in QUALITY_NAMES})
        for k, v in row.items():
            rows[k].append(v)
        if self.progress:
            tqdm.write(
                f"refiner stage {st.stage} step {self.step}: prediction kept {row['prediction_kept']:.1f}%, "
                f"feature distance to real {row['feature_distance']:.3f}, real kept {row['real_kept']:.1f}%, "
                f"shared distance {row['shared_distance']:.3f}"
            )


def _as_labels(labels: Any, n: int) -> torch.Tensor:
    arr = np.asarray(labels)
    if arr.shape != (n,) or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"synthetic_labels must be ({n},) integers, one per synthetic image; got {arr.shape} {arr.dtype}"
        )
    if n and (arr.min() < 0 or arr.max() > 9999):
        raise ValueError(f"synthetic_labels must be class indices in 0..9999; got {arr.min()}..{arr.max()}")
    return torch.from_numpy(arr.astype(np.int64))


def _lsgan_to(pred: torch.Tensor, target: float) -> torch.Tensor:
    return fnn.mse_loss(pred, torch.full_like(pred, target))


def _lsgan(pred: torch.Tensor, target_real: bool) -> torch.Tensor:
    return _lsgan_to(pred, 1.0 if target_real else 0.0)


@torch.no_grad()
def _apply_uint8(net: nn.Module, data: torch.Tensor) -> torch.Tensor:
    net.eval()
    out = []
    for start in range(0, len(data), _REFINE_CHUNK):
        y = net(data[start : start + _REFINE_CHUNK].float() / 127.5 - 1.0)
        out.append(torch.round((y + 1.0) * 127.5).clamp(0, 255).to(torch.uint8))
    net.train()
    return torch.cat(out)


def _as_tensor(data: Any, what: str) -> torch.Tensor:
    try:
        arr = as_images(data)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{what} images: {exc}") from exc
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2)))


SMALL_IMAGES = 32
"""Images whose shorter side is at most this get the small-image defaults of :func:`default_sizes`."""


def default_sizes(height: int, width: int) -> dict[str, Any]:
    """``fit_refiner``'s defaults for images of this size: ``batch_size``, ``ngf``, ``n_blocks``, ``ndf`` and the
    stage length (``steps`` or ``epochs``, the other ``None``).

    Up to :data:`SMALL_IMAGES` px: what the README's MNIST table measured (28x28 digits, 5 seeds), small networks
    that reach their plateau within 400 steps at batch 32 on a CPU; larger images: CycleGAN's reference sizes and a
    5-epoch stage.
    """
    if min(height, width) <= SMALL_IMAGES:
        return {"batch_size": 32, "ngf": 16, "n_blocks": 3, "ndf": 32, "steps": 400, "epochs": None}
    return {"batch_size": 16, "ngf": 32, "n_blocks": 6, "ndf": 64, "steps": None, "epochs": 5.0}


def _stage_steps(steps: int | None, epochs: float | None, n: int, batch_size: int) -> int:
    """Steps per stage (``steps`` and ``epochs`` were checked by ``fit_refiner``)."""
    if steps is not None:
        return steps
    ep = 5.0 if epochs is None else epochs
    return max(1, math.ceil(ep * n / batch_size))


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    # The checkpoint compares this against the JSON it stored, so compare like with like (tuples become lists).
    return json.loads(json.dumps(d))


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return str(device)
