"""Aggregation: validated MI into hierarchical tables with every total and subtotal (DuckDB).

Each measure is counted in the month of its own period field (referrals in the month of
referral, job outcomes in the month of the outcome), rolled up over every hierarchy with
``GROUP BY ROLLUP(...), ROLLUP(...)`` and laid out on the full grid of codes, zeros included, so
that every published total can be checked against its parts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from opendata.descriptor import PERIOD_LEVELS, is_period
from opendata.errors import InputError, SpecError
from opendata.spec import DimensionSpec, MeasureSpec, ReleaseSpec, TableSpec, table_period
from opendata.workdays import elapsed

FREQ_SUFFIX = "_freq"


@dataclass(frozen=True)
class DimensionCodes:
    """One dimension of a published table: its codes in publication order and their hierarchy."""

    name: str
    title: str
    description: str
    codes: tuple[str, ...]  # publication order, the total first
    labels: dict[str, str]
    parents: dict[str, str]  # code -> parent code; "" for the total
    levels: dict[str, str]  # code -> level name ("total", "cpa", "month", ...)
    total: str = "Total"
    period_levels: tuple[str, ...] = ()  # a period dimension's levels, the coarsest first
    span: tuple[str, str] | None = None  # a period dimension: its first and last month

    def period_key(self, code: str) -> str:
        """Who a period code counts, as a population key part: ``month=2012-01``, ``quarter=2012-Q1``;
        a period the table shows in part names the months it shows, the total the months it spans.
        The same text in two tables (or versions) means the same people, whatever the levels above."""
        assert self.span is not None, "a period dimension with codes has months"
        if code == self.total:
            return f"month={self.span[0]}..{self.span[1]}"
        level = self.levels[code]
        months = [m for m in months_in(code, level) if self.span[0] <= m <= self.span[1]]
        whole = len(months) == len(months_in(code, level))
        return f"{level}={code}" if whole else f"{level}={code}[{months[0]}..{months[-1]}]"


@dataclass
class AggregatedTable:
    """True (unprotected) counts on the full grid: never written anywhere public.

    ``frame`` has one column per dimension (codes) and per measure ``m`` the value ``m`` and the
    number of contributing records ``m_freq`` (the frequency the threshold rule is applied to).
    """

    spec: TableSpec
    dimensions: tuple[DimensionCodes, ...]
    measures: tuple[MeasureSpec, ...]
    frame: pd.DataFrame


MAX_MONTHS = 1200  # a month dimension longer than a century is a data error, not a table to build


def period_of(month: str, level: str) -> str:
    """The code of the period at ``level`` holding ``month`` (``YYYY-MM``): ``2012-Q1``, ``2012``, or the
    financial year ``2011/12`` (April 2011 to March 2012; never ``2011-12``, which is a month)."""
    if level == "month":
        return month
    if level == "quarter":
        return f"{month[:4]}-Q{(int(month[5:7]) + 2) // 3}"
    if level == "financial_year":
        start = int(month[:4]) - (int(month[5:7]) < 4)
        return f"{start}/{(start + 1) % 100:02d}"
    return month[:4]


def months_in(code: str, level: str) -> list[str]:
    """Every month of a period code."""
    if level == "month":
        return [code]
    first = {"year": "01", "financial_year": "04"}.get(level) or f"{3 * int(code[-1]) - 2:02d}"
    return (
        pd.period_range(f"{code[:4]}-{first}", periods=3 if level == "quarter" else 12, freq="M")
        .strftime("%Y-%m")
        .tolist()
    )


def _period_label(code: str, level: str, shown: list[str]) -> str:
    if level == "month":
        return pd.Period(code).strftime("%B %Y")
    months = months_in(code, level)
    name = code if level == "year" else _months_label(months)
    if shown == months:
        return name
    return f"{name} (part: {_months_label(shown)} only)"


def _months_label(months: list[str]) -> str:
    """``January to March 2012`` (``December 2011 to February 2012`` across a year)."""
    first, last = pd.Period(months[0]), pd.Period(months[-1])
    if first == last:
        return last.strftime("%B %Y")
    return f"{first.strftime('%B' if first.year == last.year else '%B %Y')} to {last.strftime('%B %Y')}"


def period_codes(
    months: list[str], levels: tuple[str, ...], name: str, title: str, description: str, total: str, total_label: str
) -> DimensionCodes:
    """A period dimension covering every month from the first to the last, gaps included, as a tree
    of ``levels`` (the coarsest first) under the total, depth first in time order.

    Where the finest level is coarser than a month, the last period is kept only if the months
    cover it whole (a quarter with two months' data so far would be read as a low quarter; the
    next release shows it whole); the first may be part of a period, where the data starts (the
    programme began in June 2011), and its label says so, as does a subtotal's. Refused past
    ``MAX_MONTHS`` (dates far outside the MI's period would otherwise build a table of every month
    in between): the spec's date ``minimum``/``maximum`` name the rows first."""
    if months and (n := (pd.Period(max(months)) - pd.Period(min(months))).n + 1) > MAX_MONTHS:
        raise InputError(
            f"{name}: the data spans {n:,} months ({min(months)} to {max(months)}), more than {MAX_MONTHS:,}; "
            "give the date fields a plausible minimum and maximum in the spec so the rows are named"
        )
    span = pd.period_range(min(months), max(months), freq="M").strftime("%Y-%m").tolist() if months else []
    if span:  # the last period whole: later months would change it
        span = [m for m in span if m <= whole_until(span[-1], levels[-1])]
    codes, parents, level_of, shown = [total], {total: ""}, {total: "total"}, {}
    for month in span:
        parent = total
        for level in levels:
            code = period_of(month, level)
            if code not in parents:
                codes.append(code)
                parents[code], level_of[code] = parent, level
            shown.setdefault(code, []).append(month)
            parent = code
    return DimensionCodes(
        name=name,
        title=title,
        description=description,
        codes=tuple(codes),
        labels={total: total_label} | {c: _period_label(c, level_of[c], shown[c]) for c in codes[1:]},
        parents=parents,
        levels=level_of,
        total=total,
        period_levels=levels,
        span=(span[0], span[-1]) if span else None,
    )


