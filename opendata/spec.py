"""Release specs: what to read, how to count it, what to publish and how to protect it.

A spec is YAML checked against ``specs/release-spec.schema.json`` and then cross-checked (every
name a table uses exists, every code list can be read). Errors name the key and what is expected.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from opendata.descriptor import PERIOD_LEVELS
from opendata.errors import SpecError

SCHEMA_FILE = "release-spec.schema.json"


@dataclass(frozen=True)
class CodeList:
    """Codes with labels and parents: a flat list or a hierarchy under one total code."""

    path: Path
    codes: tuple[str, ...]
    labels: dict[str, str]
    parents: dict[str, str]
    levels: dict[str, str]

    def at_level(self, level: str) -> tuple[str, ...]:
        return tuple(c for c in self.codes if self.levels.get(c) == level)


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str
    description: str
    title: str = ""
    required: bool = False
    unique: bool = False
    enum: tuple[str, ...] | None = None
    codelist: CodeList | None = None
    level: str | None = None
    pattern: str | None = None
    minimum: int | str | None = None
    maximum: int | str | None = None

    def allowed_codes(self) -> tuple[str, ...] | None:
        """The closed list of values this field may take, if it has one."""
        if self.enum is not None:
            return self.enum
        if self.codelist is not None:
            return self.codelist.at_level(self.level) if self.level else self.codelist.codes
        return None


@dataclass(frozen=True)
class RuleSpec:
    """A rule across fields. ``date_order``: later >= earlier when both are present;
    ``requires``: when ``if`` is present (and non-zero) ``then`` must be present;
    ``nested``: the child code's parent in its code list must equal the parent field."""

    rule: str
    a: str
    b: str

    @property
    def label(self) -> str:
        symbol = {"date_order": "<=", "requires": "requires", "nested": "within"}[self.rule]
        return f"{self.rule}: {self.a} {symbol} {self.b}"


@dataclass(frozen=True)
class InputSpec:
    kind: str
    fields: tuple[FieldSpec, ...]
    primary_key: tuple[str, ...]
    rules: tuple[RuleSpec, ...]

    def field(self, name: str) -> FieldSpec:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


@dataclass(frozen=True)
class DimensionSpec:
    name: str
    title: str
    description: str
    levels: tuple[str, ...]
    codelist: CodeList | None
    total_code: str = "Total"
    total_label: str = "Total"
    # a period dimension's levels from the top down, the finest last: ("month",), ("quarter", "month")
    period_levels: tuple[str, ...] = ()

    @property
    def period(self) -> bool:
        return bool(self.period_levels)


