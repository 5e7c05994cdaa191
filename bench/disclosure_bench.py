"""Disclosure engine benchmark: `disclosure.protect` on 10k, 100k and 1M-cell tables, and optimal vs heuristic.

Tables are provider (Total > CPA > prime contract > subcontractor) × month (12 + total) × payment
group (4 + total), every total included, with about 15% primary cells (threshold 10), built from
a fixed seed. Each case runs as a whole subprocess (imports and loading the table included),
started from a fresh wrapper process so that ``resource.getrusage(RUSAGE_CHILDREN)`` gives that
case's own peak RSS. The heuristic runs through ``protect(..., rules=Rules(threshold=10,
rounding_base=5), prune=False)``; the optimal method (``disclosure.optimal.optimal``, cost
"cells") runs on the same grid with a time limit.

The second part compares heuristic (``prune=True``) and optimal (cost "cells") suppression counts
on the published small-table set ``tests/tables/small_tables.json`` (written by ``--write-tables``).

    .venv/bin/python bench/disclosure_bench.py                       # 10k and 100k, optimal on 10k, small set
    .venv/bin/python bench/disclosure_bench.py --sizes 10k 100k 1M --timeout 600
    .venv/bin/python bench/disclosure_bench.py --write-tables        # regenerate tests/tables/small_tables.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out" / "disclosure"
TABLES = ROOT / "tests" / "tables" / "small_tables.json"
SEED = 20261112
MONTHS = [f"2025-{m:02d}" for m in range(1, 13)]
GROUPS = ["PG1", "PG2", "PG3", "PG4"]
# (CPAs, primes per CPA, subcontractors per prime) -> provider codes; x 13 months x 5 groups = cells
SIZES = {"10k": (3, 5, 9), "100k": (6, 10, 24), "1M": (12, 25, 50)}

# Child process: load the table, protect it, print one JSON line. {method} is "heuristic" or "optimal".
CHILD = """
import json, sys, time
t0 = time.perf_counter()
sys.path.insert(0, {bench!r})
import pandas as pd
import numpy as np
from disclosure_bench import dims_for
from disclosure import Rules, protect
frame = pd.read_parquet({path!r})
dims = dims_for({size!r})
rules = Rules(threshold=10, rounding_base=5)
t1 = time.perf_counter()
if {method!r} == "heuristic":
    res = protect(frame, dims, "n", rules=rules, prune=False)
    out = dict(cells=res.counts["cells"], primary=res.counts["primary"], secondary=res.counts["secondary"],
               audit_ok=bool(res.audit.ok), audit_checked=res.audit.checked)
else:
    from disclosure import Grid
    from disclosure.attacker import exact_intervals
    from disclosure.optimal import optimal
    from disclosure.primary import primary_mask, required_widths
    grid = Grid.of(dims)
    values = np.zeros(grid.size, dtype=np.int64)
    values[grid.cell_index(frame)] = frame["n"].to_numpy()
    primary = primary_mask(values, rules)
    required = required_widths(primary, rules)
    res = optimal(grid, values, primary, required, cost="cells", time_limit={time_limit})
    check = exact_intervals(grid.constraints, values, res.suppressed, required)
    out = dict(cells=int(grid.size), primary=int(primary.sum()), secondary=int((res.suppressed & ~primary).sum()),
               audit_ok=bool(check.ok.all()), audit_checked=int(len(check.cells)), proven_optimal=res.proven_optimal,
               lower_bound=res.lower_bound, rounds=res.rounds, cuts=res.cuts)
t2 = time.perf_counter()
out.update(method={method!r}, size={size!r}, load_s=round(t1 - t0, 2), protect_s=round(t2 - t1, 2))
print(json.dumps(out), flush=True)
"""

# Wrapper: a fresh parent per case, so RUSAGE_CHILDREN is that case's peak alone.
WRAPPER = """
import json, resource, subprocess, sys, time
t = time.perf_counter()
try:
    p = subprocess.run([sys.executable, "-c", sys.argv[1]], capture_output=True, text=True, timeout=float(sys.argv[2]))
    code, out, err = p.returncode, p.stdout, p.stderr
except subprocess.TimeoutExpired as exc:
    code, out, err = "timeout", exc.stdout or "", exc.stderr or ""
    out = out.decode() if isinstance(out, bytes) else out
    err = err.decode() if isinstance(err, bytes) else err
