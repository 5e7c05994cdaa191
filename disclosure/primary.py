"""Primary suppression: which cells are sensitive in themselves, and how much protection each needs.

Two kinds of rule (Hundepool et al. 2012, ch. 4):

* the threshold rule on the number of contributors (count and magnitude tables alike);
* magnitude (concentration) rules for tables of sums, read from each cell's largest contributions:
  dominance (n, k), p% and pq. They are the linear sensitivity measures of Cox (1981): each is
  "sensitive iff its upper protection level is > 0", which is what makes the required protection
  width follow from the rule itself instead of a fixed number.

Manual overrides (:func:`apply_overrides`) come last, so a subject-matter decision always wins over
a rule in the safe direction and is refused in the unsafe one.

References: A. Hundepool et al., *Statistical Disclosure Control*, Wiley 2012, ch. 4 (sec. 4.2
sensitivity rules, sec. 4.3 protection levels); L. H. Cox, "Linear sensitivity measures in
statistical disclosure control", *J. Statistical Planning and Inference* 5 (1981) 153-164.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from disclosure.errors import DisclosureError
from disclosure.hierarchy import Hierarchy
from disclosure.rules import Rules
from disclosure.table import Grid

TOTAL_COLUMN = "total"
CONTRIBUTORS_COLUMN = "contributors"
TOP_PREFIX = "top"
_TOL = 1e-9


def primary_mask(frequency: np.ndarray, rules: Rules) -> np.ndarray:
    """Threshold rule on the number of contributors: ``0 < freq < k``, plus zeros when they are unsafe."""
    f = np.asarray(frequency)
    mask = (f > 0) & (f < rules.threshold)
    if rules.zeros == "unsafe":
        mask |= f == 0
    return mask


def insider_mask(frequency: np.ndarray, primary: np.ndarray, rules: Rules) -> np.ndarray:
    """Primary cells with exactly one contributor (known to it), when ``rules.singletons`` protects them."""
    if rules.singletons == "ignore":
        return np.zeros(len(primary), dtype=bool)
    return np.asarray(primary, dtype=bool) & (np.asarray(frequency) == 1)


def required_widths(primary: np.ndarray, rules: Rules) -> np.ndarray:
    """Protection width each cell's attacker interval must reach (0 for non-primary cells)."""
    return np.where(np.asarray(primary, dtype=bool), float(rules.protection_width), 0.0)


# --- contributions per cell ---------------------------------------------------------------------


def top_columns(n: int, prefix: str = TOP_PREFIX) -> list[str]:
    """Names of the largest-contribution columns, largest first: ``top1 .. top<n>``."""
    return [f"{prefix}{i}" for i in range(1, n + 1)]


def _ancestors(h: Hierarchy) -> pd.DataFrame:
    """One row per (leaf, code) with code the leaf itself or any of its ancestors up to the total."""
    rows = []
    for leaf in h.leaves:
        code: str | None = leaf
        while code is not None:
            rows.append((leaf, code))
            code = h.parent(code)
    return pd.DataFrame(rows, columns=["__leaf", "__code"])


