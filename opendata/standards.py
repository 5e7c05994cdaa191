"""Customer Service Standards measured: each stage's Standard Measure per provider (issue 16, part 3).

For one prime's framework (``opendata.css``), its MI and its journey events (``opendata.journey``),
as known on ``as_of`` (the extract date), each participant of the prime who reached a stage's
``from_event`` is in exactly one of four states:

- **met**: the ``to_event`` came within the limit (the participant's payment group's limit where
  the framework overrides it);
- **late**: it came, after the limit;
- **outstanding**: it has not come, and the limit has already passed: a miss known now, reported
  on its own as DWP's timeliness statistics report outstanding cases;
- **not yet due**: it has not come, and the limit has not passed: not counted anywhere else,
  since whether it will be met is not known yet.

The share meeting the standard is met / (met + late + outstanding), with a Wilson interval; the
times taken (median and quartiles, never the maximum, which "risks being disclosive") and the
bands (within the limit, up to twice it, more) are over the cases whose time is known (met and
late). Time is counted from the ``from_event``'s day as day zero (``opendata.workdays``), in the
measure's unit: calendar days, working days of the framework's nation, or weeks.

A ``kind: every`` measure (reviews at least every 13 weeks) is compliance over the whole interval
from the ``from_event`` to the programme exit (or ``as_of`` for those still on it), not a count of
reviews: the time is the participant's largest gap between successive reviews, the gap still open
included. Met: no gap over the limit; outstanding: still on the programme and overdue a review now;
late: a gap over the limit, and not overdue now. Nobody is "not yet due": every gap so far is known.

Publication rules (part 4): the share and its interval may be published only where the cases
reach the release's threshold; the quantiles and bands only where the cases with a known time do,
since a quantile of a few people is one person's time. The table here is the statistician's view,
exact counts included, with those two decisions in columns; it is not itself a published table.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from opendata.css import Framework, Stage, load_framework
from opendata.errors import OpenDataError
from opendata.indicators import wilson
from opendata.journey import dates, read_events
from opendata.spec import load_spec
from opendata.validate import validate
from opendata.workdays import elapsed

TOTAL = "Total"
STATES = ("met", "late", "outstanding", "not_yet_due")
QUARTILES = (0.25, 0.5, 0.75)  # numpy's default (linear) interpolation, Hyndman and Fan's type 7
COLUMNS = (
    "stage", "standard", "unit", "provider", "cases", *STATES, "share_met", "ci_low", "ci_high",
    "quartile_1", "median", "quartile_3", "within_limit", "up_to_twice_limit", "over_twice_limit",
    "share_publishable", "times_publishable",
)  # fmt: skip


class StandardsError(OpenDataError):
    """The framework cannot be measured on this MI (its prime has no referrals in it)."""


@dataclass(frozen=True)
class Cohort:
    """The prime's participants: provider, limit group and the events of their journeys."""

    participants: pd.DataFrame  # index participant_id; columns subcontractor, payment_group
    events: pd.DataFrame  # participant_id, event, date (datetime64[s])
    as_of: np.datetime64


def cohort(framework: Framework, mi: pa.Table, events: pd.DataFrame, as_of: date) -> Cohort:
    frame = mi.select(["participant_id", "prime_contract", "subcontractor", "payment_group"]).to_pandas()
    frame = frame[frame["prime_contract"] == framework.prime].set_index("participant_id")
    if frame.empty:
        raise StandardsError(f"the MI has no referrals for prime contract {framework.prime!r} ({framework.path})")
    mine = events[events["participant_id"].isin(frame.index)]
    return Cohort(frame[["subcontractor", "payment_group"]], mine, np.datetime64(as_of, "s"))


def times(stage: Stage, framework: Framework, people: Cohort) -> pd.DataFrame:
    """Per participant who reached the stage's ``from_event`` by ``as_of``: subcontractor, limit,
    time (NaN if not known) and state (one of STATES)."""
    m = stage.standard_measure
    start = dates(people.events, m.from_event)
    start = start[start <= people.as_of]
    who = people.participants.loc[start.index]
    limit = who["payment_group"].map(m.overrides).fillna(m.limit).to_numpy(dtype=float)

    def span(a, b) -> np.ndarray:
        a, b = np.asarray(a, "datetime64[D]"), np.asarray(b, "datetime64[D]")
        return np.asarray(elapsed(a, b, m.unit, framework.nation))

    now = np.full(len(start), people.as_of)
    if m.kind == "every":
        time, overdue = _largest_gaps(start, people, m.to_event, span)
        done = np.ones(len(start), bool)
        state = np.where(overdue > limit, "outstanding", np.where(time > limit, "late", "met"))
    else:
        end = dates(people.events, m.to_event).reindex(start.index)
        end = end.where(end >= start)  # a to_event before the from_event is not this stage's
        done = end.notna().to_numpy() & (end <= people.as_of).to_numpy()
        time = np.where(done, span(start.to_numpy(), end.to_numpy()), np.nan)
        so_far = span(start.to_numpy(), now)
        state = np.where(
            done, np.where(time <= limit, "met", "late"), np.where(so_far > limit, "outstanding", "not_yet_due")
        )
    return pd.DataFrame(
        {"subcontractor": who["subcontractor"].to_numpy(), "limit": limit, "time": np.where(done, time, np.nan),
         "state": state},
        index=start.index,
    )  # fmt: skip


