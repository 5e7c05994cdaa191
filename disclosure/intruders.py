"""Intruders who know some cells exactly: every primary must stay protected against each of them.

In a month × provider table (provider hierarchy Total > CPA > prime contract > subcontractor) a
subcontractor knows every cell of its own row, a prime its own rows and its subcontractors', a CPA
every row under it. An outsider-safe pattern can fail against them: a prime 55 published with
three subcontractors 10, 10, 25 and three hidden (3, 2, 8) gives an outsider each hidden cell in
``[2, 14]``, but the subcontractor whose cell is 8 reads the other two off as ``[0, 6]``.

Requirement: every primary cell ``p`` keeps its protection width against an intruder who knows
exactly all cells of any ONE unit ``u`` that does not itself know ``p`` (a unit that knows ``p``
cannot be protected against), and against the outsider who knows no cell.

* ``Intruders``: unit names and a sparse boolean ``units × cells`` matrix of what each one knows.
* ``Intruders.owning``: a unit also knows the cells made of its own records only (a national
  month whose only participants are one CPA's).
* ``intruder_intervals``: the check, certificates first, then a unit that knows all another knows
  stands for it, then feasible tables and the exact attacker for the pairs left.
* ``protect_against``: the repair, ``secondary.Heuristic`` run in each failing unit's view.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import highspy
import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from disclosure.attacker import INF, LP, PUSH_GAIN, PUSH_MIN, PUSH_ROUNDS, TOL, exact_intervals
from disclosure.errors import AuditFailed, DisclosureError
from disclosure.hypercube import Hypercubes
from disclosure.relations import Relations
from disclosure.secondary import Heuristic
from disclosure.table import Grid

SHORT_MOVE_ITERATIONS = 500  # simplex iterations a short move may take (``_Moves.short``)
SHORT_MAX_CELLS = 1_000  # a component larger than this is proven in blocks and by extremes (``_prove``)
OUTSIDER = "(outsider)"  # the unit that knows no cell: the plain attacker of attacker.py
METHOD_INTRUDERS = (
    "intruders: per (primary, unit) pair a verified move none of whose corners the unit knows, or a feasible "
    "table (an LP solution) that leaves every cell the unit knows at its true value, else the exact-values "
    "attacker (HiGHS) with the unit's cells held at their true values"
)


@dataclass(frozen=True, eq=False)
class Intruders:
    """Units who know cells exactly: ``knows[u, c]`` is True when unit ``names[u]`` knows cell ``c``."""

    names: tuple[str, ...]
    knows: sp.csr_matrix

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.names)
        if len(set(names)) != len(names):
            raise DisclosureError("intruder names must be distinct")
        if OUTSIDER in names:
            raise DisclosureError(f"{OUTSIDER!r} is reserved for the attacker who knows no cell")
        knows = sp.csr_matrix(self.knows, dtype=bool)
        if knows.shape[0] != len(names):
            raise DisclosureError(f"knows has {knows.shape[0]} rows for {len(names)} intruders")
        knows.eliminate_zeros()
        knows.sort_indices()
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "knows", knows)

    @classmethod
    def from_sets(cls, names: Sequence[str], cells_per_unit: Iterable[Iterable[int]], n_cells: int) -> Intruders:
        """From one collection of cell numbers per unit (in the order of ``names``)."""
        rows, cols = [], []
        for u, cells in enumerate(cells_per_unit):
            c = np.unique(np.asarray(list(cells), dtype=np.int64))
            if len(c) and (c[0] < 0 or c[-1] >= n_cells):
                raise DisclosureError(f"intruder {names[u]!r} knows a cell outside 0..{n_cells - 1}")
            rows.append(np.full(len(c), u, dtype=np.int64))
            cols.append(c)
        if len(rows) != len(names):
            raise DisclosureError(f"{len(rows)} cell sets for {len(names)} intruders")
        r = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        c = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
        knows = sp.csr_matrix((np.ones(len(r), dtype=bool), (r, c)), shape=(len(names), n_cells))
        return cls(tuple(names), knows)

    @classmethod
    def from_hierarchy(cls, grid: Grid, dimension: str, codes: Sequence[str] | None = None) -> Intruders:
        """Every code of one dimension (default: all but the total) as a unit that knows all cells of
        its own code and of every code below it, for every combination of the other dimensions: a
        subcontractor its row, a prime its row and its subcontractors' rows, a CPA all rows under it."""
        axis = grid.names.index(dimension)
        h = grid.hierarchies[axis]
        codes = [c for c in h.codes if c != h.total] if codes is None else list(codes)
        pos = {c: i for i, c in enumerate(h.codes)}
        coord = np.unravel_index(np.arange(grid.size), grid.shape)[axis]
        by_code = np.argsort(coord, kind="stable")
        bounds = np.searchsorted(coord[by_code], np.arange(len(h.codes) + 1))
        sets = []
        for code in codes:
            below, stack = [], [code]
            while stack:
                c = stack.pop()
                below.append(pos[c])
                stack.extend(h.children(c))
            sets.append(np.concatenate([by_code[bounds[i] : bounds[i + 1]] for i in below]))
        return cls.from_sets(codes, sets, grid.size)

    def owning(self, system, values: np.ndarray) -> Intruders:
        """The units as contributors: each also knows every cell made of its own records only.

        For units that know cells because the records in them are theirs (a subcontractor its row,
        a prime contract its row and its subcontractors', a CPA everything under it), two rules
        follow from the equations (``system.row_parent`` is each one's total), applied until
        nothing changes:

        * a total whose every non-zero part the unit knows holds only its records (the other
          parts are 0), so the unit knows it: a national month whose only participants are one
          CPA's is that CPA's own figure;
        * every part of a total that holds only the unit's records holds only its records too: the
          payment-group split of that month is the CPA's own split as well.

        Keeping such a cell uncertain to that unit would protect no one else's records, and no
        pattern could. A part is never worked out by difference (that is the attacker's job)."""
        a = sp.csr_matrix(system.constraints)
        parent = np.asarray(system.row_parent, dtype=np.int64)
        values = np.asarray(values, dtype=np.float64)
        coo = a.tocoo()
        is_part = coo.col != parent[coo.row]
        nonzero = is_part & (values[coo.col] != 0)
        parts = sp.csr_matrix((np.ones(int(is_part.sum())), (coo.row[is_part], coo.col[is_part])), shape=a.shape)
        filled = sp.csr_matrix((np.ones(int(nonzero.sum())), (coo.row[nonzero], coo.col[nonzero])), shape=a.shape)
        n_filled = np.diff(filled.indptr)
        to_parent = sp.csr_matrix((np.ones(len(parent)), (np.arange(len(parent)), parent)), shape=a.shape)
        knows = sp.csr_matrix(self.knows, dtype=np.float64)
        while True:
            covered = sp.coo_matrix(knows @ filled.T)  # units × equations: non-zero parts known
            full = (covered.data >= n_filled[covered.col] - 0.5) & (n_filled[covered.col] > 0)
            whole = sp.csr_matrix(
                (np.ones(int(full.sum())), (covered.row[full], covered.col[full])), shape=(knows.shape[0], a.shape[0])
            )
            owned_totals = sp.csr_matrix(knows @ to_parent.T)  # units × equations: the total is known
            grown = sp.csr_matrix((knows + whole @ to_parent + owned_totals @ parts) > 0, dtype=np.float64)
            if grown.nnz == knows.nnz:
                return self if knows.nnz == self.knows.nnz else Intruders(self.names, grown)
            knows = grown


@dataclass(frozen=True)
class IntruderFailure:
    """Primary ``cell`` narrowed by ``unit`` (or the ``OUTSIDER``) to ``[lower, upper]``, below ``required``."""

    cell: int
    unit: str
    lower: float
    upper: float
    required: float


