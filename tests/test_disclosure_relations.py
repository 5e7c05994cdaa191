"""Relations between cells beyond additivity (``G x <= h``): every method's pattern is safe against an
attacker who knows them, checked by an LP attacker written here (scipy's linprog over the
independent additivity matrix of tests/independent_audit.py), apart from disclosure/attacker.py."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from independent_audit import additivity_matrix
from scipy.optimize import linprog
from test_disclosure_protect import hierarchies

from disclosure import DisclosureError, Grid, Hierarchy, Rules, add_totals
from disclosure.attacker import certified_intervals, exact_intervals
from disclosure.errors import AuditFailed
from disclosure.hypercube import Hypercubes, hypercube
from disclosure.optimal import optimal
from disclosure.primary import insider_mask, primary_mask, required_widths
from disclosure.protect import secondary_pattern
from disclosure.relations import Relations, distinct_rows, tightest
from disclosure.secondary import heuristic

METHODS = ("fast", "optimal", "heuristic")


def lp_attacker(frame, dims, values, suppressed, g, h, cells, known=None):
    """Integer-tightened ``[ceil(min), floor(max)]`` of each cell in ``cells``: suppressed cells are the
    variables (``>= 0``), published cells constants, every additivity equation and ``g x <= h`` holds.
    ``known`` cells (an insider's own) are constants too."""
    if known is not None:
        suppressed = suppressed & ~known
    parents = {d: {c: (hr.parent(c) or "") for c in hr.codes} for d, hr in dims.items()}
    a = additivity_matrix(frame, parents).tocsc()
    g = sp.csc_matrix(g)
    free = np.flatnonzero(suppressed)
    known = np.where(suppressed, 0.0, values)
    a_eq, b_eq = a[:, free], -(a @ known)
    use = np.diff(sp.csr_matrix(a_eq).indptr) > 0
    a_ub, b_ub = g[:, free], h - g @ known
    out = {}
    for cell in cells:
        if not suppressed[cell]:
            out[cell] = (values[cell], values[cell])
            continue
        k = int(np.searchsorted(free, cell))
        bounds = []
        for sense in (1.0, -1.0):
            c = np.zeros(len(free))
            c[k] = sense
            r = linprog(c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq[use], b_eq=b_eq[use], bounds=(0, None), method="highs")
            if r.status == 3:
                bounds.append(np.inf)
            else:
                assert r.status == 0, r.message
                bounds.append(sense * r.fun)
        out[cell] = (np.ceil(bounds[0] - 1e-6), np.floor(bounds[1] + 1e-6))
    return out


def cell_of(grid, *codes):
    at = tuple(h.codes.index(c) for h, c in zip(grid.hierarchies, codes, strict=True))
    return int(np.ravel_multi_index(at, grid.shape))


def assert_safe(frame, dims, values, suppressed, required, g, h):
    cells = np.flatnonzero(required > 0)
    got = lp_attacker(frame, dims, values, suppressed, g, h, cells)
    for c in cells:
        lo, hi = got[c]
        assert lo <= values[c] <= hi
        assert hi - lo >= required[c] - 1e-6, (int(c), lo, hi, float(required[c]))


# ----- (a) the failing example: S <= 30 * O, with O = 0 where the cheapest partner is -----


def example():
    rows = Hierarchy.flat("r", ["r1", "r2", "r3"], total="T")
    cols = Hierarchy.flat("c", ["c1", "c2", "c3"], total="T")
    dims = {"r": rows, "c": cols}
    s = {("r1", "c1"): 3, ("r1", "c2"): 20, ("r1", "c3"): 30, ("r2", "c1"): 25, ("r2", "c2"): 0, ("r2", "c3"): 40}
    s |= {("r3", "c1"): 30, ("r3", "c2"): 35, ("r3", "c3"): 50}
    o = {k: (0 if k == ("r2", "c2") else 5) for k in s}
    base = pd.DataFrame([(r, c, s[r, c], o[r, c]) for r, c in s], columns=["r", "c", "n", "o"])
    frame = add_totals(base, dims, ["n", "o"])
    grid = Grid.of(dims)
    cells = grid.cell_index(frame)
    assert (cells == np.arange(grid.size)).all()
    values = frame["n"].to_numpy()
    other = frame["o"].to_numpy()
    rel = Relations(sp.identity(grid.size, format="csr"), 30.0 * other)  # S_c <= 30 O_c, O known exactly
    primary = primary_mask(values, Rules())
    required = required_widths(primary, Rules())
    return frame, dims, grid, values, primary, required, rel


def test_example_without_relations_picks_a_pinned_partner():
    frame, dims, grid, values, primary, required, rel = example()
    pinned = cell_of(grid, "r2", "c2")
    g, h = rel.matrix, rel.upper
    for method in ("fast", "optimal"):
        blind = secondary_pattern(grid, values, primary, required, method)
        assert blind.suppressed[pinned]  # the zero partner: cheapest, and useless once S <= 30 * 0 is known
        got = lp_attacker(frame, dims, values, blind.suppressed, g, h, np.flatnonzero(primary))
        assert any(hi - lo < 10 for lo, hi in got.values())
        aware = secondary_pattern(grid, values, primary, required, method, relations=rel)
        assert_safe(frame, dims, values, aware.suppressed, required, g, h)
    aware = secondary_pattern(grid, values, primary, required, "heuristic", relations=rel)
    assert_safe(frame, dims, values, aware.suppressed, required, g, h)


# ----- (c) the checker of certificates recomputes the relations' limits -----


def test_certified_intervals_refuses_width_a_relation_pins():
    _, _, grid, values, _, required, rel = example()
    at = {k: cell_of(grid, k[:2], k[2:]) for k in ("r1c1", "r1c2", "r2c1", "r2c2")}
    cube = np.zeros(grid.size)
    cube[[at["r1c1"], at["r2c2"]]] = 1
    cube[[at["r1c2"], at["r2c1"]]] = -1
    moves = sp.csr_matrix(cube)
    suppressed = cube != 0
    p = at["r1c1"]
    blind = certified_intervals(grid.constraints, values, suppressed, required, moves)
    assert blind.upper[blind.cells == p][0] - blind.lower[blind.cells == p][0] == 20
    pinned = certified_intervals(grid.constraints, values, suppressed, required, moves, relations=rel)
    assert pinned.lower[pinned.cells == p][0] == pinned.upper[pinned.cells == p][0] == 3
    # a fractional limit is floored: 2 * x_22 <= 5 allows integer steps up to 2
    half = Relations(sp.csr_matrix(([2.0], ([0], [at["r2c2"]])), shape=(1, grid.size)), np.array([5.0]))
    got = certified_intervals(grid.constraints, values, suppressed, required, moves, relations=half)
    assert (got.lower[got.cells == p][0], got.upper[got.cells == p][0]) == (3, 5)
    exact = exact_intervals(grid.constraints, values, suppressed, required, relations=half)
    assert (exact.lower[exact.cells == p][0], exact.upper[exact.cells == p][0]) == (3, 5)
    # the truth must satisfy the relations
    with pytest.raises(DisclosureError):
        wrong = Relations(half.matrix, [-1.0])
        certified_intervals(grid.constraints, values, suppressed, required, moves, relations=wrong)


def test_fast_method_records_relation_limits_in_its_certificates():
    frame, dims, grid, values, primary, required, rel = example()
    run = Hypercubes(grid, values, primary, required, relations=rel)
    pattern = run.run(prune=False)
    assert pattern.proof == "certificates"
    assert pattern.moves is not None and pattern.moves.shape[0] == len(run.steps) > 0
    checked = certified_intervals(grid.constraints, values, pattern.suppressed, required, pattern.moves, relations=rel)
    assert checked.ok.all()
    assert_safe(frame, dims, values, pattern.suppressed, required, rel.matrix, rel.upper)


# ----- (b) random hierarchical tables and random valid relations -----


@st.composite
def cases(draw):
    ndim = draw(st.sampled_from([2, 2, 3]))
    width, depth = (3, 2) if ndim == 2 else (2, 1)
    dims = {f"d{i}": draw(hierarchies(f"d{i}", max_depth=depth, max_children=width)) for i in range(ndim)}
    idx = pd.MultiIndex.from_product([h.leaves for h in dims.values()], names=list(dims)).to_frame(index=False)
    idx["n"] = draw(st.lists(st.one_of(st.integers(0, 12), st.integers(0, 60)), min_size=len(idx), max_size=len(idx)))
    frame = add_totals(idx, dims, ["n"])
    grid = Grid.of(dims)
    assert (grid.cell_index(frame) == np.arange(grid.size)).all()
    values = frame["n"].to_numpy().astype(np.float64)
    n = grid.size
    rows, cols, vals, upper = [], [], [], []
    small = values < 10  # the cells the threshold rule makes primary
    tight = st.sampled_from([0, 0, 0, 1, 3, 10, 40])
    loose = st.sampled_from([10, 12, 40])  # a primary pinned closer than its width cannot be protected

    def add(cells, coefs):
        rows.extend([len(upper)] * len(cells))
        cols.extend(cells)
        vals.extend(coefs)
        upper.append(float(np.dot(coefs, values[cells])) + draw(loose if small[cells].any() else tight))

    # per-cell upper bounds c * (another measure), which is at least this cell's value
    for cell in draw(st.lists(st.integers(0, n - 1), max_size=n, unique=True)):
        c = draw(st.sampled_from([1.0, 2.0, 30.0]))
        add([cell], [1.0 / c])  # x_c <= c * O_c  <=>  x_c / c <= O_c
    # running sums along the first dimension's leaves, for each combination of the other dimensions' leaves
    order = [h.leaves for h in dims.values()]
    if draw(st.booleans()):
        for rest in pd.MultiIndex.from_product(order[1:]).tolist():
            rest = rest if isinstance(rest, tuple) else (rest,)
            acc = []
            for leaf in order[0]:
                acc.append(cell_of(grid, leaf, *rest))
                add(list(acc), [1.0] * len(acc))
    # a few general rows with mixed signs and fractional coefficients
    for _ in range(draw(st.integers(0, 3))):
        cells = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=3, unique=True))
        pick = st.sampled_from([-2.0, -1.0, -0.5, 0.5, 1.0, 3.0])
        coefs = draw(st.lists(pick, min_size=len(cells), max_size=len(cells)))
        add(cells, coefs)
    g = sp.csr_matrix((vals, (rows, cols)), shape=(len(upper), n))
    singletons = draw(st.sampled_from(["ignore", "protect"]))
    return frame, dims, grid, values.astype(np.int64), Relations(g, np.array(upper)), singletons


