"""The attacker audit of a published package, from the published files alone.

An outsider sees the published tables (rounded values, ``[c]`` cells), the hierarchies, the rules
in the descriptor and every earlier version of the dataset. For each measure this module builds
one linear system over all of that: one variable per distinct population (the same cell in two
linked tables, or in two versions, is one variable), every table's additivity equations, every
published value as its rounding interval, and what the rules themselves give away (a published
non-zero count is at least the threshold; a published zero is zero). It then solves min and max
of every cell that must be protected. Which cells are primary is not public: the publisher passes
the true counts (the spec and MI) to check exactly those; without them every suppressed cell of
the newest version is checked, which is stricter than needed (a secondary cell may be narrow).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp
from scipy.optimize import linprog

import disclosure
from disclosure import Rules, conflicts, interval_intervals, primary_mask
from disclosure.errors import Inconsistent, SolverFailed
from disclosure.intruders import OUTSIDER
from opendata import scorecard
from opendata.aggregate import MONTHS_PROPERTY, DimensionCodes, read_period
from opendata.descriptor import DESCRIPTOR_FILE
from opendata.errors import OpenDataError
from opendata.indicators import Indicator, derive
from opendata.protection import (
    AHEAD_SUFFIX,
    JOINT_MAX_LEFT,
    KEY,
    REVISION_LAYERS,
    Units,
    hierarchy,
    joint_blocks,
    population_keys,
    relation_knowledge,
)
from opendata.relations import CUMULATIVE, Relation, joint_rows, relation_rows


@dataclass
class PublishedTable:
    version: str
    name: str
    dimensions: tuple[DimensionCodes, ...]
    frame: pd.DataFrame  # dims + measures (Int64, <NA> when suppressed)
    measures: tuple[str, ...]
    counts: frozenset[str] = frozenset()  # measures that are their own frequency ("opendata:aggregate": "count")


@dataclass(frozen=True)
class Exposure:
    version: str
    table: str
    measure: str
    cell: dict[str, str]
    lower: float
    upper: float
    required: float
    by: str = ""  # the intruder unit that narrows it (knowing its own cells); "" for the outsider

    def describe(self) -> str:
        where = ", ".join(f"{k}={v}" for k, v in self.cell.items())
        who = f" by intruder {self.by}" if self.by else ""
        return (
            f"{self.table} {self.measure} ({where}): can be narrowed{who} to [{self.lower:g}, {self.upper:g}], "
            f"width {self.upper - self.lower:g} < {self.required:g}"
        )


@dataclass
class PackageAudit:
    package: str
    versions: list[str]
    primaries_known: bool
    checked: int = 0
    exposed: list[Exposure] = field(default_factory=list)
    zeros: int = 0  # hidden cells pinned to exactly 0 without the MI: no contributor, never primary (zeros safe)
    above_threshold: int = 0  # hidden counts shown to be at least the threshold without the MI: never primary
    derived: list[str] = field(default_factory=list)  # derived resources that are not what the cells give
    jointly: str = ""  # what the joint attacker over the related measures did (with the MI only)
    intruders: str = ""  # what the check against intruder units did (with the MI only)
    misled: int = 0  # narrowed cells whose interval leaves out the true value (with the MI only): no disclosure

    @property
    def ok(self) -> bool:
        return not self.exposed and not self.derived

    def to_dict(self) -> dict:
        return {
            "package": self.package,
            "versions": self.versions,
            "primaries_known": self.primaries_known,
            "checked": self.checked,
            "zeros": self.zeros,
            "above_threshold": self.above_threshold,
            "ok": self.ok,
            "exposed": [e.__dict__ for e in self.exposed],
            "derived": self.derived,
            "jointly": self.jointly,
            "intruders": self.intruders,
            "misled": self.misled,
        }


def _dimension(version_dir: Path, name: str, field: dict) -> DimensionCodes:
    h = pd.read_csv(_inside(version_dir, f"hierarchies/{name}.csv"), dtype=str, keep_default_na=False)
    total = h.loc[h["parent"] == "", "code"].iloc[0]
    return read_period(
        DimensionCodes(
            name=name,
            title=field.get("title", name),
            description="",
            codes=tuple(h["code"]),
            labels=dict(zip(h["code"], h["label"], strict=True)),
            parents=dict(zip(h["code"], h["parent"], strict=True)),
            levels=dict(zip(h["code"], h["level"], strict=True)),
            total=total,
        ),
        field.get(MONTHS_PROPERTY),
    )


def read_published(version_dir: Path) -> tuple[dict, list[PublishedTable]]:
    """The descriptor and every data table of a version, as the public sees them."""
    path = Path(version_dir) / DESCRIPTOR_FILE
    if not path.is_file():
        raise OpenDataError(f"{version_dir} is not a package version (no datapackage.json)")
    try:
        descriptor = json.loads(path.read_text(encoding="utf-8"))
        _ = descriptor["opendata:disclosure"]["rules"]["threshold"]  # written by opendata, not just any package
    except (ValueError, KeyError, TypeError) as exc:
        raise OpenDataError(f"{path} is not an opendata package descriptor ({type(exc).__name__}: {exc})") from None
    tables = []
    for resource in descriptor["resources"]:
        try:
            table = _published_table(Path(version_dir), descriptor["version"], resource)
        except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError, pa.ArrowException) as exc:
            name = resource.get("name") if isinstance(resource, dict) else resource
            raise OpenDataError(
                f"{version_dir}: resource {name!r} cannot be read for the audit ({type(exc).__name__}: {exc}); "
                "check the package with `opendata verify` first"
            ) from None
        if table is not None:
            tables.append(table)
    return descriptor, tables


def _inside(version_dir: Path, relative: str) -> Path:
    """``version_dir / relative``, refused if it leads out of the package (a hostile descriptor)."""
    path = (version_dir / relative).resolve()
    if not path.is_relative_to(version_dir.resolve()):
        raise ValueError(f"{relative!r} leads outside the package")
    return path


def _published_table(version_dir: Path, version: str, resource: dict) -> PublishedTable | None:
    """One data table as published (its Parquet twin and hierarchies); None for what is not one."""
    schema = resource.get("schema", {})
    if resource.get("format") != "csv" or resource["name"].startswith("hierarchy-"):
        return None
    if resource.get("opendata:derived"):  # computed from published cells: nothing to audit
        return None
    dims = tuple(schema["primaryKey"])
    fields = {f["name"]: f for f in schema["fields"]}
    measures = tuple(n for n in fields if n not in dims)
    frame = pd.read_parquet(_inside(version_dir, resource["path"].replace(".csv", ".parquet")))
    for d in dims:
        frame[d] = frame[d].astype(str)
    dimensions = tuple(_dimension(version_dir, d, fields[d]) for d in dims)
    counts = frozenset(m for m in measures if fields[m].get("opendata:aggregate") == "count")
    return PublishedTable(version, resource["name"], dimensions, frame, measures, counts)


def audit_package(
    version_dir: str | Path,
    previous: Sequence[str | Path] = (),
    *,
    primaries: dict[tuple[str, str], pd.Series] | None = None,
) -> PackageAudit:
    """Audit the newest version together with ``previous`` versions of the same dataset.

    ``primaries`` maps (table, measure) to a boolean Series aligned with that table's rows: the
    cells the rules made primary (known to the publisher only). Without it every suppressed cell
    of the newest version is held to the protection width.
    """
    descriptor, newest = read_published(Path(version_dir))
    rules = descriptor["opendata:disclosure"]["rules"]
    base = (rules.get("rounding") or {}).get("base")
    threshold, width = rules["threshold"], rules["protection"]
    zeros_safe = rules.get("zeros", "safe") == "safe"
    relations = [Relation(**r) for r in rules.get("relations", [])]
    tables = list(newest)
    versions = [descriptor["version"]]
    for old in previous:
        d, t = read_published(Path(old))
        if d["name"] != descriptor["name"]:
            raise OpenDataError(f"{old} is a version of {d['name']}, not of {descriptor['name']}")
        tables += t
        versions.append(d["version"])
    report = PackageAudit(descriptor["name"], versions, primaries is not None)
    report.derived = check_derived(Path(version_dir), descriptor, newest)
    measures = list(dict.fromkeys(m for t in newest for m in t.measures))
    counts = {m for t in newest for m in t.counts}  # packages before 2026-12 do not say: none
    for measure in measures:
        _audit_measure(
            measure,
            [t for t in tables if measure in t.measures],
            descriptor["version"],
            report,
            base,
            threshold,
            width,
            primaries,
            relations,
            zeros_safe,
            measure in counts,
        )
    return report


def check_derived(version_dir: Path, descriptor: dict, tables: Sequence[PublishedTable]) -> list[str]:
    """The package's ``indicators`` resource recomputed from its published tables: it must hold
    exactly those figures (to the 6 decimals written), and its ``scorecard`` exactly what those
    indicators give, byte for byte; so they add nothing an attacker could use and the attack over
    tables, indicators and scorecard is the attack over the tables alone. Returns what differs."""
    derived = [r for r in descriptor["resources"] if r.get("opendata:derived")]
    resource = next(
        (r for r in derived if r["opendata:derived"] == "indicators" and r["path"].endswith(".parquet")), None
    )
    card = next((r for r in derived if r["opendata:derived"] == scorecard.SCORECARD), None)
    if resource is None:
        return [f"{card['path']}: a scorecard without the indicators it is built from"] if card else []
    defined = descriptor.get("opendata:indicators") or []
    indicators = [Indicator.parse(d["name"], defined) for d in defined]
    base = (descriptor["opendata:disclosure"]["rules"].get("rounding") or {}).get("base")
    parts = [
        rows
        for t in tables
        if not t.name.endswith(AHEAD_SUFFIX)
        for rows in derive(t.name, t.dimensions, t.frame, indicators, base)
    ]
    try:
        shipped = pd.read_parquet(_inside(version_dir, resource["path"]))
        written = _inside(version_dir, card["path"]).read_bytes() if card else b""
    except (OSError, ValueError) as exc:
        return [f"derived resources cannot be read: {exc}"]
    key = ["indicator", "table", "period", "entity"]
    again = pd.concat(parts, ignore_index=True) if parts else shipped.iloc[0:0]
    if len(again) != len(shipped) or not again[key].astype(str).equals(shipped[key].astype(str)):
        return [f"{resource['path']}: its rows are not the indicators of the published tables"]
    problems = []
    for column in [c for c in shipped.columns if c not in key]:
        mine, theirs = again[column], shipped[column]
        if pd.api.types.is_numeric_dtype(theirs):
            same = np.isclose(mine.astype(float), theirs.astype(float), atol=2e-6, rtol=0, equal_nan=True)
        else:
            same = (mine.astype(str) == theirs.astype(str)).to_numpy()
        if not same.all():
            row = shipped.loc[~same, key].iloc[0].to_dict()
            problems.append(f"{resource['path']}: {column} is not what the published cells give, e.g. at {row}")
    if card is not None and not problems:
        rebuilt = scorecard.build(shipped, defined)
        text = scorecard.to_csv(rebuilt) if rebuilt is not None else ""
        if written != text.encode():
            problems.append(f"{card['path']}: it is not the scorecard the published indicators give")
    return problems


def _intervals(published: np.ndarray, base: int | None, threshold: int) -> tuple[np.ndarray, np.ndarray]:
    """What a published value (nan: suppressed) tells: its rounding interval, and what the rules
    give away (a published non-zero is at least the threshold, a published zero is zero)."""
    shown = ~np.isnan(published)
    lo, hi = disclosure.rounding_interval(np.where(shown, published, 0).astype(np.int64), base)
    lo = np.where(published > 0, np.maximum(lo, threshold), lo)
    hi = np.where(published == 0, 0, hi)
    return np.where(shown, lo, 0.0), np.where(shown, hi, np.inf)


def _system(grids, keys, intervals) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray, np.ndarray, pd.Index]:
    """One variable per distinct key: every table's equations and the tightest published interval."""
    codes, uniques = pd.factorize(np.concatenate(keys))
    bounds = np.cumsum([0] + [g.size for g in grids])
    col_lo, col_hi = np.zeros(len(uniques)), np.full(len(uniques), np.inf)
    mats = []
    for i, grid in enumerate(grids):
        umap = codes[bounds[i] : bounds[i + 1]]
        np.maximum.at(col_lo, umap, intervals[i][0])
        np.minimum.at(col_hi, umap, intervals[i][1])
        a = grid.constraints.tocoo()
        mats.append(sp.csr_matrix((a.data, (a.row, umap[a.col])), shape=(a.shape[0], len(uniques))))
    return sp.vstack(mats, format="csr"), col_lo, col_hi, codes, pd.Index(uniques)