@dataclass
class IntruderReport:
    """What the check did; ``describe()`` is what a release descriptor records.

    ``pairs`` counts (primary, unit) pairs where the unit does not know the primary. Each is
    settled ``by_certificate`` (a verified move the unit knows no corner of), ``by_outsider`` (the
    unit knows no hidden cell of the primary's component, so its interval is the outsider's, which
    is proven by a move or by LP), ``by_lp`` (the exact attacker with the unit's cells published) or
    failed (``failed_pairs``; ``failures`` lists them, an outsider failure once for all units).
    """

    intruders: tuple[str, ...]
    pairs: int
    by_certificate: int
    by_outsider: int
    by_tables: int
    by_lp: int
    failed_pairs: int
    failures: tuple[IntruderFailure, ...]
    rejected_moves: int = 0
    by_stronger: int = 0  # blocked pairs settled by a unit knowing all the unit knows (``_dominated``)
    by_earlier_round: int = 0  # protect_against: pairs proven before a repair round, not checked again
    added: int = 0  # protect_against: cells it hid beyond the given pattern
    rounds: int = 0  # protect_against: repair rounds (each ends with a check of the cells that failed)
    repaired: tuple[str, ...] = field(default_factory=tuple)  # units a repair ran for, in order
    moves: sp.csr_matrix | None = field(
        default=None, repr=False
    )  # protect_against: the given moves plus the cubes it added

    @property
    def ok(self) -> bool:
        return not self.failures and self.failed_pairs == 0

    def describe(self) -> dict[str, object]:
        return {
            "method": METHOD_INTRUDERS,
            "intruders": list(self.intruders),
            "checked_intruders": len(self.intruders),
            "pairs": self.pairs,
            "proven_by_certificate": self.by_certificate,
            "proven_as_outsider": self.by_outsider,
            "proven_by_feasible_tables": self.by_tables,
            "proven_by_lp": self.by_lp,
            "proven_by_stronger_intruder": self.by_stronger,
            "proven_before_a_repair": self.by_earlier_round,
            "failed": self.failed_pairs,
            "rejected_certificates": self.rejected_moves,
            "added_suppressions": self.added,
        }


def _valid_moves(
    a: sp.csr_matrix,
    values: np.ndarray,
    suppressed: np.ndarray,
    moves: sp.spmatrix | None,
    relations: Relations | None,
) -> tuple[sp.csr_matrix, sp.csr_matrix, sp.csr_matrix, int]:
    """Verified moves as a bool ``cubes × cells`` corner matrix and, on the same pattern, how far
    each corner can go down and up (``z - down .. z + up`` stays a table the attacker cannot rule
    out). A row is dropped (and counted) unless every entry is ±1, ``A d = 0`` exactly and every
    corner is suppressed: nothing a caller hands in is trusted."""
    n = len(values)
    if moves is None:
        empty = sp.csr_matrix((0, n))
        return sp.csr_matrix((0, n), dtype=bool), empty, empty, 0
    d = sp.csr_matrix(moves, dtype=np.float64)
    if d.shape[1] != n:
        raise DisclosureError(f"moves have {d.shape[1]} columns for {n} cells")
    d.sum_duplicates()
    d.eliminate_zeros()
    row_of = np.repeat(np.arange(d.shape[0]), np.diff(d.indptr))
    bad_entry = (np.abs(d.data) != 1.0) | ~suppressed[d.indices]
    bad = np.bincount(row_of[bad_entry], minlength=d.shape[0]) > 0
    bad |= np.asarray(abs(a @ d.T).sum(axis=0)).ravel() != 0  # integer data: exact in float64
    bad |= np.diff(d.indptr) == 0
    d = sp.csr_matrix(d[np.flatnonzero(~bad)])
    d.sort_indices()
    coo = d.tocoo()
    v = values[coo.col]
    # z + t d stays non-negative and additive for t in [-t_down, t_up] (smallest value on a +1
    # corner, on a -1 corner): a +1 corner goes down by t_down and up by t_up, a -1 corner the reverse
    t_down = np.full(d.shape[0], np.inf)
    t_up = np.full(d.shape[0], np.inf)
    np.minimum.at(t_down, coo.row[coo.data > 0], v[coo.data > 0])
    np.minimum.at(t_up, coo.row[coo.data < 0], v[coo.data < 0])
    if relations is not None and relations.rows:  # G x <= h limits the steps too (disclosure.relations)
        relations.check(values)
        rel_down, rel_up = relations.limits(d, relations.slack(values))
        t_down, t_up = np.minimum(t_down, rel_down), np.minimum(t_up, rel_up)
    down = np.where(coo.data > 0, t_down[coo.row], t_up[coo.row])
    up = np.where(coo.data > 0, t_up[coo.row], t_down[coo.row])
    corners = sp.csr_matrix((np.ones(len(coo.row), dtype=bool), (coo.row, coo.col)), shape=d.shape)
    # +1 keeps explicit zeros (a zero corner cannot go down) in the sparse pattern; subtracted when read
    downs = sp.csr_matrix((down + 1.0, (coo.row, coo.col)), shape=d.shape)
    ups = sp.csr_matrix((up + 1.0, (coo.row, coo.col)), shape=d.shape)
    return corners, downs, ups, int(bad.sum())


def _components(a: sp.csr_matrix, suppressed: np.ndarray) -> np.ndarray:
    """Per cell, the label of its connected component of suppressed cells (linked by a shared
    equation), as ``exact_intervals`` decomposes the attacker; -1 for published cells."""
    supp = np.flatnonzero(suppressed)
    labels = np.full(len(suppressed), -1, dtype=np.int64)
    if len(supp) == 0:
        return labels
    b = abs(sp.csr_matrix(a[:, supp]))
    _, lab = connected_components((b.T @ b).tocsr(), directed=False)
    labels[supp] = lab
    return labels


