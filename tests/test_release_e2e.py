"""End to end, as a statistician runs it: sample → validate → release, through the real CLI.

The published package is then checked the way an outsider would: frictionless validation,
loading with pandas and DuckDB, totals against their parts, and an attacker audit written apart
from ``disclosure/`` that sees only the published files.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import frictionless
import numpy as np
import pandas as pd
import pytest
from independent_audit import feasible_intervals
from shipped_specs import OUTSIDERS

from opendata.relations import spec_relations
from opendata.spec import load_spec

pytestmark = pytest.mark.slow  # end to end: left out of the quick subset (make test-quick)

ROOT = Path(__file__).resolve().parent.parent
SPEC = OUTSIDERS
NAME = "work-programme-subcontractor-mi"
WHEN = "2026-11-12T09:30:00+00:00"  # a past release time: publish makes it public at once
LATE = ("--late", "--reason", "tests release after the release time")


def opendata(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "opendata.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600
    )


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> tuple[Path, Path, Path]:
    """MI file, release tree and the written version directory."""
    work = tmp_path_factory.mktemp("e2e")
    run = opendata("sample", "--out", work / "mi", "--rows", 3000, "--seed", 7, "--months", 3, "--format", "csv")
    assert run.returncode == 0, run.stderr
    mi = work / "mi" / "work-programme-mi.csv"
    run = opendata("validate", SPEC, mi)
    assert run.returncode == 0, run.stderr + run.stdout
    run = opendata("release", SPEC, mi, "--out", work / "releases", "--release-time", WHEN, *LATE)
    assert run.returncode == 0, run.stderr + run.stdout
    assert "audit passed" in run.stdout
    assert not (work / "releases").exists(), "release must stage, not publish"
    run = opendata("publish", "--out", work / "releases")
    assert run.returncode == 0, run.stderr + run.stdout
    version = work / "releases" / NAME / "1.0.0"
    assert version.is_dir()
    return mi, work / "releases", version


def test_package_validates_with_frictionless(released):
    _, _, version = released
    report = frictionless.validate(version / "datapackage.json")
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])[:10]
    descriptor = json.loads((version / "datapackage.json").read_text())
    assert descriptor["version"] == "1.0.0"
    assert descriptor["created"] == "2026-11-12T09:30:00Z"
    assert descriptor["licenses"][0]["name"] == "OGL-UK-3.0"


def test_loads_with_pandas_and_duckdb(released):
    _, _, version = released
    csv = pd.read_csv(version / "data" / "provider-by-month.csv", dtype=str, keep_default_na=False)
    parquet = pd.read_parquet(version / "data" / "provider-by-month.parquet")
    assert len(csv) == len(parquet) > 0
    assert not (csv == "").any().any(), "a published CSV cell is blank"
    suppressed = csv["referrals"] == "[c]"
    assert suppressed.any()
    assert (parquet["referrals"].isna().to_numpy() == suppressed.to_numpy()).all()
    assert (parquet.loc[suppressed.to_numpy(), "referrals_status"] == "c").all()
    con = duckdb.connect()
    n_csv = con.execute(f"select count(*) from read_csv('{version}/data/provider-by-month.csv')").fetchone()[0]
    n_parquet = con.execute(f"select count(*) from read_parquet('{version}/data/provider-by-month.parquet')").fetchone()
    assert n_csv == n_parquet[0] == len(csv)


def published(version: Path, table: str) -> tuple[pd.DataFrame, dict[str, dict[str, str]]]:
    frame = pd.read_parquet(version / "data" / f"{table}.parquet")
    descriptor = json.loads((version / "datapackage.json").read_text())
    resource = next(r for r in descriptor["resources"] if r["name"] == table)
    dims = resource["schema"]["primaryKey"]
    parents = {}
    for dim in dims:
        h = pd.read_csv(version / "hierarchies" / f"{dim}.csv", dtype=str, keep_default_na=False)
        parents[dim] = dict(zip(h["code"], h["parent"], strict=True))
    for dim in dims:
        frame[dim] = frame[dim].astype(str)
    return frame, parents


def test_totals_reconcile_where_nothing_is_suppressed(released):
    _, _, version = released
    frame, parents = published(version, "provider-by-month")
    base = 5
    for dim, parent_of in parents.items():
        others = [d for d in parents if d != dim]
        kids = frame[frame[dim].map(parent_of) != ""].assign(_parent=lambda f, d=dim: f[d].map(parents[d]))
        for measure in ("referrals", "job_starts"):
            sums = kids.groupby(["_parent", *others])[measure].agg(["sum", "count", "size"]).reset_index()
            full = sums[sums["count"] == sums["size"]].rename(columns={"_parent": dim})
            merged = full.merge(frame[[dim, *others, measure]], on=[dim, *others])
            merged = merged[merged[measure].notna()]
            assert len(merged) > 0
            slack = (base // 2) * (merged["size"] + 1)  # each rounded value is within 2 of the truth
            gap = (merged["sum"] - merged[measure].astype(float)).abs()
            assert (gap <= slack).all(), merged[gap > slack].head()


def true_primaries(mi: Path, frame: pd.DataFrame, parents, measure_date: str) -> np.ndarray:
    """Which published cells count 1-9 people, computed from the MI apart from the pipeline."""
    records = pd.read_csv(mi, dtype=str, keep_default_na=False)
    records = records[records[measure_date] != ""]
    records["month"] = records[measure_date].str[:7]
    dims = list(parents)
    leaf_field = {"provider": "subcontractor", "cpa": "cpa", "payment_group": "payment_group", "month": "month"}
    counts = records.groupby([leaf_field[d] for d in dims]).size()
    counts.index.names = dims
    truth = pd.Series(0, index=pd.MultiIndex.from_frame(frame[dims]), dtype="int64")
    for key, n in counts.items():
        key = key if isinstance(key, tuple) else (key,)
        ancestors = []
        for dim, code in zip(dims, key, strict=True):
            chain = [code]
            while parents[dim][chain[-1]]:
                chain.append(parents[dim][chain[-1]])
            ancestors.append(chain)
        for cell in pd.MultiIndex.from_product(ancestors):
            truth[cell] += n
    return ((truth > 0) & (truth < 10)).to_numpy()


@pytest.mark.parametrize(
    ("table", "measure", "date"),
    [
        ("provider-by-month", "referrals", "referral_date"),
        ("provider-by-month", "job_starts", "job_start_date"),
        ("cpa-payment-group-by-month", "referrals", "referral_date"),
        ("cpa-payment-group-by-month", "attachments", "attachment_date"),
    ],
)
def test_independent_attacker_cannot_narrow_any_primary_cell(released, table, measure, date):
    mi, _, version = released
    frame, parents = published(version, table)
    primary = true_primaries(mi, frame, parents, date)
    assert primary.sum() > 0
    assert frame.loc[primary, measure].isna().all(), "a primary cell was published"
    intervals = feasible_intervals(frame, parents, frame[measure], base=5, check=np.flatnonzero(primary))
    width = intervals["upper"] - intervals["lower"]
    assert (width >= 10 - 1e-6).all(), intervals[width < 10 - 1e-6].head()


def test_shared_cells_agree_across_linked_tables(released):
    _, _, version = released
    provider, _ = published(version, "provider-by-month")
    cpa, _ = published(version, "cpa-payment-group-by-month")
    margins = cpa[cpa["payment_group"] == "Total"].rename(columns={"cpa": "provider"})
    shared = margins.merge(provider, on=["month", "provider"], suffixes=("_cpa", "_provider"))
    assert len(shared) == len(margins)
    for measure in ("referrals", "attachments", "job_starts", "job_outcomes"):
        a, b = shared[f"{measure}_cpa"], shared[f"{measure}_provider"]
        assert (a.isna() == b.isna()).all(), f"{measure}: a shared cell is suppressed in one table only"
        assert (a[a.notna()] == b[b.notna()]).all()


def test_same_input_gives_identical_bytes(released, tmp_path):
    """Two releases of the same MI stage the same bytes; publishing then adds only the moment it
    became public (``opendata:release.published``)."""
    mi, _, published = released
    versions = []
    for tree in ("a", "b"):
        out = tmp_path / tree
        run = opendata("release", SPEC, mi, "--out", out / "releases", "--release-time", WHEN, *LATE, "--quiet")
        assert run.returncode == 0, run.stderr
        versions.append(out / "staging" / NAME / "1.0.0")
    version, again = versions
    stamped = json.loads((published / "datapackage.json").read_text())
    assert stamped["opendata:release"].pop("published")
    assert stamped == json.loads((version / "datapackage.json").read_text())
    first = sorted(p.relative_to(version) for p in version.rglob("*") if p.is_file())
    second = sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert first == second
    for rel in first:
        assert (version / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_published_version_is_never_overwritten(released):
    mi, releases, version = released
    before = {p: p.read_bytes() for p in version.rglob("*") if p.is_file()}
    run = opendata("release", SPEC, mi, "--out", releases, "--release-time", WHEN, *LATE, "--version", "1.0.0")
    assert run.returncode == 1
    assert "never overwritten" in run.stderr
    assert "Traceback" not in run.stderr
    assert before == {p: p.read_bytes() for p in version.rglob("*") if p.is_file()}


def test_bad_mi_writes_nothing(released, tmp_path):
    mi, _, _ = released
    lines = mi.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    row[header.index("cpa")] = "CPA99"
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([lines[0], ",".join(row), *lines[2:]]) + "\n")
    out = tmp_path / "releases"
    run = opendata("release", SPEC, bad, "--out", out, "--release-time", WHEN, *LATE, "--json")
    assert run.returncode == 1
    problems = json.loads(run.stdout)["problems"]
    assert [(p["row"], p["column"], p["value"], p["rule"]) for p in problems] == [(1, "cpa", "CPA99", "codelist")]
    assert not out.exists() or not any(out.rglob("*"))
    assert not (tmp_path / "staging").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["validate", "nope.yaml", "x.csv"], "does not exist"),
        (["release", SPEC, "missing.csv", "--out", "r", "--release-time", WHEN, *LATE], "missing.csv"),
        (["release", SPEC, "x.csv", "--release-time", "tomorrow"], "not an RFC 3339 time"),
        (["release", SPEC, "x.csv", "--release-time", "2026-12-03T09:30"], "no UTC offset"),
        (["release", SPEC, "x.csv", "--version", "one"], "not a semantic version"),
    ],
)
def test_user_mistakes_get_messages_not_tracebacks(tmp_path, args, message):
    (tmp_path / "x.csv").write_text("participant_id\n")
    run = opendata(*args, cwd=tmp_path)
    assert run.returncode in (1, 2)
    assert message in run.stderr + run.stdout
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "r").exists()


def test_every_command_has_help_with_an_example():
    for command in ("sample", "validate", "release"):
        run = opendata(command, "--help")
        assert run.returncode == 0
        assert "Example" in run.stdout


def _corpus_cases():
    from test_validate import _corpus

    return _corpus()


@pytest.mark.parametrize(
    ("name", "make", "rule", "row", "column"), _corpus_cases(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_cli_release_refuses_every_malformed_input(tmp_path, name, make, rule, row, column):
    """The same corpus as the validator's, through `opendata release` as a user runs it."""
    from opendata.spec import load_spec

    paths = make(load_spec(SPEC), tmp_path)
    out = tmp_path / "releases"
    run = opendata("release", SPEC, *paths, "--out", out, "--release-time", WHEN, *LATE, "--json")
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    problems = json.loads(run.stdout)["problems"]
    assert any(p["rule"] == rule and p["row"] == row for p in problems), problems[:3]
    assert not out.exists() or not any(out.rglob("*")), "something was written"
    assert not (tmp_path / "staging").exists(), "something was staged"


