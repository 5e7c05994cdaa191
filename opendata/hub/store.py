"""The hub's own records in one DuckDB file: organisations, their people and tokens, uploads, audit log.

Everything public lives in the release tree (``public/``), never here; this file holds who may do
what and what each upload became. Secrets are stored only as hashes: passwords with Argon2id
(argon2-cffi), API tokens as SHA-256 of 256 random bits (a token is a key, not a password, so a
fast hash is enough and lets a request find its organisation with one lookup).

A connection is opened per operation and closed at once, so the admin CLI can change accounts
while the hub runs (DuckDB lets one process write a file at a time; a busy file is retried).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from opendata.errors import OpenDataError

DB_FILE = "hub.duckdb"
ORG_NAME = re.compile(r"^[a-z][a-z0-9-]{1,39}$")  # becomes part of package names and paths
UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
BUSY_WAIT = 10.0  # seconds to wait for another process holding the file

SCHEMA = """
CREATE TABLE IF NOT EXISTS orgs (
    name VARCHAR PRIMARY KEY, title VARCHAR NOT NULL, public_key VARCHAR, created VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    email VARCHAR PRIMARY KEY, org VARCHAR NOT NULL, password_hash VARCHAR NOT NULL, created VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    token_hash VARCHAR PRIMARY KEY, org VARCHAR NOT NULL, created VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS uploads (
    id VARCHAR PRIMARY KEY, org VARCHAR NOT NULL, created VARCHAR NOT NULL, input_kind VARCHAR NOT NULL,
    files VARCHAR NOT NULL, status VARCHAR NOT NULL, report VARCHAR NOT NULL, package VARCHAR, version VARCHAR,
    corrects BIGINT);
CREATE TABLE IF NOT EXISTS queries (
    id BIGINT PRIMARY KEY, package VARCHAR NOT NULL, version VARCHAR NOT NULL, figure VARCHAR NOT NULL,
    text VARCHAR NOT NULL, author VARCHAR NOT NULL, author_org VARCHAR NOT NULL, created VARCHAR NOT NULL,
    answer VARCHAR, answered_by VARCHAR, answered VARCHAR, corrected_in VARCHAR);
CREATE TABLE IF NOT EXISTS publishers (
    name VARCHAR PRIMARY KEY, title VARCHAR NOT NULL, source VARCHAR NOT NULL, public_key VARCHAR NOT NULL,
    kind VARCHAR NOT NULL, created VARCHAR NOT NULL, synced VARCHAR, result VARCHAR);
CREATE TABLE IF NOT EXISTS audit (
    seq BIGINT PRIMARY KEY, "at" VARCHAR NOT NULL, actor VARCHAR NOT NULL, org VARCHAR, action VARCHAR NOT NULL,
    subject VARCHAR, detail VARCHAR);
"""

_hasher = PasswordHasher()
_lock = threading.Lock()  # one writer at a time inside the process (DuckDB: one per file)


class HubError(OpenDataError):
    """A hub operation the admin or a user asked for cannot be done (names what and why)."""


@dataclass(frozen=True)
class Org:
    name: str
    title: str
    public_key: str | None


@dataclass(frozen=True)
class Publisher:
    """A release tree the hub mirrors and shows as it is (``opendata sync`` with the publisher's key)."""

    name: str
    title: str
    source: str  # http(s) URL or directory of the publisher's tree
    public_key: str  # PEM: what the tree's catalogue must verify with
    kind: str  # what its figures are: official statistics or management information
    synced: str | None = None
    result: str | None = None


@dataclass(frozen=True)
class Upload:
    id: str
    org: str
    created: str
    input_kind: str  # "records" or "aggregated": which standard spec it follows
    files: tuple[str, ...]  # the uploader's file names, as saved under the upload's folder
    status: str  # rejected, accepted, previewed, published
    report: dict[str, Any]
    package: str | None = None
    version: str | None = None
    corrects: int | None = None  # the query this upload answers with a correction


@dataclass(frozen=True)
class Query:
    """A question anyone signed in raises on a published figure; the publisher's answer is public too."""

    id: int
    package: str
    version: str
    figure: str  # which figure: table, row and column as the reader names them
    text: str
    author: str
    author_org: str
    created: str
    answer: str | None = None
    answered_by: str | None = None
    answered: str | None = None
    corrected_in: str | None = None  # the version that corrected the figure in response


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class Store:
    """The hub's records under ``root/hub.duckdb``."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.path = self.root / DB_FILE

    @contextmanager
    def _db(self, create: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        if not self.path.exists() and not create:
            raise HubError(f"{self.root} is not a hub (make one with: opendata hub init {self.root})")
        waited = 0.0
        with _lock:
            while True:
                try:
                    con = duckdb.connect(str(self.path))
                    break
                except duckdb.IOException as exc:  # another process holds the file
                    if waited >= BUSY_WAIT:
                        raise HubError(f"{self.path} is busy ({exc}); try again") from None
                    time.sleep(0.05)
                    waited += 0.05
            try:
                yield con
            finally:
                con.close()

    def create(self) -> None:
        with self._db(create=True) as con:
            con.execute(SCHEMA)

    # --- organisations and people (admin CLI) ---

    def add_org(self, name: str, title: str, public_key: str | None = None) -> Org:
        if not ORG_NAME.match(name):
            raise HubError(f"organisation name {name!r}: use 2-40 lower-case letters, digits and hyphens")
        with self._db() as con:
            if con.execute("SELECT 1 FROM orgs WHERE name = ?", [name]).fetchone():
                raise HubError(f"organisation {name!r} exists already")
            con.execute("INSERT INTO orgs VALUES (?, ?, ?, ?)", [name, title, public_key, _now()])
        self.log("admin", name, "add-org", name, title)
        return Org(name, title, public_key)

    def org(self, name: str) -> Org | None:
        with self._db() as con:
            row = con.execute("SELECT name, title, public_key FROM orgs WHERE name = ?", [name]).fetchone()
        return Org(*row) if row else None

    def orgs(self) -> list[Org]:
        with self._db() as con:
            return [Org(*r) for r in con.execute("SELECT name, title, public_key FROM orgs ORDER BY name").fetchall()]

    def new_token(self, org: str) -> str:
        """A new API token for ``org``; only its hash is kept, so it is shown once."""
        self._need_org(org)
        token = "hub_" + secrets.token_urlsafe(32)
        with self._db() as con:
            con.execute("INSERT INTO tokens VALUES (?, ?, ?)", [token_hash(token), org, _now()])
        self.log("admin", org, "new-token", org, None)
        return token

    def org_of_token(self, token: str) -> str | None:
        with self._db() as con:
            row = con.execute("SELECT org FROM tokens WHERE token_hash = ?", [token_hash(token)]).fetchone()
        return row[0] if row else None

    def add_user(self, email: str, org: str, password: str) -> None:
        self._need_org(org)
        email = email.strip().lower()
        if "@" not in email or len(email) > 254:
            raise HubError(f"{email!r} is not an email address")
        if len(password) < 12:
            raise HubError("a password needs at least 12 characters")
        with self._db() as con:
            if con.execute("SELECT 1 FROM users WHERE email = ?", [email]).fetchone():
                raise HubError(f"{email} has an account already")
            con.execute("INSERT INTO users VALUES (?, ?, ?, ?)", [email, org, _hasher.hash(password), _now()])
        self.log("admin", org, "add-user", email, None)

    def sign_in(self, email: str, password: str) -> str | None:
        """The user's organisation if the password is right, else None (same work either way)."""
        email = email.strip().lower()
        with self._db() as con:
            row = con.execute("SELECT org, password_hash FROM users WHERE email = ?", [email]).fetchone()
        stored = row[1] if row else _DUMMY_HASH
        try:
            _hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        return row[0] if row else None

    def _need_org(self, org: str) -> None:
        if self.org(org) is None:
            raise HubError(f"no organisation {org!r} (add it with: opendata hub add-org)")

    # --- publishers the hub subscribes to ---

    def add_publisher(self, publisher: Publisher) -> None:
        if not ORG_NAME.match(publisher.name):
            raise HubError(f"publisher name {publisher.name!r}: use 2-40 lower-case letters, digits and hyphens")
        with self._db() as con:
            if con.execute("SELECT 1 FROM publishers WHERE name = ?", [publisher.name]).fetchone():
                raise HubError(f"publisher {publisher.name!r} exists already")
            con.execute(
                "INSERT INTO publishers VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
                [publisher.name, publisher.title, publisher.source, publisher.public_key, publisher.kind, _now()],
            )
        self.log("admin", None, "subscribe", publisher.name, publisher.source)

    def publishers(self) -> list[Publisher]:
        with self._db() as con:
            rows = con.execute(
                "SELECT name, title, source, public_key, kind, synced, result FROM publishers ORDER BY name"
            ).fetchall()
        return [Publisher(*r) for r in rows]

    def synced(self, name: str, result: str) -> None:
        with self._db() as con:
            con.execute("UPDATE publishers SET synced = ?, result = ? WHERE name = ?", [_now(), result, name])
        self.log("hub", None, "sync", name, result)

    # --- uploads ---

    def add_upload(self, upload: Upload) -> None:
        with self._db() as con:
            con.execute(
                "INSERT INTO uploads VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    upload.id,
                    upload.org,
                    upload.created,
                    upload.input_kind,
                    json.dumps(list(upload.files)),
                    upload.status,
                    json.dumps(upload.report, sort_keys=True),
                    upload.package,
                    upload.version,
                    upload.corrects,
                ],
            )

    def set_status(self, upload_id: str, status: str, package: str | None = None, version: str | None = None):
        with self._db() as con:
            con.execute(
                "UPDATE uploads SET status = ?, package = coalesce(?, package), version = coalesce(?, version) "
                "WHERE id = ?",
                [status, package, version, upload_id],
            )

    def upload(self, upload_id: str, org: str) -> Upload | None:
        """The upload if ``org`` owns it; None otherwise, so another organisation cannot tell it exists."""
        if not UPLOAD_ID.match(upload_id):
            return None
        with self._db() as con:
            row = con.execute("SELECT * FROM uploads WHERE id = ? AND org = ?", [upload_id, org]).fetchone()
        return _upload(row) if row else None

    def uploads(self, org: str) -> list[Upload]:
        with self._db() as con:
            rows = con.execute("SELECT * FROM uploads WHERE org = ? ORDER BY created DESC", [org]).fetchall()
        return [_upload(r) for r in rows]

    def package_owner(self, package: str) -> str | None:
        """The organisation whose uploads make ``package`` (None for a publisher's mirrored package)."""
        with self._db() as con:
            row = con.execute("SELECT org FROM uploads WHERE package = ? LIMIT 1", [package]).fetchone()
        return row[0] if row else None

    # --- community validation: queries on published figures ---

    def add_query(self, package: str, version: str, figure: str, text: str, author: str, org: str) -> Query:
        figure, text = figure.strip(), text.strip()
        if not text or not figure:
            raise HubError("say which figure (table, row, column) and what the question is")
        if len(text) > 5000 or len(figure) > 500:
            raise HubError("a query is at most 5,000 characters, its figure 500")
        with self._db() as con:
            qid = con.execute("SELECT coalesce(max(id), 0) + 1 FROM queries").fetchone()[0]
            con.execute(
                "INSERT INTO queries VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, NULL)",
                [qid, package, version, figure, text, author, org, _now()],
            )
        self.log(author, org, "query", package, f"#{qid} on {figure}")
        return Query(qid, package, version, figure, text, author, org, _now())

    def queries(self, package: str | None = None) -> list[Query]:
        where, args = ("WHERE package = ?", [package]) if package else ("", [])
        with self._db() as con:
            rows = con.execute(f"SELECT * FROM queries {where} ORDER BY id", args).fetchall()
        return [Query(*r) for r in rows]

    def query(self, qid: int) -> Query | None:
        with self._db() as con:
            row = con.execute("SELECT * FROM queries WHERE id = ?", [qid]).fetchone()
        return Query(*row) if row else None

    def answer(self, qid: int, text: str, by: str) -> None:
        text = text.strip()
        if not text or len(text) > 5000:
            raise HubError("an answer is 1 to 5,000 characters")
        with self._db() as con:
            con.execute(
                "UPDATE queries SET answer = ?, answered_by = ?, answered = ? WHERE id = ?", [text, by, _now(), qid]
            )
        self.log(by, None, "answer", str(qid), None)

    def corrected(self, qid: int, version: str) -> None:
        with self._db() as con:
            con.execute("UPDATE queries SET corrected_in = ? WHERE id = ?", [version, qid])

    # --- audit log ---

    def log(self, actor: str, org: str | None, action: str, subject: str | None, detail: str | None) -> None:
        """Append one entry: every upload, preview, publish and admin action is recorded."""
        with self._db() as con:
            seq = con.execute("SELECT coalesce(max(seq), 0) + 1 FROM audit").fetchone()[0]
            con.execute(
                "INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?)", [seq, _now(), actor, org, action, subject, detail]
            )

    def audit_log(self) -> list[dict[str, Any]]:
        with self._db() as con:
            cur = con.execute("SELECT * FROM audit ORDER BY seq")
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _upload(row: tuple) -> Upload:
    uid, org, created, kind, files, status, report, package, version, corrects = row
    files, report = tuple(json.loads(files)), json.loads(report)
    return Upload(uid, org, created, kind, files, status, report, package, version, corrects)


_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))  # verified when the email is unknown: same time either way
