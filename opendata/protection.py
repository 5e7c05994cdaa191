"""Protection stage: applies the disclosure engine to every measure of every table.

Tables that share cells (the month × CPA margins of the provider table and of the CPA × payment
group table) are protected together per measure, so a shared cell has one status everywhere and
the audit covers the constraints of all tables at once. The true counts never leave this module:
what comes out is the public view (rounded values, suppressed cells missing with the marker ``c``)
and the counts the descriptor reports.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from copy import deepcopy
from dataclasses import dataclass, field, replace
from itertools import chain
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp

import disclosure
from opendata.aggregate import FREQ_SUFFIX, AggregatedTable, DimensionCodes, period_codes, read_period
from opendata.errors import ReleaseError
from opendata.parallel import run_all
from opendata.relations import CUMULATIVE, Relation, joint_rows, relation_rows
from opendata.spec import DisclosureSpec, MeasureSpec, TableSpec
from opendata.versions import semver_key

KEY = "_population"
JOINT_MAX_LEFT = 3_000  # primaries the joint attacker's blocks and batched solves leave to its LPs (a few each)


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


MUST_PUBLISH = "__must_publish__"
HOLD = "__hold__"


def _level(frame: pd.DataFrame, dim: DimensionCodes) -> pd.Series:
    """Each row's level in one dimension ("total", "cpa", "month", ...)."""
    return frame[dim.name].astype(str).map(dim.levels)


def must_publish(
    dimensions: tuple[DimensionCodes, ...], frame: pd.DataFrame, entries: Sequence[Mapping[str, Sequence[str]]]
) -> np.ndarray:
    """Cells the spec says must be published (``disclosure.must_publish``): a cell matches an entry
    when each dimension the entry names is at one of its levels; an entry naming a dimension the
    table lacks does not apply to it. Primary cells are still suppressed (the caller removes them)."""
    names = {d.name: d for d in dimensions}
    out = np.zeros(len(frame), dtype=bool)
    for entry in entries:
        if not all(dim in names for dim in entry):
            continue
        match = np.ones(len(frame), dtype=bool)
        for dim, levels in entry.items():
            match &= _level(frame, names[dim]).isin(list(levels)).to_numpy()
        out |= match
    return out


def information_loss(frame: pd.DataFrame, dimensions: tuple[DimensionCodes, ...], value: str) -> dict[str, Any]:
    """What a pattern hides: cells hidden per level of the table (each dimension's level, e.g.
    ``cpa × month``; from the published view alone, so safe to publish), and, for the statistician
    only, the true value hidden by secondary suppression and its share of the value of all cells.
    That sum is an equation over hidden cells, so it never goes into the package."""
    hidden = frame["status"] != "published"
    parts = [_level(frame, d).astype(str) for d in dimensions]
    level = parts[0].str.cat(parts[1:], sep=" × ")
    counts = (
        pd.DataFrame({"level": level, "hidden": hidden}).groupby("level", sort=False)["hidden"].agg(["size", "sum"])
    )
    truth = frame[value].astype("int64")
    secondary = int(truth[frame["status"] == "secondary"].sum())
    return {
        "hidden_by_level": {k: {"cells": int(r["size"]), "hidden": int(r["sum"])} for k, r in counts.iterrows()},
        "loss": {"secondary_value": secondary, "total_value": int(truth.sum())},
    }


def rules_for(spec: DisclosureSpec) -> disclosure.Rules:
    return disclosure.Rules(
        threshold=spec.threshold,
        zeros=spec.zeros,
        protection=spec.protection,
        rounding_base=spec.rounding_base,
        singletons=spec.singletons,  # type: ignore[arg-type]
    )


def hierarchy(dim: DimensionCodes) -> disclosure.Hierarchy:
    codes = set(dim.codes)
    return disclosure.Hierarchy.from_parents(
        dim.name,
        {c: p for c, p in dim.parents.items() if c != dim.total and c in codes},
        total=dim.total,
        headline_depth=max(1, len(dim.period_levels)),  # a national month under its quarter is headline
        period=bool(dim.period_levels),
    )


AHEAD_SUFFIX = "-mi-ahead"
PROVISIONAL_SUFFIX = "_provisional"


@dataclass(frozen=True)
class EarlierTable:
    """A table as an earlier version of the dataset published it: the attacker holds it too.

    ``frame`` has the dimension codes and, per measure ``m``, ``m`` (<NA> when suppressed);
    ``months`` the ``opendata:months`` of its period field, if it says (``read_period``).
    """

    version: str
    name: str
    frame: pd.DataFrame
    months: Any = None


