"""Four attack classes against whole release trees, by an attacker written apart from the pipeline.

Each scenario is rebuilt from ``opendata sample`` through the real CLI; the attacker
(``independent_attacker``) reads only the published files (and, for insiders, the true values of the
cells the insider knows, recomputed from the MI) and must not narrow any primary cell (true frequency
1..9) below width 10. ``test_attacker_finds_*`` prove the attacker is not vacuous.
``test_generated_series_survive_the_independent_attacker`` draws new series (seed, size, a
correction, provisional months published ahead, a month added) on every run, through the library
the CLI calls, and attacks both versions (the relations between measures modelled, except over an
MI-ahead pair, whose nine months of running totals make the attack take many minutes).

Insiders (units that know all their own cells): the shipped spec protects against each of them
(``disclosure.intruders``), and their scenario releases with it; the other scenarios release with
the same spec less the intruders (``shipped_specs.OUTSIDERS``), as the classes they attack do not
need them. The engine-level tests are in ``tests/test_disclosure_intruders.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from independent_attacker import (
    build_model,
    insider_vars,
    load_version,
    load_versions,
    narrow,
    primary_vars,
    read_mi,
    revised_keys,
    true_tables,
)
from shipped_specs import OUTSIDERS, SHIPPED

from opendata.embargo import default_staging, publish
from opendata.errors import ReleaseError
from opendata.release import cut_release
from opendata.sample import write_sample

ROOT = Path(__file__).resolve().parent.parent
SPEC = OUTSIDERS
CALENDAR = ROOT / "specs" / "calendar.yaml"
NAME = "work-programme-subcontractor-mi"
WIDTH = 10
LATE = ("--late", "--reason", "tests release after the release time")
# per attack: a deterministic spread of the relevant primaries (runtime); OPENDATA_MAX_TARGETS=100000 attacks all
MAX_TARGETS = int(os.environ.get("OPENDATA_MAX_TARGETS", "400"))
SERIES_TARGETS = int(os.environ.get("OPENDATA_MAX_TARGETS", "150"))  # per generated series


def opendata(*args) -> subprocess.CompletedProcess:
    run = subprocess.run(
        [sys.executable, "-m", "opendata.cli", *map(str, args)], capture_output=True, text=True, timeout=3600
    )
    assert run.returncode == 0, run.stderr + run.stdout
    return run


def one_release(work: Path, spec: Path, rows: int, months: int, seed: int) -> tuple[Path, Path]:
    """A sample MI, released with ``spec`` and published: (the MI, the published 1.0.0)."""
    opendata(
        "sample", "--out", work / "mi", "--rows", rows, "--months", months, "--seed", seed, "--format", "csv", "-q"
    )
    mi = work / "mi" / "work-programme-mi.csv"
    opendata(
        "release", spec, mi, "--out", work / "releases", "--release-time", "2026-11-12T09:30:00+00:00", *LATE, "-q"
    )
    opendata("publish", "--out", work / "releases", "-q")
    return mi, work / "releases" / NAME / "1.0.0"


def spread(targets: np.ndarray, limit: int = MAX_TARGETS) -> np.ndarray:
    """At most ``limit`` targets, evenly spread (deterministic)."""
    targets = np.asarray(sorted(set(int(t) for t in targets)))
    if len(targets) <= limit:
        return targets
    return targets[np.linspace(0, len(targets) - 1, limit).round().astype(int)]


def failures(model, intervals, truth) -> list[str]:
    bad = narrow(intervals, WIDTH)
    return [
        f"{model.describe(r.var)}: true {truth[r.var]:g}, interval [{r.lower}, {r.upper}]" for r in bad.itertuples()
    ]


def attack(
    tables,
    mi_by_version,
    targets_filter=None,
    relations=False,
    revised=None,
    known=None,
    unseen=False,
    limit=MAX_TARGETS,
):
    """``unseen``: a correction may change a hidden cell, or a published one within its rounding
    interval, where no published value shows it; the attacker links those as one quantity, so the
    truths of two versions may disagree there (and are then no feasible seed)."""
    model = build_model(tables, relations=relations, revised=revised)
    truths = {}
    for version, records in mi_by_version.items():
        truths |= true_tables(records, [t for t in tables if t.version == version])
    truth, clashes = model.truth_vector(truths)
    if not unseen:
        assert not clashes, f"attacker model links different quantities: {clashes[:5]}"
        assert not model.violations(truth), model.violations(truth)[:5]
    targets = primary_vars(model, truths)
    assert len(targets) > 0
    if targets_filter is not None:
        targets = np.array([j for j in targets if targets_filter(model.keys[j])], dtype=np.int64)
    return model, truth, spread(targets, limit)


# ----------------------------------------------------------------------------------------------------
# the attacker is not vacuous


def write_package(path: Path, version: str, frame: pd.DataFrame, hierarchies: dict[str, dict[str, str]]) -> Path:
    """A one-table published package in the release layout."""
    (path / "data").mkdir(parents=True)
    (path / "hierarchies").mkdir()
    dims = list(hierarchies)
    frame.to_parquet(path / "data" / "provider-by-month.parquet", index=False)
    for dim, parents in hierarchies.items():
        pd.DataFrame(
            {"code": list(parents), "label": list(parents), "parent": list(parents.values()), "level": ""}
        ).to_csv(path / "hierarchies" / f"{dim}.csv", index=False)
    resource = {"name": "provider-by-month", "path": "data/provider-by-month.parquet", "schema": {"primaryKey": dims}}
    (path / "datapackage.json").write_text(json.dumps({"version": version, "resources": [resource]}))
    return path


HIER = {
    "month": {"Total": "", "2011-06": "Total", "2011-07": "Total"},
    "provider": {"Total": "", "CPA01": "Total", "P1": "CPA01", "S1": "P1", "S2": "P1"},
}


def tiny(values: dict[tuple[str, str], float | None], measures=("referrals",)) -> pd.DataFrame:
    rows = []
    for (month, provider), v in values.items():
        row = {"month": month, "provider": provider}
        for m in measures:
            row[m] = v if not isinstance(v, dict) else v[m]
            row[f"{m}_status"] = "c" if row[m] is None else None
        rows.append(row)
    return pd.DataFrame(rows)


def full_grid(fill):
    return {(m, p): fill(m, p) for m in HIER["month"] for p in HIER["provider"]}


def test_attacker_finds_a_cell_pinned_by_rounded_totals(tmp_path):
    """S1 in June (true 3) hidden with S2 in June (true 40), everything else published: the rounded
    prime total (45 ± 2) and S2's July and total rows pin both hidden cells to a few values."""
    truth = {"2011-06": {"S1": 3, "S2": 40}, "2011-07": {"S1": 20, "S2": 30}}

    def value(m, p):
        months = ["2011-06", "2011-07"] if m == "Total" else [m]
        subs = ["S1", "S2"] if p in ("Total", "CPA01", "P1") else [p]
        v = sum(truth[mm][s] for mm in months for s in subs)
        return None if (m, p) == ("2011-06", "S1") else 5 * round(v / 5)

    values = full_grid(value)
    values[("2011-06", "S2")] = None
    tables = load_version(write_package(tmp_path / "v", "1.0.0", tiny(values), HIER))
    model = build_model(tables, relations=False)
    j = model.index[("referrals", "S1", "ALL", "2011-06", "")]
    [row] = model.intervals([j], full=True).itertuples()
    assert row.width < WIDTH and row.lower <= 3 <= row.upper


