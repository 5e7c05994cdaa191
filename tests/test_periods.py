"""Quarters and years: period dimensions coarser than a month, and months with quarter subtotals.

A subcontractor by month is finer than the data supports (most of its cells are below the
threshold); by quarter it is not. A quarter table beside a month table is only safe if the two share
their quarter cells (the month table shows quarter subtotals), so the engine links them; these tests
check the codes, the population keys, the spec's refusal of an unlinked pair, and a release of the
sample by quarter end to end: valid, audited by the public audit, and attacked independently.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import frictionless
import numpy as np
import pandas as pd
import pytest
from independent_attacker import build_model, load_version, primary_vars, read_mi, true_tables
from shipped_specs import OUTSIDERS, OUTSIDERS_ANNUAL

from opendata.aggregate import period_codes
from opendata.errors import SpecError
from opendata.protection import population_keys
from opendata.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent
NAME = "work-programme-subcontractor-mi"
LATE = ("--late", "--reason", "tests release after the release time")


def edited_spec(work: Path) -> Path:
    """The tests' copy of the shipped specs and code lists in ``work/specs``: its monthly spec, to edit."""
    specs = work / "specs"
    shutil.copytree(OUTSIDERS.parent, specs)
    return specs / "work-programme.yaml"


def quarter_spec(work: Path, months_with_quarters: bool = True, level: str = "quarter") -> Path:
    """The shipped spec with subcontractors by quarter (or ``level``), beside CPA x month (with
    quarter subtotals unless ``months_with_quarters`` is False) and the cohorts by quarter of referral."""
    path = edited_spec(work)
    text = path.read_text()
    month = "    period: month\n    total: {code: Total, label: All months in this release}\n"
    assert month in text
    title = level.replace("_", " ")
    periods = f"[{level}, month]" if months_with_quarters else "month"
    text = text.replace(
        month,
        f"    period: {periods}\n    total: {{code: Total, label: All months in this release}}\n"
        f"  - name: {level}\n    title: {title.capitalize()}\n    description: The {title} of each event.\n"
        f"    period: {level}\n    total: {{code: Total, label: All {title}s in this release}}\n",
    )
    text = text.replace("    dimensions: [month, provider]\n", f"    dimensions: [{level}, provider]\n")
    text = text.replace("  - name: provider-by-month\n", f"  - name: provider-by-{level.replace('_', '-')}\n")
    text = text.replace(
        "      months its measures name.\n    period: month\n",
        f"      months its measures name.\n    period: {level}\n",
    )
    path.write_text(text)
    return path


