"""MI ingestion: one file (CSV, Parquet, XLSX or ODS) into a pyarrow Table of raw columns.

Text formats are read with every column as a string so that a bad value becomes a problem the
validator can report (file, row, column, value) instead of a crash in a type parser. A file that
cannot be read as a table at all raises :class:`FileProblem`, which names the file and says why
in words a data supplier can act on. Heavy modules (pandas, pyarrow.parquet) are imported only
when a file needs them so that ``opendata validate`` starts fast.
"""

from __future__ import annotations

import csv
import io
import mmap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from opendata.errors import InputError, Problem

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".xlsx": "xlsx", ".ods": "ods"}
HEAD_BYTES = 1 << 16
# A workbook is a ZIP of XML parts, read whole into memory: bound what it may unpack to before any
# parser sees it. 256 MiB of XML is about 3 million cells; larger MI belongs in CSV or Parquet.
MAX_UNPACKED = 256 << 20
# ODS compresses runs in the XML itself (a cell or row "repeated" n times): a few bytes can stand for
# billions of cells, which the reader expands. Counted from the XML before it is read.
MAX_SHEET_CELLS = 3_000_000
MAX_RATIO = 200  # XML of real sheets compresses 5-50 fold; a ZIP bomb compresses thousands fold
MAX_PARTS = 10_000

# Magic numbers of files people rename by mistake; said in the message so the fix is obvious.
MAGIC = (
    (b"\x89PNG", "a PNG image"),
    (b"GIF8", "a GIF image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (an XLSX or ODS spreadsheet saved under another name?)"),
    (b"\xd0\xcf\x11\xe0", "an old Excel .xls or other OLE2 file"),
    (b"PAR1", "a Parquet file"),
    (b"\x1f\x8b", "a gzip archive"),
)


class FileProblem(InputError):
    """A whole file cannot be used; carries the rule id so the validator can report it as a Problem."""

    def __init__(self, file: str, rule: str, message: str):
        self.file = file
        self.rule = rule
        super().__init__(message)

    @property
    def problem(self) -> Problem:
        return Problem(self.file, None, None, None, self.rule, str(self))


@dataclass
class RawTable:
    """A file as read: raw columns plus what is needed to point at a row in the user's terms."""

    name: str  # the path as the user gave it, used in every message
    format: str  # csv, parquet, xlsx or ods
    table: pa.Table  # strings for CSV and spreadsheets; Parquet keeps its own types
    row_numbers: np.ndarray | None = None  # 1-based data row of each table row when rows were skipped
    problems: list[Problem] = field(default_factory=list)  # rows that could not be read (ragged)
    lines_exact: Callable[[], bool] | None = None  # CSV: is "line = row + 1" true for this file?
    data_rows: int = 0  # data rows in the file, including skipped ones

    def rows(self, index: np.ndarray) -> np.ndarray:
        """1-based data row numbers of table positions ``index``."""
        return self.row_numbers[index] if self.row_numbers is not None else index + 1

    def where(self, row: int) -> str:
        """'row 17 (line 18)' for CSV, 'row 17 (sheet row 18)' for spreadsheets, 'row 17' for Parquet."""
        if self.format == "csv":
            return f"row {row} (line {row + 1})" if self.lines_exact is None or self.lines_exact() else f"row {row}"
        if self.format in ("xlsx", "ods"):
            return f"row {row} (sheet row {row + 1})"
        return f"row {row}"


def file_format(path: str | Path) -> str | None:
    """The format implied by the extension, or None if it is not one we read."""
    return FORMATS.get(Path(path).suffix.lower())


def read_table(path: str | Path) -> pa.Table:
    """Read one MI file into a Table of raw columns; raise FileProblem if it is not a usable table."""
    raw = read_raw(path)
    if raw.problems:
        first = raw.problems[0]
        raise FileProblem(first.file, first.rule, first.message)
    return raw.table


def read_raw(path: str | Path) -> RawTable:
    """Read one MI file, keeping row-level read problems (ragged rows) instead of failing on them."""
    name = str(path)
    p = Path(path)
    fmt = file_format(p)
    if not p.exists():
        raise FileProblem(name, "not_found", f"{name} does not exist; check the path and spelling")
    if p.is_dir():
        raise FileProblem(name, "not_a_table", f"{name} is a directory, not a data file; list the files in it")
    if fmt is None:
        supported = ", ".join(sorted(FORMATS))
        raise FileProblem(
            name,
            "unsupported_format",
            f"{name} has extension {p.suffix or '(none)'!r}, which is not a supported format; use one of {supported}",
        )
    size = p.stat().st_size
    if size == 0:
        raise FileProblem(name, "empty", f"{name} is empty (0 bytes); expected a header row and data rows")
    reader = {"csv": _read_csv, "parquet": _read_parquet, "xlsx": _read_sheet, "ods": _read_sheet}[fmt]
    try:
        raw = reader(p, name, fmt)
    except PermissionError:
        raise FileProblem(name, "unreadable", f"{name} cannot be opened: permission denied") from None
    except (OSError, pa.ArrowException, UnicodeDecodeError) as exc:  # anything else the readers let through
        raise FileProblem(name, "not_a_table", f"{name} cannot be read as {fmt.upper()}: {exc}") from None
    if raw.data_rows == 0:
        raise FileProblem(name, "empty", f"{name} has a header row but no data rows")
    return raw


