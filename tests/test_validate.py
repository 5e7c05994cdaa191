"""Validation: every rule, a corpus of malformed inputs, and the same typed table from every format.

Bad inputs are generated into tmp_path from one valid set of rows built from the shipped spec's own
code lists, so the tests follow the code lists if they change.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opendata.errors import InputError, Problem, ValidationFailed
from opendata.spec import FieldSpec, InputSpec, ReleaseSpec, load_spec
from opendata.validate import ValidationReport, validate

SPECS = Path(__file__).resolve().parent.parent / "specs"


@pytest.fixture(scope="module")
def spec() -> ReleaseSpec:
    return load_spec(SPECS / "work-programme.yaml")


def codes(spec: ReleaseSpec) -> dict[str, str]:
    """A consistent cpa / prime / subcontractor chain and other codes, taken from the code lists."""
    providers = spec.input.field("subcontractor").codelist
    assert providers is not None
    subs = providers.at_level("subcontractor")
    sub = subs[0]
    prime = providers.parents[sub]
    other_sub = next(s for s in subs if providers.parents[providers.parents[s]] != providers.parents[prime])
    other_prime = providers.parents[other_sub]
    return {
        "sub": sub,
        "prime": prime,
        "cpa": providers.parents[prime],
        "other_sub": other_sub,
        "other_prime": other_prime,
        "other_cpa": providers.parents[other_prime],
        "pg": spec.input.field("payment_group").allowed_codes()[0],
    }


def good_rows(spec: ReleaseSpec, n: int = 12, start: int = 1) -> list[dict[str, str]]:
    """Valid record-level MI: every third participant never attached, so optional dates are empty."""
    c = codes(spec)
    rows = []
    for i in range(start, start + n):
        attached = i % 3 != 0
        rows.append(
            {
                "participant_id": f"WP{i:08d}",
                "referral_date": f"2012-01-{i % 28 + 1:02d}",
                "cpa": c["cpa"],
                "prime_contract": c["prime"],
                "subcontractor": c["sub"],
                "payment_group": c["pg"],
                "referral_type": "mandatory" if i % 2 else "voluntary",
                "age_band": "25-34",
                "gender": "female" if i % 2 else "male",
                "disability": "no",
                "attachment_date": "2012-02-01" if attached else "",
                "action_plan_date": "2012-02-03" if attached else "",
                "job_start_date": "2012-03-01" if attached else "",
                "job_outcome_date": "2012-06-01" if attached else "",
                "sustainment_payments": str(i % 4) if attached else "0",
            }
        )
    return rows


def write_csv(path: Path, rows: list[dict[str, str]], header: list[str] | None = None, **kw) -> Path:
    header = header if header is not None else list(rows[0])
    with path.open("w", newline="", encoding=kw.pop("encoding", "utf-8")) as handle:
        writer = csv.writer(handle, lineterminator=kw.pop("eol", "\n"))
        writer.writerow(header)
        for row in rows:
            writer.writerow([row.get(h, "") for h in header])
    return path


def typed_frame(spec: ReleaseSpec, rows: list[dict[str, str]]) -> pd.DataFrame:
    """The rows with real dates and integers, as a spreadsheet or Parquet file would hold them."""
    out: dict[str, list] = {}
    for f in spec.input.fields:
        values = [r[f.name] for r in rows]
        if f.type == "date":
            out[f.name] = [dt.date.fromisoformat(v) if v else None for v in values]
        elif f.type == "integer":
            out[f.name] = [int(v) if v else None for v in values]
        else:
            out[f.name] = [v or None for v in values]
    return pd.DataFrame(out)


def write_parquet(spec: ReleaseSpec, path: Path, rows: list[dict[str, str]]) -> Path:
    types = {"date": pa.date32(), "integer": pa.int64(), "string": pa.string(), "yearmonth": pa.string()}
    frame = typed_frame(spec, rows)
    table = pa.table({f.name: pa.array(frame[f.name].tolist(), types[f.type]) for f in spec.input.fields})
    pq.write_table(table, path)
    return path


def write_sheet(spec: ReleaseSpec, path: Path, rows: list[dict[str, str]], raw: bool = False) -> Path:
    frame = pd.DataFrame(rows) if raw else typed_frame(spec, rows)
    if raw:
        frame = frame.replace("", None)
    frame.to_excel(path, index=False, engine="odf" if path.suffix == ".ods" else "openpyxl")
    return path


def find(report: ValidationReport, rule: str) -> list[Problem]:
    return [p for p in report.problems if p.rule == rule]


def the(report: ValidationReport, rule: str) -> Problem:
    found = find(report, rule)
    assert found, f"no {rule!r} problem; got {[(p.rule, p.message) for p in report.problems]}"
    return found[0]


# --- valid input -------------------------------------------------------------------------------


def test_valid_inputs_in_every_format_give_identical_typed_tables(spec, tmp_path):
    rows = good_rows(spec)
    files = {
        "csv": write_csv(tmp_path / "mi.csv", rows),
        "parquet": write_parquet(spec, tmp_path / "mi.parquet", rows),
        "xlsx": write_sheet(spec, tmp_path / "mi.xlsx", rows),
        "ods": write_sheet(spec, tmp_path / "mi.ods", rows),
        "xlsx-text": write_sheet(spec, tmp_path / "mi-text.xlsx", rows, raw=True),
    }
    tables = {}
    for kind, path in files.items():
        report = validate(spec, [path])
        assert report.ok, (kind, [p.message for p in report.problems])
        assert report.rows == {str(path): len(rows)}
        tables[kind] = report.table
    first = tables["csv"]
    assert first.column_names == list(spec.input.names)
    assert first.schema.field("referral_date").type == pa.date32()
    assert first.schema.field("sustainment_payments").type == pa.int64()
    assert first.schema.field("cpa").type == pa.string()
    for kind, table in tables.items():
        assert table.equals(first), kind
    assert first.column("attachment_date").null_count == len(rows) // 3


def test_several_files_are_concatenated_in_order(spec, tmp_path):
    a = write_csv(tmp_path / "a.csv", good_rows(spec, 5, start=1))
    b = write_parquet(spec, tmp_path / "b.parquet", good_rows(spec, 7, start=100))
    report = validate(spec, [a, b])
    assert report.ok
    assert report.table.num_rows == 12
    assert report.table.column("participant_id")[5].as_py() == "WP00000100"
    assert report.rows == {str(a): 5, str(b): 7}


def test_bom_crlf_and_column_order_do_not_matter(spec, tmp_path):
    rows = good_rows(spec)
    header = list(reversed(list(rows[0])))
    path = write_csv(tmp_path / "bom.csv", rows, header=header, encoding="utf-8-sig", eol="\r\n")
    report = validate(spec, [path])
    assert report.ok, [p.message for p in report.problems]
    assert report.table.column_names == list(spec.input.names)


def test_empty_string_is_null_but_na_is_a_value(spec, tmp_path):
    rows = good_rows(spec)
    rows[1]["gender"] = "NA"
    report = validate(spec, [write_csv(tmp_path / "na.csv", rows)])
    p = the(report, "enum")
    assert (p.row, p.column, p.value) == (2, "gender", "NA")


def test_sample_output_validates(spec, tmp_path):
    sample = pytest.importorskip("opendata.sample")
    paths = sample.write_sample(tmp_path, 3000, 7, formats=("csv", "parquet"))
    tables = []
    for path in paths:
        report = validate(spec, [path])
        assert report.ok, [p.message for p in report.problems[:5]]
        tables.append(report.table)
    assert tables[0].equals(tables[1])


# --- the report --------------------------------------------------------------------------------


def test_problems_sorted_and_raise_for_problems(spec, tmp_path):
    rows = good_rows(spec)
    rows[5]["gender"] = "x"
    rows[2]["age_band"] = "17"
    rows[2]["disability"] = "maybe"
    b = write_csv(tmp_path / "b.csv", rows)
    a = write_csv(tmp_path / "a.csv", [{**r, "participant_id": r["participant_id"].replace("WP", "WQ")} for r in rows])
    report = validate(spec, [b, a])
    assert not report.ok and report.table is None
    keys = [(p.file, p.row or 0, p.column or "") for p in report.problems]
    assert keys == sorted(keys)
    assert report.problems[0].file == str(a)
    assert report.total_problems == len(report.problems) == len(rows) + 6
    assert report.counts == {"pattern": len(rows), "enum": 6}
    with pytest.raises(ValidationFailed) as exc:
        report.raise_for_problems()
    assert exc.value.total == report.total_problems and exc.value.problems == report.problems
    validate(spec, [write_csv(tmp_path / "ok.csv", good_rows(spec))]).raise_for_problems()


def test_detail_is_capped_but_every_problem_counted(spec, tmp_path):
    rows = good_rows(spec, 40)
    for r in rows:
        r["gender"] = "unknown"
        r["age_band"] = "old"
    report = validate(spec, [write_csv(tmp_path / "many.csv", rows)], max_detail=10)
    assert report.total_problems == 80
    genders = [p for p in report.problems if p.column == "gender"]
    assert len(genders) == 11  # ten listed and one summary
    summary = next(p for p in genders if p.row is None)
    assert "40 rows break rule enum" in summary.message and "first 10" in summary.message
    assert [p.row for p in genders if p.row is not None] == list(range(1, 11))


def test_every_file_is_reported_in_one_run(spec, tmp_path):
    bad_rows = good_rows(spec)
    bad_rows[0]["referral_date"] = "yesterday"
    paths = [
        tmp_path / "missing.csv",
        write_csv(tmp_path / "bad.csv", bad_rows),
        tmp_path / "notes.txt",
        write_csv(tmp_path / "ok.csv", good_rows(spec, 3, start=50)),
    ]
    (tmp_path / "notes.txt").write_text("hello")
    report = validate(spec, paths)
    assert {p.file for p in report.problems} == {str(paths[0]), str(paths[1]), str(paths[2])}
    assert report.rows[str(paths[3])] == 3


def test_validate_takes_an_input_spec_and_unique_fields(tmp_path):
    inp = InputSpec(
        kind="records",
        fields=(
            FieldSpec("code", "string", "a code", required=True, unique=True),
            FieldSpec("month", "yearmonth", "a month", minimum="2011-06", maximum="2017-12"),
        ),
        primary_key=(),
        rules=(),
    )
    path = tmp_path / "u.csv"
    path.write_text("code,month\nA,2011-06\nB,2011-13\nA,2011-05\nC,2018-01\nB,\n")
    report = validate(inp, [path])
    dupes = find(report, "unique")
    assert [(p.row, p.value) for p in dupes] == [(3, "A"), (5, "B")]
    assert "first seen in" in dupes[0].message and "row 1 (line 2)" in dupes[0].message
    assert [(p.row, p.value) for p in find(report, "type")] == [(2, "2011-13")]
    assert [(p.row, p.value) for p in find(report, "minimum")] == [(3, "2011-05")]
    assert [(p.row, p.value) for p in find(report, "maximum")] == [(4, "2018-01")]


def test_aggregated_spec_composite_primary_key(tmp_path):
    agg = load_spec(SPECS / "work-programme-aggregated.yaml")
    providers = agg.input.field("subcontractor").codelist
    sub = providers.at_level("subcontractor")[0]
    prime = providers.parents[sub]
    cpa = providers.parents[prime]
    pg = agg.input.field("payment_group").allowed_codes()
    header = list(agg.input.names)
    rows = []
    for month, group in [("2012-01", pg[0]), ("2012-01", pg[1]), ("2012-02", pg[0]), ("2012-01", pg[0])]:
        values = {"month": month, "cpa": cpa, "prime_contract": prime, "subcontractor": sub, "payment_group": group}
        rows.append({h: values.get(h, "1") for h in header})
    report = validate(agg, [write_csv(tmp_path / "agg.csv", rows, header)])
    p = the(report, "primary_key")
    assert p.row == 4 and p.column == "month, subcontractor, payment_group"
    assert f"month=2012-01, subcontractor={sub}, payment_group={pg[0]}" in p.value
    assert report.total_problems == 1


# --- single-field rules ------------------------------------------------------------------------

CELL_CASES = [
    # (column, bad value, rule, words in the message)
    ("referral_date", "01/02/2012", "type", "YYYY-MM-DD"),
    ("referral_date", "2012-02-30", "type", "valid date"),
    ("referral_date", "2010-12-31", "minimum", "2011-06-01"),
    ("sustainment_payments", "two", "type", "whole number"),
    ("sustainment_payments", "0x1F", "type", "whole number"),
    ("sustainment_payments", "2.5", "type", "whole number"),
    ("sustainment_payments", "-1", "minimum", "minimum 0"),
    ("sustainment_payments", "31", "maximum", "maximum 30"),
    ("gender", "F", "enum", "female, male"),
    ("cpa", "CPA99", "codelist", "cpa.csv"),
    ("payment_group", "PG0", "codelist", "payment-groups.csv"),
    ("participant_id", "WP123", "pattern", "^WP[0-9]{8}$"),
    ("participant_id", "xWP00000001", "pattern", "^WP[0-9]{8}$"),
    ("gender", "", "required", "required"),
]


@pytest.mark.parametrize(("column", "value", "rule", "words"), CELL_CASES)
def test_single_field_rules(spec, tmp_path, column, value, rule, words):
    rows = good_rows(spec)
    rows[6][column] = value  # a participant with a job outcome, so cross-field rules stay quiet
    path = write_csv(tmp_path / "cell.csv", rows)
    report = validate(spec, [path])
    p = the(report, rule)
    assert (p.file, p.row, p.column, p.value) == (str(path), 7, column, value or None)
    assert f"{path} row 7 (line 8), column {column}" in p.message
    assert words in p.message and f"(rule: {rule})" in p.message
    if value:
        assert repr(value) in p.message
    assert report.total_problems == 1, [q.message for q in report.problems]


def test_level_names_the_level_found(spec, tmp_path):
    c = codes(spec)
    rows = good_rows(spec)
    rows[0]["subcontractor"] = c["prime"]
    report = validate(spec, [write_csv(tmp_path / "level.csv", rows)])
    p = the(report, "level")
    assert (p.row, p.column, p.value) == (1, "subcontractor", c["prime"])
    assert "prime_contract code" in p.message and "not a subcontractor code" in p.message
    assert not find(report, "nested")  # a code that failed its own check is not also checked for nesting


# --- cross-field rules -------------------------------------------------------------------------


def test_date_order(spec, tmp_path):
    rows = good_rows(spec)
    rows[0]["job_outcome_date"] = "2012-02-15"  # before the job start on 2012-03-01
    report = validate(spec, [write_csv(tmp_path / "order.csv", rows)])
    p = the(report, "date_order")
    assert (p.row, p.column, p.value) == (1, "job_outcome_date", "2012-02-15")
    assert "before job_start_date 2012-03-01" in p.message
    assert report.total_problems == 1


def test_requires_counts_zero_as_absent(spec, tmp_path):
    rows = good_rows(spec)
    assert rows[2]["job_outcome_date"] == "" and rows[2]["sustainment_payments"] == "0"
    rows[5]["sustainment_payments"] = "3"  # row 6 has no job outcome
    rows[8]["job_start_date"] = "2012-01-05"  # row 9 was never attached
    report = validate(spec, [write_csv(tmp_path / "requires.csv", rows)])
    found = {(p.row, p.column, p.value) for p in find(report, "requires")}
    assert found == {(6, "sustainment_payments", "3"), (9, "job_start_date", "2012-01-05")}
    assert "job_outcome_date is empty" in find(report, "requires")[0].message


def test_nested(spec, tmp_path):
    c = codes(spec)
    rows = good_rows(spec)
    rows[3]["cpa"] = c["other_cpa"]
    report = validate(spec, [write_csv(tmp_path / "nested.csv", rows)])
    p = the(report, "nested")
    assert (p.row, p.column, p.value) == (4, "prime_contract", c["prime"])
    assert f"belongs to cpa {c['cpa']!r}" in p.message and f"cpa is {c['other_cpa']!r}" in p.message
    assert report.total_problems == 1


def test_primary_key_across_files_names_both(spec, tmp_path):
    a = write_csv(tmp_path / "a.csv", good_rows(spec, 5))
    b = write_csv(tmp_path / "b.csv", good_rows(spec, 5, start=4))
    report = validate(spec, [a, b])
    dupes = find(report, "primary_key")
    assert [(p.file, p.row, p.value) for p in dupes] == [(str(b), 1, "WP00000004"), (str(b), 2, "WP00000005")]
    assert f"first seen in {a} row 4 (line 5)" in dupes[0].message


# --- the corpus of malformed inputs ------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00\x1f\xf3\xffa"


def zip_bomb(spec: ReleaseSpec, tmp: Path) -> list[Path]:
    """A real XLSX whose sheet is padded to 64 MiB of blanks: 64 KiB on disk."""
    from test_ingest import _bomb

    _bomb(tmp / "mi.xlsx", 64)
    return [tmp / "mi.xlsx"]


def _corpus() -> list[tuple[str, Callable[[ReleaseSpec, Path], list[Path]], str, int | None, str | None]]:
    """(name, make files, rule, row, column): each file set must give that problem."""

    def csv_with(change: Callable[[list[dict[str, str]]], None], name: str = "mi.csv"):
        def make(spec, tmp):
            rows = good_rows(spec)
            change(rows)
            return [write_csv(tmp / name, rows)]

        return make

    def raw_bytes(data: bytes | Callable[[ReleaseSpec, Path], bytes], name: str):
        def make(spec, tmp):
            path = tmp / name
            path.write_bytes(data(spec, tmp) if callable(data) else data)
            return [path]

        return make

    def csv_text(spec, tmp) -> bytes:
        return write_csv(tmp / "good.csv", good_rows(spec)).read_bytes()

    def latin1(spec, tmp) -> bytes:
        return csv_text(spec, tmp).replace(b"female", "fémale".encode("latin-1"), 1)

    def truncated_csv(spec, tmp) -> bytes:
        data = csv_text(spec, tmp)
        return data[: data.rstrip(b"\n").rfind(b",", 0, len(data) - 40)]

    def ragged(spec, tmp) -> bytes:
        lines = csv_text(spec, tmp).split(b"\n")
        lines[3] = lines[3].rsplit(b",", 3)[0]
        return b"\n".join(lines)

    def parquet_bytes(spec, tmp) -> bytes:
        return write_parquet(spec, tmp / "good.parquet", good_rows(spec)).read_bytes()

    def sheet(name: str, change: Callable[[list[dict[str, str]]], None] | None = None):
        def make(spec, tmp):
            rows = good_rows(spec)
            if change:
                change(rows)
            return [write_sheet(spec, tmp / name, rows, raw=change is not None)]

        return make

    def set_cell(i: int, column: str, value: str):
        return lambda rows: rows[i].__setitem__(column, value)

    def drop(*columns: str):
        return lambda rows: [r.pop(c) for r in rows for c in columns]

    def two_files(spec, tmp):
        return [write_csv(tmp / "jan.csv", good_rows(spec, 5)), write_csv(tmp / "feb.csv", good_rows(spec, 5, 5))]

    def same_path(spec, tmp):
        path = write_csv(tmp / "mi.csv", good_rows(spec))
        return [path, path]

    def same_bytes(spec, tmp):
        a = write_csv(tmp / "mi.csv", good_rows(spec))
        b = tmp / "copy.csv"
        b.write_bytes(a.read_bytes())
        return [a, b]

    def no_header_match(spec, tmp):
        path = tmp / "notes.xlsx"
        pd.DataFrame({"Name": ["Ann"], "Notes": ["call back"]}).to_excel(path, index=False)
        return [path]

    def truncated_xlsx(spec, tmp):
        data = write_sheet(spec, tmp / "good.xlsx", good_rows(spec)).read_bytes()
        (tmp / "cut.xlsx").write_bytes(data[: len(data) // 2])
        return [tmp / "cut.xlsx"]

    def dup_header(spec, tmp):
        rows = good_rows(spec)
        return [write_csv(tmp / "mi.csv", rows, header=[*rows[0], "gender"])]

    c = 7  # a row with every date filled in

    def nested_mismatch(spec, tmp):
        rows = good_rows(spec)
        rows[c]["subcontractor"] = codes(spec)["other_sub"]
        return [write_csv(tmp / "mi.csv", rows)]

    return [
        ("latin-1 bytes", raw_bytes(latin1, "mi.csv"), "encoding", None, None),
        ("utf-16", raw_bytes(lambda s, t: csv_text(s, t).decode().encode("utf-16"), "mi.csv"), "encoding", None, None),
        ("truncated csv", raw_bytes(truncated_csv, "mi.csv"), "truncated", 12, None),
        ("ragged row", raw_bytes(ragged, "mi.csv"), "ragged", 3, None),
        (
            "truncated parquet",
            raw_bytes(lambda s, t: parquet_bytes(s, t)[:-300], "mi.parquet"),
            "truncated",
            None,
            None,
        ),
        ("empty file", raw_bytes(b"", "mi.csv"), "empty", None, None),
        ("header only", raw_bytes(lambda s, t: csv_text(s, t).split(b"\n")[0] + b"\n", "mi.csv"), "empty", None, None),
        ("png named csv", raw_bytes(PNG, "mi.csv"), "not_a_table", None, None),
        ("random binary", raw_bytes(bytes(range(256)) * 8, "mi.csv"), "not_a_table", None, None),
        ("csv named parquet", raw_bytes(csv_text, "mi.parquet"), "not_a_table", None, None),
        ("png named xlsx", raw_bytes(PNG, "mi.xlsx"), "not_a_table", None, None),
        ("truncated xlsx", truncated_xlsx, "truncated", None, None),
        ("sheet with no matching header", no_header_match, "not_a_table", None, None),
        ("semicolons", raw_bytes(lambda s, t: csv_text(s, t).replace(b",", b";"), "mi.csv"), "not_a_table", None, None),
        ("missing column", csv_with(drop("gender", "cpa")), "missing_column", None, "cpa"),
        ("extra column", csv_with(lambda rows: [r.update(notes="x") for r in rows]), "extra_column", None, "notes"),
        ("duplicate header", dup_header, "duplicate_column", None, "gender"),
        ("bad date", csv_with(set_cell(c, "job_start_date", "2012-13-01")), "type", c + 1, "job_start_date"),
        ("bad integer", csv_with(set_cell(c, "sustainment_payments", "1,5")), "type", c + 1, "sustainment_payments"),
        (
            "negative count",
            csv_with(set_cell(c, "sustainment_payments", "-2")),
            "minimum",
            c + 1,
            "sustainment_payments",
        ),
        ("unknown code", csv_with(set_cell(c, "cpa", "CPA00")), "codelist", c + 1, "cpa"),
        ("wrong level", csv_with(lambda r: r[c].update(prime_contract=r[c]["cpa"])), "level", c + 1, "prime_contract"),
        ("pattern", csv_with(set_cell(c, "participant_id", "wp00000001")), "pattern", c + 1, "participant_id"),
        ("missing value", csv_with(set_cell(c, "referral_date", "")), "required", c + 1, "referral_date"),
        ("enum", csv_with(set_cell(c, "referral_type", "Mandatory")), "enum", c + 1, "referral_type"),
        ("duplicate id across files", two_files, "primary_key", 1, "participant_id"),
        ("date order", csv_with(set_cell(c, "attachment_date", "2011-12-01")), "date_order", c + 1, "attachment_date"),
        ("requires", csv_with(set_cell(2, "action_plan_date", "2012-02-03")), "requires", 3, "action_plan_date"),
        ("nested", nested_mismatch, "nested", c + 1, "subcontractor"),
        ("same file twice", same_path, "duplicate_file", None, None),
        ("same bytes twice", same_bytes, "duplicate_file", None, None),
        (
            "xlsx bad value",
            sheet("mi.xlsx", set_cell(c, "referral_date", "31/01/2012")),
            "type",
            c + 1,
            "referral_date",
        ),
        ("ods bad value", sheet("mi.ods", set_cell(c, "gender", "other")), "enum", c + 1, "gender"),
        ("unsupported extension", raw_bytes(b"a,b\n1,2\n", "mi.txt"), "unsupported_format", None, None),
        ("nonexistent file", lambda s, t: [t / "nowhere.csv"], "not_found", None, None),
        ("directory", lambda s, t: [t], "not_a_table", None, None),
        ("xlsx zip bomb", zip_bomb, "too_large", None, None),
    ]


@pytest.mark.parametrize(
    ("name", "make", "rule", "row", "column"), _corpus(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_corpus(spec, tmp_path, name, make, rule, row, column):
    paths = make(spec, tmp_path)
    report = validate(spec, paths)  # never raises for bad input
    assert not report.ok and report.table is None
    p = the(report, rule)
    assert p.file in {str(x) for x in paths}
    assert p.message.startswith(p.file) and "Traceback" not in p.message
    assert p.row == row, p.message
    if row is not None:
        assert f"row {row}" in p.message
    if column is not None:
        assert p.column == column and column in p.message
    if p.value is not None:
        assert p.value in p.message or repr(p.value) in p.message
    if rule == "encoding":
        assert "UTF-8" in p.message
    if name == "latin-1 bytes":
        assert "offset" in p.message and "line 2" in p.message
    if name in ("xlsx bad value", "ods bad value"):
        assert f"sheet row {row + 1}" in p.message
    if name == "png named csv":
        assert "PNG" in p.message
    if name == "semicolons":
        assert "comma" in p.message


def test_corpus_is_large_enough():
    assert len(_corpus()) >= 20


def test_all_missing_columns_at_once(spec, tmp_path):
    rows = good_rows(spec)
    for r in rows:
        del r["gender"], r["cpa"], r["job_start_date"]
    report = validate(spec, [write_csv(tmp_path / "m.csv", rows)])
    missing = find(report, "missing_column")
    assert [p.column for p in missing] == ["cpa", "gender", "job_start_date"]
    assert "3 missing in all: cpa, gender, job_start_date" in missing[0].message
    assert report.total_problems == 3  # rules that need a missing column are skipped, not failed


def test_rows_after_a_ragged_row_keep_their_numbers(spec, tmp_path):
    rows = good_rows(spec)
    rows[6]["gender"] = "x"
    data = write_csv(tmp_path / "a.csv", rows).read_bytes().split(b"\n")
    data[3] = data[3] + b",extra"
    (tmp_path / "a.csv").write_bytes(b"\n".join(data))
    report = validate(spec, [tmp_path / "a.csv"])
    assert [(p.rule, p.row) for p in report.problems] == [("ragged", 3), ("enum", 7)]
    assert report.rows[str(tmp_path / "a.csv")] == len(rows)


def test_quoted_newline_drops_the_line_number(spec, tmp_path):
    rows = good_rows(spec)
    rows[1]["gender"] = "fe\nmale"
    report = validate(spec, [write_csv(tmp_path / "q.csv", rows)])
    p = the(report, "enum")
    assert p.row == 2 and "q.csv row 2, column gender" in p.message and "(line" not in p.message


def test_parquet_timestamps_and_wrong_types(spec, tmp_path):
    rows = good_rows(spec)
    frame = typed_frame(spec, rows)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    stamps = pa.array([dt.datetime(2012, 1, 2) for _ in rows], pa.timestamp("us"))
    table = table.set_column(table.column_names.index("referral_date"), "referral_date", stamps)
    table = table.set_column(
        table.column_names.index("sustainment_payments"),
        "sustainment_payments",
        pa.array([float(r["sustainment_payments"]) if i != 4 else 1.5 for i, r in enumerate(rows)], pa.float64()),
    )
    pq.write_table(table, tmp_path / "t.parquet")
    report = validate(spec, [tmp_path / "t.parquet"])
    assert [(p.rule, p.row, p.column, p.value) for p in report.problems] == [("type", 5, "sustainment_payments", "1.5")]


def test_parquet_column_with_no_text_form(spec, tmp_path):
    table = pq.read_table(write_parquet(spec, tmp_path / "ok.parquet", good_rows(spec, 3)))
    nested = pa.array([[1], [2], [3]], pa.list_(pa.int64()))
    table = table.set_column(table.column_names.index("age_band"), "age_band", nested)
    pq.write_table(table, tmp_path / "nested.parquet")
    report = validate(spec, tmp_path / "nested.parquet")  # a single path is accepted too
    p = the(report, "type")
    assert p.row is None and p.column == "age_band" and "list<" in p.message


def test_validation_does_not_import_pandas(spec, tmp_path):
    """pyarrow imports pandas on its first conversion of Python objects: 0.2 s of a 1 s budget."""
    path = write_csv(tmp_path / "mi.csv", good_rows(spec))
    code = (
        "import sys; from opendata.spec import load_spec; from opendata.validate import validate; "
        f"r = validate(load_spec({str(SPECS / 'work-programme.yaml')!r}), [{str(path)!r}]); "
        "assert r.ok; assert 'pandas' not in sys.modules, 'pandas was imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_input_error_is_the_base_of_file_problems(tmp_path):
    from opendata.ingest import FileProblem

    assert issubclass(FileProblem, InputError)


@settings(max_examples=60, deadline=None)
@given(value=st.text(max_size=8))
def test_any_text_in_a_count_is_either_accepted_or_reported_at_its_cell(value):
    spec = load_spec(SPECS / "work-programme.yaml")
    rows = good_rows(spec, 3)
    rows[1]["sustainment_payments"] = value  # row 2 has a job outcome
    with tempfile.TemporaryDirectory() as tmp:
        report = validate(spec, [write_csv(Path(tmp) / "h.csv", rows)])
    if re.fullmatch(r"-?[0-9]{1,18}", value) and 0 <= int(value) <= 30:
        assert report.ok, [p.message for p in report.problems]
    else:
        assert not report.ok
        assert any(p.row == 2 or p.row is None for p in report.problems)


@pytest.mark.parametrize(
    ("value", "rule"),
    [("0000-01-01", "type"), ("9999-12-31", "maximum"), ("2099-01-01", "maximum"), ("1900-01-01", "minimum")],
)
def test_dates_outside_the_plausible_range_are_named_before_any_aggregation(spec, tmp_path, value, rule):
    """Year 0 was a traceback (Arrow takes it, Python's date does not); 9999-12-31 passed and made
    the release build a month column for every month up to year 9999."""
    rows = good_rows(spec, 3)
    rows[1]["referral_date"] = value
    for field in ("attachment_date", "action_plan_date", "job_start_date", "job_outcome_date"):
        rows[1][field] = ""
    rows[1]["sustainment_payments"] = "0"
    report = validate(spec, [write_csv(tmp_path / "mi.csv", rows)])
    [problem] = report.problems
    assert (problem.row, problem.column, problem.value, problem.rule) == (2, "referral_date", value, rule)


def test_a_month_dimension_longer_than_a_century_is_refused(spec):
    from opendata.aggregate import MAX_MONTHS, period_dimension

    month = spec.dimensions["month"]
    assert len(period_dimension(["2011-06", "2013-05"], month).codes) == 25
    with pytest.raises(InputError, match=f"more than {MAX_MONTHS:,}"):
        period_dimension(["2011-06", "9999-12"], month)
