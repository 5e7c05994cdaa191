"""Working days per nation: the fast path against two independent counts, and known cases by hand.

The independent counts take the holiday list straight from the ``holidays`` library (not from
``opendata.workdays``): ``numpy.busday_count`` over it, and a day-by-day loop over Python dates
asking the library's own holiday object, so a bug in the fast path cannot also be in the check.
"""

from __future__ import annotations

import time
from datetime import date, timedelta

import holidays
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from opendata.workdays import NATIONS, bank_holidays, calendar_days, elapsed, weeks, working_days

SUBDIV = {"england-and-wales": "ENG", "scotland": "SCT", "northern-ireland": "NIR"}
FIRST, LAST = date(2011, 1, 1), date(2030, 12, 31)
LIBRARY = {n: holidays.country_holidays("GB", subdiv=s, years=range(2010, 2032)) for n, s in SUBDIV.items()}
LIBRARY_LIST = {n: np.array(sorted(h), dtype="datetime64[D]") for n, h in LIBRARY.items()}
# every bank holiday of any nation, and the substitute days the issue names: pairs cluster around them
SPECIAL = sorted(
    {d for h in LIBRARY.values() for d in h if FIRST <= d <= LAST}
    | {date(2021, 12, 27), date(2021, 12, 28), date(2022, 1, 4), date(2025, 12, 1), date(2019, 3, 18)}
    | {date(2020, 7, 13), date(2026, 7, 13), date(2024, 3, 29), date(2024, 4, 1)}
)

any_day = st.dates(min_value=FIRST, max_value=LAST)
near_holiday = st.tuples(st.sampled_from(SPECIAL), st.integers(-12, 12)).map(lambda t: t[0] + timedelta(t[1]))
day = st.one_of(any_day, near_holiday)
close_pair = st.tuples(day, st.integers(-40, 40)).map(lambda t: (t[0], t[0] + timedelta(t[1])))
pair = st.one_of(close_pair, st.tuples(day, day)).filter(lambda p: FIRST <= p[1] <= LAST)


def slow_count(start: date, end: date, nation: str) -> int:
    """Days after ``start`` up to and including ``end`` that are Mon–Fri and not in the library's holidays."""
    sign = 1
    if end < start:
        start, end, sign = end, start, -1
    fresh = holidays.country_holidays("GB", subdiv=SUBDIV[nation])  # expands years lazily on membership
    days = (start + timedelta(k) for k in range(1, (end - start).days + 1))
    return sign * sum(1 for d in days if d.weekday() < 5 and d not in fresh)


def numpy_count(start: date, end: date, nation: str) -> int:
    """``busday_count(start + 1, end + 1)``; backwards, the mirror (NumPy's backwards count is shifted a day)."""
    if end < start:
        return -numpy_count(end, start, nation)
    one = timedelta(days=1)
    return int(np.busday_count(start + one, end + one, holidays=LIBRARY_LIST[nation]))


@pytest.mark.parametrize("nation", NATIONS)
@settings(max_examples=250, deadline=None)
@given(p=pair)
@example(p=(date(2024, 3, 28), date(2024, 4, 2)))  # Good Friday, Easter Monday (not in Scotland)
@example(p=(date(2021, 12, 24), date(2021, 12, 29)))  # Christmas and Boxing Day on a weekend: 27 and 28 off
@example(p=(date(2022, 12, 30), date(2023, 1, 4)))  # Scotland: 2 January, both observed on 2 and 3
@example(p=(date(2025, 11, 28), date(2025, 12, 2)))  # St Andrew's Day on a Sunday: Monday 1 December
@example(p=(date(2019, 3, 15), date(2019, 3, 19)))  # St Patrick's Day on a Sunday: Monday 18 March
@example(p=(date(2026, 7, 10), date(2026, 7, 14)))  # 12 July on a Sunday: Monday 13 July
@example(p=(date(2030, 12, 31), date(2011, 1, 1)))  # the whole range, backwards
def test_every_pair_agrees_with_two_independent_counts(nation, p):
    start, end = p
    fast = working_days(np.datetime64(start), np.datetime64(end), nation)
    assert fast == numpy_count(start, end, nation) == slow_count(start, end, nation)


@pytest.mark.parametrize("nation", NATIONS)
@settings(max_examples=60, deadline=None)
@given(pairs=st.lists(st.tuples(pair, st.sampled_from(["both", "no start", "no end"])), min_size=1, max_size=60))
def test_arrays_agree_element_by_element_with_nat_as_nan(nation, pairs):
    starts = np.array([s if m != "no start" else "NaT" for (s, _), m in pairs], dtype="datetime64[D]")
    ends = np.array([e if m != "no end" else "NaT" for (_, e), m in pairs], dtype="datetime64[D]")
    fast = working_days(starts, ends, nation)
    assert fast.dtype == np.float64 and fast.shape == (len(pairs),)
    for got, ((s, e), m) in zip(fast, pairs, strict=True):
        if m == "both":
            assert got == slow_count(s, e, nation)
        else:
            assert np.isnan(got)


