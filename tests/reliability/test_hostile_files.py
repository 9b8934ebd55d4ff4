"""Hostile and broken artifact files: every loader refuses them with ArtifactError, runs no code, reads no further
than the header declares.

Each file is tried with every public way of opening an artifact (``load_policy``, ``Refiner.load``,
``LearnedPolicyTransform(path)``, ``read_metadata``, ``load_artifact``, ``learned-augment inspect``, resuming a fit
from it). The pickle-based files carry a payload that creates a marker file when unpickled; a sanity test proves
the payloads are live, and every test checks the marker never appears.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from reliability_helpers import (
    Payload,
    declared_end,
    join,
    meta_of,
    split,
    tiny_policy,
    tiny_refiner,
    with_meta,
)
from safetensors.torch import save as st_save

import learned_augment as la
import learned_augment.io as la_io
from learned_augment.cli import main as cli_main
from learned_augment.io import (
    DIGEST_KEY,
    MAX_HEADER_BYTES,
    ArtifactError,
    load_artifact,
    read_metadata,
    save_artifact,
    tensor_digest,
)
from learned_augment.refine import Refiner
from learned_augment.transforms import LearnedPolicyTransform

# ------------------------------------------------------------------------------------------------ the files


class Ctx:
    """What the file makers start from: a good policy file, a good refiner file, and the marker path."""

    def __init__(self, folder: Path) -> None:
        self.marker = folder / "PWNED"
        self.policy_path = tiny_policy().save(str(folder / "good_policy.safetensors"))
        self.refiner_path = tiny_refiner().save(folder / "good_refiner.safetensors")
        self.policy = Path(self.policy_path).read_bytes()
        self.refiner = Path(self.refiner_path).read_bytes()

    def policy_with(self, mutate: Callable[[dict[str, torch.Tensor], dict[str, Any]], None]) -> bytes:
        return _resaved(self.policy, mutate)

    def refiner_with(self, mutate: Callable[[dict[str, torch.Tensor], dict[str, Any]], None]) -> bytes:
        return _resaved(self.refiner, mutate)


def _resaved(raw: bytes, mutate: Callable[[dict[str, torch.Tensor], dict[str, Any]], None]) -> bytes:
    """``raw`` rewritten as the writer would, with its tensors or metadata mutated (a well-formed file)."""
    from safetensors.torch import load as st_load

    tensors = st_load(raw)
    meta = meta_of(split(raw)[0])
    mutate(tensors, meta)
    contiguous = {k: v.contiguous() for k, v in tensors.items()}
    # A fresh digest, as the writer would: the content checks below the digest check must still be reached.
    meta[DIGEST_KEY] = tensor_digest(contiguous)
    return st_save(contiguous, metadata={"learned_augment": json.dumps(meta)})


def _pickled(protocol: int) -> Callable[[Ctx], bytes]:
    return lambda c: pickle.dumps({"weight": [0.0] * 4, "evil": Payload(c.marker)}, protocol=protocol)


def _torch_saved(zipfile: bool) -> Callable[[Ctx], bytes]:
    def make(c: Ctx) -> bytes:
        buf = io.BytesIO()
        torch.save({"weight": torch.zeros(3), "evil": Payload(c.marker)}, buf, _use_new_zipfile_serialization=zipfile)
        return buf.getvalue()

    return make


def _npy_object(c: Ctx) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array([Payload(c.marker)], dtype=object), allow_pickle=True)
    return buf.getvalue()


def _edit_header(raw: bytes, edit: Callable[[dict[str, Any]], None]) -> bytes:
    header, data = split(raw)
    edit(header)
    return join(header, data)


def _set_tensor_field(name: str, field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda h: h[name].__setitem__(field, value)


def _overlap(h: dict[str, Any]) -> None:
    # weight_ih and weight_hh of the LSTM cell have the same size: point the second at the first one's bytes.
    h["cell.weight_hh"]["data_offsets"] = list(h["cell.weight_ih"]["data_offsets"])


def _beyond(h: dict[str, Any]) -> None:
    start, end = h["head.bias"]["data_offsets"]
    h["head.bias"]["data_offsets"] = [start + 10**6, end + 10**6]


def _huge_metadata(c: Ctx) -> bytes:
    # A real file whose metadata JSON is larger than the loader's header limit.
    pad = "x" * (MAX_HEADER_BYTES + 1024)
    return with_meta(c.policy, provenance={"note": pad})


# Files every loader must refuse, even read_metadata (level "header"), and files whose header is sound but whose
# tensor table is not (level "tensors": read_metadata may succeed, anything reading tensors must refuse).
UNREADABLE: dict[str, tuple[str, Callable[[Ctx], bytes]]] = {
    "pickle protocol 0": ("header", _pickled(0)),
    "pickle protocol 2": ("header", _pickled(2)),
    "pickle protocol 4": ("header", _pickled(4)),
    "pickle protocol 5": ("header", _pickled(5)),
    "torch.save zip": ("header", _torch_saved(True)),
    "torch.save legacy": ("header", _torch_saved(False)),
    "numpy object .npy": ("header", _npy_object),
    "empty": ("header", lambda c: b""),
    "7 bytes": ("header", lambda c: c.policy[:7]),
    "header length 0": ("header", lambda c: struct.pack("<Q", 0) + b"{}"),
    "header length beyond file": ("header", lambda c: struct.pack("<Q", 4096) + b'{"a": 1}'),
    "header length 2**64-1": ("header", lambda c: struct.pack("<Q", 2**64 - 1) + c.policy[8:]),
    "header length above limit": ("header", lambda c: struct.pack("<Q", MAX_HEADER_BYTES + 1) + c.policy[8:]),
    "header not utf-8": ("header", lambda c: join(b'{"\xff\xfe": 1}', b"")),
    "header malformed json": ("header", lambda c: join(b'{"a": ', b"")),
    "header json list": ("header", lambda c: join(b"[1, 2]", b"")),
    "header json string": ("header", lambda c: join(b'"policy"', b"")),
    "header nested 100k deep": ("header", lambda c: join(b"[" * 100_000 + b"]" * 100_000, b"")),
    "metadata huge (> limit)": ("header", _huge_metadata),
    "no metadata (plain safetensors)": ("header", lambda c: st_save({"w": torch.zeros(3)})),
    "metadata not a string": (
        "header",
        lambda c: _edit_header(c.policy, lambda h: h.update(__metadata__={"learned_augment": 5})),
    ),
    "metadata malformed json": (
        "header",
        lambda c: _edit_header(c.policy, lambda h: h["__metadata__"].update(learned_augment="{bad")),
    ),
    "metadata json list": (
        "header",
        lambda c: _edit_header(c.policy, lambda h: h["__metadata__"].update(learned_augment="[1]")),
    ),
    "metadata nested 100k deep": (
        "header",
        lambda c: _edit_header(c.policy, lambda h: h["__metadata__"].update(learned_augment="[" * 10**5 + "]" * 10**5)),
    ),
    "format version 99": ("header", lambda c: with_meta(c.policy, format_version=99)),
    "format version 0": ("header", lambda c: with_meta(c.policy, format_version=0)),
    "format version '1'": ("header", lambda c: with_meta(c.policy, format_version="1")),
    "format version true": ("header", lambda c: with_meta(c.policy, format_version=True)),
    "format version 1.0": ("header", lambda c: with_meta(c.policy, format_version=1.0)),
    "format version missing": ("header", lambda c: with_meta(c.policy, format_version=None)),
    "tensor entry not an object": ("header", lambda c: _edit_header(c.policy, lambda h: h.update({"head.bias": 5}))),
    "dtype unsupported": (
        "header",
        lambda c: _edit_header(c.policy, _set_tensor_field("head.bias", "dtype", "F8_E4M3")),
    ),
    "dtype object": ("header", lambda c: _edit_header(c.policy, _set_tensor_field("head.bias", "dtype", "O"))),
    "shape negative": ("header", lambda c: _edit_header(c.policy, _set_tensor_field("head.bias", "shape", [-25]))),
    "shape float": ("header", lambda c: _edit_header(c.policy, _set_tensor_field("head.bias", "shape", [2.5]))),
    "shape 2**62 x 2**62": (
        "header",
        lambda c: _edit_header(c.policy, _set_tensor_field("head.bias", "shape", [2**62, 2**62])),
    ),
    "offsets beyond the file": ("header", lambda c: _edit_header(c.policy, _beyond)),
    "offsets reversed": (
        "header",
        lambda c: _edit_header(
            c.policy, lambda h: h["head.bias"].update(data_offsets=h["head.bias"]["data_offsets"][::-1])
        ),
    ),
    "offsets negative": (
        "header",
        lambda c: _edit_header(c.policy, _set_tensor_field("head.bias", "data_offsets", [-100, 0])),
    ),
    "offsets not matching the shape": (
        "header",
        lambda c: _edit_header(c.policy, _set_tensor_field("head.bias", "shape", [24])),
    ),
    "offsets overlapping": ("tensors", lambda c: _edit_header(c.policy, _overlap)),
    "data truncated by one byte": ("header", lambda c: c.policy[:-1]),
    "refiner data truncated by half": ("header", lambda c: c.refiner[: len(c.refiner) // 2]),
}


# Well-formed files that are not a valid policy or refiner: read_metadata and load_artifact may read them (or
# refuse them), every loader that builds an object must refuse them.
INVALID: dict[str, Callable[[Ctx], bytes]] = {
    "pickle as tensor bytes behind a valid header": lambda c: join(
        {
            "evil": {"dtype": "U8", "shape": [len(p := pickle.dumps(Payload(c.marker)))], "data_offsets": [0, len(p)]},
            # The policy's metadata without its digest (which covers the policy's tensors, not this one).
            "__metadata__": split(with_meta(c.policy, **{DIGEST_KEY: None}))[0]["__metadata__"],
        },
        p,
    ),
    "policy kind missing": lambda c: with_meta(c.policy, kind=None),
    "policy kind 'dataset'": lambda c: with_meta(c.policy, kind="dataset"),
    "unknown TF": lambda c: with_meta(c.policy, tfs=["teleport(+3)"] + meta_of(split(c.policy)[0])["tfs"][1:]),
    "TF id that looks like code": lambda c: with_meta(c.policy, tfs=["__import__('os').system('true')"] * 25),
    "TF list empty": lambda c: with_meta(c.policy, tfs=[]),
    "TF list not a list": lambda c: with_meta(c.policy, tfs="mnist"),
    "TF magnitude NaN": lambda c: with_meta(c.policy, tfs=["rotate(nan)"] + meta_of(split(c.policy)[0])["tfs"][1:]),
    "TF magnitude out of range": lambda c: with_meta(
        c.policy, tfs=["blur(1e9)"] + meta_of(split(c.policy)[0])["tfs"][1:]
    ),
    "TF list over the cap": lambda c: with_meta(c.policy, tfs=[f"rotate({i / 100:+g})" for i in range(10_001)]),
    "TF id of 100k characters": lambda c: with_meta(c.policy, tfs=["a(" + " " * 100_000 + "x"] * 25),
    "model unknown": lambda c: with_meta(c.policy, model="transformer"),
    "model not a string": lambda c: with_meta(c.policy, model=["lstm"]),
    "seq_len 10**9": lambda c: with_meta(c.policy, seq_len=10**9),
    "seq_len 2.5": lambda c: with_meta(c.policy, seq_len=2.5),
    "seq_len missing": lambda c: with_meta(c.policy, seq_len=None),
    "hidden 10**6 (16 TB LSTM)": lambda c: with_meta(c.policy, hparams={"hidden": 10**6, "cell": "lstm"}),
    "hidden -1": lambda c: with_meta(c.policy, hparams={"hidden": -1, "cell": "lstm"}),
    "hidden 'eight'": lambda c: with_meta(c.policy, hparams={"hidden": "eight", "cell": "lstm"}),
    "logit_range NaN": lambda c: with_meta(c.policy, hparams={"hidden": 8, "logit_range": float("nan")}),
    "hparams not an object": lambda c: with_meta(c.policy, hparams=[8]),
    "history not a list": lambda c: with_meta(c.policy, history={"d_loss": 5}),
    "provenance not an object": lambda c: with_meta(c.policy, provenance="me"),
    "tensor wrong shape": lambda c: c.policy_with(lambda t, m: t.update({"head.bias": torch.zeros(24)})),
    "tensor wrong dtype float64": lambda c: c.policy_with(
        lambda t, m: t.update({"head.bias": t["head.bias"].double()})
    ),
    "tensor wrong dtype int32": lambda c: c.policy_with(lambda t, m: t.update({"head.bias": t["head.bias"].int()})),
    "tensor missing": lambda c: c.policy_with(lambda t, m: t.pop("head.bias")),
    "tensor extra": lambda c: c.policy_with(lambda t, m: t.update({"evil": torch.zeros(1)})),
    "NaN weights": lambda c: c.policy_with(lambda t, m: t["head.weight"].fill_(float("nan"))),
    "inf weights": lambda c: c.policy_with(lambda t, m: t["cell.bias_ih"].__setitem__(0, float("inf"))),
    "refiner NaN weights": lambda c: c.refiner_with(
        lambda t, m: t["stage1.synthetic_to_real.model.1.weight"].fill_(float("nan"))
    ),
    "refiner inf weights": lambda c: c.refiner_with(
        lambda t, m: t["stage2.real_to_shared.model.1.bias"].__setitem__(0, float("-inf"))
    ),
    "refiner wrong shape": lambda c: c.refiner_with(
        lambda t, m: t.update({"stage1.synthetic_to_real.model.1.weight": torch.zeros(4, 3, 7, 7)})
    ),
    "refiner wrong dtype": lambda c: c.refiner_with(
        lambda t, m: t.update({"stage1.synthetic_to_real.model.1.bias": torch.zeros(4, dtype=torch.float16)})
    ),
    "refiner networks not an object": lambda c: c.refiner_with(lambda t, m: m["refiner"].update(networks=[1, 2])),
    "refiner width 10**7": lambda c: c.refiner_with(
        lambda t, m: m["refiner"]["networks"]["stage1.synthetic_to_real"].update(ngf=10**7)
    ),
    "refiner stages 99": lambda c: c.refiner_with(lambda t, m: m["refiner"].update(stages=99)),
    "refiner metadata missing": lambda c: c.refiner_with(lambda t, m: m.pop("refiner")),
    "refiner extra tensor": lambda c: c.refiner_with(lambda t, m: t.update({"evil": torch.zeros(1)})),
}

ALL_FILES = {**{k: v[1] for k, v in UNREADABLE.items()}, **INVALID}

OBJECT_LOADERS: dict[str, Callable[[Path], Any]] = {
    "load_policy": la.load_policy,
    "Refiner.load": Refiner.load,
    "LearnedPolicyTransform": lambda p: LearnedPolicyTransform(str(p)),
}
RAW_LOADERS: dict[str, Callable[[Path], Any]] = {"read_metadata": read_metadata, "load_artifact": load_artifact}


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> Ctx:
    return Ctx(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="module")
def files(ctx: Ctx) -> dict[str, Path]:
    out = {}
    folder = ctx.marker.parent / "files"
    folder.mkdir()
    for i, (name, make) in enumerate(ALL_FILES.items()):
        path = folder / f"f{i:03d}.safetensors"
        path.write_bytes(make(ctx))
        out[name] = path
    return out


@pytest.fixture(autouse=True)
def no_code_ran(request: pytest.FixtureRequest):
    yield
    if "ctx" in request.fixturenames:
        marker = request.getfixturevalue("ctx").marker
        assert not marker.exists(), "a loader executed the pickled payload"


def _refused(load: Callable[[Path], Any], path: Path) -> ArtifactError:
    with pytest.raises(ArtifactError) as info:
        load(path)
    assert path.name in str(info.value), f"the error does not name the file: {info.value}"
    return info.value


# ------------------------------------------------------------------------------------------------ the payload is live


def test_the_payloads_would_run_if_unpickled(ctx: Ctx, tmp_path: Path) -> None:
    """Without this, 'the marker never appears' would prove nothing."""
    live = Ctx.__new__(Ctx)
    live.marker = tmp_path / "LIVE"
    loaders = {
        "pickle protocol 0": pickle.loads,
        "pickle protocol 5": pickle.loads,
        "torch.save zip": lambda b: torch.load(io.BytesIO(b), weights_only=False),
        "torch.save legacy": lambda b: torch.load(io.BytesIO(b), weights_only=False),
        "numpy object .npy": lambda b: np.load(io.BytesIO(b), allow_pickle=True),
    }
    for name, load in loaders.items():
        load(UNREADABLE[name][1](live))
        assert live.marker.exists(), name
        live.marker.unlink()


# ------------------------------------------------------------------------------------------------ every loader refuses


@pytest.mark.parametrize("name", list(UNREADABLE))
def test_unreadable_files_are_refused_by_every_loader(name: str, files: dict[str, Path], ctx: Ctx) -> None:
    level = UNREADABLE[name][0]
    path = files[name]
    for load in OBJECT_LOADERS.values():
        _refused(load, path)
    _refused(load_artifact, path)
    if level == "header":
        _refused(read_metadata, path)
    else:
        assert isinstance(read_metadata(path), dict)


@pytest.mark.parametrize("name", list(INVALID))
def test_invalid_artifacts_are_refused_by_object_loaders(name: str, files: dict[str, Path], ctx: Ctx) -> None:
    path = files[name]
    for load in OBJECT_LOADERS.values():
        _refused(load, path)
    for load in RAW_LOADERS.values():
        try:
            load(path)
        except ArtifactError:
            pass


def test_cli_inspect_reports_every_bad_file_in_one_line(files: dict[str, Path], ctx: Ctx, capsys) -> None:
    for name, path in files.items():
        assert cli_main(["inspect", str(path)]) == 2, name
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, (name, err)


def test_pickle_bytes_inside_a_tensor_stay_bytes(files: dict[str, Path], ctx: Ctx) -> None:
    tensors, meta = load_artifact(files["pickle as tensor bytes behind a valid header"])
    assert tensors["evil"].dtype == torch.uint8 and meta["kind"] == "policy"


def test_fit_resume_from_a_hostile_checkpoint_is_refused(files: dict[str, Path], ctx: Ctx) -> None:
    from learned_augment.data import load_sample
    from learned_augment.refine import fit_refiner

    digits = load_sample()[0][:16]
    small = digits[:, 6:22, 6:22]
    for name in ["pickle protocol 4", "torch.save zip", "numpy object .npy", "header nested 100k deep"]:
        with pytest.raises(ArtifactError, match=files[name].name):
            la.fit_policy(
                digits,
                "mnist",
                "mean_field",
                seq_len=2,
                steps=1,
                batch_size=4,
                n_seqs=1,
                progress=False,
                checkpoint=files[name],
            )
        with pytest.raises(ArtifactError, match=files[name].name):
            fit_refiner(
                small,
                255 - small,
                stages=1,
                steps=1,
                ngf=4,
                n_blocks=1,
                ndf=4,
                batch_size=4,
                progress=False,
                checkpoint=files[name],
            )


# ------------------------------------------------------------------------------------------------ truncation, flips


def test_truncated_at_every_offset(ctx: Ctx, tmp_path: Path) -> None:
    # Every length of the policy file from one byte short down to zero; the refiner file at every length within its
    # header and every 64th within its data (os.truncate, as rewriting thousands of files is slow here).
    tried = 0
    for name, raw, stride in (("policy", ctx.policy, 1), ("refiner", ctx.refiner, 64)):
        (n,) = struct.unpack("<Q", raw[:8])
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(raw)
        for k in range(len(raw) - 1, -1, -1):
            if k >= 8 + n and (len(raw) - k) % stride:
                continue
            os.truncate(path, k)
            with pytest.raises(ArtifactError):
                load_artifact(path)
            tried += 1
    assert tried > len(ctx.policy) + 1000


def test_random_byte_flips_load_or_fail_cleanly(ctx: Ctx, tmp_path: Path) -> None:
    """A flipped byte anywhere gives ArtifactError or a loadable file, never another exception.

    Flips inside tensor data are refused (the tensor digest); flips in a harmless place of the header load.
    """
    rng = np.random.default_rng(0)
    path = tmp_path / "flip.safetensors"
    outcomes = {"refused": 0, "loaded": 0, "data flips loaded": 0}
    (n,) = struct.unpack("<Q", ctx.policy[:8])
    for i in range(400):
        raw = bytearray(ctx.policy)
        pos = int(rng.integers(0, 8 + n)) if i % 4 else int(rng.integers(8 + n, len(raw)))
        raw[pos] ^= int(rng.integers(1, 256))
        path.write_bytes(bytes(raw))
        try:
            la.load_policy(path)
            outcomes["loaded"] += 1
            outcomes["data flips loaded"] += pos >= 8 + n
        except ArtifactError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 300 and outcomes["loaded"] > 0 and outcomes["data flips loaded"] == 0, outcomes


# ------------------------------------------------------------------------------------------------ not regular files


def _finishes(fn: Callable[[], Any], timeout: float = 20.0) -> BaseException | None:
    """Run ``fn`` in a thread; fail if it blocks (a FIFO opened for reading blocks until a writer comes)."""
    box: list[BaseException | None] = [None]

    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            box[0] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "the loader blocked"
    return box[0]


@pytest.mark.parametrize("kind", ["directory", "fifo", "symlink to /dev/zero", "broken symlink"])
def test_things_that_are_not_regular_files(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "x.safetensors"
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink to /dev/zero":
        path.symlink_to("/dev/zero")
    else:
        path.symlink_to(tmp_path / "gone.safetensors")
    expected = FileNotFoundError if kind == "broken symlink" else ArtifactError
    for load in [*OBJECT_LOADERS.values(), *RAW_LOADERS.values()]:
        exc = _finishes(lambda load=load: load(path))
        assert isinstance(exc, expected), (kind, exc)


# ------------------------------------------------------------------------------------------------ bounded reads


class _Counted:
    """A file object that records the furthest offset read and the bytes read."""

    def __init__(self, f: Any, log: dict[str, int]) -> None:
        self._f, self._log = f, log

    def read(self, n: int = -1) -> bytes:
        out = self._f.read(n)
        self._log["bytes"] += len(out)
        self._log["furthest"] = max(self._log["furthest"], self._f.tell())
        self._log["unbounded_reads"] += n is None or n < 0
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)

    def __enter__(self) -> _Counted:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._f.close()


@pytest.fixture
def read_log(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    log = {"bytes": 0, "furthest": 0, "unbounded_reads": 0, "opens": 0}
    real_open = open

    def counting_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        log["opens"] += 1
        return _Counted(real_open(file, mode, *args, **kwargs), log)

    monkeypatch.setattr(la_io, "open", counting_open, raising=False)
    return log


def _rchar() -> int:
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))


def test_trailing_garbage_is_never_read(ctx: Ctx, tmp_path: Path, read_log: dict[str, int]) -> None:
    path = tmp_path / "trailing.safetensors"
    garbage = 32 * 1024 * 1024
    with open(path, "wb") as f:
        f.write(ctx.policy)
        f.write(os.urandom(1024) * (garbage // 1024))
    end = declared_end(ctx.policy)
    good = la.load_policy(ctx.policy_path)
    read_log.update(bytes=0, furthest=0, opens=0)
    before = _rchar()
    loaded = la.load_policy(path)
    read_by_process = _rchar() - before
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), good.state_dict().values()))
    assert read_log["opens"] == 1 and read_log["unbounded_reads"] == 0
    assert read_log["furthest"] <= end, (read_log, end)
    assert read_log["bytes"] <= 2 * end
    assert read_by_process < garbage // 8, f"the process read {read_by_process} bytes for a {end}-byte artifact"


def test_metadata_reads_only_the_header(ctx: Ctx, tmp_path: Path, read_log: dict[str, int]) -> None:
    (n,) = struct.unpack("<Q", ctx.policy[:8])
    read_metadata(ctx.policy_path)
    assert read_log["furthest"] <= 8 + n and read_log["bytes"] <= 8 + n


@pytest.mark.parametrize(
    ("name", "limit"),
    [
        ("header length above limit", 8),
        ("header length 2**64-1", 8),
        ("header length beyond file", 8),
        ("metadata huge (> limit)", 8),
        ("offsets beyond the file", None),
        ("shape 2**62 x 2**62", None),
    ],
)
def test_bad_headers_are_refused_before_reading_data(
    name: str, limit: int | None, files: dict[str, Path], read_log: dict[str, int], ctx: Ctx
) -> None:
    path = files[name]
    raw_head = path.read_bytes()[:8]
    (n,) = struct.unpack("<Q", raw_head)
    _refused(la.load_policy, path)
    assert read_log["furthest"] <= (limit if limit is not None else 8 + n), read_log


def test_huge_metadata_file_is_really_over_the_limit(files: dict[str, Path]) -> None:
    assert files["metadata huge (> limit)"].stat().st_size > MAX_HEADER_BYTES


def test_save_artifact_writes_what_the_loader_reads(tmp_path: Path) -> None:
    # The writer's own output passes every check the loader makes (no false alarms from the hardening).
    path = save_artifact(tmp_path / "a.safetensors", {"x": torch.arange(5.0), "y": torch.zeros(0)}, "thing", {})
    tensors, meta = load_artifact(path, kind="thing")
    assert torch.equal(tensors["x"], torch.arange(5.0)) and tensors["y"].numel() == 0 and meta["format_version"] == 1


# ------------------------------------------------------------------------------------------------ bounded cost


def test_many_tfs_are_refused_before_they_are_parsed(ctx: Ctx, tmp_path: Path) -> None:
    # Checking the ids for duplicates pairwise cost time in K**2: 6 s at K = 20,000, hours in a 16 MiB header.
    path = tmp_path / "many.safetensors"
    path.write_bytes(with_meta(ctx.policy, tfs=[f"rotate({i / 1000:+g})" for i in range(30_000)]))
    start = time.perf_counter()
    with pytest.raises(
        ArtifactError, match=r"many.safetensors: 30000 TFs, more than the 10000 a policy file may name$"
    ):
        la.load_policy(path)
    assert time.perf_counter() - start < 2.0


def test_declared_sizes_are_checked_before_memory_is_allocated(
    ctx: Ctx, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # hidden = 1024 over 8,000 TFs declares an LSTM of 74 MB, for a file of a few kB: it must not be built for real
    # before its shapes are compared with the file's.
    import learned_augment.policy.files as files_module

    built: list[int] = []
    make = files_module.make_policy

    def spy(*args: Any, **kwargs: Any) -> Any:
        policy = make(*args, **kwargs)
        built.append(sum(p.numel() for p in policy.parameters() if not p.is_meta))
        return policy

    monkeypatch.setattr(files_module, "make_policy", spy)
    path = tmp_path / "wide.safetensors"
    tfs = [f"rotate({i / 100:+g})" for i in range(8_000)]
    path.write_bytes(with_meta(ctx.policy, tfs=tfs, hparams={"hidden": 1024, "cell": "lstm"}))
    with pytest.raises(ArtifactError, match="weights do not match|has shape"):
        la.load_policy(path)
    assert built and max(built) <= 2**22, built  # at most 16 MB built before the shapes are compared


def test_an_unknown_tf_in_a_file_is_one_short_line(files: dict[str, Path]) -> None:
    with pytest.raises(ArtifactError) as info:
        la.load_policy(files["unknown TF"])
    message = str(info.value).replace(str(files["unknown TF"]), "FILE")
    assert message == "FILE uses unknown TF 'teleport': register it with @learned_augment.register_tf before loading"
