"""Package writer: protected tables into an immutable, versioned Frictionless Data Package (v2).

A release directory ``<out_root>/<name>/<version>/`` holds:

- ``data/<table>.csv``: the open format; suppressed cells are GSS shorthand (``[c]``), never blank;
- ``data/<table>.parquet``: the same values plus ``<measure>_status`` columns, for fast loading;
- ``hierarchies/<dimension>.csv``: ``code,label,parent,level``, so additivity and the disclosure
  audit can be re-run from the published files alone;
- ``datapackage.json`` and ``README.md``.

The directory is built under a temporary name and renamed into place, so a version either exists
complete or not at all, and an existing version is never touched. Output is byte-identical for the
same inputs and the same ``created`` time, so re-running a release proves nothing changed.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from opendata import scorecard
from opendata.aggregate import MONTHS_PROPERTY, DimensionCodes
from opendata.descriptor import (
    ANNOTATIONS,
    CSV_DIALECT,
    DATAPACKAGE_SCHEMA,
    DESCRIPTOR_FILE,
    KIND_NOTES,
    MISSING_LABELS,
    MISSING_VALUES,
    PARQUET_MEDIATYPE,
    README_FILE,
    SAFE_NAME,
    STATUS_SUFFIX,
    markdown_text,
    package_id,
    rfc3339,
    size_and_hash,
)
from opendata.errors import ReleaseError, ReleaseExists
from opendata.indicators import LEVELS, TIDY, Indicator, derive
from opendata.page import PAGE_FILE, release_page
from opendata.protection import AHEAD_SUFFIX, ProtectedTable, rules_for
from opendata.relations import spec_relations
from opendata.signing import write_atomic
from opendata.spec import ReleaseSpec
from opendata.spreadsheet import write_spreadsheets
from opendata.versions import SEMVER

TMP_PREFIX = ".tmp-"  # .tmp-<version>-<pid>-<random>: a package being written


def sweep_stale(dataset_dir: Path) -> list[Path]:
    """Remove half-written packages left by a killed process (its pid no longer runs; a name
    without a pid is from an older writer and stale too). A live writer's directory is kept."""
    removed = []
    for path in sorted(Path(dataset_dir).glob(f"{TMP_PREFIX}*")):
        match = re.fullmatch(rf"{re.escape(TMP_PREFIX)}.+?-(\d+)-[^-]+", path.name)
        if match and _running(int(match.group(1))):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # gone, or a number no process can have
        return False
    except PermissionError:  # runs, as another user
        pass
    return True


