"""A read-only HTTP server for a release tree, so a publisher can host it (and mirrors can sync) without a web stack.

The tree holds only static files, so this server computes nothing: any static host works equally, and
this one exists for a quick, safe default. What it guarantees:

- GET and HEAD only (anything else: 405); no directory listings (a directory is 404);
- validators for cheap re-syncs: a strong ``ETag`` and ``Last-Modified``, answering ``If-None-Match`` and
  ``If-Modified-Since`` with 304; a single ``Range: bytes=a-b`` with 206 (416 when unsatisfiable), honouring
  ``If-Range``, so an interrupted download can continue;
- nothing outside the tree: ``..`` segments, percent-encoded slashes, backslashes, dots or NUL bytes, and
  anything that is not an origin-form path are refused (403); dot-files and dot-directories (``.tmp-*``,
  ``.staging``, a mirror's ``.partial`` and ``.sync-state.json``) are not found (404);
- only what the catalogue makes public (``listed_only=True``, always so from the CLI): the catalogue files
  at the root (``catalog.json``, its signature, the DCAT and Atom views), the files ``catalog.json``
  lists (versions' files and each series' ``CHANGELOG.md``), nothing else (a ``publisher.key`` left in the
  tree, a version withheld from the catalogue because it is under embargo, a stray file). The check is
  made on the requested path and again on the resolved one, so a symbolic link never reaches a file
  that is not public itself. (``listed_only=False`` serves every non-dot file that resolves inside the
  tree: for trees without a catalogue, e.g. testing the path rules; a plain static host has no such
  check either, so never upload a tree holding unreleased versions or keys to one.)
- bounded under load and against slow clients: at most ``MAX_CONNECTIONS`` connections at a time (one
  thread each; the next one gets an immediate 503 and is closed), a listen backlog of ``BACKLOG``, a
  socket time-out of ``IDLE_TIMEOUT`` seconds between reads (idle keep-alive connections are closed),
  and ``HEADER_DEADLINE`` seconds for a whole request head however slowly it trickles in; the standard
  library caps a request or header line at 64 KiB and a request at 100 headers; a ``Range`` header
  longer than ``MAX_RANGE_HEADER`` characters is ignored (the whole file is sent).

The ETag is ``"<size>-<mtime_ns>-<inode>"`` in hex, not a content hash: hashing every file on every request
would cost more than sending it. It is strong because release files are never modified in place: versions are
written under a temporary name and renamed, and catalogue files are replaced atomically (new inode), so a
change of bytes always changes the tag.
"""

from __future__ import annotations

import contextlib
import email.utils
import os
import re
import socket
import stat
import threading
import time
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO
from urllib.parse import unquote

from opendata.catalog import FEED_FILE, JSONLD_FILE, read_catalog
from opendata.errors import OpenDataError
from opendata.signing import CATALOG_FILE, SIGNATURE_SUFFIX

CONTENT_TYPES = {
    ".json": "application/json",
    ".jsonld": "application/ld+json",
    ".csv": "text/csv; charset=utf-8",
    ".parquet": "application/vnd.apache.parquet",
    ".md": "text/markdown; charset=utf-8",
    ".atom": "application/atom+xml",
    ".sig": "text/plain; charset=us-ascii",  # one base64 line
    ".txt": "text/plain; charset=utf-8",
}
CHUNK = 1 << 16
# Encoded characters that would let a path mean something other than it appears to: /, \, ., NUL.
ENCODED_HOSTILE = re.compile(r"%(2f|5c|2e|00)", re.IGNORECASE)
RANGE = re.compile(r"^bytes=(\d{0,18})-(\d{0,18})$")  # 18 digits: far beyond any file, never a huge int
MAX_RANGE_HEADER = 64
MAX_CONNECTIONS = 256
BACKLOG = 1024
IDLE_TIMEOUT = 10.0
HEADER_DEADLINE = 20.0
WATCH_INTERVAL = 0.25
LISTING_TTL = 1.0  # seconds a listed path is trusted before catalog.json is looked at again
ROOT_FILES = frozenset({CATALOG_FILE, CATALOG_FILE + SIGNATURE_SUFFIX, JSONLD_FILE, FEED_FILE})


