"""The attacker: linear programs that bound a suppressed cell given what is published.

For a cell ``j`` the attacker solves ``min x_j`` and ``max x_j`` subject to the additivity
constraints, what is published (exact values or rounding intervals) and ``x >= 0``. Because counts
are integers, the LP bounds are tightened to ``[ceil(min), floor(max)]``; the interval is safe when
its width reaches the required protection. Every LP solution is a feasible table, so the range of
values seen across solutions is a proven inner bound: once it is wide enough, no further LP is
needed for that cell (this is what keeps the audit fast).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import highspy
import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from disclosure.errors import DisclosureError, Inconsistent, SolverFailed
from disclosure.relations import Relations, stacked, tightest

INF = float("inf")
INCONSISTENT = "published values are inconsistent with the table's additivity (LP infeasible)"
TOL = 1e-6
# Deterministic retries when HiGHS ends with a status other than optimal, infeasible or unbounded:
# the same LP from scratch without presolve, then with the dual simplex. Each changes how the LP is
# solved, never what it is, so any answer they give is the LP's answer.
RETRIES = (("presolve", "off"), ("simplex_strategy", 1))


def new_highs() -> highspy.Highs:
    """A silent HiGHS instance: its constructor prints a banner to fd 1, which would corrupt a
    caller's stdout (JSON output, CSV on a pipe), so fd 1 is pointed at /dev/null meanwhile.

    The ``threads`` option is left alone: HiGHS sizes one process-wide scheduler on first use and
    refuses to run (status kError) any later instance that asks for a different size."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 1)
            solver = highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    solver.setOptionValue("output_flag", False)
    return solver


@dataclass
class Intervals:
    """Outcome for the checked cells (``required > 0``), all arrays aligned with ``cells``.

    ``lower``/``upper`` are the exact attacker bounds for failing cells; for passing cells they may
    be an inner bound that already proves the width (``upper`` is ``inf`` when unbounded).
    """

    cells: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    required: np.ndarray
    component: np.ndarray  # per checked cell, a label of its connected component (-1 if published)

    @property
    def ok(self) -> np.ndarray:
        return self.upper - self.lower >= self.required - TOL


def _int_lo(x: float) -> float:
    return float(np.ceil(x - TOL))


def _int_hi(x: float) -> float:
    return INF if x == INF else float(np.floor(x + TOL))


