"""Joint protection of measures that bound each other: one attacker over every measure's cells.

Each measure is protected on its own first (``protect_linked``), with the relations to the other
measures modelled against their non-primary cells. An attacker who knows the relations can do
more: put every measure's published and hidden cells into one LP, where the hidden cells of one
measure bound the hidden cells of another (a sibling's attachments, known in sum from a published
total, bound its referrals from below). This module checks the measures' patterns against that
attacker and repairs them.

The joint system is the union (``linked._union``) of every measure's linked tables, each cell
keyed ``measure#key``, so each measure keeps its own additivity constraints; the relations are
rows over cells of two measures (``KeyedRelations`` with those keys). The attacker knows published
cells exactly (stronger than one who sees them rounded, so what is safe here stays safe after
rounding) and every relation. The repair is the LP audit-and-repair loop (``secondary.Heuristic``)
started from the measures' own patterns. A narrow cell's partners are the published cells of the
cheapest feasible move of the whole system that reaches its width (``_cheapest_move``: cells of
any measure, so a cell pinned by another measure's published cells gets those hidden); hiding
them makes that move a table the attacker cannot rule out, so one round protects the cell.
Hiding a cell only widens every attacker's interval, so each measure's own audit stays valid: the
joint repair never undoes a proof already made.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import highspy
import numpy as np
import pandas as pd
import scipy.sparse as sp

from disclosure.attacker import (
    INF,
    LP,
    TOL,
    Inconsistent,
    Intervals,
    SolverFailed,
    _int_hi,
    _int_lo,
    _spread,
    exact_intervals,
    new_highs,
)
from disclosure.audit import AuditReport, report_from
from disclosure.cost import cell_costs
from disclosure.errors import TooLarge
from disclosure.linked import KeyedRelations, LinkedTable, _fixed, _union
from disclosure.primary import primary_mask, required_widths
from disclosure.relations import Relations, distinct_rows
from disclosure.rules import Rules
from disclosure.secondary import MAX_PARTNERS, Heuristic, _choose

METHOD_JOINT = (
    "joint attacker: every related measure's cells in one LP with the relations between measures as rows "
    "(exact values, HiGHS), solved block by block and by column generation"
)


@dataclass
class JointResult:
    """Cells (by key) the joint repair hid besides the measures' own patterns, and the audit."""

    added: pd.Index
    report: AuditReport


def protect_jointly(
    tables: Sequence[LinkedTable],
    relations: KeyedRelations,
    suppressed: str,
    rules: Rules | None = None,
    blocks: Sequence[Callable[[str], str | None]] = (),
    max_left: int | None = None,
) -> JointResult:
    """Check and repair the measures' patterns (``suppressed``: a boolean column of each table) against
    the joint attacker; raises AuditFailed if no safe pattern exists (every cell that may be hidden is).

    ``tables``: every measure's linked tables, keys unique per measure (``measure#key``), with the
    ``published`` column naming cells that may not be hidden (earlier versions, must-publish).
    ``blocks``: per level, finest first, the block a cell key belongs to (None: none at that level),
    e.g. its prime contract, then its CPA; see ``joint_intervals``. ``max_left``: raise TooLarge
    when more primaries than that are left after the blocks (a bound on work).
    """
    repair, start = _joint_system(tables, relations, suppressed, rules, blocks, max_left)
    pattern = repair.run(start=start, only=np.flatnonzero(repair.primary))
    report = report_from(repair.grid, pattern.intervals, METHOD_JOINT, repair.values)
    report.raise_if_failed()
    added = repair.grid.keys[np.flatnonzero(pattern.suppressed & ~start)]
    return JointResult(pd.Index(added), report)


def audit_jointly(
    tables: Sequence[LinkedTable],
    relations: KeyedRelations,
    suppressed: str,
    rules: Rules | None = None,
    blocks: Sequence[Callable[[str], str | None]] = (),
    max_left: int | None = None,
) -> AuditReport:
    """The joint attacker's audit of the measures' patterns as they stand (``protect_jointly``'s
    arguments): every primary it narrows, with its exact interval."""
    repair, start = _joint_system(tables, relations, suppressed, rules, blocks, max_left)
    intervals = repair.audit(start, only=np.flatnonzero(repair.primary))
    return report_from(repair.grid, intervals, METHOD_JOINT, repair.values)