def _head(p: Path) -> bytes:
    with p.open("rb") as handle:
        return handle.read(HEAD_BYTES)


def _binary_kind(head: bytes) -> str | None:
    for magic, kind in MAGIC:
        if head.startswith(magic):
            return kind
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "a binary file"
    return None


def _encoding_problem(p: Path, name: str) -> FileProblem:
    """Say where the first byte that is not UTF-8 is, and how to fix it."""
    data = p.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return FileProblem(name, "encoding", f"{name} is UTF-16, not UTF-8; re-save it as UTF-8 (in Excel: CSV UTF-8)")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        bad = data[exc.start : exc.start + 1].hex()
        try:
            guess = data[max(0, exc.start - 20) : exc.start + 20].decode("cp1252", errors="replace")
            context = f" near {guess.splitlines()[-1] if guess.splitlines() else guess!r}"
        except Exception:  # pragma: no cover - cp1252 with errors=replace does not fail
            context = ""
        return FileProblem(
            name,
            "encoding",
            f"{name} is not UTF-8: byte 0x{bad} at offset {exc.start} (line {line}){context} cannot be decoded; "
            "it looks like Latin-1/Windows-1252; re-save the file as UTF-8 (in Excel: CSV UTF-8)",
        )
    return FileProblem(name, "encoding", f"{name} is not valid UTF-8; re-save the file as UTF-8")


def _csv_header(head: bytes, p: Path, name: str) -> list[str]:
    """The header row, parsed with the csv module so every column can be typed as a string."""
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a multi-byte character cut by the read size
            raise _encoding_problem(p, name) from None
        text = head[: exc.start].decode("utf-8")
    rows = csv.reader(io.StringIO(text, newline=""))
    header = next(rows, [])
    if not header or not any(h.strip() for h in header):
        raise FileProblem(name, "empty", f"{name} has no header row (its first line is blank)")
    return header


def _read_csv(p: Path, name: str, fmt: str) -> RawTable:
    head = _head(p)
    kind = _binary_kind(head)
    if kind:
        raise FileProblem(name, "not_a_table", f"{name} is not a CSV text file: it looks like {kind}")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _encoding_problem(p, name)
    header = _csv_header(head, p, name)
    if not head.strip(b"\xef\xbb\xbf \r\n\t").count(b"\n") and len(head) < HEAD_BYTES:
        raise FileProblem(name, "empty", f"{name} has a header row but no data rows")
    skipped: list[tuple[int | None, int, int, str]] = []

    def on_bad_row(row) -> str:
        skipped.append((row.number, row.expected_columns, row.actual_columns, row.text))
        return "skip"

    def read(threads: bool) -> pa.Table:
        return pacsv.read_csv(
            p,
            read_options=pacsv.ReadOptions(use_threads=threads),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_bad_row),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()),
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )

    try:
        table = read(True)
        if skipped:  # rare: read again on one thread, which is when pyarrow knows row numbers
            skipped.clear()
            table = read(False)
    except UnicodeDecodeError:
        raise _encoding_problem(p, name) from None
    except pa.ArrowInvalid as exc:
        text = str(exc)
        if "UTF8" in text or "UTF-8" in text:
            raise _encoding_problem(p, name) from None
        if "Empty CSV" in text:
            raise FileProblem(name, "empty", f"{name} has a header row but no data rows") from None
        raise FileProblem(name, "not_a_table", f"{name} cannot be read as CSV: {text}") from None
    raw = RawTable(name, fmt, table, data_rows=table.num_rows + len(skipped))
    raw.lines_exact = _lines_exact_check(p, raw, multiline_header=any("\n" in h or "\r" in h for h in header))
    if _open_quote_at_end(p, table):
        row = raw.data_rows
        raw.problems.append(
            Problem(
                name,
                row,
                None,
                None,
                "truncated",
                f"{name} {raw.where(row)}: a quoted value is never closed; the file seems to be cut short "
                "(rule: truncated)",
            )
        )
    if skipped:
        bad_rows = np.array([number - 1 for number, *_ in skipped], dtype=np.int64)
        keep = np.setdiff1d(np.arange(1, raw.data_rows + 1, dtype=np.int64), bad_rows)
        raw.row_numbers = keep
        for (_, expected, actual, text), row in zip(skipped, bad_rows.tolist(), strict=True):
            last = row == raw.data_rows and actual < expected
            rule = "truncated" if last else "ragged"
            why = (
                "the file seems to be cut short (its last row is incomplete)"
                if last
                else "each row must have one value per header column"
            )
            shown = text if len(text) <= 80 else text[:77] + "..."
            raw.problems.append(
                Problem(
                    name,
                    row,
                    None,
                    shown,
                    rule,
                    f"{name} {raw.where(row)}: {shown!r} has {actual} fields but the header has {expected}; "
                    f"{why} (rule: {rule})",
                )
            )
    return raw