def write_package(
    spec: ReleaseSpec,
    tables: list[ProtectedTable],
    out_root: Path,
    version: str,
    created: datetime,
    *,
    extra: dict[str, Any] | None = None,
    check: Callable[[Path], None] | None = None,
) -> Path:
    """Write ``out_root/<spec.name>/<version>/`` atomically and return its path.

    ``check`` is called on the written files before they are moved into place (the release's
    public audit); whatever it raises leaves nothing behind. Raises ReleaseExists if the version
    is already there (before writing anything) and ReleaseError if the tables cannot be published
    as they are; in every failure case the release tree is left as it was.
    """
    if not SEMVER.match(version):
        raise ReleaseError(f"version {version!r} is not Semantic Versioning (MAJOR.MINOR.PATCH, e.g. 1.0.0)")
    stamp = rfc3339(created)
    extra = dict(extra or {})
    dataset_dir = Path(out_root) / spec.name
    target = dataset_dir / version
    if target.exists():
        raise ReleaseExists(f"{spec.name} {version} is already published at {target}; releases are never overwritten")
    _check_tables(spec, tables)
    hierarchies = _hierarchies(tables)

    dataset_dir.mkdir(parents=True, exist_ok=True)
    sweep_stale(dataset_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{version}-{os.getpid()}-", dir=dataset_dir))
    try:
        os.chmod(tmp, 0o755)
        resources = _write_resources(tmp, spec, tables, hierarchies)
        descriptor = _descriptor(spec, tables, version, stamp, resources, extra)
        descriptor["resources"] = write_views(tmp, descriptor)
        _write_text(tmp / DESCRIPTOR_FILE, json.dumps(descriptor, indent=2, ensure_ascii=False, default=_json) + "\n")
        _write_text(tmp / README_FILE, _readme(spec, tables, descriptor))
        if check is not None:
            check(tmp)
        _sync_tree(tmp)
        if target.exists():
            raise ReleaseExists(f"{spec.name} {version} appeared at {target} while it was being written")
        try:
            os.rename(tmp, target)
        except OSError as exc:
            raise ReleaseExists(f"{spec.name} {version} cannot be moved into place at {target}: {exc}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync(dataset_dir)
    return target


@dataclass(frozen=True)
class Description:
    """What ``write_package`` would publish, in memory: the descriptor (files without their size and
    hash), each table's published frame and each hierarchy's CSV text, by resource name."""

    descriptor: dict[str, Any]
    frames: dict[str, pd.DataFrame]
    hierarchies: dict[str, str]


def describe(
    spec: ReleaseSpec,
    tables: list[ProtectedTable],
    version: str = "0.0.0",
    created: str = "1970-01-01T00:00:00Z",
    extra: Mapping[str, Any] | None = None,
) -> Description:
    """The package ``write_package`` would write, built by the same code without writing a file
    (so a diff against the previous version can be made before anything is written)."""
    _check_tables(spec, tables)
    frames = {t.spec.name: _published_frame(t) for t in tables}
    hierarchies = _hierarchies(tables)
    resources = [_csv_resource(t, f"data/{t.spec.name}.csv", CSV_PROPS) for t in tables]
    resources += [_parquet_resource(t, f"data/{t.spec.name}.parquet", PARQUET_PROPS) for t in tables]
    indicators = _indicator_frame(spec, tables)
    if indicators is not None:
        frames[INDICATORS] = indicators
        resources += [
            _indicator_resource(INDICATORS_CSV, CSV_PROPS),
            _indicator_resource(INDICATORS_PARQUET, PARQUET_PROPS),
        ]
        card = _scorecard(spec, indicators)
        if card is not None:
            frames[scorecard.SCORECARD] = card
            resources.append(scorecard.resource(CSV_PROPS))
    texts = {}
    for d in hierarchies.values():
        resources.append(_hierarchy_resource(d, f"hierarchies/{d.name}.csv", CSV_PROPS))
        texts[resources[-1]["name"]] = _hierarchy_csv(d)
    descriptor = _descriptor(spec, tables, version, created, resources, dict(extra or {}))
    return Description(json.loads(json.dumps(descriptor, default=_json)), frames, texts)


# --- checks ----------------------------------------------------------------------------------


def _check_tables(spec: ReleaseSpec, tables: list[ProtectedTable]) -> None:
    """Refuse what would publish an unsafe or unreadable package, before anything is written."""
    if not tables:
        raise ReleaseError("a release needs at least one table")
    names = [t.spec.name for t in tables]
    if len(set(names)) != len(names):
        raise ReleaseError(f"table names repeat: {', '.join(sorted({n for n in names if names.count(n) > 1}))}")
    for t in tables:
        if not SAFE_NAME.match(t.spec.name):
            raise ReleaseError(f"table name {t.spec.name!r} cannot be a file name: use lower case, digits, - _ .")
        for d in t.dimensions:
            if not SAFE_NAME.match(d.name):
                raise ReleaseError(f"dimension name {d.name!r} cannot be a file name: use lower case, digits, - _ .")
        for measure, sdc in t.sdc.items():
            audit = sdc.get("audit") or {}
            if audit.get("ok") is False:
                raise ReleaseError(
                    f"table {t.spec.name}, measure {measure}: the disclosure audit failed; nothing was published"
                )
    if not SAFE_NAME.match(spec.name):
        raise ReleaseError(f"package name {spec.name!r} is not a valid Data Package name")


def _hierarchies(tables: list[ProtectedTable]) -> dict[str, DimensionCodes]:
    """One hierarchy per dimension name; two tables disagreeing on a dimension's codes is a bug upstream."""
    out: dict[str, DimensionCodes] = {}
    for t in tables:
        for d in t.dimensions:
            seen = out.setdefault(d.name, d)
            if (seen.codes, seen.labels, seen.parents, seen.levels) != (d.codes, d.labels, d.parents, d.levels):
                raise ReleaseError(f"dimension {d.name!r} has different codes in different tables")
    return out


def _published_frame(t: ProtectedTable) -> pd.DataFrame:
    """Dimension codes and, per measure, value and status, checked so no hidden value can leak."""
    dims = [d.name for d in t.dimensions]
    columns = dims + [c for m in t.measures for c in (m.name, m.name + STATUS_SUFFIX)]
    missing = [c for c in columns if c not in t.frame.columns]
    if missing:
        raise ReleaseError(f"table {t.spec.name}: frame lacks column(s) {', '.join(missing)}")
    frame = t.frame[columns].reset_index(drop=True)
    for d in t.dimensions:
        codes = frame[d.name].astype(str)
        unknown = sorted(set(codes) - set(d.codes))
        if unknown:
            raise ReleaseError(f"table {t.spec.name}: {d.name} has codes outside its hierarchy: {unknown[:5]}")
        frame[d.name] = codes
    if frame.duplicated(subset=dims).any():
        raise ReleaseError(f"table {t.spec.name}: repeated combinations of {', '.join(dims)}")
    for m in t.measures:
        values = frame[m.name].astype("Int64")
        status = frame[m.name + STATUS_SUFFIX].fillna("").astype(str)
        bad = sorted(set(status) - {"", *MISSING_LABELS, *ANNOTATIONS})
        if bad:
            raise ReleaseError(f"table {t.spec.name}: {m.name} has unknown status {bad[:5]}; expected c, z, x, r or p")
        hidden = status.isin(list(MISSING_LABELS))
        if (status.isin(list(ANNOTATIONS)) & values.isna()).any():
            raise ReleaseError(f"table {t.spec.name}: {m.name} marks a missing value as revised or provisional")
        if (hidden & values.notna()).any():
            raise ReleaseError(f"table {t.spec.name}: {m.name} has a value in a cell marked confidential")
        if (~hidden & values.isna()).any():
            raise ReleaseError(f"table {t.spec.name}: {m.name} has a missing value without a status")
        if (values.fillna(0) < 0).any():
            raise ReleaseError(f"table {t.spec.name}: {m.name} has negative counts")
        frame[m.name] = values
        frame[m.name + STATUS_SUFFIX] = status
    return frame


# --- files -----------------------------------------------------------------------------------


def _write_resources(
    root: Path, spec: ReleaseSpec, tables: list[ProtectedTable], hierarchies: dict[str, DimensionCodes]
) -> list[dict[str, Any]]:
    """Write every data file and return its resource descriptor, in a fixed order."""
    indicators = _indicator_frame(spec, tables)
    (root / "data").mkdir(mode=0o755)
    (root / "hierarchies").mkdir(mode=0o755)
    csvs, parquets = [], []
    for t in tables:
        frame = _published_frame(t)
        csv_path = f"data/{t.spec.name}.csv"
        _write_text(root / csv_path, _table_csv(t, frame))
        csvs.append(_csv_resource(t, csv_path, _written(root, csv_path, CSV_PROPS)))
        parquet_path = f"data/{t.spec.name}.parquet"
        _write_parquet(root / parquet_path, t, frame)
        parquets.append(_parquet_resource(t, parquet_path, _written(root, parquet_path, PARQUET_PROPS)))
    derived = []
    if indicators is not None:
        _write_text(root / INDICATORS_CSV, _indicator_csv(indicators))
        derived.append(_indicator_resource(INDICATORS_CSV, _written(root, INDICATORS_CSV, CSV_PROPS)))
        _write_indicator_parquet(root / INDICATORS_PARQUET, indicators)
        derived.append(_indicator_resource(INDICATORS_PARQUET, _written(root, INDICATORS_PARQUET, PARQUET_PROPS)))
        card = _scorecard(spec, indicators)
        if card is not None:
            _write_text(root / scorecard.SCORECARD_CSV, scorecard.to_csv(card))
            derived.append(scorecard.resource(_written(root, scorecard.SCORECARD_CSV, CSV_PROPS)))
    hiers = []
    for d in hierarchies.values():
        path = f"hierarchies/{d.name}.csv"
        _write_text(root / path, _hierarchy_csv(d))
        hiers.append(_hierarchy_resource(d, path, _written(root, path, CSV_PROPS)))
    return csvs + parquets + derived + hiers


def _table_csv(t: ProtectedTable, frame: pd.DataFrame) -> str:
    out = pd.DataFrame({d.name: frame[d.name] for d in t.dimensions})
    for m in t.measures:
        text = frame[m.name].astype("string")
        out[m.name] = text.where(frame[m.name].notna(), "[" + frame[m.name + STATUS_SUFFIX] + "]").astype(str)
    return out.to_csv(index=False, lineterminator="\n")


def _write_parquet(path: Path, t: ProtectedTable, frame: pd.DataFrame) -> None:
    """Dictionary-encoded codes, nullable int64 values and a status column; fixed writer options."""
    arrays, names = [], []
    for d in t.dimensions:
        arrays.append(pa.array(frame[d.name].to_numpy(dtype=object), type=pa.string()).dictionary_encode())
        names.append(d.name)
    for m in t.measures:
        values = frame[m.name]
        arrays.append(
            pa.array(values.fillna(0).to_numpy(dtype="int64"), type=pa.int64(), mask=values.isna().to_numpy())
        )
        status = frame[m.name + STATUS_SUFFIX]
        arrays.append(pa.array(status.to_numpy(dtype=object), type=pa.string(), mask=(status == "").to_numpy()))
        names += [m.name, m.name + STATUS_SUFFIX]
    table = pa.Table.from_arrays(arrays, names=names)
    pq.write_table(
        table,
        path,
        compression="zstd",
        compression_level=3,
        use_dictionary=True,
        write_statistics=True,
        version="2.6",
        data_page_version="1.0",
        store_schema=True,
    )
    _fsync(path)


def _hierarchy_csv(d: DimensionCodes) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["code", "label", "parent", "level"])
    for code in d.codes:
        writer.writerow([code, d.labels.get(code, code), d.parents.get(code, ""), d.levels.get(code, "")])
    return buffer.getvalue()


def _write_text(path: Path, text: str) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_tree(root: Path) -> None:
    """Directories too, so the rename never exposes entries the disk has not recorded."""
    for sub in sorted(p for p in root.rglob("*") if p.is_dir()):
        _fsync(sub)
    _fsync(root)


# --- descriptor ------------------------------------------------------------------------------


CSV_PROPS: dict[str, Any] = {"format": "csv", "mediatype": "text/csv", "encoding": "utf-8"}
PARQUET_PROPS: dict[str, Any] = {"format": "parquet", "mediatype": PARQUET_MEDIATYPE}


def _written(root: Path, path: str, props: dict[str, Any]) -> dict[str, Any]:
    """A written file's properties: its format, then its size and hash."""
    size, digest = size_and_hash(root / path)
    return {**props, "bytes": size, "hash": digest}


def _dimension_field(d: DimensionCodes) -> dict[str, Any]:
    field: dict[str, Any] = {"name": d.name, "type": "string", "title": d.title}
    if d.description:
        field["description"] = d.description
    field["categories"] = [{"value": c, "label": d.labels.get(c, c)} for c in d.codes]
    field["constraints"] = {"required": True, "enum": list(d.codes)}
    if d.period_levels and d.span:
        field[MONTHS_PROPERTY] = {"from": d.span[0], "to": d.span[1]}
    return field


def _measure_field(m: Any) -> dict[str, Any]:
    field: dict[str, Any] = {"name": m.name, "type": "integer", "title": m.title, "description": m.description}
    if m.unit:
        field["opendata:unit"] = m.unit
    # a count is its own frequency, so the rules say a hidden count of threshold or more is not primary:
    # the audit without the MI needs that (opendata/audit.py)
    field["opendata:aggregate"] = m.aggregate
    field["constraints"] = {"minimum": 0}
    return field


def _foreign_keys(t: ProtectedTable) -> list[dict[str, Any]]:
    return [
        {"fields": [d.name], "reference": {"resource": _hierarchy_name(d.name), "fields": ["code"]}}
        for d in t.dimensions
    ]


def _hierarchy_name(dimension: str) -> str:
    return f"hierarchy-{dimension}"


def _csv_resource(t: ProtectedTable, path: str, props: dict[str, Any]) -> dict[str, Any]:
    fields = [_dimension_field(d) for d in t.dimensions] + [_measure_field(m) for m in t.measures]
    return {
        "name": t.spec.name,
        "type": "table",
        "path": path,
        "title": t.spec.title,
        **({"description": t.spec.description} if t.spec.description else {}),
        **props,
        "dialect": dict(CSV_DIALECT),
        "schema": {
            "fields": fields,
            "missingValues": [dict(v) for v in MISSING_VALUES],
            "primaryKey": [d.name for d in t.dimensions],
            "foreignKeys": _foreign_keys(t),
        },
    }


def _parquet_resource(t: ProtectedTable, path: str, props: dict[str, Any]) -> dict[str, Any]:
    fields = [_dimension_field(d) for d in t.dimensions]
    for m in t.measures:
        fields.append(_measure_field(m))
        fields.append(
            {
                "name": m.name + STATUS_SUFFIX,
                "type": "string",
                "title": f"{m.title}: status",
                "description": (
                    f"Why {m.name} is missing, as GSS shorthand without brackets "
                    "(c = confidential, z = not applicable, x = not available); null when the value is published."
                ),
                "constraints": {"enum": list(MISSING_LABELS)},
            }
        )
    return {
        "name": f"{t.spec.name}-parquet",
        # "file", not "table": frictionless 5.21 reads Parquet through pandas, which turns nullable
        # integers into floats and counts no bytes, so as a table it fails; as a file its bytes and
        # hash are still checked, and the schema documents the columns for other readers.
        "type": "file",
        "path": path,
        "title": f"{t.spec.title} (Parquet)",
        "description": f"The same values as {t.spec.name}.csv, with a status column per measure, for fast loading.",
        **props,
        "schema": {
            "fields": fields,
            "primaryKey": [d.name for d in t.dimensions],
            "foreignKeys": _foreign_keys(t),
        },
    }


INDICATORS = "indicators"
INDICATORS_CSV = f"data/{INDICATORS}.csv"
INDICATORS_PARQUET = f"data/{INDICATORS}.parquet"
COLUMNS = ("indicator", "table", *TIDY[1:])
_NUMBERS = [c for c in TIDY if c in ("expected", "value", "benchmark") or c.startswith(("lower_", "upper_"))]
DIGITS = 6  # decimals kept of each indicator value and limit: enough to read, and the same on every machine


def indicator_list(spec: ReleaseSpec) -> list[Indicator]:
    return [
        Indicator(i.numerator, i.denominator, i.kind, i.per, i.polarity, key=i.name, standardise_by=i.standardise_by)
        for i in spec.indicators
    ]


def _indicator_frame(spec: ReleaseSpec, tables: list[ProtectedTable]) -> pd.DataFrame | None:
    """The spec's indicators for every table of one provider dimension by month that holds both of
    an indicator's measures (not the MI-ahead tables), and the standardised ones for every table
    of the period, an entity and their strata, from the published view alone: each figure is a
    function of published cells, so it discloses nothing the tables do not."""
    parts = []
    for t in tables:
        if t.spec.name.endswith(AHEAD_SUFFIX):
            continue
        frame = _published_frame(t)
        for rows in derive(t.spec.name, t.dimensions, frame, indicator_list(spec), spec.disclosure.rounding_base):
            rows[_NUMBERS] = rows[_NUMBERS].round(DIGITS)
            parts.append(rows)
    return pd.concat(parts, ignore_index=True) if parts else None


def _scorecard(spec: ReleaseSpec, indicators: pd.DataFrame) -> pd.DataFrame | None:
    """The balanced scorecard of the prime contracts, from the indicators as written."""
    return scorecard.build(indicators, [i.describe() for i in spec.indicators])


def _indicator_fields() -> list[dict[str, Any]]:
    text = {
        "indicator": "Indicator: its name in opendata:indicators (numerator, denominator, kind, polarity)",
        "table": "The table it is computed from",
        "period": "Month (of the events, or of referral for a cohort table), or the table's total over its months",
        "entity": "Provider code (the table's hierarchy)",
        "entity_level": "Level of the provider code (total, cpa, prime_contract, subcontractor)",
        "numerator": "Published numerator (rounded)",
        "denominator": "Published denominator (rounded)",
        "expected": "A standardised indicator's expected numerator: the denominator in each stratum at the "
        "programme's rate there (the midpoint of its bounds); empty for the others",
        "value": "Numerator / denominator (a proportion, or a rate per the indicator's per); a standardised "
        "indicator's numerator / expected",
        "benchmark": "The value of the table's total entity in the same period (the programme); 1 for a "
        "standardised indicator",
        "status": "c: an input is suppressed; z: the denominator is 0; empty: shown",
        "method": "How the interval was computed",
    }
    fields = []
    for name in COLUMNS:
        if name in ("numerator", "denominator"):
            kind = "integer"
        elif name in _NUMBERS:
            kind = "number"
        else:
            kind = "string"
        level = name.rsplit("_", 1)[-1]
        title = text.get(name) or (
            f"{'Lower' if name.startswith('lower') else 'Upper'} limit of the {level}% interval"
            if name.startswith(("lower_", "upper_"))
            else f"Against the benchmark at {level}%: better, worse, higher, lower or similar; empty without one"
        )
        fields.append({"name": name, "type": kind, "title": title})
    return fields


def _indicator_resource(path: str, props: dict[str, Any]) -> dict[str, Any]:
    parquet = path.endswith(".parquet")
    return {
        "name": INDICATORS + ("-parquet" if parquet else ""),
        "type": "file" if parquet else "table",
        "path": path,
        "title": "Performance indicators with 95% and 99.8% intervals" + (" (Parquet)" if parquet else ""),
        "description": (
            "Each indicator of the spec for every provider and month of the tables that hold its measures, "
            "computed from the published (rounded, suppressed) cells only; intervals allow for the rounding. "
            "Levels: " + ", ".join(f"{level * 100:g}%" for level in LEVELS) + "."
        ),
        "opendata:derived": "indicators",
        **props,
        **({} if parquet else {"dialect": dict(CSV_DIALECT)}),
        "schema": {
            "fields": _indicator_fields(),
            **({} if parquet else {"missingValues": [dict(v) for v in MISSING_VALUES]}),
            "primaryKey": ["indicator", "table", "period", "entity"],
        },
    }


def _indicator_csv(frame: pd.DataFrame) -> str:
    """Numbers as Python writes them (shortest round trip); a missing one as GSS shorthand: [z]
    where the denominator is 0 (or, for ``expected``, the indicator is not standardised), else [c]."""
    out = frame.copy()
    plain = ~out["expected"].notna().groupby(out["indicator"]).transform("any")  # not standardised: no expected
    for name in ("numerator", "denominator", *_NUMBERS):
        marker = np.where(out["status"] == "z", "[z]", "[c]") if name != "benchmark" else "[c]"
        if name == "expected":
            marker = np.where(plain, "[z]", marker)
        values = out[name].astype("Float64") if name in _NUMBERS else out[name].astype("Int64")
        out[name] = values.astype("string").where(values.notna(), pd.Series(marker, index=out.index)).astype(str)
    return out.to_csv(index=False, lineterminator="\n")


def _write_indicator_parquet(path: Path, frame: pd.DataFrame) -> None:
    arrays = []
    for name in COLUMNS:
        column = frame[name]
        if name in ("numerator", "denominator"):
            values = column.astype("Int64")
            arrays.append(pa.array(values.fillna(0).to_numpy("int64"), pa.int64(), mask=values.isna().to_numpy()))
        elif name in _NUMBERS:
            values = column.astype("float64")
            arrays.append(pa.array(values.fillna(0).to_numpy(), pa.float64(), mask=values.isna().to_numpy()))
        else:
            arrays.append(pa.array(column.astype(str).to_numpy(dtype=object), pa.string()))
    pq.write_table(
        pa.Table.from_arrays(arrays, names=list(COLUMNS)), path, compression="zstd", compression_level=3,
        write_statistics=True, version="2.6", data_page_version="1.0", store_schema=True,
    )  # fmt: skip
    _fsync(path)


def _hierarchy_resource(d: DimensionCodes, path: str, props: dict[str, Any]) -> dict[str, Any]:
    levels = list(dict.fromkeys(d.levels.get(c, "") for c in d.codes))
    return {
        "name": _hierarchy_name(d.name),
        "type": "table",
        "path": path,
        "title": f"{d.title}: codes and hierarchy",
        "description": (
            f"Every {d.name} code used in the tables with its label, its parent (empty for the total "
            f"{d.total!r}) and its level; each parent's value is the sum of its children's."
        ),
        **props,
        "dialect": dict(CSV_DIALECT),
        "schema": {
            "fields": [
                {"name": "code", "type": "string", "title": "Code", "constraints": {"required": True, "unique": True}},
                {"name": "label", "type": "string", "title": "Label", "constraints": {"required": True}},
                {"name": "parent", "type": "string", "title": "Parent code", "description": "Empty for the total."},
                {
                    "name": "level",
                    "type": "string",
                    "title": "Level",
                    "constraints": {"required": True, "enum": levels},
                },
            ],
            "missingValues": [""],
            "primaryKey": ["code"],
            "foreignKeys": [{"fields": ["parent"], "reference": {"resource": "", "fields": ["code"]}}],
        },
    }


def _disclosure(spec: ReleaseSpec, tables: list[ProtectedTable]) -> dict[str, Any]:
    """The rules applied and, per table and measure, what they did: enough to audit the release."""
    rules = spec.disclosure
    applied = rules_for(rules)  # what the engine was given, so the descriptor states exactly that
    per_table: dict[str, Any] = {}
    total = {"cells": 0, "primary": 0, "secondary": 0, "suppressed": 0, "rounded": 0}
    audit_ok = True
    published = {m.name for t in tables for m in t.measures}  # a measure the spec defines may go unpublished
    for t in tables:
        frame = t.frame
        per_measure: dict[str, Any] = {}
        for m in t.measures:
            sdc = t.sdc.get(m.name, {})
            status = frame[m.name + STATUS_SUFFIX].fillna("").astype(str)
            audit = sdc.get("audit") or {}
            entry = {
                "cells": int(sdc.get("cells", len(frame))),
                "primary": sdc.get("primary"),
                "secondary": sdc.get("secondary"),
                "suppressed": int((status == "c").sum()),
                "rounded": sdc.get("rounded"),
                "singletons_outsider_only": sdc.get("insider_unverified"),
                **({"hidden_as_before": sdc["hidden_as_before"]} if "hidden_as_before" in sdc else {}),
                **({"held_for_public_audit": sdc["held_for_public_audit"]} if "held_for_public_audit" in sdc else {}),
                "hidden_by_level": sdc.get("hidden_by_level"),
                "audit": {
                    "ok": audit.get("ok"),
                    "checked": audit.get("checked"),
                    "method": audit.get("method"),
                    "earlier_versions": audit.get("earlier_versions", []),
                    **({"earlier_not_linked": audit["earlier_not_linked"]} if "earlier_not_linked" in audit else {}),
                    "relations": audit.get("relations", []),
                    **(
                        {"relations_not_modelled": audit["relations_not_modelled"]}
                        if "relations_not_modelled" in audit
                        else {}
                    ),
                    **({"relations_jointly": audit["relations_jointly"]} if "relations_jointly" in audit else {}),
                    "intruders": audit.get("intruders"),
                    **(
                        {"intruders_not_modelled": audit["intruders_not_modelled"]}
                        if "intruders_not_modelled" in audit
                        else {}
                    ),
                    **({"pattern": audit["pattern"]} if "pattern" in audit else {}),
                },
            }
            for key in total:
                if isinstance(entry[key], int):
                    total[key] += entry[key]
            audit_ok = audit_ok and audit.get("ok") is True
            per_measure[m.name] = entry
        per_table[t.spec.name] = per_measure
    return {
        "rules": {
            "threshold": applied.threshold,
            "zeros": applied.zeros,
            "protection": applied.protection_width,
            "rounding": _rounding(spec),
            "secondary": rules.secondary,
            "singletons": applied.singletons,
            # who the pattern is safe against besides outsiders: units that know all their own cells
            "intruders": list(rules.intruders),
            # what the attacker model knows between the published measures (opendata.relations)
            "relations": [asdict(r) for r in spec_relations(spec) if {r.smaller, r.larger} <= published],
        },
        "tables": per_table,
        "total": total | {"audit_ok": audit_ok},
    }


def _safe_against(rules: dict[str, Any], tables: dict[str, dict[str, Any]]) -> str:
    """Who the pattern was checked against, in words (the descriptor's ``rules`` and audits say it
    for machines), and who it was not."""
    audits = [(m, e["audit"]) for measures in tables.values() for m, e in measures.items()]
    earlier = sorted({v["version"] for _, a in audits for v in a["earlier_versions"]})
    seen = "what is published" + (f" in this version and in {', '.join(earlier)}" if earlier else "")
    against = [f"anyone who sees only {seen}"]
    if rules["relations"]:
        unmodelled = sorted({m for m, a in audits if "relations_not_modelled" in a})
        but = (
            f", except for {', '.join(unmodelled)} (no pattern protects them with the relations)" if unmodelled else ""
        )
        against.append(f"what the relations between measures tell them (one count bounds another){but}")
    if rules["singletons"] == "protect":
        against.append("a contributor alone in a cell, who knows its own count")
    if rules["intruders"]:
        *most, last = [u.replace("_", " ") for u in rules["intruders"]]
        units = f"{', '.join(most)} and {last}" if most else last
        unmodelled = sorted({m for m, a in audits if "intruders_not_modelled" in a})
        but = f", except for {', '.join(unmodelled)} (no pattern protects them against these)" if unmodelled else ""
        against.append(f"each {units} that knows all its own cells{but}")
    text = "the suppressions are checked against: " + "; ".join(against)
    if not rules["intruders"]:
        text += "; not against an organisation that knows all its own cells (the spec names none to check)"
    return text


def _rounding(spec: ReleaseSpec) -> dict[str, Any] | None:
    """Base and method; the method is only in the raw spec, and conventional is the default."""
    if not spec.disclosure.rounding_base:
        return None
    raw = (spec.raw.get("disclosure") or {}).get("rounding") or {}
    return {"base": spec.disclosure.rounding_base, "method": raw.get("method", "conventional")}


def _descriptor(
    spec: ReleaseSpec,
    tables: list[ProtectedTable],
    version: str,
    created: str,
    resources: list[dict[str, Any]],
    extra: dict[str, Any],
) -> dict[str, Any]:
    descriptor: dict[str, Any] = {
        "$schema": DATAPACKAGE_SCHEMA,
        "name": spec.name,
        "id": package_id(spec.name, version),
        "version": version,
        "created": created,
        "title": spec.title,
        "description": spec.description,
    }
    if spec.homepage:
        descriptor["homepage"] = spec.homepage
    descriptor |= {
        "keywords": list(spec.keywords),
        "licenses": [dict(lic) for lic in spec.licenses],
        "sources": [dict(s) for s in spec.sources],
        "contributors": [dict(c) for c in spec.contributors],
        "resources": resources,
        "opendata:kind": spec.kind,
        "opendata:disclosure": _disclosure(spec, tables),
    }
    published = {m.name for t in tables for m in t.measures}
    defined = [i for i in spec.indicators if {i.numerator, i.denominator} <= published]  # e.g. no cohort complete yet
    if defined:  # definitions only: readers compute them from the published cells (opendata compare)
        descriptor["opendata:indicators"] = [i.describe() for i in defined]
    clash = sorted(set(extra) & set(descriptor))
    if clash:
        raise ReleaseError(f"extra metadata would overwrite {', '.join(clash)}")
    for key in sorted(extra):
        descriptor[key] = extra[key]
    return descriptor


def write_views(version_dir: Path, descriptor: dict[str, Any]) -> list[dict[str, Any]]:
    """Write what people read of a package (the spreadsheets, then the release page, which lists
    them with their hashes) and return the descriptor's resources with theirs in place of any
    earlier ones: a reschedule calls it again, since both show the release time."""
    resources = write_spreadsheets(version_dir, descriptor)
    resources = [r for r in resources if r.get("path") != PAGE_FILE]
    write_atomic(version_dir / PAGE_FILE, release_page(version_dir, descriptor | {"resources": resources}))
    size, digest = size_and_hash(version_dir / PAGE_FILE)
    page = {"name": "release-page", "type": "file", "path": PAGE_FILE, "title": "Release page",
            "format": "html", "mediatype": "text/html", "bytes": size, "hash": digest}  # fmt: skip
    return [*resources, page]


def _json(value: Any) -> Any:
    """Times in ``extra`` (release time, cut-off, embargo) in the same spelling as ``created``."""
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Path):
        return value.as_posix()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} in package metadata cannot be written as JSON")


