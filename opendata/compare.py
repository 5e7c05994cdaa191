"""One provider's performance against its peers, from a published package alone.

``compare`` loads one table of a published package, computes an indicator for every row
(``opendata.indicators``), benchmarks each against the programme (the table's total row of the
same period, or another row of the table) and returns the entity's position: value, intervals,
benchmark, significance at 95% and 99.8%, rank band among the peers at its level, and its trend
over the months. ``write_charts`` draws the funnel plot and the trend chart as SVG and PNG
(matplotlib), each with a text alternative and the data behind it in a CSV beside it.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from opendata.descriptor import finest_period, is_period
from opendata.errors import OpenDataError
from opendata.indicators import (
    LEVELS,
    Indicator,
    IndicatorError,
    adjusted_verdicts,
    compute,
    funnel_limits,
    quintiles,
    standardised,
    tidy,
)
from opendata.indicators import trend as trend_marker
from opendata.load import list_tables, load

# Okabe and Ito's colour-blind-safe palette; meaning never rests on colour alone (markers, labels)
BLUE, ORANGE, GREEN, GREY, BLACK = "#0072B2", "#E69F00", "#009E73", "#999999", "#000000"


class CompareError(OpenDataError):
    """A comparison that cannot be made as asked (unknown entity, table or period)."""


@dataclass
class Comparison:
    """The entity's row and its peers' rows (``compute`` + ``benchmark`` columns), its trend, and
    what the comparison used."""

    indicator: Indicator
    entity: str
    period: str
    benchmark_entity: str
    benchmark_value: float
    row: dict[str, Any]
    peers: pd.DataFrame
    trend: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    adjustment: str = "none"  # overdispersion: none, phi or re (``indicators.adjusted_verdicts``)
    overdispersion: dict[str, float] = field(default_factory=dict)
    trend_marker: str = ""
    period_level: str = "month"  # the trend's points: the table's finest period (month, quarter or year)

    def summary(self) -> dict[str, Any]:
        """What ``opendata compare`` prints (JSON-safe)."""

        def clean(v: Any) -> Any:
            if isinstance(v, float | np.floating):
                return None if math.isnan(v) else round(float(v), 6)
            if isinstance(v, np.integer):
                return int(v)
            return None if v is pd.NA else v

        keys = ["numerator", "denominator", "value", "status", "method", "rank_band"]
        keys += [f"{side}_{level * 100:g}" for level in LEVELS for side in ("lower", "upper")]
        keys += [f"compared_{level * 100:g}" for level in LEVELS]
        return {
            "indicator": self.indicator.name,
            "kind": self.indicator.kind,
            "polarity": self.indicator.polarity,
            "entity": self.entity,
            "period": self.period,
            "benchmark": {"entity": self.benchmark_entity, "value": clean(self.benchmark_value)},
            **{k: clean(self.row.get(k)) for k in keys},
            "peers": int((self.peers["status"] == "").sum()),
            "overdispersion": {"adjustment": self.adjustment, **{k: clean(v) for k, v in self.overdispersion.items()}},
            "trend_marker": self.trend_marker,
            "period_level": self.period_level,
            "trend": [
                {"period": str(r["period"]), "value": clean(r["value"]), "status": r["status"]}
                for r in self.trend.to_dict("records")
            ],
            "notes": self.notes,
        }


def _dimension_columns(frame: pd.DataFrame, strata: str = "") -> tuple[str, str]:
    """(entity dimension, period dimension) of a two-dimension published table (three with the
    ``strata`` of a standardised indicator)."""
    levels = [c for c in frame.columns if c.endswith("_level")]
    dims = [c[: -len("_level")] for c in levels if c != f"{strata}_level"]
    period = [d for d in dims if is_period(set(frame[d + "_level"].dropna()))]
    entity = [d for d in dims if d not in period]
    if len(period) != 1 or len(entity) != 1:
        raise CompareError(f"compare needs a table of one entity dimension by month; this one has {', '.join(dims)}")
    return entity[0], period[0]


def compare(
    source: str | os.PathLike[str],
    entity: str,
    indicator: Indicator | str,
    *,
    table: str | None = None,
    period: str = "Total",
    against: str | None = None,
    exact: bool = False,
    overdispersion: str = "none",
    others: Sequence[str | os.PathLike[str]] = (),
    root: str | os.PathLike[str] = "releases",
    trust: str | os.PathLike[str] | None = None,
) -> Comparison:
    """``entity``'s ``indicator`` in ``period`` of one published table, against ``against`` (a row
    of the same table; default: its total, the programme) and its peers (the rows at its level).
    ``indicator``: an ``Indicator``, or the name of one the package defines, or ``NUM/DEN``;
    ``table``: default, the first table of one entity dimension by month that holds its measures;
    ``overdispersion``: ``phi`` or ``re`` widens the funnel for variation beyond chance among the
    peers (Spiegelhalter 2005); the trend marker tests the entity's last five months. ``others``:
    packages (another programme, another publisher) whose rows at the entity's level join the peers,
    as ``package:code``, when their indicator means the same (``definition_differences``)."""
    indicator, dim, when, rows = _rows(source, indicator, table, exact, root, trust)
    table = rows.attrs.get("table", table)
    if entity not in set(rows[dim]):
        raise CompareError(f"{dim} {entity!r} is not in table {table}")
    if period not in set(rows[when]):
        raise CompareError(f"{when} {period!r} is not in table {table}; it has {', '.join(sorted(set(rows[when])))}")
    base = rows.attrs.get("rounding_base")
    total = rows.loc[rows[dim + "_level"] == "total", dim]
    against = against or (str(total.iloc[0]) if len(total) else None)
    notes = []
    at = rows[rows[when] == period]
    theirs = [_other_rows(other, indicator, rows, dim, when, period, exact, root, trust) for other in others]
    everyone = pd.concat([at, *theirs])
    if against is None or against not in set(everyone[dim].astype(str)):
        raise CompareError(f"benchmark {against!r} is not a {dim} of table {table} (nor package:{dim} of --with)")
    bench_row = everyone[everyone[dim].astype(str) == against].iloc[0]
    if bench_row["status"] != "":
        raise CompareError(f"the benchmark {against} is suppressed or empty in {period}: nothing to compare with")
    p0 = float(bench_row["value"])
    level = rows.loc[rows[dim] == entity, dim + "_level"].iloc[0]
    same_level = everyone[everyone[dim + "_level"] == level]
    notes += [f"peers include {other}'s, whose definitions match" for other in others]
    peers, found = adjusted_verdicts(same_level.reset_index(drop=True), indicator, p0, overdispersion)
    peers = peers.assign(rank_band=quintiles(peers["value"].where(peers["status"] == "")))
    row = peers[peers[dim] == entity].iloc[0].to_dict()
    if base and base > 1:
        notes.append(f"published counts are rounded to base {base}; the intervals allow for it")
    if row["status"] == "c":
        notes.append("suppressed ([c]): a count it needs is hidden to protect people, so no value is shown")
    finest = finest_period(rows[when + "_level"].dropna())
    trend = rows[(rows[dim] == entity) & (rows[when + "_level"] == finest)]
    trend = trend.rename(columns={when: "period"}).sort_values("period")
    return Comparison(
        indicator, entity, period, against, p0, row, peers.rename(columns={dim: "entity"}), trend, notes,
        overdispersion, found, trend_marker(trend, indicator), finest,
    )  # fmt: skip


def definition_differences(mine: dict[str, Any], theirs: dict[str, Any], indicator: Indicator, when: str) -> list[str]:
    """What keeps two packages' figures of ``indicator`` from meaning the same: the numerator's or
    the denominator's definition (what is counted, unit, how), or the period (calendar month of the
    events against a referral cohort). From each table's ``attrs`` (``opendata.load``)."""
    out = []
    for role in ("numerator", "denominator"):
        measure = getattr(indicator, role)
        a, b = (d.get("definitions", {}).get(measure) for d in (mine, theirs))
        if b is None:
            out.append(f"{role} {measure} is not in {theirs.get('name')}'s table")
        elif a != b:
            out.append(f"{role} {measure} is defined differently ({a!r} against {b!r})")
    a, b = (d.get("definitions", {}).get(when) for d in (mine, theirs))
    if b is None or a != b:
        out.append(f"the period differs ({when}: {a!r} against {b!r})")
    return out


