"""Mirror sync over real HTTP (a local server in a thread), with real packages and real Ed25519 signatures."""

from __future__ import annotations

import functools
import json
import shutil
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pytest
from tiny_spec import write_primes_spec

from opendata.aggregate import hierarchy_codes
from opendata.catalog import read_catalog, write_catalog
from opendata.package import write_package
from opendata.protection import ProtectedTable
from opendata.serve import ReleaseServer, Request, make_server
from opendata.signing import (
    SignatureError,
    SigningKey,
    generate_keys,
    load_private_key,
    sign_file,
)
from opendata.spec import ReleaseSpec, load_spec
from opendata.sync import PARTIAL_DIR, STATE_FILE, SyncError, SyncInterrupted, sync
from opendata.verify import verify_tree

T0 = datetime(2024, 3, 14, 9, 30, tzinfo=UTC)
NOW = datetime(2030, 1, 1, tzinfo=UTC)
ROOT_FILES = {"/catalog.json", "/catalog.json.sig", "/catalog.jsonld", "/feed.atom"}


@dataclass
class Publisher:
    """A release tree with a signing key: ``release`` adds a real version and re-signs the catalogue."""

    root: Path
    spec: ReleaseSpec
    key: SigningKey
    public: Path

    def release(self, n: int, *, sign: bool = True, seed: int | None = None) -> str:
        version = f"1.{n}.0"
        provider = hierarchy_codes(self.spec.dimensions["provider"])
        seed = n if seed is None else seed
        frame = pd.DataFrame({"provider": list(provider.codes), "referrals": [50 + seed, 30, 20 + seed]})
        frame["referrals"] = frame["referrals"].astype("Int64")
        frame["referrals_status"] = ""
        sdc = {"cells": 3, "primary": 0, "secondary": 0, "rounded": 0, "audit": {"ok": True, "checked": 0}}
        table = ProtectedTable(
            spec=self.spec.tables[0],
            dimensions=(provider,),
            measures=(self.spec.measures["referrals"],),
            frame=frame,
            sdc={"referrals": sdc},
        )
        write_package(self.spec, [table], self.root, version, T0 + timedelta(days=31 * n))
        write_catalog(self.root, signer=self.key if sign else None, now=NOW)
        return version


def make_publisher(base: Path, versions: int) -> Publisher:
    spec = write_primes_spec(base / "spec")
    keys = generate_keys(base / "keys" / "private.pem", base / "keys" / "public.pem")
    root = base / "releases"
    root.mkdir()
    pub = Publisher(root, spec, load_private_key(keys.private_path), keys.public_path)
    for n in range(versions):
        pub.release(n)
    return pub


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three signed versions (1.0.0, 1.1.0, 1.2.0), built once."""
    base = tmp_path_factory.mktemp("publisher")
    make_publisher(base, 3)
    return base


@pytest.fixture
def pub(published: Path, tmp_path: Path) -> Publisher:
    base = Path(shutil.copytree(published, tmp_path / "publisher"))
    folder, keys = base / "spec", base / "keys"
    return Publisher(
        base / "releases", load_spec(folder / "spec.yaml"), load_private_key(keys / "private.pem"), keys / "public.pem"
    )


def counting(log: list) -> Callable[[Request, int], None]:
    """Records every request the server answers: method, path, status and the headers that matter here."""

    def record(request: Request, status: int) -> None:
        headers = {h: request.headers[h.lower()] for h in ("Range", "If-None-Match") if request.headers.get(h.lower())}
        log.append((request.method, request.target, status, headers))

    return record


@contextmanager
def running(root: Path, **options) -> Iterator[ReleaseServer]:
    log: list = []
    server = make_server(root, quiet=True, on_request=counting(log), **options)
    server.log = log  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root, dot-files included: what "byte-for-byte unchanged" compares."""
    if not root.exists():
        return {}
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def version_files(root: Path, version: str) -> set[str]:
    return {f"/{f.path}" for v in read_catalog(root / "catalog.json").versions if v.version == version for f in v.files}


def file_gets(log: list) -> list[str]:
    return [path for method, path, _, _ in log if method == "GET" and path not in ROOT_FILES]


# --- the happy path --------------------------------------------------------------------------


