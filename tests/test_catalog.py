"""Catalogue: a complete sync index, DCAT v3 that rdflib reads, Atom that feedparser reads; deterministic."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pandas as pd
import pytest
from rdflib import Graph, Literal, Namespace, URIRef
from tiny_spec import OGL, write_primes_spec

from opendata.aggregate import hierarchy_codes
from opendata.catalog import Catalog, read_catalog, semver_key, write_catalog
from opendata.descriptor import package_id
from opendata.errors import ReleaseError
from opendata.package import write_package
from opendata.protection import ProtectedTable
from opendata.signing import generate_keys, load_private_key, verify_file
from opendata.spec import ReleaseSpec

# Plain namespaces: rdflib's closed ones warn when pytest inspects module globals.
DCAT = Namespace("http://www.w3.org/ns/dcat#")
DCTERMS = Namespace("http://purl.org/dc/terms/")
FOAF = Namespace("http://xmlns.com/foaf/0.1/")
VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
pytestmark = pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning")

SPDX = Namespace("http://spdx.org/rdf/terms#")
RDF_TYPE = URIRef("http://www.w3.org/1999/02/22-rdf-syntax-ns#type")
XSD_DATETIME = URIRef("http://www.w3.org/2001/XMLSchema#dateTime")
BASE = "https://data.example.org/releases/"
T0 = datetime(2024, 3, 14, 9, 30, tzinfo=UTC)
NOW = datetime(2025, 1, 1, tzinfo=UTC)


def make_spec(root: Path, name: str = "tiny-mi", title: str = "Tiny MI") -> ReleaseSpec:
    """A minimal real release spec, so packages come from the real package writer."""
    return write_primes_spec(root / f"spec-{name}", name, title)


def publish(spec: ReleaseSpec, out: Path, version: str, created: datetime, seed: int = 0) -> Path:
    """Write one real package version; ``seed`` varies the numbers so versions differ."""
    provider = hierarchy_codes(spec.dimensions["provider"])
    frame = pd.DataFrame({"provider": list(provider.codes), "referrals": [50 + seed, 30, 20 + seed]})
    frame["referrals"] = frame["referrals"].astype("Int64")
    frame["referrals_status"] = ""
    sdc = {"cells": 3, "primary": 0, "secondary": 0, "rounded": 0, "audit": {"ok": True, "checked": 0, "method": "x"}}
    table = ProtectedTable(
        spec=spec.tables[0],
        dimensions=(provider,),
        measures=(spec.measures["referrals"],),
        frame=frame,
        sdc={"referrals": sdc},
    )
    return write_package(spec, [table], out, version, created)


# tiny-mi: 1.2.0 and 1.10.0 check numeric (not text) order; 2.0.0-rc.1 sorts before 2.0.0.
VERSIONS = [
    ("tiny-mi", "Tiny MI", "1.2.0", T0),
    ("tiny-mi", "Tiny MI", "1.10.0", T0 + timedelta(days=31)),
    ("tiny-mi", "Tiny MI", "2.0.0-rc.1", T0 + timedelta(days=40)),
    ("tiny-mi", "Tiny MI", "2.0.0", T0 + timedelta(days=60)),
    ("other-mi", "Other MI", "1.0.0", T0 + timedelta(days=45)),
]


@pytest.fixture(scope="module")
def source_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A release tree with two packages, stray entries a scanner must ignore, and no catalogue yet."""
    base = tmp_path_factory.mktemp("tree")
    out = base / "releases"
    specs = {}
    for i, (name, title, version, created) in enumerate(VERSIONS):
        if name not in specs:
            specs[name] = make_spec(base, name, title)
        spec = specs[name]
        publish(spec, out, version, created, seed=i)
    (out / "README.md").write_text("# releases\n", encoding="utf-8")
    (out / "tiny-mi" / ".tmp-3.0.0-abc").mkdir()  # an interrupted write
    (out / "tiny-mi" / ".tmp-3.0.0-abc" / "datapackage.json").write_text("{", encoding="utf-8")
    (out / "tiny-mi" / "drafts").mkdir()  # not a SemVer directory
    (out / ".cache").mkdir()
    return out


@pytest.fixture
def tree(source_tree: Path, tmp_path: Path) -> Path:
    """A private copy each test may change."""
    return Path(shutil.copytree(source_tree, tmp_path / "releases"))