def top_contributions(
    records: pd.DataFrame,
    cell_columns: Sequence[str],
    value: str,
    n: int = 2,
    *,
    contributor: str | None = None,
    dims: Mapping[str, Hierarchy] | None = None,
) -> pd.DataFrame:
    """Per cell: ``total`` (sum), ``contributors`` (units with a non-zero contribution) and ``top1..top<n>``.

    Magnitude rules are about *contributors* (enterprises, providers), not records: a unit's
    records in one cell are summed before ranking, or the rule would treat one large unit split
    over several records as several small ones (Hundepool et al. 2012, sec. 4.2). Name the unit
    column in ``contributor``; without it every record is its own contributor.

    Two inputs, one rule each, so the caller never guesses what was aggregated:

    * ``dims=None``: ``records`` already says, per row, which cell the contribution counts in; to
      cover totals the caller passes one row per (record, cell) pair. Output: one row per cell
      present, sorted by ``cell_columns``.
    * ``dims`` given (``cell_columns`` must be its dimension names): records sit on leaf codes and
      are rolled up to every total and subtotal of every dimension here (each record is repeated
      for every combination of its codes' ancestors, then summed per unit and cell; so a unit in
      two months is one contributor, with its summed amount, in the all-months cell). Output: every
      cell of the full grid in grid order (empty cells have zeros), ready to merge with the table.

    Missing ranks (fewer contributors than ``n``) are 0, which the rules read correctly: a cell
    with at most ``n`` contributors is dominated by them. Contributions must be non-negative; the
    rules are not defined for signed data.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise DisclosureError(f"n (how many largest contributions to keep) must be an integer >= 1, got {n!r}")
    cols = list(cell_columns)
    if not cols:
        raise DisclosureError("top_contributions needs at least one cell column")
    needed = [*cols, value] + ([contributor] if contributor is not None else [])
    missing = [c for c in needed if c not in records.columns]
    if missing:
        raise DisclosureError(f"records lack column(s) {missing}")
    if len(set(needed)) != len(needed) or {"__v", "__unit"} & set(needed):
        raise DisclosureError(f"cell, value and contributor columns must be distinct, got {needed}")
    try:
        raw = np.asarray(records[value].to_numpy(), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DisclosureError(f"column {value!r} must be numeric") from exc
    if not np.all(np.isfinite(raw)):
        raise DisclosureError(f"column {value!r} has missing or infinite values")
    if (raw < 0).any():
        raise DisclosureError(f"column {value!r} has negative contributions; magnitude rules need values >= 0")
    integral = bool(np.all(raw == np.round(raw)))
    df = records[cols].copy()
    df["__v"] = raw
    if contributor is None:
        df["__unit"] = np.arange(len(df))
    else:
        if records[contributor].isna().any():
            raise DisclosureError(f"contributor column {contributor!r} has missing values")
        df["__unit"] = records[contributor].to_numpy()
    for c in cols:
        if df[c].isna().any():
            raise DisclosureError(f"cell column {c!r} has missing codes")

    grid: Grid | None = None
    if dims is not None:
        if sorted(dims) != sorted(cols):
            raise DisclosureError(f"with dims, cell_columns must be the dimension names {list(dims)}, got {cols}")
        grid = Grid.of(dims)
        cols = list(grid.names)
        for name, h in dims.items():
            codes = df[name].astype(str)
            bad = sorted(set(codes[~codes.isin(h.leaves)]))[:5]
            if bad:
                raise DisclosureError(f"records must sit on leaf codes; {name!r} has code(s) {bad}")
            up = _ancestors(h)
            df = (
                df.assign(**{name: codes})
                .merge(up, left_on=name, right_on="__leaf", how="inner")
                .drop(columns=[name, "__leaf"])
                .rename(columns={"__code": name})
            )

    per_unit = df.groupby([*cols, "__unit"], sort=False, dropna=False)["__v"].sum().reset_index()
    per_unit = per_unit.sort_values([*cols, "__v"], ascending=[True] * len(cols) + [False], kind="mergesort")
    by_cell = per_unit.groupby(cols, sort=True, dropna=False)
    out = by_cell["__v"].sum().rename(TOTAL_COLUMN).to_frame()
    out[CONTRIBUTORS_COLUMN] = (per_unit["__v"] > 0).groupby([per_unit[c] for c in cols], dropna=False).sum()
    rank = by_cell.cumcount()
    top = per_unit[rank < n].assign(__rank=rank[rank < n] + 1)
    wide = top.pivot_table(index=cols, columns="__rank", values="__v", aggfunc="sum", fill_value=0.0)
    wide = wide.reindex(columns=range(1, n + 1), fill_value=0.0)
    wide.columns = top_columns(n)
    out = out.join(wide, how="left").fillna(0.0).reset_index()
    if grid is not None:
        out = grid.codes_frame().merge(out, on=cols, how="left", validate="one_to_one")
    value_cols = [TOTAL_COLUMN, *top_columns(n)]
    out[value_cols] = out[value_cols].fillna(0.0)
    out[CONTRIBUTORS_COLUMN] = out[CONTRIBUTORS_COLUMN].fillna(0).astype(np.int64)
    if integral:
        out[value_cols] = out[value_cols].round().astype(np.int64)
    return out


def tops_for_cells(frame: pd.DataFrame, cells: np.ndarray, size: int, prefix: str = TOP_PREFIX) -> np.ndarray:
    """The ``top1..top<n>`` columns of ``frame`` as a (cells x n) array in cell order (``Grid.cell_index``)."""
    found = sorted((int(m.group(1)), c) for c in frame.columns if (m := re.fullmatch(rf"{re.escape(prefix)}(\d+)", c)))
    ranks = [r for r, _ in found]
    if not ranks or ranks != list(range(1, len(ranks) + 1)):
        raise DisclosureError(f"frame needs columns {prefix}1..{prefix}<n> (largest contributions), got {ranks}")
    out = np.zeros((size, len(found)), dtype=np.float64)
    try:
        out[cells] = frame[[c for _, c in found]].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DisclosureError(f"columns {prefix}1..{prefix}{len(found)} must be numeric") from exc
    return out


# --- magnitude rules -----------------------------------------------------------------------------


def _check_tops(total: np.ndarray, tops: np.ndarray, rules: Rules) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(total, dtype=np.float64)
    x = np.asarray(tops, dtype=np.float64)
    if t.ndim != 1:
        raise DisclosureError(f"total must be one value per cell, got shape {t.shape}")
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] != t.shape[0]:
        raise DisclosureError(f"tops must be (cells x n) with {t.shape[0]} cells, got shape {x.shape}")
    if x.shape[1] < rules.top_n:
        raise DisclosureError(f"the rules need the {rules.top_n} largest contributions per cell, tops has {x.shape[1]}")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(x))):
        raise DisclosureError("totals and top contributions must be finite")
    if (t < 0).any() or (x < 0).any():
        raise DisclosureError("magnitude rules need non-negative totals and contributions")
    if x.shape[1] > 1 and (np.diff(x, axis=1) > 0).any():
        c = int(np.flatnonzero((np.diff(x, axis=1) > 0).any(axis=1))[0])
        raise DisclosureError(f"top contributions must be largest first; cell {c} has {x[c].tolist()}")
    over = x.sum(axis=1) > t + _TOL * np.maximum(1.0, t)
    if over.any():
        c = int(np.flatnonzero(over)[0])
        raise DisclosureError(f"top contributions exceed the cell total; cell {c}: {x[c].tolist()} > {t[c]:g}")
    return t, x


def protection_levels(total: np.ndarray, tops: np.ndarray, rules: Rules) -> np.ndarray:
    """Upper protection level (UPL) per cell: the largest over the magnitude rules set, 0 when safe.

    With T the cell total and x1 >= x2 >= ... its contributions (Hundepool et al. 2012, sec. 4.3):

    * dominance (n, k): ``UPL = 100/k * (x1 + ... + xn) - T``
    * p%:               ``UPL = p/100 * x1 - (T - x1 - x2)``
    * pq:               ``UPL = p/100 * x1 - q/100 * (T - x1 - x2)``

    Each is > 0 exactly when its rule calls the cell sensitive (the rules are tested in their
    division-free form so integer data decide exactly). The UPL is how far above T the attacker's
    upper bound must reach so that the second largest contributor, subtracting its own x2, still
    misjudges x1 by at least p% (for dominance, so that the n largest still look like <= k %).
    """
    t, x = _check_tops(total, tops, rules)
    upl = np.zeros(t.shape[0], dtype=np.float64)
    if rules.dominance is not None:
        n, k = rules.dominance
        top_n = x[:, :n].sum(axis=1)
        hit = 100.0 * top_n > k * t
        upl = np.maximum(upl, np.where(hit, np.maximum(100.0 / k * top_n - t, 0.0), 0.0))
    rest = t - x[:, 0] - (x[:, 1] if x.shape[1] > 1 else 0.0)
    rest = np.maximum(rest, 0.0)  # float noise only: _check_tops refused tops that exceed the total
    pq_rules = []
    if rules.p_percent is not None:
        pq_rules.append((rules.p_percent, 100.0))
    if rules.pq is not None:
        pq_rules.append(rules.pq)
    for p, q in pq_rules:
        hit = p * x[:, 0] > q * rest
        upl = np.maximum(upl, np.where(hit, np.maximum(p / 100.0 * x[:, 0] - q / 100.0 * rest, 0.0), 0.0))
    return upl


def sensitive_magnitude(total: np.ndarray, tops: np.ndarray, rules: Rules) -> np.ndarray:
    """Cells sensitive by any magnitude rule set in ``rules`` (all False when none is set).

    ``total`` is one value per cell, ``tops`` a (cells x n) array of its largest contributions,
    largest first (see :func:`top_contributions` / :func:`tops_for_cells`).
    """
    return protection_levels(total, tops, rules) > 0


def magnitude_required(total: np.ndarray, tops: np.ndarray, rules: Rules) -> np.ndarray:
    """Interval width each cell's attacker interval must reach: ``UPL + LPL`` with ``LPL = UPL``.

    The engine audits *sliding* protection (``max - min >= width``, see README), so the width is
    the sum of the upper and lower protection levels, as in tau-Argus. Under the pq intruder model
    the lower level equals the upper one: an intruder who knows the other contributions to within
    q % gains as much from a tight lower bound L as from a tight upper bound U, and T - L >= UPL is
    the same condition as U - T >= UPL (Hundepool et al. 2012, sec. 4.3). 0 for safe cells.
    """
    return 2.0 * protection_levels(total, tops, rules)


def magnitude_primary(
    frequency: np.ndarray, total: np.ndarray, tops: np.ndarray, rules: Rules
) -> tuple[np.ndarray, np.ndarray]:
    """Threshold rule on contributors plus every magnitude rule: ``(primary, required widths)``.

    A cell caught by several rules needs the widest protection any of them asks for.
    """
    freq_primary = primary_mask(frequency, rules)
    required = np.maximum(required_widths(freq_primary, rules), magnitude_required(total, tops, rules))
    return freq_primary | (required > 0), required


# --- manual overrides ----------------------------------------------------------------------------


def _mask(name: str, m: np.ndarray | None, size: int) -> np.ndarray:
    if m is None:
        return np.zeros(size, dtype=bool)
    arr = np.asarray(m)
    if arr.shape != (size,):
        raise DisclosureError(f"{name} must be one flag per cell ({size}), got shape {arr.shape}")
    if arr.dtype != bool:
        raise DisclosureError(f"{name} must be a boolean mask, got dtype {arr.dtype}")
    return arr


def apply_overrides(
    primary: np.ndarray,
    required: np.ndarray,
    must_publish: np.ndarray | None = None,
    must_suppress: np.ndarray | None = None,
    rules: Rules | None = None,
    *,
    suppress_width: float | None = None,
    label: Callable[[int], object] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Manual primary decisions on top of the rules; returns new ``(primary, required)`` arrays.

    * ``must_suppress``: the cell becomes primary. It needs ``suppress_width`` (default: the rules'
      ``protection_width``), or the rule's own width if that is larger. ``suppress_width=0`` means
      "hidden for consistency only" (e.g. it was suppressed in an earlier release): the cell is
      hidden and secondary suppression still closes every equation it would be the only unknown of,
      but the audit does not demand an interval width for it.
    * ``must_publish``: the cell may not be primary. A rule can only be overruled in the safe
      direction, so a cell that is sensitive by a rule (or also marked must-suppress) is refused
      with DisclosureError naming the cells; no "force" switch exists, fix the rule or the list.
      Keeping such a cell out of *secondary* suppression is up to the suppression method.

    ``label`` turns a cell number into something readable for messages (e.g. ``Grid.coords``).
    """
    prim = np.asarray(primary, dtype=bool)
    req = np.asarray(required, dtype=np.float64)
    if prim.ndim != 1 or req.shape != prim.shape:
        raise DisclosureError(f"primary and required must be aligned 1-d arrays, got {prim.shape} and {req.shape}")
    size = prim.shape[0]
    publish = _mask("must_publish", must_publish, size)
    suppress = _mask("must_suppress", must_suppress, size)
    name = label or (lambda c: c)

    def cells_text(bad: np.ndarray) -> str:
        shown = ", ".join(str(name(int(c))) for c in bad[:5])
        return f"{shown}{' ...' if len(bad) > 5 else ''} ({len(bad)} cell(s))"

    both = np.flatnonzero(publish & suppress)
    if len(both):
        raise DisclosureError(f"cells marked both must-publish and must-suppress: {cells_text(both)}")
    unsafe = np.flatnonzero(publish & prim)
    if len(unsafe):
        raise DisclosureError(
            f"cells marked must-publish are sensitive by a disclosure rule, refusing to publish: {cells_text(unsafe)}"
        )
    if suppress_width is None:
        width = float((rules or Rules()).protection_width)
    else:
        if isinstance(suppress_width, bool) or not isinstance(suppress_width, int | float) or not suppress_width >= 0:
            raise DisclosureError(f"suppress_width must be a number >= 0, got {suppress_width!r}")
        width = float(suppress_width)
    new_primary = prim | suppress
    new_required = np.where(suppress, np.maximum(req, width), req)
    return new_primary, new_required
