"""What a published package looks like, as every stage reads it: file names, the GSS shorthand,
the descriptor's file list (``PackageInfo``), ids and RFC 3339 times, inert Markdown text.

Standard library only, so the host-side modules (sync, serve, signing, catalogue) import it without
pandas, pyarrow, DuckDB or the disclosure engine; ``opendata.package`` writes what this describes.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opendata.digest import file_digest
from opendata.errors import ReleaseError

DATAPACKAGE_SCHEMA = "https://datapackage.org/profiles/2.0/datapackage.json"
DESCRIPTOR_FILE = "datapackage.json"
README_FILE = "README.md"
CHANGELOG_FILE = "CHANGELOG.md"  # one per series, beside its versions
CATALOG_FILE = "catalog.json"  # at the root of a release tree
SIGNATURE_SUFFIX = ".sig"  # a detached signature: <file>.sig
PARQUET_MEDIATYPE = "application/vnd.apache.parquet"
STATUS_SUFFIX = "_status"
# periods a period dimension has, coarsest first: calendar years, financial years (April to March,
# as DWP publishes: 2011/12), calendar quarters (which nest in both) and months
PERIOD_LEVELS = ("year", "financial_year", "quarter", "month")

# GSS shorthand a published cell may carry instead of a number; status code -> label.
MISSING_LABELS: dict[str, str] = {"c": "confidential", "z": "not applicable", "x": "not available"}
# markers that annotate a published value rather than replace it (Parquet status column, README, descriptor)
ANNOTATIONS: dict[str, str] = {"r": "revised", "p": "provisional"}
MISSING_VALUES: list[dict[str, str]] = [
    {"value": f"[{code}]", "label": label} for code, label in MISSING_LABELS.items()
]
CSV_DIALECT: dict[str, Any] = {
    "header": True,
    "delimiter": ",",
    "lineTerminator": "\n",
    "quoteChar": '"',
    "doubleQuote": True,
}
KIND_NOTES = {
    "management information": (
        "This is management information, not official statistics. It is published voluntarily in line "
        "with the UK Statistics Authority Code of Practice for Statistics."
    ),
    "official statistics": (
        "These are official statistics, produced under the UK Statistics Authority Code of Practice for Statistics."
    ),
}
# A fixed namespace makes the package id a pure function of name and version.
ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/opendata/datapackage-id")
SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
HASH_PREFIX = "sha256:"  # how a Data Package descriptor spells a SHA-256 (catalog.json holds the bare hex)


@dataclass(frozen=True)
class FileInfo:
    """One published file, so a copy can be checked against it: its path (relative to the version in a
    descriptor, to the tree root in the catalogue), size and SHA-256 in hex. One type for both lists."""

    path: str
    bytes: int
    sha256: str

    @property
    def hash(self) -> str:
        """The hash as a descriptor spells it."""
        return HASH_PREFIX + self.sha256

    @classmethod
    def from_resource(cls, resource: dict[str, Any]) -> FileInfo:
        """A descriptor's resource; its ``hash`` must be ``sha256:`` and 64 hex digits (what we write)."""
        digest = resource["hash"]
        if not isinstance(digest, str) or not SHA256_HEX.match(digest.removeprefix(HASH_PREFIX)):
            raise ValueError(f"the hash {digest!r} of {resource.get('path')!r} is not {HASH_PREFIX}<64 hex digits>")
        return cls(resource["path"], resource["bytes"], digest.removeprefix(HASH_PREFIX))