MONTHS_PROPERTY = "opendata:months"  # a period field's first and last month, in the Table Schema


def read_period(dim: DimensionCodes, months: Any = None) -> DimensionCodes:
    """A dimension read back from a published hierarchy, as a period dimension if its levels are
    periods, so its cells get the same population keys as when it was released. ``months``: the
    field's ``opendata:months`` (``{"from": "2011-06", "to": "2013-03"}``), the only record of a
    first period the data covers in part; without it (packages from before quarters), the months
    of its finest codes."""
    if not is_period(dim.levels.values()):
        return dim
    levels = tuple(lv for lv in PERIOD_LEVELS if lv in dim.levels.values())
    if isinstance(months, dict) and isinstance(months.get("from"), str) and isinstance(months.get("to"), str):
        return replace(dim, period_levels=levels, span=(months["from"], months["to"]))
    found = sorted(m for c, lv in dim.levels.items() if lv == levels[-1] for m in months_in(c, lv))
    return replace(dim, period_levels=levels, span=(found[0], found[-1]) if found else None)


def period_dimension(months: list[str], dim: DimensionSpec) -> DimensionCodes:
    """The spec's period dimension over ``months`` (``period_codes``)."""
    return period_codes(
        months, dim.period_levels, dim.name, dim.title, dim.description, dim.total_code, dim.total_label
    )


