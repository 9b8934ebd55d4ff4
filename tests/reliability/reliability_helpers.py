"""Shared pieces of the reliability tests: raw artifact surgery, a live pickle payload, tiny artifacts, fit settings."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import torch

from learned_augment.policy import LSTMPolicy
from learned_augment.refine import Refiner
from learned_augment.refine.networks import GeneratorConfig, ResnetGenerator, init_weights

WORKER = Path(__file__).with_name("reliability_worker.py")


class Payload:
    """Unpickling this creates ``marker`` (``open(marker, "w")``): proof that a loader executed pickled code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return open, (self.marker, "w")


def split(raw: bytes) -> tuple[dict[str, Any], bytes]:
    """A safetensors file's bytes as (header dict, data bytes)."""
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def join(header: dict[str, Any] | bytes, data: bytes) -> bytes:
    blob = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(blob)) + blob + data


def meta_of(header: dict[str, Any]) -> dict[str, Any]:
    return json.loads(header["__metadata__"]["learned_augment"])


def with_meta(raw: bytes, **changes: Any) -> bytes:
    """``raw`` with keys of its learned_augment metadata replaced (``None`` removes a key)."""
    header, data = split(raw)
    meta = meta_of(header)
    for k, v in changes.items():
        if v is None:
            meta.pop(k, None)
        else:
            meta[k] = v
    header["__metadata__"]["learned_augment"] = json.dumps(meta)
    return join(header, data)


def declared_end(raw: bytes) -> int:
    """Bytes of ``raw`` that its header accounts for: 8 + header + the furthest tensor end."""
    header, _ = split(raw)
    (n,) = struct.unpack("<Q", raw[:8])
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    return 8 + n + max(ends, default=0)


def tiny_policy(seed: int = 0) -> LSTMPolicy:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return LSTMPolicy("mnist", seq_len=4, hidden=8)


def tiny_refiner(stages: int = 2, seed: int = 0) -> Refiner:
    gen = torch.Generator().manual_seed(seed)
    chain, shared = [], {}
    for k in range(1, stages + 1):
        g = ResnetGenerator(GeneratorConfig(1, 1, ngf=4, n_blocks=1))
        init_weights(g, gen)
        chain.append(g)
        if k >= 2:
            f = ResnetGenerator(GeneratorConfig(1, 1, ngf=4, n_blocks=1))
            init_weights(f, gen)
            shared[k] = f
    return Refiner(chain, shared, (16, 16), provenance={"note": "reliability test"})


# ------------------------------------------------------------------------------------------------ fits under faults
# One configuration shared by the in-process runs and reliability_worker.py, so their results can be compared bit
# for bit. Every process runs torch on one thread: thread counts change reduction orders, hence the last bits.

POLICY_FIT: dict[str, Any] = dict(
    tfs="mnist",
    model="lstm",
    seq_len=3,
    steps=12,
    batch_size=8,
    n_seqs=2,
    hidden=8,
    d_width=8,
    eval_every=4,
    seed=3,
    progress=False,
)
REFINER_FIT: dict[str, Any] = dict(
    stages=2,
    steps=5,
    pool_size=3,
    ngf=4,
    n_blocks=1,
    ndf=4,
    batch_size=4,
    seed=3,
    progress=False,
)


def policy_data() -> Any:
    from learned_augment.data import load_sample

    return load_sample()[0][:64]


def refiner_data() -> tuple[Any, Any]:
    x = policy_data()[:32, 6:22, 6:22]
    return x, 255 - x