class LP:
    """One HiGHS model ``row_lo <= M x <= row_hi, col_lo <= x <= col_hi``, re-solved per objective."""

    def __init__(
        self,
        matrix: sp.spmatrix,
        row_lo: np.ndarray,
        row_hi: np.ndarray,
        col_lo: np.ndarray,
        col_hi: np.ndarray,
        seen: np.ndarray | None = None,
    ) -> None:
        m = sp.csc_matrix(matrix)
        m.sort_indices()
        self.n = m.shape[1]
        inf = highspy.kHighsInf
        lp = highspy.HighsLp()
        lp.num_col_ = self.n
        lp.num_row_ = m.shape[0]
        lp.col_cost_ = np.zeros(self.n)
        lp.col_lower_ = np.asarray(col_lo, dtype=np.float64)
        lp.col_upper_ = np.where(np.isinf(col_hi), inf, np.asarray(col_hi, dtype=np.float64))
        lp.row_lower_ = np.asarray(row_lo, dtype=np.float64)
        lp.row_upper_ = np.asarray(row_hi, dtype=np.float64)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = m.indptr.astype(np.int32)
        lp.a_matrix_.index_ = m.indices.astype(np.int32)
        lp.a_matrix_.value_ = m.data.astype(np.float64)
        self.h = new_highs()
        self.h.setOptionValue("output_flag", False)
        self.h.setOptionValue("random_seed", 0)
        self.h.setOptionValue("simplex_strategy", 4)  # primal: only the objective changes between solves
        self.h.passModel(lp)
        self.lo_seen = np.full(self.n, INF) if seen is None else np.asarray(seen, dtype=np.float64).copy()
        self.hi_seen = np.full(self.n, -INF) if seen is None else np.asarray(seen, dtype=np.float64).copy()
        self._cost_col: int | None = None
        self._interior = False  # batched solves by the interior point method (``push``)
        self._feasible: bool | None = None
        self.x: np.ndarray | None = None  # the last optimal solution: a feasible table

    def _solve(self, col: int | None, sign: float) -> float | None:
        """Minimise ``sign * x_col`` (0 objective if ``col`` is None); None when unbounded."""
        if self._cost_col is not None:
            self.h.changeColCost(self._cost_col, 0.0)
        if col is not None:
            self.h.changeColCost(col, sign)
        self._cost_col = col
        status = self.run()
        S = highspy.HighsModelStatus
        if status == S.kInfeasible and col is not None:
            # only the objective changed since the system was feasible (or never checked): a warm
            # start that ends "infeasible" is a numerical slip until a fresh solve confirms it
            status = self.run(fresh=True)
        if status == S.kOptimal:
            assert self.x is not None
            np.minimum(self.lo_seen, self.x, out=self.lo_seen)
            np.maximum(self.hi_seen, self.x, out=self.hi_seen)
            return float(self.h.getInfo().objective_function_value)
        if status == S.kInfeasible:
            if col is not None and self.feasible():  # the system has a solution: the solver slipped
                raise SolverFailed("LP solver reported a feasible system infeasible (also from scratch)", col)
            raise Inconsistent(INCONSISTENT)
        if status in (S.kUnbounded, S.kUnboundedOrInfeasible) and col is not None and self.feasible():
            return None
        raise SolverFailed(
            f"LP solver failed: {self.h.modelStatusToString(status)} (also from scratch, without presolve and "
            "with the dual simplex)",
            col,
        )

    def run(self, fresh: bool = False) -> highspy.HighsModelStatus:
        """Solve; a status other than optimal, infeasible or unbounded (a numerical failure,
        "Unknown") is retried on the same LP solved another way (``RETRIES``). ``fresh``: start
        from scratch and retry "infeasible" too. Keeps the solution in ``x`` when optimal."""
        if fresh:
            self.h.clearSolver()
        self.h.run()
        status = self.h.getModelStatus()
        S = highspy.HighsModelStatus
        settled = (S.kOptimal, S.kInfeasible, S.kUnbounded, S.kUnboundedOrInfeasible, S.kIterationLimit)
        if fresh:
            settled = tuple(x for x in settled if x != S.kInfeasible)
        for option, value in RETRIES:  # (an iteration limit is only reached where a caller set one)
            if status in settled:
                break
            self.h.clearSolver()
            self.h.setOptionValue(option, value)
            self.h.run()
            status = self.h.getModelStatus()
        if status == S.kOptimal:
            self.x = np.asarray(self.h.getSolution().col_value, dtype=np.float64)
        return status

    def push(self, cols: np.ndarray, signs: np.ndarray, caps: np.ndarray) -> bool:
        """Minimise ``sum(signs * x[cols])`` with ``x[cols] <= caps`` for a while: one solve that drives
        many cells to the ends of their ranges at once. Any point found is feasible for the LP
        (the caps only shrink it), so it widens the seen ranges; the caps keep the objective bounded
        where a cell's maximum is not. The capped LP has a solution (a point seen obeys every cap), so
        "infeasible" after a warm start is a numerical slip: it is solved again from scratch, since a
        round that finds nothing ends the rounds early (``_spread``). Costs and bounds are restored
        afterwards. True when it found a point (then in ``x``).

        After a batched solve whose simplex work (iterations times rows) passed ``PUSH_IPM_WORK``, the
        next ones on this LP go to HiGHS's interior point method with its crossover (a vertex, and a
        basis the next solves of one cell start from): with thousands of costs changed at once the
        warm-started simplex may have far to go (on the 7,753 columns and 16,896 rows of a joint
        audit, 11,442 iterations and 5 s a solve, against 0.8 s), while on smaller LPs, and for one
        cell's objective, it stays the faster. The choice counts iterations, never time, so every
        run makes it alike."""
        if self._cost_col is not None:
            self.h.changeColCost(self._cost_col, 0.0)
            self._cost_col = None
        idx = np.asarray(cols, dtype=np.int32)
        lower = np.asarray(self.h.getLp().col_lower_)[idx]
        upper = np.asarray(self.h.getLp().col_upper_)[idx]
        self.h.changeColsBounds(len(idx), idx, lower, np.minimum(upper, caps))
        self.h.changeColsCost(len(idx), idx, np.asarray(signs, dtype=np.float64))
        status = None
        if self._interior:
            _, solver = self.h.getOptionValue("solver")
            self.h.setOptionValue("solver", "ipm")
            status = self.run()
            self.h.setOptionValue("solver", solver)
        if status != highspy.HighsModelStatus.kOptimal:  # (or not tried) the simplex, as for one cell
            status = self.run()
            work = self.h.getInfo().simplex_iteration_count * self.h.getNumRow()
            self._interior = status == highspy.HighsModelStatus.kOptimal and work > PUSH_IPM_WORK
        if status == highspy.HighsModelStatus.kInfeasible:  # a seen point obeys the caps: a warm-start slip
            status = self.run(fresh=True)
        optimal = status == highspy.HighsModelStatus.kOptimal
        if optimal:
            assert self.x is not None
            np.minimum(self.lo_seen, self.x, out=self.lo_seen)
            np.maximum(self.hi_seen, self.x, out=self.hi_seen)
        self.h.changeColsCost(len(idx), idx, np.zeros(len(idx)))
        self.h.changeColsBounds(len(idx), idx, lower, upper)
        return optimal

    def proven(self, cols: np.ndarray, required: np.ndarray) -> np.ndarray:
        """Which ``cols`` the points seen so far already prove ``required`` wide."""
        return np.floor(self.hi_seen[cols] + TOL) - np.ceil(self.lo_seen[cols] - TOL) >= np.asarray(required) - TOL

    def bound(self, col: int, lo: float, hi: float, seen: np.ndarray) -> None:
        """Change one column's bounds; ``seen`` (a point feasible under the new bounds, e.g. the true
        table) replaces the inner bounds found so far, which may not hold any more."""
        self.h.changeColBounds(col, lo, highspy.kHighsInf if hi == INF else hi)
        self.lo_seen = np.asarray(seen, dtype=np.float64).copy()
        self.hi_seen = self.lo_seen.copy()

    def feasible(self) -> bool:
        """Whether the system has a solution at all (zero objective, from scratch: trusted)."""
        if self._feasible is None:
            if self._cost_col is not None:
                self.h.changeColCost(self._cost_col, 0.0)
                self._cost_col = None
            status = self.run(fresh=True)
            S = highspy.HighsModelStatus
            if status not in (S.kOptimal, S.kInfeasible):
                raise SolverFailed(f"LP solver failed: {self.h.modelStatusToString(status)} (feasibility check)")
            self._feasible = status == S.kOptimal
            if self._feasible:
                assert self.x is not None
                np.minimum(self.lo_seen, self.x, out=self.lo_seen)
                np.maximum(self.hi_seen, self.x, out=self.hi_seen)
        return self._feasible

    def interval(self, col: int, required: float) -> tuple[float, float]:
        """Attacker bounds of ``x_col``; stops early (inner bound) once ``required`` width is proven."""
        if _int_hi(self.hi_seen[col]) - _int_lo(self.lo_seen[col]) >= required - TOL:
            return _int_lo(self.lo_seen[col]), _int_hi(self.hi_seen[col])
        top = self._solve(col, -1.0)
        hi = INF if top is None else _int_hi(-top)
        if hi - _int_lo(self.lo_seen[col]) >= required - TOL:
            return _int_lo(self.lo_seen[col]), hi
        bottom = self._solve(col, 1.0)
        assert bottom is not None  # x >= 0 bounds the minimum
        return _int_lo(bottom), hi


