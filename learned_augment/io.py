"""One file format for every artifact: a ``.safetensors`` file whose JSON metadata says what it is.

Layout (the safetensors format): 8-byte little-endian header length N, N bytes of JSON header (tensor dtypes,
shapes, byte offsets and a ``__metadata__`` string map), then the raw tensor bytes. Our metadata lives under the key
``learned_augment`` as one JSON document with ``format_version``, ``kind`` and whatever the artifact needs.

Loading never unpickles and never executes anything: the header is parsed and checked (sizes, offsets, dtypes)
before any tensor byte is read, and no more than the header declares is read. Writes are atomic: a temporary file
in the same folder is written, flushed to disk and renamed over the target, so a crash or a full disk never leaves a
half-written artifact and never destroys the previous one.

Every save stores ``tensor_digest`` in the metadata: the SHA-256 of the tensors (name, dtype, shape and bytes, in
name order). Loading tensors checks it, so weights changed after saving (zeroed, bit-flipped) are refused; files
written before the digest existed have none and load as before. The digest detects accidents, it does not
authenticate anyone: whoever can write the weights can write a new digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ._version import __version__

FORMAT_VERSION = 1
META_KEY = "learned_augment"
MAX_HEADER_BYTES = 16 * 1024 * 1024
MAX_FILE_BYTES = 4 * 1024**3
DIGEST_KEY = "tensor_digest"
_DIGEST_ALGORITHM = "sha256"

_DTYPE_SIZES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}


class ArtifactError(ValueError):
    """A file is not a valid learned_augment artifact (corrupted, truncated, wrong kind or version)."""


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename). The old file survives any failure."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"cannot save {path}: folder {parent} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"cannot save to {path}: it is a directory")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise OSError(f"cannot save {path}: {exc.strerror or exc} (is the folder writable?)") from exc
    try:
        # mkstemp makes the file 0600; an artifact should get the permissions any other new file would.
        os.fchmod(fd, _new_file_mode(path))
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise OSError(f"cannot save {path}: {exc.strerror or exc}; the previous file, if any, is intact") from exc
        raise
    return path


def _new_file_mode(path: Path) -> int:
    """The mode a plain ``open(path, "wb")`` would leave: the existing file's, else 0666 less the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        pass
    try:
        with open("/proc/self/status") as f:
            umask = next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        umask = os.umask(0o022)  # no /proc: read it by setting it (briefly visible to other threads)
        os.umask(umask)
    return 0o666 & ~umask


def save_artifact(
    path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], kind: str, metadata: dict[str, Any]
) -> Path:
    """Save tensors and JSON-serialisable ``metadata`` as one safetensors file, atomically.

    The metadata gets ``tensor_digest`` (see :func:`tensor_digest`), replacing any stale one ``metadata`` carries.
    """
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    meta = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "library_version": __version__,
        **metadata,
        DIGEST_KEY: tensor_digest(cpu),
    }
    try:
        meta_json = json.dumps(meta, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"artifact metadata must be JSON-serialisable: {exc}") from exc
    return atomic_write_bytes(path, st_save(cpu, metadata={META_KEY: meta_json}))


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """``"sha256:<hex>"`` of named tensors, independent of dict order and of how they are laid out in memory.

    Each tensor, in sorted name order, contributes one JSON line ``[name, dtype, shape, nbytes]`` followed by its
    raw (little-endian, C-order) bytes; the declared sizes make the concatenation unambiguous.
    """
    h = hashlib.new(_DIGEST_ALGORITHM)
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        raw = t.reshape(-1).view(torch.uint8).numpy()
        dtype = str(t.dtype).removeprefix("torch.")
        h.update(json.dumps([name, dtype, list(t.shape), raw.nbytes]).encode() + b"\n")
        h.update(raw.data)
    return f"{_DIGEST_ALGORITHM}:{h.hexdigest()}"


