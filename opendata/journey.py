"""Journey events: each participant's customer journey, one row per event (issue 16, recs 6–7).

The participant MI holds one row per referral with the dates the payments hang on (attachment,
job start, job outcome). Customer Service Standards need the rest of the journey, and one event,
the review of the action plan, happens many times: so the events come as a long file with three
columns, ``participant_id``, ``event`` (one of ``EVENTS``) and ``date``, CSV, Parquet or a
spreadsheet, read and checked by the same validator as the MI (file, row, column, value, rule).

Checked against the MI once each row is valid on its own, so a bad file is refused whole, naming
every bad row:

- ``known_participant``: the participant is in the MI (an event of nobody is a supplier's error);
- ``before_referral``: no event precedes the participant's referral;
- ``once``: every event but the review happens at most once per participant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from opendata.css import EVENTS, REPEATING
from opendata.errors import Problem, ValidationFailed
from opendata.spec import FieldSpec, InputSpec
from opendata.validate import MAX_DETAIL, validate

COLUMNS = ("participant_id", "event", "date")


def events_spec(mi: InputSpec) -> InputSpec:
    """The events file's own input spec: the MI's participant identifier (pattern and all, but not
    unique), an event from ``EVENTS``, and a date within the MI's plausible range of referral dates."""
    pid, referral = mi.field("participant_id"), mi.field("referral_date")
    return InputSpec(
        kind="records",
        fields=(
            replace(pid, unique=False, description="The MI's participant identifier."),
            FieldSpec("event", "string", "The journey event.", required=True, enum=EVENTS),
            FieldSpec(
                "date",
                "date",
                "The day the event happened.",
                required=True,
                minimum=referral.minimum,
                maximum=referral.maximum,
            ),
        ),
        primary_key=(),
        rules=(),
    )


def read_events(path: str | Path, mi_spec: InputSpec, mi: pa.Table) -> pd.DataFrame:
    """The events of ``path`` as a frame (participant_id, event, date as datetime64[s]) in file order;
    raise ValidationFailed naming every bad row, checked alone and then against the MI ``mi``."""
    report = validate(events_spec(mi_spec), [path])
    report.raise_for_problems()
    events = report.table.select(list(COLUMNS)).to_pandas(date_as_object=False)
    events["date"] = events["date"].astype("datetime64[s]")
    rows = RowProblems(str(path), events)
    check_against_mi(rows, mi, "date")
    again = ~events["event"].isin(REPEATING) & events.duplicated(["participant_id", "event"])
    only_reviews = "this participant already has this event; only a review repeats"
    rows.add(again.to_numpy(), "event", "once", lambda i: only_reviews)
    rows.raise_if_any()
    return events


class RowProblems:
    """Rows of one file that break a rule checked against other data (the MI): every one counted,
    up to ``MAX_DETAIL`` per rule listed, as the validator lists its own."""

    def __init__(self, name: str, frame: pd.DataFrame):
        self.name, self.frame = name, frame
        self.problems: list[Problem] = []
        self.total = 0

    def add(self, mask: np.ndarray, column: str, rule: str, say: Callable[[int], str]) -> None:
        """One problem per row where ``mask`` holds; ``say(i)`` says what is wrong with row ``i``."""
        rows = np.flatnonzero(mask)
        self.total += len(rows)
        for i in rows[:MAX_DETAIL]:
            value = self.frame[column].iat[i]
            text = str(value.date() if isinstance(value, pd.Timestamp) else value)
            message = f"{self.name} row {i + 1}, column {column}: {say(i)} (rule: {rule})"
            self.problems.append(Problem(self.name, int(i) + 1, column, text, rule, message))

    def raise_if_any(self) -> None:
        if self.total:
            raise ValidationFailed(sorted(self.problems, key=lambda p: (p.row, p.column)), self.total)


def check_against_mi(rows: RowProblems, mi: pa.Table, date_column: str) -> None:
    """``known_participant``: the row's participant is in the MI; ``before_referral``: its
    ``date_column`` is not before that participant's referral."""
    referred = pd.Series(
        mi.column("referral_date").to_numpy(zero_copy_only=False).astype("datetime64[s]"),
        index=mi.column("participant_id").to_pylist(),
    )
    referral = rows.frame["participant_id"].map(referred)
    known = referral.notna().to_numpy()
    rows.add(~known, "participant_id", "known_participant", lambda i: "no referral with this participant_id in the MI")
    early = known & (rows.frame[date_column] < referral).to_numpy()
    rows.add(early, date_column, "before_referral", lambda i: f"before the referral on {referral.iat[i].date()}")


def dates(events: pd.DataFrame, event: str) -> pd.Series:
    """The day of ``event`` per participant (a non-repeating event; the first if repeated)."""
    rows = events[events["event"] == event]
    return rows.groupby("participant_id", sort=False)["date"].min()