def _open_quote_at_end(p: Path, table: pa.Table) -> bool:
    """pyarrow accepts a quote left open at the end of the file; an odd number of quotes gives it away.

    Only looked at when the last row holds a line break, so a normal file is not read twice.
    """
    if not table.num_rows:
        return False
    last = [table.column(i)[table.num_rows - 1].as_py() for i in range(table.num_columns)]
    if not any(v and ("\n" in v or "\r" in v) for v in last):
        return False
    return p.read_bytes().count(b'"') % 2 == 1


def _lines_exact_check(p: Path, raw: RawTable, multiline_header: bool) -> Callable[[], bool]:
    """Lazily check that no quoted value spans lines, so 'line = row + 1' can be promised."""
    answer: list[bool] = []

    def check() -> bool:
        if not answer:
            with p.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                if multiline_header:
                    answer.append(False)
                elif data.find(b'"', data.find(b"\n")) < 0:  # no quoted value below the header: one fast scan
                    answer.append(True)
                else:
                    body = data[:]
                    newlines = body.count(b"\n") + (0 if body.endswith(b"\n") else 1)
                    answer.append(newlines == raw.data_rows + 1)
        return answer[0]

    return check


def _read_parquet(p: Path, name: str, fmt: str) -> RawTable:
    import pyarrow.parquet as pq

    head = _head(p)
    if not head.startswith(b"PAR1"):
        kind = _binary_kind(head) or "a text or other file"
        raise FileProblem(name, "not_a_table", f"{name} is not a Parquet file: it looks like {kind}")
    with p.open("rb") as handle:
        handle.seek(-4, io.SEEK_END)
        tail = handle.read(4)
    if tail != b"PAR1":
        raise FileProblem(
            name,
            "truncated",
            f"{name} is truncated: a Parquet file ends with a footer and this one has none; "
            "it was probably cut short while copying, so copy or export it again",
        )
    try:
        table = pq.read_table(p)
    except (pa.ArrowException, OSError) as exc:
        raise FileProblem(name, "truncated", f"{name} is damaged and cannot be read as Parquet: {exc}") from None
    return RawTable(name, fmt, table, data_rows=table.num_rows)


def _cell_text(value: object) -> str | None:
    """A spreadsheet cell as the text a CSV export would hold: dates ISO, whole numbers plain."""
    import datetime as dt

    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        if (value.hour, value.minute, value.second, value.microsecond) == (0, 0, 0, 0):
            return value.strftime("%Y-%m-%d")
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        if value != value:  # NaN
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def _check_workbook(p: Path, name: str) -> None:
    """Refuse a workbook whose parts would unpack past ``MAX_UNPACKED`` or that compresses like a ZIP
    bomb, from the ZIP directory alone. The sizes it declares bound what is read: ``zipfile`` stops
    at a part's declared size, and its checksum then fails if the part was bigger."""
    import zipfile

    try:
        with zipfile.ZipFile(p) as archive:
            parts = archive.infolist()
    except zipfile.BadZipFile:
        raise FileProblem(
            name, "truncated", f"{name} is damaged or truncated (its ZIP structure is broken); save or copy it again"
        ) from None
    advice = "save the sheet as CSV or Parquet instead, or split it"
    if len(parts) > MAX_PARTS:
        raise FileProblem(name, "too_large", f"{name} holds {len(parts):,} ZIP parts (limit {MAX_PARTS:,}); {advice}")
    unpacked = sum(part.file_size for part in parts)
    if unpacked > MAX_UNPACKED:
        raise FileProblem(
            name,
            "too_large",
            f"{name} unpacks to {unpacked / 2**20:,.0f} MiB of XML (limit {MAX_UNPACKED >> 20} MiB); {advice}",
        )
    for part in parts:
        if part.file_size > 1 << 20 and part.file_size > MAX_RATIO * max(part.compress_size, 1):
            ratio = part.file_size / max(part.compress_size, 1)
            raise FileProblem(
                name,
                "too_large",
                f"{name}: part {part.filename!r} is compressed {ratio:,.0f} to 1 (limit {MAX_RATIO} to 1), "
                f"as ZIP bombs are; {advice}",
            )