def exact_intervals(
    constraints: sp.csr_matrix,
    values: np.ndarray,
    suppressed: np.ndarray,
    required: np.ndarray,
    truth: np.ndarray | None = None,
    focus: np.ndarray | None = None,
    only: np.ndarray | None = None,
    relations: Relations | None = None,
    linked: bool = False,
) -> Intervals:
    """Attacker who knows published cells exactly: decomposes into components of suppressed cells.

    ``relations`` (``G x <= h``, see ``disclosure.relations``) are further rows of the attacker's LP;
    by default a row does not join components (see below: an inner bound of the interval, the safe
    side); ``linked``: relation rows join components like equations, so the LPs are the exact
    attacker's (the joint attacker of ``disclosure.joint``, whose relations are what ties measures).

    ``only`` (cell numbers) restricts the result to those checked cells: hiding more cells can only
    widen intervals, so a repair loop re-checks just the cells that failed before.

    ``values`` is only read for published cells. ``truth`` (the true table, known to ``protect``)
    seeds the inner bounds with one feasible point; it does not change the answer. A failing
    cell's interval may come from its neighbourhood (``_Neighbourhood``): it holds the exact one
    and is narrower than required, so the cell fails either way. ``focus``
    (suppressed cell numbers) restricts the LPs to the components holding them; the cells of other
    components are then left out of the result.
    """
    values = np.asarray(values, dtype=np.float64)
    suppressed = np.asarray(suppressed, dtype=bool)
    required = np.asarray(required, dtype=np.float64)
    checked = np.flatnonzero(required > 0)
    lower = np.zeros(len(checked))
    upper = np.zeros(len(checked))
    comp_of_checked = np.full(len(checked), -1, dtype=np.int64)
    supp = np.flatnonzero(suppressed)
    pub_vals = np.where(suppressed, 0.0, values)
    # published checked cells are known exactly
    pub_checked = ~suppressed[checked]
    lower[pub_checked] = values[checked[pub_checked]]
    upper[pub_checked] = values[checked[pub_checked]]
    if len(supp) == 0 or not (~pub_checked).any():
        return Intervals(checked, lower, upper, required[checked], comp_of_checked)
    base = np.asarray(truth if truth is not None else values, dtype=np.float64)
    if relations is not None:
        relations.check(base)
    a_eq = sp.csr_matrix(constraints)
    a_s = sp.csr_matrix(a_eq[:, supp])
    touched = np.flatnonzero(np.diff(a_s.indptr) > 0)
    b = sp.csr_matrix(a_s[touched])
    b_abs = b.copy()
    b_abs.data = np.abs(b_abs.data)
    links = b_abs
    if linked and relations is not None and relations.rows:
        links = sp.vstack([b_abs, abs(sp.csr_matrix(relations.matrix[:, supp]))], format="csr")
    n_comp, labels = connected_components((links.T @ links).tocsr(), directed=False)
    rhs_lo = -(a_eq[touched] @ pub_vals)  # equations: = rhs
    rhs_hi = rhs_lo.copy()
    is_eq = np.ones(len(touched), dtype=bool)
    if relations is not None and relations.rows:
        # Components come from the equations alone. A relation row enters the LP of each component
        # it touches, with every cell outside that component fixed at its true value: a subset of
        # what the attacker finds feasible, so each interval is at most as wide as the real one
        # (the safe direction), and components stay as small as the equations make them.
        g = relations.matrix
        g_s = sp.coo_matrix(g[:, supp])
        pair = g_s.row.astype(np.int64) * max(n_comp, 1) + labels[g_s.col]
        pairs, new_row = np.unique(pair, return_inverse=True)
        r_of = pairs // max(n_comp, 1)
        inside = np.zeros(len(pairs))
        np.add.at(inside, new_row, g_s.data * base[supp[g_s.col]])
        split = sp.csr_matrix((g_s.data, (new_row, g_s.col)), shape=(len(pairs), len(supp)))
        kept, split_hi = tightest(split, relations.upper[r_of] - (g[r_of] @ base) + inside)
        b = sp.csr_matrix(sp.vstack([b, split[kept]]))
        rhs_lo = np.concatenate([rhs_lo, np.full(len(split_hi), -INF)])
        rhs_hi = np.concatenate([rhs_hi, split_hi])
        is_eq = np.concatenate([is_eq, np.zeros(len(split_hi), dtype=bool)])
    # every touched row belongs to the component of (any of) its suppressed cells
    first_col = b.indices[b.indptr[:-1]]
    row_comp = labels[first_col]
    row_order = np.argsort(row_comp, kind="stable")
    row_bounds = np.searchsorted(row_comp[row_order], np.arange(n_comp + 1))
    col_order = np.argsort(labels, kind="stable")
    col_bounds = np.searchsorted(labels[col_order], np.arange(n_comp + 1))
    where_in_supp = np.full(len(suppressed), -1, dtype=np.int64)
    where_in_supp[supp] = np.arange(len(supp))
    b_csc = b.tocsc()
    todo = np.flatnonzero(~pub_checked)
    todo_comp = labels[where_in_supp[checked[todo]]]
    keep = np.ones(len(checked), dtype=bool)  # which checked cells the result reports
    if focus is not None:
        focus = np.asarray(focus, dtype=np.int64)
        wanted = np.unique(labels[where_in_supp[focus[suppressed[focus]]]])
        sel = np.isin(todo_comp, wanted)
        keep = pub_checked.copy()
        keep[todo[sel]] = True
        todo, todo_comp = todo[sel], todo_comp[sel]
    if only is not None:
        wanted_cells = np.isin(checked, np.asarray(only, dtype=np.int64))
        keep &= wanted_cells
        sel = wanted_cells[todo]
        todo, todo_comp = todo[sel], todo_comp[sel]
    comp_of_checked[todo] = todo_comp
    for comp in np.unique(todo_comp):
        cols = col_order[col_bounds[comp] : col_bounds[comp + 1]]
        rows = row_order[row_bounds[comp] : row_bounds[comp + 1]]
        members = todo[todo_comp == comp]
        eq_rows = rows[is_eq[rows]]
        if len(cols) == 1 and len(eq_rows) > 0:  # a lone suppressed cell in an equation is determined
            k = int(members[0])
            r = int(eq_rows[0])
            coef = float(b_csc[:, cols].toarray().ravel()[r])
            lower[k] = upper[k] = rhs_lo[r] / coef  # recovered from one equation, as the attacker would
            continue
        sub = b_csc[:, cols][rows]
        seen = None if truth is None else np.asarray(truth, dtype=np.float64)[supp[cols]]
        lp = LP(sub, rhs_lo[rows], rhs_hi[rows], np.zeros(len(cols)), np.full(len(cols), INF), seen)
        pos = {int(c): i for i, c in enumerate(cols)}
        if seen is not None:  # the true table is a first point: the batched solves start from it
            at = np.array([pos[int(where_in_supp[checked[k]])] for k in members], dtype=np.int64)
            _spread(lp, at, required[checked[members]], int(comp))
        near = _Neighbourhood(sub, rhs_lo[rows], rhs_hi[rows]) if len(members) >= LOCAL_MIN else None
        for k in members:
            col, need = pos[int(where_in_supp[checked[k]])], float(required[checked[k]])
            narrow = None if near is None or lp.proven(np.array([col]), need)[0] else near.interval(col, need)
            lower[k], upper[k] = narrow if narrow is not None else lp.interval(col, need)
    return Intervals(checked[keep], lower[keep], upper[keep], required[checked][keep], comp_of_checked[keep])


