"""Intruders who know their own cells (a subcontractor its row, a prime its rows and its
subcontractors', a CPA every row under it): the check finds what they narrow, the repair closes it,
an LP attacker written here (highspy directly, not disclosure.attacker) confirms, forged
certificates are not believed, and the same input gives the same output."""

from unittest.mock import patch

import highspy
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from independent_audit import additivity_matrix

from disclosure import AuditFailed, Grid, Hierarchy, Rules, add_totals
from disclosure import intruders as intruders_module
from disclosure.attacker import certified_intervals, exact_intervals
from disclosure.hypercube import Hypercubes
from disclosure.intruders import OUTSIDER, Intruders, _Moves, intruder_intervals, protect_against
from disclosure.primary import primary_mask, required_widths
from disclosure.relations import Relations

RULES = Rules(singletons="ignore")  # threshold 10, protection 10


def build(months: list[str], parents: dict[str, str], cells: dict[tuple[str, str], int]):
    """Full month × provider table from leaf values, with arrays in cell order."""
    dims = {"month": Hierarchy.flat("month", months), "provider": Hierarchy.from_parents("provider", parents)}
    leaves = dims["provider"].leaves
    base = pd.DataFrame([(m, s, cells[(m, s)]) for m in months for s in leaves], columns=["month", "provider", "n"])
    frame = add_totals(base, dims, ["n"])  # rows in cell order
    grid = Grid.of(dims)
    values = np.zeros(grid.size, dtype=np.int64)
    values[grid.cell_index(frame)] = frame["n"].to_numpy()
    primary = primary_mask(values, RULES)
    return frame, dims, grid, values, primary, required_widths(primary, RULES)


def example():
    """One prime P1 with six subcontractors; in M1 three are published (10, 10, 25), three hidden (3, 2, 8)."""
    months = ["M1", "M2", "M3"]
    parents = {"C1": "Total", "P1": "C1", **{f"S{i}": "P1" for i in range(1, 7)}}
    parents |= {"C2": "Total", "P2": "C2", **{f"S{i}": "P2" for i in range(7, 10)}}
    rng = np.random.default_rng(1)
    cells = {(m, f"S{i}"): int(rng.integers(15, 40)) for m in months for i in range(1, 10)}
    cells |= {("M1", "S1"): 10, ("M1", "S2"): 10, ("M1", "S3"): 25, ("M1", "S4"): 3, ("M1", "S5"): 2, ("M1", "S6"): 8}
    return build(months, parents, cells)


def cell(grid, month: str, provider: str) -> int:
    return int(
        np.ravel_multi_index(
            (grid.hierarchies[0].codes.index(month), grid.hierarchies[1].codes.index(provider)), grid.shape
        )
    )


def fast(grid, values, primary, required):
    run = Hypercubes(grid, values, primary, required)
    return run.run(prune=False).suppressed, run.moves()


