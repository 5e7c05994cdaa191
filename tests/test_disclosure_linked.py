"""``protect_linked`` at the engine level: two tables that share their margins, protected as one system.

The attacker here is written apart from the engine: one ``scipy.optimize.linprog`` model whose
variables are the distinct populations (a shared margin is one variable, whichever table shows it),
whose equations are the additivity of both tables, and where every published cell is fixed at its
value. A primary cell is safe when the attacker's interval is at least the protection width.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from disclosure import (
    DisclosureError,
    Hierarchy,
    KeyedRelations,
    LinkedTable,
    Rules,
    add_totals,
    audit_linked_intruders,
    protect_linked,
)

REGION = Hierarchy.from_parents("region", {"North": "Total", "South": "Total", "N1": "North", "N2": "North",
                                           "S1": "South", "S2": "South", "S3": "South"})  # fmt: skip
MONTH = Hierarchy.flat("month", ["m1", "m2", "m3"])
GROUP = Hierarchy.flat("group", ["g1", "g2"])


def records(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Unit records: each person has a region leaf, a month and a group."""
    leaves = ["N1", "N2", "S1", "S2", "S3"]
    return pd.DataFrame(
        {
            "region": rng.choice(leaves, n, p=[0.05, 0.35, 0.1, 0.3, 0.2]),
            "month": rng.choice(MONTH.leaves, n),
            "group": rng.choice(GROUP.leaves, n, p=[0.85, 0.15]),
        }
    )


def linked(people: pd.DataFrame) -> list[LinkedTable]:
    """region × month and region × group; their region margins are the same people."""
    tables = []
    for other, h in (("month", MONTH), ("group", GROUP)):
        leaf = people.groupby(["region", other]).size().rename("n").reset_index()
        full = pd.MultiIndex.from_product([REGION.leaves, h.leaves], names=["region", other]).to_frame(index=False)
        leaf = full.merge(leaf, how="left").fillna({"n": 0}).astype({"n": "int64"})
        frame = add_totals(leaf, {"region": REGION, other: h}, ["n"])
        frame["key"] = np.where(frame[other] == "Total", frame["region"] + "|all", frame["region"] + "|" + frame[other])
        tables.append(LinkedTable(frame, {"region": REGION, other: h}, "n", "key", name=f"region-by-{other}"))
    return tables


def attack(results, tables: list[LinkedTable]) -> dict[str, tuple[float, float]]:
    """Interval of every hidden population, from both published tables at once."""
    keys = pd.Index(sorted(set().union(*(set(t.frame["key"]) for t in tables))))
    rows, rhs = [], []
    for t, res in zip(tables, results, strict=True):
        frame = res.frame
        other = next(d for d in t.dims if d != "region")
        for dim, h in (("region", REGION), (other, t.dims[other])):
            rest = other if dim == "region" else "region"
            for parent in h.codes:
                kids = h.children(parent)
                if not kids:
                    continue
                for fixed in frame[rest].unique():
                    row = np.zeros(len(keys))
                    at = frame[frame[rest] == fixed].set_index(dim)["key"]
                    row[keys.get_loc(at[parent])] += 1
                    for k in kids:
                        row[keys.get_loc(at[k])] -= 1
                    rows.append(row)
                    rhs.append(0.0)
    bounds: dict[str, tuple[float, float | None]] = {k: (0.0, None) for k in keys}
    for res in results:
        for key, shown in zip(res.frame["key"], res.frame["published"], strict=True):
            if not pd.isna(shown):
                bounds[key] = (float(shown), float(shown))
    a_eq, b_eq = np.array(rows), np.array(rhs)
    out = {}
    for key in keys:
        if bounds[key][0] == bounds[key][1]:
            continue
        c = np.zeros(len(keys))
        c[keys.get_loc(key)] = 1.0
        ends = []
        for sign in (1.0, -1.0):
            lp = linprog(sign * c, A_eq=a_eq, b_eq=b_eq, bounds=[bounds[k] for k in keys], method="highs")
            assert lp.status in (0, 3), lp.message
            ends.append(sign * lp.fun if lp.status == 0 else float("inf"))
        out[key] = (ends[0], ends[1])
    return out


def check(people: pd.DataFrame, rules: Rules) -> None:
    tables = linked(people)
    results = protect_linked(tables, rules=rules, method="fast")
    status = {}
    for res in results:  # one population, one status, in every table that shows it
        for key, s in zip(res.frame["key"], res.frame["status"], strict=True):
            assert status.setdefault(key, s) == s, key
    truth = {k: v for res in results for k, v in zip(res.frame["key"], res.frame["n"], strict=True)}
    primary = {k for k, s in status.items() if s == "primary"}
    intervals = attack(results, tables)
    for key in primary:
        low, high = intervals[key]
        assert low - 1e-6 <= truth[key] <= high + 1e-6
        assert high - low >= rules.protection_width - 1e-6, (key, truth[key], low, high)


def test_shared_margins_have_one_status_and_no_primary_is_narrowed() -> None:
    people = records(np.random.default_rng(3), 120)
    tables = linked(people)
    results = protect_linked(tables, rules=Rules(threshold=5), method="fast")
    assert sum(r.counts["primary"] for r in results) > 0
    assert all(r.audit.ok for r in results) and results[0].audit is results[1].audit
    check(people, Rules(threshold=5))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n=st.integers(20, 300), threshold=st.sampled_from([3, 5, 10]))
def test_linked_patterns_survive_an_attacker_of_both_tables(seed: int, n: int, threshold: int) -> None:
    check(records(np.random.default_rng(seed), n), Rules(threshold=threshold))