def file_etag(st: os.stat_result) -> str:
    """Strong validator from size, modification time and inode (see the module docstring for why it is strong)."""
    return f'"{st.st_size:x}-{st.st_mtime_ns:x}-{st.st_ino:x}"'


def content_type(name: str) -> str:
    return CONTENT_TYPES.get(os.path.splitext(name)[1].lower(), "application/octet-stream")


class ReleaseServer(ThreadingHTTPServer):
    """Serves one release tree; holds the root, the logging choice, the cached catalogue listing and
    the connection cap."""

    daemon_threads = True
    request_queue_size = BACKLOG

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], root: Path, **options):
        self.root = root.resolve()
        self.quiet: bool = options.get("quiet", False)
        self.listed_only: bool = options.get("listed_only", True)
        self._listing: tuple[tuple[int, int, int], frozenset[str]] | None = None
        self._checked = 0.0  # when the catalogue was last looked at
        self.proven: set[tuple[int, int]] = set()  # (device, inode) of files proven public (``ReleaseHandler._open``)
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(options.get("max_connections", MAX_CONNECTIONS))
        self._heads: dict[ReleaseHandler, float] = {}  # request heads being read, by deadline
        super().__init__(address, handler)
        threading.Thread(target=self._watchdog, daemon=True, name="request-head deadlines").start()

    def watch(self, handler: ReleaseHandler, deadline: float | None) -> None:
        with self._lock:
            if deadline is None:
                self._heads.pop(handler, None)
            else:
                self._heads[handler] = deadline

    def _watchdog(self) -> None:
        """One thread for every connection's head deadline (a timer per request would cost a thread each)."""
        while self.socket.fileno() >= 0:
            time.sleep(WATCH_INTERVAL)
            now = time.monotonic()
            with self._lock:
                late = [h for h, deadline in self._heads.items() if deadline <= now]
            for handler in late:
                handler.cut()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def process_request(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        """One thread per connection, up to the cap; beyond it a 503 at once, so no client hangs."""
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.sendall(BUSY)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def listed(self, rel: str) -> bool:
        """Whether ``rel`` is public: a root catalogue file, a catalogued series' changelog, or a
        file ``catalog.json`` lists (the listing is re-read whenever the catalogue changes)."""
        if not self.listed_only or rel in ROOT_FILES:
            return True
        now = time.monotonic()
        if self._listing is not None and now < self._checked + LISTING_TTL and rel in self._listing[1]:
            return True  # a miss always looks at the catalogue again, so a new release is public at once
        try:
            st = (self.root / CATALOG_FILE).stat()
        except OSError:
            return False  # no catalogue: nothing is public yet
        key = (st.st_size, st.st_mtime_ns, st.st_ino)
        with self._lock:
            self._checked = now
            if self._listing is None or self._listing[0] != key:
                self.proven = set()  # what is public has changed: prove every file again
                try:
                    catalog = read_catalog(self.root / CATALOG_FILE)
                    paths = {f.path for f in (*catalog.files(), *catalog.changelogs)}
                except OpenDataError:
                    paths = set()
                self._listing = (key, frozenset(paths))
            return rel in self._listing[1]


BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 23\r\nRetry-After: 1\r\nConnection: close\r\n\r\ntoo many connections, retry\n"
)


