"""What changed between two versions of a package, and which version number that change earns.

Versioning follows the Data Package recipe for SemVer (see BRIEF.md):

- MAJOR: a field added, removed, renamed or reordered; a type changed; a constraint tightened
  (enum shrank, minimum raised, ``required`` added, ...); the primary key changed; a resource
  removed; **published rows removed** (consumers lose data they may rely on, e.g. a month dropped).
- MINOR: a new resource; new rows (new data, e.g. another month); a constraint loosened (enum grew).
- PATCH: corrected values; a cell whose suppression status changed (published <-> ``[c]``);
  metadata only (titles, descriptions, licences, keywords, labels, ...).

New data versus correction. A row whose key is new is an addition. A changed value in a row whose
key exists in both versions is a correction, UNLESS it is an aggregate explained by added rows:
its code in every key dimension is an ancestor-or-self (in that dimension's published hierarchy)
of the matching code of some added row, in this resource or in any resource whose key includes
all of this resource's dimensions (a dimension missing from a key is implicitly its total). So
appending a month moves the month ``Total`` rows of every table, and the by-provider totals
table, as new data; a changed leaf, or an aggregate over months that gained no rows, is a
correction. Only key dimensions with a hierarchy (a foreign key to a resource with a ``parent``
column) can explain anything. A correction that happens to sit under new rows is therefore
reported as new data; the bump is MINOR either way.

Both sides are compared as ``opendata.content.PackageContent``, so the version can be decided
before anything is written.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from opendata import tree
from opendata.content import PackageContent, ResourceContent
from opendata.descriptor import DESCRIPTOR_FILE, MISSING_LABELS
from opendata.errors import OpenDataError, ReleaseError
from opendata.versions import SEMVER, semver_key

Bump = Literal["major", "minor", "patch"]
RANK: dict[str | None, int] = {None: 0, "patch": 1, "minor": 2, "major": 3}

# Field properties that are the field's structure; everything else on a field is metadata.
STRUCTURE_KEYS = frozenset({"name", "type", "format", "constraints", "categories"})

# Schema change kinds and the bump each calls for.
KIND_BUMP: dict[str, Bump] = {
    "field-added": "major",
    "field-removed": "major",
    "field-renamed": "major",
    "fields-reordered": "major",
    "type-changed": "major",
    "primary-key-changed": "major",
    "constraint-tightened": "major",
    "constraint-loosened": "minor",
    "metadata-changed": "patch",
}
LOWER_BOUNDS = frozenset({"minimum", "exclusiveMinimum", "minLength"})
UPPER_BOUNDS = frozenset({"maximum", "exclusiveMaximum", "maxLength"})


# --- changes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One schema or metadata change. ``added``/``removed`` list members for set-like aspects (enum values)."""

    kind: str
    field: str | None
    aspect: str
    old: Any = None
    new: Any = None
    added: tuple[Any, ...] = ()
    removed: tuple[Any, ...] = ()

    @property
    def bump(self) -> Bump:
        return KIND_BUMP[self.kind]

    def describe(self) -> str:
        subject = f"field {self.field} {self.aspect}" if self.field else self.aspect
        if self.kind in ("field-added", "field-removed"):
            return f"field {self.field} {self.kind.split('-')[1]}"
        if self.kind == "field-renamed":
            return f"field {self.old} renamed to {self.new}"
        if self.kind == "fields-reordered":
            return f"fields reordered: {', '.join(self.old)} -> {', '.join(self.new)}"
        parts = []
        if self.removed:
            parts.append(f"removed {_short(self.removed)}")
        if self.added:
            parts.append(f"added {_short(self.added)}")
        if not parts:
            parts.append(f"{_show(self.old)} -> {_show(self.new)}")
        label = {"constraint-tightened": "tightened", "constraint-loosened": "loosened"}.get(self.kind, "changed")
        return f"{subject} {label}: {'; '.join(parts)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "bump": self.bump,
            "field": self.field,
            "aspect": self.aspect,
            "old": self.old,
            "new": self.new,
            "added": list(self.added),
            "removed": list(self.removed),
        }