def _largest_gaps(start: pd.Series, people: Cohort, event: str, span) -> tuple[np.ndarray, np.ndarray]:
    """Each participant's largest gap from ``start`` through their ``event`` days to the end of the
    interval (exit, or ``as_of``), and the gap still open now (0 for those who have left)."""
    if start.empty:
        return np.zeros(0), np.zeros(0)
    exit_ = dates(people.events, "programme_exit").reindex(start.index)
    left = exit_.notna().to_numpy() & (exit_ <= people.as_of).to_numpy()
    end = np.where(left, exit_.to_numpy(), people.as_of).astype("datetime64[s]")
    end = np.maximum(end, start.to_numpy())  # left before the stage began: an empty interval, nothing due
    position = pd.Series(np.arange(len(start)), index=start.index)
    reviews = people.events[(people.events["event"] == event) & people.events["participant_id"].isin(start.index)]
    who = position.loc[reviews["participant_id"]].to_numpy()
    day = reviews["date"].to_numpy()
    keep = (day >= start.to_numpy()[who]) & (day <= end[who])
    who, day = who[keep], day[keep]
    # The points of each interval, in order: its start, its reviews, its end.
    points = np.concatenate([np.arange(len(start)), who, np.arange(len(start))])
    when = np.concatenate([start.to_numpy(), day, end])
    last = np.concatenate([np.zeros(len(start) + len(who), bool), np.ones(len(start), bool)])
    order = np.lexsort((last, when, points))
    points, when = points[order], when[order]
    gaps = span(when[:-1], when[1:])
    same = points[:-1] == points[1:]
    largest = np.zeros(len(start))
    np.maximum.at(largest, points[:-1][same], gaps[same])
    # The open gap: from the last point before the end to the end, for those still on the programme.
    final = np.flatnonzero(np.r_[~same, True])  # each interval's end, in participant order
    return largest, np.where(left, 0.0, span(when[final - 1], when[final]))


def _row(stage: Stage, provider: str, rows: pd.DataFrame, threshold: int, level: float) -> dict:
    m = stage.standard_measure
    counts = {s: int((rows["state"] == s).sum()) for s in STATES}
    cases = counts["met"] + counts["late"] + counts["outstanding"]
    known = rows[rows["state"].isin(("met", "late"))]
    time, limit = known["time"].to_numpy(), known["limit"].to_numpy()
    q = np.quantile(time, QUARTILES) if len(time) else np.full(3, np.nan)
    lo, hi = wilson(counts["met"], cases, level) if cases else (np.nan, np.nan)

    def share(mask: np.ndarray) -> float:
        return float(mask.sum() / len(time)) if len(time) else np.nan

    return {
        "stage": stage.id, "standard": m.name, "unit": m.unit, "provider": provider, "cases": cases, **counts,
        "share_met": counts["met"] / cases if cases else np.nan, "ci_low": float(lo), "ci_high": float(hi),
        "quartile_1": q[0], "median": q[1], "quartile_3": q[2],
        "within_limit": share(time <= limit), "up_to_twice_limit": share((time > limit) & (time <= 2 * limit)),
        "over_twice_limit": share(time > 2 * limit),
        "share_publishable": cases >= threshold, "times_publishable": len(time) >= threshold,
    }  # fmt: skip


def measure(
    framework: Framework, mi: pa.Table, events: pd.DataFrame, as_of: date, threshold: int, level: float = 0.95
) -> pd.DataFrame:
    """Every stage's Standard Measure for the prime (``provider`` = ``Total``) and each of its
    subcontractors, in journey order then provider code order; columns ``COLUMNS``."""
    people = cohort(framework, mi, events, as_of)
    rows = []
    for stage in framework.stages:
        per = times(stage, framework, people)
        rows.append(_row(stage, TOTAL, per, threshold, level))
        for provider, group in sorted(per.groupby("subcontractor"), key=lambda g: g[0]):
            rows.append(_row(stage, provider, group, threshold, level))
    return pd.DataFrame(rows, columns=list(COLUMNS))


# Shares to 6 places (a percentage shown to one place is then rounded once), times to hundredths.
ROUNDED = {"share_met": 6, "ci_low": 6, "ci_high": 6, "within_limit": 6, "up_to_twice_limit": 6,
           "over_twice_limit": 6, "quartile_1": 2, "median": 2, "quartile_3": 2}  # fmt: skip


def measure_files(
    spec_path: Path, mi_files: list[Path], events_file: Path, framework_path: Path, as_of: date | None = None
) -> tuple[pd.DataFrame, date]:
    """``measure`` from files: the MI validated against the release spec, the events against the MI,
    the framework checked; ``as_of`` defaults to the latest date in the MI and events (the extract's
    end, as far as the files tell). Raises ValidationFailed or SpecError before measuring anything."""
    spec = load_spec(spec_path)
    framework = load_framework(framework_path)
    report = validate(spec, mi_files)
    report.raise_for_problems()
    events = read_events(events_file, spec.input, report.table)
    if as_of is None:
        as_of = pd.Timestamp(events["date"].max()).date()
    table = measure(framework, report.table, events, as_of, spec.disclosure.threshold)
    return table.round(ROUNDED), as_of


def write_csv(table: pd.DataFrame, path: Path) -> None:
    """The table as CSV, whole or not at all (a temporary file beside it, then renamed)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(tmp, index=False, lineterminator="\n")
        os.replace(tmp, path)
    except OSError as exc:  # a directory in the way, no permission, a full disk: the user's to mend
        raise OpenDataError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(OSError):  # nothing was made where nothing could be
            tmp.unlink(missing_ok=True)