def _check_digest(meta: dict[str, Any], tensors: dict[str, torch.Tensor], path: Path) -> None:
    stored = meta.get(DIGEST_KEY)
    if stored is None:
        return  # written before digests existed, like the shipped pretrained files
    if not isinstance(stored, str) or not stored.startswith(f"{_DIGEST_ALGORITHM}:"):
        raise ArtifactError(f"{path}: malformed {DIGEST_KEY} in the metadata (expected '{_DIGEST_ALGORITHM}:<hex>')")
    if tensor_digest(tensors) != stored:
        raise ArtifactError(
            f"{path} is corrupted: its tensors do not match the {DIGEST_KEY} saved with them "
            "(were the weights modified after saving?)"
        )


def _read_header(f: Any, size: int, path: Path) -> tuple[dict[str, Any], int]:
    if size < 8:
        raise ArtifactError(f"{path} is not a learned_augment file: only {size} bytes (empty or truncated)")
    (n,) = struct.unpack("<Q", f.read(8))
    if n == 0 or n > MAX_HEADER_BYTES:
        raise ArtifactError(f"{path} is not a safetensors file (header length {n} is implausible)")
    if 8 + n > size:
        raise ArtifactError(f"{path} is truncated: header needs {n} bytes, file has {size - 8}")
    raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path} is not a safetensors file (unreadable header: {exc})") from None
    except RecursionError:
        # json's C decoder recurses per nesting level: '[[[[...' crafted to depth 10^5 would escape as RecursionError.
        raise ArtifactError(f"{path} is not a safetensors file (header nested too deeply)") from None
    if not isinstance(header, dict):
        raise ArtifactError(f"{path} has a malformed safetensors header")
    return header, 8 + n


def _check_tensors(header: dict[str, Any], data_bytes: int, path: Path) -> None:
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(info):
            raise ArtifactError(f"{path}: malformed entry for tensor {name!r}")
        dtype, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in _DTYPE_SIZES:
            raise ArtifactError(f"{path}: tensor {name!r} has unsupported dtype {dtype!r}")
        if not (isinstance(shape, list) and all(isinstance(s, int) and s >= 0 for s in shape)):
            raise ArtifactError(f"{path}: tensor {name!r} has a malformed shape {shape!r}")
        if not (isinstance(offs, list) and len(offs) == 2 and all(isinstance(o, int) for o in offs)):
            raise ArtifactError(f"{path}: tensor {name!r} has malformed offsets")
        numel = 1
        for s in shape:
            numel *= s
        start, end = offs
        if not 0 <= start <= end <= data_bytes or end - start != numel * _DTYPE_SIZES[dtype]:
            raise ArtifactError(f"{path} is truncated or corrupted: tensor {name!r} lies outside the data")


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check only the metadata of an artifact (fast: tensor bytes are not read)."""
    return _load(path, kind=None, tensors=False)[1]


def load_artifact(
    path: str | os.PathLike[str], kind: str | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load ``(tensors, metadata)`` from an artifact, checking format, version and (if given) kind."""
    return _load(path, kind=kind, tensors=True)


