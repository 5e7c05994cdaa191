"""Disclosure engine benchmark: `disclosure.protect` on 10k, 100k, 1M-cell and 5-d tables; methods vs optimal.

Tables are provider (Total > CPA > prime contract > subcontractor) × month (12 + total) × payment
group (4 + total), every total included, with about 15% primary cells (threshold 10), built from
a fixed seed. Each case runs as a whole subprocess (imports and loading the table included),
started from a fresh wrapper process so that ``resource.getrusage(RUSAGE_CHILDREN)`` gives that
case's own peak RSS. "fast" (certified hypercubes) and "heuristic" run through ``protect(...,
rules=Rules(threshold=10, rounding_base=5), method=..., prune=False)``; the optimal method
(``disclosure.optimal.optimal``, cost "cells") runs on the same grid with a time limit.
``--lp-check`` re-audits the fast pattern with the exact LP attacker (``exact_intervals``) in the
same child, up to ``LP_CHECK_MAX_CELLS`` cells. Case "650k-records-5d" generates 650,000 synthetic
records (subcontractor hierarchy × month × payment group × age band × gender, 973,245 cells with
every total), aggregates and protects them with "fast". Results accumulate in
``bench/out/disclosure/results.json`` (latest per size and method).

The second part compares fast (``disclosure.hypercube.hypercube``, ``prune=True``) and heuristic
(``prune=True``) against optimal (cost "cells") suppression counts on the published small-table
set ``tests/tables/small_tables.json`` (written by ``--write-tables``).

    .venv/bin/python bench/disclosure_bench.py                 # 10k/100k fast + heuristic, optimal on 10k, small set
    .venv/bin/python bench/disclosure_bench.py --sizes 10k 100k 1M --methods fast --lp-check --skip-small
    .venv/bin/python bench/disclosure_bench.py --sizes 10k 100k --methods heuristic --skip-small --timeout 900
    .venv/bin/python bench/disclosure_bench.py --sizes 650k-records-5d --skip-small --timeout 1800
    .venv/bin/python bench/disclosure_bench.py --sizes                     # the small-table comparison only
    .venv/bin/python bench/disclosure_bench.py --write-tables        # regenerate tests/tables/small_tables.json
    .venv/bin/python bench/disclosure_bench.py --sizes 1k 10k --methods fast optimal --like-sdctable --skip-small

``--like-sdctable`` runs with sdcTable's defaults instead of the release rules: threshold 10,
protection 1 (no primary cell disclosed exactly), no singleton protection, no rounding, pruned
hypercubes; results are stored apart (``variant``).
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

from disclosure.optimal import NODES

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out" / "disclosure"
TABLES = ROOT / "tests" / "tables" / "small_tables.json"
SEED = 20261112
MONTHS = [f"2025-{m:02d}" for m in range(1, 13)]
GROUPS = ["PG1", "PG2", "PG3", "PG4"]
# (CPAs, primes per CPA, subcontractors per prime) -> provider codes; x 13 months x 5 groups = cells
SIZES = {"1k": (1, 2, 6), "10k": (3, 5, 9), "100k": (6, 10, 24), "1M": (12, 25, 50)}
METHODS = ["fast", "heuristic", "optimal"]
DEFAULT_METHODS = {"10k": ["fast", "heuristic"], "100k": ["fast", "heuristic"], "1M": ["fast"]}
LP_CHECK_MAX_CELLS = 200_000  # the exact LP re-audit takes about 120 s at 100k cells
# The 5-dimension case: records -> base cells -> full table. Subcontractor (Total > CPA > prime >
# subcontractor: 8 CPAs x 8 primes x 10 = 640 subcontractors, 713 codes) x month (12 + total) x
# payment group (4 + total) x age band (6 + total) x gender (2 + total) = 973,245 cells.
FIVE_D = "650k-records-5d"
FIVE_D_RECORDS = 650_000
FIVE_D_PROVIDERS = (8, 8, 10)
AGES = ["16-24", "25-34", "35-44", "45-54", "55-64", "65+"]
GENDERS = ["F", "M"]

# Child process: one case, one JSON line on stdout (see ``child``).
CHILD = """
import sys, time
t0 = time.perf_counter()
sys.path.insert(0, {bench!r})
from disclosure_bench import child
child({spec!r}, t0)
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


def _audit_label(method: str) -> str:
    from disclosure.audit import METHOD_CERTIFIED, METHOD_EXACT

    return {METHOD_EXACT: "exact", METHOD_CERTIFIED: "certificates"}.get(method, method)


RULES = {
    "release": dict(threshold=10, rounding_base=5),
    "sdctable": dict(threshold=10, protection=1, singletons="ignore"),
}


