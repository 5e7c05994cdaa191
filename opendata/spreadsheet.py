"""The package as people open it: accessible ODS and XLSX, per the Government Analysis Function's
"Releasing statistics in spreadsheets" guidance.

Both files are built from the package as published (descriptor, Parquet tables, hierarchies), so
they hold nothing the CSV and Parquet files do not, and a rescheduled release rewrites them from
the same place (``opendata.embargo``). What the guidance asks, and how it is met:

* a cover sheet (title, what the data is, the MI-or-official-statistics statement, release time,
  next release, period, cut-off, contact, licence, how to cite), a contents sheet whose sheet
  names link to the sheets, and a notes sheet (``[note N]`` in headers, never superscripts);
* one table per sheet, its title in A1 and a line saying what the sheet holds above it; the table
  starts in column A with one header row and is marked up (an XLSX table, an ODS
  ``table:database-range``); no merged cells, no blank or hidden rows or columns, no fills;
* shorthand in square brackets (``[c]``, ``[z]``, ``[x]``) in the same column as the numbers,
  which stay numbers; revised and provisional values keep their number and are marked in a
  separate column;
* the document's title and language in its metadata; the same bytes for the same package (fixed
  timestamps inside the files and the zip), so versions diff and sign cleanly.

ODS is written natively (the ODF XML streamed by the standard library) and XLSX with XlsxWriter;
``opendata.spreadsheet_check`` checks both against the guidance.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import XMLGenerator

import pandas as pd

from opendata.descriptor import (
    ANNOTATIONS,
    DESCRIPTOR_FILE,
    KIND_NOTES,
    MISSING_LABELS,
    STATUS_SUFFIX,
    size_and_hash,
)
from opendata.errors import ReleaseError
from opendata.signing import write_atomic

ODS_MEDIATYPE = "application/vnd.oasis.opendocument.spreadsheet"
XLSX_MEDIATYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
LANGUAGE = "en-GB"
MAX_ROWS = 1_048_576  # the most rows a sheet holds (Excel; LibreOffice the same)
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can say: no clock in the bytes


@dataclass(frozen=True)
class Sheet:
    """One worksheet: a title in A1, lines of text below it, then one marked-up table."""

    name: str  # the tab: at most 31 characters, no spaces (the guidance)
    title: str
    lines: tuple[str, ...]
    columns: tuple[str, ...]  # header titles
    rows: list[list[Any]]  # numbers as int, shorthand and text as str
    link_column: int | None = None  # a column whose cells name sheets, written as links to them

    @property
    def header_row(self) -> int:
        """0-based row of the table's header: A1 title, then the lines, then the table."""
        return 1 + len(self.lines)


@dataclass(frozen=True)
class Book:
    title: str
    subject: str
    author: str
    created: datetime
    sheets: tuple[Sheet, ...]


def spreadsheet_paths(name: str, version: str) -> dict[str, str]:
    return {"ods": f"{name}-{version}.ods", "xlsx": f"{name}-{version}.xlsx"}


def write_spreadsheets(version_dir: Path, descriptor: dict[str, Any]) -> list[dict[str, Any]]:
    """Write both spreadsheets of a package into ``version_dir``; return the descriptor's resources
    with theirs in place of any earlier ones (a reschedule rewrites the cover's release time).

    Reads the tables as written (``descriptor["resources"]``), so call it once the data files exist,
    in a directory nobody reads yet (a staging or temporary one)."""
    resources = [r for r in descriptor["resources"] if not r.get("opendata:spreadsheet")]
    book = build_book(version_dir, descriptor | {"resources": resources})
    paths = spreadsheet_paths(descriptor["name"], descriptor["version"])
    write_atomic(version_dir / paths["ods"], ods_bytes(book))
    write_atomic(version_dir / paths["xlsx"], xlsx_bytes(book))
    out = []
    for kind, label, media in (("ods", "OpenDocument spreadsheet", ODS_MEDIATYPE), ("xlsx", "Excel", XLSX_MEDIATYPE)):
        size, digest = size_and_hash(version_dir / paths[kind])
        out.append(
            {
                "name": f"spreadsheet-{kind}",
                "type": "file",  # several tables in one file: checked by opendata check-spreadsheet
                "path": paths[kind],
                "title": f"{descriptor['title']} ({label})",
                "description": "Every table of this version in one accessible spreadsheet (cover, contents, "
                "notes, one table per sheet), following the Government Analysis Function's spreadsheet guidance.",
                "format": kind,
                "mediatype": media,
                "bytes": size,
                "hash": digest,
                "opendata:spreadsheet": True,
            }
        )
    return resources + out


