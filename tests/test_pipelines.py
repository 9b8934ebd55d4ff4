"""examples/pipeline_{lightning,ray,webdataset}.py: the transform where users run their data, on tiny data.

Each example runs as its users would run it (a subprocess), and the tests read its JSON: ranks, workers and batches
draw distinct sequences, a second run with the same seeds draws the same ones, and the transform did augment.

The packages are optional (``pip install 'learned-augment[pipelines]'``); a test whose package is missing is
skipped, with the reason in pytest's short summary (``-rs``). The examples that the selected tests read all start
when the first of them asks: much of a run is waiting (process start-up, DDP rendezvous, Ray's actors), which the
runs overlap.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

import learned_augment as la
from learned_augment.data import load_sample

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EXTRA = "pip install 'learned-augment[pipelines]'"
# Generous: the runs share 2 cores with each other and with whatever else the machine does.
TIMEOUT_S = 300

LIGHTNING_ARGS = ["--n", "256", "--batch-size", "16", "--batches", "4", "--epochs", "2", "--seed", "0"]
RAY_ARGS = ["--n", "64", "--batch-size", "16", "--seed", "0", "--rerun"]
WDS_ARGS = ["--n", "32", "--shards", "2", "--workers", "2", "--epochs", "2", "--seed", "0"]

# name -> (modules it needs, the runs: one argument list each, compared with one another by the tests)
RUNS: dict[str, tuple[tuple[str, ...], list[list[str]]]] = {
    "lightning": (("lightning",), [LIGHTNING_ARGS, LIGHTNING_ARGS]),
    # One process, the pipeline run twice (--rerun): Ray's start-up is most of a run's time.
    "ray": (("ray", "pyarrow"), [RAY_ARGS]),
    "webdataset": (("webdataset",), [WDS_ARGS, WDS_ARGS]),
}
REPORT = {"lightning": "draws.json", "ray": "augmented.json", "webdataset": "draws.json"}


def missing(modules: tuple[str, ...]) -> list[str]:
    """The modules not installed; looked up, not imported (importing Ray or Lightning here costs seconds)."""
    return [m for m in modules if importlib.util.find_spec(m) is None]


def child_env() -> dict[str, str]:
    """This environment, one thread per process, and nothing that would join the runs to another job or cluster."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "RAY_ADDRESS"}
        and not k.startswith("PL_")
    }
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", RAY_USAGE_STATS_ENABLED="0")
    return env


@dataclass
class Run:
    """An example started in the background; :meth:`report` waits for it and reads its JSON."""

    name: str
    out: Path
    proc: subprocess.Popen[bytes]
    started: float

    @classmethod
    def start(cls, name: str, out: Path, args: list[str]) -> Run:
        out.mkdir(parents=True)
        cmd = [sys.executable, str(EXAMPLES / f"pipeline_{name}.py"), "--out", str(out), *args]
        with open(out / "log.txt", "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=child_env())
        return cls(name, out, proc, time.monotonic())

    def report(self) -> dict[str, Any]:
        try:
            rc = self.proc.wait(timeout=max(1.0, TIMEOUT_S - (time.monotonic() - self.started)))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"pipeline_{self.name}.py ran past {TIMEOUT_S} s; its output:\n{self.log()}")
        assert rc == 0, f"pipeline_{self.name}.py exited with {rc}; its output:\n{self.log()}"
        return json.loads((self.out / REPORT[self.name]).read_text())

    def log(self) -> str:
        return (self.out / "log.txt").read_text(errors="replace")[-4000:]


@pytest.fixture(scope="module")
def started(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, list[Run]]]:
    """Every example that a selected test reads and whose packages are installed, started at once: name -> runs."""
    selected = {item.name.split("_")[1] for item in request.session.items if item.path == request.path}
    root = tmp_path_factory.mktemp("pipelines")
    runs = {
        name: [Run.start(name, root / f"{name}{i}", args) for i, args in enumerate(arg_lists)]
        for name, (modules, arg_lists) in RUNS.items()
        if name in selected and not missing(modules)
    }
    yield runs
    for run in (r for rs in runs.values() for r in rs):
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()