def test_a_correction_is_reported_as_corrections_with_its_reason_and_a_rerun_changes_nothing(tmp_path):
    """Finding 3 of the release-integrity issue, replayed: corrected values are corrections (old ->
    new [r]) in text and JSON, never suppression changes; the changelog is short text with the
    reason; the same correction released again stages nothing."""
    run = opendata("sample", "--out", tmp_path / "mi", "--rows", 2500, "--seed", 3, "--months", 3, "--format", "csv")
    assert run.returncode == 0, run.stderr
    mi = tmp_path / "mi" / "work-programme-mi.csv"
    out = tmp_path / "releases"
    assert opendata("release", SPEC, mi, "--out", out, "--release-time", WHEN, *LATE, "-q").returncode == 0
    assert opendata("publish", "--out", out, "-q").returncode == 0
    lines = mi.read_text().splitlines(keepends=True)
    fixed = tmp_path / "fixed.csv"
    fixed.write_text("".join(line for i, line in enumerate(lines) if i == 0 or i % 9))  # duplicates removed
    reason = "Duplicate referrals removed from one subcontractor's MI"
    again = ("release", SPEC, fixed, "--out", out, "--release-time", "2026-11-13T09:30:00+00:00", "--late")
    run = opendata(*again, "--reason", reason, "--json")
    assert run.returncode == 0, run.stderr + run.stdout
    assert json.loads(run.stdout)["version"] == "1.0.1"
    assert opendata("publish", "--out", out, "-q").returncode == 0
    revised = json.loads((out / NAME / "1.0.1" / "datapackage.json").read_text())["opendata:revisions"]["count"]
    assert revised > 0

    as_json = opendata("diff", f"{NAME}@1.0.0", f"{NAME}@1.0.1", "--out", out, "--json")
    summary = json.loads(as_json.stdout)["summary"]
    assert summary["corrections"] == summary["values_changed"] == revised
    assert summary["metadata_changes"] == 0  # the revisions list is not a metadata change
    text = opendata("diff", f"{NAME}@1.0.0", f"{NAME}@1.0.1", "--out", out).stdout
    assert re.search(r": \w+ \d+ -> \d+ \[r\]", text), text
    flags = {
        (c["old_status"], c["new_status"])
        for r in json.loads(as_json.stdout)["resources"]
        for c in r["status_changed"]["changes"]
    }
    assert not any("r" in pair for pair in flags), flags  # a revision flag is not a suppression status

    changelog = (out / NAME / "CHANGELOG.md").read_text()
    assert max(len(line) for line in changelog.splitlines()) < 600
    assert reason in changelog and f"opendata diff {NAME}@1.0.0 {NAME}@1.0.1" in changelog
    assert f"Reason for the correction: {reason}" in (out / NAME / "1.0.1" / "README.md").read_text()

    rerun = opendata(*again, "--reason", reason)
    assert rerun.returncode == 1 and "nothing changed" in rerun.stderr, rerun.stderr
    assert not (tmp_path / "staging" / NAME).exists() or not any((tmp_path / "staging" / NAME).iterdir())


