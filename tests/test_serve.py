"""The release server: validators, ranges, content types, read-only, and no way out of the tree."""

from __future__ import annotations

import email.utils
import http.client
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from opendata.catalog import write_catalog
from opendata.serve import ReleaseServer, make_server

SECRET = b"top secret, outside the tree\n"
FILES = {
    "catalog.json": b'{"format": "x"}\n',
    "data/table.csv": b"provider,referrals\nA1,50\nB1,30\n",
    "data/table.parquet": b"PAR1....PAR1",
    "README.md": b"# releases\n",
    "feed.atom": b"<feed/>\n",
    "catalog.jsonld": b"{}\n",
    "catalog.json.sig": b"c2ln\n",
    ".staging/draft.csv": b"embargoed\n",
    ".tmp-2.0.0-abc/datapackage.json": b"{}\n",
    ".hidden": b"dot-file\n",
}
TYPES = {
    "/catalog.json": "application/json",
    "/data/table.csv": "text/csv; charset=utf-8",
    "/data/table.parquet": "application/vnd.apache.parquet",
    "/README.md": "text/markdown; charset=utf-8",
    "/feed.atom": "application/atom+xml",
    "/catalog.jsonld": "application/ld+json",
    "/catalog.json.sig": "text/plain; charset=us-ascii",
}


