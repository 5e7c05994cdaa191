"""τ-Argus-style file input: protect a table given as a CSV of base cells plus hierarchy CSVs.

Analysts usually hold the detailed (leaf) counts only; the totals are derived here so they are
guaranteed additive, which is what the attacker model and the suppression heuristic assume.
Every input problem becomes a DisclosureError naming the file, column or code, never a traceback.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from disclosure.errors import DisclosureError
from disclosure.hierarchy import Hierarchy
from disclosure.primary import top_contributions
from disclosure.protect import ProtectionResult, protect
from disclosure.rules import Rules
from disclosure.table import add_totals

SUPPRESSED = "[c]"
STATUS = "status"
_INTEGER = re.compile(r"[0-9]+")


def protect_cells_file(
    cells: Path,
    dims: list[str],
    value: str,
    *,
    threshold: int = 10,
    zeros: Literal["safe", "unsafe"] = "safe",
    protection: int | None = None,
    rounding_base: int | None = None,
    total: str = "Total",
    method: str = "auto",
    out: Path,
    public: Path | None = None,
    contributor: str | None = None,
    dominance: tuple[int, float] | None = None,
    p_percent: float | None = None,
    singletons: Literal["protect", "ignore"] = "protect",
    cost: str | None = None,
    publish: Path | None = None,
    spare_headlines: bool = False,
) -> ProtectionResult:
    """Read base cells, add every total, protect ``value`` and write the full (``out``) and public tables.

    ``dims`` entries are ``name`` (flat: codes are the distinct values found, sorted) or
    ``name=hierarchy.csv`` (columns ``code,parent``; top-level codes have ``total`` as parent).
    ``out`` keeps true values and the status, so it is for internal use; ``public`` shows ``[c]``
    for every suppressed cell, without saying which were primary. Rows follow hierarchy order.

    Magnitude rules (``dominance=(n, k)``, ``p_percent``) need to know who contributed what:
    ``contributor`` names a column, and the file then holds one row per contribution (a unit may
    appear in many rows); cells are summed per unit, the threshold counts contributors.

    ``singletons`` and ``cost``: see ``Rules`` and ``disclosure.cost``. ``publish`` names a CSV of
    cells that must be published (one column per dimension, the total code for a margin, e.g. the
    national row): never chosen as secondary suppressions; a rule that makes one of them primary,
    or a table that cannot be protected without hiding one, is refused with the cell named.
    ``spare_headlines``: the grand total and first-level cells are hidden last (see ``protect``).
    """
    cells, out = Path(cells), Path(out)
    public = None if public is None else Path(public)
    rules = Rules(
        threshold=threshold,
        zeros=zeros,
        protection=protection,
        rounding_base=rounding_base,
        dominance=dominance,
        p_percent=p_percent,
        singletons=singletons,
    )
    if rules.magnitude and contributor is None:
        raise DisclosureError("dominance and p% rules need a contributor column (one row per contribution)")
    _check_outputs(cells, out, public)
    specs = _parse_dims(dims, value)
    units = [contributor] if contributor else []
    base = _read_cells(cells, [*specs, *units], value)
    hierarchies = {name: _hierarchy(name, path, base[name], cells, total) for name, path in specs.items()}
    _check_codes(base, hierarchies, specs, cells, total)
    base[value] = _integers(base[value], cells, value)
    if contributor:
        n = max(rules.top_n, 1)
        frame = top_contributions(base, list(specs), value, n, contributor=contributor, dims=hierarchies)
        frame = frame.rename(columns={"total": value})
        frequency: str | None = "contributors"
    else:
        _check_duplicates(base, list(specs), cells)
        frame = add_totals(base, hierarchies, [value])
        frequency = None
    must = None
    if publish is not None:
        must = MUST_PUBLISH
        frame[must] = _named_cells(Path(publish), frame, hierarchies)
    result = protect(
        frame,
        hierarchies,
        value,
        frequency=frequency,
        rules=rules,
        method=method,
        must_publish=must,
        cost=cost,
        spare_headlines=spare_headlines,
    )
    if must:
        result.frame = result.frame.drop(columns=[must])
    names = list(specs)
    protected = result.frame
    full = protected[names].astype(str)
    full[value] = protected[value].astype("int64").astype(str)
    full[STATUS] = protected[STATUS].astype(str)
    _write_csv(full, out)
    if public is not None:
        shown = protected[names].astype(str)
        published = protected["published"]
        shown[value] = [SUPPRESSED if pd.isna(v) else str(int(v)) for v in published]
        _write_csv(shown, public)
    return result


MUST_PUBLISH = "__must_publish__"


def _named_cells(path: Path, frame: pd.DataFrame, hierarchies: dict[str, Hierarchy]) -> np.ndarray:
    """Which rows of ``frame`` the CSV at ``path`` names (one column per dimension); every row of
    the CSV must name a cell of the table, or the file is refused with the row."""
    wanted = _read_csv(path, "publish")
    names = list(hierarchies)
    missing = [n for n in names if n not in wanted.columns]
    if missing:
        raise DisclosureError(
            f"publish file {str(path)!r} needs one column per dimension ({', '.join(names)}); missing {missing}"
        )
    have = pd.MultiIndex.from_frame(frame[names].astype(str))
    asked = pd.MultiIndex.from_frame(wanted[names].astype(str))
    unknown = np.flatnonzero(~asked.isin(have))
    if len(unknown):
        row = int(unknown[0])
        cell = ", ".join(f"{n}={wanted[n].iloc[row]}" for n in names)
        raise DisclosureError(f"publish file {str(path)!r}, row {row + 2}: {cell} is not a cell of the table")
    return have.isin(asked)


def _check_outputs(cells: Path, out: Path, public: Path | None) -> None:
    """Refuse to overwrite the input, or to write both tables to one file (the public one would replace out)."""
    targets = [("out", out)] + ([("public", public)] if public is not None else [])
    src = cells.resolve()
    for label, path in targets:
        if path.resolve() == src:
            raise DisclosureError(f"{label} file {str(path)!r} is the cells file itself; refusing to overwrite input")
        if path.is_dir():
            raise DisclosureError(f"{label} file {str(path)!r} is a directory")
    if public is not None and public.resolve() == out.resolve():
        raise DisclosureError(f"out and public are the same file {str(out)!r}; the public table would replace it")


def _parse_dims(dims: list[str], value: str) -> dict[str, Path | None]:
    """``name`` or ``name=path``; names must be distinct and differ from the value and status columns."""
    if not dims:
        raise DisclosureError("at least one dimension is needed (name or name=hierarchy.csv)")
    specs: dict[str, Path | None] = {}
    for spec in dims:
        name, sep, path = str(spec).partition("=")
        name = name.strip()
        if not name:
            raise DisclosureError(f"dimension {spec!r} has no name; expected name or name=hierarchy.csv")
        if sep and not path.strip():
            raise DisclosureError(f"dimension {name!r}: no hierarchy file after '='")
        if name in specs:
            raise DisclosureError(f"dimension {name!r} is given more than once")
        if name in (value, STATUS):
            raise DisclosureError(
                f"dimension {name!r} clashes with the {'value' if name == value else 'status'} column"
            )
        specs[name] = Path(path.strip()) if sep else None
    return specs


def _read_csv(path: Path, what: str) -> pd.DataFrame:
    """All columns as text: codes like '007' or 'NA' must survive exactly as written."""
    if not path.exists():
        raise DisclosureError(f"{what} file {str(path)!r} does not exist")
    if not path.is_file():
        raise DisclosureError(f"{what} file {str(path)!r} is not a file")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError as exc:
        raise DisclosureError(f"{what} file {str(path)!r} is empty (no header)") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise DisclosureError(f"{what} file {str(path)!r} cannot be read as UTF-8 CSV: {exc}") from exc


def _read_cells(cells: Path, names: list[str], value: str) -> pd.DataFrame:
    frame = _read_csv(cells, "cells")
    columns = list(frame.columns)
    missing = [n for n in [*names, value] if n not in columns]
    if missing:
        raise DisclosureError(f"cells file {str(cells)!r} lacks column(s) {missing}; it has {columns}")
    if frame.empty:
        raise DisclosureError(f"cells file {str(cells)!r} has no data rows")
    frame = frame[[*names, value]].reset_index(drop=True)
    for n in names:
        empty = frame.index[frame[n] == ""]
        if len(empty):
            raise DisclosureError(f"cells file {str(cells)!r}: column {n!r} is empty on line {int(empty[0]) + 2}")
    return frame


def _hierarchy(name: str, path: Path | None, codes: pd.Series, cells: Path, total: str) -> Hierarchy:
    """A flat dimension from the codes present, or a tree from a ``code,parent`` file."""
    if path is None:
        if (codes == total).any():
            raise DisclosureError(
                f"cells file {str(cells)!r}: column {name!r} contains the total code {total!r}; "
                "cells must be base cells (totals are computed)"
            )
        return Hierarchy.flat(name, sorted(set(codes)), total=total)
    frame = _read_csv(path, f"hierarchy ({name})")
    missing = [c for c in ("code", "parent") if c not in frame.columns]
    if missing:
        raise DisclosureError(
            f"hierarchy file {str(path)!r} lacks column(s) {missing}; it needs code,parent, has {list(frame.columns)}"
        )
    parents: dict[str, str | None] = {}
    for line, (code, parent) in enumerate(zip(frame["code"], frame["parent"], strict=True), start=2):
        if not code:
            raise DisclosureError(f"hierarchy file {str(path)!r}: empty code on line {line}")
        if code in parents:
            raise DisclosureError(f"hierarchy file {str(path)!r}: code {code!r} is listed more than once")
        if not parent and code != total:
            raise DisclosureError(
                f"hierarchy file {str(path)!r}: code {code!r} has no parent (top-level codes have parent {total!r})"
            )
        parents[code] = parent or None
    if not parents:
        raise DisclosureError(f"hierarchy file {str(path)!r} has no codes")
    try:
        return Hierarchy.from_parents(name, parents, total=total)
    except DisclosureError as exc:
        raise DisclosureError(
            f"hierarchy file {str(path)!r}: {exc} (top-level codes must have parent {total!r})"
        ) from exc


def _check_codes(
    base: pd.DataFrame, dims: dict[str, Hierarchy], specs: dict[str, Path | None], cells: Path, total: str
) -> None:
    """Every code must be a leaf of its hierarchy: totals are derived, never read."""
    for name, h in dims.items():
        source = f"hierarchy file {str(specs[name])!r}"
        present = list(dict.fromkeys(base[name]))
        unknown = [c for c in present if c not in h]
        if unknown:
            raise DisclosureError(
                f"cells file {str(cells)!r}: column {name!r} has code(s) not in {source}: {unknown[:5]}"
            )
        inner = [c for c in present if not h.is_leaf(c)]
        if inner:
            raise DisclosureError(
                f"cells file {str(cells)!r}: column {name!r} has non-leaf code(s) {inner[:5]} of {source}; "
                "cells must be base cells (totals are computed)"
            )


def _check_duplicates(base: pd.DataFrame, names: list[str], cells: Path) -> None:
    dup = base.duplicated(subset=names, keep=False)
    if dup.any():
        rows = base.index[dup]
        first = base.loc[rows[0], names].to_dict()
        lines = [int(r) + 2 for r in rows if (base.loc[r, names] == base.loc[rows[0], names]).all()]
        raise DisclosureError(
            f"cells file {str(cells)!r}: duplicate base cell {first} on lines {lines} "
            f"({int(base.duplicated(subset=names).sum())} duplicate row(s) in all)"
        )


def _integers(column: pd.Series, cells: Path, value: str) -> pd.Series:
    """Non-negative integer counts only; anything else is named with its line number."""
    text = column.str.strip()
    for i, raw in enumerate(text):
        if not _INTEGER.fullmatch(raw):
            kind = "negative" if raw.startswith("-") else "not a non-negative integer"
            raise DisclosureError(
                f"cells file {str(cells)!r}: column {value!r} on line {i + 2} is {kind}: {column.iloc[i]!r}"
            )
    return text.astype("int64")


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write to a temp file beside ``path`` and rename, so readers never see a half-written table."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise DisclosureError(f"cannot write {str(path)!r}: {exc}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            # mkstemp makes the file owner-only; a published table should keep normal permissions.
            os.fchmod(fh.fileno(), path.stat().st_mode & 0o777 if path.exists() else 0o644)
            frame.to_csv(fh, index=False, lineterminator="\n")
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise DisclosureError(f"cannot write {str(path)!r}: {exc}") from exc
        raise