def test_a_cell_published_before_stays_published_and_a_primary_cannot_be() -> None:
    people = records(np.random.default_rng(5), 150)
    tables = linked(people)
    frame = tables[0].frame
    frame["before"] = (frame["region"] == "Total") & (frame["month"] != "Total")  # national months, published
    tables[0].published = "before"
    results = protect_linked(tables, rules=Rules(threshold=5), method="fast")
    shown = results[0].frame[frame["before"]]
    assert (shown["status"] == "published").all() and shown["published"].notna().all()

    small = frame.index[(frame["n"] > 0) & (frame["n"] < 5)][0]
    frame.loc[small, "before"] = True
    with pytest.raises(DisclosureError, match="was published but is now a primary cell"):
        protect_linked(tables, rules=Rules(threshold=5), method="fast")


def test_tables_that_disagree_on_a_shared_population_are_refused() -> None:
    tables = linked(records(np.random.default_rng(7), 100))
    frame = tables[1].frame
    at = frame.index[(frame["region"] == "N1") & (frame["group"] == "Total")][0]
    frame.loc[at, "n"] += 1
    frame.loc[frame.index[(frame["region"] == "North") & (frame["group"] == "Total")][0], "n"] += 1
    frame.loc[frame.index[(frame["region"] == "Total") & (frame["group"] == "Total")][0], "n"] += 1
    frame.loc[frame.index[(frame["region"] == "N1") & (frame["group"] == "g1")][0], "n"] += 1
    frame.loc[frame.index[(frame["region"] == "North") & (frame["group"] == "g1")][0], "n"] += 1
    frame.loc[frame.index[(frame["region"] == "Total") & (frame["group"] == "g1")][0], "n"] += 1
    with pytest.raises(DisclosureError, match="linked tables must agree on shared cells"):
        protect_linked(tables, rules=Rules(threshold=5), method="fast")


def test_an_audit_after_the_release_finds_what_a_subcontractor_reads_off_its_own_cell():
    """The pattern of the intruders module's example, audited after the fact: a prime of 58 with
    subcontractors 10, 10, 25 published and 3, 2, 8 hidden. The outsider gets each hidden cell in
    [0, 13]; the subcontractor whose cell is 8 gets the other two in [0, 5]. Hiding a published
    subcontractor too (the 25) gives that subcontractor room [0, 30], and the audit passes."""
    subs = {"S1": 10, "S2": 10, "S3": 25, "S4": 3, "S5": 2, "S6": 8}
    provider = Hierarchy.from_parents("provider", {"P1": "Total", **dict.fromkeys(subs, "P1")})
    frame = pd.DataFrame({"provider": ["Total", "P1", *subs], "n": [58, 58, *subs.values()]})
    frame["key"] = frame["provider"].map(lambda c: "" if c == "Total" else f"unit={c}")
    units = lambda key: [key] if key else []  # noqa: E731  each subcontractor (and the prime) knows its own cell

    def audit(hidden: list[str]):
        table = frame.assign(hide=frame["provider"].isin(hidden))
        return audit_linked_intruders([LinkedTable(table, {"provider": provider}, "n", "key", hidden="hide")], units)

    report, where = audit(["S4", "S5", "S6"])
    failed = {(f.unit, cell["provider"], f.lower, f.upper) for f, cell in zip(report.failures, where, strict=True)}
    assert failed == {("unit=S6", "S4", 0, 5), ("unit=S6", "S5", 0, 5)}
    report, where = audit(["S3", "S4", "S5", "S6"])
    assert report.ok and not where, report.failures

    # a relation the attacker knows (S3's cell holds at least the 25 of a measure it bounds, as
    # attachments bound job starts) pins S3 to [25, 30] for that subcontractor: S4 and S5 to [0, 5]
    at_least = KeyedRelations(pd.DataFrame({"row": [0], "key": ["unit=S3"], "coef": [-1.0]}), np.array([-25.0]))
    table = frame.assign(hide=frame["provider"].isin(["S3", "S4", "S5", "S6"]))
    linked = [LinkedTable(table, {"provider": provider}, "n", "key", hidden="hide")]
    report, where = audit_linked_intruders(linked, units, relations=at_least)
    failed = {(f.unit, cell["provider"], f.lower, f.upper) for f, cell in zip(report.failures, where, strict=True)}
    assert failed == {("unit=S6", "S4", 0, 5), ("unit=S6", "S5", 0, 5)}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n=st.integers(30, 300), held=st.integers(1, 4))
def test_held_cells_are_protected_like_primaries_and_keep_their_status(seed: int, n: int, held: int) -> None:
    """A reader who cannot tell primaries from secondaries (the public audit) holds every hidden cell
    to the protection width; a cell passed back as ``held`` (here: cells at or above the threshold,
    drawn at random) comes out hidden, still ``secondary``, and as wide as a primary must be, by the
    independent attacker of both tables; no primary is narrowed either."""
    rules = Rules(threshold=5)
    tables = linked(records(np.random.default_rng(seed), n))
    big = sorted(set(tables[0].frame.loc[tables[0].frame["n"] >= 5, "key"]))
    chosen = set(np.random.default_rng(seed).choice(big, size=min(held, len(big)), replace=False))
    for t in tables:
        t.frame["hold"] = t.frame["key"].isin(chosen)
        t.held = "hold"
    results = protect_linked(tables, rules=rules, method="fast")
    intervals = attack(results, tables)
    status = {k: s for r in results for k, s in zip(r.frame["key"], r.frame["status"], strict=True)}
    for key in chosen:
        assert status[key] == "secondary", key
        assert intervals[key][1] - intervals[key][0] >= 5 - 1e-6, (key, intervals[key])
    for key in (k for k, s in status.items() if s == "primary"):
        assert intervals[key][1] - intervals[key][0] >= 5 - 1e-6, key