@dataclass(frozen=True)
class CellChange:
    """One cell whose published value or status differs; ``new_data`` marks an aggregate moved by added rows."""

    key: tuple[str, ...]
    field: str
    old: Any
    new: Any
    old_status: str = ""
    new_status: str = ""
    new_data: bool = False

    def to_dict(self, key_names: tuple[str, ...]) -> dict[str, Any]:
        return {
            "key": dict(zip(key_names, self.key, strict=True)),
            "field": self.field,
            "old": self.old,
            "new": self.new,
            "old_status": self.old_status or None,
            "new_status": self.new_status or None,
            "new_data": self.new_data,
        }

    def describe(self, key_names: tuple[str, ...]) -> str:
        where = ", ".join(f"{k}={v}" for k, v in zip(key_names, self.key, strict=True))
        return f"{where}: {self.field} {_cell(self.old, self.old_status)} -> {_cell(self.new, self.new_status)}"


def _cell(value: Any, status: str) -> str:
    """A cell as a reader sees it: shorthand for a missing value (``[c]``), else the value with its
    annotation (``27890 [r]``)."""
    if status in MISSING_LABELS:
        return f"[{status}]"
    return f"{_show(value)} [{status}]" if status else _show(value)


@dataclass
class ResourceDiff:
    """Everything that changed in one resource. Row keys are tuples in ``key`` order, in publication order."""

    name: str
    change: Literal["added", "removed", "changed", "unchanged"]
    key: tuple[str, ...]
    rows: int  # rows in the new version (the old one if removed)
    schema: list[Change] = field(default_factory=list)
    metadata: list[Change] = field(default_factory=list)
    rows_added: list[tuple[str, ...]] = field(default_factory=list)
    rows_removed: list[tuple[str, ...]] = field(default_factory=list)
    new_codes: dict[str, list[str]] = field(default_factory=dict)
    removed_codes: dict[str, list[str]] = field(default_factory=dict)
    values: list[CellChange] = field(default_factory=list)
    statuses: list[CellChange] = field(default_factory=list)
    rows_compared: bool = True

    @property
    def corrections(self) -> list[CellChange]:
        return [v for v in self.values if not v.new_data]

    @property
    def bump(self) -> Bump | None:
        return _max(level for level, _ in self.reasons())

    def reasons(self) -> Iterator[tuple[Bump, str]]:
        """Each change with the bump it calls for, in words, for error messages and changelogs."""
        if self.change == "added":
            yield "minor", f"new resource {self.name} ({self.rows} rows)"
            return
        if self.change == "removed":
            yield "major", f"resource {self.name} removed"
            return
        for c in self.schema:
            yield c.bump, f"{self.name}: {c.describe()}"
        if not self.rows_compared:
            yield "major", f"{self.name}: rows not comparable (primary key changed)"
        if self.rows_removed:
            yield "major", f"{self.name}: {len(self.rows_removed)} published row(s) removed{_codes(self.removed_codes)}"
        if self.rows_added:
            yield "minor", f"{self.name}: {len(self.rows_added)} row(s) added{_codes(self.new_codes)}"
        moved = len(self.values) - len(self.corrections) + sum(s.new_data for s in self.statuses)
        if moved:
            yield "minor", f"{self.name}: {moved} aggregate cell(s) updated by the new rows"
        if self.corrections:
            yield "patch", f"{self.name}: {len(self.corrections)} value(s) corrected"
        changed = [s for s in self.statuses if not s.new_data]
        if changed:
            yield "patch", f"{self.name}: {len(changed)} cell(s) changed suppression status"
        for c in self.metadata:
            yield c.bump, f"{self.name}: {c.describe()}"

    def to_dict(self, limit: int | None = 20) -> dict[str, Any]:
        def first(items: list[Any]) -> list[Any]:
            return items if limit is None else items[:limit]

        values = self.corrections + [v for v in self.values if v.new_data]
        return {
            "name": self.name,
            "change": self.change,
            "bump": self.bump,
            "key": list(self.key),
            "rows": self.rows,
            "rows_compared": self.rows_compared,
            "schema": [c.to_dict() for c in self.schema],
            "metadata": [c.to_dict() for c in self.metadata],
            "rows_added": {
                "count": len(self.rows_added),
                "new_codes": self.new_codes,
                "keys": [dict(zip(self.key, k, strict=True)) for k in first(self.rows_added)],
            },
            "rows_removed": {
                "count": len(self.rows_removed),
                "removed_codes": self.removed_codes,
                "keys": [dict(zip(self.key, k, strict=True)) for k in first(self.rows_removed)],
            },
            "values_changed": {
                "count": len(self.values),
                "corrections": len(self.corrections),
                "new_data": len(self.values) - len(self.corrections),
                "changes": [v.to_dict(self.key) for v in first(values)],
            },
            "status_changed": {
                "count": len(self.statuses),
                "suppressed": sum(1 for s in self.statuses if s.new_status and not s.old_status),
                "published": sum(1 for s in self.statuses if s.old_status and not s.new_status),
                "changes": [s.to_dict(self.key) for s in first(self.statuses)],
            },
        }


