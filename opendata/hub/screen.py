"""Staged checks of a community upload: what is wrong, where, and how to fix it.

The hub's uploaders are data suppliers, not developers. What they ask of tools like the 360Giving
data quality tool, CoVE and the EES screener, and what this module gives:

* every problem located as they see their file: sheet, cell ("C17") and data row, with a message
  saying what is wrong and advice saying how to fix it;
* problems grouped by rule with counts, and by stage, so a first look says what kind of work it is;
* a to-do list (CSV) and their own file back as XLSX with each problem cell highlighted and commented;
* an ``accepted`` flag that gates publication: no blocking finding.

The checks run in stages (``STAGES``). ``opendata.validate`` does the work of the first four in one
columnar pass; this module sorts its problems into stages, locates them and adds its own file-size
refusals before validate and the usefulness warnings after it. A stage stops the later ones for a
file: a file that cannot be read (stage ``file``) has no header to check, and a file with a header
problem (stage ``structure``: a missing, extra or repeated column) gets no value or duplicate
findings, since with the header wrong they would be noise; fix the header and upload again. A row
with the wrong number of fields (``ragged``) is a structure finding of one row and stops nothing:
validate skips that row and checks the rest reliably. ``values`` and ``cross-file`` (duplicate keys,
within and across files) both need only a sound header, so they run side by side. ``usefulness``
(warnings only: future dates, groups that will be suppressed, too little data to publish) needs
every value right, so it runs only on an upload with no blocking finding.

Uploaded text is hostile until shown otherwise: the to-do CSV neutralises every text that a
spreadsheet would run as a formula (OWASP CSV injection), and the marked XLSX writes every cell as a
string cell, never a formula or link. Reports name the uploader's files, never where the server
saved them.
"""

from __future__ import annotations

import calendar
import contextlib
import csv
import datetime as dt
import io
import os
import re
import shutil
import tempfile
import zipfile
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from xlsxwriter.utility import xl_cell_to_rowcol, xl_rowcol_to_cell

from opendata.errors import Problem
from opendata.ingest import FORMATS, FileProblem, RawTable, file_format, read_raw
from opendata.spec import FORMULA_STARTS, ReleaseSpec
from opendata.spreadsheet import NS, write_text
from opendata.spreadsheet_check import MAX_BYTES, MAX_CELLS
from opendata.validate import MAX_DETAIL, validate

STAGES = ("file", "structure", "values", "cross-file", "usefulness")
BLOCKING, WARNING = "blocking", "warning"
VALUE_CHARS = 200  # an uploaded value echoed in a finding is cut to this; the marked file keeps it whole
MESSAGE_CHARS = 2000  # a message quoting a huge value is cut too
SMALL_SHARE = 0.10  # warn when more than this share of (provider, month) groups will be suppressed
SHEET_ROWS = 1_048_576  # rows in an XLSX sheet (Excel's limit); the header takes one
MAX_LINKS = 65_530  # hyperlinks Excel allows on one sheet
WHOLE_UPLOAD = "all files"  # the file of a finding about the upload as a whole, when it has several files
FIXED_CREATED = dt.datetime(2000, 1, 1)  # the marked workbook's creation time: the same bytes every time
DATA_SHEET = "Data"
PROBLEMS_SHEET = "Problems"
TODO_COLUMNS = ("file", "sheet", "cell", "row", "column", "stage", "severity", "rule", "value", "message", "advice")

# Every rule validate and ingest emit, and this module's own. An unknown rule lands in "values".
RULE_STAGE = {
    # the file can be read at all
    "no_files": "file",
    "not_found": "file",
    "unreadable": "file",
    "unsupported_format": "file",
    "not_a_table": "file",  # also validate's "no header is a spec field" (often a ;-separated CSV)
    "encoding": "file",
    "empty": "file",
    "truncated": "file",
    "too_large": "file",
    # the header and the shape of rows
    "missing_column": "structure",
    "extra_column": "structure",
    "duplicate_column": "structure",
    "ragged": "structure",
    # each value on its own, and the rules between fields of one row
    "type": "values",
    "impossible_date": "values",
    "required": "values",
    "enum": "values",
    "codelist": "values",
    "level": "values",
    "pattern": "values",
    "minimum": "values",
    "maximum": "values",
    "date_order": "values",
    "requires": "values",
    "nested": "values",
    # across rows and files
    "unique": "cross-file",
    "primary_key": "cross-file",
    "duplicate_file": "cross-file",
    # will the data be worth publishing (warnings only)
    "future_date": "usefulness",
    "small_groups": "usefulness",
    "too_few_rows": "usefulness",
}

