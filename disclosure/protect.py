"""The pipeline's entry point: primary + secondary suppression, audit, rounding."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from disclosure.audit import METHOD_CERTIFIED, METHOD_EXACT, AuditReport, report_from
from disclosure.cost import cell_costs
from disclosure.errors import DisclosureError
from disclosure.hierarchy import Hierarchy
from disclosure.hypercube import hypercube
from disclosure.optimal import NODES
from disclosure.primary import (
    apply_overrides,
    insider_mask,
    magnitude_primary,
    primary_mask,
    required_widths,
    tops_for_cells,
)
from disclosure.rounding import round_conventional
from disclosure.rules import Rules
from disclosure.secondary import Heuristic, heuristic
from disclosure.suppression import Suppression
from disclosure.table import Grid, integer_column

METHODS = ("auto", "fast", "optimal", "heuristic")
AUTO_OPTIMAL_MAX_CELLS = 2_000  # "auto" runs the MILP only where it proves optimality in seconds
PROOFS = {"exact": METHOD_EXACT, "certificates": METHOD_CERTIFIED}


def secondary_pattern(
    grid,
    values: np.ndarray,
    primary: np.ndarray,
    required: np.ndarray,
    method: str = "auto",
    prune: bool | None = None,
    nodes: int = NODES,
    locked: np.ndarray | None = None,
    insiders: np.ndarray | None = None,
    relations=None,
    cost: str | None = None,
    spare_headlines: bool = False,
) -> Suppression:
    """Dispatch to a secondary suppression method; every method returns an audited, safe pattern.

    ``fast``: certified hypercubes (linear in the table's size), ``optimal``: MILP within a
    deterministic node budget (``nodes``), ``heuristic``: the LP audit-and-repair loop alone; ``auto``: optimal up to
    ``AUTO_OPTIMAL_MAX_CELLS`` cells, fast above. ``locked`` cells are never suppressed;
    ``insiders`` are the single-contributor primary cells (see ``Rules.singletons``); ``relations``
    (``disclosure.relations.Relations``, ``G x <= h``) are inequalities the attacker knows.
    ``cost`` (``disclosure.cost``) is what both methods minimise; by default the hypercubes count
    cells and the MILP counts value, and optimal is compared with fast on value.
    ``spare_headlines``: the hypercubes never add a headline cell (``Grid.headline``); the cells
    that leave go to the LP repair, which takes headline cells last. Off by default: the LP work
    grows with the table (1M cells: minutes instead of 38 s); releases turn it on.
    """
    if method not in METHODS:
        raise DisclosureError(f"unknown suppression method {method!r}; available: {list(METHODS)}")
    if method == "auto":
        method = "optimal" if len(values) <= AUTO_OPTIMAL_MAX_CELLS else "fast"

    def fast() -> Suppression:
        return hypercube(
            grid,
            values,
            primary,
            required,
            cost=cost or "cells",
            prune=prune,
            locked=locked,
            insiders=insiders,
            relations=relations,
            spare_headlines=spare_headlines,
        )

    if method == "fast":
        return fast()
    if method == "optimal":
        from disclosure.errors import AuditFailed
        from disclosure.hypercube import PRUNE_CELLS
        from disclosure.optimal import optimal

        pattern: Suppression = optimal(
            grid, values, primary, required, cost=cost or "value", nodes=nodes, locked=locked, relations=relations
        )
        if insiders is not None and insiders.any():
            # the MILP models outsiders; the repair loop adds what the insiders need, then gives back
            # what the coalition of all single contributors (stricter than each alone) does not need
            repair = Heuristic(grid, values, primary, required, len(values) <= PRUNE_CELLS, locked, insiders, relations)
            pattern = repair.run(start=pattern.suppressed)
        # that repair is greedy (and the node budget may stop the MILP early): never hide more value than
        # the fast method does on the same input (both patterns are audited)
        try:
            alternative = fast()
        except AuditFailed:
            return pattern
        hidden = cell_costs(np.asarray(values, dtype=np.float64), cost or "value")
        safe = bool(pattern.intervals.ok.all())
        if not safe or hidden[alternative.suppressed].sum() < hidden[pattern.suppressed].sum():
            return alternative
        return pattern
    return heuristic(
        grid, values, primary, required, True if prune is None else prune, locked, insiders, relations=relations
    )


@dataclass
class ProtectionResult:
    """``frame``: input rows (same order) + ``status`` and ``published`` (Int64, <NA> when suppressed)."""

    frame: pd.DataFrame
    audit: AuditReport
    counts: dict[str, int]
    intruders: dict[str, object] | None = None  # what the check against intruder units found (linked tables)
    pattern: dict[str, object] | None = None  # ``Suppression.facts()``: proven optimal or not, cost, bound, gap


def protect(
    frame: pd.DataFrame,
    dims: Mapping[str, Hierarchy],
    value: str,
    frequency: str | None = None,
    rules: Rules | None = None,
    method: str = "auto",
    prune: bool | None = None,
    must_publish: str | None = None,
    must_suppress: str | None = None,
    cost: str | None = None,
    spare_headlines: bool = False,
) -> ProtectionResult:
    """Suppress and round one measure of a full hierarchical table; never returns an unsafe pattern.

    The audit run here is the exact-values attacker (published cells known exactly), which is
    stronger than an attacker who sees rounded values, so the pattern stays safe after rounding.
    ``method``: see ``secondary_pattern``. ``prune`` gives back secondary cells that turn out not to
    be needed (slower, fewer cells hidden; default: the method's own choice by table size).
    Raises DisclosureError on invalid input and AuditFailed if no safe pattern is found.
    With magnitude rules (dominance, p%, pq) the frame carries ``top1..topn`` per cell and
    ``frequency`` counts contributors. ``must_publish``/``must_suppress`` name boolean override
    columns; a must-publish cell that the pattern needs hidden is refused, never silently shown.
    ``cost``: what secondary suppression minimises (``disclosure.cost.COSTS``; see ``secondary_pattern``),
    and ``spare_headlines`` whether national and first-level cells are hidden last (ditto).
    """
    rules = rules or Rules()
    grid = Grid.of(dims)
    cells = grid.cell_index(frame)
    values = integer_column(frame, value, cells, grid.size)
    grid.check_additive(values, what=f"column {value!r}")
    freq = values if frequency is None else integer_column(frame, frequency, cells, grid.size)
    if rules.magnitude:  # magnitude tables: the frame carries top1..topn (see primary.top_contributions)
        primary, required = magnitude_primary(freq, values, tops_for_cells(frame, cells, grid.size), rules)
    else:
        primary = primary_mask(freq, rules)
        required = required_widths(primary, rules)
    masks = []
    for column in (must_publish, must_suppress):
        mask = np.zeros(grid.size, dtype=bool)
        if column:
            mask[cells] = frame[column].fillna(False).astype(bool).to_numpy()
        masks.append(mask)
    if must_publish or must_suppress:
        primary, required = apply_overrides(primary, required, masks[0], masks[1], rules, label=grid.coords)
    insiders = insider_mask(freq, primary, rules)
    pattern = secondary_pattern(
        grid,
        values,
        primary,
        required,
        method,
        prune,
        locked=masks[0],
        insiders=insiders,
        cost=cost,
        spare_headlines=spare_headlines,
    )
    report = report_from(grid, pattern.intervals, PROOFS[pattern.proof], values.astype(np.float64))
    report.raise_if_failed()
    suppressed = pattern.suppressed
    if must_publish:
        clash = np.flatnonzero(suppressed & masks[0])
        if len(clash):
            raise DisclosureError(
                f"{len(clash)} must-publish cell(s) are needed as secondary suppressions, "
                f"e.g. {grid.coords(int(clash[0]))}"
            )
    rounded = round_conventional(values, rules.rounding_base)
    status = np.where(primary, "primary", np.where(suppressed, "secondary", "published"))
    out = frame.copy()
    out["status"] = status[cells]
    out["published"] = pd.array(np.where(suppressed, 0, rounded)[cells], dtype="Int64")
    out.loc[suppressed[cells], "published"] = pd.NA
    shown = ~suppressed
    counts = {
        "cells": int(grid.size),
        "primary": int(primary.sum()),
        "secondary": int((suppressed & ~primary).sum()),
        "rounded": int((shown & (rounded != values)).sum()),
        "insider_unverified": len(pattern.insider_unverified),
    }
    return ProtectionResult(out, report, counts, pattern=pattern.facts())
