"""Steps per second of :func:`learned_augment.fit_policy` at its default settings, on the CPU (or ``--device``).

Two cases, each the default fit (LSTM policy, L = 10, batch 32, 5 sequences per image, R/G ratio every 25 steps):

* ``cifar10``: the ``"cifar10"`` TF set on 32x32 RGB images: the first CIFAR-10 test images when ``--cifar`` names
  the JPEG npz, otherwise synthetic smooth photo-like images (so the script runs anywhere);
* ``mnist``: the ``"mnist"`` TF set on 28x28 digits: the MNIST test images when ``--mnist`` names the IDX folder,
  otherwise the 2,000 digits shipped inside the package.

A repeat is one fresh ``fit_policy`` call with the same seed (the same work every time); its rate is the steps
after ``--warmup`` over their wall time (and, beside it, over this process's CPU time, which a shared machine's
load moves less), measured by a callback at the end of each step. Repeats of the cases are
interleaved (repeat 1 of every case, then repeat 2, ...) so a change in the machine's load hits all cases alike,
and the median is reported. Rows cross ``--precisions`` (the reward pass's arithmetic) with ``--rollouts`` (the
per-image numpy rollouts or the batched executor on the fit's device). ``--profile`` adds a cProfile breakdown of
where a step's time goes.

To time another version of the library with the same script, put its checkout first on the path (older versions
take ``--precisions float32 --rollouts per_image`` only, what they did)::

    git worktree add /tmp/la-old <commit>
    PYTHONPATH=/tmp/la-old python examples/bench_fit.py --precisions float32 --rollouts per_image

Run::

    python examples/bench_fit.py --out /tmp/bench_fit.json
    python examples/bench_fit.py --cifar ../shared/data/cifar10/cifar10_jpeg.npz --mnist ../shared/data/mnist --profile
    python examples/bench_fit.py --device cuda --precisions auto   # on a GPU: both rollout paths there
"""

from __future__ import annotations

import argparse
import cProfile
import inspect
import json
import os
import platform
import pstats
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _data import load_cifar10_test, mnist_digits, synthetic_images

import learned_augment as la

CASES = ("cifar10", "mnist")

# label -> (file suffix, function name, names of the callers counted or None for all): where cProfile finds each
# part of a step. Callers narrow a function to its calls from the training step, leaving out the R/G evaluation's
# (a comprehension is its own frame before Python 3.12; ``torch.no_grad()`` wraps a function in decorate_context).
STEP = ("fit_policy", "<listcomp>")
PARTS: dict[str, list[tuple[str, str, tuple[str, ...] | None]]] = {
    "policy sampling": [("policy/models.py", "sample", None)],
    "rollouts (prefixes)": [("fit/rollout.py", "image_prefixes", STEP)],
    "uint8 -> float collate": [("fit/loop.py", "<lambda>", STEP), ("fit/loop.py", "_images_to_tensor", STEP)],
    "stack prefixes": [("fit/loop.py", "_stack_prefixes", STEP)],
    "discriminator forward": [("fit/loop.py", "_logits", STEP)],
    "policy log-probs": [("policy/models.py", "step_log_probs_and_entropy", STEP)],
    "backward (D and policy)": [("torch/_tensor.py", "backward", STEP)],
    "optimizer steps": [("torch/optim/optimizer.py", "wrapper", STEP)],
    "R/G evaluation": [("fit/loop.py", "_rg_ratio", None)],
}


def cifar_images(path: Path | None, n: int) -> tuple[np.ndarray, str]:
    """The first ``n`` CIFAR-10 test images (only those are decoded), or synthetic ones without ``path``."""
    if path is None:
        return synthetic_images(n, 32), "synthetic smooth 32x32 RGB images"
    return load_cifar10_test(path, n), f"CIFAR-10 test images from {path}"


