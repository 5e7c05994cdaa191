"""One indicator across programmes: every provider of every package the hub holds, on one funnel plot.

Each package already publishes its ``indicators`` resource: value, Wilson intervals that allow for
its rounding, computed from its published cells only (``opendata.indicators``); nothing here
touches MI or suppressed cells. Programmes are pooled only when their figures mean the same: the
indicator's definition (numerator, denominator, kind) and the published descriptions of both
measures must match, else the programme is left out and the reason shown.

The benchmark is the pooled value of the programmes shown (their totals' numerators over their
denominators). A provider is better or worse than it at 95% or 99.8% when its interval lies wholly
above or below it (Wilson's interval holds the benchmark exactly when the score test's funnel
limits hold the provider's value, so the verdict and the funnel plot agree).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from opendata.hub.sources import Source

LEVELS_SHOWN = ("cpa", "prime_contract", "subcontractor")
COLUMNS = ["indicator", "period", "entity", "entity_level", "numerator", "denominator", "value"]
INTERVALS = ["lower_95", "upper_95", "lower_99.8", "upper_99.8"]


@dataclass(frozen=True)
class Point:
    package: str
    kind: str
    publisher: str
    entity: str
    numerator: float
    denominator: float
    value: float
    lower_95: float
    upper_95: float
    verdict_95: str
    verdict_998: str


@dataclass
class Comparison:
    indicator: str
    title: str
    level: str
    period: str
    benchmark: float | None
    points: list[Point]
    programmes: list[Source]
    suppressed: int  # rows whose value is [c] in their package: not shown
    denominator: str = "denominator"  # the measure it divides by, for the chart's axis
    area: str | None = None
    left_out: dict[str, str] = field(default_factory=dict)  # package -> why it is not comparable

    def to_dict(self) -> dict[str, Any]:
        return {
            "indicator": self.indicator,
            "title": self.title,
            "level": self.level,
            "period": self.period,
            "benchmark": self.benchmark,
            "suppressed": self.suppressed,
            "programmes": [
                {
                    "package": s.package,
                    "version": s.version,
                    "kind": s.kind,
                    "publisher": s.publisher,
                    "provenance": s.provenance,
                    "url": s.url,
                }
                for s in self.programmes
            ],
            "area": self.area,
            "left_out": self.left_out,
            "points": [p.__dict__ for p in self.points],
        }


class Indicators:
    """Every package's ``indicators`` resource in one frame, re-read only when a package changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple = ()
        self._frame = pd.DataFrame()
        self._options: dict[str, list[str]] = {}
        self._by: dict[tuple[str, str], pd.DataFrame] = {}

    def frame(self, found: list[Source]) -> pd.DataFrame:
        return self._refresh(found)[0]

    def options(self, found: list[Source]) -> dict[str, list[str]]:
        """What a reader can choose, worked out once per change of the packages (150 ms on the demo hub)."""
        return self._refresh(found)[1]

    def rows(self, found: list[Source], indicator: str, period: str) -> pd.DataFrame:
        """One indicator in one period, every package: what ``compare`` reads, split once per change."""
        self._refresh(found)
        return self._by.get((indicator, period), self._frame.iloc[:0])

    def _refresh(self, found: list[Source]) -> tuple[pd.DataFrame, dict[str, list[str]]]:
        key = tuple((s.package, s.version, str(s.path)) for s in found)
        with self._lock:
            if key != self._key:
                self._frame = _read(found)
                self._by = {k: g for k, g in self._frame.groupby(["indicator", "period"], sort=False)}
                self._options, self._key = options(self._frame), key
            return self._frame, self._options


def _read(found: list[Source]) -> pd.DataFrame:
    parts = []
    for s in found:
        path = s.path / "data" / "indicators.parquet"
        if path.is_file():
            frame = pd.read_parquet(path, columns=[*COLUMNS, *INTERVALS, "table"])
            frame["package"] = s.package
            frame["area"] = frame["entity"].map(_areas(s.path / "hierarchies" / "provider.csv")).fillna("")
            parts.append(frame)
    empty = pd.DataFrame(columns=[*COLUMNS, *INTERVALS, "package", "area"])
    return pd.concat(parts, ignore_index=True) if parts else empty


