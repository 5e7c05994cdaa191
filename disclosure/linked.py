"""Linked tables: several tables that share cells are protected as one system.

Two published tables often hold the same cell (month × CPA margins appear in a month × provider
table and in a month × CPA × payment group table). Protecting each table alone is unsafe: a cell
hidden in one can be read off the other, and constraints of both tables together can narrow a
cell that each table alone protects. So every cell gets one variable in a union system, keyed by
a caller-supplied key column (same key, same population); the additivity constraints of all
tables act on it together; secondary suppression and the exact attacker audit run on that union.
A shared cell therefore has one status everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from disclosure.audit import report_from
from disclosure.errors import AuditFailed, DisclosureError
from disclosure.hierarchy import Hierarchy
from disclosure.intruders import IntruderReport, Intruders, intruder_intervals, protect_against
from disclosure.primary import insider_mask, primary_mask, required_widths
from disclosure.protect import PROOFS, ProtectionResult, secondary_pattern
from disclosure.relations import Relations
from disclosure.rounding import round_conventional
from disclosure.rules import Rules
from disclosure.table import Grid, integer_column


@dataclass
class LinkedTable:
    """One table of a linked set. Rows with equal ``key`` values in different tables are one cell.

    ``published`` and ``hidden`` name optional boolean columns for cells whose status is already
    fixed, e.g. by an earlier version: published cells are known to everyone, so they are never
    suppressed (a cell published before stays published); hidden cells stay suppressed.
    ``held`` names cells that are not primary but are suppressed and held to the protection width
    as if they were: a reader who cannot tell primaries from secondaries holds every hidden cell to
    it, so a secondary such a reader narrows is protected like a primary (status stays secondary).
    """

    frame: pd.DataFrame
    dims: Mapping[str, Hierarchy]
    value: str
    key: str
    frequency: str | None = None
    name: str = ""
    published: str | None = None
    hidden: str | None = None
    held: str | None = None


@dataclass(frozen=True)
class KeyedRelations:
    """Relations between linked cells named by their keys: ``sum(coef * x[key]) <= upper[row]``.

    ``terms`` has columns ``row``, ``key`` (as in ``LinkedTable.key``) and ``coef``; see
    ``disclosure.relations`` for what the engine does with them.
    """

    terms: pd.DataFrame
    upper: np.ndarray

    def over(self, keys: pd.Index) -> Relations:
        key = self.terms["key"]
        if isinstance(key.dtype, pd.CategoricalDtype):  # each distinct key looked up once
            col = keys.get_indexer(key.cat.categories.astype(str))[key.cat.codes.to_numpy()]
        else:
            col = keys.get_indexer(key.astype(str))
        if (col < 0).any():
            raise DisclosureError(
                f"a relation names cell {str(key.iloc[int(np.argmax(col < 0))])!r}, which no table holds"
            )
        row = self.terms["row"].to_numpy(dtype=np.int64)
        matrix = sp.csr_matrix(
            (self.terms["coef"].to_numpy(dtype=np.float64), (row, col)), shape=(len(self.upper), len(keys))
        )
        return Relations(matrix, self.upper)


def _intruders(keys: pd.Index, units_of: Callable[[str], Iterable[str]]) -> Intruders:
    """Every unit that knows some linked cell, with the cells it knows (``units_of(key)``)."""
    known: dict[str, list[int]] = {}
    for cell, key in enumerate(keys):
        for unit in units_of(key):
            known.setdefault(unit, []).append(cell)
    names = sorted(known)
    return Intruders.from_sets(names, [known[u] for u in names], len(keys))


@dataclass
class UnionSystem:
    """Cells of all tables merged by key, with every table's constraints over the merged cells.

    Offers what secondary suppression and the audit need of a grid: ``constraints``,
    ``row_parent``, ``level``, ``headline`` and ``coords``.
    """

    grids: list[Grid]
    names: list[str]
    union_of: list[np.ndarray]  # per table: union cell of each grid cell
    size: int
    keys: pd.Index  # the key of each union cell

    @cached_property
    def _built(self) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        mats, parents = [], []
        level = np.full(self.size, -1, dtype=np.int64)
        home_table = np.full(self.size, -1, dtype=np.int64)
        home_cell = np.full(self.size, -1, dtype=np.int64)
        for t, (grid, umap) in enumerate(zip(self.grids, self.union_of, strict=True)):
            a = grid.constraints.tocoo()
            mats.append(sp.csr_matrix((a.data, (a.row, umap[a.col])), shape=(a.shape[0], self.size)))
            parents.append(umap[grid.row_parent])
            new = level[umap] < 0
            level[umap[new]] = grid.level[new]
            home_table[umap[new]] = t
            home_cell[umap[new]] = np.flatnonzero(new)
        matrix = sp.vstack(mats, format="csr") if mats else sp.csr_matrix((0, self.size))
        matrix.sort_indices()
        return matrix, np.concatenate(parents), level, home_table, home_cell

    @property
    def constraints(self) -> sp.csr_matrix:
        return self._built[0]

    @property
    def row_parent(self) -> np.ndarray:
        return self._built[1]

    @property
    def level(self) -> np.ndarray:
        return self._built[2]

    @cached_property
    def headline(self) -> np.ndarray:
        """A headline cell of any of the tables (``Grid.headline``)."""
        out = np.zeros(self.size, dtype=bool)
        for grid, umap in zip(self.grids, self.union_of, strict=True):
            out[umap] |= grid.headline
        return out

    def coords(self, cell: int) -> dict[str, str]:
        t = int(self._built[3][cell])
        where = self.grids[t].coords(int(self._built[4][cell]))
        return {"table": self.names[t], **where} if self.names[t] else where


def _union(tables: Sequence[LinkedTable]) -> tuple[UnionSystem, list[np.ndarray], np.ndarray, np.ndarray]:
    grids, cells_of, keys = [], [], []
    for t in tables:
        grid = Grid.of(t.dims)
        cells = grid.cell_index(t.frame)
        if t.key not in t.frame.columns:
            raise DisclosureError(f"table {t.name or '?'} lacks its key column {t.key!r}")
        key = np.empty(grid.size, dtype=object)
        key[cells] = t.frame[t.key].astype(str).to_numpy()
        grids.append(grid)
        cells_of.append(cells)
        keys.append(key)
    codes, uniques = pd.factorize(np.concatenate(keys), sort=False)
    bounds = np.cumsum([0] + [g.size for g in grids])
    union_of = [codes[bounds[i] : bounds[i + 1]] for i in range(len(grids))]
    for i, (g, umap) in enumerate(zip(grids, union_of, strict=True)):
        if len(np.unique(umap)) != g.size:
            raise DisclosureError(f"table {tables[i].name or i}: key column {tables[i].key!r} repeats within the table")
    system = UnionSystem(grids, [t.name for t in tables], union_of, len(uniques), pd.Index(uniques))

    def merged(column_of: list[np.ndarray], what: str) -> np.ndarray:
        out = np.full(system.size, -1, dtype=np.int64)
        for i, (umap, col) in enumerate(zip(union_of, column_of, strict=True)):
            seen = out[umap] >= 0
            clash = seen & (out[umap] != col)
            if clash.any():
                c = int(np.flatnonzero(clash)[0])
                raise DisclosureError(
                    f"linked cell {uniques[umap[c]]!r} has {what} {col[c]} in table {tables[i].name or i} "
                    f"but {out[umap[c]]} elsewhere; linked tables must agree on shared cells"
                )
            out[umap] = col
        return out

    values, freqs = [], []
    for t, grid, cells in zip(tables, grids, cells_of, strict=True):
        v = integer_column(t.frame, t.value, cells, grid.size)
        grid.check_additive(v, what=f"column {t.value!r} of table {t.name or '?'}")
        values.append(v)
        freqs.append(v if t.frequency is None else integer_column(t.frame, t.frequency, cells, grid.size))
    return system, cells_of, merged(values, "value"), merged(freqs, "frequency")


def _fixed(tables: Sequence[LinkedTable], system: UnionSystem, cells_of: list[np.ndarray], column: str) -> np.ndarray:
    """Union mask of the cells one of the tables marks in its ``published``, ``hidden`` or ``held`` column."""
    out = np.zeros(system.size, dtype=bool)
    for t, umap, cells in zip(tables, system.union_of, cells_of, strict=True):
        name = getattr(t, column)
        if name is not None:
            out[umap[cells]] |= t.frame[name].fillna(False).astype(bool).to_numpy()
    return out


def protect_linked(
    tables: Sequence[LinkedTable],
    rules: Rules | None = None,
    method: str = "auto",
    prune: bool | None = None,
    relations: KeyedRelations | None = None,
    intruders: Callable[[str], Iterable[str]] | None = None,
    spare_headlines: bool = False,
) -> list[ProtectionResult]:
    """Protect tables that share cells together; one result per table, in the order given.

    Every result carries the same audit report: the exact-values attacker over the union of all
    tables' constraints (and ``relations``, inequalities between cells the attacker also knows).
    ``intruders`` maps a cell key to the units that know that cell exactly (e.g. the subcontractor
    whose row it is): every primary cell is then also protected against each unit alone, with all
    its cells known (``disclosure.intruders``). The units are taken as contributors who know those
    cells because the records in them are theirs, so each also knows every cell made of its own
    records only (``Intruders.owning``). ``spare_headlines``: see ``secondary_pattern``.
    Raises AuditFailed rather than return an unsafe pattern.
    """
    rules = rules or Rules()
    if not tables:
        return []
    system, cells_of, values, freq = _union(tables)
    primary = primary_mask(freq, rules)
    locked, hidden, held = (_fixed(tables, system, cells_of, column) for column in ("published", "hidden", "held"))
    required = required_widths(primary | held, rules)
    insiders = insider_mask(freq, primary, rules)
    if (locked & held).any():
        cell = system.coords(int(np.flatnonzero(locked & held)[0]))
        raise DisclosureError(f"cell {cell} is to be held to the protection width but was published before")
    if (locked & hidden).any():
        raise DisclosureError(
            f"linked cell {system.coords(int(np.flatnonzero(locked & hidden)[0]))} is both published and hidden"
        )
    if (locked & primary).any():
        cell = system.coords(int(np.flatnonzero(locked & primary)[0]))
        raise DisclosureError(f"cell {cell} was published but is now a primary cell: it cannot be protected any more")
    bounds = relations.over(system.keys) if relations is not None and len(relations.upper) else None
    if bounds is not None:
        bounds.check(values)
    # hidden cells start suppressed (passed as primaries) but need no protection of their own; held
    # cells start suppressed and need the width (``required``)
    pattern = secondary_pattern(
        system,
        values,
        primary | hidden | held,
        required,
        method,
        prune,
        locked=locked,
        insiders=insiders,
        relations=bounds,
        spare_headlines=spare_headlines,
    )
    method_text = PROOFS[pattern.proof] + ", over the union of linked tables"
    report = report_from(system, pattern.intervals, method_text, values.astype(np.float64))  # type: ignore[arg-type]
    report.raise_if_failed()
    against = None
    facts = pattern.facts()
    if intruders is not None:
        units = _intruders(system.keys, intruders).owning(system, values)
        suppressed, against = protect_against(
            system,
            values,
            primary,
            required,
            pattern.suppressed,
            units,
            locked=locked,
            moves=pattern.moves,
            relations=bounds,
        )
        if not against.ok:
            raise AuditFailed(f"{against.failed_pairs} primary cell(s) exposed to an intruder unit")
        if (suppressed != pattern.suppressed).any():
            facts = {"optimal": False, "note": "cells added against intruder units after the pattern was found"}
        pattern.suppressed = suppressed
    suppressed = pattern.suppressed
    rounded = round_conventional(values, rules.rounding_base)
    status = np.where(primary, "primary", np.where(suppressed, "secondary", "published"))
    results = []
    for t, umap, cells in zip(tables, system.union_of, cells_of, strict=True):
        u = umap[cells]  # union cell of every frame row
        out = t.frame.copy()
        out["status"] = status[u]
        out["published"] = pd.array(np.where(suppressed[u], 0, rounded[u]), dtype="Int64")
        out.loc[suppressed[u], "published"] = pd.NA
        mine = umap
        counts = {
            "cells": len(mine),
            "primary": int(primary[mine].sum()),
            "secondary": int((suppressed & ~primary)[mine].sum()),
            "rounded": int((~suppressed & (rounded != values))[mine].sum()),
            "insider_unverified": int(np.isin(mine, pattern.insider_unverified).sum()),
        }
        results.append(ProtectionResult(out, report, counts, against.describe() if against else None, facts))
    return results


def audit_linked_intruders(
    tables: Sequence[LinkedTable],
    intruders: Callable[[str], Iterable[str]],
    rules: Rules | None = None,
    relations: KeyedRelations | None = None,
) -> tuple[IntruderReport, list[dict[str, str]]]:
    """The intruder check of ``protect_linked`` on a pattern already chosen (each table's ``hidden``
    column: the cells it suppresses), for an audit after the release: every primary cell against
    the outsider and each unit ``intruders`` names (knowing its cells, and those made of its own
    records only), by ``intruders.intruder_intervals``, with the ``relations`` the attacker also
    knows (as ``protect_linked`` takes them). Returns the report and where each failure is
    (``UnionSystem.coords``)."""
    rules = rules or Rules()
    if not tables:
        raise DisclosureError("no tables to audit")
    system, cells_of, values, freq = _union(tables)
    required = required_widths(primary_mask(freq, rules), rules)
    suppressed = _fixed(tables, system, cells_of, "hidden")
    bounds = relations.over(system.keys) if relations is not None and len(relations.upper) else None
    units = _intruders(system.keys, intruders).owning(system, values)
    report = intruder_intervals(system, values, suppressed, required, units, relations=bounds)
    return report, [system.coords(f.cell) for f in report.failures]