def test_a_subcontractor_narrows_its_siblings_and_the_repair_closes_it():
    frame, dims, grid, values, primary, required = example()
    suppressed, moves = fast(grid, values, primary, required)
    # the fast pattern is safe against the outsider (certificates, and the exact attacker agrees)
    assert certified_intervals(grid.constraints, values, suppressed, required, moves).ok.all()
    assert exact_intervals(grid.constraints, values, suppressed, required).ok.all()
    intruders = Intruders.from_hierarchy(grid, "provider")
    check = intruder_intervals(grid, values, suppressed, required, intruders, moves)
    assert not check.ok
    s4, s5 = cell(grid, "M1", "S4"), cell(grid, "M1", "S5")
    assert {(f.unit, f.cell) for f in check.failures} == {("S6", s4), ("S6", s5)}
    for f in check.failures:  # S6 knows its own 8: the other two add up to 5
        assert (f.lower, f.upper) == (0.0, 5.0)
    settled = check.by_certificate + check.by_outsider + check.by_stronger + check.by_tables + check.by_lp
    assert check.pairs == settled + check.failed_pairs
    assert check.intruders == tuple(sorted(intruders.names))

    fixed, report = protect_against(grid, values, primary, required, suppressed, intruders, moves=moves)
    assert report.ok and report.repaired == ("S6",)
    assert (fixed >= suppressed).all() and report.added == int((fixed & ~suppressed).sum()) > 0
    assert intruder_intervals(grid, values, fixed, required, intruders, report.moves).ok
    assert intruder_intervals(grid, values, fixed, required, intruders, search=False).ok  # by LP alone too
    assert independent_failures(frame, dims, fixed, values, required) == []
    described = report.describe()
    assert described["intruders"] == sorted(intruders.names)
    assert (
        described["pairs"]
        == described["proven_by_certificate"]
        + described["proven_as_outsider"]
        + described["proven_by_feasible_tables"]
        + described["proven_by_lp"]
        + described["proven_by_stronger_intruder"]
        + described["proven_before_a_repair"]
    )


def test_the_heuristic_alone_repairs_too():
    frame, dims, grid, values, primary, required = example()
    suppressed, moves = fast(grid, values, primary, required)
    intruders = Intruders.from_hierarchy(grid, "provider")
    fixed, report = protect_against(grid, values, primary, required, suppressed, intruders, moves=moves, cubes=False)
    assert report.ok
    assert independent_failures(frame, dims, fixed, values, required) == []


def test_an_unprotectable_primary_names_the_unit_and_the_cell():
    _, _, grid, values, primary, required = example()
    suppressed, moves = fast(grid, values, primary, required)
    intruders = Intruders.from_hierarchy(grid, "provider")
    with pytest.raises(AuditFailed, match=r"'provider': 'S4'.*against intruder 'S6'"):
        protect_against(grid, values, primary, required, suppressed, intruders, locked=~suppressed, moves=moves)


def test_relations_limit_certificates_and_reach_the_lp():
    _, _, grid, values, primary, required = example()
    suppressed, moves = fast(grid, values, primary, required)
    intruders = Intruders.from_hierarchy(grid, "provider")
    fixed, report = protect_against(grid, values, primary, required, suppressed, intruders, moves=moves)
    s4, s5 = cell(grid, "M1", "S4"), cell(grid, "M1", "S5")
    none = Relations(sp.csr_matrix((0, grid.size)), np.zeros(0))
    same = intruder_intervals(grid, values, fixed, required, intruders, report.moves, relations=none)
    assert same.ok and same.by_certificate == report.by_certificate
    # S4 + S5 <= 5 and S4 - S5 <= 1 (both tight): every move through them is pinned in some direction
    pin = Relations(
        sp.csr_matrix(([1.0, 1.0, 1.0, -1.0], ([0, 0, 1, 1], [s4, s5, s4, s5])), shape=(2, grid.size)), [5, 1]
    )
    check = intruder_intervals(grid, values, fixed, required, intruders, report.moves, relations=pin)
    failed = {(f.unit, f.cell) for f in check.failures}
    assert (OUTSIDER, s4) in failed and (OUTSIDER, s5) in failed
    assert check.by_certificate < report.by_certificate