def _truth_by_key(tables: Sequence[AggregatedTable], keys: Sequence[pd.Series], measure: str) -> pd.DataFrame:
    """This release's true value (``v``) and frequency (``f``) of every cell holding ``measure``, by key."""
    parts = [
        pd.DataFrame(
            {KEY: k.to_numpy(), "v": t.frame[measure].to_numpy(), "f": t.frame[measure + FREQ_SUFFIX].to_numpy()}
        )
        for t, k in zip(tables, keys, strict=True)
    ]
    return pd.concat(parts, ignore_index=True).drop_duplicates(KEY).set_index(KEY)


def _earlier_dims(earlier: EarlierTable, base: AggregatedTable) -> list[DimensionCodes] | str:
    """The earlier table's dimensions (this release's codes, the months it listed), or why not.

    An MI-ahead table's ``month_provisional`` is its month dimension: its months count the same
    people as the ordinary months of a later version, so they are the same cells.
    """
    dims = []
    for d in base.dimensions:
        column = next((c for c in (d.name, d.name + PROVISIONAL_SUFFIX) if c in earlier.frame.columns), None)
        if column is None:
            return f"it has no column {d.name}"
        present = set(earlier.frame[column].astype(str))
        if d.period_levels:  # its own periods over the months it covered
            shown = replace(d, levels={c: lv for c, lv in d.levels.items() if c in present})
            span = read_period(shown, earlier.months).span
            months = pd.period_range(*span, freq="M").strftime("%Y-%m").tolist() if span else []
            own = period_codes(months, d.period_levels, d.name, d.title, d.description, d.total, d.labels[d.total])
            if set(own.codes) != present:
                return f"its dimension {d.name} has other periods"
            dims.append(own)
        elif present != set(d.codes):
            return f"its dimension {d.name} has other codes"
        else:
            dims.append(d)
    return dims


def _descends(codes: pd.Series, ancestor: str, parents: dict[str, str]) -> np.ndarray:
    """Which ``codes`` lie under ``ancestor`` in the tree of ``parents``."""
    under = {}
    for code in parents:
        c = code
        while c and c != ancestor:
            c = parents[c]
        under[code] = c == ancestor and code != ancestor
    return codes.map(under).to_numpy(dtype=bool)


REVISION_LAYERS = 4  # how far from the revised cells the earlier version's own values may differ


@dataclass
class _Earlier:
    """One earlier table's cells in grid order, with this release's truth where they are shared."""

    name: str
    version: str
    grid: disclosure.Grid
    hierarchies: dict[str, disclosure.Hierarchy]
    codes: pd.DataFrame  # dimension codes of every grid cell, in grid order
    key: np.ndarray
    values: np.ndarray
    freq: np.ndarray
    shown: np.ndarray  # what it published (nan where suppressed)
    own: np.ndarray  # cells that are quantities of the earlier version alone


def _earlier_cells(base: AggregatedTable, earlier: EarlierTable, measure: str, truth: pd.DataFrame) -> _Earlier | str:
    """The earlier table on its grid with this release's true values, or why it cannot be linked.

    Months are the same cells as this release's (same population key); its month total is the
    sum of the months it covered.
    """
    dims = _earlier_dims(earlier, base)
    if isinstance(dims, str):
        return dims
    names = [d.name for d in dims]
    hierarchies = {d.name: hierarchy(d) for d in dims}
    grid = disclosure.Grid.of(hierarchies)
    shown = earlier.frame.rename(columns={n + PROVISIONAL_SUFFIX: n for n in names})
    shown = grid.codes_frame().merge(shown.astype({n: str for n in names}), on=names, how="left", validate="1:1")
    frame = shown[names]
    key = population_keys(tuple(dims), frame)
    rows = pd.concat([frame, truth.reindex(key.to_numpy()).reset_index(drop=True)], axis=1)
    period = next((d for d in dims if d.period_levels), None)
    if period is not None:  # an earlier version's total and part periods span its own months: sums
        level = rows[period.name].map(period.levels)
        leaf = (level == period.period_levels[-1]).to_numpy()
        if rows.loc[leaf, "v"].notna().all():
            others = [n for n in names if n != period.name]
            for code in period.codes:
                if period.levels[code] == period.period_levels[-1]:
                    continue
                under = leaf & _descends(rows[period.name], code, period.parents)
                at = (rows[period.name] == code).to_numpy()
                if others:
                    sums = rows[under].groupby(others, sort=False)[["v", "f"]].sum().reset_index()
                    found = rows.loc[at, others].merge(sums, on=others, how="left")
                    rows.loc[at, ["v", "f"]] = found[["v", "f"]].to_numpy()
                else:
                    rows.loc[at, ["v", "f"]] = rows.loc[under, ["v", "f"]].sum().to_numpy()
    if rows["v"].isna().any():
        return f"cells it holds are not in this release, e.g. {rows.loc[rows['v'].isna(), names].iloc[0].to_dict()}"
    return _Earlier(
        earlier.name,
        earlier.version,
        grid,
        hierarchies,
        frame,
        key.to_numpy(dtype=object),
        rows["v"].to_numpy(dtype=np.int64, copy=True),
        rows["f"].to_numpy(dtype=np.int64, copy=True),
        shown[measure].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan),
        np.zeros(grid.size, dtype=bool),
    )


