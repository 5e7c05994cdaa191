"""Protection stage: applies the disclosure engine to every measure of every table.

The true counts never leave this module: what comes out is the public view (rounded values,
suppressed cells as missing with the marker ``c``) and the counts the descriptor reports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

import disclosure
from opendata.aggregate import FREQ_SUFFIX, AggregatedTable, DimensionCodes
from opendata.errors import ReleaseError
from opendata.spec import DisclosureSpec, MeasureSpec, TableSpec


@dataclass
class ProtectedTable:
    """The public view of one table: nothing in it is confidential.

    ``frame`` has one column per dimension (codes, str, full grid in publication order) and, per
    measure ``m``, ``m`` (pandas Int64: the published, rounded value; <NA> when suppressed) and
    ``m_status`` (str: "c" when suppressed, "" otherwise).
    """

    spec: TableSpec
    dimensions: tuple[DimensionCodes, ...]
    measures: tuple[MeasureSpec, ...]
    frame: pd.DataFrame
    # per measure: {"cells", "primary", "secondary", "rounded", "audit": {"ok", "checked", "method"}}
    sdc: dict[str, dict[str, Any]] = field(default_factory=dict)


def rules_for(spec: DisclosureSpec) -> disclosure.Rules:
    return disclosure.Rules(
        threshold=spec.threshold,
        zeros=spec.zeros,
        protection=spec.protection_width,
        rounding_base=spec.rounding_base,
    )


def hierarchy(dim: DimensionCodes) -> disclosure.Hierarchy:
    return disclosure.Hierarchy.from_parents(
        dim.name, {c: p for c, p in dim.parents.items() if c != dim.total}, total=dim.total
    )


def protect_table(
    table: AggregatedTable, spec: DisclosureSpec, on_step: Callable[[str], None] | None = None
) -> ProtectedTable:
    """Protect each measure of one table; refuse (ReleaseError) if any pattern fails its audit."""
    rules = rules_for(spec)
    dims = {d.name: hierarchy(d) for d in table.dimensions}
    names = [d.name for d in table.dimensions]
    public = table.frame[names].copy()
    sdc: dict[str, dict[str, Any]] = {}
    for measure in table.measures:
        if on_step:
            on_step(f"{table.spec.name}: {measure.name}")
        cells = table.frame[[*names, measure.name, measure.name + FREQ_SUFFIX]]
        try:
            result = disclosure.protect(
                cells, dims=dims, value=measure.name, frequency=measure.name + FREQ_SUFFIX, rules=rules
            )
        except disclosure.DisclosureError as exc:
            raise ReleaseError(f"table {table.spec.name}, measure {measure.name}: {exc}") from exc
        if not result.audit.ok:  # protect() never returns an unsafe pattern; this is the guard
            raise ReleaseError(f"table {table.spec.name}, measure {measure.name}: disclosure audit failed")
        suppressed = result.frame["status"] != "published"
        public[measure.name] = result.frame["published"].astype("Int64").to_numpy()
        public[measure.name + "_status"] = suppressed.map({True: "c", False: ""}).to_numpy()
        sdc[measure.name] = {
            **{k: int(v) for k, v in result.counts.items()},
            "audit": {"ok": bool(result.audit.ok), "checked": int(result.audit.checked), "method": result.audit.method},
        }
    return ProtectedTable(table.spec, table.dimensions, table.measures, public, sdc)
