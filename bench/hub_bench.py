"""Hub benchmark: readers of the compare API while a 1,000,000-row upload is checked (issue 15).

Target: "50 concurrent readers of the compare API on loopback for 60 s while an upload is being
validated: zero errors, p95 under 300 ms; validation of a 1,000,000-row upload under 30 s."

Setup (once, cached in ``bench/out/hub-bench/``, redone when ``specs/`` changes or with
``--fresh``): ``opendata hub init``, two organisations with a token each, each publishing a
4,000-row, 12-month sample through ``opendata hub upload --publish`` (as ``make demo`` does), and a
subscribed publisher's release of a 30,000-row, 24-month sample (``opendata release`` +
``publish``, ``hub subscribe`` + ``refresh``), so compare pools three packages; and the sample CSV
to upload (``opendata sample --rows 1000000``).

Each run copies the hub, starts ``opendata hub serve`` as a process of its own on a free loopback
port, then starts two more processes. The readers: 50 asyncio tasks in one process, each with an
``httpx.AsyncClient`` of its own (one keep-alive connection), requesting ``/api/compare`` in turn
through a shuffled rotation of every indicator × level × period, and of each programme alone and
each area at every indicator × level, built from the first answer's ``options``, for
``--seconds`` and on until the upload is answered (``--max-seconds`` at most). The upload:
``--upload-at`` seconds in, one ``POST /api/uploads`` of the CSV (multipart, streamed from disk,
with an organisation's token), timed from its first byte to the JSON answer. Errors are answers
other than 200 and transport errors (client time-out 300 s). Latencies: the whole window, and the
requests in flight at any time while the upload was. At the end: the server's peak RSS
(``VmHWM``) and CPU time (``/proc``). Medians over ``--runs``.

References, each on a fresh server: the same 50 readers on ``/hub.pub`` (a small static file),
which shows what this client can drive, and its CPU, so it is not what limits the figures; one
reader of ``/api/compare`` (a request's own time); the upload with no readers.

    .venv/bin/python bench/hub_bench.py                  # --runs 3 --seconds 60 --rows 1000000
    .venv/bin/python bench/hub_bench.py --quick          # one 10 s run, a 100,000-row upload
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OPENDATA = [sys.executable, "-m", "opendata"]
CACHE = ROOT / "bench" / "out" / "hub-bench"
SETUP = 2  # bump when the setup changes: the cached hub is then rebuilt
ORGS = {"north": ("North Works (synthetic)", 21), "south": ("South Skills (synthetic)", 22)}
PUBLISHER_ROWS, PUBLISHER_MONTHS, PUBLISHER_SEED = 30_000, 24, 23
CLIENT_TIMEOUT = 300.0
TOKENS = "bench-tokens.json"  # in the hub's root, which the hub does not serve
UPLOADER = "north"
TICKS = os.sysconf("SC_CLK_TCK")


# --- setup ---


def opendata(*args: str) -> str:
    done = subprocess.run([*OPENDATA, *args], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"opendata {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def prepare(cache: Path, fresh: bool) -> Path:
    """The hub to copy for each run, holding a token per organisation in ``TOKENS`` (built once, then reused;
    built aside and moved into place, so a run that copies it meanwhile gets a whole hub and its own tokens)."""
    template, stamp, building = cache / "hub", cache / "setup.json", cache / "hub.new"
    if fresh and cache.exists():
        shutil.rmtree(cache)
    specs = hashlib.sha256()  # the hub keeps its own copy of the specs: a changed spec means a new hub
    for path in sorted((ROOT / "specs").rglob("*")):
        if path.is_file():
            specs.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    wanted = f"{SETUP}:{specs.hexdigest()}"
    if stamp.is_file() and json.loads(stamp.read_text())["setup"] == wanted and (template / TOKENS).is_file():
        return template
    for old in (building, cache / "dwp", *cache.glob("mi-*")):
        shutil.rmtree(old, ignore_errors=True)  # the upload CSVs are kept: they do not depend on the specs
    for old in (cache / "dwp.key", cache / "dwp.pub"):
        old.unlink(missing_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    print(f"setting up the hub in {cache} (once; about 2 minutes) …", flush=True)
    opendata("hub", "init", str(building), "--specs", str(ROOT / "specs"))
    tokens = {}
    for org, (title, seed) in ORGS.items():
        opendata("hub", "add-org", str(building), org, "--title", title)
        tokens[org] = opendata("hub", "token", str(building), org).strip()
        mi = cache / f"mi-{org}"
        opendata("sample", "--out", str(mi), "--rows", "4000", "--months", "12", "--seed", str(seed),
                 "--format", "csv", "-q")  # fmt: skip
        opendata("hub", "upload", str(building), org, str(mi / "work-programme-mi.csv"), "--publish")
    mi, tree = cache / "mi-dwp", cache / "dwp"
    opendata("sample", "--out", str(mi), "--rows", str(PUBLISHER_ROWS), "--months", str(PUBLISHER_MONTHS),
             "--seed", str(PUBLISHER_SEED), "--format", "csv", "-q")  # fmt: skip
    opendata("release", str(ROOT / "specs" / "work-programme.yaml"), str(mi / "work-programme-mi.csv"),
             "--out", str(tree), "--calendar", str(ROOT / "specs" / "calendar.yaml"),
             "--release-time", "2026-11-12T09:30:00+00:00", "--late", "--reason", "hub benchmark", "-q")  # fmt: skip
    opendata("keys", "generate", "--private", str(cache / "dwp.key"), "--public", str(cache / "dwp.pub"))
    opendata("publish", "--out", str(tree), "--key", str(cache / "dwp.key"), "-q")
    opendata("hub", "subscribe", str(building), "dwp", str(tree), "--trust", str(cache / "dwp.pub"),
             "--title", "Department for Work and Pensions", "--kind", "management information")  # fmt: skip
    opendata("hub", "refresh", str(building))
    (building / TOKENS).write_text(json.dumps(tokens))
    if template.exists():
        template.rename(cache / "hub.old")
    building.rename(template)
    shutil.rmtree(cache / "hub.old", ignore_errors=True)
    stamp.write_text(json.dumps({"setup": wanted}))
    print(f"set up in {time.monotonic() - started:.0f} s", flush=True)
    return template


def upload_file(cache: Path, rows: int) -> Path:
    path = cache / f"upload-{rows}" / "work-programme-mi.csv"
    if not path.is_file():
        opendata("sample", "--out", str(path.parent), "--rows", str(rows), "--seed", "1", "--format", "csv", "-q")
    return path


# --- the server ---


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_hub(root: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    with log.open("wb") as out:
        server = subprocess.Popen([*OPENDATA, "hub", "serve", str(root), "--port", str(port)], stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/hub.pub", timeout=2).status_code == 200:
                return server, url
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the hub did not start:\n{log.read_text()}")
        time.sleep(0.1)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --- the two clients (each run as a process of its own: ``hub_bench.py readers|upload …``) ---


def queries(first: dict[str, Any]) -> list[list[tuple[str, str]]]:
    """Every indicator × level × period; each programme alone, and each area, at every indicator × level."""
    choices, comparison = first["options"], first["comparison"]
    out = [
        [("indicator", i), ("level", lv), ("period", p)]
        for i in choices["indicators"]
        for lv in choices["levels"]
        for p in choices["periods"]
    ]
    programmes = [p["package"] for p in comparison["programmes"]] if comparison else []
    out += [
        [("indicator", i), ("level", lv), ("programme", p)]
        for i in choices["indicators"]
        for lv in choices["levels"]
        for p in programmes
    ]
    out += [
        [("indicator", i), ("level", lv), ("area", a)]
        for i in choices["indicators"]
        for lv in choices["levels"]
        for a in choices.get("areas", [])
    ]
    random.Random(15).shuffle(out)
    return out


async def read_for(url: str, path: str, readers: int, seconds: float, until: str, most: float) -> dict[str, Any]:
    """``readers`` tasks requesting ``path`` for ``seconds``, and on until the file ``until`` exists (unless "-"),
    but for ``most`` seconds at most. Each reader has a client of its own holding one keep-alive connection:
    one client pooling 50 connections costs several times more CPU per request (httpcore's pool)."""
    clients = [httpx.AsyncClient(base_url=url, timeout=CLIENT_TIMEOUT) for _ in range(readers)]
    rotation: list[Any] = [None]
    if path == "/api/compare":
        first = await clients[0].get(path)
        first.raise_for_status()
        rotation = queries(first.json())
    done: list[tuple[float, float, int | str]] = []
    print("started", flush=True)  # the window starts: the orchestrator times the upload from here
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.monotonic()
    deadline, cap = start + seconds, start + most

    async def reader(i: int) -> None:
        k = i
        while (now := time.monotonic()) < deadline or (now < cap and until != "-" and not os.path.exists(until)):
            params = rotation[k % len(rotation)]
            k += readers
            t0 = time.monotonic()
            try:
                answer = await clients[i].get(path, params=params)
                status: int | str = answer.status_code
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            done.append((t0, time.monotonic(), status))

    await asyncio.gather(*(reader(i) for i in range(readers)))
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.monotonic() - start
    for client in clients:
        await client.aclose()
    cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
    return {"queries": len(rotation), "requests": done, "cpu": cpu, "wall": wall}


def upload(url: str, token: str, path: Path) -> dict[str, Any]:
    marks: dict[str, float] = {}

    def trace(event: str, info: dict) -> None:
        if event == "http11.send_request_body.complete":
            marks["sent"] = time.monotonic()

    with httpx.Client(base_url=url, timeout=CLIENT_TIMEOUT) as client, path.open("rb") as f:
        t0 = time.monotonic()
        try:
            answer = client.post(
                "/api/uploads",
                headers={"authorization": f"Bearer {token}"},
                files={"file": (path.name, f, "text/csv")},
                data={"kind": "records"},
                extensions={"trace": trace},
            )
            status: int | str = answer.status_code
            body = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
        except httpx.HTTPError as exc:
            status, body = type(exc).__name__, {}
        t1 = time.monotonic()
    report = body.get("report") or {}
    return {
        "start": t0,
        "sent": marks.get("sent"),
        "end": t1,
        "status": status,
        "upload_status": body.get("status"),
        "rows": report.get("rows"),
        "stages": report.get("stages"),
        "error": body.get("error"),
    }


def client_main(argv: list[str]) -> None:
    if argv[0] == "readers":
        url, path, readers, seconds, until, most = argv[1], argv[2], int(argv[3]), float(argv[4]), argv[5], argv[6]
        print(json.dumps(asyncio.run(read_for(url, path, readers, seconds, until, float(most)))))
    else:
        print(json.dumps(upload(argv[1], argv[2], Path(argv[3]))))


def client(*args: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, *map(str, args)], stdout=subprocess.PIPE, text=True, cwd=ROOT)


