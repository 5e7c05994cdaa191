"""Publishers' release trees that the hub mirrors and shows as they are, with their provenance.

The hub subscribes to a publisher (DWP, a prime, another hub) by the URL of its release tree and
the public key its catalogue is signed with. ``refresh`` runs ``opendata.sync`` for each: nothing
enters the hub's mirror that the publisher's key has not signed, a tampered or rolled-back tree is
refused and the mirror kept as it was, and an unchanged tree costs one conditional request. The
hub never re-signs a publisher's packages: a reader can check them with the publisher's own key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from opendata.errors import OpenDataError
from opendata.hub.store import HubError, Publisher, Store
from opendata.signing import fingerprint, parse_public_key
from opendata.sync import sync

KINDS = ("official statistics", "management information")


def mirror_dir(root: Path, name: str) -> Path:
    return Path(root) / "publishers" / name


def key_file(root: Path, name: str) -> Path:
    return Path(root) / "publishers" / f"{name}.pub"


def subscribe(root: Path, store: Store, name: str, title: str, source: str, key_pem: str, kind: str) -> Publisher:
    """Record a subscription; the key is checked now, the tree is fetched by ``refresh``."""
    if kind not in KINDS:
        raise HubError(f"kind {kind!r}: expected one of {', '.join(KINDS)}")
    parse_public_key(key_pem.encode("ascii"), f"the key of {name}")
    publisher = Publisher(name, title, source, key_pem.strip(), kind)
    store.add_publisher(publisher)
    key_file(root, name).parent.mkdir(parents=True, exist_ok=True)
    key_file(root, name).write_text(publisher.public_key + "\n", encoding="ascii")
    return publisher


@dataclass(frozen=True)
class Refreshed:
    name: str
    ok: bool
    result: str


def refresh(root: Path, store: Store) -> list[Refreshed]:
    """Sync every subscribed tree; one publisher's failure is recorded and does not stop the others."""
    done = []
    for p in store.publishers():
        try:
            summary = sync(p.source, mirror_dir(root, p.name), key_file(root, p.name), progress=False)
            added = ", ".join(summary.versions_added) or "nothing new"
            done.append(Refreshed(p.name, True, f"verified with {summary.key_fingerprint}; added: {added}"))
        except OpenDataError as exc:
            done.append(Refreshed(p.name, False, f"refused: {exc}"))
        store.synced(p.name, done[-1].result)
    return done


def key_fingerprint(publisher: Publisher) -> str:
    return fingerprint(parse_public_key(publisher.public_key.encode("ascii"), publisher.name))
