"""Indicators from published cells: reference values, interval properties, and `opendata compare`
on a real release, run as a user would."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import gamma, norm
from shipped_specs import OUTSIDERS

from opendata.errors import SpecError
from opendata.indicators import (
    Indicator,
    IndicatorError,
    adjusted_verdicts,
    benchmark,
    byar,
    clopper_pearson,
    compute,
    exact_poisson,
    funnel_limits,
    overdispersion,
    poisson,
    standardised,
    trend,
    wilson,
)
from opendata.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent
SPEC = OUTSIDERS


# ----- reference values ---------------------------------------------------------------------------


def test_wilson_reproduces_published_examples():
    # PHE's Python port of its indicator methods tests wilson(100, 10000) as a percentage:
    # (0.8229336148148417, 1.2146982255114647)
    lo, hi = wilson(100, 10_000)
    assert abs(lo * 100 - 0.8229336148148417) < 1e-9 and abs(hi * 100 - 1.2146982255114647) < 1e-9
    # Newcombe (1998), Statistics in Medicine 17:857-872, Table II, method 3 (score): 81/263 gives
    # 0.2553 to 0.3662 (four decimals in the paper)
    lo, hi = wilson(81, 263)
    assert round(float(lo), 4) == 0.2553 and round(float(hi), 4) == 0.3662


def test_byar_reproduces_the_published_formula_and_example():
    # the same port's test: byars_lower(100) = 81.36210549052788 (95%)
    lo, hi = byar(100)
    assert abs(lo - 81.36210549052788) < 1e-9
    # upper: PHEindicatormethods' byars_upper, (x+1)(1 - 1/(9(x+1)) + z/(3 sqrt(x+1)))^3 (Breslow and
    # Day 1987); the port's own upper test (121.62458755509265) does not follow that formula
    z = 1.959963984540054
    assert abs(hi - 101 * (1 - 1 / 909 + z / (3 * np.sqrt(101))) ** 3) < 1e-9
    # Byar's approximation is within 0.2% of the exact limits from 10 events up
    o = np.arange(10, 2000)
    (bl, bu), (el, eu) = byar(o), exact_poisson(o)
    assert np.all(np.abs(bl / el - 1) < 2e-3) and np.all(np.abs(bu / eu - 1) < 2e-3)


def test_exact_poisson_limits_agree_with_the_gamma_quantiles():
    """Exact limits as chi-square quantiles (here) and as gamma quantiles (an independent form)."""
    o = np.arange(0, 500)
    for level in (0.95, 0.998):
        a = 1 - level
        lo, hi = exact_poisson(o, level)
        assert np.allclose(lo, np.where(o > 0, gamma.ppf(a / 2, np.maximum(o, 1e-12)), 0), rtol=0, atol=1e-9)
        assert np.allclose(hi, gamma.ppf(1 - a / 2, o + 1), rtol=0, atol=1e-9)
    lo, hi = exact_poisson(100)  # tables of exact limits give 81.36 and 121.63 for 100 events
    assert (round(float(lo), 2), round(float(hi), 2)) == (81.36, 121.63)
    lo, hi = poisson(np.array([9, 10]))
    assert lo[0] == exact_poisson(9)[0] and lo[1] == byar(10)[0]


def test_clopper_pearson_is_exact_at_the_ends():
    lo, hi = clopper_pearson(0, 20)
    assert lo == 0 and abs(hi - (1 - 0.025 ** (1 / 20))) < 1e-12
    lo, hi = clopper_pearson(20, 20)
    assert hi == 1 and abs(lo - 0.025 ** (1 / 20)) < 1e-12


def test_bad_levels_and_definitions_are_refused():
    with pytest.raises(IndicatorError):
        wilson(1, 2, 95)
    with pytest.raises(IndicatorError):
        Indicator.parse("job_outcomes")
    with pytest.raises(IndicatorError):
        Indicator("a", "b", kind="odds")


# ----- properties -----------------------------------------------------------------------------------


def table(x: list[float | None], n: list[float | None]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "provider": [f"S{i}" for i in range(len(x))],
            "num": pd.array(x, dtype="Int64"),
            "num_status": ["c" if v is None else "" for v in x],
            "den": pd.array(n, dtype="Int64"),
            "den_status": ["c" if v is None else "" for v in n],
        }
    )


counts = st.integers(0, 5000)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(counts, counts), min_size=1, max_size=20), st.sampled_from([None, 5, 10]))
def test_every_interval_holds_its_estimate(pairs, base):
    x = [min(a, b) for a, b in pairs]
    n = [max(a, b) for a, b in pairs]
    for kind in ("proportion", "rate"):
        got = compute(table(x, n), Indicator("num", "den", kind=kind, per=1000), base=base)
        shown = got["status"] == ""
        assert (got.loc[~shown, "value"].isna()).all()
        for tag in ("95", "99.8"):
            assert (got.loc[shown, f"lower_{tag}"] <= got.loc[shown, "value"] + 1e-12).all()
            assert (got.loc[shown, "value"] <= got.loc[shown, f"upper_{tag}"] + 1e-12).all()
        assert (got.loc[shown, "lower_99.8"] <= got.loc[shown, "lower_95"] + 1e-12).all()


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 400), st.integers(1, 400), st.integers(2, 20))
def test_intervals_narrow_as_the_denominator_grows(x, extra, k):
    n = x + extra
    small = compute(table([x], [n]), Indicator("num", "den"))
    large = compute(table([k * x], [k * n]), Indicator("num", "den"))
    for tag in ("95", "99.8"):
        small_width = float(small[f"upper_{tag}"].iloc[0] - small[f"lower_{tag}"].iloc[0])
        assert float(large[f"upper_{tag}"].iloc[0] - large[f"lower_{tag}"].iloc[0]) < small_width


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2000), st.integers(1, 2000), st.sampled_from([None, 5]))
def test_a_provider_at_the_benchmark_is_never_flagged(x, extra, base):
    n = x + extra
    rows = compute(table([x], [n]), Indicator("num", "den"), base=base)
    compared = benchmark(rows, Indicator("num", "den"), float(rows["value"].iloc[0]))
    assert (compared[["compared_95", "compared_99.8"]] == "similar").all(axis=None)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 3000), st.integers(1, 3000), st.floats(0.01, 0.99))
def test_outside_the_funnel_exactly_when_the_wilson_interval_misses_the_benchmark(x, extra, p0):
    n = x + extra
    for level in (0.95, 0.998):
        lo, hi = wilson(x, n, level)
        f_lo, f_hi = funnel_limits(p0, n, level)
        p = x / n
        if min(abs(p - f_lo), abs(p - f_hi)) > 1e-9 and min(abs(p0 - lo), abs(p0 - hi)) > 1e-9:
            assert (f_lo <= p <= f_hi) == (lo <= p0 <= hi)


def test_suppressed_inputs_give_c_and_an_empty_denominator_z():
    got = compute(table([3, None, 0], [10, 40, 0]), Indicator("num", "den"))
    assert list(got["status"]) == ["", "c", "z"]
    assert got["numerator"].isna().tolist() == [False, True, False]
    polar = benchmark(got, Indicator("num", "den", polarity="lower"), 0.9)
    assert list(polar["compared_95"]) == ["better", "", ""]


def test_indicators_depend_on_the_published_view_only():
    """Two tables whose true counts differ but publish the same view give the same indicators."""
    published = table([5, None, 20], [50, 60, None])
    a = compute(published, Indicator("num", "den"), base=5)
    b = compute(published.copy(), Indicator("num", "den"), base=5)
    pd.testing.assert_frame_equal(a, b)
    assert "status" in a and set(a.columns) >= {"lower_95", "upper_99.8", "method"}


# ----- end to end ----------------------------------------------------------------------------------


def opendata(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "opendata.cli", *map(str, args)], capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("compare")
    for args in (
        ("sample", "--out", work / "mi", "--rows", 8000, "--months", 6, "--seed", 2, "--format", "csv", "-q"),
        ("release", SPEC, work / "mi" / "work-programme-mi.csv", "--out", work / "releases",
         "--release-time", "2026-11-12T09:30:00+00:00", "--late", "--reason", "test", "-q"),
        ("publish", "--out", work / "releases", "-q"),
    ):  # fmt: skip
        run = opendata(*args)
        assert run.returncode == 0, run.stderr
    return work / "releases"


@pytest.mark.slow
def test_compare_prints_the_position_and_writes_both_charts(released, tmp_path):
    charts = tmp_path / "charts"
    args = ["compare", "work-programme-subcontractor-mi", "--root", released, "--entity", "CPA01"]
    run = opendata(*args, "--indicator", "job-starts-per-referral", "--charts", charts, "--json")
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    assert got["indicator"] == "job-starts-per-referral"  # defined in the spec, named in the descriptor
    assert got["status"] == "" and got["benchmark"]["entity"] == "Total"
    assert got["lower_99.8"] <= got["lower_95"] <= got["value"] <= got["upper_95"] <= got["upper_99.8"]
    assert got["compared_95"] in ("better", "worse", "similar") and 1 <= got["rank_band"] <= 5
    assert "rounding to base 5 allowed for" in got["method"]
    names = {Path(p).name for p in got["charts"]}
    for stem in ("funnel-job-starts-per-referral", "trend-job-starts-per-referral"):
        assert {f"{stem}.svg", f"{stem}.png", f"{stem}.txt", f"{stem}.csv"} <= names
        svg = (charts / f"{stem}.svg").read_text()
        assert "<title>" in svg and "<dc:description>" in svg  # title and text alternative in the file
        assert (charts / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = opendata(*args, "--indicator", "job-starts-per-referral", "--charts", tmp_path / "again", "--json")
    assert again.returncode == 0
    for path in charts.iterdir():  # same package, same bytes
        assert (tmp_path / "again" / path.name).read_bytes() == path.read_bytes()
    same = json.loads(opendata(*args, "--indicator", "job_starts/referrals", "--json").stdout)
    assert {k: v for k, v in same.items() if k not in ("indicator", "charts")} == {
        k: v for k, v in got.items() if k not in ("indicator", "charts")
    }
    table = pd.read_csv(charts / "funnel-job-starts-per-referral.csv")
    assert "CPA01" in set(table["entity"]) and set(table["provider_level"]) == {"cpa"}
    assert table["value"].notna().sum() == got["peers"] and {"lower_95", "upper_99.8", "compared_95"} <= set(table)


def test_spec_indicators_name_measures_a_table_publishes(tmp_path):
    text = SPEC.read_text()
    assert "numerator: job_outcomes\n" in text
    bad = tmp_path / "specs" / SPEC.name
    shutil.copytree(SPEC.parent, bad.parent)
    bad.write_text(text.replace("numerator: job_outcomes\n", "numerator: job_outcome\n", 1))
    with pytest.raises(SpecError, match=r"indicators\[1\]\.numerator: unknown measure 'job_outcome'"):
        load_spec(bad)


@pytest.mark.slow
def test_compare_refuses_unknown_names_clearly(released):
    base = ["compare", "work-programme-subcontractor-mi", "--root", released]
    run = opendata(*base, "--entity", "S9999", "--indicator", "job_starts/referrals")
    assert run.returncode == 1 and "provider 'S9999' is not in table" in run.stdout + run.stderr
    run = opendata(*base, "--entity", "CPA01", "--indicator", "job_start/referrals")
    assert run.returncode == 1 and "no table of one entity dimension by month holds both job_start" in run.stderr
    run = opendata(*base, "--entity", "CPA01", "--indicator", "job_start/referrals", "--table", "provider-by-month")
    assert run.returncode == 1 and "measure 'job_start' is not in this table" in run.stdout + run.stderr
    run = opendata(*base, "--entity", "CPA01", "--indicator", "job-start-rate")
    assert run.returncode == 1 and "job-outcomes-per-referral" in run.stderr  # names the ones defined
    run = opendata(*base, "--entity", "CPA01", "--indicator", "job-starts-per-referral", "--charts", "/proc/no/charts")
    assert run.returncode == 1 and "cannot write charts to /proc/no/charts" in run.stderr
    assert "Traceback" not in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.slow
def test_one_line_gives_every_row_benchmarked_against_its_period(released):
    import opendata

    got = opendata.indicator_table("work-programme-subcontractor-mi", "job-outcomes-per-referral", root=released)
    table = opendata.load("work-programme-subcontractor-mi", "provider-by-month", root=released)
    assert len(got) == len(table) and set(got["indicator"]) == {"job-outcomes-per-referral"}
    totals = got[got["entity_level"] == "total"].set_index("period")
    shown = got[got["status"] == ""]
    expected = shown["period"].map(totals["value"]).astype(float)
    assert np.allclose(shown["benchmark"], expected, equal_nan=True) and expected.notna().any()
    assert (shown.loc[expected.isna(), "compared_95"] == "").all()  # no benchmark shown: no verdict
    assert (totals.loc[totals["status"] == "", "compared_95"] == "similar").all()
    hidden = table["job_outcomes"].isna() | table["referrals"].isna()
    assert (got["status"] == "c").to_numpy().tolist() == hidden.to_numpy().tolist()


@pytest.mark.slow
def test_every_package_carries_its_indicators_computed_from_published_cells(released):
    """The `indicators` resource: the spec's indicators for every provider and month, the same as
    computing them from the published table (to the 6 decimals kept), valid Frictionless, skipped
    by the audit (nothing in it is not already published)."""
    import frictionless

    import opendata

    version = released / "work-programme-subcontractor-mi" / "1.0.0"
    descriptor = json.loads((version / "datapackage.json").read_text())
    assert {"indicators", "indicators-parquet"} <= {r["name"] for r in descriptor["resources"]}
    report = frictionless.validate(str(version / "datapackage.json"))
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])[:5]
    shipped = opendata.load("work-programme-subcontractor-mi", "indicators", root=released)
    assert set(shipped["indicator"]) == {i["name"] for i in descriptor["opendata:indicators"]}
    for name in descriptor["opendata:indicators"]:
        mine = shipped[shipped["indicator"] == name["name"]].reset_index(drop=True)
        again = opendata.indicator_table("work-programme-subcontractor-mi", name["name"], root=released)
        for column in ("value", "lower_95", "upper_99.8", "benchmark"):
            assert np.allclose(mine[column].astype(float), again[column].astype(float), atol=5e-7, equal_nan=True)
        assert mine["status"].astype(str).tolist() == again["status"].tolist()
    text = (version / "data" / "indicators.csv").read_text()
    assert "[c]" in text and ",nan" not in text.lower()


# ----- indirect standardisation ------------------------------------------------------------------


def strata_table(num: np.ndarray, den: np.ndarray, publish) -> pd.DataFrame:
    """A published entity × stratum table for one period from true counts ``[entity, stratum]``
    (entity and stratum totals added); ``publish(value, entity, stratum)`` gives the published value
    (NaN: suppressed; 0 is the total entity or stratum)."""
    rows = []
    n_e, n_s = den.shape
    full_num = np.zeros((n_e + 1, n_s + 1), dtype=int)
    full_den = np.zeros_like(full_num)
    full_num[1:, 1:], full_den[1:, 1:] = num, den
    for a in (full_num, full_den):
        a[0, 1:], a[1:, 0] = a[1:, 1:].sum(axis=0), a[1:, 1:].sum(axis=1)
        a[0, 0] = a[1:, 1:].sum()
    for e in range(n_e + 1):
        for s in range(n_s + 1):
            x, n = publish(full_num[e, s], e, s), publish(full_den[e, s], e, s)
            rows.append(
                {
                    "month": "Total", "month_level": "total",
                    "cpa": "Total" if e == 0 else f"C{e}", "cpa_level": "total" if e == 0 else "cpa",
                    "pg": "Total" if s == 0 else f"PG{s}", "pg_level": "total" if s == 0 else "payment_group",
                    "x": x, "x_status": "c" if np.isnan(x) else "", "n": n, "n_status": "c" if np.isnan(n) else "",
                }
            )  # fmt: skip
    return pd.DataFrame(rows)


ISR = Indicator("x", "n", standardise_by="pg", key="x-standardised")


def test_standardised_ratio_by_hand():
    """Two CPAs, two payment groups, nothing hidden or rounded. Programme rates: PG1 30/100 = 0.3,
    PG2 10/100 = 0.1. C1 has 80 in PG1 and 20 in PG2: expected 80 x 0.3 + 20 x 0.1 = 26, observed
    26 (its rates are the programme's), ratio 1. C2 (20 in PG1, 80 in PG2) expects 14 and has 14.
    A plain ratio would rank C1 (26%) far above C2 (14%); standardised they are equal."""
    num, den = np.array([[24, 2], [6, 8]]), np.array([[80, 20], [20, 80]])
    out = standardised(strata_table(num, den, lambda v, e, s: float(v)), "cpa", "month", "pg", ISR).set_index("entity")
    assert out.loc["C1", "expected"] == pytest.approx(26) and out.loc["C2", "expected"] == pytest.approx(14)
    assert out["value"].to_numpy() == pytest.approx([1.0, 1.0, 1.0])
    assert (out["benchmark"] == 1.0).all() and set(out["compared_95"]) == {"similar"}
    lower, upper = poisson(26, 0.95)
    assert out.loc["C1", "lower_95"] == pytest.approx(lower / 26) and out.loc["C1", "upper_95"] == pytest.approx(
        upper / 26
    )


@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 4).flatmap(
        lambda e: st.integers(2, 4).flatmap(
            lambda s: st.tuples(
                st.lists(st.integers(0, 80), min_size=e * s, max_size=e * s),
                st.lists(st.floats(0, 1), min_size=e * s, max_size=e * s),
                st.lists(st.booleans(), min_size=e * s, max_size=e * s),
                st.just((e, s)),
            )
        )
    )
)
def test_standardised_intervals_hold_the_truth_whatever_is_rounded_or_hidden(case):
    """Published as a release would (counts 1-9 suppressed, the rest rounded to base 5, some
    entity × stratum cells hidden as secondaries), every shown ratio's interval holds the interval
    an analyst with the true counts would compute: the bounds over hidden strata and rounding
    never claim more than the published cells prove."""
    dens, shares, extra, (n_e, n_s) = case
    den = np.array(dens).reshape(n_e, n_s)
    num = np.floor(den * np.array(shares).reshape(n_e, n_s)).astype(int)
    hide = np.array(extra).reshape(n_e, n_s)

    def publish(v, e, s):
        if 0 < v < 10 or (e and s and hide[e - 1, s - 1]):
            return np.nan
        return float(5 * np.floor(v / 5 + 0.5))

    out = standardised(strata_table(num, den, publish), "cpa", "month", "pg", ISR, base=5).set_index("entity")
    rates = np.divide(num.sum(axis=0), den.sum(axis=0), out=np.zeros(n_s), where=den.sum(axis=0) > 0)
    for e in range(n_e):
        row = out.loc[f"C{e + 1}"]
        if row["status"] != "":
            continue
        expected = float((den[e] * rates).sum())
        if expected == 0:
            continue  # no oracle ratio; the shown row's interval reaches from 0 to beyond any bound
        observed = int(num[e].sum())
        lower, upper = poisson(observed, 0.95)
        assert row["lower_95"] <= lower / expected + 1e-9
        assert upper / expected <= row["upper_95"] + 1e-9


# ----- overdispersion and trend --------------------------------------------------------------------


def peers(x, n) -> pd.DataFrame:
    frame = pd.DataFrame({"x": np.asarray(x, dtype=float), "n": np.asarray(n, dtype=float)})
    frame["x_status"] = frame["n_status"] = ""
    return compute(frame, Indicator("x", "n"))


def test_overdispersion_by_hand():
    """Ten providers of 100 at p0 = 0.2 (s = 0.04): z = (x/100 - 0.2) / 0.04. Winsorising 10% at each
    end of ten scores replaces the lowest by the second lowest and the highest by the second
    highest (Spiegelhalter 2005; NHS England's SHMI uses the same 10%); phi is their mean square."""
    x = [8, 14, 16, 18, 20, 20, 22, 24, 28, 40]
    z = sorted((np.array(x) / 100 - 0.2) / 0.04)
    z[0], z[-1] = z[1], z[-2]
    phi = float(np.mean(np.square(z)))
    w = np.full(10, 1 / 0.04**2)
    tau2 = max(0.0, (10 * phi - 9) / (w.sum() - (w**2).sum() / w.sum()))
    found = overdispersion(peers(x, [100] * 10), Indicator("x", "n"), 0.2)
    assert found["phi"] == pytest.approx(phi, rel=1e-12) and found["tau2"] == pytest.approx(tau2, rel=1e-12)
    assert found["phi"] > 1 and found["tau2"] > 0


def test_no_overdispersion_among_providers_drawn_at_the_benchmark():
    rng = np.random.default_rng(7)
    n = rng.integers(200, 2000, size=400)
    found = overdispersion(peers(rng.binomial(n, 0.3), n), Indicator("x", "n"), 0.3)
    # normal scores winsorised at 10% have E[z^2] = 0.8 - 2c phi(c) + 0.2 c^2 = 0.68 (c = 1.2816):
    # winsorising makes the estimate conservative, so chance variation never widens the funnel
    assert 0.6 < found["phi"] < 0.76 and found["tau2"] == 0


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 400), st.integers(400, 2000)), min_size=5, max_size=40),
    st.sampled_from(["phi", "re"]),
)
def test_widened_funnels_flag_no_more_providers_and_never_one_at_the_benchmark(rows, adjust):
    x, n = zip(*rows, strict=True)
    table = peers(x, n)
    p0 = 0.2
    at_benchmark = peers([p0 * 1000], [1000])
    plain = adjusted_verdicts(table, Indicator("x", "n"), p0, "none")[0]
    z_plain = np.abs((np.array(x) / np.array(n) - p0) / np.sqrt(p0 * (1 - p0) / np.array(n)))
    wide, _ = adjusted_verdicts(table, Indicator("x", "n"), p0, adjust)
    for level in (95, 99.8):
        flagged = wide[f"compared_{level:g}"] != "similar"
        assert not (flagged & (z_plain <= norm.ppf(1 - (1 - level / 100) / 2))).any()
    both = adjusted_verdicts(pd.concat([table, at_benchmark], ignore_index=True), Indicator("x", "n"), p0, adjust)[0]
    assert both["compared_95"].iloc[-1] == "similar" and len(plain) == len(table)


