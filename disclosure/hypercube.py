"""Fast secondary suppression: hypercubes that carry their own proof of safety.

A *move* of a table is a change ``d`` that keeps it additive (``A d = 0``). Along one dimension the
simplest moves are: +1 on the cell's code ``a`` and -1 on a sibling ``b`` (each continued down one
chain of children to a leaf, so that ``a``'s and ``b``'s own sums still hold), or +1 on ``a``, all
its ancestors and one chain of descendants ("vertical"). The tensor product of one such move per
dimension is a move of the whole table (every additivity constraint runs along one dimension with
the others fixed), whose non-zero cells form a *hypercube* of ``±1`` corners (Repsilber's GHMITER
method; Hundepool et al. 2012, sec. 4.4.4, generalised here to hierarchies of any depth).

If every corner of a cube is suppressed, ``z + t d`` is, for every ``t`` with ``z + t d >= 0``, a
table the attacker cannot tell from the truth. So every corner's feasible interval contains
``[z - t_down, z + t_up]`` (signs swapped on -1 corners), where ``t_down`` is the smallest value on a
+1 corner and ``t_up`` the smallest on a -1 corner. A cube with ``t_down + t_up >= required`` is a
*certificate*: it proves the primary cell safe without solving a linear program, and stays valid
whatever else is suppressed later. That is what makes the method linear in the table's size.
With relations ``G x <= h`` (``disclosure.relations``) the steps are further limited to
``t (G d)_r <= slack_r`` on every row (floored to integers), in the choice of cubes and in the
independent check of the certificates alike: a corner a relation pins adds no width.

For each primary cell not yet certified, in a fixed order, the method picks the cube of least cost
(cells newly suppressed, then their values) among a bounded set of candidates and suppresses its
corners. Corners may not be ``locked`` cells (must-publish, or published in an earlier version),
or cells with a single contributor other than the primary itself (that contributor knows the
value; see ``insiders``). In linked tables a cube is built in the first table holding the cell;
if it moves a cell another table shares, it is kept only if it is a move of every table (checked
on the union's equations). Primary cells no cube can certify go to the exact LP audit and
the heuristic repair loop, which also audit the coalition of single contributors. Optionally, a
pruning pass then gives back secondary cells the exact audit shows are not needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from disclosure.attacker import INF, TOL, certified_intervals, exact_intervals
from disclosure.cost import cell_costs
from disclosure.relations import Relations
from disclosure.secondary import Heuristic
from disclosure.suppression import Suppression
from disclosure.table import Grid, GridLike

SIBLINGS = 4  # sibling moves tried per dimension (plus the vertical move)
CORNER_BUDGET = 40_000  # corners evaluated per primary cell: bounds the work on wide tables
UNION_TRIES = 20  # candidate cubes checked against linked tables' equations before giving up
PRUNE_CELLS = 5_000  # up to this many cells the exact-audit pruning pass runs by default


@dataclass(frozen=True)
class _Dim:
    """One dimension of one grid, as move options need it (code positions, not strings)."""

    stride: int
    parent: np.ndarray  # -1 for the total
    siblings: tuple[np.ndarray, ...]
    up: tuple[tuple[int, ...], ...]  # ancestors, nearest first
    down: tuple[tuple[int, ...], ...]  # one chain of descendants to a leaf, through the largest margin

    def options(self, a: int, ranked_siblings: np.ndarray) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
        """(codes, signs) of the vertical move and of sibling moves towards ``ranked_siblings``."""
        mine = (a, *self.down[a])
        out = [((*mine, *self.up[a]), (1,) * (len(mine) + len(self.up[a])))]
        for b in ranked_siblings:
            theirs = (int(b), *self.down[int(b)])
            out.append(((*mine, *theirs), (1,) * len(mine) + (-1,) * len(theirs)))
        return out


def _dims(grid: Grid, margins: np.ndarray) -> list[_Dim]:
    strides = np.cumprod((1, *grid.shape[:0:-1]))[::-1]
    out = []
    for axis, h in enumerate(grid.hierarchies):
        pos = {c: i for i, c in enumerate(h.codes)}
        parent = np.array([-1 if h.parent(c) is None else pos[h.parent(c)] for c in h.codes], dtype=np.int64)
        kids = [np.array([pos[k] for k in h.children(c)], dtype=np.int64) for c in h.codes]
        # margin of each code: the cell with this code and the totals (code 0) of every other dimension
        index = [0] * len(grid.shape)
        margin = np.empty(len(h.codes))
        for i in range(len(h.codes)):
            index[axis] = i
            margin[i] = margins[int(np.ravel_multi_index(tuple(index), grid.shape))]
        down: list[tuple[int, ...]] = [()] * len(h.codes)
        for i in reversed(range(len(h.codes))):  # codes are in pre-order: children come after parents
            if len(kids[i]):
                best = int(kids[i][np.argmax(margin[kids[i]])])
                down[i] = (best, *down[best])
        up: list[tuple[int, ...]] = []
        for i in range(len(h.codes)):
            p = int(parent[i])
            up.append(() if p < 0 else (p, *up[p]))
        siblings = tuple(
            np.zeros(0, dtype=np.int64) if parent[i] < 0 else kids[parent[i]][kids[parent[i]] != i]
            for i in range(len(h.codes))
        )
        out.append(_Dim(int(strides[axis]), parent, siblings, tuple(up), tuple(down)))
    return out


class Hypercubes:
    """State of one run over a system: suppression, certified intervals, costs."""

    def __init__(
        self,
        system: GridLike,
        values: np.ndarray,
        primary: np.ndarray,
        required: np.ndarray,
        cost: str = "cells",
        locked: np.ndarray | None = None,
        insiders: np.ndarray | None = None,
        relations: Relations | None = None,
        spare_headlines: bool = False,
    ) -> None:
        n = len(values)
        self.system = system
        self.values = np.asarray(values, dtype=np.float64)
        self.relations = relations if relations is not None and relations.rows else None
        if self.relations is not None:
            self.relations.check(self.values)
            self.slack = self.relations.slack(self.values)
            self.related = np.diff(sp.csc_matrix(self.relations.matrix).indptr) > 0  # cells in some row
        self.primary = np.asarray(primary, dtype=bool)
        self.required = np.asarray(required, dtype=np.float64)
        self.locked = np.zeros(n, dtype=bool) if locked is None else np.asarray(locked, dtype=bool)
        self.insiders = np.zeros(n, dtype=bool) if insiders is None else np.asarray(insiders, dtype=bool)
        self.cost = cell_costs(self.values, cost)
        grids = getattr(system, "grids", None)
        maps = getattr(system, "union_of", None)
        if grids is None:
            assert isinstance(system, Grid)
            grids, maps = [system], [np.arange(n)]
        self.grids: list[Grid] = list(grids)
        self.maps: list[np.ndarray] = [np.asarray(m, dtype=np.int64) for m in maps]
        homes = np.zeros(n, dtype=np.int64)
        self.home = np.full(n, -1, dtype=np.int64)  # the first grid holding the cell: cubes are built there
        self.home_cell = np.full(n, -1, dtype=np.int64)
        for g, umap in reversed(list(enumerate(self.maps))):
            homes[umap] += 1
            self.home[umap] = g
            self.home_cell[umap] = np.arange(len(umap))
        self.shared = homes > 1  # a cube through a shared cell must also be a move of the other tables
        self.columns = sp.csc_matrix(system.constraints) if self.shared.any() else None
        self.dims = [_dims(g, self.values[m]) for g, m in zip(self.grids, self.maps, strict=True)]
        self.spare_headlines = spare_headlines
        self.headline = np.asarray(system.headline, dtype=bool)
        self.suppressed = self.primary.copy()
        self.lo = np.where(self.required > 0, self.values, 0.0)  # certified inner bounds
        self.hi = self.lo.copy()
        self.cubes: list[tuple[np.ndarray, np.ndarray]] = []  # (cells, signs) of every cube suppressed
        self.steps: list[tuple[float, float]] = []  # (t_down, t_up) each cube was credited with

    def certified(self, cells: np.ndarray) -> np.ndarray:
        return self.hi[cells] - self.lo[cells] >= self.required[cells] - TOL

    def _candidates(self, cell: int) -> tuple[np.ndarray, np.ndarray]:
        """Corners (system cells, shape combos × corners) and signs (0 where a shorter move is padded)."""
        g = int(self.home[cell])
        grid, umap, dims = self.grids[g], self.maps[g], self.dims[g]
        local = int(self.home_cell[cell])
        coords = np.unravel_index(local, grid.shape)
        need_up = max(self.required[cell] - self.values[cell], 0.0)
        per_dim = []
        for d, a in zip(dims, coords, strict=True):
            sib = d.siblings[int(a)]
            if len(sib):  # rank siblings by the corner next to the cell: free, usable, small
                line = umap[local + (sib - int(a)) * d.stride]
                key = np.lexsort(
                    (
                        sib,
                        self.values[line],
                        self.values[line] < need_up,
                        np.where(self.suppressed[line], 0.0, self.cost[line]),
                        self.locked[line],
                    )
                )
                sib = sib[key[:SIBLINGS]]
            per_dim.append(d.options(int(a), sib))
        while np.prod([len(o) * max(len(c) for c, _ in o) for o in per_dim]) > CORNER_BUDGET:
            widest = max(range(len(per_dim)), key=lambda i: (len(per_dim[i]) > 1, len(per_dim[i])))
            if len(per_dim[widest]) == 1:
                break
            per_dim[widest] = per_dim[widest][:-1]
        n = len(per_dim)
        idx = np.zeros((1,) * (2 * n), dtype=np.int64)
        sg = np.ones((1,) * (2 * n), dtype=np.int64)
        for i, (d, a, opts) in enumerate(zip(dims, coords, per_dim, strict=True)):
            width = max(len(codes) for codes, _ in opts)
            shift = np.zeros((len(opts), width), dtype=np.int64)
            sign = np.zeros((len(opts), width), dtype=np.int64)  # 0 pads shorter moves
            for k, (codes, sgn) in enumerate(opts):
                shift[k, : len(codes)] = (np.asarray(codes, dtype=np.int64) - int(a)) * d.stride
                sign[k, : len(sgn)] = sgn
            shape = [1] * (2 * n)
            shape[i], shape[n + i] = len(opts), width
            idx = idx + shift.reshape(shape)
            sg = sg * sign.reshape(shape)
        combos = int(np.prod(sg.shape[:n]))
        idx, sg = idx.reshape(combos, -1), sg.reshape(combos, -1)
        return umap[local + np.where(sg != 0, idx, 0)], sg

    def cube_for(self, cell: int, outsiders_only: bool = False) -> bool:
        """Suppress the cheapest certifying cube of ``cell``; False when no candidate certifies it.
        ``outsiders_only`` lets corners be other single-contributor cells (a proof against outsiders)."""
        corners, signs = self._candidates(cell)
        real = signs != 0
        at = np.where(real, corners, cell)
        v = self.values[at]
        others = real & (at != cell)
        avoid = self.locked if outsiders_only else self.locked | self.insiders
        bad = (others & avoid[at]).any(axis=1)
        if self.spare_headlines:  # a headline cell joins the pattern only through the LP repair
            bad |= (others & self.headline[at] & ~self.suppressed[at]).any(axis=1)
        t_down = np.where(signs > 0, v, INF).min(axis=1)
        t_up = np.where(signs < 0, v, INF).min(axis=1)
        need = self.required[cell] - TOL
        ok = ~bad & (t_down + t_up >= need)
        if self.relations is not None:  # relation rows limit the steps too (module docstring)
            # only for cubes still in the running that touch a related cell: limits only shrink steps
            sel = np.flatnonzero(ok & (real & self.related[at]).any(axis=1))
            if len(sel):
                combo, corner = np.nonzero(real[sel])
                d = sp.csr_matrix(
                    (signs[sel][combo, corner].astype(np.float64), (combo, corners[sel][combo, corner])),
                    shape=(len(sel), len(self.values)),
                )
                rel_down, rel_up = self.relations.limits(d, self.slack)
                t_down[sel], t_up[sel] = np.minimum(t_down[sel], rel_down), np.minimum(t_up[sel], rel_up)
                ok[sel] = t_down[sel] + t_up[sel] >= need
        if not ok.any():
            return False
        new = real & ~self.suppressed[at]
        cost = np.where(new, self.cost[at], 0.0).sum(axis=1)
        spent = np.where(new, v, 0.0).sum(axis=1)
        for pick in np.flatnonzero(ok)[np.lexsort((np.flatnonzero(ok), spent[ok], cost[ok]))][:UNION_TRIES]:
            cube, sign = corners[pick][real[pick]], signs[pick][real[pick]]
            if not self.shared[cube].any() or not np.any(self.columns[:, cube] @ sign):  # type: ignore[index]
                break
        else:
            return False  # every cheap cube breaks a linked table's equations
        self.suppressed[cube] = True
        down, up = float(t_down[pick]), float(t_up[pick])
        self.cubes.append((cube, sign))
        self.steps.append((down, up))
        # every primary corner moves with the cube: credit it too, unless an insider knows a corner
        keep = (cube == cell) if self.insiders[cube].any() else (self.required[cube] > 0)
        credit, s = cube[keep], sign[keep]
        z = self.values[credit]
        self.lo[credit] = np.minimum(self.lo[credit], np.where(s > 0, z - down, z - up))
        self.hi[credit] = np.maximum(self.hi[credit], np.where(s > 0, z + up, z + down))
        return True

    def order(self) -> np.ndarray:
        """Primary cells to certify, hardest first: smallest value (needs the most room), ties by cell
        number. Of the orders tried on the small-table set (by level, by value, both), this hid fewest."""
        cells = np.flatnonzero(self.required > 0)
        return cells[np.lexsort((cells, self.values[cells]))]

    def moves(self) -> sp.csr_matrix:
        """The cubes as rows of a sparse ``±1`` matrix over cells: the certificates the audit checks."""
        n = len(self.values)
        if not self.cubes:
            return sp.csr_matrix((0, n))
        rows = np.repeat(np.arange(len(self.cubes)), [len(c) for c, _ in self.cubes])
        cols = np.concatenate([c for c, _ in self.cubes])
        data = np.concatenate([s for _, s in self.cubes]).astype(np.float64)
        return sp.csr_matrix((data, (rows, cols)), shape=(len(self.cubes), n))

    def run(self, prune: bool | None = None) -> Suppression:
        """Cubes first; the exact LP audit and repair loop for what they leave; then optional pruning.

        A cell no cube avoiding other single contributors can prove gets a cube that proves it
        against outsiders and is listed in ``insider_unverified``. The LP path models outsiders;
        the cells it proves are then checked against the coalition of single contributors (one
        more LP), and those it narrows are listed too (checking each contributor alone costs an LP
        per contributor and cell), as are single-contributor cells the LP path proves.
        Pruning is skipped when single contributors are protected: it could not re-verify them cheaply.
        """
        for cell in self.order():
            if not self.certified(np.array([cell]))[0] and not self.cube_for(int(cell)) and self.insiders.any():
                self.cube_for(int(cell), outsiders_only=True)
        suppressed = self.suppressed
        a = self.system.constraints
        moves = self.moves()
        rel = self.relations
        res = certified_intervals(a, self.values, suppressed, self.required, moves, self.insiders, rel)
        h = Heuristic(self.system, self.values, self.primary, self.required, False, self.locked, None, rel)  # type: ignore[arg-type]
        rounds = 0
        unverified = np.zeros(0, dtype=np.int64)
        if self.insiders.any():
            outsider = certified_intervals(a, self.values, suppressed, self.required, moves, None, rel)
            against_outsiders = ~res.ok & outsider.ok
            unverified = res.cells[against_outsiders]
            res.lower[against_outsiders] = outsider.lower[against_outsiders]
            res.upper[against_outsiders] = outsider.upper[against_outsiders]
        left = res.cells[~res.ok]
        if len(left):  # shared or hemmed-in primaries: the exact attacker decides, the repair loop fixes
            done = h.run(start=suppressed, only=left)
            suppressed, rounds = done.suppressed, done.rounds
            at = np.searchsorted(res.cells, done.intervals.cells)
            res.lower[at], res.upper[at] = done.intervals.lower, done.intervals.upper
            if self.insiders.any():
                need = np.where(self.insiders | (self.values == 0), 0.0, self.required)  # as in Heuristic
                coalition = exact_intervals(
                    a, self.values, suppressed & ~self.insiders, need, self.values, None, left, rel
                )
                lp_only = np.union1d(coalition.cells[~coalition.ok], left[self.insiders[left]])
                unverified = np.union1d(unverified, lp_only)
        if (prune if prune is not None else len(self.values) <= PRUNE_CELLS) and not self.insiders.any():
            h.prune(suppressed)
            hidden = sp.csr_matrix(abs(moves)) @ (~suppressed).astype(np.float64) == 0
            return Suppression(suppressed, h.audit(suppressed), rounds, "exact", moves=sp.csr_matrix(moves[hidden]))
        return Suppression(suppressed, res, rounds, "certificates", unverified, moves)


def hypercube(
    system: GridLike,
    values: np.ndarray,
    primary: np.ndarray,
    required: np.ndarray,
    *,
    cost: str = "cells",
    prune: bool | None = None,
    locked: np.ndarray | None = None,
    insiders: np.ndarray | None = None,
    relations: Relations | None = None,
    spare_headlines: bool = False,
) -> Suppression:
    """Safe suppression pattern by certified hypercubes (cell-ordered arrays, like ``heuristic``).

    ``relations`` (``G x <= h``) are known to the attacker (``disclosure.relations``).
    ``spare_headlines``: cubes never add a headline cell (``Grid.headline``: national and
    first-level figures) to the pattern; the primaries that leave go to the LP repair loop, which
    takes headline cells last.

    ``prune`` (default: tables up to ``PRUNE_CELLS`` cells) gives back secondary cells the exact
    audit shows are not needed; the result's intervals are then exact attacker bounds, otherwise
    certified inner bounds (and exact bounds for the cells the LP audit had to check).
    """
    return Hypercubes(system, values, primary, required, cost, locked, insiders, relations, spare_headlines).run(prune)
