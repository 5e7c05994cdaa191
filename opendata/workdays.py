"""Working days in England and Wales, Scotland and Northern Ireland, for Customer Service Standards.

Bank holidays come from the maintained ``holidays`` library, whose data ships inside the package
(no download at run time); substitute days ("Boxing Day (observed)") are included. Counting is
``numpy.busday_count`` over a cached ``busdaycalendar``: a million date pairs take about a tenth of a second.

Day-zero convention (every function here): the start day is day zero. A count is the number of
days (working days: Monday to Friday and not a bank holiday of the nation) *after* the start day,
up to and including the end day. Same day: 0; the next working day: 1. An end before the start
gives the mirror, a negative count: ``f(a, b) == -f(b, a)``, so a date out of order stays visible.
A missing date (NaT) on either side gives NaN, which compares False with any limit: an open case
never meets a standard by accident (outstanding cases are counted on their own).
"""

from __future__ import annotations

from functools import lru_cache

import holidays
import numpy as np

NATIONS = ("england-and-wales", "scotland", "northern-ireland")
UNITS = ("calendar_days", "working_days", "weeks")
# The library's GB subdivisions; England's and Wales's bank holidays are the same (tests check it).
SUBDIVISIONS = {"england-and-wales": "ENG", "scotland": "SCT", "northern-ireland": "NIR"}
WEEKMASK = "1111100"
FIRST_YEAR, LAST_YEAR = holidays.GB.start_year, holidays.GB.end_year  # beyond them the library knows none


def _subdivision(nation: str) -> str:
    try:
        return SUBDIVISIONS[nation]
    except KeyError:
        raise ValueError(f"unknown nation {nation!r}; expected one of {', '.join(NATIONS)}") from None


@lru_cache(maxsize=128)
def bank_holidays(nation: str, first_year: int, last_year: int) -> np.ndarray:
    """The nation's bank holidays (substitute days included) from ``first_year`` to ``last_year``,
    as a sorted, unique, read-only datetime64[D] array; weekend dates are kept as the library gives them."""
    subdiv = _subdivision(nation)
    if not FIRST_YEAR <= first_year <= last_year <= LAST_YEAR:
        raise ValueError(f"years {first_year}–{last_year}: bank holidays are known from {FIRST_YEAR} to {LAST_YEAR}")
    days = holidays.country_holidays("GB", subdiv=subdiv, years=range(first_year, last_year + 1))
    result = np.unique(np.array(sorted(days), dtype="datetime64[D]"))
    result.flags.writeable = False
    return result


@lru_cache(maxsize=128)
def _calendar(nation: str, first_year: int, last_year: int) -> np.busdaycalendar:
    return np.busdaycalendar(weekmask=WEEKMASK, holidays=bank_holidays(nation, first_year, last_year))


def _dates(start, end) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both sides as broadcast datetime64[D] arrays, NaT replaced by a present date, and the NaT mask."""
    start, end = np.broadcast_arrays(np.asarray(start, dtype="datetime64[D]"), np.asarray(end, dtype="datetime64[D]"))
    missing = np.isnat(start) | np.isnat(end)
    if missing.any():
        fill = start[~missing][0] if (~missing).any() else np.datetime64("2000-01-01", "D")
        start, end = np.where(missing, fill, start), np.where(missing, fill, end)
    return start, end, missing


def _result(counts, missing: np.ndarray) -> np.ndarray:
    counts = np.array(counts, dtype=np.float64)
    counts[missing] = np.nan
    return counts[()] if counts.ndim == 0 else counts  # two scalars in, a scalar out


def working_days(start, end, nation: str) -> np.ndarray:
    """Working days from ``start`` (day zero) to ``end`` in ``nation``, element-wise over datetime64[D]
    arrays (or anything NumPy converts: dates, ISO strings). Float64: whole numbers, NaN where a date is NaT.

    By definition ``np.busday_count(start + 1, end + 1, holidays=bank_holidays(nation, ...))`` when
    ``end >= start``, and minus the same count with the two swapped when not (NumPy's own count of a
    backwards pair is shifted by a day, not a mirror)."""
    start, end, missing = _dates(start, end)
    if start.size == 0 or missing.all():
        return _result(np.zeros(start.shape), missing)
    present = np.concatenate([start[~missing], end[~missing]])
    first, last = (int(d.astype("datetime64[Y]").astype(np.int64)) + 1970 for d in (present.min(), present.max()))
    if first < FIRST_YEAR or last > LAST_YEAR:
        raise ValueError(
            f"dates {present.min()} to {present.max()}: bank holidays are known from {FIRST_YEAR} to {LAST_YEAR}"
        )
    one, backwards = np.timedelta64(1, "D"), end < start
    low, high = np.where(backwards, end, start), np.where(backwards, start, end)
    counts = np.busday_count(low + one, high + one, busdaycal=_calendar(nation, first, last))
    return _result(np.where(backwards, -counts, counts), missing)


def calendar_days(start, end) -> np.ndarray:
    """Calendar days from ``start`` (day zero) to ``end``: ``end - start``; float64, NaN where a date is NaT."""
    start, end, missing = _dates(start, end)
    return _result((end - start).astype(np.int64), missing)


def weeks(start, end) -> np.ndarray:
    """Calendar days / 7 (not rounded): "at least every 13 weeks" holds while this is at most 13."""
    return calendar_days(start, end) / 7


def elapsed(start, end, unit: str, nation: str | None = None) -> np.ndarray:
    """The time from ``start`` to ``end`` in ``unit`` (one of UNITS); working days need the nation."""
    if unit == "working_days":
        if nation is None:
            raise ValueError("working days need a nation: one of " + ", ".join(NATIONS))
        return working_days(start, end, nation)
    if unit == "calendar_days":
        return calendar_days(start, end)
    if unit == "weeks":
        return weeks(start, end)
    raise ValueError(f"unknown unit {unit!r}; expected one of {', '.join(UNITS)}")
