"""Pre-aggregated MI (counts per subcontractor, payment group and month) releases like record-level MI."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from shipped_specs import OUTSIDERS, OUTSIDERS_AGGREGATED

from opendata.release import cut_release
from opendata.sample import write_sample

pytestmark = pytest.mark.slow  # end to end: left out of the quick subset (make test-quick)

ROOT = Path(__file__).resolve().parent.parent
WHEN = datetime(2026, 11, 12, 9, 30, tzinfo=UTC)


def test_aggregated_release_publishes_the_same_counts_as_records(tmp_path):
    write_sample(tmp_path / "mi", 3000, 4, months=3, formats=("csv",), aggregated=True)
    records = cut_release(
        OUTSIDERS,
        [tmp_path / "mi" / "work-programme-mi.csv"],
        tmp_path / "a",
        staging=tmp_path / "a-staging",
        release_time=WHEN,
        late=True,
        reason="test",
    )
    counts = cut_release(
        OUTSIDERS_AGGREGATED,
        [tmp_path / "mi" / "work-programme-mi-aggregated.csv"],
        tmp_path / "b",
        staging=tmp_path / "b-staging",
        release_time=WHEN,
        late=True,
        reason="test",
    )
    assert counts.rows_read < records.rows_read
    for table in ("provider-by-month", "cpa-payment-group-by-month"):
        a = pd.read_parquet(records.path / "data" / f"{table}.parquet")
        b = pd.read_parquet(counts.path / "data" / f"{table}.parquet")
        for measure in ("referrals", "attachments", "job_starts", "job_outcomes"):
            pd.testing.assert_series_equal(a[measure], b[measure])
            pd.testing.assert_series_equal(a[f"{measure}_status"], b[f"{measure}_status"])
