"""Optimal secondary suppression: a minimum-cost safe pattern by MILP with attacker cutting planes.

Master problem (HiGHS MILP): a binary ``y_j`` per cell (primaries fixed to 1), minimise
``sum cost_j y_j`` subject to the cuts below. Loop: solve the master, audit its pattern with the
exact-values attacker (``exact_intervals``), add a cut for every primary that fails, repeat. A
master pattern that passes the audit is optimal, because the master is a relaxation: every
constraint in it is either valid (no safe pattern violates it) or only discards patterns that have
an equally cheap safe twin (the "no lone cell" rows, see below).

Why each family is sound. Throughout, "safe" means every primary's interval under the
exact-values attacker is at least its required width, and safety is *monotone*: hiding one more
cell frees one more variable in the attacker's LP while the true table stays feasible, so every
interval can only widen.

* **No lone cell** (``sum_{k in r, k != j} y_k >= y_j`` for every equation ``r`` and cell ``j`` in
  it). For a primary ``j`` this is valid: alone in an equation it is its published difference.
  For a secondary ``j`` it is a dominance rule: a lone secondary is recovered exactly, so
  publishing it leaves the attacker's feasible set unchanged and the cost no higher; removing
  lone secondaries one by one from any optimal pattern gives an optimal pattern obeying every
  row. Modelled with one continuous ``z_r`` per equation (``y_j <= z_r``, ``2 z_r <= sum y``),
  which has the same LP relaxation as the per-pair rows at linear size.
* **Capacity** (primary ``p`` with ``need = required_p - a_p > 0`` and an equation where ``p`` is a
  child): if the equation's total stays published, ``x_p = total - siblings`` and every sibling
  is ``>= 0``, so ``max x_p <= a_p + sum of the suppressed siblings' true values`` while
  ``min x_p >= 0``; the width is at most ``a_p + sum a_k y_k``. Hence
  ``need * y_total + sum_k min(a_k, need) y_k >= need`` (coefficients capped at the right-hand
  side, which is valid for binaries).
* **Component (Benders) cut**, added lazily: ``p`` fails under pattern ``S``; let ``C`` be its
  connected component of suppressed cells (linked by shared equations) and ``B`` the published
  cells in the equations touching ``C``. Take any pattern ``S'`` with no cell of ``B`` hidden.
  Starting from ``p``, every equation neighbour of a cell of ``C`` lies in ``C`` or ``B``, so
  ``p``'s component under ``S'`` lies inside ``C``; its LP has a subset of ``C``'s free variables
  with everything else at its true value, so ``p``'s interval under ``S'`` lies inside its
  interval under ``S``: too narrow. So every safe pattern hides a cell of ``B``:
  ``sum_{j in B} y_j >= 1``. ``B`` empty means no pattern can protect ``p``.

**Relations** ``G x <= h`` (``disclosure.relations``) known to the attacker: the audit, the repair
and the incumbent use them. The no-lone-cell rows and the capacity cuts are derived without them;
they stay valid, because an attacker with relations is stronger (its intervals lie inside the
weaker one's), so every pattern safe against it is safe without them and satisfies those cuts.
The cover cut takes its components and boundary over equations *and* relation rows (a relation
row links the cells it touches), so the argument above holds unchanged. Each failing master
pattern gets at least one cut it violates, so the loop ends as before.

(The "missing width" capacity ``sum a_j y_j >= missing`` over ``B`` is *not* used: widening
depends on how the new free cells combine, not on their values alone.)

Safety is never traded for optimality: the incumbent is always an audited pattern (the caller's
``start`` or the fast method's, repaired if need be), and when the node budget runs out the best audited pattern
is returned with ``proven_optimal=False``.

Determinism: the work is bounded by counts, never by the clock. ``nodes`` caps the
branch-and-bound nodes of all master solves together (HiGHS ``mip_max_nodes``, given what is left
before each solve) and ``MAX_ROUNDS`` the master solves; HiGHS runs with a fixed seed. So the same
input gives the same pattern on any machine and under any load; a slower machine takes longer, it
does not stop sooner with another answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import highspy
import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from disclosure.attacker import Intervals, exact_intervals, new_highs
from disclosure.cost import Cost, cell_costs
from disclosure.errors import AuditFailed
from disclosure.hypercube import PRUNE_CELLS, hypercube
from disclosure.relations import Relations, stacked
from disclosure.secondary import Heuristic
from disclosure.suppression import CANNOT_PROTECT, Suppression
from disclosure.table import GridLike

EXACT_GAP_CELLS = 50_000  # up to this many cells the master is solved to a zero gap
NODES = 20_000  # default branch-and-bound node budget over all master solves (deterministic work)
MAX_ROUNDS = 500  # master solves at most
EPS = 1e-6


@dataclass
class OptimalSuppression(Suppression):
    """A ``Suppression`` plus what the optimiser proved: ``rounds`` counts master solves.

    ``cost`` is the cost of the secondary cells, ``lower_bound`` the best proven bound on any safe pattern's
    cost; ``proven_optimal`` is true when they meet (within the MIP gap used).
    """

    cost: float = 0.0
    lower_bound: float = 0.0
    proven_optimal: bool = False
    cuts: int = 0

    def facts(self) -> dict[str, object]:
        """Proven optimal or not, the pattern's cost and the best bound on any safe pattern's cost."""
        return {
            "optimal": self.proven_optimal,
            "cost": self.cost,
            "lower_bound": self.lower_bound,
            "gap": max(self.cost - self.lower_bound, 0.0),
        }


class Optimal:
    """State of one cutting-plane run; see the module docstring for the model."""

    def __init__(
        self,
        grid: GridLike,
        values: np.ndarray,
        primary: np.ndarray,
        required: np.ndarray,
        cost: str,
        nodes: int,
        locked: np.ndarray | None = None,
        relations: Relations | None = None,
    ) -> None:
        self.grid = grid
        self.relations = relations
        if relations is not None:
            relations.check(np.asarray(values, dtype=np.float64))
        self.locked = np.zeros(len(values), dtype=bool) if locked is None else np.asarray(locked, dtype=bool)
        self.a = sp.csr_matrix(grid.constraints)
        self.a_abs = abs(self.a).tocsr()
        self.a_abs.sort_indices()
        self.a_csc = self.a_abs.tocsc()
        # equations then relation rows: what links cells in the attacker's LP
        self.mat, _, self.mat_hi = stacked(self.a, relations)
        self.rel_slack = np.zeros(0) if relations is None else relations.slack(np.asarray(values, dtype=np.float64))
        links = abs(self.mat).tocsr()
        links.sort_indices()
        self.links, self.links_csc = links, links.tocsc()
        self.row_parent = np.asarray(grid.row_parent, dtype=np.int64)
        self.values = np.asarray(values, dtype=np.float64)
        self.primary = np.asarray(primary, dtype=bool)
        self.required = np.asarray(required, dtype=np.float64)
        self.cost = cell_costs(self.values, cost)
        self.n = len(self.values)
        self.m = self.a.shape[0]
        self.nodes_left = max(int(nodes), 0)
        self.cut_keys: set[bytes] = set()
        self.n_cuts = 0
        self.h = self._master()

    # ----- master problem -----

    def _row_cells(self, r: int) -> np.ndarray:
        return self.a_abs.indices[self.a_abs.indptr[r] : self.a_abs.indptr[r + 1]]

    def _master(self) -> highspy.Highs:
        """Columns: y (cells, binary) then z (equations, continuous); rows: no-lone-cell and capacity."""
        n, m = self.n, self.m
        inf = highspy.kHighsInf
        lp = highspy.HighsLp()
        lp.num_col_ = n + m
        lp.col_cost_ = np.concatenate([self.cost, np.zeros(m)])
        lp.col_lower_ = np.concatenate([self.primary.astype(np.float64), np.zeros(m)])
        lp.col_upper_ = np.concatenate([np.where(self.locked & ~self.primary, 0.0, 1.0), np.ones(m)])
        lp.integrality_ = [highspy.HighsVarType.kInteger] * n + [highspy.HighsVarType.kContinuous] * m
        coo = self.a_abs.tocoo()
        k = len(coo.row)
        rows = [np.repeat(np.arange(k), 2), np.repeat(k + np.arange(m), 1)]
        cols = [np.column_stack([coo.col, n + coo.row]).ravel(), n + np.arange(m)]
        vals = [np.tile([1.0, -1.0], k), np.full(m, -2.0)]
        lo, hi = [np.full(k, -inf)], [np.zeros(k)]  # y_j - z_r <= 0
        rows.append(k + coo.row)  # sum_r y - 2 z_r >= 0
        cols.append(coo.col)
        vals.append(np.ones(k))
        lo.append(np.zeros(m))
        hi.append(np.full(m, inf))
        cap_rows, cap_cols, cap_vals, cap_rhs = self._capacity()
        base = k + m
        rows.append(base + cap_rows)
        cols.append(cap_cols)
        vals.append(cap_vals)
        lo.append(cap_rhs)
        hi.append(np.full(len(cap_rhs), inf))
        n_rows = base + len(cap_rhs)
        mat = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_rows, n + m))
        mat.sum_duplicates()
        mat.sort_indices()
        lp.num_row_ = n_rows
        lp.row_lower_ = np.concatenate(lo)
        lp.row_upper_ = np.concatenate(hi)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = mat.indptr.astype(np.int32)
        lp.a_matrix_.index_ = mat.indices.astype(np.int32)
        lp.a_matrix_.value_ = mat.data.astype(np.float64)
        h = new_highs()
        for option, value in (
            ("output_flag", False),
            ("random_seed", 0),
            ("mip_rel_gap", 0.0 if n <= EXACT_GAP_CELLS else 1e-4),
            ("mip_abs_gap", 1e-9 if n <= EXACT_GAP_CELLS else 1e-6),
        ):
            h.setOptionValue(option, value)
        h.passModel(lp)
        return h

    def _capacity(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Capacity rows for every primary in every equation where it is a child (module docstring)."""
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        rhs: list[float] = []
        need_all = self.required - self.values
        for p in np.flatnonzero(self.primary & (need_all > 0)):
            need = float(need_all[p])
            for r in self.a_csc.indices[self.a_csc.indptr[p] : self.a_csc.indptr[p + 1]]:
                parent = int(self.row_parent[r])
                if parent == p:
                    continue
                cells = self._row_cells(int(r))
                cells = cells[cells != p]
                coef = np.where(cells == parent, need, np.minimum(self.values[cells], need))
                keep = coef > 0
                rows.append(np.full(int(keep.sum()), len(rhs)))
                cols.append(cells[keep])
                vals.append(coef[keep])
                rhs.append(need)
        if not rhs:
            empty = np.zeros(0)
            return empty.astype(np.int64), empty.astype(np.int64), empty, empty
        return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals), np.array(rhs)

    def add_cover(self, cells: np.ndarray) -> bool:
        """``sum_{j in cells} y_j >= 1``; False if this cut is already in the master."""
        cells = np.unique(np.asarray(cells, dtype=np.int32))
        key = cells.tobytes()
        if key in self.cut_keys:
            return False
        self.cut_keys.add(key)
        self.h.addRow(1.0, highspy.kHighsInf, len(cells), cells, np.ones(len(cells)))
        self.n_cuts += 1
        return True

    def solve_master(self) -> tuple[np.ndarray | None, float, bool]:
        """Solve the master within the nodes left: (pattern or None, proven lower bound, solved to optimality).

        The incumbent is not passed as a MIP start: with highspy 1.16 a ``setSolution`` start made
        ``getSolution`` return the start while the reported objective was the better optimum's.
        """
        if self.nodes_left <= 0:
            return None, -np.inf, False
        self.h.setOptionValue("mip_max_nodes", self.nodes_left)
        self.h.run()
        status = self.h.getModelStatus()
        info = self.h.getInfo()
        self.nodes_left -= max(int(info.mip_node_count), 1)
        S = highspy.HighsModelStatus
        if status == S.kInfeasible:
            raise AuditFailed("no suppression pattern can protect every primary cell")
        optimal = status == S.kOptimal
        fixed = float(self.cost[self.primary].sum())
        bound = float(info.mip_dual_bound) - fixed if np.isfinite(info.mip_dual_bound) else -np.inf
        if info.primal_solution_status != 2:  # no feasible master solution yet
            return None, bound, False
        x = np.asarray(self.h.getSolution().col_value[: self.n])
        return x > 0.5, bound, optimal

    # ----- audit and cuts -----

    def audit(self, suppressed: np.ndarray) -> Intervals:
        return exact_intervals(
            self.a, self.values, suppressed, self.required, truth=self.values, relations=self.relations
        )

    def add_capacity(self, weights: np.ndarray, need: float) -> bool:
        """``sum_j min(w_j, need) y_j >= need`` over non-primary cells (primaries' share already taken off)."""
        cells = np.flatnonzero((weights > EPS) & ~self.primary)
        coef = np.minimum(weights[cells], need)
        key = cells.astype(np.int32).tobytes() + np.round(coef, 6).tobytes()
        if key in self.cut_keys:
            return False
        self.cut_keys.add(key)
        self.h.addRow(need, highspy.kHighsInf, len(cells), cells.astype(np.int32), coef)
        self.n_cuts += 1
        return True

    def _component_lp(self, comp: np.ndarray, rows: np.ndarray, suppressed: np.ndarray) -> highspy.Highs:
        """The attacker's LP over one component: its cells free in ``[0, inf)``, published cells as constants;
        ``rows`` index equations then relation rows (``<=``)."""
        sub = sp.csc_matrix(self.mat[rows][:, comp])
        sub.sort_indices()
        rhs = -(self.mat[rows] @ np.where(suppressed, 0.0, self.values))
        rel = rows >= self.m
        upper = rhs.copy()
        upper[rel] += self.mat_hi[rows[rel]]
        rhs[rel] = -highspy.kHighsInf
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = len(comp), len(rows)
        lp.col_cost_ = np.zeros(len(comp))
        lp.col_lower_ = np.zeros(len(comp))
        lp.col_upper_ = np.full(len(comp), highspy.kHighsInf)
        lp.row_lower_ = rhs
        lp.row_upper_ = upper
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = sub.indptr.astype(np.int32)
        lp.a_matrix_.index_ = sub.indices.astype(np.int32)
        lp.a_matrix_.value_ = sub.data.astype(np.float64)
        h = new_highs()
        for option, value in (("output_flag", False), ("random_seed", 0)):
            h.setOptionValue(option, value)
        h.passModel(lp)
        return h

    def _reduced(
        self, h: highspy.Highs, rows: np.ndarray, k: int, cell: int, sign: float
    ) -> tuple[np.ndarray, float] | None:
        """Reduced costs ``g - A^T pi + G^T mu`` over all cells for ``min sign * x_cell`` and the constant
        ``mu . slack`` the relation rows add to the width bound (None if not solved).

        Any ``pi`` and any ``mu >= 0`` give a valid bound (Lagrangian relaxation: ``min g.x >= g.z - mu.slack
        - sum_hidden r_j z_j``, ``-inf`` if a hidden cell has ``r_j < 0``); the LP's own duals give the
        tightest. HiGHS reports ``-mu`` as the dual of a ``<=`` row."""
        h.changeColCost(k, sign)
        h.run()
        ok = h.getModelStatus() == highspy.HighsModelStatus.kOptimal
        h.changeColCost(k, 0.0)
        if not ok:
            return None
        pi = np.zeros(self.mat.shape[0])
        pi[rows] = np.asarray(h.getSolution().row_dual)
        pi[self.m :] = np.minimum(pi[self.m :], 0.0)
        r = -(self.mat.T @ pi)
        r[cell] += sign
        return r, float(-(pi[self.m :] @ self.rel_slack))

    def cuts_for(self, suppressed: np.ndarray, res: Intervals) -> int:
        """Cuts for the failing primaries: a capacity cut from the attacker's LP duals when it separates
        the pattern, else the component cover cut (see the module docstring); raises when a component is
        closed (nothing can widen it)."""
        supp = np.flatnonzero(suppressed)
        a_s = self.links[:, supp]
        adjacency = (a_s.T @ a_s).tocsr()
        _, labels = connected_components(adjacency, directed=False)
        where = np.full(self.n, -1, dtype=np.int64)
        where[supp] = np.arange(len(supp))
        added = 0
        lps: dict[int, tuple[highspy.Highs, np.ndarray, np.ndarray]] = {}  # component LP, cells, rows
        covered: set[int] = set()
        for c, req in zip(res.cells[~res.ok], res.required[~res.ok], strict=True):
            c = int(c)
            label = int(labels[where[c]])
            if label not in lps:
                comp = supp[labels == label]
                rows = np.unique(self.links_csc[:, comp].indices)  # equations, then relation rows
                lps[label] = (self._component_lp(comp, rows, suppressed), comp, rows)
            h, comp, rows = lps[label]
            k = int(np.searchsorted(comp, c))
            got_max = self._reduced(h, rows, k, c, -1.0)
            got_min = self._reduced(h, rows, k, c, 1.0)
            if got_max is not None and got_min is not None:
                (r_max, k_max), (r_min, k_min) = got_max, got_min
                # width <= k + k' + sum_j y_j [inf * (r_j^- + r'_j^-) + a_j (r_j^+ + r'_j^+)]  (module docstring)
                neg = np.maximum(-r_max, 0) + np.maximum(-r_min, 0)
                pos = np.maximum(r_max, 0) + np.maximum(r_min, 0)
                w = np.where(neg > 1e-9, np.inf, self.values * pos)
                need = float(req) - float(w[self.primary].sum())
                if self.relations is not None:
                    need -= k_max + k_min
                if need > EPS and float(w[suppressed & ~self.primary].sum()) < need - EPS:
                    added += self.add_capacity(w, need)
                    continue
            if label in covered:
                continue
            covered.add(label)
            near = np.unique(self.links[rows].indices)
            boundary = near[~suppressed[near] & ~self.locked[near]]
            if len(boundary) == 0:
                raise AuditFailed(f"primary cell {c} cannot be protected: its equations are all suppressed")
            added += self.add_cover(boundary)
        return added

    def pattern_cost(self, suppressed: np.ndarray) -> float:
        """Cost of the secondary cells (the primaries' share is the same for every pattern)."""
        return float(self.cost[suppressed & ~self.primary].sum())

    def drop_lone(self, suppressed: np.ndarray) -> np.ndarray:
        """Publish secondaries alone in an equation (they are recovered exactly anyway)."""
        s = suppressed.copy()
        while True:
            counts = self.a_abs @ s.astype(np.float64)
            lone_rows = np.flatnonzero(counts == 1)
            if len(lone_rows) == 0:
                return s
            sub = self.a_abs[lone_rows]
            cells = np.unique(sub.indices[s[sub.indices]])
            cells = cells[~self.primary[cells]]
            if len(cells) == 0:
                return s
            s[cells] = False

    def drop_free(self, suppressed: np.ndarray) -> np.ndarray:
        """Publish zero-cost secondaries the pattern does not need (same cost, less hidden).

        Only the components next to the released cell can narrow, so only they are audited again."""
        s = suppressed.copy()
        for j in np.flatnonzero(s & ~self.primary & (self.cost <= 0)):
            if not s[j]:
                continue
            s[j] = False
            t = self.drop_lone(s)
            changed = np.flatnonzero(s != t)
            near = np.unique(self.links[np.unique(self.links_csc[:, np.append(changed, j)].indices)].indices)
            near = near[t[near]]
            if (
                len(near)
                and not exact_intervals(
                    self.a, self.values, t, self.required, truth=self.values, focus=near, relations=self.relations
                ).ok.all()
            ):
                s[j] = True
            else:
                s = t
        return s

    def repair(self, suppressed: np.ndarray) -> np.ndarray:
        """Make a pattern safe with the heuristic's own steps (close, widen, prune)."""
        prune = self.n <= PRUNE_CELLS
        h = Heuristic(self.grid, self.values, self.primary, self.required, prune, self.locked, None, self.relations)  # type: ignore[arg-type]
        s = suppressed | self.primary
        while True:
            h.close_singletons(s)
            res = self.audit(s)
            if res.ok.all():
                if prune:
                    h.prune(s)
                return s
            if h.widen(s, res) == 0:
                raise AuditFailed(CANNOT_PROTECT)