def _reconcile(parts: list[_Earlier], base: int | None, threshold: int) -> str | None:
    """Find an earlier version's own quantities, jointly over its tables; None when done, else why not.

    A published value that no longer rounds from this release's truth shows that the version
    counted other quantities there, and hidden cells nearby may have changed unseen. Its values are
    found by one HiGHS MILP over all its tables (cells with equal keys are one variable): integers,
    additive, rounding to what it published, differing from this release's truth as little as
    possible in total, over the cells within ``k`` equations of the revised ones (``k`` = 1, 2, ...
    until feasible; the rest equal this release's). The cells that differ, and every total they
    feed, are its own quantities (own keys); every other cell is the same quantity in both
    versions. The attacker model knows a published own cell exactly at its value: a subset of what
    the real attacker, who knows it to its rounding interval only, finds feasible, so every
    interval it computes is at most as wide as the real one (the safe direction). A cell it
    published that is now a primary cell counted other people then (it was no primary cell), so it
    is its own quantity too, whatever its rounded value says.
    """
    codes, uniques = pd.factorize(np.concatenate([p.key for p in parts]), sort=False)
    bounds = np.cumsum([0] + [p.grid.size for p in parts])
    maps = [codes[bounds[i] : bounds[i + 1]] for i in range(len(parts))]
    n = len(uniques)
    truth, shown, freq = np.zeros(n), np.full(n, np.nan), np.zeros(n)
    for p, m in zip(parts, maps, strict=True):
        truth[m], freq[m] = p.values, p.freq
        shown[m] = np.where(np.isnan(p.shown), shown[m], p.shown)
    published = ~np.isnan(shown)
    rounded = disclosure.round_conventional(truth.astype(np.int64), base)
    forced = published & (freq > 0) & (freq < threshold)
    revised = published & (rounded != np.nan_to_num(shown)) | forced
    if not revised.any():
        return None

    def closed(mask: np.ndarray) -> np.ndarray:
        while True:
            grown = mask.copy()
            for p, m in zip(parts, maps, strict=True):
                grown[m[p.grid.with_ancestors(grown[m])]] = True
            if (grown == mask).all():
                return mask
            mask = grown

    blocks = []
    for p, m in zip(parts, maps, strict=True):
        c = p.grid.constraints.tocoo()
        blocks.append(sp.csr_matrix((c.data, (c.row, m[c.col])), shape=(c.shape[0], n)))
    a = sp.vstack(blocks).tocsc()
    b = max(base or 1, 1)
    lo_all = np.where(published, np.maximum(shown - b // 2, 0), 0.0)
    hi_all = np.where(published, shown + (b - b // 2) - 1, np.inf)
    free = closed(revised)
    for _ in range(REVISION_LAYERS):
        near = np.unique(a[:, np.flatnonzero(free)].tocoo().row)
        free = free | (abs(a[near]).sum(axis=0).A1 > 0)
        var = np.flatnonzero(free)
        k = len(var)
        rows = np.unique(a[:, var].tocoo().row)
        rhs = -(a[rows] @ np.where(free, 0.0, truth))
        eye = sp.identity(k, format="csr")  # columns: z' (integers), then p and n with z' - p + n = truth
        equations = sp.vstack(
            [sp.hstack([a[rows][:, var], sp.csr_matrix((len(rows), 2 * k))]), sp.hstack([eye, -eye, eye])]
        )
        target = np.concatenate([rhs, truth[var]])
        found = milp(
            np.concatenate([np.zeros(k), np.ones(2 * k)]),
            integrality=np.concatenate([np.ones(k), np.zeros(2 * k)]),
            bounds=Bounds(
                np.concatenate([lo_all[var], np.zeros(2 * k)]), np.concatenate([hi_all[var], np.full(2 * k, np.inf)])
            ),
            constraints=LinearConstraint(equations, target, target),
        )
        if found.status == 0:
            values = truth.copy()
            values[var] = np.round(found.x[:k])
            own = closed((values != truth) | forced)
            for p, m in zip(parts, maps, strict=True):
                p.own = own[m]
                p.values = np.where(p.own, values[m], p.values).astype(np.int64)
                # a quantity of the earlier version alone is no primary cell of this release
                p.freq = np.where(p.own, np.where(p.values > 0, np.iinfo(np.int32).max, 0), p.freq)
                p.key = np.where(p.own, p.key + f"|version={p.version}", p.key)
            return None
    return f"{int(revised.sum())} revised value(s) that no nearby hidden changes explain"


def _linked(p: _Earlier, measure: str, current_keys: set[str]) -> disclosure.LinkedTable:
    """The earlier table with fixed statuses: cells it published are locked (a cell published
    before stays published); cells only it holds and hid stay hidden."""
    published = ~np.isnan(p.shown)
    frame = p.codes.assign(
        **{
            measure: p.values,
            measure + FREQ_SUFFIX: p.freq,
            KEY: p.key,
            "_published": published,
            "_hidden": ~published & ~pd.Series(p.key).isin(current_keys).to_numpy(),
        }
    )
    return disclosure.LinkedTable(
        frame,
        p.hierarchies,
        measure,
        KEY,
        measure + FREQ_SUFFIX,
        name=f"{p.name} {p.version}",
        published="_published",
        hidden="_hidden",
    )


def _earlier_links(
    tables: list[AggregatedTable],
    holders: list[int],
    earlier: Sequence[EarlierTable],
    measure: str,
    truth: pd.DataFrame,
    current_keys: set[str],
    base: int | None,
    threshold: int,
) -> tuple[list[disclosure.LinkedTable], list[dict[str, Any]], dict[str, str]]:
    """Every earlier table holding ``measure`` as a linked table, MI-ahead tables included (their
    months are the same people as a later version's ordinary months); the rest with the reason."""
    linked, listed, skipped = [], [], {}
    for version in dict.fromkeys(e.version for e in earlier):
        parts = []
        for e in earlier:
            if e.version != version or measure not in e.frame.columns:
                continue
            home = [i for i in holders if tables[i].spec.name == e.name.removesuffix(AHEAD_SUFFIX)]
            got = (
                _earlier_cells(tables[home[0]], e, measure, truth)
                if home
                else "no table of this release has its dimensions"
            )
            if isinstance(got, str):
                skipped[f"{e.name} {version}"] = got
            else:
                parts.append(got)
        why = _reconcile(parts, base, threshold) if parts else None
        for p in parts:
            if why is not None:
                skipped[f"{p.name} {version}"] = why
            else:
                linked.append(_linked(p, measure, current_keys))
                listed.append({"table": p.name, "version": version, "own_cells": int(p.own.sum())})
    return linked, listed, skipped


def relation_knowledge(
    table: AggregatedTable, measure: str, relations: Sequence[Relation], rules: disclosure.Rules
) -> tuple[dict, list[Relation]]:
    """What the attacker model knows of the measures related to ``measure`` in ``table``.

    A bounded sum (payments <= 30 x outcomes) is cell by cell: the other measure is taken as
    known exactly, the strongest attacker (hiding its cells can only widen what they learn), at no
    cost, since a row over one cell links no cells. Running totals link every month of a row, and
    an attacker who knew the other measure exactly would pin cells that are safe in fact (its small
    counts are hidden too), so they are taken against every cell of the other measure that is not
    primary (exact values; a hidden cell bounds nothing), a superset of what it publishes (its
    primaries are always hidden), so the pattern stays safe whatever the other hides; and not in
    MI-ahead tables. That depends on no other measure's pattern, so the measures are protected
    independently (in parallel, ``opendata.parallel``). Also returns the relations it used, for
    the descriptor.
    """
    out: dict = {}
    used = []
    for rel in relations:
        if measure not in (rel.smaller, rel.larger):
            continue
        other = rel.larger if measure == rel.smaller else rel.smaller
        if other not in table.frame.columns:
            continue
        truth = table.frame[other].to_numpy(dtype=np.float64)
        if not rel.cumulative:
            out[other] = (truth, truth)
            used.append(rel)
        elif not table.spec.name.endswith(AHEAD_SUFFIX):
            shown = ~disclosure.primary_mask(table.frame[other + FREQ_SUFFIX].to_numpy(), rules)
            out[other] = (np.where(shown, truth, 0.0), np.where(shown, truth, np.inf))
            out[CUMULATIVE] = (None, None)
            used.append(rel)
    return out, used


@dataclass(frozen=True)
class Units:
    """The units that know a cell: its ``level=code`` pairs at the intruder ``levels`` (its own
    subcontractor, prime contract and CPA), read off the population key. A class, not a closure,
    so a worker process can receive it."""

    levels: tuple[str, ...]

    def __call__(self, key: str) -> list[str]:
        wanted = tuple(f"{level}=" for level in self.levels)
        return [part for part in key.split("|") if part.startswith(wanted)]


@dataclass(frozen=True)
class _Block:
    """The block of a joint-system cell (``measure#key``) at one level: its ``level=code`` pair, if any."""

    level: str

    def __call__(self, key: str) -> str | None:
        return next(iter(Units((self.level,))(key.split("#", 1)[-1])), None)


@dataclass(frozen=True)
class _Above:
    """The block of the cells above a level (no ``level=code`` pair: e.g. the CPA and national cells
    above the prime contracts), one per measure: what the finer blocks cannot move, across them."""

    level: str

    def __call__(self, key: str) -> str | None:
        return None if _Block(self.level)(key) else key.split("#", 1)[0]


def joint_blocks(tables: Sequence[AggregatedTable]) -> list[_Block | _Above]:
    """The blocks the joint attacker proves cells in before the whole system
    (``disclosure.joint_intervals``): each classification level with codes below it, finest first,
    then per measure the cells above the finest."""
    levels = _block_levels(tables)
    return [*(_Block(level) for level in levels), *(_Above(level) for level in levels[:1])]


def _block_levels(tables: Sequence[AggregatedTable]) -> list[str]:
    """Levels of the classifications (not periods) with codes below them, finest first: the blocks
    the joint attacker is solved in before the whole system (``disclosure.joint_intervals``)."""
    depth: dict[str, int] = {}
    for t in tables:
        for d in t.dimensions:
            if d.period_levels:
                continue
            for parent in set(d.parents.values()) - {"", d.total}:
                n, up = 0, parent
                while up != d.total:
                    up, n = d.parents[up], n + 1
                depth[d.levels[parent]] = max(depth.get(d.levels[parent], 0), n)
    return sorted(depth, key=lambda level: -depth[level])


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
        for code in dim.codes:
            if dim.period_levels:  # a period is who it counts, whatever the levels above it
                fragment[code] = [] if dim.span is None and code == dim.total else [dim.period_key(code)]
                continue
            path, c = [], code
            while c != dim.total:
                path.append(f"{dim.levels[c]}={c}")
                c = dim.parents[c]
            fragment[code] = path
        parts.append(frame[dim.name].map(fragment))
    keys = ["|".join(sorted(chain.from_iterable(row))) for row in zip(*parts, strict=True)]
    return pd.Series(keys, index=frame.index)


def protect_tables(
    tables: list[AggregatedTable],
    spec: DisclosureSpec,
    on_step: Callable[[str], None] | None = None,
    earlier: Sequence[EarlierTable] = (),
    relations: Sequence[Relation] = (),
    workers: int | None = None,
    scheduler: str | None = None,
    hold: Mapping[str, Collection[str]] | None = None,
    done: dict[tuple[str, frozenset[str]], Any] | None = None,
) -> list[ProtectedTable]:
    """Protect every measure across all tables that publish it; refuse if any audit fails.

    ``hold``: per measure, population keys of cells to hide and hold to the protection width though
    they are not primary (``disclosure.LinkedTable.held``): the cells the public audit, which cannot
    tell primaries from secondaries, narrowed in an earlier round (``opendata.release``).
    ``done``: a measure's own protection by (measure, the keys it holds), kept from an earlier call
    with the same tables, spec, earlier tables and relations (the rounds of one release): a measure
    whose held cells did not change gets the same result, since the engine is deterministic, so it
    is not protected again. Filled in here; the joint check always runs on the patterns as they are.

    ``earlier``: the tables earlier versions of the dataset published. They join each measure's
    linked system with their statuses fixed, so differencing versions recovers nothing and cells
    published before stay published (stable patterns). The measures are protected independently
    (``relation_knowledge``), in parallel on ``workers`` processes or a Dask ``scheduler``
    (``opendata.parallel``); the result is the same whoever runs them.
    """
    rules = rules_for(spec)
    keys = [population_keys(t.dimensions, t.frame) for t in tables]
    publics = [t.frame[[d.name for d in t.dimensions]].copy() for t in tables]
    sdcs: list[dict[str, dict[str, Any]]] = [{} for _ in tables]
    measures = list(dict.fromkeys(m.name for t in tables for m in t.measures))
    plans, tasks = [], []
    for measure in measures:
        holders = [i for i, t in enumerate(tables) if measure in t.spec.measures]
        linked = []
        for i in holders:
            t = tables[i]
            names = [d.name for d in t.dimensions]
            frame = t.frame[[*names, measure, measure + FREQ_SUFFIX]].assign(**{KEY: keys[i]})
            dims = {d.name: hierarchy(d) for d in t.dimensions}
            keep = None
            if spec.must_publish:
                keep = MUST_PUBLISH
                frame[keep] = must_publish(t.dimensions, frame, spec.must_publish) & ~disclosure.primary_mask(
                    frame[measure + FREQ_SUFFIX].to_numpy(), rules
                )
            held = None
            if hold and hold.get(measure):
                held = HOLD
                frame[HOLD] = frame[KEY].isin(list(hold[measure]))
            linked.append(
                disclosure.LinkedTable(
                    frame, dims, measure, KEY, measure + FREQ_SUFFIX, name=t.spec.name, published=keep, held=held
                )
            )
        current_keys = set(chain.from_iterable(keys[i] for i in holders))
        truth = _truth_by_key([tables[i] for i in holders], [keys[i] for i in holders], measure)
        links, versions, skipped = _earlier_links(
            tables, holders, earlier, measure, truth, current_keys, spec.rounding_base, spec.threshold
        )
        known, modelled = [], []
        for i in holders:
            got, used = relation_knowledge(tables[i], measure, relations, rules)
            known.append(got)
            modelled += [r for r in used if r not in modelled]
        terms, upper = relation_rows(
            [tables[i] for i in holders], [keys[i] for i in holders], measure, relations, known
        )

        options: dict[str, Any] = {
            "rules": rules,
            "method": spec.secondary,
            "prune": False,
            "relations": disclosure.KeyedRelations(terms, upper),
            "intruders": Units(tuple(spec.intruders)) if spec.intruders else None,
            "spare_headlines": True,  # national and first-level figures hidden last (disclosure/README.md)
        }
        # A correction, a relation or an intruder can leave no safe pattern: the cells around a changed
        # one were published before and cannot be hidden now, a relation holds a cell too tightly, or
        # a unit's own cells pin another's. The release is then protected without the corrected
        # versions, then without the intruders (the relations are what every outsider knows, so they
        # are given up last), then without the relations, and the descriptor says what was left out
        # (never silently).
        revised = {v["version"] for v in versions if v["own_cells"]}
        kept = [(link, v) for link, v in zip(links, versions, strict=True) if v["version"] not in revised]
        attempts = [(links, versions, options, [])]
        fewer = ([k for k, _ in kept], [v for _, v in kept])
        if revised:
            attempts.append((*fewer, options, ["corrected versions"]))
        if spec.intruders:
            attempts.append((*fewer, options | {"intruders": None}, ["corrected versions", "intruders"]))
        if len(upper):
            attempts.append((*fewer, options | {"relations": None}, ["corrected versions", "relations"]))
            if spec.intruders:
                bare = options | {"relations": None, "intruders": None}
                attempts.append((*fewer, bare, ["corrected versions", "intruders", "relations"]))
        plans.append((measure, holders, attempts, revised, skipped, modelled, len(upper)))
        tasks.append((measure, linked, [(a[0], a[2]) for a in attempts]))
    if on_step:
        on_step(f"protecting {', '.join(measures)}")
    done = {} if done is None else done
    memo = [(task[0], frozenset(hold.get(task[0], ()) if hold else ())) for task in tasks]
    todo = [i for i, k in enumerate(memo) if k not in done]
    new = run_all(
        _protect_measure, [tasks[i] for i in todo], workers, scheduler, cells=sum(len(t.frame) for t in tables)
    )
    done.update({memo[i]: result for i, result in zip(todo, new, strict=True)})
    found = [deepcopy(done[k]) for k in memo]  # the frames are changed in place below
    kept = _keep_hidden(plans, found)
    jointly: dict[str, dict[str, Any]] = {}
    if relations:
        if on_step:
            on_step("protecting the related measures jointly")
        jointly = _protect_jointly(tables, keys, plans, found, relations, rules)
    for (measure, holders, attempts, revised, skipped, modelled, n_rows), (chosen, results) in zip(
        plans, found, strict=True
    ):
        _, versions, _, left_out = attempts[chosen]
        if "corrected versions" in left_out and revised:
            for v in attempts[0][1]:
                if v["version"] in revised:
                    skipped[f"{v['table']} {v['version']}"] = (
                        "revised since, and no pattern protects this release together with it: "
                        "differencing the two versions is not protected"
                    )
        for i, result in zip(holders, results[: len(holders)], strict=True):
            if not result.audit.ok:  # protect_linked never returns an unsafe pattern; this is the guard
                raise ReleaseError(f"table {tables[i].spec.name}, measure {measure}: disclosure audit failed")
            suppressed = result.frame["status"] != "published"
            publics[i][measure] = result.frame["published"].astype("Int64").to_numpy()
            publics[i][measure + "_status"] = suppressed.map({True: "c", False: ""}).to_numpy()
            shown = result.frame["published"]
            sdcs[i][measure] = {
                **{k: int(v) for k, v in result.counts.items()},
                # hidden as the latest version did (``_keep_hidden``) and by the joint repair (``_protect_jointly``)
                "secondary": int((result.frame["status"] == "secondary").sum()),
                **({"hidden_as_before": kept[measure, i]} if (measure, i) in kept else {}),
                # not primary, but narrowed by the public audit in an earlier round: held to the width too
                **({"held_for_public_audit": int(result.frame[HOLD].sum())} if HOLD in result.frame else {}),
                "rounded": int((shown.notna() & (shown != result.frame[measure])).sum()),
                **information_loss(result.frame, tables[i].dimensions, measure),
                "audit": {
                    "ok": bool(result.audit.ok),
                    "checked": int(result.audit.checked),
                    "method": result.audit.method,
                    "pattern": result.pattern,
                    "linked_with": [tables[j].spec.name for j in holders if j != i],
                    "earlier_versions": versions,
                    **({"earlier_not_linked": skipped} if skipped else {}),
                    "relations": [r.describe() for r in modelled if "relations" not in left_out],
                    **(
                        {"relations_not_modelled": "no pattern protects this measure with them"}
                        if "relations" in left_out and n_rows
                        else {}
                    ),
                    "intruders": result.intruders,
                    **(
                        {"intruders_not_modelled": "no pattern protects this measure against them"}
                        if "intruders" in left_out
                        else {}
                    ),
                    **({"relations_jointly": jointly[measure]} if measure in jointly else {}),
                },
            }
    return [
        ProtectedTable(t.spec, t.dimensions, t.measures, public, sdc)
        for t, public, sdc in zip(tables, publics, sdcs, strict=True)
    ]


def _keep_hidden(plans: list[tuple], found: list[tuple[int, list[disclosure.ProtectionResult]]]) -> dict:
    """Hide again, as secondaries, the cells the latest earlier version hid that this release would
    publish: the same cells (same population key, so the same true value), in place in ``found``'s
    frames. With cells published before staying published (``_linked``), a pattern once published
    stays: a rerun of a release reproduces it and a correction changes which cells are ``[c]`` only
    around the values it changes; the engine's choices depend on the order it meets cells, so
    without this a rerun against the version it made could publish another safe pattern. Hiding a
    cell only widens every attacker's interval, so every audit already made stays valid. Returns
    the count per (measure, table index)."""
    kept: dict[tuple[str, int], int] = {}
    for (measure, holders, attempts, *_), (chosen, results) in zip(plans, found, strict=True):
        links, versions = attempts[chosen][:2]
        if not versions:
            continue
        latest = max((v["version"] for v in versions), key=semver_key)
        before = pd.Index(
            np.concatenate(
                [
                    link.frame.loc[~link.frame[link.published] & ~link.frame[link.hidden], KEY].to_numpy()
                    for link, v in zip(links, versions, strict=True)
                    if v["version"] == latest
                ]
            )
        )
        for i, result in zip(holders, results[: len(holders)], strict=True):
            frame = result.frame
            hit = frame[KEY].isin(before) & (frame["status"] == "published")
            if MUST_PUBLISH in frame:
                hit &= ~frame[MUST_PUBLISH].fillna(False).astype(bool)
            frame.loc[hit, "status"] = "secondary"
            frame.loc[hit, "published"] = pd.NA
            kept[measure, i] = int(hit.sum())
    return kept


def _protect_jointly(
    tables: list[AggregatedTable],
    keys: list[pd.Series],
    plans: list[tuple],
    found: list[tuple[int, list[disclosure.ProtectionResult]]],
    relations: Sequence[Relation],
    rules: disclosure.Rules,
) -> dict[str, dict[str, Any]]:
    """Check the measures' patterns against the attacker who combines them (``disclosure.joint``) and hide
    what it needs besides, in place in ``found``'s frames (status ``secondary``, value missing). Returns,
    per related measure, what the descriptor says of it: the attacker and the cells it added. Where no
    pattern is safe together with the earlier versions' cells, this version is protected against the
    attacker of its own cells, and the descriptor says so (``earlier_versions_not_linked``).
    ReleaseError when not even that is safe, or when the check is larger than its bound on work (more
    primaries than ``JOINT_MAX_LEFT`` that neither its blocks nor its batched solves prove: a count,
    never a clock, decides): a pattern no check covers is not published."""
    related = {m for r in relations for m in (r.smaller, r.larger)}
    current, before, frames = [], [], {}
    for (measure, holders, attempts, *_), (chosen, results) in zip(plans, found, strict=True):
        if measure not in related:
            continue
        published = {"published": MUST_PUBLISH} if MUST_PUBLISH in results[0].frame else {}
        for i, result in zip(holders, results[: len(holders)], strict=True):
            frames[measure, i] = result.frame
            frame = result.frame.assign(
                **{KEY: measure + "#" + result.frame[KEY], "_hide": result.frame["status"] != "published"}
            )
            dims = {d.name: hierarchy(d) for d in tables[i].dimensions}
            name = f"{tables[i].spec.name} ({measure})"
            current.append(disclosure.LinkedTable(frame, dims, measure, KEY, measure + FREQ_SUFFIX, name, **published))
        for link in attempts[chosen][0]:  # the earlier versions' tables this measure was protected with
            frame = link.frame.assign(**{KEY: measure + "#" + link.frame[KEY], "_hide": link.frame[link.hidden]})
            before.append(replace(link, frame=frame, name=f"{link.name} ({measure})"))
    measures = sorted({m for m, _ in frames})
    ordinary = [i for i, t in enumerate(tables) if not t.spec.name.endswith(AHEAD_SUFFIX)]
    terms, upper = joint_rows([tables[i] for i in ordinary], [keys[i] for i in ordinary], relations)
    if not len(upper):
        return {}

    def check(linked: list[disclosure.LinkedTable]) -> disclosure.JointResult:
        bounds = disclosure.KeyedRelations(terms, upper)
        return disclosure.protect_jointly(linked, bounds, "_hide", rules, joint_blocks(tables), JOINT_MAX_LEFT)

    alone = {}
    try:
        try:
            joint = check(current + before)
        except disclosure.AuditFailed as exc:
            if not before:
                raise
            # As a measure's own protection gives up the versions it cannot be protected with (and says
            # so), the joint check then protects this version alone: the attacker of one version.
            joint = check(current)
            alone = {"earlier_versions_not_linked": f"no pattern protects this version with them ({exc})"}
    except disclosure.TooLarge as exc:  # a bound on work, never a clock: the same answer on every machine
        raise ReleaseError(
            f"the related measures {', '.join(measures)} are too many small cells for the joint check to finish "
            f"within its bound on work ({exc}); a pattern no check covers is never published, so nothing was "
            "released: fewer small cells (coarser tables, fewer months a table) make the check smaller"
        ) from exc
    except disclosure.AuditFailed as exc:  # a pattern the attacker defeats is never published
        raise ReleaseError(
            f"the related measures {', '.join(measures)} cannot be protected together: no pattern hides them "
            f"safely ({exc}); nothing was released"
        ) from exc
    measure_of, key_of = (
        joint.added.str.split("#", n=1, regex=False).str[0],
        joint.added.str.split("#", n=1, regex=False).str[1],
    )
    added = {m: set(key_of[measure_of == m]) for m in measures}
    for (measure, _), frame in frames.items():
        hit = frame[KEY].isin(added[measure]).to_numpy()
        frame.loc[hit, "status"] = "secondary"
        frame.loc[hit, "published"] = pd.NA
    return {
        m: {
            "checked": True,
            "safe": True,
            "attacker": disclosure.METHOD_JOINT,
            "secondary_added": len(added[m]),
            **alone,
        }
        for m in measures
    }


def _protect_measure(
    measure: str,
    linked: list[disclosure.LinkedTable],
    attempts: list[tuple[list[disclosure.LinkedTable], dict[str, Any]]],
) -> tuple[int, list[disclosure.ProtectionResult]]:
    """One measure's protection (a task of ``opendata.parallel``): the first attempt that finds a safe
    pattern, as (its index, one result per linked table)."""
    failure = None
    for n, (links, options) in enumerate(attempts):
        try:
            return n, disclosure.protect_linked(linked + links, **options)
        except disclosure.AuditFailed as exc:  # no safe pattern: try with less; bad input fails at once
            failure = exc
        except disclosure.DisclosureError as exc:
            raise ReleaseError(f"measure {measure}: {exc}; nothing was written") from exc
    raise ReleaseError(f"measure {measure}: {failure}; nothing was written") from failure