# --- README ----------------------------------------------------------------------------------


_md = markdown_text  # short, for the README template below


def _release_lines(statement: list[str]) -> list[str]:
    return ["## Release", "", *(f"- {_md(line)}" for line in statement)]


def retimed_readme(text: str, old_created: str, descriptor: Mapping[str, Any]) -> str:
    """A staged package's README after a reschedule: the new ``created`` stamp and Release section."""
    text = text.replace(f", created {old_created}.", f", created {descriptor['created']}.", 1)
    start = text.index("\n## Release\n")
    end = text.find("\n## ", start + 1)
    section = "\n" + "\n".join(_release_lines(descriptor["opendata:release"]["statement"])) + "\n"
    return text[:start] + section + (text[end:] if end != -1 else "")


def _readme(spec: ReleaseSpec, tables: list[ProtectedTable], descriptor: Mapping[str, Any]) -> str:
    """The same facts as the descriptor, for people: what it is, what was hidden and why, how to cite."""
    version, created = descriptor["version"], descriptor["created"]
    disclosure = descriptor["opendata:disclosure"]
    rules = disclosure["rules"]
    lines = [f"# {_md(spec.title)}", "", f"Version {version}, created {created}. Package name `{spec.name}`."]
    lines += ["", f"**What this is:** {KIND_NOTES.get(spec.kind, spec.kind)}", "", _md(spec.description)]
    release = descriptor.get("opendata:release")
    if release:
        lines += ["", *_release_lines(release.get("statement", []))]
    revisions = descriptor.get("opendata:revisions")
    if revisions:
        lines += ["", "## Revisions", ""]
        if release and release.get("reason"):
            lines += [f"Reason for the correction: {_md(release['reason'])}", ""]
        lines += [
            f"This version corrects {revisions['count']} published value(s) of version {revisions['previous']}. "
            "Corrected cells carry the status `r` (revised) in the Parquet files; the first ones are:",
            "",
        ]
        for cell in revisions["cells"][:50]:
            where = ", ".join(f"{k}={v}" for k, v in cell["key"].items())
            lines.append(f"- {cell['table']} ({where}): {cell['measure']} {cell['old']} → {cell['new']} [r]")

    lines += ["", "## Tables", ""]
    for t in tables:
        lines += [
            f"### {_md(t.spec.title)}",
            "",
            f"File `data/{t.spec.name}.csv` (and `data/{t.spec.name}.parquet`).",
        ]
        if t.spec.description:
            lines += ["", _md(t.spec.description)]
        lines += ["", "| Column | Kind | Title | Description |", "| --- | --- | --- | --- |"]
        for d in t.dimensions:
            lines.append(f"| `{d.name}` | dimension ({len(d.codes)} codes) | {_md(d.title)} | {_md(d.description)} |")
        for m in t.measures:
            unit = f" ({m.unit})" if m.unit else ""
            lines.append(f"| `{m.name}` | measure{unit} | {_md(m.title)} | {_md(m.description)} |")
        lines.append("")

    lines += [
        "## Symbols",
        "",
        "Cells that are not published hold GSS shorthand instead of a number; no cell is ever blank.",
        "",
    ]
    lines += [f"- `[{code}]` {label}" for code, label in MISSING_LABELS.items()]
    lines += [
        "",
        "In the Parquet files these cells are null and the `<measure>_status` column says why (`c`, `z` or `x`).",
    ]

    lines += ["", "## Disclosure control", ""]
    rule_text = [
        f"cells counting from 1 to {rules['threshold'] - 1} people or records are suppressed (threshold rule)",
        "zeros are published" if rules["zeros"] == "safe" else "zeros are suppressed too",
    ]
    rule_text.append(
        f"other cells are suppressed ({rules['secondary']} secondary suppression) so that no suppressed value can "
        f"be worked out from totals to within {rules['protection']}"
    )
    if rules["rounding"]:
        method = rules["rounding"].get("method") or "conventional"
        rule_text.append(f"published counts are rounded to the nearest {rules['rounding']['base']} ({method} rounding)")
    rule_text.append(_safe_against(rules, disclosure["tables"]))
    lines += [f"- {r}" for r in rule_text]
    lines += [
        "",
        "Because of rounding, totals may not equal the sum of their parts.",
        "",
        "| Table | Measure | Cells | Primary | Secondary | Suppressed `[c]` | Rounded | Audit |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for table, measures in disclosure["tables"].items():
        for measure, e in measures.items():
            a = e["audit"]
            audit = "not run" if a["ok"] is None else ("passed" if a["ok"] else "FAILED")
            if a["method"]:
                audit += f" ({a['method']}, {a['checked']} checked)"
            cells = [e["cells"], e["primary"], e["secondary"], e["suppressed"], e["rounded"]]
            shown = " | ".join("n/a" if v is None else str(v) for v in cells)
            lines.append(f"| {table} | {measure} | {shown} | {audit} |")
    levels = [
        f"- {table}, {measure}: "
        + "; ".join(f"{k} {v['hidden']} of {v['cells']}" for k, v in e["hidden_by_level"].items())
        for table, measures in disclosure["tables"].items()
        for measure, e in measures.items()
        if e.get("hidden_by_level")
    ]
    if levels:
        lines += ["", "Cells suppressed at each level of each table (grand total first):", "", *levels]
    total = disclosure["total"]
    lines += [
        "",
        f"In total {total['suppressed']} of {total['cells']} cells are suppressed "
        f"({total['primary']} primary, {total['secondary']} secondary).",
        "Audit: "
        + (
            "every suppressed cell was checked against what is published and none can be recovered."
            if total["audit_ok"]
            else "not complete for every measure (see the table above)."
        ),
    ]

    year = created[:4]
    publisher = _md(spec.publisher.get("title", ""))
    licences = ", ".join(_md(lic.get("title") or lic.get("name", "")) for lic in spec.licenses)
    lines += [
        "",
        "## Licence and citation",
        "",
        f"Licence: {licences}.",
        "",
        f"Cite as: {publisher} ({year}). *{_md(spec.title)}*, version {version} [data set].",
    ]
    if spec.sources:
        lines += ["", "Sources: " + "; ".join(_md(s.get("title", "")) for s in spec.sources) + "."]

    lines += ["", "## Files", "", "| File | Bytes | SHA-256 |", "| --- | --- | --- |"]
    for r in descriptor["resources"]:
        lines.append(f"| `{r['path']}` | {r['bytes']} | `{r['hash'].removeprefix('sha256:')}` |")
    lines += ["", f"`{DESCRIPTOR_FILE}` describes every file (Frictionless Data Package v2)."]
    return "\n".join(lines) + "\n"
