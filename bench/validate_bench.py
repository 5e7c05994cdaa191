"""Validation benchmark: `opendata validate` against `frictionless validate` on one 1,000,000-row MI CSV.

Both tools run as whole processes (start-up and imports included), several times each, on the same
file with the same known errors injected, and must both find every injected error. Frictionless
gets an equivalent Table Schema: types, required, enum (the code lists), pattern, minimum/maximum
and the primary key. Cross-field rules have no Table Schema form, so no injected error needs them.

    .venv/bin/python bench/validate_bench.py                 # 1,000,000 rows, 5 runs each
    .venv/bin/python bench/validate_bench.py --rows 100000 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "work-programme.yaml"
BIN = Path(sys.executable).parent
SEED = 1

# (row index, column, injected value, opendata rule, frictionless error type)
INJECT = [
    (101, "referral_date", "2012-13-45", "type", "type-error"),
    (202, "referral_date", "2010-01-01", "minimum", "constraint-error"),
    (303, "cpa", "CPA99", "codelist", "constraint-error"),
    (404, "sustainment_payments", "-3", "minimum", "constraint-error"),
    (505, "sustainment_payments", "99", "maximum", "constraint-error"),
    (606, "sustainment_payments", "two", "type", "type-error"),
    (707, "participant_id", None, "primary_key", "primary-key"),  # None: the id of row 10
    (808, "participant_id", "WP12AB", "pattern", "constraint-error"),
    (909, "gender", "", "required", "constraint-error"),
    (999_990, "referral_type", "compulsory", "enum", "constraint-error"),
]


def make_csv(out: Path, rows: int) -> Path:
    """The sample MI (deterministic for a seed) with the known errors injected."""
    from opendata.sample import write_sample

    path = out / f"mi-{rows}-with-errors.csv"
    if path.exists():
        return path
    clean = next(p for p in write_sample(out / "clean", rows, SEED, formats=("csv",)) if p.suffix == ".csv")
    header = clean.open(encoding="utf-8").readline().strip().split(",")
    types = dict.fromkeys(header, pa.string())
    table = pacsv.read_csv(clean, convert_options=pacsv.ConvertOptions(column_types=types))
    for row, column, value, *_ in INJECT:
        row = min(row, rows - 1)
        values = table.column(column).to_pylist()
        values[row] = values[10] if value is None else value
        table = table.set_column(table.column_names.index(column), column, pa.array(values, pa.string()))
    options = pacsv.WriteOptions(quoting_style="none", quoting_header="none", eol="\n")  # as opendata.sample writes it
    pacsv.write_csv(table, path, write_options=options)
    shutil.rmtree(out / "clean")
    return path


def frictionless_schema(out: Path) -> Path:
    """The spec's input as a Table Schema, code lists as enum constraints."""
    from opendata.spec import load_spec

    spec = load_spec(SPEC)
    fields = []
    for f in spec.input.fields:
        constraints: dict[str, object] = {}
        if f.required:
            constraints["required"] = True
        if f.unique and spec.input.primary_key != (f.name,):
            constraints["unique"] = True
        if f.allowed_codes() is not None:
            constraints["enum"] = list(f.allowed_codes())
        if f.pattern:
            constraints["pattern"] = f.pattern.removeprefix("^").removesuffix("$")
        for key in ("minimum", "maximum"):
            if getattr(f, key) is not None:
                constraints[key] = getattr(f, key)
        fields.append({"name": f.name, "type": f.type, "constraints": constraints})
    schema = {"fields": fields, "primaryKey": list(spec.input.primary_key), "missingValues": [""]}
    path = out / "schema.json"
    path.write_text(json.dumps(schema, indent=2))
    return path


def opendata_commands(csv_path: Path) -> dict[str, list[str]]:
    """The library through `python -c`, and the CLI when it has a `validate` command."""
    code = (
        "import json, sys; from opendata.spec import load_spec; from opendata.validate import validate; "
        f"r = validate(load_spec({str(SPEC)!r}), [{str(csv_path)!r}]); "
        "json.dump({'ok': r.ok, 'total_problems': r.total_problems, "
        "'problems': [p.to_dict() for p in r.problems]}, sys.stdout)"
    )
    commands = {"opendata (python -c)": [sys.executable, "-c", code]}
    cli = BIN / "opendata"
    if cli.exists() and "validate" in subprocess.run([cli, "--help"], capture_output=True, text=True).stdout:
        commands["opendata validate --json"] = [str(cli), "validate", str(SPEC), str(csv_path), "--json"]
    return commands


def run(command: list[str], runs: int, cwd: Path = ROOT) -> tuple[list[float], str]:
    times, stdout = [], ""
    env = dict(os.environ, NO_COLOR="1", COLUMNS="200")
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env)
        times.append(time.perf_counter() - start)
        stdout = done.stdout
    return times, stdout


def found_by_opendata(stdout: str, rows: int) -> list[str]:
    problems = json.loads(stdout)["problems"]
    got = {(p["row"], p["column"], p["rule"]) for p in problems}
    return [f"{c} {r}" for row, c, _, r, _ in INJECT if (min(row, rows - 1) + 1, c, r) not in got]


def found_by_frictionless(stdout: str, rows: int) -> list[str]:
    report = json.loads(stdout)
    errors = [e for task in report.get("tasks", []) for e in task.get("errors", [])]
    got = {(e.get("rowNumber"), e.get("type")) for e in errors}
    return [f"{c} {t}" for row, c, _, _, t in INJECT if (min(row, rows - 1) + 2, t) not in got]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "validate")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    csv_path = make_csv(args.out, args.rows)
    schema = frictionless_schema(args.out)
    size = csv_path.stat().st_size / 1e6
    print(f"{csv_path} ({args.rows:,} rows, {size:.0f} MB, {len(INJECT)} injected errors); {args.runs} runs each")

    results = {}
    for label, command in opendata_commands(csv_path).items():
        times, stdout = run(command, args.runs)
        results[label] = (times, found_by_opendata(stdout, args.rows), json.loads(stdout)["total_problems"])
    # frictionless refuses absolute paths as unsafe, so it runs in the output directory
    fl = [str(BIN / "frictionless"), "validate", csv_path.name, "--schema", schema.name, "--json"]
    times, stdout = run(fl, args.runs, cwd=csv_path.parent)
    report = json.loads(stdout)
    total = sum(len(t.get("errors", [])) for t in report.get("tasks", []))
    results["frictionless validate"] = (times, found_by_frictionless(stdout, args.rows), total)

    base = statistics.median(results["frictionless validate"][0])
    print(f"\n{'tool':28} {'median s':>9} {'min s':>7} {'max s':>7} {'speed-up':>9} {'problems':>9}  missed")
    ok = True
    for label, (times, missed, total) in results.items():
        med = statistics.median(times)
        speed = base / med
        print(
            f"{label:28} {med:9.2f} {min(times):7.2f} {max(times):7.2f} {speed:8.1f}x {total:9,}  "
            f"{', '.join(missed) or 'none'}"
        )
        ok &= not missed and (label.startswith("frictionless") or speed >= 10)
    (args.out / "results.json").write_text(
        json.dumps({k: {"times": v[0], "missed": v[1], "problems": v[2]} for k, v in results.items()}, indent=2)
    )
    print("\nPASS: every injected error found, at least 10x faster" if ok else "\nFAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
