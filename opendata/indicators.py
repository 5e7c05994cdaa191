"""Performance indicators computed from published cells alone, with honest uncertainty.

An indicator is a ratio of two published measures (job outcomes per referral, say) for one row of a
published table. Everything here is a function of the published view (rounded values, ``[c]`` for
suppressed cells): it can disclose nothing the tables do not, since anyone can compute it from
the same files. Where either input is suppressed the indicator is ``c`` too; where the
denominator is 0 it is ``z`` (not applicable).

Uncertainty follows the methods public-health statisticians use for the same question (OHID's
Fingertips and PHEindicatormethods):

* proportions: Wilson score intervals (``statsmodels``); Clopper–Pearson on request;
* rates and counts: Byar's approximation from 10 events up, exact Poisson limits below
  (chi-square quantiles, ``scipy``; Byar's closed form is written here, as no maintained Python
  library provides it);
* rounding: a published value ``v`` rounded to base ``b`` stands for any count in
  ``[v - b//2, v + b - b//2 - 1]``, so each interval is the widest over those counts (the
  interval says so in ``method``), never the interval of the rounded value as if it were exact.

Benchmarking is the funnel-plot method (Spiegelhalter 2005): a row is compared with the benchmark
proportion ``p0`` of its comparator (by default the programme: the table's total row of the same
period) at 95% and 99.8%; it differs significantly when ``p0`` lies outside its interval. For a
Wilson interval that is exactly the score test, whose acceptance region at denominator ``n`` is the
funnel ``p0 ± z sqrt(p0 (1 - p0) / n)`` (``funnel_limits``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from opendata.descriptor import is_period
from opendata.errors import OpenDataError

LEVELS = (0.95, 0.998)
KINDS = ("proportion", "rate")
POLARITIES = ("higher", "lower", "none")


class IndicatorError(OpenDataError):
    """An indicator that cannot be computed as asked (unknown measure, bad level, ...)."""


def _z(level: float) -> float:
    """The two-sided normal quantile. scipy.stats is imported on first use, here and below: it takes
    about a second to load, and every command that never computes an interval would pay it."""
    from scipy.stats import norm

    if not 0 < level < 1:
        raise IndicatorError(f"confidence level {level} must be between 0 and 1 (e.g. 0.95)")
    return float(norm.ppf(1 - (1 - level) / 2))


def _confint(x, n, level: float, method: str) -> tuple[np.ndarray, np.ndarray]:
    """statsmodels' ``proportion_confint``, imported on first use: a release that stops at
    validation need not load it (tests/test_release_e2e.py holds such a run under 500 MB)."""
    from statsmodels.stats.proportion import proportion_confint

    _z(level)
    lo, hi = proportion_confint(np.asarray(x, dtype=float), np.asarray(n, dtype=float), 1 - level, method)
    return np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)


def wilson(x, n, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of the proportion ``x / n`` (Wilson 1927; statsmodels)."""
    return _confint(x, n, level, "wilson")


