"""A read-only HTTP server for a release tree, so a publisher can host it (and mirrors can sync) without a web stack.

The tree holds only static files, so this server computes nothing: any static host works equally, and
this one exists for a quick, safe default. What it guarantees:

- GET and HEAD only (anything else: 405); no directory listings: a directory answers with its
  ``index.html`` when that is public (the tree's index, a version's release page), else 404;
- validators for cheap re-syncs: a strong ``ETag`` and ``Last-Modified``, answering ``If-None-Match`` and
  ``If-Modified-Since`` with 304; a single ``Range: bytes=a-b`` with 206 (416 when unsatisfiable), honouring
  ``If-Range``, so an interrupted download can continue;
- nothing outside the tree: ``..`` segments, percent-encoded slashes, backslashes, dots or NUL bytes, and
  anything that is not an origin-form path are refused (403); dot-files and dot-directories (``.tmp-*``,
  ``.staging``, a mirror's ``.partial`` and ``.sync-state.json``) are not found (404);
- only what the catalogue makes public (``listed_only=True``, always so from the CLI): the catalogue files
  at the root (``catalog.json``, its signature, the DCAT and Atom views, ``index.html``), the files ``catalog.json``
  lists (versions' files and each series' ``CHANGELOG.md``), nothing else (a ``publisher.key`` left in the
  tree, a version withheld from the catalogue because it is under embargo, a stray file). The check is
  made on the requested path and again on the resolved one, so a symbolic link never reaches a file
  that is not public itself. (``listed_only=False`` serves every non-dot file that resolves inside the
  tree: for trees without a catalogue, e.g. testing the path rules; a plain static host has no such
  check either, so never upload a tree holding unreleased versions or keys to one.)
- bounded under load and against slow clients: one thread runs an asyncio event loop, so requests are
  answered in the order they arrive (a thread per connection under the GIL left some clients waiting
  seconds); requests are parsed by ``httptools`` (llhttp, Node.js's parser), not by hand. At most
  ``MAX_CONNECTIONS`` connections at a time (the next one gets an immediate 503 and is closed), a listen
  backlog of ``BACKLOG``, ``IDLE_TIMEOUT`` seconds without a byte from the client closes a connection
  (idle keep-alive connections included; a download that stalls for as long is cut too), and
  ``HEADER_DEADLINE`` seconds for a whole request head however slowly it trickles in; a request head
  over ``MAX_HEAD`` bytes is answered 431, a body over ``MAX_BODY`` (no method here takes one) 413; a
  ``Range`` header longer than ``MAX_RANGE_HEADER`` characters is ignored (the whole file is sent).

The ETag is ``"<size>-<mtime_ns>-<inode>"`` in hex, not a content hash: hashing every file on every request
would cost more than sending it. It is strong because release files are never modified in place: versions are
written under a temporary name and renamed, and catalogue files are replaced atomically (new inode), so a
change of bytes always changes the tag.
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import os
import re
import socket
import stat
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import IO
from urllib.parse import unquote

import httptools

from opendata.catalog import FEED_FILE, JSONLD_FILE, read_catalog
from opendata.descriptor import CATALOG_FILE, SIGNATURE_SUFFIX
from opendata.errors import OpenDataError
from opendata.page import PAGE_FILE

CONTENT_TYPES = {
    ".json": "application/json",
    ".jsonld": "application/ld+json",
    ".csv": "text/csv; charset=utf-8",
    ".parquet": "application/vnd.apache.parquet",
    ".md": "text/markdown; charset=utf-8",
    ".atom": "application/atom+xml",
    ".sig": "text/plain; charset=us-ascii",  # one base64 line
    ".txt": "text/plain; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".ods": "application/vnd.oasis.opendocument.spreadsheet",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
# The pages are static: no script, no frame, nothing fetched but their own inline style and images.
PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'"
CHUNK = 1 << 16  # a file up to this size leaves in one write with its headers; larger ones in chunks of it × 4
# Encoded characters that would let a path mean something other than it appears to: /, \, ., NUL.
ENCODED_HOSTILE = re.compile(r"%(2f|5c|2e|00)", re.IGNORECASE)
RANGE = re.compile(r"^bytes=(\d{0,18})-(\d{0,18})$")  # 18 digits: far beyond any file, never a huge int
MAX_RANGE_HEADER = 64
MAX_HEAD = 64 * 1024  # request line and headers together
MAX_BODY = 64 * 1024  # GET and HEAD carry none; a 405 is not worth reading more for
MAX_CONNECTIONS = 256
BACKLOG = 1024
IDLE_TIMEOUT = 10.0
HEADER_DEADLINE = 20.0
REFUSED_LINGER = 1.0  # a refused connection is read (and dropped) this long, so its 503 is not lost to a reset
ROOT_FILES = frozenset({CATALOG_FILE, CATALOG_FILE + SIGNATURE_SUFFIX, JSONLD_FILE, FEED_FILE, PAGE_FILE})
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 28\r\nRetry-After: 1\r\nConnection: close\r\n\r\ntoo many connections, retry\n"
)


def file_etag(st: os.stat_result) -> str:
    """Strong validator from size, modification time and inode (see the module docstring for why it is strong)."""
    return f'"{st.st_size:x}-{st.st_mtime_ns:x}-{st.st_ino:x}"'


def content_type(name: str) -> str:
    return CONTENT_TYPES.get(os.path.splitext(name)[1].lower(), "application/octet-stream")


@dataclass
class Request:
    """One parsed request: method and target as sent, header names in lower case (repeats joined by ", ")."""

    method: str
    target: str
    headers: dict[str, str]
    version: str = "1.1"
    keep_alive: bool = True


@dataclass
class Response:
    """What to send: status, headers, and either ``body`` or ``length`` bytes of ``file`` from ``offset``."""

    status: HTTPStatus
    headers: dict[str, str]
    body: bytes = b""
    file: IO[bytes] | None = None
    offset: int = 0
    length: int = 0
    close: bool = False  # end the connection after this response

    def head(self, request: Request, date: str) -> bytes:
        lines = [f"HTTP/1.1 {self.status.value} {self.status.phrase}", f"Date: {date}", "Server: opendata"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        if self.close or not request.keep_alive:
            lines.append("Connection: close")
        elif request.version == "1.0":
            lines.append("Connection: keep-alive")  # HTTP/1.0 keep-alive must be said
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def plain(status: HTTPStatus, text: str | None = None, headers: dict[str, str] | None = None) -> Response:
    data = (text if text is not None else f"{status.value} {status.phrase}\n").encode("utf-8")
    return Response(
        status, {"Content-Type": "text/plain; charset=utf-8", "Content-Length": str(len(data)), **(headers or {})}, data
    )


class ReleaseServer:
    """Serves one release tree: the socket (bound at construction, so a busy port fails at once), the
    public-file rules (:meth:`respond`), the cached catalogue listing and the connection count.

    :meth:`serve_forever` runs the event loop in the calling thread until :meth:`shutdown` is called from
    another thread (or Ctrl-C); ``on_request(request, status)`` is called for every answered request."""

    request_queue_size = BACKLOG

    def __init__(self, address: tuple[str, int], root: Path, **options) -> None:
        self.root = root.resolve()
        self.quiet: bool = options.get("quiet", False)
        self.listed_only: bool = options.get("listed_only", True)
        self.max_connections: int = options.get("max_connections", MAX_CONNECTIONS)
        self.idle_timeout: float = options.get("idle_timeout", IDLE_TIMEOUT)
        self.header_deadline: float = options.get("header_deadline", HEADER_DEADLINE)
        self.on_request = options.get("on_request")
        self._listing: tuple[tuple[int, int, int], frozenset[str]] | None = None
        self.proven: set[tuple[int, int]] = set()  # (device, inode) of files proven public (:meth:`_open`)
        self.connections: set[_Connection] = set()
        self._date = (0, "")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._closing = False
        self._done = threading.Event()
        self.socket = socket.create_server(address, backlog=BACKLOG)
        self.server_address = self.socket.getsockname()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    # --- running -------------------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Answer requests until :meth:`shutdown` (from another thread); blocking."""
        self._done.clear()
        try:
            asyncio.run(self._serve())
        finally:
            self._done.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        listener = await self._loop.create_server(lambda: _Connection(self), sock=self.socket, backlog=BACKLOG)
        try:
            if not self._closing:
                await self._stop.wait()
        finally:
            listener.close()
            for connection in list(self.connections):
                connection.transport.abort()

    def shutdown(self) -> None:
        """Stop :meth:`serve_forever` and wait until it has returned (call from another thread)."""
        self._closing = True
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
            self._done.wait()

    def server_close(self) -> None:
        self.socket.close()

    def date(self) -> str:
        """The ``Date`` header, formatted once a second."""
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, email.utils.formatdate(now, usegmt=True))
        return self._date[1]

    def answered(self, peer: str, request: Request, status: int) -> None:
        if self.on_request is not None:
            self.on_request(request, status)
        if not self.quiet:
            when = time.strftime("%d/%b/%Y %H:%M:%S")
            sys.stderr.write(
                f'{peer} - - [{when}] "{request.method} {request.target} HTTP/{request.version}" {status} -\n'
            )

    # --- what is public ------------------------------------------------------------------------

    def listed(self, rel: str) -> bool:
        """Whether ``rel`` is public: a root catalogue file, a catalogued series' changelog, or a
        file ``catalog.json`` lists. The catalogue is looked at (one ``stat``) on every request and
        re-read whenever it changed, so a release is public, and a withdrawal private, at once."""
        if not self.listed_only or rel in ROOT_FILES:
            return True
        try:
            st = (self.root / CATALOG_FILE).stat()
        except OSError:
            return False  # no catalogue: nothing is public yet
        key = (st.st_size, st.st_mtime_ns, st.st_ino)
        if self._listing is None or self._listing[0] != key:
            self.proven = set()  # what is public has changed: prove every file again
            try:
                catalog = read_catalog(self.root / CATALOG_FILE)
                paths = {f.path for f in (*catalog.files(), *catalog.changelogs)}
            except OpenDataError:
                paths = set()
            self._listing = (key, frozenset(paths))
        return rel in self._listing[1]

    def _resolve(self, target: str) -> tuple[Path | None, str | None, HTTPStatus]:
        """Map the request target to a file inside the root, or say why not (403 hostile, 404 absent)."""
        raw = target.split("?", 1)[0].split("#", 1)[0]
        if not raw.startswith("/") or raw.startswith("//") or "\\" in raw or "\x00" in raw:
            return None, None, HTTPStatus.FORBIDDEN
        if ENCODED_HOSTILE.search(raw):
            return None, None, HTTPStatus.FORBIDDEN
        try:
            decoded = unquote(raw, errors="strict")
        except UnicodeDecodeError:
            return None, None, HTTPStatus.FORBIDDEN
        parts = decoded[1:].split("/")
        if parts[-1] == "":  # a directory: its page, if it is listed (the root's, a version's)
            parts[-1] = PAGE_FILE
        if any(p in {".", ".."} for p in parts) or "\x00" in decoded:
            return None, None, HTTPStatus.FORBIDDEN
        if any(p == "" or p.startswith(".") for p in parts):
            return None, None, HTTPStatus.NOT_FOUND  # empty segments and dot-files are never served
        rel = "/".join(parts)
        if not self.listed(rel):
            return None, None, HTTPStatus.NOT_FOUND
        return self.root.joinpath(*parts), rel, HTTPStatus.OK

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
        if identity in self.proven:
            return handle
        try:
            resolved = path.resolve(strict=True)
            same = os.stat(resolved)
        except (OSError, RuntimeError):
            handle.close()
            return None
        public = resolved.is_relative_to(self.root) and self.listed(resolved.relative_to(self.root).as_posix())
        if not public or not stat.S_ISREG(st.st_mode) or (same.st_dev, same.st_ino) != identity:
            handle.close()
            return None  # a link is followed only to a file that is public itself
        self.proven.add(identity)
        return handle

    # --- answers -------------------------------------------------------------------------------

    def respond(self, request: Request) -> Response:
        """The answer to one request (the caller sends it and closes any file in it)."""
        if request.method not in ("GET", "HEAD"):
            return plain(HTTPStatus.METHOD_NOT_ALLOWED, "read-only: GET and HEAD only\n", {"Allow": "GET, HEAD"})
        path, rel, status = self._resolve(request.target)
        if path is None or rel is None:
            return plain(status)
        handle = self._open(path)
        if handle is None:
            return plain(HTTPStatus.NOT_FOUND)
        try:
            return self._file(request, handle, rel)
        except BaseException:
            handle.close()
            raise

    def _file(self, request: Request, handle: IO[bytes], rel: str) -> Response:
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
        if rel.endswith(".html"):
            headers["Content-Security-Policy"] = PAGE_POLICY
        if _not_modified(request.headers, etag, modified):
            handle.close()
            return Response(HTTPStatus.NOT_MODIFIED, headers)
        size = st.st_size
        wanted = _range(request.headers, size, etag, modified)
        if wanted == "unsatisfiable":
            handle.close()
            return plain(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, "416\n", {"Content-Range": f"bytes */{size}"})
        start, end, status = 0, size - 1, HTTPStatus.OK
        if wanted is not None:
            start, end = wanted
            status = HTTPStatus.PARTIAL_CONTENT
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = max(0, end - start + 1)
        headers = {"Content-Type": content_type(rel), "Content-Length": str(length), **headers}
        if request.method == "HEAD":
            handle.close()
            return Response(status, headers)
        if length <= CHUNK:  # small: read now, sent in one write with the headers
            handle.seek(start)
            body = handle.read(length)
            handle.close()
            return Response(status, headers, body)
        return Response(status, headers, file=handle, offset=start, length=length)


