"""Same input, same bytes, under any load: no wall-clock limit may change a result.

The optimal method and controlled rounding are bounded by deterministic work (branch-and-bound
nodes), never by time. These runs repeat `opendata protect` (a 567-cell table, where the optimal
method's MILP is the long part) and `opendata release` with three CPU-burning processes beside them
and compare every byte with the idle run.
"""

from __future__ import annotations

import filecmp
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shipped_specs import OUTSIDERS

from opendata.embargo import OWNER_FILE

ROOT = Path(__file__).resolve().parent.parent
SPEC = OUTSIDERS

pytestmark = pytest.mark.slow


def opendata(*args) -> None:
    run = subprocess.run([sys.executable, "-m", "opendata.cli", *map(str, args)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr + run.stdout


@contextmanager
def burners(n: int = 3):
    """``n`` processes spinning on the CPU for as long as the block runs."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def same_tree(a: Path, b: Path) -> list[str]:
    """Relative paths whose bytes differ (or exist on one side only); the staging area's note of
    which tree it serves holds that tree's absolute path, so it is left out."""
    files_a = {p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.name != OWNER_FILE}
    files_b = {p.relative_to(b) for p in b.rglob("*") if p.is_file() and p.name != OWNER_FILE}
    differ = sorted(str(p) for p in files_a ^ files_b)
    differ += sorted(str(p) for p in files_a & files_b if not filecmp.cmp(a / p, b / p, shallow=False))
    return differ


def test_protect_and_release_write_the_same_bytes_idle_and_under_load(tmp_path):
    rng = np.random.default_rng(5)
    rows = [
        (f"A{a}", f"B{b}", f"C{c}", int(rng.choice([rng.integers(0, 10), rng.integers(10, 80)])))
        for a in range(8)
        for b in range(8)
        for c in range(6)
    ]
    cells = tmp_path / "cells.csv"
    pd.DataFrame(rows, columns=["a", "b", "c", "n"]).to_csv(cells, index=False)
    opendata("sample", "--out", tmp_path / "mi", "--rows", 1000, "--months", 4, "--format", "csv", "-q")
    mi = tmp_path / "mi" / "work-programme-mi.csv"

    def run(tag: str) -> Path:
        out = tmp_path / tag
        out.mkdir()
        opendata("protect", cells, "--dim", "a", "--dim", "b", "--dim", "c", "--value", "n", "--method", "optimal",
                 "--out", out / "cells.csv", "--public", out / "public.csv")  # fmt: skip
        opendata("release", SPEC, mi, "--out", out / "releases", "--staging", out / "staging",
                 "--release-time", "2026-10-01T08:30:00+00:00", "--late", "--reason", "test", "-q")  # fmt: skip
        return out

    idle = run("idle")
    with burners(3):
        busy = run("busy")
    assert same_tree(idle, busy) == []
    assert (idle / "public.csv").read_text().count("[c]") > 0
