"""An intruder's LP attack on a whole release tree, written apart from ``disclosure/`` and ``opendata/``.

It reads only what is published (``data/*.parquet``, ``hierarchies/*.csv``, ``datapackage.json``)
of one or more versions and, for an insider, the true values of the cells that insider knows. It
never imports ``disclosure`` or the publishing side's aggregation or protection code.

Model (one LP for everything the intruder holds):

* **Quantities.** Every published cell of every table of every version is a quantity named by its
  canonical key ``(measure, area, payment group, month, world)``: the provider row of a CPA (or of
  Great Britain) and the CPA row at payment group Total of the other table are the same quantity;
  a month is the same quantity in every version and in the ``-mi-ahead`` tables
  (``month_provisional``); a month total is named by the months it spans, so totals of different
  versions or of the provisional tables are different quantities. ``world`` is empty for a
  quantity shared by all versions, or the version for a *revised* quantity (see
  :func:`revised_keys`).
* **Constraints.** Additivity of every table in every dimension; a published (rounded, base ``b``)
  value ``v`` pins its quantity to ``[v - b//2, v + b - b//2 - 1] ∩ [0, ∞)``; relations between
  measures (:data:`CUMULATIVE`: running sums over the months of a version, valid because each
  version's months start at the programme start; :data:`PER_CELL`: sustainment payments at most 30
  per job outcome); cells an insider knows fixed at their true values.
* **Attack.** For each target the LP is solved for ``min x`` and ``max x`` (HiGHS, one model,
  warm-started: only the objective and, per intruder, the bounds change). The integer interval is
  ``ceil(min) .. floor(max)``. Every LP solution (and a known feasible point such as the truth) is
  a feasible table, so the range of a target's values seen across solutions is a proven inner
  bound: targets whose seen range already reaches the required width need no LP of their own.
  Every reported failure comes from the target's own two LPs (exact bounds).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import highspy
import numpy as np
import pandas as pd
from independent_audit import additivity_matrix
from scipy import sparse

ROOT_AREA, ROOT_PG = "GB", "ALL"
#: (smaller, larger): running sums over months of ``smaller`` never exceed those of ``larger``.
CUMULATIVE = (("attachments", "referrals"), ("job_starts", "attachments"), ("job_outcomes", "job_starts"))
#: (measure, bound measure, factor): in every cell ``measure <= factor * bound measure`` (a referral
#: cohort's job outcomes within 12 months are some of its referrals).
PER_CELL = (
    ("sustainment_payments", "job_outcomes", 30),
    ("job_outcomes_12m", "referrals", 1),
    ("missed_attachment_standard", "referrals", 1),
)
AREA_DIMS, PG_DIMS = ("provider", "cpa"), ("payment_group",)


@dataclass
class Table:
    """One published table of one version: codes as strings, measures as floats (NaN = suppressed)."""

    version: str
    name: str
    dims: list[str]
    frame: pd.DataFrame
    parents: dict[str, dict[str, str]]
    measures: list[str]
    time_dim: str | None = None
    months: tuple[str, str] | None = None  # the first and last month of the version's data

    def canonical(self) -> pd.DataFrame:
        """Per row: ``area``, ``pg`` and ``month`` of the canonical key (``month`` of a total: ``Σ`` + span)."""
        out = pd.DataFrame(index=self.frame.index)
        out["area"], out["pg"], out["month"] = ROOT_AREA, ROOT_PG, ""
        for dim in self.dims:
            parent = self.parents[dim]
            codes = self.frame[dim]
            is_root = codes.map(parent).eq("")
            if dim == self.time_dim:
                out["month"] = codes.map(lambda c, parent=parent: period_label(c, parent, self.months))
            elif dim in AREA_DIMS:
                out["area"] = codes.where(~is_root, ROOT_AREA)
            elif dim in PG_DIMS:
                out["pg"] = codes.where(~is_root, ROOT_PG)
            else:
                raise NotImplementedError(f"dimension {dim} has no canonical role")
        return out


def period_label(code: str, parent: dict[str, str], months: tuple[str, str] | None) -> str:
    """A month code as itself; any other period code (the total, a quarter, a year) as ``Σ`` and the
    months under it that the data covers, so a quarter of one table and the quarter subtotal of
    another are one quantity."""
    if len(code) == 7 and code[4] == "-" and code[5:].isdigit():
        return code
    has_child = set(parent.values())
    under = [c for c in parent if c not in has_child and _under(c, code, parent)] if code in has_child else [code]
    found = set()
    for leaf in under:
        if len(leaf) == 7 and leaf[5:].isdigit():
            found.add(leaf)
            continue
        year = int(leaf[:4])
        first, count = (1, 12) if len(leaf) == 4 else (3 * int(leaf[-1]) - 2, 3)
        found |= {f"{year}-{m:02d}" for m in range(first, first + count)}
    if months is not None:
        found = {m for m in found if months[0] <= m <= months[1]}
    return month_span_label(found)


def _under(code: str, ancestor: str, parent: dict[str, str]) -> bool:
    while code:
        if code == ancestor:
            return True
        code = parent.get(code, "")
    return False


def leaves(parent: dict[str, str]) -> list[str]:
    """Codes with no children."""
    has_child = set(parent.values())
    return sorted(c for c in parent if c not in has_child)


def month_span_label(months: Iterable[str]) -> str:
    return "Σ" + ",".join(sorted(months))


def span_of(month: str) -> set[str]:
    """Leaf months a canonical month label stands for."""
    return set(month[1:].split(",")) if month.startswith("Σ") else {month}


def load_version(path: str | Path) -> list[Table]:
    """Every data table of one published version directory (read from its Parquet files)."""
    path = Path(path)
    descriptor = json.loads((path / "datapackage.json").read_text())
    version = descriptor["version"]
    hier: dict[str, dict[str, str]] = {}
    periods: set[str] = set()
    for csv in sorted((path / "hierarchies").glob("*.csv")):
        h = pd.read_csv(csv, dtype=str, keep_default_na=False)
        hier[csv.stem] = dict(zip(h["code"], h["parent"], strict=True))
        levels = set(h["level"]) - {""}  # hand-made packages may leave the levels out: then by name
        if (levels and levels <= {"total", "month", "quarter", "year"}) or (not levels and "month" in csv.stem):
            periods.add(csv.stem)
    tables = []
    for resource in descriptor["resources"]:
        rpath = resource.get("path", "")
        if not (isinstance(rpath, str) and rpath.startswith("data/") and rpath.endswith(".parquet")):
            continue
        if resource.get("opendata:derived"):  # indicators: ratios of published cells, no cells of their own
            continue
        name = Path(rpath).stem
        dims = list(resource["schema"]["primaryKey"])
        frame = pd.read_parquet(path / rpath)
        for dim in dims:
            frame[dim] = frame[dim].astype(str)
        measures = [c for c in frame.columns if c not in dims and not c.endswith("_status")]
        for m in measures:
            frame[m] = frame[m].astype("float64")
            status = f"{m}_status"
            frame[status] = frame[status].astype(object).where(frame[status].notna(), "") if status in frame else ""
        time_dim = next((d for d in dims if d in periods), None)  # month, month_provisional, quarter, ...
        field = next((f for f in resource["schema"].get("fields", []) if f["name"] == time_dim), {})
        span = field.get("opendata:months")
        tables.append(
            Table(
                version, name, dims, frame.reset_index(drop=True), {d: hier[d] for d in dims}, measures, time_dim,
                (span["from"], span["to"]) if span else None,
            )
        )  # fmt: skip
    return tables


def load_versions(paths: Sequence[str | Path]) -> list[Table]:
    """Tables of several versions (give them oldest first)."""
    return [t for p in paths for t in load_version(p)]


# ---------------------------------------------------------------------------------------------------
# revisions


def _area_parents(tables: Sequence[Table]) -> dict[str, str]:
    out: dict[str, str] = {}
    for t in tables:
        for dim in t.dims:
            if dim in AREA_DIMS:
                h = t.parents[dim]
                for code, parent in h.items():
                    if parent == "":
                        out[ROOT_AREA] = ""
                    else:
                        out[code] = ROOT_AREA if h[parent] == "" else parent
    return out


def _pg_parents(tables: Sequence[Table]) -> dict[str, str]:
    out: dict[str, str] = {}
    for t in tables:
        for dim in t.dims:
            if dim in PG_DIMS:
                for code, parent in t.parents[dim].items():
                    if parent:
                        out[code] = ROOT_PG
    out[ROOT_PG] = ""
    return out


def _chain(parent: dict[str, str], code: str) -> list[str]:
    chain = [code]
    while parent.get(chain[-1], ""):
        chain.append(parent[chain[-1]])
    return chain


def revised_keys(tables: Sequence[Table], hidden_descendants: bool = True) -> set[tuple[str, str, str, str]]:
    """Canonical keys ``(measure, area, pg, month)`` that differ between versions, as the public sees it.

    A quantity is revised if a published value of it differs between versions (or carries status
    ``r``); every quantity that aggregates a revised one (its ancestors in every dimension) is
    revised too. With ``hidden_descendants`` the cells under a revised quantity that are hidden in
    some version are revised as well (the public cannot tell which hidden child moved), and their
    ancestors in turn, until nothing changes (a whole chain may be hidden in the newer version).
    """
    values: dict[tuple, dict[str, float]] = {}
    flagged: set[tuple] = set()
    hidden: set[tuple] = set()
    for t in tables:
        canon = t.canonical()
        keys = list(zip(canon["area"], canon["pg"], canon["month"], strict=True))
        for m in t.measures:
            vals = t.frame[m].to_numpy()
            status = t.frame[f"{m}_status"].to_numpy()
            for key, v, s in zip(keys, vals, status, strict=True):
                k = (m, *key)
                if s == "r":
                    flagged.add(k)
                if np.isnan(v):
                    hidden.add(k)
                else:
                    seen = values.setdefault(k, {})
                    if any(w != v for w in seen.values()):
                        flagged.add(k)
                    seen[t.version] = v
    existing = set(values) | hidden
    areas, pgs = _area_parents(tables), _pg_parents(tables)
    spans = sorted({k[3] for k in existing if k[3].startswith("Σ")})

    def ancestors(k: tuple) -> set[tuple]:
        m, a, p, mon = k
        months = [mon] + [s for s in spans if span_of(mon) <= span_of(s) and s != mon]
        return {(m, x, y, z) for x in _chain(areas, a) for y in _chain(pgs, p) for z in months} & existing

    def close_up(keys: set[tuple]) -> set[tuple]:
        out = set()
        for k in keys:
            out |= ancestors(k) | {k}
        return out

    result = close_up(flagged)
    while hidden_descendants and flagged:  # under a revised quantity, a hidden one may have moved unseen
        grown = close_up(result | {h for h in hidden if ancestors(h) & result})
        if grown == result:
            break
        result = grown
    return result


# ---------------------------------------------------------------------------------------------------
# the model


@dataclass
class Model:
    """The joint LP of everything the intruder holds. Build with :func:`build_model`."""

    keys: list[tuple]
    index: dict[tuple, int]
    equalities: sparse.csr_matrix
    inequalities: sparse.csr_matrix
    lower: np.ndarray
    upper: np.ndarray
    cell_vars: dict[tuple[str, str, str], np.ndarray]  # (version, table, measure) -> var per row
    tables: list[Table]
    steps: list[tuple]  # running sums: (previous step, smaller measure var, larger measure var)
    n_cells: int
    _solver: highspy.Highs | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return len(self.keys)

    def solver(self) -> highspy.Highs:
        """The HiGHS model (built once; later calls change only costs and bounds)."""
        if self._solver is None:
            a = sparse.vstack([self.equalities, self.inequalities]).tocsc()
            lp = highspy.HighsLp()
            lp.num_col_, lp.num_row_ = self.n, a.shape[0]
            lp.col_cost_ = np.zeros(self.n)
            lp.col_lower_ = np.where(np.isinf(self.lower), -highspy.kHighsInf, self.lower)
            lp.col_upper_ = np.where(np.isinf(self.upper), highspy.kHighsInf, self.upper)
            n_eq = self.equalities.shape[0]
            lp.row_lower_ = np.concatenate([np.zeros(n_eq), np.full(self.inequalities.shape[0], -highspy.kHighsInf)])
            lp.row_upper_ = np.zeros(a.shape[0])
            lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
            lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = a.indptr, a.indices, a.data
            h = highspy.Highs()
            h.setOptionValue("output_flag", False)
            h.setOptionValue("random_seed", 0)
            h.passModel(lp)
            h.run()  # a feasible basis first (dual simplex, presolve) ...
            h.setOptionValue("presolve", "off")
            h.setOptionValue("simplex_strategy", 4)  # ... then primal: a new objective keeps the basis feasible
            self._solver = h
        return self._solver

    def truth_vector(self, truths: dict[str, dict[str, pd.DataFrame]]) -> tuple[np.ndarray, list[str]]:
        """True value of every quantity from ``truths[version][table]`` (rows aligned with the table).

        Returns the vector and the list of contradictions (a shared quantity with two true values):
        a non-empty list means the model links quantities that are not the same.
        """
        x = np.full(self.n, np.nan)
        problems = []
        for t in self.tables:
            true = truths[t.version][t.name]
            for m in t.measures:
                idx = self.cell_vars[(t.version, t.name, m)]
                vals = true[m].to_numpy(dtype="float64")
                clash = ~np.isnan(x[idx]) & (x[idx] != vals)
                for j in np.flatnonzero(clash)[:5]:
                    problems.append(f"{self.keys[idx[j]]}: {x[idx[j]]} vs {vals[j]} ({t.version} {t.name})")
                x[idx] = vals
        for i, (prev, js, jl) in enumerate(self.steps):
            x[self.n_cells + i] = (0.0 if prev is None else x[self.n_cells + prev]) + x[js] - x[jl]
        return x, problems

    def violations(self, x: np.ndarray, tol: float = 1e-6) -> list[str]:
        """Constraints the point ``x`` breaks (empty: ``x`` is feasible)."""
        out = []
        bad = np.flatnonzero((x < self.lower - tol) | (x > self.upper + tol))
        out += [f"bound {self.keys[j]}: {x[j]} not in [{self.lower[j]}, {self.upper[j]}]" for j in bad[:10]]
        r = self.equalities @ x
        out += [f"additivity row {i}: residual {r[i]}" for i in np.flatnonzero(np.abs(r) > tol)[:10]]
        r = self.inequalities @ x
        out += [f"relation row {i}: {r[i]} > 0" for i in np.flatnonzero(r > tol)[:10]]
        return out

    def intervals(
        self,
        targets: Sequence[int],
        known: dict[int, float] | None = None,
        seed: np.ndarray | None = None,
        width: int = 10,
        full: bool = False,
    ) -> pd.DataFrame:
        """Integer interval ``[ceil(min), floor(max)]`` of every target quantity.

        ``known``: quantities the intruder knows exactly (fixed for this call only). ``seed``: a
        point known to be feasible (e.g. the truth), checked first; it and every LP solution give
        inner bounds, so a target already seen spanning ``width`` is not solved on its own unless
        ``full``. Columns: ``var``, ``lower``, ``upper``, ``width``, ``exact`` (own LPs solved).
        """
        h = self.solver()
        known = known or {}
        kidx = np.array(sorted(known), dtype=np.int32)
        if len(kidx):
            kval = np.array([known[int(j)] for j in kidx], dtype="float64")
            h.changeColsBounds(len(kidx), kidx, kval, kval)
        try:
            targets = np.array(sorted(set(int(t) for t in targets) - set(known)), dtype=np.int32)
            lo_seen = np.full(self.n, np.inf)
            hi_seen = np.full(self.n, -np.inf)
            if seed is not None:
                point = seed.copy()
                if len(kidx):
                    assert np.allclose(point[kidx], kval), "seed disagrees with the known cells"
                problems = self.violations(point)
                assert not problems, f"seed is not feasible: {problems[:5]}"
                lo_seen, hi_seen = point.copy(), point.copy()
            result: dict[int, tuple[float, float, bool]] = {}

            def solve(cost_idx: np.ndarray, cost: np.ndarray) -> tuple[str, float, np.ndarray | None]:
                h.changeColsCost(len(cost_idx), cost_idx, cost)
                h.run()
                status = h.getModelStatus()  # read everything before the model changes again
                objective = h.getInfo().objective_function_value
                x = np.asarray(h.getSolution().col_value) if status == highspy.HighsModelStatus.kOptimal else None
                h.changeColsCost(len(cost_idx), cost_idx, np.zeros(len(cost_idx)))
                if status == highspy.HighsModelStatus.kUnbounded:
                    return "unbounded", -np.inf, None
                if status != highspy.HighsModelStatus.kOptimal:
                    raise AssertionError(f"attacker LP: {h.modelStatusToString(status)}")
                return "optimal", objective, x

            def seen_wide(j: int) -> bool:
                if not (np.isfinite(hi_seen[j]) and np.isfinite(lo_seen[j])):
                    return False
                return math.floor(hi_seen[j] + 1e-7) - math.ceil(lo_seen[j] - 1e-7) >= width

            def note(x: np.ndarray | None) -> None:
                nonlocal lo_seen, hi_seen
                if x is not None:
                    np.minimum(lo_seen, x, out=lo_seen)
                    np.maximum(hi_seen, x, out=hi_seen)

            if not full:
                rng = np.random.default_rng(0)
                for weights in ("up", "down", "random", "random"):
                    open_ = np.array([j for j in targets if not seen_wide(j)], dtype=np.int32)
                    if len(open_) < 2:
                        break
                    w = {"up": np.ones(len(open_)), "down": -np.ones(len(open_))}.get(weights)
                    if w is None:
                        w = rng.choice([-1.0, 1.0], size=len(open_))
                    note(solve(open_, -w)[2])  # maximise w · x
            for j in targets:
                if not full and seen_wide(j):
                    result[int(j)] = (lo_seen[j], hi_seen[j], False)
                    continue
                one = np.array([j], dtype=np.int32)
                s_min, v_min, x_min = solve(one, np.array([1.0]))
                note(x_min)
                s_max, v_max, x_max = solve(one, np.array([-1.0]))
                note(x_max)
                upper = np.inf if s_max == "unbounded" else -v_max
                lower = v_min if s_min == "optimal" else -np.inf
                result[int(j)] = (lower, upper, True)
        finally:
            if len(kidx):
                h.changeColsBounds(
                    len(kidx),
                    kidx,
                    self.lower[kidx],
                    np.where(np.isinf(self.upper[kidx]), highspy.kHighsInf, self.upper[kidx]),
                )
        rows = []
        for j, (lo, hi, exact) in result.items():
            ilo = math.ceil(lo - 1e-7) if np.isfinite(lo) else lo
            ihi = math.floor(hi + 1e-7) if np.isfinite(hi) else hi
            rows.append((j, ilo, ihi, ihi - ilo, exact))
        return pd.DataFrame(rows, columns=["var", "lower", "upper", "width", "exact"])

    def describe(self, var: int) -> str:
        m, a, p, mon, world = self.keys[var]
        label = f"{mon[:40]}…" if len(mon) > 40 else mon
        return f"{m} area={a} pg={p} month={label}" + (f" [{world}]" if world else "")


def build_model(
    tables: Sequence[Table],
    base: int = 5,
    relations: bool = True,
    revised: set[tuple] | None = None,
) -> Model:
    """The joint LP over ``tables`` (any versions). ``revised``: keys from :func:`revised_keys`."""
    revised = revised or set()
    index: dict[tuple, int] = {}
    keys: list[tuple] = []
    cell_vars: dict[tuple[str, str, str], np.ndarray] = {}
    lower_of: dict[int, float] = {}
    upper_of: dict[int, float] = {}
    blocks = []
    for t in tables:
        canon = t.canonical()
        base_keys = list(zip(canon["area"], canon["pg"], canon["month"], strict=True))
        a_rows = additivity_matrix(t.frame, t.parents)
        for m in t.measures:
            idx = np.empty(len(base_keys), dtype=np.int64)
            for r, bk in enumerate(base_keys):
                k = (m, *bk)
                k = (*k, t.version if k in revised else "")
                j = index.get(k)
                if j is None:
                    j = index[k] = len(keys)
                    keys.append(k)
                idx[r] = j
            cell_vars[(t.version, t.name, m)] = idx
            blocks.append((a_rows, idx))
            vals = t.frame[m].to_numpy()
            for r in np.flatnonzero(~np.isnan(vals)):
                v, j = vals[r], int(idx[r])
                lo, hi = max(v - base // 2, 0.0), v + (base - base // 2) - 1
                lower_of[j] = max(lower_of.get(j, 0.0), lo)
                upper_of[j] = min(upper_of.get(j, np.inf), hi)
    n = len(keys)
    eq = sparse.vstack(
        [
            (a @ sparse.csr_matrix((np.ones(len(idx)), (np.arange(len(idx)), idx)), shape=(len(idx), n))).tocsr()
            for a, idx in blocks
        ]
    ).tocsr()
    eq = _dedupe_rows(eq)
    lower = np.zeros(n)
    upper = np.full(n, np.inf)
    for j, v in lower_of.items():
        lower[j] = v
    for j, v in upper_of.items():
        upper[j] = v
    bad = np.flatnonzero(lower > upper)
    assert not len(bad), f"published values contradict each other: {[keys[j] for j in bad[:5]]}"
    per_cell, steps = _relations(tables, index) if relations else ([], [])
    n_all = n + len(steps)
    aux_rows = []
    for i, (prev, js, jl) in enumerate(steps):
        row = {n + i: 1.0, js: -1.0, jl: 1.0}
        if prev is not None:
            row[n + prev] = -1.0
        aux_rows.append(row)
    eq = sparse.vstack([sparse.hstack([eq, sparse.csr_matrix((eq.shape[0], len(steps)))]), _matrix(aux_rows, n_all)])
    keys = keys + [("_running", str(i), "", "", "") for i in range(len(steps))]
    lower = np.concatenate([lower, np.full(len(steps), -np.inf)])
    upper = np.concatenate([upper, np.zeros(len(steps))])
    ineq = _dedupe_rows(_matrix(per_cell, n_all))
    return Model(keys, index, eq.tocsr(), ineq, lower, upper, cell_vars, list(tables), steps, n)


def _dedupe_rows(m: sparse.csr_matrix) -> sparse.csr_matrix:
    m.sum_duplicates()
    m.sort_indices()
    seen, keep = set(), []
    for i in range(m.shape[0]):
        lo, hi = m.indptr[i], m.indptr[i + 1]
        if hi == lo:
            continue
        sig = (m.indices[lo:hi].tobytes(), m.data[lo:hi].tobytes())
        if sig not in seen:
            seen.add(sig)
            keep.append(i)
    return m[keep]


def _relations(tables: Sequence[Table], index: dict[tuple, int]) -> tuple[list[dict[int, float]], list[tuple]]:
    """Relations between measures.

    Returns the rows ``r · x <= 0`` of :data:`PER_CELL` and the running sums of :data:`CUMULATIVE`
    as ``(prev, small, large)`` steps: auxiliary ``c_k = c_prev + x_small - x_large <= 0`` (``prev``
    None at the first month of the version), which keeps the LP sparse.
    """
    rows: list[dict[int, float]] = []
    steps: list[tuple] = []
    versions = sorted({t.version for t in tables}, key=lambda v: [int(p) for p in v.split(".")])
    spans = sorted({k[3] for k in index if k[3].startswith("Σ")})

    def var(version: str, key: tuple) -> int | None:
        j = index.get((*key, version))
        return index.get((*key, "")) if j is None else j

    for version in versions:
        mine = [t for t in tables if t.version == version]
        cells: set[tuple[str, str]] = set()
        months: set[str] = set()
        quarters: set[str] = set()  # the leaves of tables by quarter, as their Σ labels
        for t in mine:
            canon = t.canonical()
            leaf = ~canon["month"].str.startswith("Σ")
            cells |= set(zip(canon["area"], canon["pg"], strict=True))
            months |= set(canon.loc[leaf, "month"])
            if t.time_dim and not leaf.any():
                parents = t.parents[t.time_dim]
                is_leaf = ~t.frame[t.time_dim].isin(set(parents.values())).to_numpy()
                quarters |= set(canon.loc[is_leaf, "month"])
        # running sums over the months, and over the quarters of tables by quarter
        sequences = [sorted(months), sorted(quarters, key=lambda s: min(span_of(s)))]
        for a, p in sorted(cells):
            for small, large in CUMULATIVE:
                for periods in sequences:
                    prev = None
                    for mon in periods:
                        js, jl = var(version, (small, a, p, mon)), var(version, (large, a, p, mon))
                        if js is None or jl is None:
                            break
                        steps.append((prev, js, jl))
                        prev = len(steps) - 1
            for mon in [*sorted(months), *spans]:
                for measure, bound, factor in PER_CELL:
                    js, jb = var(version, (measure, a, p, mon)), var(version, (bound, a, p, mon))
                    if js is not None and jb is not None:
                        rows.append({js: 1.0, jb: -float(factor)})
    return rows, steps


def _matrix(rows: list[dict[int, float]], n: int) -> sparse.csr_matrix:
    data, ri, ci = [], [], []
    for i, row in enumerate(rows):
        for j, v in row.items():
            ri.append(i)
            ci.append(j)
            data.append(v)
    return sparse.csr_matrix((data, (ri, ci)), shape=(len(rows), n))


# ---------------------------------------------------------------------------------------------------
# the truth, from the MI (for primaries, insiders and the soundness check)

#: measure -> (date field giving the month, value field or None for a count)
MEASURES = {
    "referrals": ("referral_date", None),
    "attachments": ("attachment_date", None),
    "job_starts": ("job_start_date", None),
    "job_outcomes": ("job_outcome_date", None),
    "sustainment_payments": ("job_outcome_date", "sustainment_payments"),
}
#: cohort measure -> (event date, months): records whose event falls within that many months of the
#: date of :data:`MEASURES`, counted in that date's month
COHORTS = {"job_outcomes_12m": ("job_outcome_date", 12)}
MEASURES["job_outcomes_12m"] = ("referral_date", None)
#: timeliness standard -> (event date, calendar days, {payment group: days}): records whose event is
#: missing or more than that many days after the date of :data:`MEASURES`, counted in that date's
#: month. Published months are complete (every record has had its limit by the data's end), so an
#: event after the data's end is late too.
MISSED = {"missed_attachment_standard": ("attachment_date", 15, {"PG9": 25})}
MEASURES["missed_attachment_standard"] = ("referral_date", None)


def read_mi(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Record-level MI (CSV) as strings, ``sustainment_payments`` as integers."""
    frame = pd.concat([pd.read_csv(p, dtype=str, keep_default_na=False) for p in paths], ignore_index=True)
    frame["sustainment_payments"] = pd.to_numeric(frame["sustainment_payments"].replace("", "0")).astype("int64")
    return frame


