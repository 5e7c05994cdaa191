import numpy as np
import pandas as pd
import pytest

from disclosure import DisclosureError, Grid, Hierarchy, Rules, add_totals, protect
from disclosure.primary import primary_mask
from disclosure.rounding import round_conventional, rounding_interval

MONTH = Hierarchy.flat("month", ["m1", "m2"])
PROV = Hierarchy.from_parents("provider", {"C1": "Total", "P1": "C1", "P2": "C1", "C2": "Total"})
DIMS = {"month": MONTH, "provider": PROV}


def base() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "month": ["m1", "m1", "m1", "m2", "m2"],
            "provider": ["P1", "P2", "C2", "P1", "C2"],
            "n": [12, 30, 15, 40, 25],
        }
    )


def test_constraint_counts():
    g = Grid.of(DIMS)
    assert g.size == 3 * 5
    # month: 1 non-leaf (Total) x 5 provider codes; provider: 2 non-leaves (Total, C1) x 3 month codes
    assert g.constraints.shape == (5 + 6, 15)
    assert g.constraints.nnz == 5 * 3 + 6 * 3
    assert np.all(g.constraints.sum(axis=1) == np.array([1 - 2] * 11).reshape(-1, 1))


def test_add_totals_is_additive_and_fills_zeros():
    full = add_totals(base(), DIMS, ["n"])
    assert len(full) == 15
    g = Grid.of(DIMS)
    cells = g.cell_index(full)
    v = np.zeros(15)
    v[cells] = full["n"]
    g.check_additive(v)
    get = full.set_index(["month", "provider"])["n"]
    assert get[("m2", "P2")] == 0
    assert get[("Total", "C1")] == 12 + 30 + 40
    assert get[("Total", "Total")] == 122


def test_add_totals_refuses_non_leaf():
    b = base()
    b.loc[0, "provider"] = "C1"
    with pytest.raises(DisclosureError, match="leaves"):
        add_totals(b, DIMS, ["n"])


def full_frame() -> pd.DataFrame:
    return add_totals(base(), DIMS, ["n"])


def test_validation_incomplete_grid():
    with pytest.raises(DisclosureError, match="incomplete grid"):
        protect(full_frame().iloc[1:], DIMS, value="n")


def test_validation_duplicates():
    f = full_frame()
    with pytest.raises(DisclosureError, match="duplicate"):
        protect(pd.concat([f, f.iloc[:1]]), DIMS, value="n")


def test_validation_additivity():
    f = full_frame()
    f.loc[0, "n"] += 1
    with pytest.raises(DisclosureError, match="not additive"):
        protect(f, DIMS, value="n")


def test_validation_negative_and_unknown_code():
    f = full_frame()
    f.loc[3, "n"] = -1
    with pytest.raises(DisclosureError, match="negative"):
        protect(f, DIMS, value="n")
    f = full_frame()
    f.loc[3, "provider"] = "ZZ"
    with pytest.raises(DisclosureError, match="not in its hierarchy"):
        protect(f, DIMS, value="n")


def test_primary_rule():
    f = np.array([0, 1, 9, 10, 11])
    assert primary_mask(f, Rules(threshold=10)).tolist() == [False, True, True, False, False]
    assert primary_mask(f, Rules(threshold=10, zeros="unsafe")).tolist() == [True, True, True, False, False]


def test_rules_validation():
    assert Rules().protection_width == 10
    assert Rules(threshold=5, protection=3).protection_width == 3
    with pytest.raises(DisclosureError):
        Rules(zeros="maybe")  # type: ignore[arg-type]
    with pytest.raises(DisclosureError):
        Rules(threshold=0)


def test_round_conventional_half_up():
    v = np.array([0, 1, 2, 3, 4, 5, 7, 8, 12, 13])
    assert round_conventional(v, 5).tolist() == [0, 0, 0, 5, 5, 5, 5, 10, 10, 15]
    assert round_conventional(np.array([4, 5, 14, 15]), 10).tolist() == [0, 10, 10, 20]
    assert round_conventional(v, None).tolist() == v.tolist()
    assert round_conventional(v, 1).tolist() == v.tolist()


def test_rounding_interval_inverts_rounding():
    for base in (2, 3, 5, 10):
        v = np.arange(0, 60)
        r = round_conventional(v, base)
        lo, hi = rounding_interval(r, base)
        assert np.all((lo <= v) & (v <= hi))
        # and the interval is tight: its ends round back to r
        assert np.all(round_conventional(lo, base) == r) and np.all(round_conventional(hi, base) == r)