def _feasible(a: sp.csr_matrix, lo: np.ndarray, hi: np.ndarray) -> bool:
    if (lo > hi).any():
        return False
    found = linprog(np.zeros(a.shape[1]), A_eq=a, b_eq=np.zeros(a.shape[0]), bounds=np.c_[lo, hi], method="highs")
    return found.status == 0


def _own_quantities(tables, grids, keys, intervals, newest) -> None:
    """Give an earlier version its own keys where it counted other quantities (a correction).

    Cells whose published intervals disagree between versions were revised; they, every total
    they feed and, while the versions still contradict each other, every cell within ``k``
    equations of them (``k`` = 0, 1, ...: hidden cells may have changed unseen) are quantities of
    the earlier version alone. This is the release's own model (``opendata.protection``).
    """
    first: dict[str, tuple[float, float]] = {}
    conflict = set()
    for i in sorted(range(len(tables)), key=lambda i: tables[i].version != newest):
        lo, hi = intervals[i]
        for j in np.flatnonzero(np.isfinite(hi)):
            k = keys[i][j]
            if k in first and (lo[j] > first[k][1] or hi[j] < first[k][0]):
                conflict.add(k)
            first.setdefault(k, (lo[j], hi[j]))
    older = [i for i, t in enumerate(tables) if t.version != newest]
    own = {i: np.isin(keys[i], list(conflict)) for i in older}
    original = {i: keys[i].copy() for i in older}
    for _ in range(REVISION_LAYERS + 1):
        changed = True
        while changed:  # the totals they feed, in every table of the same version
            changed = False
            for i in older:
                grown = grids[i].with_ancestors(own[i])
                for j in older:
                    if tables[j].version == tables[i].version:
                        grown_j = own[j] | np.isin(original[j], original[i][grown])
                        changed |= bool((grown_j != own[j]).any())
                        own[j] = grown_j
                changed |= bool((grown != own[i]).any())
                own[i] = grown
        for i in older:
            keys[i] = np.where(own[i], original[i] + "|version=" + tables[i].version, original[i])
        if not conflict or _feasible(*_system(grids, keys, intervals)[:3]):
            return
        for i in older:  # one more layer: cells sharing an equation with an own cell
            a = grids[i].constraints.tocsr()
            rows = np.unique(a[:, np.flatnonzero(own[i])].tocoo().row)
            own[i] = own[i] | (abs(a[rows]).sum(axis=0).A1 > 0)


