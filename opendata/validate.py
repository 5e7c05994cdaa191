"""Validation of MI files against a release spec, reporting every problem at once.

Every check is columnar (pyarrow.compute over whole columns, code lists checked on the distinct
values of each chunk), so a million-row file takes well under a second; Python only loops over the
problems it reports. Each problem names the file, the row (and CSV line or sheet row), the column,
the value and the rule, so a data supplier can fix the file without asking what went wrong.
Detail is capped per (file, column, rule) to keep memory sane; ``total_problems`` counts them all.
"""

from __future__ import annotations

import datetime as dt
import filecmp
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from opendata.errors import Problem, ValidationFailed
from opendata.ingest import FileProblem, RawTable, read_raw
from opendata.spec import FieldSpec, InputSpec, ReleaseSpec

MAX_DETAIL = 1000  # problems listed per (file, column, rule); the rest are counted

ARROW_TYPES = {"string": pa.string(), "integer": pa.int64(), "date": pa.date32(), "yearmonth": pa.string()}
INTEGER_RE = r"^-?[0-9]{1,18}$"
DATE_SHAPE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
YEARMONTH_RE = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
TYPE_WORDS = {
    "integer": "a whole number (digits only, such as 12)",
    "date": "a valid date in the form YYYY-MM-DD",
    "yearmonth": "a month in the form YYYY-MM",
}


@dataclass
class ValidationReport:
    """Everything found in one run; ``table`` holds the typed data only when nothing is wrong."""

    problems: list[Problem]
    rows: dict[str, int]
    total_problems: int
    counts: dict[str, int] = field(default_factory=dict)  # rule id -> number of problems
    table: pa.Table | None = None

    @property
    def ok(self) -> bool:
        return self.total_problems == 0

    def raise_for_problems(self) -> None:
        """Raise ValidationFailed carrying every problem, so callers cannot use bad MI by accident."""
        if not self.ok:
            raise ValidationFailed(self.problems, self.total_problems)


class _Collector:
    """Problems with detail capped per (file, column, rule) and every one counted."""

    def __init__(self, cap: int):
        self.cap = cap
        self.problems: list[Problem] = []
        self.counts: Counter[str] = Counter()

    def add(self, problem: Problem) -> None:
        self.problems.append(problem)
        self.counts[problem.rule] += 1

    def rows(
        self,
        raw: RawTable,
        index: np.ndarray,
        column: str,
        rule: str,
        values: Callable[[np.ndarray], list],
        describe: Callable[[object, int], str],
    ) -> None:
        """One problem per table position in ``index`` (sorted), up to the cap, then a summary."""
        n = len(index)
        if not n:
            return
        self.counts[rule] += n
        shown = index[: self.cap]
        rows = raw.rows(shown).tolist()
        for i, (value, row) in enumerate(zip(values(shown), rows, strict=True)):
            text = None if value is None else str(value)
            self.problems.append(
                Problem(
                    raw.name,
                    row,
                    column,
                    text,
                    rule,
                    f"{raw.name} {raw.where(row)}, column {column}: {describe(value, i)} (rule: {rule})",
                )
            )
        if n > self.cap:
            self.problems.append(
                Problem(
                    raw.name,
                    None,
                    column,
                    None,
                    rule,
                    f"{raw.name}, column {column}: {n:,} rows break rule {rule}; only the first {self.cap:,} "
                    "are listed",
                )
            )

    def mask(self, raw, mask, column, rule, text, describe, other=None) -> None:
        """Report the rows where ``mask`` is true; ``describe(value, other_value)`` says what is wrong."""
        if mask is None:
            return
        index = _positions(mask)
        if not len(index):
            return
        shown = index[: self.cap]
        others = _pick(other, shown) if other is not None else [None] * len(shown)
        self.rows(
            raw,
            index,
            column,
            rule,
            lambda idx: _pick(text(), idx),
            lambda value, i: describe(value, others[i]),
        )


def _pick(col: pa.ChunkedArray, index: np.ndarray) -> list:
    """Values at a few positions; ChunkedArray.take would first join every chunk of the column."""
    bounds = np.cumsum([0] + [len(c) for c in col.chunks])
    chunk_of = np.searchsorted(bounds, index, side="right") - 1
    return [col.chunk(int(k))[int(i - bounds[k])].as_py() for k, i in zip(chunk_of, index, strict=True)]


