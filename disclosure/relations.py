"""Relations between cells beyond additivity: linear inequalities ``G x <= h`` the attacker knows.

Measures bound each other (sustainment payments ``S_c <= 30 * O_c`` in the same cell, running sums
of attachments never above those of referrals, ...). Each measure is protected on its own, with
the attacker assumed to know every *other* measure exactly: that is the strongest attacker for
this measure (hiding cells of another measure only widens every interval), so a pattern safe
against it is safe against the real one. The relations then become rows of linear inequalities
over this measure's cells with constants moved to the right-hand side: ``G x <= h`` (``G`` sparse,
any real coefficients, ``h`` finite). The true table ``z`` satisfies them (``check``).

Why every method stays sound with them:

* The attacker's LP gains the rows of ``G`` restricted to the suppressed cells, with right-hand
  side ``h - G[:, published] z[published]``; the true table is still feasible, so every LP optimum
  is a feasible table and the "seen range" inner bounds stay valid. A row links every suppressed
  cell it touches into one component, exactly like an equation.
* A move ``d`` (``A d = 0``) keeps ``z + t d`` feasible while ``t (G d)_r <= slack_r`` for every row,
  ``slack = h - G z >= 0`` (``slack``). So besides non-negativity, ``t_up <= min slack_r / (G d)_r``
  over rows with ``(G d)_r > 0`` and ``t_down <= min slack_r / -(G d)_r`` over rows with
  ``(G d)_r < 0`` (``limits``). Both are floored: counts are integers and the attacker's bounds are
  tightened to integers, so only integer steps ``z + t d`` (integer tables) prove width; with the
  floor the certificate holds even against an integer-programming attacker. A row that a move
  touches with slack 0 pins it in that direction: it proves nothing there.
* Cuts of the optimal method derived without relations stay valid (the attacker without them is
  weaker: its intervals contain the stronger one's), and its component cover cuts take the cells
  of relation rows into the component's boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from disclosure.errors import DisclosureError

TOL = 1e-6


@dataclass(frozen=True)
class Relations:
    """``matrix @ x <= upper`` over the cells of one table (columns in cell order)."""

    matrix: sp.csr_matrix
    upper: np.ndarray

    def __post_init__(self) -> None:
        matrix = sp.csr_matrix(self.matrix, dtype=np.float64)
        matrix.sum_duplicates()
        matrix.eliminate_zeros()
        matrix.sort_indices()
        upper = np.asarray(self.upper, dtype=np.float64).ravel()
        if upper.shape != (matrix.shape[0],):
            raise DisclosureError(f"relations: {matrix.shape[0]} rows but {len(upper)} upper bounds")
        if not np.isfinite(upper).all() or not np.isfinite(matrix.data).all():
            raise DisclosureError("relations: coefficients and upper bounds must be finite")
        object.__setattr__(self, "matrix", matrix)
        object.__setattr__(self, "upper", upper)

    @property
    def rows(self) -> int:
        return int(self.matrix.shape[0])

    def slack(self, values: np.ndarray) -> np.ndarray:
        """``h - G z``: how far each row is from binding at ``values``."""
        return self.upper - self.matrix @ np.asarray(values, dtype=np.float64)

    def check(self, values: np.ndarray) -> None:
        """Raise DisclosureError if ``values`` (the true table) violate a row."""
        if self.matrix.shape[1] != len(values):
            raise DisclosureError(f"relations cover {self.matrix.shape[1]} cells, the table has {len(values)}")
        s = self.slack(values)
        bad = np.flatnonzero(s < -TOL * (1.0 + np.abs(self.upper)))
        if len(bad):
            raise DisclosureError(
                f"the true values violate {len(bad)} relation row(s), e.g. row {int(bad[0])} by {float(-s[bad[0]]):g}"
            )

    def restricted(self, cols: np.ndarray, values: np.ndarray) -> Relations:
        """The rows over ``cols`` alone, every other cell at ``values``: what an LP over those cells
        sees, each distinct row once (``tightest``)."""
        values = np.asarray(values, dtype=np.float64)
        g = sp.csr_matrix(self._columns[:, cols])
        rows, upper = tightest(g, self.slack(values) + g @ values[cols])
        return Relations(g[rows], upper)

    @cached_property
    def _columns(self) -> sp.csc_matrix:
        return self.matrix.tocsc()

    def limits(self, moves: sp.spmatrix, slack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per move (row of ``moves``): the largest integer steps ``(t_down, t_up)`` the relations allow
        (``inf`` where no row limits it), given ``slack`` at the true table (module docstring).

        ``G d`` is gathered from the columns of ``G`` the moves touch, so a call costs what the moves
        touch, not the size of ``G`` (a release checks tens of thousands of cubes against it)."""
        d = sp.coo_matrix(moves, dtype=np.float64)
        down = np.full(d.shape[0], np.inf)
        up = np.full(d.shape[0], np.inf)
        g = self._columns
        starts = g.indptr[d.col]
        counts = g.indptr[d.col + 1] - starts
        if counts.sum() == 0:
            return down, up
        term = np.repeat(np.arange(len(d.data)), counts)
        at = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts - starts, counts)
        pair, where = np.unique(d.row[term].astype(np.int64) * self.rows + g.indices[at], return_inverse=True)
        gd = np.bincount(where, weights=g.data[at] * d.data[term])
        nonzero = gd != 0
        move, row, gd = pair[nonzero] // self.rows, pair[nonzero] % self.rows, gd[nonzero]
        ratio = np.maximum(slack[row], 0.0) / np.abs(gd)
        pos = gd > 0
        np.minimum.at(up, move[pos], ratio[pos])
        np.minimum.at(down, move[~pos], ratio[~pos])
        return _floor(down), _floor(up)