LOCAL_MIN = 64  # cells of a component to check for a local proof of failure to pay off
LOCAL_SHARE = 4  # ... and how many times smaller than the component the neighbourhood must be


class _Neighbourhood:
    """Failure proofs from a cell's neighbourhood: the rows within two steps of it and their cells.

    Dropping rows only widens the attacker's interval, so when the neighbourhood's interval is
    already narrower than required the cell fails for certain, at the cost of a small LP instead
    of two over the whole component. A cell it does not prove narrow gets the component's LPs."""

    def __init__(self, matrix: sp.spmatrix, row_lo: np.ndarray, row_hi: np.ndarray) -> None:
        self.by_col, self.by_row = sp.csc_matrix(matrix), sp.csr_matrix(matrix)
        self.row_lo, self.row_hi = row_lo, row_hi

    def _rows(self, cols: np.ndarray) -> np.ndarray:
        return np.unique(self.by_col[:, cols].indices)

    def interval(self, col: int, required: float) -> tuple[float, float] | None:
        rows = self._rows(np.unique(self.by_row[self._rows(np.array([col]))].indices))
        cells = np.unique(self.by_row[rows].indices)
        if len(cells) * LOCAL_SHARE > self.by_col.shape[1]:  # not much smaller than the component: no gain
            return None
        lp = LP(self.by_row[rows][:, cells], self.row_lo[rows], self.row_hi[rows], np.zeros(len(cells)),
                np.full(len(cells), INF))  # fmt: skip
        at = int(np.searchsorted(cells, col))
        top = lp._solve(at, -1.0)
        if top is None:
            return None
        bottom = lp._solve(at, 1.0)
        assert bottom is not None  # x >= 0 bounds the minimum
        lo, hi = _int_lo(bottom), _int_hi(-top)
        return (lo, hi) if hi - lo < required - TOL else None