def reports(started: dict[str, list[Run]], name: str) -> list[dict[str, Any]]:
    """The reports of ``name``'s runs, or a skip naming the missing packages."""
    absent = missing(RUNS[name][0])
    if absent:
        pytest.skip(f"pipeline_{name}: {', '.join(absent)} not installed ({EXTRA})")
    return [run.report() for run in started[name]]


@pytest.fixture(scope="module")
def lightning_reports(started: dict[str, list[Run]]) -> list[dict[str, Any]]:
    return reports(started, "lightning")


@pytest.fixture(scope="module")
def ray_report(started: dict[str, list[Run]]) -> dict[str, Any]:
    return reports(started, "ray")[0]


@pytest.fixture(scope="module")
def wds_reports(started: dict[str, list[Run]]) -> list[dict[str, Any]]:
    return reports(started, "webdataset")


@pytest.fixture(scope="module")
def raw_digests() -> dict[int, str]:
    """Digests of the shipped digits as stored (index -> digest), to tell augmented outputs from untouched ones."""
    images = load_sample()[0][:64]
    return {i: hashlib.sha1(img.tobytes()).hexdigest()[:16] for i, img in enumerate(images)}


def sequences(draws: list[dict[str, Any]]) -> list[tuple[int, ...]]:
    return [tuple(d["tf_ids"]) for d in draws if d["tf_ids"] is not None]


def same_kth(first: list[Any], second: list[Any]) -> int:
    """How many k-th draws of two streams are equal. The shipped policy draws two TFs of 56, so independent streams
    repeat a sequence by chance; one stream used twice repeats all of them."""
    return sum(a == b for a, b in zip(first, second))