def time_fit(
    images: np.ndarray, tfs: str, steps: int, warmup: int, seed: int, precision: str, rollouts: str, device: str
) -> tuple[float, float]:
    """Steps per second of one default fit of ``steps`` steps, not counting the first ``warmup``: per wall-clock
    second and per second of this process's CPU time (on a shared machine the latter moves less with the load)."""
    ends: list[tuple[float, float]] = []

    def stamp(*_: Any) -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        ends.append((time.perf_counter(), time.process_time()))

    # Older versions of the library (timed with PYTHONPATH=<their checkout>) lack the newer arguments; main() only
    # lets their defaults through, float32 rewards and per-image rollouts.
    newer = {"reward_precision": precision, "rollouts": rollouts}
    accepted = inspect.signature(la.fit_policy).parameters
    la.fit_policy(
        images,
        tfs=tfs,
        steps=steps,
        seed=seed,
        device=device,
        progress=False,
        callbacks=[stamp],
        **{k: v for k, v in newer.items() if k in accepted},
    )
    n = steps - warmup
    return n / (ends[-1][0] - ends[warmup - 1][0]), n / (ends[-1][1] - ends[warmup - 1][1])


def profile_fit(images: np.ndarray, tfs: str, steps: int, seed: int, top: int) -> dict[str, Any]:
    """cProfile of one default fit: seconds per step in each part of the step, and the costliest functions."""
    profiler = cProfile.Profile()
    profiler.enable()
    la.fit_policy(images, tfs=tfs, steps=steps, seed=seed, progress=False)
    profiler.disable()
    stats = pstats.Stats(profiler)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = next(ct for (f, _, name), (_, _, _, ct, _) in raw.items() if name == "fit_policy" and f.endswith("loop.py"))
    parts: dict[str, float] = {}
    for label, places in PARTS.items():
        seconds = 0.0
        for suffix, name, callers in places:
            for (f, _, fname), (_, _, _, ct, by_caller) in raw.items():
                if fname != name or not f.endswith(suffix):
                    continue
                if callers is None:
                    seconds += ct
                    continue
                seconds += sum(c[3] for (cf, _, cname), c in by_caller.items() if cname in callers and "fit/" in cf)
        parts[label] = seconds / steps
    parts["everything else"] = total / steps - sum(parts.values())
    by_self = sorted(raw.items(), key=lambda kv: -kv[1][2])[:top]
    functions = [
        {"function": f"{Path(f).name}:{line} {name}", "self_s_per_step": tt / steps, "calls_per_step": nc / steps}
        for (f, line, name), (_, nc, tt, _, _) in by_self
    ]
    return {"seconds_per_step": total / steps, "parts": parts, "top_self_time": functions}


