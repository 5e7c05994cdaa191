"""Run every benchmark in turn (``make bench``), each as its own process with its default settings.

Each prints its own table; the figures recorded in ``bench/README.md`` come from these runs. The
serve benchmark needs ApacheBench and nginx (``apt-get install apache2-utils nginx``) and is reported
as skipped, with that reason, where they are missing. ``--quick`` runs each on smaller inputs (a
smoke run that the benchmarks still work, not figures to record).

    .venv/bin/python bench/run.py                # the full set: about an hour on 2 cores
    .venv/bin/python bench/run.py --quick        # a few minutes
    .venv/bin/python bench/run.py --only sync serve
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> (script, full arguments, quick arguments)
BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    "validate": ("validate_bench.py", [], ["--rows", "100000", "--runs", "2"]),
    "load": ("load_bench.py", [], ["--codes", "2000", "--runs", "2", "--only", "opendata"]),
    "sync": ("sync_bench.py", [], ["--versions", "5", "--runs", "3"]),
    "serve": ("serve_bench.py", [], ["--runs", "1", "--idle-wait", "15"]),
    "disclosure": ("disclosure_bench.py", [], ["--sizes", "10k", "--methods", "fast", "--skip-small"]),
    "release": ("release_bench.py", [], ["--months", "6", "12"]),
}


def missing(name: str) -> str | None:
    """Why a benchmark cannot run here, or None."""
    if name == "serve":
        absent = [tool for tool, path in (("ab", shutil.which("ab")), ("nginx", _nginx())) if path is None]
        if absent:
            return f"needs {' and '.join(absent)} (apt-get install apache2-utils nginx)"
    return None


def _nginx() -> str | None:
    return shutil.which("nginx") or (shutil.which("nginx", path="/usr/sbin"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs: a smoke run, not figures to record")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="run these benchmarks only")
    args = parser.parse_args()
    failed = []
    for name in args.only or list(BENCHMARKS):
        script, full, quick = BENCHMARKS[name]
        print(f"\n## {name} ({script})", flush=True)
        if reason := missing(name):
            print(f"skipped: {reason}", flush=True)
            continue
        started = time.monotonic()
        run = subprocess.run([sys.executable, str(HERE / script), *(quick if args.quick else full)])
        print(f"[{name}: exit {run.returncode}, {time.monotonic() - started:.0f} s]", flush=True)
        if run.returncode != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
