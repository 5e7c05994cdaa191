"""Protection stage: applies the disclosure engine to every measure of every table.

Tables that share cells (the month × CPA margins of the provider table and of the CPA × payment
group table) are protected together per measure, so a shared cell has one status everywhere and
the audit covers the constraints of all tables at once. The true counts never leave this module:
what comes out is the public view (rounded values, suppressed cells missing with the marker ``c``)
and the counts the descriptor reports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import pandas as pd

import disclosure
from opendata.aggregate import FREQ_SUFFIX, AggregatedTable, DimensionCodes
from opendata.errors import ReleaseError
from opendata.spec import DisclosureSpec, MeasureSpec, TableSpec

KEY = "_population"


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
        singletons=spec.singletons,  # type: ignore[arg-type]
    )


def hierarchy(dim: DimensionCodes) -> disclosure.Hierarchy:
    return disclosure.Hierarchy.from_parents(
        dim.name, {c: p for c, p in dim.parents.items() if c != dim.total}, total=dim.total
    )


def population_keys(dimensions: tuple[DimensionCodes, ...], frame: pd.DataFrame) -> pd.Series:
    """Who each cell counts, as ``level=code`` pairs of the code and its ancestors, sorted.

    Two cells of different tables (or of successive versions) with the same key count the same
    people, e.g. provider CPA03 in month 2012-01 and (2012-01, CPA03, all payment groups). The
    total of a classification is everyone (no pair); the total of the months is keyed by the
    months it spans, since that span grows from one version to the next.
    """
    parts = []
    for dim in dimensions:
        fragment = {}
        months = [c for c in dim.codes if dim.levels.get(c) == "month"]
        for code in dim.codes:
            path, c = [], code
            while c != dim.total:
                path.append(f"{dim.levels[c]}={c}")
                c = dim.parents[c]
            if code == dim.total and months:
                path.append(f"month={months[0]}..{months[-1]}")
            fragment[code] = path
        parts.append(frame[dim.name].map(fragment))
    keys = ["|".join(sorted(chain.from_iterable(row))) for row in zip(*parts, strict=True)]
    return pd.Series(keys, index=frame.index)


def protect_tables(
    tables: list[AggregatedTable], spec: DisclosureSpec, on_step: Callable[[str], None] | None = None
) -> list[ProtectedTable]:
    """Protect every measure across all tables that publish it; refuse if any audit fails."""
    rules = rules_for(spec)
    keys = [population_keys(t.dimensions, t.frame) for t in tables]
    publics = [t.frame[[d.name for d in t.dimensions]].copy() for t in tables]
    sdcs: list[dict[str, dict[str, Any]]] = [{} for _ in tables]
    measures = list(dict.fromkeys(m.name for t in tables for m in t.measures))
    for measure in measures:
        holders = [i for i, t in enumerate(tables) if measure in t.spec.measures]
        if on_step:
            on_step(f"protecting {measure} in {', '.join(tables[i].spec.name for i in holders)}")
        linked = []
        for i in holders:
            t = tables[i]
            names = [d.name for d in t.dimensions]
            frame = t.frame[[*names, measure, measure + FREQ_SUFFIX]].assign(**{KEY: keys[i]})
            dims = {d.name: hierarchy(d) for d in t.dimensions}
            linked.append(disclosure.LinkedTable(frame, dims, measure, KEY, measure + FREQ_SUFFIX, name=t.spec.name))
        try:
            results = disclosure.protect_linked(linked, rules, method=spec.secondary, prune=False)
        except disclosure.DisclosureError as exc:
            raise ReleaseError(f"measure {measure}: {exc}; nothing was written") from exc
        for i, result in zip(holders, results, strict=True):
            if not result.audit.ok:  # protect_linked never returns an unsafe pattern; this is the guard
                raise ReleaseError(f"table {tables[i].spec.name}, measure {measure}: disclosure audit failed")
            suppressed = result.frame["status"] != "published"
            publics[i][measure] = result.frame["published"].astype("Int64").to_numpy()
            publics[i][measure + "_status"] = suppressed.map({True: "c", False: ""}).to_numpy()
            sdcs[i][measure] = {
                **{k: int(v) for k, v in result.counts.items()},
                "audit": {
                    "ok": bool(result.audit.ok),
                    "checked": int(result.audit.checked),
                    "method": result.audit.method,
                    "linked_with": [tables[j].spec.name for j in holders if j != i],
                },
            }
    return [
        ProtectedTable(t.spec, t.dimensions, t.measures, public, sdc)
        for t, public, sdc in zip(tables, publics, sdcs, strict=True)
    ]
