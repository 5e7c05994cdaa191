"""Diffs and data-driven versioning, on real packages written by write_package."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from tiny_spec import write_tiny_spec

from opendata.aggregate import hierarchy_codes, period_dimension
from opendata.changelog import append_changelog, changelog_entry
from opendata.content import PackageContent
from opendata.diff import bump, check_version, diff, next_version, render_text, resolve
from opendata.errors import OpenDataError, ReleaseError
from opendata.package import write_package
from opendata.protection import ProtectedTable
from opendata.spec import ReleaseSpec

CREATED = datetime(2024, 3, 14, 9, 30, tzinfo=UTC)
MONTHS = ["2024-01", "2024-02"]

LEAVES = ["A1", "A2", "B1"]
BY_MONTH, TOTALS = "provider-by-month", "provider-totals"


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> ReleaseSpec:
    return write_tiny_spec(tmp_path_factory.mktemp("spec"))


def _leaf(measure: str, month: str, provider: str) -> int:
    """A fixed value per leaf cell, independent of which months are published, all at or above 10."""
    base = 10 + 5 * int(month[-2:]) + 5 * LEAVES.index(provider)
    return base if measure == "referrals" else base + 10


def make_tables(spec: ReleaseSpec, months: list[str] = MONTHS) -> list[ProtectedTable]:
    """Both tables on the full grid with every total the sum of its leaves; nothing suppressed."""
    month = period_dimension(months, spec.dimensions["month"])
    provider = hierarchy_codes(spec.dimensions["provider"])

    def under(code: str, leaf: str) -> bool:
        while leaf:
            if leaf == code:
                return True
            leaf = provider.parents.get(leaf, "")
        return False

    def cell(measure: str, m: str, p: str) -> int:
        ms = months if m == month.total else [m]
        return sum(_leaf(measure, x, leaf) for x in ms for leaf in LEAVES if under(p, leaf))

    grid = pd.MultiIndex.from_product([month.codes, provider.codes], names=["month", "provider"]).to_frame(index=False)
    for measure in ("referrals", "job_starts"):
        grid[measure] = pd.array(
            [cell(measure, m, p) for m, p in zip(grid["month"], grid["provider"], strict=True)], dtype="Int64"
        )
        grid[measure + "_status"] = ""
    totals = pd.DataFrame({"provider": list(provider.codes)})
    totals["referrals"] = pd.array([cell("referrals", month.total, p) for p in provider.codes], dtype="Int64")
    totals["referrals_status"] = ""
    t1, t2 = spec.tables
    sdc = {"cells": 0, "primary": 0, "secondary": 0, "rounded": 0, "audit": {"ok": True, "checked": 0, "method": "x"}}
    measures = (spec.measures["referrals"], spec.measures["job_starts"])
    return [
        ProtectedTable(t1, (month, provider), measures, grid, {m.name: dict(sdc) for m in measures}),
        ProtectedTable(t2, (provider,), measures[:1], totals, {"referrals": dict(sdc)}),
    ]


def _at(table: ProtectedTable, **key: str) -> int:
    mask = pd.Series(True, index=table.frame.index)
    for dim, code in key.items():
        mask &= table.frame[dim] == code
    (position,) = mask[mask].index
    return position


def _write(spec: ReleaseSpec, tables: list[ProtectedTable], root: Path, version: str) -> PackageContent:
    return PackageContent.from_path(write_package(spec, tables, root, version, CREATED))


@pytest.fixture(scope="module")
def base(spec: ReleaseSpec, tmp_path_factory: pytest.TempPathFactory) -> PackageContent:
    return _write(spec, make_tables(spec), tmp_path_factory.mktemp("base"), "1.0.0")


def test_identical_is_no_change(spec: ReleaseSpec, base: PackageContent, tmp_path: Path) -> None:
    again = _write(spec, make_tables(spec), tmp_path, "1.0.1")
    d = diff(base, again)
    assert bump(d) is None
    assert d.changed == [] and d.metadata == []
    assert d.to_dict()["summary"]["rows_added"] == 0
    with pytest.raises(ReleaseError, match=r"nothing changed since 1\.0\.0"):
        next_version("1.0.0", d)


def test_appended_month_is_minor_and_reports_exactly_the_new_rows(
    spec: ReleaseSpec, base: PackageContent, tmp_path: Path
) -> None:
    new = _write(spec, make_tables(spec, [*MONTHS, "2024-03"]), tmp_path, "1.1.0")
    d = diff(base, new)
    assert bump(d) == "minor" and next_version("1.0.0", d) == "1.1.0"
    r = d.resource(BY_MONTH)
    assert r.rows_added == [("2024-03", p) for p in ("Total", "A", "A1", "A2", "B", "B1")]
    assert r.new_codes == {"month": ["2024-03"]} and r.rows_removed == []
    assert r.corrections == [] and r.statuses == []
    # every month-Total cell moved, and only those: new data, not corrections
    assert {(v.key[0], v.field) for v in r.values} == {("Total", "referrals"), ("Total", "job_starts")}
    assert len(r.values) == 12 and all(v.new_data for v in r.values)
    grand = next(v for v in r.values if v.key == ("Total", "Total") and v.field == "referrals")
    assert (grand.old, grand.new) == (135, 135 + 25 + 30 + 35)
    # the enum grows: a loosened constraint, not a breaking one
    assert [(c.kind, c.field, c.added) for c in r.schema] == [("constraint-loosened", "month", ("2024-03",))]
    # the by-provider totals (month implicitly Total) move with the new month too
    totals = d.resource(TOTALS)
    assert totals.rows_added == [] and len(totals.values) == 6 and totals.corrections == []
    assert d.resource("hierarchy-month").rows_added == [("2024-03",)]
    assert d.resource("hierarchy-provider").change == "unchanged"
    with pytest.raises(ReleaseError, match=r"2\.0\.0 is a major release after 1\.0\.0, but the changes are a minor"):
        check_version("1.0.0", "2.0.0", d)  # a larger bump announces changes that are not there


def test_one_corrected_value_is_patch(spec: ReleaseSpec, base: PackageContent, tmp_path: Path) -> None:
    tables = make_tables(spec)
    row = _at(tables[0], month="2024-01", provider="A1")
    old = int(tables[0].frame.at[row, "referrals"])
    tables[0].frame.loc[row, "referrals"] = old + 5
    d = diff(base, _write(spec, tables, tmp_path, "1.0.1"))
    assert bump(d) == "patch" and next_version("1.0.0", d) == "1.0.1"
    for bigger in ("2.0.0", "1.1.0"):  # issue: "--version 2.0.0 on a patch-level change is staged"
        with pytest.raises(
            ReleaseError, match=rf"{bigger} is a \w+ release after 1\.0\.0, but the changes are a patch.*use 1\.0\.1"
        ):
            check_version("1.0.0", bigger, d)
    [change] = [v for r in d.resources for v in r.values]
    assert (change.key, change.field, change.old, change.new, change.new_data) == (
        ("2024-01", "A1"),
        "referrals",
        old,
        old + 5,
        False,
    )
    assert [r.name for r in d.changed] == [BY_MONTH]
    by_month = next(r for r in d.to_dict()["resources"] if r["name"] == BY_MONTH)
    assert by_month["values_changed"]["changes"] == [
        {
            "key": {"month": "2024-01", "provider": "A1"},
            "field": "referrals",
            "old": old,
            "new": old + 5,
            "old_status": None,
            "new_status": None,
            "new_data": False,
        }
    ]
    assert f"month=2024-01, provider=A1: referrals {old} -> {old + 5}" in render_text(d)


def test_corrected_aggregate_with_new_month_elsewhere_is_still_a_correction(
    spec: ReleaseSpec, base: PackageContent, tmp_path: Path
) -> None:
    tables = make_tables(spec, [*MONTHS, "2024-03"])
    row = _at(tables[0], month="2024-01", provider="A")  # a subtotal in an old month: no new rows under it
    tables[0].frame.loc[row, "job_starts"] += 5
    d = diff(base, _write(spec, tables, tmp_path, "1.1.0"))
    [fix] = d.resource(BY_MONTH).corrections
    assert (fix.key, fix.field) == (("2024-01", "A"), "job_starts")
    assert bump(d) == "minor"


def test_status_change_published_to_suppressed(spec: ReleaseSpec, base: PackageContent, tmp_path: Path) -> None:
    tables = make_tables(spec)
    frame = tables[0].frame
    row = _at(tables[0], month="2024-02", provider="B1")
    old = int(frame.at[row, "job_starts"])
    frame.loc[row, "job_starts"] = pd.NA
    frame.loc[row, "job_starts_status"] = "c"
    d = diff(base, _write(spec, tables, tmp_path, "1.0.1"))
    r = d.resource(BY_MONTH)
    assert r.values == []
    [s] = r.statuses
    assert (s.key, s.field, s.old, s.new, s.old_status, s.new_status) == (
        ("2024-02", "B1"),
        "job_starts",
        old,
        None,
        "",
        "c",
    )
    assert bump(d) == "patch"
    assert r.to_dict()["status_changed"]["suppressed"] == 1
    assert f"job_starts {old} -> [c]" in render_text(d)


def test_removed_field_is_major(spec: ReleaseSpec, base: PackageContent, tmp_path: Path) -> None:
    tables = make_tables(spec)
    tables[0].measures = tables[0].measures[:1]
    tables[0].frame = tables[0].frame.drop(columns=["job_starts", "job_starts_status"])
    d = diff(base, _write(spec, tables, tmp_path, "2.0.0"))
    assert [(c.kind, c.field) for c in d.resource(BY_MONTH).schema] == [("field-removed", "job_starts")]
    assert bump(d) == "major" and next_version("1.4.2", d) == "2.0.0"
    with pytest.raises(ReleaseError, match=r"1\.1\.0 is a minor release .* need a major release .*job_starts removed"):
        check_version("1.0.0", "1.1.0", d)


def test_changed_type_is_major(spec: ReleaseSpec, base: PackageContent, tmp_path: Path) -> None:
    path = write_package(spec, make_tables(spec), tmp_path, "2.0.0", CREATED)
    descriptor = json.loads((path / "datapackage.json").read_text(encoding="utf-8"))
    resource = next(r for r in descriptor["resources"] if r["name"] == TOTALS)
    resource["schema"]["fields"][1]["type"] = "number"
    (path / "datapackage.json").write_text(json.dumps(descriptor), encoding="utf-8")
    d = diff(base, PackageContent.from_path(path))
    r = d.resource(TOTALS)
    assert [(c.kind, c.field, c.old, c.new) for c in r.schema] == [("type-changed", "referrals", "integer", "number")]
    assert r.values == []  # 150 and 150.0 are the same value
    assert bump(d) == "major"


def test_enum_shrink_is_major(spec: ReleaseSpec, base: PackageContent, tmp_path: Path) -> None:
    d = diff(base, _write(spec, make_tables(spec, MONTHS[1:]), tmp_path, "2.0.0"))
    r = d.resource(BY_MONTH)
    assert [(c.kind, c.field, c.removed) for c in r.schema] == [("constraint-tightened", "month", ("2024-01",))]
    assert r.removed_codes == {"month": ["2024-01"]} and len(r.rows_removed) == 6
    assert bump(d) == "major"
    with pytest.raises(ReleaseError, match="need a major release"):
        check_version("1.0.0", "1.0.1", d)


def test_metadata_only_is_patch(spec: ReleaseSpec, base: PackageContent, tmp_path: Path) -> None:
    changed = dataclasses.replace(spec, title="Tiny MI (revised)", keywords=("test", "employment"))
    d = diff(base, _write(changed, make_tables(changed), tmp_path, "1.0.1"))
    assert [(c.aspect, c.old, c.new) for c in d.metadata] == [
        ("keywords", ["test"], ["test", "employment"]),
        ("title", "Tiny MI", "Tiny MI (revised)"),
    ]
    assert d.changed == [] and bump(d) == "patch"
    assert check_version("1.0.0", "1.0.1", d) == "1.0.1"
    assert "title changed: Tiny MI -> Tiny MI (revised)" in render_text(d)


def test_from_tables_equals_from_path(spec: ReleaseSpec, base: PackageContent, tmp_path: Path) -> None:
    tables = make_tables(spec)
    tables[0].frame.loc[3, ["referrals", "referrals_status"]] = [pd.NA, "c"]
    planned = PackageContent.from_tables(spec, tables)
    written = PackageContent.from_path(write_package(spec, make_tables_copy(tables), tmp_path, "1.0.0", CREATED))
    assert planned == written
    assert bump(diff(written, planned)) is None
    assert planned.version is None and written.version == "1.0.0"
    assert PackageContent.from_tables(spec, make_tables(spec)) == base


def make_tables_copy(tables: list[ProtectedTable]) -> list[ProtectedTable]:
    return [dataclasses.replace(t, frame=t.frame.copy()) for t in tables]


def test_check_version(spec: ReleaseSpec, base: PackageContent, tmp_path: Path) -> None:
    d = diff(base, _write(spec, make_tables(spec, [*MONTHS, "2024-03"]), tmp_path, "1.1.0"))
    with pytest.raises(ReleaseError, match=r"1\.0\.1 is a patch release after 1\.0\.0, but the changes need a minor"):
        check_version("1.0.0", "1.0.1", d)
    with pytest.raises(ReleaseError, match=r"provider-by-month: 6 row\(s\) added \(month 2024-03\)"):
        check_version("1.0.0", "1.0.1", d)
    with pytest.raises(ReleaseError, match=r"not higher than the previous version 1\.0\.0"):
        check_version("1.0.0", "1.0.0", d)
    with pytest.raises(ReleaseError, match="not higher"):
        check_version("1.2.0", "1.1.0", d)
    with pytest.raises(ReleaseError, match=r"resets the lower numbers to 0 \(use 1\.1\.0\)"):
        check_version("1.0.0", "1.1.3", d)
    with pytest.raises(ReleaseError, match="not a semantic version"):
        check_version("1.0.0", "v2", d)
    assert check_version("1.0.0", "1.1.0", d) == "1.1.0"
    assert check_version("1.0.5", "1.2.0", d) == "1.2.0"


def test_json_is_deterministic(spec: ReleaseSpec, tmp_path: Path) -> None:
    old = write_package(spec, make_tables(spec), tmp_path, "1.0.0", CREATED)
    tables = make_tables(spec, [*MONTHS, "2024-03"])
    tables[0].frame.loc[_at(tables[0], month="2024-01", provider="B1"), "referrals"] += 5
    new = write_package(spec, tables, tmp_path, "1.1.0", CREATED)
    first = diff(PackageContent.from_path(old), PackageContent.from_path(new)).to_json()
    second = diff(PackageContent.from_path(old), PackageContent.from_path(new)).to_json()
    assert first == second
    data = json.loads(first)
    assert data["bump"] == "minor"
    assert [r["name"] for r in data["resources"]] == sorted(r["name"] for r in data["resources"])
    assert data["summary"]["corrections"] == 1 and data["summary"]["rows_added"] == 7
    by_month = next(r for r in data["resources"] if r["name"] == BY_MONTH)
    assert by_month["values_changed"]["changes"][0]["key"] == {"month": "2024-01", "provider": "B1"}
    assert json.loads(diff(PackageContent.from_path(old), PackageContent.from_path(new)).to_json(limit=None))


def test_resolve(spec: ReleaseSpec, tmp_path: Path) -> None:
    path = write_package(spec, make_tables(spec), tmp_path, "1.0.0", CREATED)
    write_package(spec, make_tables(spec), tmp_path, "1.10.0", CREATED)
    assert resolve("tiny-mi@1.0.0", tmp_path) == path
    assert resolve("tiny-mi@latest", tmp_path) == tmp_path / "tiny-mi" / "1.10.0"
    assert resolve(str(path), tmp_path / "elsewhere") == path
    assert resolve(path / "datapackage.json", tmp_path) == path
    with pytest.raises(OpenDataError, match=r"no package 'other' in .*packages there: tiny-mi"):
        resolve("other@1.0.0", tmp_path)
    with pytest.raises(OpenDataError, match=r"tiny-mi has no version 9.9.9 .*published: 1.0.0, 1.10.0"):
        resolve("tiny-mi@9.9.9", tmp_path)
    with pytest.raises(OpenDataError, match="neither a version directory nor NAME@VERSION"):
        resolve("tiny-mi", tmp_path)


def test_changelog(spec: ReleaseSpec, base: PackageContent, tmp_path: Path) -> None:
    tables = make_tables(spec, [*MONTHS, "2024-03"])
    tables[0].frame.loc[_at(tables[0], month="2024-01", provider="B1"), "referrals"] += 5
    d = diff(base, PackageContent.from_tables(spec, tables))
    series = tmp_path / "tiny-mi"
    released = datetime(2024, 4, 11, 9, 30, tzinfo=UTC)
    append_changelog(series, changelog_entry("tiny-mi", "1.0.0", None, None, CREATED))
    entry = changelog_entry("tiny-mi", "1.1.0", "1.0.0", d, released)
    assert entry.startswith("## [1.1.0] - 2024-04-11\n\nMinor release")
    assert "`provider-by-month`: 6 rows added (month 2024-03)." in entry
    assert "1 value corrected (month=2024-01, provider=B1: referrals" in entry
    path = append_changelog(series, entry)
    append_changelog(series, entry)  # re-running a release does not duplicate its entry
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Changelog: tiny-mi\n")
    assert text.count("## [1.1.0]") == 1
    assert text.index("## [1.1.0]") < text.index("## [1.0.0]")
    assert sorted(p.name for p in series.iterdir()) == ["CHANGELOG.md"]


def test_csv_only_package_reads_the_same(spec: ReleaseSpec, base: PackageContent, tmp_path: Path) -> None:
    tables = make_tables(spec)
    tables[0].frame.loc[3, ["referrals", "referrals_status"]] = [pd.NA, "c"]
    path = write_package(spec, tables, tmp_path, "1.0.0", CREATED)
    with_parquet = PackageContent.from_path(path)
    descriptor = json.loads((path / "datapackage.json").read_text(encoding="utf-8"))
    descriptor["resources"] = [r for r in descriptor["resources"] if r["format"] != "parquet"]
    (path / "datapackage.json").write_text(json.dumps(descriptor), encoding="utf-8")
    assert PackageContent.from_path(path) == with_parquet