def by_chance(n: int) -> int:
    """At most this many of n independent draws may coincide (chance: about n / 1,000 for this policy)."""
    return max(1, n // 20)


# ---------------------------------------------------------------------------------------------- Lightning, DDP


def test_lightning_ranks_draw_distinct_sequences(lightning_reports: list[dict[str, Any]]) -> None:
    report = lightning_reports[0]
    assert report["world_size"] == 2 and len(report["draws"]) == 2
    rank0, rank1 = report["draws"]
    assert len(rank0) == len(rank1) == 2 * 4 * 16  # epochs * batches * batch size
    # The ranks are seeded alike; without the rank in the streams they would draw the same k-th sequences.
    pairs = [(a["tf_ids"], b["tf_ids"]) for a, b in zip(rank0, rank1) if a["tf_ids"] and b["tf_ids"]]
    assert pairs and same_kth(*zip(*pairs)) <= by_chance(len(pairs))
    for row in report["summary"]:
        assert row["distinct_sequences"] >= 0.8 * row["augmented"], "a rank repeated its sequences"


def test_lightning_applies_the_policy_to_about_half(lightning_reports: list[dict[str, Any]]) -> None:
    for row in lightning_reports[0]["summary"]:
        assert 0.3 < row["augmented"] / row["samples"] < 0.7, row  # p=0.5 over 128 samples
    tf_ids = {i for rank in lightning_reports[0]["draws"] for seq in sequences(rank) for i in seq}
    n_tfs = len(la.load_pretrained("mnist-lstm").tfset)
    assert len(tf_ids) > 5 and all(0 <= i < n_tfs for i in tf_ids)


def test_lightning_epochs_draw_afresh(lightning_reports: list[dict[str, Any]]) -> None:
    for draws in lightning_reports[0]["draws"]:
        first = sequences([d for d in draws if d["epoch"] == 0])
        second = sequences([d for d in draws if d["epoch"] == 1])
        assert first and second and same_kth(first, second) <= by_chance(min(len(first), len(second)))


def test_lightning_second_run_draws_the_same(lightning_reports: list[dict[str, Any]]) -> None:
    first, second = lightning_reports
    assert first["draws"] == second["draws"]


# ---------------------------------------------------------------------------------------------- Ray Data


def test_ray_batches_are_keyed_to_the_data(ray_report: dict[str, Any]) -> None:
    rows = ray_report["rows"]
    n = ray_report["n"]
    assert [r["id"] for r in rows] == list(range(2 * n))
    assert all(r["batch"] == r["id"] - r["id"] % 16 for r in rows)
    # A fresh pipeline on one actor (other processes, other batch placement) augments every row alike.
    assert ray_report["rerun_identical"] is True


def test_ray_draws_follow_each_batch_first_id(ray_report: dict[str, Any]) -> None:
    """Which rows a batch augments is drawn from ``(seed, step)``: redo it here, at step = the batch's first id."""
    rows, n = ray_report["rows"], ray_report["n"]
    images = torch.from_numpy(load_sample()[0][:n]).unsqueeze(1)
    aug = la.PolicyAugment.from_pretrained("mnist-lstm", p=ray_report["p"], seed=ray_report["seed"])
    for start in range(0, 2 * n, 16):
        batch = images[[i % n for i in range(start, start + 16)]]
        aug.step = start
        expected = (aug(batch) != batch).flatten(1).any(dim=1).tolist()
        assert expected == [r["augmented"] for r in rows[start : start + 16]], f"batch {start}"


def test_ray_copies_in_different_batches_differ(ray_report: dict[str, Any], raw_digests: dict[int, str]) -> None:
    rows, n = ray_report["rows"], ray_report["n"]
    summary = ray_report["summary"]
    assert summary["copies_both_augmented"] > 0
    assert summary["copies_augmented_alike"] == 0
    for r in rows:
        # Augmented rows changed; the others came through untouched.
        assert (r["digest"] != raw_digests[r["id"] % n]) == r["augmented"], r
    assert 0.3 < sum(r["augmented"] for r in rows) / len(rows) < 0.7


# ---------------------------------------------------------------------------------------------- WebDataset


def test_webdataset_workers_augment_the_same_images_differently(wds_reports: list[dict[str, Any]]) -> None:
    report = wds_reports[0]
    assert {(r["epoch"], r["worker"], r["shard"]) for r in report["summary"]} == {
        (e, w, f"digits-{w:06d}.tar") for e in range(2) for w in range(2)
    }
    for epoch in range(2):
        by_worker = [{d["key"]: d for d in report["draws"] if d["epoch"] == epoch and d["worker"] == w} for w in (0, 1)]
        assert set(by_worker[0]) == set(by_worker[1]) == {f"{i:06d}" for i in range(32)}
        both = [k for k in by_worker[0] if by_worker[0][k]["tf_ids"] and by_worker[1][k]["tf_ids"]]
        assert both, "no image was augmented by both workers"
        pair = ([by_worker[w][k]["tf_ids"] for k in both] for w in (0, 1))
        assert same_kth(*pair) <= by_chance(len(both))
        pair = ([by_worker[w][k]["digest"] for k in both] for w in (0, 1))
        assert same_kth(*pair) <= by_chance(len(both))
    assert all(r["distinct_sequences"] >= 0.8 * r["augmented"] for r in report["summary"])


def test_webdataset_applies_the_policy(wds_reports: list[dict[str, Any]], raw_digests: dict[int, str]) -> None:
    draws = wds_reports[0]["draws"]
    for d in draws:
        assert (d["digest"] != raw_digests[int(d["key"])]) == (d["tf_ids"] is not None), d
    assert 0.3 < len(sequences(draws)) / len(draws) < 0.7


def test_webdataset_epochs_draw_afresh(wds_reports: list[dict[str, Any]]) -> None:
    draws = wds_reports[0]["draws"]
    for worker in (0, 1):
        first = sequences([d for d in draws if d["epoch"] == 0 and d["worker"] == worker])
        second = sequences([d for d in draws if d["epoch"] == 1 and d["worker"] == worker])
        assert first and second and same_kth(first, second) <= by_chance(min(len(first), len(second)))


def test_webdataset_second_run_draws_the_same(wds_reports: list[dict[str, Any]]) -> None:
    first, second = wds_reports
    assert first["draws"] == second["draws"]
