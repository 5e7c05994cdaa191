"""The host's commands as a user runs them: keys, signed publish, verify, sync, diff, calendar."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from shipped_specs import OUTSIDERS

pytestmark = pytest.mark.slow  # end to end: left out of the quick subset (make test-quick)

ROOT = Path(__file__).resolve().parent.parent
SPEC = OUTSIDERS
NAME = "work-programme-subcontractor-mi"


def opendata(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "opendata.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def ok(run: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert run.returncode == 0, run.stderr + run.stdout
    return run


def test_sign_publish_verify_sync_and_diff(tmp_path):
    ok(opendata("sample", "--out", tmp_path / "mi", "--rows", 2000, "--seed", 5, "--months", 3, "--format", "csv"))
    mi = tmp_path / "mi" / "work-programme-mi.csv"
    ok(opendata("keys", "generate", "--private", tmp_path / "k.key", "--public", tmp_path / "k.pub"))
    assert opendata("keys", "generate", "--private", tmp_path / "k.key", "--public", tmp_path / "k.pub").returncode == 1
    public = tmp_path / "releases"
    ok(
        opendata(
            "release",
            SPEC,
            mi,
            "--out",
            public,
            "--release-time",
            "2026-11-12T09:30:00+00:00",
            "--late",
            "--reason",
            "test",
            "-q",
        )
    )
    ok(opendata("publish", "--out", public, "--key", tmp_path / "k.key"))
    ok(opendata("verify", public, "--trust", tmp_path / "k.pub"))
    ok(opendata("verify", public / NAME / "1.0.0", "--trust", tmp_path / "k.pub"))

    # a correction: 300 referrals of August 2011 were really made in July → a PATCH, staged for the future
    lines = mi.read_text().splitlines()
    header = lines[0].split(",")
    col = header.index("referral_date")
    rows, moved = [], 0
    for line in lines[1:]:
        cells = line.split(",")
        if moved < 300 and cells[col].startswith("2011-08"):
            cells[col] = "2011-07" + cells[col][7:]
            moved += 1
        rows.append(",".join(cells))
    fixed = tmp_path / "fixed.csv"
    fixed.write_text("\n".join([lines[0], *rows]) + "\n")
    run = ok(opendata("release", SPEC, fixed, "--out", public, "--release-time", "2099-01-08T09:30:00+00:00", "--json"))
    assert (json.loads(run.stdout)["version"], json.loads(run.stdout)["bump"]) == ("1.0.1", "patch")
    staged = tmp_path / "staging" / NAME / "1.0.1"
    revisions = json.loads((staged / "datapackage.json").read_text())["opendata:revisions"]
    assert revisions["previous"] == "1.0.0" and revisions["count"] > 0
    first = revisions["cells"][0]
    frame = pd.read_parquet(staged / "data" / f"{first['table']}.parquet")
    for k, v in first["key"].items():
        frame = frame[frame[k].astype(str) == v]
    assert frame[first["measure"] + "_status"].tolist() == ["r"]
    assert frame[first["measure"]].tolist() == [first["new"]]
    assert "## Revisions" in (staged / "README.md").read_text()

    mirror = tmp_path / "mirror"
    run = ok(opendata("sync", public, mirror, "--trust", tmp_path / "k.pub", "--json"))
    assert json.loads(run.stdout)["versions_added"] == [f"{NAME} 1.0.0"]
    assert (mirror / NAME / "1.0.0" / "datapackage.json").is_file()
    assert not (mirror / NAME / "1.0.1").exists(), "a staged release reached a mirror"
    ok(opendata("verify", mirror, "--trust", tmp_path / "k.pub"))

    other = tmp_path / "other"
    ok(opendata("keys", "generate", "--private", other / "o.key", "--public", other / "o.pub"))
    before = sorted(p for p in mirror.rglob("*"))
    bad = opendata("sync", public, mirror, "--trust", other / "o.pub")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert before == sorted(p for p in mirror.rglob("*"))

    run = ok(opendata("diff", f"{NAME}@1.0.0", public / NAME / "1.0.0", "--out", public, "--json"))
    assert json.loads(run.stdout)["bump"] is None


def test_calendar_commands(tmp_path):
    ok(opendata("calendar", "--file", ROOT / "specs" / "calendar.yaml", "check"))
    listing = ok(opendata("calendar", "--file", ROOT / "specs" / "calendar.yaml", "--dataset", NAME))
    assert "wpmi" in listing.stdout
    bad = tmp_path / "cal.yaml"
    bad.write_text(
        "datasets:\n  - name: x\n    title: X\n    releases:\n"
        "      - {id: a, release: 2026-12-05T09:30, covers: 2026-09-30, kind: management information,"
        " status: final, announced: 2026-11-28}\n"
    )
    run = opendata("calendar", "--file", bad, "check")
    assert run.returncode == 1
    assert "weekend" in run.stderr and "notice" in run.stderr


def test_protect_table_given_as_base_cells(tmp_path):
    (tmp_path / "area.csv").write_text(
        "code,parent\nNorth,Total\nSouth,Total\nN1,North\nN2,North\nS1,South\nS2,South\n"
    )
    rows = ["sub,area,job_starts"]
    values = iter([3, 40, 25, 31, 18, 22, 7, 50, 12, 33, 29, 41])
    rows += [f"{s},{a},{next(values)}" for s in ("a", "b", "c") for a in ("N1", "N2", "S1", "S2")]
    (tmp_path / "cells.csv").write_text("\n".join(rows) + "\n")
    run = ok(
        opendata(
            "protect",
            "cells.csv",
            "--dim",
            "sub",
            "--dim",
            "area=area.csv",
            "--value",
            "job_starts",
            "--out",
            "protected.csv",
            "--public",
            "public.csv",
            cwd=tmp_path,
        )
    )
    assert "audit passed" in run.stdout
    protected = (tmp_path / "protected.csv").read_text().splitlines()
    public = (tmp_path / "public.csv").read_text().splitlines()
    assert protected[0].split(",")[-1] == "status" and "status" not in public[0]
    hidden = [p.split(",")[-1] != "published" for p in protected[1:]]
    assert hidden == [line.endswith("[c]") for line in public[1:]]
    assert sum(line.split(",")[-1] == "primary" for line in protected[1:]) == 2  # the 3 and the 7
    bad = opendata("protect", "cells.csv", "--dim", "nope", "--value", "job_starts", "--out", "x.csv", cwd=tmp_path)
    assert bad.returncode == 1 and "nope" in bad.stderr and "Traceback" not in bad.stderr


def test_one_name_per_thing_old_spellings_say_the_new_one(tmp_path: Path) -> None:
    """Finding 8: --key meant the public key in verify and the private key in publish; the tree was
    --out or --root. Now --out is the tree, --key the private key and --trust the public key everywhere."""
    for args, new in (
        (("verify", tmp_path, "--key", tmp_path / "k.pub"), "--key is now --trust"),
        (("diff", "a@1.0.0", "a@1.0.1", "--root", tmp_path), "--root is now --out"),
    ):
        run = opendata(*args)
        assert run.returncode == 2 and new in run.stderr and "Traceback" not in run.stderr


def test_an_error_naming_markup_is_printed_as_text_not_a_traceback(tmp_path: Path) -> None:
    """A path or value shaped like console markup (``[/bold]``) once crashed the error printer with
    a MarkupError traceback, and ``[quarter, month]`` in a message vanished; both are text now."""
    run = opendata("validate", tmp_path / "[/bold]missing.yaml", tmp_path / "mi.csv")
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert "[/bold]missing.yaml does not exist" in run.stderr
