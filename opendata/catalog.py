"""The public catalogue of a release tree: what mirrors sync from and what portals harvest.

``write_catalog`` scans ``root/<name>/<version>/datapackage.json`` and writes three files at the root:

- ``catalog.json``: the machine index hosts sync from: every package, every version (SemVer order)
  with its release time, and every file of every version with its size and SHA-256, so a host can
  fetch only what it lacks and check each file before trusting it; signed as ``catalog.json.sig``;
- ``catalog.jsonld``: DCAT v3 in JSON-LD (inline context): a catalogue, a dataset series per package,
  a dataset per version and a distribution per file with its checksum, for data.gov.uk-style harvesters;
- ``feed.atom``: one Atom entry per version, newest first, so people can subscribe to releases.

Each file is written atomically and only when its bytes change. Output is a pure function of the tree
(and ``base_url``): dates come from the versions' ``created`` times, never from the clock, so an
unchanged tree gives unchanged bytes. ``now`` decides only which versions are public yet: a version
whose release time is later than ``now`` is under embargo and is left out of all three files.
"""

from __future__ import annotations

import json
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from opendata.descriptor import (
    CATALOG_FILE,
    CHANGELOG_FILE,
    DESCRIPTOR_FILE,
    ID_NAMESPACE,
    PARQUET_MEDIATYPE,
    SHA256_HEX,
    SIGNATURE_SUFFIX,
    FileInfo,
    PackageInfo,
    rfc3339,
)
from opendata.digest import file_digest
from opendata.errors import ReleaseError
from opendata.page import PAGE_FILE, Listed, tree_index
from opendata.signing import (
    SignatureError,
    SigningKey,
    fingerprint,
    sign_file,
    signature_path,
    signature_text,
    verify_file,
    write_atomic,
)
from opendata.versions import SEMVER, semver_key

JSONLD_FILE = "catalog.jsonld"
FEED_FILE = "feed.atom"
CATALOG_FORMAT = "opendata-catalog"
CATALOG_FORMAT_VERSION = 1
DEFAULT_TITLE = "Open data releases"
OGL_V3 = "http://www.nationalarchives.gov.uk/doc/open-government-licence/version/3/"
DATAPACKAGE_PROFILE = "https://datapackage.org/profiles/2.0/datapackage.json"
IANA_MEDIA = "https://www.iana.org/assignments/media-types/"
PUBLIC_ACCESS = "http://publications.europa.eu/resource/authority/access-right/PUBLIC"
ATOM_NS = "http://www.w3.org/2005/Atom"
MEDIA_TYPES = {
    ".csv": "text/csv",
    ".parquet": PARQUET_MEDIATYPE,
    ".json": "application/json",
    ".md": "text/markdown",
    ".ods": "application/vnd.oasis.opendocument.spreadsheet",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    SIGNATURE_SUFFIX: "application/octet-stream",
}
CONTEXT: dict[str, Any] = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "vcard": "http://www.w3.org/2006/vcard/ns#",
    "spdx": "http://spdx.org/rdf/terms#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}


# --- reading catalog.json --------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogVersion:
    """One published version as ``catalog.json`` lists it."""

    name: str
    version: str
    id: str
    created: str
    path: str  # the version directory, relative to the root
    descriptor: FileInfo
    files: tuple[FileInfo, ...]  # every file of the version, the descriptor and its signature included


@dataclass(frozen=True)
class Catalog:
    """A parsed, checked ``catalog.json``: paths are safe to join to a local root."""

    title: str
    modified: str | None
    base_url: str | None
    versions: tuple[CatalogVersion, ...]  # by package name, then SemVer
    changelogs: tuple[FileInfo, ...] = ()  # each series' CHANGELOG.md, signed with the catalogue

    def packages(self) -> dict[str, tuple[CatalogVersion, ...]]:
        out: dict[str, list[CatalogVersion]] = {}
        for v in self.versions:
            out.setdefault(v.name, []).append(v)
        return {name: tuple(vs) for name, vs in out.items()}

    def files(self) -> tuple[FileInfo, ...]:
        return tuple(f for v in self.versions for f in v.files)