# --- content -----------------------------------------------------------------------------------


def build_book(version_dir: Path, descriptor: dict[str, Any]) -> Book:
    """The cover, contents, notes and table sheets of a package."""
    tables = [r for r in descriptor["resources"] if r.get("type") == "table" and r.get("format") == "csv"]
    tables = [r for r in tables if not r["name"].startswith("hierarchy-") and not r.get("opendata:derived")]
    notes = _notes(descriptor)
    data_sheets = [_table_sheet(version_dir, resource, n, descriptor) for n, resource in enumerate(tables, start=1)]
    data_sheets = [s for s in data_sheets if s is not None]
    card = next((r for r in descriptor["resources"] if r.get("opendata:derived") == "scorecard"), None)
    if card is not None:
        data_sheets.append(_derived_sheet(version_dir, card, len(data_sheets) + 1))
    notes_sheet = _notes_sheet(notes)
    sheets = (_cover(descriptor), _contents([notes_sheet, *data_sheets]), notes_sheet, *data_sheets)
    return Book(
        title=descriptor["title"],
        subject=descriptor.get("description", ""),
        author=_publisher(descriptor),
        created=datetime.fromisoformat(descriptor["created"].replace("Z", "+00:00")),
        sheets=sheets,
    )


def _publisher(descriptor: dict[str, Any]) -> str:
    people = descriptor.get("contributors") or []
    return next((c["title"] for c in people if "publisher" in c.get("roles", [])), people[0]["title"] if people else "")


def _notes(descriptor: dict[str, Any]) -> list[str]:
    rules = descriptor["opendata:disclosure"]["rules"]
    base = (rules.get("rounding") or {}).get("base")
    out = [
        "[c] confidential: the cell is suppressed to protect the people it counts. "
        + "; ".join(f"[{code}] {label}" for code, label in MISSING_LABELS.items() if code != "c")
        + ". Shorthand follows the Government Statistical Service guidance on symbols.",
        f"Counts from 1 to {rules['threshold'] - 1} are suppressed, with further cells where a suppressed "
        "count could be worked out from the totals."
        + (f" Every other count is rounded to the nearest multiple of {base}." if base else ""),
        "Totals are computed before rounding, so rounded figures may not add up to the rounded totals.",
        KIND_NOTES.get(descriptor.get("opendata:kind", ""), "") or "See the cover sheet for what this data is.",
    ]
    return out


def _cover(descriptor: dict[str, Any]) -> Sheet:
    release = descriptor.get("opendata:release") or {}
    lines = [descriptor.get("description", "")]
    for line in release.get("statement", []):
        if line not in lines:
            lines.append(line)
    if not release.get("next_release"):
        lines.append("Next release: not yet announced.")
    period = release.get("period")
    if period:
        lines.append(f"Period covered: {period['from']} to {period['to']}.")
    lines.append(f"Version {descriptor['version']}, created {descriptor['created']}.")
    publisher = _publisher(descriptor)
    contact = descriptor.get("homepage")
    if publisher or contact:
        lines.append("Contact: " + ", ".join(x for x in (publisher, contact) if x) + ".")
    for lic in descriptor.get("licenses", []):
        lines.append(f"Licence: {lic.get('title') or lic.get('name')} ({lic.get('path', '')}).")
    year = descriptor["created"][:4]
    lines.append(
        f"How to cite: {publisher or 'the publisher'} ({year}). {descriptor['title']}, version "
        f"{descriptor['version']} (package {descriptor['name']}, id {descriptor['id']})."
    )
    lines.append("The tables are in the same files as CSV and Parquet, described in datapackage.json.")
    return Sheet("Cover_sheet", descriptor["title"], tuple(x for x in lines if x), (), [])


def _contents(sheets: list[Sheet]) -> Sheet:
    rows = [[s.name, s.title] for s in sheets]
    return Sheet(
        "Contents",
        "Table of contents",
        ("This worksheet contains one table. Each sheet name links to its sheet.",),
        ("Sheet name", "Table title"),
        rows,
        link_column=0,
    )


def _notes_sheet(notes: list[str]) -> Sheet:
    return Sheet(
        "Notes",
        "Notes",
        ("This worksheet contains one table. Column headers refer to these notes as [note N].",),
        ("Note number", "Note text"),
        [[f"[note {n}]", text] for n, text in enumerate(notes, start=1)],
    )


