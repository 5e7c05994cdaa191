"""Release calendar: loading, GMT/BST, the Rec 1b cut-off at the embargo instant, and orderly-release checks."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from opendata.calendar import (
    LONDON,
    CalendarError,
    bank_holiday,
    calendar_from_dict,
    check_calendar,
    cutoff,
    cutoff_for,
    json_schema,
    load_calendar,
    next_release,
    past,
    upcoming,
)
from opendata.errors import SpecError

SPECS = Path(__file__).resolve().parent.parent / "specs"
OS = "work-programme-official-statistics"
MI = "work-programme-subcontractor-mi"


def london(*args: int) -> datetime:
    return datetime(*args, tzinfo=LONDON)


def rel(id_: str, release: str, covers: str, **extra: object) -> dict:
    entry = {
        "id": id_,
        "release": release,
        "covers": covers,
        "kind": "official statistics",
        "status": "final",
        "announced": "2026-01-05",
    }
    entry.update(extra)
    return entry


def one_dataset(*releases: dict, name: str = OS) -> dict:
    return {"datasets": [{"name": name, "releases": list(releases)}]}


@pytest.fixture(scope="module")
def shipped():
    return load_calendar(SPECS / "calendar.yaml")


# --- the shipped calendar ------------------------------------------------------------------------


def test_shipped_calendar_passes_check(shipped):
    assert check_calendar(shipped) == []
    assert check_calendar(shipped, today=date(2026, 11, 25)) == []


def test_shipped_calendar_is_a_realistic_series(shipped):
    assert set(shipped.datasets) == {OS, MI}
    assert shipped.dataset(MI).cutoff_from == OS
    official = shipped.releases(OS)
    monthly = [r for r in shipped.releases(MI) if r.revision_of is None]
    assert len(official) == 8 and all(r.is_official for r in official)
    assert len(monthly) == 24 and all(r.kind == "management information" for r in monthly)
    for r in shipped.releases():
        assert r.release_at.tzinfo is LONDON
        assert (r.release_at.hour, r.release_at.minute) == (9, 30)
        assert r.release_at.weekday() < 5 and bank_holiday(r.release_at.date()) is None
        assert (r.release_at.date() - r.announced).days >= 28
        assert 2026 <= r.release_at.year <= 2027


def test_schema_file_in_specs_is_a_relative_link_to_the_packaged_one():
    link = SPECS / "calendar.schema.json"
    assert link.is_symlink() and os.readlink(link) == "../opendata/calendar.schema.json"
    assert json.loads(link.read_text()) == json_schema()
    jsonschema.Draft202012Validator.check_schema(json_schema())


# --- loading errors name the key -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"datasets": [], "colour": "blue"}, "colour"),
        (one_dataset(rel("a", "2026-12-03", "2026-09-30", kind="statistics")), "releases[0].kind: 'statistics'"),
        (one_dataset(rel("a", "2026-12-03", "2026-09-30", status="draft")), "releases[0].status: 'draft'"),
        (one_dataset({"id": "a", "release": "2026-12-03"}), "'covers' is a required property"),
        (one_dataset(rel("a", "3/12/2026", "2026-09-30")), "datasets[0].releases[0].release"),
        (one_dataset(rel("a", "2026-12-03T9:30", "2026-09-30")), "datasets[0].releases[0].release"),
        (one_dataset(rel("a", "2026-12-03", "30/09/2026")), "datasets[0].releases[0].covers"),
        (one_dataset(rel("a", "2026-02-30", "2025-12-31")), "releases[0].release: '2026-02-30' is not a real date"),
        (one_dataset(rel("a", "2026-12-03T25:00", "2026-09-30")), "releases[0].release: '2026-12-03T25:00'"),
        (one_dataset(rel("a", "2026-12-03", "2026-09-31")), "releases[0].covers: '2026-09-31' is not a real date"),
        (one_dataset(rel("a", "2027-03-28T01:30", "2026-12-31")), "does not exist in Europe/London"),
        (one_dataset(rel("a", "2026-10-25T01:30", "2026-06-30")), "happens twice in Europe/London"),
        (one_dataset(rel("a", "2026-12-03", "2026-09-30", extra=1)), "releases[0]: Additional properties"),
        (one_dataset(rel("Bad Id", "2026-12-03", "2026-09-30")), "datasets[0].releases[0].id"),
        (
            {"datasets": [{"name": MI, "cutoff_from": "nope", "releases": [rel("a", "2026-12-03", "2026-09-30")]}]},
            "datasets[0].cutoff_from: no dataset 'nope'",
        ),
        (
            {"datasets": [{"name": MI, "cutoff_from": MI, "releases": [rel("a", "2026-12-03", "2026-09-30")]}]},
            "datasets[0].cutoff_from",
        ),
        (
            {
                "datasets": [
                    {"name": "x", "releases": [rel("a", "2026-12-03", "2026-09-30", kind="management information")]},
                    {"name": MI, "cutoff_from": "x", "releases": [rel("b", "2026-12-03", "2026-09-30")]},
                ]
            },
            "datasets[1].cutoff_from: dataset 'x' has no 'official statistics' release",
        ),
        (
            {"datasets": [one_dataset(rel("a", "2026-12-03", "2026-09-30"))["datasets"][0]] * 2},
            "datasets[1].name: dataset 'work-programme-official-statistics' is listed twice",
        ),
    ],
)
def test_schema_and_cross_check_errors_name_the_key(tmp_path, raw, expected):
    path = tmp_path / "calendar.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(SpecError) as info:
        load_calendar(path)
    assert expected in str(info.value)
    assert str(path) in str(info.value)


def test_unquoted_yaml_dates_are_read_as_text(tmp_path):
    path = tmp_path / "calendar.yaml"
    path.write_text(
        f"datasets:\n  - name: {OS}\n    releases:\n"
        "      - {id: a, release: 2026-12-03, covers: 2026-09-30, kind: official statistics,"
        " status: final, announced: 2026-10-01}\n"
        "      - {id: b, release: 2026-12-04 10:00, covers: 2026-09-30, kind: official statistics,"
        " status: final, announced: 2026-10-01, reason: Ministerial statement at 09:30}\n"
    )
    a, b = load_calendar(path).releases(OS)
    assert a.release_at == london(2026, 12, 3, 9, 30) and a.covers == date(2026, 9, 30)
    assert b.release_at == london(2026, 12, 4, 10, 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("- just a list\n", "must be a mapping"), ("datasets: [\n", "not valid YAML")],
)
def test_unreadable_files(tmp_path, text, expected):
    path = tmp_path / "calendar.yaml"
    path.write_text(text)
    with pytest.raises(CalendarError, match=expected):
        load_calendar(path)
    with pytest.raises(CalendarError, match="does not exist"):
        load_calendar(tmp_path / "missing.yaml")


# --- GMT and BST ---------------------------------------------------------------------------------


def test_release_time_is_london_local_time_in_gmt_and_bst():
    cal = calendar_from_dict(
        one_dataset(rel("winter", "2027-01-14", "2026-09-30"), rel("summer", "2026-07-09T09:30", "2026-03-31"))
    )
    winter, summer = sorted(cal.releases(OS), key=lambda r: r.id, reverse=True)
    assert winter.release_at_utc == datetime(2027, 1, 14, 9, 30, tzinfo=UTC)
    assert summer.release_at_utc == datetime(2026, 7, 9, 8, 30, tzinfo=UTC)
    assert summer.release_at.utcoffset() == timedelta(hours=1) and winter.release_at.utcoffset() == timedelta(0)


# --- the cut-off ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "covers"),
    [
        # 2026-09-17 is in BST: the release instant is 08:30 UTC.
        (datetime(2026, 9, 17, 8, 29, tzinfo=UTC), date(2026, 3, 31)),
        (london(2026, 9, 17, 9, 29, 59), date(2026, 3, 31)),
        (london(2026, 9, 17, 9, 30), date(2026, 6, 30)),
        (datetime(2026, 9, 17, 8, 31, tzinfo=UTC), date(2026, 6, 30)),
        (datetime(2026, 9, 17, 9, 29, tzinfo=timezone(timedelta(hours=1))), date(2026, 3, 31)),
        # 2026-12-17 is in GMT: the release instant is 09:30 UTC.
        (datetime(2026, 12, 17, 9, 29, tzinfo=UTC), date(2026, 6, 30)),
        (london(2026, 12, 17, 9, 29, 59), date(2026, 6, 30)),
        (london(2026, 12, 17, 9, 30), date(2026, 9, 30)),
        (datetime(2026, 12, 17, 9, 31, tzinfo=UTC), date(2026, 9, 30)),
        (datetime(2026, 12, 17, 14, 29, tzinfo=timezone(timedelta(hours=5))), date(2026, 6, 30)),
    ],
)
def test_cutoff_the_minute_before_and_after_release(shipped, at, covers):
    found = cutoff(shipped, OS, at)
    assert found is not None and found.covers == covers == found.release.covers
    assert found.release.release_at <= at
    assert found.next_release is not None and found.next_release.release_at > at


def test_cutoff_falls_back_while_the_latest_release_is_embargoed(shipped):
    # Announced on 2025-11-20, but at noon the day before it is still embargoed.
    embargoed = shipped.releases(OS)[3]
    assert embargoed.id == "wpos-2026-12" and embargoed.announced < date(2026, 12, 16)
    found = cutoff(shipped, OS, london(2026, 12, 16, 12, 0))
    assert found is not None and found.release.id == "wpos-2026-09" and found.covers == date(2026, 6, 30)
    assert found.next_release == embargoed


def test_cutoff_before_any_official_release_is_none(shipped):
    assert cutoff(shipped, OS, london(2026, 3, 19, 9, 29)) is None


def test_mi_cutoff_follows_cutoff_from(shipped):
    at = london(2027, 3, 18, 9, 30)
    assert cutoff_for(shipped, MI, at) == cutoff(shipped, OS, at)
    assert cutoff_for(shipped, MI, at).covers == date(2026, 12, 31)
    with pytest.raises(CalendarError, match="no 'official statistics' release"):
        cutoff(shipped, MI, at)
    with pytest.raises(CalendarError, match="no dataset 'nope'"):
        cutoff(shipped, "nope", at)


def test_a_revision_of_older_data_does_not_move_the_cutoff_back():
    cal = calendar_from_dict(
        one_dataset(
            rel("q2", "2026-09-17", "2026-06-30"),
            rel("q1-revised", "2026-10-15", "2026-03-31", revision_of="q2", reason="Scheduled revision"),
        )
    )
    found = cutoff(cal, OS, london(2026, 11, 1, 9, 30))
    assert found is not None and found.release.id == "q2"


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(min_value=datetime(2025, 6, 1), max_value=datetime(2028, 6, 1), timezones=st.just(UTC)),
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400)),
)
def test_cutoff_never_moves_back_and_never_uses_embargoed_data(shipped, at, later):
    first, second = cutoff(shipped, OS, at), cutoff(shipped, OS, at + later)
    if first is not None:
        assert first.release.release_at <= at
        assert second is not None and second.covers >= first.covers


@pytest.mark.parametrize(
    "call",
    [
        lambda c, t: cutoff(c, OS, t),
        lambda c, t: cutoff_for(c, MI, t),
        lambda c, t: next_release(c, MI, t),
        lambda c, t: upcoming(c, t),
        lambda c, t: past(c, t),
        lambda c, t: c.releases(OS)[0].is_published(t),
    ],
)
def test_naive_datetimes_are_refused(shipped, call):
    with pytest.raises(ValueError, match="aware"):
        call(shipped, datetime(2026, 12, 17, 9, 30))


def test_listing(shipped):
    now = london(2026, 12, 10, 9, 30)
    before, after = past(shipped, now), upcoming(shipped, now)
    assert len(before) + len(after) == len(shipped.releases())
    assert before[-1].id == "wpmi-2026-12" and after[0].id == "wpos-2026-12"
    assert [r.release_at for r in after] == sorted(r.release_at for r in after)
    assert upcoming(shipped, now, dataset=MI)[0].id == "wpmi-2027-01"
    assert next_release(shipped, MI, now).id == "wpmi-2027-01"
    assert next_release(shipped, OS, london(2027, 12, 16, 9, 30)) is None


# --- check ---------------------------------------------------------------------------------------


def test_england_and_wales_bank_holidays_not_scottish_ones():
    assert bank_holiday(date(2027, 3, 29)) == "Easter Monday"
    assert bank_holiday(date(2026, 12, 28)) is not None  # Boxing Day substitute
    assert bank_holiday(date(2026, 8, 31)) is not None  # English late summer, not Scotland's
    assert bank_holiday(date(2027, 1, 4)) is None  # Scotland's 2 January substitute
    assert bank_holiday(date(2026, 11, 30)) is None  # St Andrew's Day
    assert bank_holiday(date(2026, 8, 3)) is None  # Scottish summer bank holiday


def test_check_reports_each_problem_exactly_once():
    cal = calendar_from_dict(
        one_dataset(
            rel("ok", "2026-12-03", "2026-09-30", announced="2026-10-01"),
            rel("saturday", "2026-12-05", "2026-09-30", announced="2026-10-01"),
            rel("easter-monday", "2027-03-29", "2026-12-31", announced="2026-10-01"),
            rel("boxing-day-substitute", "2026-12-28", "2026-09-30", announced="2026-10-01"),
            rel("short-notice", "2027-04-15", "2026-12-31", announced="2027-04-01"),
            rel("ten-oclock", "2027-05-13T10:00", "2027-03-31", announced="2026-10-01"),
            rel("ten-with-reason", "2027-05-20T10:00", "2027-03-31", announced="2026-10-01", reason="Urgent update"),
            rel("scottish-holiday", "2027-01-04", "2026-09-30", announced="2026-10-01"),
            rel("four-weeks-exactly", "2026-10-29", "2026-06-30", announced="2026-10-01"),
        )
    )
    problems = check_calendar(cal)
    got = sorted((p.release, p.rule) for p in problems)
    assert got == [
        ("boxing-day-substitute", "bank_holiday"),
        ("easter-monday", "bank_holiday"),
        ("saturday", "weekend"),
        ("short-notice", "notice"),
        ("ten-oclock", "time"),
    ]
    by_release = {p.release: p for p in problems}
    assert (
        by_release["easter-monday"].value == "2027-03-29T09:30"
        and "Easter Monday" in by_release["easter-monday"].message
    )
    assert by_release["saturday"].field == "release" and "Saturday" in by_release["saturday"].message
    notice = by_release["short-notice"]
    assert (notice.dataset, notice.field, notice.value) == (OS, "announced", "2027-04-01")
    assert "14 days" in notice.message and "2027-03-18" in notice.message
    assert by_release["ten-oclock"].value == "2027-05-13T10:00" and "reason" in by_release["ten-oclock"].message
    assert all(p.where.startswith("datasets[0].releases[") for p in problems)
    assert str(notice).startswith(f"{OS} short-notice announced='2027-04-01': ")


def test_check_ids_revisions_and_coverage():
    cal = calendar_from_dict(
        {
            "datasets": [
                {
                    "name": OS,
                    "releases": [
                        rel("q2", "2026-09-17", "2026-06-30"),
                        rel("q3", "2026-12-17", "2026-09-30"),
                        rel("q2", "2027-01-14", "2026-09-30"),
                        rel("typo", "2027-03-18", "2026-06-30"),
                        rel("q2-revised", "2027-03-25", "2026-06-30", revision_of="q2"),
                        rel("orphan", "2027-04-15", "2026-12-31", revision_of="q9"),
                        rel("early-revision", "2026-09-10", "2026-06-30", revision_of="q3"),
                        rel("future-data", "2027-06-17", "2027-06-30"),
                    ],
                },
                {"name": MI, "cutoff_from": OS, "releases": [rel("q3", "2026-12-10", "2026-11-30")]},
            ]
        }
    )
    got = sorted((p.dataset, p.release, p.field, p.rule) for p in check_calendar(cal))
    assert got == [
        (OS, "early-revision", "revision_of", "revision_of"),
        (OS, "future-data", "covers", "covers_future"),
        (OS, "orphan", "revision_of", "revision_of"),
        (OS, "q2", "id", "duplicate_id"),
        (OS, "typo", "covers", "covers_backwards"),
        (MI, "q3", "id", "duplicate_id"),
    ]


def test_check_with_today_flags_announcements_not_yet_made():
    cal = calendar_from_dict(one_dataset(rel("a", "2027-03-18", "2026-12-31", announced="2026-12-01")))
    assert check_calendar(cal, today=date(2026, 12, 1)) == []
    [problem] = check_calendar(cal, today=datetime(2026, 11, 30, 23, 59, tzinfo=UTC))
    assert (problem.rule, problem.field, problem.value) == ("announced_future", "announced", "2026-12-01")
    with pytest.raises(ValueError, match="aware"):
        check_calendar(cal, today=datetime(2026, 11, 30))
