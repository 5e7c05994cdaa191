"""Orderly release (UKSA Code of Practice): when a release goes out, and what it may say about it.

A release time is one of the dataset's entries in the release calendar (pre-announced), or is
declared non-standard with a reason; a time already past is refused unless declared late with a
reason. Only a release that is pre-announced, at 09:30 London and on time claims "orderly release,
pre-announced, 09:30". ``release_info`` writes these facts into the package (``opendata:release``);
``retimed`` moves a staged release to another time, keeping every claim true.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opendata.calendar import LONDON, STANDARD_TIME, Calendar, next_release
from opendata.descriptor import KIND_NOTES
from opendata.errors import ReleaseError

ORDERLY = " (orderly release, pre-announced, 09:30)"  # claimed only when the calendar and the clock agree
NEXT = "Next scheduled release:"


@dataclass(frozen=True)
class Timing:
    """When a release goes out and what may be said about it (UKSA Code: orderly release).

    ``scheduled``: the time is an entry of the dataset's release calendar (pre-announced);
    ``unscheduled``/``late``: declared a non-standard or a late release; ``reason``: why (required
    for those two, optional otherwise, e.g. what a correction corrects)."""

    when: datetime
    scheduled: bool
    unscheduled: bool = False
    late: bool = False
    reason: str | None = None

    @property
    def orderly(self) -> bool:
        """Pre-announced in the calendar, at 09:30 London, and not late: all the Code's claim needs."""
        local = self.when.astimezone(LONDON).timetz().replace(tzinfo=None)
        return self.scheduled and local == STANDARD_TIME and not self.late

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"pre_announced": self.scheduled, "orderly": self.orderly}
        out |= {"unscheduled": True} if self.unscheduled else {}
        out |= {"late": True} if self.late else {}
        return out | ({"reason": self.reason} if self.reason else {})

    def statement(self) -> list[str]:
        """The sentences the package, its README and the changelog carry about a non-standard time."""
        lines = ["Non-standard release: not pre-announced in the release calendar."] if self.unscheduled else []
        lines += ["Late release: staged after its release time had passed."] if self.late else []
        return lines + ([f"Reason: {self.reason}"] if self.reason else [])


def release_timing(
    name: str,
    calendar: Calendar | None,
    given: datetime | None,
    now: datetime,
    *,
    unscheduled: bool = False,
    late: bool = False,
    reason: str | None = None,
) -> Timing:
    """The release time, checked against the calendar and the clock.

    With a calendar that schedules the dataset, a time must be one of its entries, unless the
    release is declared non-standard (``unscheduled``). A time already past is refused unless
    declared ``late``. Both need a ``reason``: a release is pre-announced, and the record must not
    say it was on time or scheduled when it was not."""
    reason = " ".join((reason or "").split()) or None
    if (unscheduled or late) and not reason:
        raise ReleaseError('an unscheduled or late release needs --reason "…" (it is published with the release)')
    own = calendar.releases(name) if calendar is not None and name in calendar.datasets else []
    if given is None:
        if not own:
            raise ReleaseError(f"no release time: pass --release-time or a --calendar that schedules {name}")
        upcoming = next_release(calendar, name, now)  # type: ignore[arg-type]
        if upcoming is None:
            raise ReleaseError(f"the calendar has no release of {name} after {now:%Y-%m-%d %H:%M}Z")
        when = upcoming.release_at_utc
    elif given.tzinfo is None:
        raise ReleaseError("the release time needs a UTC offset, e.g. 2026-12-10T09:30:00+00:00")
    else:
        when = given.astimezone(UTC)
    scheduled = any(r.release_at_utc == when for r in own)
    if scheduled and unscheduled:
        raise ReleaseError(f"{when:%Y-%m-%dT%H:%M}Z is in the release calendar for {name}: it is not unscheduled")
    if own and not scheduled and not unscheduled:
        entries = ", ".join(f"{r.release_at_utc:%Y-%m-%dT%H:%M}Z" for r in own if r.release_at_utc > now)
        raise ReleaseError(
            f"{when:%Y-%m-%dT%H:%M}Z is not a release of {name} in the calendar (upcoming: {entries or 'none'}); "
            'a release at another time is non-standard: pass --unscheduled --reason "…", and the package says so'
        )
    if when < now and not late:
        raise ReleaseError(
            f"the release time {when:%Y-%m-%dT%H:%M}Z has already passed (now {now:%Y-%m-%dT%H:%M}Z); releases are "
            'announced before their time. To stage it anyway pass --late --reason "…"; the package says it was late'
        )
    if late and when >= now:
        raise ReleaseError(f"--late given, but the release time {when:%Y-%m-%dT%H:%M}Z has not passed yet")
    return Timing(when, scheduled, unscheduled, late, reason)