def _table_sheet(version_dir: Path, resource: dict[str, Any], n: int, descriptor: dict[str, Any]) -> Sheet | None:
    schema = resource["schema"]
    dims = list(schema["primaryKey"])
    fields = {f["name"]: f for f in schema["fields"]}
    measures = [name for name in fields if name not in dims]
    frame = pd.read_parquet(version_dir / resource["path"].replace(".csv", ".parquet"))
    if len(frame) + 6 > MAX_ROWS:
        return None  # left out; the contents sheet lists only what is there, the CSV has it all
    labels = {d: {c["value"]: c.get("label", c["value"]) for c in fields[d].get("categories", [])} for d in dims}
    columns: list[str] = []
    data: list[list[Any]] = []
    for d in dims:
        title = fields[d].get("title", d)
        columns += [f"{title} code", title]
        codes = frame[d].astype(str)
        data += [codes.tolist(), codes.map(labels[d]).fillna(codes).tolist()]
    marks = pd.Series("", index=frame.index)
    for m in measures:
        f = fields[m]
        unit = f" ({f['opendata:unit']})" if f.get("opendata:unit") else ""
        columns.append(f"{f.get('title', m)}{unit} [note 1] [note 2]")
        values = frame[m].astype("Int64")
        status = frame[m + STATUS_SUFFIX].fillna("").astype(str)
        shown = [int(v) if v is not pd.NA else f"[{s}]" for v, s in zip(values, status, strict=True)]
        data.append(shown)
        annotated = status.isin(list(ANNOTATIONS))
        marks = marks.where(~annotated, marks + f"{f.get('title', m)} [" + status + "]; ")
    if marks.str.len().gt(0).any():
        columns.append("Revised or provisional values")
        data.append(marks.str.rstrip("; ").tolist())
    rows = [list(r) for r in zip(*data, strict=True)]
    source = "; ".join(s["title"] for s in descriptor.get("sources", []))
    lines = ["This worksheet contains one table. Some column headers refer to notes in the Notes worksheet."]
    if resource.get("description"):
        lines.append(resource["description"])
    if source:
        lines.append(f"Source: {source}.")
    return Sheet(f"Table_{n}", resource.get("title", resource["name"]), tuple(lines), tuple(columns), rows)


def _derived_sheet(version_dir: Path, resource: dict[str, Any], n: int) -> Sheet:
    """A table computed from the published cells (the scorecard), as its CSV holds it: integers and
    numbers as numbers, shorthand and words as text. No cell is blank (the guidance): a blank takes
    its row's status ([c], [z]) or, where the row is shown, [x] (none: no level, no verdict); the
    status column itself is then redundant and left out."""
    fields = [f for f in resource["schema"]["fields"] if f["name"] != "status"]
    frame = pd.read_csv(version_dir / resource["path"], dtype=str, keep_default_na=False)
    status = frame["status"] if "status" in frame else pd.Series("", index=frame.index)
    kinds = {"integer": int, "number": float}

    def value(kind: str, text: str, row_status: str) -> Any:
        if not text:
            return f"[{row_status or 'x'}]"
        return kinds[kind](text) if kind in kinds and not text.startswith("[") else text

    types = [f["type"] for f in fields]
    rows = [
        [value(kind, text, row_status) for kind, text in zip(types, r, strict=True)]
        for *r, row_status in frame[[f["name"] for f in fields]].assign(_s=status).itertuples(index=False)
    ]
    lines = ("This worksheet contains one table.", resource.get("description", ""))
    columns = tuple(f["title"] for f in fields)
    return Sheet(f"Table_{n}", resource.get("title", resource["name"]), tuple(x for x in lines if x), columns, rows)


# --- ODS -----------------------------------------------------------------------------------------

NS = {
    "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
    "style": "urn:oasis:names:tc:opendocument:xmlns:style:1.0",
    "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
    "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
    "fo": "urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0",
    "xlink": "http://www.w3.org/1999/xlink",
    "dc": "http://purl.org/dc/elements/1.1/",
    "meta": "urn:oasis:names:tc:opendocument:xmlns:meta:1.0",
    "manifest": "urn:oasis:names:tc:opendocument:xmlns:manifest:1.0",
}
ODF_VERSION = "1.3"


def ods_bytes(book: Book) -> bytes:
    """An ODS file (ODF 1.3), written natively: the XML is streamed with the standard library's
    ``XMLGenerator``, which escapes every text and attribute. (odfpy builds a DOM of every cell
    first: 10 s for the demo's 200,000 cells.) ``mimetype`` is the first entry, stored, as ODF
    requires; every entry carries ``ZIP_TIME``."""
    parts = {
        "mimetype": ODS_MEDIATYPE.encode(),
        "META-INF/manifest.xml": _xml(_ods_manifest),
        "meta.xml": _xml(lambda x: _ods_meta(x, book)),
        "styles.xml": _xml(_ods_styles),
        "content.xml": _xml(lambda x: _ods_content(x, book)),
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in parts.items():
            info = zipfile.ZipInfo(name, ZIP_TIME)
            info.compress_type = zipfile.ZIP_STORED if name == "mimetype" else zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, data)
    return out.getvalue()


