"""Referral cohorts (issue 13): job outcomes within 12 months of referral, by month of referral.

A cohort is published only once the data covers its whole follow-up, so no cohort is shown low for
lack of time; its cells are protected like any other, with the relation the attacker knows (a
cohort's outcomes are some of its referrals); and the indicator built on it is computed from the
published cells only. The truth is recomputed here from the MI with pandas, apart from DuckDB.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from independent_attacker import load_version, read_mi, true_tables
from test_attack_classes import SPEC, attack, failures, one_release

from opendata.aggregate import mature_until

TABLE = "provider-by-referral-month"


@pytest.mark.parametrize(
    ("end", "window", "expected"), [("2012-08", 12, "2011-08"), ("2012-01", 12, "2011-01"), ("2012-03", 3, "2011-12")]
)
def test_a_cohort_is_complete_once_its_whole_window_has_passed(end, window, expected):
    """Referred on the last day of the cohort month, a participant has had ``window`` months by the
    end of the month ``window`` months later."""
    assert mature_until(end, window) == expected


def test_a_cut_off_after_the_data_completes_no_more_cohorts(tmp_path):
    """The cut-off of the official statistics may lie beyond the MI's last month (the demo's data
    ends in 2013-05, its cut-off is 2026-06): the cohorts complete are those the data covers."""
    from opendata.aggregate import aggregate, held_back
    from opendata.sample import write_sample
    from opendata.spec import load_spec
    from opendata.validate import validate

    write_sample(tmp_path, 2000, 3, months=15, formats=("csv",))
    spec = load_spec(SPEC)
    mi = validate(spec, [tmp_path / "work-programme-mi.csv"]).table
    for until in (None, "2026-06"):
        [table] = [t for t in aggregate(spec, mi, until=until) if t.spec.name == TABLE]
        months = sorted(set(table.frame["referral_month"]) - {"Total"})
        assert months[-1] == mature_until(max(spec_months(mi)), 12), until
    held = held_back(spec, mi, "2026-06")  # the cohorts not complete are reported as held back, by month
    assert sorted(held["job_outcomes_12m"]) and min(held["job_outcomes_12m"]) > months[-1]
    assert not any(held[m] for m in held if not spec.measures[m].cohort_months)  # nothing else lies after the cut-off


def spec_months(mi) -> set[str]:
    return {str(d)[:7] for d in mi.column("referral_date").to_pylist() if d is not None}


@pytest.fixture(scope="module")
def cohort_release(tmp_path_factory):
    """15 months of MI: cohorts of the first three months are complete (12 months of follow-up)."""
    return one_release(tmp_path_factory.mktemp("cohorts"), SPEC, rows=3000, months=15, seed=5)


@pytest.mark.slow
def test_only_complete_cohorts_are_published_and_the_table_says_so(cohort_release):
    mi, version = cohort_release
    frame = pd.read_parquet(version / "data" / f"{TABLE}.parquet")
    records = pd.read_csv(mi, dtype=str, keep_default_na=False)
    last = records["referral_date"].str[:7].max()
    months = sorted(set(frame["referral_month"]) - {"Total"})
    assert months == [m for m in sorted(set(records["referral_date"].str[:7])) if m <= mature_until(last, 12)]
    assert len(months) == 3
    descriptor = json.loads((version / "datapackage.json").read_text())
    resource = next(r for r in descriptor["resources"] if r["name"] == TABLE)
    assert f"up to {months[-1]}" in resource["description"]


@pytest.mark.slow
def test_published_cohort_counts_are_the_truth_within_rounding(cohort_release):
    mi, version = cohort_release
    [table] = [t for t in load_version(version) if t.name == TABLE]
    truth = true_tables(read_mi([mi]), [table])[table.version][TABLE]
    for measure in ("referrals", "job_outcomes_12m"):
        shown = table.frame[measure].notna().to_numpy()
        gap = np.abs(table.frame[measure].to_numpy()[shown] - truth[measure].to_numpy()[shown])
        assert shown.sum() > 0 and (gap <= 2).all()  # base 5: within 2 of the truth
    records = read_mi([mi])
    start = pd.to_datetime(records["referral_date"])
    late = records[(records["job_outcome_date"] != "")]
    late = late[pd.to_datetime(late["job_outcome_date"]) >= start[late.index] + pd.DateOffset(months=12)]
    assert len(late) > 0  # the window excludes some outcomes: it is not the plain count
    national = truth.set_index(["referral_month", "provider"]).loc[("Total", "Total")]
    assert 0 < national["job_outcomes_12m"] < national["referrals"]


@pytest.mark.slow
def test_independent_attacker_cannot_narrow_a_primary_cohort_cell(cohort_release):
    """The attacker holds the two measures of the cohort table in every table that publishes them
    (referrals are shared with the month tables), with the cohort relation (a cohort's outcomes are
    at most its referrals, cell by cell). Targets: the primaries of both measures in the cohort
    months. The other measures are left out: they bound referrals only through the running totals,
    the attack of issue 19 class 2, tested in tests/test_attack_classes.py; with them the LP is
    70 times slower."""
    mi, version = cohort_release
    keep = {"referrals", "job_outcomes_12m"}
    tables = [replace(t, measures=[m for m in t.measures if m in keep]) for t in load_version(version)]
    cohort_months = set(next(t for t in tables if t.name == TABLE).frame["referral_month"]) - {"Total"}
    model, truth, targets = attack(
        tables,
        {tables[0].version: read_mi([mi])},
        targets_filter=lambda k: k[0] == "job_outcomes_12m" or (k[0] == "referrals" and k[3] in cohort_months),
        relations=True,
    )
    assert len(targets) > 300
    intervals = model.intervals(targets, seed=truth)
    assert not failures(model, intervals, truth), failures(model, intervals, truth)[:20]


@pytest.mark.slow
def test_the_cohort_indicator_follows_the_published_cohort_cells(cohort_release):
    _, version = cohort_release
    indicators = pd.read_parquet(version / "data" / "indicators.parquet")
    rows = indicators[indicators["indicator"] == "job-outcomes-within-12-months"]
    table = pd.read_parquet(version / "data" / f"{TABLE}.parquet")
    assert set(rows["table"]) == {TABLE} and len(rows) == len(table)
    merged = rows.merge(table, left_on=["period", "entity"], right_on=["referral_month", "provider"])
    shown = merged["status"] == ""
    assert shown.any() and (merged.loc[~shown, "status"].isin(["c", "z"])).all()
    assert np.allclose(
        merged.loc[shown, "value"], merged.loc[shown, "job_outcomes_12m"] / merged.loc[shown, "referrals"]
    )


@pytest.mark.slow
def test_compare_finds_the_cohort_table_by_itself(cohort_release):
    """`opendata compare` with a cohort indicator reads the cohort table without --table."""
    _, version = cohort_release
    indicator = ["--indicator", "job-outcomes-within-12-months", "--json"]
    command = [sys.executable, "-m", "opendata.cli", "compare", version, "--entity", "Total", *indicator]
    run = subprocess.run(command, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    table = pd.read_parquet(version / "data" / f"{TABLE}.parquet").set_index(["referral_month", "provider"])
    national = table.loc[("Total", "Total")]
    assert summary["numerator"] == national["job_outcomes_12m"] and summary["denominator"] == national["referrals"]