@dataclass
class PackageDiff:
    """The difference between two versions: package metadata changes and one entry per resource, by name."""

    old_name: str
    old_version: str | None
    new_name: str
    new_version: str | None
    metadata: list[Change] = field(default_factory=list)
    resources: list[ResourceDiff] = field(default_factory=list)

    @property
    def bump(self) -> Bump | None:
        return _max(level for level, _ in self.reasons())

    @property
    def changed(self) -> list[ResourceDiff]:
        return [r for r in self.resources if r.change != "unchanged"]

    def resource(self, name: str) -> ResourceDiff:
        for r in self.resources:
            if r.name == name:
                return r
        raise KeyError(name)

    def reasons(self) -> Iterator[tuple[Bump, str]]:
        for c in self.metadata:
            yield c.bump, f"package {c.describe()}"
        for r in self.resources:
            yield from r.reasons()

    def to_dict(self, limit: int | None = 20) -> dict[str, Any]:
        """JSON-ready and deterministic: resources by name, rows in publication order, at most ``limit`` listed."""
        return {
            "old": {"name": self.old_name, "version": self.old_version},
            "new": {"name": self.new_name, "version": self.new_version},
            "bump": self.bump,
            "summary": {
                "resources_added": [r.name for r in self.resources if r.change == "added"],
                "resources_removed": [r.name for r in self.resources if r.change == "removed"],
                "resources_changed": [r.name for r in self.resources if r.change == "changed"],
                "schema_changes": sum(len(r.schema) for r in self.resources),
                "rows_added": sum(len(r.rows_added) for r in self.resources),
                "rows_removed": sum(len(r.rows_removed) for r in self.resources),
                "values_changed": sum(len(r.values) for r in self.resources),
                "corrections": sum(len(r.corrections) for r in self.resources),
                "status_changes": sum(len(r.statuses) for r in self.resources),
                "metadata_changes": len(self.metadata) + sum(len(r.metadata) for r in self.resources),
            },
            "reasons": [{"bump": level, "change": text} for level, text in self.reasons()],
            "metadata": [c.to_dict() for c in self.metadata],
            "resources": [r.to_dict(limit) for r in self.resources],
        }

    def to_json(self, limit: int | None = 20) -> str:
        return json.dumps(self.to_dict(limit), indent=2, ensure_ascii=False) + "\n"


def _max(levels: Iterable[Bump | None]) -> Bump | None:
    best: Bump | None = None
    for level in levels:
        if RANK[level] > RANK[best]:
            best = level
    return best


def _short(values: Iterable[Any], n: int = 5) -> str:
    items = [str(v) for v in values]
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more


SHOWN = 80  # characters of one value in text output (JSON output keeps it whole)


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= SHOWN else text[: SHOWN - 1] + "…"


def _codes(codes: Mapping[str, list[str]]) -> str:
    shown = "; ".join(f"{dim} {_short(values)}" for dim, values in codes.items() if values)
    return f" ({shown})" if shown else ""


# --- diff ------------------------------------------------------------------------------------


def bump(d: PackageDiff) -> Bump | None:
    """The smallest version bump the changes allow; None if nothing changed."""
    return d.bump


