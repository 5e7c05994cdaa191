"""Complaints and feedback (issue 16, rec 10): the record checked row by row and against the MI, and
complaints per 1,000 participants exact on a record whose answers are known by construction."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy.stats import chi2

from opendata.complaints import CATEGORIES, ComplaintsError, measure, read_complaints
from opendata.errors import ValidationFailed
from opendata.sample import write_sample
from opendata.spec import load_spec
from opendata.validate import validate

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "work-programme.yaml"
HEADER = ["complaint_id", "participant_id", "kind", "received", "stage", "category", "resolved", "outcome",
          "escalated_to_ice"]  # fmt: skip


def _mi(subs: list[str], referred: date) -> pa.Table:
    return pa.table({
        "participant_id": [f"WP{i:08d}" for i in range(len(subs))],
        "prime_contract": ["P01"] * len(subs),
        "subcontractor": subs,
        "referral_date": pa.array([referred] * len(subs), pa.date32()),
    })  # fmt: skip


def _record(rows: list[tuple]) -> pd.DataFrame:
    """(participant, kind, received, stage, category, resolved or None, outcome or None, ice)."""
    frame = pd.DataFrame(rows, columns=HEADER[1:])
    frame.insert(0, "complaint_id", [f"CF{i:08d}" for i in range(1, len(rows) + 1)])
    frame["participant_id"] = [f"WP{i:08d}" for i in frame["participant_id"]]
    for column in ("received", "resolved"):
        frame[column] = pd.to_datetime(frame[column]).astype("datetime64[s]")
    return frame


def test_complaints_per_1000_are_exact():
    """400 participants of S0001 and 100 of S0002, referred 2 January 2012. S0001: 12 complaints about
    programme engagement (5 upheld, 2 partly, 1 open on the day, 1 resolved only after it), 1 to the
    ICE, 3 pieces of feedback; S0002: 2 complaints about communication, 1 received after the day."""
    d0, as_of = date(2012, 1, 2), date(2012, 6, 29)
    mi = _mi(["S0001"] * 400 + ["S0002"] * 100, d0)
    rows = []
    outcomes = ["upheld"] * 5 + ["partly_upheld"] * 2 + ["not_upheld"] * 3
    for i in range(10):
        rows.append((i, "complaint", d0 + timedelta(30), "programme-engagement", "staff_conduct",
                     d0 + timedelta(40), outcomes[i], "yes" if i == 0 else "no"))  # fmt: skip
    rows.append((10, "complaint", d0 + timedelta(30), "programme-engagement", "staff_conduct", None, None, "no"))
    rows.append((11, "complaint", d0 + timedelta(30), "programme-engagement", "communication",
                 as_of + timedelta(3), "upheld", "no"))  # fmt: skip
    rows += [(20 + i, "feedback", d0 + timedelta(50), "pre-work-support", "other", None, None, "no") for i in range(3)]
    rows.append((400, "complaint", d0 + timedelta(9), "programme-engagement", "communication", None, None, "no"))
    rows.append((401, "complaint", d0 + timedelta(9), "programme-engagement", "communication", None, None, "no"))
    rows.append((402, "complaint", as_of + timedelta(1), "programme-engagement", "communication", None, None, "no"))
    table = measure("P01", mi, _record(rows), as_of, threshold=10).set_index(["provider", "stage", "category"])
    total = table.loc[("Total", "Total", "Total")]
    assert (total.participants, total.complaints, total.feedback) == (500, 14, 3)
    assert total.per_1000 == pytest.approx(28.0)
    assert total.ci_low == pytest.approx(chi2.ppf(0.025, 28) / 2 * 2, abs=1e-3)  # per 1,000 of 500: times 2
    assert total.ci_high == pytest.approx(chi2.ppf(0.975, 30) / 2 * 2, abs=1e-3)
    s1 = table.loc[("S0001", "programme-engagement", "Total")]
    assert (s1.participants, s1.complaints, s1.upheld, s1.escalated_to_ice, s1.open) == (400, 12, 7, 1, 2)
    assert s1.per_1000 == pytest.approx(30.0) and s1.publishable
    s2 = table.loc[("S0002", "Total", "communication")]
    assert (s2.participants, s2.complaints, s2.per_1000, s2.publishable) == (100, 2, 20.0, False)
    none = table.loc[("S0002", "in-work-support", "Total")]
    assert (none.complaints, none.ci_low, none.publishable) == (0, 0.0, True)  # no complaints: safe to say so
    assert table.loc[("S0001", "Total", "staff_conduct")].complaints == 11
    assert len(table) == 3 * (1 + 5 + len(CATEGORIES))
    with pytest.raises(ComplaintsError):
        measure("P02", mi, _record(rows), as_of, threshold=10)


def _csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(HEADER)
        out.writerows(rows)
    return path


def test_a_bad_record_is_refused_naming_every_row(tmp_path):
    """A resolved complaint with no outcome, one resolved before it was received, an unknown stage,
    a repeated id, an unknown participant and one received before the referral: each named."""
    paths = write_sample(tmp_path, 50, 2, months=12, formats=("csv",))
    pid, referred = next(iter(csv.reader(paths[0].open().readlines()[1:2])))[:2]
    day = date.fromisoformat(referred)
    later = str(day + timedelta(20))
    good = ["CF00000001", pid, "complaint", later, "programme-engagement", "communication", "", "", "no"]
    spec = load_spec(SPEC)
    mi = validate(spec, [paths[0]]).table
    cases = [
        ([[*good[:6], later, "", "no"]], (1, "resolved", "requires")),
        ([[*good[:6], str(day + timedelta(5)), "upheld", "no"]], (1, "resolved", "date_order")),
        ([[*good[:4], "after-care", *good[5:]]], (1, "stage", "enum")),
        ([good, good], (2, "complaint_id", "primary_key")),
        ([[good[0], "WP99999999", *good[2:]]], (1, "participant_id", "known_participant")),
        ([[*good[:3], str(day - timedelta(1)), *good[4:]]], (1, "received", "before_referral")),
    ]
    for i, (rows, (row, column, rule)) in enumerate(cases):
        with pytest.raises(ValidationFailed) as caught:
            read_complaints(_csv(tmp_path / f"bad{i}.csv", rows), spec.input, mi)
        found = [(p.row, p.column, p.rule) for p in caught.value.problems]
        assert (row, column, rule) in found, found
    out = tmp_path / "out.csv"
    run = subprocess.run(
        [sys.executable, "-m", "opendata", "css", "complaints", str(SPEC), str(paths[0]), "--record",
         str(tmp_path / "bad4.csv"), "--prime", "P01", "--out", str(out)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "400"},
    )  # fmt: skip
    assert run.returncode == 1 and "known_participant" in run.stdout + run.stderr and "Traceback" not in run.stderr
    assert not out.exists()


def test_the_sample_record_passes_its_checks_and_css_complaints_runs(tmp_path):
    """The generated record is consistent with the MI (its checks pass; a complainant reached the stage
    complained about), the same seed gives the same bytes, and the command writes the table."""
    paths = write_sample(tmp_path / "a", 3000, 4, months=30, formats=("csv",), with_journey=True)
    again = write_sample(tmp_path / "b", 3000, 4, months=30, formats=("csv",), with_journey=True)
    assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in again]
    spec = load_spec(SPEC)
    mi = validate(spec, [paths[0]]).table
    record = read_complaints(paths[2], spec.input, mi)
    assert len(record) > 50 and set(record["kind"]) == {"complaint", "feedback"}
    events = pd.read_csv(paths[1])
    attached = set(events.loc[events["event"] == "attachment", "participant_id"])
    assert set(record.loc[record["stage"] == "programme-engagement", "participant_id"]) <= attached
    out = tmp_path / "p01.csv"
    run = subprocess.run(
        [sys.executable, "-m", "opendata", "css", "complaints", str(SPEC), str(paths[0]), "--record", str(paths[2]),
         "--prime", "P01", "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    table = pd.read_csv(out)
    total = table[(table["provider"] == "Total") & (table["stage"] == "Total") & (table["category"] == "Total")]
    by_stage = table[(table["provider"] == "Total") & (table["stage"] != "Total")]["complaints"].sum()
    assert int(total["complaints"].iloc[0]) == by_stage
    assert np.all(table["ci_low"] <= table["per_1000"]) and np.all(table["per_1000"] <= table["ci_high"])
