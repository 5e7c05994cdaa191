"""protect() with magnitude rules and manual overrides, end to end through the audit."""

from __future__ import annotations

import pandas as pd
import pytest

from disclosure import DisclosureError, Hierarchy, Rules, audit, protect
from disclosure.primary import top_contributions

REGION = Hierarchy.from_parents("region", {"N": "Total", "S": "Total"})
SECTOR = Hierarchy.flat("sector", ["a", "b", "c"])
DIMS = {"region": REGION, "sector": SECTOR}


def magnitude_frame() -> pd.DataFrame:
    records = pd.DataFrame(
        {
            "region": ["N"] * 9 + ["S"] * 9,
            "sector": ["a", "a", "a", "b", "b", "b", "c", "c", "c"] * 2,
            "firm": [f"f{i}" for i in range(18)],
            "payments": [900, 20, 10, 40, 35, 30, 50, 45, 40, 30, 25, 20, 60, 55, 50, 35, 30, 25],
        }
    )
    return top_contributions(records, ["region", "sector"], "payments", n=2, contributor="firm", dims=DIMS)


def test_dominated_cell_is_primary_and_protected():
    frame = magnitude_frame()
    rules = Rules(threshold=3, p_percent=10)
    result = protect(frame, DIMS, value="total", frequency="contributors", rules=rules)
    status = result.frame.set_index(["region", "sector"])["status"]
    assert status[("N", "a")] == "primary"  # 900 of 930: one firm dominates
    assert result.audit.ok
    assert (result.frame["status"] != "published").sum() >= 4


def test_overrides():
    frame = pd.DataFrame(
        {
            "region": ["Total", "Total", "Total", "Total", "N", "N", "N", "N", "S", "S", "S", "S"],
            "sector": ["Total", "a", "b", "c"] * 3,
            "n": [150, 50, 50, 50, 75, 25, 25, 25, 75, 25, 25, 25],
        }
    )
    frame["force"] = (frame["region"] == "N") & (frame["sector"] == "b")
    result = protect(frame, DIMS, value="n", rules=Rules(threshold=10), must_suppress="force")
    hidden = result.frame.set_index(["region", "sector"])["status"]
    assert hidden[("N", "b")] == "primary" and result.audit.ok
    report = audit(result.frame, DIMS, rules=Rules(threshold=10))
    assert report.ok
    frame["keep"] = frame["region"] == "S"  # must-publish cells are never hidden: protection goes around them
    kept = protect(frame, DIMS, value="n", rules=Rules(threshold=10), must_suppress="force", must_publish="keep")
    status = kept.frame.set_index(["region", "sector"])["status"]
    assert kept.audit.ok and (status.loc["S"] == "published").all() and status[("N", "b")] == "primary"
    assert audit(kept.frame, DIMS, rules=Rules(threshold=10)).ok
    frame["keep"] = ~frame["force"] & (frame["sector"] != "a")  # leaves no second cell in column b
    with pytest.raises(DisclosureError, match="cannot protect"):
        protect(frame, DIMS, value="n", rules=Rules(threshold=10), must_suppress="force", must_publish="keep")