ADVICE = {
    "no_files": "Choose at least one file to upload.",
    "not_found": "Upload the file again; it was not received.",
    "unreadable": "Upload the file again; it could not be opened.",
    "unsupported_format": "Save the data as CSV (UTF-8), XLSX or ODS and upload that file.",
    "not_a_table": (
        "Upload one table with the column headers of the standard format in its first row: a CSV separated by "
        "commas, or the first sheet of an XLSX or ODS workbook."
    ),
    "encoding": "Save the file as UTF-8: in Excel choose 'CSV UTF-8 (Comma delimited)' under Save As.",
    "empty": "The file has no data rows. Check you exported the right sheet or query, then upload it again.",
    "truncated": "The file is cut short or damaged. Export or copy it again and upload the new file.",
    "too_large": "Split the data into smaller files, or save it as CSV, which has no such limit.",
    "missing_column": (
        "Add the missing column with exactly the header the standard format uses; if it is there under another "
        "name, rename the header."
    ),
    "extra_column": "Delete the column, or rename its header to the field of the standard format it holds.",
    "duplicate_column": "Keep one column with this header and delete or rename the others.",
    "ragged": (
        "Give this row one value per column: look for a stray comma, or a value with a comma in it that is not "
        'in double quotes ("like, this").'
    ),
    "type": "Write whole numbers as digits only (12), dates as YYYY-MM-DD (2024-02-29) and months as YYYY-MM.",
    "impossible_date": (
        "The date does not exist in the calendar. Check the day and the month (are they swapped?) and correct it."
    ),
    "required": "Fill in this cell; the field may not be empty.",
    "enum": "Use one of the values the standard format lists for this column, spelt exactly (case matters).",
    "codelist": "Use a code from the code list of the standard format, spelt exactly; check for typos and old codes.",
    "level": "Use a code of the level this column holds (for example a subcontractor code, not a prime contract).",
    "pattern": "Write the value in the form the standard format requires (for example WP followed by 8 digits).",
    "minimum": "Correct the value: it is below the lowest the standard format allows.",
    "maximum": "Correct the value: it is above the highest the standard format allows.",
    "date_order": "Correct one of the two dates: events must happen in order (referral, then attachment, ...).",
    "requires": "Fill in the field this one depends on, or empty this one if the event did not happen.",
    "nested": "Make the codes agree: the provider code must belong to the area or contract given in the same row.",
    "unique": "Each value may appear once. Remove the repeated row, or correct the value if it is a different case.",
    "primary_key": (
        "Each record may appear once, across all the files of the upload. Remove the repeated row, or correct the "
        "identifier if it is a different person."
    ),
    "duplicate_file": "Remove the second copy of the file from the upload.",
    "future_date": "Check the date: an event cannot have happened after today. Correct the year if it is a typo.",
    "small_groups": (
        "No change is needed. Small counts are suppressed to protect people; if you can, supply more months or "
        "providers together so fewer groups fall below the threshold."
    ),
    "too_few_rows": "Check you uploaded all the data. With this little, nothing can be published.",
}
GENERIC_ADVICE = "Correct the value as the message says, then upload the file again."

BLOCKING_FILL = {"bg_color": "#FFC7CE", "font_color": "#9C0006"}  # Excel's "Bad" style, for blocking findings
WARNING_FILL = {"bg_color": "#FFEB9C", "font_color": "#9C5700"}  # Excel's "Neutral", for warnings
SUMMARY = re.compile(r"([\d,]+) rows break rule \S+; only the first ([\d,]+) are listed")
NO_HEADER = re.compile(r"\(column (\d+) has no header\)")
DATE_PARTS = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
DAY_FIRST = re.compile(r"[0-9]{1,2}[/.][0-9]{1,2}[/.][0-9]{2,4}")


def stage_of(rule: str) -> str:
    """The stage a rule belongs to; a rule this module does not know is about values."""
    return RULE_STAGE.get(rule, "values")


def severity_of(rule: str) -> str:
    """Usefulness findings are advice; everything else stops publication."""
    return WARNING if stage_of(rule) == "usefulness" else BLOCKING


def advice_for(rule: str) -> str:
    return ADVICE.get(rule, GENERIC_ADVICE)


@dataclass(frozen=True)
class Finding:
    """One problem, located where the uploader will look for it."""

    stage: str  # one of STAGES
    severity: str  # "blocking" or "warning"
    file: str  # the uploader's own file name (not a server path)
    sheet: str | None  # sheet name for XLSX/ODS, else None
    row: int | None  # 1-based data row, None for a file-level finding
    cell: str | None  # "C17": the cell when the file is opened in a spreadsheet (header row 1); None if file-level
    column: str | None
    value: str | None
    rule: str
    message: str  # what is wrong, plain English
    advice: str  # how to fix it, plain English


@dataclass(frozen=True)
class StageResult:
    """One stage: findings by severity, and whether it ran on any file (see the module docstring)."""

    stage: str
    blocking: int
    warnings: int
    ran: bool