def read_catalog(source: str | bytes | Path, *, source_name: str | Path | None = None) -> Catalog:
    """Parse ``catalog.json`` (a path, or its bytes as fetched), refusing unsafe paths and malformed entries.

    Verify its signature first when it came from elsewhere; this only checks shape, so that a
    hostile catalogue cannot make a mirror write outside its root.
    """
    where = str(source_name or (source if isinstance(source, Path) else CATALOG_FILE))
    try:
        raw = source.read_bytes() if isinstance(source, Path) else source
        doc = json.loads(raw)
    except FileNotFoundError:
        raise ReleaseError(f"{where} does not exist") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ReleaseError(f"{where} is not valid JSON: {exc}") from None
    try:
        if doc.get("format") != CATALOG_FORMAT or doc.get("formatVersion") != CATALOG_FORMAT_VERSION:
            raise ValueError(f"not an {CATALOG_FORMAT} version {CATALOG_FORMAT_VERSION} file")
        versions, changelogs = [], []
        for package in doc["packages"]:
            name = _safe_segment(package["name"])
            if "changelog" in package:
                changelog = _file_entry(package["changelog"], name)
                if changelog.path != f"{name}/{CHANGELOG_FILE}":
                    raise ValueError(f"{name}: the changelog entry must be {name}/{CHANGELOG_FILE}")
                changelogs.append(changelog)
            for v in package["versions"]:
                number = v["version"]
                if not SEMVER.match(number):
                    raise ValueError(f"{name} version {number!r} is not SemVer")
                path = _safe_path(v["path"])
                if path != f"{name}/{number}":
                    raise ValueError(f"{name} {number} is at {path!r}, expected {name}/{number}")
                files = tuple(_file_entry(f, path) for f in v["files"])
                descriptor = _file_entry(v["descriptor"], path)
                if descriptor.path != f"{path}/{DESCRIPTOR_FILE}" or descriptor not in files:
                    raise ValueError(f"{name} {number}: descriptor entry does not match its files")
                if len({f.path for f in files}) != len(files):
                    raise ValueError(f"{name} {number}: a file is listed twice")
                versions.append(CatalogVersion(name, number, str(v["id"]), str(v["created"]), path, descriptor, files))
        return Catalog(
            str(doc.get("title", "")), doc.get("modified"), doc.get("baseUrl"), tuple(versions), tuple(changelogs)
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ReleaseError(f"{where} lacks {exc} or has it in the wrong shape") from None
    except ValueError as exc:
        raise ReleaseError(f"{where}: {exc}") from None


def _safe_segment(name: Any) -> str:
    if not isinstance(name, str) or name in {"", ".", ".."} or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"unsafe name {name!r}")
    return name


def _safe_path(path: Any) -> str:
    """Relative, forward slashes, no empty, dot or dot-dot segments: cannot escape the root."""
    if not isinstance(path, str) or not path or path.startswith("/") or "\\" in path or "\x00" in path:
        raise ValueError(f"unsafe path {path!r}")
    for part in path.split("/"):
        _safe_segment(part)
    return path


