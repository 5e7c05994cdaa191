"""Cutting a release: spec → ingest and validate → aggregate → protect → package (staged).

One library call (``cut_release``) does the whole job; the CLI only parses arguments and prints
the summary. Nothing is written unless every step succeeds, and what is written goes to the
staging area with its release time: ``opendata.embargo.publish`` makes it public when that time
comes. The version is worked out from the difference with the latest published or staged version.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from opendata import tree
from opendata.aggregate import MI_AHEAD, MONTHS_PROPERTY, aggregate, held_back, mi_ahead_tables
from opendata.audit import PackageAudit, audit_package
from opendata.calendar import Calendar, cutoff_for, load_calendar, until_month
from opendata.content import PackageContent
from opendata.diff import check_version, diff, next_version
from opendata.embargo import claim, default_staging, keep_apart, latest_public
from opendata.errors import ReleaseError, ReleaseExists
from opendata.package import write_package
from opendata.parallel import connect
from opendata.protection import EarlierTable, ProtectedTable, population_keys, protect_tables
from opendata.relations import spec_relations
from opendata.schedule import release_info, release_timing
from opendata.spec import ReleaseSpec, load_spec
from opendata.validate import validate
from opendata.versions import semver_key

RELEASE_VERSION = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")  # no pre-release or build part
# Rounds after the first in which the cells the public audit narrowed are held to the protection width
# and the release protected again (a count, never a clock, so the same release on every machine).
PUBLIC_AUDIT_ROUNDS = 3


@dataclass
class ReleaseSummary:
    """What a release did, for the statistician's summary table and for tests."""

    name: str
    version: str
    path: Path
    release_at: datetime
    rows_read: int
    files: list[str]
    tables: list[dict] = field(default_factory=list)
    cutoff: str | None = None
    held_back: dict[str, dict[str, int]] = field(default_factory=dict)
    bump: str | None = None
    dry_run: bool = False  # everything was done but writing: ``path`` is where it would be staged
    public_audit: PackageAudit | None = None  # the third party's audit of the written files (not on a dry run)

    @property
    def totals(self) -> dict[str, int]:
        keys = ("cells", "primary", "secondary", "rounded")
        return {k: sum(t[k] for t in self.tables) for k in keys}


def _latest(series_roots: Sequence[Path], name: str) -> Path | None:
    found = [p for p in (latest_public(root, name) for root in series_roots) if p is not None]
    return max(found, key=lambda p: semver_key(p.name)) if found else None


def _earlier_tables(series_roots: Sequence[Path], name: str) -> list[EarlierTable]:
    """Every table every earlier version of the series published (public tree and staging area)."""
    out = []
    for root in series_roots:
        series = Path(root) / name
        for version in tree.versions(series):
            content = PackageContent.from_path(series / version)
            for r in content.resources.values():
                months = next((f[MONTHS_PROPERTY] for f in r.fields if MONTHS_PROPERTY in f), None)
                out.append(EarlierTable(version, r.name, r.rows, months))
    return out


def _public_audit(staged: Path, on_step: Callable[[str], None]) -> PackageAudit:
    """The last gate before a version is moved into place: the audit a host or researcher runs
    (``opendata audit VERSION`` without the MI) over the written files. The release's own audit
    knew the primaries; this one holds every hidden cell to the protection width unless the
    published rules show it was never primary, so a version that passes here is one anyone can
    check; where it fails, ``cut_release`` holds the cells it narrowed and protects again
    (``PUBLIC_AUDIT_ROUNDS``). Earlier versions are not in it: across versions a reader without the MI flags hidden
    cells that two versions' totals give to within their rounding (not primaries, which the
    release's linked audit checked), and a correction contradicts the version it corrects (README,
    "Not built yet")."""
    on_step("public audit (no MI)")
    report = audit_package(staged)
    if not report.ok:
        raise PublicAuditFailed(report)
    return report


class PublicAuditFailed(ReleaseError):
    """The public audit narrows cells of the written files; carries its report so the release can
    hold those cells in another round (``cut_release``) before it gives up."""

    def __init__(self, report: PackageAudit):
        self.report = report
        shown = [e.describe() for e in report.exposed[:20]] + report.derived[:20]
        super().__init__(
            "the public audit (what a third party can check without the MI) fails on this release, so "
            "nothing is published:\n" + "\n".join(f"  {line}" for line in shown)
        )