def _xml(write: Callable[[XMLGenerator], None]) -> bytes:
    buffer = io.StringIO()
    x = XMLGenerator(buffer, encoding="utf-8", short_empty_elements=True)
    x.startDocument()
    write(x)
    x.endDocument()
    return buffer.getvalue().encode("utf-8")


def _root(x: XMLGenerator, name: str, prefixes: tuple[str, ...]) -> None:
    x.startElement(name, {"office:version": ODF_VERSION} | {f"xmlns:{p}": NS[p] for p in prefixes})


def _leaf(x: XMLGenerator, name: str, text: str = "", attrs: dict[str, str] | None = None) -> None:
    x.startElement(name, attrs or {})
    if text:
        x.characters(text)
    x.endElement(name)


def _ods_manifest(x: XMLGenerator) -> None:
    x.startElement("manifest:manifest", {"xmlns:manifest": NS["manifest"], "manifest:version": ODF_VERSION})
    root = {"manifest:full-path": "/", "manifest:version": ODF_VERSION, "manifest:media-type": ODS_MEDIATYPE}
    _leaf(x, "manifest:file-entry", attrs=root)
    for part in ("content.xml", "styles.xml", "meta.xml"):
        _leaf(x, "manifest:file-entry", attrs={"manifest:full-path": part, "manifest:media-type": "text/xml"})
    x.endElement("manifest:manifest")


def _ods_meta(x: XMLGenerator, book: Book) -> None:
    _root(x, "office:document-meta", ("office", "dc", "meta"))
    x.startElement("office:meta", {})
    _leaf(x, "meta:generator", "opendata")
    _leaf(x, "dc:title", book.title)
    _leaf(x, "dc:subject", book.subject)
    _leaf(x, "dc:creator", book.author)
    _leaf(x, "dc:language", LANGUAGE)
    _leaf(x, "meta:creation-date", _iso(book.created))
    _leaf(x, "dc:date", _iso(book.created))
    x.endElement("office:meta")
    x.endElement("office:document-meta")


def _ods_styles(x: XMLGenerator) -> None:
    _root(x, "office:document-styles", ("office", "style", "fo"))
    _leaf(x, "office:styles")
    x.endElement("office:document-styles")


def _ods_content(x: XMLGenerator, book: Book) -> None:
    _root(x, "office:document-content", ("office", "style", "text", "table", "fo", "xlink"))
    x.startElement("office:automatic-styles", {})
    x.startElement("style:style", {"style:name": "heading", "style:family": "paragraph"})
    _leaf(x, "style:text-properties", attrs={"fo:font-weight": "bold", "fo:font-size": "14pt"})
    x.endElement("style:style")
    x.startElement("style:style", {"style:name": "wide", "style:family": "table-column"})
    _leaf(x, "style:table-column-properties", attrs={"style:column-width": "2.5in"})
    x.endElement("style:style")
    x.endElement("office:automatic-styles")
    x.startElement("office:body", {})
    x.startElement("office:spreadsheet", {})
    ranges = []
    for sheet in book.sheets:
        width = max(len(sheet.columns), 1)
        x.startElement("table:table", {"table:name": sheet.name})
        columns = {"table:style-name": "wide", "table:number-columns-repeated": str(width)}
        _leaf(x, "table:table-column", attrs=columns)
        _ods_row(x, [sheet.title], heading=True)
        for line in sheet.lines:
            _ods_row(x, [line])
        if sheet.columns:
            _ods_row(x, list(sheet.columns))
            for row in sheet.rows:
                _ods_row(x, row, sheet.link_column)
            top, last = sheet.header_row + 1, sheet.header_row + 1 + len(sheet.rows)
            address = f"'{sheet.name}'.A{top}:'{sheet.name}'.{_column(width)}{last}"
            ranges.append({"table:name": f"{sheet.name}_table", "table:target-range-address": address,
                           "table:contains-header": "true"})  # fmt: skip
        x.endElement("table:table")
    x.startElement("table:database-ranges", {})
    for attrs in ranges:
        _leaf(x, "table:database-range", attrs=attrs)
    x.endElement("table:database-ranges")
    x.endElement("office:spreadsheet")
    x.endElement("office:body")
    x.endElement("office:document-content")


