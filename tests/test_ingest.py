"""Ingestion: every format becomes raw text columns, and unusable files say why instead of crashing."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from opendata.errors import InputError
from opendata.ingest import FileProblem, file_format, read_raw, read_table


def test_csv_columns_are_raw_strings_with_empty_as_null(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(b'\xef\xbb\xbfid,n,d\n007,12,2012-01-01\n008,,"NA"\n')
    table = read_table(path)
    assert table.column_names == ["id", "n", "d"]
    assert all(f.type == pa.string() for f in table.schema)
    assert table.to_pydict() == {"id": ["007", "008"], "n": ["12", None], "d": ["2012-01-01", "NA"]}


def test_parquet_keeps_its_types(tmp_path):
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"d": pa.array([dt.date(2012, 1, 1)]), "n": pa.array([3])}), path)
    table = read_table(path)
    assert table.schema.field("d").type == pa.date32() and table.schema.field("n").type == pa.int64()


@pytest.mark.parametrize("suffix", [".xlsx", ".ods"])
def test_spreadsheet_cells_read_as_csv_text(tmp_path, suffix):
    path = tmp_path / f"a{suffix}"
    frame = pd.DataFrame(
        {
            "d": [dt.date(2012, 1, 1), None, dt.datetime(2012, 1, 2, 9, 30)],
            "n": [3, 4, 5],
            "f": [1.5, 2.0, None],
            "s": ["x", "NA", None],
        }
    )
    frame.to_excel(path, index=False, engine="odf" if suffix == ".ods" else "openpyxl")
    raw = read_raw(path)
    assert raw.table.to_pydict() == {
        "d": ["2012-01-01", None, "2012-01-02 09:30:00"],
        "n": ["3", "4", "5"],
        "f": ["1.5", "2", None],
        "s": ["x", "NA", None],
    }
    assert raw.where(1) == "row 1 (sheet row 2)"


def test_where_says_row_and_line(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("a\n1\n2\n")
    raw = read_raw(path)
    assert raw.where(2) == "row 2 (line 3)"
    assert raw.data_rows == 2


def test_ragged_rows_are_kept_as_problems_by_read_raw_and_raised_by_read_table(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("a,b\n1,2\n3\n4,5\n")
    raw = read_raw(path)
    assert raw.table.num_rows == 2 and raw.rows(pa.array([0, 1]).to_numpy()).tolist() == [1, 3]
    assert [(p.rule, p.row) for p in raw.problems] == [("ragged", 2)]
    with pytest.raises(FileProblem) as exc:
        read_table(path)
    assert exc.value.rule == "ragged" and isinstance(exc.value, InputError)


@pytest.mark.parametrize(
    ("name", "data", "rule", "words"),
    [
        ("a.csv", b"", "empty", "0 bytes"),
        ("a.csv", b"a,b\n", "empty", "no data rows"),
        ("a.csv", b"a,b", "empty", "no data rows"),
        ("a.csv", b"\n\n", "empty", "no header"),
        ("a.csv", b"a,b\n1,\xe9\n", "encoding", "offset 6 (line 2)"),
        ("a.csv", "a,b\n1,2\n".encode("utf-16"), "encoding", "UTF-16"),
        ("a.csv", b"\x89PNG\r\n\x1a\n\x00\x00", "not_a_table", "PNG"),
        ("a.csv", b"PK\x03\x04rest", "not_a_table", "ZIP"),
        ("a.csv", b"a,b,c\n1,2,3\n4,5", "truncated", "cut short"),
        ("a.csv", b"a,b\n1,2\n3,4,5,6\n", "ragged", "one value per header column"),
        ("a.csv", b'a,b\n1,2\n3,"4\n', "truncated", "cut short"),
        ("a.parquet", b"PAR1 not really", "truncated", "footer"),
        ("a.parquet", b"a,b\n1,2\n", "not_a_table", "not a Parquet file"),
        ("a.xlsx", b"a,b\n1,2\n", "not_a_table", "not an XLSX"),
        ("a.ods", b"PK\x03\x04broken", "truncated", "ZIP"),
        ("a.json", b"{}", "unsupported_format", ".csv"),
        ("a", b"x", "unsupported_format", "(none)"),
    ],
)
def test_unusable_files(tmp_path, name, data, rule, words):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(FileProblem) as exc:
        read_table(path)
    problem = exc.value.problem
    assert problem.rule == rule and problem.file == str(path)
    assert str(path) in problem.message and words in problem.message


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileProblem, match="does not exist") as exc:
        read_table(tmp_path / "nope.csv")
    assert exc.value.rule == "not_found"
    with pytest.raises(FileProblem, match="directory"):
        read_table(tmp_path)


def test_file_format_by_extension():
    assert [file_format(p) for p in ("a.CSV", "b.parquet", "c.xlsx", "d.ods", "e.xls")] == [
        "csv",
        "parquet",
        "xlsx",
        "ods",
        None,
    ]


def _bomb(path, padding_mib: int) -> None:
    """A real XLSX whose sheet XML is padded with ``padding_mib`` MiB of blanks (compresses ~1000 fold)."""
    import zipfile

    pd.DataFrame({"a": [1, 2]}).to_excel(path.with_suffix(".seed.xlsx"), index=False, engine="openpyxl")
    with (
        zipfile.ZipFile(path.with_suffix(".seed.xlsx")) as seed,
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out,
    ):
        for part in seed.infolist():
            data = seed.read(part)
            if part.filename != "xl/worksheets/sheet1.xml":
                out.writestr(part, data)
                continue
            with out.open(part.filename, "w") as sheet:
                head, tail = data.split(b"<sheetData>", 1)
                sheet.write(head + b"<sheetData>")
                for _ in range(padding_mib):
                    sheet.write(b" " * (1 << 20))
                sheet.write(tail)


@pytest.mark.parametrize(("padding", "words"), [(1536, "unpacks to 1,536 MiB of XML"), (64, "as ZIP bombs are")])
def test_a_spreadsheet_zip_bomb_is_refused_at_once_without_unpacking(tmp_path, padding, words):
    """Finding: an 8 MB XLSX that expands to 1.5 GB kept `validate` busy past 300 s. Replayed
    through the CLI: refused from the ZIP directory in seconds, naming the file and the limit."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    bomb = tmp_path / "mi.xlsx"
    _bomb(bomb, padding)
    assert bomb.stat().st_size < 8 << 20
    spec = Path(__file__).resolve().parent.parent / "specs" / "work-programme.yaml"
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "opendata.cli", "validate", spec, bomb, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert time.monotonic() - started < 30  # the whole process, interpreter start-up included
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "mi.xlsx" in run.stdout and words in run.stdout and "too_large" in run.stdout