def _unit_intervals(
    a: sp.csr_matrix,
    values: np.ndarray,
    suppressed: np.ndarray,
    required: np.ndarray,
    known: np.ndarray,
    cells: np.ndarray,
    labels: np.ndarray | None,
    relations: Relations | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact attacker's ``[lower, upper]`` of ``cells`` for the unit knowing ``known`` (its cells are
    published to it, its own need no protection from it). The LP runs on the equations of the
    outsider components holding ``cells`` only: the unit's components are parts of those, and no
    other equation holds one of their cells. Relation rows enter with the cells outside that
    sub-system at their true values, as ``attacker.exact_intervals`` treats them (the safe direction)."""
    view = suppressed & ~known
    need = np.where(known, 0.0, required)
    lower, upper = values[cells].copy(), values[cells].copy()  # a cell the unit sees is known exactly
    open_ = view[cells]
    if not open_.any():
        return lower, upper
    cells = cells[open_]
    assert labels is not None
    members = np.flatnonzero(np.isin(labels, np.unique(labels[cells])) & suppressed)
    rows = np.unique(sp.csc_matrix(a[:, members]).indices)
    sub = sp.csr_matrix(a[rows])
    cols = np.unique(np.concatenate([sub.indices, members]))
    sub = sp.csr_matrix(sub[:, cols])
    rel = None
    if relations is not None and relations.rows:  # cells outside the sub-system at their true values
        rel = relations.restricted(cols, values)
    res = exact_intervals(
        sub, values[cols], view[cols], need[cols], values[cols], None, np.searchsorted(cols, cells), relations=rel
    )
    at = np.searchsorted(res.cells, np.searchsorted(cols, cells))
    lower[open_], upper[open_] = res.lower[at], res.upper[at]
    return lower, upper


def _certify(
    corners: sp.csr_matrix,
    downs: sp.csr_matrix,
    ups: sp.csr_matrix,
    knows: sp.csr_matrix,
    checked: np.ndarray,
    where: np.ndarray,
    required: np.ndarray,
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Step 1 of ``intruder_intervals``: the (unit, checked cell) pairs verified moves do not prove
    ("blocked", units knowing the cell excluded), and which checked cells they prove for the outsider."""
    n_units, nc = knows.shape[0], len(checked)
    m = corners.shape[0]
    dc, uc = downs.tocoo(), ups.tocoo()  # same pattern, same order (both built from one coo)
    on = where[dc.col] >= 0
    cube, k = dc.row[on], where[dc.col[on]]
    down, up = dc.data[on] - 1.0, uc.data[on] - 1.0
    order = np.lexsort((cube, k))  # by checked cell, then cube
    cube, k, down, up = cube[order], k[order], down[order], up[order]
    start = np.searchsorted(k, np.arange(nc + 1))
    # the outsider: every verified cube through p counts (the hull of their ranges is in p's interval)
    lo_all, hi_all = np.zeros(nc), np.zeros(nc)
    np.maximum.at(lo_all, k, down)
    np.maximum.at(hi_all, k, up)
    certified = lo_all + hi_all >= required[checked] - TOL
    # a unit is a candidate for p only if it knows a corner of some cube through p
    touch = sp.csr_matrix((knows.astype(np.float64) @ corners.T.astype(np.float64)) > 0)
    touch.sort_indices()
    incidence = sp.csr_matrix((np.ones(len(k)), (cube, k)), shape=(m, nc))
    cand = sp.csr_matrix(touch.astype(np.float64) @ incidence).tocoo()
    keep = certified[cand.col]
    cu, ck = cand.row[keep], cand.col[keep]
    # for each candidate (u, p): the hull over the cubes through p that u knows no corner of
    per = start[ck + 1] - start[ck]
    owner = np.repeat(np.arange(len(cu)), per)
    entry = np.repeat(start[ck], per) + (np.arange(int(per.sum())) - np.repeat(np.cumsum(per) - per, per))
    touched_keys = np.repeat(np.arange(n_units, dtype=np.int64), np.diff(touch.indptr)) * max(m, 1) + touch.indices
    free = ~np.isin(cu[owner].astype(np.int64) * max(m, 1) + cube[entry], touched_keys)
    lo_u, hi_u = np.zeros(len(cu)), np.zeros(len(cu))
    np.maximum.at(lo_u, owner[free], down[entry[free]])
    np.maximum.at(hi_u, owner[free], up[entry[free]])
    stuck = lo_u + hi_u < required[checked[ck]] - TOL
    blocked = sp.csr_matrix((np.ones(int(stuck.sum()), dtype=bool), (cu[stuck], ck[stuck])), shape=(n_units, nc))
    unc = np.flatnonzero(~certified)
    blocked = blocked + sp.csr_matrix(  # no certificate: blocked for everyone
        (np.ones(len(unc) * n_units, dtype=bool), (np.repeat(np.arange(n_units), len(unc)), np.tile(unc, n_units))),
        shape=(n_units, nc),
    )
    known_checked = sp.csr_matrix(knows[:, checked], dtype=bool)
    blocked = sp.csr_matrix(blocked > known_checked)  # pairs where the unit knows p are not asked about
    return blocked, certified


def _dominated(knows: sp.csr_matrix, known_checked: sp.csr_matrix, pairs: sp.csr_matrix) -> sp.csr_matrix:
    """The ``pairs`` (unit ``b``, checked cell ``p``) that another pair settles: some unit ``a`` that
    knows every cell ``b`` knows, and not ``p``. ``a``'s constraints include ``b``'s, so its feasible
    set is inside ``b``'s and its interval for ``p`` inside ``b``'s: if ``p`` keeps its width against
    ``a`` it keeps it against ``b``. And ``(a, p)`` is itself among the pairs: every cube ``a``
    knows no corner of ``b`` knows none of, and ``a`` knows a hidden cell of ``p``'s component
    where ``b`` does, so ``a`` is blocked and affected whenever ``b`` is. In a hierarchy a prime
    contract stands for its subcontractors and a CPA for its prime contracts, so only the highest
    units not knowing ``p`` are solved for. Of units knowing the same cells the first stands for
    the rest."""
    k = sp.csr_matrix(knows, dtype=np.float64)
    size = np.asarray(k.sum(axis=1)).ravel()
    overlap = sp.coo_matrix(k @ k.T)
    a, b = overlap.row, overlap.col
    covers = (overlap.data >= size[b] - 0.5) & (a != b) & ((size[a] > size[b]) | (a < b))
    if not covers.any() or pairs.nnz == 0:
        return sp.csr_matrix(pairs.shape, dtype=bool)
    stands = sp.csr_matrix((np.ones(int(covers.sum())), (b[covers], a[covers])), shape=(k.shape[0],) * 2)
    n_above = np.asarray(stands.sum(axis=1)).ravel()  # per unit b: the units standing for it
    knowing = sp.csr_matrix(stands @ sp.csr_matrix(known_checked, dtype=np.float64))  # of them, knowing p
    coo = pairs.tocoo()
    has = np.asarray(knowing[coo.row, coo.col]).ravel()
    keep = n_above[coo.row] > has + 0.5
    return sp.csr_matrix((np.ones(int(keep.sum()), dtype=bool), (coo.row[keep], coo.col[keep])), shape=pairs.shape)


def _search(
    system,
    values: np.ndarray,
    suppressed: np.ndarray,
    required: np.ndarray,
    intruders: Intruders,
    pairs: sp.csr_matrix,
    checked: np.ndarray,
    certified: np.ndarray,
) -> sp.csr_matrix:
    """Cubes of already hidden cells that the unit knows no corner of, for the pairs the given
    moves leave open (and, for the outsider, for the cells they do not prove): the fast method's
    candidates (``Hypercubes._candidates``) with every published or known cell as a forbidden corner.
    Found cubes are only candidates: the caller verifies them like any other move."""
    n = len(values)
    try:
        run = Hypercubes(system, values, np.zeros(n, dtype=bool), required)
    except (AssertionError, AttributeError, TypeError):  # not a Grid or linked system: no cubes to build
        return sp.csr_matrix((0, n))
    run.suppressed = suppressed.copy()
    run.locked = ~suppressed  # candidates ranked as for the outsider, once per cell
    knows = intruders.knows
    need = sp.csc_matrix(pairs, dtype=bool)  # units × checked cells
    outsider = ~certified
    rows, cols, data = [], [], []
    for k in np.flatnonzero(outsider | (np.diff(need.indptr) > 0)).tolist():
        c = int(checked[k])
        corners, signs = run._candidates(c)
        real = signs != 0
        at = np.where(real, corners, c)
        v = values[at]
        t_down = np.where(signs > 0, v, np.inf).min(axis=1)
        t_up = np.where(signs < 0, v, np.inf).min(axis=1)
        usable = ~(real & run.locked[at]).any(axis=1) & (t_down + t_up >= required[c] - TOL)
        if not usable.any():
            continue
        units = need.indices[need.indptr[k] : need.indptr[k + 1]]
        views = [None] if outsider[k] else []
        views += sorted(units.tolist(), key=lambda i: intruders.names[i])
        picked: set[int] = set()
        for u in views:
            ok = usable
            if u is not None:
                own = knows.indices[knows.indptr[u] : knows.indptr[u + 1]]  # sorted (Intruders)
                ok = usable & ~(real & _member(at, own)).any(axis=1)
            if ok.any() and (pick := int(np.flatnonzero(ok)[0])) not in picked:
                picked.add(pick)
                rows.append(np.full(int(real[pick].sum()), len(rows)))
                cols.append(corners[pick][real[pick]])
                data.append(signs[pick][real[pick]].astype(np.float64))
    if not rows:
        return sp.csr_matrix((0, n))
    return sp.csr_matrix((np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))), shape=(len(rows), n))