def test_trend_marker():
    """Five months of 1,000 each: a steady rise in the proportion is a significant trend (99.8%),
    better when higher is better; a flat series is no change; a hidden month gives no marker."""
    ind = Indicator("x", "n", polarity="higher")
    rising = peers([100, 130, 160, 190, 220], [1000] * 5)
    assert trend(rising, ind) == "getting better"
    assert trend(rising, Indicator("x", "n", polarity="lower")) == "getting worse"
    assert trend(rising, Indicator("x", "n", polarity="none")) == "increasing"
    assert trend(peers([150, 152, 149, 151, 150], [1000] * 5), ind) == "no significant change"
    hidden = rising.copy()
    hidden.loc[2, "status"] = "c"
    assert trend(hidden, ind) == "cannot be calculated"
    assert trend(rising.head(4), ind) == "cannot be calculated"


@pytest.mark.slow
def test_the_audit_proves_the_indicators_add_nothing_and_catches_a_forged_one(released, tmp_path):
    """`opendata audit` recomputes the `indicators` resource from the published tables: equal, it
    holds no figure an attacker could not compute from the tables, so the attack over tables and
    indicators is the attack over the tables alone. One value changed in a copy fails the audit."""
    version = released / "work-programme-subcontractor-mi" / "1.0.0"
    run = opendata("audit", version, "--json")
    assert run.returncode == 0 and json.loads(run.stdout)["derived"] == []
    forged = tmp_path / "1.0.0"
    shutil.copytree(version, forged)
    path = forged / "data" / "indicators.parquet"
    table = pd.read_parquet(path)
    shown = table.index[table["status"] == ""][0]
    table.loc[shown, "upper_95"] = table.loc[shown, "upper_95"] + 0.01
    table.to_parquet(path, index=False)
    run = opendata("audit", forged)
    assert run.returncode == 1
    said = " ".join(run.stdout.split())  # the console wraps long lines
    assert "derived data/indicators.parquet: upper_95 is not what the published cells give" in said