def interval_intervals(
    constraints: sp.csr_matrix,
    col_lo: np.ndarray,
    col_hi: np.ndarray,
    required: np.ndarray,
    relations: Relations | None = None,
) -> Intervals:
    """Attacker who knows every cell only within ``[col_lo, col_hi]`` (rounded or suppressed).

    ``relations`` (``G x <= h``) are further rows of the LP. Cells known exactly (``col_lo ==
    col_hi``, published unrounded) are moved to the row bounds, and the LP splits into components of
    the other cells linked by rows: the same LP, solved in independent pieces (a published table is
    mostly known cells, and one LP over all of them re-solved per cell was the audit's whole cost).
    Raises Inconsistent when any piece, or a row of known cells alone, has no solution."""
    required = np.asarray(required, dtype=np.float64)
    col_lo = np.asarray(col_lo, dtype=np.float64)
    col_hi = np.asarray(col_hi, dtype=np.float64)
    checked = np.flatnonzero(required > 0)
    lower = col_lo[checked].copy()
    upper = col_hi[checked].copy()
    component = np.full(len(checked), -1, dtype=np.int64)
    if len(checked) == 0:
        return Intervals(checked, lower, upper, required[checked], component)
    matrix, row_lo, row_hi = stacked(constraints, relations)
    free = col_lo != col_hi
    known = np.where(free, 0.0, col_lo)
    activity = matrix @ known
    row_lo, row_hi = row_lo - activity, row_hi - activity
    sub = sp.csr_matrix(matrix[:, np.flatnonzero(free)])
    links = np.diff(sub.indptr) > 0
    slack = TOL * (1.0 + np.abs(activity))
    if np.any((row_lo[~links] > slack[~links]) | (row_hi[~links] < -slack[~links])):
        raise Inconsistent(INCONSISTENT)  # a row of known cells alone does not add up
    touched = np.flatnonzero(links)
    b = sp.csr_matrix(sub[touched])
    b_abs = abs(b)
    n_comp, labels = connected_components((b_abs.T @ b_abs).tocsr(), directed=False)
    row_comp = labels[b.indices[b.indptr[:-1]]]
    b_csc = b.tocsc()
    free_cells = np.flatnonzero(free)
    where = np.full(len(free), -1, dtype=np.int64)
    where[free_cells] = np.arange(len(free_cells))
    todo = np.flatnonzero(free[checked])
    component[todo] = labels[where[checked[todo]]]
    col_order = np.argsort(labels, kind="stable")
    col_bounds = np.searchsorted(labels[col_order], np.arange(n_comp + 1))
    row_order = np.argsort(row_comp, kind="stable")
    row_bounds = np.searchsorted(row_comp[row_order], np.arange(n_comp + 1))
    todo = todo[np.argsort(component[todo], kind="stable")]
    todo_bounds = np.searchsorted(component[todo], np.arange(n_comp + 1))
    for comp in range(n_comp):
        cols = col_order[col_bounds[comp] : col_bounds[comp + 1]]  # sorted: a stable sort of labels
        rows = row_order[row_bounds[comp] : row_bounds[comp + 1]]
        if len(rows) == 0:  # a cell no row holds: its bounds are all there is
            continue
        cells = free_cells[cols]
        lp = LP(b_csc[:, cols][rows], row_lo[touched[rows]], row_hi[touched[rows]], col_lo[cells], col_hi[cells])
        if not lp.feasible():
            raise Inconsistent(INCONSISTENT)
        mine = todo[todo_bounds[comp] : todo_bounds[comp + 1]]
        at, need = np.searchsorted(cols, where[checked[mine]]), required[checked[mine]]
        _prove_with_shown_fixed(lp, b_csc[:, cols][rows], row_lo[touched[rows]], row_hi[touched[rows]],
                                col_lo[cells], col_hi[cells], at, need)  # fmt: skip
        _spread(lp, at, need, comp)
        for k in mine:
            col = int(np.searchsorted(cols, where[checked[k]]))
            lower[k], upper[k] = lp.interval(col, float(required[checked[k]]))
    return Intervals(checked, lower, upper, required[checked], component)