def _member(x: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """``np.isin(x, sorted_set)`` for a sorted set, by binary search: a unit's own cells are many
    (a CPA knows thousands) and the candidates few, so sorting both, as ``isin`` does, cost most of
    the search (13 of 20 s on a 2,000-row, 4-month release)."""
    if len(sorted_set) == 0:
        return np.zeros(x.shape, dtype=bool)
    at = np.minimum(np.searchsorted(sorted_set, x), len(sorted_set) - 1)
    return sorted_set[at] == x


@dataclass
class _Settled:
    failures: list[IntruderFailure]
    outsider_fails: np.ndarray  # per checked cell: the outsider narrows it
    by_tables: int = 0
    by_lp: int = 0
    failed: int = 0


class _Tables:
    """Feasible tables of one component found so far, over its suppressed cells, kept as their
    deviations from the truth ``x - z`` (sparse: a short move changes a few cells).

    Each is an optimal solution of an LP whose constraints are the outsider's plus some unit's cells
    fixed at the truth, so it is a table the outsider cannot rule out; a unit that knows no cell on
    which it differs from the truth cannot rule it out either. The truth itself (no deviation) is
    always in. Stored values are capped at ``BUDGET`` (a fixed count, so the result never depends on
    the machine); beyond it tables are no longer kept and the pairs they would have proven get their
    own LP."""

    BUDGET = 20_000_000

    def __init__(self, truth: np.ndarray) -> None:
        self.truth = truth
        self.rows: list[tuple[np.ndarray, np.ndarray]] = []  # added since the last hull
        self.chunks: list[sp.csc_matrix] = []
        self.stored = 0

    def add(self, x: np.ndarray) -> None:
        delta = x - self.truth
        at = np.flatnonzero(np.abs(delta) > TOL)
        if len(at) == 0 or self.stored + len(at) > self.BUDGET:
            return
        self.rows.append((at, delta[at]))
        self.stored += len(at)

    def _deviations(self) -> list[sp.csc_matrix]:
        """The tables as a few sparse matrices (one deviation per row), each at least twice the rows
        of the next: a new chunk absorbs every smaller one before it, so each table is copied
        O(log tables) times, not once per hull (rebuilding one matrix at every hull took 51 of job
        starts' 440 s at demo size)."""
        if self.rows:
            r = np.repeat(np.arange(len(self.rows)), [len(at) for at, _ in self.rows])
            c = np.concatenate([at for at, _ in self.rows])
            d = np.concatenate([dv for _, dv in self.rows])
            chunk = sp.csc_matrix((d, (r, c)), shape=(len(self.rows), len(self.truth)))
            self.rows = []
            while self.chunks and self.chunks[-1].shape[0] <= 2 * chunk.shape[0]:
                chunk = sp.vstack([self.chunks.pop(), chunk], format="csc")
            self.chunks.append(chunk)
        return self.chunks

    def hull(self, fixed: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per column, the integer hull of its values over the tables that leave ``fixed`` unmoved
        (the truth among them)."""
        z = self.truth[cols]
        low, high = np.zeros(len(cols)), np.zeros(len(cols))
        for m in self._deviations():
            moved = np.zeros(m.shape[0], dtype=bool)
            if len(fixed):
                moved[m[:, fixed].indices] = True
            seen = sp.csc_matrix(m[:, cols][np.flatnonzero(~moved)])
            col_of = np.repeat(np.arange(len(cols)), np.diff(seen.indptr))
            np.minimum.at(low, col_of, seen.data)
            np.maximum.at(high, col_of, seen.data)
        return np.ceil(z + low - TOL), np.floor(z + high + TOL)


class _Moves:
    """The outsider's LPs over one component's suppressed cells ``x`` (true values ``z``): the
    equations touching them (every other cell in those is published, or it would be in the
    component) and the relation rows touching them with every other cell at its true value, as
    ``attacker.exact_intervals`` builds them; a unit's view holds its cells at the truth (``fix``).

    ``extreme`` is the attacker's ``min``/``max`` of a cell (one LP, only the objective changes).
    ``short`` is a second LP, in deviations ``x = z + up - down`` (``up >= 0``, ``0 <= down <= z``),
    that finds the least total deviation moving a cell by a given step: a few cycles of the table,
    as a cube is. It touches few cells, so few units know one of them, and the table it gives proves
    the same cell against every other unit without an LP of their own (``_Tables``). Its objective
    never changes (only one bound per solve), so each solve starts from the last basis. A component
    above ``SHORT_MAX_CELLS`` is built without it (``shorts=False``): there a short move costs more
    than the attacker's two extremes (``_prove``)."""

    def __init__(
        self,
        a_csc: sp.csc_matrix,
        values: np.ndarray,
        members: np.ndarray,
        relations: Relations | None,
        shorts: bool = True,
    ) -> None:
        rows = np.unique(a_csc[:, members].indices)
        block = sp.csr_matrix(a_csc[:, members][rows])
        lo = hi = np.zeros(len(rows))  # in deviations: A d = 0, G d <= h - G z
        if relations is not None and relations.rows:
            rel = relations.restricted(members, values)
            block = sp.vstack([block, rel.matrix], format="csr")
            lo = np.concatenate([lo, np.full(rel.rows, -INF)])
            hi = np.concatenate([hi, rel.slack(values[members])])
        self.m = m = len(members)
        self.z = values[members]
        at_z = block @ self.z
        self.attack = LP(block, lo + at_z, hi + at_z, np.zeros(m), np.full(m, INF), self.z)
        self.fixed = np.zeros(0, dtype=np.int64)
        self.base: highspy.HighsBasis | None = None
        self.deviate: LP | None = None
        if not shorts:
            return
        self.deviate = LP(sp.hstack([block, -block], format="csc"), lo, hi, np.zeros(2 * m), self._caps())
        self.deviate.h.changeColsCost(2 * m, np.arange(2 * m, dtype=np.int32), np.ones(2 * m))
        self.deviate.h.setOptionValue("simplex_strategy", 1)  # dual: only bounds change between solves
        # a short move is an optional shortcut: bounded by deterministic work (simplex iterations),
        # never by time; a solve that reaches the bound simply gives no table
        self.deviate.h.setOptionValue("simplex_iteration_limit", SHORT_MOVE_ITERATIONS)

    def _rebase(self) -> None:
        """Solve the deviation LP at no move (optimal: no deviation) without the iteration bound, and
        keep its basis, one bound away from every short move's optimum: the first move after
        ``fix`` starts from it rather than from the view before, and a move that reached the bound
        leaves it to the next rather than where it stopped (from there most later moves reached the
        bound too). Only where moves start changes, never what an answer means. Measured on a
        4,778-cell component (job outcomes by quarter, 200,000 rows): the outsider's moves 84 ->
        26 s, each CPA's 59 -> 21 s."""
        h = self.deviate.h
        h.setOptionValue("simplex_iteration_limit", 2**31 - 1)
        status = self.deviate.run()
        h.setOptionValue("simplex_iteration_limit", SHORT_MOVE_ITERATIONS)
        if status != highspy.HighsModelStatus.kOptimal:
            raise DisclosureError(f"LP solver failed on an intruder's view: {h.modelStatusToString(status)}")
        self.base = h.getBasis()

    def _caps(self) -> np.ndarray:
        return np.concatenate([np.full(self.m, highspy.kHighsInf), self.z])

    def fix(self, cells: np.ndarray) -> None:
        """Hold ``cells`` (component positions) at the truth, releasing those held before."""
        for release, cols in ((True, self.fixed), (False, np.asarray(cells, dtype=np.int64))):
            k = len(cols)
            if k == 0:
                continue
            at = cols.astype(np.int32)
            both = np.concatenate([cols, cols + self.m]).astype(np.int32)
            if release:
                self.attack.h.changeColsBounds(k, at, np.zeros(k), np.full(k, highspy.kHighsInf))
            else:
                self.attack.h.changeColsBounds(k, at, self.z[cols], self.z[cols])
            if self.deviate is not None:
                caps = self._caps()[both] if release else np.zeros(2 * k)
                self.deviate.h.changeColsBounds(2 * k, both, np.zeros(2 * k), caps)
        self.fixed = np.asarray(cells, dtype=np.int64)
        self.base = None

    def extreme(self, j: int, sign: float) -> np.ndarray | None:
        """The table with the largest (``sign=1``) or smallest ``x_j``; None when unbounded."""
        return None if self.attack._solve(j, -sign) is None else self.attack.x

    def short(self, j: int, step: float) -> np.ndarray | None:
        """The table moving ``x_j`` by ``step`` (up if positive) at the least total deviation; None
        if none does. Any solver outcome but optimal or infeasible is an error, never a guess."""
        assert self.deviate is not None, "built without short moves"
        if self.base is None:
            self._rebase()
        caps = self._caps()
        col, other = (j, self.m + j) if step > 0 else (self.m + j, j)
        h = self.deviate.h
        h.changeColBounds(col, abs(step), caps[col])
        h.changeColBounds(other, 0.0, 0.0)  # else up and down of x_j could cancel: x_j moves by the net only
        try:
            status = self.deviate.run()
        finally:
            held = j in self.fixed
            for c in (col, other):
                h.changeColBounds(c, 0.0, 0.0 if held else caps[c])
        S = highspy.HighsModelStatus
        if status == S.kOptimal:
            x = self.deviate.x
            return self.z + x[: self.m] - x[self.m :]
        if status == S.kIterationLimit:  # start the next move from no move, not from where this one stopped
            h.setBasis(self.base)
            return None
        if status in (S.kInfeasible, S.kUnboundedOrInfeasible):
            return None
        raise DisclosureError(f"LP solver failed on an intruder's view: {h.modelStatusToString(status)}")


class _Blocks:
    """LPs over part of a large component (a block), every other cell held at its truth: ``_Moves``
    over the block's columns only, so a table it finds is a table of the whole component (no
    deviation outside the block), and a column it proves wide is wide. A primary's blocks are the
    units that know it, smallest first (its subcontractor, its prime contract, its CPA), each a
    small fraction of the component, then the largest of them with the cells no unit knows (the
    national rows: a move between months of one CPA that its national cells follow; it proved
    about 4,000 of the 10,700 cells the unit blocks left in the first check of job starts, 200,000
    rows, 283 -> 240 s, the same failures). A cell the block's equations pin (``_free``) costs no
    LP. A block that proves nothing says nothing (the whole component is tried next), so blocks
    only ever save LP work, never change a result. Built lazily; deterministic (by size, then
    number)."""

    def __init__(
        self, a_csc: sp.csc_matrix, values: np.ndarray, members: np.ndarray, relations: Relations | None, knows
    ) -> None:
        self.args = (a_csc, values, relations)
        self.members = members
        self.known = sp.csc_matrix(knows[:, members], dtype=bool)  # units × component positions
        rows = sp.csr_matrix(self.known)
        self.units = rows.shape[0]
        self.cells = [rows.indices[rows.indptr[u] : rows.indptr[u + 1]] for u in range(self.units)]
        self.size = np.diff(rows.indptr)
        self.nobodys = np.flatnonzero(np.diff(self.known.indptr) == 0)  # positions no unit knows
        self.built: dict[int, tuple[_Moves, np.ndarray, sp.csr_matrix]] = {}
        self.view_of: dict[int, int] = {}  # block -> the view (unit, or -1 for the outsider) it holds now
        self.free: dict[int, np.ndarray] = {}  # block -> which of its cells the view's LP can move

    def chain(self, col: int) -> list[int]:
        """The blocks tried for component position ``col``: the units knowing it, smallest first, then
        the largest with the cells nobody knows (block ``units + u``)."""
        units = self.known.indices[self.known.indptr[col] : self.known.indptr[col + 1]]
        units = units[np.lexsort((units, self.size[units]))]
        chain = [int(u) for u in units[(self.size[units] > 1) & (self.size[units] < len(self.members))]]
        if len(units) and len(self.nobodys) and self.size[units[-1]] + len(self.nobodys) < len(self.members):
            chain.append(self.units + int(units[-1]))
        return chain

    def _cells(self, block: int) -> np.ndarray:
        if block < self.units:
            return self.cells[block]
        return np.union1d(self.cells[block - self.units], self.nobodys)

    def view(self, block: int, view: int, fixed: np.ndarray) -> tuple[_Moves, np.ndarray, np.ndarray]:
        """The LPs of ``block`` in ``view`` (a unit, or -1 for the outsider) with ``fixed``
        (component positions) at the truth, the block's component positions, and which of them
        can move at all (``_free``): no LP is spent on a cell that cannot."""
        if block not in self.built:
            a_csc, values, relations = self.args
            cells = self._cells(block)
            equations = sp.csr_matrix(a_csc[:, self.members[cells]])
            equations = sp.csr_matrix(equations[np.diff(equations.indptr) > 0] != 0, dtype=np.float64)
            self.built[block] = (_Moves(a_csc, values, self.members[cells], relations), cells, equations)
        moves, cells, equations = self.built[block]
        if self.view_of.get(block) != view:
            held = np.searchsorted(cells, fixed[np.isin(fixed, cells)])
            moves.fix(held)
            self.free[block] = _free(equations, held)
            self.view_of[block] = view
        return moves, cells, self.free[block]

    def table(self, cells: np.ndarray, x: np.ndarray) -> np.ndarray:
        """A block's table as one of the component: every cell outside the block at its truth."""
        table = self.args[1][self.members]  # a copy: fancy indexing
        table[cells] = x
        return table


def _free(equations: sp.csr_matrix, held: np.ndarray) -> np.ndarray:
    """Which columns of ``equations`` (the pattern of ``A`` over a block, every other cell at its truth)
    can move with ``held`` fixed: an equation with one movable column left fixes it too, until
    none does. Every column this pins is fixed in every table of the block (its equation holds
    only constants and it), so an LP could not move it either."""
    free = np.ones(equations.shape[1], dtype=bool)
    free[held] = False
    while True:
        count = equations @ free.astype(np.float64)
        single = np.flatnonzero(np.abs(count - 1) < 0.5)
        if len(single) == 0:
            return free
        pinned = np.unique(equations[single].indices)
        pinned = pinned[free[pinned]]
        if len(pinned) == 0:
            return free
        free[pinned] = False


def _prove(
    moves: _Moves,
    tables: _Tables,
    fixed: np.ndarray,
    cols: np.ndarray,
    need: np.ndarray,
    blocks: _Blocks | None = None,
    view: int = -1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intervals of ``cols`` in the view ``moves`` models now (``fixed`` held at the truth).

    First the hull of the tables found so far, then batched solves over the columns it leaves
    narrow (``spread``: on a 2,000-row, 4-month release they took the whole release from 142 to
    about 110 s, the same pattern); a column still narrow gets LPs of its own, and
    every table they find joins the tables (it widens the columns after it, and proves pairs of
    the units after this one). In a component of up to ``SHORT_MAX_CELLS`` cells: a short move up
    by the whole width, else down by it; if neither exists, the attacker's exact max and min
    (stopping once wide enough), then short moves spanning the width, whose small tables few
    units know a cell of. In a larger one a short move over the whole component costs more than
    the two extremes (on the 4,778-cell component of job outcomes by quarter, 200,000 rows: 45 ms,
    half of them stopped by their iteration bound; the first check took over 10 minutes, and
    about 3 with this), so: a short move, then the extremes, in each of the column's ``blocks``,
    then the exact extremes over the whole component. Also returns which columns needed an LP."""
    lo, hi = tables.hull(fixed, cols)
    solved = np.zeros(len(cols), dtype=bool)

    def widen(x: np.ndarray) -> None:
        # a table of this view: it widens every column, the later ones included
        np.minimum(lo, np.ceil(x[cols] - TOL), out=lo)
        np.maximum(hi, np.floor(x[cols] + TOL), out=hi)

    def found(x: np.ndarray) -> None:
        tables.add(x)  # and for the units after this one
        widen(x)

    def span(lps: _Moves, j: int, i: int, cells: np.ndarray | None = None) -> bool:
        """Tables at the max of ``j`` in ``lps``, then at its min if still narrow; True when the
        column is wide (unbounded above included)."""
        for sign in (1.0, -1.0):
            x = lps.extreme(j, sign)
            if x is None:  # unbounded above (x >= 0 bounds the min)
                hi[i] = INF
                return True
            found(x if cells is None else blocks.table(cells, x))
            if wide(i):
                return True
        return False

    def wide(i: int) -> bool:
        return hi[i] - lo[i] >= need[i] - TOL

    def narrow() -> np.ndarray:
        return np.flatnonzero(hi - lo < need - TOL)

    def shift(lps: _Moves, j: int, i: int, cells: np.ndarray | None = None) -> None:
        """A short move of ``j`` in ``lps`` up by the whole width, else down by it."""
        for step in (need[i], -need[i]) if lps.z[j] >= need[i] else (need[i],):
            if (short := lps.short(j, step)) is not None:
                found(short if cells is None else blocks.table(cells, short))
                return

    def spread() -> None:
        """Batched solves before one LP per column, as ``attacker._spread`` does for the outsider:
        each round minimises a random-signed sum of the narrow columns in this view (seeded by the
        view: the same rounds on every run), capped where a point of the view (the truth) obeys the
        caps, so the LP is feasible and every solution is a table of the view. It only widens the
        hull; a column still narrow gets its own LPs below, and every failure comes from those."""
        rng = np.random.default_rng(view + 2)
        for _ in range(PUSH_ROUNDS):
            left = narrow()
            if len(left) < PUSH_MIN:
                return
            caps = np.maximum(hi[left], lo[left] + need[left] + 1)
            if not moves.attack.push(cols[left], rng.choice((-1.0, 1.0), size=len(left)), caps):
                return
            widen(moves.attack.x)  # not kept: it moves most cells, so few other units could use it
            proven = left[hi[left] - lo[left] >= need[left] - TOL]
            solved[proven] = True
            if len(proven) < PUSH_GAIN * len(left):
                return

    spread()
    if moves.deviate is not None:  # a small component: short moves over all of it
        for i in narrow():
            if wide(i):
                continue  # a table found for an earlier column proves it
            solved[i] = True
            j, z = int(cols[i]), float(moves.z[cols[i]])
            shift(moves, j, i)
            if wide(i) or not span(moves, j, i) or hi[i] >= INF:
                continue  # proven by the move, narrowed to its exact interval, or unbounded
            # wide by the extremes, whose tables move many cells: short moves spanning the width
            # give tables that few units know a cell of, for the units after this one
            up = min(hi[i] - z, need[i])
            for step in (up, -(need[i] - up)):
                if step and (short := moves.short(j, step)) is not None:
                    found(short)
        return lo, hi, solved
    for i in narrow():  # a large one: blocks first, then the extremes over all of it
        if wide(i):
            continue
        solved[i] = True
        j = int(cols[i])
        for block in blocks.chain(j) if blocks is not None else ():
            lps, cells, free = blocks.view(block, view, fixed)
            at = int(np.searchsorted(cells, j))
            if free[at]:
                shift(lps, at, i, cells)
                if wide(i) or span(lps, at, i, cells):
                    break
        if not wide(i):
            span(moves, j, i)  # still narrow: [lo, hi] is the exact interval
    return lo, hi, solved


def _settle(
    a: sp.csr_matrix,
    values: np.ndarray,
    suppressed: np.ndarray,
    required: np.ndarray,
    intruders: Intruders,
    pairs: sp.csr_matrix,
    checked: np.ndarray,
    outsider: np.ndarray,
    labels: np.ndarray,
    relations: Relations | None,
) -> _Settled:
    """Step 3 of ``intruder_intervals``: the pairs neither certificates nor decomposition settle, and
    the outsider on the cells no certificate proves (``outsider``, indices into ``checked``).

    Per component of suppressed cells, one pair of LPs (``_Moves``): the outsider first, then each
    unit (knowing most cells first, then by name) with its cells of the component held at the
    truth, for its cells the tables found so far do not already prove. Every solution is kept (``_Tables``):
    a table is one the unit cannot rule out if it differs from the truth on no cell the unit knows,
    and the unit's interval contains the hull of those tables' values (its feasible set is convex),
    so most pairs are proven without an LP of their own. A pair the tables do not prove gets its
    exact interval from the unit's LP (both directions), which is then the failure reported.
    """
    n_units = len(intruders.names)
    nc = len(checked)
    out = _Settled([], np.zeros(nc, dtype=bool))
    wanted = np.zeros(nc, dtype=bool)
    wanted[outsider] = True
    wanted[pairs.indices] = True
    ks_all = np.flatnonzero(wanted)
    if len(ks_all) == 0:
        return out
    a_csc = sp.csc_matrix(a)
    by_label = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[by_label], np.arange(int(labels.max()) + 2))
    is_outsider = np.zeros(nc, dtype=bool)
    is_outsider[outsider] = True
    pairs_csc = sp.csc_matrix(pairs)
    knows = intruders.knows
    order = sorted(range(n_units), key=lambda i: intruders.names[i])
    rank = np.empty(n_units, dtype=np.int64)
    rank[order] = np.arange(n_units)
    comp = labels[checked[ks_all]]
    for c in np.unique(comp):
        members = np.sort(by_label[bounds[c] : bounds[c + 1]])
        ks = ks_all[comp == c]
        cols = np.searchsorted(members, checked[ks])
        small = len(members) <= SHORT_MAX_CELLS
        moves = _Moves(a_csc, values, members, relations, shorts=small)
        tables = _Tables(values[members])
        blocks = None if small else _Blocks(a_csc, values, members, relations, knows)
        need = required[checked[ks]]

        lo, hi, _ = _prove(moves, tables, moves.fixed, cols, need, blocks)
        bad = is_outsider[ks] & (hi - lo < need - TOL)
        out.outsider_fails[ks[bad]] = True
        out.failures += [
            IntruderFailure(int(checked[k]), OUTSIDER, float(x), float(y), float(r))
            for k, x, y, r in zip(ks[bad], lo[bad], hi[bad], need[bad], strict=True)
        ]
        sub = pairs_csc[:, ks].tocoo()  # (unit, position in ks)
        fixes = {}
        for u in set(sub.row.tolist()):
            known = knows.indices[knows.indptr[u] : knows.indptr[u + 1]]
            fixes[u] = np.searchsorted(members, known[np.isin(known, members)])
        # units knowing more first: a table that holds a CPA's cells holds those of every unit
        # below it, so their pairs are mostly proven by the CPA's tables
        for u in sorted(fixes, key=lambda i: (-len(fixes[i]), rank[i])):
            sel = np.zeros(len(ks), dtype=bool)
            sel[sub.col[sub.row == u]] = True
            fixed = fixes[u]
            moves.fix(fixed)
            lo, hi, solved = _prove(moves, tables, fixed, cols[sel], need[sel], blocks, u)
            bad = hi - lo < need[sel] - TOL
            out.failed += int(bad.sum())
            out.by_tables += int((~bad & ~solved).sum())
            out.by_lp += int((~bad & solved).sum())
            out.failures += [
                IntruderFailure(int(checked[k]), intruders.names[u], float(x) + 0.0, float(y), float(r))
                for k, x, y, r in zip(ks[sel][bad], lo[bad], hi[bad], need[sel][bad], strict=True)
            ]
    return out


def intruder_intervals(
    system,
    values: np.ndarray,
    suppressed: np.ndarray,
    required: np.ndarray,
    intruders: Intruders,
    moves: sp.spmatrix | None = None,
    relations: Relations | None = None,
    search: bool = True,
) -> IntruderReport:
    """Check every primary (``required > 0``) against the outsider and each intruder not knowing it.

    ``system``: a ``Grid`` or linked ``UnionSystem`` (its ``constraints`` ``A``, ``A z = 0``);
    ``moves``: optional certificate cubes (rows of ``±1`` over cells, e.g. ``Hypercubes.moves()``).
    Why the result is sound:

    1. **Certificates.** A row ``d`` is believed only if it is ``±1``, ``A d = 0`` exactly and every
       corner is suppressed (checked here). Then for every ``t`` in ``[-t_down, t_up]`` (smallest
       value on a +1 corner, on a -1 corner) ``z + t d`` is non-negative, additive, and equal to the
       truth on every cell that is not a corner. A unit that knows no corner sees exactly what it
       knows in that table too, so it cannot tell it from the truth: a +1 corner ``p`` can be
       anywhere in ``[z_p - t_down, z_p + t_up]`` for it (reversed on a -1 corner). The attacker's
       feasible set is convex, so the hull of these ranges over all cubes through ``p`` that the unit
       knows no corner of lies in its interval (as ``certified_intervals`` combines them). ``p`` is
       proven against the unit when that hull reaches ``required[p]``; it can fail only for units
       that know a corner of some cube through ``p`` (or for every unit, if the cubes through ``p``
       do not prove it even against the outsider): the "blocked" pairs.
    2. **Decomposition.** Published cells are constants for everyone, so the attacker's LP splits
       into components of suppressed cells linked by shared equations, and ``p``'s interval depends
       only on the equations of its component. A unit that knows no suppressed cell of that
       component adds no constraint to it: its interval for ``p`` is the outsider's, which a
       certificate proves or one outsider LP checks (``by_outsider``).
    Search (``search=True``): for each blocked pair left after step 2, and for
       the outsider on cells no move proves, the fast method's candidate cubes through ``p``
       (``Hypercubes._candidates``) are scanned for one whose corners are all hidden already, none
       known to the unit, wide enough; found cubes are only candidates, verified as in step 1,
       which is then redone with them. Most pairs end here, without an LP.
    **Stronger units.** Of the pairs left, one whose unit ``b`` knows nothing some other unit ``a``
       not knowing ``p`` does not also know is settled by ``(a, p)`` (``_dominated``): only the
       highest units of a hierarchy are solved for.
    3. **LP.** The remaining pairs (blocked unit, knows a hidden cell of ``p``'s component, does not
       know ``p``) go to ``exact_intervals`` with the unit's cells published (``suppressed &
       ~knows[u]``) and no requirement on its own cells: one call per unit over all its primaries,
       on the sub-system of their components (``_unit_intervals``). The outsider gets one such call
       for the cells no move proves.

    With ``relations`` (``G x <= h``, ``disclosure.relations``) a move's steps are also limited by
    the relation rows (``Relations.limits``, as ``certified_intervals`` does), components are taken
    over the equations and relation rows together, and every LP sees the relations (on the whole
    system). Units are visited in name order and cells by number, so the
    result is deterministic.
    """
    a = sp.csr_matrix(system.constraints)
    values = np.asarray(values, dtype=np.float64)
    suppressed = np.asarray(suppressed, dtype=bool)
    required = np.asarray(required, dtype=np.float64)
    n = len(values)
    if suppressed.shape != (n,) or required.shape != (n,):
        raise DisclosureError("values, suppressed and required must be cell-ordered arrays of one length")
    knows = intruders.knows
    if knows.shape[1] != n:
        raise DisclosureError(f"intruders know cells of a {knows.shape[1]}-cell system, not {n}")
    n_units = len(intruders.names)
    checked = np.flatnonzero(required > 0)
    nc = len(checked)
    where = np.full(n, -1, dtype=np.int64)
    where[checked] = np.arange(nc)

    # 1. certificates (verified here), then for the pairs they leave a search for cubes of hidden cells
    corners, downs, ups, rejected = _valid_moves(a, values, suppressed, moves, relations)
    blocked, certified = _certify(corners, downs, ups, knows, checked, where, required)
    known_checked = sp.csr_matrix(knows[:, checked], dtype=bool)

    # 2. which blocked units know a hidden cell of p's component (else they see what the outsider sees)
    labels = _components(a, suppressed)  # relation rows do not join components (attacker.exact_intervals)
    n_comp = int(labels.max()) + 1
    hidden = np.flatnonzero(suppressed)
    member = sp.csr_matrix(
        (np.ones(len(hidden)), (hidden, labels[hidden])), shape=(n, max(n_comp, 1))
    )  # cells × components
    unit_comp = sp.csr_matrix((knows.astype(np.float64) @ member) > 0)
    lab = labels[checked]
    comp_of = sp.csr_matrix(
        (np.ones(int((lab >= 0).sum())), (lab[lab >= 0], np.flatnonzero(lab >= 0))), shape=(max(n_comp, 1), nc)
    )
    affected = sp.csr_matrix((unit_comp.astype(np.float64) @ comp_of) > 0)
    lp_pairs = sp.csr_matrix(blocked.multiply(affected), dtype=bool)
    if search and (lp_pairs.nnz or not certified.all()):
        found = _search(system, values, suppressed, required, intruders, lp_pairs, checked, certified)
        if found.shape[0]:  # verified like any other move, then step 1 again with them
            more = _valid_moves(a, values, suppressed, found, relations)
            corners, downs, ups = (
                sp.vstack([x, y], format="csr") for x, y in zip((corners, downs, ups), more[:3], strict=True)
            )
            blocked, certified = _certify(corners, downs, ups, knows, checked, where, required)
            lp_pairs = sp.csr_matrix(blocked.multiply(affected), dtype=bool)
    lp_pairs.eliminate_zeros()
    stronger = _dominated(knows, known_checked, lp_pairs)
    lp_pairs = sp.csr_matrix(lp_pairs > stronger)
    lp_pairs.sort_indices()

    unc = np.flatnonzero(~certified)
    settled = _settle(a, values, suppressed, required, intruders, lp_pairs, checked, unc, labels, relations)
    failures, outsider_fails = settled.failures, settled.outsider_fails

    pairs = n_units * nc - known_checked.nnz
    n_blocked = blocked.nnz
    outsider_pairs = sp.csr_matrix(blocked > (lp_pairs + stronger))
    outsider_failed = int(outsider_fails[outsider_pairs.indices].sum()) if outsider_pairs.nnz else 0
    failures.sort(key=lambda f: (f.unit != OUTSIDER, f.unit, f.cell))
    return IntruderReport(
        intruders=tuple(sorted(intruders.names)),
        pairs=int(pairs),
        by_certificate=int(pairs - n_blocked),
        by_stronger=int(stronger.nnz),
        by_outsider=int(outsider_pairs.nnz - outsider_failed),
        by_tables=settled.by_tables,
        by_lp=settled.by_lp,
        failed_pairs=settled.failed + outsider_failed,
        failures=tuple(failures),
        rejected_moves=rejected,
    )


def _label(system, cell: int) -> str:
    coords = getattr(system, "coords", None)
    return f"{cell} {coords(cell)}" if coords is not None else str(cell)


def protect_against(
    system,
    values: np.ndarray,
    primary: np.ndarray,
    required: np.ndarray,
    suppressed: np.ndarray,
    intruders: Intruders,
    locked: np.ndarray | None = None,
    moves: sp.spmatrix | None = None,
    relations: Relations | None = None,
    cubes: bool = True,
) -> tuple[np.ndarray, IntruderReport]:
    """Hide further cells until ``intruder_intervals`` passes; returns the pattern and the final check.

    First ``_unit_cubes``: for every pair the given moves leave open, a cube the unit knows no
    corner of (a certificate, no LP). Then every pair is checked, and each round repairs the failing
    units in name order (the outsider first) and checks the cells that failed again (hiding more
    only widens intervals, so what passed stays passed). In a round, a unit's failing primaries are
    checked again against the current pattern (an earlier unit's repair may have fixed them). Each
    still failing primary first gets the cheapest certifying hypercube whose corners the unit does
    not know and that are neither ``locked`` nor headline cells (``Hypercubes.cube_for``, with
    ``cubes=True``; relation rows limit its steps; a national or first-level figure joins only
    through the Heuristic, which takes it last: a cube through one is often the cheapest against a
    CPA, and hid the demo's national sustainment total when allowed): all its corners hidden, it
    proves the primary against that unit (see ``intruder_intervals``), usually with one or two new
    cells. For the primaries no such cube exists for, ``secondary.Heuristic`` runs in the unit's
    view: cells it knows are published to it (``start = suppressed & ~knows[u]``, primaries and
    requirements it knows dropped) and may not be hidden (``locked | knows[u]``: hiding a cell the
    intruder knows is useless against it), auditing those primaries only (``only=``), without
    pruning. Its extra cells are added to the pattern.

    Termination: a cube is chosen only if it proves the primary against the unit, and the
    Heuristic returns only once the unit's primaries pass in its view, so every round with a
    failure hides at least one more cell (or adds a cube of hidden cells the check's search missed,
    which proves the pair next round); hiding more only widens every interval against every unit
    (fewer constants in each unit's LP; moves need only their corners hidden), so what passed
    before stays passed. A round that does neither while failures remain raises.
    The report's ``moves`` are the given moves plus the cubes added: hand them to a later check.
    Determinism: units by name, cells by number, and the Heuristic is deterministic.
    A primary that cannot be protected against a unit (``AuditFailed`` from the Heuristic) raises
    ``AuditFailed`` naming the unit and the cells.
    """
    values = np.asarray(values, dtype=np.float64)
    primary = np.asarray(primary, dtype=bool)
    required = np.asarray(required, dtype=np.float64)
    n = len(values)
    locked = np.zeros(n, dtype=bool) if locked is None else np.asarray(locked, dtype=bool)
    start = np.asarray(suppressed, dtype=bool) | primary
    pattern = start.copy()
    extra = {} if relations is None else {"relations": relations}
    knows = intruders.knows
    index = {name: u for u, name in enumerate(intruders.names)}
    rounds = 0
    repaired: list[str] = []
    a = sp.csr_matrix(system.constraints)
    new_moves: list[sp.csr_matrix] = []
    if cubes:
        pattern, moves, repaired = _unit_cubes(
            system, values, primary, required, pattern, intruders, locked, moves, relations
        )
    check = first = intruder_intervals(system, values, pattern, required, intruders, moves, relations)
    while not check.ok:
        rounds += 1
        before = int(pattern.sum())
        failing: dict[str, list[int]] = {}
        for f in check.failures:
            failing.setdefault(f.unit, []).append(f.cell)
        labels = None
        for name in sorted(failing, key=lambda s: (s != OUTSIDER, s)):
            known = np.zeros(n, dtype=bool)
            if name != OUTSIDER:
                u = index[name]
                known[knows.indices[knows.indptr[u] : knows.indptr[u + 1]]] = True
            cells = np.unique(np.asarray(failing[name], dtype=np.int64))
            if labels is None:  # components of the current pattern
                labels = _components(a, pattern)
            lo, hi = _unit_intervals(a, values, pattern, required, known, cells, labels, relations)
            cells = cells[hi - lo < required[cells] - TOL]
            if len(cells) == 0:  # an earlier unit's repair fixed them
                continue
            need = np.where(known, 0.0, required)
            if cubes:  # a cube of cells the unit does not know proves p against it
                run = Hypercubes(
                    system,
                    values,
                    primary & ~known,
                    need,
                    locked=locked | known,
                    relations=relations,
                    spare_headlines=True,
                )
                run.suppressed = pattern.copy()
                proven = np.array([run.cube_for(int(c)) for c in cells], dtype=bool)
                if run.cubes:
                    new_moves.append(run.moves())
                    pattern |= run.suppressed
                    labels = None
                cells = cells[~proven]
                if len(cells) == 0:
                    repaired.append(name)
                    continue
            heuristic = Heuristic(system, values, primary & ~known, need, prune=False, locked=locked | known, **extra)
            try:
                done = heuristic.run(start=pattern & ~known, only=cells)
            except AuditFailed as exc:
                where = ", ".join(_label(system, int(c)) for c in cells[:3])
                more = f" (+{len(cells) - 3} more)" if len(cells) > 3 else ""
                raise AuditFailed(f"cannot protect cell(s) {where}{more} against intruder {name!r}: {exc}") from exc
            if (done.suppressed & ~pattern).any():
                pattern |= done.suppressed
                labels = None
            repaired.append(name)
        if int(pattern.sum()) == before and not new_moves:  # cannot happen (see above); never loop for ever
            raise AuditFailed(f"intruder repair made no progress; failures: {check.failures[:3]}")
        moves = _stack(moves, new_moves, n)
        new_moves = []
        # only the cells that failed are checked again: what passed stays passed (see above)
        again = np.zeros(n, dtype=bool)
        again[[f.cell for f in check.failures]] = True
        check = intruder_intervals(system, values, pattern, np.where(again, required, 0.0), intruders, moves, relations)
    report = replace(
        check,
        pairs=first.pairs,
        by_earlier_round=first.pairs - check.pairs,
        added=int((pattern & ~start).sum()),
        rounds=rounds,
        repaired=tuple(repaired),
    )
    report.moves = _stack(moves, [], n)
    return pattern, report


def _unit_cubes(
    system,
    values: np.ndarray,
    primary: np.ndarray,
    required: np.ndarray,
    pattern: np.ndarray,
    intruders: Intruders,
    locked: np.ndarray,
    moves: sp.spmatrix | None,
    relations: Relations | None,
) -> tuple[np.ndarray, sp.csr_matrix, list[str]]:
    """Certificates against the units before any LP: for every pair (primary ``p``, unit ``u``)
    the given moves leave unproven (``_certify``), the cheapest cube through ``p`` none of whose
    corners ``u`` knows (``Hypercubes.cube_for`` with ``u``'s cells locked), its corners hidden.
    Each such cube proves ``p`` against ``u`` and every other unit knowing none of its corners, so
    the check after it settles most pairs by certificate. Rounds repeat while a round adds a cube
    (a new cube can block nothing: blocking needs a known corner, and the pairs it proves stay
    proven); pairs (and primaries the moves do not prove against the outsider) no cube proves are
    left to the check's LP and to the repair loop. Deterministic: cells by number, units by name.
    Returns the pattern, the moves with the new cubes, and the units a cube was added against."""
    n = len(values)
    moves = _stack(moves, [], n)
    try:
        # headline cells join a pattern only through the LP repair, which takes them last
        run = Hypercubes(system, values, primary, required, locked=locked, relations=relations, spare_headlines=True)
    except (AssertionError, AttributeError, TypeError):  # not a Grid or linked system: no cubes to build
        return pattern, moves, []
    run.suppressed = pattern.copy()
    a = sp.csr_matrix(system.constraints)
    against: list[str] = []
    knows = intruders.knows
    checked = np.flatnonzero(required > 0)
    where = np.full(n, -1, dtype=np.int64)
    where[checked] = np.arange(len(checked))
    rank = np.argsort(np.argsort(np.array(intruders.names, dtype=object)))
    tried: set[tuple[int, int]] = set()
    while True:
        found = _stack(moves, [run.moves()], n)
        corners, downs, ups, _ = _valid_moves(a, values, run.suppressed, found, relations)
        blocked, certified = _certify(corners, downs, ups, knows, checked, where, required)
        coo = blocked.tocoo()
        keep = certified[coo.col]  # the outsider's failures go to the LP path
        pairs = sorted(
            (int(checked[k]), int(rank[u]), int(u))
            for u, k in zip(coo.row[keep], coo.col[keep], strict=True)
            if (int(checked[k]), int(u)) not in tried
        )
        added = len(run.cubes)
        for cell, _, u in pairs:
            tried.add((cell, u))
            known = np.zeros(n, dtype=bool)
            known[knows.indices[knows.indptr[u] : knows.indptr[u + 1]]] = True
            run.locked = locked | known
            if run.cube_for(cell) and intruders.names[u] not in against:
                against.append(intruders.names[u])
        run.locked = locked
        if len(run.cubes) == added:
            return run.suppressed, found, against


def _stack(moves: sp.spmatrix | None, more: list[sp.csr_matrix], n: int) -> sp.csr_matrix:
    parts = ([] if moves is None else [sp.csr_matrix(moves, dtype=np.float64)]) + more
    return sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, n))