def _audit_measure(
    measure, tables, newest, report, base, threshold, width, primaries, relations, zeros_safe, count
) -> None:
    """Bound every cell to check (the primaries, or without them every suppressed cell) and record
    the exposed ones. Without the primaries, two narrow hidden cells are not exposures, by the
    published rules alone: one pinned to exactly 0 has no contributor, so under ``zeros: safe`` it
    was never primary; one of a ``count`` measure (its own frequency) shown to be at least the
    threshold was never primary either (primaries are counts 1 to threshold - 1). Either way a
    secondary is narrowed, which tells nothing about a primary that the primary's own interval,
    bounded in the same LP, would not show."""
    grids, cell_rows, keys = [], [], []
    for t in tables:
        grid = disclosure.Grid.of({d.name: hierarchy(d) for d in t.dimensions})
        cells = grid.cell_index(t.frame)
        key = np.empty(grid.size, dtype=object)
        key[cells] = population_keys(t.dimensions, t.frame).to_numpy()
        grids.append(grid)
        cell_rows.append(np.argsort(cells))  # grid cell -> frame row
        keys.append(key)
    intervals = [
        _intervals(t.frame[measure].to_numpy(dtype="float64", na_value=np.nan)[rows], base, threshold)
        for t, rows in zip(tables, cell_rows, strict=True)
    ]
    _own_quantities(tables, grids, keys, intervals, newest)
    matrix, col_lo, col_hi, codes, index = _system(grids, keys, intervals)
    bounds = np.cumsum([0] + [g.size for g in grids])
    known = []
    for t in tables:  # the other measures as published: what the public knows of them
        other = {
            m: _intervals(t.frame[m].to_numpy(dtype="float64", na_value=np.nan), base, threshold)
            for m in t.measures
            if m != measure
        }
        known.append(other if t.name.endswith(AHEAD_SUFFIX) else other | {CUMULATIVE: (None, None)})
    frame_keys = []
    for key, rows in zip(keys, cell_rows, strict=True):
        out = np.empty(len(rows), dtype=object)
        out[rows] = key
        frame_keys.append(pd.Series(out))
    terms, upper = relation_rows(tables, frame_keys, measure, relations, known)
    bound = disclosure.KeyedRelations(terms, upper).over(index) if len(upper) else None
    required = np.zeros(len(index))
    where: dict[int, tuple[int, int]] = {}
    for i, t in enumerate(tables):
        if t.version != newest:
            continue
        rows = cell_rows[i]
        if primaries is not None and (t.name, measure) in primaries:
            check = primaries[(t.name, measure)].to_numpy(dtype=bool)[rows]
        else:
            check = ~np.isfinite(intervals[i][1])
        umap = codes[bounds[i] : bounds[i + 1]]
        required[umap[check]] = width
        for g in np.flatnonzero(check):
            where.setdefault(int(umap[g]), (i, int(g)))
    try:
        result = interval_intervals(matrix, col_lo, col_hi, required, relations=bound)
    except Inconsistent:
        raise AuditInconsistent(measure, _contradiction(tables, grids, codes, matrix, col_lo, col_hi, bound)) from None
    except SolverFailed as exc:
        what = "the system's feasibility" if exc.cell is None else _name_keys(tables, grids, codes, exc.cell)[0]
        raise AuditError(
            f"{measure}: the LP solver ended without an answer while bounding {what} (also from scratch, without "
            "presolve and with the dual simplex); the audit is incomplete, so nothing is claimed about it"
        ) from None
    report.checked += len(result.cells)
    for cell, lo, hi, req, ok in zip(result.cells, result.lower, result.upper, result.required, result.ok, strict=True):
        if not ok and primaries is None and zeros_safe and hi <= 0:
            report.zeros += 1
        elif not ok and primaries is None and count and lo >= threshold:
            report.above_threshold += 1
        elif not ok:
            i, g = where[int(cell)]
            report.exposed.append(
                Exposure(newest, tables[i].name, measure, grids[i].coords(g), float(lo), float(hi), float(req))
            )