@dataclass
class ScreenReport:
    """Everything found in one upload. ``findings`` is capped per (file, column, rule) as validate
    caps its problems; ``counts`` and the stage totals count every finding, listed or not."""

    findings: list[Finding]
    stages: list[StageResult]
    counts: dict[str, int]  # rule -> number of findings
    rows: dict[str, int]  # file name -> data rows

    @property
    def accepted(self) -> bool:
        """Publication is allowed only with no blocking finding."""
        return not any(s.blocking for s in self.stages)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the verdict, the stages, the counts grouped by rule and every listed finding."""
        return {
            "accepted": self.accepted,
            "stages": [asdict(s) for s in self.stages],
            "counts": {
                rule: {"count": n, "stage": stage_of(rule), "severity": severity_of(rule), "advice": advice_for(rule)}
                for rule, n in self.counts.items()
            },
            "total": sum(self.counts.values()),
            "rows": dict(self.rows),
            "findings": [asdict(f) for f in self.findings],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScreenReport:
        """The report as ``to_dict`` stored it (the marked files are made from it later, on demand)."""
        return cls(
            [Finding(**f) for f in data["findings"]],
            [StageResult(**s) for s in data["stages"]],
            {rule: int(c["count"]) for rule, c in data["counts"].items()},
            {name: int(n) for name, n in data["rows"].items()},
        )

    def todo_csv(self) -> bytes:
        """The to-do list: one line per finding, every text neutralised so no cell can run as a formula.

        UTF-8 with a byte order mark, so Excel reads the accents in names and values right.
        """
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(TODO_COLUMNS)
        for f in self.findings:
            writer.writerow([neutralise(v) for v in _todo_row(f)])
        return ("\ufeff" + out.getvalue()).encode("utf-8")


def neutralise(value: object) -> str:
    """A CSV field a spreadsheet shows as text: a leading = + - @ tab or CR gets an apostrophe (OWASP)."""
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text[:1] in FORMULA_STARTS else text


def _todo_row(f: Finding) -> list[object]:
    return [f.file, f.sheet, f.cell, f.row, f.column, f.stage, f.severity, f.rule, f.value, f.message, f.advice]


# --- the uploaded files as the uploader sees them ------------------------------------------------


@dataclass
class _Layout:
    """Where the table sits in a file: the sheet, and the table column name at each sheet column."""

    fmt: str
    sheet: str | None = None
    header: list[str] = field(default_factory=list)  # table column name by 0-based column position
    cells: int | None = None  # cells holding a value (ODS, repeats counted) or declared (XLSX)

    def position(self, name: str, occurrence: int = 0) -> int | None:
        """0-based column of the ``occurrence``-th column called ``name`` (the first is the one validate uses)."""
        m = NO_HEADER.fullmatch(name)
        if m:
            return int(m.group(1)) - 1
        seen = 0
        for i, h in enumerate(self.header):
            if h == name:
                if seen == occurrence:
                    return i
                seen += 1
        return None


@dataclass
class _Upload:
    name: str  # the uploader's name for the file
    path: Path  # where the server saved it
    read_path: Path | None = None  # what validate reads: the saved file, under the uploader's extension
    layout: _Layout | None = None
    refusal: Problem | None = None  # refused before validate (format, size caps)


def _header_name(value: object, i: int) -> str:
    """The table column name ingest gives a spreadsheet header cell."""
    if value is None or value == "":
        text = ""
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    elif isinstance(value, dt.datetime) and (value.hour, value.minute, value.second) == (0, 0, 0):
        text = value.strftime("%Y-%m-%d")
    elif isinstance(value, dt.date):
        text = value.isoformat()
    else:
        text = str(value)
    return text.strip() or f"(column {i + 1} has no header)"


def _csv_layout(path: Path) -> _Layout:
    with path.open("rb") as handle:
        head = handle.read(1 << 16)
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    text = head.decode("utf-8", errors="ignore")
    header = next(csv.reader(io.StringIO(text, newline="")), [])
    return _Layout("csv", header=header)


def _xlsx_layout(path: Path) -> _Layout:
    """The first sheet's name, header row and declared size, streamed (read-only) as pandas reads it."""
    import openpyxl

    book = openpyxl.load_workbook(path, read_only=True, data_only=True, keep_links=False)
    try:
        ws = book.worksheets[0]
        first = next(ws.iter_rows(min_row=1, max_row=1, values_only=True), ())
        cells = (ws.max_row or 0) * (ws.max_column or 0)
        return _Layout("xlsx", ws.title, [_header_name(v, i) for i, v in enumerate(first)], cells)
    finally:
        book.close()


def _q(prefix: str, name: str) -> str:
    return f"{{{NS[prefix]}}}{name}"


def _ods_layout(path: Path) -> _Layout:
    """The first table's name and header row, and its cells counted with their repeats, in one stream.

    An ODS row or cell may say it repeats a million times in a few bytes; pandas would expand it, so
    the count stops at ``MAX_CELLS`` as ``opendata.spreadsheet_check`` does.
    """
    table_tag, row_tag = _q("table", "table"), _q("table", "table-row")
    cell_tags = (_q("table", "table-cell"), _q("table", "covered-table-cell"))
    rows_rep, cols_rep = _q("table", "number-rows-repeated"), _q("table", "number-columns-repeated")
    value_type, value = _q("office", "value-type"), _q("office", "value")
    layout = _Layout("ods", cells=0)
    header: list[str] | None = None
    stack: list[ET.Element] = []
    with zipfile.ZipFile(path) as z, z.open("content.xml") as stream:
        for event, el in ET.iterparse(stream, events=("start", "end")):
            if event == "start":
                stack.append(el)
                if el.tag == table_tag and layout.sheet is None:
                    layout.sheet = el.get(_q("table", "name"), "")
                continue
            stack.pop()
            if el.tag == table_tag:
                break
            if el.tag != row_tag or layout.sheet is None:
                continue
            repeat = int(el.get(rows_rep, "1"))
            row = [c for c in el if c.tag in cell_tags]
            layout.cells += repeat * sum(int(c.get(cols_rep, "1")) for c in row if c.get(value_type))
            if header is None:
                header = []
                for c in row:
                    n = min(int(c.get(cols_rep, "1")), 16_384 - len(header))
                    if c.get(value_type) == "float":
                        text: object = float(c.get(value, "nan"))
                    else:
                        text = "\n".join("".join(p.itertext()) for p in c.iter(_q("text", "p")))
                    header += [_header_name(text, len(header) + k) for k in range(n)]
            if layout.cells > MAX_CELLS:
                break
            if stack:
                stack[-1].remove(el)  # keep memory flat on a long sheet
    layout.header = header or []
    return layout