def print_profile(case: str, prof: dict[str, Any]) -> None:
    per_step = prof["seconds_per_step"]
    print(f"\nprofile of '{case}' (cProfile; its overhead inflates Python-heavy parts): {per_step * 1e3:.0f} ms/step")
    for label, seconds in prof["parts"].items():
        print(f"  {label:<26} {seconds * 1e3:8.1f} ms  {100 * seconds / per_step:5.1f}%")
    print("  costliest functions by self time:")
    for row in prof["top_self_time"]:
        print(f"    {row['self_s_per_step'] * 1e3:8.1f} ms  {row['calls_per_step']:8.0f} calls  {row['function']}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cifar", type=Path, default=None, help="CIFAR-10 JPEG npz; without it, synthetic images")
    p.add_argument("--mnist", type=Path, default=None, help="MNIST IDX folder; without it, the shipped sample")
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of: " + ", ".join(CASES))
    p.add_argument(
        "--precisions",
        default="float32,bfloat16",
        help="comma-separated reward_precision values to time side by side (float32, bfloat16, auto)",
    )
    p.add_argument(
        "--rollouts",
        default="per_image,batched",
        help="comma-separated fit_policy rollouts values to time side by side (per_image, batched, auto)",
    )
    p.add_argument("--device", default="cpu", help="fit_policy's device (cpu, cuda)")
    p.add_argument("--images", type=int, default=2000, help="images per data set")
    p.add_argument("--steps", type=int, default=30, help="steps per timed fit, warm-up included")
    p.add_argument("--warmup", type=int, default=5, help="steps not timed at the start of each fit")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", action="store_true", help="also print a cProfile breakdown of a step")
    p.add_argument("--profile-steps", type=int, default=10)
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    a = p.parse_args(argv)
    cases = [c.strip() for c in a.cases.split(",") if c.strip()]
    if unknown := set(cases) - set(CASES):
        p.error(f"unknown cases {sorted(unknown)}; choose from {list(CASES)}")
    if not 1 <= a.warmup < a.steps:
        p.error("need 1 <= --warmup < --steps")
    torch.set_num_threads(a.threads)

    precisions = [v.strip() for v in a.precisions.split(",") if v.strip()]
    rollout_modes = [v.strip() for v in a.rollouts.split(",") if v.strip()]
    accepted = inspect.signature(la.fit_policy).parameters
    if "reward_precision" not in accepted and precisions != ["float32"]:
        p.error(f"learned_augment {la.__version__} at {la.__file__} has float32 rewards only: --precisions float32")
    if "rollouts" not in accepted and rollout_modes != ["per_image"]:
        p.error(f"learned_augment {la.__version__} at {la.__file__} has per-image rollouts only: --rollouts per_image")
    for v in precisions:
        if "reward_precision" in accepted:
            try:
                la.fit.loop.reward_dtype(v, torch.device("cpu"))
            except ValueError as exc:
                p.error(str(exc))
    if unknown := set(rollout_modes) - {"auto", "per_image", "batched"}:
        p.error(f"unknown rollouts {sorted(unknown)}; choose from {list(la.fit.loop.ROLLOUTS)}")
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device here")
    data = {"cifar10": cifar_images(a.cifar, a.images), "mnist": mnist_digits(a.mnist, a.images)}
    rows = [(c, v, r) for c in cases for v in precisions for r in rollout_modes]
    load_start = os.getloadavg()
    rates: dict[tuple[str, str, str], list[float]] = {r: [] for r in rows}
    cpu_rates: dict[tuple[str, str, str], list[float]] = {r: [] for r in rows}
    for _ in range(a.repeats):
        for row in rows:
            case, precision, rollouts = row
            wall, cpu = time_fit(data[case][0], case, a.steps, a.warmup, a.seed, precision, rollouts, a.device)
            rates[row].append(wall)
            cpu_rates[row].append(cpu)
    load_end = os.getloadavg()

    print(
        f"fit_policy steps/s on {a.device}, default settings, {a.threads} torch thread(s), median of {a.repeats} "
        f"repeats; learned_augment from {Path(la.__file__).parent}"
    )
    print(f"{'case':<9} {'reward pass':<12} {'rollouts':<10} {'images':<14} {'median':>7} {'per CPU s':>9}  repeats")
    for row in rows:
        case, precision, rollouts = row
        shape = "x".join(str(v) for v in data[case][0].shape[1:])
        reps = " ".join(f"{r:.2f}" for r in rates[row])
        cpu = statistics.median(cpu_rates[row])
        med = statistics.median(rates[row])
        print(f"{case:<9} {precision:<12} {rollouts:<10} {shape:<14} {med:7.2f} {cpu:9.2f}  {reps}")
    print(f"load average at start {load_start[0]:.2f}, at end {load_end[0]:.2f}")
    if not a.device.startswith("cuda"):
        print("GPU: not measured (run with --device cuda where one is available)")

    profiles = {}
    if a.profile:
        for case in cases:
            profiles[case] = profile_fit(data[case][0], case, a.profile_steps, a.seed, top=15)
            print_profile(case, profiles[case])

    result = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count()},
        "torch": torch.__version__,
        "learned_augment": la.__version__,
        "library_path": str(Path(la.__file__).parent),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items() if k != "out"},
        "load_average": {"start": load_start, "end": load_end},
        "rows": [
            {
                "case": c,
                "reward_precision": v,
                "rollouts": r,
                "device": a.device,
                "data": data[c][1],
                "image_shape": list(data[c][0].shape[1:]),
                "steps_per_s": rates[c, v, r],
                "median_steps_per_s": statistics.median(rates[c, v, r]),
                "steps_per_cpu_s": cpu_rates[c, v, r],
                "median_steps_per_cpu_s": statistics.median(cpu_rates[c, v, r]),
            }
            for c, v, r in rows
        ],
        "gpu": "measured (device rows)" if a.device.startswith("cuda") else "not measured",
        "profiles": profiles,
    }
    if a.out is not None:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
