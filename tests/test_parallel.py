"""The measures of a release protected in parallel: the same bytes on 1 or 2 local processes and on
a Dask cluster of worker processes (``opendata.parallel``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from shipped_specs import OUTSIDERS

ROOT = Path(__file__).resolve().parent.parent
SPEC = OUTSIDERS
NAME = "work-programme-subcontractor-mi"


def opendata(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "opendata.cli", *map(str, args)], capture_output=True, text=True, timeout=900
    )


def files(version: Path) -> dict[str, bytes]:
    return {str(p.relative_to(version)): p.read_bytes() for p in sorted(version.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_release_is_the_same_bytes_on_one_two_four_workers_and_a_dask_cluster(tmp_path):
    from distributed import LocalCluster

    run = opendata("sample", "--out", tmp_path / "mi", "--rows", 1500, "--months", 3, "--seed", 7, "--format", "csv")
    assert run.returncode == 0, run.stderr
    mi = tmp_path / "mi" / "work-programme-mi.csv"
    common = ("--release-time", "2026-11-12T09:30:00+00:00", "--late", "--reason", "test", "-q")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        where = {
            "one": ["--workers", 1],
            "two": ["--workers", 2],
            "four": ["--workers", 4],
            "dask": ["--scheduler", cluster.scheduler_address],
        }
        for label, extra in where.items():
            out = tmp_path / label
            run = opendata("release", SPEC, mi, "--out", out / "public", "--staging", out / "staging", *common, *extra)
            assert run.returncode == 0, run.stderr + run.stdout
    packages = {label: files(tmp_path / label / "staging" / NAME / "1.0.0") for label in where}
    assert packages["one"], "nothing was staged"
    assert packages["two"] == packages["one"]
    assert packages["four"] == packages["one"]
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


def _children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (Linux ``/proc``)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_a_release_killed_with_sigterm_leaves_no_worker_running(tmp_path):
    """A release killed by its scheduler (SIGTERM runs no cleanup) must not leave its pool workers
    computing for minutes: each one watches the release that started it and ends with it."""
    import signal
    import time

    run = opendata("sample", "--out", tmp_path / "mi", "--rows", 20000, "--months", 6, "--seed", 2, "--format", "csv")
    assert run.returncode == 0, run.stderr
    release = subprocess.Popen(
        [sys.executable, "-m", "opendata.cli", "release", SPEC, tmp_path / "mi" / "work-programme-mi.csv",
         "--out", tmp_path / "public", "--staging", tmp_path / "staging", "--workers", "2", "-q",
         "--release-time", "2026-11-12T09:30:00+00:00", "--late", "--reason", "test"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        workers: set[int] = set()
        deadline = time.monotonic() + 300
        while len(workers) < 2 and release.poll() is None and time.monotonic() < deadline:
            workers = {c for c in _children(release.pid) if "spawn_main" in _cmdline(c)}
            time.sleep(0.1)
        assert len(workers) == 2, "the release finished or failed before its pool started"
        time.sleep(1)  # the workers are protecting measures now
        release.send_signal(signal.SIGTERM)
        release.wait(timeout=30)
        deadline = time.monotonic() + 15
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [w for w in workers if _alive(w)], "pool workers outlived the release"
        assert not (tmp_path / "public").exists() or not any((tmp_path / "public").rglob("datapackage.json"))
    finally:
        release.kill()
        for w in workers:
            if _alive(w):
                os.kill(w, signal.SIGKILL)
