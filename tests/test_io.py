import json
import struct

import pytest
import torch

import learned_augment as la
from learned_augment.io import (
    DIGEST_KEY,
    ArtifactError,
    atomic_write_bytes,
    load_artifact,
    load_policy,
    read_metadata,
    save_artifact,
    tensor_digest,
)
from learned_augment.policy import GRUPolicy, LSTMPolicy, MeanFieldPolicy, UniformPolicy
from learned_augment.pretrained import pretrained_path


@pytest.mark.parametrize("cls", [UniformPolicy, MeanFieldPolicy, LSTMPolicy, GRUPolicy])
def test_policy_round_trip_is_bit_exact(tmp_path, cls):
    policy = cls("cifar10", 6)
    with torch.no_grad():
        for p in policy.parameters():
            p.normal_()
    policy.history = {"d_loss": [0.5, 0.25]}
    policy.provenance = {"steps": 2}
    path = tmp_path / "p.safetensors"
    policy.save(str(path))
    loaded = load_policy(path)
    assert type(loaded) is cls and loaded.tfset == policy.tfset and loaded.seq_len == 6
    for (k, a), (k2, b) in zip(policy.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    assert loaded.history == policy.history and loaded.provenance == policy.provenance
    g = torch.Generator().manual_seed(0)
    g2 = torch.Generator().manual_seed(0)
    assert torch.equal(policy.sample(50, g), loaded.sample(50, g2))
    meta = read_metadata(path)
    assert meta["format_version"] == 1 and meta["kind"] == "policy" and meta["tfs"] == policy.tfset.ids
    assert meta["library_version"] == la.__version__


def _header(path):
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def _rewrite(path, header, data):
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + data)


def _saved(tmp_path):
    path = tmp_path / "p.safetensors"
    MeanFieldPolicy("mnist", 4).save(str(path))
    return path


def test_unknown_version_is_refused(tmp_path):
    path = _saved(tmp_path)
    header, data = _header(path)
    meta = json.loads(header["__metadata__"]["learned_augment"])
    meta["format_version"] = 99
    header["__metadata__"]["learned_augment"] = json.dumps(meta)
    _rewrite(path, header, data)
    with pytest.raises(ArtifactError, match="format version 99"):
        load_policy(path)


def test_unknown_tf_is_refused(tmp_path):
    path = _saved(tmp_path)
    header, data = _header(path)
    meta = json.loads(header["__metadata__"]["learned_augment"])
    meta["tfs"][0] = "teleport(+3)"
    header["__metadata__"]["learned_augment"] = json.dumps(meta)
    _rewrite(path, header, data)
    with pytest.raises(ArtifactError, match="teleport"):
        load_policy(path)


@pytest.mark.parametrize("cut", [0, 4, 20, -3])
def test_truncated_or_empty_file_is_refused(tmp_path, cut):
    path = _saved(tmp_path)
    raw = path.read_bytes()
    path.write_bytes(raw[:cut] if cut >= 0 else raw[:cut])
    with pytest.raises(ArtifactError):
        load_policy(path)