@pytest.mark.slow
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cases())
def test_every_method_is_safe_against_an_attacker_who_knows_the_relations(case):
    frame, dims, grid, values, rel, singletons = case
    rules = Rules(singletons=singletons)
    primary = primary_mask(values, rules)
    required = required_widths(primary, rules)
    insiders = insider_mask(values, primary, rules)
    g, h = rel.matrix, rel.upper
    for method in (*METHODS, "fast-certificates"):
        try:
            if method == "fast-certificates":  # unpruned: the certificates are the whole proof
                got = hypercube(grid, values, primary, required, prune=False, insiders=insiders, relations=rel)
            else:
                got = secondary_pattern(grid, values, primary, required, method, insiders=insiders, relations=rel)
        except AuditFailed:
            # only when no pattern can work: even hiding everything leaves a primary too narrow, for the
            # outsider or for a single contributor who knows its own cell (when those are protected)
            assert hopeless(frame, dims, values, required, insiders, g, h), method
            continue
        assert_safe(frame, dims, values, got.suppressed, required, g, h)


def hopeless(frame, dims, values, required, insiders, g, h) -> bool:
    everything = np.ones(len(values), dtype=bool)
    cells = np.flatnonzero(required > 0)
    attackers = [(None, cells)]
    others = cells[~insiders[cells] & (values[cells] > 0)]  # what a single contributor must not narrow
    attackers += [(np.arange(len(values)) == i, others[others != i]) for i in np.flatnonzero(insiders)]
    for known, targets in attackers:
        widths = lp_attacker(frame, dims, values, everything, g, h, targets, known)
        if any(hi - lo < required[c] - 1e-6 for c, (lo, hi) in widths.items()):
            return True
    return False