def test_attacker_uses_relations_between_measures(tmp_path):
    """Attachments of S1 in June (true 3) hidden with a large partner is safe by additivity alone,
    but cumulative attachments never exceed cumulative referrals (published 5: at most 7)."""
    att = {"2011-06": {"S1": 3, "S2": 40}, "2011-07": {"S1": 20, "S2": 30}}
    ref = {"2011-06": {"S1": 5, "S2": 60}, "2011-07": {"S1": 30, "S2": 40}}

    def value(table, m, p, hide):
        months = ["2011-06", "2011-07"] if m == "Total" else [m]
        subs = ["S1", "S2"] if p in ("Total", "CPA01", "P1") else [p]
        v = sum(table[mm][s] for mm in months for s in subs)
        return None if (m, p) in hide else 5 * round(v / 5)

    hide = {("2011-06", "S1"), ("2011-06", "S2"), ("2011-07", "S1"), ("2011-07", "S2")}
    values = {
        k: {"attachments": value(att, *k, hide), "referrals": value(ref, *k, set())} for k in full_grid(lambda m, p: 0)
    }
    tables = load_version(write_package(tmp_path / "v", "1.0.0", tiny(values, ("referrals", "attachments")), HIER))
    j = build_model(tables, relations=False).index[("attachments", "S1", "ALL", "2011-06", "")]
    assert build_model(tables, relations=False).intervals([j], full=True)["width"].iloc[0] >= WIDTH
    model = build_model(tables, relations=True)
    [row] = model.intervals([j], full=True).itertuples()
    assert row.width < WIDTH and row.upper <= 7