def narrowed_keys(protected: Sequence[ProtectedTable], report: PackageAudit) -> dict[str, set[str]]:
    """Per measure, the population keys of the hidden cells the outsider's public audit narrowed
    (``Exposure``: table, measure and the cell's codes), to hold in the next round."""
    out: dict[str, set[str]] = {}
    by_name = {t.spec.name: t for t in protected}
    for e in report.exposed:
        t = by_name.get(e.table)
        if t is None or e.by:
            continue
        hit = np.ones(len(t.frame), dtype=bool)
        for dim, code in e.cell.items():
            hit &= t.frame[dim].astype(str).to_numpy() == str(code)
        out.setdefault(e.measure, set()).update(population_keys(t.dimensions, t.frame[hit]))
    return out


def _version(
    spec: ReleaseSpec,
    protected: list[ProtectedTable],
    extra: dict[str, Any],
    public: Path,
    staging: Path,
    version: str | None,
    step: Callable[[str], None],
) -> tuple[str, Any]:
    """The version this release earns against the latest one (or ``version``, checked), with its
    revisions marked in ``protected`` and ``extra``: (chosen, the change or None for a first version)."""
    step("working out the version")
    if version is not None:
        _refuse_existing(public, staging, spec.name, version)
    previous = _latest([public, staging], spec.name)
    change = None
    if previous is None:
        chosen = version or "1.0.0"
    else:
        change = diff(PackageContent.from_path(previous), PackageContent.from_tables(spec, protected, extra=extra))
        if change.bump is None:
            raise ReleaseError(f"nothing changed since {spec.name} {previous.name}; no new version is needed")
        chosen = check_version(previous.name, version, change) if version else next_version(previous.name, change)
    _refuse_existing(public, staging, spec.name, chosen)
    if change is not None:
        revisions = mark_revised(protected, change)
        if revisions:
            extra["opendata:revisions"] = {
                "previous": previous.name,
                "count": len(revisions),
                "cells": revisions[:1000],
            }
    return chosen, change


def _write(
    spec: ReleaseSpec,
    protected: list[ProtectedTable],
    staging: Path,
    chosen: str,
    when: datetime,
    extra: dict[str, Any],
    step: Callable[[str], None],
    dry_run: bool,
) -> tuple[Path, PackageAudit | None]:
    """Write the package into the staging area, gated by the public audit (PublicAuditFailed), or on
    a dry run only say where it would go."""
    if dry_run:
        return staging / spec.name / chosen, None  # where it would go; nothing is written
    step("writing package")
    audited: list[PackageAudit] = []
    path = write_package(
        spec, protected, staging, chosen, when, extra=extra, check=lambda tmp: audited.append(_public_audit(tmp, step))
    )
    return path, audited[0]


def mark_revised(tables: list, change) -> list[dict[str, Any]]:
    """Flag every corrected published value with the status ``r`` (GSS "revised"); list them."""
    by_name = {t.spec.name: t for t in tables}
    cells = []
    for resource in change.resources:
        table = by_name.get(resource.name)
        if table is None:
            continue
        dims = list(resource.key)
        index = pd.MultiIndex.from_frame(table.frame[dims].astype(str))
        for c in resource.corrections:
            if c.new is None or c.field not in table.frame.columns:
                continue
            row = index.get_loc(tuple(c.key))
            table.frame.loc[table.frame.index[row], c.field + "_status"] = "r"
            cells.append(
                {
                    "table": resource.name,
                    "key": dict(zip(dims, c.key, strict=True)),
                    "measure": c.field,
                    "old": c.old,
                    "new": c.new,
                }
            )
    return cells


def _refuse_existing(public: Path, staging: Path, name: str, version: str) -> None:
    for root in (public, staging):
        if (root / name / version).exists():
            raise ReleaseExists(
                f"version {version} of {name} already exists in {root}; published versions are never overwritten"
            )