def test_forged_certificates_are_not_believed():
    _, _, grid, values, primary, required = example()
    suppressed, moves = fast(grid, values, primary, required)
    intruders = Intruders.from_hierarchy(grid, "provider")
    n = grid.size
    s4, s5, s1 = cell(grid, "M1", "S4"), cell(grid, "M1", "S5"), cell(grid, "M1", "S1")
    s4b, s1b = cell(grid, "M2", "S4"), cell(grid, "M2", "S1")
    # (1) +S4 -S5 in M1 keeps P1's month total but breaks both rows' totals: A d != 0
    broken = sp.csr_matrix(([1.0, -1.0], ([0, 0], [s4, s5])), shape=(1, n))
    # (2) a genuine move of the table (A d = 0) that needs S1's published cells
    published = sp.csr_matrix(([1.0, -1.0, -1.0, 1.0], ([0, 0, 0, 0], [s4, s1, s4b, s1b])), shape=(1, n))
    assert abs(grid.constraints @ published.T).sum() == 0 and not suppressed[s1]
    # (3) a ±2 move is not a certificate either
    doubled = sp.csr_matrix(moves[:1] * 2)
    forged = sp.vstack([moves, broken, published, doubled], format="csr")
    check = intruder_intervals(grid, values, suppressed, required, intruders, forged)
    assert check.rejected_moves == 3
    assert {(f.unit, f.cell) for f in check.failures} == {("S6", s4), ("S6", s5)}
    # with S1's cells hidden the same move is a real certificate against S6
    both = suppressed.copy()
    both[[s1, s1b]] = True
    ok = intruder_intervals(grid, values, both, required, intruders, sp.vstack([moves, published], format="csr"))
    assert ok.rejected_moves == 0 and not any(f.cell == s4 for f in ok.failures)


def test_same_input_same_output():
    _, _, grid, values, primary, required = example()
    suppressed, moves = fast(grid, values, primary, required)
    intruders = Intruders.from_hierarchy(grid, "provider")
    runs = [protect_against(grid, values, primary, required, suppressed, intruders, moves=moves) for _ in range(2)]
    assert np.array_equal(runs[0][0], runs[1][0])
    assert runs[0][1].describe() == runs[1][1].describe()
    assert runs[0][1].failures == runs[1][1].failures
    assert (runs[0][1].moves != runs[1][1].moves).nnz == 0
    # the order the units are given in does not matter either
    order = np.argsort(intruders.names)[::-1]
    shuffled = Intruders(tuple(intruders.names[i] for i in order), intruders.knows[order])
    again = protect_against(grid, values, primary, required, suppressed, shuffled, moves=moves)
    assert np.array_equal(again[0], runs[0][0])


def test_from_sets_matches_from_hierarchy():
    grid = example()[2]
    by_tree = Intruders.from_hierarchy(grid, "provider", ["P2", "S7"])
    s7 = [cell(grid, m, "S7") for m in ["Total", "M1", "M2", "M3"]]
    p2 = [cell(grid, m, c) for m in ["Total", "M1", "M2", "M3"] for c in ["P2", "S7", "S8", "S9"]]
    by_sets = Intruders.from_sets(["P2", "S7"], [p2, s7], grid.size)
    assert by_tree.names == by_sets.names
    assert (by_tree.knows != by_sets.knows).nnz == 0


# -- the independent attacker -----------------------------------------------------------------