wall = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
meta = dict(returncode=code, wall_s=round(wall, 2), peak_rss_mb=round(rss), stdout=out[-2000:], stderr=err[-2000:])
print(json.dumps(meta))
"""


def dims_for(size: str):
    """The three hierarchies of a benchmark size (deterministic)."""
    from disclosure import Hierarchy

    n_cpa, n_prime, n_sub = SIZES[size]
    parents: dict[str, str] = {}
    for a in range(n_cpa):
        cpa = f"CPA{a:02d}"
        parents[cpa] = "Total"
        for p in range(n_prime):
            prime = f"P{a:02d}{p:02d}"
            parents[prime] = cpa
            for s in range(n_sub):
                parents[f"S{a:02d}{p:02d}{s:02d}"] = prime
    return {
        "provider": Hierarchy.from_parents("provider", parents, total="Total"),
        "month": Hierarchy.flat("month", MONTHS, total="Total"),
        "group": Hierarchy.flat("group", GROUPS, total="Total"),
    }


def make_table(size: str, seed: int = SEED) -> pd.DataFrame:
    """Full table with totals; leaf counts mix small (primary), zero and ordinary values.

    Each subcontractor has a size; a leaf is small (1-9) with a probability that falls with it, so
    small cells cluster in small providers, as in real MI, and some subtotals are small too.
    """
    from disclosure import add_totals

    dims = dims_for(size)
    rng = np.random.default_rng(seed)
    leaves = [h.leaves for h in dims.values()]
    base = pd.MultiIndex.from_product(leaves, names=list(dims)).to_frame(index=False)
    n_prov = len(leaves[0])
    per_leaf = len(leaves[1]) * len(leaves[2])
    scale = np.repeat(rng.lognormal(3.0, 1.0, n_prov), per_leaf)
    u = rng.random(len(base))
    small = u < 0.22
    zero = (u >= 0.22) & (u < 0.29)
    big = np.maximum(10, rng.poisson(scale)).astype(np.int64)
    base["n"] = np.where(small, rng.integers(1, 10, len(base)), np.where(zero, 0, big))
    return add_totals(base, dims, ["n"])


def run_case(size: str, method: str, timeout: float, time_limit: float) -> dict:
    path = OUT / f"table_{size}.parquet"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        make_table(size).to_parquet(path, index=False)
    child = CHILD.format(bench=str(ROOT / "bench"), path=str(path), size=size, method=method, time_limit=time_limit)
    wrapped = subprocess.run(
        [sys.executable, "-c", WRAPPER, child, str(timeout)], capture_output=True, text=True, cwd=ROOT
    )
    meta = json.loads(wrapped.stdout)
    result = {"size": size, "method": method, **{k: meta[k] for k in ("returncode", "wall_s", "peak_rss_mb")}}
    lines = [ln for ln in meta["stdout"].splitlines() if ln.startswith("{")]
    if lines:
        result.update(json.loads(lines[-1]))
    elif meta["stderr"]:
        result["error"] = meta["stderr"].strip().splitlines()[-1]
    return result


# ----- the small-table set -----


def _small_table(rng: np.random.Generator, shape: str) -> dict:
    """One small table: a JSON-friendly description (hierarchies as code -> parent, leaf values)."""
    if shape == "flat":
        dims = {
            "r": {f"r{i}": "T" for i in range(int(rng.integers(2, 5)))},
            "c": {f"c{i}": "T" for i in range(int(rng.integers(2, 5)))},
        }
    elif shape == "nested":
        rows: dict[str, str] = {}
        for a in range(int(rng.integers(2, 4))):
            rows[f"A{a}"] = "T"
            for b in range(int(rng.integers(1, 4))):
                rows[f"A{a}.{b}"] = f"A{a}"
        dims = {"r": rows, "c": {f"c{i}": "T" for i in range(int(rng.integers(2, 5)))}}
    else:
        dims = {d: {f"{d}{i}": "T" for i in range(int(rng.integers(2, 4)))} for d in ("a", "b", "c")}
    leaves = [[c for c in tree if c not in tree.values()] for tree in dims.values()]
    n = int(np.prod([len(lv) for lv in leaves]))
    values = np.where(rng.random(n) < 0.25, rng.integers(1, 10, n), rng.integers(0, 60, n))
    return {"dims": dims, "total": "T", "leaf_values": [int(v) for v in values]}


def write_tables(path: Path = TABLES, count: int = 60, seed: int = 1) -> None:
    """The published small-table set: 60 tables (flat 2-D, hierarchical 2-D, flat 3-D), fixed seed."""
    rng = np.random.default_rng(seed)
    shapes = ["flat", "nested", "3d"]
    tables = []
    for i in range(count):
        t = _small_table(rng, shapes[i % 3])
        t["name"] = f"{shapes[i % 3]}-{i:02d}"
        tables.append(t)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "description": "Small hierarchical count tables for comparing secondary suppression methods; leaf values "
        "in C order over the leaves of each dimension (dimension order as given); totals are sums.",
        "seed": seed,
        "tables": tables,
    }
    path.write_text(json.dumps(doc, indent=1) + "\n")


def load_small(table: dict):
    """(grid, values, primary, required) of one small-set table under threshold 10."""
    from disclosure import Grid, Hierarchy, Rules, add_totals
    from disclosure.primary import primary_mask, required_widths

    dims = {d: Hierarchy.from_parents(d, tree, total=table["total"]) for d, tree in table["dims"].items()}
    leaves = [h.leaves for h in dims.values()]
    base = pd.MultiIndex.from_product(leaves, names=list(dims)).to_frame(index=False)
    base["n"] = table["leaf_values"]
    frame = add_totals(base, dims, ["n"])
    grid = Grid.of(dims)
    values = np.zeros(grid.size, dtype=np.int64)
    values[grid.cell_index(frame)] = frame["n"].to_numpy()
    rules = Rules(threshold=10)
    primary = primary_mask(values, rules)
    return grid, values, primary, required_widths(primary, rules)


def compare_small(path: Path = TABLES) -> dict:
    """Heuristic (pruned) vs optimal (cost "cells") secondary counts over the small-table set."""
    from disclosure.optimal import optimal
    from disclosure.secondary import heuristic

    doc = json.loads(path.read_text())
    rows = []
    for table in doc["tables"]:
        grid, values, primary, required = load_small(table)
        t0 = time.perf_counter()
        h = heuristic(grid, values, primary, required, prune=True).suppressed
        t1 = time.perf_counter()
        o = optimal(grid, values, primary, required, cost="cells", time_limit=60)
        t2 = time.perf_counter()
        rows.append(
            {
                "name": table["name"],
                "cells": int(grid.size),
                "primary": int(primary.sum()),
                "heuristic": int((h & ~primary).sum()),
                "optimal": int((o.suppressed & ~primary).sum()),
                "proven": o.proven_optimal,
                "heuristic_s": t1 - t0,
                "optimal_s": t2 - t1,
            }
        )
    df = pd.DataFrame(rows)
    nonzero = df[df["optimal"] > 0]
    return {
        "tables": len(df),
        "cells": int(df["cells"].sum()),
        "primary": int(df["primary"].sum()),
        "heuristic_total": int(df["heuristic"].sum()),
        "optimal_total": int(df["optimal"].sum()),
        "ratio_total": float(df["heuristic"].sum() / max(df["optimal"].sum(), 1)),
        "ratio_mean": float((nonzero["heuristic"] / nonzero["optimal"]).mean()),
        "ratio_max": float((nonzero["heuristic"] / nonzero["optimal"]).max()),
        "heuristic_equal": int((df["heuristic"] == df["optimal"]).sum()),
        "heuristic_worse": int((df["heuristic"] > df["optimal"]).sum()),
        "heuristic_better": int((df["heuristic"] < df["optimal"]).sum()),
        "all_proven": bool(df["proven"].all()),
        "heuristic_s": float(df["heuristic_s"].sum()),
        "optimal_s": float(df["optimal_s"].sum()),
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["10k", "100k"], choices=list(SIZES))
    parser.add_argument("--optimal-sizes", nargs="*", default=["10k"], choices=list(SIZES))
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per case (whole process)")
    parser.add_argument("--time-limit", type=float, default=300.0, help="optimal method's own time limit")
    parser.add_argument("--write-tables", action="store_true", help="regenerate the small-table set and exit")
    parser.add_argument("--skip-small", action="store_true")
    args = parser.parse_args()
    if args.write_tables:
        write_tables()
        print(f"wrote {TABLES}")
        return
    OUT.mkdir(parents=True, exist_ok=True)
    results = []
    for size in args.sizes:
        for method in ["heuristic"] + (["optimal"] if size in args.optimal_sizes else []):
            r = run_case(size, method, args.timeout, args.time_limit)
            results.append(r)
            print(json.dumps(r), flush=True)
            (OUT / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    if not args.skip_small:
        small = compare_small()
        (OUT / "small.json").write_text(json.dumps(small, indent=1) + "\n")
        print(json.dumps({k: v for k, v in small.items() if k != "rows"}), flush=True)


if __name__ == "__main__":
    main()