# ----- (d) without relations nothing changes; same input, same pattern -----


def test_no_relations_is_the_same_as_before():
    _, _, grid, values, primary, required, rel = example()
    empty = Relations(sp.csr_matrix((0, grid.size)), np.zeros(0))
    for make in (
        lambda **kw: hypercube(grid, values, primary, required, prune=False, **kw),
        lambda **kw: hypercube(grid, values, primary, required, prune=True, **kw),
        lambda **kw: heuristic(grid, values, primary, required, **kw),
        lambda **kw: optimal(grid, values, primary, required, **kw),
    ):
        base = make()
        for other in (make(relations=None), make(relations=empty), make()):
            assert other.suppressed.tobytes() == base.suppressed.tobytes()
            assert other.intervals.lower.tobytes() == base.intervals.lower.tobytes()
            assert other.intervals.upper.tobytes() == base.intervals.upper.tobytes()
        first, again = make(relations=rel), make(relations=rel)
        assert first.suppressed.tobytes() == again.suppressed.tobytes()


def test_relations_are_validated():
    with pytest.raises(DisclosureError):
        Relations(sp.csr_matrix(np.ones((2, 3))), np.zeros(3))
    with pytest.raises(DisclosureError):
        Relations(sp.csr_matrix(np.ones((1, 3))), np.array([np.inf]))
    rel = Relations(sp.csr_matrix(np.ones((1, 3))), np.array([6.0]))
    assert rel.slack(np.array([1, 2, 3])).tolist() == [0.0]
    rel.check(np.array([1, 2, 3]))
    with pytest.raises(DisclosureError):
        rel.check(np.array([1, 2, 4]))