def _load(path: str | os.PathLike[str], kind: str | None, tensors: bool) -> tuple[dict[str, torch.Tensor], dict]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if not path.is_file():
        raise ArtifactError(f"{path} is not a regular file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ArtifactError(f"{path} is too large to be an artifact ({size} bytes)")
    with open(path, "rb") as f:
        header, data_start = _read_header(f, size, path)
        meta_map = header.get("__metadata__")
        if not isinstance(meta_map, dict) or META_KEY not in meta_map or not isinstance(meta_map[META_KEY], str):
            raise ArtifactError(f"{path} is a safetensors file but not a learned_augment artifact (no metadata)")
        try:
            meta = json.loads(meta_map[META_KEY])
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"{path}: artifact metadata is not valid JSON ({exc})") from None
        except RecursionError:
            raise ArtifactError(f"{path}: artifact metadata is nested too deeply") from None
        if not isinstance(meta, dict):
            raise ArtifactError(f"{path}: artifact metadata must be a JSON object")
        version = meta.get("format_version")
        # An exact int: JSON ``true`` and ``1.0`` compare equal to 1 in Python but are not what a writer produces.
        if type(version) is not int or version != FORMAT_VERSION:
            raise ArtifactError(
                f"{path} has format version {version!r}; this learned_augment ({__version__}) reads version "
                f"{FORMAT_VERSION}. Upgrade the library or re-save the artifact."
            )
        if kind is not None and meta.get("kind") != kind:
            raise ArtifactError(f"{path} holds a {meta.get('kind')!r}, not a {kind!r}")
        data_bytes = size - data_start
        _check_tensors(header, data_bytes, path)
        if not tensors:
            return {}, meta
        ends = [info["data_offsets"][1] for k, info in header.items() if k != "__metadata__"]
        declared = max(ends, default=0)
        f.seek(0)
        blob = f.read(data_start + declared)
    try:
        out = st_load(blob)
    except Exception as exc:  # safetensors raises its own error types for corrupt payloads
        raise ArtifactError(f"{path} is corrupted: {exc}") from None
    _check_digest(meta, out, path)
    return out, meta


# ------------------------------------------------------------------------------------------------ nested state


def flatten_state(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Split a nested structure (e.g. an optimizer ``state_dict``) into JSON and named tensors.

    Tensors are moved into ``tensors`` under ``prefix/...`` keys and replaced by ``{"__tensor__": key}``;
    everything else must be JSON-serialisable. :func:`unflatten_state` reverses it.
    """
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().cpu().clone()
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        return {"__dict__": [[_key(k), flatten_state(v, f"{prefix}/{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [flatten_state(v, f"{prefix}/{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at {prefix}")


def _key(k: Any) -> Any:
    if isinstance(k, (str, int)):
        return k
    raise TypeError(f"state keys must be str or int, got {type(k).__name__}")


def unflatten_state(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten_state`."""
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            key = obj["__tensor__"]
            if key not in tensors:
                raise ArtifactError(f"checkpoint is missing tensor {key!r}")
            return tensors[key]
        if "__dict__" in obj:
            return {k: unflatten_state(v, tensors) for k, v in obj["__dict__"]}
        raise ArtifactError("malformed nested state in checkpoint")
    if isinstance(obj, list):
        return [unflatten_state(v, tensors) for v in obj]
    return obj


def check_optimizer_state(optimizer: torch.optim.Optimizer, name: str) -> None:
    """Raise ``ValueError`` unless every state tensor of a just-loaded ``optimizer`` fits its parameter.

    ``Optimizer.load_state_dict`` does not compare them: a wrong shape would fail only inside the first step, in
    torch. ``step`` must be one number; every other entry (Adam's moments, SGD's momentum) ``None`` or a tensor of
    its parameter's shape. ``name`` formats the stored name of an entry from ``index`` and ``key``.
    """
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for index, param in enumerate(params):
        for key, value in optimizer.state.get(param, {}).items():
            where = name.format(index=index, key=key)
            if key == "step":
                if isinstance(value, torch.Tensor) and value.numel() == 1 or isinstance(value, (int, float)):
                    continue
                raise ValueError(f"optimizer state {where!r} must be one number")
            if value is None:
                continue
            if not isinstance(value, torch.Tensor):
                raise ValueError(f"optimizer state {where!r} must be a tensor, got {type(value).__name__}")
            if value.shape != param.shape:
                raise ValueError(
                    f"optimizer state {where!r} has shape {tuple(value.shape)}, expected {tuple(param.shape)}"
                )


_MOVED = {"save_policy", "load_policy", "policy_from_state"}


def __getattr__(name: str) -> Any:
    # Policy files are written and read by learned_augment.policy.files; these names stay importable from here.
    if name in _MOVED:
        from .policy import files

        return getattr(files, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