def true_tables(records: pd.DataFrame, tables: Sequence[Table]) -> dict[str, dict[str, pd.DataFrame]]:
    """``{version: {table: frame}}``: per published row, the true value of each measure and its
    frequency (``<measure>_freq``: contributors; for a sum, the records with a positive value)."""
    out: dict[str, dict[str, pd.DataFrame]] = {}
    for t in tables:
        result = t.frame[t.dims].copy()
        for m in t.measures:
            date, value = MEASURES[m]
            rec = records[records[date] != ""]
            if m in COHORTS:
                event, months = COHORTS[m]
                rec = rec[rec[event] != ""]
                start = pd.to_datetime(rec[date])
                rec = rec[pd.to_datetime(rec[event]) < start + pd.DateOffset(months=months)]
            if m in MISSED:
                event, days, overrides = MISSED[m]
                limit = rec["payment_group"].map(overrides).fillna(days)
                taken = (pd.to_datetime(rec[event].replace("", None)) - pd.to_datetime(rec[date])).dt.days
                rec = rec[taken.isna() | (taken > limit)]
            leaf = pd.DataFrame(
                {"_v": rec[value] if value else 1, "_f": (rec[value] > 0).astype(int) if value else 1}, index=rec.index
            )
            for dim in t.dims:
                if dim == t.time_dim:  # the month, or the quarter of tables by quarter
                    month = rec[date].str[:7]
                    quarter = month.str[:4] + "-Q" + ((month.str[5:7].astype(int) + 2) // 3).astype(str)
                    by_month = any(len(c) == 7 and c[5:].isdigit() for c in t.parents[dim])
                    leaf[dim] = month if by_month else quarter
                elif dim == "provider":
                    leaf[dim] = rec["subcontractor"]
                else:
                    leaf[dim] = rec[dim]
            leaf = leaf[leaf[t.time_dim].isin(set(t.parents[t.time_dim]))] if t.time_dim else leaf
            agg = leaf.groupby(t.dims, as_index=False)[["_v", "_f"]].sum()
            for dim in t.dims:
                parent = t.parents[dim]
                parts, cur = [agg], agg
                while True:
                    cur = cur[cur[dim].map(parent).fillna("") != ""].copy()
                    if cur.empty:
                        break
                    cur[dim] = cur[dim].map(parent)
                    parts.append(cur)
                agg = pd.concat(parts).groupby(t.dims, as_index=False)[["_v", "_f"]].sum()
            merged = result[t.dims].merge(agg, on=t.dims, how="left")
            result[m] = merged["_v"].fillna(0).to_numpy(dtype="int64")
            result[f"{m}_freq"] = merged["_f"].fillna(0).to_numpy(dtype="int64")
        out.setdefault(t.version, {})[t.name] = result
    return out


def primary_vars(model: Model, truths: dict[str, dict[str, pd.DataFrame]], threshold: int = 10) -> np.ndarray:
    """Quantities of published cells whose true frequency is 1 .. threshold-1."""
    out: set[int] = set()
    for t in model.tables:
        true = truths[t.version][t.name]
        for m in t.measures:
            f = true[f"{m}_freq"].to_numpy()
            out |= set(model.cell_vars[(t.version, t.name, m)][(f > 0) & (f < threshold)].tolist())
    return np.array(sorted(out), dtype=np.int64)


def insider_vars(model: Model, kind: str, code: str) -> set[int]:
    """Quantities an insider knows: a ``subcontractor`` its provider row; a ``prime`` its row and its
    subcontractors' rows; a ``cpa`` every provider row under it and its rows of the CPA tables."""
    out: set[int] = set()
    for t in model.tables:
        if "provider" in t.dims:
            parent = t.parents["provider"]
            if kind == "subcontractor":
                mine = {code}
            elif kind == "prime":
                mine = {code} | {c for c, p in parent.items() if p == code}
            elif kind == "cpa":
                mine = {c for c in parent if code in _chain(parent, c)}
            else:
                raise ValueError(kind)
            rows = t.frame["provider"].isin(mine).to_numpy()
        elif kind == "cpa" and "cpa" in t.dims:
            rows = (t.frame["cpa"] == code).to_numpy()
        else:
            continue
        for m in t.measures:
            out |= set(model.cell_vars[(t.version, t.name, m)][rows].tolist())
    return out


def narrow(intervals: pd.DataFrame, width: int = 10) -> pd.DataFrame:
    """The targets whose interval is narrower than ``width``."""
    return intervals[intervals["width"] < width]
