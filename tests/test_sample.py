"""The synthetic MI must be deterministic, valid under the spec's rules and realistic enough to test SDC."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from opendata import sample

CODELISTS = Path(__file__).resolve().parents[1] / "specs" / "codelists"


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return sample.generate(50_000, seed=3)


@pytest.fixture(scope="module")
def long_table() -> pa.Table:
    """Three years of referrals, so the first year's cohorts have had two years to run."""
    return sample.generate(150_000, seed=5, start="2011-06", months=36)


def _read_codelist(name: str) -> list[dict[str, str]]:
    with open(CODELISTS / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _days(column: pa.ChunkedArray) -> np.ndarray:
    """Day numbers with nulls as NaN, so comparisons with a missing date are simply False."""
    return column.cast(pa.int32()).to_numpy(zero_copy_only=False).astype(float)


def test_committed_codelists_equal_generator_output():
    for name, text in sample.codelists().items():
        assert (CODELISTS / name).read_bytes() == text.encode("utf-8"), f"regenerate {name}"


def test_codelist_shape():
    cpas = _read_codelist("cpa.csv")
    assert [r["code"] for r in cpas] == [f"CPA{i:02d}" for i in range(1, 19)]
    assert {r["parent"] for r in cpas} == {"Total"}
    assert [r["code"] for r in _read_codelist("payment-groups.csv")] == [f"PG{i}" for i in range(1, 10)]
    providers = _read_codelist("providers.csv")
    levels = {lvl: [r for r in providers if r["level"] == lvl] for lvl in ("cpa", "prime_contract", "subcontractor")}
    assert len(levels["cpa"]) == 18
    assert 36 <= len(levels["prime_contract"]) <= 44
    assert 200 <= len(levels["subcontractor"]) <= 900
    assert len({r["code"] for r in providers}) == len(providers)
    per_cpa = {}
    for r in levels["prime_contract"]:
        per_cpa[r["parent"]] = per_cpa.get(r["parent"], 0) + 1
    assert set(per_cpa.values()) <= {2, 3} and len(per_cpa) == 18
    primes = {r["code"] for r in levels["prime_contract"]}
    assert {r["parent"] for r in levels["subcontractor"]} == primes
    own = [r for r in levels["subcontractor"] if r["label"].endswith(" own delivery")]
    assert sorted(r["parent"] for r in own) == sorted(primes)


def test_schema_and_column_order(table):
    assert table.schema.equals(sample.SCHEMA)
    assert table.column_names == list(sample.COLUMNS)
    assert table.num_rows == 50_000


def test_identifiers_unique_and_pseudonymous(table):
    ids = table["participant_id"]
    assert pc.all(pc.match_substring_regex(ids, r"^WP[0-9]{8}$")).as_py()
    assert pc.count_distinct(ids).as_py() == table.num_rows


def test_same_seed_same_table_other_seed_differs(table):
    assert sample.generate(50_000, seed=3).equals(table)
    assert not sample.generate(50_000, seed=4).equals(table)


def test_dates_in_window_and_rules_hold(table):
    ref = _days(table["referral_date"])
    first = np.datetime64("2011-06-01").astype(np.int64)
    extract = np.datetime64("2013-05-31").astype(np.int64)
    assert ref.min() >= first and ref.max() <= extract
    att, plan, start, outcome = (
        _days(table[c]) for c in ("attachment_date", "action_plan_date", "job_start_date", "job_outcome_date")
    )
    for earlier, later in ((ref, att), (att, plan), (att, start), (start, outcome)):
        both = ~np.isnan(earlier) & ~np.isnan(later)
        assert (later[both] >= earlier[both]).all()
    for when, then in ((plan, att), (start, att), (outcome, start)):
        assert not (~np.isnan(when) & np.isnan(then)).any()
    for d in (att, plan, start, outcome):
        assert np.nanmax(d) <= extract
    payments = table["sustainment_payments"].to_numpy()
    assert payments.min() >= 0 and payments.max() <= 30
    assert not ((payments > 0) & np.isnan(outcome)).any()


def test_codes_in_codelists_and_nesting(table):
    providers = {r["code"]: r for r in _read_codelist("providers.csv")}
    cpas = {r["code"] for r in _read_codelist("cpa.csv")}
    pgs = {r["code"] for r in _read_codelist("payment-groups.csv")}
    pairs = (
        table.select(["cpa", "prime_contract", "subcontractor"])
        .group_by(["cpa", "prime_contract", "subcontractor"])
        .aggregate([])
    )
    for cpa, prime, sub in zip(*(pairs[c].to_pylist() for c in pairs.column_names), strict=True):
        assert cpa in cpas
        assert providers[prime]["level"] == "prime_contract" and providers[prime]["parent"] == cpa
        assert providers[sub]["level"] == "subcontractor" and providers[sub]["parent"] == prime
    assert set(pc.unique(table["payment_group"]).to_pylist()) == pgs


def test_categories_consistent_with_payment_group(table):
    pg = table["payment_group"].to_numpy(zero_copy_only=False)
    age = table["age_band"].to_numpy(zero_copy_only=False)
    kind = table["referral_type"].to_numpy(zero_copy_only=False)
    assert (age[pg == "PG1"] == "18-24").all()
    assert not (age[pg == "PG2"] == "18-24").any()
    assert (kind[np.isin(pg, ["PG1", "PG2", "PG4", "PG9"])] == "mandatory").all()
    assert (kind[np.isin(pg, ["PG5", "PG8"])] == "voluntary").all()
    assert set(age) == {"18-24", "25-34", "35-49", "50+"}
    assert set(table["gender"].to_pylist()) == {"female", "male"}
    assert set(table["disability"].to_pylist()) == {"yes", "no"}
    shares = {g: (pg == g).mean() for g in sample.PG_CODES}
    assert shares["PG1"] + shares["PG2"] > 0.5
    assert shares["PG8"] < 0.02 and shares["PG9"] < 0.05


def test_attachment_rate_and_timeliness(long_table):
    ref = _days(long_table["referral_date"])
    att = _days(long_table["attachment_date"])
    observed = ref < np.datetime64("2013-06-01").astype(np.int64)  # a year before the extract
    rate = (~np.isnan(att[observed])).mean()
    assert 0.92 <= rate <= 0.96
    pg = long_table["payment_group"].to_numpy(zero_copy_only=False)
    gap = (att - ref)[~np.isnan(att)]
    pg_att = pg[~np.isnan(att)]
    assert (gap[pg_att != "PG9"] <= 15).mean() > 0.9
    assert (gap[pg_att == "PG9"] <= 25).mean() > 0.9


def test_two_year_job_outcome_rates(long_table):
    ref = _days(long_table["referral_date"])
    outcome = _days(long_table["job_outcome_date"])
    pg = long_table["payment_group"].to_numpy(zero_copy_only=False)
    cohort = ref < np.datetime64("2012-06-01").astype(np.int64)
    within = outcome - ref <= 730  # NaN (no outcome) compares False
    published = {"PG1": 0.364, "PG2": 0.317, "PG6": 0.151, "PG7": 0.054}
    for group, target in published.items():
        rate = within[cohort & (pg == group)].mean()
        assert abs(rate - target) < 0.03, (group, rate)


def test_many_small_cells():
    t = sample.generate(200_000, seed=11)
    months = pc.strftime(t["referral_date"], format="%Y-%m")
    cells = pa.table({"m": months, "s": t["subcontractor"]}).group_by(["m", "s"]).aggregate([("s", "count")])
    counts = cells["s_count"].to_numpy()
    assert ((counts >= 1) & (counts <= 9)).mean() > 0.3
    assert counts.max() > 200  # and a few large subcontractors


def test_aggregated_sums_equal_record_counts(table):
    agg = sample.aggregate_sample(table)
    assert agg.schema.equals(sample.AGGREGATED_SCHEMA)
    assert agg.column_names == ["month", "cpa", "prime_contract", "subcontractor", "payment_group", "referrals",
                                "attachments", "job_starts", "job_outcomes", "sustainment_payments"]  # fmt: skip
    assert pc.sum(agg["referrals"]).as_py() == table.num_rows
    for measure, field in (
        ("attachments", "attachment_date"),
        ("job_starts", "job_start_date"),
        ("job_outcomes", "job_outcome_date"),
    ):
        assert pc.sum(agg[measure]).as_py() == table.num_rows - table[field].null_count
    assert pc.sum(agg["sustainment_payments"]).as_py() == pc.sum(table["sustainment_payments"]).as_py()
    measures = np.column_stack([agg[c].to_numpy() for c in agg.column_names[5:9]])
    assert (measures.sum(axis=1) > 0).all()
    keys = agg.select(agg.column_names[:5]).group_by(agg.column_names[:5]).aggregate([])
    assert keys.num_rows == agg.num_rows
    # Counted by the month of each event: June 2011 referrals match the records.
    june = pc.equal(pc.strftime(table["referral_date"], format="%Y-%m"), "2011-06")
    in_june = pc.equal(agg["month"], "2011-06")
    assert pc.sum(pc.filter(agg["referrals"], in_june)).as_py() == pc.sum(june.cast(pa.int64())).as_py()


def test_write_sample_is_byte_identical(tmp_path):
    kwargs = dict(rows=5_000, seed=9, months=12, aggregated=True)
    first = sample.write_sample(tmp_path / "a" / "nested", **kwargs)
    second = sample.write_sample(tmp_path / "b", **kwargs)
    names = [p.name for p in first]
    assert names == [
        "work-programme-mi.csv",
        "work-programme-mi.parquet",
        "work-programme-mi-aggregated.csv",
        "work-programme-mi-aggregated.parquet",
    ]
    assert names == [p.name for p in second]
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
    assert sorted(p.name for p in (tmp_path / "a" / "nested").iterdir()) == sorted(names)  # no temp files left


def test_written_files_format(tmp_path):
    csv_path, parquet_path = sample.write_sample(tmp_path, rows=2_000, seed=2, months=6)
    raw = csv_path.read_bytes()
    assert b"\r" not in raw and raw.endswith(b"\n")
    text = raw.decode("utf-8")
    lines = text.split("\n")
    assert lines[0] == ",".join(sample.COLUMNS)
    first = lines[1].split(",")
    assert len(first) == len(sample.COLUMNS) and first[1].count("-") == 2 and len(first[1]) == 10
    assert ",," in text  # nulls are empty fields
    table = sample.generate(2_000, seed=2, months=6)
    assert pq.read_table(parquet_path).equals(table)
    convert = pacsv.ConvertOptions(column_types=sample.SCHEMA, strings_can_be_null=False)
    back = pacsv.read_csv(csv_path, convert_options=convert)
    assert back.cast(sample.SCHEMA).equals(table)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        sample.write_sample(tmp_path, rows=10, seed=1, formats=("xlsx",))
    with pytest.raises(ValueError):
        sample.generate(10, seed=1, start="June 2011")
    with pytest.raises(ValueError):
        sample.generate(10, seed=1, months=0)
