"""Primary rules: threshold (unchanged), magnitude rules (dominance, p%, pq), contributions, overrides.

Worked examples follow the definitions in Hundepool et al. 2012, ch. 4 (sec. 4.2 rules, 4.3 protection levels).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from disclosure import DisclosureError, Hierarchy, audit
from disclosure.primary import (
    apply_overrides,
    magnitude_primary,
    magnitude_required,
    primary_mask,
    protection_levels,
    required_widths,
    sensitive_magnitude,
    top_columns,
    top_contributions,
    tops_for_cells,
)
from disclosure.rules import Rules
from disclosure.secondary import heuristic
from disclosure.table import Grid

T = np.array([100.0, 100.0])
TOPS = np.array([[80.0, 15.0], [40.0, 35.0]])  # contributions 80, 15, 5 and 40, 35, 25


# --- threshold rule and Rules: existing behaviour --------------------------------------------------


def test_frequency_rule_unchanged() -> None:
    f = np.array([0, 1, 9, 10, 25])
    assert primary_mask(f, Rules(threshold=10)).tolist() == [False, True, True, False, False]
    assert primary_mask(f, Rules(threshold=10, zeros="unsafe")).tolist() == [True, True, True, False, False]
    assert required_widths(primary_mask(f, Rules()), Rules()).tolist() == [0.0, 10.0, 10.0, 0.0, 0.0]
    assert required_widths(np.array([True, False]), Rules(threshold=5, protection=3)).tolist() == [3.0, 0.0]


def test_rules_signature_and_properties_kept() -> None:
    r = Rules(10, "safe", None, 5)
    assert (r.threshold, r.zeros, r.protection, r.rounding_base) == (10, "safe", None, 5)
    assert r.protection_width == 10 and r.rounds
    assert not r.magnitude and r.top_n == 0
    assert Rules(dominance=(3, 80)).top_n == 3 and Rules(dominance=(1, 80), p_percent=10).top_n == 2
    assert Rules(pq=(10, 50)).magnitude


def test_rules_normalise_pairs_and_stay_hashable() -> None:
    r = Rules(dominance=[2, 85], pq=[10, 50])  # type: ignore[arg-type]
    assert r.dominance == (2, 85.0) and r.pq == (10.0, 50.0)
    assert r == Rules(dominance=(2, 85.0), pq=(10.0, 50.0))
    assert hash(r) == hash(Rules(dominance=(2, 85), pq=(10, 50)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dominance": (0, 75)}, "n must be an integer >= 1"),
        ({"dominance": (1.5, 75)}, "n must be an integer >= 1"),
        ({"dominance": (True, 75)}, "n must be an integer >= 1"),
        ({"dominance": (1, 100)}, "0 < k < 100"),
        ({"dominance": (1, 0)}, "0 < k < 100"),
        ({"dominance": (1, float("nan"))}, "0 < k < 100"),
        ({"dominance": (1, "75")}, "0 < k < 100"),
        ({"dominance": 75}, "must be a pair"),
        ({"dominance": (1, 75, 3)}, "must be a pair"),
        ({"p_percent": 0}, "0 < p <= 100"),
        ({"p_percent": 150}, "0 < p <= 100"),
        ({"p_percent": True}, "0 < p <= 100"),
        ({"p_percent": float("inf")}, "0 < p <= 100"),
        ({"pq": (20, 10)}, "0 < p < q <= 100"),
        ({"pq": (10, 10)}, "0 < p < q <= 100"),
        ({"pq": (10, 120)}, "0 < p < q <= 100"),
        ({"pq": (10, None)}, "two numbers"),
        ({"pq": "ab"}, "must be a pair"),
    ],
)
def test_rules_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(DisclosureError, match=message):
        Rules(**kwargs)


# --- magnitude rules: worked examples ------------------------------------------------------------


def test_dominance_1_75_worked_example() -> None:
    # 80 > 75% of 100: sensitive; 40 is not. UPL = 100/75 * 80 - 100 = 6.67.
    r = Rules(dominance=(1, 75))
    assert sensitive_magnitude(T, TOPS, r).tolist() == [True, False]
    assert protection_levels(T, TOPS, r) == pytest.approx([100 / 75 * 80 - 100, 0.0])


def test_dominance_2_85_worked_example() -> None:
    # 80 + 15 = 95 > 85: sensitive; 40 + 35 = 75 is not. UPL = 100/85 * 95 - 100.
    r = Rules(dominance=(2, 85))
    assert sensitive_magnitude(T, TOPS, r).tolist() == [True, False]
    assert protection_levels(T, TOPS, r) == pytest.approx([100 / 85 * 95 - 100, 0.0])


def test_dominance_boundary_is_strict() -> None:
    # exactly k % is not "exceeds k %"
    assert sensitive_magnitude(np.array([100.0]), np.array([[75.0, 25.0]]), Rules(dominance=(1, 75))).tolist() == [
        False
    ]


def test_p_percent_worked_example() -> None:
    # 0.1 * 80 = 8 > 100 - 80 - 15 = 5: sensitive, UPL = 3; 0.1 * 40 = 4 < 25: safe.
    r = Rules(p_percent=10)
    assert sensitive_magnitude(T, TOPS, r).tolist() == [True, False]
    assert protection_levels(T, TOPS, r).tolist() == [3.0, 0.0]
    assert magnitude_required(T, TOPS, r).tolist() == [6.0, 0.0]  # UPL + LPL, LPL = UPL


def test_p_percent_boundary_is_strict() -> None:
    # 0.1 * 50 = 5 == 60 - 50 - 5: the second largest misjudges the largest by exactly p %: safe
    assert not sensitive_magnitude(np.array([60.0]), np.array([[50.0, 5.0]]), Rules(p_percent=10))[0]


def test_pq_worked_example() -> None:
    # p=10, q=50: 8 > 0.5 * 5 = 2.5: sensitive, UPL = 5.5; 4 < 0.5 * 25 = 12.5: safe.
    r = Rules(pq=(10, 50))
    assert sensitive_magnitude(T, TOPS, r).tolist() == [True, False]
    assert protection_levels(T, TOPS, r).tolist() == [5.5, 0.0]


def test_pq_with_q_100_is_the_p_percent_rule() -> None:
    rng = np.random.default_rng(1)
    contrib = -np.sort(-rng.integers(0, 50, size=(200, 4)), axis=1).astype(float)
    total = contrib.sum(axis=1)
    a = protection_levels(total, contrib[:, :2], Rules(p_percent=15))
    b = protection_levels(total, contrib[:, :2], Rules(pq=(15, 100)))
    assert np.array_equal(a, b)


def test_few_contributors_and_empty_cells() -> None:
    total = np.array([0.0, 50.0, 60.0])
    tops = np.array([[0.0, 0.0], [50.0, 0.0], [40.0, 20.0]])  # empty, one contributor, two contributors
    for r in (Rules(p_percent=10), Rules(dominance=(2, 90)), Rules(pq=(10, 50))):
        assert sensitive_magnitude(total, tops, r).tolist() == [False, True, True]
    assert protection_levels(total, tops, Rules(p_percent=10)).tolist() == [0.0, 5.0, 4.0]


def test_rules_combine_by_widest_protection() -> None:
    r = Rules(dominance=(1, 75), p_percent=10)
    assert protection_levels(T, TOPS, r) == pytest.approx([max(100 / 75 * 80 - 100, 3.0), 0.0])
    assert not sensitive_magnitude(T, TOPS, Rules()).any()  # no magnitude rule: nothing sensitive


def test_one_dimensional_tops_read_as_largest_only() -> None:
    assert sensitive_magnitude(np.array([100.0]), np.array([80.0]), Rules(dominance=(1, 75))).tolist() == [True]


@pytest.mark.parametrize(
    ("total", "tops", "rules", "message"),
    [
        (T, TOPS[:, :1], Rules(p_percent=10), "need the 2 largest"),
        (T, TOPS, Rules(dominance=(3, 90)), "need the 3 largest"),
        (T, TOPS[:, ::-1], Rules(p_percent=10), "largest first"),
        (np.array([90.0, 100.0]), TOPS, Rules(p_percent=10), "exceed the cell total"),
        (T, -TOPS, Rules(p_percent=10), "non-negative"),
        (np.array([np.nan, 1.0]), TOPS, Rules(p_percent=10), "finite"),
        (T[:1], TOPS, Rules(p_percent=10), "cells"),
    ],
)
def test_magnitude_input_errors(total: np.ndarray, tops: np.ndarray, rules: Rules, message: str) -> None:
    with pytest.raises(DisclosureError, match=message):
        protection_levels(total, tops, rules)


def test_magnitude_primary_combines_threshold_and_magnitude() -> None:
    r = Rules(threshold=3, protection=2, p_percent=10)
    freq = np.array([3, 3, 2, 0])
    total = np.array([100.0, 100.0, 100.0, 0.0])
    tops = np.array([[80.0, 15.0], [40.0, 35.0], [40.0, 35.0], [0.0, 0.0]])
    primary, required = magnitude_primary(freq, total, tops, r)
    assert primary.tolist() == [True, False, True, False]
    assert required.tolist() == [6.0, 0.0, 2.0, 0.0]


# --- monotonicity properties ---------------------------------------------------------------------

contribs = st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=8)


def _cell(values: list[int], n: int) -> tuple[np.ndarray, np.ndarray]:
    s = sorted(values, reverse=True) + [0] * n
    return np.array([float(sum(values))]), np.array([s[:n]], dtype=float)


@settings(max_examples=300, deadline=None)
@given(contribs, st.data(), st.floats(min_value=1, max_value=100), st.integers(1, 3), st.floats(1, 99))
def test_small_new_contributor_never_adds_risk(values: list[int], data, p: float, n: int, k: float) -> None:
    """A new contributor no larger than the n-th largest leaves x1..xn unchanged and only adds to the
    remainder T - x1 - x2 (resp. T), so no rule can turn a safe cell sensitive and no UPL can grow.
    (A *large* newcomer can: it becomes x1 and the old x1 the informed x2.)"""
    q = data.draw(st.floats(min_value=p, max_value=100).filter(lambda x: x > p), label="q") if p < 100 else 100.0
    rules = Rules(dominance=(n, k), p_percent=p, pq=(p, q) if p < q else None)
    need = max(n, 2)
    ranked = sorted(values, reverse=True) + [0] * need
    y = data.draw(st.integers(min_value=0, max_value=ranked[need - 1]), label="y")
    before = protection_levels(*_cell(values, need), rules)[0]
    after = protection_levels(*_cell([*values, y], need), rules)[0]
    assert after <= before + 1e-9
    if before == 0:
        assert after == 0


@settings(max_examples=200, deadline=None)
@given(contribs, st.floats(1, 100), st.floats(1, 100))
def test_p_percent_is_monotone_in_p(values: list[int], p1: float, p2: float) -> None:
    """A stricter (larger) p flags every cell a looser p flags."""
    lo, hi = sorted((p1, p2))
    cell = _cell(values, 2)
    if sensitive_magnitude(*cell, Rules(p_percent=lo))[0]:
        assert sensitive_magnitude(*cell, Rules(p_percent=hi))[0]


# --- contributions per cell ------------------------------------------------------------------------

MONTH = Hierarchy.flat("month", ["m1", "m2"], total="Total")
PROV = Hierarchy.from_parents("prov", {"A": "Total", "a1": "A", "a2": "A", "B": "Total"}, total="Total")
DIMS = {"month": MONTH, "prov": PROV}


def test_top_contributions_without_dims_groups_given_cells() -> None:
    rec = pd.DataFrame({"cell": ["x", "x", "x", "y"], "v": [5, 80, 15, 7]})
    out = top_contributions(rec, ["cell"], "v", n=3)
    assert out.columns.tolist() == ["cell", "total", "contributors", *top_columns(3)]
    assert out.to_dict("records") == [
        {"cell": "x", "total": 100, "contributors": 3, "top1": 80, "top2": 15, "top3": 5},
        {"cell": "y", "total": 7, "contributors": 1, "top1": 7, "top2": 0, "top3": 0},
    ]


def test_top_contributions_sums_a_contributor_within_a_cell() -> None:
    rec = pd.DataFrame({"cell": ["x"] * 4, "unit": ["u", "u", "w", "z"], "v": [30, 30, 50, 0]})
    out = top_contributions(rec, ["cell"], "v", contributor="unit")
    assert out[["total", "contributors", "top1", "top2"]].iloc[0].tolist() == [110, 2, 60, 50]


def test_top_contributions_rolls_up_with_dims() -> None:
    rec = pd.DataFrame(
        {
            "month": ["m1", "m1", "m2", "m2"],
            "prov": ["a1", "a2", "a1", "B"],
            "unit": ["u1", "u2", "u1", "u3"],
            "v": [10.5, 5.0, 7.0, 3.0],
        }
    )
    out = top_contributions(rec, ["prov", "month"], "v", contributor="unit", dims=DIMS)
    grid = Grid.of(DIMS)
    assert len(out) == grid.size and out[["month", "prov"]].equals(grid.codes_frame()[["month", "prov"]])
    got = out.set_index(["month", "prov"])
    assert got.loc[("Total", "Total")].tolist() == [25.5, 3, 17.5, 5.0]  # u1 over both months is one unit
    assert got.loc[("m1", "A")].tolist() == [15.5, 2, 10.5, 5.0]
    assert got.loc[("m2", "a2")].tolist() == [0.0, 0, 0.0, 0.0]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["m1", "m2"]),
            st.sampled_from(["a1", "a2", "B"]),
            st.sampled_from(["u1", "u2", "u3", "u4"]),
            st.integers(0, 50),
        ),
        min_size=0,
        max_size=12,
    )
)
def test_top_contributions_roll_up_matches_brute_force(rows: list[tuple[str, str, str, int]]) -> None:
    rec = pd.DataFrame(rows, columns=["month", "prov", "unit", "v"])
    out = top_contributions(rec, ["month", "prov"], "v", n=3, contributor="unit", dims=DIMS).set_index(
        ["month", "prov"]
    )
    under = {h.name: {c: {c} | _descendants(h, c) for c in h.codes} for h in DIMS.values()}
    for m, p in itertools.product(MONTH.codes, PROV.codes):
        per_unit: dict[str, int] = {}
        for month, prov, unit, v in rows:
            if month in under["month"][m] and prov in under["prov"][p]:
                per_unit[unit] = per_unit.get(unit, 0) + v
        ranked = [*sorted(per_unit.values(), reverse=True), 0, 0, 0]
        expect = [sum(per_unit.values()), sum(v > 0 for v in per_unit.values()), *ranked[:3]]
        assert out.loc[(m, p)].tolist() == expect


def _descendants(h: Hierarchy, code: str) -> set[str]:
    out: set[str] = set()
    for c in h.children(code):
        out |= {c} | _descendants(h, c)
    return out


@pytest.mark.parametrize(
    ("records", "kwargs", "message"),
    [
        (pd.DataFrame({"month": ["m1"], "prov": ["A"], "v": [1]}), {"dims": DIMS}, "leaf codes"),
        (pd.DataFrame({"month": ["m1"], "prov": ["a1"], "v": [-1]}), {"dims": DIMS}, "negative"),
        (pd.DataFrame({"month": ["m1"], "prov": ["a1"], "v": [np.nan]}), {}, "missing or infinite"),
        (pd.DataFrame({"month": ["m1"], "prov": ["a1"], "v": ["x"]}), {}, "numeric"),
        (pd.DataFrame({"month": ["m1"], "v": [1]}), {}, "lack column"),
        (pd.DataFrame({"month": ["m1"], "prov": ["a1"], "v": [1]}), {"n": 0}, "n .* >= 1"),
        (pd.DataFrame({"month": ["m1"], "prov": ["a1"], "v": [1]}), {"contributor": "v"}, "distinct"),
    ],
)
def test_top_contributions_errors(records: pd.DataFrame, kwargs: dict, message: str) -> None:
    with pytest.raises(DisclosureError, match=message):
        top_contributions(records, ["month", "prov"], "v", **kwargs)


def test_top_contributions_dims_must_match_columns() -> None:
    rec = pd.DataFrame({"month": ["m1"], "v": [1]})
    with pytest.raises(DisclosureError, match="dimension names"):
        top_contributions(rec, ["month"], "v", dims=DIMS)


def test_tops_for_cells_aligns_and_checks_columns() -> None:
    frame = pd.DataFrame({"top2": [1, 5], "top1": [3, 9], "top10x": [0, 0]})
    arr = tops_for_cells(frame, np.array([2, 0]), 3)
    assert arr.tolist() == [[9.0, 5.0], [0.0, 0.0], [3.0, 1.0]]
    with pytest.raises(DisclosureError, match=r"top1\.\.top<n>"):
        tops_for_cells(frame.drop(columns="top1"), np.array([2, 0]), 3)


def test_magnitude_rules_feed_secondary_suppression_and_audit() -> None:
    """End to end on the existing engine: the magnitude widths are protected and independently audited."""
    rows = [
        ("m1", "a1", "big", 900),
        ("m1", "a1", "s1", 40),
        ("m1", "a2", "s2", 300),
        ("m1", "a2", "s3", 280),
        ("m1", "a2", "s4", 260),
        ("m1", "B", "s5", 200),
        ("m1", "B", "s6", 210),
        ("m1", "B", "s7", 190),
        ("m2", "a1", "s8", 300),
        ("m2", "a1", "s9", 310),
        ("m2", "a1", "s10", 290),
        ("m2", "a2", "s11", 250),
        ("m2", "a2", "s12", 240),
        ("m2", "a2", "s13", 260),
        ("m2", "B", "s14", 220),
        ("m2", "B", "s15", 230),
        ("m2", "B", "s16", 210),
    ]
    rec = pd.DataFrame(rows, columns=["month", "prov", "unit", "v"])
    frame = top_contributions(rec, ["month", "prov"], "v", contributor="unit", dims=DIMS)
    rules = Rules(threshold=3, p_percent=10)
    grid = Grid.of(DIMS)
    cells = grid.cell_index(frame)
    values = np.zeros(grid.size, dtype=np.int64)
    values[cells] = frame["total"].to_numpy()
    freq = np.zeros(grid.size, dtype=np.int64)
    freq[cells] = frame["contributors"].to_numpy()
    primary, required = magnitude_primary(freq, values, tops_for_cells(frame, cells, grid.size), rules)
    at = {tuple(grid.coords(c).values()): c for c in range(grid.size)}
    assert primary[at[("m1", "a1")]] and required[at[("m1", "a1")]] == 2 * (0.1 * 900 - 0)
    pattern = heuristic(grid, values, primary, required)
    published = pd.array(np.where(pattern.suppressed, 0, values)[cells], dtype="Int64")
    published[pattern.suppressed[cells]] = pd.NA
    view = frame[["month", "prov"]].assign(published=published)
    report = audit(view, DIMS, required=pd.Series(required[cells], index=frame.index))
    assert report.ok and report.checked >= 1


# --- manual overrides ----------------------------------------------------------------------------


def test_must_suppress_becomes_primary_with_protection_width() -> None:
    primary = np.array([True, False, False])
    required = np.array([4.0, 0.0, 0.0])
    p, r = apply_overrides(primary, required, must_suppress=np.array([True, True, False]), rules=Rules(threshold=10))
    assert p.tolist() == [True, True, False]
    assert r.tolist() == [10.0, 10.0, 0.0]  # the larger of the rule's width and the override's
    assert primary.tolist() == [True, False, False]  # inputs untouched


def test_must_suppress_for_consistency_only_needs_no_width() -> None:
    p, r = apply_overrides(
        np.array([True, False]), np.array([6.0, 0.0]), must_suppress=np.array([True, True]), suppress_width=0
    )
    assert p.tolist() == [True, True] and r.tolist() == [6.0, 0.0]


def test_must_publish_a_safe_cell_is_fine() -> None:
    p, r = apply_overrides(np.array([True, False]), np.array([6.0, 0.0]), must_publish=np.array([False, True]))
    assert p.tolist() == [True, False] and r.tolist() == [6.0, 0.0]


def test_must_publish_a_sensitive_cell_is_refused_by_name() -> None:
    primary = np.array([False, True, False, True])
    with pytest.raises(DisclosureError, match=r"sensitive by a disclosure rule.*: 1, 3 \(2 cell"):
        apply_overrides(primary, np.zeros(4), must_publish=np.array([False, True, False, True]))
    with pytest.raises(DisclosureError, match=r"\{'month': 'm1'\}"):
        apply_overrides(primary, np.zeros(4), must_publish=primary, label=lambda c: {"month": "m1"})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"must_publish": np.array([True, False]), "must_suppress": np.array([True, False])}, "both"),
        ({"must_publish": np.array([True])}, "one flag per cell"),
        ({"must_suppress": np.array([1, 0])}, "boolean mask"),
        ({"must_suppress": np.array([True, False]), "suppress_width": -1}, "suppress_width"),
    ],
)
def test_override_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(DisclosureError, match=message):
        apply_overrides(np.array([False, False]), np.zeros(2), **kwargs)
