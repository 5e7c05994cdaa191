"""Complaints and feedback: the record, and complaints per 1,000 participants (issue 16, rec 10).

The report asks for complaints and feedback to be analysed programme-wide, by stage of the
journey, so a provider with many is seen against its peers. A record is one row per complaint or
piece of feedback, read and checked by the MI's validator (file, row, column, value, rule):

``complaint_id`` (unique), ``participant_id`` (the MI's), ``kind`` (complaint or feedback),
``received``, ``stage`` (one of the five stages), ``category`` (``CATEGORIES``), ``resolved``
(empty while open; not before ``received``), ``outcome`` (required once resolved) and
``escalated_to_ice`` (taken to the Independent Case Examiner: yes or no); then, against the MI,
the participant exists and the complaint was not received before their referral.

The rate is complaints per 1,000 participants referred to the provider by ``as_of`` (the caseload
that could have complained), with the exact Poisson interval of the count. A count of a handful
of complaints points at people, so each row says whether its count may be published: at least the
release's threshold, or none.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from opendata.css import STAGES
from opendata.errors import OpenDataError
from opendata.indicators import exact_poisson
from opendata.journey import RowProblems, check_against_mi
from opendata.spec import FieldSpec, InputSpec, RuleSpec, load_spec
from opendata.validate import validate

KINDS = ("complaint", "feedback")
CATEGORIES = (
    "staff_conduct",
    "quality_of_support",
    "communication",
    "appointments",
    "accessibility",
    "other",
)
OUTCOMES = ("upheld", "partly_upheld", "not_upheld")
TOTAL = "Total"
PER = 1000
COLUMNS = (
    "provider", "stage", "category", "participants", "complaints", "per_1000", "ci_low", "ci_high",
    "upheld", "escalated_to_ice", "open", "feedback", "publishable",
)  # fmt: skip


class ComplaintsError(OpenDataError):
    """The record cannot be measured for this prime (it has no referrals in the MI)."""


def complaints_spec(mi: InputSpec) -> InputSpec:
    pid, referral = mi.field("participant_id"), mi.field("referral_date")

    def day(name: str, text: str, required: bool) -> FieldSpec:
        return FieldSpec(name, "date", text, required=required, minimum=referral.minimum, maximum=referral.maximum)

    def one_of(name: str, text: str, values: tuple[str, ...], required: bool = True) -> FieldSpec:
        return FieldSpec(name, "string", text, required=required, enum=values)

    return InputSpec(
        kind="records",
        fields=(
            FieldSpec("complaint_id", "string", "Unique id.", required=True, unique=True, pattern=r"^CF[0-9]{8}$"),
            FieldSpec("participant_id", "string", "The MI's participant.", required=True, pattern=pid.pattern),
            one_of("kind", "Complaint or feedback.", KINDS),
            day("received", "Day it was received.", True),
            one_of("stage", "The journey stage it is about.", tuple(STAGES)),
            one_of("category", "What it is about.", CATEGORIES),
            day("resolved", "Day it was resolved; empty while open.", False),
            one_of("outcome", "Once resolved.", OUTCOMES, required=False),
            one_of("escalated_to_ice", "Taken to the Independent Case Examiner.", ("yes", "no")),
        ),
        primary_key=("complaint_id",),
        rules=(RuleSpec("date_order", "received", "resolved"), RuleSpec("requires", "resolved", "outcome")),
    )


def read_complaints(path: str | Path, mi_spec: InputSpec, mi: pa.Table) -> pd.DataFrame:
    """The record as a frame (dates as datetime64[s]); raise ValidationFailed naming every bad row."""
    report = validate(complaints_spec(mi_spec), [path])
    report.raise_for_problems()
    frame = report.table.to_pandas(date_as_object=False)
    for column in ("received", "resolved"):
        frame[column] = frame[column].astype("datetime64[s]")
    rows = RowProblems(str(path), frame)
    check_against_mi(rows, mi, "received")
    rows.raise_if_any()
    return frame


def measure(
    prime: str, mi: pa.Table, record: pd.DataFrame, as_of: date, threshold: int, level: float = 0.95
) -> pd.DataFrame:
    """Complaints per 1,000 participants for ``prime`` and each of its subcontractors: all together,
    by stage and by category; what was received by ``as_of`` among those referred by then."""
    frame = mi.select(["participant_id", "prime_contract", "subcontractor", "referral_date"]).to_pandas()
    day = np.datetime64(as_of, "s")
    frame = frame[(frame["prime_contract"] == prime) & (frame["referral_date"].astype("datetime64[s]") <= day)]
    if frame.empty:
        raise ComplaintsError(f"the MI has no referrals for prime contract {prime!r} by {as_of}")
    sub = frame.set_index("participant_id")["subcontractor"]
    record = record[record["participant_id"].isin(sub.index) & (record["received"] <= day)].copy()
    record["provider"] = record["participant_id"].map(sub)
    record["open"] = record["resolved"].isna() | (record["resolved"] > day)  # resolved later: open on as_of
    rows = []
    groups = [(TOTAL, sub.index, record)]
    groups += [(code, sub.index[sub == code], record[record["provider"] == code]) for code in sorted(set(sub))]
    for provider, people, theirs in groups:
        cuts = [(TOTAL, TOTAL, theirs)]
        cuts += [(stage, TOTAL, theirs[theirs["stage"] == stage]) for stage in STAGES]
        cuts += [(TOTAL, category, theirs[theirs["category"] == category]) for category in CATEGORIES]
        for stage, category, part in cuts:
            rows.append(_row(provider, stage, category, len(people), part, threshold))
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    lo, hi = exact_poisson(table["complaints"].to_numpy(), level)
    scale = np.where(table["participants"] > 0, PER / table["participants"].clip(lower=1), np.nan)
    table["ci_low"], table["ci_high"] = (lo * scale).round(3), (hi * scale).round(3)
    return table


def _row(provider: str, stage: str, category: str, participants: int, part: pd.DataFrame, threshold: int) -> dict:
    complaint = part[part["kind"] == "complaint"]
    n = len(complaint)
    return {
        "provider": provider, "stage": stage, "category": category, "participants": participants,
        "complaints": n, "per_1000": round(PER * n / participants, 3) if participants else np.nan,
        "upheld": int((~complaint["open"] & complaint["outcome"].isin(("upheld", "partly_upheld"))).sum()),
        "escalated_to_ice": int((complaint["escalated_to_ice"] == "yes").sum()),
        "open": int(complaint["open"].sum()), "feedback": len(part) - n,
        "publishable": n == 0 or n >= threshold,
    }  # fmt: skip


def measure_files(
    spec_path: Path, mi_files: list[Path], record_file: Path, prime: str, as_of: date | None = None
) -> tuple[pd.DataFrame, date]:
    """``measure`` from files, each checked first; ``as_of`` defaults to the record's latest date."""
    spec = load_spec(spec_path)
    report = validate(spec, mi_files)
    report.raise_for_problems()
    record = read_complaints(record_file, spec.input, report.table)
    if as_of is None:
        as_of = pd.Timestamp(record[["received", "resolved"]].max().max()).date()
    return measure(prime, report.table, record, as_of, spec.disclosure.threshold), as_of
