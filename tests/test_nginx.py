"""A real static host: Debian's nginx serves a signed release tree, and ``sync`` and ``load`` keep their
guarantees against it (verified signatures, 304 on an unchanged catalogue, an interrupted download
continued with a Range request). nginx is a system package: ``.ci/run`` installs it and sets
``OPENDATA_REQUIRE_NGINX=1``, so in CI this test fails rather than skips when nginx is missing; elsewhere
it is skipped with the reason."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_sync import Publisher, make_publisher

import opendata
from opendata.catalog import read_catalog
from opendata.sync import PARTIAL_DIR, SyncInterrupted, sync
from opendata.verify import verify_tree

NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
CONFIG = """
daemon off;
{user}worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    types {{ application/vnd.apache.parquet parquet; }}
    log_format ranges '$request_uri $status "$http_range"';
    access_log {work}/access.log ranges;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location ~ /\\. {{ return 404; }}
    }}
}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[tuple[str, Publisher, Path]]:
    if NGINX is None:
        if os.environ.get("OPENDATA_REQUIRE_NGINX"):
            pytest.fail("nginx is required here (OPENDATA_REQUIRE_NGINX) but not installed")
        pytest.skip("nginx is not installed (Debian package nginx; .ci/run installs it)")
    pub = make_publisher(tmp_path / "publisher", 2)
    work = tmp_path / "nginx"
    work.mkdir()
    port = _free_port()
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read the test's private temp dirs
    config = CONFIG.format(user=user, work=work, port=port, root=pub.root)
    (work / "nginx.conf").write_text(config, encoding="utf-8")
    process = subprocess.Popen(
        [NGINX, "-c", str(work / "nginx.conf"), "-p", str(work)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None:
                    pytest.fail(f"nginx did not start: {process.stderr.read().decode()}")  # type: ignore[union-attr]
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/", pub, work / "access.log"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _logged(log: Path, wanted) -> bool:
    """Whether the access log's lines come to satisfy ``wanted`` within 10 s: nginx writes a line after
    the response has gone, so a client can be faster than the log (CI once read the previous line as
    the last one)."""
    deadline = time.monotonic() + 10
    while not wanted(log.read_text().splitlines()):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_sync_from_nginx_verifies_revalidates_and_continues(nginx, tmp_path: Path) -> None:
    url, pub, log = nginx
    mirror = tmp_path / "mirror"
    files = len(read_catalog(pub.root / "catalog.json").files())

    class CutOnce:
        """A network cut after three version files."""

        def __init__(self) -> None:
            self.inner, self.files = urllib.request.build_opener(), 0

        def open(self, request, timeout=None):
            if "/tiny-mi/" in request.full_url:
                if self.files == 3:
                    raise ConnectionResetError("connection reset by peer")
                self.files += 1
            return self.inner.open(request, timeout=timeout)

    with pytest.raises(SyncInterrupted):
        sync(url, mirror, pub.public, progress=False, opener=CutOnce())
    kept = max((p for p in (mirror / PARTIAL_DIR).rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    kept.write_bytes(kept.read_bytes()[: kept.stat().st_size // 2])  # as if cut mid-transfer

    done = sync(url, mirror, pub.public, progress=False)
    assert done.files_resumed == 2 and done.files_downloaded == files - 2
    assert verify_tree(mirror, pub.public).ok
    rel = kept.relative_to(mirror / PARTIAL_DIR).as_posix()
    assert _logged(log, lambda lines: any(line.startswith(f'/{rel} 206 "bytes=') for line in lines))

    again = sync(url, mirror, pub.public, progress=False)
    assert (again.requests, again.catalog_unchanged, again.up_to_date) == (1, True, True)
    assert _logged(log, lambda lines: lines[-1].startswith("/catalog.json 304"))


def test_load_from_nginx_checks_the_signature(nginx, tmp_path: Path) -> None:
    url, pub, _ = nginx
    frame = opendata.load(url + "tiny-mi", trust=pub.public, cache_dir=tmp_path / "cache")
    assert len(frame) > 0
    with pytest.warns(opendata.UnverifiedData):
        opendata.load(url + "tiny-mi", cache_dir=tmp_path / "cache2")
