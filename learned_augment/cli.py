"""The ``learned-augment`` command line: fit, refine-fit, preview, inspect, bench, list and demo.

User mistakes (a missing file, a bad option, an unreadable image) print one ``error:`` line and exit with code 2;
a traceback means a bug.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

DEMO_DESTRUCTIVE = ["invert", "blur(2)", "rotate(+90)", "rotate(-90)", "cutout(0.5)"]

# ``fit`` options passed to ``fit_policy`` under the same name, and only when given: fit_policy's signature holds
# the one set of defaults.
FIT_OPTIONS = (
    "tfs",
    "model",
    "seq_len",
    "epochs",
    "steps",
    "min_steps",
    "batch_size",
    "n_seqs",
    "g_lr",
    "g_optimizer",
    "d_lr",
    "diversity",
    "entropy",
    "jitter",
    "device",
    "seed",
    "checkpoint",
    "subset",
)
REFINE_FIT_OPTIONS = ("stages", "steps", "device", "seed")

THREADS_HELP = (
    "torch threads for the fit (default 1; OpenCV always gets 1). The fit alternates OpenCV TF calls and a small "
    "torch network, and two thread pools sized to the machine fight over its cores: a 5-step fit took 17.6 s with "
    "the libraries' default threads and 4.6 s with one thread each on 2 cores. Raise it on a machine with cores to "
    "spare and large images."
)


def _tf_spec(text: str) -> str | list[str]:
    """``--tfs``: a TF set's name, or TF ids joined by commas (no id has a comma)."""
    from .ops.base import registered_tfs

    ids = [t.strip() for t in text.split(",") if t.strip()]
    return ids if "," in text or "(" in text or text.strip() in registered_tfs() else text


class UserError(Exception):
    """A mistake in the command line or its inputs: reported as one line."""