KNOWN = [
    # England 2024-03-28 (Thu) → 2024-04-02 (Tue): Fri 29 Good Friday, weekend, Mon 1 Easter Monday: only Tue 2.
    ("england-and-wales", "2024-03-28", "2024-04-02", 1),
    ("scotland", "2024-03-28", "2024-04-02", 2),  # Easter Monday is not a Scottish bank holiday
    ("northern-ireland", "2024-03-28", "2024-04-02", 1),
    ("england-and-wales", "2021-12-24", "2021-12-29", 1),  # 27 and 28 December are substitute days
    ("england-and-wales", "2022-12-30", "2023-01-04", 2),  # Mon 2 January off, Tue 3 and Wed 4 worked
    ("scotland", "2022-12-30", "2023-01-04", 1),  # Mon 2 and Tue 3 off (1 and 2 January observed)
    ("scotland", "2025-11-28", "2025-12-02", 1),  # St Andrew's Day observed on Mon 1 December
    ("england-and-wales", "2025-11-28", "2025-12-02", 2),
    ("northern-ireland", "2019-03-15", "2019-03-19", 1),  # St Patrick's Day observed on Mon 18 March
    ("northern-ireland", "2026-07-10", "2026-07-14", 1),  # Battle of the Boyne observed on Mon 13 July
    ("england-and-wales", "2026-07-10", "2026-07-14", 2),
    ("england-and-wales", "2024-01-05", "2024-01-08", 1),  # Friday to Monday: the next working day is 1
    ("england-and-wales", "2024-01-08", "2024-01-08", 0),  # the start day is day zero
    ("england-and-wales", "2024-01-06", "2024-01-07", 0),  # Saturday to Sunday: no working day after the start
    ("england-and-wales", "2024-01-06", "2024-01-08", 1),
    ("england-and-wales", "2024-01-08", "2024-01-05", -1),  # backwards: the mirror, negative
    ("england-and-wales", "2024-01-01", "2024-01-15", 10),  # New Year's Day is day zero: never counted
]


@pytest.mark.parametrize(("nation", "start", "end", "expected"), KNOWN)
def test_known_cases(nation, start, end, expected):
    assert working_days(start, end, nation) == expected


def test_mirror_and_nat():
    a = np.array(["2024-03-20", "2024-12-20", "NaT"], dtype="datetime64[D]")
    b = np.array(["2024-04-10", "2025-01-10", "2024-01-01"], dtype="datetime64[D]")
    forward, backward = working_days(a, b, "scotland"), working_days(b, a, "scotland")
    np.testing.assert_array_equal(forward, -backward)
    assert np.isnan(forward[2]) and np.isnan(working_days("NaT", "NaT", "scotland"))
    assert working_days(np.array([], dtype="datetime64[D]"), np.array([], dtype="datetime64[D]"), "scotland").size == 0


def test_calendar_days_and_weeks_share_the_convention():
    np.testing.assert_array_equal(
        calendar_days(["2024-01-01", "2024-01-01", "NaT"], ["2024-01-01", "2024-01-16", "2024-01-02"]), [0, 15, np.nan]
    )
    assert weeks("2024-01-01", "2024-04-01") == 13  # 91 days: "at least every 13 weeks" is met
    assert weeks("2024-01-01", "2024-04-02") > 13
    assert elapsed("2024-03-28", "2024-04-02", "working_days", "england-and-wales") == 1
    assert elapsed("2024-03-28", "2024-04-02", "calendar_days") == 5
    with pytest.raises(ValueError, match="need a nation"):
        elapsed("2024-03-28", "2024-04-02", "working_days")
    with pytest.raises(ValueError, match="unknown unit"):
        elapsed("2024-03-28", "2024-04-02", "fortnights")


def test_bank_holidays_are_the_librarys_with_substitutes():
    ew = bank_holidays("england-and-wales", 2021, 2023)
    assert ew.dtype == np.dtype("datetime64[D]") and not ew.flags.writeable
    assert list(ew) == sorted(set(ew))
    assert np.datetime64("2021-12-27") in ew and np.datetime64("2021-12-28") in ew
    assert bank_holidays("england-and-wales", 2021, 2023) is ew  # cached
    sct = bank_holidays("scotland", 2025, 2025)
    assert np.datetime64("2025-12-01") in sct and np.datetime64("2025-04-21") not in sct  # no Easter Monday
    nir = bank_holidays("northern-ireland", 2019, 2026)
    assert {np.datetime64("2019-03-18"), np.datetime64("2020-07-13"), np.datetime64("2026-07-13")} <= set(nir)
    with pytest.raises(ValueError, match="unknown nation"):
        bank_holidays("wales", 2024, 2024)
    with pytest.raises(ValueError, match="known from"):
        working_days("2024-01-01", "2150-01-01", "scotland")


def test_england_and_wales_share_their_bank_holidays():
    years = range(2011, 2031)
    assert set(holidays.country_holidays("GB", subdiv="ENG", years=years)) == set(
        holidays.country_holidays("GB", subdiv="WLS", years=years)
    )


def test_a_million_pairs_in_well_under_a_second():
    rng = np.random.default_rng(16)
    start = np.datetime64("2011-01-01") + rng.integers(0, 7000, 1_000_000)
    end = start + rng.integers(-30, 400, 1_000_000)
    end[::997] = np.datetime64("NaT")
    best = float("inf")
    for nation in NATIONS:
        t = time.perf_counter()
        counts = working_days(start, end, nation)
        best = min(best, time.perf_counter() - t)
    assert counts.shape == (1_000_000,) and np.isnan(counts).sum() == len(range(0, 1_000_000, 997))
    assert best < 1.0, f"{best:.3f} s"