def release_info(
    name: str, kind: str, timing: Timing, months: tuple[str, ...], cut: Any, held: dict, calendar: Calendar | None
) -> dict[str, Any]:
    """What the package is, when it is released, what it covers and what comes next
    (``opendata:release`` in the descriptor; its ``statement`` lines go in the README)."""
    when = timing.when
    lines = _timing_lines(kind, timing)
    if months:
        lines.append(f"Covers events from {months[0]} to {months[-1]}.")
    info: dict[str, Any] = {
        **timing.as_dict(),
        "notes": timing.statement(),
        "kind": kind,
        "period": {"from": months[0], "to": months[-1]} if months else None,
    }
    if cut is not None:
        held_total = sum(sum(v.values()) for v in held.values())
        lines.append(
            f"Cut-off: data up to {cut.covers:%Y-%m-%d}, the period covered by the latest official statistics "
            f"({cut.release.id}, released {cut.release.release_at_utc:%Y-%m-%dT%H:%M}Z); {held_total} later event(s) "
            "are held back until official statistics cover them."
        )
        info["cutoff"] = {"covers": cut.covers.isoformat(), "official_release": cut.release.id, "held_back": held}
    else:
        lines.append("No cut-off applied: no release calendar governs this dataset.")
        info["cutoff"] = None
        if any(held.values()):  # later months of a part quarter, cohorts not yet complete: said, not dropped
            lines.append(
                f"{sum(sum(v.values()) for v in held.values())} later event(s) are held back until their quarter "
                "is whole or their cohort's follow-up complete."
            )
            info["held_back"] = held
    info["statement"] = lines
    return _schedule_facts(info, name, calendar, when)


def _timing_lines(kind: str, timing: Timing) -> list[str]:
    """The statement's first lines: what it is (claiming orderly release only when true), when, and why
    the time is non-standard."""
    what = KIND_NOTES.get(kind, kind).rstrip(".")  # the same words as the README's "What this is"
    return [
        f"{what}{ORDERLY if timing.orderly else ''}.",
        f"Release time {timing.when:%Y-%m-%dT%H:%M}Z.",
        *timing.statement(),
    ]


def _schedule_facts(info: dict[str, Any], name: str, calendar: Calendar | None, when: datetime) -> dict[str, Any]:
    """The next scheduled release and who has pre-release access, from the calendar, for a release at ``when``."""
    own = calendar.releases(name) if calendar is not None and name in calendar.datasets else []
    upcoming = next((r for r in own if r.release_at_utc > when), None)
    lines = [line for line in info["statement"] if not line.startswith(NEXT)]
    info.pop("next_release", None)
    if upcoming is not None:
        lines.append(f"{NEXT} {upcoming.release_at_utc:%Y-%m-%dT%H:%M}Z ({upcoming.id}).")
        info["next_release"] = upcoming.release_at_utc
    scheduled = [r for r in own if r.release_at_utc == when]
    info["pre_release_access"] = list(scheduled[0].pre_release_access) if scheduled else []
    info["statement"] = lines
    return info


def retimed(info: dict[str, Any], name: str, timing: Timing, calendar: Calendar | None) -> dict[str, Any]:
    """``info`` (a staged release's ``opendata:release``) moved to ``timing``: time, claims, reasons,
    statement, next release and pre-release access follow; what it covers stays."""
    old = 2 + len(info.get("notes", []))  # the timing lines: what it is, when, and its notes (``_timing_lines``)
    moved = ("time", "pre_announced", "orderly", "unscheduled", "late", "reason")  # "time": written by older versions
    out = {k: v for k, v in info.items() if k not in moved}
    out |= {**timing.as_dict(), "notes": timing.statement()}
    out["statement"] = _timing_lines(out.get("kind", ""), timing) + list(info.get("statement", []))[old:]
    return _schedule_facts(out, name, calendar, timing.when)