def diff(old: PackageContent, new: PackageContent) -> PackageDiff:
    """Compare two versions: metadata, then each resource's schema and rows (by primary key)."""
    out = PackageDiff(old.name, old.version, new.name, new.version, metadata=_dict_changes(old.metadata, new.metadata))
    added_rows: dict[str, pd.DataFrame] = {}
    pending: list[ResourceDiff] = []
    for name in sorted(set(old.resources) | set(new.resources)):
        a, b = old.resources.get(name), new.resources.get(name)
        if a is None:
            assert b is not None
            out.resources.append(ResourceDiff(name, "added", b.key, len(b.rows)))
            added_rows[name] = b.rows[list(b.key)]
            continue
        if b is None:
            out.resources.append(ResourceDiff(name, "removed", a.key, len(a.rows)))
            continue
        r = ResourceDiff(name, "changed", b.key, len(b.rows))
        r.schema, r.metadata = _schema_changes(a, b)
        r.metadata += _dict_changes(a.metadata, b.metadata)
        added = _compare_rows(a, b, r)
        if added is not None and len(added):
            added_rows[name] = added
        pending.append(r)
        out.resources.append(r)
    for r in pending:
        explained = _explained(r.key, _parents(old, new, r.name), added_rows)
        if explained:
            r.values = [_mark(v, explained) for v in r.values]
            r.statuses = [_mark(s, explained) for s in r.statuses]
        if not (r.schema or r.metadata or r.rows_added or r.rows_removed or r.values or r.statuses) and r.rows_compared:
            r.change = "unchanged"
    return out


def _mark(c: CellChange, explained: set[tuple[str, ...]]) -> CellChange:
    if c.key in explained:
        return CellChange(c.key, c.field, c.old, c.new, c.old_status, c.new_status, new_data=True)
    return c


def _parents(old: PackageContent, new: PackageContent, resource: str) -> dict[str, dict[str, str]]:
    merged = old.hierarchies(resource)
    for dim, parents in new.hierarchies(resource).items():
        merged[dim] = merged.get(dim, {}) | parents
    return merged


def _explained(
    key: tuple[str, ...], parents: dict[str, dict[str, str]], added_rows: Mapping[str, pd.DataFrame]
) -> set[tuple[str, ...]]:
    """Keys of this resource that are aggregates (ancestor-or-self in every dimension) of some added row."""
    if not key or any(k not in parents for k in key):
        return set()
    chains: dict[tuple[str, str], tuple[str, ...]] = {}

    def ancestors(dim: str, code: str) -> tuple[str, ...]:
        found = chains.get((dim, code))
        if found is None:
            seen = [code]
            up = parents[dim].get(code, "")
            while up and up not in seen:
                seen.append(up)
                up = parents[dim].get(up, "")
            found = chains[(dim, code)] = tuple(seen)
        return found

    out: set[tuple[str, ...]] = set()
    for frame in added_rows.values():
        if not set(key) <= set(frame.columns) or frame.empty:
            continue
        projected = frame[list(key)].drop_duplicates()
        for row in _tuples(projected):
            out.update(product(*(ancestors(dim, code) for dim, code in zip(key, row, strict=True))))
    return out