class _Parser(argparse.ArgumentParser):
    """``argparse``, but a bad command line gives one ``error:`` line like every other user mistake."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


def _number(positive: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < 0 or (positive and value == 0):
            raise argparse.ArgumentTypeError(f"must be a finite {'positive' if positive else 'non-negative'} number")
        return value

    return parse


_positive = _int_at_least(1)
_non_negative = _int_at_least(0)


def _given(a: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    return {k: getattr(a, k) for k in names if getattr(a, k) is not None}


def _check_out(path: str, suffix: str, option: str = "--out") -> None:
    """Refuse an output path before a long fit rather than after it."""
    p = Path(path)
    if p.suffix != suffix:
        raise UserError(f"{option} must name a {suffix} file, got {path!r}")
    if p.is_dir():
        raise UserError(f"{option} {path} is a folder; give a file name ending in {suffix}")
    if not p.parent.is_dir():
        raise UserError(f"{option} {path}: folder {p.parent} does not exist")


def _set_threads(n: int) -> None:
    import cv2
    import torch

    torch.set_num_threads(n)
    cv2.setNumThreads(1)


def _load_images(
    spec: str,
    limit: int | None = None,
    image_size: Sequence[int] | None = None,
    subset: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    size = None if image_size is None else (int(image_size[0]), int(image_size[1]))
    from .data import as_images, load_sample

    data = load_sample()[0] if spec == "sample" else spec
    return as_images(data, limit=limit, image_size=size, subset=subset, seed=seed)


def _open(spec: str) -> tuple[Any, dict[str, Any], dict[str, Any] | None]:
    """A policy or refiner from a file or a pretrained name: ``(artifact, file metadata, model card or None)``."""
    from .io import read_metadata
    from .policy.files import load_policy
    from .pretrained import list_pretrained, model_card, pretrained_path
    from .refine import Refiner

    path, card = Path(spec), None
    if not path.exists():
        if spec not in list_pretrained():
            raise UserError(f"no such file or pretrained name: {spec} ('learned-augment list' shows the names)")
        path, card = pretrained_path(spec), model_card(spec)
    meta = read_metadata(path)
    artifact = Refiner.load(path) if meta.get("kind") == "refiner" else load_policy(path)
    return artifact, meta, card


def _is_refiner(artifact: Any) -> bool:
    from .refine import Refiner

    return isinstance(artifact, Refiner)


def cmd_fit(a: argparse.Namespace) -> int:
    from .arguments import check_device
    from .fit import fit_policy, loop

    _check_out(a.out, ".safetensors")
    if a.device is not None:
        check_device(a.device, "--device")
    _set_threads(a.threads)
    # Only the random subset fit_policy would keep is read (the same draw: fit_policy keeps all of it).
    defaults = inspect.signature(loop.fit_policy).parameters
    subset = a.subset if a.subset is not None else defaults["subset"].default
    seed = a.seed if a.seed is not None else defaults["seed"].default
    images = _load_images(a.data, a.limit, a.image_size, subset, seed)
    policy = fit_policy(images, **_given(a, FIT_OPTIONS), progress=not a.no_progress)
    policy.save(a.out)
    prov = policy.provenance
    print(f"saved {a.out}  ({prov['steps']} steps in {prov['wall_time_s']:.1f} s on {prov['device']})")
    print(_freq_table(policy, 8))
    return 0


def cmd_refine_fit(a: argparse.Namespace) -> int:
    from .arguments import check_device
    from .refine import fit_refiner

    _check_out(a.out, ".safetensors")
    if a.device is not None:
        check_device(a.device, "--device")
    _set_threads(a.threads)
    syn = _load_images(a.synthetic, a.limit)
    real = _load_images(a.real, a.limit)
    refiner = fit_refiner(syn, real, **_given(a, REFINE_FIT_OPTIONS), progress=not a.no_progress)
    refiner.save(a.out)
    print(f"saved {a.out}")
    return 0


def cmd_preview(a: argparse.Namespace) -> int:
    from .viz import preview

    _check_out(a.out, ".png")
    artifact, _, _ = _open(a.policy)
    images = _load_images(a.data, a.n)
    if _is_refiner(artifact):
        path = _refiner_preview(artifact, images, a.out)
    else:
        path = preview(artifact, images, a.out, n_images=a.n, n_samples=a.samples, seed=a.seed)
    print(f"wrote {path}")
    return 0


def _refiner_preview(refiner: Any, images: np.ndarray, out: str) -> Path:
    """Originals in the first row, then one row per stage (each stage refines the previous one's output)."""
    from .viz import image_grid, write_png

    if images.shape[3] != refiner.synthetic_channels:
        raise UserError(
            f"the refiner takes {refiner.synthetic_channels}-channel images; these have {images.shape[3]} channels"
        )
    rows = [list(images)]
    rows += [list(refiner.at_stage(k).refine_numpy(images)) for k in range(1, refiner.stages + 1)]
    labels = ["original"] + [f"stage {k}" for k in range(1, refiner.stages + 1)]
    return write_png(out, image_grid(rows, labels=labels))


def _freq_table(policy: Any, k: int | None = None) -> str:
    p = policy.probabilities()
    order = np.argsort(-p, kind="stable")[:k]
    uniform = 1.0 / len(p)
    lines = [f"{'TF':<18} {'freq':>7} {'x uniform':>10}"]
    lines += [f"{policy.tfset[int(i)].id:<18} {p[i]:7.4f} {p[i] / uniform:10.2f}" for i in order]
    return "\n".join(lines)


def cmd_inspect(a: argparse.Namespace) -> int:
    from .viz import frequency_png

    if a.png:
        _check_out(a.png, ".png", "--png")
    artifact, meta, card = _open(a.policy)
    refiner = _is_refiner(artifact)
    if a.png and refiner:
        raise UserError("--png draws a policy's TF frequencies; a refiner has none (try 'learned-augment preview')")
    shown = {k: v for k, v in meta.items() if k not in ("history", "tfs")}
    if card is not None:
        print(f"model card:\n{json.dumps(card, indent=2, sort_keys=True)}\nfile metadata:")
    print(json.dumps(shown, indent=2, sort_keys=True))
    print(repr(artifact))
    if not refiner:
        print(_freq_table(artifact))
    if a.png:
        print(f"wrote {frequency_png(artifact, a.png)}")
    return 0


def cmd_bench(a: argparse.Namespace) -> int:
    import torch

    from .transforms import LearnedPolicyTransform

    torch.set_num_threads(1)
    policy, _, _ = _open(a.policy)
    if _is_refiner(policy):
        raise UserError(f"bench measures policies; {a.policy} is a refiner")
    t = LearnedPolicyTransform(policy, p=1.0, seed=0, interpolation=a.interpolation)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (a.size, a.size, a.channels), dtype=np.uint8)
    for _ in range(20):
        t(img)
    start = time.perf_counter()
    for _ in range(a.n):
        t(img)
    dt = time.perf_counter() - start
    print(
        f"{a.n / dt:,.0f} images/s  ({a.size}x{a.size}x{a.channels} uint8, L={policy.seq_len}, "
        f"{a.interpolation} resampling, one CPU thread)"
    )
    return 0


