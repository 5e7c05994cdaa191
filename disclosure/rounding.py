"""Rounding of published values: conventional (per cell) and controlled (keeps the table additive).

Conventional half-up rounding treats cells independently, so rounded totals differ from the sums of
their rounded children. Controlled rounding (Cox & Ernst 1982; Cox 1987; Salazar-González 2006)
moves every cell to one of its two adjacent multiples of the base *and* keeps every additivity
equation, at the cost of solving an integer program over the whole table.
"""

from __future__ import annotations

import highspy
import numpy as np
import scipy.sparse as sp

from disclosure.attacker import new_highs
from disclosure.errors import DisclosureError


def _check_base(base: int) -> None:
    if isinstance(base, bool) or not isinstance(base, int | np.integer) or base < 1:
        raise DisclosureError(f"rounding base must be an integer >= 1, got {base!r}")


def round_conventional(values: np.ndarray, base: int | None) -> np.ndarray:
    """Round non-negative integers half-up to a multiple of ``base`` (0 stays 0).

    Half-up on integers: ``v`` goes up when ``v mod b >= ceil(b/2)``, i.e. ``floor((v + floor(b/2)) / b) * b``.
    """
    v = np.asarray(values, dtype=np.int64)
    if base is None or base == 1:
        return v.copy()
    _check_base(base)
    if (v < 0).any():
        raise DisclosureError("only non-negative values can be rounded")
    return (v + base // 2) // base * base


def rounding_interval(rounded: np.ndarray, base: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Integer interval of true values that round to ``rounded``: ``[r - floor(b/2), r + ceil(b/2) - 1]``, >= 0."""
    r = np.asarray(rounded, dtype=np.int64)
    if base is None or base == 1:
        return r.copy(), r.copy()
    _check_base(base)
    lower = np.maximum(r - base // 2, 0)
    upper = r + (base - base // 2) - 1
    return lower, upper


def controlled_rounding_interval(rounded: np.ndarray, base: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Integer interval of true values behind a controlled-rounded ``r``: ``[r - b + 1, r + b - 1]``, >= 0.

    Controlled rounding may round either way (the choice depends on the whole table), so an
    attacker only knows the true value is within less than one base of ``r``; this is the interval
    an audit of a controlled-rounded release must use instead of :func:`rounding_interval`.
    """
    r = np.asarray(rounded, dtype=np.int64)
    if base is None or base == 1:
        return r.copy(), r.copy()
    _check_base(base)
    return np.maximum(r - base + 1, 0), r + base - 1


def round_controlled(
    values: np.ndarray, constraints: sp.spmatrix, base: int | None, *, nodes: int = 100_000
) -> np.ndarray:
    """Zero-restricted controlled rounding: adjacent multiples of ``base`` that keep ``constraints @ x == 0``.

    Each value that is not a multiple of ``b`` becomes ``floor`` or ``floor + b`` (a binary ``y``
    per such cell); multiples, including 0, stay as they are. The MILP (HiGHS) minimises the total
    absolute deviation ``Σ |rounded - value|``, which is linear in ``y``, subject to the additivity
    rows (``Grid.constraints``: parent − Σ children = 0) holding exactly. HiGHS runs single-threaded
    with a fixed seed and a zero gap, so the same input gives the same output.

    Feasibility: a 2-D table with totals always has a controlled rounding (its equations form a
    network, Cox & Ernst 1982), and a 2-D table with a hierarchy in one dimension had one in every
    randomised check. With hierarchies in *both* dimensions, or with 3 or more dimensions, there may
    be none (Causey, Cox & Ernst 1985; the tests hold a 2×2×2 and a 3×3 counterexample: an odd
    cycle of "exactly one of these two goes up"), and then this raises ``DisclosureError``. It
    also raises when ``nodes`` branch-and-bound nodes (HiGHS ``mip_max_nodes``, a count of work,
    not time) pass before any rounding is found; if they pass after one is found, the best one is
    returned (additive and adjacent, maybe not minimal, but the same on every machine).

    References: L. H. Cox, L. R. Ernst, "Controlled rounding", INFOR 20 (1982); B. D. Causey,
    L. H. Cox, L. R. Ernst, "Applications of transportation theory to statistical problems", JASA 80
    (1985); L. H. Cox, J. A. George, "Controlled rounding for tables with subtotals", Annals of
    Operations Research 20 (1989); L. H. Cox, "A constructive procedure for unbiased controlled
    rounding", JASA 82 (1987); J.-J. Salazar-González, "Controlled rounding and cell perturbation:
    statistical disclosure limitation methods for tabular data", Mathematical Programming 105 (2006).
    """
    v = np.asarray(values, dtype=np.int64)
    if v.ndim != 1:
        raise DisclosureError("controlled rounding needs a 1-D array of cell values")
    a = sp.csr_matrix(constraints)
    if a.shape[1] != len(v):
        raise DisclosureError(f"constraints have {a.shape[1]} columns but there are {len(v)} values")
    if (v < 0).any():
        raise DisclosureError("only non-negative values can be rounded")
    gap = a @ v.astype(np.float64)
    if np.any(np.abs(gap) > 1e-9):
        raise DisclosureError(
            f"values are not additive ({int((np.abs(gap) > 1e-9).sum())} constraint(s) violated): nothing to control"
        )
    if base is None or base == 1:
        return v.copy()
    _check_base(base)
    b = int(base)
    floor = v // b * b
    rest = v - floor
    free = np.flatnonzero(rest > 0)
    if len(free) == 0:
        return v.copy()
    # a @ (floor + b * y) == 0  <=>  a_free @ y == -(a @ floor) / b  (integral: a @ floor == -a @ rest, a mult. of b)
    a_free = sp.csc_matrix(a[:, free])
    rows = np.flatnonzero(np.diff(sp.csr_matrix(a_free).indptr) > 0)
    rhs = -(a @ floor)[rows] / b
    m = sp.csc_matrix(a_free[rows])
    m.sort_indices()
    cost = (b - 2 * rest[free]).astype(np.float64)  # deviation change when y = 1 instead of 0

    lp = highspy.HighsLp()
    lp.num_col_ = len(free)
    lp.num_row_ = len(rows)
    lp.col_cost_ = cost
    lp.col_lower_ = np.zeros(len(free))
    lp.col_upper_ = np.ones(len(free))
    lp.row_lower_ = rhs.astype(np.float64)
    lp.row_upper_ = rhs.astype(np.float64)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = m.indptr.astype(np.int32)
    lp.a_matrix_.index_ = m.indices.astype(np.int32)
    lp.a_matrix_.value_ = m.data.astype(np.float64)
    lp.integrality_ = [highspy.HighsVarType.kInteger] * len(free)
    h = new_highs()
    h.setOptionValue("random_seed", 0)
    h.setOptionValue("mip_rel_gap", 0.0)
    h.setOptionValue("mip_abs_gap", 0.0)
    h.setOptionValue("mip_max_nodes", int(nodes))
    h.passModel(lp)
    h.run()
    status = h.getModelStatus()
    S = highspy.HighsModelStatus
    has_solution = h.getInfo().primal_solution_status == 2  # kSolutionStatusFeasible
    if status == S.kInfeasible:
        raise DisclosureError(
            f"no controlled rounding to base {b} exists for this table: zero-restricted controlled rounding is not "
            "always feasible for 3-D tables or tables with hierarchies in more than one dimension (only 2-D tables "
            "with totals are guaranteed); use conventional rounding, another base, or round sub-tables"
        )
    limit = status in (S.kSolutionLimit, S.kIterationLimit)  # the node budget, a count of work
    if not (status == S.kOptimal or (limit and has_solution)):
        raise DisclosureError(
            f"controlled rounding failed: {h.modelStatusToString(status)}"
            + (f" after {nodes} nodes without a feasible rounding" if limit else "")
        )
    y = np.rint(np.asarray(h.getSolution().col_value, dtype=np.float64)).astype(np.int64)
    out = floor.copy()
    out[free] += b * y
    if np.any(a @ out != 0):  # never expected: guards against solver tolerance slips
        raise DisclosureError("controlled rounding solution is not additive (solver tolerance); try again")
    return out