class ReleaseHandler(BaseHTTPRequestHandler):
    """GET/HEAD of static files under the server's root, with validators and single ranges."""

    server: ReleaseServer
    server_version = "opendata"
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT  # socket time-out between reads: idle keep-alive connections end
    header_deadline = HEADER_DEADLINE

    def handle_one_request(self) -> None:
        """Close the connection if a request head is not complete within ``header_deadline`` seconds,
        however slowly it trickles in (the socket time-out alone restarts with every byte)."""
        self.server.watch(self, time.monotonic() + self.header_deadline)
        try:
            super().handle_one_request()
        finally:
            self.server.watch(self, None)

    def parse_request(self) -> bool:
        ok = super().parse_request()
        self.server.watch(self, None)  # the head is in: sending the body may take as long as it takes
        return ok

    def send_response(self, code: int, message: str | None = None) -> None:
        super().send_response(code, message)
        if self.request_version == "HTTP/1.0" and not self.close_connection:  # HTTP/1.0 keep-alive must be said
            self.send_header("Connection", "keep-alive")

    def cut(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def _not_allowed(self) -> None:
        self._plain(HTTPStatus.METHOD_NOT_ALLOWED, "read-only: GET and HEAD only\n", {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _not_allowed

    def log_message(self, format: str, *args) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)

    # --- paths ---------------------------------------------------------------------------------

    def _resolve(self) -> tuple[Path | None, str | None, HTTPStatus]:
        """Map the request target to a file inside the root, or say why not (403 hostile, 404 absent)."""
        raw = self.path.split("?", 1)[0].split("#", 1)[0]
        if not raw.startswith("/") or raw.startswith("//") or "\\" in raw or "\x00" in raw:
            return None, None, HTTPStatus.FORBIDDEN
        if ENCODED_HOSTILE.search(raw):
            return None, None, HTTPStatus.FORBIDDEN
        try:
            decoded = unquote(raw, errors="strict")
        except UnicodeDecodeError:
            return None, None, HTTPStatus.FORBIDDEN
        parts = decoded[1:].split("/")
        if any(p in {".", ".."} for p in parts) or "\x00" in decoded:
            return None, None, HTTPStatus.FORBIDDEN
        if any(p == "" or p.startswith(".") for p in parts):
            return None, None, HTTPStatus.NOT_FOUND  # directories (trailing /) and dot-files are never served
        rel = "/".join(parts)
        if not self.server.listed(rel):
            return None, None, HTTPStatus.NOT_FOUND
        return self.server.root.joinpath(*parts), rel, HTTPStatus.OK

    def _open(self, path: Path) -> IO[bytes] | None:
        """Open ``path`` if it is, after every link, a public file inside the root.

        The file is opened first, then identified by device and inode: an inode already proven to
        sit at a public resolved path is served at once (the common case costs one open and one
        fstat); otherwise the path is resolved, the resolved file must be public and inside the root,
        and it must be the very inode opened (a link swapped in between is refused)."""
        try:
            handle = path.open("rb")
        except OSError:
            return None
        st = os.fstat(handle.fileno())
        identity = (st.st_dev, st.st_ino)
        if identity in self.server.proven:
            return handle
        try:
            resolved = path.resolve(strict=True)
            same = os.stat(resolved)
        except (OSError, RuntimeError):
            handle.close()
            return None
        root = self.server.root
        public = resolved.is_relative_to(root) and self.server.listed(resolved.relative_to(root).as_posix())
        if not public or not stat.S_ISREG(st.st_mode) or (same.st_dev, same.st_ino) != identity:
            handle.close()
            return None  # a link is followed only to a file that is public itself
        self.server.proven.add(identity)
        return handle

    # --- responses -----------------------------------------------------------------------------

    def _plain(self, status: HTTPStatus, text: str, headers: dict[str, str] | None = None, body: bool = True) -> None:
        data = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(data)

    def _serve(self, body: bool) -> None:
        path, rel, status = self._resolve()
        if path is None or rel is None:
            self._plain(status, f"{status.value} {status.phrase}\n", body=body)
            return
        handle = self._open(path)
        if handle is None:
            self._plain(HTTPStatus.NOT_FOUND, "404 Not Found\n", body=body)
            return
        with handle:
            st = os.fstat(handle.fileno())
            etag = file_etag(st)
            modified = datetime.fromtimestamp(st.st_mtime, UTC).replace(microsecond=0)
            headers = {
                "ETag": etag,
                "Last-Modified": email.utils.format_datetime(modified, usegmt=True),
                "Accept-Ranges": "bytes",
                "X-Content-Type-Options": "nosniff",
                # Version files never change; the catalogue changes with every release and must be revalidated.
                "Cache-Control": "no-cache" if "/" not in rel else "public, max-age=31536000, immutable",
            }
            if self._not_modified(etag, modified):
                self.send_response(HTTPStatus.NOT_MODIFIED)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                return
            size = st.st_size
            start, end = 0, size - 1
            status = HTTPStatus.OK
            wanted = self._range(size, etag, modified)
            if wanted == "unsatisfiable":
                self._plain(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, "416\n", {"Content-Range": f"bytes */{size}"})
                return
            if wanted is not None:
                start, end = wanted
                status = HTTPStatus.PARTIAL_CONTENT
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            length = max(0, end - start + 1)
            self.send_response(status)
            self.send_header("Content-Type", content_type(path.name))
            self.send_header("Content-Length", str(length))
            for k, v in headers.items():
                self.send_header(k, v)
            handle.seek(start)
            if body and length <= CHUNK:  # a small file leaves in the same packet as its headers
                self._headers_buffer.append(b"\r\n" + handle.read(length))
                self.flush_headers()
                return
            self.end_headers()
            if not body:
                return
            remaining = length
            while remaining > 0:
                chunk = handle.read(min(CHUNK, remaining))
                if not chunk:
                    break  # the file shrank under us; cannot happen with atomic writes
                self.wfile.write(chunk)
                remaining -= len(chunk)

    def _not_modified(self, etag: str, modified: datetime) -> bool:
        """RFC 9110: If-None-Match (weak comparison) wins; If-Modified-Since only when it is absent."""
        inm = self.headers.get("If-None-Match")
        if inm is not None:
            tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
            return "*" in tags or etag in tags
        ims = self.headers.get("If-Modified-Since")
        if ims is None:
            return False
        since = _http_date(ims)
        return since is not None and modified <= since

    def _range(self, size: int, etag: str, modified: datetime) -> tuple[int, int] | str | None:
        """One byte range, or None to send the whole file (no/invalid/multiple ranges, or a stale If-Range)."""
        header = self.headers.get("Range")
        if header is None or len(header) > MAX_RANGE_HEADER:
            return None
        if_range = self.headers.get("If-Range")
        if if_range is not None:
            if if_range.startswith(('"', "W/")):
                if if_range.strip() != etag:  # strong comparison; a weak tag never matches
                    return None
            elif (since := _http_date(if_range)) is None or modified > since:
                return None
        match = RANGE.match(header.strip())
        if not match or match.groups() == ("", ""):
            return None  # malformed or several ranges: RFC 9110 lets us ignore the header
        first, last = match.groups()
        if first == "":  # suffix: the last N bytes
            n = int(last)
            if n == 0 or size == 0:
                return "unsatisfiable"
            return max(0, size - n), size - 1
        start = int(first)
        end = size - 1 if last == "" else min(int(last), size - 1)
        if last != "" and int(last) < start:
            return None
        if start >= size:
            return "unsatisfiable"
        return start, end


def _http_date(value: str) -> datetime | None:
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def make_server(
    root: Path,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    quiet: bool = False,
    listed_only: bool = True,
    handler: type[ReleaseHandler] = ReleaseHandler,
    max_connections: int = MAX_CONNECTIONS,
) -> ReleaseServer:
    """A bound, not yet running server for ``root`` (port 0 picks a free port: see ``server.url``)."""
    root = Path(root)
    if not root.is_dir():
        raise OpenDataError(f"release tree {root} does not exist or is not a directory")
    try:
        return ReleaseServer(
            (host, port), handler, root, quiet=quiet, listed_only=listed_only, max_connections=max_connections
        )
    except OSError as exc:  # a busy port or an address this machine does not have
        raise OpenDataError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port") from None


def serve(root: Path, host: str = "127.0.0.1", port: int = 8000, *, quiet: bool = False, listed_only: bool = True):
    """Serve ``root`` until interrupted (Ctrl-C); blocking."""
    server = make_server(root, host, port, quiet=quiet, listed_only=listed_only)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