def _joint_system(
    tables: Sequence[LinkedTable],
    relations: KeyedRelations,
    suppressed: str,
    rules: Rules | None,
    blocks: Sequence[Callable[[str], str | None]],
    max_left: int | None = None,
) -> tuple[_JointRepair, np.ndarray]:
    """The repair loop over the union of ``tables``, and the cells their patterns hide."""
    rules = rules or Rules()
    system, cells_of, values, freq = _union(tables)
    primary = primary_mask(freq, rules)
    required = required_widths(primary, rules)
    start = np.zeros(system.size, dtype=bool)
    for t, umap, cells in zip(tables, system.union_of, cells_of, strict=True):
        start[umap[cells]] |= t.frame[suppressed].fillna(False).astype(bool).to_numpy()
    locked = _fixed(tables, system, cells_of, "published") & ~start
    bounds = relations.over(system.keys)
    labels = [pd.factorize(pd.Series([block(k) for k in system.keys], dtype=object))[0] for block in blocks]
    twin = pd.factorize(system.keys.str.split("#", n=1).str[-1])[0]  # one population, every measure
    values = np.asarray(values, dtype=np.float64)
    repair = _JointRepair(system, values, primary, required, labels, twin, max_left, locked=locked, relations=bounds)
    return repair, start


class _JointRepair(Heuristic):
    """The repair loop over the joint attacker: relation rows join components (``exact_intervals``,
    ``linked``), and partners are also taken from the relation rows of a failing cell."""

    def __init__(
        self,
        system,
        values,
        primary,
        required,
        blocks: Sequence[np.ndarray],
        twin: np.ndarray,
        max_left: int | None = None,
        **options,
    ):
        super().__init__(system, values, primary, required, prune=False, **options)
        self.blocks = blocks  # per level, a block label per cell (``joint_intervals``)
        self.twin = twin  # per cell, a label shared by the same population's cells of every measure
        self.max_left = max_left  # ``joint_intervals``
        self.by_col = sp.csc_matrix(self.m)
        self.by_row = sp.csr_matrix(self.m)
        self.cost = cell_costs(self.values, "log") * np.where(self.headline, HEADLINE_WEIGHT, 1.0)
        self.rounds: dict[int, int] = {}  # rounds each cell has gained partners here (1, 1, 2, 4, ... each)

    def audit(self, suppressed: np.ndarray, only=None, focus=None, each_insider: bool = True) -> Intervals:
        return joint_intervals(
            self.m,
            self.m_lo,
            self.m_hi,
            self.a.shape[0],
            self.values,
            suppressed,
            self.required,
            self.blocks,
            only,
            self.max_left,
        )

    def widen(self, suppressed: np.ndarray, res: Intervals) -> int:
        """A failing cell gets the published cells that the cheapest feasible move of the table needs
        (``_cheapest_move``: an L1 LP in which hidden cells move freely, published ones at their
        suppression cost, a headline cell at ``HEADLINE_WEIGHT`` times it): hiding them makes that
        move invisible to the attacker, so the cell's interval reaches the required width in one round,
        and no cell is hidden that adds no room. Cells hidden for one failing cell cost nothing for
        the next. Where no move exists near the cell, or only one through a headline cell (for a cell
        that is not one), the fallback (``_fallback``) takes over: it takes a headline only where no
        detail cell is priced, over several rounds, so a national figure is not hidden for a small
        cell that detail cells can protect."""
        failing = np.flatnonzero(~res.ok)
        added, rest = 0, []
        for k in failing:
            c = int(res.cells[k])
            partners = self._move_partners(suppressed, c, res.lower[k], res.upper[k], res.required[k])
            if partners is None or (self.headline[partners].any() and not self.headline[c]):
                rest.append(k)  # no move near it, or only through a headline: the fallback avoids those
                continue
            suppressed[partners] = True
            added += len(partners)
        if rest:
            pick = np.array(rest, dtype=np.int64)
            sub = Intervals(res.cells[pick], res.lower[pick], res.upper[pick], res.required[pick], res.component[pick])
            added += self._fallback(suppressed, sub)
        return added

    def _move_partners(
        self, suppressed: np.ndarray, c: int, lower: float, upper: float, required: float
    ) -> np.ndarray | None:
        """The published cells of the cheapest move that widens ``c`` to ``required`` (up from its lower
        end, or down from its upper end, whichever costs less), among the cells ``MOVE_HOPS`` rows
        from it; None when no such move exists there."""
        block, hops, best = np.array([c], dtype=np.int64), 0, None
        for reach in MOVE_HOPS:  # the nearest moves first: most cells have one a few rows away
            while hops < reach and len(block) <= MOVE_MAX_COLS:
                block, hops = _neighbours(self.by_col, self.by_row, block), hops + 1
            if len(block) > MOVE_MAX_COLS:
                break
            move = self._cheapest(suppressed, block, c, lower, upper, required)
            if move is not None and (best is None or move[0] < best[0]):
                best = move
            if best is not None and best[0] < HEADLINE_WEIGHT:  # no headline moves: look no further
                break
        if best is None:
            return None
        _, block, d = best
        moved = block[np.abs(d) > MOVE_TOL]
        return moved[~suppressed[moved]]

    def _cheapest(
        self, suppressed: np.ndarray, block: np.ndarray, c: int, lower: float, upper: float, required: float
    ) -> tuple[float, np.ndarray, np.ndarray] | None:
        """The cheapest of the two moves (up from the lower end, down from the upper) over ``block``'s
        movable cells (hidden, or published and not locked): its cost, those cells and the move."""
        block = block[suppressed[block] | ~self.locked[block]]
        cost = np.where(suppressed[block], 0.0, self.cost[block])
        at = int(np.searchsorted(block, c))
        best: tuple[float, np.ndarray] | None = None
        for step in (lower + required - self.values[c], upper - required - self.values[c]):
            if self.values[c] + step < -TOL:
                continue  # the cell cannot go below 0
            move = _cheapest_move(self.by_col, self.by_row, self.m_lo, self.m_hi, self.values, block, cost, at, step)
            if move is not None and (best is None or move[0] < best[0] - TOL):
                best = move
        return None if best is None else (best[0], block, best[1])

    def _fallback(self, suppressed: np.ndarray, res: Intervals) -> int:
        """For cells no nearby move widens: a published cell the duals of its narrow ends price as
        widening it (``_grown_intervals``), a headline cell (grand total, national or first-level
        figure) only where no detail cell is priced; else one among the cells of its equations, the
        same cells of the other measures (``twins``: a sibling's attachments bound its referrals) and
        the cells of the relation rows of its hidden neighbours; the cheapest that covers the missing
        room (``secondary._choose``). A cell that keeps failing gains 1, 1, 2, 4, ... partners a round
        (degenerate duals price zeros that add no room alone). Only a cell with none left goes to
        ``Heuristic.widen``, whose escalation would hide totals the relations pin anyway."""
        n_eq = self.a.shape[0]
        failing = np.flatnonzero(~res.ok)
        priced = self._priced(suppressed, res.cells[failing], res.required[failing])
        added, own = 0, np.zeros(len(res.cells), dtype=bool)
        for k, cand in zip(failing, priced, strict=True):
            c = int(res.cells[k])
            if cand is not None:  # priced exactly: those that widen it (none: only the escalation can)
                if suppressed[cand].any():  # one was hidden this round for another cell: audit first
                    continue
                detail = cand[~self.headline[cand]]
                if len(detail) and not self.headline[c]:  # a headline only where no detail cell widens it
                    cand = detail
            else:
                rows = self.cell_rows.indices[self.cell_rows.indptr[c] : self.cell_rows.indptr[c + 1]]
                near = np.unique(np.r_[c, self.a_abs[rows].indices])
                links = np.unique(self.link_rows[near[suppressed[near]]].indices)
                links = links[links >= n_eq]
                cand = np.r_[near, self.m_abs[links].indices] if len(links) else near
                cand = np.unique(np.r_[cand, np.flatnonzero(np.isin(self.twin, self.twin[near]))])
                cand = cand[~suppressed[cand] & ~self.locked[cand]]
            if len(cand):
                self.rounds[c] = self.rounds.get(c, 0) + 1
                need = max(float(res.required[k] - (res.upper[k] - res.lower[k])), 1.0)
                for _ in range(min(2 ** max(self.rounds[c] - 2, 0), MAX_PARTNERS, len(cand))):
                    pick = _choose(cand, np.zeros(len(cand), dtype=bool), self.values, self.level, self.headline, need)
                    suppressed[pick] = True
                    cand = cand[cand != pick]
                    added += 1
            else:
                own[k] = True
        if own.any():
            pick = np.flatnonzero(own)
            rest = Intervals(res.cells[pick], res.lower[pick], res.upper[pick], res.required[pick], res.component[pick])
            added += super().widen(suppressed, rest)
        return added

    def _priced(self, suppressed: np.ndarray, cells: np.ndarray, required: np.ndarray) -> list[np.ndarray | None]:
        """Per failing cell, the published cells the repair may hide that its narrow ends' duals price."""
        free = ~suppressed & ~self.locked
        out: list[np.ndarray] = []
        for chunk in np.array_split(np.arange(len(cells)), -(-len(cells) // GROWN_CHUNK)) if len(cells) else ():
            *_, priced = _grown_intervals(
                self.by_col, self.m_lo, self.m_hi, self.values, suppressed, cells[chunk], required[chunk], free
            )
            out += priced
        return out


def joint_intervals(
    matrix: sp.csr_matrix,
    row_lo: np.ndarray,
    row_hi: np.ndarray,
    equations: int,
    truth: np.ndarray,
    suppressed: np.ndarray,
    required: np.ndarray,
    blocks: Sequence[np.ndarray] = (),
    only: np.ndarray | None = None,
    max_left: int | None = None,
) -> Intervals:
    """The joint attacker's intervals (published cells exact, ``row_lo <= matrix x <= row_hi``: the
    first ``equations`` rows additivity, the rest relations), block by block before the whole.

    One LP over every hidden cell of every measure is exact but large (the relations tie all of
    them into one component: minutes per audit at release size). So each primary is first proven
    inside its block at each level (``blocks``: a label per cell, -1 for none), finest first: an LP
    over the block's hidden cells with every other cell fixed at its true value. Its feasible set is
    part of the attacker's (the true table is in both), so an interval it proves wide is at most as
    wide as the attacker's: a proof, never a false pass. What no block proves is solved, in a system
    of more than ``EXACT_MAX_HIDDEN`` hidden cells or when at most ``GROWN_CHUNK`` cells are left (a
    repair round's recheck), by column generation (``_grown_intervals``): exact, over only the part
    of the system that bounds the cell. What that leaves (a cell whose bounding part outgrows
    ``GROWN_MAX_COLS``) gets the exact LP (``exact_intervals`` with the relation rows joining
    components). ``max_left``: where the blocks leave more cells than that, the batched solves of the
    whole system (``_spread`` over every hidden cell: each solution a table the attacker cannot rule
    out, so again only proofs) take their share first, and more than that left after them raise
    TooLarge (each costs a few LPs: a bound on work, not on time). The blocks run first in every
    system, even where the whole system's solves alone would be faster: skipping them changed the
    intervals the repair starts from, and one pattern found so left a series' next version with no
    safe pattern (bench/README.md, stop 53).
    """
    truth = np.asarray(truth, dtype=np.float64)
    checked = np.flatnonzero(required > 0)
    if only is not None:
        checked = np.intersect1d(checked, np.asarray(only, dtype=np.int64))
    lower, upper = truth[checked].copy(), truth[checked].copy()
    component = np.full(len(checked), -1, dtype=np.int64)
    left = suppressed[checked].copy()  # published checked cells are known exactly
    by_col = sp.csc_matrix(matrix)
    by_row = sp.csr_matrix(matrix)

    def prove(members: np.ndarray, cols: np.ndarray) -> None:  # what the LP over ``cols`` proves wide
        cells = checked[members]
        got = _block_intervals(by_col, by_row, row_lo, row_hi, truth, cols, cells, required[cells])
        if got is not None:
            ok = got[1] - got[0] >= required[cells] - 1e-6
            lower[members[ok]], upper[members[ok]] = got[0][ok], got[1][ok]
            left[members[ok]] = False

    for labels in blocks:
        todo = np.flatnonzero(left & (labels[checked] >= 0))
        for label in np.unique(labels[checked[todo]]):
            prove(todo[labels[checked[todo]] == label], np.flatnonzero(suppressed & (labels == label)))
    if max_left is not None and left.sum() > max_left:  # the whole system as the last block, before refusing
        prove(np.flatnonzero(left), np.flatnonzero(suppressed))
        if left.sum() > max_left:
            raise TooLarge(
                f"{int(left.sum())} primary cells neither the blocks nor the batched solves prove, over the "
                f"{max_left} solved one by one"
            )
    if suppressed.sum() > EXACT_MAX_HIDDEN or left.sum() <= GROWN_CHUNK:  # else one LP over every hidden cell
        for chunk in np.array_split(np.flatnonzero(left), -(-int(left.sum()) // GROWN_CHUNK)) if left.any() else ():
            cells = checked[chunk]
            done, lo, hi, _ = _grown_intervals(by_col, row_lo, row_hi, truth, suppressed, cells, required[cells])
            lower[chunk[done]], upper[chunk[done]] = lo[done], hi[done]
            left[chunk[done]] = False
    rest = checked[left]
    if len(rest):
        relations = Relations(matrix[equations:], row_hi[equations:])
        exact = exact_intervals(
            matrix[:equations], truth, suppressed, required, truth, only=rest, relations=relations, linked=True
        )
        at = np.searchsorted(checked, exact.cells)
        lower[at], upper[at], component[at] = exact.lower, exact.upper, exact.component
    return Intervals(checked, lower, upper, required[checked], component)


def _block_intervals(
    by_col: sp.csc_matrix,
    by_row: sp.csr_matrix,
    row_lo: np.ndarray,
    row_hi: np.ndarray,
    truth: np.ndarray,
    cols: np.ndarray,
    cells: np.ndarray,
    required: np.ndarray,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Inner bounds of ``cells`` (among ``cols``) from the LP over ``cols`` with all else at the truth;
    None if the solver fails (the cells are then left to the next level)."""
    _, sub, lo, hi = _over(by_col, by_row, row_lo, row_hi, truth, cols)
    lp = LP(sub, lo, hi, np.zeros(len(cols)), np.full(len(cols), INF), truth[cols])
    at = np.searchsorted(cols, cells)
    try:
        _spread(lp, at, required, len(cols))
        if len(cols) > BLOCK_SOLVE_MAX_COLS:  # only what the batched solves proved
            out = [(_int_lo(lp.lo_seen[c]), _int_hi(lp.hi_seen[c])) for c in at]
        else:
            out = [lp.interval(int(c), float(r)) for c, r in zip(at, required, strict=True)]
    except (Inconsistent, SolverFailed):
        return None
    return np.array([o[0] for o in out]), np.array([o[1] for o in out])


EXACT_MAX_HIDDEN = 15_000  # up to this many hidden cells, one exact LP beats column generation
GROWN_MAX_COLS = 20_000  # hidden cells a grown block may reach before its cells go to the whole LP
GROWN_CHUNK = 16  # cells grown together: one block serves cells that share rows, small enough to stay small
BLOCK_SOLVE_MAX_COLS = 2_000  # a larger block proves only what its batched solves prove (``_spread``)
DUAL_TOL = 1e-7
MOVE_HOPS = (3, 5, 7)  # rows away from a failing cell its move may reach, tried nearest first
MOVE_MAX_COLS = 12_000  # a move's block stops growing past this many cells
MOVE_ITERATIONS = 50_000  # simplex iterations a move may take: a bound on work, never a clock
MOVE_TOL = 1e-6
HEADLINE_WEIGHT = 1_000.0  # a headline cell moves only where no move of detail cells exists


def _cheapest_move(
    by_col: sp.csc_matrix,
    by_row: sp.csr_matrix,
    row_lo: np.ndarray,
    row_hi: np.ndarray,
    truth: np.ndarray,
    block: np.ndarray,
    cost: np.ndarray,
    at: int,
    step: float,
) -> tuple[float, np.ndarray] | None:
    """The least-cost deviation ``d`` of the ``block`` cells (all else at the truth) that keeps every
    row within its bounds and every cell non-negative and moves cell ``block[at]`` by ``step`` or
    more in its direction: ``(cost, d)``, or None when there is none (or the work bound is reached).

    ``truth + d`` is a table the attacker cannot rule out once the cells with ``d != 0`` are hidden, so
    the cell's interval then reaches ``truth + d``: the move is a proof of the room it adds (LP in
    ``d = p - n``, ``p, n >= 0``, ``n <= truth``, cost ``cost * (p + n)``)."""
    k = len(block)
    _, sub, lo, hi = _over(by_col, by_row, row_lo, row_hi, truth, block)
    lo, hi = lo - sub @ truth[block], hi - sub @ truth[block]  # in deviations from the truth
    target = sp.csr_matrix(([1.0, -1.0], ([0, 0], [at, k + at])), shape=(1, 2 * k))
    matrix = sp.vstack([sp.hstack([sub, -sub]), target]).tocsc()
    matrix.sort_indices()
    lo = np.r_[lo, step if step > 0 else -INF]
    hi = np.r_[hi, step if step < 0 else INF]
    inf = highspy.kHighsInf
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = 2 * k, matrix.shape[0]
    lp.col_cost_ = np.r_[cost, cost].astype(np.float64)
    lp.col_lower_ = np.zeros(2 * k)
    lp.col_upper_ = np.r_[np.full(k, inf), truth[block]].astype(np.float64)
    lp.row_lower_ = np.where(np.isinf(lo), -inf, lo)
    lp.row_upper_ = np.where(np.isinf(hi), inf, hi)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = matrix.indptr.astype(np.int32)
    lp.a_matrix_.index_ = matrix.indices.astype(np.int32)
    lp.a_matrix_.value_ = matrix.data.astype(np.float64)
    h = new_highs()
    h.setOptionValue("random_seed", 0)
    h.setOptionValue("simplex_iteration_limit", MOVE_ITERATIONS)
    h.passModel(lp)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    x = np.asarray(h.getSolution().col_value)
    return float(h.getInfo().objective_function_value), x[:k] - x[k:]


def _grown_intervals(
    by_col: sp.csc_matrix,
    row_lo: np.ndarray,
    row_hi: np.ndarray,
    truth: np.ndarray,
    suppressed: np.ndarray,
    cells: np.ndarray,
    required: np.ndarray,
    free: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray | None]]:
    """The attacker's exact intervals of ``cells`` (hidden), by column generation: which cells were
    settled, their lower and upper bounds (integer, as ``LP.interval``), and per cell the published
    cells among ``free`` (those the repair may hide) whose hiding would widen a narrow end (None
    where its ends were not solved exactly).

    Start from the hidden cells sharing a row with the targets, every other cell fixed at its true
    value (the block LP of ``_block_intervals``). Solve each target's minimum and maximum; the LP's
    row duals price every hidden cell left out (reduced cost ``-a_j' y``). A left-out cell sits at its
    true value, strictly inside its bounds unless it is 0, so if none has a reduced cost that could
    improve the objective (nonzero, or negative at 0), the duals with 0 on the rows outside the block
    are optimal for the whole system: the block's optimum is the attacker's, exactly (LP duality).
    Otherwise the pricing cells join the block and it is solved again. A target is settled when its
    block proves it wide (an inner bound, like any block) or when both its ends are optimal for the
    whole system (the exact interval, narrow or not). Only the part of the system that bounds a cell
    is ever solved, so a cell pinned by a few rows is found in a small LP; blocks stop growing at
    ``GROWN_MAX_COLS`` and their targets are left unsettled. Deterministic: blocks grow by sorted
    sets, whatever the machine.

    The same duals price the published cells: one whose reduced cost could improve a narrow end is a
    partner that widens the cell when hidden (a published 0 that would have to fall cannot). When
    none does, the duals stay feasible with any of them free, so hiding more of them cannot widen
    that end at all: the repair must look elsewhere instead of hiding cells that add no room.
    """
    n = len(cells)
    lower, upper = truth[cells].copy(), truth[cells].copy()
    done = np.zeros(n, dtype=bool)
    free = np.zeros(len(truth), dtype=bool) if free is None else free
    partners: list[np.ndarray | None] = [None] * n
    by_row = sp.csr_matrix(by_col)
    hidden = np.flatnonzero(suppressed)
    block = np.intersect1d(_neighbours(by_col, by_row, cells), hidden)
    pending = np.arange(n)
    while len(pending) and len(block) <= GROWN_MAX_COLS:
        rows, sub, lo, hi = _over(by_col, by_row, row_lo, row_hi, truth, block)
        lp = LP(sub, lo, hi, np.zeros(len(block)), np.full(len(block), INF), truth[block])
        at = np.searchsorted(block, cells[pending])
        try:
            _spread(lp, at, required[pending], len(block))
        except (Inconsistent, SolverFailed):
            return done, lower, upper, partners
        grow: list[np.ndarray] = []
        still = []
        for k, c in zip(pending, at, strict=True):
            ends, exact, priced = [], True, []
            for sign in (-1.0, 1.0):  # the maximum, then the minimum
                if _int_hi(lp.hi_seen[c]) - _int_lo(lp.lo_seen[c]) >= required[k] - TOL:
                    break
                try:
                    best = lp._solve(int(c), sign)
                except (Inconsistent, SolverFailed):
                    exact = False
                    break
                if best is None:  # unbounded above: wide
                    lp.hi_seen[c] = INF
                    break
                out = _pricing(by_row, rows, np.asarray(lp.h.getSolution().row_dual), truth, suppressed | free)
                hidden_out = np.setdiff1d(out[suppressed[out]], block, assume_unique=True)
                if len(hidden_out):
                    grow.append(hidden_out)
                    exact = False
                priced.append(out[free[out]])
                ends.append(best)
            if priced and exact:
                partners[k] = np.unique(np.concatenate(priced))
            lo, hi = _int_lo(lp.lo_seen[c]), _int_hi(lp.hi_seen[c])
            if hi - lo >= required[k] - TOL or exact:
                lower[k], upper[k], done[k] = lo, hi, True
            else:
                still.append(k)
        pending = np.array(still, dtype=np.int64)
        if not grow:
            break
        block = np.union1d(block, np.concatenate(grow))
    return done, lower, upper, partners


def _over(
    by_col: sp.csc_matrix,
    by_row: sp.csr_matrix,
    row_lo: np.ndarray,
    row_hi: np.ndarray,
    truth: np.ndarray,
    cols: np.ndarray,
) -> tuple[np.ndarray, sp.csr_matrix, np.ndarray, np.ndarray]:
    """The rows touching ``cols``, over ``cols`` alone with every other cell at the truth: their
    numbers, matrix and bounds. A relation row the restriction makes the same as another is kept
    once, at the least bound (``distinct_rows``: the same feasible set; a running total's rows repeat
    for every month between two of ``cols``)."""
    sub = sp.csr_matrix(by_col[:, cols])
    rows = np.flatnonzero(np.diff(sub.indptr) > 0)
    rest = truth.copy()
    rest[cols] = 0.0
    act = by_row[rows] @ rest
    lo, hi = row_lo[rows] - act, row_hi[rows] - act
    kept, hi = distinct_rows(sub[rows], lo, hi)
    return rows[kept], sp.csr_matrix(sub[rows[kept]]), lo[kept], hi


def _neighbours(by_col: sp.csc_matrix, by_row: sp.csr_matrix, cells: np.ndarray) -> np.ndarray:
    """The cells that share a row (an equation or a relation) with any of ``cells``, and themselves."""
    rows = np.unique(by_col[:, cells].indices)
    return np.union1d(cells, by_row[rows].indices)


def _pricing(
    by_row: sp.csr_matrix, rows: np.ndarray, duals: np.ndarray, truth: np.ndarray, among: np.ndarray
) -> np.ndarray:
    """Cells among ``among`` whose reduced cost, under the block LP's row ``duals``, could improve its
    objective were they free (a cell in the block has reduced cost 0 or sits at a bound the LP
    keeps): nonzero at a positive value, negative at 0 (the bound x >= 0). Sorted."""
    live = np.abs(duals) > DUAL_TOL
    if not live.any():
        return np.zeros(0, dtype=np.int64)
    reduced = -(by_row[rows[live]].T @ duals[live])
    cand = np.flatnonzero(np.abs(reduced) > DUAL_TOL)
    cand = cand[among[cand]]
    return cand[(reduced[cand] < 0) | (truth[cand] > TOL)]