def _parquet_layout(path: Path) -> _Layout:
    import pyarrow.parquet as pq

    return _Layout("parquet", header=list(pq.read_schema(path).names))


def _layout(fmt: str, path: Path) -> _Layout | None:
    """Best effort: a file that cannot be looked into here gets its problem from validate instead."""
    readers = {"csv": _csv_layout, "xlsx": _xlsx_layout, "ods": _ods_layout, "parquet": _parquet_layout}
    try:
        return readers[fmt](path)
    except Exception:  # a damaged file: validate says what is wrong with it
        return None


def _inspect(upload: _Upload) -> None:
    """The checks validate does not make: a format known from the uploader's name, and spreadsheet size caps."""
    name, path = upload.name, upload.read_path or upload.path  # openpyxl insists on the extension
    fmt = file_format(name)
    if fmt is None:
        suffix = Path(name).suffix or "(none)"
        upload.refusal = Problem(
            name,
            None,
            None,
            None,
            "unsupported_format",
            f"{name} has extension {suffix[:20]!r}, which is not a format the hub reads; "
            f"use one of {', '.join(sorted(FORMATS))}",
        )
        return
    if not path.is_file():
        return  # validate reports it
    size = path.stat().st_size
    if fmt in ("xlsx", "ods") and size > MAX_BYTES:
        upload.refusal = Problem(
            name,
            None,
            None,
            None,
            "too_large",
            f"{name} is {size / 2**20:,.0f} MiB; a spreadsheet over {MAX_BYTES >> 20} MiB is not read",
        )
        return
    upload.layout = _layout(fmt, path)
    if upload.layout is not None and (upload.layout.cells or 0) > MAX_CELLS:
        upload.refusal = Problem(
            name,
            None,
            None,
            None,
            "too_large",
            f"{name}: its first sheet holds more than {MAX_CELLS:,} cells; a spreadsheet that large is not read",
        )


@contextlib.contextmanager
def _named(uploads: list[_Upload]) -> Iterator[None]:
    """Give validate each saved file under the extension of the uploader's name (servers often save
    uploads under a random name); a link in a temporary directory, a copy where links are refused."""
    with contextlib.ExitStack() as stack:
        tmp: Path | None = None
        for i, u in enumerate(uploads):
            fmt = file_format(u.name)
            suffix = Path(u.name).suffix.lower()
            if fmt is None or u.path.suffix.lower() == suffix or not u.path.is_file():
                u.read_path = u.path
                continue
            if tmp is None:
                tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="opendata-screen-")))
            link = tmp / f"upload-{i}{suffix}"
            try:
                link.symlink_to(u.path.resolve())
            except OSError:
                shutil.copyfile(u.path, link)
            u.read_path = link
        yield


# --- validate's problems as findings --------------------------------------------------------------


def _impossible_date(text: str) -> str | None:
    """'2024-02-30 is not a real date: February 2024 has 29 days', for a well-formed date that does not exist."""
    m = DATE_PARTS.fullmatch(text)
    if not m:
        return None
    year, month, day = (int(g) for g in m.groups())
    if not 1 <= month <= 12:
        return f"{text} is not a real date: there is no month {month:02d} (months run from 01 to 12)"
    if year == 0:
        return f"{text} is not a real date: there is no year 0000"
    last = calendar.monthrange(year, month)[1]
    if day == 0 or day > last:
        return f"{text} is not a real date: {calendar.month_name[month]} {year} has {last} days"
    return None


def _cut(value: str | None) -> str | None:
    if value is None or len(value) <= VALUE_CHARS:
        return value
    return value[: VALUE_CHARS - 1] + "…"


def _plain(problem: Problem, name: str) -> str:
    """validate's message without the file, row and column (the finding has them) and the rule id."""
    message = problem.message
    row = r" row \d+(?: \((?:line|sheet row) \d+\))?" if problem.row is not None else ""
    column = f", column {re.escape(problem.column)}" if problem.column is not None else ""
    for prefix in (re.escape(name) + row + column + ": ", re.escape(name) + ": "):
        m = re.match(prefix, message)
        if m:
            message = message[m.end() :]
            break
    message = re.sub(r" \(rule: [\w-]+\)$", "", message)
    value = problem.value
    if value is not None and len(value) > VALUE_CHARS:  # a message quoting a huge value quotes it cut
        message = message.replace(repr(value), repr(_cut(value))).replace(value, _cut(value) or "")
    if len(message) > MESSAGE_CHARS:
        message = message[: MESSAGE_CHARS - 1] + "…"
    return message


