"""protect() end to end: random hierarchical tables always yield a pattern the independent audit accepts."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from disclosure import DisclosureError, Grid, Hierarchy, Rules, add_totals, audit, protect


@st.composite
def hierarchies(draw, name: str, max_depth: int = 2, max_children: int = 3) -> Hierarchy:
    """A random shallow tree (uneven depth, single-child nodes allowed)."""
    parents: dict[str, str] = {}

    def grow(code: str, depth: int) -> None:
        if depth >= max_depth:
            return
        n = draw(st.integers(0 if depth else 1, max_children))
        for i in range(n):
            child = f"{code}.{i}" if code != "T" else f"{name}{i}"
            parents[child] = code
            grow(child, depth + 1)

    grow("T", 0)
    return Hierarchy.from_parents(name, parents, total="T")


@st.composite
def tables(draw, ndim: int) -> tuple[pd.DataFrame, dict[str, Hierarchy]]:
    width = 4 if ndim == 2 else 2
    dims = {f"d{i}": draw(hierarchies(f"d{i}", max_depth=2, max_children=width)) for i in range(ndim)}
    leaves = [h.leaves for h in dims.values()]
    idx = pd.MultiIndex.from_product(leaves, names=list(dims)).to_frame(index=False)
    n = len(idx)
    small = st.integers(0, 12)
    big = st.integers(0, 60)
    values = draw(st.lists(st.one_of(small, big), min_size=n, max_size=n))
    idx["n"] = values
    return add_totals(idx, dims, ["n"]), dims


RULES = [Rules(), Rules(rounding_base=5), Rules(threshold=5, protection=3, rounding_base=3), Rules(zeros="unsafe")]


def check_safe(frame: pd.DataFrame, dims: dict, rules: Rules) -> None:
    res = protect(frame, dims, value="n", rules=rules)
    assert res.audit.ok
    exact_view = res.frame.copy()  # what an unrounded release of the same pattern would show
    exact_view["published"] = exact_view["published"].mask(exact_view["published"].notna(), exact_view["n"])
    exact = audit(exact_view, dims, rules=Rules(threshold=rules.threshold, protection=rules.protection))
    assert exact.ok, exact.failures
    rounded = audit(res.frame, dims, rules=rules)
    assert rounded.ok, rounded.failures
    assert exact.checked == rounded.checked == res.counts["primary"]
    # the published column is exactly: NA iff suppressed, else the rounded value
    hidden = res.frame["status"] != "published"
    assert res.frame["published"].isna().equals(hidden)
    assert (res.frame["status"] == "primary").sum() == res.counts["primary"]


SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.slow
@SETTINGS
@given(tables(2), st.sampled_from(RULES))
def test_protect_2d_passes_independent_audit(table, rules):
    check_safe(*table, rules)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(3), st.sampled_from(RULES))
def test_protect_3d_passes_independent_audit(table, rules):
    check_safe(*table, rules)


@pytest.mark.slow
@SETTINGS
@given(tables(2))
def test_audit_flags_unsuppressed_partner(table):
    """Publish one secondary cell that is a primary's only hidden partner in a constraint: recoverable."""
    frame, dims = table
    res = protect(frame, dims, value="n", rules=Rules())
    grid = Grid.of(dims)
    cells = grid.cell_index(res.frame)
    status = np.empty(grid.size, dtype=object)
    status[cells] = res.frame["status"].to_numpy()
    a = abs(grid.constraints).tocsr()
    choice = None
    for r in range(a.shape[0]):
        row = a.indices[a.indptr[r] : a.indptr[r + 1]]
        hidden = [int(c) for c in row if status[c] != "published"]
        if len(hidden) == 2 and sorted(status[hidden]) == ["primary", "secondary"]:
            choice = hidden if status[hidden[0]] == "primary" else hidden[::-1]
            break
    assume(choice is not None)
    p, s = choice
    leaked = res.frame.copy()
    where = np.flatnonzero(cells == s)[0]
    leaked.loc[leaked.index[where], "status"] = "published"
    leaked.loc[leaked.index[where], "published"] = int(leaked["n"].iloc[where])
    report = audit(leaked, dims, rules=Rules(), value="n")
    assert not report.ok
    hit = [f for f in report.failures if f.cell == grid.coords(p)]
    assert hit and hit[0].lower == hit[0].upper == hit[0].value


