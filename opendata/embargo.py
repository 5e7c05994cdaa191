"""Embargo: cut releases wait in a staging area outside the public tree until their release time.

``release`` writes into ``staging/<name>/<version>/``; ``publish`` moves every staged version whose
release time has come into the public tree (one ``rename`` each, so a version appears whole or
not at all), appends the changelog and regenerates the catalogue. Nothing staged is reachable from
the public tree, its catalogue or a mirror before then. Named people may see a staged release at
most 24 hours early (UKSA Code of Practice); every request is logged beside it.

Publishing is safe against crashes and races. One publisher works on a tree at a time (an
exclusive ``flock`` on ``<tree>/.publish.lock``; the kernel releases it when a process dies, so a
killed publisher never leaves the tree locked). Every step can be re-run: the moment a version
becomes public is written into its staged descriptor before the move, a move interrupted after its
copy is finished by the next run, and every run gives each public version its changelog entry if
a crash left it without one, then rebuilds the catalogue. So a re-run after a crash at any point
finishes what the first run started.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from opendata import tree
from opendata.calendar import Calendar, cutoff_for
from opendata.changelog import append_changelog, changelog_entry, changelog_versions
from opendata.content import PackageContent
from opendata.descriptor import DESCRIPTOR_FILE, README_FILE, PackageInfo, parse_time, rfc3339
from opendata.diff import diff
from opendata.errors import OpenDataError, ReleaseError, ReleaseExists
from opendata.package import retimed_readme, write_views
from opendata.schedule import release_timing, retimed
from opendata.signing import write_atomic
from opendata.versions import semver_key

PRE_RELEASE_WINDOW = timedelta(hours=24)
LOCK_FILE = ".publish.lock"  # a dot-file: never served, synced or catalogued
LOCK_WAIT = 120.0  # seconds a second publisher waits for the first before giving up


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


OWNER_FILE = ".public-tree"  # in a staging area: the public tree its releases are for


def keep_apart(staging: Path, public: Path) -> None:
    """Refuse a staging area inside the public tree, or a public tree inside staging (symlinks
    resolved): anything a host serves from the tree would include the embargoed versions. Refuse
    too a staging area that holds releases for another tree (``OWNER_FILE``): the default staging
    area, beside the tree, is shared by every tree in that directory, and publishing it into the
    wrong one would publish releases meant for the other."""
    s, p = Path(staging).resolve(), Path(public).resolve()
    if s == p or s.is_relative_to(p) or p.is_relative_to(s):
        raise StagingExposed(
            f"staging area {staging} and public tree {public} overlap: a host serving {public} would publish "
            "embargoed releases; put the staging area beside the public tree (the default), never inside it"
        )
    owner = s / OWNER_FILE
    if owner.is_file() and owner.read_text(encoding="utf-8").strip() != str(p):
        raise StagingExposed(
            f"staging area {staging} holds releases for the public tree {owner.read_text(encoding='utf-8').strip()}, "
            f"not {public}: give {public} its own staging area with --staging (the default, staging/ beside a tree, "
            f"is shared by every tree in that directory; if the tree itself moved, delete {owner})"
        )


def claim(staging: Path, public: Path) -> None:
    """Record which public tree a staging area's releases are for (see ``keep_apart``)."""
    owner = Path(staging) / OWNER_FILE
    if not owner.is_file():
        Path(staging).mkdir(parents=True, exist_ok=True)
        owner.write_text(str(Path(public).resolve()) + "\n", encoding="utf-8")


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return now.astimezone(UTC)


def read_staged(path: Path) -> StagedRelease:
    try:
        info = PackageInfo.read(path)
        when = info.release_at
        release = info.descriptor.get("opendata:release")
        access = tuple(release.get("pre_release_access", [])) if isinstance(release, dict) else ()
    except (OSError, UnicodeDecodeError, ReleaseError, TypeError) as exc:
        raise ReleaseError(
            f"staged release {path} is unreadable ({exc}); it needs a datapackage.json with name, version "
            "and created (its release time), as `opendata release` writes it. Nothing was published."
        ) from None
    return StagedRelease(info.name, info.version, path, when, access)


def staged_releases(staging: Path) -> list[StagedRelease]:
    """Every staged version, by release time then name and version."""
    staging = Path(staging)
    if not staging.is_dir():
        return []
    found = [read_staged(staging / name / v) for name in tree.packages(staging) for v in tree.versions(staging / name)]
    return sorted(found, key=lambda s: (s.release_at, s.name, semver_key(s.version)))


class PublishBusy(ReleaseError):
    """Another ``publish`` holds the tree's lock (and kept it past ``LOCK_WAIT``)."""


