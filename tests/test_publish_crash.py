"""Publishing survives ``kill -9`` at every step, and two publishers at once (issue 10, item 6).

Each crash test starts a real ``opendata`` process that kills itself with SIGKILL at one point of
its work (the point is chosen by wrapping one library function in the child process; the code
under test is unchanged), then runs ``opendata publish`` again as a user would. After the re-run
the tree verifies, every public version has its changelog entry and its catalogue entry, and no
temporary directory is left anywhere.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from shipped_specs import OUTSIDERS

from opendata.embargo import OWNER_FILE, publish
from opendata.release import cut_release
from opendata.sample import write_sample

ROOT = Path(__file__).resolve().parent.parent
SPEC = OUTSIDERS
NAME = "work-programme-subcontractor-mi"
FIRST = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
SECOND = datetime(2026, 2, 19, 9, 30, tzinfo=UTC)
SECOND_VERSION = "1.0.1"  # the later MI revises values of the same months: a correction

# Runs the CLI in a child that SIGKILLs itself right after (or, for "copied", instead of finishing)
# one step of its work: argv[1] names the point, the rest is the opendata command line.
KILLER = """
import os, shutil, signal, sys
import opendata.catalog as catalog
import opendata.embargo as embargo
import opendata.package as package

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def then_die(fn, calls=1):
    seen = []
    def wrapped(*args, **kwargs):
        result = fn(*args, **kwargs)
        seen.append(1)
        if len(seen) >= calls:
            die()
        return result
    return wrapped

point = sys.argv[1]
if point == "stamped":  # the publish moment is in the staged descriptor, nothing moved yet
    embargo._stamp_published = then_die(embargo._stamp_published)
elif point == "copied":  # a move across file systems copied the version but did not remove its source
    def copy_only(source, target):
        shutil.copytree(source, target)
        die()
    embargo._move = copy_only
elif point == "moved":  # public, but no changelog entry and no catalogue entry yet
    embargo._move = then_die(embargo._move)
elif point == "changelog":  # changelog written, catalogue not
    embargo.append_changelog = then_die(embargo.append_changelog)
elif point == "catalogue":  # half the catalogue files rewritten
    catalog.write_atomic = then_die(catalog.write_atomic, calls=2)
elif point == "writing":  # release: package half-written in a temporary directory
    package._write_resources = then_die(package._write_resources)
from opendata.cli import main
main(sys.argv[2:], prog_name="opendata")
"""


def cli(*args, check: bool = True) -> subprocess.CompletedProcess:
    run = subprocess.run(
        [sys.executable, "-m", "opendata.cli", *map(str, args)], capture_output=True, text=True, timeout=600
    )
    assert "Traceback" not in run.stderr, run.stderr
    if check:
        assert run.returncode == 0, run.stderr + run.stdout
    return run


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """1.0.0 public, its successor (``SECOND_VERSION``) staged and due, a key pair, and the MI."""
    root = tmp_path_factory.mktemp("crash")
    mi = root / "mi"
    write_sample(mi, 1000, 11, months=3, formats=("csv",))  # small: these tests are about crashes, not SDC
    cli("keys", "generate", "--private", root / "publisher.key", "--public", root / "publisher.pub")
    public, staging = root / "releases", root / "staging"
    early = root / "early.csv"
    lines = (mi / "work-programme-mi.csv").read_text().splitlines(keepends=True)
    early.write_text("".join(lines[: len(lines) * 2 // 3]))  # fewer referrals: the later MI changes values
    cut_release(SPEC, [early], public, staging=staging, release_time=FIRST, now=FIRST.replace(day=1))
    publish(staging, public, FIRST)
    later = cut_release(SPEC, [mi / "work-programme-mi.csv"], public, staging=staging, release_time=SECOND, now=FIRST)
    assert later.version == SECOND_VERSION
    return root


def copy_of(prepared: Path, tmp_path: Path, name: str = "work") -> Path:
    """A copy of the prepared trees; its staging area is told it now serves the copied public tree."""
    work = tmp_path / name
    shutil.copytree(prepared, work, symlinks=True)
    (work / "staging" / OWNER_FILE).unlink()
    return work


def killed(work: Path, point: str, *args) -> None:
    run = subprocess.run(
        [sys.executable, "-c", KILLER, point, *map(str, args)], capture_output=True, text=True, timeout=600
    )
    assert run.returncode == -signal.SIGKILL, f"{point}: the process was not killed there\n{run.stderr}"


def assert_whole(work: Path) -> None:
    """What must hold after any crash and one re-run."""
    public, staging = work / "releases", work / "staging"
    cli("verify", public, "--trust", work / "publisher.pub")
    log = (public / NAME / "CHANGELOG.md").read_text()
    assert log.count(f"## [{SECOND_VERSION}]") == 1 and log.count("## [1.0.0]") == 1
    assert log.index(f"## [{SECOND_VERSION}]") < log.index("## [1.0.0]")  # newest first
    catalog = json.loads((public / "catalog.json").read_text())
    assert [v["version"] for p in catalog["packages"] for v in p["versions"]] == ["1.0.0", SECOND_VERSION]
    assert not (staging / NAME / SECOND_VERSION).exists()
    leftovers = [p for p in (*public.rglob(".tmp*"), *staging.rglob(".tmp*"), *public.rglob("*.tmp"))]
    assert leftovers == []
    descriptor = json.loads((public / NAME / SECOND_VERSION / "datapackage.json").read_text())
    assert descriptor["opendata:release"]["published"] >= descriptor["created"]  # never before its release time


@pytest.mark.slow
@pytest.mark.parametrize("point", ["stamped", "copied", "moved", "changelog", "catalogue"])
def test_publish_killed_at_each_step_is_finished_by_the_next_run(prepared: Path, tmp_path: Path, point: str) -> None:
    work = copy_of(prepared, tmp_path)
    tree = ("--out", work / "releases", "--staging", work / "staging", "--key", work / "publisher.key")
    killed(work, point, "publish", *tree)
    cli("publish", *tree)
    assert_whole(work)


@pytest.mark.slow
def test_release_killed_mid_write_leaves_nothing_after_the_next_run(prepared: Path, tmp_path: Path) -> None:
    work = copy_of(prepared, tmp_path)
    shutil.rmtree(work / "staging" / NAME / SECOND_VERSION)
    args = [SPEC, work / "mi" / "work-programme-mi.csv", "--out", work / "releases", "--staging", work / "staging"]
    args += ["--release-time", "2026-02-19T09:30:00+00:00", "--late", "--reason", "test", "-q"]
    killed(work, "writing", "release", *args)
    assert list((work / "staging" / NAME).glob(".tmp-*")), "the kill should have left a half-written package"
    cli("release", *args)
    cli("publish", "--out", work / "releases", "--staging", work / "staging", "--key", work / "publisher.key")
    assert_whole(work)


@pytest.mark.slow
def test_two_publishers_at_once_one_publishes_the_other_waits(prepared: Path, tmp_path: Path) -> None:
    """Ten times: both exit 0 without a traceback; exactly one of them published the staged version."""
    for trial in range(10):
        work = copy_of(prepared, tmp_path, f"trial{trial}")
        tree = ("--out", work / "releases", "--staging", work / "staging", "--key", work / "publisher.key")
        with ThreadPoolExecutor(2) as pool:
            runs = [f.result() for f in [pool.submit(cli, "publish", *tree) for _ in range(2)]]
        published = [r for r in runs if f"published {NAME} {SECOND_VERSION}" in r.stdout]
        assert len(published) == 1, [r.stdout for r in runs]
        assert_whole(work)