def test_attacker_links_versions_and_insiders(tmp_path):
    """S1 and S2 hidden in both months (safe for outsiders); S2, knowing its own row, subtracts it
    from the rounded prime total and narrows S1 (true 4) to 3..7."""
    truth = {"2011-06": {"S1": 4, "S2": 40}, "2011-07": {"S1": 25, "S2": 30}}

    def value(m, p, hide):
        months = ["2011-06", "2011-07"] if m == "Total" else [m]
        subs = ["S1", "S2"] if p in ("Total", "CPA01", "P1") else [p]
        v = sum(truth[mm][s] for mm in months for s in subs)
        return None if (m, p) in hide else 5 * round(v / 5)

    hide = {("2011-06", "S1"), ("2011-06", "S2"), ("2011-07", "S1"), ("2011-07", "S2")}
    tables = load_version(write_package(tmp_path / "v", "1.0.0", tiny(full_grid(lambda m, p: value(m, p, hide))), HIER))
    model = build_model(tables, relations=False)
    j = model.index[("referrals", "S1", "ALL", "2011-06", "")]
    assert model.intervals([j], full=True)["width"].iloc[0] >= WIDTH
    known = {
        k: float(truth[model.keys[k][3]]["S2"]) if model.keys[k][3] in truth else 70.0
        for k in insider_vars(model, "subcontractor", "S2")
    }
    [row] = model.intervals([j], known=known, full=True).itertuples()
    assert row.width < WIDTH and row.lower <= 4 <= row.upper  # prime total (45 ± 2) minus S2's 40


# ----------------------------------------------------------------------------------------------------
# scenarios


@pytest.fixture(scope="module")
def mi_ahead_tree(tmp_path_factory) -> tuple[Path, Path]:
    """1.0.0 on 2026-07-09 with April-June 2026 as -mi-ahead tables; 2.0.0 on 2026-10-08 with them ordinary."""
    work = tmp_path_factory.mktemp("mi-ahead")
    opendata(
        "sample",
        "--out",
        work / "mi",
        "--start",
        "2025-10",
        "--months",
        9,
        "--rows",
        3000,
        "--seed",
        1,
        "--format",
        "csv",
        "-q",
    )
    mi = work / "mi" / "work-programme-mi.csv"
    out = work / "releases"
    for when, extra in (("2026-07-09T08:30:00+00:00", ["--mi-ahead"]), ("2026-10-08T08:30:00+00:00", [])):
        opendata("release", SPEC, mi, "--out", out, "--calendar", CALENDAR, "--release-time", when, *extra, *LATE, "-q")
        opendata("publish", "--out", out, "-q")
    return mi, out / NAME


@pytest.mark.slow
@pytest.mark.xdist_group("mi-ahead")  # one worker builds the fixture once
def test_mi_ahead_tables_linked_with_the_next_version(mi_ahead_tree):
    mi, tree = mi_ahead_tree
    versions = sorted(p for p in tree.iterdir() if p.is_dir())
    assert len(versions) == 2
    tables = load_versions(versions)
    assert any(t.name.endswith("-mi-ahead") for t in tables)
    provisional = {"2026-04", "2026-05", "2026-06"}
    records = read_mi([mi])
    model, truth, targets = attack(
        tables,
        {t.version: records for t in tables},
        targets_filter=lambda k: k[3] in provisional or k[3].startswith("Σ"),
    )
    intervals = model.intervals(targets, seed=truth)
    assert not failures(model, intervals, truth), failures(model, intervals, truth)[:20]


