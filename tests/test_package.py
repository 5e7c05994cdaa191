"""Package writer: valid under real frictionless, readable everywhere, deterministic, atomic, immutable."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import frictionless
import pandas as pd
import pyarrow.parquet as pq
import pytest
from tiny_spec import write_tiny_spec

from opendata.aggregate import hierarchy_codes, period_dimension
from opendata.descriptor import PackageInfo, package_id
from opendata.errors import ReleaseError, ReleaseExists
from opendata.package import write_package
from opendata.protection import ProtectedTable
from opendata.spec import ReleaseSpec

CREATED = datetime(2024, 3, 14, 9, 30, tzinfo=UTC)
EXTRA = {"opendata:release": {"time": datetime(2024, 3, 14, 9, 30, 0, 12, tzinfo=UTC), "cutoff": date(2024, 2, 29)}}


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> ReleaseSpec:
    return write_tiny_spec(tmp_path_factory.mktemp("spec"))


def _protect(frame: pd.DataFrame, measure: str, hidden: set[int]) -> None:
    """Mark rows as suppressed the way the protection stage does: <NA> plus status "c"."""
    mask = frame.index.isin(sorted(hidden))
    frame[measure] = frame[measure].astype("Int64").mask(mask)
    frame[measure + "_status"] = pd.Series(mask, index=frame.index).map({True: "c", False: ""})


def _sdc(cells: int, primary: int, secondary: int) -> dict:
    audit = {"ok": True, "checked": primary + secondary, "method": "interval"}
    return {"cells": cells, "primary": primary, "secondary": secondary, "rounded": cells, "audit": audit}


def make_tables(spec: ReleaseSpec) -> list[ProtectedTable]:
    """Two hand-built protected tables on the full grid, with a few suppressed cells."""
    month = period_dimension(["2024-01", "2024-02"], spec.dimensions["month"])
    provider = hierarchy_codes(spec.dimensions["provider"])
    t1, t2 = spec.tables
    grid = pd.MultiIndex.from_product([month.codes, provider.codes], names=["month", "provider"])
    frame = grid.to_frame(index=False)
    frame["referrals"] = [5 * (i + 2) for i in range(len(frame))]
    frame["job_starts"] = [5 * (i % 4) for i in range(len(frame))]
    _protect(frame, "referrals", {7, 8})
    _protect(frame, "job_starts", {2, 3, 12})
    frame["referrals_freq"] = 3  # confidential working column: must never be published
    first = ProtectedTable(
        spec=t1,
        dimensions=(month, provider),
        measures=(spec.measures["referrals"], spec.measures["job_starts"]),
        frame=frame,
        sdc={"referrals": _sdc(len(frame), 1, 1), "job_starts": _sdc(len(frame), 2, 1)},
    )
    frame2 = pd.DataFrame({"provider": list(provider.codes), "referrals": [100, 50, 25, 25, 50, 50]})
    _protect(frame2, "referrals", set())
    second = ProtectedTable(
        spec=t2,
        dimensions=(provider,),
        measures=(spec.measures["referrals"],),
        frame=frame2,
        sdc={"referrals": _sdc(len(frame2), 0, 0)},
    )
    return [first, second]


@pytest.fixture(scope="module")
def release(spec: ReleaseSpec, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("releases")
    return write_package(spec, make_tables(spec), out, "1.0.0", CREATED, extra=EXTRA)


def _descriptor(release: Path) -> dict:
    return json.loads((release / "datapackage.json").read_text(encoding="utf-8"))


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_descriptor(release: Path) -> None:
    assert release.parts[-2:] == ("tiny-mi", "1.0.0")
    assert sorted(_tree(release)) == [
        "README.md",
        "data/provider-by-month.csv",
        "data/provider-by-month.parquet",
        "data/provider-totals.csv",
        "data/provider-totals.parquet",
        "datapackage.json",
        "hierarchies/month.csv",
        "hierarchies/provider.csv",
        "index.html",
        "tiny-mi-1.0.0.ods",
        "tiny-mi-1.0.0.xlsx",
    ]
    d = _descriptor(release)
    assert d["$schema"] == "https://datapackage.org/profiles/2.0/datapackage.json"
    assert (d["name"], d["version"], d["created"]) == ("tiny-mi", "1.0.0", "2024-03-14T09:30:00Z")
    assert d["id"] == package_id("tiny-mi", "1.0.0") != package_id("tiny-mi", "1.0.1")
    assert d["licenses"][0]["name"] == "OGL-UK-3.0"
    assert d["contributors"] == [{"title": "Department for Work and Pensions", "roles": ["publisher"]}]
    assert d["opendata:kind"] == "management information"
    assert d["opendata:release"] == {"time": "2024-03-14T09:30:00Z", "cutoff": "2024-02-29"}
    assert list(d)[-1] == "opendata:release"
    disclosure = d["opendata:disclosure"]
    assert disclosure["rules"] == {
        "threshold": 10,
        "zeros": "safe",
        "protection": 10,
        "rounding": {"base": 5, "method": "conventional"},
        "secondary": "auto",
        "singletons": "protect",
        "intruders": [],
        "relations": [],
    }
    assert disclosure["tables"]["provider-by-month"]["job_starts"]["suppressed"] == 3
    assert disclosure["total"] == {
        "cells": 42,
        "primary": 3,
        "secondary": 2,
        "suppressed": 5,
        "rounded": 42,
        "audit_ok": True,
    }
    table = next(r for r in d["resources"] if r["name"] == "provider-by-month")
    schema = table["schema"]
    assert [f["name"] for f in schema["fields"]] == ["month", "provider", "referrals", "job_starts"]
    assert schema["primaryKey"] == ["month", "provider"]
    assert schema["missingValues"][0] == {"value": "[c]", "label": "confidential"}
    assert schema["fields"][1]["categories"][2] == {"value": "A1", "label": "Prime, one"}
    assert schema["fields"][2]["constraints"] == {"minimum": 0}
    assert table["dialect"]["lineTerminator"] == "\n"


def test_frictionless_validates(release: Path) -> None:
    report = frictionless.validate(release / "datapackage.json")
    assert report.valid, report.flatten(["resourceName", "rowNumber", "fieldName", "type", "note"])
    assert len(report.tasks) == 9  # 2 tables x (CSV, Parquet), 2 hierarchies, ODS, XLSX, release page


def test_frictionless_catches_a_tampered_file(spec: ReleaseSpec, tmp_path: Path) -> None:
    path = write_package(spec, make_tables(spec), tmp_path, "1.0.0", CREATED)
    csv_file = path / "data" / "provider-totals.csv"
    csv_file.write_text(csv_file.read_text(encoding="utf-8").replace("A1,", "Z9,"), encoding="utf-8")
    report = frictionless.validate(path / "datapackage.json")
    assert not report.valid
    assert PackageInfo.read(path).verify() == [
        f"data/provider-totals.csv: hash sha256:{hashlib.sha256(csv_file.read_bytes()).hexdigest()}, "
        f"descriptor says {PackageInfo.read(path).files[1].hash}"
    ]


def test_hashes_and_bytes_match(release: Path) -> None:
    d = _descriptor(release)
    assert len(d["resources"]) == 9
    for r in d["resources"]:
        data = (release / r["path"]).read_bytes()
        assert r["bytes"] == len(data)
        assert r["hash"] == "sha256:" + hashlib.sha256(data).hexdigest()
        assert {"name", "title", "format", "mediatype"} <= set(r)
        assert ("encoding" in r) == (r["format"] == "csv")
    info = PackageInfo.read(release)
    assert (info.name, info.version, info.id) == ("tiny-mi", "1.0.0", d["id"])
    assert info.verify() == []


def test_csv_marks_suppression_and_has_no_blanks(release: Path) -> None:
    text = (release / "data" / "provider-by-month.csv").read_text(encoding="utf-8")
    assert "\r" not in text and text.endswith("\n")
    rows = list(csv.reader(text.splitlines()))
    assert rows[0] == ["month", "provider", "referrals", "job_starts"]
    body = rows[1:]
    assert len(body) == 18
    assert all(cell != "" for row in body for cell in row)
    assert not any(cell in {"NA", "<NA>", "nan", "*"} for row in body for cell in row)
    assert [i for i, row in enumerate(body) if row[2] == "[c]"] == [7, 8]
    assert [i for i, row in enumerate(body) if row[3] == "[c]"] == [2, 3, 12]
    assert body[0] == ["Total", "Total", "10", "0"]
    hierarchy = (release / "hierarchies" / "provider.csv").read_text(encoding="utf-8").splitlines()
    assert hierarchy[:3] == ["code,label,parent,level", "Total,Great Britain,,total", "A,Area A,Total,cpa"]
    assert hierarchy[3] == 'A1,"Prime, one",A,prime'


def test_working_columns_never_published(release: Path) -> None:
    for name, data in _tree(release).items():
        assert b"freq" not in data, name


def test_pandas_reads_csv_and_parquet(release: Path) -> None:
    from_csv = pd.read_csv(
        release / "data" / "provider-by-month.csv", na_values=["[c]"], keep_default_na=False, dtype={"month": str}
    )
    assert from_csv["referrals"].isna().sum() == 2
    assert from_csv["job_starts"].isna().sum() == 3
    from_parquet = pd.read_parquet(release / "data" / "provider-by-month.parquet")
    assert list(from_parquet.columns) == [
        "month",
        "provider",
        "referrals",
        "referrals_status",
        "job_starts",
        "job_starts_status",
    ]
    assert from_parquet["referrals"].isna().sum() == 2
    assert (from_parquet["referrals_status"] == "c").sum() == 2
    assert from_parquet["referrals_status"].isna().sum() == 16
    assert from_csv["referrals"].astype("Int64").equals(from_parquet["referrals"].astype("Int64"))
    schema = pq.read_schema(release / "data" / "provider-by-month.parquet")
    assert str(schema.field("month").type) == "dictionary<values=string, indices=int32, ordered=0>"
    assert str(schema.field("referrals").type) == "int64"


def test_duckdb_reads_csv_and_parquet(release: Path) -> None:
    con = duckdb.connect()
    csv_file = (release / "data" / "provider-by-month.csv").as_posix()
    parquet_file = (release / "data" / "provider-by-month.parquet").as_posix()
    from_csv = con.execute(
        "SELECT count(*), count(referrals), sum(job_starts) FROM read_csv(?, nullstr='[c]')", [csv_file]
    ).fetchone()
    from_parquet = con.execute(
        "SELECT count(*), count(referrals), sum(job_starts) FROM read_parquet(?)", [parquet_file]
    ).fetchone()
    assert from_csv == from_parquet
    assert from_csv[:2] == (18, 16)


def test_readme_explains_release(release: Path) -> None:
    text = (release / "README.md").read_text(encoding="utf-8")
    assert text.startswith("# Tiny MI\n")
    assert "management information" in text and "not official statistics" in text
    assert "`[c]` confidential" in text
    assert "| provider-by-month | job_starts | 18 | 2 | 1 | 3 | 18 | passed" in text
    assert "5 of 42 cells are suppressed" in text
    assert "- the suppressions are checked against: anyone who sees only what is published" in text
    assert "not against an organisation that knows all its own cells (the spec names none to check)" in text
    assert "Department for Work and Pensions (2024). *Tiny MI*, version 1.0.0 [data set]." in text
    assert "Open Government Licence v3.0" in text
    sha = hashlib.sha256((release / "data" / "provider-totals.csv").read_bytes()).hexdigest()
    assert sha in text


def test_deterministic(spec: ReleaseSpec, tmp_path: Path) -> None:
    a = write_package(spec, make_tables(spec), tmp_path / "a", "1.0.0", CREATED)
    b = write_package(spec, make_tables(spec), tmp_path / "b", "1.0.0", CREATED)
    assert _tree(a) == _tree(b)


def test_refuses_existing_version(spec: ReleaseSpec, tmp_path: Path) -> None:
    path = write_package(spec, make_tables(spec), tmp_path, "1.0.0", CREATED)
    before = _tree(path)
    with pytest.raises(ReleaseExists, match=r"tiny-mi 1\.0\.0 is already published"):
        write_package(spec, make_tables(spec), tmp_path, "1.0.0", datetime(2025, 1, 1, tzinfo=UTC))
    assert _tree(path) == before
    with pytest.raises(ReleaseExists):
        write_package(spec, [], tmp_path, "1.0.0", CREATED)  # checked before anything else
    assert sorted(p.name for p in (tmp_path / "tiny-mi").iterdir()) == ["1.0.0"]


def test_failure_leaves_nothing(spec: ReleaseSpec, tmp_path: Path) -> None:
    tables = make_tables(spec)
    tables[1].frame = tables[1].frame.drop(columns=["referrals_status"])
    with pytest.raises(ReleaseError, match="lacks column"):
        write_package(spec, tables, tmp_path, "1.0.0", CREATED)
    assert list((tmp_path / "tiny-mi").iterdir()) == []


def test_interrupted_write_leaves_nothing(spec: ReleaseSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr("opendata.package._readme", boom)
    with pytest.raises(KeyboardInterrupt):
        write_package(spec, make_tables(spec), tmp_path, "1.0.0", CREATED)
    assert list((tmp_path / "tiny-mi").iterdir()) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.frame.__setitem__("referrals_status", "c"), "value in a cell marked confidential"),
        (lambda t: t.frame.__setitem__("referrals_status", ""), "missing value without a status"),
        (lambda t: t.sdc["referrals"]["audit"].update(ok=False), "audit failed"),
    ],
)
def test_refuses_unsafe_tables(spec: ReleaseSpec, tmp_path: Path, change, message: str) -> None:
    tables = make_tables(spec)
    change(tables[0])
    with pytest.raises(ReleaseError, match=message):
        write_package(spec, tables, tmp_path, "1.0.0", CREATED)
    assert not (tmp_path / "tiny-mi" / "1.0.0").exists()


def test_rejects_bad_version_and_naive_time(spec: ReleaseSpec, tmp_path: Path) -> None:
    with pytest.raises(ReleaseError, match="Semantic Versioning"):
        write_package(spec, make_tables(spec), tmp_path, "v1", CREATED)
    with pytest.raises(ValueError, match="timezone-aware"):
        write_package(spec, make_tables(spec), tmp_path, "1.0.0", datetime(2024, 1, 1))
    with pytest.raises(ReleaseError, match="overwrite version"):
        write_package(spec, make_tables(spec), tmp_path, "1.0.0", CREATED, extra={"version": "2"})
    assert not (tmp_path / "tiny-mi" / "1.0.0").exists()


def test_spec_text_reaches_the_readme_inert(spec: ReleaseSpec, tmp_path: Path) -> None:
    """A hostile spec title and description: no raw HTML, no link, no injected heading in README.md."""
    from dataclasses import replace

    hostile = replace(
        spec,
        title="<script>alert(1)</script> Referrals",
        description="[click](javascript:alert(1))\n# Injected heading\n<img src=x onerror=alert(1)>",
    )
    path = write_package(hostile, make_tables(hostile), tmp_path, "1.0.0", CREATED, extra=EXTRA)
    text = (path / "README.md").read_text(encoding="utf-8")
    assert "<script>" not in text and "<img" not in text
    assert not re.search(r"(?<!\\)\]\(javascript:", text) and "\n# Injected" not in text  # escaped: plain text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Referrals" in text


def test_half_written_packages_of_killed_processes_are_swept(spec: ReleaseSpec, tmp_path: Path) -> None:
    """A `release` killed mid-write leaves `.tmp-*` in staging; the next write removes it, but not
    the directory of a writer that still runs."""
    import os
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    series = tmp_path / spec.name
    stale = series / f".tmp-1.0.0-{int(dead.stdout)}-abcd1234"
    legacy = series / ".tmp-1.0.0-k2j4h5g6"
    live = series / f".tmp-1.0.0-{os.getpid()}-efgh5678"
    for d in (stale, legacy, live):
        (d / "data").mkdir(parents=True)
        (d / "data" / "half.csv").write_text("month,referrals\n")
    write_package(spec, make_tables(spec), tmp_path, "1.0.0", CREATED, extra=EXTRA)
    assert not stale.exists() and not legacy.exists() and live.exists()
    assert sorted(p.name for p in series.iterdir()) == sorted(["1.0.0", live.name])
