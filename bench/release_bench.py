"""Release scaling: whole-process `opendata release` at constant MI density over more and more months.

Each size is the sample MI (``opendata sample``, about 8,333 rows a month, as the demo's 200,000
rows over 24 months) released with the shipped spec; the time and peak memory are those of the
whole ``opendata release`` process (its pool workers included: ``RUSAGE_CHILDREN`` after it
ends, the largest single process). The growth exponent is the least-squares slope of log time
against log cells, cells being the descriptor's count over every table and measure.

    .venv/bin/python bench/release_bench.py                        # 12, 25, 50 and 100 months, 1 run each
    .venv/bin/python bench/release_bench.py --months 12 25 --runs 3 --workers 1
    .venv/bin/python bench/release_bench.py --months 235 --stop-after 210   # memory of a release too slow to finish

``--stop-after SECONDS`` samples the memory of the release's whole process tree (the release and
its pool workers, summed: what the machine must hold) every 2 s and stops the release at that
time; it reports the peak of the sum and each process's memory at the last sample.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "work-programme.yaml"
BIN = Path(sys.executable).parent
ROWS_PER_MONTH = 200_000 / 24
NAME = "work-programme-subcontractor-mi"


def measure(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak MiB of one whole process (and its children)."""
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    stderr = child.stderr.read() if child.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{stderr}")
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(usage.ru_maxrss, children) / 1024


def sample_memory(command: list[str], seconds: float) -> tuple[float, list[float], bool]:
    """Run ``command`` for at most ``seconds`` (then stop it and its workers), sampling the resident
    memory of its process tree: the peak of the sum (MiB), each process's MiB at the last sample
    (the release first), and whether it finished."""
    import psutil

    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    root = psutil.Process(child.pid)
    start, peak, last = time.perf_counter(), 0.0, [0.0]
    while child.poll() is None and time.perf_counter() - start < seconds:
        try:
            sizes = [p.memory_info().rss / 2**20 for p in (root, *root.children(recursive=True))]
        except psutil.Error:  # a worker ended between the listing and the reading
            continue
        peak, last = max(peak, sum(sizes)), sizes
        time.sleep(2)
    finished = child.poll() is not None
    if not finished:
        for p in root.children(recursive=True):
            p.kill()
        child.kill()
        child.wait()
    return peak, last, finished


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", type=int, nargs="+", default=[12, 25, 50, 100])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--workers", type=int, help="opendata release --workers [default: every core]")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "release")
    parser.add_argument("--stop-after", type=float, help="sample the memory of the process tree, stop at SECONDS")
    args = parser.parse_args()
    rows_out = []
    for months in args.months:
        work = args.out / f"m{months}"
        mi = work / "mi" / "work-programme-mi.csv"
        rows = round(ROWS_PER_MONTH * months)
        if not mi.exists():
            subprocess.run(
                [BIN / "opendata", "sample", "--out", work / "mi", "--rows", str(rows), "--months", str(months),
                 "--seed", "1", "--format", "csv", "-q"],
                check=True,
            )  # fmt: skip
        times, peaks = [], []
        for _ in range(args.runs):
            shutil.rmtree(work / "releases", ignore_errors=True)
            shutil.rmtree(work / "staging", ignore_errors=True)
            command = [
                str(BIN / "opendata"), "release", str(SPEC), str(mi), "--out", str(work / "releases"),
                "--staging", str(work / "staging"), "--release-time", "2026-11-12T09:30:00+00:00", "--late",
                "--reason", "benchmark", "-q",
                *(["--workers", str(args.workers)] if args.workers else []),
            ]  # fmt: skip
            if args.stop_after:
                peak, last, finished = sample_memory(command, args.stop_after)
                print(f"{months:>4} months {rows:>9,} rows: peak {peak:,.0f} MiB (process tree, summed); at the "
                      f"last sample {' + '.join(f'{x:,.0f}' for x in last)} MiB; "
                      f"{'finished' if finished else f'stopped after {args.stop_after:g} s'}", flush=True)  # fmt: skip
                break
            seconds, peak = measure(command)
            times.append(seconds)
            peaks.append(peak)
        if args.stop_after:
            continue
        descriptor = json.loads((work / "staging" / NAME / "1.0.0" / "datapackage.json").read_text())
        cells = descriptor["opendata:disclosure"]["total"]["cells"]
        rows_out.append((months, rows, cells, statistics.median(times), max(peaks)))
        print(f"{months:>4} months {rows:>9,} rows {cells:>9,} cells  {statistics.median(times):8.1f} s  "
              f"{max(peaks):7.0f} MiB", flush=True)  # fmt: skip
    if len(rows_out) >= 2:
        xs = [math.log(r[2]) for r in rows_out]
        ys = [math.log(r[3]) for r in rows_out]
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
        print(f"growth exponent (time ~ cells^k, least squares over {len(rows_out)} sizes): k = {slope:.2f}")


if __name__ == "__main__":
    main()