def independent_failures(frame, dims, suppressed, values, required) -> list[tuple[str, int]]:
    """(unit, cell) pairs where a unit of the provider hierarchy (or the outsider) narrows a primary
    it does not know below its width: every cell a variable, published and known cells fixed to
    the truth, every additivity equation, x >= 0; min and max of each primary by HiGHS directly."""
    parents = {d: {c: (h.parent(c) or "") for c in h.codes} for d, h in dims.items()}
    matrix = additivity_matrix(frame, parents)
    provider = frame["provider"].to_numpy()
    tree = parents["provider"]

    def below(code: str) -> set[str]:
        out = {code}
        grew = True
        while grew:
            more = {c for c, p in tree.items() if p in out} - out
            grew = bool(more)
            out |= more
        return out

    units = [(OUTSIDER, set())] + [(c, below(c)) for c in tree if tree[c]]
    primaries = np.flatnonzero(required > 0)
    csc = matrix.tocsc()
    bad = []
    for name, codes in units:
        known = np.isin(provider, list(codes))
        fixed = ~suppressed | known
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = len(values), matrix.shape[0]
        lp.col_cost_ = np.zeros(len(values))
        lp.col_lower_ = np.where(fixed, values, 0.0).astype(np.float64)
        lp.col_upper_ = np.where(fixed, values, highspy.kHighsInf).astype(np.float64)
        lp.row_lower_ = lp.row_upper_ = np.zeros(matrix.shape[0])
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = csc.indptr, csc.indices, csc.data
        solver = highspy.Highs()
        solver.setOptionValue("output_flag", False)
        solver.passModel(lp)
        for p in primaries:
            if known[p]:
                continue
            ends = []
            for sense in (1.0, -1.0):
                solver.changeColCost(int(p), sense)
                solver.run()
                status = solver.getModelStatus()
                if status not in (highspy.HighsModelStatus.kOptimal, highspy.HighsModelStatus.kUnbounded):
                    solver.clearSolver()  # a warm start can end in "unknown": solve again from scratch
                    solver.run()
                    status = solver.getModelStatus()
                if status == highspy.HighsModelStatus.kUnbounded:
                    ends.append(np.inf)
                else:
                    assert status == highspy.HighsModelStatus.kOptimal, solver.modelStatusToString(status)
                    ends.append(sense * solver.getInfo().objective_function_value)
            solver.changeColCost(int(p), 0.0)
            lo, hi = np.ceil(ends[0] - 1e-6), np.floor(ends[1] + 1e-6) if np.isfinite(ends[1]) else np.inf
            if hi - lo < required[p] - 1e-6:
                bad.append((name, int(p)))
    return bad


