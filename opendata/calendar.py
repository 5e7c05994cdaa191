"""Release calendar: orderly release under the UKSA Code of Practice, and the Rec 1b cut-off.

The calendar is YAML checked against ``specs/calendar.schema.json`` and cross-checked at load time
(dates are real, local times exist, ``cutoff_from`` names an official-statistics dataset).
``check_calendar`` then reports what breaks the Code: short notice, weekend or bank-holiday
releases, non-standard times without a reason, and inconsistent ids, revisions and coverage.

Time is always an argument: every function takes ``now``/``at`` as an aware datetime, so the same
calendar gives the same answer in a test, in a re-run and in production.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import yaml

from opendata.errors import SpecError
from opendata.spec import check_against_schema

SCHEMA_FILE = "calendar.schema.json"
LONDON = ZoneInfo("Europe/London")
STANDARD_TIME = time(9, 30)
MIN_NOTICE = timedelta(days=28)
OFFICIAL = "official statistics"
MI = "management information"
KINDS = (OFFICIAL, MI)
STATUSES = ("provisional", "final")


class CalendarError(SpecError):
    """The calendar file cannot be used at all; a SpecError so the CLI reports it like a bad spec."""


@dataclass(frozen=True)
class ScheduledRelease:
    """One pre-announced release. ``release_at`` is aware, in Europe/London."""

    dataset: str
    id: str
    release_at: datetime
    covers: date
    kind: str
    status: str
    announced: date
    reason: str | None = None
    revision_of: str | None = None
    pre_release_access: tuple[str, ...] = ()
    where: str = field(default="", compare=False)

    @property
    def release_at_utc(self) -> datetime:
        return self.release_at.astimezone(UTC)

    @property
    def is_official(self) -> bool:
        return self.kind == OFFICIAL

    def is_published(self, at: datetime) -> bool:
        """Published from the release instant itself: at 09:30:00 yes, at 09:29:59 still embargoed."""
        return _aware(at, "at") >= self.release_at


@dataclass(frozen=True)
class DatasetCalendar:
    """The releases of one dataset (by release spec ``name``), in file order."""

    name: str
    title: str
    cutoff_from: str | None
    releases: tuple[ScheduledRelease, ...]


@dataclass(frozen=True)
class Calendar:
    path: Path | None
    datasets: dict[str, DatasetCalendar]

    def dataset(self, name: str) -> DatasetCalendar:
        try:
            return self.datasets[name]
        except KeyError:
            known = ", ".join(self.datasets) or "(none)"
            raise CalendarError(f"calendar has no dataset {name!r}; known: {known}") from None

    def releases(self, dataset: str | None = None) -> list[ScheduledRelease]:
        """Releases in time order (all datasets unless one is named)."""
        chosen = [self.dataset(dataset)] if dataset is not None else list(self.datasets.values())
        return sorted((r for d in chosen for r in d.releases), key=lambda r: (r.release_at, r.dataset, r.id))


@dataclass(frozen=True)
class CalendarProblem:
    """One breach of orderly release: which release, which field and value, and what is expected."""

    dataset: str
    release: str
    field: str
    value: str
    rule: str
    message: str
    where: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.dataset} {self.release} {self.field}={self.value!r}: {self.message}"


@dataclass(frozen=True)
class Cutoff:
    """Rec 1b: MI may be published up to ``covers`` (inclusive), the data of ``release``, but no further.

    ``next_release`` is the official release that will move the cut-off, if one is scheduled.
    """

    dataset: str
    release: ScheduledRelease
    covers: date
    next_release: ScheduledRelease | None = None


# --- loading -------------------------------------------------------------------------------------


@cache
def json_schema() -> dict[str, Any]:
    """The calendar's JSON Schema, shipped in the package and mirrored in specs/."""
    text = resources.files("opendata").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    return json.loads(text)


class _TextDatesLoader(yaml.SafeLoader):
    """YAML without implicit timestamps: '2026-12-03' stays text so the schema and our parser decide."""


_TextDatesLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_calendar(path: str | Path) -> Calendar:
    """Load, schema-check and cross-check a release calendar; raise CalendarError naming the key."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_TextDatesLoader)
    except FileNotFoundError:
        raise CalendarError(f"calendar {path} does not exist") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise CalendarError(f"calendar {path} is not valid YAML: {exc}") from None
    return calendar_from_dict(raw, path)


def calendar_from_dict(raw: Any, path: Path | None = None) -> Calendar:
    """Build a calendar from already-parsed YAML; dates must be text (YYYY-MM-DD)."""
    label = f"calendar {path}" if path is not None else "calendar"
    if not isinstance(raw, dict):
        raise CalendarError(f"{label} must be a mapping with a 'datasets' key, got {type(raw).__name__}")
    check_against_schema(raw, json_schema(), label, CalendarError)
    try:
        return _build(raw, path)
    except CalendarError as exc:
        raise CalendarError(f"{label} is invalid:\n  {exc}") from None


def _parse_date(where: str, text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CalendarError(f"{where}: {text!r} is not a real date (YYYY-MM-DD)") from None


def _parse_release(where: str, text: str) -> datetime:
    day = _parse_date(where, text[:10])
    if len(text) == 10:
        clock = STANDARD_TIME
    else:
        try:
            clock = time.fromisoformat(text[11:])
        except ValueError:
            raise CalendarError(f"{where}: {text!r} has no real time of day (HH:MM, 24-hour clock)") from None
    local = datetime.combine(day, clock, tzinfo=LONDON)
    # Clocks change at 01:00 UTC: a local time can be skipped (March) or happen twice (October).
    if local.astimezone(UTC).astimezone(LONDON).replace(tzinfo=None) != local.replace(tzinfo=None):
        raise CalendarError(f"{where}: {text!r} does not exist in Europe/London (the clocks go forward)")
    if local.replace(fold=1).utcoffset() != local.utcoffset():
        raise CalendarError(f"{where}: {text!r} happens twice in Europe/London (the clocks go back); pick another time")
    return local


def _build(raw: dict[str, Any], path: Path | None) -> Calendar:
    datasets: dict[str, DatasetCalendar] = {}
    for i, d in enumerate(raw["datasets"]):
        if d["name"] in datasets:
            raise CalendarError(f"datasets[{i}].name: dataset {d['name']!r} is listed twice; list each dataset once")
        releases = []
        for j, r in enumerate(d["releases"]):
            at = f"datasets[{i}].releases[{j}]"
            releases.append(
                ScheduledRelease(
                    dataset=d["name"],
                    id=r["id"],
                    release_at=_parse_release(f"{at}.release", r["release"]),
                    covers=_parse_date(f"{at}.covers", r["covers"]),
                    kind=r["kind"],
                    status=r["status"],
                    announced=_parse_date(f"{at}.announced", r["announced"]),
                    reason=r.get("reason"),
                    revision_of=r.get("revision_of"),
                    pre_release_access=tuple(r.get("pre_release_access", ())),
                    where=at,
                )
            )
        datasets[d["name"]] = DatasetCalendar(d["name"], d.get("title", ""), d.get("cutoff_from"), tuple(releases))
    for i, d in enumerate(datasets.values()):
        source = d.cutoff_from
        if source is None:
            continue
        where = f"datasets[{i}].cutoff_from"
        if source == d.name:
            raise CalendarError(f"{where}: {source!r} is this dataset; name the official-statistics dataset instead")
        if source not in datasets:
            raise CalendarError(f"{where}: no dataset {source!r} in this calendar; known: {', '.join(datasets)}")
        if not any(r.is_official for r in datasets[source].releases):
            raise CalendarError(f"{where}: dataset {source!r} has no '{OFFICIAL}' release to take a cut-off from")
    return Calendar(path, datasets)


# --- checking ------------------------------------------------------------------------------------


@cache
def _bank_holidays(year: int) -> dict[date, str]:
    """England and Wales bank holidays. GB without a subdivision omits Easter Monday; SCT adds 2 January."""
    return dict(holidays.country_holidays("GB", subdiv="ENG", years=year))


def bank_holiday(day: date) -> str | None:
    """The name of the England and Wales bank holiday on ``day``, if it is one."""
    return _bank_holidays(day.year).get(day)


def _days(notice: int) -> str:
    return f"{notice} days before" if notice >= 0 else f"{-notice} days after"


def _local(release: ScheduledRelease) -> str:
    return release.release_at.strftime("%Y-%m-%dT%H:%M")


def check_calendar(calendar: Calendar, today: date | None = None) -> list[CalendarProblem]:
    """Every breach of orderly release, each reported once, in file order.

    ``today`` (a date, or an aware datetime taken in London) adds the one check that depends on it:
    an ``announced`` date after today claims a pre-announcement that has not happened yet.
    """
    if isinstance(today, datetime):
        today = _aware(today, "today").astimezone(LONDON).date()
    problems: list[CalendarProblem] = []

    def report(r: ScheduledRelease, field_: str, value: object, rule: str, message: str) -> None:
        problems.append(CalendarProblem(r.dataset, r.id, field_, str(value), rule, message, r.where))

    first_use: dict[str, ScheduledRelease] = {}
    for d in calendar.datasets.values():
        for r in d.releases:
            if r.id in first_use:
                other = first_use[r.id]
                report(
                    r,
                    "id",
                    r.id,
                    "duplicate_id",
                    f"already used by {other.where} (dataset {other.dataset}); ids must be unique across the calendar",
                )
            else:
                first_use[r.id] = r

    for d in calendar.datasets.values():
        own: dict[str, ScheduledRelease] = {}
        for r in d.releases:
            own.setdefault(r.id, r)
        for r in d.releases:
            day = r.release_at.date()
            notice = (day - r.announced).days
            if notice < MIN_NOTICE.days:
                report(
                    r,
                    "announced",
                    r.announced,
                    "notice",
                    f"{_days(notice)} the release on {day}; pre-announce at least {MIN_NOTICE.days} days "
                    f"(4 weeks) ahead, i.e. on or before {day - MIN_NOTICE}",
                )
            if today is not None and r.announced > today:
                report(
                    r,
                    "announced",
                    r.announced,
                    "announced_future",
                    f"is after today ({today}); a release is announced only once it is in the published calendar",
                )
            if day.weekday() >= 5:
                report(
                    r,
                    "release",
                    _local(r),
                    "weekend",
                    f"falls on a {day:%A}; releases must be on a weekday (Monday to Friday)",
                )
            holiday = bank_holiday(day)
            if holiday is not None:
                report(
                    r,
                    "release",
                    _local(r),
                    "bank_holiday",
                    f"{day} is {holiday}, an England and Wales bank holiday; choose another weekday",
                )
            clock = r.release_at.timetz().replace(tzinfo=None)
            if clock != STANDARD_TIME and not r.reason:
                report(
                    r,
                    "release",
                    _local(r),
                    "time",
                    f"{clock:%H:%M} Europe/London is not the standard {STANDARD_TIME:%H:%M}; "
                    "move it to 09:30 or give a 'reason'",
                )
            if r.covers >= day:
                report(
                    r,
                    "covers",
                    r.covers,
                    "covers_future",
                    f"is not before the release date {day}; a release can only cover days that have ended",
                )
            if r.revision_of is not None:
                target = own.get(r.revision_of)
                if target is None:
                    elsewhere = first_use.get(r.revision_of)
                    hint = f" (it is a release of {elsewhere.dataset})" if elsewhere else ""
                    report(
                        r,
                        "revision_of",
                        r.revision_of,
                        "revision_of",
                        f"names no release of {d.name}{hint}; expected the id of an earlier release of {d.name}",
                    )
                elif target.release_at >= r.release_at:
                    report(
                        r,
                        "revision_of",
                        r.revision_of,
                        "revision_of",
                        f"is released at {_local(target)}, not before this revision at {_local(r)}; "
                        "a revision must come after the release it revises",
                    )
        for kind in KINDS:
            series = sorted(
                (r for r in d.releases if r.kind == kind and r.revision_of is None), key=lambda r: r.release_at
            )
            for before, r in pairwise(series):
                if r.covers < before.covers:
                    report(
                        r,
                        "covers",
                        r.covers,
                        "covers_backwards",
                        f"is earlier than {before.covers} covered by the previous {kind} release {before.id!r} "
                        f"({_local(before)}); a later release must not cover less unless it sets 'revision_of'",
                    )
    position = {r.where: n for n, r in enumerate(r for d in calendar.datasets.values() for r in d.releases)}
    return sorted(problems, key=lambda p: position.get(p.where, -1))


# --- time queries --------------------------------------------------------------------------------


def _aware(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime (with a UTC offset or zone), got naive {value.isoformat()}")
    return value


def cutoff(calendar: Calendar, dataset_official: str, at: datetime) -> Cutoff | None:
    """Rec 1b cut-off at ``at``: data up to the most recent official statistics release, but no further.

    Among the dataset's official-statistics releases published at ``at`` (release time <= at), the one
    covering the furthest date; a later revision of older data therefore never moves the cut-off back.
    None when nothing has been published yet, which means no MI may be published under Rec 1b.
    """
    at = _aware(at, "at")
    official = [r for r in calendar.releases(dataset_official) if r.is_official]
    if not official:
        raise CalendarError(f"dataset {dataset_official!r} has no '{OFFICIAL}' release to take a cut-off from")
    published = [r for r in official if r.release_at <= at]
    if not published:
        return None
    latest = max(published, key=lambda r: (r.covers, r.release_at))
    following = next((r for r in official if r.release_at > at and r.covers > latest.covers), None)
    return Cutoff(dataset_official, latest, latest.covers, following)


def cutoff_source(calendar: Calendar, dataset: str) -> str:
    """The official-statistics dataset that governs ``dataset``'s cut-off (``cutoff_from``, or itself)."""
    entry = calendar.dataset(dataset)
    if entry.cutoff_from is not None:
        return entry.cutoff_from
    if any(r.is_official for r in entry.releases):
        return entry.name
    raise CalendarError(f"dataset {dataset!r} has no 'cutoff_from' and no '{OFFICIAL}' release to take a cut-off from")


