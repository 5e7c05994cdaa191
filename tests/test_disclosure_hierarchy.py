import pytest

from disclosure import DisclosureError, Hierarchy


def provider() -> Hierarchy:
    return Hierarchy.from_parents(
        "provider",
        {"CPA01": "Total", "P01": "CPA01", "S0001": "P01", "S0002": "P01", "P02": "CPA01", "CPA02": "Total"},
        total="Total",
    )


def test_flat_hierarchy():
    h = Hierarchy.flat("month", ["2011-06", "2011-07"], total="Total")
    assert h.codes == ("Total", "2011-06", "2011-07")
    assert h.children("Total") == ("2011-06", "2011-07")
    assert h.parent("2011-06") == "Total"
    assert h.parent("Total") is None
    assert h.is_leaf("2011-07") and not h.is_leaf("Total")
    assert h.depth("Total") == 0 and h.depth("2011-06") == 1


def test_uneven_depth_depth_first_order():
    h = provider()
    assert h.codes == ("Total", "CPA01", "P01", "S0001", "S0002", "P02", "CPA02")
    assert h.depth("S0002") == 3 and h.depth("CPA02") == 1
    assert h.leaves == ("S0001", "S0002", "P02", "CPA02")
    assert h.max_depth == 3


def test_sorted_children_and_total_entry_ignored():
    h = Hierarchy.from_parents("x", {"Total": None, "b": "Total", "a": "Total"}, sort=True)
    assert h.codes == ("Total", "a", "b")


def test_cycle_is_refused():
    with pytest.raises(DisclosureError, match="cycle"):
        Hierarchy.from_parents("x", {"a": "Total", "b": "c", "c": "b"})


def test_self_parent_is_a_cycle():
    with pytest.raises(DisclosureError, match="cycle"):
        Hierarchy.from_parents("x", {"a": "a"})


def test_unknown_parent_is_refused():
    with pytest.raises(DisclosureError, match="unknown parent"):
        Hierarchy.from_parents("x", {"a": "Total", "b": "nope"})


def test_total_cannot_have_parent_and_duplicates_refused():
    with pytest.raises(DisclosureError, match="total"):
        Hierarchy.from_parents("x", {"Total": "a", "a": "Total"})
    with pytest.raises(DisclosureError, match="more than once"):
        Hierarchy.flat("x", ["a", "a"])


def test_unknown_code_lookup():
    with pytest.raises(KeyError):
        provider().children("nope")
