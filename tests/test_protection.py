"""Protecting a release's measures: a round of the public audit redoes only what it changed."""

from __future__ import annotations

import pandas as pd
import pytest
from shipped_specs import OUTSIDERS

from opendata import protection
from opendata.aggregate import aggregate
from opendata.protection import population_keys, protect_tables
from opendata.relations import spec_relations
from opendata.sample import write_sample
from opendata.spec import load_spec
from opendata.validate import validate


@pytest.mark.slow  # a release's measures protected twice: about 11 s
def test_a_round_protects_again_only_the_measure_whose_held_cells_changed(tmp_path, monkeypatch):
    """``cut_release`` protects again, holding the cells the public audit narrowed; each measure's
    own protection is kept by the cells it holds (``done``), so only the measure given new held cells
    is protected again, and the release is the one a fresh protection with those held cells gives."""
    write_sample(tmp_path, 400, 3, months=2, formats=("csv",))
    spec = load_spec(OUTSIDERS)
    tables = aggregate(spec, validate(spec, sorted(tmp_path.glob("*.csv"))).table)
    ran: list[str] = []
    real = protection._protect_measure
    monkeypatch.setattr(protection, "_protect_measure", lambda measure, *a: ran.append(measure) or real(measure, *a))
    options = {"relations": spec_relations(spec), "workers": 1}

    done: dict = {}
    first = protect_tables(tables, spec.disclosure, done=done, **options)
    measures = sorted(ran)
    assert measures == sorted(measure for measure, _ in done)  # each measure once, kept
    frame = first[0].frame
    shown = frame.index[frame["referrals_status"] == ""]
    key = population_keys(tables[0].dimensions, tables[0].frame).iloc[shown[-1]]  # a published detail cell
    hold = {"referrals": {key}}

    ran.clear()
    again = protect_tables(tables, spec.disclosure, hold=hold, done=done, **options)
    assert ran == ["referrals"]
    assert again[0].frame.loc[shown[-1], "referrals_status"] == "c"  # held, so hidden

    ran.clear()
    fresh = protect_tables(tables, spec.disclosure, hold=hold, **options)
    assert sorted(ran) == measures  # nothing kept: every measure protected
    for a, b in zip(again, fresh, strict=True):
        pd.testing.assert_frame_equal(a.frame, b.frame)
        assert a.sdc == b.sdc