def optimal(
    grid: GridLike,
    values: np.ndarray,
    primary: np.ndarray,
    required: np.ndarray,
    *,
    cost: Cost = "value",
    nodes: int = NODES,
    start: np.ndarray | None = None,
    locked: np.ndarray | None = None,
    relations: Relations | None = None,
) -> OptimalSuppression:
    """Minimum-cost safe suppression pattern (cell-ordered arrays, like ``heuristic``).

    ``start``: a pattern to begin from; it is audited (and repaired if unsafe) and used as the
    incumbent, so the answer never costs more than a safe ``start``. Without it the fast method's
    pattern is the incumbent (pruned up to ``PRUNE_CELLS`` cells). ``locked`` cells stay published. Each
    failing master pattern is also repaired with the heuristic's steps, which often improves it.
    When ``nodes`` (branch-and-bound nodes over all master solves) or ``MAX_ROUNDS`` run out, the
    best audited pattern is returned (``proven_optimal=False``, ``lower_bound`` gives the gap);
    the result is always audited safe and, the budget being work, not time, reproducible.
    ``relations`` (``G x <= h``) are known to the attacker (``disclosure.relations``).
    Raises AuditFailed when no pattern can protect the primaries.
    """
    opt = Optimal(grid, values, primary, required, cost, nodes, locked, relations)
    prim = opt.primary
    if start is None:
        prune = opt.n <= PRUNE_CELLS
        best = hypercube(
            grid, values, prim, opt.required, cost=cost, prune=prune, locked=locked, relations=relations
        ).suppressed
    else:
        best = np.asarray(start, dtype=bool) | prim
        if not opt.audit(best).ok.all():
            best = opt.repair(best)
    best = opt.drop_lone(best)
    best_cost = opt.pattern_cost(best)
    bound = -np.inf
    proven = False
    rounds = 0
    while True:
        pattern, lb, solved = opt.solve_master()
        rounds += 1
        bound = max(bound, lb)
        if bound >= best_cost - EPS:
            proven = True
            break
        if pattern is None:
            break  # node budget spent before the master found anything better
        res = opt.audit(pattern)
        if res.ok.all():
            pattern = opt.drop_lone(pattern)
            c = opt.pattern_cost(pattern)
            if c < best_cost - EPS:
                best, best_cost = pattern, c
            if solved:
                proven = True
                break
            continue
        if opt.cuts_for(pattern, res) == 0:
            break  # cannot happen with valid cuts; stop rather than loop
        repaired = opt.drop_lone(opt.repair(pattern))  # a safe pattern near the bound: a better incumbent
        c = opt.pattern_cost(repaired)
        if c < best_cost - EPS:
            best, best_cost = repaired, c
        if opt.nodes_left <= 0 or rounds >= MAX_ROUNDS:
            break
    best = opt.drop_free(best)
    res = opt.audit(best)
    if not res.ok.all():  # every incumbent was audited; this guards the invariant
        raise AuditFailed("optimal suppression produced an unsafe pattern")
    return OptimalSuppression(
        suppressed=best,
        intervals=res,
        rounds=rounds,
        cost=opt.pattern_cost(best),
        lower_bound=float(min(bound, best_cost)) if np.isfinite(bound) else 0.0,
        proven_optimal=proven,
        cuts=opt.n_cuts,
    )