def _compare_rows(old: ResourceContent, new: ResourceContent, out: ResourceDiff) -> pd.DataFrame | None:
    """Fill rows added/removed and cell changes; return the added rows' keys (None if not comparable)."""
    key = list(new.key)
    if not key or tuple(key) != old.key or any(k not in old.rows or k not in new.rows for k in key):
        out.rows_compared = False
        return None
    o, n = old.rows, new.rows
    o_index = pd.MultiIndex.from_frame(o[key])
    n_index = pd.MultiIndex.from_frame(n[key])
    is_new = ~n_index.isin(o_index)
    is_gone = ~o_index.isin(n_index)
    added, removed = n.loc[is_new, key], o.loc[is_gone, key]
    out.rows_added = _tuples(added)
    out.rows_removed = _tuples(removed)
    for dim in key:
        before, after = set(o[dim].unique().tolist()), set(n[dim].unique().tolist())
        fresh = [c for c in added[dim].unique().tolist() if c not in before]
        gone = [c for c in removed[dim].unique().tolist() if c not in after]
        if fresh:
            out.new_codes[dim] = fresh
        if gone:
            out.removed_codes[dim] = gone

    both = n.loc[~is_new].reset_index(drop=True)
    prior = o.iloc[o_index.get_indexer(n_index[~is_new])].reset_index(drop=True)
    key_columns = [both[k].to_numpy(dtype=object) for k in key]
    common = [f for f in new.field_names if f in old.field_names and f not in key]
    values: list[tuple[int, int, CellChange]] = []
    statuses: list[tuple[int, int, CellChange]] = []
    for order, name in enumerate(common):
        a, b = prior[name], both[name]
        if a.dtype != b.dtype:  # a type change: compare as numbers if both are, else as text
            numeric = pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b)
            a, b = (a.astype("Float64"), b.astype("Float64")) if numeric else (a.astype("string"), b.astype("string"))
        sa = prior[old.status_column(name)] if old.status_column(name) else pd.Series("", index=prior.index)
        sb = both[new.status_column(name)] if new.status_column(name) else pd.Series("", index=both.index)
        # A suppression status is a missing-value code ([c], [z], [x]); an annotation of a published
        # value ([r] revised, [p] provisional) is not: a corrected value is a value change, and an
        # annotation alone (the same value, no longer flagged) is no change at all.
        hidden_a, hidden_b = sa.isin(list(MISSING_LABELS)), sb.isin(list(MISSING_LABELS))
        status_changed = ((hidden_a != hidden_b) | (hidden_a & hidden_b & (sa != sb))).to_numpy(dtype=bool)
        na_a, na_b = a.isna().to_numpy(dtype=bool), b.isna().to_numpy(dtype=bool)
        unequal = (a != b).fillna(False).to_numpy(dtype=bool)
        value_changed = ~status_changed & ((na_a != na_b) | (~na_a & ~na_b & unequal))
        for flags, found in ((value_changed, values), (status_changed, statuses)):
            at = flags.nonzero()[0]
            if not len(at):
                continue
            cells = zip(
                at.tolist(),
                a.to_numpy(dtype=object)[at].tolist(),
                b.to_numpy(dtype=object)[at].tolist(),
                sa.to_numpy(dtype=object)[at].tolist(),
                sb.to_numpy(dtype=object)[at].tolist(),
                strict=True,
            )
            keys = zip(*(column[at].tolist() for column in key_columns), strict=True)
            found += [
                (i, order, CellChange(k, name, _py(x), _py(y), s, t))
                for k, (i, x, y, s, t) in zip(keys, cells, strict=True)
            ]
    out.values = [c for _, _, c in sorted(values, key=lambda t: t[:2])]
    out.statuses = [c for _, _, c in sorted(statuses, key=lambda t: t[:2])]
    return added


def _tuples(frame: pd.DataFrame) -> list[tuple[str, ...]]:
    """Rows as plain tuples; column-wise, since iterating Arrow-backed strings row by row is slow."""
    return list(zip(*(frame[c].to_numpy(dtype=object).tolist() for c in frame.columns), strict=True))