def hierarchy_codes(dim: DimensionSpec) -> DimensionCodes:
    """The dimension's code list as a tree under its total, depth first in code-list order."""
    assert dim.codelist is not None
    cl = dim.codelist
    children: dict[str, list[str]] = {}
    for code in cl.codes:
        children.setdefault(cl.parents[code], []).append(code)
    codes: list[str] = []
    levels = {dim.total_code: "total"}

    def visit(code: str, depth: int) -> None:
        codes.append(code)
        for child in children.get(code, []):
            levels[child] = dim.levels[min(depth, len(dim.levels) - 1)]
            visit(child, depth + 1)

    visit(dim.total_code, 0)
    return DimensionCodes(
        name=dim.name,
        title=dim.title,
        description=dim.description,
        codes=tuple(codes),
        labels={dim.total_code: dim.total_label} | {c: cl.labels[c] for c in codes[1:]},
        parents={dim.total_code: ""} | {c: cl.parents[c] for c in codes[1:]},
        levels=levels,
        total=dim.total_code,
    )


def _period_sql(spec: ReleaseSpec, field: str) -> str:
    kind = spec.input.field(field).type
    return f"strftime(\"{field}\", '%Y-%m')" if kind == "date" else f'CAST("{field}" AS VARCHAR)'


def _period_expr(month: str, level: str) -> str:
    """SQL of the period code at ``level`` from the SQL of a ``YYYY-MM`` month (``period_of``)."""
    if level == "month":
        return month
    if level == "quarter":
        return f"(substr({month}, 1, 4) || '-Q' || CAST((CAST(substr({month}, 6, 2) AS INTEGER) + 2) // 3 AS VARCHAR))"
    if level == "financial_year":
        start = (
            f"(CAST(substr({month}, 1, 4) AS INTEGER) - CAST(CAST(substr({month}, 6, 2) AS INTEGER) < 4 AS INTEGER))"
        )
        return f"(CAST({start} AS VARCHAR) || '/' || lpad(CAST(({start} + 1) % 100 AS VARCHAR), 2, '0'))"
    return f"substr({month}, 1, 4)"


def _window(expr: str, until: str | None, since: str | None) -> str:
    """SQL conditions keeping months in (since, until]."""
    return (f" AND {expr} <= '{until}'" if until else "") + (f" AND {expr} > '{since}'" if since else "")


def observed_months(
    con: duckdb.DuckDBPyConnection, spec: ReleaseSpec, until: str | None = None, since: str | None = None
) -> list[str]:
    periods = sorted({m.period for m in spec.measures.values()})
    union = " UNION ".join(
        f'SELECT DISTINCT {_period_sql(spec, p)} AS m FROM mi WHERE "{p}" IS NOT NULL' for p in periods
    )
    cut = " WHERE TRUE" + _window("m", until, since)
    return [row[0] for row in con.execute(f"SELECT m FROM ({union}){cut} ORDER BY m").fetchall()]


def held_back(spec: ReleaseSpec, mi: pa.Table, until: str | None) -> dict[str, dict[str, int]]:
    """Per measure, what falls in months after the cut-off, by month: reported, never dropped silently.
    So are the months after the last whole quarter (or year) of a release with tables by quarter
    (``whole_periods``), and, for a cohort measure, the cohorts not yet complete (``mature_until``)."""
    con = duckdb.connect()
    con.register("mi", mi)
    out: dict[str, dict[str, int]] = {}
    observed = observed_months(con, spec, until)
    months, until = whole_periods(spec, observed, until)
    con.register("mi", with_elapsed(spec, mi, observed_months(con, spec)[-1] if months else None))
    for m in spec.measures.values():
        month = _period_sql(spec, m.period)
        value, _ = _value_sql(spec, m)
        # a cohort is held back until complete: from 12 months (say) before the data's last month,
        # and, in a table by quarter, until its quarter's cohorts are all complete
        after = until
        if m.cohort_months and months:
            after = last_cohort(m, months, observed)
            for t in spec.tables:
                levels = table_period(t, spec.dimensions)
                if m.name in t.measures and levels:
                    after = min(after, whole_until(after, levels[-1]))
        if after is None:  # no cut-off and nothing short of a whole period or cohort: nothing held
            out[m.name] = {}
            continue
        rows = con.execute(
            f"SELECT {month} AS month, {value} FROM mi WHERE \"{m.period}\" IS NOT NULL AND {month} > '{after}' "
            "GROUP BY ALL ORDER BY month"
        ).fetchall()
        out[m.name] = {month: int(n) for month, n in rows if n}
    con.close()
    return out