def cut_release(
    spec: ReleaseSpec | str | Path,
    inputs: Sequence[str | Path],
    out_root: str | Path = "releases",
    *,
    staging: str | Path | None = None,
    version: str | None = None,
    release_time: datetime | None = None,
    calendar: Calendar | str | Path | None = None,
    now: datetime | None = None,
    mi_ahead: bool = False,
    unscheduled: bool = False,
    late: bool = False,
    reason: str | None = None,
    dry_run: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
    on_step: Callable[[str], None] | None = None,
) -> ReleaseSummary:
    """Validate, aggregate, protect and package MI as a new immutable version in the staging area.

    ``unscheduled``/``late`` declare a release outside the calendar or after its time, with a
    ``reason`` (see ``release_timing``); the reason of a correction is shown with its revisions.
    ``dry_run`` does every step but writing, so the summary says what a release would suppress
    (per level and in value) before anything exists. ``workers`` and ``scheduler`` say where the
    measures are protected (``opendata.parallel``); the package is the same bytes either way."""
    step = on_step or (lambda _: None)
    if scheduler:
        connect(scheduler).close()  # a wrong address is reported before any work
    spec = spec if isinstance(spec, ReleaseSpec) else load_spec(spec)
    if calendar is not None and not isinstance(calendar, Calendar):
        calendar = load_calendar(calendar)
    if version is not None and not RELEASE_VERSION.match(version):
        raise ReleaseError(f"--version {version!r} is not a semantic version such as 1.2.0")
    public = Path(out_root)
    staging = Path(staging) if staging is not None else default_staging(public)
    keep_apart(staging, public)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    timing = release_timing(spec.name, calendar, release_time, now, unscheduled=unscheduled, late=late, reason=reason)
    when = timing.when

    cut = None
    if calendar is not None and spec.name in calendar.datasets and calendar.dataset(spec.name).cutoff_from:
        cut = cutoff_for(calendar, spec.name, when)
        if cut is None:
            raise ReleaseError(
                f"no official statistics are published by {when:%Y-%m-%dT%H:%M}Z, so no MI may be published then "
                "(data up to the most recent statistical release, but no further)"
            )
    until = until_month(cut.covers) if cut else None

    step("reading and validating MI")
    report = validate(spec, [Path(p) for p in inputs])
    report.raise_for_problems()
    step("aggregating")
    tables = aggregate(spec, report.table, until=until)
    held = held_back(spec, report.table, until)
    cohort = {m.name for m in spec.measures.values() if m.cohort_months}  # never published ahead
    due = any(v for m, v in held.items() if m not in cohort)
    ahead = mi_ahead_tables(spec, report.table, until) if mi_ahead and until and due else []
    earlier = _earlier_tables([public, staging], spec.name)
    months = tuple(sorted({c for t in tables for d in t.dimensions for c in d.codes if d.levels[c] == "month"}))
    held = {m: ({} if m not in cohort else v) for m, v in held.items()} if ahead else held  # published ahead
    extra = {"opendata:release": release_info(spec.name, spec.kind, timing, months, cut, held, calendar)}
    if ahead:
        extra["opendata:release"]["mi_ahead"] = {"resources": [t.spec.name for t in ahead], "statement": MI_AHEAD}
        extra["opendata:release"]["statement"].append(MI_AHEAD)
    hold: dict[str, set[str]] = {}
    done: dict = {}  # each measure's own protection, by the cells it holds: a round redoes only what changed
    for attempt in range(PUBLIC_AUDIT_ROUNDS + 1):
        protected = protect_tables(
            tables + ahead,
            spec.disclosure,
            on_step=step,
            earlier=earlier,
            relations=spec_relations(spec),
            workers=workers,
            scheduler=scheduler,
            hold=hold,
            done=done,
        )
        release_extra = {**extra}
        chosen, change = _version(spec, protected, release_extra, public, staging, version, step)
        try:
            path, audited = _write(spec, protected, staging, chosen, when, release_extra, step, dry_run)
            break
        except PublicAuditFailed as exc:
            more = narrowed_keys(protected, exc.report)
            new = sum(len(keys - hold.get(m, set())) for m, keys in more.items())
            if attempt == PUBLIC_AUDIT_ROUNDS or not new or exc.report.derived:
                raise
            for m, keys in more.items():
                hold.setdefault(m, set()).update(keys)
            step(f"public audit narrowed {new} hidden cell(s) that are not primary: holding them to the width too")
    if not dry_run:
        claim(staging, public)
    summary = ReleaseSummary(
        spec.name,
        chosen,
        path,
        when,
        report.table.num_rows,
        [str(p) for p in inputs],
        cutoff=cut.covers.isoformat() if cut else None,
        held_back=held,
        bump=change.bump if change else None,
        dry_run=dry_run,
        public_audit=audited,
    )
    for t in protected:
        for measure, counts in t.sdc.items():
            summary.tables.append({"table": t.spec.name, "measure": measure, **counts})
    return summary
