"""The hub in a real browser: an organisation signs in, uploads a spreadsheet with three kinds of
error, sees each located, downloads the to-do list and the marked spreadsheet, fixes and uploads
again, previews and publishes; another organisation sees the published data, never the upload; a
reader compares the two programmes on a funnel plot.

Debian ``chromium`` driven by Playwright against ``opendata hub serve`` started as a real process;
axe-core checks each page (WCAG 2.2 AA). Screenshots of each step land in
``test-output/screenshots/hub-*.png`` for a person to look at."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pytest
from shipped_specs import OUTSIDERS
from test_hub import PASSWORD, run, serving
from test_pages import AXE, CHROMIUM, SHOTS, WCAG, browser

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("hub-browser")]

RELEASE_MS = 300_000  # preview cuts a whole release (protection and the joint audit): minutes on a loaded CI machine


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    base = tmp_path_factory.mktemp("hub-browser")
    root = base / "hub"
    run("hub", "init", str(root), "--specs", str(OUTSIDERS.parent))
    env = {**os.environ, "OPENDATA_HUB_PASSWORD": PASSWORD}
    for org, title in (("acme", "Acme Employment"), ("bravo", "Bravo Works")):
        run("hub", "add-org", str(root), org, "--title", title)
        run("hub", "add-user", str(root), f"ana@{org}.example", "--org", org, env=env)
    run("sample", "--out", str(base / "mi"), "--rows", "1500", "--seed", "5", "--months", "3", "--format", "csv", "-q")
    run("sample", "--out", str(base / "mi2"), "--rows", "1500", "--seed", "6", "--months", "3", "--format", "csv", "-q")
    run("hub", "upload", str(root), "bravo", str(base / "mi2" / "work-programme-mi.csv"), "--publish")
    with serving(root) as url:
        yield url, base / "mi" / "work-programme-mi.csv"


def _workbook(mi: Path, out: Path, broken: bool) -> Path:
    rows = list(csv.reader(io.StringIO(mi.read_text(encoding="utf-8"))))
    if broken:
        header = rows[0]
        rows[2][header.index("referral_date")] = "2011-06-31"  # an impossible date
        rows[4][header.index("payment_group")] = "PG99"  # not in the code list
        rows[6][header.index("participant_id")] = rows[5][header.index("participant_id")]  # the same person twice
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "MI"
    for row in rows:
        sheet.append(row)
    book.save(out)
    return out


def _check(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"hub-{name}.png"), full_page=True)
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("(tags) => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG)
    violations = [(v["id"], v["help"], [n["target"] for n in v["nodes"][:3]]) for v in result["violations"]]
    assert result["passes"] and not violations, (name, violations)


def _sign_in(page, url: str, org: str) -> None:
    page.goto(url + "/sign-in")
    page.get_by_label("Email address").fill(f"ana@{org}.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(url + "/uploads")


def test_an_organisation_fixes_its_upload_and_publishes_it_another_sees_only_the_result(hub, tmp_path):
    url, mi = hub
    SHOTS.mkdir(parents=True, exist_ok=True)
    with browser() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            acme = chromium.new_context(bypass_csp=True, accept_downloads=True).new_page()
            _sign_in(acme, url, "acme")
            _check(acme, "1-uploads")
            acme.get_by_label("Files (CSV, XLSX or ODS)").set_input_files(
                str(_workbook(mi, tmp_path / "mi.xlsx", True))
            )
            acme.get_by_role("button", name="Upload and check").click()
            acme.wait_for_selector("text=Not accepted")
            report = acme.content()
            for cell in ("B3", "F5"):  # the date and the payment group, where the uploader finds them
                assert f"<td>{cell}</td>" in report, cell
            assert "A7" in report or "A6" in report  # the duplicate id
            _check(acme, "2-problems")
            rejected_url = acme.url

            with acme.expect_download() as todo:
                acme.get_by_role("link", name="to-do list (CSV)").click()
            todo_text = Path(todo.value.path()).read_text(encoding="utf-8-sig")
            assert "2011-06-31" in todo_text and "PG99" in todo_text
            with acme.expect_download() as marked:
                acme.get_by_role("link", name="mi.xlsx marked (XLSX)").click()
            book = openpyxl.load_workbook(io.BytesIO(Path(marked.value.path()).read_bytes()))
            assert book.sheetnames[0] == "Problems" and book[book.sheetnames[1]]["F5"].value == "PG99"

            acme.goto(url + "/uploads")
            acme.get_by_label("Files (CSV, XLSX or ODS)").set_input_files(
                str(_workbook(mi, tmp_path / "fixed.xlsx", False))
            )
            acme.get_by_role("button", name="Upload and check").click()
            acme.wait_for_selector("text=Accepted")
            _check(acme, "3-accepted")
            acme.get_by_role("button", name="Preview the public view").click(timeout=RELEASE_MS)
            acme.get_by_role("link", name="Preview the public view").click()
            acme.wait_for_selector("h1")
            acme.screenshot(path=str(SHOTS / "hub-4-preview.png"), full_page=True)
            acme.go_back()
            acme.get_by_role("button", name="Publish").click(timeout=RELEASE_MS)
            acme.wait_for_selector("text=is public", timeout=RELEASE_MS)
            _check(acme, "5-published")

            bravo = chromium.new_context(bypass_csp=True).new_page()
            _sign_in(bravo, url, "bravo")
            bravo.goto(url + "/")
            assert "acme-work-programme-subcontractor-mi" in bravo.content()
            _check(bravo, "6-home")
            answer = bravo.goto(rejected_url)
            assert answer.status == 404
            assert "Upload of" not in bravo.content()

            reader = chromium.new_context(bypass_csp=True).new_page()  # not signed in
            reader.goto(url + "/compare")
            reader.get_by_label("Indicator").select_option("attachments-per-referral")
            reader.get_by_role("button", name="Compare").click()
            reader.wait_for_selector("figure svg")
            text = reader.content()
            assert "acme-work-programme-subcontractor-mi" in text and "bravo-work-programme-subcontractor-mi" in text
            assert "community contributed" in text
            _check(reader, "7-compare")
        finally:
            chromium.close()
