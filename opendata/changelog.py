"""The human record of a release series: ``releases/<name>/CHANGELOG.md``, newest version first.

Each entry is generated from the diff against the previous version, so the changelog says what a
consumer must know (new months, corrected values, newly suppressed cells, breaking schema changes)
and the version number and the text can never disagree.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from opendata.descriptor import CHANGELOG_FILE, markdown_text, rfc3339
from opendata.versions import SEMVER, semver_key

if TYPE_CHECKING:  # the diff's types only: importing diff would load pandas for every host-side command
    from opendata.diff import PackageDiff, ResourceDiff

MAX_LISTED = 5
HEADING = re.compile(r"^## \[([^\]]+)\]", re.MULTILINE)
BUMP_TEXT = {
    "major": "Major release: the structure changed in a way that can break existing code.",
    "minor": "Minor release: new data or new resources; existing code keeps working.",
    "patch": "Patch release: corrections and metadata only.",
}


def changelog_entry(
    name: str,
    version: str,
    previous: str | None,
    d: PackageDiff | None,
    published: datetime,
    notes: Sequence[str] = (),
) -> str:
    """A Markdown section for one version; ``previous``/``d`` are None for the first release of a series.

    ``published`` is the moment it became public; ``notes`` what the release says about its timing
    and reason (``opendata:release.notes``: non-standard, late, why)."""
    lines = [f"## [{version}] - {rfc3339(published)[:10]}", ""]
    said = [markdown_text(n) for n in notes]
    if previous is None or d is None:
        lines += [" ".join([f"First release of `{name}`, published {rfc3339(published)}.", *said]), ""]
        return "\n".join(lines)
    level = d.bump
    lines.append(f"{BUMP_TEXT[level] if level else 'No changes to the data.'} Previous version: {previous}.")
    lines.append(" ".join([f"Published {rfc3339(published)}.", *said]))
    bullets = [f"- Package metadata: {c.describe()}." for c in d.metadata]
    for r in d.changed:
        bullets += [f"- {line}" for line in _resource_lines(r)]
    if bullets:
        lines += ["", *bullets]
    lines += ["", f"Every changed cell: `opendata diff {name}@{previous} {name}@{version}`.", ""]
    return "\n".join(lines)


def _resource_lines(r: ResourceDiff) -> list[str]:
    """What changed in one resource, worst first, each line short enough to scan."""
    name = f"`{r.name}`"
    if r.change == "added":
        return [f"New resource {name} ({r.rows} rows)."]
    if r.change == "removed":
        return [f"Resource {name} removed (**breaking**)."]
    out = [f"{name}: {c.describe()}{' (**breaking**)' if c.bump == 'major' else ''}." for c in r.schema]
    if not r.rows_compared:
        out.append(f"{name}: primary key changed, rows not compared (**breaking**).")
    if r.rows_removed:
        out.append(
            f"{name}: {_n(len(r.rows_removed), 'published row')} removed{_codes(r.removed_codes)} (**breaking**)."
        )
    if r.rows_added:
        out.append(f"{name}: {_n(len(r.rows_added), 'row')} added{_codes(r.new_codes)}.")
    moved = [v for v in r.values if v.new_data]
    if moved:
        out.append(
            f"{name}: {_n(len(moved), 'total or subtotal', 'totals and subtotals')} updated to include the new rows."
        )
    if r.corrections:
        shown = "; ".join(v.describe(r.key) for v in r.corrections[:MAX_LISTED])
        more = f" and {len(r.corrections) - MAX_LISTED} more" if len(r.corrections) > MAX_LISTED else ""
        out.append(f"{name}: {_n(len(r.corrections), 'value')} corrected ({shown}{more}).")
    hidden = sum(1 for s in r.statuses if s.new_status and not s.old_status)
    shown_again = sum(1 for s in r.statuses if s.old_status and not s.new_status)
    if hidden:
        out.append(f"{name}: {_n(hidden, 'previously published cell')} now suppressed `[c]`.")
    if shown_again:
        out.append(f"{name}: {_n(shown_again, 'previously suppressed cell')} now published.")
    out += [f"{name}: {c.describe()}." for c in r.metadata]
    return out


def _n(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else many or one + 's'}"


def _codes(codes: dict[str, list[str]]) -> str:
    parts = []
    for dim, values in codes.items():
        more = f" and {len(values) - MAX_LISTED} more" if len(values) > MAX_LISTED else ""
        parts.append(f"{dim} {', '.join(values[:MAX_LISTED])}{more}")
    return f" ({'; '.join(parts)})" if parts else ""


def append_changelog(series_dir: str | Path, entry: str) -> Path:
    """Put ``entry`` at the top of ``series_dir/CHANGELOG.md``, atomically (temp file + os.replace).

    An existing section for the same version is replaced, so re-running a release after a crash
    leaves one entry per version rather than two; sections stay newest version first, so an entry
    repaired after a crash lands where it belongs.
    """
    series_dir = Path(series_dir)
    series_dir.mkdir(parents=True, exist_ok=True)
    path = series_dir / CHANGELOG_FILE
    match = HEADING.search(entry)
    if not match:
        raise ValueError("a changelog entry starts with a '## [VERSION]' heading")
    version = match[1]
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    first = HEADING.search(text)
    header = text[: first.start()] if first else text
    if not header.strip():
        header = f"# Changelog: {series_dir.name}\n\nEvery published version, newest first.\n\n"
    sections = _sections(text[first.start() :]) if first else []
    kept = [s for s in sections if HEADING.match(s)[1] != version]  # type: ignore[index]
    ordered = sorted([entry, *kept], key=_section_key, reverse=True)
    body = [s.rstrip("\n") + "\n" for s in ordered]
    _atomic_write(path, header.rstrip("\n") + "\n\n" + "\n".join(body))
    return path


def changelog_versions(series_dir: str | Path) -> set[str]:
    """The versions ``series_dir/CHANGELOG.md`` has an entry for."""
    path = Path(series_dir) / CHANGELOG_FILE
    return set(HEADING.findall(path.read_text(encoding="utf-8"))) if path.is_file() else set()


def _section_key(section: str) -> tuple:
    version = HEADING.match(section)[1]  # type: ignore[index]
    return (1, semver_key(version)) if SEMVER.match(version) else (0, ())  # a hand-made heading sorts last


def _sections(text: str) -> list[str]:
    starts = [m.start() for m in HEADING.finditer(text)]
    return [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