def result_of(process: subprocess.Popen) -> dict[str, Any]:
    out, _ = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"a client process failed ({process.returncode})")
    return json.loads(out)


# --- a run ---


def latency(requests: list, since: float | None = None, until: float | None = None) -> dict[str, float]:
    """Counts and latency percentiles (ms) of the requests in flight at some time in [since, until]."""
    if since is not None:
        requests = [r for r in requests if r[0] < until and r[1] > since]
    ms = np.array([(end - start) * 1000 for start, end, _ in requests]) if requests else np.array([np.nan])
    span = (max(r[1] for r in requests) - min(r[0] for r in requests)) if requests else float("nan")
    return {
        "requests": len(requests),
        "errors": sum(1 for r in requests if r[2] != 200),
        "rps": len(requests) / span if span else float("nan"),
        "p50": float(np.percentile(ms, 50)),
        "p95": float(np.percentile(ms, 95)),
        "p99": float(np.percentile(ms, 99)),
        "max": float(ms.max()),
    }


def one_run(
    template: Path,
    csv: Path,
    path: str,
    readers: int,
    seconds: float,
    upload_at: float | None,
    most: float = 0.0,
) -> dict[str, Any]:
    """A fresh copy of the hub and a fresh server: ``readers`` on ``path`` for ``seconds`` and on until the
    upload is answered (``most`` seconds at most), the upload ``upload_at`` seconds in (None: no upload; no
    readers: the upload alone)."""
    with tempfile.TemporaryDirectory(prefix="hub-bench-") as tmp:
        root, flag, log_path = Path(tmp) / "hub", Path(tmp) / "uploaded", Path(tmp) / "serve.log"
        shutil.copytree(template, root)
        token = json.loads((root / TOKENS).read_text())[UPLOADER]
        server, url = start_hub(root, log_path)
        try:
            cpu0, wall0 = cpu_seconds(server.pid), time.monotonic()
            reading = None
            if readers:
                until = str(flag) if upload_at is not None else "-"
                reading = client("readers", url, path, readers, seconds, until, max(most, seconds))
                assert reading.stdout is not None and reading.stdout.readline().strip() == "started"
            sent = None
            if upload_at is not None:
                time.sleep(upload_at if readers else 0)
                sent = result_of(client("upload", url, token, csv))
                flag.touch()
            read = result_of(reading) if reading else None
            server_cpu = (cpu_seconds(server.pid) - cpu0) / (time.monotonic() - wall0)
            rss = peak_rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(10)
        log = [line for line in log_path.read_text(errors="replace").splitlines()[1:] if line.strip()]
        kept = None
        if log:  # tracebacks: kept for a look after the run
            kept = CACHE / "server-logs" / f"{time.strftime('%Y%m%dT%H%M%S')}-{path.strip('/').replace('/', '-')}.log"
            kept.parent.mkdir(exist_ok=True)
            shutil.copyfile(log_path, kept)
    run: dict[str, Any] = {"server_cpu": server_cpu, "rss": rss, "server_log": log, "server_log_kept": kept}
    if read is not None:
        requests = read["requests"]
        statuses: dict[str, int] = {}
        for r in requests:
            statuses[str(r[2])] = statuses.get(str(r[2]), 0) + 1
        run |= {
            "whole": latency(requests),
            "window": read["wall"],
            "statuses": statuses,
            "queries": read["queries"],
            "client_cpu": read["cpu"] / read["wall"],
        }
    if sent is not None:
        run["upload"] = sent
        run["upload_time"] = sent["end"] - sent["start"]
        run["upload_sent"] = (sent["sent"] - sent["start"]) if sent["sent"] else float("nan")
        if read is not None:
            run["during"] = latency(read["requests"], sent["start"], sent["end"])
            if sent["sent"]:  # the upload in two parts: its body on the wire, then the check and the answer
                run["sending"] = latency(read["requests"], sent["start"], sent["sent"])
                run["checking"] = latency(read["requests"], sent["sent"], sent["end"])
            run["after"] = latency(read["requests"], sent["end"], sent["end"] + 5)
            run["raw"] = read["requests"]
            run["outlasted"] = sent["end"] > max(r[1] for r in read["requests"])
    return run