class AuditError(OpenDataError):
    """The audit could not be completed (the solver settled nothing); names the cell it was on."""


class AuditInconsistent(AuditError):
    """The published versions contradict each other (or themselves): no table fits them all."""

    def __init__(self, measure: str, where: list[str]) -> None:
        self.where = where
        lines = "\n".join(f"  {w}" for w in where) or "  (the solver could not locate it)"
        super().__init__(
            f"{measure}: the published values cannot all be true under the hierarchies, across the versions "
            f"audited together; the contradiction is at:\n{lines}"
        )


def _name_cell(table: PublishedTable, grid, cell: int) -> str:
    where = ", ".join(f"{k}={v}" for k, v in grid.coords(cell).items())
    return f"{table.name} {table.version} ({where})"


def _name_keys(tables, grids, codes, column: int) -> list[str]:
    """Every published cell that counts the variable ``column`` (one per table and version)."""
    bounds = np.cumsum([0] + [g.size for g in grids])
    return [
        _name_cell(t, g, int(hit[0]))
        for i, (t, g) in enumerate(zip(tables, grids, strict=True))
        if len(hit := np.flatnonzero(codes[bounds[i] : bounds[i + 1]] == column))
    ] or [f"variable {column}"]


def _contradiction(tables, grids, codes, matrix, col_lo, col_hi, bound) -> list[str]:
    """Name the cells where the versions contradict each other (``disclosure.attacker.conflicts``)."""
    crossed, eq_rows, rel_rows = conflicts(matrix, col_lo, col_hi, bound)
    out = [
        " and ".join(_name_keys(tables, grids, codes, int(j))) + ": the same count, published with values that "
        "cannot both be true"
        for j in crossed
    ]
    offsets = np.cumsum([0] + [g.constraints.shape[0] for g in grids])
    for r in eq_rows.tolist():
        i = int(np.searchsorted(offsets, r, side="right") - 1)
        total = int(grids[i].row_parent[r - offsets[i]])
        out.append(f"{_name_cell(tables[i], grids[i], total)}: cannot be the sum of its parts as published")
    out += [f"relation row {int(r)} between measures cannot hold as published" for r in rel_rows]
    return out