def three_cpas(seed: int):
    """Month × (3 CPAs > 2 primes each > 2-3 subcontractors) with small counts, drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    months, parents, leaves = ["M1", "M2", "M3"], {}, []
    for c in range(1, 4):
        parents[f"C{c}"] = "Total"
        for p in range(1, 3):
            parents[f"P{c}{p}"] = f"C{c}"
            for _ in range(int(rng.integers(2, 4))):
                leaves.append(f"S{len(leaves) + 1}")
                parents[leaves[-1]] = f"P{c}{p}"
    counts, weights = [0, 1, 2, 3, 5, 8, 12, 20, 30], [0.1, 0.15, 0.15, 0.15, 0.1, 0.1, 0.1, 0.1, 0.05]
    return build(months, parents, {(m, s): int(rng.choice(counts, p=weights)) for m in months for s in leaves})


@pytest.mark.parametrize("seed", [5, 15, 19, 47])
def test_the_repair_spares_the_headline_figures(seed):
    """A cube the repair adds against a unit never takes a national or CPA figure (``Grid.headline``):
    those join only through the Heuristic, which takes them last. On these tables a cube through a
    headline cell was the cheapest against some unit (each of the four hid a headline cell when the repair's
    cubes did not spare them, as the demo hid its national sustainment total); the pattern that
    spares them is as safe against every unit, by the LP written here."""
    frame, dims, grid, values, primary, required = three_cpas(seed)
    suppressed, moves = fast(grid, values, primary, required)
    intruders = Intruders.from_hierarchy(grid, "provider")
    fixed, report = protect_against(grid, values, primary, required, suppressed, intruders, moves=moves)
    assert report.ok and report.added > 0
    assert not (fixed & ~suppressed & grid.headline).any()
    assert independent_failures(frame, dims, fixed, values, required) == []


@pytest.mark.parametrize("seed", [15, 19, 47])  # (seed 5's pairs are all proven without an LP)
def test_batched_solves_prove_only_what_the_per_pair_lps_prove(seed):
    """The batched solves in each view (``_prove``'s ``spread``) only widen what is proven: run in
    every view (from one narrow cell) or in none, the check names the same failures with the same
    exact intervals, and those are the independent attacker's. A batched solution that broke a
    unit's known cells or additivity would prove a pair the per-pair LPs leave narrow."""
    frame, dims, grid, values, primary, required = three_cpas(seed)
    suppressed, moves = fast(grid, values, primary, required)
    intruders = Intruders.from_hierarchy(grid, "provider")

    def failures(**patched):
        with patch.multiple(intruders_module, **patched):
            report = intruder_intervals(grid, values, suppressed, required, intruders, moves, search=False)
        return [(f.unit, f.cell, f.lower, f.upper) for f in report.failures], report.by_lp

    always, by_lp = failures(PUSH_MIN=1)
    never, _ = failures(PUSH_ROUNDS=0)
    assert always == never and always  # the fast pattern fails against some unit
    assert by_lp > 0  # pairs were left to the LPs, so the batched solves ran
    expected = set(independent_failures(frame, dims, suppressed, values, required))
    assert {(unit, c) for unit, c, _, _ in always} <= expected
    assert {c for _, c, _, _ in always} == {c for _, c in expected}


@st.composite
def month_provider_tables(draw, cpas: tuple[int, int] = (2, 3), children: tuple[int, int] = (2, 3)):
    """Random month × (CPA > prime > subcontractor) tables; every code has at least two children
    (a lone child's row would equal its parent's, which the child then knows)."""
    months = [f"M{i}" for i in range(draw(st.integers(2, 4)))]
    parents: dict[str, str] = {}
    for c in range(draw(st.integers(*cpas))):
        parents[f"C{c}"] = "Total"
        for p in range(draw(st.integers(*children))):
            parents[f"C{c}P{p}"] = f"C{c}"
            for s in range(draw(st.integers(*children))):
                parents[f"C{c}P{p}S{s}"] = f"C{c}P{p}"
    subs = [c for c in parents if "S" in c]
    value = st.one_of(st.integers(0, 12), st.integers(0, 40))
    cells = {(m, s): draw(value) for m in months for s in subs}
    return build(months, parents, cells)


@pytest.mark.slow
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(month_provider_tables())
def test_repaired_fast_patterns_survive_every_intruder(table):
    frame, dims, grid, values, primary, required = table
    suppressed, moves = fast(grid, values, primary, required)
    intruders = Intruders.from_hierarchy(grid, "provider")
    fixed, report = protect_against(grid, values, primary, required, suppressed, intruders, moves=moves)
    assert report.ok and (fixed >= suppressed).all()
    settled = report.by_certificate + report.by_outsider + report.by_stronger + report.by_tables + report.by_lp
    assert report.pairs == settled + report.by_earlier_round
    assert independent_failures(frame, dims, fixed, values, required) == []
    # and the check agrees with the independent attacker on the fast pattern before the repair: the
    # same cells fail, each named against the strongest units that narrow it (a prime contract
    # stands for its subcontractors), every one of which the independent attacker finds too
    before = intruder_intervals(grid, values, suppressed, required, intruders, moves)
    expected = set(independent_failures(frame, dims, suppressed, values, required))
    found = {(f.unit, f.cell) for f in before.failures}
    assert found <= expected
    assert {cell for _, cell in found} == {cell for _, cell in expected}
    # a large component is proven another way (blocks of the units knowing a cell, then the exact
    # extremes, no short move over all of it): the same failures, each with the same exact interval
    with patch.object(intruders_module, "SHORT_MAX_CELLS", 0):
        blocked = intruder_intervals(grid, values, suppressed, required, intruders, moves)
    assert [(f.unit, f.cell, f.lower, f.upper) for f in blocked.failures] == [
        (f.unit, f.cell, f.lower, f.upper) for f in before.failures
    ]


@pytest.mark.slow
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(month_provider_tables(cpas=(4, 5), children=(2, 2)))
def test_every_block_table_is_one_the_view_cannot_rule_out(table):
    """Blocks only prove if each table they give is a table of the whole component that the view's
    unit cannot tell from the truth: additive, non-negative, every cell the unit knows at its truth,
    every cell outside the block too. Every block of every cell's chain, in every unit's view, at
    the max and the min of the first cell whose chain holds it."""
    _, _, grid, values, primary, required = table
    suppressed, _ = fast(grid, values, primary, required)
    a = sp.csr_matrix(grid.constraints)
    labels = intruders_module._components(a, suppressed)
    intruders = Intruders.from_hierarchy(grid, "provider")
    a_csc = sp.csc_matrix(a)
    for c in np.unique(labels[labels >= 0]):
        members = np.flatnonzero(labels == c)
        blocks = intruders_module._Blocks(a_csc, values, members, None, intruders.knows)
        for view in range(-1, len(intruders.names)):
            known = np.zeros(len(values), dtype=bool)
            if view >= 0:
                known[intruders.knows[view].indices] = True
            fixed = np.flatnonzero(known[members])
            first = {}  # each block of the view once, at the first cell whose chain holds it
            for col in np.flatnonzero(~known[members]):
                for block in blocks.chain(int(col)):
                    first.setdefault(block, int(col))
            for block, col in first.items():
                lps, cells, _ = blocks.view(block, view, fixed)
                for sign in (1.0, -1.0):
                    if (x := lps.extreme(int(np.searchsorted(cells, col)), sign)) is None:
                        continue
                    whole = values.copy()
                    whole[members] = blocks.table(cells, x)
                    assert np.allclose(a @ whole, a @ values) and (whole > -1e-7).all()
                    held = known.copy()
                    held[np.setdiff1d(np.arange(len(values)), members[cells])] = True
                    assert np.allclose(whole[held], values[held])


def test_a_unit_owns_the_totals_made_only_of_its_records():
    """In M1 only S1 (of P1, of C1) has participants: the M1 national, C1 and P1 cells are S1's own
    figures, so S1 knows them; S2 knows none of them, and in M2 (S2 has people too) S1 owns no total."""
    parents = {"C1": "Total", "P1": "C1", "S1": "P1", "S2": "P1", "C2": "Total", "P2": "C2", "S3": "P2", "S4": "P2"}
    cells = {("M1", "S1"): 4, ("M1", "S2"): 0, ("M1", "S3"): 0, ("M1", "S4"): 0}
    cells |= {("M2", "S1"): 3, ("M2", "S2"): 5, ("M2", "S3"): 12, ("M2", "S4"): 20}
    _, _, grid, values, _, _ = build(["M1", "M2"], parents, cells)
    units = Intruders.from_hierarchy(grid, "provider")
    owning = units.owning(grid, values)
    s1, s2 = units.names.index("S1"), units.names.index("S2")
    known = owning.knows.toarray()
    for provider in ("Total", "C1", "P1", "S1"):
        assert known[s1, cell(grid, "M1", provider)]
    for provider in ("Total", "C1", "P1", "S2", "C2"):
        assert not known[s1, cell(grid, "M2", provider)]
    assert not known[s2, cell(grid, "M1", "P1")]
    assert (owning.knows.toarray() >= units.knows.toarray()).all()  # what a unit knew it still knows


def test_a_short_move_moves_the_cell_by_the_whole_step():
    """The short-move LP bounds the cell's deviation up (or down) from below; the other direction of
    the same cell is held at 0, so the two cannot cancel and leave the cell moved by less."""
    _, _, grid, values, primary, required = example()
    suppressed, _ = fast(grid, values, primary, required)
    members = np.flatnonzero(suppressed)
    moves = _Moves(sp.csc_matrix(grid.constraints), values.astype(np.float64), members, None)
    for j in range(len(members)):
        z = moves.z[j]
        for step in (10.0, -min(10.0, z)):
            if step and (table := moves.short(j, step)) is not None:
                assert (table[j] - z) * np.sign(step) >= abs(step) - 1e-6
                assert np.allclose(grid.constraints[:, members] @ (table - moves.z), 0)
                assert (table >= -1e-9).all()