def _files_on_disk(version_dir: Path, root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(version_dir.rglob("*")) if p.is_file()}


def _outputs(root: Path) -> dict[str, bytes]:
    names = ["catalog.json", "catalog.json.sig", "catalog.jsonld", "feed.atom", "index.html"]
    return {n: (root / n).read_bytes() for n in names if (root / n).exists()}


def test_catalog_json_lists_every_version_and_file(tree: Path) -> None:
    result = write_catalog(tree, now=NOW)
    doc = json.loads((tree / "catalog.json").read_text(encoding="utf-8"))
    assert [p["name"] for p in doc["packages"]] == ["other-mi", "tiny-mi"]
    tiny = doc["packages"][1]
    assert [v["version"] for v in tiny["versions"]] == ["1.2.0", "1.10.0", "2.0.0-rc.1", "2.0.0"]
    assert tiny["latest"] == "2.0.0"
    assert doc["modified"] == "2024-05-13T09:30:00Z"  # newest release, not the clock
    assert result.versions == (
        "other-mi 1.0.0",
        "tiny-mi 1.2.0",
        "tiny-mi 1.10.0",
        "tiny-mi 2.0.0-rc.1",
        "tiny-mi 2.0.0",
    )
    for package in doc["packages"]:
        for v in package["versions"]:
            version_dir = tree / v["path"]
            assert v["id"] == package_id(package["name"], v["version"])
            on_disk = _files_on_disk(version_dir, tree)
            assert [f["path"] for f in v["files"]] == sorted(on_disk)
            assert f"{v['path']}/README.md" in on_disk and f"{v['path']}/data/provider-totals.csv" in on_disk
            for f in v["files"]:
                data = on_disk[f["path"]]
                assert (f["bytes"], f["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
            descriptor = json.loads(on_disk[v["descriptor"]["path"]])
            assert v["created"] == descriptor["created"]
            assert v["descriptor"] in v["files"]
    text = (tree / "catalog.json").read_text(encoding="utf-8")
    assert ".tmp-" not in text and "drafts" not in text and ".cache" not in text


def test_read_catalog_round_trip_and_refuses_unsafe_paths(tree: Path) -> None:
    write_catalog(tree, now=NOW)
    catalog = read_catalog(tree / "catalog.json")
    assert isinstance(catalog, Catalog)
    assert list(catalog.packages()) == ["other-mi", "tiny-mi"]
    assert len(catalog.files()) == sum(
        len(list(p for p in (tree / v.path).rglob("*") if p.is_file())) for v in catalog.versions
    )
    doc = json.loads((tree / "catalog.json").read_text(encoding="utf-8"))
    doc["packages"][0]["versions"][0]["files"][0]["path"] = "other-mi/1.0.0/../../../etc/passwd"
    with pytest.raises(ReleaseError, match="unsafe"):
        read_catalog(json.dumps(doc).encode())
    with pytest.raises(ReleaseError, match="not valid JSON"):
        read_catalog(b"{")


def test_semver_order() -> None:
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0", "1.2.0"]
    assert sorted(reversed(ordered), key=semver_key) == ordered
    assert semver_key("1.10.0") > semver_key("1.9.0")


def test_deterministic_and_independent_of_clock(tree: Path, tmp_path: Path, source_tree: Path) -> None:
    first = write_catalog(tree, base_url=BASE, now=NOW)
    before = _outputs(tree)
    assert sorted(p.name for p in first.written) == ["catalog.json", "catalog.jsonld", "feed.atom", "index.html"]
    again = write_catalog(tree, base_url=BASE, now=NOW + timedelta(days=100))
    assert _outputs(tree) == before
    assert again.written == ()  # nothing rewritten, so mirrors' caches stay valid
    other = Path(shutil.copytree(source_tree, tmp_path / "elsewhere"))
    write_catalog(other, base_url=BASE, now=NOW)
    assert _outputs(other) == before  # bytes depend on the tree, not where it lives


def test_new_version_updates_catalogue(tree: Path, tmp_path: Path) -> None:
    write_catalog(tree, now=NOW)
    publish(make_spec(tmp_path, "tiny-mi"), tree, "2.1.0", T0 + timedelta(days=90))
    write_catalog(tree, now=NOW)
    doc = json.loads((tree / "catalog.json").read_text(encoding="utf-8"))
    assert doc["packages"][1]["latest"] == "2.1.0"
    assert doc["modified"] == "2024-06-12T09:30:00Z"


def test_embargoed_versions_are_withheld(tree: Path) -> None:
    now = T0 + timedelta(days=50)  # after 2.0.0-rc.1 and other-mi, before tiny-mi 2.0.0
    result = write_catalog(tree, base_url=BASE, now=now)
    assert result.withheld == ("tiny-mi 2.0.0",)
    embargoed = package_id("tiny-mi", "2.0.0")
    for name, data in _outputs(tree).items():
        text = data.decode("utf-8")
        assert embargoed not in text, name
        assert "tiny-mi/2.0.0/" not in text, name
    result = write_catalog(tree, base_url=BASE, now=T0 + timedelta(days=60))  # the release time itself
    assert result.withheld == ()


def test_refuses_altered_release(tree: Path) -> None:
    target = tree / "tiny-mi" / "1.2.0" / "data" / "provider-totals.csv"
    target.write_bytes(target.read_bytes().replace(b"Total", b"TOTAL"))
    with pytest.raises(ReleaseError, match=r"tiny-mi/1\.2\.0/data/provider-totals\.csv does not match"):
        write_catalog(tree, now=NOW)
    assert not (tree / "catalog.json").exists()


def test_refuses_version_in_wrong_place(tree: Path) -> None:
    shutil.move(tree / "tiny-mi" / "1.2.0", tree / "tiny-mi" / "1.3.0")
    with pytest.raises(ReleaseError, match=r"describes tiny-mi 1\.2\.0"):
        write_catalog(tree, now=NOW)


def test_requires_aware_now_and_valid_base_url(tree: Path) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        write_catalog(tree, now=datetime(2025, 1, 1))
    with pytest.raises(ReleaseError, match="absolute http"):
        write_catalog(tree, base_url="data.example.org", now=NOW)


def _graph(root: Path, public_id: str = BASE) -> Graph:
    return Graph().parse(
        data=(root / "catalog.jsonld").read_text(encoding="utf-8"), format="json-ld", publicID=public_id
    )


def test_dcat_jsonld_parses_and_has_what_harvesters_need(tree: Path) -> None:
    write_catalog(tree, base_url=BASE, now=NOW)
    doc = json.loads((tree / "catalog.jsonld").read_text(encoding="utf-8"))
    assert isinstance(doc["@context"], dict)  # inline: parsing needs no network
    g = _graph(tree)
    index = read_catalog(tree / "catalog.json")

    catalogs = list(g.subjects(RDF_TYPE, DCAT.Catalog))
    assert len(catalogs) == 1
    assert len(list(g.objects(catalogs[0], DCAT.dataset))) == len(VERSIONS) + 2  # versions + series
    assert len(list(g.subjects(RDF_TYPE, DCAT.DatasetSeries))) == 2

    rows = g.query(
        """
        SELECT ?d ?id ?title ?desc ?issued ?modified ?license ?pubname ?version ?series ?email WHERE {
          ?d a dcat:Dataset ; dct:identifier ?id ; dct:title ?title ; dct:description ?desc ;
             dct:issued ?issued ; dct:modified ?modified ; dct:license ?license ; dcat:version ?version ;
             dct:publisher/foaf:name ?pubname ; dcat:inSeries ?series ;
             dcat:contactPoint/vcard:hasEmail ?email .
          ?series a dcat:DatasetSeries .
        }""",
        initNs={
            "dcat": DCAT,
            "dct": DCTERMS,
            "foaf": Namespace("http://xmlns.com/foaf/0.1/"),
            "vcard": Namespace("http://www.w3.org/2006/vcard/ns#"),
        },
    )
    found = {str(r.version) for r in rows}
    assert len(rows) == len(VERSIONS)
    by_id = {str(r.id): r for r in rows}
    for v in index.versions:
        r = by_id[v.id]
        assert r.issued == Literal(v.created, datatype=XSD_DATETIME)
        assert r.modified == r.issued
        assert r.license == URIRef(OGL)
        assert str(r.pubname) == "Department for Work and Pensions"
        assert r.email == URIRef("mailto:stats@dwp.example")
        assert str(r.version) == v.version
        assert str(r.title).endswith(f"version {v.version}")
        assert str(r.desc)
    assert set(found) == {v for _, _, v, _ in VERSIONS}

    dists = g.query(
        """
        SELECT ?d ?url ?size ?value ?media WHERE {
          ?ds a dcat:Dataset ; dcat:distribution ?d .
          ?d a dcat:Distribution ; dcat:downloadURL ?url ; dcat:accessURL ?access ; dcat:byteSize ?size ;
             dcat:mediaType ?media ; spdx:checksum ?c .
          ?c spdx:algorithm spdx:checksumAlgorithm_sha256 ; spdx:checksumValue ?value .
        }""",
        initNs={"dcat": DCAT, "spdx": SPDX},
    )
    listed = {BASE + f.path: f for f in index.files() if not f.path.endswith(".sig")}
    assert len(dists) == len(listed)
    for r in dists:
        f = listed[str(r.url)]
        assert (int(r.size), str(r.value)) == (f.bytes, f.sha256)
    medias = {str(r.media) for r in dists}
    assert "https://www.iana.org/assignments/media-types/text/csv" in medias


def test_dcat_without_base_url_uses_relative_links(tree: Path) -> None:
    write_catalog(tree, now=NOW)
    g = _graph(tree, public_id="https://mirror.example.net/opendata/")
    urls = {str(o) for o in g.objects(None, DCAT.downloadURL)}
    assert "https://mirror.example.net/opendata/tiny-mi/1.2.0/data/provider-totals.csv" in urls
    datasets = set(g.subjects(RDF_TYPE, DCAT.Dataset))
    assert datasets == {URIRef(f"urn:uuid:{package_id(n, v)}") for n, _, v, _ in VERSIONS}


def test_atom_feed_parses_newest_first(tree: Path) -> None:
    write_catalog(tree, base_url=BASE, now=NOW)
    feed = feedparser.parse((tree / "feed.atom").read_bytes())
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.feed.title == "Open data releases"
    assert feed.feed.updated == "2024-05-13T09:30:00Z"
    entries = feed.entries
    assert len(entries) == len(VERSIONS)
    expected = sorted(VERSIONS, key=lambda v: v[3], reverse=True)
    assert [e.id for e in entries] == [f"urn:uuid:{package_id(n, v)}" for n, _, v, _ in expected]
    assert [e.updated for e in entries] == [c.strftime("%Y-%m-%dT%H:%M:%SZ") for *_, c in expected]
    top = entries[0]
    assert top.title == "Tiny MI 2.0.0"
    assert top.link == BASE + "tiny-mi/2.0.0/"
    assert "management information" in top.summary
    assert top.author == "Department for Work and Pensions"
    assert {t.term for t in top.tags} == {"employment", "work programme"}


def test_empty_tree(tmp_path: Path) -> None:
    result = write_catalog(tmp_path, now=NOW)
    assert result.versions == ()
    assert json.loads((tmp_path / "catalog.json").read_text(encoding="utf-8"))["packages"] == []
    assert not feedparser.parse((tmp_path / "feed.atom").read_bytes()).bozo
    assert len(_graph(tmp_path)) > 0


def test_signed_catalogue(tree: Path, tmp_path: Path) -> None:
    keys = generate_keys(tmp_path / "keys" / "private.pem", tmp_path / "keys" / "public.pem")
    key = load_private_key(keys.private_path)
    result = write_catalog(tree, base_url=BASE, signer=key, now=NOW)
    assert result.signature == tree / "catalog.json.sig"
    assert result.key_fingerprint == keys.fingerprint
    assert len(result.signed) == len(VERSIONS)
    verify_file(tree / "catalog.json", keys.public_path)
    catalog = read_catalog(tree / "catalog.json")
    for v in catalog.versions:
        assert f"{v.descriptor.path}.sig" in {f.path for f in v.files}  # mirrors fetch signatures too
    before = _outputs(tree)
    again = write_catalog(tree, base_url=BASE, signer=key, now=NOW)
    assert again.signed == () and again.written == ()
    assert _outputs(tree) == before
    # a later unsigned run that changes the catalogue must not leave a signature that no longer matches
    write_catalog(tree, base_url="https://other.example.org/", now=NOW)
    assert not (tree / "catalog.json.sig").exists()
