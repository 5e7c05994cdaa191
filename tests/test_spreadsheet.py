"""The spreadsheets of a package, tested as people use them: the project's checker of the Analysis
Function's guidance, pandas with both engines, and LibreOffice (Debian ``libreoffice-calc-nogui``,
installed by ``.ci/run``; ``OPENDATA_REQUIRE_LIBREOFFICE=1`` there makes its test fail, not skip,
when it is missing) opening and re-saving every file."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from shipped_specs import OUTSIDERS

from opendata.spreadsheet import read_descriptor, write_spreadsheets
from opendata.spreadsheet_check import SpreadsheetError, check_spreadsheet

pytestmark = pytest.mark.slow  # end to end: left out of the quick subset (make test-quick)

ROOT = Path(__file__).resolve().parent.parent
SPEC = OUTSIDERS
CALENDAR = ROOT / "specs" / "calendar.yaml"
NAME = "work-programme-subcontractor-mi"
SHORTHAND = ["[c]", "[x]", "[z]"]
SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")


def cli(*args, ok: bool = True) -> subprocess.CompletedProcess:
    run = subprocess.run(
        [sys.executable, "-m", "opendata.cli", *map(str, args)], capture_output=True, text=True, timeout=600
    )
    assert "Traceback" not in run.stderr, run.stderr
    assert (run.returncode == 0) == ok, run.stderr + run.stdout
    return run


@pytest.fixture(scope="module")
def version(tmp_path_factory) -> Path:
    """A release of the shipped spec (with its MI-ahead tables), cut and published by the CLI."""
    work = tmp_path_factory.mktemp("sheets")
    cli("sample", "--out", work / "mi", "--rows", 1200, "--months", 3, "--seed", 5, "--format", "csv", "-q")
    cli("release", SPEC, work / "mi" / "work-programme-mi.csv", "--out", work / "releases", "--calendar", CALENDAR,
        "--release-time", "2026-11-12T09:30:00+00:00", "--late", "--reason", "tests", "-q")  # fmt: skip
    cli("publish", "--out", work / "releases", "-q")
    return work / "releases" / NAME / "1.0.0"


def books(version: Path) -> list[Path]:
    return [version / f"{NAME}-1.0.0.ods", version / f"{NAME}-1.0.0.xlsx"]


def engine(path: Path) -> str:
    return "odf" if path.suffix == ".ods" else "openpyxl"


def table_sheets(path: Path) -> dict[str, pd.DataFrame]:
    """Each table sheet as pandas reads it: the header row found by its first cell, shorthand as missing."""
    raw = pd.read_excel(path, engine=engine(path), sheet_name=None, header=None)
    out = {}
    for name, frame in raw.items():
        if not name.startswith("Table_"):
            continue
        header = int(frame.index[frame[0].astype(str).str.endswith(" code")][0])
        out[name] = pd.read_excel(path, engine=engine(path), sheet_name=name, header=header, na_values=SHORTHAND)
    return out


def test_every_spreadsheet_of_a_release_passes_the_checker(version):
    paths = books(version)
    assert all(p.is_file() for p in paths)
    run = cli("check-spreadsheet", *paths)
    assert "passed: 2 file(s)" in run.stdout
    listed = {r["path"] for r in read_descriptor(version)["resources"] if r.get("opendata:spreadsheet")}
    assert listed == {p.name for p in paths}


def test_pandas_reads_every_table_with_numbers_equal_to_the_parquet(version):
    descriptor = read_descriptor(version)
    tables = [r for r in descriptor["resources"] if r.get("type") == "table" and r["path"].startswith("data/")]
    card = [r for r in tables if r.get("opendata:derived") == "scorecard"]
    tables = [r for r in tables if not r.get("opendata:derived")]
    for path in books(version):
        sheets = table_sheets(path)
        assert len(sheets) == len(tables) + len(card)  # the scorecard last, when a table gives one
        if card:
            rows = pd.read_csv(version / card[0]["path"], dtype=str, keep_default_na=False)
            assert len(sheets[f"Table_{len(sheets)}"]) == len(rows)
        for n, resource in enumerate(tables, start=1):
            sheet = sheets[f"Table_{n}"]
            parquet = pd.read_parquet(version / resource["path"].replace(".csv", ".parquet"))
            dims = resource["schema"]["primaryKey"]
            measures = [f["name"] for f in resource["schema"]["fields"] if f["name"] not in dims]
            assert len(sheet) == len(parquet)
            for j, d in enumerate(dims):
                assert sheet.iloc[:, 2 * j].astype(str).tolist() == parquet[d].astype(str).tolist()
            for k, m in enumerate(measures):
                column = sheet.iloc[:, 2 * len(dims) + k]
                assert pd.api.types.is_numeric_dtype(column), (path.name, m)
                expected = parquet[m].astype("Float64").to_numpy(dtype=float, na_value=float("nan"))
                pd.testing.assert_series_equal(
                    column.astype(float).reset_index(drop=True), pd.Series(expected, name=column.name)
                )


def test_cover_contents_and_notes_say_what_the_guidance_asks(version):
    descriptor = read_descriptor(version)
    for path in books(version):
        raw = pd.read_excel(path, engine=engine(path), sheet_name=None, header=None)
        assert list(raw)[:3] == ["Cover_sheet", "Contents", "Notes"]
        cover = "\n".join(raw["Cover_sheet"][0].astype(str))
        for needed in (descriptor["title"], "management information, not official statistics", "Release time",
                       "Next scheduled release", "Cut-off", "Licence: Open Government Licence", "How to cite",
                       "Period covered: "):  # fmt: skip
            assert needed in cover, (path.name, needed)
        contents = raw["Contents"]
        assert contents.iloc[3:, 0].tolist() == [n for n in raw if n not in ("Cover_sheet", "Contents")]
        notes = raw["Notes"]
        assert notes.iloc[3:, 0].tolist()[:2] == ["[note 1]", "[note 2]"] and "[c] confidential" in notes.iloc[3, 1]


def test_the_same_package_gives_the_same_bytes(version, tmp_path):
    """Written again in another process and directory, byte for byte what the release wrote."""
    copy = tmp_path / "copy"
    shutil.copytree(version, copy)
    for p in books(copy):
        p.unlink()
    descriptor = read_descriptor(copy)
    write_spreadsheets(copy, descriptor)
    for a, b in zip(books(version), books(copy), strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_text_that_looks_like_a_formula_is_stored_as_text(version, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(version, copy)
    descriptor = read_descriptor(copy)
    descriptor["opendata:release"]["statement"].append('=HYPERLINK("http://evil.example","click")')
    write_spreadsheets(copy, descriptor)
    ods, xlsx = books(copy)
    content = zipfile.ZipFile(ods).read("content.xml").decode()
    assert "table:formula" not in content
    assert '<table:table-cell office:value-type="string"><text:p>=HYPERLINK("http://evil.example"' in content
    sheet = openpyxl.load_workbook(xlsx)["Cover_sheet"]
    cells = [c for row in sheet.iter_rows() for c in row if str(c.value).startswith("=HYPERLINK")]
    assert len(cells) == 1 and cells[0].data_type == "s"


@pytest.mark.slow
def test_libreoffice_opens_and_resaves_every_file_with_tables_numbers_and_shorthand_intact(version, tmp_path):
    if SOFFICE is None:
        if os.environ.get("OPENDATA_REQUIRE_LIBREOFFICE"):
            pytest.fail("LibreOffice is required here (OPENDATA_REQUIRE_LIBREOFFICE) but not installed")
        pytest.skip("LibreOffice is not installed (Debian package libreoffice-calc-nogui; .ci/run installs it)")
    for path in books(version):
        out = tmp_path / path.suffix[1:]
        profile = (tmp_path / "profile").as_uri()
        convert = ["--headless", "--norestore", "--convert-to", path.suffix[1:], "--outdir", str(out), str(path)]
        run = subprocess.run(
            [SOFFICE, f"-env:UserInstallation={profile}", *convert], capture_output=True, text=True, timeout=300
        )
        saved = out / path.name
        assert run.returncode == 0 and saved.is_file(), run.stderr + run.stdout
        before = pd.read_excel(path, engine=engine(path), sheet_name=None, header=None)
        after = pd.read_excel(saved, engine=engine(path), sheet_name=None, header=None)
        assert list(before) == list(after)
        for name in before:
            pd.testing.assert_frame_equal(before[name], after[name], check_dtype=False, obj=f"{path.name} {name}")
        assert not [f for f in check_spreadsheet(saved) if f.rule not in ("metadata",)], path.name
        assert table_sheets(saved).keys() == table_sheets(path).keys()


# --- the checker on broken files -------------------------------------------------------------------


def broken_xlsx(version: Path, tmp_path: Path, damage) -> Path:
    wb = openpyxl.load_workbook(books(version)[1])
    damage(wb)
    path = tmp_path / "broken.xlsx"
    wb.save(path)
    return path


def findings(path: Path) -> set[tuple[str, str, str]]:
    return {(f.sheet, f.cell, f.rule) for f in check_spreadsheet(path)}


@pytest.mark.parametrize(
    "damage, expected",
    [
        (lambda wb: wb["Table_1"].merge_cells("A1:C1"), ("Table_1", "A1:C1", "merged")),
        (lambda wb: setattr(wb["Table_1"].column_dimensions["B"], "hidden", True), ("Table_1", "B:B", "hidden")),
        (lambda wb: setattr(wb["Table_1"].row_dimensions[8], "hidden", True), ("Table_1", "8:8", "hidden")),
        (
            lambda wb: setattr(wb["Table_1"]["E7"], "fill", openpyxl.styles.PatternFill("solid", fgColor="FF0000")),
            ("Table_1", "E7", "fill"),
        ),
        (lambda wb: setattr(wb["Table_2"]["A1"], "value", None), ("Table_2", "A1", "title")),
        (lambda wb: setattr(wb["Table_1"]["E7"], "value", "123"), ("Table_1", "E7", "shorthand")),
        (lambda wb: setattr(wb["Table_1"]["E7"], "value", ".."), ("Table_1", "E7", "shorthand")),
        (lambda wb: setattr(wb["Table_1"]["E7"], "value", "[q]"), ("Table_1", "E7", "shorthand")),
        (lambda wb: setattr(wb["Table_1"]["E7"], "value", None), ("Table_1", "E7", "table")),
        (lambda wb: wb["Table_1"].tables.clear(), ("Table_1", "A4", "table")),
        (lambda wb: setattr(wb.properties, "title", None), ("", "", "metadata")),
        (lambda wb: setattr(wb["Table_1"], "title", "Table 1 with spaces"), ("Table 1 with spaces", "", "sheets")),
        (lambda wb: wb.move_sheet("Cover_sheet", offset=2), ("Contents", "", "sheets")),
    ],
)
def test_the_checker_names_sheet_and_cell_of_each_broken_rule(version, tmp_path, damage, expected):
    """Table_1's header is row 4 (title, two lines), so E7 is in its body."""
    assert expected in findings(broken_xlsx(version, tmp_path, damage))