def audit_with_mi(
    version_dir: str | Path,
    previous: Sequence[str | Path],
    spec,
    inputs: Sequence[str | Path],
    intruders: Sequence[str] | None = None,
) -> PackageAudit:
    """The publisher's audit (the MI known): ``audit_package`` with the true primaries, then the joint
    attacker over every measure the relations bind (``disclosure.audit_jointly``, as the release
    checked itself), then each intruder unit (``_audit_intruders``; the levels the package names,
    or ``intruders``), over the newest version's tables; their exposures join the report's."""
    descriptor, matched = _with_truth(version_dir, spec, inputs)
    primaries = {
        (table.spec.name, m): primary
        for table, _, aligned in matched
        for m, primary in _primaries(descriptor, table, aligned)
    }
    report = audit_package(version_dir, previous, primaries=primaries)
    report.jointly = _audit_jointly(descriptor, matched, report)
    report.intruders = _audit_intruders(descriptor, matched, report, intruders)
    _drop_misled(report, descriptor["version"], matched)
    return report


def _audit_intruders(descriptor: dict, matched: list[tuple], report: PackageAudit, levels: Sequence[str] | None) -> str:
    """Every primary of the newest version against each unit at ``levels`` (default: the intruders
    the package says it is safe against, in the measures it says so for), knowing all its own cells
    at their true values, measure by measure over the version's tables
    (``disclosure.audit_linked_intruders``); add what a unit narrows to ``report``; say what it did.
    The relations between measures the release modelled for a measure are modelled here too, as the
    release takes them (``relation_knowledge``); the earlier versions it was protected with are not: a
    narrower model, so a pass here is necessary, not sufficient (the release's own check is the
    full one)."""
    from opendata.aggregate import FREQ_SUFFIX

    stated = descriptor["opendata:disclosure"]["rules"]
    entries = [(m, e["audit"]) for t in descriptor["opendata:disclosure"]["tables"].values() for m, e in t.items()]
    given_up: set[str] = set()  # measures the package says no pattern protects against its intruders
    if levels is None:
        levels = stated.get("intruders") or ()
        given_up = {m for m, audit in entries if "intruders_not_modelled" in audit}
    if not levels:
        return "not run: the package names no intruders (give --intruders to check some)"
    rules = Rules(threshold=stated["threshold"], zeros=stated["zeros"], protection=stated.get("protection"))
    relations = [Relation(**r) for r in stated.get("relations", [])]
    no_relations = {m for m, audit in entries if "relations_not_modelled" in audit}
    pairs = narrowed = 0
    with_relations: list[str] = []
    for measure in sorted({m.name for table, _, _ in matched for m in table.measures} - given_up):
        linked, holders = [], []
        for table, match, aligned in matched:
            if measure not in {m.name for m in table.measures}:
                continue
            dims = {d.name: hierarchy(d) for d in table.dimensions}
            freq = measure + FREQ_SUFFIX
            frame = aligned[[*dims, measure, freq]].assign(
                **{KEY: population_keys(table.dimensions, aligned).to_numpy(), "_hide": match.frame[measure].isna()}
            )
            linked.append(disclosure.LinkedTable(frame, dims, measure, KEY, freq, table.spec.name, hidden="_hide"))
            holders.append(table)
        bounds = None
        if relations and measure not in no_relations:
            known = [relation_knowledge(table, measure, relations, rules)[0] for table in holders]
            keys = [population_keys(table.dimensions, table.frame) for table in holders]
            bounds = disclosure.KeyedRelations(*relation_rows(holders, keys, measure, relations, known))
            with_relations += [measure] if len(bounds.upper) else []
        found, where = disclosure.audit_linked_intruders(linked, Units(levels), rules, bounds)
        pairs += found.pairs
        for f, cell in zip(found.failures, where, strict=True):
            if f.unit == OUTSIDER:
                continue  # the outsider is the main audit's, over every version
            narrowed += 1
            cell = dict(cell)
            table = cell.pop("table")
            report.exposed.append(
                Exposure(descriptor["version"], table, measure, cell, f.lower, f.upper, f.required, by=f.unit)
            )
    unclaimed = f"; not claimed for {', '.join(sorted(given_up))}, so not checked" if given_up else ""
    related = f", with the relations between measures for {', '.join(with_relations)}" if with_relations else ""
    return (
        f"each unit at {', '.join(levels)} knowing its own cells{related} ({pairs:,} primary cell and unit "
        f"pairs of {descriptor['version']}{unclaimed}): {narrowed:,} narrowed"
    )


