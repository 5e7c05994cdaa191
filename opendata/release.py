"""Cutting a release: spec → ingest and validate → aggregate → protect → package.

One library call (``cut_release``) does the whole job; the CLI only parses arguments and prints
the summary. Nothing is written unless every step succeeds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from opendata.aggregate import aggregate
from opendata.errors import ReleaseError, ReleaseExists
from opendata.package import write_package
from opendata.protection import protect_tables
from opendata.spec import ReleaseSpec, load_spec
from opendata.validate import validate

SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


@dataclass
class ReleaseSummary:
    """What a release did, for the statistician's summary table and for tests."""

    name: str
    version: str
    path: Path
    rows_read: int
    files: list[str]
    tables: list[dict] = field(default_factory=list)

    @property
    def totals(self) -> dict[str, int]:
        keys = ("cells", "primary", "secondary", "rounded")
        return {k: sum(t[k] for t in self.tables) for k in keys}


def published_versions(out_root: Path, name: str) -> list[str]:
    """Versions already in the release tree, oldest first."""
    series = out_root / name
    if not series.is_dir():
        return []
    found = [p.name for p in series.iterdir() if p.is_dir() and SEMVER.match(p.name)]
    return sorted(found, key=lambda v: tuple(int(x) for x in v.split(".")))


def choose_version(out_root: Path, name: str, requested: str | None) -> str:
    """1.0.0 for a first release; otherwise the version asked for, which must be new and higher."""
    existing = published_versions(out_root, name)
    if requested is not None and not SEMVER.match(requested):
        raise ReleaseError(f"--version {requested!r} is not a semantic version such as 1.2.0")
    if not existing:
        return requested or "1.0.0"
    if requested is None:
        raise ReleaseError(
            f"{out_root / name} already holds version(s) {', '.join(existing)}; "
            "pass --version with the next version (automatic versioning from the diff is not built yet)"
        )
    if requested in existing:
        raise ReleaseExists(
            f"version {requested} of {name} is already published in {out_root / name}; "
            "published versions are never overwritten"
        )
    latest = existing[-1]
    if tuple(map(int, requested.split("."))) <= tuple(map(int, latest.split("."))):
        raise ReleaseError(f"--version {requested} is not higher than the latest published version {latest}")
    return requested


def cut_release(
    spec: ReleaseSpec | str | Path,
    inputs: Sequence[str | Path],
    out_root: str | Path = "releases",
    *,
    version: str | None = None,
    release_time: datetime | None = None,
    on_step: Callable[[str], None] | None = None,
) -> ReleaseSummary:
    """Validate, aggregate, protect and package MI as a new immutable version."""
    step = on_step or (lambda _: None)
    spec = spec if isinstance(spec, ReleaseSpec) else load_spec(spec)
    out_root = Path(out_root)
    version = choose_version(out_root, spec.name, version)
    created = (release_time or datetime.now(UTC)).astimezone(UTC)

    step("reading and validating MI")
    report = validate(spec, [Path(p) for p in inputs])
    report.raise_for_problems()
    step("aggregating")
    tables = aggregate(spec, report.table)
    protected = protect_tables(tables, spec.disclosure, on_step=step)
    step("writing package")
    path = write_package(spec, protected, out_root, version, created)
    summary = ReleaseSummary(spec.name, version, path, report.table.num_rows, [str(p) for p in inputs])
    for t in protected:
        for measure, counts in t.sdc.items():
            summary.tables.append({"table": t.spec.name, "measure": measure, **counts})
    return summary
