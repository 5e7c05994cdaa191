"""Protection stage: applies the disclosure engine to every measure of every table.

Tables that share cells (the month × CPA margins of the provider table and of the CPA × payment
group table) are protected together per measure, so a shared cell has one status everywhere and
the audit covers the constraints of all tables at once. The true counts never leave this module:
what comes out is the public view (rounded values, suppressed cells missing with the marker ``c``)
and the counts the descriptor reports.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from itertools import chain
from typing import Any

import numpy as np
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
    codes = set(dim.codes)
    return disclosure.Hierarchy.from_parents(
        dim.name, {c: p for c, p in dim.parents.items() if c != dim.total and c in codes}, total=dim.total
    )


@dataclass(frozen=True)
class EarlierTable:
    """A table as an earlier version of the dataset published it: the attacker holds it too.

    ``frame`` has the dimension codes and, per measure ``m``, ``m`` (<NA> when suppressed).
    """

    version: str
    name: str
    frame: pd.DataFrame


def _earlier_linked(
    table: AggregatedTable, earlier: EarlierTable, measure: str, current_keys: set[str], base: int | None
) -> disclosure.LinkedTable | str:
    """The earlier table as a linked table with fixed statuses, or why it cannot be linked.

    Its true values come from this release's true counts: months are the same cells (same
    population key), and its month total is the sum over the months it covered. Cells it
    published are locked (a cell published before stays published); cells only it holds and
    hid stay hidden. A published value that no longer matches (a revision) stops the linking.
    """
    names = [d.name for d in table.dimensions]
    if measure not in earlier.frame.columns or not set(names) <= set(earlier.frame.columns):
        return "different columns"
    shown = earlier.frame[names].astype(str)
    dims, month = [], None
    for d in table.dimensions:
        present = set(shown[d.name])
        is_month = any(d.levels.get(c) == "month" for c in d.codes)
        if not present <= set(d.codes) or (not is_month and present != set(d.codes)):
            return f"dimension {d.name} has other codes"
        dims.append(replace(d, codes=tuple(c for c in d.codes if c in present)))
        month = d if is_month else month
    truth = table.frame[[*names, measure, measure + FREQ_SUFFIX]]
    if month is not None:
        months = [c for c in dims[names.index(month.name)].codes if c != month.total]
        leaf = truth[truth[month.name].isin(months)]
        others = [n for n in names if n != month.name]
        total = leaf.groupby(others, sort=False)[[measure, measure + FREQ_SUFFIX]].sum().reset_index()
        truth = pd.concat([leaf, total.assign(**{month.name: month.total})], ignore_index=True)
    frame = shown.merge(truth, on=names, how="left", validate="one_to_one")
    if frame[measure].isna().any():
        return "cells missing from this release"
    value = earlier.frame[measure].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    published = ~np.isnan(value)
    expected = disclosure.round_conventional(frame[measure].to_numpy(dtype=np.int64), base)
    if (expected[published] != value[published]).any():
        return f"{int((expected[published] != value[published]).sum())} published value(s) revised since"
    key = population_keys(tuple(dims), frame)
    frame = frame.assign(**{KEY: key, "_published": published, "_hidden": ~published & ~key.isin(current_keys)})
    return disclosure.LinkedTable(
        frame,
        {d.name: hierarchy(d) for d in dims},
        measure,
        KEY,
        measure + FREQ_SUFFIX,
        name=f"{earlier.name} {earlier.version}",
        published="_published",
        hidden="_hidden",
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
    tables: list[AggregatedTable],
    spec: DisclosureSpec,
    on_step: Callable[[str], None] | None = None,
    earlier: Sequence[EarlierTable] = (),
) -> list[ProtectedTable]:
    """Protect every measure across all tables that publish it; refuse if any audit fails.

    ``earlier``: the tables earlier versions of the dataset published. They join each measure's
    linked system with their statuses fixed, so differencing versions recovers nothing and cells
    published before stay published (stable patterns).
    """
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
        current_keys = set(chain.from_iterable(keys[i] for i in holders))
        versions, skipped = [], {}
        for e in earlier:
            home = [i for i in holders if tables[i].spec.name == e.name]
            if not home:
                continue
            got = _earlier_linked(tables[home[0]], e, measure, current_keys, spec.rounding_base)
            if isinstance(got, str):
                skipped[f"{e.name} {e.version}"] = got
            else:
                linked.append(got)
                versions.append(got.name)
        try:
            results = disclosure.protect_linked(linked, rules, method=spec.secondary, prune=False)
        except disclosure.DisclosureError as exc:
            raise ReleaseError(f"measure {measure}: {exc}; nothing was written") from exc
        for i, result in zip(holders, results[: len(holders)], strict=True):
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
                    "earlier_versions": versions,
                    **({"earlier_not_linked": skipped} if skipped else {}),
                },
            }
    return [
        ProtectedTable(t.spec, t.dimensions, t.measures, public, sdc)
        for t, public, sdc in zip(tables, publics, sdcs, strict=True)
    ]
