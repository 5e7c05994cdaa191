"""Secondary suppression: hide enough further cells that no primary cell can be recovered.

Method "heuristic": (1) close every constraint holding exactly one suppressed cell, by suppressing
a cheap partner in it; (2) run the exact attacker audit and, for every primary cell whose interval
is too narrow, suppress one more partner in its constraints; repeat until the audit passes. Every
round suppresses at least one more cell and a fully suppressed table is safe (its totals are
unbounded), so this terminates. The result is safe, not minimal (see README for the MILP plan).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from disclosure.attacker import INF, LP, Intervals, exact_intervals
from disclosure.errors import AuditFailed
from disclosure.relations import Relations, stacked
from disclosure.suppression import CANNOT_PROTECT, Suppression
from disclosure.table import Grid

MAX_PARTNERS = 64  # partners one failing cell may gain in one repair round


def _choose(
    cand: np.ndarray, is_total: np.ndarray, values: np.ndarray, level: np.ndarray, headline: np.ndarray, need: float
) -> int:
    """Cheapest partner that adds enough room: one that covers ``need`` (the smallest such, a detail
    cell before the constraint's total, a headline cell last), else the largest. A cell that cannot
    cover the need (a published zero, say) is taken only when nothing can, or repair would loop
    adding useless cells."""
    v = values[cand]
    covers = (v >= need) & (v > 0)
    value_key = np.where(covers, v, -v)
    order = np.lexsort((cand, -level[cand], value_key, is_total, headline[cand], ~covers))
    return int(cand[order[0]])


class Heuristic:
    """Repair loop state. ``locked`` cells are never suppressed (must-publish cells, cells an earlier
    version published). ``insiders`` are primary cells with one contributor, who knows the value:
    every other primary must stay protected against an attacker who knows all of them. ``relations``
    (``G x <= h``, see ``disclosure.relations``) are known to the attacker: every audit uses them, and
    cells they link count as neighbours (components, pruning)."""

    def __init__(
        self,
        grid: Grid,
        values: np.ndarray,
        primary: np.ndarray,
        required: np.ndarray,
        prune: bool = True,
        locked: np.ndarray | None = None,
        insiders: np.ndarray | None = None,
        relations: Relations | None = None,
    ) -> None:
        self.grid = grid
        self.pruning = prune
        n = len(values)
        self.relations = relations
        if relations is not None:
            relations.check(np.asarray(values, dtype=np.float64))
        self.locked = np.zeros(n, dtype=bool) if locked is None else np.asarray(locked, dtype=bool)
        self.insiders = np.zeros(n, dtype=bool) if insiders is None else np.asarray(insiders, dtype=bool)
        # what single contributors must not narrow: other contributors' cells (a zero has none to protect)
        self.insider_required = np.where(self.insiders | (np.asarray(values) == 0), 0.0, required)
        self.a = grid.constraints
        self.a_abs = abs(self.a).tocsr()
        self.cell_rows = sp.csr_matrix(self.a_abs.T)  # cell -> rows
        # equations and relation rows: what links cells in the attacker's LP
        self.m, self.m_lo, self.m_hi = stacked(self.a, relations)
        self.m_abs = abs(self.m).tocsr()
        self.link_rows = sp.csr_matrix(self.m_abs.T)  # cell -> equation and relation rows
        self.row_parent = grid.row_parent
        self.values = values.astype(np.float64)
        self.level = grid.level
        self.headline = grid.headline
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
            before = int(suppressed.sum())
            for r in rows:
                cells = self._row_cells(int(r))
                hidden = cells[suppressed[cells]]
                if len(hidden) != 1:
                    continue
                s = int(hidden[0])
                cand = cells[~suppressed[cells] & ~self.locked[cells]]
                if len(cand) == 0:
                    continue  # the audit reports the cell if it needs protection
                need = max(self.required[s] - self.values[s], 1.0) if self.primary[s] else 1.0
                pick = _choose(cand, cand == self.row_parent[r], self.values, self.level, self.headline, need)
                suppressed[pick] = True
            if int(suppressed.sum()) == before:  # nothing (more) can be closed: locked rows are the audit's to report
                return

    def escalate(self, suppressed: np.ndarray, c: int) -> int:
        """Suppress the nearest published totals above ``c`` (in every dimension): a primary hemmed in
        by small hidden cells several equations away gains room only from a larger total. Headline
        cells (``Grid.headline``: national and first-level figures) are walked through, never taken:
        when only they are left, the caller's partner choice, which takes them last, decides. Each
        call that returns 0 leaves the repair to ``widen``, which adds a partner every round, so the
        loop still ends."""
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
                    if suppressed[p] or self.locked[p] or self.headline[p]:
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
                cand = cells[~suppressed[cells] & ~self.locked[cells]]
                cand_parts.append(cand)
                total_parts.append(cand == self.row_parent[r])
            cand = np.concatenate(cand_parts) if cand_parts else np.zeros(0, dtype=np.int64)
            is_total = np.concatenate(total_parts) if total_parts else np.zeros(0, dtype=bool)
            if len(cand) == 0:  # its own constraints are all hidden: look anywhere next to the pattern
                near = (self.a_abs @ suppressed.astype(np.float64)) > 0
                nearby = np.unique(self.a_abs[np.flatnonzero(near)].indices)
                cand = nearby[~suppressed[nearby] & ~self.locked[nearby]]
                if len(cand) == 0:
                    cand = np.flatnonzero(~suppressed & ~self.locked)
                is_total = np.zeros(len(cand), dtype=bool)
            # a cell that keeps failing gets more partners each round (1, 1, 1, 2, 4, ...): the rounds
            # stay few where many small cells must join before it has room
            for _ in range(min(2 ** max(self.failures[c] - 3, 0), MAX_PARTNERS)):
                if len(cand) == 0:
                    break
                pick = _choose(cand, is_total, self.values, self.level, self.headline, max(missing, 1.0))
                suppressed[pick] = True
                added += 1
                keep = cand != pick
                cand, is_total = cand[keep], is_total[keep]
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
            links = self.link_rows.indices[self.link_rows.indptr[s] : self.link_rows.indptr[s + 1]]
            near = np.unique(self.m_abs[links].indices)  # s's old component is the union of these cells' ones
            near = near[suppressed[near]]
            if len(near) == 0:
                continue
            if not self.audit(suppressed, focus=near, each_insider=False).ok.all():
                suppressed[s] = True

    def audit(
        self,
        suppressed: np.ndarray,
        only: np.ndarray | None = None,
        focus: np.ndarray | None = None,
        each_insider: bool = True,
    ) -> Intervals:
        """Outsider audit; with insiders, also each single contributor on its own (knowing its cell).

        The coalition of all single contributors is tried first: safe against it is safe against
        each. Cells it narrows are checked against each insider of their component separately, which
        is the attack that exists (contributors do not pool their figures); the narrowest interval
        counts (``each_insider=False`` stops at the coalition: stricter, and much cheaper). Insider
        cells themselves are audited against outsiders here (cubes also keep them safe from each other)."""
        rel = self.relations
        out = exact_intervals(self.a, self.values, suppressed, self.required, self.values, focus, only, rel)
        if not self.insiders.any():
            return out
        ins = exact_intervals(
            self.a, self.values, suppressed & ~self.insiders, self.insider_required, self.values, None, out.cells, rel
        )
        narrow = ins.cells[~ins.ok]
        if len(narrow) and each_insider:
            lower, upper = self._each_insider(suppressed, narrow, out)
            at = np.searchsorted(ins.cells, narrow)
            ins.lower[at], ins.upper[at] = lower, upper
        at = np.searchsorted(out.cells, ins.cells)
        narrower = (ins.upper - ins.lower) < (out.upper[at] - out.lower[at])
        at, pick = at[narrower], np.flatnonzero(narrower)
        out.lower[at], out.upper[at] = ins.lower[pick], ins.upper[pick]
        return out

    def _each_insider(self, suppressed: np.ndarray, cells: np.ndarray, out: Intervals) -> tuple[np.ndarray, np.ndarray]:
        """Per cell, the narrowest interval left by one insider of its component knowing its own cell
        (the outsider's interval when no insider shares the component). One LP per component, with
        each insider's cell fixed at its value in turn."""
        at = np.searchsorted(out.cells, cells)
        lower, upper = out.lower[at].copy(), out.upper[at].copy()
        published = np.where(suppressed, 0.0, self.values)
        for i, k in enumerate(cells.tolist()):
            members = self._component_cells(suppressed, k)
            known = members[self.insiders[members] & (members != k)]
            if len(known) == 0:
                continue
            rows = np.unique(self.link_rows[members].indices)
            sub = self.m[rows][:, members]
            lo = -(self.m[rows] @ published)
            hi = lo.copy()
            rel = rows >= self.a.shape[0]  # relation rows: at most their bound minus the published cells
            lo[rel] = -INF
            hi[rel] += self.m_hi[rows[rel]]
            truth = self.values[members]
            lp = LP(sub, lo, hi, np.zeros(len(members)), np.full(len(members), INF), truth)
            col = int(np.searchsorted(members, k))
            for s in np.searchsorted(members, known).tolist():
                lp.bound(s, truth[s], truth[s], truth)
                lo, hi = lp.interval(col, float(self.required[k]))
                lp.bound(s, 0.0, INF, truth)
                if hi - lo < upper[i] - lower[i]:
                    lower[i], upper[i] = lo, hi
        return lower, upper

    def _component_cells(self, suppressed: np.ndarray, cell: int) -> np.ndarray:
        """Suppressed cells linked to ``cell`` through equations and relation rows (sorted cell numbers)."""
        seen = np.zeros(len(suppressed), dtype=bool)
        seen[cell] = True
        frontier = np.array([cell])
        while len(frontier):
            rows = np.unique(self.link_rows[frontier].indices)
            nxt = np.unique(self.m_abs[rows].indices)
            nxt = nxt[suppressed[nxt] & ~seen[nxt]]
            seen[nxt] = True
            frontier = nxt
        return np.flatnonzero(seen)

    def recheck(self, suppressed: np.ndarray, res: Intervals) -> Intervals:
        """Audit again only the cells that failed: hiding more cells only widens intervals."""
        failing = ~res.ok
        again = self.audit(suppressed, only=res.cells[failing])
        where = np.flatnonzero(failing)[np.searchsorted(res.cells[failing], again.cells)]
        res.lower[where], res.upper[where], res.component[where] = again.lower, again.upper, again.component
        return res

    def run(self, start: np.ndarray | None = None, only: np.ndarray | None = None) -> Suppression:
        """Repair ``start`` (default: the primaries) until safe; ``only`` limits the audit to those cells
        (the others are proven safe already, and hiding more cells keeps them so)."""
        suppressed = self.primary | (False if start is None else np.asarray(start, dtype=bool))
        rounds = 0
        res: Intervals | None = None
        while True:
            rounds += 1
            self.close_singletons(suppressed)
            res = self.audit(suppressed, only=only) if res is None else self.recheck(suppressed, res)
            if res.ok.all():
                if self.pruning:
                    self.prune(suppressed)
                    res = self.audit(suppressed, only=only)
                return Suppression(suppressed, res, rounds)
            if self.widen(suppressed, res) == 0:
                where = self.grid.coords(int(res.cells[np.flatnonzero(~res.ok)[0]]))
                cell = ", ".join(f"{k}={v}" for k, v in where.items()) if isinstance(where, dict) else str(where)
                raise AuditFailed(f"{CANNOT_PROTECT}; e.g. the primary cell ({cell}) has no room left")


def heuristic(
    grid: Grid,
    values: np.ndarray,
    primary: np.ndarray,
    required: np.ndarray,
    prune: bool = True,
    locked: np.ndarray | None = None,
    insiders: np.ndarray | None = None,
    *,
    relations: Relations | None = None,
) -> Suppression:
    """Safe suppression pattern for ``primary`` cells (cell-ordered arrays); ``relations`` (``G x <= h``)
    are known to the attacker (``disclosure.relations``)."""
    return Heuristic(grid, values, primary, required, prune, locked, insiders, relations).run()
