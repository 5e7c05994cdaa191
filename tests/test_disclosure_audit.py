"""Leak cases: patterns that a naive method would publish, and the audit must catch."""

import numpy as np
import pandas as pd
import pytest

from disclosure import AuditFailed, DisclosureError, Hierarchy, Rules, add_totals, audit, protect

ROW = {"item": Hierarchy.flat("item", ["a", "b", "c"])}


def one_dim(values: dict[str, int]) -> pd.DataFrame:
    return add_totals(pd.DataFrame({"item": list(values), "n": list(values.values())}), ROW, ["n"])


def with_pattern(frame: pd.DataFrame, primary: set, secondary: set, col: str = "n", base: int | None = None):
    f = frame.copy()
    keys = list(zip(*[f[c] for c in f.columns if c != col and c in ("item", "row", "col")], strict=True))
    keys = [k[0] if len(k) == 1 else k for k in keys]
    f["status"] = ["primary" if k in primary else "secondary" if k in secondary else "published" for k in keys]
    shown = f[col] if base is None else (f[col] + base // 2) // base * base
    f["published"] = pd.array(np.where(f["status"] == "published", shown, 0), dtype="Int64")
    f.loc[f["status"] != "published", "published"] = pd.NA
    return f


def test_single_suppressed_cell_with_published_total_leaks():
    f = one_dim({"a": 3, "b": 17, "c": 20})
    naive = with_pattern(f, {"a"}, set())
    report = audit(naive, ROW, rules=Rules(), value="n")
    assert not report.ok and report.checked == 1
    (fail,) = report.failures
    assert fail.cell == {"item": "a"} and fail.lower == fail.upper == 3 and fail.required == 10 and fail.value == 3
    with pytest.raises(AuditFailed, match=r"item=a.*\[3, 3\].*required 10"):
        report.raise_if_failed()


def test_protect_adds_a_secondary_for_the_single_cell():
    f = one_dim({"a": 3, "b": 17, "c": 20})
    res = protect(f, ROW, value="n", rules=Rules())
    status = dict(zip(res.frame["item"], res.frame["status"], strict=True))
    assert status["a"] == "primary"
    assert status["b"] == "secondary"  # smallest partner that covers the missing width 7
    assert status["c"] == "published" and status["Total"] == "published"
    assert res.counts == {"cells": 4, "primary": 1, "secondary": 1, "rounded": 0, "insider_unverified": 0}
    assert audit(res.frame, ROW, rules=Rules()).ok


def table3x3(v: list[list[int]]) -> tuple[pd.DataFrame, dict]:
    dims = {"row": Hierarchy.flat("row", ["A", "B", "C"]), "col": Hierarchy.flat("col", ["X", "Y", "Z"])}
    rows = [(r, c, v[i][j]) for i, r in enumerate("ABC") for j, c in enumerate("XYZ")]
    base = pd.DataFrame(rows, columns=["row", "col", "n"])
    return add_totals(base, dims, ["n"]), dims


def test_rectangle_with_small_partners_is_too_narrow():
    # AX=3 primary hidden in a 2x2 rectangle with AY=1, BX=1, BY=20: AX in [3-3, 3+1] = [0, 4]
    f, dims = table3x3([[3, 1, 30], [1, 20, 30], [30, 30, 30]])
    naive = with_pattern(f, {("A", "X"), ("A", "Y"), ("B", "X")}, {("B", "Y")})
    report = audit(naive, dims, rules=Rules(), value="n")
    assert not report.ok
    bad = {tuple(x.cell.values()): (x.lower, x.upper) for x in report.failures}
    assert bad[("A", "X")] == (0, 4)
    # every cell's single constraint has two suppressed cells: the naive singleton check passes
    res = protect(f, dims, value="n", rules=Rules())
    assert res.audit.ok and audit(res.frame, dims, rules=Rules()).ok


def test_rectangle_with_large_partners_is_safe():
    f, dims = table3x3([[3, 20, 30], [20, 20, 30], [30, 30, 30]])
    ok = with_pattern(f, {("A", "X")}, {("A", "Y"), ("B", "X"), ("B", "Y")})
    assert audit(ok, dims, rules=Rules()).ok


def test_rounding_intervals_are_honoured():
    # a=1, b=1 hidden, c=20 and Total=22 published as 20 and 20 (base 5): each is 18..22,
    # so a+b in [0, 4]: a in [0, 4]; an exact-values attacker would say [0, 2]
    f = one_dim({"a": 1, "b": 1, "c": 20})
    pat = with_pattern(f, {"a", "b"}, set(), base=5)
    report = audit(pat, ROW, rules=Rules(rounding_base=5))
    assert "interval" in report.method
    assert {(x.cell["item"], x.lower, x.upper) for x in report.failures} == {("a", 0, 4), ("b", 0, 4)}


def test_rounding_can_make_a_pattern_safe():
    # a=3, b=5 hidden, c=20, Total=28 -> 30: a+b in [28-2-22, 32-18] = [4, 14] so a in [0, 14] (width 14)
    f = one_dim({"a": 3, "b": 5, "c": 20})
    assert not audit(with_pattern(f, {"a", "b"}, set()), ROW, rules=Rules()).ok
    assert audit(with_pattern(f, {"a", "b"}, set(), base=5), ROW, rules=Rules(rounding_base=5)).ok


def test_unbounded_when_total_is_suppressed():
    f = one_dim({"a": 3, "b": 0, "c": 0})
    pat = with_pattern(f, {"a", "Total"}, set())
    assert audit(pat, ROW, rules=Rules()).ok


def test_required_series_instead_of_status():
    f = one_dim({"a": 3, "b": 17, "c": 20})
    pat = with_pattern(f, {"a"}, {"b"}).drop(columns="status")
    need = pd.Series(np.where(pat["item"] == "a", 10, 0), index=pat.index)
    assert audit(pat, ROW, rules=Rules(), required=need).ok
    need = pd.Series(np.where(pat["item"] == "a", 21, 0), index=pat.index)
    assert not audit(pat, ROW, rules=Rules(), required=need).ok
    with pytest.raises(DisclosureError, match="status"):
        audit(pat, ROW, rules=Rules())


def test_inconsistent_published_values_are_refused():
    f = one_dim({"a": 3, "b": 17, "c": 20})
    pat = with_pattern(f, {"a"}, {"b"})
    pat.loc[pat["item"] == "c", "published"] = 50
    with pytest.raises(DisclosureError, match="inconsistent"):
        audit(pat, ROW, rules=Rules())


def test_a_batched_solve_that_slips_to_infeasible_is_solved_again_from_scratch():
    """The capped LP of a push always has a solution (a point seen obeys every cap), so a warm
    start that ends "infeasible" is a solver slip. Ignored, it ended the rounds early and left
    thousands of cells to one LP pair each: the public audit of the demo took 584 s instead of 114 s."""
    import highspy
    import scipy.sparse as sp

    from disclosure.attacker import LP

    # x0 + x1 = x2, x2 within [10, 14] (a rounded total), x0 and x1 hidden
    bounds = np.array([0, 0, 10.0]), np.array([40, 40, 14.0])
    lp = LP(sp.csr_matrix([[1.0, 1.0, -1.0]]), np.zeros(1), np.zeros(1), *bounds)
    assert lp.feasible()
    real, calls = lp.run, []

    def slip_once(fresh: bool = False):
        calls.append(fresh)
        return highspy.HighsModelStatus.kInfeasible if len(calls) == 1 else real(fresh=fresh)

    lp.run = slip_once
    before = lp.hi_seen[:2] - lp.lo_seen[:2]
    lp.push(np.array([0, 1]), np.array([1.0, -1.0]), np.array([40.0, 40.0]))
    assert calls == [False, True]
    assert (lp.hi_seen[:2] - lp.lo_seen[:2] > before).all()  # the retry's point widened both ranges
