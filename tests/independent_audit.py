"""An attacker audit written apart from ``disclosure/``, used by the tests to check it.

It sees only what a member of the public sees: the published table, its hierarchies and the
rounding base. Every cell is an unknown non-negative number; a published value v rounded to base
b pins the cell to [v - floor(b/2), v + ceil(b/2) - 1]; every parent equals the sum of its
children in every dimension. For each cell asked about it solves min and max of that cell.
"""

from __future__ import annotations

import highspy
import numpy as np
import pandas as pd
from scipy import sparse


def additivity_matrix(frame: pd.DataFrame, parents: dict[str, dict[str, str]]) -> sparse.csr_matrix:
    """Rows: parent cell minus the sum of its child cells, for every dimension."""
    cells = frame[list(parents)].reset_index(drop=True).copy()
    cells["_id"] = np.arange(len(cells))
    rows, cols, vals = [], [], []
    n_constraints = 0
    for dim, parent_of in parents.items():
        others = [d for d in parents if d != dim]
        child = cells[cells[dim].isin([c for c, p in parent_of.items() if p])].copy()
        child["_parent"] = child[dim].map(parent_of)
        parent_cells = cells.rename(columns={dim: "_parent", "_id": "_pid"})
        joined = child.merge(parent_cells, on=["_parent", *others], how="left")
        assert joined["_pid"].notna().all(), f"grid is incomplete in dimension {dim}"
        groups, pid = np.unique(joined["_pid"].to_numpy(), return_inverse=True)
        rows += [n_constraints + pid, n_constraints + np.arange(len(groups))]
        cols += [joined["_id"].to_numpy(), groups]
        vals += [np.ones(len(joined)), -np.ones(len(groups))]
        n_constraints += len(groups)
    return sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_constraints, len(cells))
    )


def feasible_intervals(
    frame: pd.DataFrame,
    parents: dict[str, dict[str, str]],
    published: pd.Series,
    base: int,
    check: np.ndarray,
) -> pd.DataFrame:
    """Min and max of each cell in ``check`` (row positions) over everything the public knows."""
    matrix = additivity_matrix(frame, parents).tocsc()
    values = published.to_numpy(dtype="float64", na_value=np.nan)
    known = ~np.isnan(values)
    r = max(base, 1)
    lower = np.where(known, np.maximum(values - r // 2, 0), 0.0)
    upper = np.where(known, values + (r - r // 2) - 1 if r > 1 else values, highspy.kHighsInf)
    lp = highspy.HighsLp()
    n = matrix.shape[1]
    lp.num_col_, lp.num_row_ = n, matrix.shape[0]
    lp.col_cost_ = np.zeros(n)
    lp.col_lower_, lp.col_upper_ = lower, upper
    lp.row_lower_ = lp.row_upper_ = np.zeros(matrix.shape[0])
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = matrix.indptr, matrix.indices, matrix.data
    solver = highspy.Highs()
    solver.setOptionValue("output_flag", False)
    solver.passModel(lp)
    out = []
    for j in check:
        bounds = []
        for sense in (1.0, -1.0):
            solver.changeColCost(int(j), sense)
            solver.run()
            status = solver.getModelStatus()
            if status == highspy.HighsModelStatus.kUnbounded:
                bounds.append(np.inf)
            else:
                assert status == highspy.HighsModelStatus.kOptimal, f"attacker LP: {solver.modelStatusToString(status)}"
                bounds.append(sense * solver.getInfo().objective_function_value)
        solver.changeColCost(int(j), 0.0)
        out.append((int(j), bounds[0], bounds[1]))
    return pd.DataFrame(out, columns=["row", "lower", "upper"]).set_index("row")
