"""Embargo: cut releases wait in a staging area outside the public tree until their release time.

``release`` writes into ``staging/<name>/<version>/``; ``publish`` moves every staged version whose
release time has come into the public tree (one ``rename`` each, so a version appears whole or
not at all), appends the changelog and regenerates the catalogue. Nothing staged is reachable from
the public tree, its catalogue or a mirror before then. Named people may see a staged release at
most 24 hours early (UKSA Code of Practice); every request is logged beside it.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from opendata.changelog import append_changelog, changelog_entry
from opendata.diff import PackageContent, diff
from opendata.errors import OpenDataError, ReleaseError, ReleaseExists

PRE_RELEASE_WINDOW = timedelta(hours=24)


class AccessRefused(OpenDataError):
    """Pre-release access outside the rules: not named, too early, or after release."""


@dataclass(frozen=True)
class StagedRelease:
    name: str
    version: str
    path: Path
    release_at: datetime  # UTC
    pre_release_access: tuple[str, ...] = ()


@dataclass
class PublishSummary:
    published: list[StagedRelease] = field(default_factory=list)
    waiting: list[StagedRelease] = field(default_factory=list)
    catalog_written: list[str] = field(default_factory=list)


def default_staging(public: Path) -> Path:
    """Staging sits beside the public tree, never inside it, so no static host can serve it."""
    return Path(public).resolve().parent / "staging"


class StagingExposed(ReleaseError):
    """The staging area lies inside the public tree (or the other way round): a static host would
    serve embargoed releases."""


def keep_apart(staging: Path, public: Path) -> None:
    """Refuse a staging area inside the public tree, or a public tree inside staging (symlinks
    resolved): anything a host serves from the tree would include the embargoed versions."""
    s, p = Path(staging).resolve(), Path(public).resolve()
    if s == p or s.is_relative_to(p) or p.is_relative_to(s):
        raise StagingExposed(
            f"staging area {staging} and public tree {public} overlap: a host serving {public} would publish "
            "embargoed releases; put the staging area beside the public tree (the default), never inside it"
        )


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return now.astimezone(UTC)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split("."))


def read_staged(path: Path) -> StagedRelease:
    try:
        descriptor = json.loads((path / "datapackage.json").read_text(encoding="utf-8"))
        release = descriptor.get("opendata:release") or {}
        when = datetime.fromisoformat(release["time"].replace("Z", "+00:00"))
        name, version = descriptor["name"], descriptor["version"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, AttributeError, TypeError) as exc:
        raise ReleaseError(
            f"staged release {path} is unreadable ({type(exc).__name__}: {exc}); it needs a datapackage.json with "
            "name, version and opendata:release.time, as `opendata release` writes it. Nothing was published."
        ) from None
    if when.tzinfo is None:
        raise ReleaseError(f"staged release {path} has a release time without a UTC offset; nothing was published")
    return StagedRelease(
        name,
        version,
        path,
        when.astimezone(UTC),
        tuple(release.get("pre_release_access", [])),
    )


def staged_releases(staging: Path) -> list[StagedRelease]:
    """Every staged version, by release time then name and version."""
    staging = Path(staging)
    if not staging.is_dir():
        return []
    found = [
        read_staged(v)
        for series in sorted(staging.iterdir())
        if series.is_dir() and not series.name.startswith(".")
        for v in sorted(series.iterdir())
        if v.is_dir() and not v.name.startswith(".") and (v / "datapackage.json").is_file()
    ]
    return sorted(found, key=lambda s: (s.release_at, s.name, _version_key(s.version)))


def _move(source: Path, target: Path) -> None:
    """Rename into place; across file systems copy to a hidden temp dir beside the target first."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(source, target)
    except OSError:
        temp = target.parent / f".tmp-{target.name}-publish"
        shutil.rmtree(temp, ignore_errors=True)
        shutil.copytree(source, temp)
        os.rename(temp, target)
        shutil.rmtree(source)


def latest_public(public: Path, name: str, before: str | None = None) -> Path | None:
    series = Path(public) / name
    if not series.is_dir():
        return None
    versions = [
        p.name
        for p in series.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / "datapackage.json").is_file()
    ]
    if before is not None:
        versions = [v for v in versions if _version_key(v) < _version_key(before)]
    return series / max(versions, key=_version_key) if versions else None


def publish(
    staging: Path,
    public: Path,
    now: datetime,
    *,
    signer=None,
    base_url: str | None = None,
    dry_run: bool = False,
) -> PublishSummary:
    """Move every staged release whose time has come into the public tree, then rebuild the catalogue.

    ``now`` is the real clock in production; tests inject it. A dry run only reports.
    """
    from opendata.catalog import write_catalog

    now = _aware(now)
    keep_apart(staging, public)
    summary = PublishSummary()
    for staged in staged_releases(staging):
        if staged.release_at > now:
            summary.waiting.append(staged)
            continue
        target = Path(public) / staged.name / staged.version
        if target.exists():
            raise ReleaseExists(
                f"{target} is already published; staged {staged.path} would overwrite it (published versions are "
                "never overwritten)"
            )
        summary.published.append(staged)
        if dry_run:
            continue
        previous = latest_public(public, staged.name, before=staged.version)
        change = diff(PackageContent.from_path(previous), PackageContent.from_path(staged.path)) if previous else None
        _move(staged.path, target)
        entry = changelog_entry(
            staged.name, staged.version, previous.name if previous else None, change, staged.release_at
        )
        append_changelog(Path(public) / staged.name, entry)
    if not dry_run and Path(public).is_dir():
        files = write_catalog(Path(public), base_url=base_url, signer=signer, now=now)
        summary.catalog_written = [str(p) for p in files.written]
    return summary


def access_log(staged: StagedRelease) -> Path:
    return staged.path.parent / f"{staged.version}.access-log.jsonl"


def grant_pre_release_access(
    staging: Path, name: str, version: str, who: str, now: datetime, public: Path | None = None
) -> Path:
    """Open a staged release to a named person, at most 24 hours before release; log every request."""
    now = _aware(now)
    if public is not None:
        keep_apart(staging, public)
    path = Path(staging) / name / version
    if not (path / "datapackage.json").is_file():
        raise AccessRefused(f"no staged release {name} {version} in {staging}")
    staged = read_staged(path)
    opens = staged.release_at - PRE_RELEASE_WINDOW
    if who not in staged.pre_release_access:
        named = ", ".join(staged.pre_release_access) or "nobody"
        refusal = f"{who!r} is not named for pre-release access to {name} {version} (named: {named})"
    elif now < opens:
        refusal = f"pre-release access to {name} {version} opens at {opens:%Y-%m-%dT%H:%M}Z, 24 hours before release"
    elif now >= staged.release_at:
        refusal = f"{name} {version} was due for release at {staged.release_at:%Y-%m-%dT%H:%M}Z; publish it instead"
    else:
        refusal = ""
    entry = {"time": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "who": who, "granted": not refusal, "reason": refusal}
    with access_log(staged).open("a", encoding="utf-8") as log:
        log.write(json.dumps(entry) + "\n")
        log.flush()
        os.fsync(log.fileno())
    if refusal:
        raise AccessRefused(refusal)
    return path
