"""Customer Service Standards frameworks (issue 16): the example passes ``opendata css check``; each
problem a reader would raise is flagged with its stage; a malformed or hostile file gets a message,
never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import jsonschema
import pytest
import textstat
import yaml

from opendata.css import (
    EVENTS,
    STAGES,
    FrameworkError,
    Stage,
    StandardMeasure,
    _text_findings,
    check_framework,
    json_schema,
    load_framework,
    sentences,
)
from opendata.workdays import NATIONS

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "specs" / "css" / "P01.yaml"
PAYMENT_GROUPS = ROOT / "specs" / "codelists" / "payment-groups.csv"
TODAY = date(2026, 12, 3)
FORTY_WORDS = (
    "When you start a job your adviser will call you in the first week to ask how it is going and "
    "whether there is anything at all that we can do to help you settle in and stay in work."
)
JARGON = "Your attachment to the programme will happen within 15 days."
HARD = "Unfortunately, administrative considerations necessitate comprehensive documentation."


def run(*args, env_columns: int = 200) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": str(env_columns)}
    command = [sys.executable, "-m", "opendata", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)


def example() -> dict:
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    raw["payment_groups"] = str(PAYMENT_GROUPS)  # the copy lives in tmp_path
    return raw


def write(tmp_path: Path, raw: object, name: str = "framework.yaml") -> Path:
    path = tmp_path / name
    path.write_text(raw if isinstance(raw, str) else yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def test_schema_is_valid_and_in_step_with_the_code():
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert tuple(schema["$defs"]["event"]["enum"]) == EVENTS
    assert tuple(schema["properties"]["nation"]["enum"]) == NATIONS
    assert schema["properties"]["stages"]["required"] == list(STAGES)
    link = ROOT / "specs" / "css" / "css.schema.json"
    assert link.is_symlink() and os.readlink(link) == "../../opendata/css.schema.json"


def test_the_example_holds_the_reports_standards():
    fw = load_framework(EXAMPLE)
    assert (fw.prime, fw.nation, fw.reviewed) == ("P01", "england-and-wales", date(2026, 10, 1))
    assert [s.id for s in fw.stages] == list(STAGES)
    attach = fw.stage("pre-programme-engagement").standard_measure
    assert (attach.from_event, attach.to_event, attach.limit, attach.unit) == (
        "referral",
        "attachment",
        15,
        "calendar_days",
    )
    assert (attach.limit_for("PG9"), attach.limit_for("PG1")) == (25, 15)
    review = fw.stage("pre-work-support").standard_measure
    assert (review.kind, review.to_event, review.limit, review.unit) == ("every", "review", 13, "weeks")
    exit_report = fw.stage("programme-exit").standard_measure
    assert (exit_report.from_event, exit_report.limit, exit_report.unit) == (
        "exit_report_requested",
        10,
        "working_days",
    )
    assert check_framework(fw, TODAY) == []


def test_the_example_passes_opendata_css_check():
    result = run("css", "check", EXAMPLE, "--today", TODAY)
    assert result.returncode == 0, result.stderr
    assert "no findings" in result.stdout and "pre-programme-engagement" in result.stdout
    result = run("css", "check", EXAMPLE, "--today", TODAY, "--json")
    assert result.returncode == 0, result.stderr
    [report] = json.loads(result.stdout)["frameworks"]
    assert report["ok"] and report["findings"] == []
    assert [s["stage"] for s in report["stages"]] == list(STAGES)
    assert all(s["flesch_reading_ease"] >= 60 and s["grade"] <= 9 for s in report["stages"])


def test_each_problem_is_flagged_with_its_stage(tmp_path):
    raw = example()
    raw["reviewed"] = "2026-04-03"  # eight months before TODAY
    stages = raw["stages"]
    stages["in-work-support"]["service_standard"] += " " + FORTY_WORDS
    stages["pre-programme-engagement"]["service_standard"] += " " + JARGON
    stages["programme-exit"]["service_standard"] += " " + HARD
    stages["pre-programme-engagement"]["standard_measure"]["overrides"]["PG10"] = 30
    path = write(tmp_path, raw)
    assert textstat.lexicon_count(FORTY_WORDS) == 40

    findings = {(f.rule, f.stage): f for f in check_framework(load_framework(path), TODAY)}
    assert set(findings) == {
        ("review-overdue", ""),
        ("unknown-payment-group", "pre-programme-engagement"),
        ("jargon", "pre-programme-engagement"),
        ("long-sentence", "in-work-support"),
        ("hard-sentence", "programme-exit"),
    }
    assert "40 words" in findings["long-sentence", "in-work-support"].message
    assert FORTY_WORDS in findings["long-sentence", "in-work-support"].message
    assert "“attachment”" in findings["jargon", "pre-programme-engagement"].message
    assert JARGON in findings["jargon", "pre-programme-engagement"].message
    assert HARD in findings["hard-sentence", "programme-exit"].message
    assert "'PG10'" in findings["unknown-payment-group", "pre-programme-engagement"].message
    assert "2026-10-03" in findings["review-overdue", ""].message  # when it was due
    assert findings["unknown-payment-group", "pre-programme-engagement"].severity == "error"
    assert {f.severity for k, f in findings.items() if k[0] != "unknown-payment-group"} == {"warning"}

    result = run("css", "check", path, "--today", TODAY, "--json")
    assert result.returncode == 1  # the override is an error
    [report] = json.loads(result.stdout)["frameworks"]
    assert not report["ok"] and len(report["findings"]) == 5
    result = run("css", "check", path, "--today", TODAY)
    assert result.returncode == 1
    for text in ("in-work-support", "programme-exit", "unknown-payment-group", "review-overdue", "PG10"):
        assert text in result.stderr, text


def test_warnings_alone_exit_zero(tmp_path):
    raw = example()
    raw["stages"]["programme-exit"]["service_standard"] += " " + HARD
    result = run("css", "check", write(tmp_path, raw), "--today", TODAY, "--json")
    assert result.returncode == 0
    assert [f["rule"] for f in json.loads(result.stdout)["frameworks"][0]["findings"]] == ["hard-sentence"]


@pytest.mark.parametrize(
    ("reviewed", "today", "rule"),
    [
        ("2026-06-03", date(2026, 12, 3), None),  # exactly six months: still in time
        ("2026-06-02", date(2026, 12, 3), "review-overdue"),
        ("2026-08-31", date(2027, 2, 28), None),  # six months after 31 August is 28 February
        ("2026-08-31", date(2027, 3, 1), "review-overdue"),
        ("2026-12-04", date(2026, 12, 3), "review-date"),  # a review in the future is a mistake
    ],
)
def test_review_twice_a_year(tmp_path, reviewed, today, rule):
    raw = example()
    raw["reviewed"] = reviewed
    found = [f.rule for f in check_framework(load_framework(write(tmp_path, raw)), today)]
    assert found == ([rule] if rule else [])


def test_sentences_and_jargon_edges():
    assert sentences("Call us. We will help! Ask for e.g. a form?  Yes.") == [
        "Call us.",
        "We will help!",
        "Ask for e.g. a form?",
        "Yes.",
    ]
    measure = StandardMeasure("m", "referral", "attachment", 15, "calendar_days", True)
    text = "Tell JCP, e.g. by phone. We help PG9 and PG 1 claimants. You will be attached soon. We attach no blame."
    found = [
        f.message.split("”")[0].lstrip("“") for f in _text_findings(Stage("pre-programme-engagement", measure, text))
    ]
    assert found == ["JCP", "e.g.", "PG9", "PG 1", "claimants", "attached"]


def _bad(raw: dict, change) -> dict:
    change(raw)
    return raw


def _stage(raw, stage="programme-exit"):
    return raw["stages"][stage]


def _overrides(raw):
    return raw["stages"]["pre-programme-engagement"]["standard_measure"]["overrides"]


MALFORMED = {  # name: (file text or mapping, words the message must hold)
    "not yaml": ("prime: [P01\n", "not valid YAML"),
    "a list": ("- prime: P01\n", "must be a mapping"),
    "empty": ("", "must be a mapping"),
    "unknown key": (lambda r: r.update(colour="blue"), "allowed keys"),
    "missing stage": (lambda r: r["stages"].pop("in-work-support"), "'in-work-support' is a required property"),
    "extra stage": (lambda r: r["stages"].update(aftercare=_stage(r)), "aftercare"),
    "bad unit": (
        lambda r: _stage(r)["standard_measure"].update(unit="days"),
        "stages.programme-exit.standard_measure.unit",
    ),
    "bad event": (lambda r: _stage(r)["standard_measure"].update(to_event="report"), "to_event"),
    "zero limit": (lambda r: _stage(r)["standard_measure"].update(limit=0), "limit"),
    "text limit": (lambda r: _overrides(r).update(PG9="soon"), "overrides.PG9"),
    "number as code": (lambda r: _overrides(r).update({9: 25}), "overrides"),
    "no contractual": (lambda r: _stage(r)["standard_measure"].pop("contractual"), "'contractual' is a required"),
    "bad nation": (lambda r: r.update(nation="wales"), "'wales' is not allowed"),
    "bad prime": (lambda r: r.update(prime="Prime 1"), "prime"),
    "unreal date": (lambda r: r.update(reviewed="2026-02-30"), "not a real date"),
    "every of a one-off": (lambda r: _stage(r)["standard_measure"].update(kind="every"), "only review repeats"),
    "from is to": (lambda r: _stage(r)["standard_measure"].update(from_event="exit_report_sent"), "both"),
    "no text": (lambda r: _stage(r).update(service_standard=""), "service_standard"),
    "aliases": ("a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n", "aliases"),
    "repeated key": ("prime: P01\nprime: P02\n", "'prime' is repeated"),
    "deep nesting": ("prime: " + "[" * 50_000 + "]" * 50_000 + "\n", "nested too deeply"),
    "huge": ("# " + "x" * (1024 * 1024) + "\n", "larger than 1 MiB"),
}


def _materialise(tmp_path: Path, name: str, spec) -> Path:
    if callable(spec):
        return write(tmp_path, _bad(example(), spec), name.replace(" ", "-") + ".yaml")
    return write(tmp_path, spec, name.replace(" ", "-") + ".yaml")


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_frameworks_name_the_problem(tmp_path, name):
    spec, words = MALFORMED[name]
    path = _materialise(tmp_path, name, spec)
    with pytest.raises(FrameworkError) as caught:
        load_framework(path)
    assert words in str(caught.value) and str(path) in str(caught.value)


def test_unreadable_files(tmp_path):
    (tmp_path / "latin1.yaml").write_bytes(b"title: caf\xe9\n")
    for path, words in [
        (tmp_path / "latin1.yaml", "not UTF-8"),
        (tmp_path / "missing.yaml", "does not exist"),
        (tmp_path, "cannot be read"),
        (Path("/dev/zero"), "larger than 1 MiB"),  # no end to it: read no more than the cap
    ]:
        with pytest.raises(FrameworkError, match=words):
            load_framework(path)


@pytest.mark.slow
def test_the_cli_gives_a_message_never_a_traceback(tmp_path):
    """One case of each kind through the CLI (every case is checked above, through the library)."""
    kinds = (
        "not yaml",
        "a list",
        "missing stage",
        "every of a one-off",
        "unreal date",
        "aliases",
        "deep nesting",
        "huge",
    )
    paths = [_materialise(tmp_path, name, MALFORMED[name][0]) for name in kinds]
    (tmp_path / "latin1.yaml").write_bytes(b"title: caf\xe9\n")
    paths += [tmp_path / "latin1.yaml", tmp_path / "missing.yaml"]
    codelist_gone = example()
    codelist_gone["payment_groups"] = "no-such-codelist.csv"
    paths.append(write(tmp_path, codelist_gone, "codelist-gone.yaml"))
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda p: run("css", "check", p, "--today", TODAY), paths))
    for path, result in zip(paths, results, strict=True):
        assert result.returncode == 1, (path, result.stdout, result.stderr)
        assert "error:" in result.stderr and "Traceback" not in result.stderr, (path, result.stderr)
    assert run("css", "check", EXAMPLE, "--today", "3 December").returncode == 2  # a usage error