# Arrays and scalars are built from buffers, never from Python objects: pa.array(), pa.scalar() and
# to_numpy() make pyarrow import pandas, which costs about 0.2 s of a one-second validation.


def _strings(values: Iterable[str | None]) -> pa.Array:
    items = list(values)
    data = bytearray()
    offsets = np.zeros(len(items) + 1, dtype=np.int32)
    valid = np.ones(len(items), dtype=bool)
    for i, v in enumerate(items):
        if v is None:
            valid[i] = False
        else:
            data += v.encode("utf-8")
        offsets[i + 1] = len(data)
    mask = None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little").tobytes())
    buffers = [mask, pa.py_buffer(offsets.tobytes()), pa.py_buffer(bytes(data))]
    return pa.Array.from_buffers(pa.string(), len(items), buffers)


def _bools(values: Iterable[bool]) -> pa.Array:
    flags = np.fromiter(values, dtype=bool)
    return pa.Array.from_buffers(
        pa.bool_(), len(flags), [None, pa.py_buffer(np.packbits(flags, bitorder="little").tobytes())]
    )


def _int64(values: list[int]) -> pa.Array:
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(np.array(values, np.int64).tobytes())])


def _ints(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An integer array without nulls as int64 numpy, without to_numpy()."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    arr = arr.cast(pa.int64())
    if not len(arr):
        return np.empty(0, dtype=np.int64)
    return np.frombuffer(arr.buffers()[1], dtype=np.int64, count=len(arr), offset=arr.offset * 8)


FALSE = _bools([False])[0]


def _positions(mask: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Positions where a boolean mask is true (nulls count as false)."""
    if not pc.any(mask).as_py():
        return np.empty(0, dtype=np.int64)
    return _ints(pc.indices_nonzero(mask))


def _on_distinct(col: pa.ChunkedArray, fn: Callable[[pa.Array], pa.Array], out_type: pa.DataType) -> pa.ChunkedArray:
    """Apply ``fn`` to each chunk's distinct values and spread the answer back to every row.

    Code and date columns have few distinct values, so this is far cheaper than a per-row lookup.
    """
    chunks = []
    for chunk in col.dictionary_encode().chunks:
        chunks.append(pc.take(fn(chunk.dictionary), chunk.indices))
    return pa.chunked_array(chunks, type=out_type)


def _outside(col: pa.ChunkedArray, codes: tuple[str, ...]) -> pa.ChunkedArray | None:
    """True where a present value is not one of ``codes``; None when every value is one.

    The distinct values are checked first, so a clean column costs one hash pass. index_in, not
    is_in: in pyarrow 26 the first is_in call of a process costs about 0.15 s.
    """
    value_set = _strings(codes)
    distinct = pc.unique(col)
    if distinct.null_count == len(distinct) - pc.count(pc.index_in(distinct, value_set=value_set)).as_py():
        return None
    return pc.is_null(pc.index_in(col, value_set=value_set))


def _null_where(mask, values):
    return pc.if_else(pc.fill_null(mask, FALSE), pa.nulls(1, values.type)[0], values)


def _valid_date(text: str) -> bool:
    if not DATE_SHAPE.fullmatch(text):  # fromisoformat also takes 20120101 and 2012-W01-1
        return False
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _as_text(col: pa.ChunkedArray) -> pa.ChunkedArray:
    return col if col.type == pa.string() else pc.cast(col, pa.string())


def _parse(ftype: str, col: pa.ChunkedArray) -> tuple[pa.ChunkedArray, pa.ChunkedArray | None]:
    """Cast a raw column to the spec type; returns (typed values, mask of values that are not that type)."""
    kind = col.type
    if ftype in ("string", "yearmonth") and not pa.types.is_string(kind):
        col = _as_text(col)
    if ftype == "string":
        return col, None
    if ftype == "integer":
        if pa.types.is_integer(kind):
            try:
                return pc.cast(col, pa.int64()), None
            except pa.ArrowInvalid:
                col = _as_text(col)
        elif not pa.types.is_string(kind):
            col = _as_text(col)
        try:  # fast path: the cast accepts plain integers and also hex (0x1F), which we reject
            typed = pc.cast(col, pa.int64())
            if not pc.any(pc.match_substring(col, "x", ignore_case=True)).as_py():
                return typed, None
        except pa.ArrowInvalid:
            pass
        bad = pc.invert(pc.match_substring_regex(col, INTEGER_RE))
        if pc.any(bad).as_py():
            return pc.cast(_null_where(bad, col), pa.int64()), bad
        return pc.cast(col, pa.int64()), None
    if ftype == "date":
        return _calendar_dates(*_parse_date(kind, col))
    if ftype == "yearmonth":
        bad = pc.invert(pc.match_substring_regex(col, YEARMONTH_RE))
        if pc.any(bad).as_py():
            return _null_where(bad, col), bad
        return col, None
    raise ValueError(f"unknown field type {ftype!r}")  # the spec schema rules this out


def _parse_date(kind: pa.DataType, col: pa.ChunkedArray) -> tuple[pa.ChunkedArray, pa.ChunkedArray | None]:
    if pa.types.is_date(kind):
        return pc.cast(col, pa.date32()), None
    if pa.types.is_timestamp(kind):
        days = pc.cast(pc.cast(col, pa.timestamp("s")), pa.date32())
        bad = pc.not_equal(pc.cast(days, pa.timestamp("s")), pc.cast(col, pa.timestamp("s")))
        return _null_where(bad, days), bad if pc.any(bad).as_py() else None
    if not pa.types.is_string(kind):
        col = _as_text(col)
    try:  # fast path: Arrow's cast takes exactly YYYY-MM-DD and rejects impossible dates
        return pc.cast(col, pa.date32()), None
    except pa.ArrowInvalid:
        pass
    # Dates have few distinct values: judge each distinct value once, then mark its rows.
    wrong = [v for v in pc.unique(col).to_pylist() if v is not None and not _valid_date(v)]
    bad = pc.is_valid(pc.index_in(col, value_set=_strings(wrong)))
    return pc.cast(_null_where(bad, col), pa.date32()), bad


FIRST_DAY = (dt.date(1, 1, 1) - dt.date(1970, 1, 1)).days  # Arrow takes year 0 and below; Python does not


def _calendar_dates(
    days: pa.ChunkedArray, bad: pa.ChunkedArray | None
) -> tuple[pa.ChunkedArray, pa.ChunkedArray | None]:
    """Year 0 and earlier (which Arrow's cast accepts) are not valid dates either."""
    low = pc.min(pc.cast(days, pa.int32())).as_py()
    if low is None or low >= FIRST_DAY:
        return days, bad
    early = pc.fill_null(pc.less(pc.cast(days, pa.int32()), FIRST_DAY), False)
    bad = early if bad is None else pc.or_(pc.fill_null(bad, False), early)
    return _null_where(early, days), bad


def _bound(f: FieldSpec, value: int | str) -> pa.Scalar:
    if f.type == "integer":
        return _int64([int(value)])[0]
    if f.type == "date":
        days = (dt.date.fromisoformat(str(value)) - dt.date(1970, 1, 1)).days
        return pa.Array.from_buffers(pa.date32(), 1, [None, pa.py_buffer(np.int32(days).tobytes())])[0]
    return _strings([str(value)])[0]


def _pattern_mask(col: pa.ChunkedArray, pattern: str) -> pa.ChunkedArray:
    """True where a present value does not match the whole pattern (Table Schema semantics)."""
    anchored = f"^(?:{pattern})$"
    try:
        matched = pc.match_substring_regex(col, anchored)
    except pa.ArrowInvalid:  # a Python-only construct (look-behind...): check the distinct values in Python
        rx = re.compile(pattern)
        matched = _on_distinct(col, lambda d: _bools(rx.fullmatch(v) is not None for v in d.to_pylist()), pa.bool_())
    return pc.invert(matched)


@dataclass
class _File:
    raw: RawTable
    typed: dict[str, pa.ChunkedArray]  # spec type, null where the value is not of that type
    bad_type: dict[str, pa.ChunkedArray | None]  # where the raw value is not of the spec type
    clean: dict[str, pa.ChunkedArray] = field(default_factory=dict)  # typed, null where any field rule fails


def _parse_file(raw: RawTable, spec: InputSpec, present: list[str], out: _Collector) -> _File:
    """Every spec column cast to its type; cheap, and needed before the key check can start."""
    names = raw.table.column_names
    file = _File(raw, {}, {})
    for name in present:
        col = raw.table.column(names.index(name))
        try:
            values, bad = _parse(spec.field(name).type, col)
        except pa.ArrowException:  # e.g. a Parquet list or struct column: no text form to check
            out.add(
                Problem(
                    raw.name,
                    None,
                    name,
                    None,
                    "type",
                    f"{raw.name}, column {name}: holds {col.type} values, which cannot be read as "
                    f"{spec.field(name).type} (rule: type)",
                )
            )
            continue
        file.typed[name], file.bad_type[name] = values, bad
    return file


def _check_header(raw: RawTable, spec: InputSpec, out: _Collector) -> list[str] | None:
    """Report missing, extra and repeated columns; None if the file has no spec column at all."""
    names = raw.table.column_names
    expected = spec.names
    present = [n for n in expected if n in names]
    if not present:
        shown = ", ".join(repr(n) for n in names[:6]) + (", ..." if len(names) > 6 else "")
        hint = ""
        if len(names) == 1 and any(sep in names[0] for sep in (";", "\t", "|")):
            hint = " It looks separated by something other than commas; save it as comma-separated CSV."
        out.add(
            Problem(
                raw.name,
                None,
                None,
                None,
                "not_a_table",
                f"{raw.name} does not look like an MI table for this spec: none of its column headers ({shown}) "
                f"is a spec field; expected a header row with {', '.join(expected)}.{hint} (rule: not_a_table)",
            )
        )
        return None
    missing = [n for n in expected if n not in names]
    folded = {n.strip().lower(): n for n in names}
    for n in missing:
        near = folded.get(n.lower())
        hint = f"; found {near!r}, which differs only in case or spaces" if near else ""
        out.add(
            Problem(
                raw.name,
                None,
                n,
                None,
                "missing_column",
                f"{raw.name}: column {n} is missing{hint} ({len(missing)} missing in all: {', '.join(missing)}) "
                "(rule: missing_column)",
            )
        )
    for i, n in enumerate(names):
        if n not in expected:
            out.add(
                Problem(
                    raw.name,
                    None,
                    n,
                    None,
                    "extra_column",
                    f"{raw.name}: column {i + 1} {n!r} is not a field of the spec; remove or rename it "
                    f"(fields: {', '.join(expected)}) (rule: extra_column)",
                )
            )
        elif names.index(n) != i:
            out.add(
                Problem(
                    raw.name,
                    None,
                    n,
                    None,
                    "duplicate_column",
                    f"{raw.name}: column {i + 1} repeats the header {n!r} (first in column {names.index(n) + 1}); "
                    "only the first is used (rule: duplicate_column)",
                )
            )
    return present


def _check_fields(file: _File, spec: InputSpec, out: _Collector) -> None:
    """Type, required, enum/codelist/level, pattern and bounds for every spec column in the file."""
    raw, typed, clean = file.raw, file.typed, file.clean
    table = raw.table
    names = table.column_names
    for name in typed:
        f = spec.field(name)
        col = table.column(names.index(name))
        text_cache: list[pa.ChunkedArray] = []

        def text(col=col, cache=text_cache) -> pa.ChunkedArray:
            if not cache:
                cache.append(_as_text(col))
            return cache[0]

        values, bad_type = typed[name], file.bad_type[name]
        bad_any = bad_type
        if bad_type is not None:
            words = TYPE_WORDS[f.type]
            out.mask(raw, bad_type, name, "type", text, lambda v, _o, w=words: f"{v!r} is not {w}")
        if (f.required or name in spec.primary_key) and col.null_count:
            why = "it is part of the primary key" if not f.required else "a value is required"
            out.mask(raw, pc.is_null(col), name, "required", text, lambda _v, _o, w=why: f"the value is empty; {w}")
        problems: list[pa.ChunkedArray | None] = []
        allowed = f.allowed_codes()
        if allowed is not None:
            words = _codes_words(allowed)
            outside = _outside(_as_text(values), allowed)
            if f.enum is not None:
                out.mask(raw, outside, name, "enum", text, lambda v, _o, w=words: f"{v!r} is not one of {w}")
            else:
                cl = f.codelist
                assert cl is not None
                where = Path(cl.path).name
                unknown, wrong_level = outside, None
                if f.level and outside is not None:  # a code of another level, or no code at all?
                    unknown = _outside(values, cl.codes)
                    wrong_level = outside if unknown is None else pc.and_not(outside, unknown)
                out.mask(
                    raw,
                    unknown,
                    name,
                    "codelist",
                    text,
                    lambda v, _o, w=where: f"{v!r} is not a code in {w}",
                )
                if wrong_level is not None:
                    out.mask(
                        raw,
                        wrong_level,
                        name,
                        "level",
                        text,
                        lambda v, _o, c=cl, w=where, lv=f.level: (
                            f"{v!r} is a {c.levels.get(str(v)) or 'top-level'} code in {w}, not a {lv} code"
                        ),
                    )
            problems.append(outside)
        if f.pattern:
            miss = _pattern_mask(_as_text(values), f.pattern)
            out.mask(raw, miss, name, "pattern", text, lambda v, _o, p=f.pattern: f"{v!r} does not match {p}")
            problems.append(miss)
        for rule, limit, op, word in (
            ("minimum", f.minimum, pc.less, "below the minimum"),
            ("maximum", f.maximum, pc.greater, "above the maximum"),
        ):
            if limit is None:
                continue
            if f.type == "date":
                word = "before the earliest allowed date" if rule == "minimum" else "after the latest allowed date"
            low, high = pc.min_max(values).values()
            bound = _bound(f, limit)
            if low.as_py() is None or not op(low if rule == "minimum" else high, bound).as_py():
                continue  # one pass over the column says no value is beyond the bound
            beyond = op(values, bound)
            out.mask(raw, beyond, name, rule, text, lambda v, _o, w=word, lim=limit: f"{v!r} is {w} {lim}")
            problems.append(beyond)
        for mask in problems:
            if mask is None:
                continue
            bad_any = mask if bad_any is None else pc.or_(pc.fill_null(bad_any, FALSE), pc.fill_null(mask, FALSE))
        if bad_any is not None and pc.any(bad_any).as_py():
            clean[name] = _null_where(bad_any, values)
        else:
            clean[name] = values


def _codes_words(codes: tuple[str, ...]) -> str:
    shown = ", ".join(codes[:12])
    return shown + (f", ... ({len(codes)} codes)" if len(codes) > 12 else "")


def _check_rules(file: _File, spec: InputSpec, out: _Collector) -> None:
    """Cross-field rules: date order, requires and nesting of codes, on values that passed their own checks."""
    raw, typed, clean = file.raw, file.typed, file.clean
    table = raw.table
    for rule in spec.rules:
        if rule.a not in clean or rule.b not in clean:
            continue  # a missing column is already reported
        # Order and presence need only well-typed values; nesting needs codes that passed their code list.
        a, b = (clean[rule.a], clean[rule.b]) if rule.rule == "nested" else (typed[rule.a], typed[rule.b])

        def text_of(name: str) -> Callable[[], pa.ChunkedArray]:
            return lambda: _as_text(table.column(table.column_names.index(name)))

        if rule.rule == "date_order":
            out.mask(
                raw,
                pc.less(b, a),
                rule.b,
                "date_order",
                text_of(rule.b),
                lambda v, o, r=rule: f"{r.b} {v} is before {r.a} {o}; it must be on or after it",
                other=a,
            )
        elif rule.rule == "requires":
            if spec.field(rule.a).type == "integer":
                trigger = pc.not_equal(clean[rule.a], _int64([0])[0])  # a bad count is already reported
            else:
                trigger = pc.is_valid(table.column(table.column_names.index(rule.a)))
            missing = pc.is_null(table.column(table.column_names.index(rule.b)))
            when = "is present and not 0" if spec.field(rule.a).type == "integer" else "is filled in"
            out.mask(
                raw,
                pc.and_(trigger, missing),
                rule.a,
                "requires",
                text_of(rule.a),
                lambda v, _o, r=rule, w=when: (
                    f"{r.a} is {v} but {r.b} is empty; {r.b} must be filled in when {r.a} {w}"
                ),
            )
        elif rule.rule == "nested":
            cl = spec.field(rule.a).codelist
            assert cl is not None
            parent_of = _on_distinct(a, lambda d, c=cl: _strings(c.parents.get(v) for v in d.to_pylist()), pa.string())
            out.mask(
                raw,
                pc.not_equal(parent_of, _as_text(b)),
                rule.a,
                "nested",
                text_of(rule.a),
                lambda v, o, r=rule, c=cl: (
                    f"{v!r} belongs to {r.b} {c.parents.get(str(v))!r} in {Path(c.path).name}, but {r.b} is {o!r}"
                ),
                other=b,
            )


def _key_checks(spec: InputSpec) -> list[tuple[str, tuple[str, ...]]]:
    """(rule, fields) for each unique field and the primary key; a one-field key is checked once."""
    checks = [("unique", (f.name,)) for f in spec.fields if f.unique and spec.primary_key != (f.name,)]
    if spec.primary_key:
        checks.append(("primary_key", spec.primary_key))
    return checks


def _key_groups(files: list[_File], names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray] | None:
    """One hash pass over the key of every file together; None in the common case of no duplicates.

    Otherwise (group id of each present key, position of each present key in all files together).
    """
    keys = [_key(fl, names) for fl in files]
    every = pa.chunked_array([c for k in keys for c in k.chunks], type=keys[0].type)
    valid = pc.is_valid(every) if every.null_count else None
    present = (every.filter(valid) if valid is not None else every).combine_chunks()
    encoded = pc.dictionary_encode(present)
    if len(encoded.dictionary) == len(present):
        return None
    where = _ints(pc.indices_nonzero(valid)) if valid is not None else np.arange(len(present), dtype=np.int64)
    return _ints(encoded.indices), where


def _key(file: _File, names: tuple[str, ...]) -> pa.ChunkedArray:
    if len(names) == 1:
        return file.typed[names[0]]
    parts = [_as_text(file.typed[n]) for n in names]
    return pc.binary_join_element_wise(*parts, _strings(["\x1f"])[0])


def _duplicates(
    files: list[_File], names: tuple[str, ...], rule: str, found: tuple[np.ndarray, np.ndarray], out: _Collector
) -> None:
    """Report each repeat of a key with where it was first seen (files in the order given)."""
    groups, where = found
    sizes = np.bincount(groups)
    repeated = np.flatnonzero(sizes[groups] > 1)  # usually a handful: only these are sorted
    offsets = np.cumsum([0] + [fl.raw.table.num_rows for fl in files])
    everywhere = where[repeated]
    file_no = np.searchsorted(offsets, everywhere, side="right") - 1
    pos = everywhere - offsets[file_no]
    g_all = groups[repeated]
    order = np.lexsort((pos, file_no, g_all))
    g = g_all[order]
    first = np.ones(len(g), dtype=bool)
    first[1:] = g[1:] != g[:-1]
    first_at = np.maximum.accumulate(np.where(first, np.arange(len(g)), 0))
    dup = np.flatnonzero(~first)
    dup_file, dup_pos = file_no[order[dup]], pos[order[dup]]
    orig_file, orig_pos = file_no[order[first_at[dup]]], pos[order[first_at[dup]]]
    dup_size = sizes[g[dup]]
    column = ", ".join(names)
    for i, fl in enumerate(files):
        sel = np.flatnonzero(dup_file == i)
        if not len(sel):
            continue
        sel = sel[np.argsort(dup_pos[sel], kind="stable")]
        index = dup_pos[sel]

        def values(idx: np.ndarray, fl=fl) -> list[str]:
            cols = [_pick(_as_text(fl.typed[n]), idx) for n in names]
            if len(names) == 1:
                return cols[0]
            return [", ".join(f"{n}={v}" for n, v in zip(names, vs, strict=True)) for vs in zip(*cols, strict=True)]

        def describe(value: object, k: int, sel=sel) -> str:
            j = sel[k]
            first_file = files[int(orig_file[j])].raw
            first_row = int(first_file.rows(np.array([orig_pos[j]]))[0])
            what = "primary key" if rule == "primary_key" else "value"
            return (
                f"{what} {value!r} is a duplicate; first seen in {first_file.name} {first_file.where(first_row)} "
                f"({int(dup_size[j])} occurrences in all)"
            )

        out.rows(fl.raw, index, column, rule, values, describe)


def _same_file(p: Path, name: str, seen: dict[Path, str], by_size: dict[int, list[tuple[Path, str]]]) -> Problem | None:
    """A path given twice, or a second file with the same bytes, would double-count every record."""
    if not p.is_file():
        return None
    key = p.resolve()
    if key in seen:
        msg = f"{name} is the same file as {seen[key]}, given twice; it is read once (rule: duplicate_file)"
        return Problem(name, None, None, None, "duplicate_file", msg)
    size = p.stat().st_size
    for other, other_name in by_size.get(size, []):
        if filecmp.cmp(p, other, shallow=False):
            msg = (
                f"{name} has exactly the same content as {other_name}; the same MI supplied twice would be "
                "counted twice, so it is not read (rule: duplicate_file)"
            )
            return Problem(name, None, None, None, "duplicate_file", msg)
    seen[key] = name
    by_size.setdefault(size, []).append((p, name))
    return None


def _typed_table(files: list[_File], spec: InputSpec) -> pa.Table:
    schema = pa.schema([(f.name, ARROW_TYPES[f.type]) for f in spec.fields])
    parts = []
    for fl in files:
        cols = [pc.cast(fl.typed[f.name], ARROW_TYPES[f.type]) for f in spec.fields]
        parts.append(pa.Table.from_arrays(cols, schema=schema))
    return pa.concat_tables(parts) if parts else schema.empty_table()


def validate(
    spec: ReleaseSpec | InputSpec, paths: Iterable[str | Path] | str | Path, *, max_detail: int = MAX_DETAIL
) -> ValidationReport:
    """Check MI files against the spec and report every problem; never raises for bad data.

    File-level problems (missing file, wrong format, encoding, truncation, empty, missing or
    extra columns) are problems with ``row=None``, so one run tells the user about every file.
    """
    inp = spec.input if isinstance(spec, ReleaseSpec) else spec
    if isinstance(paths, str | Path):
        paths = [paths]
    out = _Collector(max_detail)
    rows: dict[str, int] = {}
    seen: dict[Path, str] = {}
    by_size: dict[int, list[tuple[Path, str]]] = {}
    files: list[_File] = []
    for path in paths:
        name = str(path)
        rows.setdefault(name, 0)
        duplicate = _same_file(Path(path), name, seen, by_size)
        if duplicate:
            out.add(duplicate)
            continue
        try:
            raw = read_raw(path)
        except FileProblem as exc:
            out.add(exc.problem)
            continue
        rows[name] = raw.data_rows
        for problem in raw.problems:
            out.add(problem)
        present = _check_header(raw, inp, out)
        if present is not None:
            files.append(_parse_file(raw, inp, present, out))
    # The key check is one big hash pass; pyarrow releases the GIL, so it runs beside the field checks.
    checks = [(rule, names, [f for f in files if all(n in f.typed for n in names)]) for rule, names in _key_checks(inp)]
    checks = [c for c in checks if c[2]]
    found: dict[int, tuple[np.ndarray, np.ndarray] | None] = {}

    def look() -> None:
        for i, (_, names, usable) in enumerate(checks):
            found[i] = _key_groups(usable, names)

    worker = threading.Thread(target=look, daemon=True)
    worker.start()
    for file in files:
        _check_fields(file, inp, out)
        _check_rules(file, inp, out)
    worker.join()
    for i, (rule, names, usable) in enumerate(checks):
        groups = found[i] if i in found else _key_groups(usable, names)  # the thread failed: say why here
        if groups is not None:
            _duplicates(usable, names, rule, groups, out)
    problems = sorted(out.problems, key=lambda p: (p.file, p.row or 0, p.column or "", p.rule))
    total = sum(out.counts.values())
    report = ValidationReport(problems, rows, total, dict(out.counts))
    if report.ok:
        report.table = _typed_table(files, inp)
    return report