def _protected(frame: pd.DataFrame, dims, method: str, lp_check: bool, variant: str = "release") -> dict:
    """``protect`` with the benchmark rules (no pruning; pruned for sdcTable's defaults), plus the
    optional exact LP re-audit."""
    from disclosure import Grid, Rules, protect
    from disclosure.attacker import exact_intervals
    from disclosure.primary import primary_mask, required_widths

    rules = Rules(**RULES[variant])
    t0 = time.perf_counter()
    res = protect(frame, dims, "n", rules=rules, method=method, prune=variant == "sdctable")
    t1 = time.perf_counter()
    out = dict(
        cells=res.counts["cells"],
        primary=res.counts["primary"],
        secondary=res.counts["secondary"],
        audit_ok=bool(res.audit.ok),
        audit_checked=res.audit.checked,
        audit_method=_audit_label(res.audit.method),
        protect_s=round(t1 - t0, 2),
    )
    if lp_check:  # independent check: the exact-values attacker LPs on the published pattern
        grid = Grid.of(dims)
        cells = grid.cell_index(res.frame)
        values = np.zeros(grid.size, dtype=np.int64)
        values[cells] = res.frame["n"].to_numpy()
        suppressed = np.zeros(grid.size, dtype=bool)
        suppressed[cells] = (res.frame["status"] != "published").to_numpy()
        required = required_widths(primary_mask(values, rules), rules)
        t2 = time.perf_counter()
        check = exact_intervals(grid.constraints, values, suppressed, required)
        out.update(lp_audit_ok=bool(check.ok.all()), lp_audit_checked=len(check.cells))
        out.update(lp_audit_failures=int((~check.ok).sum()), lp_audit_s=round(time.perf_counter() - t2, 2))
    return out


def _optimal(frame: pd.DataFrame, dims, nodes: int, variant: str = "release") -> dict:
    """``disclosure.optimal.optimal`` (cost "cells") on the grid, re-audited by the exact attacker."""
    from disclosure import Grid, Rules
    from disclosure.attacker import exact_intervals
    from disclosure.optimal import optimal
    from disclosure.primary import primary_mask, required_widths

    rules = Rules(**RULES[variant])
    t0 = time.perf_counter()
    grid = Grid.of(dims)
    values = np.zeros(grid.size, dtype=np.int64)
    values[grid.cell_index(frame)] = frame["n"].to_numpy()
    primary = primary_mask(values, rules)
    required = required_widths(primary, rules)
    res = optimal(grid, values, primary, required, cost="cells", nodes=nodes)
    check = exact_intervals(grid.constraints, values, res.suppressed, required)
    return dict(
        cells=int(grid.size),
        primary=int(primary.sum()),
        secondary=int((res.suppressed & ~primary).sum()),
        audit_ok=bool(check.ok.all()),
        audit_checked=len(check.cells),
        audit_method="exact",
        proven_optimal=res.proven_optimal,
        lower_bound=res.lower_bound,
        rounds=res.rounds,
        cuts=res.cuts,
        protect_s=round(time.perf_counter() - t0, 2),
    )


def child(spec: dict, t0: float) -> None:
    """One case inside its own process: load (or generate) the table, protect it, print one JSON line.

    ``t0``: the process's start (before its imports), so ``load_s`` covers imports and loading.
    """
    size, method = spec["size"], spec["method"]
    if size == FIVE_D:
        frame, dims, records = make_5d()
        extra = {"records": records}
    else:
        frame, dims, extra = pd.read_parquet(spec["path"]), dims_for(size), {}
    t1 = time.perf_counter()
    if method == "optimal":
        out = _optimal(frame, dims, spec["nodes"], spec["variant"])
    else:
        out = _protected(frame, dims, method, spec["lp_check"], spec["variant"])
    out.update(
        extra,
        method=method,
        size=size,
        variant=spec["variant"],
        load_s=round(t1 - t0, 2),
        child_s=round(time.perf_counter() - t0, 2),
    )
    print(json.dumps(out), flush=True)


def provider_parents(n_cpa: int, n_prime: int, n_sub: int) -> dict[str, str]:
    """code -> parent of the provider hierarchy Total > CPA > prime contract > subcontractor."""
    parents: dict[str, str] = {}
    for a in range(n_cpa):
        cpa = f"CPA{a:02d}"
        parents[cpa] = "Total"
        for p in range(n_prime):
            prime = f"P{a:02d}{p:02d}"
            parents[prime] = cpa
            for s in range(n_sub):
                parents[f"S{a:02d}{p:02d}{s:02d}"] = prime
    return parents