def clopper_pearson(x, n, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Clopper–Pearson) interval of ``x / n`` (statsmodels' "beta" method)."""
    lo, hi = _confint(x, n, level, "beta")
    return np.nan_to_num(lo), np.nan_to_num(hi, nan=1.0)


def exact_poisson(o, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Exact limits of a Poisson count ``o``: ``chi2(a/2, 2o) / 2`` and ``chi2(1 - a/2, 2o + 2) / 2``."""
    from scipy.stats import chi2

    a = 1 - level
    _z(level)
    o = np.asarray(o, dtype=float)
    lower = np.where(o > 0, chi2.ppf(a / 2, np.maximum(2 * o, 1e-12)) / 2, 0.0)
    return lower, chi2.ppf(1 - a / 2, 2 * o + 2) / 2


def byar(o, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Byar's approximation to the exact Poisson limits of a count ``o`` (Breslow and Day 1987):
    ``o (1 - 1/(9o) - z/(3 sqrt o))^3`` and ``(o+1) (1 - 1/(9(o+1)) + z/(3 sqrt(o+1)))^3``."""
    z = _z(level)
    o = np.asarray(o, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        lower = np.where(o > 0, o * (1 - 1 / (9 * o) - z / (3 * np.sqrt(o))) ** 3, 0.0)
    upper = (o + 1) * (1 - 1 / (9 * (o + 1)) + z / (3 * np.sqrt(o + 1))) ** 3
    return lower, upper


def poisson(o, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Limits of a count as Fingertips gives them: exact below 10 events, Byar's from 10 up."""
    o = np.asarray(o, dtype=float)
    (el, eu), (bl, bu) = exact_poisson(o, level), byar(o, level)
    return np.where(o < 10, el, bl), np.where(o < 10, eu, bu)


def funnel_limits(
    p0: float, n, level: float = 0.95, phi: float = 1.0, tau2: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Control limits of a funnel plot for proportions around the benchmark ``p0`` at denominator
    ``n``: the score test's acceptance region, ``p0 ± z sqrt(p0 (1 - p0) / n)``, clipped to [0, 1].
    A proportion inside them has a Wilson interval that holds ``p0``, and the reverse. ``phi`` and
    ``tau2`` widen them for overdispersion (``p0 ± z sqrt(phi s^2 + tau2)``, ``adjusted_verdicts``)."""
    z = _z(level)
    n = np.asarray(n, dtype=float)
    half = z * np.sqrt(phi * p0 * (1 - p0) / n + tau2)
    return np.clip(p0 - half, 0, 1), np.clip(p0 + half, 0, 1)


def rounding_range(published, base: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The counts a published value rounded to ``base`` may stand for (conventional rounding)."""
    v = np.asarray(published, dtype=float)
    if not base or base <= 1:
        return v, v
    return np.maximum(v - base // 2, 0), v + base - base // 2 - 1


@dataclass(frozen=True)
class Indicator:
    """``numerator / denominator`` of two published measures: a proportion (the numerator counts a
    subset of the denominator's people) or a rate per ``per`` of the denominator."""

    numerator: str
    denominator: str
    kind: str = "proportion"
    per: int = 1
    polarity: str = "higher"
    key: str = ""  # its name in the spec, if it has one
    title: str = ""
    standardise_by: str = ""  # a dimension of strata: observed / expected (``standardised``)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise IndicatorError(f"indicator kind {self.kind!r}: expected one of {', '.join(KINDS)}")
        if self.polarity not in POLARITIES:
            raise IndicatorError(f"indicator polarity {self.polarity!r}: expected one of {', '.join(POLARITIES)}")

    @property
    def name(self) -> str:
        return self.key or f"{self.numerator}/{self.denominator}"

    @classmethod
    def parse(cls, text: str, defined: list[dict] | tuple = (), **options) -> Indicator:
        """An indicator ``defined`` in the package (by name, e.g. ``job-outcomes-per-referral``), or
        ``NUMERATOR/DENOMINATOR`` of two measures, e.g. ``job_outcomes/referrals``."""
        for d in defined:
            if d.get("name") == text:
                fields = ("numerator", "denominator", "kind", "per", "polarity", "title", "standardise_by")
                return cls(**{k: d[k] for k in fields if k in d}, key=text)
        parts = [p.strip() for p in text.split("/")]
        if len(parts) != 2 or not all(parts):
            names = ", ".join(str(d.get("name")) for d in defined) or "none"
            raise IndicatorError(
                f"indicator {text!r}: expected NUMERATOR/DENOMINATOR (e.g. job_outcomes/referrals) or the name of "
                f"one the package defines ({names})"
            )
        return cls(parts[0], parts[1], **options)


def compute(
    frame: pd.DataFrame,
    indicator: Indicator,
    base: int | None = None,
    levels: tuple[float, ...] = LEVELS,
    exact: bool = False,
) -> pd.DataFrame:
    """The indicator for every row of a published table (``opendata.load`` output: a measure
    column with <NA> where suppressed). Returns the input's non-measure columns and ``numerator``,
    ``denominator``, ``value``, ``lower_<level>``, ``upper_<level>`` per level (e.g. ``lower_95``,
    ``upper_99.8``), ``status`` ("" shown, "c" an input suppressed, "z" denominator 0) and
    ``method``. ``base``: the rounding base of the published values; ``exact``: Clopper–Pearson
    instead of Wilson for proportions."""
    for m in (indicator.numerator, indicator.denominator):
        if m not in frame.columns:
            raise IndicatorError(f"measure {m!r} is not in this table; it has: {', '.join(_measures(frame))}")
    keep = [c for c in frame.columns if c not in _measures(frame) and not c.endswith("_status")]
    out = frame[keep].reset_index(drop=True).copy()
    x, n = (_floats(frame[m]) for m in (indicator.numerator, indicator.denominator))
    hidden = np.isnan(x) | np.isnan(n)
    empty = ~hidden & (n <= 0)
    shown = ~hidden & ~empty
    out["numerator"] = pd.array(np.where(hidden, np.nan, x), dtype="Int64")
    out["denominator"] = pd.array(np.where(hidden, np.nan, n), dtype="Int64")
    scale = indicator.per if indicator.kind == "rate" else 1
    with np.errstate(divide="ignore", invalid="ignore"):
        out["value"] = np.where(shown, x / n * scale, np.nan)
    x_lo, x_hi = rounding_range(np.nan_to_num(x), base)
    n_lo, n_hi = rounding_range(np.nan_to_num(n), base)
    n_lo, n_hi = np.maximum(n_lo, 1), np.maximum(n_hi, 1)  # rows with no denominator are "z" anyway
    for level in levels:
        tag = f"{level * 100:g}"
        if indicator.kind == "proportion":
            interval = clopper_pearson if exact else wilson
            lo, _ = interval(np.minimum(x_lo, n_hi), n_hi, level)
            _, hi = interval(np.minimum(x_hi, n_lo), n_lo, level)
        else:
            lo_count, _ = poisson(x_lo, level)
            _, hi_count = poisson(x_hi, level)
            lo, hi = lo_count / n_hi * scale, hi_count / n_lo * scale
        out[f"lower_{tag}"] = np.where(shown, lo, np.nan)
        out[f"upper_{tag}"] = np.where(shown, hi, np.nan)
    out["status"] = np.where(hidden, "c", np.where(empty, "z", ""))
    method = (
        ("Clopper-Pearson" if exact else "Wilson")
        if indicator.kind == "proportion"
        else "exact Poisson below 10 events, Byar from 10"
    )
    if base and base > 1:  # widest over the counts each rounded value may stand for
        method += f", rounding to base {base} allowed for"
    out["method"] = np.where(shown, method, "")
    return out


def benchmark(table: pd.DataFrame, indicator: Indicator, p0: float, levels: tuple[float, ...] = LEVELS) -> pd.DataFrame:
    """Each row of ``compute``'s output against the benchmark value ``p0`` (same scale as
    ``value``): per level, ``higher``/``lower`` where ``p0`` lies outside the row's interval,
    ``similar`` inside, "" where the indicator or the benchmark (NaN: suppressed) is not shown;
    ``better``/``worse`` by polarity."""
    out = table.copy()
    out["benchmark"] = p0
    for level in levels:
        tag = f"{level * 100:g}"
        lo, hi = out[f"lower_{tag}"].to_numpy(), out[f"upper_{tag}"].to_numpy()
        slack = 1e-12 * max(abs(p0), 1.0)  # a limit equal to p0 up to rounding error holds it
        verdict = np.where(lo > p0 + slack, "higher", np.where(hi < p0 - slack, "lower", "similar"))
        if indicator.polarity != "none":
            good = "higher" if indicator.polarity == "higher" else "lower"
            verdict = np.where(verdict == "similar", verdict, np.where(verdict == good, "better", "worse"))
        out[f"compared_{tag}"] = np.where((out["status"] == "") & np.isfinite(p0), verdict, "")
    return out


ADJUSTMENTS = ("none", "phi", "re")
WINSOR = 0.1  # share of z-scores winsorised at each end before estimating overdispersion (as the SHMI)


def _z_scores(table: pd.DataFrame, indicator: Indicator, p0: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: ``(y - p0) / s`` with ``s^2`` the variance of ``y`` at the benchmark (``p0 (1 - p0)
    / n`` for a proportion, ``p0 / n`` for a rate, both unscaled), ``s^2`` itself, and which rows
    are shown (NaN elsewhere)."""
    scale = indicator.per if indicator.kind == "rate" else 1
    shown = (table["status"] == "").to_numpy()
    x, n = _floats(table["numerator"]), _floats(table["denominator"])
    q = p0 / scale
    var = np.where(shown, (q * (1 - q) if indicator.kind == "proportion" else q) / np.where(shown, n, 1), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(shown, (x / np.where(shown, n, 1) - q) / np.sqrt(var), np.nan)
    return z, var, shown


def overdispersion(table: pd.DataFrame, indicator: Indicator, p0: float, winsor: float = WINSOR) -> dict[str, float]:
    """Spiegelhalter's (2005) estimates of overdispersion among the shown rows against ``p0``:
    ``phi``, the mean squared z-score after winsorising ``winsor`` of them at each end (scipy), and
    the additive random-effects variance ``tau2 = max(0, (I phi - (I - 1)) / (sum w - sum w^2 /
    sum w))`` with ``w = 1 / s^2`` (DerSimonian–Laird on the winsorised scores, as NHS England's
    SHMI). With no more variation than chance, ``phi`` is near 1 and ``tau2`` is 0."""
    from scipy.stats.mstats import winsorize

    z, var, shown = _z_scores(table, indicator, p0)
    keep = shown & np.isfinite(z)
    count = int(keep.sum())
    if count < 2:
        return {"phi": float("nan"), "tau2": float("nan"), "count": count}
    zw = np.asarray(winsorize(z[keep], limits=(winsor, winsor)), dtype=float)
    phi = float(np.mean(zw**2))
    w = 1 / var[keep]
    tau2 = max(0.0, (count * phi - (count - 1)) / (w.sum() - (w**2).sum() / w.sum()))
    return {"phi": phi, "tau2": float(tau2), "count": count}


def adjusted_verdicts(
    table: pd.DataFrame, indicator: Indicator, p0: float, adjust: str, levels: tuple[float, ...] = LEVELS
) -> tuple[pd.DataFrame, dict[str, float]]:
    """``benchmark``'s verdicts with the funnel widened for overdispersion: ``phi`` (multiplicative,
    limits at ``p0 ± z sqrt(phi) s`` when ``phi > 1``) or ``re`` (additive random effects, ``p0 ± z
    sqrt(s^2 + tau2)``). A row is flagged when its value lies outside the widened limits. Returns
    the rows with ``compared_<level>`` replaced and the estimates."""
    if adjust not in ADJUSTMENTS:
        raise IndicatorError(f"overdispersion adjustment {adjust!r}: expected one of {', '.join(ADJUSTMENTS)}")
    out = benchmark(table, indicator, p0, levels)
    found = overdispersion(out, indicator, p0)
    if adjust == "none" or not np.isfinite(found["phi"]):
        return out, found
    z, var, shown = _z_scores(out, indicator, p0)
    widen = max(found["phi"], 1.0) if adjust == "phi" else (var + found["tau2"]) / var
    z = z / np.sqrt(widen)
    for level in levels:
        tag = f"{level * 100:g}"
        verdict = np.where(z > _z(level), "higher", np.where(z < -_z(level), "lower", "similar"))
        if indicator.polarity != "none":
            good = "higher" if indicator.polarity == "higher" else "lower"
            verdict = np.where(verdict == "similar", verdict, np.where(verdict == good, "better", "worse"))
        out[f"compared_{tag}"] = np.where(shown & np.isfinite(p0), verdict, "")
    name = "multiplicative phi" if adjust == "phi" else "additive random effects tau2"
    note = f"; overdispersion {name} (phi {found['phi']:.3g}, tau2 {found['tau2']:.3g}, {WINSOR:.0%} winsorised)"
    out["method"] = np.where(shown, out["method"].astype(str) + note, out["method"])
    return out, found


def trend(rows: pd.DataFrame, indicator: Indicator, last: int = 5) -> str:
    """A marker of the linear trend over the ``last`` periods shown (``rows``: one entity, in period
    order, ``compute`` columns), as Fingertips gives it: the chi-square test for trend in proportions
    (Cochran–Armitage, as statsmodels' linear-by-linear association test of the 2 x N table) at 99.8%;
    ``increasing``/``decreasing`` (``getting better``/``getting worse`` by polarity), ``no significant
    change``, or ``cannot be calculated`` when fewer than ``last`` periods are shown or any of them is
    hidden. On the published (rounded) counts."""
    from statsmodels.stats.contingency_tables import Table

    tail = rows.tail(last)
    if len(tail) < last or (tail["status"] != "").any() or indicator.kind != "proportion":
        return "cannot be calculated"
    x, n = _floats(tail["numerator"]), _floats(tail["denominator"])
    counts = np.vstack([x, n - x]).T  # periods x (events, non-events)
    if (counts.sum(axis=0) == 0).any():
        return "no significant change"
    test = Table(counts).test_ordinal_association(
        row_scores=np.arange(last, dtype=float), col_scores=np.array([1.0, 0.0])
    )
    if test.pvalue >= 0.002:
        return "no significant change"
    slope = np.polyfit(np.arange(last), x / n, 1)[0]
    direction = "increasing" if slope > 0 else "decreasing"
    if indicator.polarity == "none":
        return direction
    return "getting better" if (slope > 0) == (indicator.polarity == "higher") else "getting worse"


def quintiles(values: pd.Series) -> pd.Series:
    """Rank band 1 (lowest fifth) to 5 of each shown value among its peers (<NA> if not shown)."""
    ranks = values.rank(method="average", pct=True)
    return pd.Series(np.ceil(ranks * 5).clip(1, 5), index=values.index).astype("Int64")


def _floats(column: pd.Series) -> np.ndarray:
    return pd.to_numeric(column, errors="coerce").astype("Float64").to_numpy(dtype=float, na_value=np.nan)


def _measures(frame: pd.DataFrame) -> list[str]:
    return [c[: -len("_status")] for c in frame.columns if c.endswith("_status") and c[: -len("_status")] in frame]


TIDY = (
    "indicator", "period", "entity", "entity_level", "numerator", "denominator", "expected", "value",
    *(f"{side}_{level * 100:g}" for level in LEVELS for side in ("lower", "upper")),
    "benchmark", *(f"compared_{level * 100:g}" for level in LEVELS), "status", "method",
)  # fmt: skip


def tidy(
    frame: pd.DataFrame, entity: str, period: str, indicator: Indicator, base: int | None = None, exact: bool = False
) -> pd.DataFrame:
    """The indicator for every row of a published table of ``entity`` by ``period`` (the frame has
    both dimensions, their ``<dimension>_level`` columns and the measures with their statuses),
    each row benchmarked against the table's total entity of the same period (the programme):
    one row per entity and period, columns ``TIDY``."""
    rows = compute(frame, indicator, base=base, exact=exact)
    p0 = rows[rows[entity + "_level"] == "total"].set_index(period)["value"]
    parts = [
        benchmark(part, indicator, float(p0.get(when, np.nan)))
        for when, part in rows.groupby(period, sort=False, observed=True)
    ]
    out = pd.concat(parts).sort_index() if parts else benchmark(rows, indicator, np.nan)
    out = out.rename(columns={period: "period", entity: "entity", entity + "_level": "entity_level"})
    return _tidy_columns(out, indicator)


def _tidy_columns(out: pd.DataFrame, indicator: Indicator) -> pd.DataFrame:
    out.insert(0, "indicator", indicator.name)
    if "expected" not in out:
        out["expected"] = np.nan
    for column in ("period", "entity", "entity_level"):
        out[column] = out[column].astype(str)
    return out[list(TIDY)].reset_index(drop=True)


def standardised(
    frame: pd.DataFrame,
    entity: str,
    period: str,
    strata: str,
    indicator: Indicator,
    base: int | None = None,
    levels: tuple[float, ...] = LEVELS,
) -> pd.DataFrame:
    """Indirectly standardised ratio of every entity and period: observed ``O`` (the numerator of
    the entity at the strata total) over expected ``E = sum_s n_s r_s``, its denominator in each
    stratum ``s`` at the programme's rate ``r_s`` of that stratum and period (the total entity's
    row). A provider serving harder claimant groups is then measured against what the programme
    achieves with the same mix. ``frame``: a published table of the three dimensions (``load``
    output, with ``<dimension>_level`` columns); rows at the entity's strata total, columns ``TIDY``.

    From published cells only, so every uncertainty is bounded, never guessed: a rounded count
    stands for its rounding range, and the strata the entity's denominator hides share what its
    published total leaves of it (``R``), each at between the lowest and the highest of their
    rates. So ``E`` lies in ``[E_min, E_max]``; ``expected`` is the midpoint, ``value`` is
    ``O / expected``, and each interval is the count limits of ``O`` (exact Poisson below 10, Byar
    from 10) over ``E_max`` and ``E_min``. ``c`` where ``O``, the entity's total denominator or a
    programme rate it needs is suppressed; ``z`` where nothing is expected. The benchmark is 1."""
    num, den = indicator.numerator, indicator.denominator
    for m in (num, den):
        if m not in frame.columns:
            raise IndicatorError(f"measure {m!r} is not in this table; it has: {', '.join(_measures(frame))}")
    f = frame.reset_index(drop=True)
    x, n = _floats(f[num]), _floats(f[den])
    # a published 0 is exactly 0 (counts below the threshold are suppressed, not rounded to 0)
    x_lo, x_hi = (np.where(x == 0, 0.0, b) for b in rounding_range(np.nan_to_num(x), base))
    n_lo, n_hi = (np.where(n == 0, 0.0, b) for b in rounding_range(np.nan_to_num(n), base))
    in_stratum = (f[strata + "_level"] != "total").to_numpy()
    programme = (f[entity + "_level"] == "total").to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):  # a stratum nobody is in has no rate (NaN)
        r_lo = np.where(np.isnan(x) | np.isnan(n), np.nan, x_lo / n_hi)
        r_hi = np.where(np.isnan(x) | np.isnan(n), np.nan, x_hi / np.maximum(n_lo, 1))
    key = [f[period].to_numpy(), f[strata].to_numpy()]
    at = programme & in_stratum
    rates = pd.DataFrame({"lo": r_lo[at], "hi": r_hi[at]}, index=pd.MultiIndex.from_arrays([k[at] for k in key]))
    rates = rates.reindex(pd.MultiIndex.from_arrays(key))
    rate_lo, rate_hi = rates["lo"].to_numpy(), rates["hi"].to_numpy()
    rows = []
    for (when, who), part in f.groupby([period, entity], sort=False, observed=True):
        idx = part.index.to_numpy()
        total, cells = idx[~in_stratum[idx]], idx[in_stratum[idx]]
        row = {"period": when, "entity": who, "entity_level": part[entity + "_level"].iloc[0]}
        t = int(total[0])
        shown, hidden = cells[~np.isnan(n[cells])], cells[np.isnan(n[cells])]
        needed = np.concatenate([shown[n_hi[shown] > 0], hidden])  # strata with anyone of this entity in them
        unknown = np.isnan(x[t]) or np.isnan(n[t]) or np.isnan(rate_lo[needed]).any()
        e_min = e_max = np.nan
        if not unknown:
            rest_lo = max(n_lo[t] - n_hi[shown].sum(), 0.0) if len(hidden) else 0.0
            rest_hi = max(n_hi[t] - n_lo[shown].sum(), 0.0) if len(hidden) else 0.0
            low = rate_lo[hidden].min() if len(hidden) else 0.0
            high = rate_hi[hidden].max() if len(hidden) else 0.0
            e_min = float((n_lo[shown] * np.nan_to_num(rate_lo[shown])).sum() + rest_lo * low)
            e_max = float((n_hi[shown] * np.nan_to_num(rate_hi[shown])).sum() + rest_hi * high)
        row["numerator"] = np.nan if np.isnan(x[t]) else x[t]
        row["denominator"] = np.nan if np.isnan(n[t]) else n[t]
        row["status"] = "c" if unknown else ("z" if e_max <= 0 else "")
        if row["status"] == "":
            row["expected"] = (e_min + e_max) / 2
            row["value"] = x[t] / row["expected"] if row["expected"] > 0 else np.nan
            for level in levels:
                tag = f"{level * 100:g}"
                row[f"lower_{tag}"] = poisson(x_lo[t], level)[0] / e_max
                row[f"upper_{tag}"] = poisson(x_hi[t], level)[1] / max(e_min, 1e-300)
        rows.append(row)
    out = pd.DataFrame(rows)
    for column in ("numerator", "denominator"):
        out[column] = pd.array(out[column], dtype="Int64")
    for column in ("expected", "value", *(f"{side}_{lv * 100:g}" for lv in levels for side in ("lower", "upper"))):
        out[column] = out.get(column, np.nan)
    method = (
        f"indirectly standardised by {strata} (observed / expected at the programme's rate per stratum); "
        "exact Poisson below 10 events, Byar from 10; expected bounded over hidden strata"
    )
    if base and base > 1:
        method += f" and rounding to base {base}"
    out["method"] = np.where(out["status"] == "", method, "")
    return _tidy_columns(benchmark(out, indicator, 1.0, levels), indicator)


def derive(
    table: str, dimensions: Sequence[Any], frame: pd.DataFrame, indicators: list[Indicator], base: int | None = None
) -> list[pd.DataFrame]:
    """Every indicator of ``indicators`` one published table gives, as ``TIDY`` rows with the
    table's name: the plain ratios from a table of an entity by month, the standardised ones from a
    table of an entity, month and their strata. ``dimensions``: the table's, each with ``name`` and
    ``levels`` (code -> level); ``frame``: the table as published (codes, measures, statuses). The
    package writer and the audit both call this, so the audit can prove a package's ``indicators``
    resource holds nothing but these functions of its published cells."""
    months = [d.name for d in dimensions if is_period(d.levels.values())]
    dims = [d.name for d in dimensions]
    if len(months) != 1 or len(dims) not in (2, 3):
        return []
    period = months[0]
    frame = frame.assign(**{d.name + "_level": frame[d.name].map(d.levels) for d in dimensions})
    out = []
    for ind in indicators:
        strata = ind.standardise_by
        if not {ind.numerator, ind.denominator} <= set(frame.columns):
            continue
        if (len(dims) == 3) != bool(strata) or (strata and strata not in dims):
            continue  # plain ratios by entity and period; standardised ones with the strata as third
        entity = next(d for d in dims if d not in (period, strata))
        if strata:
            rows = standardised(frame, entity, period, strata, ind, base=base)
        else:
            rows = tidy(frame, entity, period, ind, base=base)
        rows.insert(1, "table", table)
        out.append(rows)
    return out