def test_not_safetensors_and_directory_are_refused(tmp_path):
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"\x80\x04\x95" + b"pickle-ish payload" * 10)
    with pytest.raises(ArtifactError):
        load_policy(bad)
    with pytest.raises(ArtifactError, match="not a regular file"):
        load_policy(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_policy(tmp_path / "missing.safetensors")


def test_wrong_kind_and_wrong_shapes_are_refused(tmp_path):
    path = tmp_path / "a.safetensors"
    save_artifact(path, {"w": torch.zeros(3)}, "refiner", {})
    with pytest.raises(ArtifactError, match="refiner"):
        load_policy(path)
    path2 = tmp_path / "b.safetensors"
    meta = {"model": "mean_field", "tfs": ["hflip", "rotate(+5)"], "seq_len": 3, "hparams": {}}
    save_artifact(path2, {"logits": torch.zeros(5)}, "policy", meta)
    with pytest.raises(ArtifactError, match="shape"):
        load_policy(path2)


def test_atomic_write_keeps_old_file_when_folder_is_read_only(tmp_path):
    import os

    target = tmp_path / "keep.bin"
    atomic_write_bytes(target, b"old")
    os.chmod(tmp_path, 0o500)
    try:
        if os.access(tmp_path, os.W_OK):  # running as root: permissions are not enforced
            pytest.skip("permissions are not enforced for this user")
        with pytest.raises(OSError, match="cannot save"):
            atomic_write_bytes(target, b"new")
    finally:
        os.chmod(tmp_path, 0o700)
    assert target.read_bytes() == b"old"


def test_save_artifact_rejects_non_json_metadata(tmp_path):
    with pytest.raises(TypeError, match="JSON"):
        save_artifact(tmp_path / "x.safetensors", {}, "policy", {"bad": float("nan")})
    assert not (tmp_path / "x.safetensors").exists()


def test_load_artifact_returns_tensors(tmp_path):
    path = tmp_path / "t.safetensors"
    save_artifact(path, {"a": torch.arange(6).view(2, 3)}, "thing", {"x": [1, 2]})
    tensors, meta = load_artifact(path, kind="thing")
    assert torch.equal(tensors["a"], torch.arange(6).view(2, 3)) and meta["x"] == [1, 2]


# ------------------------------------------------------------------------------------------------ tensor digest


def _set_meta(path, **changes):
    header, data = _header(path)
    meta = json.loads(header["__metadata__"]["learned_augment"])
    for k, v in changes.items():
        if v is None:
            meta.pop(k)
        else:
            meta[k] = v
    header["__metadata__"]["learned_augment"] = json.dumps(meta)
    _rewrite(path, header, data)


@pytest.mark.parametrize("damage", ["zeroed", "one bit"])
def test_weights_changed_after_saving_are_refused(tmp_path, damage):
    path = tmp_path / "p.safetensors"
    LSTMPolicy("mnist", 4).save(str(path))
    header, data = _header(path)
    if damage == "zeroed":
        data = bytes(len(data))  # zeros are finite, well-shaped weights: only the digest tells
    else:
        data = data[:100] + bytes([data[100] ^ 1]) + data[101:]
    _rewrite(path, header, data)
    for load in (load_policy, load_artifact, lambda p: la.LearnedPolicyTransform(str(p))):
        with pytest.raises(ArtifactError, match=DIGEST_KEY) as info:
            load(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert DIGEST_KEY in read_metadata(path)  # the header alone is still readable, for inspection


def test_malformed_digest_is_refused(tmp_path):
    path = _saved(tmp_path)
    for bad in ["md5:00", 5, ["sha256:00"]]:
        _set_meta(path, **{DIGEST_KEY: bad})
        with pytest.raises(ArtifactError, match=f"malformed {DIGEST_KEY}"):
            load_policy(path)


def test_files_without_a_digest_still_load(tmp_path):
    policy = MeanFieldPolicy("mnist", 4)
    path = tmp_path / "old.safetensors"
    policy.save(str(path))
    _set_meta(path, **{DIGEST_KEY: None})
    loaded = load_policy(path)
    assert all(torch.equal(a, b) for a, b in zip(policy.state_dict().values(), loaded.state_dict().values()))
    # The shipped artifacts: some were saved before digests existed, the refitted ones carry one; all load.
    without = [n for n in la.list_pretrained() if DIGEST_KEY not in read_metadata(pretrained_path(n))]
    assert without, "no shipped artifact exercises the digest-less path any more"
    for name in la.list_pretrained():
        load_artifact(pretrained_path(name))


def test_digest_is_canonical(tmp_path):
    w = torch.arange(6.0).view(2, 3)
    tensors = {"w": w, "b": torch.tensor([1, 2])}
    digest = tensor_digest(tensors)
    assert digest.startswith("sha256:") and len(digest) == len("sha256:") + 64
    # Neither the dict order nor the memory layout matters...
    assert tensor_digest({"b": torch.tensor([1, 2]), "w": w.t().contiguous().t()}) == digest
    # ...every name, dtype, shape and byte does, even when the bytes are the same.
    for changed in (
        {"v": w, "b": tensors["b"]},
        {"w": w.view(3, 2), "b": tensors["b"]},
        {"w": w.view(torch.int32), "b": tensors["b"]},
        {"w": w, "b": torch.tensor([1, 3])},
        {"w": w},
    ):
        assert tensor_digest(changed) != digest
    # Saving computes it afresh (a stale one in the metadata is replaced) and loading checks it.
    path = save_artifact(tmp_path / "t.safetensors", tensors, "thing", {DIGEST_KEY: "sha256:stale"})
    loaded, meta = load_artifact(path, kind="thing")
    assert meta[DIGEST_KEY] == digest == tensor_digest(loaded)


def test_io_is_the_container_only() -> None:
    """Policy files live with the policies (``learned_augment.policy.files``); ``io`` imports no policy code and
    keeps the old names importable."""
    import ast
    from pathlib import Path

    import learned_augment.io as io
    from learned_augment.policy import files

    tree = ast.parse(Path(io.__file__).read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    modules = [n.module or "" for n in top if isinstance(n, ast.ImportFrom)]
    assert not any("policy" in m or "ops" in m for m in modules), modules
    assert io.load_policy is files.load_policy and io.save_policy is files.save_policy
    with pytest.raises(AttributeError, match="no attribute"):
        io.not_a_name  # noqa: B018