def _drop_misled(report: PackageAudit, version: str, matched: list[tuple]) -> None:
    """Exposures whose interval leaves out the cell's true value are no disclosure: the attacker's
    model was wrong there (a correction revised a cell where no published value shows it, and the
    attacker took the two versions' cells for one). They are counted, not reported exposed."""
    truth = {table.spec.name: aligned for table, _, aligned in matched}
    kept = []
    for e in report.exposed:
        frame = truth.get(e.table)
        if e.version != version or frame is None:
            kept.append(e)
            continue
        row = np.ones(len(frame), dtype=bool)
        for dim, code in e.cell.items():
            row &= frame[dim].astype(str).to_numpy() == code
        values = frame.loc[row, e.measure].to_numpy(dtype=float)
        if len(values) == 1 and not e.lower - 1e-6 <= values[0] <= e.upper + 1e-6:
            report.misled += 1
        else:
            kept.append(e)
    report.exposed = kept


def true_primaries(version_dir: str | Path, spec, inputs: Sequence[str | Path]) -> dict[tuple[str, str], pd.Series]:
    """Which published cells the rules made primary, from the MI behind the release (publisher only)."""
    descriptor, matched = _with_truth(version_dir, spec, inputs)
    return {
        (table.spec.name, m): primary
        for table, _, aligned in matched
        for m, primary in _primaries(descriptor, table, aligned)
    }


