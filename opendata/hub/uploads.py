"""An upload's life on the hub: received → screened → previewed (private) → published (public, signed).

Nothing reaches ``public/`` that a DWP release would not publish: an accepted upload is cut with
``opendata.release.cut_release``, the same validation, aggregation, disclosure engine and audit,
into a staging folder of its own outside the public tree (``staging/<org>/<upload>/``). Only the
uploading organisation sees that preview. Publishing moves it with ``opendata.embargo.publish``
under the tree's lock and rewrites the hub's catalogue signed with the hub's key, so other hosts
``opendata sync`` the hub as they sync any publisher. Published versions are never overwritten.

Each organisation's package is named ``<org>-<standard spec name>``: its versions form one series,
so a new upload is linked to what the organisation published before (the engine's protection
across versions applies to community data too).
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
import shutil
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from opendata.embargo import publish
from opendata.errors import OpenDataError
from opendata.hub.screen import ScreenReport, screen, write_marked
from opendata.hub.store import HubError, Org, Store, Upload
from opendata.release import cut_release
from opendata.signing import SigningKey, generate_keys, load_private_key
from opendata.spec import ReleaseSpec, load_spec

SPEC_FILES = {"records": "work-programme.yaml", "aggregated": "work-programme-aggregated.yaml"}
FORMATS = (".csv", ".xlsx", ".ods")
MAX_FILES = 10
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_marking = threading.Lock()


@dataclass(frozen=True)
class Layout:
    """Where a hub keeps things under its root."""

    root: Path

    @property
    def specs(self) -> Path:
        return self.root / "specs"

    @property
    def public(self) -> Path:
        return self.root / "public"

    @property
    def key(self) -> Path:
        return self.root / "hub.key"

    @property
    def public_key(self) -> Path:
        return self.root / "hub.pub"

    @property
    def session_secret(self) -> Path:
        return self.root / "session.secret"

    def upload_dir(self, org: str, upload_id: str) -> Path:
        return self.root / "uploads" / org / upload_id

    def staging(self, org: str, upload_id: str) -> Path:
        return self.root / "staging" / org / upload_id


def init_hub(root: str | Path, specs: str | Path) -> Layout:
    """Create a hub at ``root``: its store, its signing key, its session secret and a copy of the
    standard specs (with their code lists) that uploads are checked against."""
    layout = Layout(Path(root))
    if (layout.root / "hub.duckdb").exists():
        raise HubError(f"{layout.root} is a hub already")
    specs = Path(specs)
    missing = [f for f in SPEC_FILES.values() if not (specs / f).is_file()]
    if missing:
        raise HubError(f"{specs} lacks the standard spec(s) {', '.join(missing)}")
    layout.root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(specs, layout.specs, ignore=shutil.ignore_patterns("*.md"))
    layout.public.mkdir()
    generate_keys(layout.key, layout.public_key)
    layout.session_secret.write_text(secrets.token_hex(32) + "\n", encoding="ascii")
    layout.session_secret.chmod(0o600)
    Store(layout.root).create()
    return layout


def standard_spec(layout: Layout, input_kind: str) -> ReleaseSpec:
    if input_kind not in SPEC_FILES:
        raise HubError(f"input kind {input_kind!r}: expected one of {', '.join(SPEC_FILES)}")
    return load_spec(layout.specs / SPEC_FILES[input_kind])


def org_spec(layout: Layout, org: Org, input_kind: str) -> ReleaseSpec:
    """The standard spec with the organisation as publisher of its own series."""
    spec = standard_spec(layout, input_kind)
    return dataclasses.replace(
        spec,
        name=f"{org.name}-{spec.name}",
        title=f"{spec.title}: {org.title}",
        publisher={"title": org.title},
        contributors=({"title": org.title, "roles": ["publisher"]},),
        sources=({"title": f"Management information uploaded to the hub by {org.title}"},),
    )


def safe_file_name(name: str) -> str:
    """The uploader's file name reduced to a safe base name, keeping its (checked) extension."""
    base = SAFE_NAME.sub("_", Path(name.replace("\\", "/")).name).strip("._") or "upload"
    suffix = Path(base).suffix.lower()
    if suffix not in FORMATS:
        raise HubError(f"{name!r}: upload CSV, XLSX or ODS files ({', '.join(FORMATS)})")
    return base[:100]