@pytest.mark.slow
@pytest.mark.xdist_group("mi-ahead")  # one worker builds the fixture once
def test_cli_audit_passes_the_mi_ahead_pair(mi_ahead_tree):
    """The publisher's audit of the newer version with the older, through the CLI, passes: the
    releases protected themselves against each other, and the audit models the same attacker."""
    mi, tree = mi_ahead_tree
    old, new = sorted(p for p in tree.iterdir() if p.is_dir())
    for version in (old, new):  # the joint check ran (over 2.0.0's own cells where no pattern fits 1.0.0's)
        tables = json.loads((version / "datapackage.json").read_text())["opendata:disclosure"]["tables"]
        joint = [a["audit"].get("relations_jointly") for t in tables.values() for a in t.values()]
        assert any(joint) and all(j["checked"] and j["safe"] for j in joint if j), (version.name, joint)
    run = opendata("audit", new, "--previous", old, "--spec", SPEC, "--mi", mi)
    assert "audit passed" in run.stdout
    assert int(run.stdout.split("checked ")[1].split()[0].replace(",", "")) > 0


@pytest.fixture(scope="module")
def single_release(tmp_path_factory) -> tuple[Path, Path]:
    return one_release(tmp_path_factory.mktemp("single"), SPEC, rows=1500, months=3, seed=3)


@pytest.mark.slow
def test_relations_between_measures(single_release):
    """Scenario 2: the attacker combines every measure's published cells with the relations the spec's
    rules imply; the release's joint check (``disclosure.joint``) hid what it needed, and says so."""
    mi, version = single_release
    descriptor = json.loads((version / "datapackage.json").read_text())["opendata:disclosure"]
    joint = {m: a["audit"].get("relations_jointly") for t in descriptor["tables"].values() for m, a in t.items()}
    assert joint["referrals"]["checked"] and joint["attachments"]["checked"], joint
    assert sum(j["secondary_added"] for j in joint.values() if j) > 0
    tables = load_version(version)
    model, truth, targets = attack(tables, {"1.0.0": read_mi([mi])}, relations=True)
    intervals = model.intervals(targets, seed=truth)
    assert not failures(model, intervals, truth), failures(model, intervals, truth)[:20]


@pytest.fixture(scope="module")
def corrected_tree(tmp_path_factory) -> tuple[Path, Path, Path]:
    """1.0.0, then a PATCH from MI where 5 referrals of one subcontractor in the first month are deleted."""
    work = tmp_path_factory.mktemp("correction")
    opendata("sample", "--out", work / "mi", "--rows", 2000, "--months", 4, "--seed", 3, "--format", "csv", "-q")
    mi = work / "mi" / "work-programme-mi.csv"
    out = work / "releases"
    opendata("release", SPEC, mi, "--out", out, "--release-time", "2026-11-12T09:30:00+00:00", *LATE, "-q")
    opendata("publish", "--out", out, "-q")
    records = pd.read_csv(mi, dtype=str, keep_default_na=False)
    first = records["referral_date"].str[:7].min()
    early = records[records["referral_date"].str[:7] == first]
    counts = early.groupby("subcontractor").size().sort_index()
    pick = counts[(counts >= 10) & (counts < 20)]
    sub = pick.index[0] if len(pick) else counts.idxmax()
    drop = early[early["subcontractor"] == sub].index[:5]
    fixed = work / "fixed" / "work-programme-mi.csv"
    fixed.parent.mkdir()
    records.drop(index=drop).to_csv(fixed, index=False)
    run = opendata("release", SPEC, fixed, "--out", out, "--release-time", "2026-11-26T09:30:00+00:00", *LATE, "--json")
    assert json.loads(run.stdout)["bump"] == "patch"
    opendata("publish", "--out", out, "-q")
    return mi, fixed, out / NAME


