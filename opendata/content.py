"""The neutral view two versions of a package are compared in (``PackageContent``): built from a
published version (``from_path``) or from the tables ``release`` is about to write (``from_tables``,
through ``package.describe``), so the version can be decided before anything is written. Both give
equal content for the same data: one dtype per field type, statuses as "" when published.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from opendata import package as pkg
from opendata.descriptor import STATUS_SUFFIX, PackageInfo
from opendata.errors import OpenDataError
from opendata.protection import ProtectedTable
from opendata.spec import ReleaseSpec

# Descriptor keys that differ between versions by construction, so they are not "changes".
# ``opendata:revisions`` lists the corrections, which the rows themselves report.
VOLATILE_KEYS = frozenset({"id", "version", "created", "resources", "opendata:release", "opendata:revisions"})
# Resource keys describing the file rather than the content (checked by PackageInfo.verify instead).
FILE_KEYS = frozenset({"name", "path", "bytes", "hash", "schema"})

# --- content ---------------------------------------------------------------------------------


@dataclass(eq=False)
class ResourceContent:
    """One tabular resource as a consumer sees it: schema, descriptive properties and rows.

    ``rows`` has one column per schema field, in schema order (integers as Int64, numbers as
    Float64, everything else as str), and after each field with a status column
    ``<field>_status`` (str: "" when published, else the GSS code such as "c").
    """

    name: str
    schema: dict[str, Any]
    metadata: dict[str, Any]
    rows: pd.DataFrame

    @property
    def fields(self) -> list[dict[str, Any]]:
        return list(self.schema.get("fields") or [])

    @property
    def field_names(self) -> list[str]:
        return [f["name"] for f in self.fields]

    @property
    def key(self) -> tuple[str, ...]:
        pk = self.schema.get("primaryKey") or []
        return (pk,) if isinstance(pk, str) else tuple(pk)

    def status_column(self, name: str) -> str | None:
        column = name + STATUS_SUFFIX
        return column if column in self.rows.columns else None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ResourceContent):
            return NotImplemented
        return (
            (self.name, self.schema, self.metadata) == (other.name, other.schema, other.metadata)
            and list(self.rows.columns) == list(other.rows.columns)
            and list(self.rows.dtypes.astype(str)) == list(other.rows.dtypes.astype(str))
            and self.rows.reset_index(drop=True).equals(other.rows.reset_index(drop=True))
        )

    __hash__ = None  # type: ignore[assignment]


@dataclass(eq=False)
class PackageContent:
    """The public content of one package version: metadata and tabular resources by name.

    ``version`` is informational (None for content not yet written) and is not compared.
    """

    name: str
    version: str | None
    metadata: dict[str, Any]
    resources: dict[str, ResourceContent]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PackageContent):
            return NotImplemented
        return self.metadata == other.metadata and self.resources == other.resources

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def from_path(cls, version_dir: str | Path) -> PackageContent:
        """Read a published version: the descriptor, then each table (from its Parquet twin when there is one)."""
        info = PackageInfo.read(version_dir)
        root, descriptor = info.path, info.descriptor
        listed = [r for r in descriptor.get("resources", []) if isinstance(r, dict)]
        parquet = {_stem(r["path"]): r["path"] for r in listed if r.get("format") == "parquet" and "path" in r}
        resources: dict[str, ResourceContent] = {}
        for r in listed:
            if not _is_table(r):
                continue
            schema = _canonical(r.get("schema") or {})
            path = root / r["path"]
            twin = parquet.get(_stem(r["path"]))
            try:
                frame = _read_parquet(root / twin, schema) if twin is not None else _read_csv(path, schema)
            except FileNotFoundError as exc:
                raise OpenDataError(f"{root}: resource {r['name']} is listed but {exc.filename} is missing") from None
            resources[r["name"]] = ResourceContent(r["name"], schema, _resource_metadata(r), frame)
        return cls(info.name, info.version, _package_metadata(descriptor), resources)

    @classmethod
    def from_tables(
        cls,
        spec: ReleaseSpec,
        tables: list[ProtectedTable],
        descriptor: Mapping[str, Any] | None = None,
        *,
        extra: Mapping[str, Any] | None = None,
        version: str | None = None,
    ) -> PackageContent:
        """The content ``write_package(spec, tables, ..., extra=extra)`` would publish, without writing it:
        ``package.describe``, the writer's own code, so the two views cannot drift apart. Package
        metadata comes from ``descriptor`` when given."""
        described = pkg.describe(spec, tables, version or "0.0.0", extra=extra)
        resources: dict[str, ResourceContent] = {}
        for r in described.descriptor["resources"]:
            if not _is_table(r):
                continue
            schema = r["schema"]
            if r["name"] in described.frames:
                frame = _normalise(described.frames[r["name"]], schema)
            else:
                frame = _read_csv(io.StringIO(described.hierarchies[r["name"]]), schema)
            resources[r["name"]] = ResourceContent(r["name"], schema, _resource_metadata(r), frame)
        meta = _package_metadata(descriptor if descriptor is not None else described.descriptor)
        return cls(spec.name, version, meta, resources)

    def hierarchies(self, resource: str) -> dict[str, dict[str, str]]:
        """Per key field of ``resource``: code -> parent, from the resource its foreign key points at."""
        out: dict[str, dict[str, str]] = {}
        res = self.resources.get(resource)
        if res is None:
            return out
        for fk in res.schema.get("foreignKeys") or []:
            fields = fk.get("fields")
            fields = [fields] if isinstance(fields, str) else list(fields or [])
            ref = fk.get("reference") or {}
            target = self.resources.get(ref.get("resource", ""))
            ref_fields = ref.get("fields")
            ref_fields = [ref_fields] if isinstance(ref_fields, str) else list(ref_fields or [])
            if len(fields) != 1 or len(ref_fields) != 1 or target is None:
                continue
            rows = target.rows
            if ref_fields[0] in rows.columns and "parent" in rows.columns:
                out[fields[0]] = dict(zip(rows[ref_fields[0]].tolist(), rows["parent"].tolist(), strict=True))
        return out


def _is_table(resource: Mapping[str, Any]) -> bool:
    """Tabular resources as consumers read them; Parquet twins are the same table in another format.
    Derived resources (the indicators) follow from the tables and the descriptor's definitions, so
    a version's changes are the tables' changes: they are not compared themselves."""
    if resource.get("format") == "parquet" or "path" not in resource or "name" not in resource:
        return False
    if resource.get("opendata:derived"):
        return False
    return resource.get("type") == "table" or (resource.get("format") == "csv" and "schema" in resource)


def _stem(path: str) -> str:
    return path.rsplit(".", 1)[0]


def _canonical(value: Any) -> Any:
    """JSON round trip: tuples become lists and times strings, as they are once written."""
    return json.loads(json.dumps(value, default=pkg._json))


def _package_metadata(descriptor: Mapping[str, Any]) -> dict[str, Any]:
    """Package properties that describe the data, without those that change every release."""
    meta = {k: v for k, v in descriptor.items() if k not in VOLATILE_KEYS}
    disclosure = meta.get("opendata:disclosure")
    if isinstance(disclosure, dict):
        # per-table counts follow from the rows (status changes report them); the rules are metadata
        meta["opendata:disclosure"] = {"rules": disclosure.get("rules")}
    return _canonical(meta)


def _resource_metadata(resource: Mapping[str, Any]) -> dict[str, Any]:
    return _canonical({k: v for k, v in resource.items() if k not in FILE_KEYS})


def _read_parquet(path: Path, schema: Mapping[str, Any]) -> pd.DataFrame:
    names = [f["name"] for f in schema.get("fields") or []]
    available = set(pq.read_schema(path).names)
    columns = [c for n in names for c in (n, n + STATUS_SUFFIX) if c in available]
    table = pq.read_table(path, columns=columns)
    mapping = {pa.int64(): pd.Int64Dtype(), pa.float64(): pd.Float64Dtype()}
    return _normalise(table.to_pandas(types_mapper=mapping.get), schema)


def _read_csv(path: Path | io.StringIO, schema: Mapping[str, Any]) -> pd.DataFrame:
    """Fallback for tables without a Parquet twin (and for hierarchies): missing-value markers become statuses."""
    text = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8")
    markers = [m["value"] if isinstance(m, dict) else m for m in schema.get("missingValues", [""])]
    key = set(_key(schema))
    frame = pd.DataFrame(index=text.index)
    for f in schema.get("fields") or []:
        name = f["name"]
        column = text[name] if name in text.columns else pd.Series("", index=text.index)
        if f.get("type") in ("integer", "number") and name not in key:
            hidden = column.isin([m for m in markers if m])
            frame[name] = pd.to_numeric(column.mask(hidden | (column == "")), errors="coerce")
            frame[name + STATUS_SUFFIX] = column.where(hidden, "").str.strip("[]")
        else:
            frame[name] = column
    return _normalise(frame, schema)


def _key(schema: Mapping[str, Any]) -> list[str]:
    pk = schema.get("primaryKey") or []
    return [pk] if isinstance(pk, str) else list(pk)


def _normalise(frame: pd.DataFrame, schema: Mapping[str, Any]) -> pd.DataFrame:
    """One dtype per field type, statuses as "" when published: equal data gives equal frames."""
    out: dict[str, pd.Series] = {}
    for f in schema.get("fields") or []:
        name = f["name"]
        if name not in frame.columns:
            continue
        column = frame[name].reset_index(drop=True)
        if f.get("type") == "integer":
            out[name] = column.astype("Int64")
        elif f.get("type") == "number":
            out[name] = column.astype("Float64")
        else:
            out[name] = _text(column)
        status = name + STATUS_SUFFIX
        if status in frame.columns:
            out[status] = _text(frame[status].reset_index(drop=True))
    return pd.DataFrame(out)


def _text(column: pd.Series) -> pd.Series:
    return column.astype("string").fillna("").astype(str)
