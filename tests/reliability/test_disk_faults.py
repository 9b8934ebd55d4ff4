"""Saving when the disk fails: a full disk, a read-only folder, an I/O error at the rename.

Every save goes through one atomic writer (temporary file in the same folder, fsync, rename). Faults are injected
at each of its system calls; each must give an ``OSError`` that names the file and the cause and says the previous
file is intact, leave that previous file byte-for-byte unchanged and leave no temporary file behind. A fit whose
checkpoint write fails stops with that error, and resumes, once the disk is back, to the same result as an
uninterrupted fit.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from reliability_helpers import POLICY_FIT, REFINER_FIT, policy_data, refiner_data, tiny_policy, tiny_refiner

import learned_augment.io as la_io
from learned_augment.fit import fit_policy
from learned_augment.io import atomic_write_bytes, load_artifact, load_policy, save_artifact
from learned_augment.refine import Refiner, fit_refiner


def _oserror(code: int) -> OSError:
    return OSError(code, os.strerror(code))


class _FailingFile:
    """Wraps the temporary file: writes half of what it is given, then fails like a full disk."""

    def __init__(self, f: Any) -> None:
        self._f = f

    def write(self, data: bytes) -> int:
        self._f.write(bytes(data[: len(data) // 2]))
        raise _oserror(errno.ENOSPC)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)

    def __enter__(self) -> _FailingFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._f.close()


def _full_disk_on_write(monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.fdopen
    monkeypatch.setattr(la_io.os, "fdopen", lambda fd, *a, **k: _FailingFile(real(fd, *a, **k)))


def _full_disk_on_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    def fsync(fd: int) -> None:
        raise _oserror(errno.ENOSPC)

    monkeypatch.setattr(la_io.os, "fsync", fsync)


def _io_error_on_rename(monkeypatch: pytest.MonkeyPatch) -> None:
    def replace(src: Any, dst: Any) -> None:
        raise _oserror(errno.EIO)

    monkeypatch.setattr(la_io.os, "replace", replace)


def _read_only_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    # What a read-only mount or a folder without write permission does to mkstemp (root ignores chmod, so
    # simulate it; the real chmod case is below).
    def mkstemp(*args: Any, **kwargs: Any) -> Any:
        raise _oserror(errno.EROFS)

    monkeypatch.setattr(la_io.tempfile, "mkstemp", mkstemp)


FAULTS: dict[str, tuple[Callable[[pytest.MonkeyPatch], None], str]] = {
    "full disk during write": (_full_disk_on_write, "No space left on device"),
    "full disk at fsync": (_full_disk_on_fsync, "No space left on device"),
    "I/O error at rename": (_io_error_on_rename, "Input/output error"),
    "read-only folder": (_read_only_folder, "Read-only file system"),
}

SAVERS: dict[str, Callable[[Path], Any]] = {
    "policy.save": lambda p: tiny_policy(seed=1).save(str(p)),
    "Refiner.save": lambda p: tiny_refiner(seed=1).save(p),
    "save_artifact": lambda p: save_artifact(p, {"w": torch.ones(1000)}, "thing", {"v": 2}),
    "atomic_write_bytes": lambda p: atomic_write_bytes(p, b"new" * 1000),
}


@pytest.mark.parametrize("saver", list(SAVERS))
@pytest.mark.parametrize("fault", list(FAULTS))
def test_failed_save_keeps_the_previous_file(
    fault: str, saver: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "artifact.safetensors"
    save_artifact(path, {"w": torch.zeros(10)}, "thing", {"v": 1})
    before = path.read_bytes()
    inject, cause = FAULTS[fault]
    inject(monkeypatch)
    with pytest.raises(OSError) as info:
        SAVERS[saver](path)
    message = str(info.value)
    assert path.name in message and cause in message, message
    if fault != "read-only folder":
        assert "previous file" in message and "intact" in message, message
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_artifact(path, kind="thing")[1]["v"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name], "a temporary file was left behind"


def test_failed_first_save_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _full_disk_on_fsync(monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        tiny_policy().save(str(tmp_path / "p.safetensors"))
    assert list(tmp_path.iterdir()) == []


def test_really_read_only_folder(tmp_path: Path) -> None:
    path = tmp_path / "p.safetensors"
    tiny_policy().save(str(path))
    before = path.read_bytes()
    os.chmod(tmp_path, stat.S_IRUSR | stat.S_IXUSR)
    try:
        if os.access(tmp_path, os.W_OK):
            pytest.skip("this user ignores folder permissions (root); the simulated EROFS case covers it")
        with pytest.raises(PermissionError, match="cannot save.*writable"):
            tiny_policy(seed=1).save(str(path))
    finally:
        os.chmod(tmp_path, stat.S_IRWXU)
    assert path.read_bytes() == before


def test_saving_where_no_file_can_be(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tiny_policy().save(str(tmp_path / "missing" / "p.safetensors"))
    (tmp_path / "d.safetensors").mkdir()
    with pytest.raises(IsADirectoryError, match="directory"):
        tiny_refiner().save(tmp_path / "d.safetensors")


def test_saved_files_get_ordinary_permissions(tmp_path: Path) -> None:
    # The temporary file is created 0600; the artifact must end up as a plain open() would leave it.
    umask = os.umask(0o022)
    os.umask(umask)
    path = Path(tiny_policy().save(str(tmp_path / "p.safetensors")))
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    os.chmod(path, 0o640)
    tiny_policy(seed=1).save(str(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o640, "overwriting should keep the file's permissions"


# ------------------------------------------------------------------------------------------------ during a fit


class _DiskFullAfter:
    """``os.fsync`` that fails with ENOSPC from the ``n``-th call on (the disk filled up mid-fit)."""

    def __init__(self, n: int) -> None:
        self.n, self.calls = n, 0
        self.real = os.fsync

    def __call__(self, fd: int) -> None:
        self.calls += 1
        if self.calls >= self.n:
            raise _oserror(errno.ENOSPC)
        self.real(fd)


def test_fit_policy_stops_on_a_full_disk_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ckpt = tmp_path / "c.safetensors"
    monkeypatch.setattr(la_io.os, "fsync", _DiskFullAfter(3))
    with pytest.raises(OSError, match="No space left.*intact"):
        fit_policy(policy_data(), checkpoint=ckpt, checkpoint_every=2, **POLICY_FIT)
    monkeypatch.undo()
    assert load_artifact(ckpt)[1]["step"] == 4, "the last good checkpoint (step 4) should be intact"
    assert sorted(p.name for p in tmp_path.iterdir()) == [ckpt.name]
    resumed = fit_policy(policy_data(), checkpoint=ckpt, checkpoint_every=2, **POLICY_FIT)
    straight = fit_policy(policy_data(), **POLICY_FIT)
    assert all(torch.equal(a, b) for a, b in zip(resumed.state_dict().values(), straight.state_dict().values()))
    assert resumed.history == straight.history
    out = tmp_path / "p.safetensors"
    resumed.save(str(out))
    assert torch.equal(load_policy(out).state_dict()["head.weight"], straight.state_dict()["head.weight"])


def test_fit_refiner_stops_on_a_full_disk_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ckpt = tmp_path / "c.safetensors"
    x, y = refiner_data()
    monkeypatch.setattr(la_io.os, "fsync", _DiskFullAfter(4))
    with pytest.raises(OSError, match="No space left.*intact"):
        fit_refiner(x, y, checkpoint=ckpt, checkpoint_every=2, **REFINER_FIT)
    monkeypatch.undo()
    progress = load_artifact(ckpt)[1]["progress"]
    assert (progress["stage"], progress["step"]) == (1, 5), progress  # saves: 1:2, 1:4, 1:5 (end), then 2:2 failed
    resumed = fit_refiner(x, y, checkpoint=ckpt, checkpoint_every=2, **REFINER_FIT)
    straight = fit_refiner(x, y, **REFINER_FIT)
    for a, b in zip(
        resumed.synthetic_to_real + [resumed.real_to_shared[2]],
        straight.synthetic_to_real + [straight.real_to_shared[2]],
    ):
        assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    out = tmp_path / "r.safetensors"
    resumed.save(out)
    assert Refiner.load(out).stages == 2


def test_temporary_files_live_beside_the_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Same folder, hence same file system: the rename is atomic (a temp file in /tmp would make it a copy).
    seen: list[str] = []
    real = tempfile.mkstemp

    def spy(*args: Any, **kwargs: Any) -> Any:
        fd, name = real(*args, **kwargs)
        seen.append(name)
        return fd, name

    monkeypatch.setattr(la_io.tempfile, "mkstemp", spy)
    tiny_policy().save(str(tmp_path / "p.safetensors"))
    assert len(seen) == 1 and Path(seen[0]).parent == tmp_path