@dataclass(frozen=True)
class MeasureSpec:
    name: str
    title: str
    description: str
    aggregate: str
    field: str
    period: str
    unit: str = ""
    # a cohort measure: records whose ``field`` date falls within this many months of the ``period``
    # date, counted in the period's month (job outcomes within 12 months of referral, by referral
    # month); a cohort is published only once the data covers its whole follow-up
    within_months: int | None = None
    # a timeliness standard: records whose ``field`` falls within a limit of days of the ``period``
    # date (attachment within 15 days of referral, 25 for PG9), counted in the period's month
    within_days: WithinDays | None = None

    @property
    def cohort_months(self) -> int | None:
        """Months of follow-up a month's records need before the measure is complete (None: not a cohort).

        A timeliness standard is complete for a month once its last day's records have had their
        limit: every month has at least 28 days, and 5 working days span at most 7 calendar days,
        plus at most 6 bank holidays in a row of weekdays (Christmas and New Year in Scotland), so
        its counts never change afterwards (no revision of a published month)."""
        if self.within_days is not None:
            w = self.within_days
            longest = max([w.limit, *(n for _, n in w.overrides)])
            days = longest if w.unit == "calendar_days" else -(-longest // 5) * 7 + 6
            return -(-days // 28)
        return self.within_months

    @property
    def counts_some_of_period(self) -> bool:
        """It counts, in each month, some of the records its period field's count counts there."""
        return self.within_months is not None or self.within_days is not None


@dataclass(frozen=True)
class WithinDays:
    """A limit in calendar or working days, per code of the ``by`` field where ``overrides`` says."""

    limit: int
    unit: str  # calendar_days or working_days
    nation: str | None = None  # whose bank holidays working days skip
    by: str | None = None
    overrides: tuple[tuple[str, int], ...] = ()
    counts: str = "within"  # or "missed": past the limit by the data's end, late or not at all


@dataclass(frozen=True)
class TableSpec:
    name: str
    title: str
    description: str
    dimensions: tuple[str, ...]
    measures: tuple[str, ...]


@dataclass(frozen=True)
class IndicatorSpec:
    """A ratio of two published measures that readers compare providers by (``opendata.indicators``):
    a proportion when the numerator counts a subset of the denominator's people, else a rate per
    ``per``; ``polarity`` says which direction is better."""

    name: str
    title: str
    numerator: str
    denominator: str
    kind: str = "proportion"
    per: int = 1
    polarity: str = "higher"
    description: str = ""
    standardise_by: str = ""  # a dimension of strata: observed / expected (indirect standardisation)
    # the contract's level (the least allowed, or for polarity lower the most), and primes' own levels
    contractual_level: float | None = None
    contractual_overrides: tuple[tuple[str, float], ...] = ()

    def describe(self) -> dict[str, Any]:
        """As the package's ``opendata:indicators`` says it (the spec's own keys)."""
        out = {k: v for k, v in self.__dict__.items() if v != "" and not k.startswith("contractual")}
        if self.contractual_level is not None:
            out["contractual_level"] = {"level": self.contractual_level}
            if self.contractual_overrides:
                out["contractual_level"]["overrides"] = dict(self.contractual_overrides)
        return out


@dataclass(frozen=True)
class DisclosureSpec:
    threshold: int
    zeros: str = "safe"
    protection: int | None = None
    rounding_base: int | None = None
    secondary: str = "auto"
    singletons: str = "protect"
    intruders: tuple[str, ...] = ()  # levels of units that know all their own cells
    relations: tuple[dict[str, Any], ...] | None = None  # stated in the spec; None: read off the input rules
    # cells never chosen as secondary suppressions: each entry maps dimension -> levels that match
    must_publish: tuple[dict[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class ReleaseSpec:
    path: Path
    name: str
    title: str
    description: str
    kind: str
    keywords: tuple[str, ...]
    licenses: tuple[dict[str, str], ...]
    publisher: dict[str, Any]
    contributors: tuple[dict[str, Any], ...]
    sources: tuple[dict[str, str], ...]
    homepage: str | None
    input: InputSpec
    dimensions: dict[str, DimensionSpec]
    measures: dict[str, MeasureSpec]
    tables: tuple[TableSpec, ...]
    disclosure: DisclosureSpec
    indicators: tuple[IndicatorSpec, ...] = ()
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)


@cache
def json_schema() -> dict[str, Any]:
    """The spec's JSON Schema, shipped in the package and mirrored in specs/."""
    text = resources.files("opendata").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    return json.loads(text)


def schema_location(path: Any) -> str:
    """A JSON Schema error path as the key a user edits, e.g. ``tables[1].measures``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def schema_message(error: jsonschema.ValidationError) -> str:
    """One schema error as a sentence naming the key and what is expected (specs and calendars)."""
    where = schema_location(error.absolute_path)
    if error.validator == "additionalProperties":
        return f"{where}: {error.message} (allowed keys: {', '.join(sorted(error.schema['properties']))})"
    if error.validator == "enum":
        allowed = ", ".join(repr(v) for v in error.validator_value)
        return f"{where}: {error.instance!r} is not allowed; expected one of {allowed}"
    if error.validator == "oneOf" and isinstance(error.instance, dict):
        return f"{where}: a dimension needs either 'period' (month, quarter or year) or both 'levels' and 'codelist'"
    description = error.schema.get("description") if isinstance(error.schema, dict) else None
    hint = f" ({description})" if description else ""
    return f"{where}: {error.message}{hint}"


FORMULA_STARTS = frozenset("=+-@\t\r")  # OWASP: cells a spreadsheet may evaluate as a formula


def read_codelist(path: Path) -> CodeList:
    """Read a code list CSV with columns code,label,parent[,level]."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        raise SpecError(f"code list {path} does not exist") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise SpecError(f"code list {path} cannot be read as UTF-8 CSV: {exc}") from None
    if not rows or not {"code", "label", "parent"} <= set(rows[0]):
        raise SpecError(f"code list {path} needs a header with columns code,label,parent[,level]")
    for line, r in enumerate(rows, start=2):  # codes and labels reach published CSVs, spreadsheets, READMEs
        for column in ("code", "label", "parent", "level"):
            text = r.get(column) or ""
            if text[:1] in FORMULA_STARTS:
                raise SpecError(
                    f"code list {path} line {line}, column {column}: {text[:40]!r} starts with {text[:1]!r}, which a "
                    "spreadsheet would run as a formula (CSV injection); codes and labels may not start with "
                    "=, +, -, @, tab or carriage return"
                )
    codes = tuple(r["code"] for r in rows)
    if len(set(codes)) != len(codes):
        dupes = sorted({c for c in codes if codes.count(c) > 1})
        raise SpecError(f"code list {path} repeats codes: {', '.join(dupes[:5])}")
    return CodeList(
        path=path,
        codes=codes,
        labels={r["code"]: r["label"] for r in rows},
        parents={r["code"]: r["parent"] for r in rows},
        levels={r["code"]: r.get("level") or "" for r in rows},
    )


def _within_days(raw: dict | None, where: str, names: list[str], fields: list) -> WithinDays | None:
    if raw is None:
        return None
    if (raw["unit"] == "working_days") != ("nation" in raw):
        raise SpecError(f"{where}: working_days need a nation (whose bank holidays to skip); calendar_days take none")
    by, overrides = raw.get("by"), raw.get("overrides") or {}
    if overrides and by is None:
        raise SpecError(f"{where}.overrides: name the field whose codes they are (by: payment_group)")
    if by is not None and by not in names:
        raise SpecError(f"{where}.by: no input field {by!r}")
    if by is not None:
        known = fields[names.index(by)].allowed_codes()
        unknown = [c for c in overrides if known is not None and c not in known]
        if unknown:
            raise SpecError(f"{where}.overrides: {', '.join(unknown)} not codes of {by}")
    overrides = tuple(sorted(overrides.items()))
    return WithinDays(raw["limit"], raw["unit"], raw.get("nation"), by, overrides, raw.get("counts", "within"))


def _indicator(i: int, raw: dict[str, Any], dimensions: dict[str, DimensionSpec]) -> IndicatorSpec:
    """An indicator; a contractual level only where a side of it is better (a proportion with a
    polarity, not standardised), its overrides naming prime contracts of the spec's code lists."""
    raw = dict(raw)
    contract = raw.pop("contractual_level", None)
    ind = IndicatorSpec(**raw)
    if contract is None:
        return ind
    where = f"indicators[{i}].contractual_level"
    if ind.kind != "proportion" or ind.polarity == "none" or ind.standardise_by:
        raise SpecError(f"{where}: a level is for a proportion with a polarity (higher or lower), not standardised")
    overrides = contract.get("overrides") or {}
    primes = {c for d in dimensions.values() if d.codelist for c in d.codelist.at_level("prime_contract")}
    unknown = sorted(set(overrides) - primes)
    if unknown:
        raise SpecError(f"{where}.overrides: {', '.join(unknown)} not prime contracts of the code lists")
    level, overrides = float(contract["level"]), tuple(sorted((k, float(v)) for k, v in overrides.items()))
    return replace(ind, contractual_level=level, contractual_overrides=overrides)


def period_levels(where: str, raw: str | list[str]) -> tuple[str, ...]:
    """A period dimension's levels from the top down (``month`` alone, or ``[quarter, month]``)."""
    levels = (raw,) if isinstance(raw, str) else tuple(raw)
    if list(levels) != sorted(levels, key=PERIOD_LEVELS.index):
        raise SpecError(f"{where}: levels go from the coarsest down ({', '.join(PERIOD_LEVELS)}), not {list(levels)}")
    if {"year", "financial_year"} <= set(levels):
        raise SpecError(f"{where}: calendar years and financial years do not nest; a dimension has one or the other")
    return levels


def table_period(table: TableSpec, dimensions: dict[str, DimensionSpec]) -> tuple[str, ...]:
    """The levels of a table's period dimension, the finest last; empty if it has none."""
    return next((dimensions[d].period_levels for d in table.dimensions if dimensions[d].period), ())


def _check_period_links(tables: list[TableSpec], dimensions: dict[str, DimensionSpec]) -> None:
    """Tables that publish a measure by periods of different lengths share cells only through a
    level both hold: a month table beside a quarter table must show quarter subtotals, or the
    quarters (sums of months) are outside the linked system and differencing them is not protected."""
    years = {lv: t.name for t in tables for lv in table_period(t, dimensions) if lv in ("year", "financial_year")}
    if len(years) == 2:  # a release ends at the end of its coarsest whole period: December or March, not both
        raise SpecError(
            f"tables: {years['year']} has calendar years and {years['financial_year']} financial years; the two "
            "do not nest and a release cannot end at the end of both: publish one or the other"
        )
    finest: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    for t in tables:
        levels = table_period(t, dimensions)
        for m in t.measures:
            if levels:
                finest.setdefault(m, []).append((t.name, levels))
    for m, held in finest.items():
        for name, levels in held:
            for other, theirs in held:
                leaf = theirs[-1]
                if PERIOD_LEVELS.index(leaf) < PERIOD_LEVELS.index(levels[-1]) and leaf not in levels:
                    raise SpecError(
                        f"tables: {name} publishes {m} by {levels[-1]} and {other} by {leaf}; give {name}'s period the "
                        f"{leaf} level too (e.g. period: [{leaf}, {levels[-1]}]) so the two share their {leaf} cells"
                    )


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"spec {path} does not exist") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise SpecError(f"spec {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"spec {path} must be a mapping of keys, got {type(raw).__name__}")
    return raw


def _extended(path: Path, raw: dict[str, Any]) -> dict[str, Any]:
    """A spec that ``extends`` another: the base's keys, each key this one gives replacing the
    base's whole (a coarser release of the same data restates its ``dimensions``, ``tables`` and
    ``disclosure``, not the input rules and measures it shares). The base is a file in the same
    directory (code list paths mean the same in both) and extends nothing itself: one level, so
    two files at most say what a release publishes."""
    base = raw.pop("extends", None)
    if base is None:
        return raw
    if not isinstance(base, str) or not base or Path(base).name != base:
        raise SpecError(f"spec {path}: extends: a spec file in the same directory, not {base!r}")
    found = _read_yaml(path.parent / base)
    if "extends" in found:
        raise SpecError(f"spec {path}: extends {base}, which extends another spec; a base extends nothing")
    return found | raw


def load_spec(path: str | Path) -> ReleaseSpec:
    """Load, schema-check and cross-check a release spec (with the spec it ``extends``, if any)."""
    path = Path(path)
    raw = _extended(path, _read_yaml(path))
    check_against_schema(raw, json_schema(), f"spec {path}", SpecError)
    return _build(path, raw)


def check_against_schema(raw: Any, schema: dict[str, Any], label: str, error: type[SpecError]) -> None:
    """Raise ``error`` listing every schema violation (up to 20), each naming its key."""
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(raw),
        key=lambda e: (list(map(str, e.absolute_path)), e.message),
    )
    if errors:
        lines = "\n".join(f"  {schema_message(e)}" for e in errors[:20])
        raise error(f"{label} is invalid:\n{lines}")


def _build(path: Path, raw: dict[str, Any]) -> ReleaseSpec:
    base = path.parent
    codelists: dict[str, CodeList] = {}

    def codelist(rel: str) -> CodeList:
        if rel not in codelists:
            codelists[rel] = read_codelist(base / rel)
        return codelists[rel]

    fields = []
    for i, f in enumerate(raw["input"]["fields"]):
        if "level" in f and "codelist" not in f:
            raise SpecError(f"input.fields[{i}].level needs a codelist on the same field")
        fields.append(
            FieldSpec(
                name=f["name"],
                type=f["type"],
                description=f["description"],
                title=f.get("title", ""),
                required=f.get("required", False),
                unique=f.get("unique", False),
                enum=tuple(f["enum"]) if "enum" in f else None,
                codelist=codelist(f["codelist"]) if "codelist" in f else None,
                level=f.get("level"),
                pattern=f.get("pattern"),
                minimum=f.get("minimum"),
                maximum=f.get("maximum"),
            )
        )
    names = [f.name for f in fields]
    if len(set(names)) != len(names):
        raise SpecError("input.fields: field names must be unique")

    def need_field(where: str, name: str) -> str:
        if name not in names:
            raise SpecError(f"{where}: unknown input field {name!r}; known: {', '.join(names)}")
        return name

    rules = []
    for i, r in enumerate(raw["input"].get("rules", [])):
        a, b = {"date_order": ("earlier", "later"), "requires": ("if", "then"), "nested": ("child", "parent")}[
            r["rule"]
        ]
        rules.append(
            RuleSpec(r["rule"], need_field(f"input.rules[{i}].{a}", r[a]), need_field(f"input.rules[{i}].{b}", r[b]))
        )
    for i, r in enumerate(rules):
        if r.rule == "nested" and fields[names.index(r.a)].codelist is None:
            raise SpecError(f"input.rules[{i}]: nested rule needs a codelist on field {r.a!r}")
    primary_key = tuple(need_field("input.primary_key", k) for k in raw["input"].get("primary_key", []))
    input_spec = InputSpec(raw["input"]["kind"], tuple(fields), primary_key, tuple(rules))

    dimensions: dict[str, DimensionSpec] = {}
    for i, d in enumerate(raw["dimensions"]):
        total = d.get("total", {})
        levels = tuple(need_field(f"dimensions[{i}].levels", lv) for lv in d.get("levels", []))
        dimensions[d["name"]] = DimensionSpec(
            name=d["name"],
            title=d["title"],
            description=d.get("description", ""),
            period_levels=period_levels(f"dimensions[{i}].period", d["period"]) if "period" in d else (),
            levels=levels,
            codelist=codelist(d["codelist"]) if "codelist" in d else None,
            total_code=total.get("code", "Total"),
            total_label=total.get("label", "Total"),
        )

    measures: dict[str, MeasureSpec] = {}
    for i, m in enumerate(raw["measures"]):
        measures[m["name"]] = MeasureSpec(
            name=m["name"],
            title=m["title"],
            description=m["description"],
            aggregate=m["aggregate"],
            field=need_field(f"measures[{i}].field", m["field"]),
            period=need_field(f"measures[{i}].period", m["period"]),
            unit=m.get("unit", ""),
            within_months=m.get("within_months"),
            within_days=_within_days(m.get("within_days"), f"measures[{i}].within_days", names, fields),
        )
        period_type = fields[names.index(m["period"])].type
        if (m.get("within_months") is not None or m.get("within_days") is not None) and (
            m["aggregate"] != "count"
            or m["field"] == m["period"]
            or fields[names.index(m["field"])].type != "date"
            or period_type != "date"
        ):
            key = "within_months" if m.get("within_months") is not None else "within_days"
            raise SpecError(
                f"measures[{i}].{key}: a cohort measure counts a date field within a time of another date field "
                "(aggregate: count; field and period both dates, and different)"
            )
        if m.get("within_months") is not None and m.get("within_days") is not None:
            raise SpecError(f"measures[{i}]: within_months or within_days, not both")
        if period_type not in ("date", "yearmonth"):
            raise SpecError(f"measures[{i}].period: field {m['period']!r} is {period_type}, expected date or yearmonth")
        if m["aggregate"] == "sum" and fields[names.index(m["field"])].type != "integer":
            raise SpecError(f"measures[{i}].field: a sum needs an integer field, {m['field']!r} is not")

    tables = []
    for i, t in enumerate(raw["tables"]):
        for d in t["dimensions"]:
            if d not in dimensions:
                raise SpecError(f"tables[{i}].dimensions: unknown dimension {d!r}; known: {', '.join(dimensions)}")
        for m in t["measures"]:
            if m not in measures:
                raise SpecError(f"tables[{i}].measures: unknown measure {m!r}; known: {', '.join(measures)}")
        if sum(dimensions[d].period for d in t["dimensions"]) > 1:
            raise SpecError(f"tables[{i}].dimensions: at most one dimension of a table may be a period")
        cohorts = {measures[m].period for m in t["measures"] if measures[m].counts_some_of_period}
        if cohorts and {measures[m].period for m in t["measures"]} != cohorts:
            raise SpecError(
                f"tables[{i}].measures: a table with a cohort measure (within_months, within_days) holds only measures "
                "counted in the same period field, so its months mean one thing"
            )
        tables.append(
            TableSpec(t["name"], t["title"], t.get("description", ""), tuple(t["dimensions"]), tuple(t["measures"]))
        )
    if len({t.name for t in tables}) != len(tables):
        raise SpecError("tables: table names must be unique")
    _check_period_links(tables, dimensions)
    indicators = tuple(_indicator(i, raw_ind, dimensions) for i, raw_ind in enumerate(raw.get("indicators", ())))
    for i, ind in enumerate(indicators):
        for role in ("numerator", "denominator"):
            if getattr(ind, role) not in measures:
                raise SpecError(
                    f"indicators[{i}].{role}: unknown measure {getattr(ind, role)!r}; known: {', '.join(measures)}"
                )
        if not any({ind.numerator, ind.denominator} <= set(t.measures) for t in tables):
            raise SpecError(f"indicators[{i}]: no table publishes both {ind.numerator} and {ind.denominator}")
        if ind.standardise_by and not any(
            {ind.numerator, ind.denominator} <= set(t.measures)
            and ind.standardise_by in t.dimensions
            and len(t.dimensions) == 3
            and any(dimensions[d].period for d in t.dimensions)
            for t in tables
        ):
            raise SpecError(
                f"indicators[{i}].standardise_by: no table of a period, an entity and {ind.standardise_by!r} "
                f"publishes both {ind.numerator} and {ind.denominator}"
            )
    if len({ind.name for ind in indicators}) != len(indicators):
        raise SpecError("indicators: indicator names must be unique")

    d = raw["disclosure"]
    disclosure = DisclosureSpec(
        threshold=d["threshold"],
        zeros=d.get("zeros", "safe"),
        protection=d.get("protection"),
        rounding_base=d.get("rounding", {}).get("base"),
        secondary=d.get("secondary", "auto"),
        singletons=d.get("singletons", "protect"),
        intruders=tuple(d.get("intruders", ())),
        relations=tuple(d["relations"]) if "relations" in d else None,
        must_publish=tuple({k: tuple(v) for k, v in entry.items()} for entry in d.get("must_publish", ())),
    )
    for r in disclosure.relations or ():
        unknown = [r[k] for k in ("smaller", "larger") if r[k] not in measures]
        if unknown:
            raise SpecError(f"disclosure.relations: {unknown} are not measures of this spec")
    levels = {level for dim in raw["dimensions"] for level in dim.get("levels", ())}
    unknown = [level for level in disclosure.intruders if level not in levels]
    if unknown:
        raise SpecError(f"disclosure.intruders: {unknown} are not levels of any dimension (levels: {sorted(levels)})")
    for entry in disclosure.must_publish:
        for dim, wanted in entry.items():
            known = next((d for d in raw["dimensions"] if d["name"] == dim), None)
            if known is None:
                raise SpecError(f"disclosure.must_publish: {dim!r} is not a dimension of this spec")
            own = {"total", *known.get("levels", ()), *dimensions[dim].period_levels}
            bad = [level for level in wanted if level not in own]
            if bad:
                raise SpecError(f"disclosure.must_publish: {bad} are not levels of {dim} (levels: {sorted(own)})")
    return ReleaseSpec(
        path=path,
        name=raw["name"],
        title=raw["title"],
        description=raw["description"].strip(),
        kind=raw.get("kind", "management information"),
        keywords=tuple(raw.get("keywords", [])),
        licenses=tuple(raw["licenses"]),
        publisher=raw["publisher"],
        contributors=tuple(raw.get("contributors", [])),
        sources=tuple(raw["sources"]),
        homepage=raw.get("homepage"),
        input=input_spec,
        dimensions=dimensions,
        measures=measures,
        tables=tuple(tables),
        disclosure=disclosure,
        indicators=indicators,
        raw=raw,
    )
