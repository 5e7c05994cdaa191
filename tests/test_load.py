"""Loading for researchers: typed frames, statuses that say why, verified files, versions, HTTP and cache."""

from __future__ import annotations

import csv
import http.server
import json
import shutil
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from tiny_spec import write_tiny_spec

import opendata
from opendata.aggregate import hierarchy_codes, period_dimension
from opendata.catalog import write_catalog
from opendata.load import IntegrityError, LoadedPackage, LoadError, duckdb_connect, load_package
from opendata.package import write_package
from opendata.protection import ProtectedTable
from opendata.spec import ReleaseSpec

pytestmark = pytest.mark.slow  # end to end: left out of the quick subset (make test-quick)

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "docs" / "researcher-example.ipynb"
NAME = "tiny-load"
CREATED = datetime(2024, 3, 14, 9, 30, tzinfo=UTC)

# Code-list order is deliberately not alphabetical (B before A, "NA" a real code): the loader must keep it.
CPA = "code,label,parent\nB,Area B,Total\nA,Area A,Total\n"
PROVIDERS = "code,label,parent,level\nB,Area B,Total,cpa\nB1,Prime three,B,prime\nA,Area A,Total,cpa\n"
PROVIDERS += 'NA,"Prime, north",A,prime\nA2,Prime two,A,prime\n'


# --- building packages ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> ReleaseSpec:
    root = tmp_path_factory.mktemp("spec")
    return write_tiny_spec(root, NAME, ("by-month", "totals"), rounding=None, cpa=CPA, providers=PROVIDERS)


def _mark(frame: pd.DataFrame, measure: str, status: dict[int, str]) -> None:
    """Hide cells the way protection does: <NA> plus a status code ("" when published)."""
    codes = pd.Series([status.get(i, "") for i in range(len(frame))], index=frame.index)
    frame[measure] = frame[measure].astype("Int64").mask(codes != "")
    frame[measure + "_status"] = codes


def _sdc(cells: int) -> dict:
    return {"cells": cells, "primary": 1, "secondary": 1, "rounded": 0, "audit": {"ok": True, "checked": 2}}


def make_tables(spec: ReleaseSpec, shift: int = 0, months: tuple[str, ...] = ("2024-01", "2024-02")) -> list:
    month = period_dimension(list(months), spec.dimensions["month"])
    provider = hierarchy_codes(spec.dimensions["provider"])
    grid = pd.MultiIndex.from_product([month.codes, provider.codes], names=["month", "provider"]).to_frame(index=False)
    grid["referrals"] = [10 * (i + 1) + shift for i in range(len(grid))]
    grid["job_starts"] = [i % 7 for i in range(len(grid))]
    _mark(grid, "referrals", {4: "c", 9: "c"})
    _mark(grid, "job_starts", {2: "c", 3: "z", 13: "c", 15: "x"})
    totals = pd.DataFrame({"provider": list(provider.codes), "referrals": [60, 30, 30, 30, 10, 20]})
    _mark(totals, "referrals", {})
    first = ProtectedTable(
        spec.tables[0], (month, provider), (spec.measures["referrals"], spec.measures["job_starts"]), grid
    )
    first.sdc = {"referrals": _sdc(len(grid)), "job_starts": _sdc(len(grid))}
    second = ProtectedTable(spec.tables[1], (provider,), (spec.measures["referrals"],), totals)
    second.sdc = {"referrals": _sdc(len(totals))}
    return [first, second]