def _weight(problem: Problem) -> int:
    """How many problems one listed problem stands for: validate's summary line stands for the unlisted rest."""
    if problem.row is None and problem.column is not None:
        m = SUMMARY.search(problem.message)
        if m:
            return int(m.group(1).replace(",", "")) - int(m.group(2).replace(",", ""))
    return 1


@dataclass
class _Found:
    finding: Finding
    weight: int  # findings it stands for (more than 1 for a "only the first N are listed" line)
    order: tuple


def _finding(
    problem: Problem,
    upload: _Upload,
    spec: ReleaseSpec,
    header_seen: Counter,
    paths: list[tuple[str, str]],
) -> Finding:
    """Locate one of validate's problems in the uploader's file and say it in their terms."""
    name = upload.name
    message = problem.message
    for server, own in paths:
        message = message.replace(server, own)
    problem = Problem(name, problem.row, problem.column, problem.value, problem.rule, message)
    rule = problem.rule
    text = _plain(problem, name)
    is_date = problem.column in spec.input.names and spec.input.field(problem.column).type == "date"
    if rule == "type" and problem.value is not None and is_date:
        impossible = _impossible_date(problem.value)
        if impossible:
            rule, text = "impossible_date", impossible
        elif DAY_FIRST.fullmatch(problem.value):
            text += "; it looks like day/month/year, so write it as year-month-day"
    layout = upload.layout
    stage = stage_of(rule)
    cell = None
    if layout is not None:
        if problem.row is not None:
            col = layout.position(problem.column) if problem.column is not None else 0
            if col is not None:
                cell = xl_rowcol_to_cell(problem.row, col)
        elif rule in ("extra_column", "duplicate_column") and problem.column is not None:
            # validate reports every repeat of a header in column order; extra columns from the first
            key = (name, rule, problem.column)
            k = header_seen[key]
            header_seen[key] += 1
            col = layout.position(problem.column, k + (1 if rule == "duplicate_column" else 0))
            if col is not None:
                cell = xl_rowcol_to_cell(0, col)
    sheet = layout.sheet if layout is not None and layout.fmt in ("xlsx", "ods") and stage != "file" else None
    return Finding(
        stage=stage,
        severity=severity_of(rule),
        file=name,
        sheet=sheet,
        row=problem.row,
        cell=cell,
        column=problem.column,
        value=_cut(problem.value),
        rule=rule,
        message=text,
        advice=advice_for(rule),
    )


def _order(index: int, f: Finding, layout: _Layout | None) -> tuple:
    """File by file in upload order, stage by stage, then by row and column, as the uploader fixes them."""
    col = -1
    if f.cell is not None:
        col = xl_cell_to_rowcol(f.cell)[1]
    elif f.column is not None and layout is not None:
        position = layout.position(f.column)
        col = -1 if position is None else position
    return (index, STAGES.index(f.stage), f.row or 0, col, f.rule, f.column or "", f.message)


# --- usefulness -----------------------------------------------------------------------------------


def _date_scalar(day: dt.date) -> pa.Scalar:
    return pa.scalar(day, pa.date32())


def _future_dates(
    spec: ReleaseSpec, table: pa.Table, uploads: list[_Upload], rows: list[int], today: dt.date
) -> Iterator[tuple[Finding, int]]:
    """A date after today cannot be an event that happened: most often a typo in the year."""
    offsets = np.cumsum([0, *rows])
    for f in spec.input.fields:
        if f.type not in ("date", "yearmonth"):
            continue
        col = table.column(f.name)
        limit = _date_scalar(today) if f.type == "date" else pa.scalar(today.strftime("%Y-%m"))
        later = pc.greater(col, limit)
        if not pc.any(later).as_py():
            continue
        index = pc.indices_nonzero(later).to_numpy(zero_copy_only=False).astype(np.int64)
        file_no = np.searchsorted(offsets, index, side="right") - 1
        for i, u in enumerate(uploads):
            mine = index[file_no == i]
            if not len(mine):
                continue
            shown = mine[:MAX_DETAIL]
            values = col.take(pa.array(shown)).to_pylist()
            pos = u.layout.position(f.name) if u.layout is not None else None
            sheet = u.layout.sheet if u.layout is not None and u.layout.fmt in ("xlsx", "ods") else None
            for at, value in zip(shown.tolist(), values, strict=True):
                row = at - int(offsets[i]) + 1
                text = value.isoformat() if isinstance(value, dt.date) else str(value)
                yield (
                    Finding(
                        "usefulness",
                        WARNING,
                        u.name,
                        sheet,
                        row,
                        xl_rowcol_to_cell(row, pos) if pos is not None else None,
                        f.name,
                        text,
                        "future_date",
                        f"{f.name} is {text}, after today ({today.isoformat()}): an event cannot have happened yet",
                        advice_for("future_date"),
                    ),
                    1,
                )
            if len(mine) > MAX_DETAIL:
                yield (
                    Finding(
                        "usefulness",
                        WARNING,
                        u.name,
                        sheet,
                        None,
                        None,
                        f.name,
                        None,
                        "future_date",
                        f"{len(mine):,} rows have a date after today; only the first {MAX_DETAIL:,} are listed",
                        advice_for("future_date"),
                    ),
                    len(mine) - MAX_DETAIL,
                )


def _upload_warning(where: str, rule: str, message: str) -> Finding:
    """A usefulness warning about the upload as a whole (no sheet, row or cell)."""
    return Finding("usefulness", WARNING, where, None, None, None, None, None, rule, message, advice_for(rule))