def test_incremental_sync_fetches_only_new_files_and_unchanged_costs_one_request(pub: Publisher, tmp_path: Path):
    mirror = tmp_path / "mirror"
    with running(pub.root) as server:
        first = sync(server.url, mirror, pub.public, progress=False)
        assert first.versions_added == ["tiny-mi 1.0.0", "tiny-mi 1.1.0", "tiny-mi 1.2.0"]
        assert first.requests == len(server.log)
        assert verify_tree(mirror, pub.public).ok
        for name in ("catalog.json", "catalog.json.sig", "catalog.jsonld", "feed.atom", "index.html"):
            assert (mirror / name).read_bytes() == (pub.root / name).read_bytes()
        assert not (mirror / PARTIAL_DIR).exists()

        added = pub.release(3)
        server.log.clear()
        second = sync(server.url, mirror, pub.public, progress=False)
        assert second.versions_added == [f"tiny-mi {added}"]
        assert second.versions_held == 3
        gets = file_gets(server.log)
        assert sorted(gets) == sorted(version_files(pub.root, added))  # each new file once, nothing old
        assert second.files_downloaded == len(gets)
        new = [v for v in read_catalog(pub.root / "catalog.json").versions if v.version == added]
        assert second.bytes_downloaded == sum(f.bytes for f in new[0].files)
        assert second.requests == len(server.log) == len(gets) + 2  # catalogue and signature; DCAT, Atom made here
        assert verify_tree(mirror, pub.public).ok

        server.log.clear()
        before = snapshot(mirror)
        third = sync(server.url, mirror, pub.public, progress=False)
        assert third.requests == 1 and third.catalog_unchanged and third.up_to_date
        assert [(m, p, s) for m, p, s, _ in server.log] == [("GET", "/catalog.json", 304)]
        assert "If-None-Match" in server.log[0][3]
        assert snapshot(mirror) == before


