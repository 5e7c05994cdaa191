"""The measures of a release protected in parallel: the same bytes on 1 or 2 local processes and on
a Dask cluster of worker processes (``opendata.parallel``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "work-programme.yaml"
NAME = "work-programme-subcontractor-mi"


def opendata(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "opendata.cli", *map(str, args)], capture_output=True, text=True, timeout=900
    )


def files(version: Path) -> dict[str, bytes]:
    return {str(p.relative_to(version)): p.read_bytes() for p in sorted(version.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_release_is_the_same_bytes_on_one_two_workers_and_a_dask_cluster(tmp_path):
    from distributed import LocalCluster

    run = opendata("sample", "--out", tmp_path / "mi", "--rows", 1500, "--months", 3, "--seed", 7, "--format", "csv")
    assert run.returncode == 0, run.stderr
    mi = tmp_path / "mi" / "work-programme-mi.csv"
    common = ("--release-time", "2026-11-12T09:30:00+00:00", "--late", "--reason", "test", "-q")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        where = {"one": ["--workers", 1], "two": ["--workers", 2], "dask": ["--scheduler", cluster.scheduler_address]}
        for label, extra in where.items():
            out = tmp_path / label
            run = opendata("release", SPEC, mi, "--out", out / "public", "--staging", out / "staging", *common, *extra)
            assert run.returncode == 0, run.stderr + run.stdout
    packages = {label: files(tmp_path / label / "staging" / NAME / "1.0.0") for label in where}
    assert packages["one"], "nothing was staged"
    assert packages["two"] == packages["one"]
    assert packages["dask"] == packages["one"]


def test_an_unknown_scheduler_is_a_clear_error_before_any_work(tmp_path):
    """Reported first: the MI named here does not even exist."""
    run = opendata(
        "release", SPEC, tmp_path / "missing.csv", "--out", tmp_path / "r", "--late", "--reason", "test",
        "--scheduler", "nowhere://x", "--release-time", "2026-11-12T09:30:00+00:00",
    )  # fmt: skip
    assert run.returncode == 1
    assert "Dask scheduler at nowhere://x" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "r").exists()