def elapsed_column(measure: MeasureSpec) -> str:
    return f"__elapsed_{measure.name}"


def end_column(measure: MeasureSpec) -> str:
    return f"__end_{measure.name}"


def with_elapsed(spec: ReleaseSpec, mi: pa.Table, last_month: str | None) -> pa.Table:
    """The MI with, per timeliness measure, the time from its period date to its field's date, or to
    the data's end (the last day of ``last_month``) where the field is empty or later: what is known
    by then. In the measure's unit, day zero the period date (``opendata.workdays``).

    So a measure counts what has happened by the data's end: "missed" counts the records past their
    limit by then (attached late, or not at all), and a month whose records have not all had their
    limit yet may rise in the next release, a correction the next version marks as revised."""
    if last_month is None:
        return mi
    data_end = (pd.Period(last_month, freq="M").end_time.normalize()).to_datetime64().astype("datetime64[D]")
    for m in spec.measures.values():
        if m.within_days is None:
            continue
        start, end = (mi.column(f).to_numpy(zero_copy_only=False).astype("datetime64[D]") for f in (m.period, m.field))
        end = np.where(np.isnat(end) | (end > data_end), data_end, end)
        days = elapsed(start, end, m.within_days.unit, m.within_days.nation)
        mi = mi.append_column(elapsed_column(m), pa.array(days, mask=np.isnan(days), type=pa.float64()))
        mi = mi.append_column(end_column(m), pa.array(np.full(len(mi), data_end), type=pa.date32()))
    return mi


def _value_sql(spec: ReleaseSpec, measure: MeasureSpec) -> tuple[str, str]:
    """SQL of a measure's value and of its frequency (the contributors the threshold counts)."""
    if measure.within_days is not None:  # a timeliness standard: within its limit, per code where overridden
        w = measure.within_days
        limit = str(w.limit)
        if w.overrides:
            cases = " ".join(f"WHEN '{code}' THEN {n}" for code, n in w.overrides)
            limit = f'CASE "{w.by}" {cases} ELSE {w.limit} END'
        days = f'"{elapsed_column(measure)}"'
        if w.counts == "missed":
            value = f"COUNT(*) FILTER ({days} > {limit})"
        else:
            value = f'COUNT(*) FILTER ("{measure.field}" <= "{end_column(measure)}" AND {days} <= {limit})'
        return value, value
    if measure.within_months:  # a cohort: the event within its window of the period date
        window = f'"{measure.period}" + to_months({measure.within_months})'
        value = f'COUNT("{measure.field}") FILTER ("{measure.field}" < {window})'
        return value, value
    if measure.aggregate == "count":
        value = f'COUNT("{measure.field}")'
        return value, value
    value = f'COALESCE(SUM("{measure.field}"), 0)'
    return value, value if spec.input.kind == "aggregated" else f'COUNT(*) FILTER ("{measure.field}" > 0)'


def _measure_frame(
    con: duckdb.DuckDBPyConnection,
    spec: ReleaseSpec,
    measure: MeasureSpec,
    dims: tuple[DimensionCodes, ...],
    until: str | None,
    since: str | None,
) -> pd.DataFrame:
    """One measure rolled up over every dimension, one code column per dimension."""
    selects, rollups, code_exprs = [], [], []
    for dim in dims:
        dspec = spec.dimensions[dim.name]
        if dspec.period:
            month = _period_sql(spec, measure.period)
            cols = [f"{_period_expr(month, lv)} AS {dim.name}__{i}" for i, lv in enumerate(dspec.period_levels)]
            names = [f"{dim.name}__{i}" for i in range(len(dspec.period_levels))]
        else:
            cols = [f'"{lv}" AS {dim.name}__{i}' for i, lv in enumerate(dspec.levels)]
            names = [f"{dim.name}__{i}" for i in range(len(dspec.levels))]
        selects += cols
        rollups.append(f"ROLLUP({', '.join(names)})")
        deepest = ", ".join(reversed(names))
        code_exprs.append(f"COALESCE({deepest}, '{dim.total}') AS \"{dim.name}\"")
    value, freq = _value_sql(spec, measure)
    cut = _window(_period_sql(spec, measure.period), until, since)
    sql = (
        f"SELECT {', '.join(code_exprs)}, {value} AS v, {freq} AS f FROM ("
        f'SELECT {", ".join(selects)}, * FROM mi WHERE "{measure.period}" IS NOT NULL{cut}'
        f") GROUP BY {', '.join(rollups)}"
    )
    return con.execute(sql).df()


