"""Relations between measures that the spec's rules imply, as the attacker can use them.

Each measure is protected on its own, but the measures of a release describe the same people, and
the spec's rules make them bound each other:

* **order of events**: a ``date_order`` rule (earlier ``X``, later ``Y``) with every ``Y`` needing
  an ``X`` (``X`` required, or a ``requires`` rule) means everyone counted by the measure of ``Y``
  up to a month was counted by the measure of ``X`` up to that month. So, per cell of the other
  dimensions and per month, running sums obey ``cum Y <= cum X`` (attachments <= referrals, job
  starts <= attachments, job outcomes <= job starts). It holds in tables whose months start where
  the MI starts, not in the MI-ahead tables, which start at the cut-off.
* **cohorts**: a cohort measure (``within_months``, ``within_days``) counts, in each month, some of the records the
  count of its period field counts there (job outcomes within 12 months of referral <= referrals):
  ``cohort <= count`` in every cell.
* **bounded sums**: a summed field with a maximum ``K`` that requires a date (sustainment payments,
  at most 30, require a job outcome) and shares its period with the count of that date gives, in
  every cell, ``sum <= K * count``: a cell with no job outcome has no sustainment payment.

Protecting measure ``m``, the relations become linear inequalities ``G x <= h`` over ``m``'s cells
with constants from what the attacker is assumed to know of the other measures
(``opendata.protection.relation_knowledge``: a bounded sum's other measure exactly; a running total's other
measure as published), which the engine (``disclosure.Relations``) uses in its cubes, its
certificate checker and its LPs. An attacker who combines the hidden cells of several measures in
one LP is not modelled (issue 19, README "Not built yet").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from opendata.spec import ReleaseSpec

CUMULATIVE = "*cumulative"  # a key of ``known``: this table's months start where the MI starts


@dataclass(frozen=True)
class Relation:
    """``smaller <= factor * larger``: cell by cell, or on running sums over the months (``cumulative``)."""

    smaller: str
    larger: str
    factor: float = 1.0
    cumulative: bool = False

    def describe(self) -> str:
        if self.cumulative:
            return f"running total of {self.smaller} <= running total of {self.larger}"
        return f"{self.smaller} <= {self.factor:g} x {self.larger}"


def spec_relations(spec: ReleaseSpec) -> tuple[Relation, ...]:
    """The relations between the spec's measures: as the spec states them (``disclosure.relations``,
    e.g. for pre-aggregated MI, which has no record rules), else as its input rules imply."""
    if spec.disclosure.relations is not None:
        return tuple(Relation(**r) for r in spec.disclosure.relations)
    rules = spec.input.rules
    fields = {f.name: f for f in spec.input.fields}
    needs = {(r.a, r.b) for r in rules if r.rule == "requires"}  # (if, then)
    counts = {m.field: m.name for m in spec.measures.values() if m.aggregate == "count" and m.field == m.period}
    out = []
    for r in rules:
        if r.rule != "date_order" or r.a not in counts or r.b not in counts:
            continue
        if fields[r.a].required or (r.b, r.a) in needs:
            out.append(Relation(counts[r.b], counts[r.a], cumulative=True))
    for m in spec.measures.values():  # a cohort counts some of the people its period's measure counts
        if m.counts_some_of_period and m.period in counts:
            out.append(Relation(m.name, counts[m.period]))
    for m in spec.measures.values():
        f = fields.get(m.field)
        if m.aggregate != "sum" or f is None or not isinstance(f.maximum, int):
            continue
        dates = [then for when, then in needs if when == m.field and then == m.period and then in counts]
        if dates:
            out.append(Relation(m.name, counts[dates[0]], float(f.maximum)))
    return tuple(out)


def relation_rows(
    tables: Sequence[Any],
    keys: Sequence[pd.Series],
    measure: str,
    relations: Sequence[Relation],
    known: Sequence[Mapping[str, tuple[np.ndarray, np.ndarray]]],
) -> tuple[pd.DataFrame, np.ndarray]:
    """Inequalities over ``measure``'s cells: ``terms`` (row, key, coef) and ``upper``, per ``G x <= h``.

    ``tables`` have ``dimensions`` and ``frame`` (dimension codes per row); ``known[i]`` gives, per
    other measure, what the attacker knows of its cells in table ``i`` as bounds ``(lo, hi)`` per
    row: the true values for the release (see the module docstring), the published intervals for
    an audit from the published files. A table whose months do not start where the MI starts (the
    MI-ahead tables) is given without the cumulative relations by leaving them out of ``known``.
    Rows whose bound is infinite (the other cell hidden) say nothing and are left out.
    """
    terms, upper = [], []
    row = 0
    for table, key, bounds in zip(tables, keys, known, strict=True):
        month = next((d for d in table.dimensions if d.period_levels), None)
        for rel in relations:
            if measure not in (rel.smaller, rel.larger):
                continue
            other = rel.larger if measure == rel.smaller else rel.smaller
            if other not in bounds or (rel.cumulative and (month is None or CUMULATIVE not in bounds)):
                continue
            lo, hi = bounds[other]
            if measure == rel.smaller:  # x <= f * larger
                mine, bound = 1.0, rel.factor * np.asarray(hi, dtype=np.float64)
            else:  # smaller <= f * x
                mine, bound = -rel.factor, -np.asarray(lo, dtype=np.float64)
            if not rel.cumulative:
                keep = np.flatnonzero(np.isfinite(bound))
                terms.append((row + np.arange(len(keep)), key, keep, mine))
                upper.append(bound[keep])
                row += len(keep)
                continue
            order, first = _runs(table, month)
            cum = pd.Series(bound[order]).groupby(first).cumsum().to_numpy()
            keep = np.flatnonzero(np.isfinite(cum))
            cells = _running(first, keep)
            rows = row + np.repeat(np.arange(len(keep)), keep - first[keep] + 1)
            terms.append((rows, key, order[cells], mine))
            upper.append(cum[keep])
            row += len(keep)
    return _terms(terms), np.concatenate(upper) if upper else np.zeros(0)


def _runs(table: Any, month: Any) -> tuple[np.ndarray, np.ndarray]:
    """The leaf periods of ``table`` as runs: ``order`` (frame rows, by the other dimensions' codes, then
    period) and ``first`` (per position of ``order``, where its run starts)."""
    names = [d.name for d in table.dimensions if d.name != month.name]
    leaf = np.flatnonzero((table.frame[month.name].map(month.levels) == month.period_levels[-1]).to_numpy())
    parts = [table.frame[n].iloc[leaf].astype(str) for n in names]  # str.cat: a row-wise join took seconds
    frame = pd.DataFrame(
        {
            "group": parts[0].str.cat(parts[1:], sep="|").to_numpy() if names else "",
            "month": table.frame[month.name].iloc[leaf].to_numpy(),
            "row": leaf,
        }
    ).sort_values(["group", "month"], kind="mergesort")
    groups = frame["group"].to_numpy()
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]]) if len(frame) else np.zeros(0, dtype=int)
    return frame["row"].to_numpy(), np.repeat(starts, np.diff(np.r_[starts, len(frame)]))


def _running(first: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Positions of each running sum that ends at ``ends``: ``first[e] .. e`` for each, concatenated."""
    if not len(ends):
        return np.zeros(0, dtype=int)
    return np.concatenate([np.arange(first[e], e + 1) for e in ends])