def _group_check(spec: ReleaseSpec, table: pa.Table, where: str) -> Iterator[tuple[Finding, int]]:
    """How much of the main table will survive disclosure control: the share of (provider, month)
    groups below the threshold (shown as [c]), and whether there is enough to publish anything."""
    threshold = spec.disclosure.threshold
    chosen = None
    for t in spec.tables:
        period = [d for d in t.dimensions if spec.dimensions[d].period]
        entities = [spec.dimensions[d] for d in t.dimensions if spec.dimensions[d].levels]
        measures = [spec.measures[m] for m in t.measures if not spec.measures[m].within_months]
        if period and entities and measures:
            chosen = (entities, measures[0])
            break
    if chosen is None:
        return
    entities, measure = chosen
    keys = [d.levels[-1] for d in entities]  # the finest level: what a provider's own cells are made of
    value = table.column(measure.field)
    if measure.aggregate == "count":
        amount = pc.cast(pc.is_valid(value), pa.int64())
    else:
        amount = pc.fill_null(pc.cast(value, pa.int64()), 0)
    period = table.column(measure.period)
    is_date = pa.types.is_date(period.type)
    month = pc.add(pc.multiply(pc.year(period), 100), pc.month(period)) if is_date else period
    total = pc.sum(amount).as_py() or 0
    label = measure.title.lower()
    if total < threshold:
        yield (
            _upload_warning(
                where,
                "too_few_rows",
                f"the upload holds {total:,} {label} in all, fewer than the disclosure threshold of {threshold}: "
                "every count would be suppressed, so nothing from it can be published",
            ),
            1,
        )
        return
    frame = pa.table({**{k: table.column(k) for k in keys}, "_month": month, "_amount": amount})
    groups = frame.group_by([*keys, "_month"]).aggregate([("_amount", "sum")]).column("_amount_sum")
    present = pc.greater(groups, 0)
    n_groups = pc.sum(pc.cast(present, pa.int64())).as_py() or 0
    small = pc.sum(pc.cast(pc.and_(present, pc.less(groups, threshold)), pa.int64())).as_py() or 0
    if n_groups and small / n_groups > SMALL_SHARE:
        what = " × ".join(k.replace("_", " ") for k in keys)
        yield (
            _upload_warning(
                where,
                "small_groups",
                f"{small:,} of {n_groups:,} {what} × month groups ({small / n_groups:.0%}) have fewer than "
                f"{threshold} {label}; they will be published as [c] (suppressed to protect people)",
            ),
            1,
        )


# --- screening ------------------------------------------------------------------------------------


def screen(spec: ReleaseSpec, files: Mapping[str, Path], *, now: dt.date | None = None) -> ScreenReport:
    """Check an upload in stages and locate every problem; never raises for bad data.

    ``files`` maps the uploader's file name to where it was saved on disk, so reports never show
    server paths. The format is the one the uploader's name says. ``now`` is the day future dates
    are judged against (today by default).
    """
    today = now or dt.date.today()
    uploads = [_Upload(str(name), Path(path)) for name, path in files.items()]
    found: list[_Found] = []
    if not uploads:
        nothing = Problem("(no file)", None, None, None, "no_files", "no file was uploaded")
        f = _finding(nothing, _Upload("(no file)", Path()), spec, Counter(), [])
        found.append(_Found(f, 1, _order(0, f, None)))
    with _named(uploads):
        for u in uploads:
            _inspect(u)
        checked = [u for u in uploads if u.refusal is None]
        report = validate(spec, [u.read_path or u.path for u in checked])
    by_path = {str(u.read_path or u.path): u for u in checked}
    paths = sorted(((str(u.read_path or u.path), u.name) for u in checked), key=lambda p: -len(p[0]))
    paths += sorted(((str(u.path), u.name) for u in uploads), key=lambda p: -len(p[0]))
    index = {u.name: i for i, u in enumerate(uploads)}
    per_file: dict[str, list[_Found]] = defaultdict(list)
    header_seen: Counter = Counter()
    for u in uploads:
        if u.refusal is not None:
            f = _finding(u.refusal, u, spec, header_seen, [])
            per_file[u.name].append(_Found(f, 1, _order(index[u.name], f, None)))
    for p in report.problems:
        u = by_path.get(p.file)
        if u is None:  # validate names only the files it was given; this cannot happen
            continue
        f = _finding(p, u, spec, header_seen, paths)
        per_file[u.name].append(_Found(f, _weight(p), _order(index[u.name], f, u.layout)))
    ran = dict.fromkeys(STAGES, False)
    ran["file"] = True
    for u in uploads:
        mine = per_file.get(u.name, [])
        readable = not any(x.finding.stage == "file" or x.finding.rule == "duplicate_file" for x in mine)
        sound = readable and not any(x.finding.stage == "structure" and x.finding.row is None for x in mine)
        ran["structure"] |= readable
        ran["values"] |= sound
        ran["cross-file"] |= sound
        if not sound:  # the later stages did not run for this file: what validate found there is noise
            mine = [x for x in mine if x.finding.stage in ("file", "structure") or x.finding.rule == "duplicate_file"]
        found.extend(mine)
    rows = {u.name: report.rows.get(str(u.read_path or u.path), 0) if u.refusal is None else 0 for u in uploads}
    blocked = any(x.finding.severity == BLOCKING for x in found)
    if not blocked and report.ok and report.table is not None and uploads:
        ran["usefulness"] = True
        where = uploads[0].name if len(uploads) == 1 else WHOLE_UPLOAD
        counts_in_order = [rows[u.name] for u in uploads]
        extra = [*_future_dates(spec, report.table, uploads, counts_in_order, today)]
        extra += _group_check(spec, report.table, where)
        layouts = {u.name: u.layout for u in uploads}
        for f, weight in extra:
            found.append(_Found(f, weight, _order(index.get(f.file, len(uploads)), f, layouts.get(f.file))))
    found.sort(key=lambda x: x.order)
    counts: Counter[str] = Counter()
    by_stage: dict[str, Counter[str]] = {s: Counter() for s in STAGES}
    for x in found:
        counts[x.finding.rule] += x.weight
        by_stage[x.finding.stage][x.finding.severity] += x.weight
    ordered = dict(sorted(counts.items(), key=lambda kv: (STAGES.index(stage_of(kv[0])), kv[0])))
    stages = [StageResult(s, by_stage[s][BLOCKING], by_stage[s][WARNING], ran[s]) for s in STAGES]
    return ScreenReport([x.finding for x in found], stages, ordered, rows)