def receive(
    layout: Layout,
    store: Store,
    org: str,
    input_kind: str,
    files: dict[str, Path],
    actor: str,
    corrects: int | None = None,
) -> Upload:
    """Keep the files (moved from ``files``: the uploader's name → a temporary path), screen them,
    and record the upload with its report. A rejected upload is kept too, so its report and marked
    files can be downloaded. The marked files are made when first asked for (``marked_path``):
    marking a million rows takes a minute, and the uploader needs the verdict before that."""
    if not files:
        raise HubError("no file uploaded")
    if len(files) > MAX_FILES:
        raise HubError(f"{len(files)} files: upload at most {MAX_FILES} at a time")
    if corrects is not None:
        query = store.query(corrects)
        if query is None or store.package_owner(query.package) != org:
            raise HubError(f"query #{corrects} is not about one of your organisation's packages")
    spec = standard_spec(layout, input_kind)
    names = {name: safe_file_name(name) for name in files}  # refused here, before anything is written
    if len(set(names.values())) != len(names):
        raise HubError("two files have the same name once made safe: rename one")
    upload_id = secrets.token_hex(16)
    folder = layout.upload_dir(org, upload_id)
    (folder / "files").mkdir(parents=True)
    saved: dict[str, Path] = {}
    for name, temp in files.items():
        saved[names[name]] = folder / "files" / names[name]
        shutil.move(temp, saved[names[name]])
    report = screen(spec, saved, now=datetime.now(UTC).date())
    (folder / "todo.csv").write_bytes(report.todo_csv())
    status = "accepted" if report.accepted else "rejected"
    upload = Upload(upload_id, org, _now(), input_kind, tuple(saved), status, report.to_dict(), corrects=corrects)
    store.add_upload(upload)
    store.log(actor, org, "upload", upload_id, f"{status}; files: {', '.join(saved)}")
    return upload


def marked_path(layout: Layout, upload: Upload, name: str) -> Path | None:
    """The uploader's file ``name`` with its problems marked, made on first request (written to a
    temporary file and renamed, so a half-written file is never served); None if no such file."""
    if name not in upload.files:
        return None
    folder = layout.upload_dir(upload.org, upload.id)
    path = folder / "marked" / f"{name}.xlsx"
    with _marking:  # one at a time: two requests for the same file must not write one temporary file
        if not path.is_file():
            path.parent.mkdir(exist_ok=True)
            write_marked(ScreenReport.from_dict(upload.report), name, folder / "files" / name, path)
    return path


def todo_path(layout: Layout, upload: Upload) -> Path:
    return layout.upload_dir(upload.org, upload.id) / "todo.csv"


def preview(layout: Layout, store: Store, upload: Upload, actor: str) -> Path:
    """Cut the accepted upload as a release into its own private staging folder; return the version's folder.

    The same engine and audit as a DWP release: a table that fails the audit is never staged."""
    if upload.status == "rejected":
        raise HubError("this upload has blocking problems: fix them and upload again before a preview")
    if upload.status == "published":
        raise HubError(f"this upload is published already ({upload.package} {upload.version})")
    org = store.org(upload.org)
    assert org is not None
    staging = layout.staging(upload.org, upload.id)
    if staging.exists():
        shutil.rmtree(staging)  # a new preview replaces an unpublished one; nothing public changes
    folder = layout.upload_dir(upload.org, upload.id) / "files"
    now = datetime.now(UTC).replace(microsecond=0)
    reason = f"community contribution uploaded to the hub by {org.title}"
    if upload.corrects is not None:
        query = store.query(upload.corrects)
        reason = f"{reason}: a correction in response to query #{upload.corrects} ({query.figure if query else ''})"
    try:
        summary = cut_release(
            org_spec(layout, org, upload.input_kind),
            [folder / f for f in upload.files],
            layout.public,
            staging=staging,
            release_time=now,
            now=now,
            unscheduled=True,
            reason=reason,
        )
    except OpenDataError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        store.log(actor, upload.org, "preview-refused", upload.id, str(exc))
        raise HubError(f"the preview was refused: {exc}") from None
    store.set_status(upload.id, "previewed", summary.name, summary.version)
    store.log(actor, upload.org, "preview", upload.id, f"{summary.name} {summary.version}")
    return summary.path


def preview_dir(layout: Layout, upload: Upload) -> Path | None:
    """The staged version of a previewed upload (private to its organisation)."""
    if upload.status != "previewed" or not upload.package or not upload.version:
        return None
    path = layout.staging(upload.org, upload.id) / upload.package / upload.version
    return path if path.is_dir() else None


def publish_upload(layout: Layout, store: Store, upload: Upload, actor: str) -> Path:
    """Make a previewed upload public: moved into the hub's tree, signed, listed in the signed catalogue."""
    staged = preview_dir(layout, upload)
    if staged is None:
        raise HubError("preview this upload first: only what you have seen is published")
    target = layout.public / upload.package / upload.version
    if target.exists():
        raise HubError(
            f"{upload.package} {upload.version} was published meanwhile from another upload; preview this one "
            "again to make it the next version"
        )
    staging = layout.staging(upload.org, upload.id)
    publish(staging, layout.public, datetime.now(UTC), signer=hub_key(layout))
    store.set_status(upload.id, "published")
    store.log(actor, upload.org, "publish", upload.id, f"{upload.package} {upload.version}")
    if upload.corrects is not None:
        store.corrected(upload.corrects, upload.version)
    return target


def hub_key(layout: Layout) -> SigningKey:
    return load_private_key(layout.key)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def published(layout: Layout) -> list[dict]:
    """The hub's public catalogue entries (empty before the first publication)."""
    path = layout.public / "catalog.json"
    if not path.is_file():
        return []
    return json.loads(path.read_text(encoding="utf-8")).get("packages", [])