# --- report ---


def part(run: dict, slice_: str, measure: str) -> float:
    """One figure of one slice of a run's requests; NaN when the slice is missing (the upload failed early)."""
    return run.get(slice_, {}).get(measure, float("nan"))


ROWS = [
    ("readers' window, s", lambda r: r["window"], "{:,.1f}"),
    ("requests", lambda r: part(r, "whole", "requests"), "{:,.0f}"),
    ("errors", lambda r: part(r, "whole", "errors"), "{:,.0f}"),
    ("requests/s", lambda r: part(r, "whole", "rps"), "{:,.1f}"),
    ("p50 ms", lambda r: part(r, "whole", "p50"), "{:,.0f}"),
    ("p95 ms", lambda r: part(r, "whole", "p95"), "{:,.0f}"),
    ("p99 ms", lambda r: part(r, "whole", "p99"), "{:,.0f}"),
    ("max ms", lambda r: part(r, "whole", "max"), "{:,.0f}"),
    ("requests in flight during the upload", lambda r: part(r, "during", "requests"), "{:,.0f}"),
    ("errors during the upload", lambda r: part(r, "during", "errors"), "{:,.0f}"),
    ("p50 ms during the upload", lambda r: part(r, "during", "p50"), "{:,.0f}"),
    ("p95 ms during the upload", lambda r: part(r, "during", "p95"), "{:,.0f}"),
    ("p99 ms during the upload", lambda r: part(r, "during", "p99"), "{:,.0f}"),
    ("max ms during the upload", lambda r: part(r, "during", "max"), "{:,.0f}"),
    ("p95 ms while its body is sent", lambda r: part(r, "sending", "p95"), "{:,.0f}"),
    ("p95 ms while it is checked (body sent, no answer yet)", lambda r: part(r, "checking", "p95"), "{:,.0f}"),
    ("p95 ms in the 5 s after its answer", lambda r: part(r, "after", "p95"), "{:,.0f}"),
    ("upload: first byte to JSON answer, s", lambda r: r["upload_time"], "{:,.1f}"),
    ("upload: of which sending the body, s", lambda r: r["upload_sent"], "{:,.1f}"),
    ("hub server peak RSS, MB", lambda r: r["rss"], "{:,.0f}"),
    ("hub server CPU (1.0 = one core)", lambda r: r["server_cpu"], "{:.2f}"),
    ("readers' client CPU (1.0 = one core)", lambda r: r["client_cpu"], "{:.2f}"),
]