def cmd_list(a: argparse.Namespace) -> int:
    from .pretrained import list_pretrained, model_card

    names = list_pretrained()
    if not names:
        print("no pretrained artifacts are installed")
    for name in names:
        card = model_card(name)
        print(f"{name:<28} {card.get('summary', '')}")
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    from .data import load_sample
    from .fit import fit_policy
    from .ops.tfset import TFSet, mnist_tfs
    from .viz import frequency_png, preview

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    _set_threads(a.threads)
    images, _ = load_sample()
    tfs = TFSet(mnist_tfs().ids + DEMO_DESTRUCTIVE, name="mnist+destructive")
    print(
        f"fitting a {a.model} policy on {len(images)} shipped MNIST digits; TF set: TANDA's 25 MNIST TFs plus "
        f"{len(DEMO_DESTRUCTIVE)} destructive ones ({', '.join(DEMO_DESTRUCTIVE)})"
    )
    policy = fit_policy(
        images,
        tfs,
        a.model,
        seq_len=a.seq_len,
        steps=a.steps,
        batch_size=32,
        n_seqs=a.n_seqs,
        g_optimizer=a.g_optimizer,
        g_lr=a.g_lr,
        seed=a.seed,
        progress=not a.no_progress,
    )
    policy_path = out / "demo_policy.safetensors"
    policy.save(str(policy_path))
    p = policy.probabilities()
    bad = [tfs.index_of(t) for t in DEMO_DESTRUCTIVE]
    print(
        f"destructive TFs: {p[bad].sum():.3f} of all applications after fitting "
        f"(uniform would be {len(bad) / len(tfs):.3f})"
    )
    print(_freq_table(policy, 10))
    prev = preview(policy, images[:8], out / "preview.png", seed=a.seed)
    freq = frequency_png(policy, out / "frequencies.png")
    print(f"policy:      {policy_path}\npreview:     {prev}\nfrequencies: {freq}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="learned-augment", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)

    f = sub.add_parser(
        "fit",
        help="fit a TF policy on unlabeled images (folder, .npz or 'sample')",
        description="Fit a TF policy. Options left out take the defaults of learned_augment.fit_policy.",
    )
    f.add_argument("data")
    f.add_argument("--out", required=True, help="policy file to write (.safetensors)")
    f.add_argument(
        "--tfs",
        type=_tf_spec,
        help="TF set (mnist, cifar10 or default) or TF ids joined by commas, e.g. 'rotate(+15),hflip,blur(1)'",
    )
    f.add_argument("--model", choices=["lstm", "gru", "mean_field"])
    f.add_argument("--seq-len", type=_positive, help="TFs per sequence")
    f.add_argument("--epochs", type=_number(positive=True), help="passes over the data (unless --steps is given)")
    f.add_argument("--steps", type=_positive, help="fit length in steps (overrides --epochs and --min-steps)")
    f.add_argument("--min-steps", type=_positive, help="fewest steps of a fit from --epochs")
    f.add_argument("--batch-size", type=_positive)
    f.add_argument("--n-seqs", type=_positive, help="sequences per image in each generator step")
    f.add_argument("--g-lr", type=_number(positive=False), help="generator learning rate")
    f.add_argument("--g-optimizer", choices=["sgd", "adam"])
    f.add_argument("--d-lr", type=_number(positive=False), help="discriminator learning rate")
    f.add_argument("--diversity", type=_number(positive=False), help="weight of the diversity term")
    f.add_argument("--entropy", type=_number(positive=False), help="entropy bonus (0.1 keeps the policy diverse)")
    f.add_argument("--jitter", action="store_true", default=None, help="sub-pixel jitter of the discriminator's inputs")
    f.add_argument("--device", help="cpu, cuda or cuda:N")
    f.add_argument("--seed", type=_non_negative)
    f.add_argument("--checkpoint", help="checkpoint file: written during the fit, resumed from if it exists")
    f.add_argument("--limit", type=_positive, help="use at most this many images (the first ones)")
    f.add_argument("--subset", type=_positive, help="fit on a random subset of this many images (drawn from --seed)")
    f.add_argument(
        "--image-size", type=_positive, nargs=2, metavar=("H", "W"), help="resize every image to H x W as it is read"
    )
    f.add_argument("--threads", type=_positive, default=1, help=THREADS_HELP)
    f.add_argument("--no-progress", action="store_true")
    f.set_defaults(func=cmd_fit)

    r = sub.add_parser(
        "refine-fit",
        help="fit a synthetic->real refiner (MR-GAN)",
        description="Fit a refiner. Options left out take the defaults of learned_augment.refine.fit_refiner.",
    )
    r.add_argument("synthetic")
    r.add_argument("real")
    r.add_argument("--out", required=True, help="refiner file to write (.safetensors)")
    r.add_argument("--stages", type=_positive)
    r.add_argument("--steps", type=_positive, help="steps per stage")
    r.add_argument("--device", help="cpu, cuda or cuda:N")
    r.add_argument("--seed", type=_non_negative)
    r.add_argument("--limit", type=_positive)
    r.add_argument("--threads", type=_positive, default=1, help=THREADS_HELP)
    r.add_argument("--no-progress", action="store_true")
    r.set_defaults(func=cmd_refine_fit)

    p = sub.add_parser("preview", help="PNG grid: originals and augmented samples, or a refiner's before/after")
    p.add_argument("policy", help="policy or refiner file, or pretrained name")
    p.add_argument("data", help="folder, .npz or 'sample'")
    p.add_argument("--out", default="preview.png")
    p.add_argument("--n", type=_positive, default=8, help="images (rows; columns for a refiner)")
    p.add_argument("--samples", type=_positive, default=6, help="augmentations per image (policies only)")
    p.add_argument("--seed", type=_non_negative, default=0)
    p.set_defaults(func=cmd_preview)

    i = sub.add_parser("inspect", help="metadata (and model card) of a policy or refiner; a policy's TF frequencies")
    i.add_argument("policy", help="policy or refiner file, or pretrained name")
    i.add_argument("--png", default=None, help="also write a frequency bar chart (policies only)")
    i.set_defaults(func=cmd_inspect)

    b = sub.add_parser("bench", help="throughput of a policy on this machine")
    b.add_argument("policy")
    b.add_argument("--size", type=_positive, default=32)
    b.add_argument("--channels", type=int, default=3, choices=[1, 3])
    b.add_argument("--n", type=_positive, default=2000)
    b.add_argument("--interpolation", default="bilinear", choices=["bilinear", "nearest"])
    b.set_defaults(func=cmd_bench)

    sub.add_parser("list", help="shipped pretrained artifacts").set_defaults(func=cmd_list)

    d = sub.add_parser("demo", help="fit a small policy on the shipped sample; write preview PNGs")
    d.add_argument("--out", default="learned_augment_demo")
    d.add_argument("--model", default="lstm", choices=["lstm", "gru", "mean_field"])
    d.add_argument("--steps", type=_positive, default=150)
    d.add_argument("--seq-len", type=_positive, default=5)
    d.add_argument("--n-seqs", type=_positive, default=4)
    # Adam at 3e-3 is the demo's measured setting (destructive share 0.041 after 150 steps); fit_policy's own
    # default is SGD, tuned for longer fits.
    d.add_argument("--g-optimizer", default="adam", choices=["adam", "sgd"])
    d.add_argument("--g-lr", type=_number(positive=False), default=3e-3)
    d.add_argument("--seed", type=_non_negative, default=0)
    d.add_argument("--threads", type=_positive, default=1, help=THREADS_HELP)
    d.add_argument("--no-progress", action="store_true")
    d.set_defaults(func=cmd_demo)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .io import ArtifactError

    try:
        return int(args.func(args))
    except (
        UserError,
        ArtifactError,
        FileNotFoundError,
        IsADirectoryError,
        NotADirectoryError,
        PermissionError,
        KeyError,
        ValueError,
        TypeError,
        OSError,
    ) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
