"""Customer Service Standards measured stage by stage (issue 16, parts 1 and 3): journey events
read and checked against the MI, and on journeys whose answers are known by construction every
measure exact: met, late, outstanding, not yet due, the share with its Wilson interval, quartiles,
bands, the payment group's own limit, working days over bank holidays, and reviews by largest gap."""

from __future__ import annotations

import csv
import itertools
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.proportion import proportion_confint

from opendata.css import EVENTS, load_framework
from opendata.errors import ValidationFailed
from opendata.journey import read_events
from opendata.sample import generate, journey, write_sample
from opendata.spec import load_spec
from opendata.standards import cohort, measure, times
from opendata.validate import validate

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "work-programme.yaml"
FRAMEWORK = load_framework(ROOT / "specs" / "css" / "P01.yaml")
AS_OF = date(2012, 6, 29)


def _mi(people: list[tuple[str, str, date]]) -> pa.Table:
    """(subcontractor, payment group, referral date) per participant, all of prime P01."""
    return pa.table({
        "participant_id": [f"WP{i:08d}" for i in range(len(people))],
        "prime_contract": ["P01"] * len(people),
        "subcontractor": [s for s, _, _ in people],
        "payment_group": [g for _, g, _ in people],
        "referral_date": pa.array([d for _, _, d in people], pa.date32()),
    })  # fmt: skip


def _events(rows: list[tuple[int, str, date]]) -> pd.DataFrame:
    frame = pd.DataFrame({"participant_id": [f"WP{i:08d}" for i, _, _ in rows], "event": [e for _, e, _ in rows]})
    frame["date"] = np.array([d for _, _, d in rows], dtype="datetime64[s]")
    return frame


def _row(table: pd.DataFrame, stage: str, provider: str = "Total") -> pd.Series:
    return table[(table["stage"] == stage) & (table["provider"] == provider)].iloc[0]


@pytest.mark.parametrize(("late", "late_pg9", "never"), [(0, 0, 0), (3, 2, 1), (11, 7, 4)])
def test_attachment_within_its_limit_is_exact(late, late_pg9, never):
    """12 PG1 referrals of S0001 (limit 15 days) of which ``late`` attached at 16 or more days, 8 PG9
    referrals of S0002 (limit 25) of which ``late_pg9`` at 26 or more, ``never`` never attached long
    ago (outstanding) and 2 referred two days before the extract (not yet due)."""
    start = date(2012, 1, 3)
    people, events, taken = [], [], []

    def referral(sub: str, group: str, day: date, attached: int | None) -> None:
        i = len(people)
        people.append((sub, group, day))
        events.append((i, "referral", day))
        if attached is not None:
            events.append((i, "attachment", day + timedelta(attached)))
            taken.append(attached)

    for i in range(12):
        referral("S0001", "PG1", start + timedelta(i), 16 + i if i < late else 4 + i)  # 15 itself is on time
    for i in range(8):
        referral("S0002", "PG9", start + timedelta(i), 26 + i if i < late_pg9 else 18 + i)  # 16-25: late for PG1 only
    for _ in range(never):
        referral("S0001", "PG1", start, None)
    for _ in range(2):
        referral("S0002", "PG1", AS_OF - timedelta(2), None)
    table = measure(FRAMEWORK, _mi(people), _events(events), AS_OF, threshold=10)
    row = _row(table, "pre-programme-engagement")
    met = 20 - late - late_pg9
    assert (row.cases, row.met, row.late, row.outstanding, row.not_yet_due) == (20 + never, met, late + late_pg9,
                                                                                never, 2)  # fmt: skip
    assert row.share_met == pytest.approx(met / (20 + never))
    lo, hi = proportion_confint(met, 20 + never, 0.05, "wilson")
    assert (row.ci_low, row.ci_high) == (pytest.approx(lo), pytest.approx(hi))
    assert [row.quartile_1, row["median"], row.quartile_3] == pytest.approx(np.quantile(taken, [0.25, 0.5, 0.75]))
    assert row.within_limit == pytest.approx(met / 20)
    twice = sum(1 for i in range(late) if 16 + i <= 30) + sum(1 for i in range(late_pg9) if 26 + i <= 50)
    assert row.up_to_twice_limit == pytest.approx(twice / 20)
    assert row.over_twice_limit == pytest.approx((late + late_pg9 - twice) / 20)
    assert row.share_publishable == (20 + never >= 10) and row.times_publishable
    s1 = _row(table, "pre-programme-engagement", "S0001")
    assert (s1.cases, s1.met, s1.outstanding) == (12 + never, 12 - late, never)
    assert not _row(table, "pre-programme-engagement", "S0002").share_publishable  # 8 cases: under 10


