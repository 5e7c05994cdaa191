"""What the hub shows: the latest version of every package it holds, each with its provenance.

Two kinds of tree: the hub's own (``public/``: community contributions, protected and signed by the
hub) and each subscribed publisher's mirror (``publishers/<name>/``: as the publisher signed it).
Every figure the hub shows carries its source's kind (official statistics, management
information, community contributed) and where it came from, so a reader never mistakes one for
another.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opendata.catalog import read_catalog
from opendata.descriptor import CATALOG_FILE, DESCRIPTOR_FILE
from opendata.errors import OpenDataError
from opendata.hub.publishers import key_fingerprint, mirror_dir
from opendata.hub.store import DB_FILE, Store
from opendata.signing import fingerprint, load_public_key

COMMUNITY = "community contributed"


@dataclass(frozen=True)
class Source:
    """One package's latest version, where the hub serves it and whose word it is."""

    package: str
    title: str
    version: str
    kind: str  # official statistics, management information or community contributed
    publisher: str
    provenance: str
    url: str  # where the hub serves the version folder
    path: Path  # the version folder on disk
    descriptor: dict[str, Any]


class Cached:
    """``sources`` re-read only when a catalogue or the store changes (a stat of each, not a parse):
    readers of the compare API then cost a dictionary lookup, not a dozen files and a database."""

    def __init__(self, root: Path, store: Store):
        self.root, self.store = Path(root), store
        self._lock = threading.Lock()
        self._key: tuple = ()
        self._found: list[Source] = []
        self.generation = 0  # counts the re-reads: answers worked out from the sources are keyed by it

    def __call__(self) -> list[Source]:
        watched = [self.root / "public" / CATALOG_FILE, *sorted(self.root.glob(f"publishers/*/{CATALOG_FILE}"))]
        watched += [self.root / DB_FILE, self.root / f"{DB_FILE}.wal"]
        key = tuple((str(p), _mtime(p)) for p in watched)
        with self._lock:
            if key != self._key:
                found, self._key = sources(self.root, self.store), key
                if found != self._found:  # a store write (an upload, a token, a log line) changes nothing shown
                    self._found = found
                    self.generation += 1
            return self._found


def _mtime(path: Path) -> int:
    """0 for a file that is not there, including one removed after we looked (DuckDB's WAL comes and goes)."""
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return 0


def sources(root: Path, store: Store) -> list[Source]:
    """Every package the hub can show, community packages first, then each publisher's, by name."""
    root = Path(root)
    own = fingerprint(load_public_key(root / "hub.pub"))
    found = _tree(root / "public", "/data", COMMUNITY, None, f"checked, protected and signed by this hub ({own})")
    for p in store.publishers():
        note = (
            f"published by {p.title} at {p.source}; signed with their key {key_fingerprint(p)}, verified by the hub "
            f"when it mirrored it ({p.synced or 'not yet'})"
        )
        found += _tree(mirror_dir(root, p.name), f"/publishers/{p.name}", p.kind, p.title, note)
    return found


def _tree(tree: Path, url: str, kind: str, publisher: str | None, provenance: str) -> list[Source]:
    path = tree / CATALOG_FILE
    if not path.is_file():
        return []
    try:
        catalog = read_catalog(path)
    except OpenDataError:
        return []  # a mirror is only ever replaced whole by a verified sync; our own tree is written by us
    latest: dict[str, Any] = {}
    for v in catalog.versions:
        latest[v.name] = v  # the catalogue lists each package's versions oldest first
    out = []
    for name in sorted(latest):
        v = latest[name]
        descriptor = json.loads((tree / v.path / DESCRIPTOR_FILE).read_text(encoding="utf-8"))
        named = [c.get("title") for c in descriptor.get("contributors", []) if "publisher" in c.get("roles", [])]
        by = publisher or next((t for t in named if t), "unknown")
        out.append(
            Source(
                name,
                str(descriptor.get("title", name)),
                v.version,
                kind if publisher is None else str(descriptor.get("opendata:kind") or kind),
                by,
                provenance,
                f"{url}/{v.path}/",
                tree / v.path,
                descriptor,
            )
        )
    return out
