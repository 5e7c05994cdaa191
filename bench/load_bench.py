"""Loading benchmark: `opendata.load` against frictionless-py's `Resource.to_pandas()` on one 1,000,000-row table.

A package is written with the project's own writer from a protected table built directly on a big
grid (25 months including the total × 40,000 provider codes, five measures, a realistic mix of
suppressed `[c]`, not-applicable `[z]` and not-available `[x]` cells). Each loader then runs as a whole
process (start-up and imports included), several times, on the same package: ours reads the verified
Parquet twin; frictionless opens the same package and reads its CSV resource (the one a user would
ask it for: a standalone ``Resource`` cannot be opened, as the table has foreign keys). Both print the row count and
the number of missing values per measure, which must agree.

    .venv/bin/python bench/load_bench.py                     # 1,000,000 rows, 5 runs each
    .venv/bin/python bench/load_bench.py --codes 4000 --runs 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "work-programme.yaml"
TABLE = "provider-by-month"
TIME = Path("/usr/bin/time")
SEED = 7

OURS = "import opendata; df = opendata.load({path!r}, {table!r}); print(len(df), *df[{measures!r}].isna().sum())"
FRICTIONLESS = (
    "from frictionless import Package; df = Package({descriptor!r}).get_resource({table!r}).to_pandas(); "
    "print(len(df), *df[{measures!r}].isna().sum())"
)


def _providers(codes: int):
    """A provider hierarchy of ``codes`` codes: Great Britain, 18 areas, 10 primes each, subcontractors."""
    from opendata.aggregate import DimensionCodes

    areas = [f"CPA{i:02d}" for i in range(1, 19)]
    primes = {a: [f"P{a[3:]}{j:02d}" for j in range(10)] for a in areas}
    leaves = codes - 1 - len(areas) - 10 * len(areas)
    subs: dict[str, list[str]] = {p: [] for ps in primes.values() for p in ps}
    for i, p in enumerate(np.resize(list(subs), leaves)):
        subs[str(p)].append(f"S{i:06d}")
    order, parents, levels, labels = ["Total"], {"Total": ""}, {"Total": "total"}, {"Total": "Great Britain"}
    for a in areas:
        order.append(a)
        parents[a], levels[a], labels[a] = "Total", "cpa", f"Area {a}"
        for p in primes[a]:
            order.append(p)
            parents[p], levels[p], labels[p] = a, "prime_contract", f"Prime contract {p}"
            for s in subs[p]:
                order.append(s)
                parents[s], levels[s], labels[s] = p, "subcontractor", f"Subcontractor {s}"
    return DimensionCodes(
        "provider", "Provider", "Area, prime contract and subcontractor.", tuple(order), labels, parents, levels
    )


def build(out: Path, months: int, codes: int) -> Path:
    """Write (once) the benchmark package and return its version directory."""
    from opendata.aggregate import period_dimension
    from opendata.package import write_package
    from opendata.protection import ProtectedTable
    from opendata.spec import load_spec

    spec = load_spec(SPEC)
    target = out / f"{spec.name}" / "1.0.0"
    if (target / "datapackage.json").is_file():
        return target
    table_spec = next(t for t in spec.tables if t.name == TABLE)
    month = period_dimension(
        pd.period_range("2012-01", periods=months, freq="M").strftime("%Y-%m").tolist(), spec.dimensions["month"]
    )
    provider = _providers(codes)
    rng = np.random.default_rng(SEED)
    n = len(month.codes) * len(provider.codes)
    frame = pd.DataFrame(
        {
            "month": np.repeat(np.array(month.codes, dtype=object), len(provider.codes)),
            "provider": np.tile(np.array(provider.codes, dtype=object), len(month.codes)),
        }
    )
    measures = tuple(spec.measures[m] for m in table_spec.measures)
    sdc = {}
    for k, m in enumerate(measures):
        values = 5 * rng.poisson(6 / (k + 1), n)
        u = rng.random(n)
        # about 12% confidential, 0.5% not available, and 1% not applicable for payments (e.g. no outcome yet)
        z_rate = 0.01 if m.name == "sustainment_payments" else 0.0
        status = np.select([u < 0.12, u < 0.125, u < 0.125 + z_rate], ["c", "x", "z"], "")
        frame[m.name] = pd.array(values, dtype="Int64")
        frame[m.name] = frame[m.name].mask(status != "")
        frame[m.name + "_status"] = status
        audit = {"ok": True, "checked": int((status == "c").sum()), "method": "benchmark"}
        sdc[m.name] = {"cells": n, "primary": None, "secondary": None, "rounded": None, "audit": audit}
    table = ProtectedTable(table_spec, (month, provider), measures, frame, sdc)
    print(f"writing {n:,} rows to {out} ...", flush=True)
    return write_package(spec, [table], out, "1.0.0", datetime(2024, 4, 2, 9, 30, tzinfo=UTC))


def run(command: list[str], runs: int) -> tuple[list[float], list[int | None], str]:
    """Wall time and peak RSS (KiB, via /usr/bin/time when present) of each run, and the last output."""
    times, peaks, output = [], [], ""
    for _ in range(runs):
        with tempfile.NamedTemporaryFile(suffix=".rss") as rss:
            wrapped = [str(TIME), "-f", "%M", "-o", rss.name, *command] if TIME.exists() else command
            start = time.perf_counter()
            done = subprocess.run(wrapped, capture_output=True, text=True, cwd=ROOT)
            times.append(time.perf_counter() - start)
            if done.returncode != 0:
                raise SystemExit(f"{command[:2]} failed:\n{done.stderr}")
            output = done.stdout.strip()
            text = Path(rss.name).read_text().strip().splitlines() if TIME.exists() else []
            peaks.append(int(text[-1]) if text and text[-1].isdigit() else None)
    return times, peaks, output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--months", type=int, default=24, help="months (plus their total); default 24")
    parser.add_argument("--codes", type=int, default=40_000, help="provider codes; default 40,000")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "load")
    parser.add_argument("--fresh", action="store_true", help="rebuild the package")
    parser.add_argument("--only", choices=["opendata", "frictionless"], help="time one loader only")
    args = parser.parse_args()
    if args.fresh and args.out.exists():
        shutil.rmtree(args.out)
    path = build(args.out, args.months, args.codes)
    descriptor = json.loads((path / "datapackage.json").read_text(encoding="utf-8"))
    resource = next(r for r in descriptor["resources"] if r["name"] == TABLE)
    measures = [f["name"] for f in resource["schema"]["fields"] if f["type"] == "integer"]
    parquet = next(r for r in descriptor["resources"] if r["name"] == f"{TABLE}-parquet")
    print(f"package {path}: CSV {resource['bytes']:,} bytes, Parquet {parquet['bytes']:,} bytes")

    python = sys.executable
    fields = {"path": str(path), "table": TABLE, "measures": measures, "descriptor": str(path / "datapackage.json")}
    tools = {
        "opendata.load (Parquet, verified)": [python, "-c", OURS.format(**fields)],
        "frictionless Package(...).get_resource(...).to_pandas() (CSV)": [python, "-c", FRICTIONLESS.format(**fields)],
    }
    if args.only:
        tools = {k: v for k, v in tools.items() if k.startswith(args.only)}
    results = {}
    for name, command in tools.items():
        times, peaks, output = run(command, args.runs)
        results[name] = (times, peaks, output)
        peak = max((p for p in peaks if p), default=None)
        print(
            f"{name}: median {statistics.median(times):.2f} s (min {min(times):.2f}, max {max(times):.2f})"
            f"{f', peak RSS {peak / 1024:.0f} MiB' if peak else ''}; output {output!r}",
            flush=True,
        )
    if len(results) < 2:
        return
    (ours, _, ours_out), (theirs, _, theirs_out) = results.values()
    if ours_out != theirs_out:
        raise SystemExit(f"the loaders disagree: {ours_out!r} versus {theirs_out!r}")
    print(f"speed-up: {statistics.median(theirs) / statistics.median(ours):.1f}x")
    for name, command in tools.items():
        print(f"\n{name}:\n  {command[0]} -c {command[2]!r}")


if __name__ == "__main__":
    main()