@dataclass(frozen=True)
class PackageInfo:
    """What a written package claims about itself, read back from its ``datapackage.json``.

    Hosts and later stages (diffs, sync, signing) use it to find and verify files without
    depending on frictionless.
    """

    path: Path
    name: str
    id: str
    version: str
    created: str
    files: tuple[FileInfo, ...]
    descriptor: dict[str, Any]

    @classmethod
    def read(cls, path: str | Path) -> PackageInfo:
        """Read a release directory (or its ``datapackage.json``)."""
        path = Path(path)
        if path.name == DESCRIPTOR_FILE:
            path = path.parent
        try:
            descriptor = json.loads((path / DESCRIPTOR_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ReleaseError(f"{path} is not a release: it has no {DESCRIPTOR_FILE}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ReleaseError(f"{path / DESCRIPTOR_FILE} is not valid JSON: {exc}") from None
        try:
            files = tuple(FileInfo.from_resource(r) for r in descriptor.get("resources", []) if "hash" in r)
            return cls(
                path=path,
                name=descriptor["name"],
                id=descriptor["id"],
                version=descriptor["version"],
                created=descriptor["created"],
                files=files,
                descriptor=descriptor,
            )
        except (KeyError, TypeError) as exc:
            raise ReleaseError(f"{path / DESCRIPTOR_FILE} lacks {exc} or has it in the wrong shape") from None
        except ValueError as exc:
            raise ReleaseError(f"{path / DESCRIPTOR_FILE}: {exc}") from None

    @property
    def release_at(self) -> datetime:
        """When the version becomes public: ``created``, the one place the release time is written
        (``opendata:release.time`` of packages written before 2026-12-02 wins where present: the same
        value, kept so their readers and ours agree)."""
        release = self.descriptor.get("opendata:release")
        stamp = release.get("time") if isinstance(release, dict) and release.get("time") else self.created
        try:
            return parse_time(stamp, "release time")
        except ValueError as exc:
            raise ReleaseError(f"{self.path / DESCRIPTOR_FILE}: {exc}") from None

    def verify(self) -> list[str]:
        """Problems found comparing the files on disk with their recorded size and hash; empty if intact."""
        problems = []
        for f in self.files:
            target = self.path / f.path
            if not target.is_file():
                problems.append(f"{f.path}: missing")
                continue
            size, digest = size_and_hash(target)
            if size != f.bytes:
                problems.append(f"{f.path}: {size} bytes, descriptor says {f.bytes}")
            if digest != f.hash:
                problems.append(f"{f.path}: hash {digest}, descriptor says {f.hash}")
        return problems


def package_id(name: str, version: str) -> str:
    """A stable identifier for one version of a dataset: the same name and version give the same id."""
    return str(uuid.uuid5(ID_NAMESPACE, f"{name}@{version}"))


def parse_time(text: object, what: str = "time") -> datetime:
    """An RFC 3339 time with its offset, as an aware UTC datetime: the one parser of every time a
    descriptor, catalogue or command line gives. A time without an offset is refused (``ValueError``
    naming ``what``): it is ambiguous, and cannot be compared with the aware times everywhere else."""
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        raise ValueError(f"{what} {text!r} is not an RFC 3339 time such as 2026-12-03T09:30:00Z") from None
    if moment.tzinfo is None:
        raise ValueError(f"{what} {text!r} has no UTC offset (write e.g. 2026-12-03T09:30:00Z)")
    return moment.astimezone(UTC)


def rfc3339(moment: datetime) -> str:
    """UTC, whole seconds, ``Z``: one spelling per instant, so descriptors compare byte for byte."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("created must be timezone-aware (e.g. datetime.now(UTC)); a naive time is ambiguous")
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def size_and_hash(path: Path) -> tuple[int, str]:
    """A file's size and its hash spelt as descriptors spell it (``sha256:<hex>``)."""
    size, sha = file_digest(path)
    return size, f"sha256:{sha}"


MARKDOWN_PUNCTUATION = frozenset("\\`*_[]#!|~")


def markdown_text(text: Any) -> str:
    """Spec text (titles, descriptions, publisher, licences) as inert Markdown on one line: HTML
    escaped (no ``<script>``), Markdown punctuation backslashed (no links, images, headings or
    emphasis it did not mean), so a hostile spec cannot inject markup into the README."""
    flat = " ".join(str(text).split()).replace("<", "&lt;").replace(">", "&gt;")
    out = "".join("\\" + ch if ch in MARKDOWN_PUNCTUATION else ch for ch in flat)
    return "\\" + out if out[:1] in "-+" and out else out


def is_period(levels: Iterable[str]) -> bool:
    """A dimension of periods: its level names are months, quarters, years or financial years (and the total)."""
    found = set(levels) - {"total"}
    return bool(found) and found <= set(PERIOD_LEVELS)


def finest_period(levels: Iterable[str]) -> str:
    """The finest period level among ``levels`` (``month`` beside quarter subtotals): a trend's points."""
    found = set(levels)
    return next((lv for lv in reversed(PERIOD_LEVELS) if lv in found), "month")