def test_descriptor_and_readme_say_what_is_hidden_at_each_level(released):
    """Counts from the published view only (the value hidden stays with the statistician)."""
    _, _, version = released
    descriptor = json.loads((version / "datapackage.json").read_text())
    for table, measures in descriptor["opendata:disclosure"]["tables"].items():
        frame = pd.read_csv(version / "data" / f"{table}.csv", dtype=str)
        for measure, entry in measures.items():
            levels = entry["hidden_by_level"]
            assert next(iter(levels)) == " × ".join(["total"] * len(next(iter(levels)).split(" × ")))
            assert sum(v["cells"] for v in levels.values()) == len(frame)
            assert sum(v["hidden"] for v in levels.values()) == entry["suppressed"] == (frame[measure] == "[c]").sum()
            assert "loss" not in entry and "secondary_value" not in json.dumps(entry)
            pattern = entry["audit"]["pattern"]  # proven optimal or not (issue 9); a heuristic claims no bound
            assert isinstance(pattern["optimal"], bool)
            assert pattern["optimal"] or "lower_bound" not in pattern or pattern["gap"] > 0
    assert "Cells suppressed at each level" in (version / "README.md").read_text()
    # the relations stated are those between published measures: the spec defines the attachment
    # standard, and its relation to referrals, without publishing it
    published = {m for measures in descriptor["opendata:disclosure"]["tables"].values() for m in measures}
    stated = descriptor["opendata:disclosure"]["rules"]["relations"]
    defined = spec_relations(load_spec(SPEC))
    assert any(r.smaller not in published for r in defined)
    assert stated and all({r["smaller"], r["larger"]} <= published for r in stated)