@pytest.mark.slow
def test_corrections_linked_with_the_earlier_version(corrected_tree):
    mi, fixed, tree = corrected_tree
    versions = sorted(p for p in tree.iterdir() if p.is_dir())
    assert [v.name for v in versions] == ["1.0.0", "1.0.1"]
    descriptor = json.loads((versions[1] / "datapackage.json").read_text())["opendata:disclosure"]
    joint = [a["audit"].get("relations_jointly") for t in descriptor["tables"].values() for a in t.values()]
    assert all(j["checked"] and j["safe"] for j in joint if j), joint  # the joint repair found a pattern
    tables = load_versions(versions)
    revised = revised_keys(tables)
    assert revised, "the correction changed no published value"
    model, truth, targets = attack(
        tables, {"1.0.0": read_mi([mi]), "1.0.1": read_mi([fixed])}, revised=revised, unseen=True
    )
    intervals = model.intervals(targets)
    assert not failures(model, intervals, truth), failures(model, intervals, truth)[:20]


@pytest.mark.slow
def test_cli_audit_passes_the_corrected_series(corrected_tree):
    """The publisher's audit of the PATCH with its predecessor and the corrected MI passes, the joint
    attacker included. The correction lowered a published 11 to a hidden 6: taking the two versions'
    cells for one quantity, the attacker's interval for it leaves out the truth (misled, said), where
    the audit used to report it exposed."""
    _, fixed, tree = corrected_tree
    old, new = sorted(p for p in tree.iterdir() if p.is_dir())
    run = opendata("audit", new, "--previous", old, "--spec", SPEC, "--mi", fixed, "--json")
    result = json.loads(run.stdout)
    assert result["ok"] and result["misled"] > 0, result
    assert "joint attacker" in result["jointly"] and result["jointly"].endswith(" 0 narrowed")


@pytest.fixture(scope="module")
def insider_release(tmp_path_factory) -> tuple[Path, Path]:
    """One release of a small sample with insider protection on."""
    work = tmp_path_factory.mktemp("insiders")
    return one_release(work, SHIPPED, rows=4000, months=2, seed=4)


@pytest.mark.slow
def test_insiders_cannot_narrow_other_units_cells(insider_release):
    """Scenario 4: each subcontractor, prime and CPA knows all its own cells (true values, from the
    MI). Against a deterministic spread of 15 of them, no primary cell the insider does not know is
    narrowed below the width, in every measure the descriptor says is protected against them; and
    the descriptor names the intruders the pattern is safe against. (On this sample no pattern
    protects attachments against every prime with the relations between measures modelled; the
    release keeps the relations, gives up the intruders for that measure and says so: the attack
    checks that claim, not more.)"""
    mi, version = insider_release
    descriptor = json.loads((version / "datapackage.json").read_text())["opendata:disclosure"]
    audits = [(m, e["audit"]) for t in descriptor["tables"].values() for m, e in t.items()]
    named = [a["intruders"]["intruders"] for _, a in audits if a["intruders"]]
    given_up = {m for m, a in audits if "intruders_not_modelled" in a}
    assert given_up < {m for m, _ in audits}
    tables = load_version(version)
    model, truth, targets = attack(tables, {"1.0.0": read_mi([mi])})
    provider = next(t for t in tables if t.name == "provider-by-month").frame["provider"].astype(str)
    units = {
        "subcontractor": sorted(c for c in provider.unique() if c.startswith("S")),
        "prime": sorted(c for c in provider.unique() if c.startswith("P")),
        "cpa": sorted(c for c in provider.unique() if c.startswith("CPA")),
    }
    insiders = [
        (kind, codes[i]) for kind, codes in units.items() for i in np.linspace(0, len(codes) - 1, 5).astype(int)
    ]
    bad = []
    for kind, code in insiders:
        mine = insider_vars(model, kind, code)
        known = {k: float(truth[k]) for k in mine}
        theirs = np.array([t for t in targets if t not in mine], dtype=np.int64)
        intervals = model.intervals(theirs, known=known, seed=truth)
        bad += [
            f"{kind} {code}: {model.describe(v)}, true {truth[v]:g}"
            for v in narrow(intervals, WIDTH)["var"]
            if model.keys[v][0] not in given_up
        ]
    assert not bad, bad[:20]
    assert descriptor["rules"]["intruders"] == ["subcontractor", "prime_contract", "cpa"]
    readme = (version / "README.md").read_text()
    assert "each subcontractor, prime contract and cpa that knows all its own cells" in readme
    assert "not against an organisation" not in readme
    assert named and all(f"cpa={units['cpa'][0]}" in n for n in named)
    assert all(f"subcontractor={units['subcontractor'][0]}" in n for n in named[:5])  # provider-by-month