def _prove_with_shown_fixed(
    lp: LP,
    matrix: sp.spmatrix,
    row_lo: np.ndarray,
    row_hi: np.ndarray,
    col_lo: np.ndarray,
    col_hi: np.ndarray,
    cols: np.ndarray,
    required: np.ndarray,
) -> None:
    """Widen ``lp``'s seen ranges cheaply before its own solves. Take the feasible point ``lp.x`` and
    fix every shown cell (finite upper bound) at its value there: what is left is the hidden cells
    under the exact-values attacker, which falls apart into small components. Every solution of
    those small LPs, completed by the fixed values, is a feasible table of the whole component, so
    the ranges they reach are inner bounds of the interval attacker's too; only passes come from
    here, and a cell they do not prove wide gets the whole component's LPs as before. Solver
    trouble in a small LP only means fewer cells proven here."""
    x0 = lp.x
    hidden = ~np.isfinite(col_hi)
    if x0 is None or hidden.all() or not hidden.any():
        return
    m = sp.csc_matrix(matrix)
    shown = np.flatnonzero(~hidden)
    act = m[:, shown] @ x0[shown]
    sub = sp.csr_matrix(m[:, np.flatnonzero(hidden)])
    rows = np.flatnonzero(np.diff(sub.indptr) > 0)
    sub = sub[rows]
    lo, hi = row_lo[rows] - act[rows], row_hi[rows] - act[rows]
    position = np.full(len(col_hi), -1, dtype=np.int64)
    position[hidden] = np.arange(int(hidden.sum()))
    wanted = position[cols]
    keep = wanted >= 0
    a = abs(sub)
    _, labels = connected_components((a.T @ a).tocsr(), directed=False)
    row_label = labels[sub.indices[sub.indptr[:-1]]]
    hidden_cols = np.flatnonzero(hidden)
    for label in np.unique(labels[wanted[keep]]):
        members = np.flatnonzero(labels == label)
        in_rows = np.flatnonzero(row_label == label)
        seen = x0[hidden_cols[members]]
        small = LP(sub[in_rows][:, members], lo[in_rows], hi[in_rows], col_lo[hidden_cols[members]],
                   col_hi[hidden_cols[members]], seen=seen)  # fmt: skip
        targets = np.flatnonzero(keep & (labels[np.maximum(wanted, 0)] == label))
        at = np.searchsorted(members, wanted[targets])
        try:
            _spread(small, at, required[targets], int(label))
            if len(members) <= SMALL:  # one LP pair per cell pays only where the LPs are small
                for col, need in zip(at, required[targets], strict=True):
                    small.interval(int(col), float(need))
        except (Inconsistent, SolverFailed):
            continue
        full = hidden_cols[members]
        np.minimum.at(lp.lo_seen, full, small.lo_seen)
        np.maximum.at(lp.hi_seen, full, small.hi_seen)