def test_dry_run_says_what_would_be_suppressed_and_writes_nothing(released, tmp_path):
    mi, _, version = released
    out = tmp_path / "releases"
    run = opendata("release", SPEC, mi, "--out", out, "--release-time", WHEN, *LATE, "--dry-run", "--json")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["dry_run"] and summary["version"] == "1.0.0"
    assert not any(tmp_path.iterdir())  # no release tree, no staging area
    published = json.loads((version / "datapackage.json").read_text())["opendata:disclosure"]["tables"]
    for t in summary["tables"]:  # the same pattern as the real release of the same MI
        assert t["hidden_by_level"] == published[t["table"]][t["measure"]]["hidden_by_level"]
        assert 0 <= t["loss"]["secondary_value"] <= t["loss"]["total_value"]
    text = opendata("release", SPEC, mi, "--out", out, "--release-time", WHEN, *LATE, "--dry-run")
    assert "dry run: nothing written" in text.stdout and "hidden by level" in text.stdout


def test_must_publish_keeps_national_cells_out_of_secondary_suppression(tmp_path):
    """`disclosure.must_publish` in the spec: no matching cell whose count passes the threshold is
    hidden, and the pattern still passes the audit with the true primaries; where no pattern can
    respect it (every national payment-group cell published beside a small one), the release is
    refused naming a primary cell."""
    from opendata.audit import audit_package, true_primaries
    from opendata.spec import load_spec

    text = SPEC.read_text().replace("codelist: codelists/", f"codelist: {SPEC.parent}/codelists/")

    def spec_with(*entries: str) -> Path:
        spec = tmp_path / f"spec{len(entries)}.yaml"
        block = "  must_publish:\n" + "".join(f"    - {e}\n" for e in entries)
        spec.write_text(text.replace("  secondary: auto\n", "  secondary: auto\n" + block, 1))
        return spec

    run = opendata("sample", "--out", tmp_path / "mi", "--rows", 4000, "--seed", 5, "--months", 4, "--format", "csv")
    assert run.returncode == 0, run.stderr
    mi = tmp_path / "mi" / "work-programme-mi.csv"
    spec = spec_with("{provider: [total]}", "{cpa: [total], payment_group: [total]}")
    run = opendata("release", spec, mi, "--out", tmp_path / "releases", "--release-time", WHEN, *LATE, "-q")
    assert run.returncode == 0, run.stderr + run.stdout
    version = tmp_path / "staging" / NAME / "1.0.0"
    primaries = true_primaries(version, load_spec(spec), [mi])
    kept = 0
    for (table, measure), primary in primaries.items():
        frame = pd.read_csv(version / "data" / f"{table}.csv", dtype=str)
        if "provider" in frame:
            must = frame["provider"] == "Total"
        else:
            must = (frame["cpa"] == "Total") & (frame["payment_group"] == "Total")
        hidden = frame[measure] == "[c]"
        assert not (hidden & must & ~primary).any(), frame[hidden & must & ~primary].head()
        kept += int((must & ~primary).sum())
    assert kept > 0
    assert audit_package(version, primaries=primaries).ok

    by_group = spec_with("{provider: [total]}", "{cpa: [total]}")  # every national payment-group cell
    other = ("--out", tmp_path / "other", "--staging", tmp_path / "other-staging")
    run = opendata("release", by_group, mi, *other, "--release-time", WHEN, *LATE, "-q")
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "must-publish" in run.stderr and "primary cell" in run.stderr and "no room left" in run.stderr


