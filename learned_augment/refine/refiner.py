"""The fitted refiner: the generators of a progressive (MR-GAN) CycleGAN fit, ready to apply and to save.

A refiner with ``S`` stages holds one synthetic-to-real generator per stage, applied in order (stage ``k`` was
trained on the output of stages ``1..k-1``), and, for every stage ``k >= 2``, the generator that maps real images
into that stage's refined-synthetic domain. MR-GAN's stage 2 uses both: synthetic images move toward the real ones,
real images toward the refined synthetic ones, so a classifier can train on one shared, mixed domain.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ..data import as_images
from ..io import ArtifactError, load_artifact, save_artifact
from .networks import GeneratorConfig, ResnetGenerator, check_image_size

Direction = Literal["synthetic_to_real", "real_to_shared"]
DIRECTIONS: tuple[str, ...] = ("synthetic_to_real", "real_to_shared")
KIND = "refiner"
MAX_STAGES = 8
_NET_NAME = re.compile(r"^stage([1-9])\.(synthetic_to_real|real_to_shared)$")


class Refiner:
    """Generators that refine images between the synthetic and the real domain.

    Build one with :func:`learned_augment.refine.fit_refiner` or :meth:`Refiner.load`; the constructor is for
    those two.

    Parameters
    ----------
    synthetic_to_real:
        One generator per stage, applied in order.
    real_to_shared:
        ``{stage: generator}`` for stages >= 2: maps real images into that stage's refined-synthetic domain.
    image_size:
        ``(H, W)`` of the images it was fitted on (other sizes divisible by 4 work, but were not trained on).
    history:
        ``{"stage1": {loss name: per-step values}, ...}`` from the fit.
    provenance:
        JSON facts about the fit (library version, data fingerprints, steps, wall time, device).
    quality:
        ``{"stage1": {name: per-evaluation values}, ...}``, the label-free quality signal of a fit given synthetic
        labels (columns :data:`learned_augment.refine.semantic.QUALITY_NAMES`); empty otherwise and in files saved
        before it existed.
    """

    def __init__(
        self,
        synthetic_to_real: list[ResnetGenerator],
        real_to_shared: dict[int, ResnetGenerator],
        image_size: tuple[int, int],
        history: dict[str, dict[str, list[float]]] | None = None,
        provenance: dict[str, Any] | None = None,
        quality: dict[str, dict[str, list[float]]] | None = None,
    ) -> None:
        if not 1 <= len(synthetic_to_real) <= MAX_STAGES:
            raise ValueError(f"a refiner needs 1 to {MAX_STAGES} stages; got {len(synthetic_to_real)}")
        if any(not 2 <= k <= len(synthetic_to_real) for k in real_to_shared):
            raise ValueError(f"real_to_shared generators exist for stages 2..S only; got {sorted(real_to_shared)}")
        self.synthetic_to_real = synthetic_to_real
        self.real_to_shared = real_to_shared
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.history = history or {}
        self.provenance = provenance or {}
        self.quality = quality or {}
        self.device = torch.device("cpu")
        for net in self._networks().values():
            net.eval().requires_grad_(False)

    @property
    def stages(self) -> int:
        return len(self.synthetic_to_real)

    @property
    def synthetic_channels(self) -> int:
        return self.synthetic_to_real[0].config.in_channels

    @property
    def real_channels(self) -> int:
        return self.synthetic_to_real[0].config.out_channels

    @property
    def directions(self) -> tuple[str, ...]:
        """The directions :meth:`refine` accepts (``real_to_shared`` only after a stage-2 fit)."""
        return DIRECTIONS if self.stages in self.real_to_shared else DIRECTIONS[:1]

    def _networks(self) -> dict[str, ResnetGenerator]:
        nets = {f"stage{k}.synthetic_to_real": g for k, g in enumerate(self.synthetic_to_real, 1)}
        nets.update({f"stage{k}.real_to_shared": f for k, f in sorted(self.real_to_shared.items())})
        return nets

    def to(self, device: str | torch.device) -> Refiner:
        """Move the generators to ``device`` (in place) and return ``self``."""
        self.device = torch.device(device)
        for net in self._networks().values():
            net.to(self.device)
        return self

    def at_stage(self, stage: int) -> Refiner:
        """A refiner that stops after ``stage`` (sharing this one's generators): compare stages of one fit."""
        if not 1 <= stage <= self.stages:
            raise ValueError(f"stage must be in 1..{self.stages}; got {stage}")
        out = Refiner(
            self.synthetic_to_real[:stage],
            {k: f for k, f in self.real_to_shared.items() if k <= stage},
            self.image_size,
            {k: v for k, v in self.history.items() if int(k.removeprefix("stage")) <= stage},
            {**self.provenance, "truncated_to_stage": stage},
            {k: v for k, v in self.quality.items() if int(k.removeprefix("stage")) <= stage},
        )
        out.device = self.device
        return out

    def _chain(self, direction: str) -> tuple[list[ResnetGenerator], int]:
        if direction == "synthetic_to_real":
            return self.synthetic_to_real, self.synthetic_channels
        if direction == "real_to_shared":
            if self.stages not in self.real_to_shared:
                raise ValueError(
                    f"direction 'real_to_shared' needs a refiner fitted with stages >= 2; this one has "
                    f"{self.stages} stage(s). Use direction='synthetic_to_real'."
                )
            return [self.real_to_shared[self.stages]], self.real_channels
        raise ValueError(f"direction must be one of {DIRECTIONS}; got {direction!r}")

    @torch.no_grad()
    def refine(self, x: torch.Tensor, direction: Direction = "synthetic_to_real") -> torch.Tensor:
        """Refine a batch of images.

        Parameters
        ----------
        x:
            ``(B, C, H, W)`` or ``(C, H, W)``; uint8, or float with values in [0, 1]. ``C`` is the synthetic channel
            count for ``synthetic_to_real`` and the real one for ``real_to_shared``; ``H`` and ``W`` divisible by 4.
        direction:
            ``"synthetic_to_real"`` (every stage's generator in turn) or ``"real_to_shared"`` (the last stage's
            real-to-refined-synthetic generator; stage >= 2 fits only).

        Returns
        -------
        torch.Tensor
            Same shape (but the real channel count), dtype and device as ``x``.
        """
        nets, channels = self._chain(direction)
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"refine takes a torch.Tensor; got {type(x).__name__} (use refine_numpy for arrays)")
        single = x.ndim == 3
        batch = x.unsqueeze(0) if single else x
        if batch.ndim != 4 or batch.shape[1] != channels:
            raise ValueError(f"expected (B, {channels}, H, W) or ({channels}, H, W) images; got {tuple(x.shape)}")
        check_image_size(batch.shape[2], batch.shape[3])
        if not (x.dtype == torch.uint8 or x.is_floating_point()):
            raise TypeError(f"images must be uint8 or float in [0, 1]; got {x.dtype}")
        if (
            x.is_floating_point()
            and batch.numel()
            and not (torch.isfinite(batch).all() and 0 <= batch.min() <= batch.max() <= 1)
        ):
            raise ValueError("float images must hold finite values in [0, 1]")
        # Canonical strides: a grey channel's stride is arbitrary (numpy gives 0 for an added axis), and the conv
        # kernels chosen by memory layout differ in their last bits. The same pixels must give the same output.
        y = batch.to(self.device, torch.float32, memory_format=torch.contiguous_format)
        y = y / 127.5 - 1.0 if x.dtype == torch.uint8 else y * 2.0 - 1.0
        for net in nets:
            y = net(y)
        y = (y + 1.0) / 2.0
        out = torch.round(y * 255.0).clamp(0, 255).to(torch.uint8) if x.dtype == torch.uint8 else y.to(x.dtype)
        out = out.to(x.device)
        return out[0] if single else out

    def refine_numpy(
        self, images: np.ndarray, direction: Direction = "synthetic_to_real", batch_size: int = 256
    ) -> np.ndarray:
        """Refine ``(N, H, W)`` or ``(N, H, W, C)`` uint8 images; returns uint8 in the same layout.

        A grey ``(N, H, W)`` input gives ``(N, H, W)`` back when the output has one channel, and ``(N, H, W, 3)``
        when the refiner maps grey to colour. ``batch_size`` bounds memory, not the result.
        """
        arr = np.asarray(images)
        if arr.ndim not in (3, 4) or arr.dtype != np.uint8:
            raise ValueError(f"expected (N, H, W) or (N, H, W, C) uint8 images; got {arr.shape} {arr.dtype}")
        nhwc = as_images(arr)
        chunks = []
        for start in range(0, len(nhwc), batch_size):
            x = torch.from_numpy(nhwc[start : start + batch_size]).permute(0, 3, 1, 2)
            chunks.append(self.refine(x, direction).permute(0, 2, 3, 1).numpy())
        out = np.concatenate(chunks)
        return out[..., 0] if arr.ndim == 3 and out.shape[3] == 1 else out

    def __repr__(self) -> str:
        g = self.synthetic_to_real[0].config
        p = self.provenance
        fitted = ""
        if "steps" in p and "wall_time_s" in p:
            fitted = f", fitted {sum(p['steps'])} steps in {p['wall_time_s']:.0f} s on {p.get('device', '?')}"
        return (
            f"Refiner(stages={self.stages}, channels {self.synthetic_channels}->{self.real_channels}, "
            f"image {self.image_size[0]}x{self.image_size[1]}, ResNet generator ngf={g.ngf} blocks={g.n_blocks}, "
            f"directions={list(self.directions)}, device={self.device}{fitted})"
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save as one ``.safetensors`` file (atomic): weights, history and JSON metadata; no pickle."""
        tensors: dict[str, torch.Tensor] = {}
        networks = {}
        for name, net in self._networks().items():
            networks[name] = net.config.to_dict()
            tensors.update({f"{name}.{k}": v for k, v in net.state_dict().items()})
        history_names = _pack_columns(self.history, "history", tensors)
        quality_names = _pack_columns(self.quality, "quality", tensors)
        meta = {
            "refiner": {
                "stages": self.stages,
                "image_size": list(self.image_size),
                "channels": {"synthetic": self.synthetic_channels, "real": self.real_channels},
                "networks": networks,
                "history": history_names,
                **({"quality": quality_names} if quality_names else {}),
            },
            "provenance": self.provenance,
        }
        return save_artifact(path, tensors, kind=KIND, metadata=meta)

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu") -> Refiner:
        """Load a refiner saved by :meth:`save`; any inconsistency raises :class:`~learned_augment.io.ArtifactError`."""
        tensors, meta = load_artifact(path, kind=KIND)
        try:
            refiner = _from_artifact(tensors, meta)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ArtifactError):
                raise
            raise ArtifactError(f"{path}: not a valid refiner ({exc})") from None
        return refiner.to(device)


def _from_artifact(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Refiner:
    info = meta["refiner"]
    stages = info["stages"]
    if isinstance(stages, bool) or not isinstance(stages, int) or not 1 <= stages <= MAX_STAGES:
        raise ValueError(f"stages must be an integer in 1..{MAX_STAGES}; got {stages!r}")
    size = info["image_size"]
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(s, int) for s in size)):
        raise ValueError(f"image_size must be [H, W]; got {size!r}")
    check_image_size(*size)
    if not isinstance(info["networks"], dict):
        raise ValueError("networks must map network names to their configurations")
    configs = {}
    for name, cfg in info["networks"].items():
        m = _NET_NAME.match(name)
        if not m or int(m.group(1)) > stages or (m.group(2) == "real_to_shared" and m.group(1) == "1"):
            raise ValueError(f"unexpected network {name!r} in a {stages}-stage refiner")
        configs[name] = GeneratorConfig.from_dict(cfg)
    expected = {f"stage{k}.synthetic_to_real" for k in range(1, stages + 1)}
    if not expected <= set(configs):
        raise ValueError(f"missing networks {sorted(expected - set(configs))}")
    nets = {name: _build(name, cfg, tensors) for name, cfg in configs.items()}
    used = {f"{name}.{k}" for name, net in nets.items() for k in net.state_dict()}
    history = _history(info["history"], tensors, used)
    # Files from before the quality signal have no "quality" entry.
    quality = _history(info.get("quality", {}), tensors, used, prefix="quality")
    extra = set(tensors) - used
    if extra:
        raise ValueError(f"unexpected tensors {sorted(extra)[:5]}")
    chain = [nets[f"stage{k}.synthetic_to_real"] for k in range(1, stages + 1)]
    shared = {int(n[5]): net for n, net in nets.items() if n.endswith("real_to_shared")}
    _check_channels(chain, shared)
    provenance = meta.get("provenance", {})
    if not isinstance(provenance, dict):
        raise ValueError("provenance must be a JSON object")
    return Refiner(chain, shared, (size[0], size[1]), history, provenance, quality)


def _build(name: str, cfg: GeneratorConfig, tensors: dict[str, torch.Tensor]) -> ResnetGenerator:
    # Shapes are checked against a network on the meta device first, so a hostile configuration (huge widths)
    # allocates nothing before it is caught.
    with torch.device("meta"):
        skeleton = ResnetGenerator(cfg)
    for key, ref in skeleton.state_dict().items():
        t = tensors.get(f"{name}.{key}")
        if t is None:
            raise ValueError(f"missing tensor {name}.{key}")
        if t.shape != ref.shape or t.dtype != torch.float32:
            raise ValueError(f"tensor {name}.{key} is {tuple(t.shape)} {t.dtype}; expected {tuple(ref.shape)} float32")
        if not torch.isfinite(t).all():
            # A NaN weight turns every refined image into NaN, which the uint8 cast then hides as garbage pixels.
            raise ValueError(f"tensor {name}.{key} holds NaN or infinite values")
    net = ResnetGenerator(cfg)
    net.load_state_dict({k: tensors[f"{name}.{k}"] for k in skeleton.state_dict()})
    return net


def _pack_columns(
    tables: dict[str, dict[str, list[float]]], prefix: str, tensors: dict[str, torch.Tensor]
) -> dict[str, list[str]]:
    """Store each stage's named columns as one ``(steps, columns)`` float64 tensor ``prefix.stage``; returns the
    column names per stage, for the metadata (what :func:`_history` reads back)."""
    names_per_stage = {}
    for stage, columns in tables.items():
        names = sorted(columns)
        names_per_stage[stage] = names
        if names:
            tensors[f"{prefix}.{stage}"] = torch.tensor([columns[n] for n in names], dtype=torch.float64).T
    return names_per_stage


def _history(
    names: Any, tensors: dict[str, torch.Tensor], used: set[str], prefix: str = "history"
) -> dict[str, dict[str, list[float]]]:
    if not isinstance(names, dict):
        raise ValueError(f"{prefix} must map stage to column names")
    out: dict[str, dict[str, list[float]]] = {}
    for stage, cols in names.items():
        if not (isinstance(cols, list) and all(isinstance(c, str) for c in cols)):
            raise ValueError(f"{prefix} names for {stage!r} must be a list of strings")
        if not cols:
            out[stage] = {}
            continue
        key = f"{prefix}.{stage}"
        t = tensors.get(key)
        if t is None or t.ndim != 2 or t.shape[1] != len(cols):
            raise ValueError(f"{prefix} tensor {key} is missing or does not have {len(cols)} columns")
        used.add(key)
        out[stage] = {c: t[:, i].tolist() for i, c in enumerate(cols)}
    return out


def _check_channels(chain: list[ResnetGenerator], shared: dict[int, ResnetGenerator]) -> None:
    real = chain[0].config.out_channels
    for k, g in enumerate(chain[1:], 2):
        if g.config.in_channels != real or g.config.out_channels != real:
            raise ValueError(f"stage {k} generator maps {g.config.in_channels}->{g.config.out_channels} channels")
    for k, f in shared.items():
        if f.config.in_channels != real or f.config.out_channels != real:
            raise ValueError(f"stage {k} real_to_shared generator maps {f.config.in_channels}->{f.config.out_channels}")