SMALL = 500  # columns of a hidden-cells component small enough for one LP pair per cell there
PUSH_MIN = 16  # cells of a component left unproven for a batched solve to pay off
PUSH_ROUNDS = 24  # batched solves per component at most
PUSH_GAIN = 0.02  # stop once a solve proves fewer than this share of the cells left
PUSH_IPM_WORK = 50_000_000  # simplex iterations times rows of a batched solve, past which the next use the IPM


def _spread(lp: LP, cols: np.ndarray, required: np.ndarray, seed: int) -> None:
    """Prove many cells wide at once, before one LP pair per cell: each round minimises a sum of the
    unproven cells with random signs (seeded: the same rounds on every run), so one solution sends
    some to their minimum and others to their maximum (capped at the least value seen plus the
    width, enough to prove it, or the largest seen: every point seen obeys every cap, so the
    capped LP stays feasible). Every solution is a feasible table, so the seen ranges stay inner
    bounds; cells still unproven get their own LPs, and every failure still comes from those."""
    rng = np.random.default_rng(seed)
    for _ in range(PUSH_ROUNDS):
        left = ~lp.proven(cols, required)
        if left.sum() < PUSH_MIN:
            return
        pending, need = cols[left], required[left]
        caps = np.maximum(lp.hi_seen[pending], np.ceil(lp.lo_seen[pending]) + need + 1)  # a seen point obeys them
        lp.push(pending, rng.choice((-1.0, 1.0), size=len(pending)), caps)
        if (left.sum() - (~lp.proven(cols, required)).sum()) < PUSH_GAIN * left.sum():
            return