@contextmanager
def running(root: Path, **options) -> Iterator[ReleaseServer]:
    server = make_server(root, quiet=True, **options)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Static files, dot-directories a server must hide, and symbolic links in and out of the tree."""
    root = tmp_path / "tree"
    for rel, data in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (tmp_path / "secret.txt").write_bytes(SECRET)
    os.symlink(tmp_path / "secret.txt", root / "link-out.txt")
    os.symlink(tmp_path, root / "dir-out")
    os.symlink(root / "data" / "table.csv", root / "link-in.csv")
    return root


@pytest.fixture
def server(tree: Path) -> Iterator[ReleaseServer]:
    with running(tree, listed_only=False) as s:  # path rules on their own, without the catalogue listing
        yield s


def request(server: ReleaseServer, method: str, path: str, headers: dict[str, str] | None = None):
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def raw_status(server: ReleaseServer, target: bytes) -> tuple[int, bytes]:
    """Send a request line exactly as given (http.client would refuse some of these targets)."""
    with socket.create_connection(server.server_address[:2], timeout=10) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1]), data


def test_etag_and_last_modified_give_304(server: ReleaseServer) -> None:
    status, headers, body = request(server, "GET", "/data/table.csv")
    assert status == 200 and body == FILES["data/table.csv"]
    etag, modified = headers["ETag"], headers["Last-Modified"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert headers["Content-Length"] == str(len(body)) and headers["Accept-Ranges"] == "bytes"

    status, headers, body = request(server, "GET", "/data/table.csv", {"If-None-Match": etag})
    assert (status, body, headers["ETag"]) == (304, b"", etag)
    assert request(server, "GET", "/data/table.csv", {"If-None-Match": '"other"'})[0] == 200
    assert request(server, "GET", "/data/table.csv", {"If-None-Match": f'"a", {etag}'})[0] == 304

    assert request(server, "GET", "/data/table.csv", {"If-Modified-Since": modified})[0] == 304
    earlier = email.utils.format_datetime(email.utils.parsedate_to_datetime(modified) - timedelta(seconds=1), True)
    assert request(server, "GET", "/data/table.csv", {"If-Modified-Since": earlier})[0] == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110)
    assert request(server, "GET", "/data/table.csv", {"If-None-Match": '"x"', "If-Modified-Since": modified})[0] == 200


def test_etag_changes_when_a_file_is_replaced(server: ReleaseServer, tree: Path) -> None:
    etag = request(server, "HEAD", "/catalog.json")[1]["ETag"]
    tmp = tree / ".catalog.json.tmp"
    tmp.write_bytes(b'{"format": "y"}\n')  # same size: only an atomic replace tells them apart
    os.replace(tmp, tree / "catalog.json")
    status, headers, body = request(server, "GET", "/catalog.json", {"If-None-Match": etag})
    assert status == 200 and headers["ETag"] != etag and body == b'{"format": "y"}\n'


def test_ranges(server: ReleaseServer) -> None:
    data = FILES["data/table.csv"]
    size = len(data)
    status, headers, body = request(server, "GET", "/data/table.csv", {"Range": "bytes=0-9"})
    assert (status, body, headers["Content-Range"]) == (206, data[:10], f"bytes 0-9/{size}")
    status, headers, body = request(server, "GET", "/data/table.csv", {"Range": "bytes=10-"})
    assert (status, body, headers["Content-Length"]) == (206, data[10:], str(size - 10))
    status, _, body = request(server, "GET", "/data/table.csv", {"Range": "bytes=-5"})
    assert (status, body) == (206, data[-5:])
    status, _, body = request(server, "GET", "/data/table.csv", {"Range": f"bytes=5-{size + 100}"})
    assert (status, body) == (206, data[5:])
    status, headers, _ = request(server, "GET", "/data/table.csv", {"Range": f"bytes={size}-"})
    assert (status, headers["Content-Range"]) == (416, f"bytes */{size}")
    assert request(server, "GET", "/data/table.csv", {"Range": "bytes=0-1,4-5"})[2] == data  # one range only
    etag = request(server, "HEAD", "/data/table.csv")[1]["ETag"]
    assert request(server, "GET", "/data/table.csv", {"Range": "bytes=3-", "If-Range": etag})[0] == 206
    stale = request(server, "GET", "/data/table.csv", {"Range": "bytes=3-", "If-Range": '"stale"'})
    assert stale[0] == 200 and stale[2] == data


@pytest.mark.parametrize(("path", "expected"), list(TYPES.items()))
def test_content_types(server: ReleaseServer, path: str, expected: str) -> None:
    status, headers, _ = request(server, "GET", path)
    assert (status, headers["Content-Type"]) == (200, expected)


def test_head_sends_headers_only(server: ReleaseServer) -> None:
    status, headers, body = request(server, "HEAD", "/data/table.csv")
    assert (status, body) == (200, b"")
    assert headers["Content-Length"] == str(len(FILES["data/table.csv"]))


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_read_only(server: ReleaseServer, tree: Path, method: str) -> None:
    status, headers, _ = request(server, method, "/data/table.csv")
    assert (status, headers["Allow"]) == (405, "GET, HEAD")
    assert (tree / "data" / "table.csv").read_bytes() == FILES["data/table.csv"]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (b"/../secret.txt", 403),
        (b"/data/../../secret.txt", 403),
        (b"/%2e%2e/secret.txt", 403),
        (b"/%2E%2E/secret.txt", 403),
        (b"/data%2F..%2F..%2Fsecret.txt", 403),
        (b"/data%2ftable.csv", 403),
        (b"/data%5ctable.csv", 403),
        (b"/data/table.csv%00.md", 403),
        (b"/./data/table.csv", 403),
        (b"//etc/passwd", 403),  # not an origin-form path
        (b"http://evil.example/secret.txt", 403),
        (b"/link-out.txt", 404),
        (b"/dir-out/secret.txt", 404),
        (b"/.staging/draft.csv", 404),
        (b"/.tmp-2.0.0-abc/datapackage.json", 404),
        (b"/.hidden", 404),
        (b"/data", 404),
        (b"/data/", 404),
        (b"/", 404),
        (b"/missing.csv", 404),
    ],
)
def test_nothing_outside_the_tree_or_hidden_is_served(server: ReleaseServer, target: bytes, expected: int) -> None:
    status, data = raw_status(server, target)
    assert status == expected
    assert SECRET not in data and b"embargoed" not in data and b"dot-file" not in data


def test_symlink_inside_the_tree_is_served(server: ReleaseServer) -> None:
    assert request(server, "GET", "/link-in.csv")[2] == FILES["data/table.csv"]


def test_listed_only_hides_versions_under_embargo(tmp_path: Path) -> None:
    """A version in the tree but withheld from the catalogue is not downloadable before its release time."""
    from test_sync import NOW, T0, make_publisher

    pub = make_publisher(tmp_path, 2)
    write_catalog(pub.root, signer=pub.key, now=T0 + timedelta(days=1))  # 1.1.0 is still under embargo
    public, embargoed = "/tiny-mi/1.0.0/datapackage.json", "/tiny-mi/1.1.0/datapackage.json"
    with running(pub.root) as s:
        assert request(s, "GET", public)[0] == 200
        assert request(s, "GET", "/catalog.json")[0] == 200
        assert request(s, "GET", embargoed)[0] == 404
        (pub.root / "tiny-mi" / "CHANGELOG.md").write_text("# changes\n", encoding="utf-8")
        assert request(s, "GET", "/tiny-mi/CHANGELOG.md")[0] == 404  # not catalogued (and signed) yet
        write_catalog(pub.root, signer=pub.key, now=T0 + timedelta(days=1))
        assert request(s, "GET", "/tiny-mi/CHANGELOG.md")[0] == 200
        assert request(s, "GET", embargoed)[0] == 404
        write_catalog(pub.root, signer=pub.key, now=NOW)  # released: the listing follows the catalogue
        assert request(s, "GET", embargoed)[0] == 200
        write_catalog(pub.root, signer=pub.key, now=T0 + timedelta(days=1))  # withdrawn from the catalogue
        assert request(s, "GET", embargoed)[0] == 404  # at once, not after a grace period
    with running(pub.root, listed_only=False) as s:
        assert request(s, "GET", embargoed)[0] == 200


def test_a_busy_port_is_a_one_line_error(server: ReleaseServer, tree: Path) -> None:
    """`opendata serve` on a port already in use: exit 1 and one line naming the port, no traceback."""
    import subprocess
    import sys

    port = server.server_address[1]
    run = subprocess.run(
        [sys.executable, "-m", "opendata", "serve", str(tree), "--port", str(port), "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in run.stdout + run.stderr and "--port" in run.stdout + run.stderr


# --- hostile clients and trees (issue 11, findings 6 and 7) -----------------------------------------


IMPATIENT = {"idle_timeout": 0.5, "header_deadline": 1.0}  # the tests take a second, not twenty


@pytest.fixture
def catalogued(tmp_path: Path):
    """A signed two-version tree where 1.1.0 is withheld (embargo), with a key and links planted in it."""
    from test_sync import T0, make_publisher

    pub = make_publisher(tmp_path, 2)
    write_catalog(pub.root, signer=pub.key, now=T0 + timedelta(days=1))
    (pub.root / "publisher.key").write_bytes(b"PRIVATE KEY\n")
    (pub.root / "notes.txt").write_bytes(b"stray\n")
    hidden = pub.root / "tiny-mi" / "1.1.0" / "datapackage.json"
    os.symlink(hidden, pub.root / "early.json")
    os.symlink(hidden, pub.root / "tiny-mi" / "CHANGELOG.md")  # a catalogued name, pointing at embargo
    with running(pub.root, **IMPATIENT) as s:
        yield s, pub


def test_only_what_the_catalogue_makes_public_is_served(catalogued) -> None:
    server, _pub = catalogued
    assert request(server, "GET", "/catalog.json")[0] == 200
    assert request(server, "GET", "/catalog.json.sig")[0] == 200
    assert request(server, "GET", "/tiny-mi/1.0.0/datapackage.json")[0] == 200
    for path in (
        "/publisher.key",
        "/notes.txt",
        "/early.json",
        "/tiny-mi/CHANGELOG.md",
        "/tiny-mi/1.1.0/datapackage.json",
    ):
        status, _, body = request(server, "GET", path)
        assert status == 404, path
        assert b"PRIVATE" not in body and b'"version"' not in body


def test_a_real_changelog_is_served(catalogued) -> None:
    from test_sync import T0

    server, pub = catalogued
    link = pub.root / "tiny-mi" / "CHANGELOG.md"
    link.unlink()
    link.write_text("# changes\n", encoding="utf-8")
    write_catalog(pub.root, signer=pub.key, now=T0 + timedelta(days=1))  # catalogued with its hash
    assert request(server, "GET", "/tiny-mi/CHANGELOG.md")[0] == 200


def test_a_huge_range_header_is_ignored_not_a_crash(catalogued) -> None:
    server, _ = catalogued
    path = "/tiny-mi/1.0.0/datapackage.json"
    whole = request(server, "GET", path)[2]
    for header in ("bytes=" + "9" * 5000 + "-", "bytes=0-" + "9" * 5000, "bytes=" + "1" * 40 + "-2"):
        status, _, body = request(server, "GET", path, {"Range": header})
        assert (status, body) == (200, whole)
    assert request(server, "GET", path, {"Range": "bytes=0-3"})[2] == whole[:4]  # the server is still up


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
        return True  # the server closed it (after any answer)
    except TimeoutError:
        return False


def test_idle_connections_are_closed(catalogued) -> None:
    server, _ = catalogued
    with socket.create_connection(server.server_address[:2]) as idle:
        assert _closed_within(idle, 5.0)


def test_a_trickled_request_head_is_cut_at_the_deadline(catalogued) -> None:
    server, _ = catalogued

    with socket.create_connection(server.server_address[:2]) as slow:
        slow.sendall(b"GET /catalog.json HTTP/1.1\r\n")
        started = time.monotonic()
        try:
            for _ in range(30):  # one header byte every 0.2 s: each read beats the socket time-out
                slow.sendall(b"X")
                time.sleep(0.2)
        except OSError:
            pass
        assert _closed_within(slow, 5.0)
        assert time.monotonic() - started < 4.0


def test_connections_beyond_the_cap_get_503_at_once(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    (root / "catalog.json").write_bytes(b"{}")
    server = make_server(root, quiet=True, max_connections=2, **IMPATIENT)
    assert server.request_queue_size >= 128
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        held = [socket.create_connection(server.server_address[:2]) for _ in range(2)]
        status, _, body = request(server, "GET", "/catalog.json")
        assert status == 503 and b"too many connections" in body
        for s in held:
            s.close()
        import time

        time.sleep(0.3)
        assert request(server, "GET", "/catalog.json")[0] == 200
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# --- the event loop: large files, pipelining, HTTP/1.0 keep-alive, limits --------------------------


def _exchange(server: ReleaseServer, data: bytes, timeout: float = 10) -> bytes:
    """Send raw bytes, then read until the server closes the connection."""
    with socket.create_connection(server.server_address[:2], timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(1 << 16):
            received += chunk
    return received


def test_a_large_file_whole_ranged_and_head(server: ReleaseServer, tree: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # many chunks, flow control between them
    (tree / "big.parquet").write_bytes(data)
    assert request(server, "GET", "/big.parquet")[2] == data
    status, headers, body = request(server, "GET", "/big.parquet", {"Range": "bytes=65530-1048600"})
    assert (status, body) == (206, data[65530:1048601]) and headers["Content-Length"] == str(len(body))
    status, headers, body = request(server, "HEAD", "/big.parquet")
    assert (status, body, headers["Content-Length"]) == (200, b"", str(len(data)))


def test_pipelined_requests_are_answered_in_order(server: ReleaseServer, tree: Path) -> None:
    (tree / "big.parquet").write_bytes(b"B" * 300_000)  # the first answer is sent by a task, the rest wait
    ask = b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n"
    data = _exchange(
        server,
        ask % b"/big.parquet"
        + ask % b"/data/table.csv"
        + ask % b"/missing.csv"
        + b"GET /README.md HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", data)
    assert statuses == [b"200", b"200", b"404", b"200"]
    assert data.index(b"B" * 300_000) < data.index(FILES["data/table.csv"]) < data.index(FILES["README.md"])


def test_http_1_0_keep_alive_is_kept_and_said(server: ReleaseServer) -> None:
    ask = b"GET /data/table.csv HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    with socket.create_connection(server.server_address[:2], timeout=10) as sock:
        for _ in range(2):  # the same connection answers twice
            sock.sendall(ask)
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(4096)
            assert b"Connection: keep-alive" in head
            sock.recv(4096) if not head.endswith(FILES["data/table.csv"]) else None
    closed = _exchange(server, b"GET /data/table.csv HTTP/1.0\r\n\r\n")  # no keep-alive asked: closed after
    assert closed.endswith(FILES["data/table.csv"]) and b"Connection: close" in closed


def test_oversized_heads_and_bodies_are_refused(server: ReleaseServer) -> None:
    huge = b"GET /data/table.csv HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 70_000 + b"\r\n\r\n"
    assert _exchange(server, huge).startswith(b"HTTP/1.1 431 ")
    body = b"POST /data/table.csv HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n" + b"x" * 200_000
    assert _exchange(server, body).startswith(b"HTTP/1.1 413 ")  # answered, never read to the end
    assert _exchange(server, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert request(server, "GET", "/data/table.csv")[0] == 200  # and the server is still up


def _drain(sock: socket.socket) -> int:
    """Bytes read until the server ends the connection (closed or reset)."""
    sock.settimeout(10)
    received = 0
    try:
        while chunk := sock.recv(1 << 20):
            received += len(chunk)
    except ConnectionResetError:
        pass
    return received


def test_a_reader_that_stalls_is_cut(tree: Path) -> None:
    big = tree / "big.parquet"
    big.write_bytes(b"\0" * (32 * 1024 * 1024))  # more than the socket buffers on both sides hold
    with running(tree, listed_only=False, **IMPATIENT) as s, socket.create_connection(s.server_address[:2]) as sock:
        sock.sendall(b"GET /big.parquet HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(3)  # read nothing: the server's buffers fill and it waits for us past its time-out
        received = _drain(sock)
        assert 0 < received < big.stat().st_size


def test_a_client_that_pipelines_and_never_reads_is_dropped(tree: Path) -> None:
    """Thousands of pipelined requests whose answers are never read: the server stops reading when
    its writes back up, and drops the connection at the idle time-out instead of buffering every answer."""
    (tree / "chunk.parquet").write_bytes(b"x" * 60_000)
    ask = b"GET /chunk.parquet HTTP/1.1\r\nHost: x\r\n\r\n"
    with running(tree, listed_only=False, **IMPATIENT) as s, socket.create_connection(s.server_address[:2]) as sock:
        sock.setblocking(False)
        sent = 0
        deadline = time.monotonic() + 3
        while sent < 5_000 * len(ask) and time.monotonic() < deadline:
            try:
                sent += sock.send(ask * 50)
            except BlockingIOError:
                time.sleep(0.01)
        time.sleep(2)  # past the idle time-out, having read nothing
        sock.setblocking(True)
        received = _drain(sock)
        assert received < 50_000_000  # what socket buffers held, not 5,000 answers (300 MB)
        assert request(s, "GET", "/data/table.csv")[0] == 200