@pytest.mark.slow
def test_the_publishers_audit_checks_the_intruders_the_package_names(insider_release, single_release):
    """``opendata audit --spec --mi`` checks each unit the package says it is safe against (here every
    subcontractor, prime and CPA) and passes; asked about the same units, it fails a package released
    without them in its spec, naming the cell and the unit that narrows it."""
    mi, version = insider_release
    result = json.loads(opendata("audit", version, "--spec", SHIPPED, "--mi", mi, "--json").stdout)
    assert result["ok"], result["exposed"][:5]
    assert result["intruders"].startswith("each unit at subcontractor, prime_contract, cpa knowing its own cells")
    # the relations the release modelled are the audit's too (attachments gave up the intruders)
    assert ", with the relations between measures for job_outcomes, job_starts, referrals," in result["intruders"]
    assert result["intruders"].endswith(" 0 narrowed"), result["intruders"]
    assert "; not claimed for attachments, so not checked)" in result["intruders"]  # as its descriptor says
    mi, version = single_release
    levels = "subcontractor,prime_contract,cpa"
    run = subprocess.run(
        [sys.executable, "-m", "opendata.cli", "audit", version, "--spec", SPEC, "--mi", mi, "--intruders", levels],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "can be narrowed by intruder " in run.stdout and "Traceback" not in run.stderr, run.stdout


@pytest.mark.slow
def test_a_measure_not_protectable_against_the_intruders_keeps_its_relations(single_release, tmp_path):
    """On this sample (1,500 rows over 3 months) no pattern protects attachments against every prime
    with the relations between measures modelled. The release gives up the intruders for that
    measure, not the relations every outsider can use, and says so in the descriptor and README."""
    mi, _ = single_release
    out = tmp_path / "releases"
    opendata("release", SHIPPED, mi, "--out", out, "--release-time", "2026-11-12T09:30:00+00:00", *LATE)
    version = tmp_path / "staging" / NAME / "1.0.0"
    audits = {
        m: e["audit"]
        for t in json.loads((version / "datapackage.json").read_text())["opendata:disclosure"]["tables"].values()
        for m, e in t.items()
    }
    given_up = sorted(m for m, a in audits.items() if "intruders_not_modelled" in a)
    assert given_up, "every measure was protected against the intruders: pick a sample where one is not"
    assert not any("relations_not_modelled" in a for a in audits.values())
    assert all(audits[m]["relations"] and audits[m]["intruders"] is None for m in given_up)
    readme = (version / "README.md").read_text()
    assert f"that knows all its own cells, except for {', '.join(given_up)} (no pattern protects" in readme


def test_the_audit_refuses_intruder_levels_the_spec_does_not_have(tmp_path):
    for levels, message in (("region", "['region'] are not levels of any dimension"),
                            (" , ", "--intruders names no level")):  # fmt: skip
        run = subprocess.run(
            [sys.executable, "-m", "opendata.cli", "audit", tmp_path, "--spec", SPEC, "--mi", tmp_path / "x.csv",
             "--intruders", levels],
            capture_output=True,
            text=True,
        )  # fmt: skip
        assert run.returncode == 2 and message in run.stderr, run.stderr


# ----------------------------------------------------------------------------------------------------
# generated series: classes 1 to 3 on MI that hypothesis draws


def cut(spec: Path, mi: Path, out: Path, when: str, **options) -> None:
    """One release, cut and published in-process (the library the CLI calls)."""
    at = datetime.fromisoformat(when)
    now = at + timedelta(minutes=1)
    cut_release(
        spec, [mi], out, release_time=at, now=now, late=True, reason="tests release after their time", **options
    )
    publish(default_staging(out), out, now)


def before(records: pd.DataFrame, month: str) -> pd.DataFrame:
    """The MI as extracted before ``month``: later referrals absent, later events not yet happened."""
    kept = records[records["referral_date"].str[:7] < month].copy()
    for column in [c for c in kept if c.endswith("_date")]:
        later = kept[column].str[:7] >= month
        kept.loc[later, column] = ""
        if column == "job_outcome_date":
            kept.loc[later, "sustainment_payments"] = "0"
    return kept


@pytest.mark.slow
@settings(
    max_examples=2,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # a failure prints its draw; no shrinking
)
@given(
    seed=st.integers(0, 10_000),
    rows=st.integers(300, 900),
    kind=st.sampled_from(["correction", "mi-ahead", "next-month"]),
    deleted=st.integers(1, 6),
)
def test_generated_series_survive_the_independent_attacker(seed: int, rows: int, kind: str, deleted: int) -> None:
    """Two versions of a generated sample, related as a real series can be (a correction deleting a
    few records of one subcontractor in one month; provisional months published ahead, then
    ordinary; a month added), released by the shipped spec: the attacker of both versions, with the
    revised quantities and (but for the MI-ahead pair) the relations between measures modelled,
    narrows no primary cell; an MI-ahead pair's targets are its provisional months and the totals."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        start, months = ("2025-10", 9) if kind == "mi-ahead" else ("2011-06", 3)
        [mi] = write_sample(work / "mi", rows=rows, seed=seed, start=start, months=months, formats=["csv"])
        out = work / "releases"
        records = pd.read_csv(mi, dtype=str, keep_default_na=False)
        second = work / "second" / mi.name
        second.parent.mkdir()
        if kind == "mi-ahead":
            cut(SPEC, mi, out, "2026-07-09T08:30:00+00:00", calendar=CALENDAR, mi_ahead=True)
            records.to_csv(second, index=False)
            cut(SPEC, second, out, "2026-10-08T08:30:00+00:00", calendar=CALENDAR)
        else:
            month = records["referral_date"].str[:7]
            first = before(records, month.max()) if kind == "next-month" else records
            if kind == "correction":
                early = records[month == month.min()]
                busiest = early["subcontractor"].value_counts().index
                mine = early[early["subcontractor"] == busiest[seed % min(5, len(busiest))]]
                records = records.drop(index=mine.index[:deleted])
            first.to_csv(mi, index=False)
            cut(SPEC, mi, out, "2026-11-12T09:30:00+00:00")
            records.to_csv(second, index=False)
            try:
                cut(SPEC, second, out, "2026-11-26T09:30:00+00:00")
            except ReleaseError as e:  # a correction that no published figure shows needs no version
                assume("nothing changed" not in str(e))
                raise
        versions = sorted(p for p in (out / NAME).iterdir() if p.is_dir())
        assert len(versions) == 2
        tables = load_versions(versions)
        truths = {versions[0].name: read_mi([mi]), versions[1].name: read_mi([second])}
        revised = revised_keys(tables) if kind == "correction" else None
        ahead = {m for t in tables if t.name.endswith("-mi-ahead") for m in t.frame["month_provisional"].astype(str)}
        model, truth, targets = attack(
            tables,
            truths,
            targets_filter=(lambda k: k[3] in ahead or k[3].startswith("Σ")) if kind == "mi-ahead" else None,
            relations=kind != "mi-ahead",  # class 1 alone there: 9 months of running totals take many minutes
            revised=revised,
            unseen=kind == "correction",
            limit=SERIES_TARGETS,
        )
        intervals = model.intervals(targets, seed=None if kind == "correction" else truth)
        assert not failures(model, intervals, truth), failures(model, intervals, truth)[:20]
