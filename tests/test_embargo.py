"""Orderly release with an injected clock: staging, 09:30 in GMT and BST, cut-off, pre-release access.

In none of these scenarios may a byte of an embargoed release appear in the public tree or its
catalogue before its release time.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml
from shipped_specs import OUTSIDERS

from opendata.descriptor import size_and_hash
from opendata.embargo import AccessRefused, grant_pre_release_access, publish
from opendata.errors import ReleaseError
from opendata.release import cut_release
from opendata.sample import write_sample

pytestmark = pytest.mark.slow  # end to end: left out of the quick subset (make test-quick)

ROOT = Path(__file__).resolve().parent.parent
SPEC = OUTSIDERS
NAME = "work-programme-subcontractor-mi"
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)


def release(day: str, official: str, covers: str, announced: str = "2025-01-02") -> dict:
    return {
        "id": f"{official}-{day}",
        "release": f"{day}T09:30",
        "covers": covers,
        "kind": "official statistics" if official == "os" else "management information",
        "status": "final",
        "announced": announced,
        "pre_release_access": ["Minister for Employment"],
    }


@pytest.fixture(scope="module")
def mi(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mi")
    write_sample(out, 2500, 11, months=6, formats=("csv",))  # referrals 2011-06 .. 2011-11
    return out / "work-programme-mi.csv"


@pytest.fixture()
def calendar(tmp_path) -> Path:
    """Official statistics covering 2011 months, released in 2026; MI on a GMT and a BST day."""
    raw = {
        "datasets": [
            {
                "name": "wp-official",
                "title": "Work Programme official statistics",
                "releases": [
                    release("2026-01-15", "os", "2011-08-31"),
                    release("2026-02-19", "os", "2011-09-30"),
                ],
            },
            {
                "name": NAME,
                "title": "Work Programme subcontractor MI",
                "cutoff_from": "wp-official",
                "releases": [
                    release("2026-02-18", "mi", "2011-08-31"),
                    release("2026-02-19", "mi", "2011-09-30"),
                    release("2026-07-16", "mi", "2011-09-30"),
                ],
            },
        ]
    }
    path = tmp_path / "calendar.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def public_bytes(public: Path) -> list[str]:
    return sorted(str(p.relative_to(public)) for p in public.rglob("*") if p.is_file()) if public.exists() else []


def listed(public: Path) -> list[str]:
    catalog = public / "catalog.json"
    if not catalog.exists():
        return []
    return [v["version"] for p in json.loads(catalog.read_text())["packages"] for v in p["versions"]]


@pytest.mark.parametrize(
    ("when", "utc_hour"),
    [("2026-02-19T09:30:00+00:00", 9), ("2026-07-16T08:30:00+00:00", 8)],  # 09:30 London in GMT and in BST
    ids=["GMT", "BST"],
)
def test_published_the_minute_after_0930_never_before(tmp_path, mi, calendar, when, utc_hour):
    public = tmp_path / "releases"
    at = datetime.fromisoformat(when)
    summary = cut_release(SPEC, [mi], public, release_time=at, calendar=calendar, now=at - timedelta(days=2))
    assert summary.release_at.hour == utc_hour
    assert summary.path.is_relative_to(tmp_path / "staging")
    before = publish(tmp_path / "staging", public, at - MINUTE)
    assert [s.version for s in before.waiting] == ["1.0.0"] and not before.published
    assert not (public / NAME).exists(), "embargoed release reached the public tree"
    assert listed(public) == []
    after = publish(tmp_path / "staging", public, at + MINUTE)
    assert [s.version for s in after.published] == ["1.0.0"]
    assert (public / NAME / "1.0.0" / "datapackage.json").is_file()
    assert listed(public) == ["1.0.0"]
    assert not (tmp_path / "staging" / NAME / "1.0.0").exists()
    descriptor = json.loads((public / NAME / "1.0.0" / "datapackage.json").read_text())
    statement = " ".join(descriptor["opendata:release"]["statement"])
    assert "management information, not official statistics" in statement and "Cut-off" in statement
    assert "## Release" in (public / NAME / "1.0.0" / "README.md").read_text()


def test_cutoff_when_the_latest_official_release_is_still_embargoed(tmp_path, mi, calendar):
    """Cut for 09:29:59 on official release day: that release is embargoed, so the earlier cut-off holds."""
    day = datetime(2026, 2, 19, 9, 30, tzinfo=UTC)
    early = cut_release(
        SPEC,
        [mi],
        tmp_path / "a",
        staging=tmp_path / "a-staging",
        release_time=day - timedelta(seconds=1),
        calendar=calendar,
        now=day - DAY,
        unscheduled=True,
        reason="a test of the cut-off edge",
    )
    on_time = cut_release(
        SPEC, [mi], tmp_path / "b", staging=tmp_path / "b-staging", release_time=day, calendar=calendar, now=day - DAY
    )
    assert early.cutoff == "2011-08-31" and on_time.cutoff == "2011-09-30"
    assert set(early.held_back["referrals"]) == {"2011-09", "2011-10", "2011-11"}
    assert set(on_time.held_back["referrals"]) == {"2011-10", "2011-11"}
    held = sum(early.held_back["referrals"].values())
    assert held > 0
    descriptor = json.loads((early.path / "datapackage.json").read_text())
    months = next(r for r in descriptor["resources"] if r["name"] == "hierarchy-month")
    assert descriptor["opendata:release"]["cutoff"]["covers"] == "2011-08-31"
    assert months  # the month hierarchy is published
    months_csv = (early.path / "hierarchies" / "month.csv").read_text()
    assert "2011-08" in months_csv and "2011-09" not in months_csv


def test_no_official_statistics_yet_means_no_release(tmp_path, mi, calendar):
    with pytest.raises(ReleaseError, match="no official statistics are published"):
        at = datetime(2025, 12, 1, 9, 30, tzinfo=UTC)
        cut_release(
            SPEC, [mi], tmp_path, release_time=at, calendar=calendar, now=at - DAY, unscheduled=True, reason="x"
        )
    assert not (tmp_path / "staging").exists()


def test_pre_release_access_at_25_and_23_hours(tmp_path, mi, calendar):
    at = datetime(2026, 2, 19, 9, 30, tzinfo=UTC)
    summary = cut_release(SPEC, [mi], tmp_path / "releases", release_time=at, calendar=calendar, now=at - 2 * DAY)
    staging = tmp_path / "staging"
    who = "Minister for Employment"
    with pytest.raises(AccessRefused, match="opens at"):
        grant_pre_release_access(staging, NAME, summary.version, who, at - timedelta(hours=25))
    with pytest.raises(AccessRefused, match="not named"):
        grant_pre_release_access(staging, NAME, summary.version, "A journalist", at - timedelta(hours=23))
    path = grant_pre_release_access(staging, NAME, summary.version, who, at - timedelta(hours=23))
    assert path == summary.path
    log = [
        json.loads(line) for line in (staging / NAME / f"{summary.version}.access-log.jsonl").read_text().splitlines()
    ]
    assert [(e["who"], e["granted"]) for e in log] == [(who, False), ("A journalist", False), (who, True)]
    assert not (tmp_path / "releases").exists(), "pre-release access must not publish"


def test_second_release_is_versioned_from_the_diff(tmp_path, mi, calendar):
    """Official statistics move the cut-off a month on: new data, so a MINOR version and a changelog."""
    public, staging = tmp_path / "releases", tmp_path / "staging"
    first = datetime(2026, 2, 18, 9, 30, tzinfo=UTC)
    second = datetime(2026, 2, 19, 9, 30, tzinfo=UTC)
    assert cut_release(SPEC, [mi], public, release_time=first, calendar=calendar, now=first - DAY).version == "1.0.0"
    publish(staging, public, first + MINUTE)
    summary = cut_release(SPEC, [mi], public, release_time=second, calendar=calendar, now=first + MINUTE)
    assert (summary.version, summary.bump) == ("1.1.0", "minor")
    with pytest.raises(ReleaseError, match="nothing changed"):
        cut_release(
            SPEC, [mi], public, release_time=second + DAY, calendar=calendar, now=second, unscheduled=True, reason="x"
        )
    publish(staging, public, second + MINUTE)
    assert listed(public) == ["1.0.0", "1.1.0"]
    changelog = (public / NAME / "CHANGELOG.md").read_text()
    assert changelog.index("[1.1.0]") < changelog.index("[1.0.0]")
    assert_successive_release_is_stable_and_safe(public / NAME / "1.0.0", public / NAME / "1.1.0", mi)


def assert_successive_release_is_stable_and_safe(v1: Path, v2: Path, mi: Path) -> None:
    """Issue 3, part 5: the second version was protected together with the first (as published), so
    every month cell the first published is still published with the same value, and the attacker
    holding both versions cannot narrow any primary cell of either."""
    from opendata.audit import audit_package, true_primaries
    from opendata.content import PackageContent
    from opendata.spec import load_spec

    sdc = json.loads((v2 / "datapackage.json").read_text())["opendata:disclosure"]["tables"]
    assert [(e["table"], e["version"]) for e in sdc["provider-by-month"]["referrals"]["audit"]["earlier_versions"]] == [
        ("provider-by-month", "1.0.0"),
        ("cpa-payment-group-by-month", "1.0.0"),
    ]
    old, new = PackageContent.from_path(v1).resources, PackageContent.from_path(v2).resources
    kept = 0
    for name in ("provider-by-month", "cpa-payment-group-by-month"):
        keys = old[name].schema["primaryKey"]
        both = old[name].rows.merge(new[name].rows, on=keys, suffixes=("_v1", "_v2"))
        both = both[both["month"] != "Total"]  # the month total spans more months in 1.1.0
        for measure in ("referrals", "attachments"):
            shown = both[f"{measure}_v1"].notna()
            assert shown.any() and (both.loc[shown, f"{measure}_v2"] == both.loc[shown, f"{measure}_v1"]).all()
            kept += int(shown.sum())
    assert kept > 100
    spec = load_spec(SPEC)
    report = audit_package(v2, [v1], primaries=true_primaries(v2, spec, [mi]))
    assert report.ok


def test_mi_ahead_publishes_later_months_as_separate_provisional_tables(tmp_path, mi, calendar):
    """Rec 1c: the months after the cut-off, as clearly labelled provisional MI, never mixed in."""
    import frictionless

    from opendata.audit import audit_package, true_primaries
    from opendata.spec import load_spec

    at = datetime(2026, 2, 19, 9, 29, tzinfo=UTC)  # cut-off 2011-08-31: Sept to Nov are ahead
    summary = cut_release(
        SPEC,
        [mi],
        tmp_path / "releases",
        release_time=at,
        calendar=calendar,
        mi_ahead=True,
        now=at - DAY,
        unscheduled=True,
        reason="a test of the cut-off edge",
    )
    descriptor = json.loads((summary.path / "datapackage.json").read_text())
    names = [r["name"] for r in descriptor["resources"]]
    assert "provider-by-month-mi-ahead" in names and "cpa-payment-group-by-month-mi-ahead" in names
    ahead = (summary.path / "hierarchies" / "month_provisional.csv").read_text()
    assert "2011-09" in ahead and "2011-11" in ahead and "2011-08" not in ahead
    assert "2011-09" not in (summary.path / "hierarchies" / "month.csv").read_text()
    resource = next(r for r in descriptor["resources"] if r["name"] == "provider-by-month-mi-ahead")
    assert "[p]" in resource["title"] and all("[p]" in f["title"] for f in resource["schema"]["fields"][2:])
    assert "recommendation 1c" in " ".join(descriptor["opendata:release"]["statement"])
    assert frictionless.validate(summary.path / "datapackage.json").valid
    report = audit_package(summary.path, primaries=true_primaries(summary.path, load_spec(SPEC), [mi]))
    assert report.ok


def test_a_corrupt_staged_release_is_reported_and_nothing_is_published(tmp_path, mi, calendar):
    at = datetime(2026, 2, 19, 9, 30, tzinfo=UTC)
    cut_release(SPEC, [mi], tmp_path / "releases", release_time=at, calendar=calendar, now=at - DAY)
    broken = tmp_path / "staging" / "other" / "1.0.0"
    broken.mkdir(parents=True)
    (broken / "datapackage.json").write_text("{broken")
    with pytest.raises(ReleaseError, match="unreadable"):
        publish(tmp_path / "staging", tmp_path / "releases", at + MINUTE)
    assert not (tmp_path / "releases").exists()


@pytest.mark.parametrize("inside", ["staging-in-public", "public-in-staging", "same"])
def test_staging_inside_the_public_tree_is_refused_by_release_publish_and_access(tmp_path, mi, inside):
    """A host serving the public tree would serve a staging area inside it: release, publish and
    access refuse, naming both paths, through the CLI; nothing is written."""
    import subprocess
    import sys

    public, staging = {
        "staging-in-public": (tmp_path / "releases", tmp_path / "releases" / "staging"),
        "public-in-staging": (tmp_path / "staging" / "releases", tmp_path / "staging"),
        "same": (tmp_path / "releases", tmp_path / "releases"),
    }[inside]

    def cli(*args) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "opendata.cli", *map(str, args)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300)

    runs = [
        cli("release", SPEC, mi, "--out", public, "--staging", staging, "--release-time", "2030-01-03T09:30:00+00:00"),
        cli("publish", "--out", public, "--staging", staging),
        cli("access", NAME, "1.0.0", "--who", "Minister for Employment", "--out", public, "--staging", staging),
    ]
    for run in runs:
        assert run.returncode != 0 and "Traceback" not in run.stderr, run.stderr
        assert "overlap" in run.stderr and str(staging) in run.stderr and str(public) in run.stderr
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_the_calendar_is_enforced_and_every_record_says_what_happened(tmp_path, mi):
    """Finding 1 replayed with the real clock: a past time outside the calendar and not at 09:30
    is refused; declared unscheduled and late with a reason, the descriptor, README, changelog
    and catalogue say so, and nothing claims "pre-announced, 09:30"."""
    import subprocess
    import sys

    def cli(*args) -> subprocess.CompletedProcess:
        run = subprocess.run(
            [sys.executable, "-m", "opendata.cli", *map(str, args)], capture_output=True, text=True, timeout=300
        )
        assert "Traceback" not in run.stderr, run.stderr
        return run

    calendar = ROOT / "specs" / "calendar.yaml"
    public, staging = tmp_path / "releases", tmp_path / "staging"
    base = ("release", SPEC, mi, "--out", public, "--calendar", calendar, "--release-time", "2026-11-26T14:00:00+00:00")
    refused = cli(*base)
    assert refused.returncode == 1 and "not a release of" in refused.stderr and "--unscheduled" in refused.stderr
    late = cli(*base, "--unscheduled", "--reason", "x")
    assert late.returncode == 1 and "already passed" in late.stderr and "--late" in late.stderr
    no_reason = cli(*base, "--unscheduled", "--late")
    assert no_reason.returncode == 1 and "--reason" in no_reason.stderr
    assert not public.exists() and not staging.exists()

    reason = "Correcting [an error](javascript:alert(1)) found after the scheduled release"
    assert cli(*base, "--unscheduled", "--late", "--reason", reason, "-q").returncode == 0
    assert cli("publish", "--out", public, "-q").returncode == 0
    version = public / NAME / "1.0.0"
    release = json.loads((version / "datapackage.json").read_text())["opendata:release"]
    assert release["pre_announced"] is False and release["orderly"] is False
    assert release["unscheduled"] is True and release["late"] is True and release["reason"] == reason
    assert release["published"] >= "2026-11-27"  # when it became public, by the real clock
    statement = " ".join(release["statement"])
    assert (
        "pre-announced, 09:30" not in statement and "Non-standard release" in statement and "Late release" in statement
    )
    readme = (version / "README.md").read_text()
    assert "Non-standard release" in readme and not re.search(r"(?<!\\)\]\(javascript:", readme)  # inert text
    changelog = (public / NAME / "CHANGELOG.md").read_text()
    assert (
        "Non-standard release" in changelog and "Late release" in changelog and "found after the scheduled" in changelog
    )
    assert f"published {release['published']}" in changelog  # the moment it became public, not the release time
    entry = json.loads((public / "catalog.json").read_text())["packages"][0]["versions"][0]
    assert entry["orderly"] is False and entry["reason"] == reason and entry["published"] == release["published"]


def test_a_scheduled_0930_release_claims_orderly_release(tmp_path, mi, calendar):
    at = datetime(2026, 2, 19, 9, 30, tzinfo=UTC)
    summary = cut_release(SPEC, [mi], tmp_path / "releases", release_time=at, calendar=calendar, now=at - DAY)
    release = json.loads((summary.path / "datapackage.json").read_text())["opendata:release"]
    assert release["pre_announced"] and release["orderly"] and "reason" not in release
    assert "(orderly release, pre-announced, 09:30)." in release["statement"][0]
    with pytest.raises(ReleaseError, match="--late given"):
        cut_release(
            SPEC, [mi], tmp_path / "releases", release_time=at, calendar=calendar, now=at - DAY, late=True, reason="x"
        )
    with pytest.raises(ReleaseError, match="is in the release calendar"):
        cut_release(
            SPEC,
            [mi],
            tmp_path / "releases",
            release_time=at,
            calendar=calendar,
            now=at - DAY,
            unscheduled=True,
            reason="x",
        )


def test_unstage_and_reschedule_through_the_cli(tmp_path, mi):
    """A staged release can be moved (by the release rules, keeping its cut-off) or withdrawn,
    with a reason, both logged; neither touches a published version. Dates are relative to the
    real clock, so the scenario stays in the future whenever it runs."""
    import subprocess
    import sys
    from datetime import time
    from zoneinfo import ZoneInfo

    def cli(*args) -> subprocess.CompletedProcess:
        run = subprocess.run(
            [sys.executable, "-m", "opendata.cli", *map(str, args)], capture_output=True, text=True, timeout=300
        )
        assert "Traceback" not in run.stderr, run.stderr
        return run

    today = datetime.now(UTC).date()

    def day(n: int) -> str:
        return (today + timedelta(days=n)).isoformat()

    def at(n: int) -> str:  # 09:30 London on day n, as UTC
        return (
            datetime.combine(today + timedelta(days=n), time(9, 30), ZoneInfo("Europe/London"))
            .astimezone(UTC)
            .isoformat()
        )

    raw = {
        "datasets": [
            {
                "name": "wp-official",
                "title": "Official statistics",
                "releases": [release(day(-10), "os", "2011-08-31"), release(day(35), "os", "2011-09-30")],
            },
            {
                "name": NAME,
                "title": "MI",
                "cutoff_from": "wp-official",
                "releases": [release(day(20), "mi", "2011-08-31"), release(day(50), "mi", "2011-09-30")],
            },
        ]
    }
    calendar = tmp_path / "calendar.yaml"
    calendar.write_text(yaml.safe_dump(raw, sort_keys=False))
    public, staging = tmp_path / "releases", tmp_path / "staging"
    where = ("--out", public, "--calendar", calendar)
    assert cli("release", SPEC, mi, *where, "-q").returncode == 0  # the next calendar entry: day 20
    staged = staging / NAME / "1.0.0"

    moved = cli("reschedule", NAME, "1.0.0", "--to", at(21), "--reason", "Clashes with a statement", *where)
    assert moved.returncode == 1 and "--unscheduled" in moved.stderr
    moved = cli(
        "reschedule", NAME, "1.0.0", "--to", at(21), "--reason", "Clashes with a statement", "--unscheduled", *where
    )
    assert moved.returncode == 0, moved.stderr
    descriptor = json.loads((staged / "datapackage.json").read_text())
    info = descriptor["opendata:release"]
    assert descriptor["created"] == at(21).replace("+00:00", "Z") and info["unscheduled"] and not info["orderly"]
    assert "time" not in info  # the release time is written once, as created
    assert info["reason"] == "Clashes with a statement" and info["cutoff"]["covers"] == "2011-08-31"
    readme = (staged / "README.md").read_text()
    assert (
        "Non-standard release" in readme
        and f"Release time {at(21)[:16]}Z" in readme
        and "pre-announced, 09:30" not in readme
    )
    cover = pd.read_excel(staged / f"{NAME}-1.0.0.ods", engine="odf", sheet_name="Cover_sheet", header=None)[0]
    assert f"Release time {at(21)[:16]}Z." in cover.tolist()  # the spreadsheets were rewritten too
    for r in descriptor["resources"]:
        assert size_and_hash(staged / r["path"]) == (r["bytes"], r["hash"]), r["path"]

    later = cli("reschedule", NAME, "1.0.0", "--to", at(50), "--reason", "Later", *where)
    assert later.returncode == 1 and "Cut the release again" in later.stderr  # official statistics in between
    past = cli("reschedule", NAME, "1.0.0", "--to", at(-1), "--reason", "Earlier", "--unscheduled", *where)
    assert past.returncode == 1 and "already passed" in past.stderr
    assert json.loads((staged / "datapackage.json").read_text())["created"] == descriptor["created"]

    gone = cli("unstage", NAME, "1.0.0", "--reason", "Wrong MI extract", "--out", public)
    assert gone.returncode == 0, gone.stderr
    assert not staged.exists() and len(list((staging / NAME / ".withdrawn").iterdir())) == 1
    log = [json.loads(line) for line in (staging / NAME / "1.0.0.staging-log.jsonl").read_text().splitlines()]
    assert [e["action"] for e in log] == ["reschedule", "unstage"] and log[1]["reason"] == "Wrong MI extract"
    assert "nothing staged" in cli("publish", "--out", public).stdout and not (public / NAME).exists()
    again = cli("unstage", NAME, "1.0.0", "--reason", "twice", "--out", public)
    assert again.returncode == 1 and "no staged release" in again.stderr

    # a published version is never withdrawn
    shutil.copytree(next((staging / NAME / ".withdrawn").iterdir()), public / NAME / "1.0.0")
    shutil.copytree(public / NAME / "1.0.0", staged)
    refused = cli("unstage", NAME, "1.0.0", "--reason", "x", "--out", public)
    assert refused.returncode == 1 and "already public" in refused.stderr


def test_a_staging_area_serves_one_public_tree(tmp_path, mi, calendar):
    """Two trees in one directory share the default staging area: publishing one must not publish
    the other's releases, and a copied tree must not pick up the original's staged versions."""
    at = datetime(2026, 2, 19, 9, 30, tzinfo=UTC)
    cut_release(SPEC, [mi], tmp_path / "releases", release_time=at, calendar=calendar, now=at - DAY)
    with pytest.raises(ReleaseError, match="holds releases for the public tree"):
        publish(tmp_path / "staging", tmp_path / "releases-test", at + MINUTE)
    with pytest.raises(ReleaseError, match=r"give .* its own staging area"):
        cut_release(SPEC, [mi], tmp_path / "releases-test", release_time=at, calendar=calendar, now=at - DAY)
    assert not (tmp_path / "releases-test").exists()
    assert publish(tmp_path / "staging", tmp_path / "releases", at + MINUTE).published