def _primaries(descriptor: dict, table, aligned: pd.DataFrame) -> list[tuple[str, pd.Series]]:
    from opendata.aggregate import FREQ_SUFFIX

    stated = descriptor["opendata:disclosure"]["rules"]
    rules = Rules(threshold=stated["threshold"], zeros=stated["zeros"])  # the rules the package says it applied
    return [
        (m.name, pd.Series(primary_mask(aligned[m.name + FREQ_SUFFIX].to_numpy(), rules), index=aligned.index))
        for m in table.measures
    ]


def _with_truth(version_dir: str | Path, spec, inputs: Sequence[str | Path]) -> tuple[dict, list[tuple]]:
    """The package's descriptor, and per published table (aggregated table, published table, the true
    cells in the published rows' order), from the MI behind the release."""
    from opendata.aggregate import aggregate, mi_ahead_tables
    from opendata.calendar import until_month
    from opendata.validate import validate

    descriptor, published = read_published(Path(version_dir))
    release = descriptor.get("opendata:release") or {}
    cut = release.get("cutoff")
    report = validate(spec, [Path(p) for p in inputs])
    report.raise_for_problems()
    until = until_month(pd.Timestamp(cut["covers"]).date()) if cut else None
    tables = aggregate(spec, report.table, until=until)
    if release.get("mi_ahead") and until:
        tables += mi_ahead_tables(spec, report.table, until)
    matched = []
    for table in tables:
        match = next((t for t in published if t.name == table.spec.name), None)
        if match is None:
            continue
        dims = [d.name for d in table.dimensions]
        aligned = match.frame[dims].merge(table.frame, on=dims, how="left", validate="one_to_one")
        if aligned.isna().any().any():
            raise OpenDataError(f"the MI does not match {table.spec.name} of {version_dir}: cells differ")
        aligned.index = match.frame.index
        matched.append((table, match, aligned))
    return descriptor, matched