def test_working_days_skip_easter_and_a_plan_not_yet_due_is_not_counted():
    """Attached Wednesday 27 March 2024, action plan Thursday 11 April: 15 calendar days but 9 working
    days in England and Wales (Good Friday, Easter Monday and two weekends skipped): within 10."""
    people = [("S0001", "PG1", date(2024, 3, 25)), ("S0001", "PG1", date(2024, 3, 25))]
    events = [(0, "referral", date(2024, 3, 25)), (0, "attachment", date(2024, 3, 27)),
              (0, "action_plan", date(2024, 4, 11)),
              (1, "referral", date(2024, 3, 25)), (1, "attachment", date(2024, 4, 10))]  # fmt: skip
    row = _row(measure(FRAMEWORK, _mi(people), _events(events), date(2024, 4, 17), 10), "programme-engagement")
    assert (row.cases, row.met, row["median"], row.not_yet_due) == (1, 1, 9.0, 1)  # the second: 5 working days so far
    row = _row(measure(FRAMEWORK, _mi(people), _events(events), date(2024, 4, 24), 10), "programme-engagement")
    assert (row.cases, row.not_yet_due) == (1, 1)  # 10 working days so far: the limit, not past it
    row = _row(measure(FRAMEWORK, _mi(people), _events(events), date(2024, 4, 25), 10), "programme-engagement")
    assert (row.cases, row.met, row.outstanding, row.not_yet_due) == (2, 1, 1, 0)  # 11 working days: outstanding


def test_reviews_are_measured_by_the_largest_gap_and_an_overdue_one_is_outstanding():
    """Action plans on 2 January 2012. A: reviews every 12 weeks, left 1 May (largest 12 weeks: met).
    B: reviews after 10 then 15 weeks, still on the programme, last review 16 April (late, not overdue).
    C: one review after 4 weeks, then none by the extract 29 June (22 weeks open: outstanding).
    D: plan 26 weeks before the extract, one review exactly 13 weeks after it, none since: met."""
    d0 = date(2012, 1, 2)
    people = [("S0001", "PG1", d0)] * 4
    events = [(i, e, d0) for i in range(3) for e in ("referral", "attachment", "action_plan")]
    events += [(0, "review", d0 + timedelta(weeks=12)), (0, "programme_exit", date(2012, 5, 1))]
    events += [(1, "review", d0 + timedelta(weeks=10)), (1, "review", d0 + timedelta(weeks=25))]
    events += [(2, "review", d0 + timedelta(weeks=4))]
    events += [
        (3, "referral", d0),
        (3, "action_plan", AS_OF - timedelta(weeks=26)),
        (3, "review", AS_OF - timedelta(weeks=13)),
    ]
    per = times(FRAMEWORK.stage("pre-work-support"), FRAMEWORK, cohort(FRAMEWORK, _mi(people), _events(events), AS_OF))
    assert per["state"].tolist() == ["met", "late", "outstanding", "met"]
    last_a = (date(2012, 5, 1) - (d0 + timedelta(weeks=12))).days / 7
    open_b = (AS_OF - (d0 + timedelta(weeks=25))).days / 7
    assert per["time"].tolist()[:2] == pytest.approx([max(12, last_a), max(15, open_b)])


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 300),  # action plan day
            st.lists(st.integers(-20, 400), max_size=6),  # review days (some before the plan, some after the end)
            st.one_of(st.none(), st.integers(0, 400)),  # exit day
        ),
        min_size=1,
        max_size=8,
    )
)
def test_largest_review_gap_agrees_with_a_participant_by_participant_loop(journeys):
    """The vectorised largest gap equals the obvious loop: the plan, the reviews inside the interval
    in order, and its end (exit if by the extract, else the extract); overdue only while still on it."""
    d0, as_of = date(2012, 1, 2), date(2012, 10, 1)
    people = [("S0001", "PG1", d0)] * len(journeys)
    events = []
    for i, (plan, reviews, exit_) in enumerate(journeys):
        events += [(i, "referral", d0), (i, "action_plan", d0 + timedelta(plan))]
        events += [(i, "review", d0 + timedelta(r)) for r in reviews if r >= 0]
        if exit_ is not None:
            events.append((i, "programme_exit", d0 + timedelta(exit_)))
    cohort_ = cohort(FRAMEWORK, _mi(people), _events(events), as_of)
    per = times(FRAMEWORK.stage("pre-work-support"), FRAMEWORK, cohort_)
    end_day = (as_of - d0).days
    for i, (plan, reviews, exit_) in enumerate(journeys):
        pid = f"WP{i:08d}"
        if plan > end_day:  # the plan after the extract: not in the stage yet
            assert pid not in per.index
            continue
        left = exit_ is not None and exit_ <= end_day
        end = max(exit_ if left else end_day, plan)
        points = [plan, *sorted(r for r in reviews if plan <= r <= end), end]
        largest = max([0, *((b - a) / 7 for a, b in itertools.pairwise(points))])
        overdue = 0 if left else (points[-1] - points[-2]) / 7
        expected = "outstanding" if overdue > 13 else "late" if largest > 13 else "met"
        assert per.at[pid, "state"] == expected, (i, points)
        assert per.at[pid, "time"] == pytest.approx(largest), (i, points)