def _file_entry(entry: dict[str, Any], under: str) -> FileInfo:
    path = _safe_path(entry["path"])
    if not path.startswith(under + "/"):
        raise ValueError(f"{path!r} is outside its version directory {under}")
    size, sha = entry["bytes"], entry["sha256"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError(f"{path}: bytes {size!r} is not a size")
    if not isinstance(sha, str) or not SHA256_HEX.match(sha):
        raise ValueError(f"{path}: sha256 {sha!r} is not 64 lower-case hex digits")
    return FileInfo(path, size, sha)


# --- scanning the tree -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Version:
    info: PackageInfo
    rel: str
    released: datetime
    files: tuple[FileInfo, ...]


@dataclass(frozen=True)
class FileInfos:
    """What ``write_catalog`` wrote and decided, for the publish summary."""

    catalog: Path
    jsonld: Path
    feed: Path
    signature: Path | None  # catalog.json.sig, when a signer was given
    key_fingerprint: str | None
    versions: tuple[str, ...]  # "name version" listed
    withheld: tuple[str, ...]  # "name version" under embargo at ``now``, left out
    signed: tuple[Path, ...]  # descriptors signed by this run (previously unsigned)
    written: tuple[Path, ...]  # files whose bytes changed


def _version_files(root: Path, version_dir: Path) -> tuple[FileInfo, ...]:
    """Every regular file under the version, except dot-files (temporaries of an interrupted write)."""
    out = []
    for path in sorted(version_dir.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if any(part.startswith(".") for part in path.relative_to(version_dir).parts):
            continue
        if path.is_symlink():
            raise ReleaseError(f"{rel} is a symbolic link; a release holds regular files only")
        if path.is_file():
            size, sha = file_digest(path)
            out.append(FileInfo(rel, size, sha))
    return tuple(sorted(out, key=lambda f: f.path))


def _scan(root: Path) -> list[_Version]:
    """Every version directory under root, checked against its own descriptor, by name then SemVer."""
    found = []
    for package_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for version_dir in sorted(package_dir.iterdir()):
            if version_dir.name.startswith(".") or not version_dir.is_dir() or not SEMVER.match(version_dir.name):
                continue
            if not (version_dir / DESCRIPTOR_FILE).is_file():
                raise ReleaseError(f"{version_dir} looks like a version but has no {DESCRIPTOR_FILE}")
            info = PackageInfo.read(version_dir)
            if (info.name, info.version) != (package_dir.name, version_dir.name):
                raise ReleaseError(
                    f"{version_dir / DESCRIPTOR_FILE} describes {info.name} {info.version}; "
                    f"it must live at {info.name}/{info.version}"
                )
            files = _version_files(root, version_dir)
            _check_against_descriptor(info, files, version_dir.relative_to(root).as_posix())
            found.append(_Version(info, version_dir.relative_to(root).as_posix(), info.release_at, files))
    found.sort(key=lambda v: (v.info.name, semver_key(v.info.version)))
    return found


def _check_against_descriptor(info: PackageInfo, files: tuple[FileInfo, ...], rel: str) -> None:
    """Never publish a catalogue that vouches for files the package's own descriptor contradicts."""
    actual = {f.path: f for f in files}
    for f in info.files:
        path = f"{rel}/{f.path}"
        entry = actual.get(path)
        if entry is None:
            raise ReleaseError(f"{path} is listed in its {DESCRIPTOR_FILE} but missing")
        if (entry.bytes, entry.sha256) != (f.bytes, f.sha256):
            raise ReleaseError(
                f"{path} does not match the size and hash in its {DESCRIPTOR_FILE}; the release was altered"
            )


# --- writing ---------------------------------------------------------------------------------


def write_catalog(
    root: Path,
    *,
    base_url: str | None = None,
    signer: SigningKey | None = None,
    now: datetime,
    title: str = DEFAULT_TITLE,
    description: str | None = None,
) -> FileInfos:
    """Write ``catalog.json``, ``catalog.jsonld``, ``feed.atom`` and the tree's ``index.html`` for the
    versions public at ``now``.

    With a signer, every listed version's ``datapackage.json`` that is not yet signed is signed, an
    existing descriptor signature is checked (SignatureError if it does not verify with this key:
    published signatures are never replaced), and ``catalog.json`` is signed last. Without a signer,
    a ``catalog.json.sig`` that no longer matches is removed rather than left to mislead.
    """
    root = Path(root)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware (e.g. datetime.now(UTC))")
    if not root.is_dir():
        raise ReleaseError(f"release tree {root} does not exist")
    base = _base_url(base_url)
    scanned = _scan(root)
    public = [v for v in scanned if v.released <= now]
    withheld = tuple(f"{v.info.name} {v.info.version}" for v in scanned if v.released > now)

    signed: list[Path] = []
    if signer is not None:
        for v in public:
            descriptor = v.info.path / DESCRIPTOR_FILE
            if signature_path(descriptor).exists():
                try:
                    verify_file(descriptor, signer)
                except SignatureError as exc:
                    raise SignatureError(
                        f"{exc}; published signatures are never replaced, so nothing was written"
                    ) from None
            else:
                signed.append(sign_file(descriptor, signer))
        if signed:  # the new .sig files are part of the version now
            public = [_Version(v.info, v.rel, v.released, _version_files(root, v.info.path)) for v in public]

    stamp = max((v.info.created for v in public), default=None) or rfc3339(now)
    written = []
    index = _catalog_json(root, public, title, base, stamp)
    catalog_path = root / CATALOG_FILE
    if write_atomic(catalog_path, index):
        written.append(catalog_path)
    sig_path = signature_path(catalog_path)
    if signer is not None:
        if write_atomic(sig_path, signature_text(index, signer).encode("ascii")):
            written.append(sig_path)
    elif catalog_path in written and sig_path.exists():
        sig_path.unlink()
    for path, data in (
        (root / JSONLD_FILE, _jsonld(public, title, description, base, stamp)),
        (root / FEED_FILE, _atom(public, title, base, stamp)),
        (root / PAGE_FILE, _index(public, title)),
    ):
        if write_atomic(path, data):
            written.append(path)
    return FileInfos(
        catalog=catalog_path,
        jsonld=root / JSONLD_FILE,
        feed=root / FEED_FILE,
        signature=sig_path if signer is not None else None,
        key_fingerprint=fingerprint(signer) if signer is not None else None,
        versions=tuple(f"{v.info.name} {v.info.version}" for v in public),
        withheld=withheld,
        signed=tuple(signed),
        written=tuple(written),
    )


def _base_url(base_url: str | None) -> str | None:
    if base_url is None:
        return None
    if not re.match(r"^https?://[^/\s]+", base_url) or any(c.isspace() for c in base_url):
        raise ReleaseError(f"base URL {base_url!r} must be an absolute http(s) URL, e.g. https://data.example.org/")
    return base_url if base_url.endswith("/") else base_url + "/"


def _url(base: str | None, rel: str) -> str:
    """Absolute under base_url; otherwise relative, which resolves against the catalogue's own location."""
    return (base or "") + rel


def _dump(doc: Any) -> bytes:
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _changelog(root: Path, name: str) -> dict[str, Any]:
    """The series' CHANGELOG.md as a catalogue entry (signed with the catalogue), if it exists."""
    path = root / name / CHANGELOG_FILE
    if not path.is_file() or path.is_symlink():
        return {}
    size, sha = file_digest(path)
    return {"changelog": _file_dict(FileInfo(f"{name}/{CHANGELOG_FILE}", size, sha))}


def _catalog_json(root: Path, versions: list[_Version], title: str, base: str | None, stamp: str) -> bytes:
    packages: dict[str, list[_Version]] = {}
    for v in versions:
        packages.setdefault(v.info.name, []).append(v)
    doc: dict[str, Any] = {"format": CATALOG_FORMAT, "formatVersion": CATALOG_FORMAT_VERSION, "title": title}
    if base:
        doc["baseUrl"] = base
    doc["modified"] = stamp
    doc["packages"] = [
        {
            "name": name,
            "title": vs[-1].info.descriptor.get("title", name),
            "latest": vs[-1].info.version,
            **_changelog(root, name),
            "versions": [_version_entry(v) for v in vs],
        }
        for name, vs in packages.items()
    ]
    return _dump(doc)


def _version_entry(v: _Version) -> dict[str, Any]:
    by_path = {f.path: f for f in v.files}
    descriptor = by_path[f"{v.rel}/{DESCRIPTOR_FILE}"]
    release = v.info.descriptor.get("opendata:release")
    release = release if isinstance(release, dict) else {}
    return {
        "version": v.info.version,
        "id": v.info.id,
        "created": v.info.created,
        # when it became public, and whether it went out as pre-announced (orderly release)
        **{k: release[k] for k in RELEASE_FACTS if k in release},
        "path": v.rel,
        "descriptor": _file_dict(descriptor),
        "signed": f"{descriptor.path}{SIGNATURE_SUFFIX}" in by_path,
        "files": [_file_dict(f) for f in v.files],
    }


def derived_views(root: Path, catalog: Catalog) -> dict[str, bytes]:
    """``catalog.jsonld``, ``feed.atom`` and ``index.html`` for the versions a verified ``catalog`` lists, built from
    the files under ``root`` (a mirror). They are not signed, so a mirror makes its own from what
    it verified instead of copying the source's."""
    listed = {(v.name, v.version) for v in catalog.versions}
    versions = [v for v in _scan(Path(root)) if (v.info.name, v.info.version) in listed]
    stamp = catalog.modified or max((v.info.created for v in versions), default="")
    return {
        JSONLD_FILE: _jsonld(versions, catalog.title, None, catalog.base_url, stamp),
        FEED_FILE: _atom(versions, catalog.title, catalog.base_url, stamp),
        PAGE_FILE: _index(versions, catalog.title),
    }


def _index(versions: list[_Version], title: str) -> bytes:
    """The tree's ``index.html``: every version, linked to its release page."""
    return tree_index(
        [
            Listed(
                v.info.name,
                v.info.version,
                str(v.info.descriptor.get("title", v.info.name)),
                v.info.created,
                v.rel,
                any(f.path == f"{v.rel}/{PAGE_FILE}" for f in v.files),
            )
            for v in versions
        ],
        title,
    )


RELEASE_FACTS = ("published", "pre_announced", "orderly", "unscheduled", "late", "reason")


def _file_dict(f: FileInfo) -> dict[str, Any]:
    return {"path": f.path, "bytes": f.bytes, "sha256": f.sha256}


# --- DCAT ------------------------------------------------------------------------------------


def _urn(*parts: str) -> str:
    return f"urn:uuid:{uuid.uuid5(ID_NAMESPACE, '/'.join(parts))}"


def _dt(value: str) -> dict[str, str]:
    return {"@value": value, "@type": "xsd:dateTime"}


def _publisher(descriptor: dict[str, Any]) -> dict[str, Any] | None:
    """The contributor with the publisher role (Data Package v2 has no separate publisher field)."""
    for c in descriptor.get("contributors") or []:
        if isinstance(c, dict) and "publisher" in (c.get("roles") or []) and c.get("title"):
            return c
    return None


def _contact(descriptor: dict[str, Any]) -> dict[str, Any] | None:
    contacts = [c for c in descriptor.get("contributors") or [] if isinstance(c, dict) and c.get("email")]
    for role in ("contact", "contactPerson", "pointOfContact", "publisher"):
        for c in contacts:
            if role in (c.get("roles") or []):
                return c
    return contacts[0] if contacts else None


def _agent(party: dict[str, Any]) -> dict[str, Any]:
    node: dict[str, Any] = {"@id": party["path"]} if party.get("path") else {}
    node |= {"@type": ["foaf:Agent", "foaf:Organization"], "foaf:name": party["title"]}
    if party.get("path"):
        node["foaf:homepage"] = {"@id": party["path"]}
    return node


def _licenses(descriptor: dict[str, Any]) -> list[str]:
    out = []
    for lic in descriptor.get("licenses") or []:
        if isinstance(lic, dict) and lic.get("path"):
            out.append(lic["path"])
        elif isinstance(lic, dict) and str(lic.get("name", "")).upper() in {"OGL-UK-3.0", "OGL-3.0"}:
            out.append(OGL_V3)
    return out


def _media_type(path: str, resources: dict[str, dict[str, Any]]) -> str:
    resource = resources.get(path) or {}
    return resource.get("mediatype") or MEDIA_TYPES.get(PurePosixPath(path).suffix, "application/octet-stream")


def _jsonld(versions: list[_Version], title: str, description: str | None, base: str | None, stamp: str) -> bytes:
    catalog_id = _url(base, JSONLD_FILE) if base else _urn("catalog", title)
    graph: list[dict[str, Any]] = []
    members: list[dict[str, str]] = []
    series_by_name: dict[str, list[_Version]] = {}
    for v in versions:
        series_by_name.setdefault(v.info.name, []).append(v)

    publishers = []
    for name, vs in series_by_name.items():
        latest = vs[-1].info.descriptor
        series_id = _urn("series", name)
        members.append({"@id": series_id})
        series: dict[str, Any] = {
            "@id": series_id,
            "@type": "dcat:DatasetSeries",
            "dct:identifier": name,
            "dct:title": latest.get("title", name),
            "dct:description": latest.get("description", ""),
            "dct:issued": _dt(vs[0].info.created),
            "dct:modified": _dt(vs[-1].info.created),
            "dcat:first": {"@id": f"urn:uuid:{vs[0].info.id}"},
            "dcat:last": {"@id": f"urn:uuid:{vs[-1].info.id}"},
        }
        publisher = _publisher(latest)
        if publisher:
            series["dct:publisher"] = _agent(publisher)
            publishers.append(publisher)
        if base:
            series["dcat:landingPage"] = {"@id": _url(base, name + "/")}
        graph.append(series)
        previous: _Version | None = None
        for v in vs:
            members.append({"@id": f"urn:uuid:{v.info.id}"})
            graph.append(_dataset(v, series_id, previous, base))
            graph += _distributions(v, base)
            previous = v

    catalog: dict[str, Any] = {
        "@id": catalog_id,
        "@type": "dcat:Catalog",
        "dct:title": title,
        "dct:description": description or f"{title}: versioned, disclosure-controlled open data packages.",
        "dct:modified": _dt(stamp),
    }
    if versions:
        catalog["dct:issued"] = _dt(min(v.info.created for v in versions))
    distinct = {p["title"]: p for p in publishers}
    if len(distinct) == 1:
        catalog["dct:publisher"] = _agent(next(iter(distinct.values())))
    licences = sorted({lic for v in versions for lic in _licenses(v.info.descriptor)})
    if len(licences) == 1:
        catalog["dct:license"] = {"@id": licences[0]}
    if base:
        catalog["foaf:homepage"] = {"@id": base}
    catalog["dcat:dataset"] = members
    doc = {"@context": CONTEXT, "@graph": [catalog, *graph]}
    return _dump(doc)


def _dataset(v: _Version, series_id: str, previous: _Version | None, base: str | None) -> dict[str, Any]:
    d = v.info.descriptor
    name, number = v.info.name, v.info.version
    node: dict[str, Any] = {
        "@id": f"urn:uuid:{v.info.id}",
        "@type": "dcat:Dataset",
        "dct:identifier": v.info.id,
        "dct:title": f"{d.get('title', name)}, version {number}",
        "dct:description": d.get("description", ""),
        "dct:issued": _dt(v.info.created),
        "dct:modified": _dt(v.info.created),  # a version is immutable: it is never modified after release
        "dcat:version": number,
        "dcat:inSeries": {"@id": series_id},
        "dct:accessRights": {"@id": PUBLIC_ACCESS},
    }
    licences = _licenses(d)
    if licences:
        node["dct:license"] = [{"@id": lic} for lic in licences] if len(licences) > 1 else {"@id": licences[0]}
    publisher = _publisher(d)
    if publisher:
        node["dct:publisher"] = _agent(publisher)
    contact = _contact(d)
    if contact:
        node["dcat:contactPoint"] = {
            "@type": "vcard:Organization",
            "vcard:fn": contact.get("title", contact["email"]),
            "vcard:hasEmail": {"@id": f"mailto:{contact['email']}"},
        }
    keywords = [k for k in d.get("keywords") or [] if isinstance(k, str)]
    if keywords:
        node["dcat:keyword"] = keywords
    if previous is not None:
        node["dcat:previousVersion"] = {"@id": f"urn:uuid:{previous.info.id}"}
        node["dcat:prev"] = {"@id": f"urn:uuid:{previous.info.id}"}
    if base:
        node["dcat:landingPage"] = {"@id": _url(base, v.rel + "/")}
    node["dcat:distribution"] = [{"@id": _urn(name, number, f.path)} for f in _distributed(v)]
    return node


def _distributed(v: _Version) -> list[FileInfo]:
    """Files a harvester would offer for download: everything except signatures."""
    return [f for f in v.files if not f.path.endswith(SIGNATURE_SUFFIX)]


def _distributions(v: _Version, base: str | None) -> list[dict[str, Any]]:
    resources = {f"{v.rel}/{r['path']}": r for r in v.info.descriptor.get("resources", []) if isinstance(r, dict)}
    licences = _licenses(v.info.descriptor)
    out = []
    for f in _distributed(v):
        resource = resources.get(f.path) or {}
        media = _media_type(f.path, resources)
        local = f.path.removeprefix(v.rel + "/")
        node: dict[str, Any] = {
            "@id": _urn(v.info.name, v.info.version, f.path),
            "@type": "dcat:Distribution",
            "dct:identifier": local,
            "dct:title": resource.get("title") or local,
            "dcat:downloadURL": {"@id": _url(base, f.path)},
            "dcat:accessURL": {"@id": _url(base, v.rel + "/")},
            "dcat:mediaType": {"@id": IANA_MEDIA + media},
            "dcat:byteSize": {"@value": str(f.bytes), "@type": "xsd:nonNegativeInteger"},
            "spdx:checksum": {
                "@type": "spdx:Checksum",
                "spdx:algorithm": {"@id": "spdx:checksumAlgorithm_sha256"},
                "spdx:checksumValue": {"@value": f.sha256, "@type": "xsd:hexBinary"},
            },
            "dct:issued": _dt(v.info.created),
        }
        if resource.get("description"):
            node["dct:description"] = resource["description"]
        if local == DESCRIPTOR_FILE:
            node["dct:conformsTo"] = {"@id": v.info.descriptor.get("$schema") or DATAPACKAGE_PROFILE}
        if licences:
            node["dct:license"] = {"@id": licences[0]}
        out.append(node)
    return out


# --- Atom ------------------------------------------------------------------------------------


def _atom(versions: list[_Version], title: str, base: str | None, stamp: str) -> bytes:
    ET.register_namespace("", ATOM_NS)

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        element = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attrs)
        if text is not None:
            element.text = text
        return element

    feed = ET.Element(f"{{{ATOM_NS}}}feed")
    sub(feed, "id", _url(base, FEED_FILE) if base else _urn("feed", title))
    sub(feed, "title", title)
    sub(feed, "updated", stamp)
    if base:
        sub(feed, "link", rel="self", type="application/atom+xml", href=_url(base, FEED_FILE))
        sub(feed, "link", rel="alternate", href=base)
    publishers = sorted({p["title"] for v in versions if (p := _publisher(v.info.descriptor))})
    author = sub(feed, "author")
    sub(author, "name", ", ".join(publishers) or title)
    sub(feed, "generator", "opendata")

    newest_first = sorted(
        versions, key=lambda v: (v.info.created, v.info.name, semver_key(v.info.version)), reverse=True
    )
    for v in newest_first:
        d = v.info.descriptor
        entry = sub(feed, "entry")
        sub(entry, "id", f"urn:uuid:{v.info.id}")
        sub(entry, "title", f"{d.get('title', v.info.name)} {v.info.version}")
        sub(entry, "published", v.info.created)
        sub(entry, "updated", v.info.created)
        sub(entry, "link", rel="alternate", href=_url(base, v.rel + "/"))
        sub(entry, "link", rel="describedby", type="application/json", href=_url(base, f"{v.rel}/{DESCRIPTOR_FILE}"))
        publisher = _publisher(d)
        if publisher:
            sub(sub(entry, "author"), "name", publisher["title"])
        for keyword in _strings(d.get("keywords")):
            sub(entry, "category", term=keyword)
        sub(entry, "summary", _summary(v), type="text")
    ET.indent(feed, space="  ")
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True) + b"\n"


def _strings(values: Any) -> Iterable[str]:
    return [v for v in values or [] if isinstance(v, str)]


def _summary(v: _Version) -> str:
    d = v.info.descriptor
    kind = d.get("opendata:kind")
    total = (d.get("opendata:disclosure") or {}).get("total") or {}
    parts = [f"{v.info.name} version {v.info.version}, released {v.info.created}."]
    if kind:
        parts.append(f"This is {kind}.")
    if d.get("description"):
        parts.append(" ".join(str(d["description"]).split()))
    parts.append(f"{len(v.info.files)} data files.")
    if isinstance(total.get("suppressed"), int) and isinstance(total.get("cells"), int):
        parts.append(f"{total['suppressed']} of {total['cells']} cells suppressed for disclosure control.")
    return " ".join(parts)
