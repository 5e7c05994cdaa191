"""One-line loading for researchers: a published package version into pandas (or DuckDB).

    import opendata
    df = opendata.load("work-programme-subcontractor-mi", "provider-by-month")           # local tree
    df = opendata.load("https://host/releases/work-programme-subcontractor-mi", version="1.2.0")
    pkg = opendata.load_package("releases/work-programme-subcontractor-mi/1.2.0")
    con = opendata.load.duckdb_connect("work-programme-subcontractor-mi")

A table comes back with dimensions as ordered categoricals in publication order (the total
first), measures as nullable ``Int64`` and, per measure, ``<measure>_status``: the GSS marker
(``c`` confidential, ``z``, ``x``, ...) that says why a missing cell is missing. Data are read
from the Parquet twin of each table (the CSV when there is none), and every file is checked
against the size and SHA-256 its ``datapackage.json`` records before it is used. Remote files
are cached by hash (``$OPENDATA_CACHE``, else ``~/.cache/opendata``), so a version is fetched once.

This module imports only the standard library, pandas and pyarrow (DuckDB on demand), so that
``python -c "import opendata; opendata.load(...)"`` starts quickly. The module itself is callable:
``opendata.load(...)`` is ``opendata.load.load(...)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
import types
import urllib.parse
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from opendata import tree
from opendata.descriptor import CATALOG_FILE, DESCRIPTOR_FILE, SHA256_HEX, SIGNATURE_SUFFIX, STATUS_SUFFIX
from opendata.errors import OpenDataError
from opendata.versions import SEMVER, semver_key

if TYPE_CHECKING:
    import duckdb

__all__ = ["IntegrityError", "LoadError", "LoadedPackage", "duckdb_connect", "load", "load_package"]

HIERARCHY_PREFIX = "hierarchy-"
# GSS shorthand, in the order status categories are listed when a package does not declare them.
GSS_MARKERS = ("c", "z", "x", "low", "u", "p", "r", "e", "b")
MARKER_CELL = r"^\[[a-z]+\]$"
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
HTTP_TIMEOUT = 60  # seconds one read may wait
# A download must finish within DEADLINE_BASE seconds plus its size at MIN_RATE: a host trickling
# bytes (each read beating the read time-out) cannot hold a notebook for ever.
DEADLINE_BASE = 120.0
MIN_RATE = 64 * 1024  # bytes per second
READ_CHUNK = 1 << 20
TRUST_ENV = "OPENDATA_TRUST"  # path of the publisher's public key: a notebook states it once
MAX_DESCRIPTOR = 16 << 20  # bytes of a datapackage.json (or catalog.json) fetched before giving up
MAX_SIGNATURE = 4096
REMOTE = re.compile(r"^https?://", re.IGNORECASE)
USER_AGENT = "opendata-load/1"


class LoadError(OpenDataError):
    """The package, version or table asked for cannot be found or read."""


class IntegrityError(LoadError):
    """A file differs from the size or hash its descriptor (or the catalogue) records: never used."""


class UnverifiedData(UserWarning):
    """Loaded from a remote source without a trusted key: the files match the descriptor's hashes,
    but nothing proves the descriptor is the publisher's. ``warnings.simplefilter("error",
    UnverifiedData)`` turns it into an error; ``trust=`` or ``OPENDATA_TRUST`` verifies instead."""


@dataclass
class LoadedPackage:
    """Every table and hierarchy of one package version, with the descriptor they were read by."""

    name: str
    version: str
    descriptor: dict[str, Any]
    tables: dict[str, pd.DataFrame]
    hierarchies: dict[str, pd.DataFrame]  # dimension -> code, label, parent (<NA> for the total), level
    source: str = field(default="", repr=False)

    def __repr__(self) -> str:
        """A summary, not the descriptor and every frame (once 131,694 characters)."""
        tables = ", ".join(f"{name} ({len(frame):,} rows)" for name, frame in self.tables.items())
        return f"<LoadedPackage {self.name} {self.version}: {tables}; hierarchies: {', '.join(self.hierarchies)}>"


# --- public API ------------------------------------------------------------------------------


def load(
    source: str | os.PathLike[str],
    table: str | None = None,
    version: str = "latest",
    *,
    root: str | os.PathLike[str] = "releases",
    cache_dir: str | os.PathLike[str] | None = None,
    trust: str | os.PathLike[str] | None = None,
    columns: Sequence[str] | None = None,
    filters: Mapping[str, Any] | None = None,
    totals: bool = True,
    levels: bool = True,
) -> pd.DataFrame:
    """One published table as a DataFrame; ``table`` may be omitted when the package has only one.

    ``columns`` picks measures (the dimensions and each measure's status always come along);
    ``filters`` keeps rows whose column equals a value or is in a list of values, e.g.
    ``{"provider": ["CPA01", "CPA02"]}``; ``totals=False`` keeps only the most detailed rows (every
    dimension at a leaf of its hierarchy), so that a sum over any column never counts a person twice.
    Both are pushed down to the Parquet reader. Each dimension is followed by ``<dimension>_level``
    (``total``, ``cpa``, ``subcontractor``, ``month``, ...), so rows of one level can be picked and summed
    without counting anyone twice; ``levels=False`` leaves those columns out.

    ``source`` is a package name in the local tree ``root`` (optionally ``NAME@VERSION``), a version
    directory, its ``datapackage.json``, a series directory, or an ``http(s)://`` URL of a series in a
    tree with ``catalog.json``, of a version directory or of its ``datapackage.json``.

    ``trust`` is the publisher's public key file (default: ``$OPENDATA_TRUST``): the descriptor's
    signature must verify with it, so forged data with consistent hashes is refused. Without one,
    a remote load warns (``UnverifiedData``): its hashes prove only that the files match the
    descriptor the server sent.
    """
    found = _locate(source, version, Path(root), cache_dir, trust)
    resource = _table_resource(found, table)
    names = {f["name"] for f in _fields(resource)}
    hierarchies = {
        dim: _read_hierarchy(found, r)
        for dim, r in _hierarchy_resources(found.descriptor).items()
        if dim in names and (levels or not totals)
    }
    wanted = dict(filters or {})
    if not totals:
        for dim, codes in hierarchies.items():
            leaves = set(codes["code"]) - set(codes["parent"].dropna())
            chosen = wanted.get(dim)
            wanted[dim] = sorted(leaves if chosen is None else leaves & set(_as_list(chosen)))
    frame = _read_table(found, resource, columns, wanted)
    if levels:
        _add_levels(frame, hierarchies)
    frame.attrs = _attrs(found, resource)
    return frame


def _add_levels(frame: pd.DataFrame, hierarchies: Mapping[str, pd.DataFrame]) -> None:
    """Insert ``<dimension>_level`` after each dimension whose hierarchy names levels."""
    for dim, codes in hierarchies.items():
        if dim in frame.columns and "level" in codes.columns:
            level = frame[dim].astype(str).map(dict(zip(codes["code"], codes["level"], strict=True)))
            order = list(dict.fromkeys(codes["level"]))
            frame.insert(frame.columns.get_loc(dim) + 1, f"{dim}_level", pd.Categorical(level, categories=order))


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]


def load_package(
    source: str | os.PathLike[str],
    version: str = "latest",
    *,
    root: str | os.PathLike[str] = "releases",
    cache_dir: str | os.PathLike[str] | None = None,
    trust: str | os.PathLike[str] | None = None,
) -> LoadedPackage:
    """Every table and hierarchy of one version, e.g. to compare subcontractors with their prime
    (``trust``: see ``load``)."""
    found = _locate(source, version, Path(root), cache_dir, trust)
    hierarchies = {dim: _read_hierarchy(found, r) for dim, r in _hierarchy_resources(found.descriptor).items()}
    tables = {}
    for resource in _tables(found.descriptor):
        frame = _read_table(found, resource)
        _add_levels(frame, hierarchies)
        frame.attrs = _attrs(found, resource)
        tables[resource["name"]] = frame
    d = found.descriptor
    return LoadedPackage(d["name"], d["version"], d, tables, hierarchies, found.source)


def duckdb_connect(
    source: str | os.PathLike[str],
    version: str = "latest",
    *,
    root: str | os.PathLike[str] = "releases",
    cache_dir: str | os.PathLike[str] | None = None,
    trust: str | os.PathLike[str] | None = None,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with one view per table (and per hierarchy) over the verified files.

    Views are named like the resources (``"provider-by-month"``, ``"hierarchy-provider"``); quote
    them in SQL. Codes are plain strings there, and ``<measure>_status`` is NULL when published.
    ``trust``: see ``load``.
    """
    import duckdb

    found = _locate(source, version, Path(root), cache_dir, trust)
    con = duckdb.connect()
    for resource in _tables(found.descriptor):
        twin = _parquet_twin(found.descriptor, resource)
        name = _ident(resource["name"])
        if twin is not None:
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet({_literal(found.file(twin))})")
        else:  # no Parquet: a view over the frame read (and checked) from the CSV
            con.register(resource["name"], _read_table(found, resource))
    for resource in _hierarchy_resources(found.descriptor).values():
        path = _literal(found.file(resource))
        con.execute(f"CREATE VIEW {_ident(resource['name'])} AS SELECT * FROM read_csv({path}, all_varchar = true)")
    return con


def list_packages(
    source: str | os.PathLike[str] = "releases", *, trust: str | os.PathLike[str] | None = None
) -> pd.DataFrame:
    """The packages a release tree publishes (a local tree or the ``http(s)://`` URL of its root), one
    row each: ``name``, ``title``, ``latest``, ``versions``. Read from ``catalog.json``, whose signature
    must verify with ``trust`` (or ``$OPENDATA_TRUST``) when a key is given."""
    rows = [
        {"name": p["name"], "title": p.get("title", ""), "latest": p.get("latest"), "versions": len(p["versions"])}
        for p in _catalog(source, trust)
    ]
    return pd.DataFrame(rows, columns=["name", "title", "latest", "versions"])


def list_versions(
    name: str, source: str | os.PathLike[str] = "releases", *, trust: str | os.PathLike[str] | None = None
) -> pd.DataFrame:
    """The published versions of package ``name``, oldest first: ``version``, ``created`` (the release
    time), ``published`` and whether it was an ``orderly`` (pre-announced) release."""
    packages = {p["name"]: p for p in _catalog(source, trust)}
    if name not in packages:
        raise LoadError(f"no package {name!r} in {os.fspath(source)}; packages there: {', '.join(sorted(packages))}")
    rows = [
        {
            "version": v["version"],
            "created": v.get("created"),
            "published": v.get("published"),
            "orderly": v.get("orderly"),
        }
        for v in packages[name]["versions"]
    ]
    return pd.DataFrame(rows, columns=["version", "created", "published", "orderly"])


def list_tables(
    name: str,
    version: str = "latest",
    source: str | os.PathLike[str] = "releases",
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    trust: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """The tables of one version: ``table``, ``title``, ``dimensions`` and ``measures`` (comma-separated),
    read from its (verified) descriptor: what to pass to ``load``."""
    text = os.fspath(source)
    if REMOTE.match(text):
        found = _locate(f"{text.rstrip('/')}/{name}", version, Path("."), cache_dir, trust)
    else:
        found = _locate(name, version, Path(text), cache_dir, trust)
    rows = []
    for r in _tables(found.descriptor):
        keys = r.get("schema", {}).get("primaryKey", [])
        keys = [keys] if isinstance(keys, str) else list(keys)
        names = [f["name"] for f in _fields(r)]
        measures = [n for n in names if n not in keys and not n.endswith(STATUS_SUFFIX)]
        rows.append(
            {
                "table": r["name"],
                "title": r.get("title", ""),
                "dimensions": ", ".join(keys),
                "measures": ", ".join(measures),
            }
        )
    return pd.DataFrame(rows, columns=["table", "title", "dimensions", "measures"])


def _catalog(source: str | os.PathLike[str], trust: str | os.PathLike[str] | None) -> list[dict[str, Any]]:
    """The ``packages`` of a tree's catalogue, its signature checked when a key is given."""
    text = os.fspath(source)
    key = _trusted_key(trust)
    remote = REMOTE.match(text)
    where = f"{text.rstrip('/')}/{CATALOG_FILE}" if remote else str(Path(text) / CATALOG_FILE)
    try:
        raw = _get(where, MAX_DESCRIPTOR) if remote else Path(where).read_bytes()
    except OSError:
        raise LoadError(f"{where} cannot be read: is {text} a published release tree (opendata publish)?") from None
    if len(raw) > MAX_DESCRIPTOR:
        raise IntegrityError(f"{where}: larger than {MAX_DESCRIPTOR:,} bytes; refused")
    if key is not None:
        from opendata.signing import SignatureError, verify_signature

        try:
            signature = where + SIGNATURE_SUFFIX
            sig = _get(signature, MAX_SIGNATURE) if remote else Path(signature).read_bytes()
            verify_signature(raw, sig, key, name=where, signature_name=CATALOG_FILE + SIGNATURE_SUFFIX)
        except (OSError, LoadError) as exc:
            raise IntegrityError(f"{where}: its signature cannot be read ({exc}); refusing it") from None
        except SignatureError as exc:
            raise IntegrityError(str(exc)) from None
    elif remote:
        warnings.warn(f"{where}: listed without a trusted key (pass trust= or set {TRUST_ENV})", UnverifiedData, 2)
    return _packages(raw, where)


def _packages(raw: bytes, where: str) -> list[dict[str, Any]]:
    """The ``packages`` of a catalogue's bytes, or a LoadError naming ``where``."""
    try:
        packages = json.loads(raw)["packages"]
        if not isinstance(packages, list) or not all(isinstance(p, dict) and "name" in p for p in packages):
            raise TypeError("packages is not a list of packages")
        return packages
    except (ValueError, KeyError, TypeError) as exc:
        raise LoadError(f"{where} is not an opendata catalogue: {exc}") from None


# --- finding a version -----------------------------------------------------------------------


@dataclass
class _Found:
    """A located version: its descriptor, where it came from, and how to get a verified local file."""

    descriptor: dict[str, Any]
    source: str
    fetch: Callable[[str, int | None, str | None], Path]  # (relative path, bytes, sha256 hex) -> local file

    def file(self, resource: Mapping[str, Any]) -> Path:
        """The resource's file on disk, refused unless its size and hash match the descriptor."""
        rel = _safe_relative(resource.get("path"))
        size, sha = _expected(resource)
        return self.fetch(rel, size, sha)


def _locate(
    source: str | os.PathLike[str],
    version: str,
    root: Path,
    cache_dir: str | os.PathLike[str] | None,
    trust: str | os.PathLike[str] | None,
) -> _Found:
    text = os.fspath(source)
    key = _trusted_key(trust)
    if REMOTE.match(text):
        return _locate_remote(text, version, _cache_root(cache_dir), key)
    path = Path(text)
    if path.name == DESCRIPTOR_FILE and path.is_file():
        return _local_version(path.parent, version, key)
    if path.is_dir():
        if (path / DESCRIPTOR_FILE).is_file():
            return _local_version(path, version, key)
        published = tree.versions(path)
        if published:
            return _local_version(path / _pick(path.name, published, version, str(path)), version, key)
        raise LoadError(f"{path} holds no package version (no {DESCRIPTOR_FILE}, no version directories)")
    name, version = _split_ref(text, version)
    series = root / name
    if not SAFE_NAME.match(name) or not series.is_dir():
        known = [p for p in tree.packages(root) if tree.versions(root / p)]
        hint = f"; packages there: {', '.join(known)}" if known else f"; {root} has no packages"
        raise LoadError(f"no package {name!r} in {root}{hint}")
    published = tree.versions(series)
    return _local_version(series / _pick(name, published, version, str(series)), version, key)


def _split_ref(text: str, version: str) -> tuple[str, str]:
    """``NAME@VERSION`` is accepted too; it must agree with ``version`` when both are given."""
    if "@" not in text:
        return text, version
    name, pinned = text.rsplit("@", 1)
    if version not in ("latest", pinned):
        raise LoadError(f"{text!r} pins version {pinned} but version={version!r} was also given")
    return name, pinned


def _pick(name: str, published: list[str], version: str, where: str) -> str:
    if not published:
        raise LoadError(f"{name} has no published versions at {where}")
    if version == "latest":
        return published[-1]
    if version not in published:
        raise LoadError(f"{name} has no version {version!r} at {where}; published: {', '.join(published)}")
    return version


def _local_version(directory: Path, version: str, key: Any = None) -> _Found:
    raw = (directory / DESCRIPTOR_FILE).read_bytes()
    if key is not None:
        sig = directory / (DESCRIPTOR_FILE + SIGNATURE_SUFFIX)
        _check_signature(raw, sig.read_bytes() if sig.is_file() else None, key, str(directory / DESCRIPTOR_FILE))
    descriptor = _parse_descriptor(raw, str(directory / DESCRIPTOR_FILE))
    _check_version(descriptor, version, str(directory))

    def fetch(rel: str, size: int | None, sha: str | None) -> Path:
        target = directory / rel
        if not target.is_file():
            raise IntegrityError(f"{target} is listed in {DESCRIPTOR_FILE} but missing")
        _verify(target, size, sha, str(target))
        return target

    return _Found(descriptor, str(directory), fetch)


def _trusted_key(trust: str | os.PathLike[str] | None) -> Any:
    """The publisher's public key, from ``trust`` or ``$OPENDATA_TRUST``; None when neither is set."""
    chosen = trust if trust is not None else os.environ.get(TRUST_ENV) or None
    if chosen is None:
        return None
    from opendata.signing import load_public_key  # only verifying loads pay for the crypto imports

    return load_public_key(chosen)


def _check_signature(raw: bytes, signature: bytes | None, key: Any, where: str) -> None:
    """The descriptor must be signed by ``key``: it names every file's hash, so this covers the package."""
    from opendata.signing import SignatureError, verify_signature

    if signature is None:
        raise IntegrityError(f"{where}: not signed ({DESCRIPTOR_FILE}{SIGNATURE_SUFFIX} is missing); refusing it")
    try:
        verify_signature(raw, signature, key, name=where, signature_name=DESCRIPTOR_FILE + SIGNATURE_SUFFIX)
    except SignatureError as exc:
        raise IntegrityError(str(exc)) from None


def _check_version(descriptor: Mapping[str, Any], version: str, where: str) -> None:
    if version != "latest" and descriptor["version"] != version:
        raise LoadError(f"{where} is version {descriptor['version']}, not {version}")


def _parse_descriptor(raw: bytes, where: str) -> dict[str, Any]:
    try:
        descriptor = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise LoadError(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(descriptor, dict) or not isinstance(descriptor.get("resources"), list):
        raise LoadError(f"{where} is not a Data Package descriptor (no resources)")
    for key in ("name", "version"):
        if not isinstance(descriptor.get(key), str):
            raise LoadError(f"{where} lacks the package {key}")
    return descriptor


# --- remote ----------------------------------------------------------------------------------


def _locate_remote(url: str, version: str, cache: Path, key: Any) -> _Found:
    """A series URL goes through the tree's ``catalog.json``; a version or descriptor URL is read directly."""
    url = url.split("#", 1)[0].split("?", 1)[0]
    if url.endswith("/" + DESCRIPTOR_FILE):
        return _remote_version(url.rsplit("/", 1)[0], version, cache, None, key)
    url = url.rstrip("/")
    tree, _, last = url.rpartition("/")
    if SEMVER.match(last):
        return _remote_version(url, version, cache, None, key)
    name, version = _split_ref(urllib.parse.unquote(last), version)
    catalog_url = f"{tree}/{CATALOG_FILE}"
    try:
        raw = _get(catalog_url, MAX_DESCRIPTOR)
    except LoadError as exc:
        raise LoadError(
            f"{exc}; give the URL of a series in a tree with {CATALOG_FILE}, of a version directory, "
            f"or of its {DESCRIPTOR_FILE}"
        ) from None
    packages = {p["name"]: p for p in _packages(raw, catalog_url)}
    if name not in packages:
        raise LoadError(f"no package {name!r} in {catalog_url}; packages there: {', '.join(sorted(packages))}")
    entries = {v["version"]: v for v in packages[name]["versions"] if SEMVER.match(str(v.get("version")))}
    chosen = entries[_pick(name, sorted(entries, key=semver_key), version, catalog_url)]
    rel = _safe_relative(chosen["path"])
    entry = chosen["descriptor"]
    return _remote_version(f"{tree}/{rel}", version, cache, (entry["bytes"], entry["sha256"]), key)


def _remote_version(base: str, version: str, cache: Path, expected: tuple[int, str] | None, key: Any) -> _Found:
    descriptor_url = f"{base}/{DESCRIPTOR_FILE}"
    if expected is not None:  # the catalogue vouches for the descriptor: cache it by hash like any file
        raw = _cached_download(descriptor_url, min(expected[0], MAX_DESCRIPTOR), expected[1], cache).read_bytes()
    else:
        raw = _get(descriptor_url, MAX_DESCRIPTOR)
    if key is not None:
        try:
            signature: bytes | None = _get(descriptor_url + SIGNATURE_SUFFIX, MAX_SIGNATURE)
        except IntegrityError:
            raise
        except LoadError:
            signature = None
        _check_signature(raw, signature, key, descriptor_url)
    else:
        warnings.warn(
            f"{descriptor_url}: loaded without a trusted key, so nothing proves the data is the publisher's; "
            f"pass trust=PUBLIC_KEY or set {TRUST_ENV}",
            UnverifiedData,
            stacklevel=5,
        )
    descriptor = _parse_descriptor(raw, descriptor_url)
    _check_version(descriptor, version, descriptor_url)

    def fetch(rel: str, size: int | None, sha: str | None) -> Path:
        url = f"{base}/{urllib.parse.quote(rel)}"
        if sha is None:
            raise IntegrityError(f"{url} has no sha256 hash in {DESCRIPTOR_FILE}; refusing an unverifiable file")
        return _cached_download(url, size, sha, cache)

    return _Found(descriptor, descriptor_url, fetch)


def _cache_root(cache_dir: str | os.PathLike[str] | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get("OPENDATA_CACHE"):
        return Path(os.environ["OPENDATA_CACHE"])
    return Path.home() / ".cache" / "opendata"


def _cached_download(url: str, size: int | None, sha: str, cache: Path) -> Path:
    """The file from the cache if its hash still matches, else downloaded, checked and then cached."""
    target = cache / "sha256" / sha[:2] / sha
    if target.is_file():
        try:
            _verify(target, size, sha, str(target))
            return target
        except IntegrityError:
            target.unlink(missing_ok=True)  # a damaged cache entry is refetched, never used
    import tempfile

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".part-", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        digest, received = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out, _open(url) as response:
            for chunk in _chunks(response, url, size if size is not None else MAX_DESCRIPTOR):
                received += len(chunk)
                if size is not None and received > size:  # never store more than the descriptor declares
                    raise IntegrityError(f"{url}: the server sent more than the {size:,} bytes declared; refused")
                out.write(chunk)
                digest.update(chunk)
        _compare(received, digest.hexdigest(), size, sha, url)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _open(url: str) -> Any:
    import urllib.error  # only remote loads pay for these imports
    import urllib.request

    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        return urllib.request.urlopen(request, timeout=HTTP_TIMEOUT)
    except urllib.error.HTTPError as exc:
        raise LoadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise LoadError(f"{url} cannot be fetched: {getattr(exc, 'reason', exc)}") from None


def _chunks(response: Any, url: str, size: int) -> Iterator[bytes]:
    """The body as it arrives (``read1``: whatever the socket has), until its deadline: ``DEADLINE_BASE``
    seconds plus the expected bytes at ``MIN_RATE`` (``size``, or the smaller length the server declares)."""
    declared = getattr(response, "length", None)
    seconds = DEADLINE_BASE + min(size, declared if declared is not None else size) / MIN_RATE
    deadline = time.monotonic() + seconds
    while chunk := response.read1(READ_CHUNK):
        yield chunk
        if time.monotonic() > deadline:
            raise LoadError(f"{url}: not received within {seconds:.0f} s (sent too slowly); nothing was cached")


def _get(url: str, limit: int) -> bytes:
    """A small document (descriptor, catalogue, signature), refused past ``limit`` bytes."""
    with _open(url) as response:
        data = bytearray()
        for chunk in _chunks(response, url, limit):
            data += chunk
            if len(data) > limit:
                break
    if len(data) > limit:
        raise IntegrityError(f"{url}: larger than {limit:,} bytes; refused")
    return bytes(data)


# --- integrity -------------------------------------------------------------------------------


def _expected(resource: Mapping[str, Any]) -> tuple[int | None, str | None]:
    size = resource.get("bytes")
    digest = resource.get("hash")
    sha = None
    if isinstance(digest, str):
        algorithm, _, value = digest.rpartition(":")
        if algorithm not in ("", "sha256") or not SHA256_HEX.match(value):
            raise IntegrityError(f"{resource.get('path')}: hash {digest!r} is not sha256:<64 hex digits>")
        sha = value
    return (size if isinstance(size, int) else None), sha


def _verify(path: Path, size: int | None, sha: str | None, where: str) -> None:
    with path.open("rb") as handle:
        actual = hashlib.file_digest(handle, "sha256").hexdigest()
    _compare(path.stat().st_size, actual, size, sha, where)


def _compare(actual_size: int, actual_sha: str, size: int | None, sha: str | None, where: str) -> None:
    if size is not None and actual_size != size:
        raise IntegrityError(f"{where}: {actual_size} bytes, the descriptor says {size}; refusing to use it")
    if sha is not None and actual_sha != sha:
        raise IntegrityError(
            f"{where}: sha256 {actual_sha} does not match the descriptor's {sha}; the file was altered or damaged"
        )


def _safe_relative(path: Any) -> str:
    """A resource path that stays inside its version directory (no URLs, absolute paths or ``..``)."""
    if not isinstance(path, str) or not path or path.startswith("/") or "\\" in path or "://" in path:
        raise LoadError(f"resource path {path!r} is not a relative path inside the package")
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise LoadError(f"resource path {path!r} is not a relative path inside the package")
    return path


# --- resources -------------------------------------------------------------------------------


def _stem(path: str) -> str:
    return PurePosixPath(path).with_suffix("").as_posix()


def _is_hierarchy(r: Mapping[str, Any]) -> bool:
    return str(r.get("name", "")).startswith(HIERARCHY_PREFIX) or str(r.get("path", "")).startswith("hierarchies/")


def _tables(descriptor: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The published tables: tabular CSV resources that are not hierarchies (each may have a Parquet twin)."""
    out = []
    for r in descriptor["resources"]:
        if not isinstance(r, dict) or _is_hierarchy(r) or not isinstance(r.get("path"), str):
            continue
        if r.get("type") == "table" or r.get("format") == "csv" or r["path"].endswith(".csv"):
            out.append(r)
    return out


def _parquet_twin(descriptor: Mapping[str, Any], table: Mapping[str, Any]) -> dict[str, Any] | None:
    for r in descriptor["resources"]:
        path = r.get("path") if isinstance(r, dict) else None
        is_parquet = isinstance(path, str) and (r.get("format") == "parquet" or path.endswith(".parquet"))
        if is_parquet and _stem(path) == _stem(table["path"]):
            return r
    return None


def _hierarchy_resources(descriptor: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for r in descriptor["resources"]:
        if isinstance(r, dict) and _is_hierarchy(r) and isinstance(r.get("path"), str):
            name = str(r.get("name", ""))
            dim = name.removeprefix(HIERARCHY_PREFIX) if name.startswith(HIERARCHY_PREFIX) else _stem(r["path"])
            out[dim.rsplit("/", 1)[-1]] = r
    return out


def _table_resource(found: _Found, table: str | None) -> dict[str, Any]:
    tables = _tables(found.descriptor)
    names = [r["name"] for r in tables]
    where = f"{found.descriptor['name']} {found.descriptor['version']}"
    if not tables:
        raise LoadError(f"{where} has no tables")
    if table is None:
        if len(tables) == 1:
            return tables[0]
        raise LoadError(f"{where} has {len(tables)} tables; choose one with table=: {', '.join(names)}")
    for r in tables:
        if table in (r["name"], f"{r['name']}-parquet", _stem(r["path"]).rsplit("/", 1)[-1]):
            return r
    raise LoadError(f"{where} has no table {table!r}; tables: {', '.join(names)}")


# --- reading ---------------------------------------------------------------------------------


def _fields(resource: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [f for f in (resource.get("schema") or {}).get("fields") or [] if isinstance(f, dict) and "name" in f]


def _read_table(
    found: _Found,
    resource: Mapping[str, Any],
    columns: Sequence[str] | None = None,
    filters: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Typed frame in schema order: categorical dimensions, Int64 measures, a categorical status per measure
    (``columns`` and ``filters``: see ``load``)."""
    fields = _fields(resource)
    where = f"{found.descriptor['name']} {found.descriptor['version']} table {resource['name']}"
    known = {f["name"] for f in fields}
    for name in [*(columns or []), *(filters or {})]:
        if name not in known:
            raise LoadError(f"{where} has no column {name!r}; its columns: {', '.join(f['name'] for f in fields)}")
    measures = [f for f in fields if f.get("type") in ("integer", "number")]
    if columns is not None:
        fields = [f for f in fields if f["name"] in columns or f not in measures]
        measures = [f for f in measures if f["name"] in columns]
    measure_names = {f["name"] for f in measures}
    expression = None
    for name, value in (filters or {}).items():
        term = pc.field(name).isin(_as_list(value))
        expression = term if expression is None else expression & term
    twin = _parquet_twin(found.descriptor, resource)
    if twin is not None:
        # Codes and statuses straight into dictionary arrays: no million-string columns in between.
        coded = [f["name"] for f in fields if f["name"] not in measure_names]
        coded += [m + STATUS_SUFFIX for m in measure_names]
        path = found.file(twin)
        present = set(pq.read_schema(path).names)
        wanted = [f["name"] for f in fields] + [c for c in coded if c in present and c.endswith(STATUS_SUFFIX)]
        table = pq.read_table(path, columns=wanted, read_dictionary=coded, filters=expression)
        statuses = {
            m: table.column(m + STATUS_SUFFIX) for m in measure_names if m + STATUS_SUFFIX in table.column_names
        }
        status_fields = {f["name"]: f for f in _fields(twin)}
    else:
        table, statuses = _read_csv(found.file(resource), _fields(resource), measure_names)
        if expression is not None:
            keep = pc.fill_null(_mask(table, filters or {}), False)
            table = table.filter(keep)
            statuses = {m: pc.filter(c, keep) for m, c in statuses.items()}
        status_fields = {}
    out: dict[str, Any] = {}
    for f in fields:
        name = f["name"]
        if name not in table.column_names:
            raise LoadError(f"{where}: column {name} is in the schema but not in the data")
        if name in measure_names:
            out[name] = _measure(table.column(name), f)
            status = statuses.get(name)
            if status is not None:
                declared = ((status_fields.get(name + STATUS_SUFFIX) or {}).get("constraints") or {}).get("enum")
                out[name + STATUS_SUFFIX] = _status(status, declared or _declared_markers(resource))
        else:
            out[name] = _dimension(table.column(name), _category_order(f), f"{where}, {name}")
    return pd.DataFrame(out, copy=False)


def _mask(table: pa.Table, filters: Mapping[str, Any]) -> pa.ChunkedArray:
    """Rows of an open CSV read that every filter keeps (the Parquet reader applies the same filters)."""
    mask = None
    for name, value in filters.items():
        term = pc.is_in(table.column(name), value_set=pa.array([str(v) for v in _as_list(value)], pa.string()))
        mask = term if mask is None else pc.and_(mask, term)
    return mask


def _read_csv(
    path: Path, fields: list[dict[str, Any]], measures: set[str]
) -> tuple[pa.Table, dict[str, pa.ChunkedArray]]:
    """The open CSV (no Parquet twin): every cell as text, ``[c]``-style markers split off into status."""
    types_ = {f["name"]: pa.string() for f in fields}
    convert = pacsv.ConvertOptions(column_types=types_, strings_can_be_null=False, quoted_strings_can_be_null=False)
    raw = pacsv.read_csv(path, convert_options=convert)
    columns, statuses = {}, {}
    for name in raw.column_names:
        text = raw.column(name)
        if name in measures:
            marker = pc.match_substring_regex(text, MARKER_CELL)
            kind = next((f.get("type") for f in fields if f["name"] == name), "integer")
            target = pa.int64() if kind == "integer" else pa.float64()
            columns[name] = pc.cast(pc.if_else(marker, pa.scalar(None, pa.string()), text), target)
            inner = pc.utf8_slice_codeunits(text, 1, -1)
            statuses[name] = pc.if_else(marker, inner, pa.scalar(None, pa.string()))
        else:
            columns[name] = text
    return pa.table(columns), statuses


def _declared_markers(resource: Mapping[str, Any]) -> list[str]:
    """Status categories from the CSV schema's ``missingValues`` (``[c]``, ``[z]``, ...), in their order."""
    found = []
    for v in (resource.get("schema") or {}).get("missingValues") or []:
        value = v.get("value") if isinstance(v, dict) else v
        if isinstance(value, str) and re.match(MARKER_CELL, value):
            found.append(value[1:-1])
    return found or list(GSS_MARKERS[:3])


def _measure(column: pa.ChunkedArray, f: Mapping[str, Any]) -> pd.Series:
    if f.get("type") == "integer":
        return column.cast(pa.int64()).to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    return column.cast(pa.float64()).to_pandas(types_mapper={pa.float64(): pd.Float64Dtype()}.get)


def _category_order(f: Mapping[str, Any]) -> list[str] | None:
    """Publication order from the schema: ``categories`` (Table Schema v2), else the ``enum``."""
    categories = f.get("categories")
    if isinstance(categories, list) and categories:
        return [str(c["value"]) if isinstance(c, dict) else str(c) for c in categories]
    enum = (f.get("constraints") or {}).get("enum")
    return [str(v) for v in enum] if isinstance(enum, list) and enum else None


def _as_categorical(column: pa.ChunkedArray) -> pd.Categorical:
    """Dictionary-decoded without materialising a million Python strings."""
    if not pa.types.is_dictionary(column.type):
        column = column.cast(pa.string()).dictionary_encode()
    return pd.Categorical(column.to_pandas())


def _dimension(column: pa.ChunkedArray, order: list[str] | None, where: str) -> pd.Categorical:
    values = _as_categorical(column)
    present = [str(c) for c in values.categories]
    if order is None:  # undeclared: order of first appearance
        order = list(pd.unique(values.astype(object)))
    unknown = sorted(set(present) - set(order))
    if unknown:
        raise LoadError(f"{where}: codes outside the published categories: {', '.join(unknown[:5])}")
    if values.isna().any():
        raise LoadError(f"{where}: a dimension code is missing")
    return values.set_categories(order, ordered=True)


def _status(column: pa.ChunkedArray, declared: list[str]) -> pd.Categorical:
    values = _as_categorical(column)
    extra = [str(c) for c in values.categories if c not in declared]
    ranked = sorted(extra, key=lambda c: (GSS_MARKERS.index(c) if c in GSS_MARKERS else len(GSS_MARKERS), c))
    return values.set_categories([*declared, *ranked])


def _read_hierarchy(found: _Found, resource: Mapping[str, Any]) -> pd.DataFrame:
    """``code,label,parent,level`` as strings in file order (the publication order); no code is read as NA."""
    frame = pd.read_csv(found.file(resource), dtype=str, keep_default_na=False, na_values=[])
    if "parent" in frame.columns:
        frame["parent"] = frame["parent"].replace("", pd.NA)
    return frame


# --- metadata --------------------------------------------------------------------------------


def _attrs(found: _Found, resource: Mapping[str, Any]) -> dict[str, Any]:
    """Small, flat facts only: pandas copies ``attrs`` into every derived frame."""
    d = found.descriptor
    licences = [
        f"{lic.get('title') or lic.get('name')}" + (f" ({lic['path']})" if lic.get("path") else "")
        for lic in d.get("licenses") or []
        if isinstance(lic, dict)
    ]
    publisher = next(
        (
            c.get("title")
            for c in d.get("contributors") or []
            if isinstance(c, dict) and "publisher" in (c.get("roles") or [])
        ),
        None,
    )
    year = str(d.get("created", ""))[:4]
    title = d.get("title") or d["name"]
    citation = f"{publisher or d['name']} ({year or 'n.d.'}). {title}, version {d['version']} [data set]."
    if found.source.startswith(("http://", "https://")):
        citation += f" {found.source}"
    return {
        "name": d["name"],
        "version": d["version"],
        "id": d.get("id"),
        "created": d.get("created"),
        "table": resource["name"],
        "title": resource.get("title") or resource["name"],
        "package_title": title,
        "kind": d.get("opendata:kind"),
        "rounding_base": _rounding_base(d),
        "indicators": [i for i in d.get("opendata:indicators") or [] if isinstance(i, dict)],
        # what each column counts, to tell whether two packages' figures mean the same (compare --with)
        "definitions": {
            str(f.get("name")): " | ".join(
                str(f.get(k, "")) for k in ("description", "opendata:unit", "opendata:aggregate")
            )
            for f in _fields(resource)
            if not str(f.get("name", "")).endswith(STATUS_SUFFIX)
        },
        "licence": "; ".join(licences) or None,
        "citation": citation,
        "source": found.source,
    }


def _rounding_base(descriptor: Mapping[str, Any]) -> int | None:
    """The base the published counts are rounded to (None if not rounded): intervals need it."""
    rules = (descriptor.get("opendata:disclosure") or {}).get("rules") or {}
    rounding = rules.get("rounding") if isinstance(rules, dict) else None
    base = rounding.get("base") if isinstance(rounding, dict) else None
    return base if isinstance(base, int) and not isinstance(base, bool) else None


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


# --- ``opendata.load(...)`` calls this module's ``load`` ---------------------------------------


class _CallableModule(types.ModuleType):
    """Lets ``opendata.load`` be both the function researchers call and the module holding the helpers."""

    def __call__(self, *args: Any, **kwargs: Any) -> pd.DataFrame:
        return load(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