def aggregate(
    spec: ReleaseSpec, mi: pa.Table, until: str | None = None, since: str | None = None
) -> list[AggregatedTable]:
    """Every table of the spec, on the full grid of codes with all totals, from validated MI.

    ``until`` (a ``YYYY-MM`` month) is the cut-off: events in later months are left out; ``since``
    keeps only later months (the management information published ahead of the cut-off).
    """
    periodless = [t.name for t in spec.tables if not table_period(t, spec.dimensions)]
    if periodless:  # its cells are month totals no key would link to the other tables' or versions'
        raise SpecError(
            f"{spec.path}: table {periodless[0]!r} has no period dimension; a release cannot count it yet: its "
            "figures (totals over the months the release covers) would not be linked to the other tables' totals "
            "or to earlier versions, so a cell hidden in one could be read in another. Add the period dimension "
            "(its total is the same figure)"
        )
    con = duckdb.connect()
    con.register("mi", mi)
    observed = observed_months(con, spec, until, since)
    months, until = whole_periods(spec, observed, until)
    con.register("mi", with_elapsed(spec, mi, observed[-1] if months else None))
    out = []
    for table in spec.tables:
        window = max(spec.measures[m].cohort_months or 0 for m in table.measures)
        table_until = until
        if window:  # a cohort table: only cohorts whose whole follow-up the data covers
            if since or not months:
                continue  # cohorts after the cut-off are never complete: no table ahead
            table_until = min(last_cohort(spec.measures[m], months, observed) for m in table.measures)
        table_months = [m for m in months if table_until is None or m <= table_until]
        if window and not table_months:
            continue  # no cohort is complete yet: the table appears with the first one
        dims = tuple(
            period_dimension(table_months, spec.dimensions[d])
            if spec.dimensions[d].period
            else hierarchy_codes(spec.dimensions[d])
            for d in table.dimensions
        )
        period = next((d for d in dims if d.period_levels), None)
        table_since = since
        if period is not None and period.period_levels[-1] != "month":  # whole periods only (period_codes)
            if period.span is None:
                continue  # no whole period yet: the table appears with the first one
            table_until = period.span[1]
            table_since = (pd.Period(period.span[0], freq="M") - 1).strftime("%Y-%m")
        if window:  # says which cohorts it holds: up to the last whole period whose follow-up is complete
            field = next(spec.measures[m].period for m in table.measures)
            table = replace(table, description=_cohort_note(table.description, field, table_until, window))
        grid = pd.MultiIndex.from_product([list(d.codes) for d in dims], names=[d.name for d in dims])
        if len(dims) == 1:  # set_index of one column gives a flat index: the grid must be one too
            grid = grid.get_level_values(0)
        frame = pd.DataFrame(index=grid)
        measures = tuple(spec.measures[m] for m in table.measures)
        for measure in measures:
            agg = _measure_frame(con, spec, measure, dims, table_until, table_since).set_index(list(grid.names))
            unknown = agg.index.difference(grid)
            if len(unknown):
                raise ValueError(f"codes outside the code lists reached aggregation: {list(unknown[:3])}")
            agg = agg.reindex(grid, fill_value=0)
            frame[measure.name] = agg["v"].astype("int64")
            frame[measure.name + FREQ_SUFFIX] = agg["f"].astype("int64")
        frame = frame.reset_index()
        for d in dims:
            frame[d.name] = frame[d.name].astype(str)
        out.append(AggregatedTable(table, dims, measures, frame))
    con.close()
    return out