def table(runs: list[dict]) -> dict[str, float]:
    heads = " | ".join(f"run {i + 1}" for i in range(len(runs)))
    print(f"| measure | {heads} | median |")
    print("|---|" + "---:|" * (len(runs) + 1))
    medians = {}
    for name, get, fmt in ROWS:
        values = [get(r) for r in runs]
        medians[name] = statistics.median(values)
        print(f"| {name} | {' | '.join(fmt.format(v) for v in values)} | {fmt.format(medians[name])} |")
    return medians


def upload_line(run: dict) -> str:
    up = run["upload"]
    stages = ", ".join(f"{s['stage']} {s['blocking']}/{s['warnings']}" for s in up["stages"] or [])
    return (
        f"upload {up['status']} {up['upload_status']} in {run['upload_time']:.1f} s (body sent at "
        f"{run['upload_sent']:.1f} s), rows {up['rows']}, stages (blocking/warnings): {stages}"
        + (f", error {up['error']}" if up["error"] else "")
    )


def readers_line(run: dict) -> str:
    w = run["whole"]
    return (
        f"{w['requests']:,} requests in {run['window']:.1f} s, statuses {run['statuses']}, {w['rps']:,.1f}/s, "
        f"p50 {w['p50']:,.0f} ms, p95 {w['p95']:,.0f} ms; client CPU {run['client_cpu']:.2f}, "
        f"server CPU {run['server_cpu']:.2f}"
    )