def test_a_workbook_past_the_unpacked_size_limit_is_refused(tmp_path, monkeypatch):
    import opendata.ingest as ingest

    path = tmp_path / "a.xlsx"
    pd.DataFrame({"a": range(1000)}).to_excel(path, index=False, engine="openpyxl")
    assert read_raw(path).table.num_rows == 1000
    monkeypatch.setattr(ingest, "MAX_UNPACKED", 4096)
    with pytest.raises(FileProblem, match=r"unpacks to .* MiB of XML \(limit 0 MiB\)") as caught:
        read_raw(path)
    assert caught.value.rule == "too_large"


@pytest.mark.parametrize(
    ("attribute", "where"),
    [
        ('table:number-columns-repeated="100000000"', "cell"),  # one value standing for 10^8 cells
        ('table:number-rows-repeated="100000000"', "row"),  # one row standing for 10^8 rows
    ],
)
def test_an_ods_whose_repeats_expand_past_the_cap_is_refused_before_it_is_read(tmp_path, attribute, where):
    """ODS compresses repeated cells and rows in the XML itself, past any ZIP-ratio check: a file of a
    few KiB would expand to 10^8 cells in the reader. The sheet is counted first and refused."""
    import re
    import zipfile

    import pandas as pd

    plain = tmp_path / "plain.ods"
    pd.DataFrame({"a": ["x", "y"], "b": [1, 2]}).to_excel(plain, index=False, engine="odf")
    bomb = tmp_path / "bomb.ods"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "content.xml":
                text = data.decode()
                tag = "<table:table-cell " if where == "cell" else "<table:table-row>"
                last = text.rindex(tag)  # the last data row or its last cell
                text = text[:last] + tag[:-1] + " " + attribute + tag[-1] + text[last + len(tag) :]
                assert re.search(attribute, text)
                data = text.encode()
            dst.writestr(item, data)
    assert bomb.stat().st_size < 10_000
    with pytest.raises(FileProblem) as exc:
        read_table(bomb)
    assert exc.value.rule == "too_large" and "3,000,000 cells" in str(exc.value) and str(bomb) in str(exc.value)
    assert read_table(plain).num_rows == 2  # the same file without the repeat reads as before
