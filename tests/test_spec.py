"""Release specs: the shipped specs load, and every kind of mistake names its key."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from opendata.errors import SpecError
from opendata.spec import json_schema, load_spec

SPECS = Path(__file__).resolve().parent.parent / "specs"


@pytest.mark.parametrize("name", ["work-programme.yaml", "work-programme-aggregated.yaml"])
def test_shipped_specs_load(name):
    spec = load_spec(SPECS / name)
    assert spec.licenses[0]["name"] == "OGL-UK-3.0"
    assert {"provider-by-month", "cpa-payment-group-by-month"} <= {t.name for t in spec.tables}
    provider = spec.dimensions["provider"]
    assert provider.levels == ("cpa", "prime_contract", "subcontractor")
    assert spec.disclosure.threshold == 10 and spec.disclosure.rounding_base == 5
    for field in spec.input.fields:
        assert field.description.strip(), f"field {field.name} is undocumented"


def test_the_annual_spec_is_the_monthly_one_with_its_own_tables_and_disclosure():
    """``work-programme-annual.yaml`` extends ``work-programme.yaml``: the same data, measures and
    indicators, and the attachment standard's table and share, which the monthly spec does not
    publish; subcontractors by financial year, CPAs never hidden as secondaries."""
    monthly, annual = load_spec(SPECS / "work-programme.yaml"), load_spec(SPECS / "work-programme-annual.yaml")
    assert annual.name == monthly.name and annual.input == monthly.input
    assert annual.measures == monthly.measures and annual.indicators[:-1] == monthly.indicators
    assert annual.indicators[-1].name == "missed-attachment-standard"
    assert [t.name for t in annual.tables] == [
        "provider-by-financial-year", "cpa-payment-group-by-month", "provider-by-referral-year",
        "provider-by-referral-year-standards",
    ]  # fmt: skip
    assert annual.dimensions["month"].period_levels == ("financial_year", "month")
    assert annual.disclosure.must_publish == ({"provider": ("cpa",)},)
    assert annual.disclosure.intruders == monthly.disclosure.intruders


def test_a_spec_extends_one_base_in_its_own_directory(tmp_path):
    """Each key it gives replaces the base's whole; the base is named, not a path, and extends nothing."""
    (tmp_path / "specs").mkdir()
    base = (SPECS / "work-programme.yaml").read_text()
    (tmp_path / "specs" / "base.yaml").write_text(base)
    child = tmp_path / "specs" / "child.yaml"
    child.write_text("extends: base.yaml\ntitle: Coarser\ndisclosure: {threshold: 5, protection: 5}\n")
    for item in (SPECS / "codelists").iterdir():
        (tmp_path / "specs" / "codelists").mkdir(exist_ok=True)
        (tmp_path / "specs" / "codelists" / item.name).write_bytes(item.read_bytes())
    spec = load_spec(child)
    assert spec.title == "Coarser" and spec.disclosure.threshold == 5 and spec.disclosure.rounding_base is None
    assert spec.tables[0].name == "provider-by-month"
    for bad, message in (
        ("../specs/base.yaml", "a spec file in the same directory"),
        ("/etc/passwd", "a spec file in the same directory"),
        ("missing.yaml", "missing.yaml does not exist"),
        ("child.yaml", "which extends another spec"),
    ):
        child.write_text(f"extends: {bad}\ntitle: Coarser\n")
        with pytest.raises(SpecError, match=message):
            load_spec(child)


def test_schema_file_in_specs_is_the_packaged_one():
    assert json.loads((SPECS / "release-spec.schema.json").read_text()) == json_schema()
    jsonschema.Draft202012Validator.check_schema(json_schema())


def test_record_and_aggregated_kinds():
    assert load_spec(SPECS / "work-programme.yaml").input.kind == "records"
    agg = load_spec(SPECS / "work-programme-aggregated.yaml")
    assert agg.input.kind == "aggregated"
    assert all(m.period == "month" and m.aggregate == "sum" for m in agg.measures.values())


