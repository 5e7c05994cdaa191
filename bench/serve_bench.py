"""Serve benchmark: ``opendata serve`` beside Debian's nginx on the same signed tree, on loopback.

Both run as whole processes. Load: ApacheBench (Debian's apache2-utils), 200 concurrent clients ×
50 requests each (10,000 GETs of a version's ``datapackage.json``), with keep-alive and without;
errors, requests per second and latency percentiles, medians over ``--runs`` runs. Then 1,000 idle
sockets (connected, sending nothing): how many each server has closed after its idle time-out.

    .venv/bin/python bench/serve_bench.py            # --runs N --idle-wait SECONDS
"""

from __future__ import annotations

import argparse
import os
import re
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from test_nginx import CONFIG, NGINX  # noqa: E402
from test_sync import make_publisher  # noqa: E402

CLIENTS, PER_CLIENT, IDLE = 200, 50, 1000
TARGET = "tiny-mi/1.0.0/datapackage.json"


def wait_for(port: int) -> None:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ab(url: str, keep_alive: bool) -> dict[str, float]:
    args = ["ab", "-q", "-n", str(CLIENTS * PER_CLIENT), "-c", str(CLIENTS), *(["-k"] if keep_alive else []), url]
    out = subprocess.run(args, capture_output=True, text=True, timeout=600).stdout
    field = lambda pattern: float(re.search(pattern, out).group(1))  # noqa: E731
    return {
        "errors": field(r"Failed requests:\s+(\d+)") + field(r"Non-2xx responses:\s+(\d+)")
        if "Non-2xx" in out
        else field(r"Failed requests:\s+(\d+)"),
        "rps": field(r"Requests per second:\s+([\d.]+)"),
        "p50": field(r"\s50%\s+(\d+)"),
        "p99": field(r"\s99%\s+(\d+)"),
        "max": field(r"100%\s+(\d+)"),
    }


def idle_closed(port: int, wait: float) -> tuple[int, float]:
    """Open IDLE sockets that send nothing; (how many the server closed within ``wait`` s, when the last closed)."""
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(IDLE)]
    start, closed, last = time.monotonic(), set(), 0.0
    while len(closed) < IDLE and time.monotonic() - start < wait:
        ready, _, _ = select.select([s for s in socks if s.fileno() not in closed], [], [], 0.5)
        for s in ready:
            try:
                if not s.recv(4096):
                    closed.add(s.fileno())
                    last = time.monotonic() - start
            except OSError:
                closed.add(s.fileno())
                last = time.monotonic() - start
    for s in socks:
        s.close()
    return len(closed), last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle-wait", type=float, default=75.0, help="seconds to wait for idle sockets to close")
    args = parser.parse_args()
    if shutil.which("ab") is None or NGINX is None:
        raise SystemExit("needs ApacheBench and nginx: apt-get install apache2-utils nginx")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        pub = make_publisher(base / "pub", 3)
        ours, theirs = free_port(), free_port()
        work = base / "nginx"
        work.mkdir()
        user = "user root;\n" if os.geteuid() == 0 else ""
        config = CONFIG.format(user=user, work=work, port=theirs, root=pub.root)
        config = config.replace("worker_connections 256", "worker_connections 4096").replace(
            f"access_log {work}/access.log ranges;", "access_log off;"
        )
        (work / "nginx.conf").write_text(config, encoding="utf-8")
        servers = {
            "opendata serve": subprocess.Popen(
                [sys.executable, "-m", "opendata", "serve", str(pub.root), "--port", str(ours), "--quiet"]
            ),
            "nginx": subprocess.Popen([NGINX, "-c", str(work / "nginx.conf"), "-p", str(work)]),
        }
        ports = {"opendata serve": ours, "nginx": theirs}
        try:
            for port in ports.values():
                wait_for(port)
            print(
                f"| server | connections | errors | requests/s | p50 ms | p99 ms | max ms |  (medians of {args.runs})"
            )
            print("| --- | --- | --- | --- | --- | --- | --- |")
            for keep_alive in (True, False):
                for name, port in ports.items():
                    runs = [ab(f"http://127.0.0.1:{port}/{TARGET}", keep_alive) for _ in range(args.runs)]
                    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                    mode = "keep-alive" if keep_alive else "one per request"
                    errors = max(r["errors"] for r in runs)
                    print(
                        f"| {name} | {mode} | {errors:.0f} | {med['rps']:,.0f} | {med['p50']:.0f} "
                        f"| {med['p99']:.0f} | {med['max']:.0f} |"
                    )
            print(f"\n| server | idle sockets closed (of {IDLE}) | last closed after |")
            print("| --- | --- | --- |")
            for name, port in ports.items():
                n, last = idle_closed(port, args.idle_wait)
                print(f"| {name} | {n:,} | {last:.1f} s |")
        finally:
            for p in servers.values():
                p.terminate()
                p.wait(timeout=10)


if __name__ == "__main__":
    main()