def rewrite_ods(version: Path, tmp_path: Path, edit) -> Path:
    src = books(version)[0]
    out = io.BytesIO()
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(out, "w") as b:
        for info in a.infolist():
            data = a.read(info.filename)
            b.writestr(info, edit(data.decode()).encode() if info.filename == "content.xml" else data)
    path = tmp_path / "broken.ods"
    path.write_bytes(out.getvalue())
    return path


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda x: re.sub(r"<table:database-range [^>]*'Table_2'[^>]*/>", "", x), ("Table_2", "A4", "table")),
        (
            lambda x: x.replace(
                '<table:table-cell office:value-type="string">',
                '<table:table-cell office:value-type="string" table:number-columns-spanned="2">',
                1,
            ),
            ("Cover_sheet", "A1", "merged"),
        ),
        (lambda x: x.replace("<text:p>[c]</text:p>", "<text:p>[q]</text:p>", 1), None),
        (lambda x: x.replace("<table:table-row>", '<table:table-row table:visibility="collapse">', 9), None),
    ],
)
def test_the_checker_reads_broken_ods_too(version, tmp_path, edit, expected):
    got = findings(rewrite_ods(version, tmp_path, edit))
    if expected is not None:
        assert expected in got
    else:
        assert {rule for _, _, rule in got} & {"shorthand", "hidden"}