def conflicts(
    constraints: sp.spmatrix,
    col_lo: np.ndarray,
    col_hi: np.ndarray,
    relations: Relations | None = None,
    limit: int = 20,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where an infeasible system contradicts itself, to name it to a person.

    Returns the columns whose own bounds cross (``col_lo > col_hi``), and otherwise the equations
    and relation rows that carry a violation in the least-violation table: the LP
    ``min sum(s+ + s- + t)`` s.t. ``A x + s+ - s- = 0``, ``G x - t <= h``, ``col_lo <= x <= col_hi``,
    always feasible. Each list holds at most ``limit`` entries, largest violation first."""
    lo = np.asarray(col_lo, dtype=np.float64)
    hi = np.asarray(col_hi, dtype=np.float64)
    crossed = np.flatnonzero(lo > hi + TOL)
    empty = np.zeros(0, dtype=np.int64)
    if len(crossed):
        return crossed[:limit], empty, empty
    a = sp.csr_matrix(constraints)
    m, n = a.shape
    g = relations.matrix if relations is not None and relations.rows else sp.csr_matrix((0, n))
    k = g.shape[0]
    eye_m, eye_k = sp.identity(m, format="csr"), sp.identity(k, format="csr")
    top = sp.hstack([a, eye_m, -eye_m, sp.csr_matrix((m, k))])
    bottom = sp.hstack([g, sp.csr_matrix((k, 2 * m)), -eye_k])
    matrix = sp.vstack([top, bottom], format="csc")
    row_hi = np.concatenate([np.zeros(m), relations.upper if k else np.zeros(0)])
    row_lo = np.concatenate([np.zeros(m), np.full(k, -INF)])
    lp = LP(
        matrix, row_lo, row_hi, np.concatenate([lo, np.zeros(2 * m + k)]), np.concatenate([hi, np.full(2 * m + k, INF)])
    )
    lp.h.changeColsCost(2 * m + k, np.arange(n, n + 2 * m + k, dtype=np.int32), np.ones(2 * m + k))
    if lp.run() != highspy.HighsModelStatus.kOptimal:
        return empty, empty, empty
    x = lp.x
    eq = x[n : n + m] + x[n + m : n + 2 * m]
    rel = x[n + 2 * m :]
    eq_rows = np.flatnonzero(eq > TOL)
    rel_rows = np.flatnonzero(rel > TOL)
    eq_rows = eq_rows[np.argsort(-eq[eq_rows], kind="stable")][:limit]
    rel_rows = rel_rows[np.argsort(-rel[rel_rows], kind="stable")][:limit]
    return empty, eq_rows, rel_rows


def certified_intervals(
    constraints: sp.csr_matrix,
    values: np.ndarray,
    suppressed: np.ndarray,
    required: np.ndarray,
    moves: sp.csr_matrix,
    insiders: np.ndarray | None = None,
    relations: Relations | None = None,
) -> Intervals:
    """Inner bounds of the attacker's intervals proven by ``moves`` (rows of ``±1`` over cells).

    Checks each move independently of whoever built it: it keeps the table additive
    (``constraints @ move == 0``) and touches only suppressed cells, else DisclosureError. Then
    ``values + t * move`` is a table the attacker cannot tell from the truth for every ``t`` in
    ``[-t_down, t_up]`` (the smallest value on a +1 and on a -1 cell), so each checked cell of the
    move has an interval at least that wide. A move that touches an ``insiders`` cell (one contributor,
    who knows it) proves nothing for any other cell: that contributor holds it fixed.

    With ``relations`` (``G x <= h``, true at ``values``), each move's steps are also limited to
    ``t * (G d)_r <= slack_r`` on every row, recomputed here from the relations themselves (floored to
    integers; see ``disclosure.relations``): a move a relation pins proves no width in that direction.
    """
    values = np.asarray(values, dtype=np.float64)
    required = np.asarray(required, dtype=np.float64)
    checked = np.flatnonzero(required > 0)
    lo = values.copy()
    hi = values.copy()
    d = sp.csr_matrix(moves)
    if d.nnz:
        if np.any(np.abs(d.data) != 1) or abs(constraints @ d.T).sum() != 0:
            raise DisclosureError("a certificate is not a ±1 move of the table (breaks an additivity constraint)")
        coo = d.tocoo()
        if not np.asarray(suppressed, dtype=bool)[coo.col].all():
            raise DisclosureError("a certificate moves a published cell")
        v = values[coo.col]
        t_down = np.full(d.shape[0], INF)
        t_up = np.full(d.shape[0], INF)
        np.minimum.at(t_down, coo.row[coo.data > 0], v[coo.data > 0])
        np.minimum.at(t_up, coo.row[coo.data < 0], v[coo.data < 0])
        if relations is not None and relations.rows:
            relations.check(values)
            rel_down, rel_up = relations.limits(d, relations.slack(values))
            t_down, t_up = np.minimum(t_down, rel_down), np.minimum(t_up, rel_up)
        ins = np.zeros(len(values), dtype=bool) if insiders is None else np.asarray(insiders, dtype=bool)
        n_ins = np.bincount(coo.row, weights=ins[coo.col], minlength=d.shape[0])
        credit = (required[coo.col] > 0) & ((n_ins[coo.row] == 0) | ((n_ins[coo.row] == 1) & ins[coo.col]))
        row, col, sign = coo.row[credit], coo.col[credit], coo.data[credit]
        np.minimum.at(lo, col, values[col] - np.where(sign > 0, t_down[row], t_up[row]))
        np.maximum.at(hi, col, values[col] + np.where(sign > 0, t_up[row], t_down[row]))
    return Intervals(checked, lo[checked], hi[checked], required[checked], np.zeros(len(checked), dtype=np.int64))
