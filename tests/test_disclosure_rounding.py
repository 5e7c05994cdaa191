import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from disclosure import DisclosureError, Grid, Hierarchy, add_totals
from disclosure.rounding import (
    controlled_rounding_interval,
    round_controlled,
    round_conventional,
    rounding_interval,
)


def full_table(dims: dict[str, Hierarchy], leaf_values: dict[tuple[str, ...], int]) -> tuple[Grid, np.ndarray]:
    names = list(dims)
    rows = [(*k, v) for k, v in leaf_values.items()]
    frame = add_totals(pd.DataFrame(rows, columns=[*names, "n"]), dims, ["n"])
    grid = Grid.of(dims)
    values = np.zeros(grid.size, dtype=np.int64)
    values[grid.cell_index(frame)] = frame["n"].to_numpy()
    return grid, values


def flat_table(interior: np.ndarray) -> tuple[Grid, np.ndarray]:
    dims = {f"d{k}": Hierarchy.flat(f"d{k}", [f"c{i}" for i in range(n)]) for k, n in enumerate(interior.shape)}
    leaves = {tuple(f"c{i}" for i in idx): int(x) for idx, x in np.ndenumerate(interior)}
    return full_table(dims, leaves)


def assert_controlled(grid: Grid, values: np.ndarray, rounded: np.ndarray, base: int) -> None:
    grid.check_additive(rounded, "rounded")
    assert np.all(rounded % base == 0)
    floor = values // base * base
    multiple = values % base == 0
    assert np.all(rounded[multiple] == values[multiple])
    assert np.all((rounded == floor) | (rounded == floor + base))
    lo, hi = controlled_rounding_interval(rounded, base)
    assert np.all((lo <= values) & (values <= hi))


def test_conventional_rounding_unchanged():
    v = np.arange(10)
    assert round_conventional(v, 5).tolist() == [0, 0, 0, 5, 5, 5, 5, 5, 10, 10]
    assert [a.tolist() for a in rounding_interval(np.array([0, 5]), 5)] == [[0, 3], [2, 7]]  # [lo], [hi]


def test_2d_table_with_totals():
    grid, values = flat_table(np.array([[4, 5, 7, 9], [0, 1, 8, 9], [2, 3, 8, 4]]))
    rounded = round_controlled(values, grid.constraints, 5)
    assert_controlled(grid, values, rounded, 5)
    # deterministic
    assert np.array_equal(rounded, round_controlled(values, grid.constraints, 5))


def test_2d_table_with_two_level_hierarchy():
    region = Hierarchy.from_parents(
        "region", {"N": "Total", "S": "Total", "n1": "N", "n2": "N", "n3": "N", "s1": "S", "s2": "S"}
    )
    month = Hierarchy.flat("month", ["m1", "m2", "m3"])
    dims = {"region": region, "month": month}
    rng = np.random.default_rng(7)
    leaves = {(r, m): int(rng.integers(0, 40)) for r in region.leaves for m in month.leaves}
    grid, values = full_table(dims, leaves)
    for base in (2, 3, 5, 10):
        rounded = round_controlled(values, grid.constraints, base)
        assert_controlled(grid, values, rounded, base)
        assert np.array_equal(rounded, round_controlled(values, grid.constraints, base))


def test_multiples_and_zeros_stay():
    grid, values = flat_table(np.array([[0, 5], [10, 0]]))
    assert np.array_equal(round_controlled(values, grid.constraints, 5), values)
    grid, values = flat_table(np.array([[0, 3], [10, 0]]))
    rounded = round_controlled(values, grid.constraints, 5)
    assert_controlled(grid, values, rounded, 5)
    assert rounded[values == 0].tolist() == [0] * int((values == 0).sum())


def test_base_one_and_none_are_identity():
    grid, values = flat_table(np.array([[1, 2], [3, 4]]))
    assert np.array_equal(round_controlled(values, grid.constraints, 1), values)
    assert np.array_equal(round_controlled(values, grid.constraints, None), values)


def test_minimises_total_deviation():
    # one row (so the column totals repeat it): 3 + 3 = 6, base 5. Best: 5 + 0 = 5 (deviation 2 + 3 + 1 per
    # copy of the row); both up, 5 + 5 = 10, costs 2 + 2 + 4.
    grid, values = flat_table(np.array([[3, 3]]))
    rounded = round_controlled(values, grid.constraints, 5)
    assert_controlled(grid, values, rounded, 5)
    assert np.abs(rounded - values).sum() == 2 * (2 + 3 + 1)


def test_rejects_bad_input():
    grid, values = flat_table(np.array([[1, 2], [3, 4]]))
    bad = values.copy()
    bad[0] += 1
    with pytest.raises(DisclosureError, match="not additive"):
        round_controlled(bad, grid.constraints, 5)
    with pytest.raises(DisclosureError, match="non-negative"):
        round_controlled(-values, grid.constraints, 5)
    with pytest.raises(DisclosureError, match="base"):
        round_controlled(values, grid.constraints, 0)
    with pytest.raises(DisclosureError, match="columns"):
        round_controlled(values[:-1], grid.constraints, 5)


def test_3d_table_can_be_infeasible():
    # interior 1s at (0,1,1), (1,0,1), (1,1,0); base 2. Each 2-D slice through two of them has an even total
    # (a multiple of 2 that must stay), so exactly one of each pair goes up: a+b = b+c = a+c = 1, impossible.
    interior = np.zeros((2, 2, 2), dtype=np.int64)
    interior[0, 1, 1] = interior[1, 0, 1] = interior[1, 1, 0] = 1
    grid, values = flat_table(interior)
    with pytest.raises(DisclosureError, match="no controlled rounding to base 2 exists"):
        round_controlled(values, grid.constraints, 2)
    # base 3 works for the same table
    assert_controlled(grid, values, round_controlled(values, grid.constraints, 3), 3)


def test_2d_table_with_hierarchies_in_both_dimensions_can_be_infeasible():
    a = Hierarchy.from_parents("a", {"A": "Total", "a1": "A", "a2": "A", "B": "Total"})
    b = Hierarchy.from_parents("b", {"X": "Total", "x1": "X", "x2": "X", "Y": "Total"})
    ones = {("a1", "x2"), ("a2", "x1"), ("a2", "Y"), ("B", "x2"), ("B", "Y")}
    leaves = {(i, j): int((i, j) in ones) for i in a.leaves for j in b.leaves}
    grid, values = full_table({"a": a, "b": b}, leaves)
    with pytest.raises(DisclosureError, match="not always feasible"):
        round_controlled(values, grid.constraints, 2)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.integers(1, 5),
    cols=st.integers(1, 5),
    base=st.sampled_from([2, 3, 5, 10]),
    data=st.data(),
)
def test_property_2d_tables_with_totals_always_round(rows, cols, base, data):
    cells = data.draw(st.lists(st.integers(0, 60), min_size=rows * cols, max_size=rows * cols))
    grid, values = flat_table(np.array(cells, dtype=np.int64).reshape(rows, cols))
    rounded = round_controlled(values, grid.constraints, base)
    assert_controlled(grid, values, rounded, base)
