"""The hub as a real process over HTTP: upload, located problems, isolation, limits, publish, sync.

Every test talks to ``opendata hub serve`` started as a user would start it, with httpx as the
client; nothing is mocked. The browser journey is in ``tests/test_hub_browser.py``.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import openpyxl
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from shipped_specs import OUTSIDERS

ROOT = Path(__file__).resolve().parent.parent
OPENDATA = [sys.executable, "-m", "opendata"]
MAX_BODY = 2_000_000
PASSWORD = "correct horse battery staple"
HOSTILE = '=HYPERLINK("http://evil.example","click")'

pytestmark = pytest.mark.xdist_group("hub")


def run(*args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    result = subprocess.run([*OPENDATA, *args], capture_output=True, text=True, cwd=ROOT, **kw)
    if check and result.returncode != 0:
        raise AssertionError(f"opendata {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Hub:
    root: Path
    url: str
    tokens: dict[str, str]
    signer: Ed25519PrivateKey
    mi: Path

    def api(self, org: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"authorization": f"Bearer {self.tokens[org]}"}, timeout=120)

    def upload(self, org: str, files: dict[str, bytes], **headers: str) -> httpx.Response:
        with self.api(org) as client:
            parts = [("file", (name, data)) for name, data in files.items()]
            return client.post("/api/uploads", files=parts, data={"kind": "records"}, headers=headers)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    base = tmp_path_factory.mktemp("hub")
    root = base / "hub"
    run("hub", "init", str(root), "--specs", str(OUTSIDERS.parent))
    signer = Ed25519PrivateKey.generate()
    key = base / "signed.pub"
    key.write_bytes(signer.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    run("hub", "add-org", str(root), "acme", "--title", "Acme Employment")
    run("hub", "add-org", str(root), "bravo", "--title", "Bravo Works")
    run("hub", "add-org", str(root), "signed", "--title", "Signed Org", "--key", str(key))
    env = {**os.environ, "OPENDATA_HUB_PASSWORD": PASSWORD}
    run("hub", "add-user", str(root), "ana@acme.example", "--org", "acme", env=env)
    tokens = {org: run("hub", "token", str(root), org).stdout.strip() for org in ("acme", "bravo", "signed")}
    mi = base / "mi"
    run("sample", "--out", str(mi), "--rows", "1500", "--seed", "3", "--months", "3", "--format", "csv", "-q")
    with serving(root, "--max-body", str(MAX_BODY)) as url:
        yield Hub(root, url, tokens, signer, mi / "work-programme-mi.csv")


@contextmanager
def serving(root: Path, *options: str) -> Iterator[str]:
    """``opendata hub serve`` as a real process on a free port, until the block ends; yields its URL."""
    port = _free_port()
    server = subprocess.Popen(
        [*OPENDATA, "hub", "serve", str(root), "--port", str(port), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the hub did not start: {server.stderr.read().decode()}")
            time.sleep(0.1)
        yield url
    finally:
        server.terminate()  # uvicorn finishes a request in flight (a release: long under load) before it stops
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _with_errors(mi: Path) -> bytes:
    """The sample MI with three kinds of error: an impossible date, an unknown code, a duplicate id."""
    rows = list(csv.reader(io.StringIO(mi.read_text(encoding="utf-8"))))
    header = rows[0]
    rows[3][header.index("referral_date")] = "2011-02-30"
    rows[5][header.index("cpa")] = HOSTILE
    rows[8][header.index("participant_id")] = rows[7][header.index("participant_id")]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode()


@pytest.mark.slow
def test_an_upload_with_three_kinds_of_error_is_refused_with_each_located(hub: Hub):
    reply = hub.upload("acme", {"mi.csv": _with_errors(hub.mi)})
    assert reply.status_code == 422, reply.text
    body = reply.json()
    assert body["status"] == "rejected"
    findings = body["report"]["findings"]
    located = {(f["rule"], f["cell"]) for f in findings}
    rules = {f["rule"] for f in findings}
    assert len(rules) >= 3, rules
    cells = {f["cell"] for f in findings}
    # data row 3 is line 4 of the file; referral_date is column B, cpa column C, participant_id column A
    assert "B4" in cells and "C6" in cells and ("A9" in cells or "A8" in cells), located
    stages = {s["stage"]: s for s in body["report"]["stages"]}
    assert stages["values"]["blocking"] >= 2 and stages["cross-file"]["blocking"] >= 1

    with hub.api("acme") as client:
        todo = client.get(body["links"]["todo"])
        assert todo.status_code == 200 and todo.headers["content-type"].startswith("text/csv")
        text = todo.content.decode("utf-8-sig")
        assert "'" + HOSTILE.replace('"', '""') in text  # neutralised: a leading apostrophe, never a formula
        assert not re.search(r'(^|,)"?=HYPERLINK', text, re.M)
        marked = client.get(body["links"]["marked"]["mi.csv"])
        assert marked.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(marked.content))
    assert book.sheetnames[0] == "Problems"
    data = book[book.sheetnames[1]]
    assert data["C6"].value == HOSTILE and data["C6"].data_type == "s"
    with zipfile.ZipFile(io.BytesIO(marked.content)) as z:
        assert not any(b"<f>" in z.read(n) for n in z.namelist() if n.startswith("xl/worksheets/"))


def test_another_organisation_gets_404_for_an_upload_it_does_not_own(hub: Hub):
    upload = hub.upload("acme", {"mi.csv": _with_errors(hub.mi)}).json()
    uid = upload["id"]
    with hub.api("bravo") as bravo:
        for path in (f"/api/uploads/{uid}", f"/api/uploads/{uid}/todo.csv", f"/api/uploads/{uid}/marked/mi.csv.xlsx"):
            assert bravo.get(path).status_code == 404, path
        assert bravo.post(f"/api/uploads/{uid}/preview").status_code == 404
        assert bravo.get(f"/api/uploads/{'0' * 32}").status_code == 404  # a guessed id: the same answer
    assert httpx.get(f"{hub.url}/api/uploads/{uid}").status_code == 401  # no token
    with hub.api("acme") as acme:
        assert acme.get(f"/api/uploads/{uid}").status_code == 200


def test_posts_without_the_session_csrf_token_are_refused(hub: Hub):
    with httpx.Client(base_url=hub.url, follow_redirects=False) as browser:
        page = browser.get("/sign-in")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        refused = browser.post("/sign-in", data={"email": "ana@acme.example", "password": PASSWORD})
        assert refused.status_code == 403
        forged = browser.post("/sign-in", data={"email": "ana@acme.example", "password": PASSWORD, "csrf": "x" * 43})
        assert forged.status_code == 403
        wrong = browser.post(
            "/sign-in", data={"email": "ana@acme.example", "password": "wrong password!", "csrf": token}
        )
        assert wrong.status_code == 401
        signed = browser.post("/sign-in", data={"email": "ana@acme.example", "password": PASSWORD, "csrf": token})
        assert signed.status_code == 303
        assert "strict" in signed.headers["set-cookie"].lower() and "httponly" in signed.headers["set-cookie"].lower()
        uploads = browser.get("/uploads")
        assert uploads.status_code == 200
        fresh = re.search(r'name="csrf" value="([^"]+)"', uploads.text).group(1)
        assert fresh != token  # a new token after signing in
        no_token = browser.post("/uploads", files={"file": ("mi.csv", hub.mi.read_bytes())}, data={"kind": "records"})
        assert no_token.status_code == 403
        ok = browser.post(
            "/uploads", files={"file": ("mi.csv", hub.mi.read_bytes())}, data={"kind": "records", "csrf": fresh}
        )
        assert ok.status_code == 303 and ok.headers["location"].startswith("/uploads/")
        report = browser.get(ok.headers["location"])
        assert "Accepted" in report.text and "content-security-policy" in report.headers


def test_oversized_and_zip_bomb_uploads_are_refused_within_limits(hub: Hub):
    big = b"x" * (MAX_BODY + 1)
    assert hub.upload("acme", {"big.csv": big}).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused while it streams
        boundary = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\n'
        yield boundary
        for _ in range(MAX_BODY // 65536 + 2):
            yield b"y" * 65536

    with hub.api("acme") as client:
        streamed = client.post(
            "/api/uploads", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"}
        )
    assert streamed.status_code == 413

    bomb = io.BytesIO()  # a workbook whose one sheet unpacks to 300 MiB
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        with z.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as f:
            for _ in range(300):
                f.write(b" " * (1 << 20))
    started = time.monotonic()
    reply = hub.upload("acme", {"bomb.xlsx": bomb.getvalue()})
    assert time.monotonic() - started < 30
    assert reply.status_code == 422
    assert reply.json()["report"]["stages"][0]["blocking"] >= 1


def test_signed_organisations_uploads_need_a_valid_signature(hub: Hub):
    data = hub.mi.read_bytes()
    assert hub.upload("signed", {"mi.csv": data}).status_code == 400
    forged = base64.b64encode(hub.signer.sign(b"other bytes")).decode()
    assert hub.upload("signed", {"mi.csv": data}, **{"x-signature": forged}).status_code == 400
    good = base64.b64encode(hub.signer.sign(data)).decode()
    assert hub.upload("signed", {"mi.csv": data}, **{"x-signature": good}).status_code == 201


@pytest.mark.slow
def test_upload_preview_publish_and_sync_with_the_hubs_key(hub: Hub, tmp_path: Path):
    reply = hub.upload("acme", {"mi.csv": hub.mi.read_bytes()})
    assert reply.status_code == 201, reply.text
    uid = reply.json()["id"]
    with hub.api("acme") as acme, hub.api("bravo") as bravo:
        assert acme.post(f"/api/uploads/{uid}/publish").status_code == 409  # preview first
        previewed = acme.post(f"/api/uploads/{uid}/preview")
        assert previewed.status_code == 200, previewed.text
        body = previewed.json()
        package, version = body["package"], body["version"]
        assert package == "acme-work-programme-subcontractor-mi" and version == "1.0.0"
        page = acme.get(body["links"]["preview"])
        assert page.status_code == 200 and "private" in page.headers["cache-control"]
        assert bravo.get(f"/api/uploads/{uid}/preview/").status_code == 404
        assert httpx.get(f"{hub.url}/data/{package}/{version}/datapackage.json").status_code == 404  # not public yet
        published = acme.post(f"/api/uploads/{uid}/publish")
        assert published.status_code == 200, published.text
        assert published.json()["status"] == "published"
        assert acme.post(f"/api/uploads/{uid}/publish").status_code == 409  # never twice
    public = httpx.get(f"{hub.url}/data/{package}/{version}/datapackage.json")
    assert public.status_code == 200 and public.json()["version"] == version
    assert httpx.get(f"{hub.url}/data/.publish.lock").status_code == 404
    home = httpx.get(hub.url + "/")
    assert package in home.text

    (tmp_path / "hub.pub").write_bytes(httpx.get(f"{hub.url}/hub.pub").content)
    mirror = tmp_path / "mirror"
    synced = run("sync", f"{hub.url}/data/", str(mirror), "--trust", str(tmp_path / "hub.pub"))
    assert f"{package} {version}" in synced.stdout or (mirror / package / version / "datapackage.json").is_file()
    run("verify", str(mirror / package / version), "--trust", str(tmp_path / "hub.pub"))
    audited = run("audit", str(mirror / package / version), check=False)
    assert audited.returncode == 0, audited.stdout + audited.stderr

    log = [line for line in run("hub", "log", str(hub.root)).stdout.splitlines() if uid in line]
    assert any('"action": "upload"' in line for line in log)
    assert any('"action": "preview"' in line for line in log)
    assert any('"action": "publish"' in line for line in log)


@pytest.mark.slow
def test_a_publishers_tree_is_mirrored_verified_and_compared_with_community_data(hub: Hub, tmp_path: Path):
    dwp = tmp_path / "dwp"
    run("release", str(OUTSIDERS), str(hub.mi), "--out", str(dwp), "--calendar", "specs/calendar.yaml",
        "--release-time", "2026-11-12T09:30:00+00:00", "--late", "--reason", "test", "-q")  # fmt: skip
    run("keys", "generate", "--private", str(tmp_path / "dwp.key"), "--public", str(tmp_path / "dwp.pub"))
    run("publish", "--out", str(dwp), "--key", str(tmp_path / "dwp.key"), "-q")
    run("hub", "subscribe", str(hub.root), "dwp", str(dwp), "--trust", str(tmp_path / "dwp.pub"),
        "--title", "Department for Work and Pensions", "--kind", "management information")  # fmt: skip
    assert "added: work-programme-subcontractor-mi 1.0.0" in run("hub", "refresh", str(hub.root)).stdout

    other = tmp_path / "bravo-mi"
    run("sample", "--out", str(other), "--rows", "1500", "--seed", "9", "--months", "3", "--format", "csv", "-q")
    run("hub", "upload", str(hub.root), "bravo", str(other / "work-programme-mi.csv"), "--publish")

    answer = httpx.get(f"{hub.url}/api/compare", params={"indicator": "attachments-per-referral", "level": "cpa"})
    assert answer.status_code == 200, answer.text
    result = answer.json()["comparison"]
    kinds = {p["package"]: p["kind"] for p in result["programmes"]}
    assert kinds["work-programme-subcontractor-mi"] == "management information"
    assert kinds["bravo-work-programme-subcontractor-mi"] == "community contributed"
    assert {p["package"] for p in result["points"]} >= {
        "work-programme-subcontractor-mi",
        "bravo-work-programme-subcontractor-mi",
    }
    totals = [p for p in result["points"] if p["denominator"] > 0]
    assert 0 < result["benchmark"] < 1 and totals
    for p in result["points"]:  # every verdict agrees with the interval and the pooled benchmark
        expected = (
            "better"
            if p["lower_95"] > result["benchmark"]
            else "worse"
            if p["upper_95"] < result["benchmark"]
            else "similar"
        )
        assert p["verdict_95"] == expected
    only = httpx.get(
        f"{hub.url}/api/compare",
        params=[("indicator", "attachments-per-referral"), ("programme", "bravo-work-programme-subcontractor-mi")],
    )
    assert {p["package"] for p in only.json()["comparison"]["points"]} == {"bravo-work-programme-subcontractor-mi"}
    east = httpx.get(
        f"{hub.url}/api/compare",
        params={"indicator": "attachments-per-referral", "level": "cpa", "area": "CPA01"},
    )
    assert east.status_code == 200
    assert {p["entity"] for p in east.json()["comparison"]["points"]} == {"CPA01"}  # one area, every programme's
    assert (
        httpx.get(f"{hub.url}/api/compare", params={"indicator": "attachments-per-referral", "area": "X"}).status_code
        == 400
    )
    page = httpx.get(f"{hub.url}/compare", params={"indicator": "attachments-per-referral"})
    assert page.status_code == 200 and "<svg" in page.text and "community contributed" in page.text
    assert (
        httpx.get(f"{hub.url}/publishers/dwp/work-programme-subcontractor-mi/1.0.0/datapackage.json").status_code == 200
    )
    assert httpx.get(f"{hub.url}/publishers/dwp/.sync-state.json").status_code == 404
    assert httpx.get(f"{hub.url}/compare", params={"indicator": "<script>"}).status_code == 400

    catalog = dwp / "catalog.json"  # a changed catalogue no longer verifies with DWP's key: refused, mirror kept
    catalog.write_bytes(catalog.read_bytes().replace(b'"title": "', b'"title": "Forged ', 1))
    refused = run("hub", "refresh", str(hub.root), check=False)
    assert refused.returncode == 1 and "dwp: refused" in refused.stdout
    assert (
        hub.root / "publishers" / "dwp" / "work-programme-subcontractor-mi" / "1.0.0" / "datapackage.json"
    ).is_file()
    assert b"Forged" not in (hub.root / "publishers" / "dwp" / "catalog.json").read_bytes()


def _signed_in(hub: Hub, email: str) -> tuple[httpx.Client, str]:
    browser = httpx.Client(base_url=hub.url, follow_redirects=False, timeout=60)
    token = re.search(r'name="csrf" value="([^"]+)"', browser.get("/sign-in").text).group(1)
    signed = browser.post("/sign-in", data={"email": email, "password": PASSWORD, "csrf": token})
    assert signed.status_code == 303, signed.text
    return browser, re.search(r'name="csrf" value="([^"]+)"', browser.get("/uploads").text).group(1)


@pytest.mark.slow
def test_queries_on_a_published_figure_are_answered_in_public_and_a_correction_names_them(hub: Hub, tmp_path: Path):
    env = {**os.environ, "OPENDATA_HUB_PASSWORD": PASSWORD}
    run("hub", "add-org", str(hub.root), "delta", "--title", "Delta Training")
    run("hub", "add-user", str(hub.root), "dee@delta.example", "--org", "delta", env=env)
    run("hub", "add-user", str(hub.root), "bob@bravo.example", "--org", "bravo", env=env)
    run("hub", "upload", str(hub.root), "delta", str(hub.mi), "--publish")
    package = "delta-work-programme-subcontractor-mi"

    bob, csrf = _signed_in(hub, "bob@bravo.example")
    figure, question = "provider-by-month, CPA01, 2011-07, referrals", "Is <script>alert(1)</script> this right?"
    assert bob.post(f"/packages/{package}/queries", data={"figure": figure, "text": question}).status_code == 403
    raised = bob.post(f"/packages/{package}/queries", data={"figure": figure, "text": question, "csrf": csrf})
    assert raised.status_code == 303
    public = httpx.get(f"{hub.url}/packages/{package}")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in public.text and "<script>alert" not in public.text
    (query,) = httpx.get(f"{hub.url}/api/packages/{package}/queries").json()["queries"]
    assert query["figure"] == figure and query["author_org"] == "bravo" and query["answer"] is None
    qid = query["id"]
    assert (
        bob.post(f"/queries/{qid}/answer", data={"text": "yes", "csrf": csrf}).status_code == 404
    )  # not the publisher

    dee, csrf_dee = _signed_in(hub, "dee@delta.example")
    answered = dee.post(f"/queries/{qid}/answer", data={"text": "We are checking it.", "csrf": csrf_dee})
    assert answered.status_code == 303
    assert (
        httpx.get(f"{hub.url}/api/packages/{package}/queries").json()["queries"][0]["answer"] == "We are checking it."
    )

    other = tmp_path / "mi"
    run("sample", "--out", str(other), "--rows", "1500", "--seed", "4", "--months", "3", "--format", "csv", "-q")
    assert (
        run("hub", "upload", str(hub.root), "bravo", str(hub.mi), "--corrects", str(qid), check=False).returncode == 1
    )
    asked = {"indicator": "attachments-per-referral", "programme": package}
    before = httpx.get(f"{hub.url}/api/compare", params=asked).json()["comparison"]["programmes"]
    assert [p["version"] for p in before] == ["1.0.0"]
    correction = str(other / "work-programme-mi.csv")
    run("hub", "upload", str(hub.root), "delta", correction, "--corrects", str(qid), "--publish")
    after = httpx.get(f"{hub.url}/api/compare", params=asked).json()["comparison"]["programmes"]
    assert [p["version"] for p in after] != ["1.0.0"]  # a remembered answer is not served once a version is out
    (query,) = httpx.get(f"{hub.url}/api/packages/{package}/queries").json()["queries"]
    assert query["corrected_in"] and query["corrected_in"] != "1.0.0"
    descriptor = httpx.get(f"{hub.url}/data/{package}/{query['corrected_in']}/datapackage.json").json()
    assert f"query #{qid}" in json.dumps(descriptor["opendata:release"])
    for client in (bob, dee):
        client.close()


def test_a_store_write_keeps_remembered_answers_and_a_vanishing_wal_is_no_error(hub: Hub, tmp_path: Path):
    from opendata.hub.sources import Cached, _mtime
    from opendata.hub.store import Store

    store = Store(hub.root)
    shown = Cached(hub.root, store)
    shown()
    generation = shown.generation
    store.new_token("acme")  # writes the store, changes no package
    shown()
    assert shown.generation == generation
    assert _mtime(tmp_path / "hub.duckdb.wal") == 0  # DuckDB removes its WAL at will: a stat may find none