# --- the uploader's file, marked ------------------------------------------------------------------


def _sheet_name(wanted: str | None) -> str:
    """The uploader's sheet name when Excel allows it and it is not the problems sheet's, else Data."""
    if (
        not wanted
        or len(wanted) > 31
        or any(ch in wanted for ch in "[]:*?/\\")
        or wanted.startswith("'")
        or wanted.endswith("'")
        or wanted.lower() in (PROBLEMS_SHEET.lower(), "history")
    ):
        return DATA_SHEET
    return wanted


def _comment(findings: list[Finding]) -> str:
    parts = [f"{f.message}\nHow to fix: {f.advice}" for f in findings[:5]]
    if len(findings) > 5:
        parts.append(f"and {len(findings) - 5} more problems in this cell")
    return "\n\n".join(parts)[:4000]


def write_marked(report: ScreenReport, name: str, path: Path, out: Path) -> None:
    """The uploader's file ``name`` (saved at ``path``) as XLSX with every finding marked.

    A first sheet "Problems" holds the to-do list (its cells link to the data); then their data,
    laid out as in their file (header in row 1, each column where it was), every problem cell
    filled and commented with message and advice. Rows stream through XlsxWriter's
    constant_memory mode a batch at a time, and every value is a string cell. The same report and
    file give the same bytes.
    """
    import xlsxwriter

    upload = _Upload(name, Path(path))
    raw: RawTable | None = None
    with _named([upload]):
        _inspect(upload)
        if upload.refusal is None:
            try:
                raw = read_raw(upload.read_path or upload.path)
            except FileProblem:
                raw = None
    notes = [] if raw is not None else [f"{name} could not be read, so its data is not in this workbook."]
    mine = [f for f in report.findings if f.file in (name, WHOLE_UPLOAD)]
    layout = upload.layout
    data_sheet = _sheet_name(layout.sheet if layout is not None else None)
    out = Path(out)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    options = {
        "constant_memory": True,
        "strings_to_formulas": False,
        "strings_to_urls": False,
        "strings_to_numbers": False,
        "use_zip64": True,
    }
    try:
        wb = xlsxwriter.Workbook(str(tmp), options)
        wb.set_properties({"title": f"Problems found in {name}"[:255], "created": FIXED_CREATED})
        plain = wb.add_format()
        fills = {BLOCKING: wb.add_format(BLOCKING_FILL), WARNING: wb.add_format(WARNING_FILL)}
        problems = wb.add_worksheet(PROBLEMS_SHEET)  # first sheet; written last, once the notes are known
        if raw is not None:
            data = wb.add_worksheet(data_sheet)
            notes += _write_data(data, raw, layout, [f for f in mine if f.file == name], fills, plain)
        bold = wb.add_format({"bold": True})
        link = wb.add_format({"font_color": "#0563C1", "underline": 1})
        _write_problems(problems, mine, data_sheet if raw is not None else None, notes, bold, link, plain)
        wb.close()
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def _write_problems(
    ws: Any, findings: list[Finding], data_sheet: str | None, notes: list[str], bold: Any, link: Any, plain: Any
) -> None:
    """The to-do list as a filterable table; each cell reference links to the cell in the data sheet."""
    widths = (24, 14, 8, 8, 20, 11, 10, 18, 24, 70, 70)
    for c, (title, width) in enumerate(zip(TODO_COLUMNS, widths, strict=True)):
        ws.set_column(c, c, width)
        ws.write_string(0, c, title, bold)
    ws.freeze_panes(1, 0)
    shown = findings[: SHEET_ROWS - 3 - len(notes)]
    links = 0
    cell_col = TODO_COLUMNS.index("cell")
    for r, f in enumerate(shown, start=1):
        for c, value in enumerate(_todo_row(f)):
            if value is None:
                continue
            if isinstance(value, int):
                ws.write_number(r, c, value)
            elif c == cell_col and data_sheet is not None and links < MAX_LINKS:
                if xl_cell_to_rowcol(value)[0] < SHEET_ROWS:
                    ws.write_url(r, c, f"internal:'{data_sheet}'!{value}", link, value)
                    links += 1
                else:
                    write_text(ws, r, c, value, None, plain)
            else:
                write_text(ws, r, c, str(value), None, plain)
    ws.autofilter(0, 0, max(len(shown), 1), len(TODO_COLUMNS) - 1)
    if len(shown) < len(findings):
        notes = [*notes, f"Only the first {len(shown):,} of {len(findings):,} problems fit on this sheet."]
    for i, note in enumerate(notes, start=len(shown) + 2):
        write_text(ws, i, 0, note, None, plain)


