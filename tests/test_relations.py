"""Relations between measures read off the spec's rules: the right ones, and true of real MI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from shipped_specs import OUTSIDERS

from opendata.aggregate import aggregate
from opendata.protection import population_keys
from opendata.relations import CUMULATIVE, Relation, relation_rows, spec_relations
from opendata.sample import write_sample
from opendata.spec import load_spec
from opendata.validate import validate

SPEC = OUTSIDERS
NAME = "work-programme-subcontractor-mi"


def test_the_work_programme_rules_give_the_order_of_events_and_the_payment_bound():
    assert set(spec_relations(load_spec(SPEC))) == {
        Relation("attachments", "referrals", cumulative=True),
        Relation("job_starts", "attachments", cumulative=True),
        Relation("job_outcomes", "job_starts", cumulative=True),
        Relation("sustainment_payments", "job_outcomes", 30.0),
        Relation("job_outcomes_12m", "referrals"),  # a cohort's outcomes are some of its referrals
        Relation("missed_attachment_standard", "referrals"),  # so are those that missed a standard
    }


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    out = tmp_path_factory.mktemp("mi")
    write_sample(out, 3000, 5, months=8, formats=("csv",))
    spec = load_spec(SPEC)
    report = validate(spec, sorted(out.glob("*.csv")))
    return spec, aggregate(spec, report.table)


def _rows(table, measure, relations, known):
    keys = population_keys(table.dimensions, table.frame)
    terms, upper = relation_rows([table], [keys], measure, relations, [known])
    index = pd.Index(keys)
    g = sp.csr_matrix(
        (terms["coef"].to_numpy(), (terms["row"].to_numpy(), index.get_indexer(terms["key"]))),
        shape=(len(upper), len(keys)),
    )
    return g, upper


@pytest.mark.parametrize("measure", ["referrals", "attachments", "job_starts", "job_outcomes", "sustainment_payments"])
def test_true_counts_satisfy_every_relation_row(tables, measure):
    """The rows are facts about the MI: the true table satisfies each (else the model is wrong),
    and some are tight somewhere (else they would say nothing)."""
    spec, aggregated = tables
    relations = spec_relations(spec)
    for table in aggregated:
        if measure not in table.frame.columns:
            continue
        known = {m: (table.frame[m].to_numpy(),) * 2 for m in table.frame.columns if m in spec.measures}
        g, upper = _rows(table, measure, relations, known | {CUMULATIVE: (None, None)})
        assert g.shape[0] > 0
        slack = upper - g @ table.frame[measure].to_numpy(dtype=np.float64)
        assert (slack >= -1e-9).all()
        assert (slack < 1).any()


def test_hidden_other_cells_give_no_row_and_months_after_the_cut_off_no_running_sums(tables):
    spec, aggregated = tables
    table = aggregated[0]
    relations = spec_relations(spec)
    values = table.frame["referrals"].to_numpy(dtype=np.float64)
    hidden = np.where(np.arange(len(values)) % 2 == 0, np.inf, values)
    full, _ = _rows(table, "attachments", relations, [{"referrals": (values, values), CUMULATIVE: (None, None)}][0])
    part, _ = _rows(table, "attachments", relations, {"referrals": (values, hidden), CUMULATIVE: (None, None)})
    none, _ = _rows(table, "attachments", relations, {"referrals": (values, values)})
    assert 0 < part.shape[0] < full.shape[0] and none.shape[0] == 0


def test_a_stated_relation_the_mi_breaks_is_refused_and_nothing_is_written(tmp_path):
    """A spec that states a false relation is a spec error, not something to drop quietly."""

    text = SPEC.read_text().replace("codelists/", f"{SPEC.parent}/codelists/")
    text = text.replace(
        "  secondary: auto\n",
        "  secondary: auto\n  relations: [{smaller: referrals, larger: attachments, cumulative: true}]\n",
    )
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    _refused(spec, tmp_path, 1000, r"measure .*violate .*relation row")


def test_a_release_the_joint_attacker_defeats_is_refused_and_nothing_is_written(tmp_path, monkeypatch):
    """Where the joint repair finds no safe pattern (the cells it would hide were published before),
    the release stops: a pattern that fails an audit is never published, not even with a warning."""
    import disclosure

    def defeated(*args, **kwargs):
        raise disclosure.AuditFailed("2 primary cell(s) narrowed below the required width")

    monkeypatch.setattr(disclosure, "protect_jointly", defeated)
    _refused(SPEC, tmp_path, 800, r"cannot be protected together: .*2 primary cell")


def test_a_release_whose_joint_check_is_over_its_bound_on_work_is_refused(tmp_path, monkeypatch):
    """A joint check larger than its bound (here none: every primary the blocks and the whole system's
    batched solves leave is over it) is not skipped: a pattern no check covers is never published."""
    from opendata import protection

    monkeypatch.setattr(protection, "JOINT_MAX_LEFT", 0)
    _refused(SPEC, tmp_path, 800, r"too many small cells for the joint check .*neither the blocks nor")


@pytest.mark.slow
def test_a_version_no_joint_pattern_protects_beside_the_earlier_one_is_checked_over_its_own_cells(
    tmp_path, monkeypatch
):
    """Where the joint repair finds no pattern beside the cells an earlier version published, the check
    runs again over the new version's own cells (as a measure's own protection gives up a version it
    cannot be protected with), and the descriptor says so: never silently."""
    import disclosure
    from opendata.embargo import publish
    from opendata.release import cut_release

    out, when = tmp_path / "releases", datetime(2026, 11, 12, 9, 30, tzinfo=UTC)
    real, calls = disclosure.protect_jointly, []

    def defeated_with_the_earlier(tables, *args):
        calls.append(len(tables))
        if len(calls) == 1:
            raise disclosure.AuditFailed("1 primary cell(s) narrowed below the required width")
        return real(tables, *args)

    for months in (2, 3):  # 1.0.0, then a version with a month more
        write_sample(tmp_path / f"mi{months}", 800, 3, months=months, formats=("csv",))
        if months == 3:
            monkeypatch.setattr(disclosure, "protect_jointly", defeated_with_the_earlier)
        cut_release(SPEC, sorted((tmp_path / f"mi{months}").glob("*.csv")), out, release_time=when, late=True,
                    reason="test")  # fmt: skip
        publish(tmp_path / "staging", out, when + timedelta(minutes=1))
    assert len(calls) == 2 and calls[0] > calls[1], calls  # the second without the earlier version's tables
    _, latest = sorted(p for p in (out / NAME).iterdir() if p.is_dir())  # 1.0.0 and the next
    tables = json.loads((latest / "datapackage.json").read_text())["opendata:disclosure"]["tables"]
    joint = [
        a["audit"]["relations_jointly"]
        for t in tables.values()
        for a in t.values()
        if "relations_jointly" in a["audit"]
    ]
    assert joint and all(j["checked"] and j["safe"] for j in joint)
    assert all("no pattern protects this version with them" in j["earlier_versions_not_linked"] for j in joint)


def _refused(spec: Path, tmp_path: Path, rows: int, match: str) -> None:
    """A release of a 2-month sample with ``spec`` fails with ``match`` and writes no tree."""
    from opendata.errors import ReleaseError
    from opendata.release import cut_release

    write_sample(tmp_path / "mi", rows, 3, months=2, formats=("csv",))
    with pytest.raises(ReleaseError, match=match):
        cut_release(
            spec,
            sorted((tmp_path / "mi").glob("*.csv")),
            tmp_path / "releases",
            release_time=datetime(2026, 11, 12, 9, 30, tzinfo=UTC),
            late=True,
            reason="test",
        )
    assert not (tmp_path / "releases").exists() and not (tmp_path / "staging").exists()


def test_the_engine_reads_the_coded_keys_as_the_strings_they_stand_for(tables):
    """The terms carry their keys as codes (a running total has a term per earlier month: 20 to 28
    million per measure at 235 months); the engine's matrix from them is the one the strings give,
    and a key no table holds is still named."""
    from disclosure import DisclosureError, KeyedRelations

    spec, aggregated = tables
    table = aggregated[0]
    keys = population_keys(table.dimensions, table.frame)
    known = {m: (table.frame[m].to_numpy(),) * 2 for m in table.frame.columns if m in spec.measures}
    terms, upper = relation_rows([table], [keys], "attachments", spec_relations(spec), [known | {CUMULATIVE: (0, 0)}])
    assert isinstance(terms["key"].dtype, pd.CategoricalDtype)
    index = pd.Index(keys)
    coded = KeyedRelations(terms, upper).over(index).matrix
    plain = KeyedRelations(terms.assign(key=terms["key"].astype(str)), upper).over(index).matrix
    assert coded.nnz > len(upper) and (coded != plain).nnz == 0
    with pytest.raises(DisclosureError, match=repr(str(keys.iloc[-1]))):
        KeyedRelations(terms, upper).over(index[:-1])