@contextmanager
def publish_lock(public: Path, wait: float = LOCK_WAIT) -> Iterator[None]:
    """Hold the tree's publish lock: waits up to ``wait`` seconds for another publisher to finish.

    ``flock`` locks belong to the open file, and the kernel drops them when the holder exits or is
    killed, so a stale lock file never blocks anyone (its content, the holder's pid, is only for
    the message)."""
    public = Path(public)
    public.mkdir(parents=True, exist_ok=True)
    fd = os.open(public / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
                    raise PublishBusy(
                        f"another `opendata publish` (pid {holder}) is publishing into {public} and did not finish "
                        f"within {wait:g} s; nothing was done. Run publish again when it has finished."
                    ) from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def _move(source: Path, target: Path) -> None:
    """Rename into place; across file systems copy to a hidden temp dir beside the target first
    (a copy left by a killed run is discarded and made again)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(source, target)
    except OSError:
        temp = target.parent / f".tmp-{target.name}-publish"
        shutil.rmtree(temp, ignore_errors=True)
        shutil.copytree(source, temp)
        os.rename(temp, target)
        shutil.rmtree(source)


def _same_package(a: Path, b: Path) -> bool:
    """Whether two version directories hold the same descriptor: a move that copied across file
    systems and was killed before removing its source leaves both."""
    try:
        return (a / DESCRIPTOR_FILE).read_bytes() == (b / DESCRIPTOR_FILE).read_bytes()
    except OSError:
        return False


def _stamp_published(staged: StagedRelease, now: datetime) -> None:
    """Record in the staged descriptor the moment the version becomes public (atomically, before the
    move; diffs ignore ``opendata:release``, so the content is unchanged)."""
    path = staged.path / DESCRIPTOR_FILE
    descriptor = json.loads(path.read_text(encoding="utf-8"))
    descriptor["opendata:release"]["published"] = rfc3339(now)
    _write_descriptor(path, descriptor)


def _write_descriptor(path: Path, descriptor: dict) -> None:
    """A staged descriptor rewritten in place, atomically, in the spelling ``write_package`` uses."""
    text = json.dumps(descriptor, indent=2, ensure_ascii=False, default=rfc3339) + "\n"
    write_atomic(path, text.encode("utf-8"))


def _release(version_dir: Path) -> dict:
    release = json.loads((Path(version_dir) / DESCRIPTOR_FILE).read_text(encoding="utf-8")).get("opendata:release")
    return release if isinstance(release, dict) else {}


def _notes(version_dir: Path) -> list[str]:
    """What the release says about its timing and reason, for the changelog."""
    notes = _release(version_dir).get("notes")
    return [str(n) for n in notes] if isinstance(notes, list) else []


def published_at(version_dir: Path) -> datetime:
    """When a public version became public: ``opendata:release.published``, else its release time."""
    published = _release(version_dir).get("published")
    return parse_time(published, "publication time") if published else PackageInfo.read(version_dir).release_at


def public_versions(public: Path, name: str) -> list[str]:
    """Version numbers of one series in the public tree, oldest first."""
    return tree.versions(Path(public) / name)


def _diff(previous: Path | None, current: Path):
    return diff(PackageContent.from_path(previous), PackageContent.from_path(current)) if previous else None


def repair_changelogs(public: Path) -> list[str]:
    """Give every public version without a changelog entry its entry ("name version" returned).

    A publisher killed between the move and the changelog append leaves such a version; the
    entry is made from the same diff the first run would have used (against the version before)."""
    repaired = []
    for series in (Path(public) / name for name in tree.packages(public)):
        versions = public_versions(public, series.name)
        logged = changelog_versions(series)
        for i, version in enumerate(versions):
            if version in logged:
                continue
            previous = series / versions[i - 1] if i else None
            current = series / version
            change = _diff(previous, current)
            entry = changelog_entry(
                series.name,
                version,
                previous.name if previous else None,
                change,
                published_at(current),
                _notes(current),
            )
            append_changelog(series, entry)
            repaired.append(f"{series.name} {version}")
    return repaired


def latest_public(public: Path, name: str, before: str | None = None) -> Path | None:
    versions = public_versions(public, name)
    if before is not None:
        versions = [v for v in versions if semver_key(v) < semver_key(before)]
    return Path(public) / name / versions[-1] if versions else None


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
    found = staged_releases(staging)  # a corrupt staged release stops everything before any change
    due = [s for s in found if s.release_at <= now]
    if dry_run or not (due or Path(public).is_dir()):
        summary.published, summary.waiting = (due if dry_run else []), [s for s in found if s not in due]
        return summary
    with publish_lock(public):
        claim(staging, public)
        for staged in staged_releases(staging):
            if staged.release_at > now:
                summary.waiting.append(staged)
                continue
            target = Path(public) / staged.name / staged.version
            if target.exists():
                if not _same_package(staged.path, target):
                    raise ReleaseExists(
                        f"{target} is already published; staged {staged.path} would overwrite it (published "
                        "versions are never overwritten)"
                    )
                shutil.rmtree(staged.path)  # a move killed after its copy: finish it
                continue
            summary.published.append(staged)
            previous = latest_public(public, staged.name, before=staged.version)
            change = _diff(previous, staged.path)
            _stamp_published(staged, now)
            _move(staged.path, target)
            entry = changelog_entry(
                staged.name, staged.version, previous.name if previous else None, change, now, _notes(target)
            )
            append_changelog(Path(public) / staged.name, entry)
        repair_changelogs(public)
        files = write_catalog(Path(public), base_url=base_url, signer=signer, now=now)
        summary.catalog_written = [str(p) for p in files.written]
    return summary


class StagingError(ReleaseError):
    """An unstage or reschedule that would break a rule (already public, not the latest, cut-off moves)."""


def staging_log(staging: Path, name: str, version: str) -> Path:
    """Every unstage and reschedule of a staged version, one JSON object per line, beside it."""
    return Path(staging) / name / f"{version}.staging-log.jsonl"


def _log(path: Path, entry: dict) -> None:
    """Append one JSON line to a log beside a staged release, on disk before returning."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as log:
        log.write(json.dumps(entry, ensure_ascii=False) + "\n")
        log.flush()
        os.fsync(log.fileno())


def _staged(staging: Path, public: Path | None, name: str, version: str) -> StagedRelease:
    if public is not None:
        keep_apart(staging, public)
        if (Path(public) / name / version / DESCRIPTOR_FILE).is_file():
            raise StagingError(
                f"{name} {version} is already public; a published version is never withdrawn or moved "
                "(publish a correction instead)"
            )
    path = Path(staging) / name / version
    if not (path / DESCRIPTOR_FILE).is_file():
        raise StagingError(f"no staged release {name} {version} in {staging}")
    return read_staged(path)


def _reason(reason: str | None) -> str:
    text = " ".join((reason or "").split())
    if not text:
        raise StagingError('a reason is required (--reason "…"); it is logged beside the release')
    return text


def unstage(staging: Path, name: str, version: str, reason: str, now: datetime, public: Path | None = None) -> Path:
    """Withdraw a staged (not yet public) version: it moves to ``staging/<name>/.withdrawn/`` (kept
    for the record, never published) and the withdrawal is logged. Only the latest staged version
    of a series may go: a later one was versioned and diffed against it."""
    now, reason = _aware(now), _reason(reason)
    staged = _staged(staging, public, name, version)
    later = [
        s.version for s in staged_releases(staging) if s.name == name and semver_key(s.version) > semver_key(version)
    ]
    if later:
        raise StagingError(f"{name} {', '.join(later)} is staged after {version} and builds on it: unstage it first")
    keep = Path(staging) / name / ".withdrawn" / f"{version}-{now:%Y%m%dT%H%M%SZ}"
    keep.parent.mkdir(parents=True, exist_ok=True)
    os.rename(staged.path, keep)
    _log(
        staging_log(staging, name, version),
        {"time": rfc3339(now), "action": "unstage", "reason": reason, "kept": str(keep)},
    )
    return keep


def reschedule(
    staging: Path,
    name: str,
    version: str,
    to: datetime,
    reason: str,
    now: datetime,
    *,
    calendar: Calendar | None = None,
    unscheduled: bool = False,
    public: Path | None = None,
) -> StagedRelease:
    """Move a staged version's release time. The new time follows the release rules (a calendar
    entry, else ``unscheduled``; never in the past) and must keep the package's cut-off: a release
    whose data would be cut differently at the new time is cut again instead. The descriptor and
    the README's Release section are rewritten to match; the move is logged."""
    now, reason = _aware(now), _reason(reason)
    staged = _staged(staging, public, name, version)
    path = staged.path / DESCRIPTOR_FILE
    descriptor = json.loads(path.read_text(encoding="utf-8"))
    info = descriptor["opendata:release"]
    timing = release_timing(name, calendar, to, now, unscheduled=unscheduled, reason=reason)
    covers = (info.get("cutoff") or {}).get("covers")
    if covers is not None:
        cut = cutoff_for(calendar, name, timing.when) if calendar is not None else None
        if cut is None or cut.covers.isoformat() != covers:
            at = (
                "no --calendar to check it against"
                if calendar is None
                else f"it would be {cut.covers if cut else 'none'}"
            )
            raise StagingError(
                f"{name} {version} holds data up to {covers}, the cut-off at its release time; at "
                f"{timing.when:%Y-%m-%dT%H:%M}Z {at}. Cut the release again for the new time instead."
            )
    old_created = descriptor["created"]
    descriptor["opendata:release"] = retimed(info, name, timing, calendar)
    descriptor["created"] = rfc3339(timing.when)
    readme = staged.path / README_FILE
    text = retimed_readme(readme.read_text(encoding="utf-8"), old_created, descriptor)
    write_atomic(readme, text.encode("utf-8"))
    descriptor["resources"] = write_views(staged.path, descriptor)  # spreadsheets and page show the time
    _write_descriptor(path, descriptor)  # last: the descriptor is what publish reads
    entry = {
        "time": rfc3339(now),
        "action": "reschedule",
        "from": rfc3339(staged.release_at),
        "to": rfc3339(timing.when),
    }
    _log(staging_log(staging, name, version), entry | {"reason": reason})
    return read_staged(staged.path)


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
    if not (path / DESCRIPTOR_FILE).is_file():
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
    _log(access_log(staged), {"time": rfc3339(now), "who": who, "granted": not refusal, "reason": refusal})
    if refusal:
        raise AccessRefused(refusal)
    return path