def test_interrupted_sync_resumes_without_refetching_finished_files(pub: Publisher, tmp_path: Path):
    mirror = tmp_path / "mirror"
    budget = 5

    class FailingOpener:
        """Drops the connection once ``budget`` version files have been fetched, like a network cut."""

        def __init__(self) -> None:
            self.inner = urllib.request.build_opener()
            self.files = 0

        def open(self, request, timeout=None):
            if not request.full_url.endswith(tuple(ROOT_FILES)):
                if self.files == budget:
                    raise ConnectionResetError("connection reset by peer")
                self.files += 1
            return self.inner.open(request, timeout=timeout)

    with running(pub.root) as server:
        with pytest.raises(SyncInterrupted, match="connection reset"):
            sync(server.url, mirror, pub.public, progress=False, opener=FailingOpener())
        assert not (mirror / "catalog.json").exists() and not (mirror / "tiny-mi").exists()
        kept = [p for p in (mirror / PARTIAL_DIR).rglob("*") if p.is_file()]
        assert len(kept) == budget
        cut = max(kept, key=lambda p: p.stat().st_size)  # half of a finished file, as if cut mid-transfer
        size = cut.stat().st_size
        cut.write_bytes(cut.read_bytes()[: size // 2])
        first_log = list(server.log)

        server.log.clear()
        done = sync(server.url, mirror, pub.public, progress=False)
        total = len(read_catalog(pub.root / "catalog.json").files())
        assert done.files_resumed == budget - 1
        assert done.files_downloaded == total - budget + 1
        gets = file_gets(server.log)
        assert len(gets) == total - budget + 1
        finished_before = {p for p in file_gets(first_log)} - {"/" + cut.relative_to(mirror / PARTIAL_DIR).as_posix()}
        assert not finished_before & set(gets)  # nothing finished was fetched again
        ranged = [(p, s, h) for _, p, s, h in server.log if "Range" in h]
        assert ranged == [
            ("/" + cut.relative_to(mirror / PARTIAL_DIR).as_posix(), 206, {"Range": f"bytes={size // 2}-"})
        ]
    assert verify_tree(mirror, pub.public).ok
    assert not (mirror / PARTIAL_DIR).exists()


def test_directory_source_and_dry_run(pub: Publisher, tmp_path: Path):
    mirror = tmp_path / "mirror"
    dry = sync(pub.root, mirror, pub.public, dry_run=True, progress=False)
    files = read_catalog(pub.root / "catalog.json").files()
    assert dry.versions_added == ["tiny-mi 1.0.0", "tiny-mi 1.1.0", "tiny-mi 1.2.0"]
    assert (dry.files_downloaded, dry.bytes_downloaded) == (len(files), sum(f.bytes for f in files))
    assert not mirror.exists()  # a dry run writes nothing

    first = sync(str(pub.root), mirror, pub.public, progress=False)
    assert first.files_downloaded == len(files)
    assert verify_tree(mirror, pub.public).ok
    again = sync(str(pub.root), mirror, pub.public, progress=False)
    assert again.requests == 1 and again.catalog_unchanged
    pub.release(3)
    assert sync(str(pub.root), mirror, pub.public, progress=False).versions_added == ["tiny-mi 1.3.0"]
    assert verify_tree(mirror, pub.public).ok


def test_a_mirror_can_be_served_and_mirrored_without_leaking_its_working_files(pub: Publisher, tmp_path: Path):
    first, second = tmp_path / "first", tmp_path / "second"
    sync(pub.root, first, pub.public, progress=False)
    assert (first / STATE_FILE).is_file()
    with running(first) as server:
        sync(server.url, second, pub.public, progress=False)
        assert {p for _, p, _, _ in server.log if STATE_FILE in p} == set()
    assert snapshot(second).keys() - {STATE_FILE} == snapshot(first).keys() - {STATE_FILE}


# --- refusals --------------------------------------------------------------------------------


def _tamper(pub: Publisher) -> None:
    version = pub.release(3)
    csv = pub.root / "tiny-mi" / version / "data" / "provider-totals.csv"
    data = csv.read_bytes()
    assert b"53" in data
    csv.write_bytes(data.replace(b"53", b"99"))  # same size, different bytes


def _forge(pub: Publisher) -> None:
    other = generate_keys(pub.root.parent / "attacker.pem", pub.root.parent / "attacker.pub")
    pub.release(3, sign=False)
    sign_file(pub.root / "catalog.json", load_private_key(other.private_path))


def _traversal(pub: Publisher) -> None:
    path = pub.root / "catalog.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    entry = doc["packages"][0]["versions"][-1]
    entry["files"].append({"path": f"{entry['path']}/../../../evil.sh", "bytes": 4, "sha256": "0" * 64})
    path.write_text(json.dumps(doc), encoding="utf-8")
    sign_file(path, pub.key)  # validly signed by the trusted key, still refused


def _unsigned(pub: Publisher) -> None:
    pub.release(3, sign=False)  # the catalogue writer removes the stale signature


def _rewritten(pub: Publisher) -> None:
    shutil.rmtree(pub.root / "tiny-mi" / "1.1.0")
    pub.release(1, seed=7)  # same number, different content, properly signed


def _forged_descriptor(pub: Publisher) -> None:
    version = pub.release(3)
    descriptor = pub.root / "tiny-mi" / version / "datapackage.json"
    other = generate_keys(pub.root.parent / "attacker.pem", pub.root.parent / "attacker.pub")
    sign_file(descriptor, load_private_key(other.private_path))
    write_catalog(pub.root, now=NOW)  # re-list the new .sig bytes...
    sign_file(pub.root / "catalog.json", pub.key)  # ...under a catalogue the trusted key signs


def _naive_time(pub: Publisher) -> None:
    path = pub.root / "catalog.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["packages"][0]["versions"][-1]["created"] = "2030-01-01T09:30:00"  # no offset
    path.write_text(json.dumps(doc), encoding="utf-8")
    sign_file(path, pub.key)  # signed by the trusted key: was a TypeError traceback on every later sync


REFUSALS = {
    "tampered file": (_tamper, "do not match the size and SHA-256"),
    "forged catalogue": (_forge, "signature does not verify with key .*the catalogue is refused"),
    "path traversal": (_traversal, "signed catalogue refused: .*unsafe name"),
    "unsigned catalogue": (_unsigned, "unsigned catalogue"),
    "rewritten version": (_rewritten, "immutable"),
    "descriptor signed by another key": (_forged_descriptor, "signature does not verify"),
    "signed time without an offset": (_naive_time, "has no UTC offset"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusals_leave_the_mirror_byte_for_byte_unchanged(pub: Publisher, tmp_path: Path, case: str):
    mirror = tmp_path / "mirror"
    with running(pub.root) as server:
        sync(server.url, mirror, pub.public, progress=False)
        before = snapshot(mirror)
        attack, message = REFUSALS[case]
        attack(pub)
        with pytest.raises(SyncError, match=message):
            sync(server.url, mirror, pub.public, progress=False)
    assert snapshot(mirror) == before


def test_rollback_to_an_older_signed_catalogue_is_refused(pub: Publisher, tmp_path: Path):
    mirror = tmp_path / "mirror"
    old = {n: (pub.root / n).read_bytes() for n in ("catalog.json", "catalog.json.sig")}
    pub.release(3)
    sync(pub.root, mirror, pub.public, progress=False)
    before = snapshot(mirror)
    for name, data in old.items():
        (pub.root / name).write_bytes(data)
    with pytest.raises(SyncError, match="rollback"):
        sync(pub.root, mirror, pub.public, progress=False)
    assert snapshot(mirror) == before


def test_first_sync_refusal_creates_nothing(pub: Publisher, tmp_path: Path):
    mirror = tmp_path / "mirror"
    _forge(pub)
    with pytest.raises(SyncError, match="trusted key"):
        sync(pub.root, mirror, pub.public, progress=False)
    assert not mirror.exists()


def test_unsigned_side_files_of_a_hostile_host_never_reach_the_mirror(pub: Publisher, tmp_path: Path):
    """Finding 3 of the trusted-distribution issue: a host answering feed.atom with attacker XML,
    catalog.jsonld with 60 MiB of junk and index.html with a script. The mirror's views are made from
    the verified versions, so they equal the publisher's own, and the junk is never fetched."""
    genuine = {name: (pub.root / name).read_bytes() for name in ("catalog.jsonld", "feed.atom", "index.html")}
    (pub.root / "feed.atom").write_bytes(b"<feed><entry><title>Attacker</title></entry></feed>")
    (pub.root / "catalog.jsonld").write_bytes(b"x" * (60 << 20))
    (pub.root / "index.html").write_bytes(b"<script>steal()</script>")
    mirror = tmp_path / "mirror"
    with running(pub.root) as server:
        sync(server.url, mirror, pub.public, progress=False)
        fetched = {p for _, p, _, _ in server.log}
    assert not fetched & {"/feed.atom", "/catalog.jsonld", "/index.html"}
    for name, data in genuine.items():
        assert (mirror / name).read_bytes() == data
    assert verify_tree(mirror, pub.public).ok


# --- bounded against hostile hosts (issue 11, findings 4 and 5) -------------------------------------


class Hostile(SimpleHTTPRequestHandler):
    """A host of the tree that misbehaves on purpose (``misbehave`` returns True when it has answered)."""

    def log_message(self, format: str, *args) -> None:
        pass

    def do_GET(self) -> None:
        if not self.misbehave():
            super().do_GET()

    def misbehave(self) -> bool:
        return False


@contextmanager
def hostile(root: Path, handler: type[Hostile], port: int = 0) -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", port), functools.partial(handler, directory=str(root)))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


class Trickle(Hostile):
    """Sends the catalogue one byte every 0.2 s: each read beats any per-read time-out."""

    def misbehave(self) -> bool:
        if not self.path.endswith("/catalog.json"):
            return False
        data = Path(self.directory, "catalog.json").read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            for byte in data:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:
            self.close_connection = True  # the client gave up, as it should
        return True


def test_a_trickling_source_meets_the_deadline(pub: Publisher, tmp_path: Path):
    mirror = tmp_path / "mirror"
    with hostile(pub.root, Trickle) as httpd:
        started = time.monotonic()
        with pytest.raises(SyncInterrupted, match=r"deadline of 1\.5 s passed"):
            sync(f"http://127.0.0.1:{httpd.server_address[1]}/", mirror, pub.public, progress=False, deadline=1.5)
        assert time.monotonic() - started < 5
    assert not mirror.exists() or not any(mirror.iterdir())


class Truncating(Hostile):
    """Sends half of the first version file it is asked for, then closes (no Content-Length)."""

    cut: ClassVar[list[str]] = []

    def misbehave(self) -> bool:
        rel = self.path.lstrip("/")
        if "/1.0.0/" not in rel or self.cut:
            return False
        self.cut.append(rel)
        data = Path(self.directory, rel).read_bytes()
        self.send_response(200)
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.close_connection = True
        return True


def test_a_truncated_response_is_kept_and_continued(pub: Publisher, tmp_path: Path):
    mirror = tmp_path / "mirror"
    Truncating.cut = []
    with hostile(pub.root, Truncating) as httpd:
        port = httpd.server_address[1]
        with pytest.raises(SyncInterrupted, match="the next run continues"):
            sync(f"http://127.0.0.1:{port}/", mirror, pub.public, progress=False)
    rel = Truncating.cut[0]
    kept = mirror / PARTIAL_DIR / rel
    assert 0 < kept.stat().st_size < (pub.root / rel).stat().st_size  # kept, not discarded as tampering
    with running(pub.root, port=port) as server:  # the host is well again, at the same address
        sync(server.url, mirror, pub.public, progress=False)
        assert any(p == "/" + rel and s == 206 for _, p, s, _ in server.log)  # continued with a Range
    assert verify_tree(mirror, pub.public).ok


def _huge(pub: Publisher) -> None:
    """A catalogue the trusted key signs that lists a petabyte file."""
    path = pub.root / "catalog.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    entry = doc["packages"][0]["versions"][-1]
    entry["files"].append({"path": f"{entry['path']}/data/huge.parquet", "bytes": 10**15, "sha256": "0" * 64})
    path.write_text(json.dumps(doc), encoding="utf-8")
    sign_file(path, pub.key)


def test_a_signed_petabyte_is_refused_before_any_download(pub: Publisher, tmp_path: Path):
    _huge(pub)
    mirror = tmp_path / "mirror"
    with running(pub.root) as server:
        with pytest.raises(SyncError, match="more than the limit"):
            sync(server.url, mirror, pub.public, progress=False)
        with pytest.raises(SyncError, match="bytes free"):  # lifting the cap still meets the free-space check
            sync(server.url, mirror, pub.public, progress=False, max_bytes=10**16)
        assert [p for _, p, _, _ in server.log if p not in ROOT_FILES] == []
    assert not (mirror / "catalog.json").exists() and not (mirror / PARTIAL_DIR).exists()


def _changelog(pub: Publisher, version: str) -> Path:
    """Append the series' changelog entry for ``version`` and re-sign the catalogue, as publish does."""
    path = pub.root / "tiny-mi" / "CHANGELOG.md"
    old = path.read_text(encoding="utf-8") if path.exists() else "# Changelog\n"
    path.write_text(old + f"\n## [{version}]\n\nNew figures.\n", encoding="utf-8")
    write_catalog(pub.root, signer=pub.key, now=NOW)
    return path


def test_the_changelog_is_catalogued_signed_and_synced(pub: Publisher, tmp_path: Path):
    """Finding 8 of the trusted-distribution issue: sync did not copy CHANGELOG.md."""
    changelog = _changelog(pub, "1.2.0")
    entry = json.loads((pub.root / "catalog.json").read_text(encoding="utf-8"))["packages"][0]["changelog"]
    assert entry["path"] == "tiny-mi/CHANGELOG.md" and entry["bytes"] == changelog.stat().st_size
    mirror = tmp_path / "mirror"
    with running(pub.root) as server:
        sync(server.url, mirror, pub.public, progress=False)
        assert (mirror / "tiny-mi" / "CHANGELOG.md").read_bytes() == changelog.read_bytes()
        _changelog(pub, pub.release(3))  # the next release adds an entry: the mirror follows
        sync(server.url, mirror, pub.public, progress=False)
        assert (mirror / "tiny-mi" / "CHANGELOG.md").read_bytes() == changelog.read_bytes()
        assert verify_tree(mirror, pub.public).ok

        before = snapshot(mirror)
        _changelog(pub, pub.release(4))
        changelog.write_text(changelog.read_text(encoding="utf-8").replace("New figures", "Fake figures"))
        with pytest.raises(SyncError, match=r"tiny-mi/CHANGELOG\.md: the source served bytes that do not match"):
            sync(server.url, mirror, pub.public, progress=False)
        assert snapshot(mirror) == before
    with pytest.raises(SignatureError, match=r"CHANGELOG\.md"):
        verify_tree(pub.root, pub.public)