@pytest.fixture(scope="module")
def tree(spec: ReleaseSpec, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A release tree with versions 1.0.0 and 1.1.0 (a month appended, values moved) and a catalogue."""
    root = tmp_path_factory.mktemp("releases")
    write_package(spec, make_tables(spec), root, "1.0.0", CREATED)
    write_package(spec, make_tables(spec, 5, ("2024-01", "2024-02", "2024-03")), root, "1.1.0", CREATED)
    write_catalog(root, now=datetime(2030, 1, 1, tzinfo=UTC))
    return root


def _copy(tree: Path, tmp_path: Path) -> Path:
    shutil.copytree(tree, tmp_path / "tree")
    return tmp_path / "tree"


def _csv_cells(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


# --- types, statuses, order ----------------------------------------------------------------------


def test_dtypes_and_metadata(tree: Path) -> None:
    df = opendata.load(NAME, "by-month", root=tree)
    assert list(df.columns) == [
        *("month", "month_level", "provider", "provider_level"),
        *("referrals", "referrals_status", "job_starts", "job_starts_status"),
    ]
    for dim in ("month", "provider"):
        assert isinstance(df[dim].dtype, pd.CategoricalDtype) and df[dim].cat.ordered
    for measure in ("referrals", "job_starts"):
        assert df[measure].dtype == pd.Int64Dtype()
        status = df[measure + "_status"]
        assert isinstance(status.dtype, pd.CategoricalDtype) and not status.cat.ordered
        assert list(status.cat.categories[:3]) == ["c", "z", "x"]
    assert len(df) == 4 * 6  # Total + 3 months, 6 providers
    assert df.attrs["name"] == NAME and df.attrs["version"] == "1.1.0" and df.attrs["table"] == "by-month"
    assert df.attrs["title"] == "Referrals and job starts by provider and month"
    assert "Open Government Licence v3.0" in df.attrs["licence"]
    assert df.attrs["citation"].startswith("Department for Work and Pensions (2024). Tiny MI, version 1.1.0")


def test_status_is_exactly_where_the_csv_has_a_marker(tree: Path) -> None:
    df = opendata.load(tree / NAME / "1.0.0", "by-month")
    rows = _csv_cells(tree / NAME / "1.0.0" / "data" / "by-month.csv")
    assert len(rows) == len(df)
    for measure in ("referrals", "job_starts"):
        text = [r[measure] for r in rows]
        expected = [t[1:-1] if t.startswith("[") else None for t in text]
        got = [None if pd.isna(s) else s for s in df[measure + "_status"]]
        assert got == expected
        assert df[measure].isna().tolist() == [e is not None for e in expected]
        published = [int(t) for t in text if not t.startswith("[")]
        assert df[measure].dropna().tolist() == published
    assert (df["job_starts_status"] == "c").sum() == 2
    assert df.loc[3, "job_starts_status"] == "z" and df.loc[15, "job_starts_status"] == "x"


def test_category_order_is_hierarchy_order(tree: Path) -> None:
    pkg = load_package(NAME, root=tree)
    df = pkg.tables["by-month"]
    for dim in ("month", "provider"):
        codes = [r["code"] for r in _csv_cells(tree / NAME / "1.1.0" / "hierarchies" / f"{dim}.csv")]
        assert list(df[dim].cat.categories) == codes
        assert list(pkg.hierarchies[dim]["code"]) == codes
    assert list(df["provider"].cat.categories) == ["Total", "B", "B1", "A", "NA", "A2"]
    assert df["provider"].notna().all()  # the code "NA" is a code, not a missing value
    assert df.sort_values(["month", "provider"]).index.tolist() == list(range(len(df)))
    assert pkg.hierarchies["provider"]["parent"].isna().tolist() == [True] + [False] * 5


def test_load_package_and_single_table(spec: ReleaseSpec, tree: Path, tmp_path: Path) -> None:
    pkg = load_package(tree / NAME, version="1.0.0")
    assert isinstance(pkg, LoadedPackage) and (pkg.name, pkg.version) == (NAME, "1.0.0")
    assert sorted(pkg.tables) == ["by-month", "totals"] and sorted(pkg.hierarchies) == ["month", "provider"]
    assert pkg.descriptor["version"] == "1.0.0"
    one = write_package(spec, make_tables(spec)[1:], tmp_path, "1.0.0", CREATED)
    df = opendata.load(one)  # a package with one table needs no table name
    assert df["referrals"].tolist() == [60, 30, 30, 30, 10, 20]


def test_csv_only_package_reads_the_same(tree: Path, tmp_path: Path) -> None:
    """A package without Parquet twins (e.g. from another publisher) loads from its CSV with the same result."""
    root = _copy(tree, tmp_path)
    version = root / NAME / "1.1.0"
    descriptor = json.loads((version / "datapackage.json").read_text(encoding="utf-8"))
    descriptor["resources"] = [r for r in descriptor["resources"] if r.get("format") != "parquet"]
    (version / "datapackage.json").write_text(json.dumps(descriptor), encoding="utf-8")
    for path in (version / "data").glob("*.parquet"):
        path.unlink()
    from_csv = opendata.load(version, "by-month")
    from_parquet = opendata.load(tree / NAME / "1.1.0", "by-month")
    pd.testing.assert_frame_equal(from_csv, from_parquet, check_categorical=True)


def test_duckdb_views(tree: Path) -> None:
    con = duckdb_connect(NAME, root=tree, version="1.0.0")
    names = {row[0] for row in con.execute("SHOW TABLES").fetchall()}
    assert {"by-month", "totals", "hierarchy-provider"} <= names
    hidden = con.execute('SELECT count(*) FROM "by-month" WHERE job_starts IS NULL').fetchone()
    assert hidden == (4,)
    assert con.execute('SELECT job_starts_status FROM "by-month" WHERE job_starts IS NULL').fetchall() == [
        ("c",),
        ("z",),
        ("c",),
        ("x",),
    ]
    assert opendata.load.duckdb_connect is duckdb_connect


# --- integrity -----------------------------------------------------------------------------------


def test_altered_parquet_is_refused(tree: Path, tmp_path: Path) -> None:
    root = _copy(tree, tmp_path)
    parquet = root / NAME / "1.1.0" / "data" / "by-month.parquet"
    data = bytearray(parquet.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different bytes
    parquet.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"by-month\.parquet: sha256 .* does not match"):
        opendata.load(NAME, "by-month", root=root)
    opendata.load(NAME, "totals", root=root)  # untouched files still load
    parquet.write_bytes(bytes(data[:-10]))
    with pytest.raises(IntegrityError, match="bytes, the descriptor says"):
        opendata.load(NAME, "by-month", root=root)
    parquet.unlink()
    with pytest.raises(IntegrityError, match="missing"):
        opendata.load(NAME, "by-month", root=root)


def test_unsafe_resource_path_is_refused(tree: Path, tmp_path: Path) -> None:
    root = _copy(tree, tmp_path)
    path = root / NAME / "1.1.0" / "datapackage.json"
    descriptor = json.loads(path.read_text(encoding="utf-8"))
    for r in descriptor["resources"]:
        if r["path"].startswith("data/totals."):
            r["path"] = "../../../" + r["path"]
    path.write_text(json.dumps(descriptor), encoding="utf-8")
    with pytest.raises(LoadError, match="not a relative path inside the package"):
        opendata.load(NAME, "totals", root=root)


# --- versions and errors -------------------------------------------------------------------------


def test_versions(tree: Path) -> None:
    latest = opendata.load(NAME, "by-month", root=tree)
    first = opendata.load(NAME, "by-month", "1.0.0", root=tree)
    assert (latest.attrs["version"], first.attrs["version"]) == ("1.1.0", "1.0.0")
    assert len(first) == 18 and len(latest) == 24
    assert first["referrals"].iloc[0] == 10 and latest["referrals"].iloc[0] == 15
    assert opendata.load(f"{NAME}@1.0.0", "by-month", root=tree).attrs["version"] == "1.0.0"
    assert opendata.load(tree / NAME, "by-month").attrs["version"] == "1.1.0"
    assert opendata.load(tree / NAME / "1.0.0" / "datapackage.json", "totals").attrs["version"] == "1.0.0"


def test_clear_errors(tree: Path) -> None:
    with pytest.raises(LoadError, match=r"no package 'nope' in .*packages there: tiny-load"):
        opendata.load("nope", root=tree)
    with pytest.raises(LoadError, match=r"no version '2\.0\.0'.*published: 1\.0\.0, 1\.1\.0"):
        opendata.load(NAME, "by-month", "2.0.0", root=tree)
    with pytest.raises(LoadError, match="no table 'missing'; tables: by-month, totals"):
        opendata.load(NAME, "missing", root=tree)
    with pytest.raises(LoadError, match="has 2 tables; choose one with table=: by-month, totals"):
        opendata.load(NAME, root=tree)
    with pytest.raises(LoadError, match=r"is version 1\.0\.0, not 1\.1\.0"):
        opendata.load(tree / NAME / "1.0.0", "totals", version="1.1.0")
    with pytest.raises(LoadError, match="pins version"):
        opendata.load(f"{NAME}@1.0.0", "totals", version="1.1.0", root=tree)
    assert issubclass(LoadError, opendata.errors.OpenDataError)


# --- over HTTP -----------------------------------------------------------------------------------


class _Server:
    """A real HTTP server on localhost serving a directory, counting requests per path."""

    def __init__(self, directory: Path) -> None:
        self.hits: Counter[str] = Counter()
        hits = self.hits

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs) -> None:
                super().__init__(*args, directory=str(directory), **kwargs)

            def do_GET(self) -> None:
                hits[self.path] += 1
                super().do_GET()

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served(tree: Path, tmp_path: Path) -> Iterator[tuple[_Server, Path]]:
    root = _copy(tree, tmp_path)
    with _Server(root.parent) as server:
        yield server, root


def test_http_series_url_and_cache(served: tuple[_Server, Path], tmp_path: Path, tree: Path) -> None:
    server, _ = served
    cache = tmp_path / "cache"
    url = f"{server.url}/tree/{NAME}"
    first = opendata.load(url, "by-month", cache_dir=cache)
    parquet = f"/tree/{NAME}/1.1.0/data/by-month.parquet"
    assert server.hits[parquet] == 1 and server.hits["/tree/catalog.json"] == 1
    second = opendata.load(url, "by-month", cache_dir=cache)
    assert server.hits[parquet] == 1  # from the cache, by hash
    assert server.hits[f"/tree/{NAME}/1.1.0/datapackage.json"] == 1  # the catalogue vouches for the cached copy
    pd.testing.assert_frame_equal(first, opendata.load(NAME, "by-month", root=tree))
    pd.testing.assert_frame_equal(first, second)
    assert first.attrs["source"].startswith(server.url) and server.url in first.attrs["citation"]
    old = opendata.load(url, "by-month", version="1.0.0", cache_dir=cache)
    assert old.attrs["version"] == "1.0.0" and len(old) == 18


def test_http_descriptor_url_and_env_cache(
    served: tuple[_Server, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = served
    monkeypatch.setenv("OPENDATA_CACHE", str(tmp_path / "env-cache"))
    pkg = load_package(f"{server.url}/tree/{NAME}/1.0.0/datapackage.json")
    assert pkg.version == "1.0.0" and sorted(pkg.tables) == ["by-month", "totals"]
    assert any((tmp_path / "env-cache" / "sha256").rglob("*")), "downloads are cached under $OPENDATA_CACHE"
    df = opendata.load(f"{server.url}/tree/{NAME}/1.0.0", "totals")
    assert df.attrs["version"] == "1.0.0"
    assert server.hits[f"/tree/{NAME}/1.0.0/data/totals.parquet"] == 1


def test_http_tampered_file_is_refused_and_not_cached(served: tuple[_Server, Path], tmp_path: Path) -> None:
    server, root = served
    parquet = root / NAME / "1.1.0" / "data" / "by-month.parquet"
    data = bytearray(parquet.read_bytes())
    data[100] ^= 0xFF
    parquet.write_bytes(bytes(data))
    cache = tmp_path / "cache"
    with pytest.raises(IntegrityError, match="does not match"):
        opendata.load(f"{server.url}/tree/{NAME}", "by-month", cache_dir=cache)
    assert not [p for p in cache.rglob("*") if p.is_file() and "by-month" in p.name]
    cached = {p.name for p in (cache / "sha256").rglob("*") if p.is_file()}
    assert all(not name.startswith(".part-") for name in cached)


def test_http_errors(served: tuple[_Server, Path], tmp_path: Path) -> None:
    server, _ = served
    with pytest.raises(LoadError, match=r"no package 'nope' in .*catalog\.json; packages there: tiny-load"):
        opendata.load(f"{server.url}/tree/nope", cache_dir=tmp_path)
    with pytest.raises(LoadError, match=r"no version '9\.9\.9'"):
        opendata.load(f"{server.url}/tree/{NAME}", "totals", version="9.9.9", cache_dir=tmp_path)
    with pytest.raises(LoadError, match="HTTP 404"):
        opendata.load(f"{server.url}/tree/{NAME}/3.0.0/datapackage.json", cache_dir=tmp_path)
    with pytest.raises(LoadError, match=r"HTTP 404.*give the URL of a series"):
        opendata.load(f"{server.url}/elsewhere/{NAME}", cache_dir=tmp_path)


# --- import cost and the notebook ----------------------------------------------------------------


def test_import_opendata_stays_light() -> None:
    code = "import sys, opendata; print('pandas' in sys.modules, 'pyarrow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == ["False", "False"]


def test_researcher_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every code cell of docs/researcher-example.ipynb, in order, in a fresh directory: it cannot rot."""
    notebook = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    cells = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert cells and all(not c.get("outputs") for c in cells), "commit the notebook without outputs"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENDATA_CACHE", str(tmp_path / "cache"))
    namespace: dict[str, object] = {"__name__": "__main__"}
    for i, cell in enumerate(cells):
        source = "".join(cell["source"])
        exec(compile(source, f"{NOTEBOOK.name}[cell {i}]", "exec"), namespace)
    peer = namespace["peer"]
    assert len(peer) > 0 and peer["status"].eq("c").any()
    shutil.rmtree(namespace["work"], ignore_errors=True)


# --- signatures (trusted distribution) ---------------------------------------------------------


def _forge(root: Path, version: str, table: str) -> None:
    """Multiply a table's referrals by 10 and rewrite its bytes and hash in the descriptor and the
    catalogue, so every hash is consistent: only a signature can tell."""
    import hashlib

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    vdir = root / NAME / version
    path = vdir / "data" / f"{table}.parquet"
    data = pq.read_table(path)
    column = data.schema.get_field_index("referrals")
    data = data.set_column(column, "referrals", pc.multiply(data["referrals"], 10))
    pq.write_table(data, path)
    raw = path.read_bytes()
    descriptor = json.loads((vdir / "datapackage.json").read_text())
    for r in descriptor["resources"]:
        if r["path"] == f"data/{table}.parquet":
            r["bytes"], r["hash"] = len(raw), "sha256:" + hashlib.sha256(raw).hexdigest()
    text = json.dumps(descriptor, indent=2).encode()
    (vdir / "datapackage.json").write_bytes(text)
    catalog = json.loads((root / "catalog.json").read_text())
    for p in catalog["packages"]:
        for v in p["versions"]:
            if v["version"] == version:
                v["descriptor"]["bytes"], v["descriptor"]["sha256"] = len(text), hashlib.sha256(text).hexdigest()
    (root / "catalog.json").write_text(json.dumps(catalog))


def test_a_trusted_key_refuses_forged_but_hash_consistent_data(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 1 of the trusted-distribution issue, replayed locally and over HTTP: with the
    publisher's key the forged package is refused, as is one signed by another key; without a key
    a remote load warns that it is unverified."""
    import warnings

    from opendata.load import UnverifiedData
    from opendata.signing import generate_keys, load_private_key

    root = _copy(tree, tmp_path)
    generate_keys(tmp_path / "publisher.key", tmp_path / "publisher.pub")
    generate_keys(tmp_path / "other.key", tmp_path / "other.pub")
    write_catalog(root, now=datetime(2030, 1, 1, tzinfo=UTC), signer=load_private_key(tmp_path / "publisher.key"))
    trusted, other = tmp_path / "publisher.pub", tmp_path / "other.pub"
    genuine = opendata.load(root / NAME / "1.1.0", "totals", trust=trusted)
    with pytest.raises(IntegrityError, match="does not verify"):
        opendata.load(root / NAME / "1.1.0", "totals", trust=other)

    _forge(root, "1.1.0", "totals")
    assert opendata.load(root / NAME / "1.1.0", "totals")["referrals"].sum() == 10 * genuine["referrals"].sum()
    with pytest.raises(IntegrityError, match="does not verify"):
        opendata.load(root / NAME / "1.1.0", "totals", trust=trusted)
    monkeypatch.setenv("OPENDATA_TRUST", str(trusted))  # stated once, for a whole notebook
    with pytest.raises(IntegrityError, match="does not verify"):
        load_package(root / NAME / "1.1.0")
    with pytest.raises(IntegrityError, match="does not verify"):
        duckdb_connect(root / NAME / "1.1.0")

    with _Server(root.parent) as server:
        url = f"{server.url}/tree/{NAME}"
        with pytest.raises(IntegrityError, match="does not verify"):
            opendata.load(url, "totals", cache_dir=tmp_path / "cache")
        assert opendata.load(url, "totals", version="1.0.0", cache_dir=tmp_path / "cache") is not None  # genuine
        monkeypatch.delenv("OPENDATA_TRUST")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            forged = opendata.load(url, "totals", cache_dir=tmp_path / "cache")
        assert forged["referrals"].sum() == 10 * genuine["referrals"].sum()
        assert [w.category for w in caught] == [UnverifiedData]
        (root / NAME / "1.0.0" / "datapackage.json.sig").unlink()
        with pytest.raises(IntegrityError, match="not signed"):
            opendata.load(f"{url}@1.0.0", "totals", cache_dir=tmp_path / "cache2", trust=trusted)


def test_downloads_are_capped_at_the_declared_size(tree: Path, tmp_path: Path) -> None:
    """A server that sends more than the descriptor declares is cut off, and nothing is cached."""
    root = _copy(tree, tmp_path)
    parquet = root / NAME / "1.1.0" / "data" / "totals.parquet"
    declared = parquet.stat().st_size
    parquet.write_bytes(parquet.read_bytes() + b"\0" * (4 << 20))  # a longer body than declared
    too_long = pytest.raises(IntegrityError, match=f"more than the {declared:,} bytes declared")
    with _Server(root.parent) as server, pytest.warns(Warning), too_long:
        opendata.load(f"{server.url}/tree/{NAME}", "totals", cache_dir=tmp_path / "cache")
    descriptor = json.loads((root / NAME / "1.1.0" / "datapackage.json").read_text())
    sha = next(r["hash"] for r in descriptor["resources"] if r["path"] == "data/totals.parquet").split(":")[1]
    assert not list((tmp_path / "cache").rglob(f"*{sha}*"))  # nothing of it is kept


def test_listing_packages_versions_and_tables(tree: Path, tmp_path: Path) -> None:
    """Finding 8: there was no way to list packages, versions or tables except from error messages."""
    from opendata.signing import generate_keys, load_private_key

    root = _copy(tree, tmp_path)
    generate_keys(tmp_path / "publisher.key", tmp_path / "publisher.pub")
    generate_keys(tmp_path / "other.key", tmp_path / "other.pub")
    write_catalog(root, now=datetime(2030, 1, 1, tzinfo=UTC), signer=load_private_key(tmp_path / "publisher.key"))
    trusted = tmp_path / "publisher.pub"
    packages = opendata.list_packages(root, trust=trusted)
    assert packages.to_dict("records") == [
        {"name": NAME, "title": packages["title"][0], "latest": "1.1.0", "versions": 2}
    ]
    assert list(opendata.list_versions(NAME, root)["version"]) == ["1.0.0", "1.1.0"]
    tables = opendata.list_tables(NAME, "1.0.0", root, trust=trusted)
    assert set(tables["table"]) == {"by-month", "totals"}
    by_month = tables.set_index("table").loc["by-month"]
    assert (by_month["dimensions"], by_month["measures"]) == ("month, provider", "referrals, job_starts")
    assert len(opendata.load(root / NAME / "1.0.0", "by-month")) > 0  # the names listed are the names to load
    with pytest.raises(IntegrityError, match="does not verify"):
        opendata.list_packages(root, trust=tmp_path / "other.pub")
    with pytest.raises(LoadError, match="no package 'nope'.*packages there: " + NAME):
        opendata.list_versions("nope", root)
    with pytest.raises(LoadError, match="published release tree"):
        opendata.list_packages(tmp_path)

    with _Server(root.parent) as server:  # the same over HTTP, from the tree's root URL
        url = f"{server.url}/tree/"
        assert list(opendata.list_packages(url, trust=trusted)["name"]) == [NAME]
        assert set(opendata.list_tables(NAME, "latest", url, trust=trusted, cache_dir=tmp_path / "c")["table"]) == {
            "by-month",
            "totals",
        }
        with pytest.warns(opendata.UnverifiedData):
            opendata.list_packages(url)
        run = subprocess.run(
            [sys.executable, "-m", "opendata", "list", url, NAME, "--trust", str(trusted), "--json"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        assert [v["version"] for v in json.loads(run.stdout)] == ["1.0.0", "1.1.0"]
        bad = subprocess.run(
            [sys.executable, "-m", "opendata", "list", url, "--trust", str(tmp_path / "other.pub")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert bad.returncode == 1 and "Traceback" not in bad.stderr and "does not verify" in bad.stderr


@pytest.mark.parametrize("form", ["parquet", "csv"])
def test_columns_filters_and_no_totals(tree: Path, tmp_path: Path, form: str) -> None:
    """Finding 8: totals and detail rows were mixed, so a groupby sum counted every level."""
    root = tree
    if form == "csv":  # the same package without its Parquet twins reads the same
        root = _copy(tree, tmp_path)
        descriptor = root / NAME / "1.1.0" / "datapackage.json"
        doc = json.loads(descriptor.read_text())
        doc["resources"] = [r for r in doc["resources"] if not r["path"].endswith(".parquet")]
        descriptor.write_text(json.dumps(doc))
    version = root / NAME / "1.1.0"
    whole = opendata.load(version, "by-month")
    hierarchy = pd.read_csv(version / "hierarchies" / "provider.csv", dtype=str, keep_default_na=False)
    leaves = set(hierarchy["code"]) - set(hierarchy["parent"])
    detail = opendata.load(version, "by-month", totals=False)
    assert set(detail["provider"].astype(str)) == leaves and "Total" not in set(detail["month"].astype(str))
    expected = whole[whole["provider"].astype(str).isin(leaves) & (whole["month"].astype(str) != "Total")]
    assert detail["referrals"].sum() == expected["referrals"].sum() < whole["referrals"].sum()
    picked = opendata.load(version, "by-month", columns=["referrals"], filters={"month": ["2024-01", "2024-02"]})
    assert list(picked.columns) == [
        *("month", "month_level", "provider", "provider_level"),
        *("referrals", "referrals_status"),
    ]
    assert set(picked["month"].astype(str)) == {"2024-01", "2024-02"}
    assert len(picked) == len(whole[whole["month"].astype(str).isin(["2024-01", "2024-02"])])
    with pytest.raises(LoadError, match="has no column 'nope'"):
        opendata.load(version, "by-month", columns=["nope"])


def test_a_loaded_package_prints_as_a_summary(tree: Path) -> None:
    pkg = load_package(tree / NAME / "1.1.0")
    text = repr(pkg)
    assert len(text) < 300 and NAME in text and "by-month" in text and "rows" in text


def test_level_columns_pick_one_level(tree: Path) -> None:
    version = tree / NAME / "1.1.0"
    frame = opendata.load(version, "by-month")  # level columns by default
    assert list(frame.columns[:4]) == ["month", "month_level", "provider", "provider_level"]
    hierarchy = pd.read_csv(version / "hierarchies" / "provider.csv", dtype=str, keep_default_na=False)
    levels = dict(zip(hierarchy["code"], hierarchy["level"], strict=True))
    assert (frame["provider_level"].astype(str) == frame["provider"].astype(str).map(levels)).all()
    assert list(frame["provider_level"].cat.categories) == list(dict.fromkeys(hierarchy["level"]))
    total = frame[(frame["provider_level"] == "total") & (frame["month_level"] == "total")]
    assert len(total) == 1  # one grand total: a level filter never double counts


def test_a_trickling_host_meets_the_download_deadline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A host sending one byte every 0.2 s beats any read time-out; the download's own deadline ends it."""
    import http.server
    import threading
    import time

    from opendata import load as module

    class Trickle(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b"{")
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setattr(module, "DEADLINE_BASE", 1.0)
    try:
        started = time.monotonic()
        with pytest.raises(LoadError, match="not received within"):
            opendata.load(
                f"http://127.0.0.1:{httpd.server_address[1]}/tree/x/1.0.0/datapackage.json", cache_dir=tmp_path
            )
        assert time.monotonic() - started < 10
    finally:
        httpd.shutdown()
        httpd.server_close()
