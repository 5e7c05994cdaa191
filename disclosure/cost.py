"""What hiding a cell costs: the objective every secondary suppression method minimises."""

from __future__ import annotations

from typing import Literal

import numpy as np

from disclosure.errors import DisclosureError

Cost = Literal["value", "cells", "log"]
COSTS: tuple[str, ...] = ("value", "cells", "log")


def cell_costs(values: np.ndarray, cost: str) -> np.ndarray:
    """Per-cell cost of suppression: information lost by hiding it.

    ``value``: the cell's value (zeros are free; they are pruned when not needed). ``cells``: 1.
    ``log``: ``1 + ln(1 + value)``, so every cell costs something but big totals are not
    prohibitively expensive (tau-Argus-style dampened value cost).
    """
    v = np.asarray(values, dtype=np.float64)
    if cost == "value":
        return v.copy()
    if cost == "cells":
        return np.ones(len(v))
    if cost == "log":
        return 1.0 + np.log1p(v)
    raise DisclosureError(f"unknown suppression cost {cost!r}; available: {list(COSTS)}")