def test_what_is_not_a_spreadsheet_gets_a_message_not_a_traceback(tmp_path):
    text = tmp_path / "not.xlsx"
    text.write_text("a,b\n1,2\n")
    with pytest.raises(SpreadsheetError, match="not a readable ODS or XLSX"):
        check_spreadsheet(text)
    run = cli("check-spreadsheet", text, tmp_path / "missing.ods", ok=False)
    assert "not a readable ODS or XLSX" in run.stderr or "no such file" in run.stderr


def test_a_file_that_unpacks_to_far_more_than_it_holds_is_refused_unread(tmp_path, monkeypatch):
    """A zip bomb: a small file whose content.xml would fill memory. Refused from the zip's own
    directory, before anything is inflated (the cap is lowered here so the test file stays small)."""
    import opendata.spreadsheet_check as check

    monkeypatch.setattr(check, "MAX_UNPACKED", 10 << 20)
    bomb = tmp_path / "bomb.ods"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        z.writestr("content.xml", b"<" + b" " * (12 << 20) + b"/>")
    assert bomb.stat().st_size < 100 << 10
    with pytest.raises(SpreadsheetError, match="unpacks to"):
        check_spreadsheet(bomb)


def test_repeated_rows_and_columns_are_counted_not_expanded(version, tmp_path):
    """A row repeated a million times, as LibreOffice writes the empty end of a sheet, costs nothing;
    one repeated with a value in it is refused past the cell cap instead of filling memory."""
    empty = '<table:table-row table:number-rows-repeated="1048000"><table:table-cell table:number-columns-repeated="1024"/></table:table-row>'  # noqa: E501
    ods = rewrite_ods(version, tmp_path, lambda x: x.replace("</table:table>", empty + "</table:table>", 1))
    assert not check_spreadsheet(ods)
    full = (
        '<table:table-row table:number-rows-repeated="1000"><table:table-cell office:value-type="float" '
        'office:value="1" table:number-columns-repeated="1000"/></table:table-row>'
    )
    import opendata.spreadsheet_check as check

    with pytest.MonkeyPatch.context() as m:
        m.setattr(check, "MAX_CELLS", 100_000)
        big = rewrite_ods(version, tmp_path, lambda x: x.replace("</table:table>", full * 2 + "</table:table>", 1))
        with pytest.raises(SpreadsheetError, match="more than 100,000 cells"):
            check_spreadsheet(big)
        huge = full.replace('"1000"', '"1000000"', 1)  # one element, a billion cells: refused, not expanded
        big = rewrite_ods(version, tmp_path, lambda x: x.replace("</table:table>", huge + "</table:table>", 1))
        with pytest.raises(SpreadsheetError, match="more than 100,000 cells"):
            check_spreadsheet(big)


def test_text_shaped_like_xlsxwriters_rich_string_markup_is_escaped(version, tmp_path):
    # XlsxWriter copies a string "<r>...</r>" into the XML unescaped; a label or reason must not inject a formula
    copy = tmp_path / "copy"
    shutil.copytree(version, copy)
    descriptor = read_descriptor(copy)
    hostile = '<r><t>x</t></r><r><f>HYPERLINK("http://evil.example")</f></r>'
    descriptor["opendata:release"]["statement"].append(hostile)
    write_spreadsheets(copy, descriptor)
    _, xlsx = books(copy)
    with zipfile.ZipFile(xlsx) as z:
        assert not any(b"<f>" in z.read(n) for n in z.namelist() if n.startswith("xl/"))
    sheet = openpyxl.load_workbook(xlsx)["Cover_sheet"]
    assert hostile in [str(c.value) for row in sheet.iter_rows() for c in row]
