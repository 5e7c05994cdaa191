"""Attacker audit: proves that no primary cell can be recovered or narrowed below its protection.

``audit`` is independent of ``protect``: it reads only what is published (suppressed cells are
unknown; published values are exact, or rounding intervals when a rounding base is set) and which
cells need protection.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from disclosure.attacker import Intervals, exact_intervals, interval_intervals
from disclosure.errors import AuditFailed, DisclosureError
from disclosure.hierarchy import Hierarchy
from disclosure.rounding import rounding_interval
from disclosure.rules import Rules
from disclosure.table import Grid

METHOD_EXACT = "exact-values attacker: min/max LP per connected component of suppressed cells (HiGHS)"
METHOD_CERTIFIED = (
    "certified moves: per primary cell a verified additive move of suppressed cells (hypercube) that keeps "
    "the table non-negative over the required width; exact-values attacker LPs (HiGHS) for the cells no move covers"
)
METHOD_INTERVAL = "interval attacker: min/max LP over the whole table, published cells as rounding intervals (HiGHS)"


@dataclass(frozen=True)
class AuditFailure:
    """A primary cell whose feasible interval ``[lower, upper]`` is narrower than ``required``."""

    cell: dict[str, str]
    value: float | None
    lower: float
    upper: float
    required: float

    def describe(self) -> str:
        where = ", ".join(f"{k}={v}" for k, v in self.cell.items())
        upper = "inf" if self.upper == float("inf") else f"{self.upper:g}"
        return (
            f"cell ({where}): attacker's feasible interval [{self.lower:g}, {upper}] has width "
            f"{self.upper - self.lower:g} < required {self.required:g}"
        )


@dataclass
class AuditReport:
    ok: bool
    checked: int
    failures: list[AuditFailure] = field(default_factory=list)
    method: str = METHOD_EXACT

    def raise_if_failed(self) -> None:
        if not self.ok:
            head = "; ".join(f.describe() for f in self.failures[:3])
            more = f" (+{len(self.failures) - 3} more)" if len(self.failures) > 3 else ""
            raise AuditFailed(f"disclosure audit failed for {len(self.failures)} primary cell(s): {head}{more}")


def report_from(grid: Grid, res: Intervals, method: str, truth: np.ndarray | None) -> AuditReport:
    ok = res.ok
    failures = [
        AuditFailure(
            cell=grid.coords(int(c)),
            value=None if truth is None else float(truth[c]),
            lower=float(lo),
            upper=float(hi),
            required=float(req),
        )
        for c, lo, hi, req, good in zip(res.cells, res.lower, res.upper, res.required, ok, strict=True)
        if not good
    ]
    return AuditReport(ok=not failures, checked=len(res.cells), failures=failures, method=method)


def audit(
    frame: pd.DataFrame,
    dims: Mapping[str, Hierarchy],
    status: str = "status",
    published: str = "published",
    rules: Rules | None = None,
    required: pd.Series | None = None,
    value: str | None = None,
) -> AuditReport:
    """Audit a published table from the attacker's side.

    Cells to check: ``required`` widths (aligned with ``frame``; NaN/0 = not checked) if given, else
    rows whose ``status`` is "primary" with ``rules.protection_width``. ``value`` optionally names a
    true-value column, used only to report failures. With rounding, an exact-values audit on the
    rounded numbers would be wrong (they are not additive), so the interval attacker is used.
    """
    rules = rules or Rules()
    grid = Grid.of(dims)
    cells = grid.cell_index(frame)
    if published not in frame.columns:
        raise DisclosureError(f"frame lacks column {published!r}")
    pub = pd.to_numeric(frame[published], errors="raise")
    suppressed = np.zeros(grid.size, dtype=bool)
    suppressed[cells] = pub.isna().to_numpy()
    vals = np.zeros(grid.size, dtype=np.float64)
    vals[cells] = pub.fillna(0).to_numpy(dtype=np.float64)
    if (vals < 0).any() or not np.all(vals == np.round(vals)):
        raise DisclosureError(f"column {published!r} must hold non-negative integers or missing values")
    need = np.zeros(grid.size, dtype=np.float64)
    if required is not None:
        need[cells] = pd.Series(required).reindex(frame.index).fillna(0).to_numpy(dtype=np.float64)
    elif status in frame.columns:
        need[cells] = np.where(frame[status].astype(str).to_numpy() == "primary", float(rules.protection_width), 0.0)
    else:
        raise DisclosureError(f"audit needs a {status!r} column or a 'required' series to know what to protect")
    truth = None
    if value is not None:
        truth = np.zeros(grid.size, dtype=np.float64)
        truth[cells] = frame[value].to_numpy(dtype=np.float64)
    if rules.rounds:
        lo, hi = rounding_interval(vals.astype(np.int64), rules.rounding_base)
        col_lo = np.where(suppressed, 0.0, lo.astype(np.float64))
        col_hi = np.where(suppressed, np.inf, hi.astype(np.float64))
        res = interval_intervals(grid.constraints, col_lo, col_hi, need)
        return report_from(grid, res, METHOD_INTERVAL, truth)
    res = exact_intervals(grid.constraints, vals, suppressed, need)
    return report_from(grid, res, METHOD_EXACT, truth)
