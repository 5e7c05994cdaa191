"""What the `indicators` resource costs a release: the shipped spec against the same spec without
its `indicators:` section, whole-process `opendata release`, medians over several runs side by side.

Issue 13 asks that indicators for every provider × month × indicator of a 1,000,000-row MI release
add under 10% to the release's time. The cohort table stays in both specs (it is a table, not an
indicator), so the difference is the indicators alone.

    .venv/bin/python bench/indicators_bench.py                   # 1,000,000 rows, 3 runs each
    .venv/bin/python bench/indicators_bench.py --rows 200000 --runs 5
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import yaml
from release_bench import measure

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "indicators")
    args = parser.parse_args()
    work = args.out
    specs = work / "specs"
    shutil.rmtree(specs, ignore_errors=True)
    shutil.copytree(ROOT / "specs", specs)
    raw = yaml.safe_load((specs / "work-programme.yaml").read_text())
    raw.pop("indicators")
    (specs / "no-indicators.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    mi = work / "mi" / "work-programme-mi.parquet"
    if not mi.exists():
        sample = [str(BIN / "opendata"), "sample", "--out", str(mi.parent), "--rows", str(args.rows), "--seed", "1"]
        subprocess.run([*sample, "-q"], check=True)
    times: dict[str, list[float]] = {}
    for _ in range(args.runs):  # interleaved, so a slow moment of the machine hits both alike
        for spec in ("work-programme", "no-indicators"):
            out = work / f"out-{spec}"
            shutil.rmtree(out, ignore_errors=True)
            command = [str(BIN / "opendata"), "release", str(specs / f"{spec}.yaml"), str(mi), "--out"]
            command += [str(out / "releases"), "--release-time", "2099-01-01T09:30:00+00:00", "-q"]
            seconds, mib = measure(command)
            times.setdefault(spec, []).append(seconds)
            print(f"{spec}: {seconds:.1f} s, {mib:,.0f} MiB", flush=True)
    with_, without = statistics.median(times["work-programme"]), statistics.median(times["no-indicators"])
    print(f"{args.rows:,} rows, median of {args.runs}: with indicators {with_:.1f} s, without {without:.1f} s, ")
    print(f"cost {100 * (with_ / without - 1):+.1f}% (goal: under +10%)")


if __name__ == "__main__":
    main()