def write_variant(tmp_path: Path, change) -> Path:
    raw = yaml.safe_load((SPECS / "work-programme.yaml").read_text())
    change(raw)
    for cl in (SPECS / "codelists").glob("*.csv"):
        (tmp_path / "codelists").mkdir(exist_ok=True)
        (tmp_path / "codelists" / cl.name).write_bytes(cl.read_bytes())
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda r: r.update(colour="blue"), "colour"),
        (lambda r: r["disclosure"].update(zeros="maybe"), "disclosure.zeros: 'maybe' is not allowed"),
        (lambda r: r["disclosure"].update(threshold=0), "disclosure.threshold"),
        (lambda r: r.pop("licenses"), "'licenses' is a required property"),
        (lambda r: r["input"]["fields"][0].update(type="text"), "input.fields[0].type"),
        (lambda r: r["tables"][0]["measures"].append("wages"), "tables[0].measures: unknown measure 'wages'"),
        (lambda r: r["tables"][1]["dimensions"].append("region"), "unknown dimension 'region'"),
        (lambda r: r["measures"][0].update(field="nope"), "measures[0].field: unknown input field 'nope'"),
        (lambda r: r["measures"][0].update(period="cpa"), "measures[0].period: field 'cpa' is string"),
        (lambda r: r["input"]["rules"][0].update(later="nope"), "input.rules[0].later: unknown input field"),
        (lambda r: r["input"]["rules"].append({"rule": "date_order"}), "'earlier' is a required property"),
        (lambda r: r["dimensions"][1].pop("codelist"), "dimensions[1]: a dimension needs either"),
        (lambda r: r["dimensions"][1].update(codelist="codelists/missing.csv"), "missing.csv does not exist"),
        (lambda r: r.update(name="Work Programme"), "name: 'Work Programme' does not match"),
        (lambda r: r["measures"][5].update(aggregate="sum"), "measures[5].within_months: a cohort measure"),
        (lambda r: r["measures"][5].update(field="referral_date"), "measures[5].within_months: a cohort measure"),
        (lambda r: r["measures"][5].update(within_months=0), "measures[5].within_months: 0 is less than"),
        (lambda r: r["tables"][2]["measures"].append("job_outcomes"), "tables[2].measures: a table with a cohort"),
        (lambda r: r["tables"][2]["dimensions"].append("month"), "tables[2].dimensions: at most one dimension"),
        (lambda r: r["indicators"][1].update(standardise_by="provider"), "indicators[1].standardise_by: no table"),
    ],
)
def test_bad_spec_names_the_key(tmp_path, change, expected):
    with pytest.raises(SpecError) as info:
        load_spec(write_variant(tmp_path, change))
    assert expected in str(info.value)


def test_not_yaml_and_missing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(bad)
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "nothing.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(SpecError, match="must be a mapping"):
        load_spec(tmp_path / "list.yaml")


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
@pytest.mark.parametrize("column", ["code", "label"])
def test_code_list_text_a_spreadsheet_would_run_is_refused(tmp_path, start, column):
    """Codes and labels reach published CSVs, spreadsheets and READMEs: one starting like a formula
    (OWASP CSV injection) is refused when the spec loads, naming the file, line and column."""
    path = write_variant(tmp_path, lambda r: None)
    codelist = tmp_path / "codelists" / "payment-groups.csv"
    lines = codelist.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[1].split(",")
    at = header.index(column)
    cells[at] = f'"{start}HYPERLINK(""http://x"")"' if column == "label" else f'"{start}PG1"'
    lines[1] = ",".join(cells)
    codelist.write_text("\n".join(lines) + "\n")
    with pytest.raises(SpecError, match=rf"payment-groups.csv line 2, column {column}: .* formula"):
        load_spec(path)


def test_no_json_schema_repeats_a_key():
    """A repeated key in a JSON object is legal JSON whose first value is silently dropped: the
    schemas are read with a hook that refuses one (the release spec's ``counts`` was once stated twice)."""

    def refuse(pairs):
        keys = [k for k, _ in pairs]
        assert len(keys) == len(set(keys)), f"repeated key(s): {sorted({k for k in keys if keys.count(k) > 1})}"
        return dict(pairs)

    schemas = sorted((Path(__file__).resolve().parent.parent / "opendata").glob("*.schema.json"))
    assert len(schemas) >= 3
    for path in schemas:
        json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=refuse)
