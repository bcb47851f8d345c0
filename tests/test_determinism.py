"""Reproducible to the byte: the same inputs give the same reports and manifest, whatever the
number of solver processes; across Polars thread counts every number agrees within 1e-12; and
a report read back from CSV or Parquet is the frame that was written."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import estimator
from estimator import solve, synthetic

#: Manifest entries that may differ between identical runs: how long they took.
VOLATILE = ("timings_seconds",)


def _manifest(folder: Path, drop: tuple[str, ...] = VOLATILE) -> dict:
    manifest = json.loads((folder / "manifest.json").read_text())
    for key in drop:
        manifest.pop(key)
    return manifest


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != "manifest.json"}


@pytest.mark.parametrize("scenario", ["march_2020", "small_cascade", "archegos_2021"])
def test_two_runs_write_the_same_bytes(scenario: str, tmp_path: Path) -> None:
    for folder in ("a", "b"):
        estimator.run(scenario).write(tmp_path / folder)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert _manifest(tmp_path / "a") == _manifest(tmp_path / "b")


def test_one_or_two_solver_processes_write_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With every batch sent to a local Dask cluster of two workers, the reports are those of
    one process, byte for byte."""
    monkeypatch.setattr(solve, "PARALLEL_MIN_PER_WORKER", 20)
    market = synthetic.market(1000, per_holder=8)
    spec = synthetic.scenario(market).scaled(2.0).model_copy(update={"name": "workers"})
    manifests = []
    for workers in (1, 2):
        result = estimator.run(spec, market, execution="min_cost", workers=workers)
        assert result.manifest.dump()["parameters"]["workers_used"] == workers
        result.write(tmp_path / str(workers))
        manifest = _manifest(tmp_path / str(workers))
        manifest["parameters"].pop("workers")
        manifest["parameters"].pop("workers_used")
        manifest["warnings"] = []  # "2 workers asked for" appears only where fewer were used
        manifests.append(manifest)
    assert _files(tmp_path / "1") == _files(tmp_path / "2")
    assert manifests[0] == manifests[1]


def test_an_existing_cluster_solves_as_one_process_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run given a Dask scheduler's address solves on that cluster (it is left running) and
    writes the reports of one process."""
    from distributed import Client, LocalCluster  # noqa: PLC0415

    monkeypatch.setattr(solve, "PARALLEL_MIN_PER_WORKER", 1)
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as cluster:
        address = cluster.scheduler_address
        remote = estimator.run("small_crash", execution="min_cost", scheduler=address)
        assert remote.manifest.dump()["parameters"]["workers_used"] == 1
        with Client(address) as client:  # the cluster is still up, and its worker solved
            caches = client.run(lambda: len(sys.modules["estimator.solve"]._WORKER_CACHES))
        assert list(caches.values()) == [1]
    local = estimator.run("small_crash", execution="min_cost")
    remote.write(tmp_path / "remote")
    local.write(tmp_path / "local")
    assert _files(tmp_path / "remote") == _files(tmp_path / "local")


def test_workers_that_cannot_be_used_are_told(tmp_path: Path) -> None:
    result = estimator.run("small_crash", execution="min_cost", workers=2)
    assert result.manifest.dump()["parameters"]["workers_used"] == 1
    assert any("2 workers asked for, 1 used" in str(w) for w in result.warnings.items)


def _close(a: object, b: object, path: str, scale: float = 0.0) -> list[str]:
    """Where two parsed values differ beyond 1e-12 relative (numbers; relative to ``scale``,
    the largest magnitude of their column, where a sum cancels to near zero) or at all."""
    if isinstance(a, float) and isinstance(b, float):
        same = math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12 * scale)
        return [] if same else [f"{path}: {a} != {b}"]
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys differ"]
        return [d for k in a for d in _close(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: lengths differ"]
        numbers = [abs(v) for v in a if isinstance(v, float)]
        column = max(numbers, default=scale)
        pairs = enumerate(zip(a, b, strict=True))
        return [d for i, (x, y) in pairs for d in _close(x, y, f"{path}.{i}", column)]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def test_polars_thread_counts_agree_within_1e_12(tmp_path: Path) -> None:
    """The determinism contract across machines: with one Polars thread or two, every number
    of every report and of the manifest is equal within 1e-12 relative."""
    exe = Path(sys.executable).with_name("forced-flow")
    for threads in ("1", "2"):
        env = {**os.environ, "POLARS_MAX_THREADS": threads}
        done = subprocess.run(
            [str(exe), "run", "march_2020", "--out", str(tmp_path / threads)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    one, two = tmp_path / "1", tmp_path / "2"
    assert sorted(p.name for p in one.iterdir()) == sorted(p.name for p in two.iterdir())
    differences = _close(_manifest(one), _manifest(two), "manifest")
    for path in sorted(one.glob("*.csv")):
        a = pl.read_csv(path, infer_schema_length=None).to_dict(as_series=False)
        b = pl.read_csv(two / path.name, infer_schema_length=None).to_dict(as_series=False)
        differences += _close(a, b, path.name)
    assert differences == []


@pytest.mark.parametrize("scenario", ["fire_sale_days", "small_crash"])
def test_reports_read_back_equal_the_frames(scenario: str, tmp_path: Path) -> None:
    result = estimator.run(scenario)
    result.write(tmp_path / "csv")
    result.write(tmp_path / "parquet", "parquet")
    for name, frame in result.tables().items():
        for column in ("round", "day", "first_round", "first_day", "last_day"):
            if column in frame.columns:
                assert frame.schema[column] == pl.Int64, (name, column)
        assert_frame_equal(pl.read_parquet(tmp_path / "parquet" / f"{name}.parquet"), frame)
        read = pl.read_csv(tmp_path / "csv" / f"{name}.csv", infer_schema_length=None)
        # a column without a single value has no type to read back
        empty = [c for c in frame.columns if frame[c].null_count() == frame.height]
        assert_frame_equal(read.drop(empty), frame.drop(empty), check_exact=True)
