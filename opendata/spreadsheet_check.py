"""Check a spreadsheet (ODS or XLSX) against the Analysis Function's "Releasing statistics in
spreadsheets" guidance, as the DfT and ONS checkers do, and name the sheet and cell of each failure.

Both formats are read into one neutral form (``Sheet``: cells, merged ranges, hidden rows and
columns, filled cells, marked-up tables), and one set of rules runs over it, so a rule cannot be
checked for one format and forgotten for the other. The rules, each with its name in a finding:

* ``metadata``: the document has a title and a language;
* ``sheets``: the first sheet is a cover sheet, a contents sheet links to every other sheet, sheet
  names are at most 31 characters without spaces;
* ``title``: every sheet has its title in A1;
* ``merged``, ``hidden``, ``fill``: no merged cells, no hidden rows or columns, no fills (colour
  must never carry meaning);
* ``table``: every sheet that holds more than lines of text holds one marked-up table starting in
  column A, its first row the header, with no blank row, column or cell inside it;
* ``shorthand``: a column with numbers holds only numbers and GSS shorthand in square brackets;
  no number stored as text;
* ``notes``: every ``[note N]`` a sheet refers to is in the notes table.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from opendata.errors import OpenDataError
from opendata.spreadsheet import NS

MAX_BYTES = 200 * 1024 * 1024  # a spreadsheet bigger than this is refused unread
MAX_UNPACKED = 256 * 1024 * 1024  # nor one whose parts unpack to more (zip bombs; openpyxl holds every cell)
MAX_CELLS = 20_000_000
SHORTHAND = frozenset({"[c]", "[x]", "[z]", "[low]", "[u]", "[w]", "[p]", "[r]", "[e]", "[b]", "[d]", "[a]"})
NOTE = re.compile(r"\[note (\d+)\]")
BRACKETED = re.compile(r"^\[[^\]]*\]$")
NUMBER_TEXT = re.compile(r"^\s*-?\d[\d,]*(\.\d+)?\s*$")
BARE_SYMBOLS = frozenset({"..", ".", "-", "*", "x", "c", "z", "u", "n/a", "N/A", ":"})


class SpreadsheetError(OpenDataError):
    """The file cannot be read as a spreadsheet at all."""


@dataclass(frozen=True)
class Finding:
    file: str
    sheet: str
    cell: str
    rule: str
    message: str

    def describe(self) -> str:
        where = f"{self.sheet}!{self.cell}" if self.cell else self.sheet or "(file)"
        return f"{self.file}: {where}: [{self.rule}] {self.message}"


@dataclass
class Sheet:
    name: str
    cells: dict[tuple[int, int], Any] = field(default_factory=dict)  # (row, col) 0-based -> int/float/str
    merged: list[str] = field(default_factory=list)
    hidden_rows: list[int] = field(default_factory=list)
    hidden_columns: list[int] = field(default_factory=list)
    filled: list[tuple[int, int]] = field(default_factory=list)
    tables: list[tuple[str, int, int, int, int]] = field(default_factory=list)  # name, r1, c1, r2, c2 inclusive
    links: set[str] = field(default_factory=set)  # sheets its cells link to


@dataclass
class Workbook:
    path: Path
    title: str
    language: str
    sheets: list[Sheet]


def check_spreadsheet(path: str | Path) -> list[Finding]:
    """Every way ``path`` falls short of the guidance (an empty list: it passes)."""
    book = read_workbook(Path(path))
    return list(_check(book))


def read_workbook(path: Path) -> Workbook:
    if not path.is_file():
        raise SpreadsheetError(f"{path}: no such file")
    if path.stat().st_size > MAX_BYTES:
        raise SpreadsheetError(f"{path}: larger than {MAX_BYTES // 2**20} MiB; not read")
    try:
        with zipfile.ZipFile(path) as z:
            unpacked = sum(i.file_size for i in z.infolist())
            if unpacked > MAX_UNPACKED:
                raise SpreadsheetError(f"{path}: unpacks to {unpacked:,} bytes; not read")
            names = set(z.namelist())
            if "content.xml" in names:
                return _read_ods(path, z)
        if path.suffix.lower() == ".xlsx":
            return _read_xlsx(path)
    except (zipfile.BadZipFile, ET.ParseError, KeyError, ValueError, OSError) as exc:
        raise SpreadsheetError(f"{path}: not a readable ODS or XLSX file ({type(exc).__name__}: {exc})") from None
    raise SpreadsheetError(f"{path}: not an ODS or XLSX file")


# --- the rules ------------------------------------------------------------------------------------


def _check(book: Workbook):
    f = book.path.name
    if not book.title.strip():
        yield Finding(f, "", "", "metadata", "the document has no title in its properties")
    if not book.language.strip():
        yield Finding(f, "", "", "metadata", "the document has no language in its properties")
    if not book.sheets:
        yield Finding(f, "", "", "sheets", "no sheets")
        return
    first = book.sheets[0]
    if "cover" not in first.name.lower():
        yield Finding(f, first.name, "", "sheets", "the first sheet is not a cover sheet")
    contents = next((s for s in book.sheets if "contents" in s.name.lower()), None)
    if contents is None:
        yield Finding(f, "", "", "sheets", "no contents sheet")
    else:
        for s in book.sheets:
            if s is not first and s is not contents and s.name not in contents.links:
                yield Finding(f, contents.name, "", "sheets", f"does not link to sheet {s.name!r}")
    notes = _notes(book)
    for s in book.sheets:
        yield from _check_sheet(f, s, notes, cover=s is first)


def _check_sheet(f: str, s: Sheet, notes: set[int] | None, cover: bool):
    if len(s.name) > 31 or " " in s.name:
        yield Finding(f, s.name, "", "sheets", "a sheet name must be at most 31 characters, without spaces")
    if not isinstance(s.cells.get((0, 0)), str) or not str(s.cells[(0, 0)]).strip():
        yield Finding(f, s.name, "A1", "title", "no title in A1")
    for where in s.merged:
        yield Finding(f, s.name, where, "merged", "merged cells")
    for r in s.hidden_rows:
        yield Finding(f, s.name, f"{r + 1}:{r + 1}", "hidden", "hidden row")
    for c in s.hidden_columns:
        yield Finding(f, s.name, f"{_col(c)}:{_col(c)}", "hidden", "hidden column")
    for r, c in s.filled[:20]:
        yield Finding(f, s.name, _ref(r, c), "fill", "cell has a fill colour")
    for (r, c), v in s.cells.items():
        for n in NOTE.findall(str(v)) if isinstance(v, str) else ():
            if notes is not None and int(n) not in notes:
                yield Finding(f, s.name, _ref(r, c), "notes", f"refers to [note {n}], which the notes table lacks")
    grid = [k for k in s.cells if k[1] > 0]
    if cover:
        return
    if not s.tables:
        if grid:  # more than a column of text lines: data outside a marked-up table
            yield Finding(f, s.name, _ref(min(grid)[0], 0), "table", "data that is not in a marked-up table")
        return
    if len(s.tables) > 1:
        yield Finding(f, s.name, "", "table", f"{len(s.tables)} tables on one sheet; one per sheet")
    for name, r1, c1, r2, c2 in s.tables:
        yield from _check_table(f, s, name, r1, c1, r2, c2)


def _check_table(f: str, s: Sheet, name: str, r1: int, c1: int, r2: int, c2: int):
    if c1 != 0:
        yield Finding(f, s.name, _ref(r1, c1), "table", f"table {name} does not start in column A")
    for c in range(c1, c2 + 1):
        header = s.cells.get((r1, c))
        if not isinstance(header, str) or not header.strip():
            yield Finding(f, s.name, _ref(r1, c), "table", f"table {name}: header cell is blank or not text")
    blanks = [(r, c) for r in range(r1 + 1, r2 + 1) for c in range(c1, c2 + 1) if _blank(s.cells.get((r, c)))]
    for r in sorted({r for r, _ in blanks if all(_blank(s.cells.get((r, c))) for c in range(c1, c2 + 1))})[:5]:
        yield Finding(f, s.name, f"{r + 1}:{r + 1}", "table", f"table {name}: blank row")
    for r, c in blanks[:20]:
        yield Finding(f, s.name, _ref(r, c), "table", f"table {name}: blank cell (use shorthand such as [x] or [z])")
    for r, c in s.cells:
        if (r > r2 and c1 <= c <= c2 and r <= r2 + 1) or (c == c2 + 1 and r1 <= r <= r2):
            yield Finding(f, s.name, _ref(r, c), "table", f"table {name}: a cell touches the table outside its range")
            break
    for c in range(c1, c2 + 1):
        body = [(r, s.cells.get((r, c))) for r in range(r1 + 1, r2 + 1)]
        numbers = [v for _, v in body if isinstance(v, (int, float)) and not isinstance(v, bool)]
        for r, v in body:
            if not isinstance(v, str):
                continue
            text = v.strip()
            if BRACKETED.match(text) and text not in SHORTHAND and not NOTE.fullmatch(text):
                yield Finding(f, s.name, _ref(r, c), "shorthand", f"{text} is not GSS shorthand")
            elif numbers and NUMBER_TEXT.match(text):
                yield Finding(f, s.name, _ref(r, c), "shorthand", f"the number {text!r} is stored as text")
            elif numbers and not BRACKETED.match(text):
                why = "a bare symbol; put shorthand in square brackets" if text in BARE_SYMBOLS else "text"
                yield Finding(f, s.name, _ref(r, c), "shorthand", f"{text!r} in a column of numbers is {why}")


def _notes(book: Workbook) -> set[int] | None:
    sheet = next((s for s in book.sheets if s.name.lower().startswith("notes")), None)
    if sheet is None:
        return None if not any(NOTE.search(str(v)) for s in book.sheets for v in s.cells.values()) else set()
    return {int(m) for (_, c), v in sheet.cells.items() if c == 0 and isinstance(v, str) for m in NOTE.findall(v)}


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def _col(c: int) -> str:
    out, n = "", c + 1
    while n:
        n, r = divmod(n - 1, 26)
        out = chr(65 + r) + out
    return out


def _ref(r: int, c: int) -> str:
    return f"{_col(c)}{r + 1}"


def _parse_ref(ref: str) -> tuple[int, int]:
    m = re.fullmatch(r"\$?([A-Z]+)\$?(\d+)", ref.split(".")[-1].strip("'"))
    if not m:
        raise ValueError(f"cell reference {ref!r}")
    col = 0
    for ch in m.group(1):
        col = col * 26 + ord(ch) - 64
    return int(m.group(2)) - 1, col - 1


# --- ODS ------------------------------------------------------------------------------------------

ODF = NS  # the namespaces the writer uses (opendata.spreadsheet)


def _q(prefix: str, name: str) -> str:
    return f"{{{ODF[prefix]}}}{name}"


def _read_ods(path: Path, z: zipfile.ZipFile) -> Workbook:
    title = language = ""
    if "meta.xml" in z.namelist():
        meta = ET.fromstring(z.read("meta.xml"))
        title = "".join(t.text or "" for t in meta.iter(_q("dc", "title")))
        language = "".join(t.text or "" for t in meta.iter(_q("dc", "language")))
    root = ET.fromstring(z.read("content.xml"))
    filled_styles = set()
    for style in root.iter(_q("style", "style")):
        for props in style.iter(_q("style", "table-cell-properties")):
            colour = props.get(_q("fo", "background-color"), "transparent")
            if colour not in ("transparent", "#ffffff", "#FFFFFF"):
                filled_styles.add(style.get(_q("style", "name")))
    sheets, by_name = [], {}
    count = 0
    for t in root.iter(_q("table", "table")):
        sheet = Sheet(t.get(_q("table", "name"), ""))
        col = 0
        for column in t.iter(_q("table", "table-column")):
            n = int(column.get(_q("table", "number-columns-repeated"), "1"))
            if column.get(_q("table", "visibility"), "visible") != "visible":
                sheet.hidden_columns += list(range(col, col + min(n, 1024)))
            col += n
        r = 0
        for row in t.iter(_q("table", "table-row")):
            repeat = int(row.get(_q("table", "number-rows-repeated"), "1"))
            cells = list(row)
            if row.get(_q("table", "visibility"), "visible") != "visible" and any(
                c.get(_q("office", "value-type")) for c in cells
            ):
                sheet.hidden_rows.append(r)
            c = 0
            for cell in cells:
                n = int(cell.get(_q("table", "number-columns-repeated"), "1"))
                kind = cell.get(_q("office", "value-type"))
                if (
                    cell.get(_q("table", "number-columns-spanned"), "1") != "1"
                    or cell.get(_q("table", "number-rows-spanned"), "1") != "1"
                ):
                    sheet.merged.append(_ref(r, c))
                if kind is not None:  # a value, however often repeated, counts against the cap first
                    count += repeat * n
                    if count > MAX_CELLS:
                        raise SpreadsheetError(f"{path}: more than {MAX_CELLS:,} cells; not read")
                    value: Any
                    if kind in ("float", "percentage", "currency"):
                        number = float(cell.get(_q("office", "value"), "nan"))
                        value = int(number) if number.is_integer() else number
                    else:
                        value = "\n".join("".join(p.itertext()) for p in cell.iter(_q("text", "p")))
                    filled = cell.get(_q("table", "style-name")) in filled_styles
                    for dr in range(repeat):
                        for dc in range(n):
                            sheet.cells[(r + dr, c + dc)] = value
                            if filled:
                                sheet.filled.append((r + dr, c + dc))
                for a in cell.iter(_q("text", "a")):
                    href = a.get(_q("xlink", "href"), "")
                    if href.startswith("#"):
                        sheet.links.add(href[1:].rsplit(".", 1)[0].strip("'$"))
                c += n
            r += repeat
        sheets.append(sheet)
        by_name[sheet.name] = sheet
    for rng in root.iter(_q("table", "database-range")):
        address = rng.get(_q("table", "target-range-address"), "")
        start, _, end = address.partition(":")
        name = start.rsplit(".", 1)[0].strip("'$")
        if name in by_name and end:
            (r1, c1), (r2, c2) = _parse_ref(start), _parse_ref(end)
            by_name[name].tables.append((rng.get(_q("table", "name"), ""), r1, c1, r2, c2))
    return Workbook(path, title, language, sheets)


# --- XLSX -----------------------------------------------------------------------------------------


def _read_xlsx(path: Path) -> Workbook:
    import openpyxl

    wb = openpyxl.load_workbook(path, data_only=False)
    sheets = []
    for ws in wb.worksheets:
        sheet = Sheet(ws.title)
        if ws.sheet_state != "visible":
            sheet.hidden_rows.append(0)
        sheet.merged = [str(m) for m in ws.merged_cells.ranges]
        sheet.hidden_rows += [r - 1 for r, d in ws.row_dimensions.items() if d.hidden]
        for letter, d in ws.column_dimensions.items():
            if d.hidden:
                first, last = d.min or openpyxl.utils.column_index_from_string(letter), d.max or 0
                sheet.hidden_columns += list(range(first - 1, max(first, last)))
        if ws.max_row * ws.max_column > MAX_CELLS:
            raise SpreadsheetError(f"{path}: more than {MAX_CELLS:,} cells; not read")
        for row in ws.iter_rows():
            for cell in row:
                if cell.value is None:
                    continue
                value = cell.value
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                sheet.cells[(cell.row - 1, cell.column - 1)] = value
                if cell.fill is not None and cell.fill.fill_type not in (None, "none"):
                    sheet.filled.append((cell.row - 1, cell.column - 1))
                if cell.hyperlink is not None and cell.hyperlink.location:
                    sheet.links.add(cell.hyperlink.location.split("!")[0].strip("'"))
                elif cell.hyperlink is not None and (cell.hyperlink.target or "").startswith("#"):
                    sheet.links.add(cell.hyperlink.target[1:].split("!")[0].strip("'"))
        for name, ref in ws.tables.items():
            start, _, end = ref.partition(":")
            (r1, c1), (r2, c2) = _parse_ref(start), _parse_ref(end)
            sheet.tables.append((name, r1, c1, r2, c2))
        sheets.append(sheet)
    return Workbook(path, wb.properties.title or "", wb.properties.language or "", sheets)