@pytest.mark.parametrize(("value", "rule"), [("9999-12-31", "maximum"), ("0000-01-01", "type")])
def test_dates_that_would_break_the_machine_are_refused_quickly_and_small(tmp_path, value, rule):
    """A referral dated 9999-12-31 made `release` pass 8 GB in 42 s; year 0 was a traceback. Through
    the CLI: a clear error naming row, column, value and rule, in under 5 s of CPU and 500 MB."""
    run = opendata("sample", "--out", tmp_path / "mi", "--rows", 2000, "--seed", 2, "--months", 3, "--format", "csv")
    assert run.returncode == 0, run.stderr
    mi = tmp_path / "mi" / "work-programme-mi.csv"
    frame = pd.read_csv(mi, dtype=str, keep_default_na=False)
    frame.loc[5, "referral_date"] = value
    for field in ("attachment_date", "action_plan_date", "job_start_date", "job_outcome_date"):
        frame.loc[5, field] = ""
    frame.loc[5, "sustainment_payments"] = "0"
    frame.to_csv(mi, index=False)
    # measured by a small wrapper process: a child forked straight from this (large) test worker
    # counts the worker's own pages in its peak RSS, and RUSAGE_CHILDREN here holds every child so far
    wrapper = (
        "import resource, subprocess, sys; code = subprocess.run(sys.argv[2:]).returncode; "
        "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
        "open(sys.argv[1], 'w').write(f'{u.ru_utime + u.ru_stime} {u.ru_maxrss}'); sys.exit(code)"
    )
    command = [sys.executable, "-m", "opendata.cli", "release", SPEC, mi, "--out", tmp_path / "releases"]
    command += ["--release-time", WHEN, *LATE, "--json"]
    usage = tmp_path / "usage"
    run = subprocess.run(
        [sys.executable, "-c", wrapper, str(usage), *map(str, command)], capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 1 and "Traceback" not in run.stderr
    problem = json.loads(run.stdout)["problems"][0]
    assert (problem["row"], problem["column"], problem["value"], problem["rule"]) == (6, "referral_date", value, rule)
    cpu, peak = (float(x) for x in usage.read_text().split())
    assert cpu < 5, cpu
    assert peak < 500 * 1024, peak  # kilobytes on Linux
    assert not (tmp_path / "releases").exists() and not (tmp_path / "staging").exists()


@pytest.fixture(scope="module")
def small_release(tmp_path_factory) -> tuple[Path, Path]:
    """A 1,500-row, 3-month release: small enough that national figures sit beside small cells."""
    from test_attack_classes import one_release

    return one_release(tmp_path_factory.mktemp("small"), SPEC, rows=1500, months=3, seed=3)


@pytest.mark.parametrize(
    ("table", "measure", "date"),
    [
        ("provider-by-month", "referrals", "referral_date"),
        ("provider-by-month", "attachments", "attachment_date"),
        ("provider-by-month", "job_starts", "job_start_date"),
        ("provider-by-month", "job_outcomes", "job_outcome_date"),
        ("cpa-payment-group-by-month", "referrals", "referral_date"),
        ("cpa-payment-group-by-month", "attachments", "attachment_date"),
        ("cpa-payment-group-by-month", "job_starts", "job_start_date"),
    ],
)
def test_headline_figures_are_hidden_only_beside_a_small_headline(small_release, table, measure, date):
    """Issue 9: a national figure (the grand total, national by month, by payment group and by
    both) of 10 or more is hidden as a secondary only beside a national figure below the threshold
    in one of its equations (a national month beside another), which only a national figure can
    partner. Before the repair's escalation walked through headline cells, this release hid national
    attachments figures of 10 or more with no small headline beside them. CPA months are headline
    figures too (``Grid.headline``; the cubes' side is tested in test_disclosure_hypercube.py), but
    in this sparse release some are the only cells with room left beside a prime contract whose
    every detail cell is hidden already; on the demo release cut without the intruders none is
    hidden without a small CPA figure beside it (README, issue 9)."""
    mi, version = small_release
    frame, parents = published(version, table)
    dims = list(parents)
    area = "provider" if "provider" in dims else "cpa"
    headline = (frame[area] == "Total").to_numpy()
    primary = true_primaries(mi, frame, parents, date)
    secondary = headline & frame[measure].isna().to_numpy() & ~primary
    assert headline.sum() > 0
    small = frame.loc[headline & primary, dims].to_numpy()
    for cell in frame.loc[secondary, dims].to_numpy():
        beside = (small != cell).sum(axis=1) == 1  # differs in one dimension: one equation holds both
        assert beside.any(), (
            f"{measure}: national {dict(zip(dims, cell, strict=True))} hidden with no small national figure beside it"
        )