# ----- the optimal method never hides more value than the fast one -----


@st.composite
def cubes(draw):
    dims = {f"d{i}": draw(hierarchies(f"d{i}", max_depth=2, max_children=2)) for i in range(3)}
    idx = pd.MultiIndex.from_product([h.leaves for h in dims.values()], names=list(dims)).to_frame(index=False)
    idx["n"] = draw(st.lists(st.one_of(st.integers(0, 4), st.integers(0, 40)), min_size=len(idx), max_size=len(idx)))
    frame = add_totals(idx, dims, ["n"])
    grid = Grid.of(dims)
    values = np.zeros(grid.size, dtype=np.int64)
    values[grid.cell_index(frame)] = frame["n"].to_numpy()
    return grid, values


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cubes())
def test_optimal_never_hides_more_value_than_fast_with_singletons_protected(case):
    grid, values = case
    rules = Rules()  # singletons="protect"
    primary = primary_mask(values, rules)
    required = required_widths(primary, rules)
    insiders = insider_mask(values, primary, rules)
    fast = secondary_pattern(grid, values, primary, required, "fast", insiders=insiders)
    best = secondary_pattern(grid, values, primary, required, "optimal", insiders=insiders)
    assert values[best.suppressed].sum() <= values[fast.suppressed].sum()
    assert best.intervals.ok.all() and fast.intervals.ok.all()


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_steps_from_touched_columns_equal_the_product_over_all_rows(seed):
    """``Relations.limits`` gathers ``G d`` from the columns a move touches: the same steps as the
    full product ``G @ d.T`` (rows summing to exactly 0 limit nothing)."""
    rng = np.random.default_rng(seed)
    n, k, m = (int(x) for x in rng.integers(1, 40, size=3))
    g = sp.random(k, n, density=0.3, random_state=rng, format="csr")
    g.data = np.round(g.data * 6 - 3)
    relations = Relations(g, np.abs(rng.normal(size=k)) * 10)
    d = sp.random(m, n, density=0.2, random_state=rng, format="csr")
    d.data = np.sign(d.data - 0.5)
    slack = np.abs(rng.normal(size=k)) * 5
    gd = sp.csr_matrix(relations.matrix @ d.T)
    gd.eliminate_zeros()
    gd = gd.tocoo()
    ratio = slack[gd.row] / np.abs(gd.data)
    down, up = np.full(m, np.inf), np.full(m, np.inf)
    np.minimum.at(up, gd.col[gd.data > 0], ratio[gd.data > 0])
    np.minimum.at(down, gd.col[gd.data < 0], ratio[gd.data < 0])
    got_down, got_up = relations.limits(d, slack)
    floor = lambda t: np.where(np.isinf(t), t, np.floor(t + 1e-6))  # noqa: E731
    assert np.array_equal(got_down, floor(down)) and np.array_equal(got_up, floor(up))


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 30),
    st.integers(1, 8),
    st.lists(st.integers(0, 2**32 - 1), min_size=3, max_size=3),
)
def test_tightest_keeps_each_distinct_row_once_with_its_smallest_bound(n_rows, n_cols, seeds):
    """Rows with the same terms merge into one with the least bound, so the system (and every LP over
    it) is the same: each row given is implied by a kept row with its terms and a bound no larger;
    each kept row is one given, the one of least bound among the rows like it (so its bound is its
    own, which ``joint._grown_intervals``'s pricing needs); no two kept rows are alike.
    Rows repeat often here (few distinct ones, terms from a few values), as a running total's do
    over a few hidden cells."""
    rng = np.random.default_rng(seeds)
    distinct = sp.random(max(1, n_rows // 3), n_cols, density=0.5, random_state=rng, format="csr")
    distinct.data = rng.choice([-2.0, -1.0, 1.0, 30.0], size=len(distinct.data))
    g = sp.csr_matrix(distinct[rng.integers(0, distinct.shape[0], n_rows)])
    upper = rng.integers(0, 5, n_rows).astype(float)
    rows, bound = tightest(g, upper)
    assert (np.diff(rows) > 0).all()
    dense = g.toarray()
    kept_dense = dense[rows]
    for i in range(n_rows):
        if not dense[i].any():
            continue  # a row with no term says nothing
        like = [k for k in range(len(bound)) if np.array_equal(kept_dense[k], dense[i])]
        assert len(like) == 1 and bound[like[0]] <= upper[i]
    for k in range(len(bound)):
        same = [i for i in range(n_rows) if np.array_equal(dense[i], kept_dense[k])]
        assert same and bound[k] == upper[same].min()
        assert bound[k] == upper[rows[k]]  # its own bound: a dual on it prices the columns left out rightly
    assert len({kept_dense[k].tobytes() for k in range(len(bound))}) == len(bound)


def test_distinct_rows_keeps_every_equation_and_merges_only_one_sided_rows():
    """Equations (and two-sided rows) stay as given, even alike; one-sided rows merge by their terms."""
    g = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [1, 1, 0], [0, 1, 1], [1, 1, 0], [0, 1, 1]], dtype=float))
    lo = np.array([0.0, 0.0, -np.inf, -np.inf, -np.inf, -np.inf])
    hi = np.array([0.0, 0.0, 7.0, 3.0, 5.0, 9.0])
    rows, upper = distinct_rows(g, lo, hi)
    assert rows.tolist() == [0, 1, 3, 4] and upper.tolist() == [0.0, 0.0, 3.0, 5.0]  # each kept at its own bound