def cutoff_for(calendar: Calendar, dataset: str, at: datetime) -> Cutoff | None:
    """The cut-off for any dataset, following its ``cutoff_from``."""
    return cutoff(calendar, cutoff_source(calendar, dataset), at)


def next_release(calendar: Calendar, dataset: str, after: datetime, kind: str | None = None) -> ScheduledRelease | None:
    """The first release of ``dataset`` strictly after ``after`` (optionally of one kind)."""
    after = _aware(after, "after")
    return next(
        (r for r in calendar.releases(dataset) if r.release_at > after and (kind is None or r.kind == kind)), None
    )


def upcoming(calendar: Calendar, now: datetime, dataset: str | None = None) -> list[ScheduledRelease]:
    """Releases still under embargo at ``now``, soonest first."""
    now = _aware(now, "now")
    return [r for r in calendar.releases(dataset) if r.release_at > now]


def past(calendar: Calendar, now: datetime, dataset: str | None = None) -> list[ScheduledRelease]:
    """Releases published by ``now`` (release time <= now), oldest first."""
    now = _aware(now, "now")
    return [r for r in calendar.releases(dataset) if r.release_at <= now]


def utc_now() -> datetime:
    """The only clock read in this module: a default for thin wrappers such as the CLI."""
    return datetime.now(UTC)


def london_today(now: datetime | None = None) -> date:
    """Today's date in London (for ``check_calendar(today=...)``)."""
    return _aware(now or utc_now(), "now").astimezone(LONDON).date()


def until_month(covers: date) -> str:
    """The last whole month a cut-off date covers: a mid-month date leaves that month out."""
    whole = covers if (covers + timedelta(days=1)).day == 1 else covers.replace(day=1) - timedelta(days=1)
    return whole.strftime("%Y-%m")
