"""The balanced scorecard (issue 16, part 5): each prime against its contract's level by the 95%
interval, built from the indicators alone, its shorthand as GSS writes it, and the spec's contractual
levels refused where they mean nothing."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from shipped_specs import OUTSIDERS

from opendata import scorecard
from opendata.errors import SpecError
from opendata.spec import load_spec


@pytest.mark.parametrize(
    ("lower", "upper", "level", "polarity", "verdict"),
    [
        (0.16, 0.20, 0.15, "higher", "met"),
        (0.15, 0.20, 0.15, "higher", "met"),  # the level itself is allowed
        (0.10, 0.149, 0.15, "higher", "not met"),
        (0.14, 0.16, 0.15, "higher", "not clear"),
        (0.05, 0.10, 0.10, "lower", "met"),  # at most the level
        (0.101, 0.12, 0.10, "lower", "not met"),
        (0.09, 0.11, 0.10, "lower", "not clear"),
        (0.09, 0.11, np.nan, "lower", ""),  # no level: no verdict
        (np.nan, np.nan, 0.10, "lower", ""),  # suppressed: no verdict
        (0.09, 0.11, 0.10, "none", ""),
    ],
)
def test_against_the_level_by_the_whole_interval(lower, upper, level, polarity, verdict):
    assert scorecard.against(lower, upper, level, polarity) == verdict


@given(
    st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.sampled_from(["higher", "lower"])
)  # fmt: skip
def test_met_and_not_met_never_both_and_a_straddled_level_is_not_clear(a, b, level, polarity):
    lower, upper = min(a, b), max(a, b)
    verdict = scorecard.against(lower, upper, level, polarity)
    if lower < level < upper:
        assert verdict == "not clear"
    # flipping the polarity of a clear verdict flips it, unless the interval touches the level
    flipped = scorecard.against(lower, upper, level, "lower" if polarity == "higher" else "higher")
    if level not in (lower, upper) and verdict != "not clear":
        assert {verdict, flipped} == {"met", "not met"}


DEFINED = [
    {"name": "late", "polarity": "lower", "contractual_level": {"level": 0.1, "overrides": {"P02": 0.2}}},
    {"name": "rate", "kind": "rate", "per": 1000, "polarity": "higher"},
    {"name": "outcomes", "kind": "proportion", "polarity": "higher"},
]  # fmt: skip


def _row(indicator, table, entity, level, period="Total", value=0.1, status=""):
    shown = not status
    return {
        "indicator": indicator, "table": table, "period": period, "entity": entity, "entity_level": level,
        "numerator": 10 if shown else np.nan, "denominator": 100 if shown else np.nan,
        "value": value if shown else np.nan, "lower_95": value - 0.05 if shown else np.nan,
        "upper_95": value + 0.05 if shown else np.nan, "benchmark": 0.12, "compared_95": "similar" if shown else "",
        "status": status,
    }  # fmt: skip


def test_a_row_per_prime_and_proportion_from_the_first_table_over_its_whole_period():
    indicators = pd.DataFrame(
        [
            _row("outcomes", "a", "P01", "prime_contract", value=0.3),
            _row("late", "a", "P01", "prime_contract", value=0.2),
            _row("late", "b", "P01", "prime_contract", value=0.9),  # a later table: not the scorecard's
            _row("late", "a", "P01", "prime_contract", period="2012-01", value=0.9),  # a month: not shown
            _row("late", "a", "P02", "prime_contract", value=0.1),
            _row("late", "a", "S0001", "subcontractor"),  # not a prime contract
            _row("rate", "a", "P01", "prime_contract"),  # a rate: no share a contract sets
            _row("outcomes", "a", "P02", "prime_contract", status="c"),
        ]
    )
    card = scorecard.build(indicators, DEFINED)
    assert list(card.columns) == list(scorecard.COLUMNS)
    assert list(zip(card["prime_contract"], card["indicator"], strict=True)) == [
        ("P01", "late"), ("P01", "outcomes"), ("P02", "late"), ("P02", "outcomes"),
    ]  # fmt: skip
    assert card["table"].tolist() == ["a"] * 4
    assert card["value"].tolist()[:3] == [0.2, 0.3, 0.1]
    assert card["contractual_level"].tolist()[0] == 0.1 and card["contractual_level"].tolist()[2] == 0.2  # P02's own
    assert np.isnan(card["contractual_level"].tolist()[1])
    assert card["against_level"].tolist() == [
        "not met",
        "",
        "met",
        "",
    ]  # 0.15..0.25 against 0.1; 0.05..0.15 against 0.2
    text = scorecard.to_csv(card).splitlines()
    assert text[0] == ",".join(scorecard.COLUMNS)
    assert text[2] == "P01,outcomes,a,10,100,0.3,0.25,0.35,0.12,similar,[x],,"
    assert text[4] == "P02,outcomes,a,[c],[c],[c],[c],[c],0.12,,[x],,c"
    assert scorecard.build(indicators[indicators["entity_level"] != "prime_contract"], DEFINED) is None


def _spec_with(tmp_path, **contract):
    """The tests' copy of the shipped spec with one indicator changed."""
    shutil.copytree(OUTSIDERS.parent, tmp_path / "specs")
    path = tmp_path / "specs" / OUTSIDERS.name
    raw = yaml.safe_load(path.read_text())
    name = contract.pop("name", "attachments-per-referral")
    [ind] = [i for i in raw["indicators"] if i["name"] == name]
    ind.update(contract)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_the_shipped_levels_reach_the_package_definitions(tmp_path):
    spec = load_spec(_spec_with(tmp_path, contractual_level={"level": 0.1, "overrides": {"P01": 0.08}}))
    [ind] = [i for i in spec.indicators if i.name == "attachments-per-referral"]
    assert ind.describe()["contractual_level"] == {"level": 0.1, "overrides": {"P01": 0.08}}
    assert scorecard.level_of(ind.describe(), "P01") == 0.08 and scorecard.level_of(ind.describe(), "P02") == 0.1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"contractual_level": {"level": 0.1, "overrides": {"P99": 0.2}}}, "P99 not prime contracts"),
        ({"contractual_level": {"level": 1.5}}, "1.5 is greater than the maximum of 1"),
        ({"contractual_level": {"level": 0.1}, "polarity": "none"}, "a level is for a proportion with a polarity"),
        ({"contractual_level": {"level": 0.1}, "kind": "rate", "per": 1000}, "a level is for a proportion"),
        (
            {"name": "job-outcomes-standardised", "contractual_level": {"level": 0.1}},
            "a level is for a proportion with a polarity (higher or lower), not standardised",
        ),
    ],
)
def test_a_level_that_means_nothing_is_refused(tmp_path, change, message):
    with pytest.raises(SpecError) as info:
        load_spec(_spec_with(tmp_path, **change))
    assert message in str(info.value)
