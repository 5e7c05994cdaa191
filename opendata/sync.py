"""Mirror a publisher's release tree incrementally, trusting nothing the publisher's key has not signed.

One ``sync`` call, against an ``http(s)://`` URL or a local directory:

1. fetch ``catalog.json`` conditionally: the ETag and Last-Modified of the last sync are kept in
   ``mirror/.sync-state.json``; a 304 means nothing changed, so an unchanged tree costs one request in all
   (the signature is only fetched with a changed catalogue: same bytes, same key, same Ed25519 signature);
2. verify ``catalog.json.sig`` with the trusted key before reading anything in it, then refuse a catalogue
   that lists unsafe paths, that is older than the one the mirror holds (rollback), or that lists a version
   the mirror holds with different content (published versions are immutable);
3. download only the versions the mirror lacks into ``mirror/.partial/<name>/<version>/``, checking every
   file's size and SHA-256 against the catalogue and the version's signed ``datapackage.json``
   (``verify_package``), then rename each complete version into ``mirror/<name>/<version>/``;
4. write the catalogue files atomically, last, so the mirror's catalogue never lists a version it does not
   hold in full: ``catalog.json`` and its ``.sig`` as fetched, ``catalog.jsonld`` and ``feed.atom`` made
   here from the verified versions (the source's copies are unsigned, so they are never fetched).

Resuming: an interrupted run leaves ``.partial``; the next run keeps each finished file whose SHA-256 matches
and continues a shorter one with a ``Range`` request (falling back to a full download if the server ignores
the range or the result does not verify). A refusal (bad signature, tampered file) removes what the run
downloaded, so the mirror is left as it was. The mirror never receives embargoed data: it fetches only what
the signed catalogue lists, and ``write_catalog`` leaves embargoed versions out of it.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.error import HTTPError, URLError
from urllib.parse import quote

from opendata.catalog import Catalog, CatalogVersion, derived_views, read_catalog
from opendata.descriptor import CATALOG_FILE, DESCRIPTOR_FILE, SIGNATURE_SUFFIX, FileInfo, PackageInfo, parse_time
from opendata.digest import file_digest
from opendata.errors import OpenDataError
from opendata.serve import file_etag
from opendata.signing import (
    PublicKey,
    SignatureError,
    SigningKey,
    fingerprint,
    load_public_key,
    verify_signature,
    write_atomic,
)
from opendata.verify import verify_package

STATE_FILE = ".sync-state.json"
PARTIAL_DIR = ".partial"
SIG_FILE = CATALOG_FILE + SIGNATURE_SUFFIX
STATE_FORMAT = "opendata-sync-state"
MAX_CATALOG_BYTES = 64 << 20  # a catalogue bigger than this is hostile, not large
MAX_SIG_BYTES = 4096
TIMEOUT = 60  # seconds for any one read from the source
DEADLINE = 3600.0  # seconds for a whole sync: a source that trickles bytes cannot hold a mirror forever
MAX_BYTES = 64 << 30  # the most one sync downloads: a signed catalogue may still list absurd sizes
FREE_MARGIN = 64 << 20  # left free on the mirror's disk after a sync
CHUNK = 1 << 16


class SyncError(OpenDataError):
    """The mirror cannot be brought up to date safely; the message says why and what was left untouched."""


class SyncInterrupted(SyncError):
    """The source stopped answering mid-sync; finished files stay in ``.partial`` and the next run resumes."""


class _Refused(SyncError):
    """The source served something that fails verification; what this run downloaded is discarded."""


@dataclass
class SyncSummary:
    """What a sync did (or, with ``dry_run``, would do), for the CLI summary and for tests."""

    source: str
    mirror: Path
    key_fingerprint: str
    dry_run: bool = False
    catalog_unchanged: bool = False  # the source answered 304, or served the catalogue the mirror holds
    versions_added: list[str] = field(default_factory=list)  # "name version", oldest first per package
    versions_held: int = 0  # listed versions the mirror already had
    files_downloaded: int = 0  # in a dry run: files that would be fetched
    bytes_downloaded: int = 0
    files_resumed: int = 0  # finished files kept from an interrupted run
    requests: int = 0  # HTTP requests (or file opens, for a directory source)
    withdrawn: list[str] = field(default_factory=list)  # in the mirror's old catalogue, not the new one; kept

    @property
    def up_to_date(self) -> bool:
        return not self.versions_added

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["mirror"] = str(self.mirror)
        return out


# --- sources ---------------------------------------------------------------------------------


@dataclass
class _Reply:
    status: int
    headers: Mapping[str, str]
    body: IO[bytes] | None

    def close(self) -> None:
        if self.body is not None:
            self.body.close()


class _Source(Protocol):
    requests: int
    where: str
    clock: _Deadline

    def get(self, rel: str, headers: Mapping[str, str]) -> _Reply: ...


class _HttpSource:
    """GETs through urllib (or the caller's opener, e.g. for proxies, auth or tests)."""

    def __init__(self, base: str, opener: Any | None, clock: _Deadline):
        self.where = base if base.endswith("/") else base + "/"
        self.opener = opener or urllib.request.build_opener()
        self.requests = 0
        self.clock = clock

    def get(self, rel: str, headers: Mapping[str, str]) -> _Reply:
        url = self.where + quote(rel)
        request = urllib.request.Request(
            url, headers={"User-Agent": "opendata-sync", "Accept-Encoding": "identity", **headers}
        )
        self.requests += 1
        try:
            response = self.opener.open(request, timeout=min(TIMEOUT, self.clock.left(url)))
        except HTTPError as exc:
            exc.close()
            if exc.code in (304, 404, 410, 416):
                return _Reply(exc.code, exc.headers, None)
            raise SyncInterrupted(f"{url}: HTTP {exc.code} {exc.reason}") from None
        except (URLError, OSError, http.client.HTTPException) as exc:
            raise SyncInterrupted(f"{url}: {getattr(exc, 'reason', exc)}") from None
        return _Reply(response.status, response.headers, response)


class _DirectorySource:
    """A local tree read like the HTTP server would serve it: same validators, ranges, containment."""

    def __init__(self, root: Path, clock: _Deadline):
        if not root.is_dir():
            raise SyncError(f"source {root} is not a directory (or an http(s):// URL)")
        self.root = root.resolve()
        self.where = str(root)
        self.requests = 0
        self.clock = clock

    def get(self, rel: str, headers: Mapping[str, str]) -> _Reply:
        self.requests += 1
        try:
            path = (self.root / rel).resolve(strict=True)
        except (OSError, RuntimeError):
            return _Reply(404, {}, None)
        if not path.is_relative_to(self.root) or not path.is_file():
            return _Reply(404, {}, None)
        handle = path.open("rb")
        st = os.fstat(handle.fileno())
        etag = file_etag(st)
        if headers.get("If-None-Match") == etag:
            handle.close()
            return _Reply(304, {"ETag": etag}, None)
        start = _range_start(headers.get("Range"))
        if start and start < st.st_size:
            handle.seek(start)
            return _Reply(206, {"ETag": etag, "Content-Range": f"bytes {start}-{st.st_size - 1}/{st.st_size}"}, handle)
        return _Reply(200, {"ETag": etag}, handle)


def _range_start(header: str | None) -> int | None:
    if not header or not header.startswith("bytes=") or not header.endswith("-"):
        return None
    digits = header[len("bytes=") : -1]
    return int(digits) if digits.isdigit() else None


@dataclass
class _Deadline:
    """The end of a sync's time, checked before every request and after every read."""

    seconds: float
    ends: float = 0.0

    def __post_init__(self) -> None:
        self.ends = time.monotonic() + self.seconds

    def left(self, what: str) -> float:
        left = self.ends - time.monotonic()
        if left <= 0:
            raise SyncInterrupted(
                f"{what}: the sync's deadline of {self.seconds:g} s passed (a slow or stalling source); "
                "finished files are kept and the next run continues"
            )
        return left


def _open_source(source: str | Path, opener: Any | None, clock: _Deadline) -> _Source:
    text = str(source)
    if text.startswith(("http://", "https://")):
        return _HttpSource(text, opener, clock)
    if "://" in text:
        raise SyncError(f"source {text!r}: only http://, https:// URLs and local directories are supported")
    return _DirectorySource(Path(text), clock)


def _chunks(reply: _Reply, limit: int, what: str, clock: _Deadline) -> Iterator[bytes]:
    """The body as it arrives (``read1``: whatever one read brings, so a trickle meets the deadline
    check), at most ``limit + 1`` bytes; a lost connection is an interruption, not tampering."""
    assert reply.body is not None
    read = getattr(reply.body, "read1", reply.body.read)
    got = 0
    try:
        while got <= limit and (chunk := read(min(CHUNK, limit + 1 - got))):
            got += len(chunk)
            yield chunk
            clock.left(what)
    except (OSError, http.client.HTTPException) as exc:
        raise SyncInterrupted(f"{what}: connection lost after {got} bytes: {exc}") from None
    finally:
        reply.close()


def _read_body(reply: _Reply, limit: int, what: str, clock: _Deadline) -> bytes:
    """The whole body, refusing more than ``limit`` bytes (a hostile server could send forever)."""
    data = b"".join(_chunks(reply, limit, what, clock))
    if len(data) > limit:
        raise _Refused(f"{what} is larger than {limit} bytes; refusing it")
    return data


# --- trust -----------------------------------------------------------------------------------


def _public_key(trust: Path | str | PublicKey | SigningKey) -> PublicKey:
    if isinstance(trust, SigningKey):
        return trust.public_key()
    if isinstance(trust, PublicKey):
        return trust
    return load_public_key(trust)


def _verify_catalog(data: bytes, sig: bytes, public: PublicKey) -> None:
    """Ed25519 over the exact catalogue bytes; nothing in the catalogue is looked at before this passes."""
    try:
        verify_signature(data, sig, public, name=CATALOG_FILE, signature_name=SIG_FILE)
    except SignatureError as exc:
        raise _Refused(
            f"{exc}; the catalogue is refused (forged, altered, not signed with the trusted key, "
            "or replaced by the publisher mid-sync: run again); the mirror was not changed"
        ) from None


@dataclass(frozen=True)
class _Held:
    """The mirror's current catalogue, if it verifies with the trusted key."""

    data: bytes
    sig: bytes
    catalog: Catalog


def _held_catalog(mirror: Path, public: PublicKey) -> _Held | None:
    try:
        data = (mirror / CATALOG_FILE).read_bytes()
        sig = (mirror / SIG_FILE).read_bytes()
        _verify_catalog(data, sig, public)
        return _Held(data, sig, read_catalog(data, source_name=mirror / CATALOG_FILE))
    except (OSError, OpenDataError):
        return None  # absent, or not ours: start as if from scratch, with nothing trusted


def _newest(catalog: Catalog) -> datetime | None:
    stamps = [v.created for v in catalog.versions] or ([catalog.modified] if catalog.modified else [])
    moments = []
    for s in stamps:
        try:
            moments.append(parse_time(s))
        except ValueError as exc:  # refused, never a traceback comparing naive and aware times
            raise _Refused(f"{CATALOG_FILE}: {exc}") from None
    return max(moments, default=None)


# --- state -----------------------------------------------------------------------------------


def _read_state(mirror: Path, source: str, public: PublicKey) -> dict[str, Any]:
    """The validators of the last sync, only if it was from the same source with the same key."""
    try:
        state = json.loads((mirror / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        return {}
    if state.get("source") != source or state.get("key") != fingerprint(public):
        return {}
    return state.get("catalog") if isinstance(state.get("catalog"), dict) else {}


def _write_state(mirror: Path, source: str, public: PublicKey, validators: dict[str, Any]) -> None:
    doc = {"format": STATE_FORMAT, "source": source, "key": fingerprint(public), "catalog": validators}
    write_atomic(mirror / STATE_FILE, (json.dumps(doc, indent=2) + "\n").encode("utf-8"))


# --- planning --------------------------------------------------------------------------------


def _inside(mirror: Path, target: Path) -> Path:
    """Refuse a target that would land outside the mirror, symbolic links in the mirror included."""
    resolved = target.resolve()
    if not resolved.is_relative_to(mirror.resolve()):
        raise _Refused(f"{target} resolves to {resolved}, outside the mirror; refusing to write there")
    return target


def _holds(mirror: Path, f: FileInfo) -> bool:
    """Whether the mirror already has exactly the catalogue's bytes for ``f``."""
    path = mirror / f.path
    return path.is_file() and path.stat().st_size == f.bytes and _sha256(path) == f.sha256


def _sha256(path: Path) -> str:
    return file_digest(path)[1]


def _differs_on_disk(mirror: Path, version: CatalogVersion) -> list[str]:
    """How a held version directory differs from the catalogue entry (empty when identical)."""
    base = mirror / version.path
    on_disk = {
        p.relative_to(mirror).as_posix()
        for p in base.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(base).parts)
    }
    listed = {f.path: f for f in version.files}
    problems = [f"{p}: not in the catalogue" for p in sorted(on_disk - listed.keys())]
    for path, f in listed.items():
        target = mirror / path
        if path not in on_disk:
            problems.append(f"{path}: missing")
        elif target.stat().st_size != f.bytes or _sha256(target) != f.sha256:
            problems.append(f"{path}: different bytes")
    return problems


def _plan(mirror: Path, catalog: Catalog, held: _Held | None) -> tuple[list[CatalogVersion], int]:
    """The versions to download, and how many the mirror already holds (checked to be the same content)."""
    previous = {(v.name, v.version): v for v in held.catalog.versions} if held else {}
    missing: list[CatalogVersion] = []
    count = 0
    for v in catalog.versions:
        target = _inside(mirror, mirror / v.path)
        before = previous.get((v.name, v.version))
        if before is not None and before != v:
            raise _Refused(
                f"{v.name} {v.version}: the source lists different content for a version the mirror already "
                "holds; published versions are immutable, so the mirror was not changed"
            )
        if not target.exists():
            missing.append(v)
        elif before is None and (problems := _differs_on_disk(mirror, v)):
            raise _Refused(
                f"{v.name} {v.version}: the mirror already holds this version with different content "
                f"({'; '.join(problems[:5])}); the mirror was not changed"
            )
        else:
            count += 1
    return missing, count


# --- downloading -----------------------------------------------------------------------------


class _Progress:
    """A rich byte-progress bar on stderr, or nothing."""

    def __init__(self, enabled: bool, total: int, label: str):
        self.bar = None
        if enabled and total:
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=Console(stderr=True),
            )
            self.task = self.bar.add_task(label, total=total)

    def __enter__(self) -> _Progress:
        if self.bar:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar:
            self.bar.stop()

    def advance(self, n: int, description: str | None = None) -> None:
        if self.bar:
            self.bar.update(self.task, advance=n, description=description or self.bar.tasks[0].description)


def _fetch_file(src: _Source, f: FileInfo, local: Path, summary: SyncSummary, bar: _Progress) -> None:
    """Bring ``local`` to exactly the catalogue's bytes: keep it, continue it with a Range, or download it."""
    have = local.stat().st_size if local.is_file() else 0
    if have == f.bytes and _sha256(local) == f.sha256:
        summary.files_resumed += 1
        bar.advance(f.bytes)
        return
    if have >= f.bytes:
        local.unlink()
        have = 0
    for attempt in range(2):
        reply = src.get(f.path, {"Range": f"bytes={have}-"} if have else {})
        if reply.status in (404, 410):
            raise SyncInterrupted(f"{f.path}: listed in the signed catalogue but the source does not have it")
        start = 0
        if reply.status == 206:
            start = have if reply.headers.get("Content-Range", "").startswith(f"bytes {have}-") else -1
        if reply.status not in (200, 206) or start < 0:
            reply.close()
            raise SyncInterrupted(f"{f.path}: unexpected HTTP {reply.status} answer")
        digest = hashlib.sha256()
        if start:
            with local.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
        size = start
        with local.open("ab" if start else "wb") as out:
            for chunk in _chunks(reply, f.bytes - start, f.path, src.clock):
                size += len(chunk)
                if size > f.bytes:
                    break
                digest.update(chunk)
                out.write(chunk)
                summary.bytes_downloaded += len(chunk)
                bar.advance(len(chunk))
        if size == f.bytes and digest.hexdigest() == f.sha256:
            summary.files_downloaded += 1
            return
        if size < f.bytes:  # the body ended early: a truncation, kept so that the next run continues it
            raise SyncInterrupted(f"{f.path}: the source sent {size} of {f.bytes} bytes; the next run continues")
        local.unlink(missing_ok=True)
        if start == 0 or attempt:
            break  # a whole download that does not verify: the source is serving something else
        have = 0  # a continued file that does not verify: start it again once
    raise _Refused(
        f"{f.path}: the source served bytes that do not match the size and SHA-256 in the signed catalogue "
        "(tampered or corrupt); the mirror was not changed"
    )


def _download_version(src: _Source, v: CatalogVersion, staging: Path, public: PublicKey, summary, bar) -> None:
    wanted = {f.path.removeprefix(v.path + "/"): f for f in v.files}
    if staging.is_dir():  # left by an interrupted run: drop anything the catalogue does not list
        for p in sorted(staging.rglob("*"), reverse=True):
            rel = p.relative_to(staging).as_posix()
            if p.is_file() and rel not in wanted:
                p.unlink()
    for rel, f in wanted.items():
        local = staging / rel
        local.parent.mkdir(parents=True, exist_ok=True)
        _fetch_file(src, f, local, summary, bar)
    try:
        verify_package(staging, public)
        info = PackageInfo.read(staging)
    except OpenDataError as exc:
        raise _Refused(f"{v.name} {v.version}: {exc}; the mirror was not changed") from None
    if (info.name, info.version) != (v.name, v.version):
        raise _Refused(f"{v.path}/{DESCRIPTOR_FILE} describes {info.name} {info.version}; the mirror was not changed")


def _discard(paths: list[Path], stop: Path) -> None:
    """Remove what this run created under ``.partial``, and the directories left empty up to ``stop``."""
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
        parent = path.parent
        while parent != stop.parent and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent


def _prune(partial: Path) -> None:
    """Remove directories left empty under ``.partial`` (and it, if empty), keeping any unfinished download."""
    if not partial.is_dir():
        return
    for p in sorted((p for p in partial.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(p.iterdir()):
            p.rmdir()
    if not any(partial.iterdir()):
        partial.rmdir()


# --- the sync --------------------------------------------------------------------------------


def sync(
    source: str | Path,
    mirror: Path,
    trust: Path | str | PublicKey | SigningKey,
    *,
    dry_run: bool = False,
    progress: bool | None = None,
    opener: Any | None = None,
    deadline: float = DEADLINE,
    max_bytes: int = MAX_BYTES,
) -> SyncSummary:
    """Bring ``mirror`` up to date with ``source`` (an http(s) URL or a directory), verified with ``trust``.

    ``trust`` is the publisher's public key (a key file path or a key object). ``progress`` shows a rich bar on
    stderr (None: only when stderr is a terminal). ``opener`` replaces urllib's default opener for HTTP (anything
    with ``open(request, timeout=...)``, e.g. ``urllib.request.build_opener(ProxyHandler(...))``).
    ``deadline`` (seconds) bounds the whole run and ``max_bytes`` what it downloads; the mirror's disk
    must keep ``FREE_MARGIN`` free after the download. A truncated body is kept in ``.partial`` and
    continued by the next run. A mirror catalogue that no longer verifies with ``trust`` is ignored:
    the sync starts as if from scratch, re-checking every held version on disk against the new catalogue.
    Raises SyncError (SyncInterrupted when a re-run can resume) and leaves the mirror's published contents
    unchanged on any refusal.
    """
    mirror = Path(mirror)
    public = _public_key(trust)
    source_text = str(source)
    clock = _Deadline(deadline)
    src = _open_source(source, opener, clock)
    summary = SyncSummary(source_text, mirror, fingerprint(public), dry_run=dry_run)
    held = _held_catalog(mirror, public)
    validators = _read_state(mirror, source_text, public)

    # 1. The catalogue, conditionally; its signature only when it changed.
    headers = {}
    if held and validators.get("sha256") == hashlib.sha256(held.data).hexdigest():
        if validators.get("etag"):
            headers["If-None-Match"] = validators["etag"]
        if validators.get("lastModified"):
            headers["If-Modified-Since"] = validators["lastModified"]
    reply = src.get(CATALOG_FILE, headers)
    if reply.status == 304 and held:
        data, sig = held.data, held.sig
        summary.catalog_unchanged = True
    elif reply.status == 200:
        data = _read_body(reply, MAX_CATALOG_BYTES, CATALOG_FILE, clock)
        validators = {"etag": reply.headers.get("ETag"), "lastModified": reply.headers.get("Last-Modified")}
        sig_reply = src.get(SIG_FILE, {})
        if sig_reply.status != 200:
            sig_reply.close()
            raise _Refused(
                f"{src.where} serves an unsigned catalogue ({SIG_FILE}: HTTP {sig_reply.status}); "
                "refusing it, the mirror was not changed"
            )
        sig = _read_body(sig_reply, MAX_SIG_BYTES, SIG_FILE, clock)
        summary.catalog_unchanged = held is not None and (data, sig) == (held.data, held.sig)
    else:
        reply.close()
        raise SyncError(f"{src.where} has no {CATALOG_FILE} (HTTP {reply.status}); is it a release tree?")
    summary.requests = src.requests

    # 2. Trust: the signature first, then the paths, then rollback and immutability.
    _verify_catalog(data, sig, public)
    try:
        catalog = read_catalog(data, source_name=f"{src.where}{CATALOG_FILE}")
    except OpenDataError as exc:
        raise _Refused(f"signed catalogue refused: {exc}; the mirror was not changed") from None
    if held:
        new, old = _newest(catalog), _newest(held.catalog)
        if old is not None and (new is None or new < old):
            raise _Refused(
                f"rollback: the source's catalogue is older (newest version {new}) than the one the mirror "
                f"holds ({old}); refusing it, the mirror was not changed"
            )
        listed = {(v.name, v.version) for v in catalog.versions}
        summary.withdrawn = [
            f"{v.name} {v.version}" for v in held.catalog.versions if (v.name, v.version) not in listed
        ]
    missing, summary.versions_held = _plan(mirror, catalog, held)
    summary.versions_added = [f"{v.name} {v.version}" for v in missing]
    changelogs = [f for f in catalog.changelogs if not _holds(mirror, f)]
    if dry_run:
        summary.files_downloaded = sum(len(v.files) for v in missing) + len(changelogs)
        summary.bytes_downloaded = sum(f.bytes for v in missing for f in v.files) + sum(f.bytes for f in changelogs)
        return summary
    if summary.catalog_unchanged and not missing and not changelogs:
        if reply.status == 200:  # new validators for the same bytes (e.g. the file was re-copied)
            validators["sha256"] = hashlib.sha256(data).hexdigest()
            _write_state(mirror, source_text, public, validators)
        return summary

    # 3. Download what is missing into .partial, verify it, then rename each version into place.
    total = sum(f.bytes for v in missing for f in v.files) + sum(f.bytes for f in changelogs)
    if total > max_bytes:
        raise _Refused(
            f"the signed catalogue lists {total:,} bytes to download, more than the limit of {max_bytes:,} "
            "(--max-bytes); the mirror was not changed"
        )
    mirror.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(mirror).free
    if total + FREE_MARGIN > free:
        raise SyncError(
            f"{mirror} has {free:,} bytes free; this sync needs {total:,} (and {FREE_MARGIN:,} to spare); "
            "the mirror was not changed"
        )
    partial = _inside(mirror, mirror / PARTIAL_DIR)
    created: list[Path] = []
    show = sys.stderr.isatty() if progress is None else progress
    try:
        with _Progress(show, total, "sync") as bar:
            for v in missing:
                staging = _inside(mirror, partial / v.path)
                if not staging.exists():
                    created.append(staging)
                    staging.mkdir(parents=True)
                bar.advance(0, f"{v.name} {v.version}")
                _download_version(src, v, staging, public, summary, bar)
            for f in changelogs:  # a series' changelog grows with each release: fetched whole, verified
                local = _inside(mirror, partial / f.path)
                if not local.parent.exists():
                    created.append(local.parent)
                    local.parent.mkdir(parents=True)
                _fetch_file(src, f, local, summary, bar)
    except _Refused:
        _discard(created, partial)
        summary.requests = src.requests
        raise
    finally:
        summary.requests = src.requests
    for v in missing:
        target = mirror / v.path
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(partial / v.path, target)
    for f in changelogs:
        os.replace(partial / f.path, mirror / f.path)
    _prune(partial)

    # 4. The catalogue last, so it never lists a version the mirror does not hold in full. Its DCAT
    # and Atom views are not signed: they are made here from what was verified, never copied.
    try:
        views = derived_views(mirror, catalog)
    except OpenDataError as exc:
        raise SyncError(f"the mirror's DCAT and Atom views cannot be made: {exc}") from None
    for name, body in views.items():
        write_atomic(mirror / name, body)
    write_atomic(mirror / SIG_FILE, sig)
    write_atomic(mirror / CATALOG_FILE, data)
    validators["sha256"] = hashlib.sha256(data).hexdigest()
    _write_state(mirror, source_text, public, validators)
    return summary