@SETTINGS
@given(tables(2))
def test_audit_flags_whatever_linear_algebra_determines(table):
    """With only primaries hidden, any primary fixed by the equations alone must be flagged."""
    frame, dims = table
    grid = Grid.of(dims)
    cells = grid.cell_index(frame)
    v = np.zeros(grid.size)
    v[cells] = frame["n"]
    primary = (v > 0) & (v < 10)
    assume(primary.any())
    f = frame.copy()
    f["status"] = np.where(primary[cells], "primary", "published")
    f["published"] = pd.array(np.where(primary[cells], 0, frame["n"]), dtype="Int64")
    f.loc[primary[cells], "published"] = pd.NA
    report = audit(f, dims, rules=Rules(), value="n")
    flagged = {tuple(x.cell.values()) for x in report.failures}
    a_s = grid.constraints[:, np.flatnonzero(primary)].toarray()
    rank = np.linalg.matrix_rank(a_s) if a_s.size else 0
    for k, c in enumerate(np.flatnonzero(primary)):
        e = np.zeros((1, a_s.shape[1]))
        e[0, k] = 1
        determined = a_s.size and np.linalg.matrix_rank(np.vstack([a_s, e])) == rank
        if determined:
            assert tuple(grid.coords(c).values()) in flagged


def test_determinism():
    rng = np.random.default_rng(7)
    dims = {
        "month": Hierarchy.flat("month", [f"2011-{m:02d}" for m in range(6, 12)]),
        "provider": Hierarchy.from_parents(
            "provider",
            {
                **{f"CPA{i}": "Total" for i in range(3)},
                **{f"P{i}{j}": f"CPA{i}" for i in range(3) for j in range(2)},
                **{f"S{i}{j}{k}": f"P{i}{j}" for i in range(3) for j in range(2) for k in range(3)},
            },
        ),
    }
    leaves = pd.MultiIndex.from_product([h.leaves for h in dims.values()], names=list(dims)).to_frame(index=False)
    leaves["n"] = rng.integers(0, 25, len(leaves))
    leaves["f"] = leaves["n"]
    frame = add_totals(leaves, dims, ["n", "f"]).sample(frac=1, random_state=3)
    first = protect(frame, dims, value="n", frequency="f", rules=Rules(rounding_base=5))
    second = protect(frame.copy(), dims, value="n", frequency="f", rules=Rules(rounding_base=5))
    pd.testing.assert_frame_equal(first.frame, second.frame)
    assert first.counts == second.counts
    assert list(first.frame.index) == list(frame.index)  # same row order as the input
    assert first.frame["published"].dtype == "Int64"
    assert audit(first.frame, dims, rules=Rules(rounding_base=5)).ok


def test_frequency_differs_from_value():
    dims = {"item": Hierarchy.flat("item", ["a", "b", "c"])}
    base = pd.DataFrame({"item": ["a", "b", "c"], "amount": [500, 700, 900], "people": [3, 40, 50]})
    frame = add_totals(base, dims, ["amount", "people"])
    res = protect(frame, dims, value="amount", frequency="people", rules=Rules())
    status = dict(zip(res.frame["item"], res.frame["status"], strict=True))
    assert status["a"] == "primary" and status["b"] == "secondary"


def test_unknown_method():
    dims = {"item": Hierarchy.flat("item", ["a"])}
    frame = pd.DataFrame({"item": ["Total", "a"], "n": [1, 1]})
    with pytest.raises(DisclosureError, match="method"):
        protect(frame, dims, value="n", method="simulated-annealing")


def test_everything_small_suppresses_enough():
    dims = {"item": Hierarchy.flat("item", ["a", "b"])}
    frame = add_totals(pd.DataFrame({"item": ["a", "b"], "n": [2, 3]}), dims, ["n"])
    res = protect(frame, dims, value="n", rules=Rules())
    assert (res.frame["status"] != "published").all()  # total 5 is primary too: all hidden, unbounded
    assert sp.issparse(Grid.of(dims).constraints)


@pytest.mark.slow
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(2))
def test_pruning_is_safe_and_never_hides_more(table):
    frame, dims = table
    full = protect(frame, dims, value="n", rules=Rules(), prune=False)
    pruned = protect(frame, dims, value="n", rules=Rules(), prune=True)
    assert audit(pruned.frame, dims, rules=Rules()).ok and audit(full.frame, dims, rules=Rules()).ok
    assert pruned.counts["secondary"] <= full.counts["secondary"]
    # pruning only releases cells: everything hidden after pruning was hidden before
    assert not ((pruned.frame["status"] != "published") & (full.frame["status"] == "published")).any()
