"""Secondary suppression: hide enough further cells that no primary cell can be recovered.

Method "heuristic": (1) close every constraint holding exactly one suppressed cell, by suppressing
a cheap partner in it; (2) run the exact attacker audit and, for every primary cell whose interval
is too narrow, suppress one more partner in its constraints; repeat until the audit passes. Every
round suppresses at least one more cell and a fully suppressed table is safe (its totals are
unbounded), so this terminates. The result is safe, not minimal (see README for the MILP plan).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from disclosure.attacker import Intervals, exact_intervals
from disclosure.errors import AuditFailed
from disclosure.table import Grid


@dataclass
class Suppression:
    """Final pattern plus the exact audit that proved it."""

    suppressed: np.ndarray
    intervals: Intervals
    rounds: int


def _choose(cand: np.ndarray, is_total: np.ndarray, values: np.ndarray, level: np.ndarray, need: float) -> int:
    """Cheapest partner that adds enough room: one that covers ``need`` (the smallest such, a detail
    cell before the constraint's total), else the largest. A cell that cannot cover the need (a
    published zero, say) is taken only when nothing can, or repair would loop adding useless cells."""
    v = values[cand]
    covers = (v >= need) & (v > 0)
    value_key = np.where(covers, v, -v)
    order = np.lexsort((cand, -level[cand], value_key, is_total, ~covers))
    return int(cand[order[0]])


class Heuristic:
    def __init__(
        self, grid: Grid, values: np.ndarray, primary: np.ndarray, required: np.ndarray, prune: bool = True
    ) -> None:
        self.grid = grid
        self.pruning = prune
        self.a = grid.constraints
        self.a_abs = abs(self.a).tocsr()
        self.cell_rows = sp.csr_matrix(self.a_abs.T)  # cell -> rows
        self.row_parent = grid.row_parent
        self.values = values.astype(np.float64)
        self.level = grid.level
        self.primary = primary
        self.required = required
        self.failures: dict[int, int] = {}  # rounds each primary has failed the audit

    def _row_cells(self, r: int) -> np.ndarray:
        return self.a_abs.indices[self.a_abs.indptr[r] : self.a_abs.indptr[r + 1]]

    def close_singletons(self, suppressed: np.ndarray) -> None:
        """No constraint may hold exactly one suppressed cell (it would be its difference of published values)."""
        while True:
            counts = self.a_abs @ suppressed.astype(np.float64)
            rows = np.flatnonzero(counts == 1)
            if len(rows) == 0:
                return
            for r in rows:
                cells = self._row_cells(int(r))
                hidden = cells[suppressed[cells]]
                if len(hidden) != 1:
                    continue
                s = int(hidden[0])
                cand = cells[~suppressed[cells]]
                need = max(self.required[s] - self.values[s], 1.0) if self.primary[s] else 1.0
                pick = _choose(cand, cand == self.row_parent[r], self.values, self.level, need)
                suppressed[pick] = True

    def escalate(self, suppressed: np.ndarray, c: int) -> int:
        """Suppress the nearest published totals above ``c`` (in every dimension): a primary hemmed in
        by small hidden cells several equations away gains room only from a larger total. Walking up
        always ends, as a suppressed grand total leaves the table's totals unbounded."""
        frontier = [c]
        seen = {c}
        while frontier:
            added, upper = 0, []
            for cell in frontier:
                rows = self.cell_rows.indices[self.cell_rows.indptr[cell] : self.cell_rows.indptr[cell + 1]]
                for r in rows:
                    p = int(self.row_parent[r])
                    if p == cell or p in seen:
                        continue
                    seen.add(p)
                    if suppressed[p]:
                        upper.append(p)
                    else:
                        suppressed[p] = True
                        added += 1
            if added:
                return added
            frontier = sorted(upper)
        return 0

    def widen(self, suppressed: np.ndarray, res: Intervals) -> int:
        """For each failing primary, suppress one partner in its constraints; returns how many were added.

        A primary that still fails after two such rounds gets the totals above it suppressed instead."""
        added = 0
        for k in np.flatnonzero(~res.ok):
            c = int(res.cells[k])
            self.failures[c] = self.failures.get(c, 0) + 1
            if self.failures[c] > 2:
                gained = self.escalate(suppressed, c)
                if gained:
                    added += gained
                    continue
            missing = float(res.required[k] - (res.upper[k] - res.lower[k]))
            rows = self.cell_rows.indices[self.cell_rows.indptr[c] : self.cell_rows.indptr[c + 1]]
            cand_parts, total_parts = [], []
            for r in rows:
                cells = self._row_cells(int(r))
                cand = cells[~suppressed[cells]]
                cand_parts.append(cand)
                total_parts.append(cand == self.row_parent[r])
            cand = np.concatenate(cand_parts) if cand_parts else np.zeros(0, dtype=np.int64)
            is_total = np.concatenate(total_parts) if total_parts else np.zeros(0, dtype=bool)
            if len(cand) == 0:  # its own constraints are all hidden: look anywhere next to the pattern
                near = (self.a_abs @ suppressed.astype(np.float64)) > 0
                nearby = np.unique(self.a_abs[np.flatnonzero(near)].indices)
                cand = nearby[~suppressed[nearby]]
                if len(cand) == 0:
                    cand = np.flatnonzero(~suppressed)
                is_total = np.zeros(len(cand), dtype=bool)
            if len(cand) == 0:
                continue
            suppressed[_choose(cand, is_total, self.values, self.level, max(missing, 1.0))] = True
            added += 1
        return added

    def prune(self, suppressed: np.ndarray) -> None:
        """Give back secondary cells the pattern does not need, most informative (largest) first.

        Each release is kept only if no equation is left with a single hidden cell and the exact
        attacker still fails on every primary of the affected components.
        """
        secondary = np.flatnonzero(suppressed & ~self.primary)
        order = np.lexsort((secondary, self.level[secondary], -self.values[secondary]))
        for s in secondary[order]:
            suppressed[s] = False
            rows = self.cell_rows.indices[self.cell_rows.indptr[s] : self.cell_rows.indptr[s + 1]]
            counts = self.a_abs[rows] @ suppressed.astype(np.float64)
            if (counts == 1).any():
                suppressed[s] = True
                continue
            near = np.unique(self.a_abs[rows].indices)
            near = near[suppressed[near]]
            if len(near) == 0:
                continue
            res = exact_intervals(self.a, self.values, suppressed, self.required, truth=self.values, focus=near)
            if not res.ok.all():
                suppressed[s] = True

    def recheck(self, suppressed: np.ndarray, res: Intervals) -> Intervals:
        """Audit again only the cells that failed: hiding more cells only widens intervals."""
        failing = ~res.ok
        again = exact_intervals(
            self.a, self.values, suppressed, self.required, truth=self.values, only=res.cells[failing]
        )
        where = np.flatnonzero(failing)[np.searchsorted(res.cells[failing], again.cells)]
        res.lower[where], res.upper[where], res.component[where] = again.lower, again.upper, again.component
        return res

    def run(self) -> Suppression:
        suppressed = self.primary.copy()
        rounds = 0
        res: Intervals | None = None
        while True:
            rounds += 1
            self.close_singletons(suppressed)
            if res is None:
                res = exact_intervals(self.a, self.values, suppressed, self.required, truth=self.values)
            else:
                res = self.recheck(suppressed, res)
            if res.ok.all():
                if self.pruning:
                    self.prune(suppressed)
                    res = exact_intervals(self.a, self.values, suppressed, self.required, truth=self.values)
                return Suppression(suppressed, res, rounds)
            if self.widen(suppressed, res) == 0:
                raise AuditFailed("secondary suppression cannot protect the table: every cell is already suppressed")


def heuristic(
    grid: Grid, values: np.ndarray, primary: np.ndarray, required: np.ndarray, prune: bool = True
) -> Suppression:
    """Safe suppression pattern for ``primary`` cells (cell-ordered arrays)."""
    return Heuristic(grid, values, primary, required, prune).run()