def _write_data(
    ws: Any,
    raw: RawTable,
    layout: _Layout | None,
    findings: list[Finding],
    fills: dict[str, Any],
    plain: Any,
) -> list[str]:
    """The data in row order, one batch of rows in Python at a time; problem cells filled and commented.

    Returns notes for the problems sheet (rows that do not fit on a sheet)."""
    table = raw.table
    names = table.column_names
    seen: Counter[str] = Counter()
    positions = []
    for j, n in enumerate(names):
        pos = layout.position(n, seen[n]) if layout is not None else None
        seen[n] += 1
        positions.append(j if pos is None else pos)
    marks: dict[int, dict[int, list[Finding]]] = defaultdict(lambda: defaultdict(list))
    for f in findings:
        if f.cell is not None:
            r, c = xl_cell_to_rowcol(f.cell)
            marks[r][c].append(f)
    ws.set_column(0, max(positions, default=0), 16)
    ws.freeze_panes(1, 0)

    def fill(group: list[Finding]) -> Any:
        return fills[BLOCKING] if any(f.severity == BLOCKING for f in group) else fills[WARNING]

    write_string = ws.write_string
    fast = False  # True for a batch with no value XlsxWriter would write unescaped (see _put)

    def write_row(r: int, values: tuple | list) -> None:
        marked = marks.get(r)
        if not marked:
            if fast:  # the hot loop: about 5 µs a cell, nearly all of it inside XlsxWriter
                for c, v in zip(positions, values, strict=False):
                    if v is not None:
                        write_string(r, c, v)
            else:
                for c, v in zip(positions, values, strict=False):
                    if v is not None:
                        write_text(ws, r, c, v, None, plain)
            return
        written = set()
        for c, v in zip(positions, values, strict=True):
            group = marked.get(c)
            if group:
                written.add(c)
                if v is None:
                    ws.write_blank(r, c, None, fill(group))
                else:
                    write_text(ws, r, c, v, fill(group), plain)
                ws.write_comment(r, c, _comment(group), {"x_scale": 2.5, "y_scale": 2})
            elif v is not None:
                write_text(ws, r, c, v, None, plain)
        for c in sorted(set(marked) - written):  # a ragged row, or a header cell past the table
            group = marked[c]
            text = next((f.value for f in group if f.value is not None), None)
            if text is None:
                ws.write_blank(r, c, None, fill(group))
            else:
                write_text(ws, r, c, text, fill(group), plain)
            ws.write_comment(r, c, _comment(group), {"x_scale": 2.5, "y_scale": 2})

    header = ["" if NO_HEADER.fullmatch(n) else n for n in names]
    write_row(0, [h or None for h in header])
    skipped = sorted(r for r in marks if r > 0 and not _in_table(raw, r))
    last = SHEET_ROWS - 1
    k = 0
    done = False
    start = 0
    for batch in table.to_batches(max_chunksize=65_536):
        texts = [c if c.type == pa.string() else pc.cast(c, pa.string()) for c in batch.columns]
        fast = not any(_rich_lookalike(c) for c in texts)
        cols = [c.to_pylist() for c in texts]
        rownums = raw.rows(np.arange(start, start + batch.num_rows, dtype=np.int64)).tolist()
        start += batch.num_rows
        for r, values in zip(rownums, zip(*cols, strict=True), strict=True):
            while k < len(skipped) and skipped[k] < min(r, last + 1):
                write_row(skipped[k], [None] * len(positions))
                k += 1
            if r > last:
                done = True
                break
            write_row(r, values)
        if done:
            break
    while k < len(skipped) and skipped[k] <= last:
        write_row(skipped[k], [None] * len(positions))
        k += 1
    if raw.data_rows > last:
        return [
            f"The data has {raw.data_rows:,} rows and a sheet holds {last:,}, so rows after {last:,} are not in "
            f"sheet {ws.name!r}; their problems are listed above."
        ]
    return []


def _rich_lookalike(col: pa.Array) -> bool:
    """Does any value look like XlsxWriter's own rich-string XML (``<r>...</r>``)? See ``_put``."""
    return bool(pc.any(pc.and_(pc.starts_with(col, "<r>"), pc.ends_with(col, "</r>"))).as_py())


def _in_table(raw: RawTable, row: int) -> bool:
    if raw.row_numbers is None:
        return row <= raw.table.num_rows
    i = int(np.searchsorted(raw.row_numbers, row))
    return i < len(raw.row_numbers) and int(raw.row_numbers[i]) == row
