"""The balanced scorecard (the report's recommendation 12): each prime contract over the whole release
on every proportion the package publishes, service standards and cohort job outcomes side by side,
against the programme and against the level its contract sets.

It is built from the package's ``indicators`` rows only (themselves functions of the published
cells), so it tells nothing the tables do not; ``opendata audit`` rebuilds it from them and
refuses a package whose scorecard differs by a byte.

Against a level, the 95% interval decides: wholly on the contract's side of the level (at or above
it for a higher-is-better proportion, at or below it for a lower-is-better one) is ``met``,
wholly on the other side ``not met``, and an interval that holds the level ``not clear``. The
published counts are rounded and a prime's participants are a few thousand people, so a value a
hair past the level is not evidence a contract manager should act on, either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from opendata.descriptor import CSV_DIALECT, MISSING_VALUES

SCORECARD = "scorecard"
SCORECARD_CSV = f"data/{SCORECARD}.csv"
COLUMNS = (
    "prime_contract", "indicator", "table", "numerator", "denominator", "value", "lower_95", "upper_95",
    "benchmark", "compared_95", "contractual_level", "against_level", "status",
)  # fmt: skip
FIELDS = {  # type, title (a column header), description
    "prime_contract": ("string", "Prime contract code", "Its code in the provider hierarchy"),
    "indicator": ("string", "Indicator", "Its name in opendata:indicators"),
    "table": ("string", "Table", "The table it is computed from"),
    "numerator": ("integer", "Numerator", "Published numerator over the table's whole period (rounded)"),
    "denominator": ("integer", "Denominator", "Published denominator over the table's whole period (rounded)"),
    "value": ("number", "Value", "Numerator / denominator"),
    "lower_95": ("number", "Lower 95% limit", "Lower limit of the 95% interval, allowing for the rounding"),
    "upper_95": ("number", "Upper 95% limit", "Upper limit of the 95% interval, allowing for the rounding"),
    "benchmark": ("number", "Programme", "The programme's value over the same period"),
    "compared_95": ("string", "Against the programme", "At 95%: better, worse or similar"),
    "contractual_level": ("number", "Contractual level", "The level the contract sets: the least allowed, or the "
                          "most for a lower-is-better indicator; [x] where it sets none"),
    "against_level": ("string", "Against the level", "met, not met or not clear (the 95% interval holds the "
                      "level); empty without a level or a value"),
    "status": ("string", "Status", "c: an input is suppressed; z: the denominator is 0; empty: shown"),
}  # fmt: skip
NUMBERS = ("value", "lower_95", "upper_95", "benchmark", "contractual_level")


def scored(defined: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The indicators a scorecard shows: plain proportions (a standardised ratio or a rate has no
    share a contract could set a level on)."""
    return [i for i in defined if i.get("kind", "proportion") == "proportion" and not i.get("standardise_by")]


def level_of(indicator: dict[str, Any], prime: str) -> float:
    """The prime's contractual level for an indicator (its own where the spec overrides), NaN if none."""
    contract = indicator.get("contractual_level")
    if not contract:
        return np.nan
    return float((contract.get("overrides") or {}).get(prime, contract["level"]))


def against(lower: float, upper: float, level: float, polarity: str) -> str:
    """``met``, ``not met`` or ``not clear`` by the 95% interval (module docstring); empty without both."""
    if np.isnan(level) or np.isnan(lower) or np.isnan(upper) or polarity not in ("higher", "lower"):
        return ""
    good, bad = (lower >= level, upper < level) if polarity == "higher" else (upper <= level, lower > level)
    return "met" if good else "not met" if bad else "not clear"


def build(indicators: pd.DataFrame, defined: Sequence[dict[str, Any]]) -> pd.DataFrame | None:
    """One row per prime contract and scored indicator: the table's total period of the first table
    (in the package's order) that gives it by prime contract. None if no table does."""
    shown = scored(defined)
    names = [i["name"] for i in shown]
    rows = indicators[
        (indicators["entity_level"] == "prime_contract")
        & (indicators["period"] == "Total")
        & indicators["indicator"].isin(names)
    ]
    rows = rows.drop_duplicates(["indicator", "entity"], keep="first")
    if rows.empty:
        return None
    by_name = {i["name"]: i for i in shown}
    order = {n: k for k, n in enumerate(names)}
    out = pd.DataFrame(
        {
            "prime_contract": rows["entity"].astype(str),
            "indicator": rows["indicator"].astype(str),
            "table": rows["table"].astype(str),
            "numerator": rows["numerator"].astype("Int64"),
            "denominator": rows["denominator"].astype("Int64"),
            **{c: rows[c].astype(float) for c in ("value", "lower_95", "upper_95", "benchmark")},
            "compared_95": rows["compared_95"].fillna("").astype(str),
            "status": rows["status"].fillna("").astype(str),
        }
    )
    out["contractual_level"] = [
        level_of(by_name[i], p) for i, p in zip(out["indicator"], out["prime_contract"], strict=True)
    ]
    out["against_level"] = [
        against(lo, hi, lv, by_name[i].get("polarity", "higher"))
        for lo, hi, lv, i in zip(
            out["lower_95"], out["upper_95"], out["contractual_level"], out["indicator"], strict=True
        )
    ]
    out["_order"] = out["indicator"].map(order)
    out = out.sort_values(["prime_contract", "_order"], kind="stable").drop(columns="_order")
    return out[list(COLUMNS)].reset_index(drop=True)


def to_csv(frame: pd.DataFrame) -> str:
    """Numbers as Python writes them; a missing one as GSS shorthand: the row's status ([c] or [z])
    for the figures, [x] for a level the contract does not set."""
    out = frame.copy()
    row = pd.Series(np.where(out["status"] == "z", "[z]", "[c]"), index=out.index)
    for name in ("numerator", "denominator", *NUMBERS):
        values = out[name].astype("Int64" if name in ("numerator", "denominator") else "Float64")
        missing = {"contractual_level": "[x]", "benchmark": "[c]"}.get(name, row)
        out[name] = values.astype("string").where(values.notna(), missing).astype(str)
    return out.to_csv(index=False, lineterminator="\n")


def resource(props: dict[str, Any]) -> dict[str, Any]:
    """The scorecard's Data Package resource (CSV) around the file's ``props`` (bytes, hash, format)."""
    return {
        "name": SCORECARD,
        "type": "table",
        "path": SCORECARD_CSV,
        "title": "Balanced scorecard of prime contracts",
        "description": (
            "Each prime contract over the whole period of the tables that give it, on every proportion the "
            "package publishes (service standards and job outcomes), against the programme and against the "
            "level its contract sets; computed from the indicators (the published cells) only. Against a "
            "level: met or not met where the 95% interval lies wholly on one side of it, else not clear."
        ),
        "opendata:derived": SCORECARD,
        **props,
        "dialect": dict(CSV_DIALECT),
        "schema": {
            "fields": [
                {"name": n, "type": kind, "title": title, "description": text}
                for n, (kind, title, text) in ((n, FIELDS[n]) for n in COLUMNS)
            ],
            "missingValues": [{"value": ""}, *(dict(v) for v in MISSING_VALUES)],
            "primaryKey": ["prime_contract", "indicator"],
        },
    }