def joint_rows(
    tables: Sequence[Any], keys: Sequence[pd.Series], relations: Sequence[Relation]
) -> tuple[pd.DataFrame, np.ndarray]:
    """The relations as rows over two measures' cells, ``sum(coef * x[measure#key]) <= 0``, for the joint
    attacker (``disclosure.joint``): per cell for a bounded sum or a cohort, per running sum of the
    periods for an order of events (in tables whose periods start where the MI starts: the caller
    leaves the MI-ahead tables out)."""
    terms, row = [], 0
    for table, key in zip(tables, keys, strict=True):
        month = next((d for d in table.dimensions if d.period_levels), None)
        for rel in relations:
            if not {rel.smaller, rel.larger} <= set(table.frame.columns) or (rel.cumulative and month is None):
                continue
            sides = ((rel.smaller, 1.0), (rel.larger, -rel.factor))
            if not rel.cumulative:
                n = len(key)
                for measure, coef in sides:
                    terms.append((row + np.arange(n), measure + "#" + key, np.arange(n), coef))
                row += n
                continue
            order, first = _runs(table, month)
            cells = _running(first, np.arange(len(order)))
            rows = row + np.repeat(np.arange(len(order)), np.arange(len(order)) - first + 1)
            for measure, coef in sides:
                terms.append((rows, measure + "#" + key, order[cells], coef))
            row += len(order)
    return _terms(terms), np.zeros(row)


def _terms(parts: Sequence[tuple[np.ndarray, pd.Series, np.ndarray, float]]) -> pd.DataFrame:
    """The ``(row, key, coef)`` frame of ``disclosure.KeyedRelations`` from ``(rows, keys, at, coef)``
    parts, each naming the cells ``keys[at]``. The keys are categorical (codes into the distinct keys):
    a running total has a term per earlier month, so the terms grow with the square of the months
    (20 to 28 million per measure at 235 months), and as strings each cost a pickled object when a
    measure's task goes to a worker (about 2 GB per measure there), as codes 4 bytes."""
    if not parts:
        return pd.DataFrame({"row": np.zeros(0, dtype=np.int64), "key": [], "coef": []})
    names = list({id(keys): keys for _, keys, _, _ in parts}.values())
    vocabulary = pd.Index(np.concatenate([k.to_numpy() for k in names])).unique()
    codes = {id(k): vocabulary.get_indexer(k.to_numpy()).astype(np.int32) for k in names}
    return pd.DataFrame(
        {
            "row": np.concatenate([rows for rows, *_ in parts]).astype(np.int64),
            "key": pd.Categorical.from_codes(
                np.concatenate([codes[id(keys)][at] for _, keys, at, _ in parts]), categories=vocabulary
            ),
            "coef": np.concatenate([np.full(len(rows), coef, dtype=np.float64) for rows, _, _, coef in parts]),
        }
    )