def _other_rows(other, indicator, rows, dim, when, period, exact, root, trust) -> pd.DataFrame:
    """Another package's rows in ``period``, coded ``package:code``, if its definitions match."""
    try:
        frame = load(other, rows.attrs.get("table"), root=root, trust=trust)
    except OpenDataError as exc:
        raise CompareError(f"cannot compare with {other}: {exc}") from None
    differ = definition_differences(rows.attrs, frame.attrs, indicator, when)
    if differ or dim not in frame.columns:
        reasons = "; ".join(differ) or f"it has no {dim} dimension"
        raise CompareError(f"cannot compare with {other}: {reasons}")
    theirs = compute(frame, indicator, base=frame.attrs.get("rounding_base"), exact=exact)
    theirs = theirs[theirs[when] == period].copy()
    theirs[dim] = frame.attrs.get("name", str(other)) + ":" + theirs[dim].astype(str)
    return theirs


def indicator_table(
    source: str | os.PathLike[str],
    indicator: Indicator | str,
    *,
    table: str | None = None,
    exact: bool = False,
    root: str | os.PathLike[str] = "releases",
    trust: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """The indicator for every row of a published table, each period benchmarked against the
    table's total row of that period (the programme), in the columns of a package's ``indicators``
    resource (``opendata.indicators.TIDY``). One line for a notebook::

        opendata.indicator_table("work-programme-subcontractor-mi", "job-outcomes-per-referral")
    """
    if table is None:
        indicator, table = _table_for(source, indicator, root, trust)
    frame = load(source, table, root=root, trust=trust)
    if isinstance(indicator, str):
        indicator = Indicator.parse(indicator, frame.attrs.get("indicators") or ())
    base = frame.attrs.get("rounding_base")
    if indicator.standardise_by:
        dim, when = _dimension_columns(frame, indicator.standardise_by)
        out = standardised(frame, dim, when, indicator.standardise_by, indicator, base=base)
    else:
        dim, when = _dimension_columns(frame)
        out = tidy(frame, dim, when, indicator, base=base, exact=exact)
    out.attrs = dict(frame.attrs)
    return out


def _table_for(source, indicator: Indicator | str, root, trust) -> tuple[Indicator, str]:
    """The indicator, and the first table of the package (in its order) of one entity dimension by
    month that holds both its measures: the cohort table for a cohort indicator, else the first."""
    tables = list_tables(os.fspath(source), source=root, trust=trust)
    if isinstance(indicator, str):
        attrs = load(source, tables["table"].iloc[0], root=root, trust=trust, levels=False).attrs
        indicator = Indicator.parse(indicator, attrs.get("indicators") or ())
    strata = indicator.standardise_by
    for row in tables.itertuples():
        measures, dims = row.measures.split(", "), row.dimensions.split(", ")
        shape = len(dims) == 3 and strata in dims if strata else len(dims) == 2
        if {indicator.numerator, indicator.denominator} <= set(measures) and shape:
            return indicator, row.table
    by = f" and {strata}" if strata else ""
    raise CompareError(
        f"no table of one entity dimension by month{by} holds both {indicator.numerator} and {indicator.denominator}"
    )


def _rows(source, indicator: Indicator | str, table: str | None, exact: bool, root, trust):
    """The indicator for every row of a published table: (indicator, entity and period dimension,
    ``compute``'s rows, with the table's ``attrs``)."""
    if table is None:
        indicator, table = _table_for(source, indicator, root, trust)
    frame = load(source, table, root=root, trust=trust)
    if isinstance(indicator, str):
        indicator = Indicator.parse(indicator, frame.attrs.get("indicators") or ())
    if indicator.standardise_by:
        raise CompareError(
            f"{indicator.name} is standardised: compare draws plain ratios only; read it with "
            "opendata.indicator_table or the package's indicators resource"
        )
    dim, when = _dimension_columns(frame)
    rows = compute(frame, indicator, base=frame.attrs.get("rounding_base"), exact=exact)
    rows.attrs = dict(frame.attrs)
    return indicator, dim, when, rows


def write_charts(result: Comparison, out: Path, formats: Sequence[str] = ("svg", "png")) -> list[Path]:
    """The funnel plot and the trend chart (each as ``formats``), their text alternatives
    (``.txt``) and data (``.csv``), in ``out``. All are drawn in a temporary directory beside it
    and moved in only when every one is written, so a failure leaves ``out`` as it was."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    except OSError as exc:
        raise CompareError(f"cannot write charts to {out}: {exc.strerror or exc}") from None
    try:
        names = [p.name for p in _draw(result, stage, formats)]
        out.mkdir(exist_ok=True)
        for name in names:
            os.replace(stage / name, out / name)
    except OSError as exc:
        raise CompareError(f"cannot write charts to {out}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return [out / name for name in names]


def _draw(result: Comparison, out: Path, formats: Sequence[str]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "opendata"  # same ids, same bytes
    ind = result.indicator
    pct = 100 if ind.kind == "proportion" else 1
    unit = "%" if ind.kind == "proportion" else f" per {ind.per:,}"
    name = ind.name.replace("/", "-per-")
    written = []

    shown = result.peers[result.peers["status"] == ""]
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=100)
    if len(shown):
        n = np.linspace(max(float(shown["denominator"].min()), 1.0), float(shown["denominator"].max()), 200)
        for level, style in zip(LEVELS, ("--", ":"), strict=True):
            widen = {"phi": max(result.overdispersion.get("phi", 1.0), 1.0)} if result.adjustment == "phi" else {}
            widen = {"tau2": result.overdispersion.get("tau2", 0.0)} if result.adjustment == "re" else widen
            lo, hi = funnel_limits(result.benchmark_value / (ind.per if ind.kind == "rate" else 1), n, level, **widen)
            scale = pct * (ind.per if ind.kind == "rate" else 1)
            ax.plot(n, lo * scale, style, color=GREY, label=f"{level * 100:g}% limits")
            ax.plot(n, hi * scale, style, color=GREY)
        others = shown[shown["entity"] != result.entity]
        ax.scatter(others["denominator"], others["value"] * pct, s=18, color=BLUE, marker="o", label="peers")
    ax.axhline(result.benchmark_value * pct, color=BLACK, linewidth=1, label=f"{result.benchmark_entity} (benchmark)")
    if result.row["status"] == "":
        ax.scatter(
            [result.row["denominator"]], [result.row["value"] * pct], s=90, color=ORANGE, marker="D",
            edgecolor=BLACK, label=result.entity, zorder=3,
        )  # fmt: skip
        ax.annotate(result.entity, (result.row["denominator"], result.row["value"] * pct), xytext=(6, 6),
                    textcoords="offset points")  # fmt: skip
    ax.set_xlabel(f"{ind.denominator.replace('_', ' ')} (denominator)")
    ax.set_ylabel(f"{ind.numerator.replace('_', ' ')} per {ind.denominator.replace('_', ' ')} ({unit.strip()})")
    ax.set_title(f"{ind.name}, {result.period}: {result.entity} against its peers")
    ax.legend(loc="best", fontsize=8)
    funnel_alt = _funnel_text(result, pct, unit)
    written += _save(fig, out / f"funnel-{name}", formats, f"Funnel plot: {ind.name}", funnel_alt)
    plt.close(fig)
    written.append(_write_text(out / f"funnel-{name}.csv", result.peers.to_csv(index=False)))

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    t = result.trend[result.trend["status"] == ""]
    if len(t):
        x = np.arange(len(t))
        ax.errorbar(
            x, t["value"] * pct,
            yerr=[((t["value"] - t["lower_95"]) * pct).clip(0), ((t["upper_95"] - t["value"]) * pct).clip(0)],
            fmt="o-", color=BLUE, ecolor=GREY, capsize=3, label=f"{result.entity} (95% interval)",
        )  # fmt: skip
        step = max(len(t) // 12, 1)
        ax.set_xticks(x[::step], [str(p) for p in t["period"]][::step], rotation=45, ha="right")
    ax.axhline(
        result.benchmark_value * pct, color=BLACK, linewidth=1, label=f"{result.benchmark_entity}, {result.period}"
    )
    ax.set_xlabel(result.period_level)
    ax.set_ylabel(f"{ind.name} ({unit.strip()})")
    ax.set_title(f"{ind.name} by {result.period_level}: {result.entity}")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    trend_alt = _trend_text(result, pct, unit)
    written += _save(fig, out / f"trend-{name}", formats, f"Trend: {ind.name}", trend_alt)
    plt.close(fig)
    written.append(_write_text(out / f"trend-{name}.csv", result.trend.to_csv(index=False)))
    return written


def _funnel_text(result: Comparison, pct: float, unit: str) -> str:
    shown = result.peers[result.peers["status"] == ""]
    row = result.row
    where = (
        f"{result.entity} is at {row['value'] * pct:.1f}{unit} ({row['numerator']} of {row['denominator']}), "
        f"95% interval {row['lower_95'] * pct:.1f} to {row['upper_95'] * pct:.1f}; "
        f"compared with the benchmark: {row['compared_95']} at 95%, {row['compared_99.8']} at 99.8%."
        if row["status"] == ""
        else f"{result.entity}'s value is suppressed ([c])."
    )
    return (
        f"Funnel plot of {result.indicator.name} for {len(shown)} peers in {result.period}, against "
        f"{result.benchmark_entity} at {result.benchmark_value * pct:.1f}{unit}, with 95% and 99.8% control "
        f"limits. {where} The data are in the CSV file beside this chart."
    )


def _trend_text(result: Comparison, pct: float, unit: str) -> str:
    t = result.trend[result.trend["status"] == ""]
    level = result.period_level
    if not len(t):
        return f"No {level} of {result.entity} has a value shown: every {level} is suppressed or empty."
    return (
        f"{result.indicator.name} of {result.entity} over {len(t)} {level}s with a value shown, from "
        f"{t['value'].min() * pct:.1f}{unit} to {t['value'].max() * pct:.1f}{unit}; the line is "
        f"{result.benchmark_entity} over the whole period ({result.benchmark_value * pct:.1f}{unit}). "
        f"{level.capitalize()}s not shown are suppressed or empty. The data are in the CSV file beside this chart."
    )


def _save(fig, stem: Path, formats: Sequence[str], title: str, alt: str) -> list[Path]:
    written = []
    for fmt in formats:
        metadata = {"Title": title, "Description": alt, "Date": None} if fmt == "svg" else {"Software": None}
        path = stem.with_suffix(f".{fmt}")
        fig.savefig(path, format=fmt, metadata=metadata)
        written.append(path)
    written.append(_write_text(stem.with_suffix(".txt"), alt + "\n"))
    return written


def _write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


__all__ = ["CompareError", "Comparison", "IndicatorError", "compare", "write_charts"]
