"""The release page and the tree index, as a person reaches them: served over HTTP by ``opendata
serve`` and rendered in real headless Chromium (Debian ``chromium``, driven by Playwright), where
axe-core (npm, ``tests/browser``) checks the WCAG 2.2 A and AA rules at 1280 and 320 px. Screenshots
land in ``test-output/screenshots/`` for a person to look at. ``.ci/run`` installs Chromium and sets
``OPENDATA_REQUIRE_BROWSER=1``, so there a missing browser fails the tests instead of skipping them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from shipped_specs import OUTSIDERS

from opendata.package import write_views
from opendata.serve import make_server

pytestmark = pytest.mark.slow  # end to end: left out of the quick subset (make test-quick)

ROOT = Path(__file__).resolve().parent.parent
SPEC = OUTSIDERS
CALENDAR = ROOT / "specs" / "calendar.yaml"
NAME = "work-programme-subcontractor-mi"
AXE = ROOT / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "") if p and os.access(p, os.X_OK)), None)
SHOTS = ROOT / "test-output" / "screenshots"
REASON = "<script>alert('x')</script> & late"
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


def cli(*args) -> subprocess.CompletedProcess:
    run = subprocess.run(
        [sys.executable, "-m", "opendata.cli", *map(str, args)], capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr + run.stdout
    return run


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("pages")
    cli("sample", "--out", work / "mi", "--rows", 6000, "--months", 3, "--seed", 7, "--format", "csv", "-q")
    cli("release", SPEC, work / "mi" / "work-programme-mi.csv", "--out", work / "releases", "--calendar", CALENDAR,
        "--release-time", "2026-11-12T09:30:00+00:00", "--late", "--reason", REASON, "-q")  # fmt: skip
    cli("publish", "--out", work / "releases", "-q")
    return work / "releases"


@pytest.fixture(scope="module")
def base(tree: Path) -> Iterator[str]:
    server = make_server(tree, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.url.rstrip("/")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def get(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=30) as answer:
        body = answer.read()
        kind = answer.headers["Content-Type"]
        if kind.startswith("text/html"):  # static pages: nothing may run in them
            assert answer.headers["Content-Security-Policy"].startswith("default-src 'none'")
        return answer.status, kind, body.decode("utf-8") if kind.startswith("text/") else ""


def test_the_root_and_each_version_answer_with_their_pages(base):
    status, kind, root = get(base + "/")
    assert status == 200 and kind.startswith("text/html")
    assert f"href='{NAME}/1.0.0/index.html'" in root and "Version 1.0.0" in root
    status, kind, page = get(f"{base}/{NAME}/1.0.0/")
    assert status == 200 and kind.startswith("text/html") and page == get(f"{base}/{NAME}/1.0.0/index.html")[2]
    for link in ("datapackage.json", f"{NAME}-1.0.0.ods", f"{NAME}-1.0.0.xlsx", "data/provider-by-month.csv"):
        assert f"href='{link}'" in page and get(f"{base}/{NAME}/1.0.0/{link}")[0] == 200


def test_the_release_page_says_what_a_reader_needs(tree):
    version = tree / NAME / "1.0.0"
    page = (version / "index.html").read_text()
    descriptor = json.loads((version / "datapackage.json").read_text())
    for needed in ("Headline figures", "Month by month", "What was hidden, and why", "Downloads", "How to cite",
                   "Next release", "<svg", "role='img'", "<desc id='chart1-d'>", "Data for this chart"):  # fmt: skip
        assert needed in page, needed
    for r in descriptor["resources"]:
        if r["path"] != "index.html":
            assert r["hash"].removeprefix("sha256:") in page, r["path"]  # every download with its hash
    national = next(r for r in descriptor["resources"] if r["name"] == "provider-by-month")
    assert national["path"] in page
    assert "<script>" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; late" in page
    indicators = pd.read_csv(version / "data" / "indicators.csv", dtype=str, keep_default_na=False)
    plain = [i["name"] for i in descriptor["opendata:indicators"] if not i.get("standardise_by")]
    national = indicators[(indicators.period == "Total") & (indicators.entity == "Total")]
    drawn = national[national.indicator.isin(plain) & ~national.benchmark.str.startswith("[")]
    assert len(drawn) > 0  # this release has a programme benchmark to draw against
    assert "How CPAs compare" in page and page.count("<desc id='funnel") == len(drawn)


def test_same_package_same_page(tree, tmp_path):
    version = tree / NAME / "1.0.0"
    copy = tmp_path / "copy"
    shutil.copytree(version, copy)
    (copy / "index.html").unlink()
    descriptor = json.loads((copy / "datapackage.json").read_text())
    assert write_views(copy, descriptor) == descriptor["resources"]  # same files, same hashes
    assert (copy / "index.html").read_bytes() == (version / "index.html").read_bytes()


def browser():
    if CHROMIUM is None or not AXE.is_file():
        if os.environ.get("OPENDATA_REQUIRE_BROWSER"):
            pytest.fail("Chromium and axe-core are required here (OPENDATA_REQUIRE_BROWSER) but missing")
        pytest.skip("needs Debian chromium and axe-core (npm install --prefix tests/browser); .ci/run installs both")
    from playwright.sync_api import sync_playwright

    return sync_playwright()


@pytest.mark.slow
@pytest.mark.parametrize("which", ["root", "release"])
def test_pages_have_no_wcag_violations_at_1280_and_320_px(base, which):
    url = f"{base}/" if which == "root" else f"{base}/{NAME}/1.0.0/"
    SHOTS.mkdir(parents=True, exist_ok=True)
    flags = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync"]  # fmt: skip
    with browser() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=flags)
        try:
            for width in (1280, 320):
                # the served policy forbids every script, axe-core's too: the test's own page bypasses it
                page = chromium.new_page(viewport={"width": width, "height": 900}, bypass_csp=True)
                page.goto(url)
                page.add_script_tag(path=str(AXE))
                result = page.evaluate("(tags) => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG)
                page.screenshot(path=str(SHOTS / f"{which}-{width}px.png"), full_page=True)
                assert result["passes"], "axe-core ran no rule"
                violations = [(v["id"], v["help"], [n["target"] for n in v["nodes"][:3]]) for v in result["violations"]]
                assert not violations, (which, width, violations)
                if width == 320:  # readable at 320 px: nothing wider than the window but scrollable regions
                    wide = page.evaluate("document.documentElement.scrollWidth")
                    assert wide <= 320, wide
                page.close()
        finally:
            chromium.close()