def dims_for(size: str):
    """The three hierarchies of a benchmark size (deterministic)."""
    from disclosure import Hierarchy

    return {
        "provider": Hierarchy.from_parents("provider", provider_parents(*SIZES[size]), total="Total"),
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


def dims_5d():
    """The five hierarchies of the 5-d case (deterministic)."""
    from disclosure import Hierarchy

    return {
        "subcontractor": Hierarchy.from_parents("subcontractor", provider_parents(*FIVE_D_PROVIDERS), total="Total"),
        "month": Hierarchy.flat("month", MONTHS, total="Total"),
        "group": Hierarchy.flat("group", GROUPS, total="Total"),
        "age": Hierarchy.flat("age", AGES, total="Total"),
        "gender": Hierarchy.flat("gender", GENDERS, total="Total"),
    }


def make_5d(records: int = FIVE_D_RECORDS, seed: int = SEED) -> tuple[pd.DataFrame, dict, int]:
    """(full table with totals, dims, records): synthetic records aggregated to counts per leaf cell.

    Subcontractors have lognormal sizes (a few large, many small), and their own payment-group mix;
    months, age bands and gender follow fixed national shares. Most leaf cells are then small (1-9)
    or empty, as in real 5-way MI breakdowns.
    """
    from disclosure import add_totals

    dims = dims_5d()
    rng = np.random.default_rng(seed)
    leaves = [h.leaves for h in dims.values()]
    n_sub = len(leaves[0])
    sub_p = rng.lognormal(0.0, 1.2, n_sub)
    sub = rng.choice(n_sub, size=records, p=sub_p / sub_p.sum())
    month_p = np.linspace(1.2, 0.8, 12)
    month = rng.choice(12, size=records, p=month_p / month_p.sum())
    group_mix = rng.dirichlet([4.0, 3.0, 2.0, 1.0], n_sub)  # each subcontractor's own payment-group mix
    group = (rng.random(records)[:, None] > np.cumsum(group_mix[sub], axis=1)[:, :-1]).sum(axis=1)
    age = rng.choice(len(AGES), size=records, p=[0.22, 0.26, 0.2, 0.16, 0.12, 0.04])
    gender = rng.choice(len(GENDERS), size=records, p=[0.45, 0.55])
    shape = tuple(len(lv) for lv in leaves)
    counts = np.bincount(np.ravel_multi_index((sub, month, group, age, gender), shape), minlength=int(np.prod(shape)))
    nz = np.flatnonzero(counts)  # absent leaf cells count as 0 in add_totals
    idx = np.unravel_index(nz, shape)
    base = pd.DataFrame({d: np.asarray(leaves[k], dtype=object)[idx[k]] for k, d in enumerate(dims)})
    base["n"] = counts[nz].astype(np.int64)
    return add_totals(base, dims, ["n"]), dims, records


def case_cells(size: str) -> int:
    """Cells of a benchmark table, every total included."""
    if size == FIVE_D:
        n_cpa, n_prime, n_sub = FIVE_D_PROVIDERS
        other = (len(MONTHS) + 1) * (len(GROUPS) + 1) * (len(AGES) + 1) * (len(GENDERS) + 1)
    else:
        n_cpa, n_prime, n_sub = SIZES[size]
        other = (len(MONTHS) + 1) * (len(GROUPS) + 1)
    return (1 + n_cpa * (1 + n_prime * (1 + n_sub))) * other


def run_case(
    size: str, method: str, timeout: float, nodes: int, lp_check: bool = False, variant: str = "release"
) -> dict:
    """One case as a whole subprocess under its own wrapper; the child's JSON line plus wall time and peak RSS."""
    path = OUT / f"table_{size}.parquet"
    if size != FIVE_D and not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        make_table(size).to_parquet(path, index=False)
    lp_check = lp_check and method == "fast" and case_cells(size) <= LP_CHECK_MAX_CELLS
    spec = dict(size=size, method=method, path=str(path), nodes=nodes, lp_check=lp_check, variant=variant)
    child = CHILD.format(bench=str(ROOT / "bench"), spec=spec)
    wrapped = subprocess.run(
        [sys.executable, "-c", WRAPPER, child, str(timeout)], capture_output=True, text=True, cwd=ROOT
    )
    meta = json.loads(wrapped.stdout)
    result = {
        "size": size,
        "method": method,
        "variant": variant,
        **{k: meta[k] for k in ("returncode", "wall_s", "peak_rss_mb")},
    }
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
    """Fast (hypercubes, pruned) and heuristic (pruned) vs optimal (cost "cells") secondary counts."""
    from disclosure.hypercube import hypercube
    from disclosure.optimal import optimal
    from disclosure.secondary import heuristic

    doc = json.loads(path.read_text())
    rows = []
    for table in doc["tables"]:
        grid, values, primary, required = load_small(table)
        t0 = time.perf_counter()
        f = hypercube(grid, values, primary, required, prune=True)
        t1 = time.perf_counter()
        h = heuristic(grid, values, primary, required, prune=True)
        t2 = time.perf_counter()
        o = optimal(grid, values, primary, required, cost="cells")
        t3 = time.perf_counter()
        rows.append(
            {
                "name": table["name"],
                "cells": int(grid.size),
                "primary": int(primary.sum()),
                "fast": int((f.suppressed & ~primary).sum()),
                "heuristic": int((h.suppressed & ~primary).sum()),
                "optimal": int((o.suppressed & ~primary).sum()),
                "fast_safe": bool(f.intervals.ok.all()),
                "heuristic_safe": bool(h.intervals.ok.all()),
                "proven": o.proven_optimal,
                "fast_s": t1 - t0,
                "heuristic_s": t2 - t1,
                "optimal_s": t3 - t2,
            }
        )
    df = pd.DataFrame(rows)
    nonzero = df[df["optimal"] > 0]
    out: dict = {
        "tables": len(df),
        "cells": int(df["cells"].sum()),
        "primary": int(df["primary"].sum()),
        "optimal_total": int(df["optimal"].sum()),
        "all_proven": bool(df["proven"].all()),
        "optimal_s": float(df["optimal_s"].sum()),
    }
    for m in ("fast", "heuristic"):
        out.update(
            {
                f"{m}_total": int(df[m].sum()),
                f"{m}_ratio_total": float(df[m].sum() / max(df["optimal"].sum(), 1)),
                f"{m}_ratio_mean": float((nonzero[m] / nonzero["optimal"]).mean()),
                f"{m}_ratio_max": float((nonzero[m] / nonzero["optimal"]).max()),
                f"{m}_equal": int((df[m] == df["optimal"]).sum()),
                f"{m}_worse": int((df[m] > df["optimal"]).sum()),
                f"{m}_better": int((df[m] < df["optimal"]).sum()),
                f"{m}_all_safe": bool(df[f"{m}_safe"].all()),
                f"{m}_s": float(df[f"{m}_s"].sum()),
            }
        )
    out["rows"] = rows
    return out


def methods_for(size: str, methods: list[str] | None, optimal_sizes: list[str]) -> list[str]:
    """Methods of one size: ``--methods`` (or the size's default), plus optimal on ``--optimal-sizes``."""
    chosen = list(methods) if methods is not None else list(DEFAULT_METHODS.get(size, ["fast"]))
    if size in optimal_sizes and "optimal" not in chosen:
        chosen.append("optimal")
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="*", default=["10k", "100k"], choices=[*SIZES, FIVE_D])
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=METHODS,
        help="methods for every size (default: fast + heuristic on 10k and 100k, fast on 1M and the 5-d case)",
    )
    parser.add_argument(
        "--optimal-sizes",
        nargs="*",
        choices=list(SIZES),
        help="also run optimal on these sizes (default: 10k, unless --methods is given)",
    )
    parser.add_argument(
        "--lp-check", action="store_true", help=f"re-audit fast by exact LPs (up to {LP_CHECK_MAX_CELLS:,} cells)"
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per case (whole process)")
    parser.add_argument(
        "--nodes", type=int, default=NODES, help="optimal method's branch-and-bound node budget (deterministic work)"
    )
    parser.add_argument("--write-tables", action="store_true", help="regenerate the small-table set and exit")
    parser.add_argument("--skip-small", action="store_true")
    parser.add_argument("--like-sdctable", action="store_true", help="sdcTable's defaults (see the module docstring)")
    args = parser.parse_args()
    variant = "sdctable" if args.like_sdctable else "release"
    if args.write_tables:
        write_tables()
        print(f"wrote {TABLES}")
        return
    optimal_sizes = args.optimal_sizes if args.optimal_sizes is not None else ([] if args.methods else ["10k"])
    OUT.mkdir(parents=True, exist_ok=True)
    store = OUT / "results.json"
    try:  # results accumulate over runs, one entry per (size, method): the latest
        results = [r for r in json.loads(store.read_text()) if "size" in r and "method" in r]
    except (OSError, ValueError):
        results = []
    for size in args.sizes:
        for method in methods_for(size, args.methods, optimal_sizes):
            r = run_case(size, method, args.timeout, args.nodes, args.lp_check, variant)
            same = (size, method, variant)
            results = [x for x in results if (x["size"], x["method"], x.get("variant", "release")) != same] + [r]
            print(json.dumps(r), flush=True)
            store.write_text(json.dumps(results, indent=1) + "\n")
    if not args.skip_small:
        small = compare_small()
        (OUT / "small.json").write_text(json.dumps(small, indent=1) + "\n")
        print(json.dumps({k: v for k, v in small.items() if k != "rows"}), flush=True)


if __name__ == "__main__":
    main()
