"""Shared tail of the fit_* examples: fit, save, write PNGs, and report wall time, steps/s and the R/G ratio."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

import learned_augment as la
from learned_augment.viz import frequency_png, preview


def fit_and_report(
    prefix: str,
    data: np.ndarray,
    preview_images: np.ndarray,
    out: Path,
    fit_kwargs: dict[str, Any],
    extra: dict[str, Any],
) -> dict[str, Any]:
    """Run ``la.fit_policy(data, **fit_kwargs)`` with a checkpoint in ``out``; write policy, PNGs and a JSON report."""
    out.mkdir(parents=True, exist_ok=True)
    model = fit_kwargs["model"]
    t = time.perf_counter()
    policy = la.fit_policy(data, checkpoint=out / f"{model}.ckpt.safetensors", **fit_kwargs)
    wall = time.perf_counter() - t
    steps = policy.provenance["steps"]
    rg = policy.history["rg_ratio"]
    path = out / f"{prefix}-{model}.safetensors"
    policy.save(str(path))
    frequency_png(policy, out / f"{prefix}-{model}-frequencies.png")
    preview(policy, preview_images[:8], out / f"{prefix}-{model}-preview.png")
    result = {
        "model": model,
        "tfs": fit_kwargs["tfs"],
        "images": len(data),
        "seq_len": fit_kwargs["seq_len"],
        "steps": steps,
        **extra,
        "wall_s": round(wall, 1),
        "steps_per_s": round(steps / wall, 3),
        "rg_ratio_last": rg[-1] if rg else None,
        "rg_ratio_mean_last5": float(np.mean(rg[-5:])) if rg else None,
        "top_tfs": policy.top_tfs(5),
        "policy": str(path),
    }
    print(json.dumps(result, indent=2))
    (out / f"fit_{prefix}_{model}.json").write_text(json.dumps(result, indent=2))
    return result