def _py(value: Any) -> Any:
    """Plain Python for JSON: NA -> None, numpy scalars -> int/float/str."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, (str, int, float, bool)):
        return value
    with contextlib.suppress(TypeError, ValueError):
        if pd.isna(value):
            return None
    return value.item() if hasattr(value, "item") else value


# --- schema ----------------------------------------------------------------------------------


def _schema_changes(old: ResourceContent, new: ResourceContent) -> tuple[list[Change], list[Change]]:
    """Structural changes (with their bump) and field-level metadata changes."""
    of = {f["name"]: f for f in old.fields}
    nf = {f["name"]: f for f in new.fields}
    old_names, new_names = list(of), list(nf)
    removed = [n for n in old_names if n not in nf]
    added = [n for n in new_names if n not in of]
    changes: list[Change] = []
    # renamed: removed and added at the same position with the same type
    for name in list(removed):
        i = old_names.index(name)
        if i < len(new_names) and new_names[i] in added and _type(of[name]) == _type(nf[new_names[i]]):
            changes.append(Change("field-renamed", new_names[i], "name", old=name, new=new_names[i]))
            removed.remove(name)
            added.remove(new_names[i])
    changes += [Change("field-removed", n, "field") for n in removed]
    changes += [Change("field-added", n, "field") for n in added]
    kept_old = [n for n in old_names if n in nf]
    kept_new = [n for n in new_names if n in of]
    if kept_old != kept_new:
        changes.append(Change("fields-reordered", None, "field order", old=kept_old, new=kept_new))
    metadata: list[Change] = []
    for name in kept_new:
        a, b = of[name], nf[name]
        if _type(a) != _type(b):
            changes.append(Change("type-changed", name, "type", old=_type(a), new=_type(b)))
        changes += _constraint_changes(name, a.get("constraints") or {}, b.get("constraints") or {})
        metadata += _field_metadata(name, a, b)
        if "enum" not in (a.get("constraints") or {}) and "enum" not in (b.get("constraints") or {}):
            ca, cb = _category_values(a), _category_values(b)
            if ca != cb:
                changes.append(_set_change(name, "categories", ca, cb))
    if old.key != new.key:
        changes.append(Change("primary-key-changed", None, "primaryKey", old=list(old.key), new=list(new.key)))
    changes += _missing_value_changes(old.schema, new.schema, metadata)
    changes += _foreign_key_changes(old.schema, new.schema)
    # schema-level properties other than those compared above are descriptive
    handled = {"fields", "primaryKey", "missingValues", "foreignKeys"}
    metadata += _dict_changes(
        {k: v for k, v in old.schema.items() if k not in handled},
        {k: v for k, v in new.schema.items() if k not in handled},
        prefix="schema.",
    )
    # a reordered enum is not structural
    return [c for c in changes if c.kind != "metadata-changed"], metadata + [
        c for c in changes if c.kind == "metadata-changed"
    ]


def _type(f: Mapping[str, Any]) -> str:
    kind = f.get("type", "any")
    fmt = f.get("format")
    return f"{kind}:{fmt}" if fmt and fmt != "default" else kind


def _category_values(f: Mapping[str, Any]) -> list[Any] | None:
    cats = f.get("categories")
    if cats is None:
        return None
    return [c.get("value") if isinstance(c, dict) else c for c in cats]


def _set_change(name: str | None, aspect: str, old: list[Any] | None, new: list[Any] | None) -> Change:
    """Allowed values: any removed tightens (old data may no longer validate), only added loosens."""
    if old is None:
        return Change("constraint-tightened", name, aspect, new=new)
    if new is None:
        return Change("constraint-loosened", name, aspect, old=old)
    gone = tuple(v for v in old if v not in set(new))
    fresh = tuple(v for v in new if v not in set(old))
    if gone:
        return Change("constraint-tightened", name, aspect, added=fresh, removed=gone)
    if fresh:
        return Change("constraint-loosened", name, aspect, added=fresh)
    return Change("metadata-changed", name, f"{aspect} order", old=old, new=new)


def _constraint_changes(name: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        aspect = f"constraints.{key}"
        if key == "enum":
            out.append(_set_change(name, aspect, a, b))
            continue
        if key in ("required", "unique"):
            tighter = bool(b) and not a
        elif a is None:
            tighter = True
        elif b is None:
            tighter = False
        elif key in LOWER_BOUNDS or key in UPPER_BOUNDS:
            try:
                tighter = (b > a) if key in LOWER_BOUNDS else (b < a)
            except TypeError:
                tighter = True
        else:
            tighter = True  # a changed pattern (or unknown constraint) may reject old data
        out.append(Change("constraint-tightened" if tighter else "constraint-loosened", name, aspect, old=a, new=b))
    return out


def _field_metadata(name: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    out = []
    for key in sorted((set(old) | set(new)) - STRUCTURE_KEYS):
        if old.get(key) != new.get(key):
            out.append(Change("metadata-changed", name, key, old=old.get(key), new=new.get(key)))
    la, lb = _labels(old), _labels(new)
    relabelled = sorted(c for c in set(la) & set(lb) if la[c] != lb[c])
    for code in relabelled:
        out.append(Change("metadata-changed", name, f"categories.{code}.label", old=la[code], new=lb[code]))
    return out


def _labels(f: Mapping[str, Any]) -> dict[Any, Any]:
    return {c["value"]: c.get("label") for c in f.get("categories") or [] if isinstance(c, dict) and "value" in c}


def _missing_value_changes(old: Mapping[str, Any], new: Mapping[str, Any], metadata: list[Change]) -> list[Change]:
    def markers(schema: Mapping[str, Any]) -> dict[str, Any]:
        return {
            (m["value"] if isinstance(m, dict) else m): (m.get("label") if isinstance(m, dict) else None)
            for m in schema.get("missingValues", [""])
        }

    a, b = markers(old), markers(new)
    out = []
    if set(a) != set(b):
        out.append(_set_change(None, "missingValues", list(a), list(b)))
    for value in sorted(set(a) & set(b)):
        if a[value] != b[value]:
            metadata.append(
                Change("metadata-changed", None, f"missingValues.{value}.label", old=a[value], new=b[value])
            )
    return out


def _foreign_key_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    def keys(schema: Mapping[str, Any]) -> list[str]:
        return [json.dumps(fk, sort_keys=True) for fk in schema.get("foreignKeys") or []]

    a, b = keys(old), keys(new)
    gone = tuple(json.loads(k) for k in a if k not in b)
    fresh = tuple(json.loads(k) for k in b if k not in a)
    out = []
    if fresh:
        out.append(Change("constraint-tightened", None, "foreignKeys", added=fresh))
    if gone:
        out.append(Change("constraint-loosened", None, "foreignKeys", removed=gone))
    return out


def _dict_changes(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[Change]:
    """Metadata: one change per top-level key that differs, in key order."""
    return [
        Change("metadata-changed", None, prefix + key, old=old.get(key), new=new.get(key))
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    ]


# --- versions --------------------------------------------------------------------------------


def _parse(version: str, what: str) -> tuple[int, int, int, str]:
    m = SEMVER.match(version or "")
    if not m:
        raise ReleaseError(f"{what} {version!r} is not a semantic version such as 1.2.0")
    return int(m[1]), int(m[2]), int(m[3]), m[4] or ""


def next_version(previous: str, d: PackageDiff) -> str:
    """The next version the diff calls for; ReleaseError if nothing changed (there is nothing to release)."""
    major, minor, patch, pre = _parse(previous, "previous version")
    level = d.bump
    if level is None:
        raise ReleaseError(f"nothing changed since {previous}: there is no new version to publish")
    if pre:  # 2.0.0-rc.1 is followed by 2.0.0, whatever the change
        return f"{major}.{minor}.{patch}"
    if level == "major":
        return f"{major + 1}.0.0"
    if level == "minor":
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


def check_version(previous: str, requested: str, d: PackageDiff) -> str:
    """Accept an explicit version only if it is higher than ``previous`` and is the kind of release
    the diff makes (MAJOR, MINOR or PATCH): a smaller bump would hide a change, a larger one would
    announce one (e.g. breaking changes) that is not there.

    Returns ``requested``; raises ReleaseError naming the changes and the version to use.
    """
    old = _parse(previous, "previous version")
    new = _parse(requested, "version")
    level = d.bump
    if level is None:
        raise ReleaseError(f"nothing changed since {previous}: there is no new version to publish as {requested}")
    if semver_key(requested)[:4] <= semver_key(previous)[:4]:  # precedence ignores build metadata
        raise ReleaseError(f"version {requested} is not higher than the previous version {previous}")
    if old[3] and new[:3] == old[:3]:
        return requested  # releasing a pre-release as final: the pre-release already took the bump
    given: Bump = "major" if new[0] > old[0] else "minor" if new[:2] > old[:2] else "patch"
    if RANK[given] < RANK[level]:
        why = [text for lvl, text in d.reasons() if lvl == level]
        more = f"; and {len(why) - 3} more" if len(why) > 3 else ""
        raise ReleaseError(
            f"version {requested} is a {given} release after {previous}, but the changes need a {level} release "
            f"({'; '.join(why[:3])}{more}); use {next_version(previous, d)}"
        )
    if RANK[given] > RANK[level]:
        why = [text for lvl, text in d.reasons() if lvl == level]
        raise ReleaseError(
            f"version {requested} is a {given} release after {previous}, but the changes are a {level} release "
            f"({'; '.join(why[:3]) or 'no change of a higher kind'}): a {given} release would announce changes "
            f"that are not there; use {next_version(previous, d)}"
        )
    if (given == "major" and new[1:3] != (0, 0)) or (given == "minor" and new[2] != 0):
        reset = f"{new[0]}.0.0" if given == "major" else f"{new[0]}.{new[1]}.0"
        raise ReleaseError(f"version {requested}: a {given} release resets the lower numbers to 0 (use {reset})")
    return requested


# --- rendering and references ----------------------------------------------------------------


def render_text(d: PackageDiff, limit: int = 10) -> str:
    """A readable report: the bump and why, then per changed resource its schema, rows and cells."""
    old = f"{d.old_name} {d.old_version or '(unwritten)'}"
    new = f"{d.new_name} {d.new_version or '(unwritten)'}"
    level = d.bump
    lines = [f"{old} -> {new}: {level.upper() + ' change' if level else 'no changes'}"]
    if d.metadata:
        lines += ["", "Package metadata:"]
        lines += [f"  {c.describe()}" for c in d.metadata]
    for r in d.changed:
        lines += ["", f"Resource {r.name}: {r.change} ({r.bump or 'no bump'}), {r.rows} rows"]
        if r.change != "changed":
            continue
        if r.schema:
            lines.append("  schema:")
            lines += [f"    [{c.bump}] {c.describe()}" for c in r.schema]
        if r.metadata:
            lines.append("  metadata:")
            lines += [f"    {c.describe()}" for c in r.metadata]
        if not r.rows_compared:
            lines.append("  rows not compared: the primary key changed")
        for label, keys, codes in (
            ("rows added", r.rows_added, r.new_codes),
            ("rows removed", r.rows_removed, r.removed_codes),
        ):
            if keys:
                lines.append(f"  {label}: {len(keys)}{_codes(codes)}")
                lines += [
                    f"    {', '.join(f'{k}={v}' for k, v in zip(r.key, row, strict=True))}" for row in keys[:limit]
                ]
                if len(keys) > limit:
                    lines.append(f"    ... and {len(keys) - limit} more")
        if r.values:
            moved = len(r.values) - len(r.corrections)
            lines.append(f"  values changed: {len(r.values)} ({len(r.corrections)} corrected, {moved} new data)")
            shown = r.corrections + [v for v in r.values if v.new_data]
            lines += [f"    {v.describe(r.key)}{' [new data]' if v.new_data else ''}" for v in shown[:limit]]
            if len(shown) > limit:
                lines.append(f"    ... and {len(shown) - limit} more")
        if r.statuses:
            lines.append(f"  suppression status changed: {len(r.statuses)}")
            lines += [f"    {s.describe(r.key)}{' [new data]' if s.new_data else ''}" for s in r.statuses[:limit]]
            if len(r.statuses) > limit:
                lines.append(f"    ... and {len(r.statuses) - limit} more")
    return "\n".join(lines) + "\n"


def resolve(ref: str | Path, root: str | Path) -> Path:
    """A version directory from ``NAME@VERSION`` (``NAME@latest`` for the highest) under ``root``, or a path."""
    root = Path(root)
    text = str(ref)
    as_path = Path(text)
    if as_path.name == DESCRIPTOR_FILE and as_path.is_file():
        return as_path.parent
    if as_path.is_dir():
        if not (as_path / DESCRIPTOR_FILE).is_file():
            raise OpenDataError(f"{as_path} is not a package version: it has no {DESCRIPTOR_FILE}")
        return as_path
    if "@" not in text:
        raise OpenDataError(f"{text!r} is neither a version directory nor NAME@VERSION (e.g. my-data@1.2.0)")
    name, version = text.rsplit("@", 1)
    series = root / name
    if not name or not series.is_dir():
        known = tree.packages(root)
        hint = f"; packages there: {', '.join(known)}" if known else ""
        raise OpenDataError(f"no package {name!r} in {root}{hint}")
    published = tree.versions(series)
    if version == "latest":
        if not published:
            raise OpenDataError(f"{name} has no published versions in {series}")
        version = published[-1]
    target = series / version
    if not (target / DESCRIPTOR_FILE).is_file():
        hint = f"published: {', '.join(published)}" if published else "nothing is published yet"
        raise OpenDataError(f"{name} has no version {version} in {series} ({hint})")
    return target