def code_state() -> str:
    """The commit, and the state of ``opendata/`` (each server imports the code as it is at its start)."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "opendata"], capture_output=True, text=True).stdout
    newest = max(p.stat().st_mtime for p in (ROOT / "opendata").rglob("*.py"))
    changed = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(newest))
    return f"{head}{' with uncommitted changes' if dirty.strip() else ''}, opendata/ last changed {changed}"


def code_fingerprint() -> tuple[str, str, float]:
    """What identifies the code measured: the tree of ``opendata/``, its uncommitted changes, its newest file."""
    git = ["git", "-C", str(ROOT)]
    tree = subprocess.run([*git, "rev-parse", "HEAD:opendata"], capture_output=True, text=True).stdout
    diff = subprocess.run([*git, "diff", "HEAD", "--", "opendata"], capture_output=True, text=True).stdout
    return (
        tree,
        hashlib.sha256(diff.encode()).hexdigest(),
        max(p.stat().st_mtime for p in (ROOT / "opendata").rglob("*.py")),
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("readers", "upload"):
        return client_main(sys.argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, help="measurements (default 3; 1 with --quick)")
    parser.add_argument("--seconds", type=float, help="readers' window (default 60; 10 with --quick)")
    parser.add_argument("--rows", type=int, help="rows of the uploaded CSV (default 1,000,000; 100,000 with --quick)")
    parser.add_argument("--readers", type=int, default=50)
    parser.add_argument("--upload-at", type=float, help="seconds into the window (default 5; 2 with --quick)")
    parser.add_argument(
        "--max-seconds", type=float, help="readers stop by then, upload answered or not (3 × --seconds)"
    )
    parser.add_argument("--check-seconds", type=float, help="each reference measurement (default 10; 5 with --quick)")
    parser.add_argument("--raw", type=Path, help="write every request's times and status to this JSON file")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 10 s, a 100,000-row upload, one run")
    parser.add_argument("--fresh", action="store_true", help=f"rebuild the cached hub in {CACHE}")
    args = parser.parse_args()
    defaults = (1, 10.0, 100_000, 2.0, 5.0) if args.quick else (3, 60.0, 1_000_000, 5.0, 10.0)
    for name, default in zip(("runs", "seconds", "rows", "upload_at", "check_seconds"), defaults, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, default)
    args.max_seconds = args.max_seconds or 3 * args.seconds

    template = prepare(CACHE, args.fresh)
    csv = upload_file(CACHE, args.rows)
    cpus = len(os.sched_getaffinity(0))
    code = code_fingerprint()
    print(f"code: {code_state()}", flush=True)
    print(f"{cpus} CPUs (os.cpu_count() {os.cpu_count()}); upload {csv} ({csv.stat().st_size / 1e6:,.0f} MB, "
          f"{args.rows:,} rows); {args.readers} readers × {args.seconds:g} s, upload {args.upload_at:g} s in; "
          f"{args.runs} run(s)\n", flush=True)  # fmt: skip

    print("references, each on a fresh server:", flush=True)
    static = one_run(template, csv, "/hub.pub", args.readers, args.check_seconds, None)
    print(f"* client check, {args.readers} readers of /hub.pub (a static file): {readers_line(static)}", flush=True)
    single = one_run(template, csv, "/api/compare", 1, args.check_seconds, None)
    print(f"* one reader of /api/compare, no upload: {readers_line(single)}", flush=True)
    alone = one_run(template, csv, "/api/compare", 0, 0, 0)
    print(f"* the upload alone, no readers: {upload_line(alone)}; server peak RSS {alone['rss']:,.0f} MB\n", flush=True)

    runs = []
    for i in range(args.runs):
        run = one_run(template, csv, "/api/compare", args.readers, args.seconds, args.upload_at, args.max_seconds)
        late = f" (answered after the readers stopped at {args.max_seconds:g} s)" if run["outlasted"] else ""
        print(f"run {i + 1}: readers: {readers_line(run)}; {upload_line(run)}{late}", flush=True)
        if run["server_log"]:
            errors = [line for line in run["server_log"] if not line.startswith(" ")][-3:]
            print(
                f"  server log: {len(run['server_log'])} lines in {run['server_log_kept']}; last: {errors}", flush=True
            )
        runs.append(run)

    print(f"\n{args.readers} readers of /api/compare for {args.seconds:g} s and on until the upload is answered "
          f"(at most {args.max_seconds:g} s; {runs[0]['queries']} query strings in rotation), "
          f"one {args.rows:,}-row upload {args.upload_at:g} s in; {cpus} CPUs\n")  # fmt: skip
    med = table(runs)
    if code_fingerprint() != code:
        print(f"\nWARNING: opendata/ changed during the measurement: now {code_state()}")
    if args.raw:
        args.raw.write_text(json.dumps([{k: r[k] for k in ("upload", "raw")} for r in runs]))
        print(f"\nevery request's (start, end, status) and the uploads' times: {args.raw}")
    errors = sum(r["whole"]["errors"] for r in runs)
    statuses = {r["upload"]["status"] for r in runs}
    verdict = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    print(f"\n* zero errors: {verdict(errors == 0)} ({errors} in {args.runs} run(s))")
    for name, label in (("p95 ms", "over the window"), ("p95 ms during the upload", "during the upload"),
                        ("p95 ms in the 5 s after its answer", "in the 5 s after the upload's answer")):  # fmt: skip
        print(f"* p95 under 300 ms {label}: {verdict(med[name] < 300)} (median {med[name]:,.0f} ms)")
    upload_s = med["upload: first byte to JSON answer, s"]
    print(f"* {args.rows:,}-row upload checked in under 30 s: {verdict(upload_s < 30 and statuses == {201})} "
          f"(median {upload_s:.1f} s under load, {alone['upload_time']:.1f} s alone; "
          f"statuses {sorted(map(str, statuses))})")  # fmt: skip


if __name__ == "__main__":
    main()