def test_the_sample_journey_passes_its_checks_and_leaves_the_mi_unchanged(tmp_path):
    """The generated events are consistent with the MI (same referral, attachment, plan and job start
    days; nothing before the referral or after the extract; one of each event but reviews), the same
    seed gives the same bytes, and asking for the journey changes no byte of the MI."""
    plain = write_sample(tmp_path / "a", 400, 5, months=30, formats=("csv",))
    with_journey = write_sample(tmp_path / "b", 400, 5, months=30, formats=("csv",), with_journey=True)
    assert plain[0].read_bytes() == with_journey[0].read_bytes()
    again = write_sample(tmp_path / "c", 400, 5, months=30, formats=("csv",), with_journey=True)
    assert with_journey[1].read_bytes() == again[1].read_bytes()
    spec = load_spec(SPEC)
    mi = validate(spec, [with_journey[0]]).table
    events = read_events(with_journey[1], spec.input, mi)
    assert set(events["event"]) == set(EVENTS)
    frame = mi.to_pandas().set_index("participant_id")
    for event, column in (("referral", "referral_date"), ("attachment", "attachment_date"),
                          ("action_plan", "action_plan_date"), ("job_start", "job_start_date")):  # fmt: skip
        got = events[events["event"] == event].set_index("participant_id")["date"].dt.date
        assert got.to_dict() == frame[column].dropna().to_dict(), event
    assert events["date"].max() <= pd.Timestamp("2013-11-30")
    table = generate(400, 5, months=30)
    assert journey(table, 5, months=30).equals(journey(table, 5, months=30))


def _csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(header)
        out.writerows(rows)
    return path


def test_bad_events_are_refused_naming_every_row_and_nothing_is_written(tmp_path):
    """An unknown participant, an event before the referral, a second attachment, an unknown event
    and a date that is not one: each named by row, column, value and rule; exit 1; no --out file."""
    paths = write_sample(tmp_path, 50, 2, months=12, formats=("csv",), with_journey=True)
    mi_rows = list(csv.reader(paths[0].open()))
    pid, referred = mi_rows[1][0], mi_rows[1][1]
    day = date.fromisoformat(referred)
    bad = _csv(tmp_path / "bad.csv", ["participant_id", "event", "date"], [
        [pid, "referral", referred],
        ["WP99999999", "attachment", referred],
        [pid, "first_contact", str(day - timedelta(1))],
        [pid, "attachment", referred],
        [pid, "attachment", referred],
    ])  # fmt: skip
    spec = load_spec(SPEC)
    mi = validate(spec, [paths[0]]).table
    with pytest.raises(ValidationFailed) as caught:
        read_events(bad, spec.input, mi)
    assert [(p.row, p.column, p.rule) for p in caught.value.problems] == [
        (2, "participant_id", "known_participant"),
        (3, "date", "before_referral"),
        (5, "event", "once"),
    ]
    typo = _csv(tmp_path / "typo.csv", ["participant_id", "event", "date"],
                [[pid, "atachment", referred], [pid, "referral", "2012-02-30"]])  # fmt: skip
    out = tmp_path / "out.csv"
    for events, expected in ((bad, "known_participant"), (typo, "atachment")):
        run = subprocess.run(
            [sys.executable, "-m", "opendata", "css", "measure", str(SPEC), str(paths[0]), "--events", str(events),
             "--framework", str(FRAMEWORK.path), "--out", str(out)],
            capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "400"},
        )  # fmt: skip
        assert run.returncode == 1 and expected in run.stdout + run.stderr and "Traceback" not in run.stderr
        assert not out.exists()


def test_css_measure_writes_every_stage_for_the_prime_and_its_subcontractors(tmp_path):
    """The command a statistician runs: exit 0, a row per stage for the prime and each subcontractor
    with cases, and the same bytes on a second run."""
    paths = write_sample(tmp_path, 3000, 2, months=30, formats=("csv",), with_journey=True)
    outs = []
    for name in ("one.csv", "two.csv"):
        outs.append(tmp_path / name)
        run = subprocess.run(
            [sys.executable, "-m", "opendata", "css", "measure", str(SPEC), str(paths[0]), "--events", str(paths[1]),
             "--framework", str(FRAMEWORK.path), "--out", str(outs[-1])],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
    assert outs[0].read_bytes() == outs[1].read_bytes()
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    run = subprocess.run(
        [sys.executable, "-m", "opendata", "css", "measure", str(SPEC), str(paths[0]), "--events", str(paths[1]),
         "--framework", str(FRAMEWORK.path), "--out", str(blocked / "p01.csv")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 1 and f"cannot write {blocked / 'p01.csv'}" in run.stdout + run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    table = pd.read_csv(outs[0])
    totals = table[table["provider"] == "Total"]
    assert totals["stage"].tolist() == [s.id for s in FRAMEWORK.stages]
    assert (totals["cases"] > 0).all()
    assert (table["cases"] == table["met"] + table["late"] + table["outstanding"]).all()
    per_stage = table[table["provider"] != "Total"].groupby("stage")[["cases", "met", "late"]].sum()
    assert (per_stage.loc[totals["stage"]].to_numpy() == totals[["cases", "met", "late"]].to_numpy()).all()