def _ods_row(x: XMLGenerator, values: list[Any], link_column: int | None = None, heading: bool = False) -> None:
    x.startElement("table:table-row", {})
    for j, value in enumerate(values):
        if isinstance(value, int | float):  # repr: the shortest text that reads back as the same number
            x.startElement("table:table-cell", {"office:value-type": "float", "office:value": repr(value)})
            _leaf(x, "text:p", repr(value))
        else:
            x.startElement("table:table-cell", {"office:value-type": "string"})
            x.startElement("text:p", {"text:style-name": "heading"} if heading else {})
            if j == link_column:
                _leaf(x, "text:a", value, {"xlink:href": f"#{value}.A1", "xlink:type": "simple"})
            else:
                x.characters(str(value))
            x.endElement("text:p")
        x.endElement("table:table-cell")
    x.endElement("table:table-row")


# --- XLSX ----------------------------------------------------------------------------------------


def xlsx_bytes(book: Book) -> bytes:
    """An XLSX file (XlsxWriter); the creation time fixes the times in the file and its zip."""
    import xlsxwriter

    out = io.BytesIO()
    # every text is a string cell, never a formula or link: a label or --reason cannot run when opened
    wb = xlsxwriter.Workbook(out, {"in_memory": True, "strings_to_formulas": False, "strings_to_urls": False})
    wb.set_properties(
        {
            "title": book.title,
            "subject": book.subject[:255],
            "author": book.author,
            "created": book.created.replace(tzinfo=None),
        }
    )
    heading = wb.add_format({"bold": True, "font_size": 14})
    wrap = wb.add_format({"text_wrap": False})
    plain = wb.add_format()
    for sheet in book.sheets:
        ws = wb.add_worksheet(sheet.name)
        write_text(ws, 0, 0, sheet.title, heading, plain)
        for i, line in enumerate(sheet.lines, start=1):
            write_text(ws, i, 0, line, wrap, plain)
        if not sheet.columns:
            ws.set_column(0, 0, 100)
            continue
        top = sheet.header_row
        for i, row in enumerate(sheet.rows, start=top + 1):
            for j, value in enumerate(row):
                if isinstance(value, int | float):
                    ws.write_number(i, j, value)
                elif j == sheet.link_column:
                    ws.write_url(i, j, f"internal:'{value}'!A1", string=value)
                else:
                    write_text(ws, i, j, value, None, plain)
        ws.add_table(
            top,
            0,
            top + max(len(sheet.rows), 1),
            len(sheet.columns) - 1,
            {
                "name": f"{sheet.name}_table",
                "columns": [{"header": title} for title in sheet.columns],
                "style": "Table Style Light 1",
                "autofilter": False,
                "banded_rows": False,
            },
        )
        ws.set_column(0, len(sheet.columns) - 1, 22)
    wb.close()
    return _with_language(out.getvalue())


def write_text(ws: Any, row: int, col: int, text: str, fmt: Any, plain: Any) -> None:
    """Write ``text`` as a string cell and nothing else (XlsxWriter, any mode).

    XlsxWriter writes a string that starts with ``<r>`` and ends with ``</r>`` into the sheet or the
    shared strings unescaped (it takes it for a rich string it made), so a label, a reason or an
    upload could inject any XML, formulas included. Such a string is written as a rich string of two
    plain runs instead: escaped, the same text. ``plain`` is an empty format of the workbook."""
    if text.startswith("<r>") and text.endswith("</r>"):
        args: list[Any] = [text[:1], plain, text[1:]]
        if fmt is not None:
            args.append(fmt)
        ws.write_rich_string(row, col, *args)
    else:
        ws.write_string(row, col, text, fmt)


def _with_language(data: bytes) -> bytes:
    """XlsxWriter has no language property: add ``dc:language`` to ``docProps/core.xml``, keeping
    every entry's order and (fixed) time."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            part = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                end = b"</cp:coreProperties>"
                part = part.replace(end, f"<dc:language>{LANGUAGE}</dc:language>".encode() + end)
            dst.writestr(info, part)
    return out.getvalue()


# --- shared ---------------------------------------------------------------------------------------


def _column(n: int) -> str:
    """Spreadsheet column letters of the ``n``-th column (1-based)."""
    out = ""
    while n:
        n, r = divmod(n - 1, 26)
        out = chr(65 + r) + out
    return out


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S")


def read_descriptor(version_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((version_dir / DESCRIPTOR_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReleaseError(f"{version_dir}: no readable {DESCRIPTOR_FILE} ({exc})") from None
