"""The hub's staged screening of an upload: located findings, stages, counts, the to-do CSV and the
uploader's file given back marked. Every file is real, written to tmp_path from the shipped spec's
own code lists (the helpers of test_validate), and saved under a server-style name without the
uploader's extension, as the hub saves uploads."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zipfile
from pathlib import Path

import openpyxl
import pytest
from test_validate import good_rows, write_csv, write_sheet

from opendata.hub.screen import (
    ADVICE,
    GENERIC_ADVICE,
    RULE_STAGE,
    STAGES,
    ScreenReport,
    advice_for,
    neutralise,
    screen,
    stage_of,
    write_marked,
)
from opendata.spec import FORMULA_STARTS, ReleaseSpec, load_spec
from opendata.spreadsheet_check import MAX_CELLS

SPECS = Path(__file__).resolve().parent.parent / "specs"
TODAY = dt.date(2025, 6, 1)
HOSTILE = ['=HYPERLINK("http://x","click")', "@SUM(1)", "+1+1", "-1", "\t=1"]
# XlsxWriter writes a string shaped like its own rich-string XML unescaped: this would become a formula
XML_TRAP = '<r><t>a</t></r></is></c><c r="Z1"><f>HYPERLINK("http://x","y")</f></c><c r="Z2" t="inlineStr"><is><r></r>'


@pytest.fixture(scope="module")
def spec() -> ReleaseSpec:
    return load_spec(SPECS / "work-programme.yaml")


def saved(tmp_path: Path, rows: list[dict[str, str]], header: list[str] | None = None) -> Path:
    """A CSV saved as the hub saves an upload: a random name with no extension."""
    return write_csv(tmp_path / "upload-7f3a9c", rows, header=header)


def three_kinds(spec: ReleaseSpec) -> list[dict[str, str]]:
    rows = good_rows(spec, 12)
    rows[1]["referral_date"] = "2024-02-30"  # data row 2: an impossible date
    rows[3]["cpa"] = "ZZZ"  # data row 4: not in the code list
    rows[5]["participant_id"] = rows[2]["participant_id"]  # data row 6 repeats data row 3
    return rows


def by_rule(report: ScreenReport, rule: str) -> list:
    return [f for f in report.findings if f.rule == rule]


def filled_cells(ws) -> set[str]:
    return {c.coordinate for row in ws.iter_rows() for c in row if c.fill is not None and c.fill.fill_type}


def formulas_in(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as z:
        return [n for n in z.namelist() if b"<f>" in z.read(n) or b"<f " in z.read(n)]


# --- locating and grouping ----------------------------------------------------------------------


def test_three_kinds_of_error_are_located_grouped_and_staged(spec, tmp_path):
    path = saved(tmp_path, three_kinds(spec))
    report = screen(spec, {"March MI.csv": path}, now=TODAY)
    assert not report.accepted
    assert report.rows == {"March MI.csv": 12}
    located = {(f.rule, f.row, f.cell, f.column, f.value) for f in report.findings}
    assert located == {
        ("impossible_date", 2, "B3", "referral_date", "2024-02-30"),
        ("codelist", 4, "C5", "cpa", "ZZZ"),
        ("primary_key", 6, "A7", "participant_id", "WP00000003"),
    }
    assert report.counts == {"codelist": 1, "impossible_date": 1, "primary_key": 1}
    stages = {s.stage: (s.blocking, s.warnings, s.ran) for s in report.stages}
    assert stages == {
        "file": (0, 0, True),
        "structure": (0, 0, True),
        "values": (2, 0, True),
        "cross-file": (1, 0, True),
        "usefulness": (0, 0, False),  # not run: the values must be right first
    }
    date = by_rule(report, "impossible_date")[0]
    assert date.message == "2024-02-30 is not a real date: February 2024 has 29 days"
    assert (date.stage, date.severity, date.sheet, date.file) == ("values", "blocking", None, "March MI.csv")
    assert date.advice == ADVICE["impossible_date"]
    dup = by_rule(report, "primary_key")[0]
    assert "first seen in March MI.csv row 3" in dup.message and dup.stage == "cross-file"
    assert all("(rule:" not in f.message for f in report.findings)
    data = report.to_dict()
    json.dumps(data)
    assert data["accepted"] is False and data["total"] == 3
    assert data["counts"]["codelist"] == {
        "count": 1,
        "stage": "values",
        "severity": "blocking",
        "advice": ADVICE["codelist"],
    }
    assert str(path) not in json.dumps(data) and str(tmp_path) not in report.todo_csv().decode("utf-8-sig")


def test_a_renamed_column_stops_the_later_stages_for_that_file(spec, tmp_path):
    rows = three_kinds(spec)
    header = ["participant_id", "date_referred", *list(rows[0])[2:]]
    for r in rows:
        r["date_referred"] = r.pop("referral_date")
    report = screen(spec, {"mi.csv": saved(tmp_path, rows, header)}, now=TODAY)
    assert not report.accepted
    assert set(report.counts) == {"missing_column", "extra_column"}
    extra = by_rule(report, "extra_column")[0]
    assert (extra.stage, extra.row, extra.cell, extra.column) == ("structure", None, "B1", "date_referred")
    missing = by_rule(report, "missing_column")[0]
    assert (missing.cell, missing.column) == (None, "referral_date")
    ran = {s.stage: s.ran for s in report.stages}
    assert ran == {"file": True, "structure": True, "values": False, "cross-file": False, "usefulness": False}


def test_detail_is_capped_but_counts_are_not(spec, tmp_path):
    rows = good_rows(spec, 1200)
    for r in rows:
        r["cpa"] = "ZZZ"
    report = screen(spec, {"big.csv": saved(tmp_path, rows)}, now=TODAY)
    listed = by_rule(report, "codelist")
    assert len(listed) == 1001  # 1,000 located, then one line that says how many more
    assert report.counts["codelist"] == 1200
    assert next(s for s in report.stages if s.stage == "values").blocking >= 1200
    summary = next(f for f in listed if f.row is None)
    assert "1,200 rows" in summary.message and summary.cell is None


def test_ragged_row_is_located_and_does_not_hide_value_problems(spec, tmp_path):
    rows = good_rows(spec, 8)
    rows[2]["gender"] = "unknown"
    path = saved(tmp_path, rows)
    lines = path.read_text().splitlines()
    lines[5] = lines[5] + ",surplus"  # data row 5
    path.write_text("\n".join(lines) + "\n")
    report = screen(spec, {"mi.csv": path}, now=TODAY)
    ragged = by_rule(report, "ragged")[0]
    assert (ragged.stage, ragged.row, ragged.cell) == ("structure", 5, "A6")
    enum = by_rule(report, "enum")[0]
    assert (enum.row, enum.cell) == (3, "I4")


def test_duplicates_across_files_name_the_uploaders_files(spec, tmp_path):
    a = write_csv(tmp_path / "a-1", good_rows(spec, 5))
    b = write_csv(tmp_path / "b-2", good_rows(spec, 5, start=5))  # WP00000005 is in both
    report = screen(spec, {"north.csv": a, "south.csv": b}, now=TODAY)
    dup = by_rule(report, "primary_key")
    assert [(f.file, f.row, f.cell) for f in dup] == [("south.csv", 1, "A2")]
    assert "first seen in north.csv row 5" in dup[0].message
    assert report.rows == {"north.csv": 5, "south.csv": 5}


def test_file_stage_refusals(spec, tmp_path):
    text = saved(tmp_path, good_rows(spec, 3))
    latin = tmp_path / "latin"
    latin.write_bytes(text.read_bytes().replace(b"female", b"f\xe9male"))
    report = screen(spec, {"notes.txt": text, "latin.csv": latin}, now=TODAY)
    rules = {(f.file, f.rule, f.stage) for f in report.findings}
    assert rules == {("notes.txt", "unsupported_format", "file"), ("latin.csv", "encoding", "file")}
    assert {s.stage: s.ran for s in report.stages}["structure"] is False
    assert str(tmp_path) not in json.dumps(report.to_dict())
    empty = screen(spec, {}, now=TODAY)
    assert not empty.accepted and set(empty.counts) == {"no_files"}


def test_an_ods_cell_bomb_is_refused_before_it_is_expanded(spec, tmp_path):
    """One row declared to repeat past MAX_CELLS: a few hundred bytes that pandas would expand."""
    t = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
    content = (
        f'<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        f'xmlns:table="{t}" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body>'
        '<office:spreadsheet><table:table table:name="Bomb"><table:table-row>'
        '<table:table-cell office:value-type="string"><text:p>participant_id</text:p></table:table-cell>'
        f'</table:table-row><table:table-row table:number-rows-repeated="{MAX_CELLS + 1}">'
        '<table:table-cell office:value-type="string"><text:p>x</text:p></table:table-cell></table:table-row>'
        "</table:table></office:spreadsheet></office:body></office:document-content>"
    )
    bomb = tmp_path / "bomb"
    with zipfile.ZipFile(bomb, "w") as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        z.writestr("content.xml", content)
    report = screen(spec, {"bomb.ods": bomb}, now=TODAY)
    assert [(f.rule, f.stage) for f in report.findings] == [("too_large", "file")]


def test_every_rule_has_a_stage_and_advice_and_unknown_rules_land_in_values():
    for rule, stage in RULE_STAGE.items():
        assert stage in STAGES
        assert advice_for(rule) != GENERIC_ADVICE, rule
    assert stage_of("some_new_rule") == "values" and advice_for("some_new_rule") == GENERIC_ADVICE


# --- usefulness ---------------------------------------------------------------------------------


def test_clean_file_is_accepted_with_a_future_date_warning(spec, tmp_path):
    rows = good_rows(spec, 30)
    rows[4]["job_outcome_date"] = "2026-03-01"  # data row 5, column N: after TODAY
    report = screen(spec, {"mi.csv": saved(tmp_path, rows)}, now=TODAY)
    assert report.accepted
    future = by_rule(report, "future_date")
    assert [(f.row, f.cell, f.column, f.value, f.severity) for f in future] == [
        (5, "N6", "job_outcome_date", "2026-03-01", "warning")
    ]
    assert "2026-03-01" in future[0].message and "2025-06-01" in future[0].message
    assert {s.stage: (s.blocking, s.warnings, s.ran) for s in report.stages}["usefulness"] == (0, 1, True)
    assert report.to_dict()["accepted"] is True


def test_too_little_data_and_small_groups_are_warned_about(spec, tmp_path):
    few = screen(spec, {"few.csv": saved(tmp_path, good_rows(spec, 4))}, now=TODAY)
    assert few.accepted and set(few.counts) == {"too_few_rows"}
    sample = pytest.importorskip("opendata.sample")
    (path,) = sample.write_sample(tmp_path / "s", 2000, 3, formats=("csv",))
    report = screen(spec, {"sample.csv": path}, now=TODAY)
    assert report.accepted
    small = by_rule(report, "small_groups")
    assert len(small) == 1 and "subcontractor × month" in small[0].message and "[c]" in small[0].message
    agg_spec = load_spec(SPECS / "work-programme-aggregated.yaml")
    _, agg = sample.write_sample(tmp_path / "a", 2000, 3, formats=("csv",), aggregated=True)
    agg_report = screen(agg_spec, {"counts.csv": agg}, now=TODAY)
    assert agg_report.accepted and set(agg_report.counts) == {"small_groups"}
    late = screen(agg_spec, {"counts.csv": agg}, now=dt.date(2012, 1, 15))
    future = by_rule(late, "future_date")
    assert future and all(f.value is None or f.value > "2012-01" for f in future)


# --- the to-do list -----------------------------------------------------------------------------


def test_todo_csv_neutralises_formulas(spec, tmp_path):
    rows = good_rows(spec, len(HOSTILE) + 2)
    for r, value in zip(rows, HOSTILE, strict=False):
        r["gender"] = value
    report = screen(spec, {"=cmd.csv": saved(tmp_path, rows)}, now=TODAY)
    data = report.todo_csv()
    assert data.startswith(b"\xef\xbb\xbf")
    lines = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert lines[0][:3] == ["file", "sheet", "cell"]
    body = lines[1:]
    assert len(body) == len(HOSTILE)
    for line in body:
        for text in line:
            assert text[:1] not in FORMULA_STARTS, line
    values = [line[8] for line in body]
    assert sorted(values) == sorted("'" + v for v in HOSTILE)
    assert {line[0] for line in body} == {"'=cmd.csv"}
    assert neutralise("plain") == "plain" and neutralise(None) == "" and neutralise(12) == "12"


# --- the marked file ----------------------------------------------------------------------------


def test_marked_xlsx_highlights_exactly_the_found_cells_and_holds_hostile_text_as_text(spec, tmp_path):
    rows = three_kinds(spec)
    rows[7]["gender"] = HOSTILE[0]  # data row 8, column I: an enum problem
    rows[8]["age_band"] = XML_TRAP  # data row 9, column H
    rows[9]["disability"] = "@SUM(1)"  # data row 10, column J
    rows[10]["gender"] = ""  # data row 11, column I: required, so its empty cell is marked
    path = saved(tmp_path, rows)
    report = screen(spec, {"mi.csv": path}, now=TODAY)
    out = tmp_path / "marked.xlsx"
    write_marked(report, "mi.csv", path, out)
    book = openpyxl.load_workbook(out)
    assert book.sheetnames == ["Problems", "Data"]
    data = book["Data"]
    assert filled_cells(data) == {f.cell for f in report.findings}
    assert filled_cells(data) == {"B3", "C5", "A7", "I9", "H10", "J11", "I12"}
    assert data["I12"].value is None and "empty" in data["I12"].comment.text
    for cell, value in (("I9", HOSTILE[0]), ("H10", XML_TRAP), ("J11", "@SUM(1)")):
        assert data[cell].value == value and data[cell].data_type == "s"
        assert data[cell].comment is not None and "How to fix" in data[cell].comment.text
    assert data["B3"].comment.text.startswith("2024-02-30 is not a real date")
    assert [c.value for c in data[1]] == list(rows[0])
    assert data["A2"].value == "WP00000001" and data.max_row == 13
    assert not any(c.value for c in data["Z"])  # the trap wrote nothing outside its own cell
    assert formulas_in(out) == []
    problems = book["Problems"]
    assert [c.value for c in problems[1]][:3] == ["file", "sheet", "cell"]
    assert problems.max_row == len(report.findings) + 1
    first = problems["C2"]
    assert first.value == report.findings[0].cell and first.hyperlink.location == f"'Data'!{first.value}"
    values = {problems.cell(r, 9).value for r in range(2, problems.max_row + 1)}
    assert HOSTILE[0] in values and XML_TRAP in values  # as text, no apostrophe needed inside XLSX


def test_long_values_are_cut_in_findings_but_kept_whole_in_the_marked_file(spec, tmp_path):
    rows = good_rows(spec, 3)
    long = "=" + "x" * 5000
    rows[0]["cpa"] = long
    path = saved(tmp_path, rows)
    report = screen(spec, {"mi.csv": path}, now=TODAY)
    (f,) = report.findings
    assert len(f.value) == 200 and f.value.endswith("…") and len(f.message) < 400
    out = tmp_path / "marked.xlsx"
    write_marked(report, "mi.csv", path, out)
    assert openpyxl.load_workbook(out)["Data"]["C2"].value == long


def test_same_input_gives_the_same_bytes(spec, tmp_path):
    path = saved(tmp_path, three_kinds(spec))
    outputs = []
    for i in range(2):
        report = screen(spec, {"mi.csv": path}, now=TODAY)
        out = tmp_path / f"marked-{i}.xlsx"
        write_marked(report, "mi.csv", path, out)
        outputs.append((out.read_bytes(), report.todo_csv(), json.dumps(report.to_dict())))
    assert outputs[0] == outputs[1]


def test_unreadable_file_gets_a_problems_sheet_only(spec, tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    report = screen(spec, {"photo.csv": bad}, now=TODAY)
    out = tmp_path / "marked.xlsx"
    write_marked(report, "photo.csv", bad, out)
    book = openpyxl.load_workbook(out)
    assert book.sheetnames == ["Problems"]
    assert book["Problems"]["H2"].value == "not_a_table"


# --- spreadsheets -------------------------------------------------------------------------------


def test_xlsx_upload_is_located_by_sheet_and_cell(spec, tmp_path):
    """A sheet of their own name, with an empty column C that ingest drops: cells stay where they are."""
    rows = three_kinds(spec)
    header = list(rows[0])
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = "March returns"
    layout = [*header[:2], None, *header[2:]]  # column C left empty, header and all
    ws.append(layout)
    for r in rows:
        ws.append([None if h is None else (r[h] or None) for h in layout])
    path = tmp_path / "upload-xlsx"
    book.save(path)
    report = screen(spec, {"returns.xlsx": path}, now=TODAY)
    located = {(f.rule, f.sheet, f.row, f.cell) for f in report.findings}
    assert located == {
        ("impossible_date", "March returns", 2, "B3"),
        ("codelist", "March returns", 4, "D5"),  # cpa is in column D of their sheet
        ("primary_key", "March returns", 6, "A7"),
    }
    out = tmp_path / "marked.xlsx"
    write_marked(report, "returns.xlsx", path, out)
    marked = openpyxl.load_workbook(out)
    assert marked.sheetnames == ["Problems", "March returns"]
    sheet = marked["March returns"]
    assert filled_cells(sheet) == {"B3", "D5", "A7"}
    assert sheet["D5"].value == "ZZZ" and sheet["C5"].value is None and sheet["D1"].value == "cpa"


def test_a_headerless_column_with_data_is_pointed_at_by_its_header_cell(spec, tmp_path):
    rows = good_rows(spec, 3)
    header = list(rows[0])
    book = openpyxl.Workbook()
    ws = book.active
    ws.append([*header[:2], None, *header[2:]])
    for r in rows:
        ws.append([r["participant_id"], r["referral_date"], "note", *[r[h] or None for h in header[2:]]])
    path = tmp_path / "upload"
    book.save(path)
    report = screen(spec, {"mi.xlsx": path}, now=TODAY)
    (f,) = report.findings
    assert (f.rule, f.sheet, f.cell, f.column) == ("extra_column", "Sheet", "C1", "(column 3 has no header)")


def test_ods_upload_is_located_by_sheet_and_cell(spec, tmp_path):
    path = write_sheet(spec, tmp_path / "mi.ods", three_kinds(spec), raw=True)
    server = path.rename(tmp_path / "upload-ods")
    report = screen(spec, {"mi.ods": server}, now=TODAY)
    located = {(f.rule, f.sheet, f.row, f.cell) for f in report.findings}
    assert located == {
        ("impossible_date", "Sheet1", 2, "B3"),
        ("codelist", "Sheet1", 4, "C5"),
        ("primary_key", "Sheet1", 6, "A7"),
    }


def test_repeated_and_extra_headers_point_at_their_own_header_cells_in_each_file(spec, tmp_path):
    files = {}
    for start, n in ((1, "north"), (10, "south")):
        rows = good_rows(spec, 3, start=start)
        for r in rows:
            r["notes"] = "n"
        header = [*list(rows[0])[:15], "notes", "cpa"]  # P1 is extra, Q1 repeats cpa
        files[f"{n}.csv"] = write_csv(tmp_path / n, rows, header=header)
    report = screen(spec, files, now=TODAY)
    located = sorted((f.file, f.rule, f.cell) for f in report.findings)
    assert located == [
        ("north.csv", "duplicate_column", "Q1"),
        ("north.csv", "extra_column", "P1"),
        ("south.csv", "duplicate_column", "Q1"),
        ("south.csv", "extra_column", "P1"),
    ]
