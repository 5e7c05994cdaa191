"""Customer Service Standards measured (issue 16): on MI whose answers are known by construction,
the timeliness measure counts exactly the referrals attached within their limit, in calendar or
working days, with the payment group's own limit; and it is published only for complete months."""

from __future__ import annotations

import csv
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest

from opendata.aggregate import aggregate
from opendata.spec import WithinDays, load_spec
from opendata.validate import validate

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "work-programme.yaml"
TABLE = "css-by-referral-month"
HEADER = [
    "participant_id", "referral_date", "cpa", "prime_contract", "subcontractor", "payment_group", "referral_type",
    "age_band", "gender", "disability", "attachment_date", "action_plan_date", "job_start_date", "job_outcome_date",
    "sustainment_payments",
]  # fmt: skip


def _write(path: Path, rows: list[tuple[date, str, date | None]]) -> Path:
    """One subcontractor's referrals: (referral date, payment group, attachment date or None)."""
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(HEADER)
        for i, (referred, group, attached) in enumerate(rows):
            out.writerow([f"WP{i:08d}", referred, "CPA07", "P15", "S0183", group, "mandatory", "25-34", "female",
                          "no", attached or "", "", "", "", 0])  # fmt: skip
    return path


def _cell(spec, path: Path, month: str) -> tuple[int, int]:
    mi = validate(spec, [path]).table
    [table] = [t for t in aggregate(spec, mi) if t.spec.name == TABLE]
    row = table.frame[(table.frame["referral_month_standards"] == month) & (table.frame["provider"] == "S0183")].iloc[0]
    return int(row["missed_attachment_standard"]), int(row["referrals"])


@pytest.mark.parametrize(("late_pg1", "late_pg9"), [(0, 0), (3, 2), (12, 8)])
def test_exactly_the_attachments_within_their_limit_are_counted(tmp_path, late_pg1, late_pg9):
    """n referrals in January 2012, k of them attached late: 15 days for PG1, 25 for PG9, day zero
    the referral; the measure counts the k and those never attached."""
    start = date(2012, 1, 3)
    rows = []
    for i in range(12):  # PG1: on time at 0..15 days (the 15th still on time), late at 16 days or more
        rows.append((start + timedelta(i), "PG1", start + timedelta(i + (16 + i if i < late_pg1 else i % 16))))
    for i in range(8):  # PG9: its own limit of 25 days
        rows.append((start + timedelta(i), "PG9", start + timedelta(i + (26 + i if i < late_pg9 else 16 + i))))
    rows.append((start, "PG1", None))  # never attached: not within the standard, still a referral
    rows.append((date(2012, 3, 30), "PG1", None))  # the data covers February: January's cohort is complete
    spec = load_spec(SPEC)
    missed, referrals = _cell(spec, _write(tmp_path / "mi.csv", rows), "2012-01")
    assert referrals == 21
    assert missed == late_pg1 + late_pg9 + 1  # the one never attached missed it too
    measure = spec.measures["missed_attachment_standard"]
    within = replace(measure, within_days=replace(measure.within_days, counts="within"))
    changed = replace(spec, measures={**spec.measures, "missed_attachment_standard": within})
    assert _cell(changed, tmp_path / "mi.csv", "2012-01") == (20 - late_pg1 - late_pg9, 21)


def test_working_days_skip_weekends_and_the_nations_bank_holidays(tmp_path):
    """Referred Wednesday 27 March 2024, attached Wednesday 17 April: 21 calendar days, but 13 working
    days in England and Wales (Good Friday and Easter Monday skipped), so within a 15-working-day limit."""
    spec = load_spec(SPEC)
    rows = [(date(2024, 3, 27), "PG1", date(2024, 4, 17)), (date(2024, 5, 31), "PG1", None)]
    path = _write(tmp_path / "mi.csv", rows)
    assert _cell(spec, path, "2024-03") == (1, 1)  # calendar days: 21 > 15, missed
    measure = spec.measures["missed_attachment_standard"]
    for limit, expected in ((13, 0), (12, 1)):
        working = replace(measure, within_days=WithinDays(limit, "working_days", "england-and-wales", counts="missed"))
        changed = replace(spec, measures={**spec.measures, "missed_attachment_standard": working})
        assert _cell(changed, path, "2024-03") == (expected, 1), limit


def test_the_latest_month_waits_until_every_referral_has_had_its_limit(tmp_path):
    spec = load_spec(SPEC)
    rows = [(date(2012, 1, 31), "PG9", date(2012, 2, 20)), (date(2012, 2, 28), "PG1", date(2012, 3, 1))]
    path = _write(tmp_path / "mi.csv", rows)
    mi = validate(spec, [path]).table
    [table] = [t for t in aggregate(spec, mi) if t.spec.name == TABLE]
    assert sorted(set(table.frame["referral_month_standards"]) - {"Total"}) == [
        "2012-01",
        "2012-02",
    ]  # data ends 2012-03