def tightest(matrix: sp.spmatrix, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``matrix @ x <= upper`` with the same left-hand side, kept once with their smallest
    bound; rows with no term dropped: the numbers of the rows kept (ascending) and their bounds. The
    system is the same (each row dropped is implied by a kept one), so every LP over it has the same
    feasible set, in fewer rows. The row kept is the one whose own bound is the least, so a dual
    solution of it, 0 on the rows dropped, is one of the whole, and stays one when ``matrix`` is the
    restriction of a larger system to some columns: its rows, priced over the columns left out, carry
    the bounds the restricted LP used (``joint._grown_intervals``; keeping another row of the group
    at this bound made that pricing claim optima too low).

    Why it matters: a running total has a row per month over every earlier month, and an LP over
    some hidden cells sees them restricted to those cells, where every month between two hidden
    months gives the same row again. Rows are grouped by exact comparison of their terms (a hash
    only orders them), so two different rows are never merged."""
    m = sp.csr_matrix(matrix, dtype=np.float64)
    m.sum_duplicates()
    m.sort_indices()
    upper = np.asarray(upper, dtype=np.float64)
    nnz = np.diff(m.indptr)
    rows = np.flatnonzero(nnz > 0)
    if len(rows) < 2:
        return rows, upper[rows]
    weight = np.random.default_rng(0).random(m.shape[1]) + 1.0
    row_of = np.repeat(np.arange(m.shape[0]), nnz)
    h1 = np.bincount(row_of, weights=m.data * weight[m.indices], minlength=m.shape[0])
    h2 = np.bincount(row_of, weights=m.data * m.indices, minlength=m.shape[0])
    order = rows[np.lexsort((rows, upper[rows], h2[rows], h1[rows], nnz[rows]))]
    a, b = order[:-1], order[1:]
    same = (nnz[a] == nnz[b]) & (h1[a] == h1[b]) & (h2[a] == h2[b])
    cand = np.flatnonzero(same)
    if len(cand):  # confirm term by term
        size = nnz[a[cand]]
        pos = np.arange(int(size.sum())) - np.repeat(np.cumsum(size) - size, size)
        at_a = np.repeat(m.indptr[a[cand]], size) + pos
        at_b = np.repeat(m.indptr[b[cand]], size) + pos
        differs = (m.indices[at_a] != m.indices[at_b]) | (m.data[at_a] != m.data[at_b])
        bad = np.zeros(len(cand), dtype=bool)
        np.logical_or.at(bad, np.repeat(np.arange(len(cand)), size), differs)
        same[cand[bad]] = False
    first = np.flatnonzero(np.concatenate([[True], ~same]))
    keep = order[first]  # each group's row of least bound (``order`` sorts a group by bound, then row)
    by_row = np.argsort(keep, kind="stable")
    return keep[by_row], upper[keep[by_row]]


def distinct_rows(matrix: sp.spmatrix, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Of the rows ``lo <= matrix x <= hi``: every equation or two-sided row, and the one-sided rows
    (``lo = -inf``) once per left-hand side (``tightest``): the row numbers kept and their upper
    bounds (the lower bounds are unchanged)."""
    one = np.flatnonzero(np.isneginf(lo))
    if len(one) < 2:
        return np.arange(len(hi)), np.asarray(hi, dtype=np.float64)
    kept, bound = tightest(sp.csr_matrix(matrix)[one], np.asarray(hi)[one])
    rows = np.concatenate([np.flatnonzero(~np.isneginf(lo)), one[kept]])
    upper = np.concatenate([np.asarray(hi, dtype=np.float64)[~np.isneginf(lo)], bound])
    order = np.argsort(rows, kind="stable")
    return rows[order], upper[order]


def _floor(t: np.ndarray) -> np.ndarray:
    return np.where(np.isinf(t), t, np.floor(t + TOL))


def stacked(constraints: sp.spmatrix, relations: Relations | None) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Equations and relation rows as one system ``lo <= M x <= hi`` (equations first)."""
    a = sp.csr_matrix(constraints)
    m = a.shape[0]
    if relations is None or relations.rows == 0:
        return a, np.zeros(m), np.zeros(m)
    k = relations.rows
    matrix = sp.csr_matrix(sp.vstack([a, relations.matrix]))
    return matrix, np.concatenate([np.zeros(m), np.full(k, -np.inf)]), np.concatenate([np.zeros(m), relations.upper])