@pytest.mark.slow
def test_compare_across_packages_only_when_definitions_match(released, tmp_path):
    """A second programme's package joins the funnel when its indicator means the same; a package
    whose denominator counts something else is refused, and the message says what differs."""
    import yaml

    released = shutil.copytree(released, tmp_path / "tree")  # the module's tree stays as it was
    specs = tmp_path / "specs"
    shutil.copytree(SPEC.parent, specs)
    raw = yaml.safe_load(SPEC.read_text())
    for name, change in (("other-programme", None), ("other-definitions", "Referrals, counted at first contact.")):
        raw["name"] = name
        if change:
            next(m for m in raw["measures"] if m["name"] == "referrals")["description"] = change
        spec = specs / f"{name}.yaml"
        spec.write_text(yaml.safe_dump(raw, sort_keys=False))
        mi = tmp_path / name
        for args in (
            ("sample", "--out", mi, "--rows", 3000, "--months", 4, "--seed", 4, "--format", "csv", "-q"),
            ("release", spec, mi / "work-programme-mi.csv", "--out", released, "--release-time",
             "2026-11-12T09:30:00+00:00", "--late", "--reason", "test", "-q"),
            ("publish", "--out", released, "-q"),
        ):  # fmt: skip
            assert opendata(*args).returncode == 0
    base = ["compare", "work-programme-subcontractor-mi", "--root", released, "--entity", "CPA01"]
    run = opendata(*base, "--indicator", "job_starts/referrals", "--with", "other-programme", "--json")
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    assert got["peers"] > 18 and any("other-programme" in note for note in got["notes"])
    other = ["--with", "other-programme", "--benchmark", "other-programme:Total", "--json"]
    run = opendata(*base, "--indicator", "job_starts/referrals", *other)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["benchmark"]["entity"] == "other-programme:Total"  # against the other programme
    run = opendata(*base, "--indicator", "job_starts/referrals", "--with", "other-definitions")
    assert run.returncode == 1
    assert "denominator referrals is defined differently" in " ".join(run.stderr.split())