def whole_periods(spec: ReleaseSpec, months: list[str], until: str | None) -> tuple[list[str], str | None]:
    """The months a release publishes, and its last: up to the end of the last whole period of its
    coarsest table (a release with tables by quarter ends at a quarter's end; the months after are
    held back until their quarter is whole). Every table then spans the same months, so no table's
    total differs from another's by a part period, a difference anyone could take from the two."""
    leaves = [
        levels[-1]
        for t in spec.tables
        if not any(spec.measures[m].cohort_months for m in t.measures) and (levels := table_period(t, spec.dimensions))
    ]
    if not months or not leaves:
        return months, until
    end = whole_until(months[-1], min(leaves, key=PERIOD_LEVELS.index))
    return [m for m in months if m <= end], end


def whole_until(month: str, level: str) -> str:
    """The last month, on or before ``month``, that ends a whole period at ``level``."""
    months = months_in(period_of(month, level), level)
    return month if months[-1] == month else (pd.Period(months[0], freq="M") - 1).strftime("%Y-%m")


def last_cohort(measure: MeasureSpec, months: list[str], observed: list[str]) -> str:
    """The last month of a cohort measure a release publishes (``months``: the release's, ``observed``:
    the data's, both within the cut-off), or any month if it is not a cohort: its follow-up must end
    by the data's end. A timeliness standard's month of follow-up may run into the months after the
    release's last whole period, which the other tables hold back only to keep their periods whole;
    so a release by financial year shows the standard for its last year, whose total is then the
    other tables' total. A 12-month cohort's follow-up ends by the release's last month."""
    if not measure.cohort_months:
        return months[-1]
    known = observed[-1] if measure.within_days is not None else months[-1]
    return min(mature_until(known, measure.cohort_months), months[-1])


def mature_until(end: str, window: int) -> str:
    """The last cohort month (``YYYY-MM``) whose ``window`` months of follow-up end by month ``end``:
    a participant referred on the last day of that month has had the whole window by then."""
    return (pd.Period(end, freq="M") - window).strftime("%Y-%m")


def _cohort_note(description: str, period: str, last: str, window: int) -> str:
    note = (
        f"Cohorts by month of {period}, up to {last}: the latest whose {window} month{'s' * (window != 1)} of "
        "follow-up the data covers. Later cohorts are not shown until their follow-up is complete, so no cohort is "
        "shown low for lack of time."
    )
    return f"{description} {note}".strip()


MI_AHEAD = (
    "Tables ending -mi-ahead cover the months after the cut-off, which official statistics do not cover yet "
    "(Building Best Practice Group recommendation 1c). They are management information, not official "
    "statistics: provisional [p], published voluntarily in line with the Code of Practice for Statistics, and "
    "may be revised when the official statistics for those months are published."
)


def mi_ahead_tables(spec: ReleaseSpec, mi: pa.Table, until: str) -> list[AggregatedTable]:
    """The months after the cut-off as separate, clearly labelled provisional tables [p].

    Their month dimension is ``month_provisional`` so it can never be mistaken for (or linked to)
    the months official statistics cover; each is protected like any other table.
    """
    out = []
    for t in aggregate(spec, mi, since=until):
        dims = tuple(
            replace(d, name=f"{d.name}_provisional", title=f"{d.title} (provisional) [p]") if d.period_levels else d
            for d in t.dimensions
        )
        frame = t.frame.rename(columns={old.name: new.name for old, new in zip(t.dimensions, dims, strict=True)})
        measures = tuple(replace(m, title=f"{m.title} [p]") for m in t.measures)
        table = replace(
            t.spec,
            name=f"{t.spec.name}-mi-ahead",
            title=f"{t.spec.title}, months after the cut-off: provisional management information [p]",
            description=MI_AHEAD,
            dimensions=tuple(d.name for d in dims),
        )
        out.append(AggregatedTable(table, dims, measures, frame))
    return out