def _not_modified(headers: dict[str, str], etag: str, modified: datetime) -> bool:
    """RFC 9110: If-None-Match (weak comparison) wins; If-Modified-Since only when it is absent."""
    inm = headers.get("if-none-match")
    if inm is not None:
        tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
        return "*" in tags or etag in tags
    ims = headers.get("if-modified-since")
    if ims is None:
        return False
    since = _http_date(ims)
    return since is not None and modified <= since


def _range(headers: dict[str, str], size: int, etag: str, modified: datetime) -> tuple[int, int] | str | None:
    """One byte range, or None to send the whole file (no/invalid/multiple ranges, or a stale If-Range)."""
    header = headers.get("range")
    if header is None or len(header) > MAX_RANGE_HEADER:
        return None
    if_range = headers.get("if-range")
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


@dataclass
class _Head:
    """A request head as the parser delivers it, piece by piece."""

    url: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    keep_alive: bool = True
    size: int = 0
    body: int = 0
    refused: HTTPStatus | None = None  # why a callback stopped the parser


class _Connection(asyncio.Protocol):
    """One client connection: parse with httptools, answer requests in order, enforce the time-outs.

    Small answers are written at once from the parser's callback; a larger file is sent by a task that
    waits for the client to take each chunk (flow control), reading paused meanwhile so requests
    pipelined behind it wait their turn."""

    def __init__(self, server: ReleaseServer) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport
        self.parser = httptools.HttpRequestParser(self)
        self.head: _Head | None = None
        self.pending: collections.deque[Request] = collections.deque()
        self.sending = False
        self.closed = False
        self.writable: asyncio.Future[None] | None = None
        self.idle: asyncio.TimerHandle | None = None
        self.deadline: asyncio.TimerHandle | None = None
        self.peer = "-"

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if peer else "-"
        if len(self.server.connections) >= self.server.max_connections:
            return self._refuse(BUSY)
        self.server.connections.add(self)
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        for timer in (self.idle, self.deadline):
            if timer is not None:
                timer.cancel()
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self._arm_idle()
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            refused = self.head.refused if self.head is not None else None
            return self._fail(refused or HTTPStatus.BAD_REQUEST)
        self._answer()

    def pause_writing(self) -> None:
        """The client is not taking what we send: read no more requests from it until it does (a
        client pipelining requests it never reads would otherwise fill our memory with answers)."""
        self.writable = self.loop.create_future()
        if not self.sending:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)
        self.writable = None
        if not self.sending and not self.closed:
            self.transport.resume_reading()
            self._answer()

    # httptools callbacks

    def on_message_begin(self) -> None:
        self.head = _Head()
        self.deadline = self.loop.call_later(self.server.header_deadline, self._close)

    def on_url(self, url: bytes) -> None:
        assert self.head is not None
        self.head.url += url
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.head is not None
        self.head.headers.append((name, value))
        self._count(len(name) + len(value) + 4)

    def _count(self, size: int) -> None:
        assert self.head is not None
        self.head.size += size
        if self.head.size > MAX_HEAD:
            self.head.refused = HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
            raise ValueError("request head too large")  # feed_data raises HttpParserCallbackError

    def on_headers_complete(self) -> None:
        assert self.head is not None
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        self.head.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        assert self.head is not None
        self.head.body += len(body)
        if self.head.body > MAX_BODY:
            self.head.refused = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
            raise ValueError("request body too large")

    def on_message_complete(self) -> None:
        head, self.head = self.head, None
        assert head is not None
        headers: dict[str, str] = {}
        for name, value in head.headers:
            key, text = name.decode("latin-1").lower(), value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        method = self.parser.get_method().decode("latin-1")
        target = head.url.decode("latin-1")
        self.pending.append(Request(method, target, headers, self.parser.get_http_version(), head.keep_alive))

    # answering

    def _answer(self) -> None:
        """Answer the complete requests in order; a large file hands over to :meth:`_send_file`."""
        while self.pending and not self.sending and not self.closed and self.writable is None:
            request = self.pending.popleft()
            try:
                response = self.server.respond(request)
            except Exception as exc:  # a bug, never a client's doing: answer 500, keep serving others
                if not self.server.quiet:
                    sys.stderr.write(f"error answering {request.target!r}: {exc!r}\n")
                response = plain(HTTPStatus.INTERNAL_SERVER_ERROR)
                response.close = True
            self.server.answered(self.peer, request, response.status.value)
            head = response.head(request, self.server.date())
            if response.file is None:
                self.transport.write(head + response.body)
                if response.close or not request.keep_alive:
                    self._close()
                continue
            self.sending = True
            self.transport.pause_reading()
            self.loop.create_task(self._send_file(request, response, head))

    async def _send_file(self, request: Request, response: Response, head: bytes) -> None:
        assert response.file is not None
        with response.file as handle:
            handle.seek(response.offset)
            self.transport.write(head)
            remaining = response.length
            try:
                while remaining > 0 and not self.closed:
                    if self.writable is not None:  # the client has not taken what we sent
                        await asyncio.wait_for(asyncio.shield(self.writable), self.server.idle_timeout)
                        continue
                    chunk = handle.read(min(4 * CHUNK, remaining))
                    if not chunk:
                        break  # the file shrank under us; cannot happen with atomic writes
                    self.transport.write(chunk)
                    remaining -= len(chunk)
                    self._arm_idle()
            except (TimeoutError, OSError):  # a stalled reader, or a file that failed mid-read: never a hung slot
                return self._drop()
        self.sending = False
        if remaining > 0 or not request.keep_alive:
            return self._close()
        if self.writable is None:  # else resume_writing resumes reading
            self.transport.resume_reading()
        self._arm_idle()
        self._answer()

    def _fail(self, status: HTTPStatus) -> None:
        """Answer a request that cannot be parsed or is too large, then stop: see :meth:`_refuse`."""
        if not self.closed:
            response = plain(status)
            response.close = True
            self._refuse(response.head(Request("-", "-", {}), self.server.date()) + response.body)

    def _refuse(self, answer: bytes) -> None:
        """Send ``answer`` and end our side, then drop what the client still sends for a moment before
        closing: closing on unread bytes would reset the connection and lose the answer."""
        self.closed = True
        self.transport.write(answer)
        self.transport.write_eof()
        self.loop.call_later(REFUSED_LINGER, self.transport.abort)

    def _arm_idle(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        self.idle = self.loop.call_later(self.server.idle_timeout, self._idle)

    def _idle(self) -> None:
        if self.writable is not None:  # nothing heard, nothing taken: drop it, buffered answers too
            self._drop()
        elif not self.sending:  # a download in progress has its own stall time-out
            self._close()

    def _drop(self) -> None:
        """End a connection whose client takes nothing: closing would wait for it to read what is buffered."""
        self.closed = True
        self.transport.abort()

    def _close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()  # after what is buffered has been sent


def make_server(
    root: Path,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    quiet: bool = False,
    listed_only: bool = True,
    max_connections: int = MAX_CONNECTIONS,
    idle_timeout: float = IDLE_TIMEOUT,
    header_deadline: float = HEADER_DEADLINE,
    on_request=None,
) -> ReleaseServer:
    """A bound, not yet running server for ``root`` (port 0 picks a free port: see ``server.url``)."""
    root = Path(root)
    if not root.is_dir():
        raise OpenDataError(f"release tree {root} does not exist or is not a directory")
    try:
        return ReleaseServer(
            (host, port),
            root,
            quiet=quiet,
            listed_only=listed_only,
            max_connections=max_connections,
            idle_timeout=idle_timeout,
            header_deadline=header_deadline,
            on_request=on_request,
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