def _audit_jointly(descriptor: dict, matched: list[tuple], report: PackageAudit) -> str:
    """Run the joint attacker over the related measures of the newest version (published cells at
    their true values, every relation as a row); add what it narrows to ``report``; say what it did."""
    from opendata.aggregate import FREQ_SUFFIX

    stated = descriptor["opendata:disclosure"]["rules"]
    relations = [Relation(**r) for r in stated.get("relations", [])]
    related = {m for r in relations for m in (r.smaller, r.larger)}
    linked, ordinary, keys = [], [], []
    for table, match, aligned in matched:
        people = population_keys(table.dimensions, aligned)
        dims = {d.name: hierarchy(d) for d in table.dimensions}
        for m in (m.name for m in table.measures if m.name in related):
            frame = aligned[[*dims, m, m + FREQ_SUFFIX]].assign(
                **{KEY: (m + "#" + people).to_numpy(), "_hide": match.frame[m].isna().to_numpy()}
            )
            linked.append(disclosure.LinkedTable(frame, dims, m, KEY, m + FREQ_SUFFIX, f"{table.spec.name}|{m}"))
        if not table.spec.name.endswith(AHEAD_SUFFIX):
            ordinary.append(table)
            keys.append(population_keys(table.dimensions, table.frame))
    terms, upper = joint_rows(ordinary, keys, relations)
    if not linked or not len(upper):
        return "not run: no relations between the published measures"
    rules = Rules(threshold=stated["threshold"], zeros=stated["zeros"], protection=stated.get("protection"))
    try:
        found = disclosure.audit_jointly(
            linked, disclosure.KeyedRelations(terms, upper), "_hide", rules, joint_blocks(ordinary), JOINT_MAX_LEFT
        )
    except disclosure.TooLarge as exc:
        return f"not run: {exc}"
    for f in found.failures:
        where = dict(f.cell)
        table, measure = where.pop("table").split("|")
        report.exposed.append(Exposure(descriptor["version"], table, measure, where, f.lower, f.upper, f.required))
    measures = sorted({t.value for t in linked})
    return (
        f"joint attacker over {', '.join(measures)} ({found.checked:,} primary cells of {descriptor['version']}): "
        f"{len(found.failures):,} narrowed"
    )
