"""Sync benchmark: what a host pays to mirror a 20-version release tree, and to re-check it when nothing changed.

A real tree (20 signed versions from the real package writer, signed catalogue) is served by
``opendata.serve`` on localhost; requests are counted on the server. Measured: the first full sync, an
unchanged re-sync (must cost at most one conditional request per catalogue file), an incremental sync after
a 21st version, and the unchanged re-sync from a local directory.

    .venv/bin/python bench/sync_bench.py            # --versions N --runs N
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # reuse the tests' real-package publisher and counting handler

from test_sync import make_publisher, running  # noqa: E402

from opendata.sync import sync  # noqa: E402
from opendata.verify import verify_tree  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=20)
    parser.add_argument("--runs", type=int, default=20, help="repetitions of the unchanged re-sync")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "pub").mkdir()
        pub, build = timed(lambda: make_publisher(base / "pub", args.versions))
        mirror = base / "mirror"
        rows = []
        with running(pub.root) as server:
            full, seconds = timed(lambda: sync(server.url, mirror, pub.public, progress=False))
            assert len(full.versions_added) == args.versions and verify_tree(mirror, pub.public).ok
            rows.append(("first sync", len(server.log), full.files_downloaded, full.bytes_downloaded, seconds))

            times, counts = [], []
            for _ in range(args.runs):
                server.log.clear()
                again, seconds = timed(lambda: sync(server.url, mirror, pub.public, progress=False))
                assert again.up_to_date and again.catalog_unchanged
                times.append(seconds)
                counts.append(len(server.log))
            assert max(counts) <= 1, f"an unchanged re-sync made {max(counts)} requests"
            statuses = sorted({status for _, _, status, _ in server.log})
            rows.append((f"unchanged re-sync (median of {args.runs})", max(counts), 0, 0, statistics.median(times)))

            pub.release(args.versions)
            server.log.clear()
            inc, seconds = timed(lambda: sync(server.url, mirror, pub.public, progress=False))
            assert len(inc.versions_added) == 1 and verify_tree(mirror, pub.public).ok
            rows.append(
                ("incremental sync (+1 version)", len(server.log), inc.files_downloaded, inc.bytes_downloaded, seconds)
            )

        local = base / "local-mirror"
        sync(pub.root, local, pub.public, progress=False)
        times, counts = [], []
        for _ in range(args.runs):
            again, seconds = timed(lambda: sync(pub.root, local, pub.public, progress=False))
            times.append(seconds)
            counts.append(again.requests)
        rows.append(
            (
                f"unchanged re-sync, directory source (median of {args.runs})",
                max(counts),
                0,
                0,
                statistics.median(times),
            )
        )

    print(f"tree: {args.versions} versions, built and signed in {build:.1f} s; unchanged re-sync answered {statuses}")
    print()
    print("| run | requests | files downloaded | bytes downloaded | time |")
    print("|---|---:|---:|---:|---:|")
    for name, requests, files, size, seconds in rows:
        print(f"| {name} | {requests} | {files} | {size:,} | {seconds * 1000:.1f} ms |")


if __name__ == "__main__":
    main()
