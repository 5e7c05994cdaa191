"""The full cross-product grid of a hierarchical table and its additivity constraints.

Cells are numbered in C order over the hierarchies' ``codes`` (dimension order as given), so every
array in the engine is indexed by that cell number, independent of the caller's row order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

import numpy as np
import pandas as pd
import scipy.sparse as sp

from disclosure.errors import DisclosureError
from disclosure.hierarchy import Hierarchy


@dataclass(frozen=True)
class Grid:
    """Cells and constraints of a table with dimensions ``names`` (frame columns) and ``hierarchies``."""

    names: tuple[str, ...]
    hierarchies: tuple[Hierarchy, ...]
    shape: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        if not self.names:
            raise DisclosureError("a table needs at least one dimension")
        if len(set(self.names)) != len(self.names):
            raise DisclosureError(f"dimension names must be distinct, got {list(self.names)}")
        for name, h in zip(self.names, self.hierarchies, strict=True):
            if not isinstance(h, Hierarchy):
                raise DisclosureError(f"dimension {name!r}: expected a Hierarchy, got {type(h).__name__}")
        object.__setattr__(self, "shape", tuple(len(h.codes) for h in self.hierarchies))

    @classmethod
    def of(cls, dims: Mapping[str, Hierarchy]) -> Grid:
        return cls(tuple(dims), tuple(dims.values()))

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @cached_property
    def _positions(self) -> tuple[np.ndarray, ...]:
        """Per dimension, the code position of every cell."""
        return tuple(np.unravel_index(np.arange(self.size), self.shape))

    @cached_property
    def level(self) -> np.ndarray:
        """Sum of code depths per cell: higher means more detailed, lower means more of a total."""
        out = np.zeros(self.size, dtype=np.int64)
        for h, pos in zip(self.hierarchies, self._positions, strict=True):
            out += np.array([h.depth(c) for c in h.codes], dtype=np.int64)[pos]
        return out

    @cached_property
    def headline(self) -> np.ndarray:
        """The figures a release leads with: the grand total and its first-level breakdowns (every
        code a total but one, a child of its total: national by CPA, by payment group), each by
        period too (``Hierarchy.period``: national by month, a CPA by month), periods down to
        ``Hierarchy.headline_depth`` (national by quarter and by month). Secondary suppression
        hides them only when nothing else will do."""
        away = np.zeros(self.size, dtype=np.int64)  # dimensions other than time not at their total
        headline_deep = np.ones(self.size, dtype=bool)
        for h, pos in zip(self.hierarchies, self._positions, strict=True):
            depth = np.array([h.depth(c) for c in h.codes], dtype=np.int64)[pos]
            if not h.period:
                away += depth > 0
            headline_deep &= depth <= h.headline_depth
        return (away <= 1) & headline_deep

    def codes_frame(self) -> pd.DataFrame:
        """One row per cell, in cell order, with the dimension codes."""
        return pd.DataFrame(
            {
                n: np.array(h.codes, dtype=object)[pos]
                for n, h, pos in zip(self.names, self.hierarchies, self._positions, strict=True)
            }
        )

    def coords(self, cell: int) -> dict[str, str]:
        idx = np.unravel_index(int(cell), self.shape)
        return {n: h.codes[int(i)] for n, h, i in zip(self.names, self.hierarchies, idx, strict=True)}

    @cached_property
    def _constraints(self) -> tuple[sp.csr_matrix, np.ndarray]:
        idx = np.arange(self.size).reshape(self.shape)
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        data: list[np.ndarray] = []
        parents: list[np.ndarray] = []
        offset = 0
        for axis, h in enumerate(self.hierarchies):
            pos = {c: i for i, c in enumerate(h.codes)}
            for p in h.codes:
                kids = h.children(p)
                if not kids:
                    continue
                par = np.take(idx, pos[p], axis=axis).ravel()
                ch = np.moveaxis(np.take(idx, [pos[c] for c in kids], axis=axis), axis, -1).reshape(-1, len(kids))
                r = np.arange(offset, offset + len(par))
                rows += [r, np.repeat(r, len(kids))]
                cols += [par, ch.ravel()]
                data += [np.ones(len(par)), -np.ones(ch.size)]
                parents.append(par)
                offset += len(par)
        if offset == 0:
            return sp.csr_matrix((0, self.size)), np.zeros(0, dtype=np.int64)
        a = sp.csr_matrix(
            (np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))), shape=(offset, self.size)
        )
        a.sort_indices()
        return a, np.concatenate(parents)

    @property
    def constraints(self) -> sp.csr_matrix:
        """``A`` with ``A @ cells == 0``: one row per (dimension, non-leaf code, codes of the other dimensions)."""
        return self._constraints[0]

    @property
    def row_parent(self) -> np.ndarray:
        """The total (parent) cell of every constraint row."""
        return self._constraints[1]

    def cell_index(self, frame: pd.DataFrame) -> np.ndarray:
        """Cell number of every frame row; refuses unknown codes, duplicates and an incomplete grid."""
        missing_cols = [n for n in self.names if n not in frame.columns]
        if missing_cols:
            raise DisclosureError(f"frame lacks dimension column(s) {missing_cols}")
        positions = []
        for n, h in zip(self.names, self.hierarchies, strict=True):
            col = frame[n]
            if col.isna().any():
                raise DisclosureError(f"dimension column {n!r} has missing codes")
            got = pd.Index(h.codes).get_indexer(col.astype(str))
            if (got < 0).any():
                bad = sorted(set(col.astype(str)[got < 0]))[:5]
                raise DisclosureError(f"dimension column {n!r} has code(s) not in its hierarchy: {bad}")
            positions.append(got)
        cells = np.ravel_multi_index(tuple(positions), self.shape) if positions else np.zeros(0, dtype=np.int64)
        counts = np.bincount(cells, minlength=self.size)
        if (counts > 1).any():
            first = int(np.flatnonzero(counts > 1)[0])
            raise DisclosureError(f"duplicate cell {self.coords(first)} ({int((counts > 1).sum())} duplicated)")
        if (counts == 0).any():
            first = int(np.flatnonzero(counts == 0)[0])
            raise DisclosureError(
                f"incomplete grid: {int((counts == 0).sum())} of {self.size} cells missing, e.g. {self.coords(first)}"
            )
        return np.asarray(cells, dtype=np.int64)

    def with_ancestors(self, cells: np.ndarray) -> np.ndarray:
        """``cells`` (a mask over cells) and every cell that aggregates one of them, in any dimension."""
        out = np.asarray(cells, dtype=bool).copy()
        ups = []
        for h in self.hierarchies:
            pos = {c: i for i, c in enumerate(h.codes)}
            ups.append([-1 if h.parent(c) is None else pos[h.parent(c)] for c in h.codes])
        todo = [tuple(int(x) for x in np.unravel_index(c, self.shape)) for c in np.flatnonzero(out)]
        while todo:
            coords = todo.pop()
            for axis, up in enumerate(ups):
                if up[coords[axis]] >= 0:
                    above = (*coords[:axis], up[coords[axis]], *coords[axis + 1 :])
                    cell = int(np.ravel_multi_index(above, self.shape))
                    if not out[cell]:
                        out[cell] = True
                        todo.append(above)
        return out

    def check_additive(self, values: np.ndarray, what: str = "value") -> None:
        """Every parent equals the sum of its children, in every dimension."""
        if self.constraints.shape[0] == 0:
            return
        gap = self.constraints @ np.asarray(values, dtype=np.float64)
        bad = np.flatnonzero(np.abs(gap) > 1e-9)
        if len(bad):
            r = int(bad[0])
            cell = int(self.row_parent[r])
            raise DisclosureError(
                f"{what} is not additive: cell {self.coords(cell)} = {values[cell]:g} differs from the sum of its "
                f"children by {gap[r]:g} ({len(bad)} constraint(s) violated)"
            )

    def leaf_cells(self, frame: pd.DataFrame, what: str) -> np.ndarray:
        """Cell number of every row of ``frame`` whose dimension columns hold leaf codes (base cells, records)."""
        positions = []
        for n, h in zip(self.names, self.hierarchies, strict=True):
            if n not in frame.columns:
                raise DisclosureError(f"{what} lack dimension column {n!r}")
            col = frame[n]
            if col.isna().any():
                raise DisclosureError(f"dimension column {n!r} has missing codes")
            got = pd.Index(h.codes).get_indexer(col.astype(str))
            if (got < 0).any():
                bad = sorted(set(col.astype(str)[got < 0]))[:5]
                raise DisclosureError(f"dimension column {n!r} has code(s) not in its hierarchy: {bad}")
            leaf = np.array([h.is_leaf(c) for c in h.codes])
            if not leaf[got].all():
                bad = sorted(set(col.astype(str)[~leaf[got]]))[:5]
                raise DisclosureError(f"{what} must be leaves; {n!r} has non-leaf code(s) {bad}")
            positions.append(got)
        if not len(frame):
            return np.zeros(0, dtype=np.int64)
        return np.asarray(np.ravel_multi_index(tuple(positions), self.shape), dtype=np.int64)


class GridLike(Protocol):
    """What suppression needs of a table: a ``Grid``, or linked tables (``linked.UnionSystem``)."""

    @property
    def constraints(self) -> sp.csr_matrix: ...

    @property
    def row_parent(self) -> np.ndarray: ...

    @property
    def level(self) -> np.ndarray: ...

    @property
    def headline(self) -> np.ndarray: ...


def integer_column(frame: pd.DataFrame, column: str, cells: np.ndarray, size: int) -> np.ndarray:
    """A non-negative integer column, rearranged into cell order."""
    if column not in frame.columns:
        raise DisclosureError(f"frame lacks column {column!r}")
    col = frame[column]
    if col.isna().any():
        raise DisclosureError(f"column {column!r} has missing values")
    try:
        raw = np.asarray(col.to_numpy(), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DisclosureError(f"column {column!r} must be numeric") from exc
    if not np.all(np.isfinite(raw)) or not np.all(raw == np.round(raw)):
        raise DisclosureError(f"column {column!r} must hold integers")
    if (raw < 0).any():
        raise DisclosureError(f"column {column!r} has negative values")
    out = np.zeros(size, dtype=np.int64)
    out[cells] = raw.astype(np.int64)
    return out


def add_totals(base_cells: pd.DataFrame, dims: Mapping[str, Hierarchy], value_columns: Sequence[str]) -> pd.DataFrame:
    """Full grid with every total and subtotal, summed from leaf cells; absent leaf cells count as 0."""
    grid = Grid.of(dims)
    value_columns = list(value_columns)
    cells = grid.leaf_cells(base_cells, "base cells")
    if len(np.unique(cells)) != len(cells):
        raise DisclosureError("base cells contain duplicate leaf combinations")
    arr = np.zeros((grid.size, len(value_columns)), dtype=np.int64)
    for j, c in enumerate(value_columns):
        arr[:, j] = integer_column(base_cells, c, cells, grid.size)
    cube = arr.reshape((*grid.shape, len(value_columns)))
    for axis, h in enumerate(grid.hierarchies):
        view = np.moveaxis(cube, axis, 0)
        pos = {c: i for i, c in enumerate(h.codes)}
        for p in reversed(h.codes):  # reversed pre-order: children are complete before their parent
            kids = h.children(p)
            if kids:
                view[pos[p]] = view[[pos[k] for k in kids]].sum(axis=0)
    out = grid.codes_frame()
    for j, c in enumerate(value_columns):
        out[c] = arr[:, j]
    return out