def _areas(hierarchy: Path) -> dict[str, str]:
    """Each provider code's area: the CPA it is in (itself for a CPA), from the package's hierarchy."""
    if not hierarchy.is_file():
        return {}
    rows = pd.read_csv(hierarchy, dtype=str, keep_default_na=False)
    parent, level = (
        dict(zip(rows["code"], rows["parent"], strict=True)),
        dict(zip(rows["code"], rows["level"], strict=True)),
    )
    out = {}
    for code in parent:
        c, seen = code, 0
        while c and level.get(c) != "cpa" and seen < 10:
            c, seen = parent.get(c, ""), seen + 1
        if level.get(c) == "cpa":
            out[code] = c
    return out


def definition(source: Source, indicator: str) -> dict[str, Any] | None:
    """What the indicator means in this package: its formula and the descriptions of both measures."""
    d = source.descriptor
    found = next((i for i in d.get("opendata:indicators") or [] if i.get("name") == indicator), None)
    if found is None:
        return None
    fields = {
        f["name"]: f.get("description")
        for r in d.get("resources", [])
        for f in (r.get("schema") or {}).get("fields", [])
    }
    return {
        "formula": tuple(found.get(k) for k in ("numerator", "denominator", "kind", "per")),
        "numerator": fields.get(found.get("numerator")),
        "denominator": fields.get(found.get("denominator")),
        "title": found.get("title", indicator),
        "polarity": found.get("polarity", "higher"),
    }


def options(frame: pd.DataFrame) -> dict[str, list[str]]:
    """What a reader can choose: indicators, levels, periods and areas present in some package."""
    if frame.empty:
        return {"indicators": [], "levels": [], "periods": [], "areas": []}
    periods = sorted(p for p in frame["period"].unique() if p != "Total")
    return {
        "indicators": sorted(frame["indicator"].unique()),
        "levels": [lv for lv in LEVELS_SHOWN if lv in set(frame["entity_level"])],
        "periods": ["Total", *periods],
        "areas": sorted(a for a in frame["area"].unique() if a),
    }


def compare(
    found: list[Source],
    frame: pd.DataFrame,
    indicator: str,
    level: str = "cpa",
    period: str = "Total",
    programmes: list[str] | None = None,
    area: str | None = None,
) -> Comparison:
    """The providers at ``level`` of every comparable programme, in ``period``, against the pooled value;
    with ``area``, only the providers in that contract package area (the benchmark stays national)."""
    chosen = [s for s in found if programmes is None or s.package in programmes]
    defined = {s.package: definition(s, indicator) for s in chosen}
    with_it = [s for s in chosen if defined[s.package] is not None]
    left_out = {s.package: f"it does not publish {indicator}" for s in chosen if defined[s.package] is None}
    reference = defined[with_it[0].package] if with_it else None
    comparable = []
    for s in with_it:
        mine = defined[s.package]
        differs = [k for k in ("formula", "numerator", "denominator") if mine[k] != reference[k]]
        if differs:
            left_out[s.package] = (
                f"its {', '.join(differs)} differ from {with_it[0].package}'s, so the figures mean different things"
            )
        else:
            comparable.append(s)
    title = reference["title"] if reference else indicator
    polarity = reference["polarity"] if reference else "higher"
    names = [s.package for s in comparable]
    rows = frame[(frame["indicator"] == indicator) & (frame["period"] == period) & frame["package"].isin(names)]
    totals = rows[rows["entity_level"] == "total"].dropna(subset=["numerator", "denominator"])
    benchmark = float(totals["numerator"].sum() / totals["denominator"].sum()) if len(totals) else None
    at_level = rows[(rows["entity_level"] == level) & ((rows["area"] == area) if area else True)]
    shown = at_level.dropna(subset=["value", "denominator"]).rename(
        columns={"lower_99.8": "lower_998", "upper_99.8": "upper_998"}
    )
    by_package = {s.package: s for s in comparable}
    points = [
        Point(
            r.package,
            by_package[r.package].kind,
            by_package[r.package].publisher,
            str(r.entity),
            float(r.numerator),
            float(r.denominator),
            float(r.value),
            float(r.lower_95),
            float(r.upper_95),
            _verdict(r.lower_95, r.upper_95, benchmark, polarity),
            _verdict(r.lower_998, r.upper_998, benchmark, polarity),
        )
        for r in shown.itertuples(index=False)
    ]
    denominator = str(reference["formula"][1]) if reference else "denominator"
    hidden = len(at_level) - len(shown)
    return Comparison(
        indicator, title, level, period, benchmark, points, comparable, hidden, denominator, area, left_out
    )


def _verdict(lower: float, upper: float, p0: float | None, polarity: str) -> str:
    if p0 is None:
        return "not compared"
    if lower > p0:
        return "better" if polarity == "higher" else "worse"
    if upper < p0:
        return "worse" if polarity == "higher" else "better"
    return "similar"