def opendata(*args) -> subprocess.CompletedProcess:
    run = subprocess.run([sys.executable, "-m", "opendata.cli", *map(str, args)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr + run.stdout
    return run


def test_quarters_over_months_label_a_part_quarter_and_key_periods_by_who_they_count():
    months = ["2011-06", "2011-07", "2011-08", "2011-09", "2011-10"]
    dim = period_codes(months, ("quarter", "month"), "month", "Month", "", "Total", "All months")
    assert dim.codes == (
        "Total",
        "2011-Q2",
        "2011-06",
        "2011-Q3",
        "2011-07",
        "2011-08",
        "2011-09",
        "2011-Q4",
        "2011-10",
    )
    assert dim.parents["2011-07"] == "2011-Q3" and dim.parents["2011-Q3"] == "Total"
    assert dim.levels["2011-Q3"] == "quarter" and dim.levels["2011-10"] == "month"
    assert dim.labels["2011-Q3"] == "July to September 2011"
    assert dim.labels["2011-Q2"] == "April to June 2011 (part: June 2011 only)"
    assert dim.labels["2011-Q4"] == "October to December 2011 (part: October 2011 only)"
    frame = pd.DataFrame({"month": list(dim.codes)})
    keys = population_keys((dim,), frame).tolist()
    assert keys == [
        "month=2011-06..2011-10",
        "quarter=2011-Q2[2011-06..2011-06]",
        "month=2011-06",
        "quarter=2011-Q3",
        "month=2011-07",
        "month=2011-08",
        "month=2011-09",
        "quarter=2011-Q4[2011-10..2011-10]",
        "month=2011-10",
    ]


def test_a_table_by_quarter_keeps_a_first_part_quarter_and_drops_an_unfinished_last_one():
    months = pd.period_range("2011-06", "2012-05", freq="M").strftime("%Y-%m").tolist()
    dim = period_codes(months, ("quarter",), "quarter", "Quarter", "", "Total", "All quarters")
    assert dim.codes == ("Total", "2011-Q2", "2011-Q3", "2011-Q4", "2012-Q1")  # 2012-Q2 has two months of three
    assert dim.span == ("2011-06", "2012-03")
    frame = pd.DataFrame({"quarter": list(dim.codes)})
    assert population_keys((dim,), frame).tolist()[:2] == [
        "month=2011-06..2012-03",
        "quarter=2011-Q2[2011-06..2011-06]",
    ]
    years = period_codes(months, ("year",), "year", "Year", "", "Total", "All years")
    assert years.codes == ("Total", "2011") and years.labels["2011"] == "2011 (part: June to December 2011 only)"


def test_a_quarter_table_beside_months_without_quarter_subtotals_is_refused(tmp_path):
    spec = quarter_spec(tmp_path, months_with_quarters=False)
    with pytest.raises(
        SpecError, match=r"cpa-payment-group-by-month publishes referrals by month and provider-by-quarter by quarter"
    ):
        load_spec(spec)


def test_period_levels_must_go_from_the_coarsest_down(tmp_path):
    spec = quarter_spec(tmp_path)
    spec.write_text(spec.read_text().replace("period: [quarter, month]", "period: [month, quarter]"))
    with pytest.raises(SpecError, match="coarsest down"):
        load_spec(spec)


@pytest.fixture(scope="module")
def by_quarter(tmp_path_factory) -> tuple[Path, Path, Path]:
    """Seven months of MI (June to December 2011) released by quarter, then ten months as 1.1.0."""
    work = tmp_path_factory.mktemp("quarters")
    spec = quarter_spec(work)
    opendata("sample", "--out", work / "mi", "--rows", 3000, "--months", 10, "--seed", 5, "--format", "csv", "-q")
    full = pd.read_csv(work / "mi" / "work-programme-mi.csv", dtype=str, keep_default_na=False)
    first = work / "first" / "work-programme-mi.csv"
    first.parent.mkdir()
    early = full[full["referral_date"] < "2012-01-01"].copy()
    for col in ("attachment_date", "action_plan_date", "job_start_date", "job_outcome_date"):
        early.loc[early[col] >= "2012-01-01", col] = ""
    early.loc[early["job_outcome_date"] == "", "sustainment_payments"] = "0"
    early.to_csv(first, index=False)
    out = work / "releases"
    opendata("release", spec, first, "--out", out, "--release-time", "2026-11-12T09:30:00+00:00", *LATE, "-q")
    opendata("publish", "--out", out, "-q")
    opendata("release", spec, work / "mi" / "work-programme-mi.csv", "--out", out,
             "--release-time", "2026-11-26T09:30:00+00:00", *LATE, "-q")  # fmt: skip
    opendata("publish", "--out", out, "-q")
    return first, work / "mi" / "work-programme-mi.csv", out / NAME


@pytest.mark.slow
def test_a_release_by_quarter_is_valid_linked_and_audited(by_quarter):
    series = by_quarter[2]
    version = series / "1.0.0"
    assert frictionless.validate(version / "datapackage.json").valid
    quarters = pd.read_csv(version / "data" / "provider-by-quarter.csv", dtype=str, keep_default_na=False)
    assert sorted(set(quarters["quarter"])) == ["2011-Q2", "2011-Q3", "2011-Q4", "Total"]
    months = pd.read_csv(version / "data" / "cpa-payment-group-by-month.csv", dtype=str, keep_default_na=False)
    assert {"2011-Q3", "2011-07"} <= set(months["month"])
    # the same quarter, national, in both tables: one cell, one status, one value
    national = quarters[quarters["provider"] == "Total"].set_index("quarter")
    sub = months[(months["cpa"] == "Total") & (months["payment_group"] == "Total")].set_index("month")
    for q in ("2011-Q3", "2011-Q4"):
        assert national.loc[q, "referrals"] == sub.loc[q, "referrals"]
    descriptor = json.loads((version / "datapackage.json").read_text())
    field = next(
        f
        for r in descriptor["resources"]
        if r["name"] == "provider-by-quarter"
        for f in r["schema"]["fields"]
        if f["name"] == "quarter"
    )
    assert field["opendata:months"] == {"from": "2011-06", "to": "2011-12"}
    run = opendata("audit", version)
    assert "audit passed" in run.stdout


@pytest.mark.slow
def test_compare_over_a_table_by_quarter_draws_its_trend_by_quarter(by_quarter, tmp_path):
    """The trend's points are the table's finest period: its chart, text and JSON say quarter."""
    series = by_quarter[2]
    run = opendata("compare", series / "1.1.0", "--entity", "CPA01", "--indicator", "attachments-per-referral",
                   "--table", "provider-by-quarter", "--charts", tmp_path, "--json")  # fmt: skip
    result = json.loads(run.stdout)
    assert result["period_level"] == "quarter" and {t["period"] for t in result["trend"]} >= {"2011-Q3", "2011-Q4"}
    assert "by quarter: CPA01" in next(tmp_path.glob("trend-*.svg")).read_text()
    text = next(tmp_path.glob("trend-*.txt")).read_text()
    assert "quarters with a value shown" in text and "month" not in text.lower(), text


@pytest.mark.slow
def test_the_next_version_by_quarter_links_the_earlier_quarters(by_quarter):
    _, _, series = by_quarter
    descriptor = json.loads((series / "1.1.0" / "datapackage.json").read_text())
    audit = descriptor["opendata:disclosure"]["tables"]["provider-by-quarter"]["referrals"]["audit"]
    linked = {(v["table"], v["version"]) for v in audit["earlier_versions"]}
    assert ("provider-by-quarter", "1.0.0") in linked and ("cpa-payment-group-by-month", "1.0.0") in linked
    assert not audit.get("earlier_not_linked"), audit.get("earlier_not_linked")
    mi = series.parent.parent / "mi" / "work-programme-mi.csv"
    spec = series.parent.parent / "specs" / "work-programme.yaml"
    run = opendata("audit", series / "1.1.0", "--previous", series / "1.0.0", "--spec", spec, "--mi", mi)
    assert "audit passed" in run.stdout


@pytest.mark.slow
def test_an_independent_attacker_narrows_no_primary_across_quarters_and_months(by_quarter):
    """Both versions, all their tables, rounding intervals, the quarters of one table the sums of the
    months of another: no primary cell (true frequency 1..9) narrower than 10."""
    first, full, series = by_quarter
    tables = load_version(series / "1.0.0") + load_version(series / "1.1.0")
    model = build_model(tables, relations=False)
    truths = true_tables(read_mi([first]), [t for t in tables if t.version == "1.0.0"])
    truths |= true_tables(read_mi([full]), [t for t in tables if t.version == "1.1.0"])
    truth, clashes = model.truth_vector(truths)
    assert not clashes, clashes[:5]
    targets = primary_vars(model, truths)
    targets = targets[np.linspace(0, len(targets) - 1, min(300, len(targets))).round().astype(int)]
    intervals = model.intervals(np.unique(targets), seed=truth)
    narrow = intervals[intervals["width"] < 10]
    assert narrow.empty, [model.describe(v) for v in narrow["var"][:10]]


def test_a_release_with_tables_by_quarter_ends_at_a_quarters_end_and_reports_the_months_after(tmp_path):
    """Eight months of MI (June 2011 to January 2012): every table, the monthly ones too, ends in
    December, so no table's total differs from another's by a part quarter (a difference anyone
    could take); January is held back, and reported, until its quarter is whole."""
    from opendata.aggregate import aggregate, held_back
    from opendata.sample import write_sample
    from opendata.validate import validate

    [path] = write_sample(tmp_path / "mi", 2000, 7, months=8, formats=("csv",))
    spec = load_spec(quarter_spec(tmp_path))
    mi = validate(spec, [path]).table
    tables = {t.spec.name: t for t in aggregate(spec, mi)}
    assert tables["provider-by-quarter"].dimensions[0].span == ("2011-06", "2011-12")
    assert tables["cpa-payment-group-by-month"].dimensions[0].span == ("2011-06", "2011-12")
    assert "2012-01" not in tables["cpa-payment-group-by-month"].dimensions[0].codes
    held = held_back(spec, mi, "2026-06")
    assert set(held["referrals"]) == {"2012-01"} and held["referrals"]["2012-01"] > 0
    assert held_back(spec, mi, None)["referrals"] == held["referrals"]  # without a calendar too


def _with_table(work: Path, dimensions: str) -> Path:
    """The tests' copy of the shipped spec with one more table of referrals and job starts."""
    path = edited_spec(work)
    text = path.read_text()
    path.write_text(
        text.replace(
            "tables:\n",
            f"tables:\n  - name: extra\n    title: Referrals and job starts\n    dimensions: {dimensions}\n"
            "    measures: [referrals, job_starts]\n",
            1,
        )
    )
    return path


@pytest.mark.slow
def test_a_table_of_months_alone_is_released_linked_and_audited(tmp_path):
    """National figures by month (one dimension, the period) are the national row of the provider
    table: the same values and the same cells hidden, and the public audit passes."""
    spec = _with_table(tmp_path, "[month]")
    opendata("sample", "--out", tmp_path / "mi", "--rows", 1500, "--months", 3, "--seed", 3, "--format", "csv", "-q")
    out = tmp_path / "releases"
    opendata("release", spec, tmp_path / "mi" / "work-programme-mi.csv", "--out", out,
             "--release-time", "2026-11-12T09:30:00+00:00", *LATE, "-q")  # fmt: skip
    opendata("publish", "--out", out, "-q")
    version = out / NAME / "1.0.0"
    assert frictionless.validate(version / "datapackage.json").valid
    extra = pd.read_csv(version / "data" / "extra.csv", dtype=str, keep_default_na=False).set_index("month")
    provider = pd.read_csv(version / "data" / "provider-by-month.csv", dtype=str, keep_default_na=False)
    national = provider[provider["provider"] == "Total"].set_index("month")
    assert list(extra.index) == ["Total", "2011-06", "2011-07", "2011-08"]
    for measure in ("referrals", "job_starts"):
        assert extra[measure].to_dict() == national.loc[extra.index, measure].to_dict()
    assert int(extra.loc["Total", "referrals"]) == 1500
    assert "audit passed" in opendata("audit", version).stdout


def test_a_table_without_a_period_is_refused_before_anything_is_written(tmp_path):
    """A table by CPA alone would count the release's months without a key linking its cells to
    the CPA totals of the other tables (or to earlier versions): a CPA total hidden there would be
    read here. Until keys carry the release's months, the release refuses it, naming the table."""
    spec = _with_table(tmp_path, "[cpa]")
    opendata("sample", "--out", tmp_path / "mi", "--rows", 300, "--months", 2, "--seed", 3, "--format", "csv", "-q")
    out = tmp_path / "releases"
    run = subprocess.run(
        [sys.executable, "-m", "opendata.cli", "release", str(spec), str(tmp_path / "mi" / "work-programme-mi.csv"),
         "--out", str(out), "--release-time", "2026-11-12T09:30:00+00:00", *LATE],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode != 0
    assert "table 'extra' has no period dimension" in run.stderr and str(spec) in run.stderr
    assert "Traceback" not in run.stderr
    assert not (out / NAME).exists() and not any((tmp_path / "staging").glob("**/datapackage.json"))


def test_financial_years_run_april_to_march_and_hold_quarters_and_months():
    """UK financial years as DWP publishes them: 2011/12 is April 2011 to March 2012 (never
    ``2011-12``, a month), calendar quarters nest in them, the first is labelled as part where the
    data starts, and a table by financial year ends at the last whole one."""
    months = pd.period_range("2011-06", "2013-05", freq="M").strftime("%Y-%m").tolist()
    dim = period_codes(months, ("financial_year", "quarter", "month"), "month", "Month", "", "Total", "All months")
    assert [c for c in dim.codes if dim.levels[c] != "month"][:6] == [
        "Total", "2011/12", "2011-Q2", "2011-Q3", "2011-Q4", "2012-Q1",
    ]  # fmt: skip
    assert dim.parents["2012-03"] == "2012-Q1" and dim.parents["2012-Q1"] == "2011/12"
    assert dim.parents["2012-04"] == "2012-Q2" and dim.parents["2012-Q2"] == "2012/13"
    assert dim.labels["2011/12"] == "April 2011 to March 2012 (part: June 2011 to March 2012 only)"
    assert dim.labels["2012/13"] == "April 2012 to March 2013"
    keys = dict(zip(dim.codes, population_keys((dim,), pd.DataFrame({"month": list(dim.codes)})), strict=True))
    assert keys["2011/12"] == "financial_year=2011/12[2011-06..2012-03]" and keys["2012/13"] == "financial_year=2012/13"
    alone = period_codes(months, ("financial_year",), "fy", "Financial year", "", "Total", "All")
    assert alone.codes == ("Total", "2011/12", "2012/13") and alone.span == ("2011-06", "2013-03")
    assert period_codes(["1999-12"], ("financial_year", "month"), "m", "M", "", "T", "T").codes == (
        "T",
        "1999/00",
        "1999-12",
    )


def test_financial_years_are_counted_in_the_database_as_in_python():
    """The SQL that puts each record's month in its financial year (DuckDB) agrees with the codes
    of the table's grid, for every month of three decades: a record counted in another year than
    its cell would be a code outside the grid, or worse, a cell in the wrong year."""
    import duckdb

    from opendata.aggregate import _period_expr, months_in, period_of

    months = pd.period_range("1999-01", "2031-12", freq="M").strftime("%Y-%m").tolist()
    con = duckdb.connect()
    con.register("t", pd.DataFrame({"m": months}))
    sql = con.execute(f"SELECT m, {_period_expr('m', 'financial_year')} AS fy FROM t ORDER BY m").df()
    assert sql["fy"].tolist() == [period_of(m, "financial_year") for m in months]
    assert all(m in months_in(period_of(m, "financial_year"), "financial_year") for m in months)
    assert period_of("2012-03", "financial_year") == "2011/12" and period_of("2012-04", "financial_year") == "2012/13"


def test_calendar_and_financial_years_are_not_mixed(tmp_path):
    spec = quarter_spec(tmp_path, level="financial_year")
    text = spec.read_text()
    spec.write_text(text.replace("period: [financial_year, month]", "period: [year, financial_year, month]"))
    with pytest.raises(SpecError, match="calendar years and financial years do not nest"):
        load_spec(spec)
    spec.write_text(text.replace("period: [financial_year, month]", "period: [year, month]"))
    with pytest.raises(
        SpecError, match="cpa-payment-group-by-month has calendar years and provider-by-referral-month financial years"
    ):
        load_spec(spec)


@pytest.mark.slow
def _check_standard_and_scorecard(work: Path, version: Path) -> None:
    """The demo spec's Customer Service Standard and scorecard (issue 16): the standard's table spans
    the release's year (March's referrals had April, in the data, to attach), ``opendata compare``
    answers on its share, the scorecard is in the package, a spreadsheet sheet and the page, and a
    scorecard changed by hand is refused by the audit (the package above passed it)."""
    from opendata.audit import check_derived, read_published
    from opendata.spreadsheet import build_book

    standards = pd.read_csv(version / "data" / "provider-by-referral-year-standards.csv", dtype=str)
    assert sorted(set(standards["referral_year_standards"])) == ["2011/12", "Total"]
    card = pd.read_csv(version / "data" / "scorecard.csv", dtype=str, keep_default_na=False)
    missed = card[card["indicator"] == "missed-attachment-standard"]
    assert len(missed) == 40 and (missed["contractual_level"] == "0.1").all()  # every prime
    assert set(missed["against_level"]) <= {"", "met", "not met", "not clear"}
    compared = opendata("compare", version, "--entity", "CPA01", "--indicator", "missed-attachment-standard")
    assert "missed-attachment-standard of CPA01" in compared.stdout
    book = build_book(version, json.loads((version / "datapackage.json").read_text()))
    assert "Balanced scorecard of prime contracts" in [s.title for s in book.sheets]
    assert "Scorecard of prime contracts" in (version / "index.html").read_text()
    copy = work / "tampered"
    shutil.copytree(version, copy)
    text = (copy / "data" / "scorecard.csv").read_text()
    (copy / "data" / "scorecard.csv").write_text(text.replace(",0.1,", ",0.5,", 1))  # a laxer level
    descriptor, tables = read_published(copy)
    assert check_derived(copy, descriptor, tables) == [
        "data/scorecard.csv: it is not the scorecard the published indicators give"
    ]


@pytest.mark.slow
def test_a_release_by_financial_year_is_valid_linked_and_audited(tmp_path):
    """The demo's spec (``work-programme-annual.yaml``, without the intruders): subcontractors by
    financial year beside CPA x payment group x month with financial-year subtotals, on a year of MI
    from June 2011: the release ends in March 2012 (April and May wait for 2012/13 to be whole), the
    year is the same cell in both tables, no CPA figure is a secondary, and the public audit passes."""
    spec = OUTSIDERS_ANNUAL
    opendata("sample", "--out", tmp_path / "mi", "--rows", 2000, "--months", 12, "--seed", 4, "--format", "csv", "-q")
    out = tmp_path / "releases"
    run = opendata("release", spec, tmp_path / "mi" / "work-programme-mi.csv", "--out", out,
                   "--release-time", "2026-11-12T09:30:00+00:00", *LATE)  # fmt: skip
    assert "held back until their period is whole: referrals" in run.stdout and "(2012-04 to 2012-05)" in run.stdout
    opendata("publish", "--out", out, "-q")
    version = out / NAME / "1.0.0"
    assert frictionless.validate(version / "datapackage.json").valid
    years = pd.read_csv(version / "data" / "provider-by-financial-year.csv", dtype=str, keep_default_na=False)
    assert sorted(set(years["financial_year"])) == ["2011/12", "Total"]
    months = pd.read_csv(version / "data" / "cpa-payment-group-by-month.csv", dtype=str, keep_default_na=False)
    assert set(months["month"]) == {"Total", "2011/12", *[f"2011-{m:02d}" for m in range(6, 13)], "2012-01",
                                    "2012-02", "2012-03"}  # fmt: skip
    national = years[years["provider"] == "Total"].set_index("financial_year")
    sub = months[(months["cpa"] == "Total") & (months["payment_group"] == "Total")].set_index("month")
    for measure in ("referrals", "job_starts", "job_outcomes"):
        assert national.loc["2011/12", measure] == sub.loc["2011/12", measure]
    cpas = years[years["provider"].str.fullmatch(r"CPA\d+")]
    assert (cpas[["referrals", "attachments"]] != "[c]").all().all()  # 55 or more each here: never primary
    hierarchy = pd.read_csv(version / "hierarchies" / "financial_year.csv", dtype=str, keep_default_na=False)
    assert hierarchy.set_index("code").loc["2011/12", "label"].startswith("April 2011 to March 2012 (part:")
    assert "audit passed" in opendata("audit", version).stdout
    _check_standard_and_scorecard(tmp_path, version)