def _check_ods_cells(p: Path, name: str) -> None:
    """Refuse an ODS whose first sheet expands past ``MAX_SHEET_CELLS``: the reader materialises every
    repeated cell up to a row's last value, every row up to the last one holding a value (empty rows
    between included), and pads rows to the longest. Streamed, so the XML is never held whole."""
    import zipfile
    from xml.etree.ElementTree import iterparse

    table = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}"
    office = "{urn:oasis:names:tc:opendocument:xmlns:office:1.0}"
    rows = width = pending = 0  # rows kept, longest row, empty rows not yet kept
    col = row_end = 0
    depth, sheet = 0, None  # tables open (rows of tables nested in cells are read too), the first one
    try:
        with zipfile.ZipFile(p) as archive, archive.open("content.xml") as xml:
            for event, el in iterparse(xml, events=("start", "end")):
                if el.tag == table + "table":
                    depth += 1 if event == "start" else -1
                    sheet = el if sheet is None else sheet
                    if depth == 0:
                        return  # the first sheet is the one read
                elif depth and el.tag == table + "table-row" and event == "start":
                    col = row_end = 0
                elif depth and el.tag in (table + "table-cell", table + "covered-table-cell") and event == "end":
                    col += int(el.get(table + "number-columns-repeated", "1"))
                    if el.get(office + "value-type") or len(el):
                        row_end = col
                    el.clear()
                elif depth and el.tag == table + "table-row" and event == "end":
                    repeat = int(el.get(table + "number-rows-repeated", "1"))
                    if row_end:
                        rows, pending, width = rows + pending + repeat, 0, max(width, row_end)
                    else:
                        pending += repeat
                    sheet.clear()  # rows counted are let go: memory stays flat however many there are
                    if rows * width > MAX_SHEET_CELLS:
                        raise FileProblem(
                            name,
                            "too_large",
                            f"{name}: its first sheet expands to more than {MAX_SHEET_CELLS:,} cells (repeated "
                            "cells or rows); save the sheet as CSV or Parquet instead, or split it",
                        )
    except (KeyError, ValueError, SyntaxError, zipfile.BadZipFile):
        return  # not a readable ODS: the reader says so next


def _read_sheet(p: Path, name: str, fmt: str) -> RawTable:
    """First sheet of an XLSX (openpyxl) or ODS (odfpy) workbook; header in the first row."""
    import zipfile

    import pandas as pd

    head = _head(p)
    if not head.startswith(b"PK\x03\x04"):
        kind = _binary_kind(head) or "a text file"
        what = "an XLSX workbook" if fmt == "xlsx" else "an ODS spreadsheet"
        raise FileProblem(name, "not_a_table", f"{name} is not {what}: it looks like {kind}")
    _check_workbook(p, name)
    if fmt == "ods":
        _check_ods_cells(p, name)
    try:
        frame = pd.read_excel(
            p, sheet_name=0, header=None, dtype=object, na_filter=False, engine="openpyxl" if fmt == "xlsx" else "odf"
        )
    except zipfile.BadZipFile:
        raise FileProblem(
            name, "truncated", f"{name} is damaged or truncated (its ZIP structure is broken); save or copy it again"
        ) from None
    except Exception as exc:  # openpyxl and odfpy raise many kinds; none should become a traceback
        raise FileProblem(name, "not_a_table", f"{name} cannot be read as {fmt.upper()}: {exc}") from None
    rows = [[_cell_text(v) for v in row] for row in frame.itertuples(index=False, name=None)]
    while rows and all(v is None for v in rows[-1]):
        rows.pop()
    if not rows:
        raise FileProblem(name, "empty", f"{name} has no rows in its first sheet; expected a header row and data")
    header = ["" if h is None else h.strip() for h in rows[0]]
    keep = [i for i, h in enumerate(header) if h or any(r[i] is not None for r in rows[1:])]
    table = pa.Table.from_arrays(
        [pa.array([r[i] for r in rows[1:]], type=pa.string()) for i in keep],
        names=[header[i] or f"(column {i + 1} has no header)" for i in keep],
    )
    return RawTable(name, fmt, table, data_rows=table.num_rows)
